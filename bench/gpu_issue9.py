"""GPU check of issue 9 (run by bench/gpu_issue9.sh): the certificate agrees between CUDA and the CPU
(same seeds, float64), and E3-E6 run on CUDA (their quick configs), timed against the same on the CPU.

    python bench/gpu_issue9.py OUTDIR
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

from aedyn.job import TrainJob, run_job

CASES = [
    ("weak, wide", {"regime": "weak", "n": 8, "d": 4, "width": 16384, "steps": 2000}),
    ("weak, m < n", {"regime": "weak", "n": 16, "d": 8, "width": 4, "steps": 300}),
    ("joint", {"regime": "joint", "n": 16, "d": 8, "width": 2048, "steps": 2000}),
    ("tied", {"regime": "tied", "n": 8, "d": 4, "width": 1024, "steps": 3000}),
]


def certificate(device: str, spec: dict) -> tuple[dict, float]:
    job = TrainJob(data="sphere", certify=True, device=device, **spec)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_job(job)
    if device == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    cert = result.certificate.to_dict()
    return {"steps": result.steps, "status": result.status, "inside": cert["inside"],
            **{c["name"]: c["measured"] for c in cert["checks"]}, "safe_share": cert["safe_share"],
            "holds": [c["holds"] for c in cert["checks"]]}, wall


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "certificate": []}
    for name, spec in CASES:
        cpu, t_cpu = certificate("cpu", spec)
        gpu, t_gpu = certificate("cuda", spec)
        diff = {k: abs(cpu[k] - gpu[k]) for k in ("kernel", "rate", "safe radius", "safe_share")
                if isinstance(cpu[k], float) and isinstance(gpu[k], float) and cpu[k] == cpu[k]}
        same = cpu["steps"] == gpu["steps"] and cpu["holds"] == gpu["holds"] and cpu["inside"] == gpu["inside"]
        record["certificate"].append({"case": name, "cpu": cpu, "cuda": gpu, "max_abs_diff": diff, "same_verdict": same,
                                      "wall_cpu": t_cpu, "wall_cuda": t_gpu})
        print(f"{name}: same verdict {same}; inside {gpu['inside']}; steps cpu {cpu['steps']} cuda {gpu['steps']}; "
              f"max |diff| {max(diff.values(), default=0):.2e}; wall cpu {t_cpu:.2f} s, cuda {t_gpu:.2f} s", flush=True)
    for device in ("cuda", "cpu"):
        folder = out / f"report-{device}"
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "aedyn.cli", "reproduce", "--quick", "--only", "E3,E4,E5,E6",
                               "--device", device, "--out", str(folder), "-q"], capture_output=True, text=True,
                              timeout=240)
        wall = time.perf_counter() - t0
        times = {}
        for name in ("E3", "E4", "E5", "E6"):
            path = folder / name / "results.json"
            if path.exists():
                times[name] = round(json.loads(path.read_text())["wall_time"], 2)
        record[f"reproduce_{device}"] = {"rc": proc.returncode, "wall": wall, "experiments": times,
                                         "stderr_tail": proc.stderr[-2000:]}
        print(f"reproduce --quick --only E3,E4,E5,E6 --device {device}: rc {proc.returncode}, {wall:.1f} s, {times}",
              flush=True)
        if proc.returncode:
            print(proc.stderr[-2000:])
    (out / "issue9.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/aedyn-issue9"))
