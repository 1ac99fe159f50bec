#!/usr/bin/env bash
# Creates .venv and installs Totoshka into it. Idempotent; safe to re-run.
#   bash scripts/setup.sh            # the bot, the CLI, the playground (requirements/run.txt)
#   bash scripts/setup.sh scale      # plus Celery and Redis for scale-out (requirements/scale.txt)
#   bash scripts/setup.sh test       # plus what the tests need (requirements/test.txt)
# TOTOSHKA_VENV=DIR puts the environment elsewhere (CI builds a user's one beside its own).
#
# Every package comes from a lock file with sha256 hashes (pip-tools; refresh them
# with `bash scripts/lock.sh`), so a machine set up next year gets the same working
# set. torch is installed first, pinned (requirements/torch.txt), so that nothing
# later pulls a CUDA build. `pip check` at the end fails loudly on a missing
# dependency instead of leaving a path that falls back at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") lock="requirements/run.txt" ;;
  scale) lock="requirements/scale.txt" ;;
  test) lock="requirements/test.txt" ;;
  *) echo "usage: bash scripts/setup.sh [scale|test]" >&2; exit 2 ;;
esac
venv="${TOTOSHKA_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$PY" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip
"${pip[@]}" install --quiet -r requirements/torch.txt
"${pip[@]}" install --quiet --require-hashes -r "$lock"
"${pip[@]}" install --quiet --no-deps -e .
"${pip[@]}" check
