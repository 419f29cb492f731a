#!/usr/bin/env bash
# E2 in full on a GPU machine (n up to 1024), within a time limit, its report archived:
#     bash bench/gpu_reproduce.sh SECONDS OUTDIR
# Runs `aedyn reproduce --device cuda --only E2` into OUTDIR/report. If the limit stops it, the
# report's run store (OUTDIR/report/runs) keeps every finished batch, and the
# same command (with that folder) resumes. Writes OUTDIR/report.tgz and OUTDIR/e2.log.
set -u
LIMIT=${1:-400}
OUTDIR=${2:-/tmp/aedyn-gpu}
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUTDIR"
START=$(date +%s)
timeout "$LIMIT" "$PY" -m aedyn.cli reproduce --device cuda --only E2 --out "$OUTDIR/report" > "$OUTDIR/e2.log" 2>&1
echo "reproduce exit $? after $(( $(date +%s) - START )) s" | tee -a "$OUTDIR/e2.log"
tar czf "$OUTDIR/report.tgz" -C "$OUTDIR" report
tail -n 25 "$OUTDIR/e2.log"
