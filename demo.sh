#!/usr/bin/env bash
# Set up gitml in .venv and run the end-to-end demo in a throwaway git repo.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 10), "gitml needs Python 3.10+"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/python examples/demo.py "$@"
