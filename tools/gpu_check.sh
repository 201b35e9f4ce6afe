#!/usr/bin/env bash
# On a GPU box: bash tools/gpu_check.sh OUTDIR
# Installs the wheels carried in .whl/ (when there are any), then runs every step of the GPU
# check in order, each timed, into OUTDIR/gpu_check.json and OUTDIR/gpu_check.log (the steps:
# tools/gpu_check.py --help, docs/gpu.md). Without CUDA: one line, then a dry run that checks
# that every step's command parses; exit 0.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: bash tools/gpu_check.sh OUTDIR" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
exec python3 -m tools.gpu_check "$1"
