#!/usr/bin/env bash
# Refreshes the lock files (pip-tools), with sha256 hashes for every file:
#   requirements/run.txt   what `bash scripts/setup.sh` installs (the bot, CLI, playground)
#   requirements/scale.txt what `bash scripts/setup.sh scale` installs (plus Celery, Redis)
#   requirements/test.txt  what `bash scripts/setup.sh test` installs (CI)
# torch is left out of both (see requirements/torch.txt): setup.sh installs it first,
# pinned, and the locks are resolved against that pin. Run after changing the
# dependencies in pyproject.toml, or to move to newer releases; commit the result.
#   bash scripts/lock.sh                 # keep current pins where they still fit
#   bash scripts/lock.sh --upgrade       # newest releases the ranges allow
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pip-compile ] || bash scripts/setup.sh test
compile() {
  .venv/bin/pip-compile --quiet --generate-hashes --strip-extras \
    --no-emit-index-url --no-emit-find-links --unsafe-package torch \
    --constraint requirements/torch.txt "$@" pyproject.toml
}
compile --extra fast --output-file requirements/run.txt "${@}"
compile --extra fast,scale --output-file requirements/scale.txt "${@}"
compile --extra fast,scale,test,dev --output-file requirements/test.txt "${@}"
echo "wrote requirements/run.txt, scale.txt and test.txt"
