#!/usr/bin/env bash
# Run bench/gpu.py on a bare GPU machine, the repository as the working folder, in 5 minutes at most:
#     bash bench/gpu.sh            # full settings
#     bash bench/gpu.sh --quick    # small settings (also the CPU half where there is no CUDA)
# Uses whatever torch is installed there (never pins or replaces it). Installs aedyn in editable
# mode when it does not import yet (offline: without dependencies), and puts src/ on PYTHONPATH
# in any case. The time spent here comes off gpu.py's budget (a later --budget overrides it).
set -u
START=$(date +%s)
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! "$PY" -c "import aedyn" 2>/dev/null; then
    timeout 90 "$PY" -m pip install -q -e . 2>/dev/null \
        || timeout 60 "$PY" -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || true
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import aedyn" 2>/tmp/aedyn-import.err; then
    echo "aedyn does not import on this machine:"; tail -n 3 /tmp/aedyn-import.err
    echo "(it needs torch, numpy, scipy, pyarrow, pandas; install those and rerun)"
    exit 1
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec "$PY" bench/gpu.py --budget $((290 - ($(date +%s) - START))) "$@"
