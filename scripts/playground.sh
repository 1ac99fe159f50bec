#!/usr/bin/env bash
# From a fresh clone to the bot in your browser, in one command:
#
#   bash scripts/playground.sh                 # http://127.0.0.1:8080/ opens by itself
#   bash scripts/playground.sh --port 9000 --no-open
#
# The first run creates .venv (CPU torch pinned, then the package: scripts/setup.sh)
# and downloads the style models into the cache (or copies them from the offline
# mirror named by TOTOSHKA_MODEL_MIRROR); later runs start in seconds. Then it runs
# `totoshka playground`: the local Bot API emulator, the real bot and a
# Telegram-like web chat - no Telegram account or token needed. Ctrl+C stops it.
# Any arguments go to `totoshka playground` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.playground-installed
if [ ! -x .venv/bin/totoshka ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setting up .venv (first run: a few minutes)…" >&2
  bash scripts/setup.sh
  touch "$stamp"
fi
exec .venv/bin/totoshka playground "$@"
