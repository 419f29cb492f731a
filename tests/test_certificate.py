"""The per-run certificate: a wide network certifies; a narrow weak network (m < n) fails on its
singular kernel and a tied network on its safe radius; every measured value against an
independent computation (autograd NTKs, a hand-written GD loop, the loss itself)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from aedyn.certificate import CERTIFICATE_COLUMNS, KERNEL_BOUND, certify
from aedyn.errors import AedynError
from aedyn.gd import TrainResult
from aedyn.job import Notes, TrainJob, run_job
from aedyn.model import forward, safe_radius
from aedyn.sweep import result_row, run_id


def _run(**kw):
    job = TrainJob(**{"data": "sphere", "n": 8, "d": 4, "steps": 2000, "certify": True, **kw})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = run_job(job)
    return job, result, job.load(Notes())


def _autograd_ntk(W, V, alpha, X, regime):
    """The NTK from torch.func's Jacobian of the outputs in the trained parameters (independent of aedyn.ntk)."""
    def out(*theta):
        w = theta[0]
        v = w.T if regime == "tied" else (theta[1] if regime == "joint" else V)
        return (alpha * v @ torch.relu(w @ X.T)).T.reshape(-1)

    theta = (W,) if regime in ("weak", "tied") else (W, V)
    jac = torch.func.jacrev(out, argnums=tuple(range(len(theta))))(*theta)
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac], dim=1)
    return J @ J.T


@pytest.fixture(scope="module")
def wide():
    return _run(regime="weak", width=16384)


def test_a_wide_network_certifies(wide):
    result = wide[1]
    cert = result.certificate
    assert cert.inside and all(c.holds for c in cert.checks)
    assert cert.check("kernel").measured > 0.9 and cert.safe_share > 0.6
    assert "inside the NTK regime" in cert.verdict
    assert [c.name for c in cert.checks] == ["kernel", "rate", "safe radius"]
    assert all(c.line.endswith(": holds") for c in cert.checks)


def test_a_run_of_no_step_has_a_vacuous_certificate(wide):
    """With no step taken nothing is checked along the run: the certificate says it is vacuous (its
    verdict, its record) rather than that every invariant held; a run that stepped is not vacuous."""
    _, result, _ = _run(regime="weak", width=64, steps=0)
    cert = result.certificate
    assert cert.vacuous and cert.steps == 0
    assert cert.verdict.startswith("vacuous") and "nothing is certified" in cert.verdict
    assert "every invariant" not in cert.verdict and cert.lines()[-1] == cert.verdict
    record = cert.to_dict()
    assert record["vacuous"] is True and record["verdict"] == cert.verdict
    assert not wide[1].certificate.vacuous and wide[1].certificate.to_dict()["vacuous"] is False


def test_a_narrow_weak_network_fails_on_its_singular_kernel():
    _, result, _ = _run(regime="weak", width=4, steps=200)  # m d = 16 < n d = 32: rank-deficient NTK
    cert = result.certificate
    kernel = cert.check("kernel")
    assert not cert.inside and not kernel.holds and math.isnan(kernel.measured)
    assert "singular" in kernel.line and kernel.line.endswith("FAILS")
    rate = cert.check("rate")  # the bound is 1 with a singular kernel: it certifies nothing
    assert not rate.holds and "certifies nothing" in rate.line
    assert "kernel" in cert.verdict and "outside the NTK regime" in cert.verdict


def test_a_tied_network_fails_on_its_safe_radius():
    _, result, _ = _run(regime="tied", width=1024, steps=3000)
    cert = result.certificate
    safe = cert.check("safe radius")
    assert not safe.holds and not cert.inside and cert.safe_share < 0.1
    assert safe.line.endswith("FAILS") and "safe radius" in cert.verdict


def test_safe_radius_tracking_matches_a_hand_written_gradient_descent():
    """With record_every = 1, the neurons marked as having left their safe radius are exactly those
    that, along an autograd GD loop with the same step, were ever at least their radius from w_r(0)."""
    _, result, X = _run(regime="joint", width=64, steps=60, record_every=1, target=1e-12)
    init = result.init
    W, V = init.W.clone().requires_grad_(True), init.V.clone().requires_grad_(True)
    radius = safe_radius(init, X)
    left = torch.zeros(init.W.shape[0], dtype=torch.bool)
    for _ in range(result.steps + 1):
        left |= (W.detach() - init.W).norm(dim=1) >= radius
        loss = 0.5 * (init.alpha * (V @ torch.relu(W @ X.T)).T - X).square().sum()
        gW, gV = torch.autograd.grad(loss, (W, V))
        with torch.no_grad():
            W -= result.lr * gW
            V -= result.lr * gV
    assert 0 < int(left.sum()) < len(left)  # the test has neurons on both sides
    # a threshold on floats from two computations (autograd here, the engine there) that differ by rounding;
    # measured, no neuron is near it: max_k ||w_r(k) - w_r(0)|| / r_r is at least 4% away from 1 for every r
    assert np.array_equal(result.left_safe_radius, left.numpy())
    assert result.certificate.safe_share == pytest.approx(1 - float(left.double().mean()), abs=1e-15)


