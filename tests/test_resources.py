"""Memory: sizes, what is available, job estimates, and refusal before allocation."""

from __future__ import annotations

import pytest
import torch

from aedyn import resources
from aedyn.errors import AedynError
from aedyn.job import KernelJob, TrainJob, run_job, run_kernel_job
from aedyn.resources import MemoryEstimate, available_memory, check_memory, format_bytes, parse_size


@pytest.mark.parametrize(("text", "size"), [
    ("8GB", 8 * 1000**3), ("8GiB", 8 * 1024**3), ("8G", 8 * 1024**3), ("512MB", 512 * 1000**2),
    ("1.5e9", 1_500_000_000), ("1024", 1024), (" 2 mib ", 2 * 1024**2), (4096, 4096),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "8 parsecs", "-1GB", "0", "nan", "1e400GB"])
def test_parse_size_refuses(text):
    with pytest.raises(AedynError, match="memory size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["1e400", "1e400GB", "1e308TB", float("inf")])
def test_a_size_beyond_any_number_of_bytes_is_called_too_large_not_too_small(text):
    with pytest.raises(AedynError, match="too large") as info:
        parse_size(text)
    assert "at least 1 byte" not in str(info.value)


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 1024**3) == "3 GiB"


def test_available_memory_is_plausible():
    free = available_memory()
    assert free is None or 1 << 20 < free < 1 << 50


def test_cgroup_limit_is_respected(monkeypatch):
    monkeypatch.setattr(resources, "_meminfo_available", lambda: 64 << 30)
    monkeypatch.setattr(resources, "_cgroup_available", lambda: 2 << 30)
    assert available_memory() == 2 << 30


def test_the_address_space_limit_is_respected(monkeypatch):
    """Under ``ulimit -v`` an allocation beyond the limit fails however much memory is free: the room
    left under it (the limit less what the process has mapped) bounds what is available."""
    monkeypatch.setattr(resources, "_meminfo_available", lambda: 64 << 30)
    monkeypatch.setattr(resources, "_cgroup_available", lambda: None)
    monkeypatch.setattr(resources.resource, "getrlimit", lambda which: (3 << 30, resources.resource.RLIM_INFINITY))
    monkeypatch.setattr(resources, "_mapped", lambda: 1 << 30)
    assert available_memory() == 2 << 30
    est = MemoryEstimate()
    est.add("parameters", 5 << 30)
    with pytest.raises(AedynError, match="available memory is 2 GiB"):
        check_memory(est)
    monkeypatch.setattr(resources.resource, "getrlimit", lambda which: (resources.resource.RLIM_INFINITY,) * 2)
    assert available_memory() == 64 << 30
    check_memory(est)
    assert resources._mapped() > 0  # this process's own address space, read from /proc


def test_a_memory_refusal_keeps_its_numbers_under_other_advice_and_pickles_whole():
    import pickle

    from aedyn.errors import MemoryRefusal

    est = MemoryEstimate()
    est.add("parameters", 6 << 30)
    with pytest.raises(MemoryRefusal) as info:
        check_memory(est, limit=1 << 30, advice="use a smaller --width")
    other = info.value.advise("lower --seeds")
    assert str(other).startswith(info.value.need) and str(other).endswith("; lower --seeds")
    assert "--width" not in str(other)
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is MemoryRefusal and str(again) == str(info.value)


def test_check_memory_names_the_parts():
    est = MemoryEstimate()
    est.add("parameters", 6 << 30)
    est.add("loss history", 1 << 30, on_device=False)
    with pytest.raises(AedynError, match=r"needs about 7 GiB \(parameters 6 GiB, loss history 1 GiB\)") as info:
        check_memory(est, limit=1 << 30, advice="use a smaller --width")
    assert "--max-memory" in str(info.value) and "--width" in str(info.value)
    check_memory(est, limit=8 << 30)


def test_estimates_grow_with_the_problem():
    small = TrainJob(data="sphere", n=32, d=8, width=64, steps=100).memory(32, 8).total
    wide = TrainJob(data="sphere", n=32, d=8, width=64_000, steps=100).memory(32, 8).total
    long = TrainJob(data="sphere", n=32, d=8, width=64, steps=10**8).memory(32, 8).total
    assert small < wide and small < long
    assert long >= 8 * 10**8  # the loss history alone
    ntk = TrainJob(data="sphere", n=32, d=8, width=64, steps=100, ntk_every=10).memory(32, 8).total
    assert ntk > small
    assert KernelJob(data="sphere", n=4000, d=8).memory(4000, 8).total >= 12 * 4000**2 * 8


