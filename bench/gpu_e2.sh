#!/usr/bin/env bash
# E2 at scale on a GPU machine, in one call of at most LIMIT seconds (default 540: a 9-minute call):
#     bash bench/gpu_e2.sh [LIMIT] [OUTDIR]
# 1. bench/gpu_e2.py: the captured-graph engine against the CPU in every regime, and one width
#    trial at n = 1024 timed (at most 150 s);
# 2. `aedyn reproduce --only E2 --profile scale --device cuda --out OUTDIR/report` for the rest of
#    the time: sphere n = 16..4096 at d = 8, weak and joint under both step rules. Every finished
#    batch is in OUTDIR/report/runs, so the same command, run again, resumes where this one stopped;
# 3. the m* table (grid m*, quorum width and its 95% interval, weak / joint), from the report when
#    it is complete, else the runs stored so far; and the wall times.
# Uses whatever torch is installed there; puts src/ on PYTHONPATH.
set -u
LIMIT=${1:-540}
OUTDIR=${2:-/tmp/aedyn-e2}
START=$(date +%s)
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUTDIR"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
timeout 150 "$PY" bench/gpu_e2.py
echo "gpu_e2.py exit $? after $(( $(date +%s) - START )) s"
LEFT=$(( LIMIT - ($(date +%s) - START) - 15 ))
T0=$(date +%s)
if [ "$LEFT" -gt 30 ]; then
    timeout "$LEFT" "$PY" -m aedyn.cli reproduce --only E2 --profile scale --device cuda \
        --out "$OUTDIR/report" > "$OUTDIR/e2.log" 2>&1
    echo "reproduce exit $? after $(( $(date +%s) - T0 )) s (124: the time limit; run again to resume)"
fi
"$PY" - "$OUTDIR/report" <<'PY'
import json, sys
from pathlib import Path
folder = Path(sys.argv[1])
summary = folder / "summary.json"
if summary.exists():
    e2 = json.loads(summary.read_text())["E2"]
    print(f"{'regime':8s} {'crit':8s} {'n':>5s} {'m*':>6s}  quorum width [95%]")
    for r in sorted(e2["m_star"], key=lambda r: (r["criterion"], r["regime"], r["n"])):
        hi = "inf" if r["quorum_high"] is None else f"{r['quorum_high']:.0f}"
        q = "-" if r["quorum_width"] is None else f"{r['quorum_width']:.0f} [{r['quorum_low']:.0f}, {hi}]"
        print(f"{r['regime']:8s} {r['criterion']:8s} {r['n']:5d} {str(r['m_star']):>6s}  {q}")
    for r in e2["ratio"]:
        print(f"weak/joint {r['criterion']} {r.get('step_rule', 'global')} n = {r['n']}: {r['value']:.3g} "
              f"[{r['low']:.3g}, {r['high'] if r['high'] is None else round(r['high'], 3)}]")
else:
    from aedyn.store import load_results
    try:
        rows = load_results(folder / "runs")
    except Exception as exc:  # nothing stored yet
        print(f"no runs stored yet ({exc})")
    else:
        print(f"{len(rows)} runs stored so far; by regime and n: widths tried")
        for (regime, n), g in rows.groupby(["regime", "n"]):
            print(f"  {regime:8s} n = {n:5d}: {sorted(set(g['width']))}")
PY
echo "total $(( $(date +%s) - START )) s"
