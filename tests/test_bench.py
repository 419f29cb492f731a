"""The benchmark scripts run (at small sizes, on the CPU): a script that no longer runs is caught
here, not on the day a GPU is lent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.slow
def test_gpu_e2_checks_every_regime_and_times_a_trial_off_a_gpu():
    out = run("bench/gpu_e2.py", "--device", "cpu", "--quick")
    assert out.count(": PASS") == 4 and "FAIL" not in out and out.count("  b  ") == 2


@pytest.mark.slow
def test_roofline_prints_the_ratio_to_the_floor():
    out = run("bench/roofline.py", "--n", "16", "--width", "64", "--batch", "2", "--steps", "2", "--repeats", "1",
              "--gemm", "128", "--copy-mb", "16", "--profile")
    assert "aedyn/floor" in out and out.count("x\n") >= 2 and "whole evaluation" in out