def test_estimate_counts_what_the_run_allocates():
    """The estimate must at least cover the parameters and the n x m activations it names:
    m = 2^16, n = 256, d = 64 in float64 holds 2 x 33.5 MB of weights and 134 MB per n x m array."""
    est = TrainJob(data="sphere", n=256, d=64, width=1 << 16, steps=10, lr=0.1).memory(256, 64)
    parts = {**est.host, **est.device}
    assert parts["parameters"] >= 4 * 2 * (1 << 16) * 64 * 8
    assert parts["activations"] >= 2 * 256 * (1 << 16) * 8


@pytest.mark.parametrize(("job", "needle"), [
    (TrainJob(data="digits", n=64, width=20_000_000, steps=10), "parameters"),
    (TrainJob(data="digits", n=64, width=10**9, steps=10), "parameters"),
    (TrainJob(data="sphere", n=16, d=4, width=8, steps=10**12), "loss history"),
    (TrainJob(data="sphere", n=10**9, d=64, width=8, steps=1), "data"),
    (KernelJob(data="sphere", n=10**6, d=2), "infinite-width kernels"),
])
def test_too_large_jobs_are_refused_before_allocating(job, needle, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("data were loaded before the memory check")

    monkeypatch.setattr(type(job), "load", no_loading)
    runner = run_kernel_job if isinstance(job, KernelJob) else run_job
    with pytest.raises(AedynError, match=f"needs about .*{needle}") as info:
        runner(job)
    assert "\n" not in str(info.value)


def test_max_memory_limit_is_the_users_word(quiet_aedyn_warnings):
    job = TrainJob(data="sphere", n=16, d=4, width=64, steps=5)
    with pytest.raises(AedynError, match="--max-memory limit is 1 KiB"):
        run_job(job, max_memory=1024)
    assert run_job(job, max_memory=1 << 30).steps == 5


def test_gpu_part_is_checked_against_gpu_memory(monkeypatch):
    """On CUDA the device part meets free GPU memory, the host part host memory."""
    est = MemoryEstimate()
    est.add("parameters", 10 << 30)
    est.add("loss history", 1 << 20, on_device=False)
    monkeypatch.setattr(resources, "available_memory",
                        lambda device="cpu": (4 << 30) if torch.device(device).type == "cuda" else (64 << 30))
    with pytest.raises(AedynError, match="available GPU memory is 4 GiB"):
        check_memory(est, device=torch.device("cuda"))
    check_memory(est, device="cpu")


MEASURE = """
import json, re, resource, sys, warnings
warnings.simplefilter("ignore")
from aedyn.job import TrainJob, run_job
def status(key):
    return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024
job = TrainJob(**json.loads(sys.argv[1]))
estimate = job.memory(job.n, job.d).total
def rusage_peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
try:  # reset the peak (VmHWM) to the present: what the imports touched once does not hide the run's peak
    open("/proc/self/clear_refs", "w").write("5")
    base, peak_of = status("VmRSS"), lambda: status("VmHWM")
except OSError:
    base, peak_of = rusage_peak(), rusage_peak
run_job(job)
peak = peak_of()
print(json.dumps({"estimate": estimate, "used": peak - base}))
"""


@pytest.mark.parametrize("settings", [
    # lr=auto at large n: Lanczos needs no n x n matrix (an estimate that counted one refused this at 27 GiB)
    {"data": "sphere", "n": 60_000, "d": 4, "width": 16, "steps": 2},
    # parameters and activations dominate
    {"data": "sphere", "n": 100, "d": 64, "width": 100_000, "steps": 2, "lr": 0.01},
    # the NTK's eigensolvers and dense drift dominate
    {"data": "sphere", "n": 64, "d": 32, "width": 2048, "steps": 2, "lr": 0.01, "ntk_every": 1},
])
def test_estimate_is_within_a_small_factor_of_the_measured_peak(settings):
    """Peak RSS growth of a real run (in a fresh process) against the estimate: not more than 2x
    under (it must protect) and not more than 3x + 600 MB over (it must not refuse jobs that fit;
    the allowance covers bases that are allocated but mostly untouched, such as Lanczos' 200
    vectors, and runs whose peak hides under the import's)."""
    import json
    import subprocess
    import sys

    def measure() -> dict:
        proc = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(settings)], capture_output=True, text=True,
                              timeout=300, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    got = measure()
    used, estimate = max(got["used"], 1), got["estimate"]
    assert estimate >= 0.5 * used, got
    assert estimate <= 3 * used + 600 * 2**20, got
