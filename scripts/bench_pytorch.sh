#!/usr/bin/env bash
# Runs scripts/bench_pytorch.py in a fresh virtual environment with PyTorch
# from PyPI (not part of CI: it downloads about 3 GB, as the Linux x86_64
# wheel on PyPI depends on the CUDA runtime packages even when run on the
# CPU). Usage: scripts/bench_pytorch.sh [VENV_DIR] [-- ARGS for the .py]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-${TMPDIR:-/tmp}/bilevel-bench-torch}"
shift || true
[ "${1:-}" = "--" ] && shift
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch==2.9.1 numpy
fi
exec "$venv/bin/python" "$here/bench_pytorch.py" "$@"
