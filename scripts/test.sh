#!/usr/bin/env bash
# The project's one test command (README and CI run exactly this).
# Installs what the tests need, then runs the linter and the whole test suite.
# Real checkpoints come from the offline mirror ../shared/models unless
# TOTOSHKA_MODEL_MIRROR names another.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
npm ci --silent --prefix tests/reference/tfjs
bash scripts/install-browser.sh
bash scripts/services.sh
export TOTOSHKA_MODEL_MIRROR="${TOTOSHKA_MODEL_MIRROR:-$(cd .. && pwd)/shared/models}"
export TOTOSHKA_SHARED="${TOTOSHKA_SHARED:-$(cd .. && pwd)/shared}"
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/python -m pytest "$@"
