#!/usr/bin/env bash
# Issue 9 on a bare GPU machine (bench/gpu_issue9.py): the certificate on CUDA against the CPU, and
# E3-E6 (quick) on CUDA and on the CPU, timed. Writes OUTDIR/issue9.json and both reports.
#     bash bench/gpu_issue9.sh OUTDIR
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${1:-/tmp/aedyn-issue9}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import aedyn" 2>/tmp/aedyn-import.err; then
    echo "aedyn does not import on this machine:"; tail -n 3 /tmp/aedyn-import.err; exit 1
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" bench/gpu_issue9.py "$OUT"