def test_safe_radius_tracking_in_a_batch_whose_networks_stop_at_different_steps():
    """The riskiest indexing: networks with different step sizes stop at different steps (and are
    retired from the batch), with one shared X and with one X per network; each network's record
    equals its run alone."""
    from aedyn.data import load_data
    from aedyn.gd import train, train_batch
    from aedyn.model import Params, init_params

    nets = [init_params(4, 64, regime="joint", seed=s) for s in range(5)]
    params = Params(torch.stack([p.W for p in nets]), torch.stack([p.V for p in nets]), nets[0].alpha)
    lrs = np.array([0.05, 0.2, 0.5, 0.8, 1.2])
    shared = load_data("sphere", n=6, d=4, seed=0)
    own = torch.stack([load_data("sphere", n=6, d=4, seed=s) for s in range(5)])
    for X in (shared, own):
        batch = train_batch(X, params, "joint", lr=lrs, steps=400, target=1e-4, record_every=3)
        assert len({r.steps for r in batch}) > 2  # they stopped at different steps
        for b, result in enumerate(batch):
            alone = train(X if X.ndim == 2 else X[b], nets[b], "joint", lr=float(lrs[b]), steps=400, target=1e-4,
                          record_every=3)
            # thresholds on floats that batched and alone runs round differently (1e-14); measured, every stop is
            # at least 0.1% past its target and every neuron's largest recorded move at least 0.4% from its radius
            assert result.steps == alone.steps
            assert np.array_equal(result.left_safe_radius, alone.left_safe_radius)
            assert np.array_equal(result.metrics["outside_safe_radius"], alone.metrics["outside_safe_radius"])


def test_a_failing_certificate_never_costs_the_training(monkeypatch):
    import aedyn.job

    def broken(result, X):
        raise RuntimeError("eigensolver failed")

    monkeypatch.setattr(aedyn.job, "certify", broken)
    notes = []
    result = run_job(TrainJob(data="sphere", n=8, d=4, width=64, steps=50, certify=True), on_note=notes.append)
    assert result.certificate is None and result.steps > 0
    assert any("no certificate for this run: eigensolver failed" in n for n in notes)


@pytest.mark.parametrize("regime", ["weak", "joint"])
def test_each_measured_value_against_an_independent_computation(regime):
    _, result, X = _run(regime=regime, width=256, steps=300, ntk_every=25)
    cert, init, final = result.certificate, result.init, result.params
    theta0 = torch.linalg.eigvalsh(_autograd_ntk(init.W, init.V, init.alpha, X, regime))
    thetaT = torch.linalg.eigvalsh(_autograd_ntk(final.W, final.V, final.alpha, X, regime))
    lam0 = float(theta0[0])
    assert cert.lambda_min0 == pytest.approx(lam0, rel=1e-9)
    assert cert.check("kernel").measured <= float(thetaT[0]) / lam0 + 1e-9  # the end is one of the checks
    # rate: the worst window, recomputed from the losses
    loss, w = result.loss, cert.window
    worst = max((loss[min(k + w, len(loss) - 1)] / loss[k]) ** (1 / (min(k + w, len(loss) - 1) - k))
                for k in range(0, len(loss) - 1, w))
    assert cert.check("rate").measured == pytest.approx(worst, rel=1e-12)
    assert cert.check("rate").bound == pytest.approx(1 - result.lr * lam0 / 2, rel=1e-12)
    # safe radius: lambda_min of the NTK at initialisation of the neurons that stayed inside
    keep = torch.as_tensor(~result.left_safe_radius)
    sub = torch.linalg.eigvalsh(_autograd_ntk(init.W[keep], init.V[:, keep], init.alpha, X, regime))
    assert cert.check("safe radius").measured == pytest.approx(float(sub[0]) / lam0, rel=1e-8, abs=1e-12)
    if regime == "weak":  # the PSD-order argument: Theta(T) >= Theta_S(0) for weak training, at any step
        assert float(thetaT[0]) >= float(sub[0]) * (1 - 1e-9)


