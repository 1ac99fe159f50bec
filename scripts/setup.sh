#!/usr/bin/env bash
# Creates .venv and installs Totoshka into it. Idempotent; safe to re-run.
#   bash scripts/setup.sh            # the bot, the CLI, the playground
#   bash scripts/setup.sh test       # plus what the tests need
# torch is installed first, pinned, so that nothing later pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="fast"
[ "${1:-}" = "test" ] && extras="fast,scale,test,dev"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
