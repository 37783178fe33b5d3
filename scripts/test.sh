#!/usr/bin/env bash
# The test suite, from a fresh clone: install into .venv, run pytest; with no arguments, then the runtime tests once
# more against the oldest numpy/OpenCV/click a Python 3.8 Jetson runs (scripts/test_oldest.sh; ROCKEDGE_SKIP_OLDEST=1
# skips that). Arguments go to pytest and run only the main suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh dev
if [ "$#" -gt 0 ]; then
  exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest
if [ "${ROCKEDGE_SKIP_OLDEST:-0}" != "1" ]; then
  bash scripts/test_oldest.sh
fi