def test_the_rate_check_stops_at_the_rounding_floor():
    """A run with target 0 in float32 falls to the rounding floor of its dtype and stalls there: the
    rate windows end at the first step at the floor (below it the loss cannot fall), so the stall
    is not read as a slow contraction. Without the floor the last windows contract by about 1 per
    step and the rate line would fail."""
    result = _run(regime="weak", width=512, steps=600, target=0.0, dtype="float32")[1]
    at_floor = np.flatnonzero(result.loss <= result.floor)
    assert at_floor.size and at_floor[0] < len(result.loss) - 50  # it reached the floor well before the end
    stalled = result.loss[at_floor[0]:]
    assert stalled.max() / stalled.min() < 1e3  # and stayed there (no further contraction)
    rate = result.certificate.check("rate")
    assert rate.holds and f"to step {at_floor[0]}" in rate.line
    loss, w = result.loss.astype(np.float64), result.certificate.window
    last = int(at_floor[0])
    worst = max((loss[min(k + w, last)] / loss[k]) ** (1 / (min(k + w, last) - k)) for k in range(0, last, w))
    assert rate.measured == pytest.approx(worst, rel=1e-6)


def test_the_line_and_verdict_follow_the_numbers(wide):
    _, result, X = wide
    strict = certify(result, X, window=1)
    assert strict.window == 1 and strict.check("rate").measured >= result.certificate.check("rate").measured - 1e-15
    cert = result.certificate
    assert f"{cert.check('kernel').measured:.4g}" in cert.check("kernel").line
    assert f"bound >= {KERNEL_BOUND:g}" in cert.check("safe radius").line
    columns = cert.columns()
    assert tuple(columns) == CERTIFICATE_COLUMNS and columns["cert_inside"] is True
    assert json.loads(json.dumps(cert.to_dict()))["inside"] is True


def test_certify_refuses_what_it_cannot_check(wide):
    _, result, X = wide
    with pytest.raises(AedynError, match="reloaded from JSON"):
        certify(TrainResult.from_record(json.loads(json.dumps(result.to_record()))), X)
    plain = run_job(TrainJob(data="sphere", n=8, d=4, width=64, steps=5))
    with pytest.raises(AedynError, match="ntk_every"):
        certify(plain, X)
    with pytest.raises(AedynError, match="window"):
        certify(result, X, window=0)
    with pytest.raises(AedynError, match="certify must be"):
        TrainJob(certify="yes")


def test_a_certified_job_records_the_ntk_and_keeps_other_run_ids():
    job = TrainJob(data="sphere", n=8, d=4, steps=1000, certify=True)
    assert job.ntk_every == 20 and job.to_dict()["certify"] is True
    plain = TrainJob(data="sphere", n=8, d=4, steps=1000)
    assert "certify" not in plain.to_dict()
    assert run_id(plain) == run_id(TrainJob(data="sphere", n=8, d=4, steps=1000, certify=False))
    assert TrainJob(data="sphere", n=8, d=4, certify=True, ntk_every=7).ntk_every == 7


def test_the_sweep_row_carries_the_certificate_columns(wide):
    job, result, _ = wide
    row = result_row("x", job, result)
    assert all(name in row for name in CERTIFICATE_COLUMNS) and row["cert_inside"] is True
    record = result.to_record()
    assert record["certificate"]["inside"] is True
    plain_job = TrainJob(data="sphere", n=8, d=4, width=64, steps=5)
    assert not any(k.startswith("cert_") for k in result_row("y", plain_job, run_job(plain_job)))


def test_the_decoder_regime_moves_no_pattern():
    _, result, X = _run(regime="decoder", width=256, steps=500)
    safe = result.certificate.check("safe radius")
    assert safe.holds and "does not train" in safe.line and result.left_safe_radius is None
    assert math.isnan(safe.measured) and result.certificate.columns()["cert_safe_radius"] is None
    assert float((forward(result.params, X, "decoder") - X).square().sum()) < float(result.loss[0])


def test_the_certificate_sentence_counts_the_table():
    import pandas as pd

    from aedyn.certificate import certificate_sentence, certified_counts

    rows = [{"architecture": "tied", "cert_inside": False, "cert_kernel_holds": True, "cert_rate_holds": False,
             "cert_safe_radius_holds": False}] * 3
    rows += [{"architecture": "joint", "cert_inside": True, "cert_kernel_holds": True, "cert_rate_holds": True,
              "cert_safe_radius_holds": True}] * 2
    rows += [{"architecture": "joint", "cert_inside": None, "cert_kernel_holds": None, "cert_rate_holds": None,
              "cert_safe_radius_holds": None}]  # diverged: no certificate, not counted
    table = pd.DataFrame(rows)
    counts = certified_counts(table, ["architecture"])
    assert counts[0] == {"architecture": "tied", "inside": 0, "runs": 3,
                         "fails": {"kernel": 0, "rate": 3, "safe_radius": 3}}
    assert counts[1]["inside"] == counts[1]["runs"] == 2
    text = certificate_sentence(table, ["architecture"])
    assert text[0] == ("Certificate, tied: inside the NTK regime in 0 of 3 runs (rate fails in 3; safe radius fails "
                       "in 3).")
    assert text[1] == "Certificate, joint: inside the NTK regime in 2 of 2 runs (every invariant holds)."
