"""The batched engine: every network of a batch trains exactly as it does alone."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aedyn.data import sphere
from aedyn.errors import AedynError
from aedyn.gd import train, train_batch
from aedyn.linalg import lanczos_extremes, lanczos_extremes_batch
from aedyn.model import REGIMES, Params, gradients, init_params, loss, trained_layers
from aedyn.ntk import NTKOperator, ntk_lambda_max_batch

N, D, M = 6, 4, 24
RTOL = 1e-10  # batched GEMMs round differently from unbatched ones: a few ulps per step, far below this


def stack(nets: list[Params]) -> Params:
    V = None if nets[0].V is None else torch.stack([p.V for p in nets])
    return Params(torch.stack([p.W for p in nets]), V, nets[0].alpha)


def nets(regime: str, seeds, **kw) -> list[Params]:
    return [init_params(D, M, regime=regime, seed=s, **kw) for s in seeds]


def assert_same_run(batched, alone) -> None:
    """Status, steps, step sizes, loss curve, every metric and the final parameters agree."""
    assert batched.status == alone.status and batched.steps == alone.steps, (batched.message, alone.message)
    np.testing.assert_allclose(batched.loss, alone.loss, rtol=RTOL, atol=0)
    assert batched.lr == pytest.approx(alone.lr, rel=RTOL)
    if alone.lambda_max is not None:
        assert batched.lambda_max == pytest.approx(alone.lambda_max, rel=RTOL)
    assert batched.metrics.keys() == alone.metrics.keys()
    for name, values in alone.metrics.items():
        np.testing.assert_allclose(batched.metrics[name], values, rtol=RTOL, atol=1e-300, equal_nan=True,
                                   err_msg=name)
    torch.testing.assert_close(batched.params.W, alone.params.W, rtol=RTOL, atol=1e-300)
    if alone.params.V is not None:
        torch.testing.assert_close(batched.params.V, alone.params.V, rtol=RTOL, atol=1e-300)
    assert batched.message == alone.message or batched.status != "converged"


@pytest.mark.parametrize("regime", REGIMES)
def test_each_network_of_a_batch_trains_as_it_does_alone(regime):
    """lr='auto' (one batched Lanczos), shared X, networks stopping at different steps, a delayed
    host look (sync_every) and compaction: each network equals train() on it alone."""
    X = sphere(N, D, seed=3)
    ps = nets(regime, range(4), kappa=1.0)
    out = train_batch(X, stack(ps), regime, steps=400, target=1e-4, record_every=7, sync_every=5)
    alone = [train(X, p, regime, steps=400, target=1e-4, record_every=7) for p in ps]
    assert len({r.steps for r in alone}) > 1, "the test needs networks that stop at different steps"
    for b, a in zip(out, alone, strict=True):
        assert_same_run(b, a)
        assert b.config["batch_size"] == 4 and b.config["lr"] == "auto"


@pytest.mark.parametrize("regime", ["joint", "weak", "tied"])
def test_a_diverging_network_and_per_network_data_and_steps(regime):
    """Per-network X (B x n x d) and per-network step sizes; one network diverges at once, one is
    slow (so the others stop first and the batch is compacted around it)."""
    X = torch.stack([sphere(N, D, seed=s) for s in range(4)])
    ps = nets(regime, range(10, 14))
    lr = np.array([0.3, 0.3, 50.0, 0.02])
    out = train_batch(X, stack(ps), regime, lr=lr, steps=300, target=1e-3, record_every=4)
    alone = [train(X[b], ps[b], regime, lr=float(lr[b]), steps=300, target=1e-3, record_every=4) for b in range(4)]
    assert alone[2].status == "diverged" and {a.status for a in alone} - {"diverged"}
    for b, a in zip(out, alone, strict=True):
        assert_same_run(b, a)
    assert "diverged" in out[2].message and "--lr" in out[2].message


def test_separate_decoder_steps_per_network():
    X = sphere(N, D, seed=1)
    ps = nets("joint", range(3))
    lr, lr_v = np.array([0.2, 0.1, 0.15]), np.array([0.05, 0.2, 0.1])
    out = train_batch(X, stack(ps), "joint", lr=lr, lr_decoder=torch.tensor(lr_v), steps=150, target=1e-3)
    for b, p in enumerate(ps):
        a = train(X, p, "joint", lr=float(lr[b]), lr_decoder=float(lr_v[b]), steps=150, target=1e-3)
        assert_same_run(out[b], a)
        assert out[b].lr_decoder == pytest.approx(lr_v[b])


def test_ntk_metrics_are_recorded_for_every_network():
    X = sphere(N, D, seed=2)
    ps = nets("joint", range(3))
    out = train_batch(X, stack(ps), "joint", lr=np.array([0.3, 0.25, 0.05]), steps=60, target=1e-3, ntk_every=9)
    for b, p in enumerate(ps):
        a = train(X, p, "joint", lr=out[b].lr, steps=60, target=1e-3, ntk_every=9)
        assert_same_run(out[b], a)
        assert len(out[b].metrics["ntk_step"]) >= 2 and out[b].metrics["ntk_step"][-1] == out[b].steps


def plain_descent(X, p, regime, eta, *, steps, target, record_every=5, divergence_factor=1e3):
    """The rule of docs/math/model.md as a plain loop, independent of the engine: theta <- theta - eta grad with
    model.gradients; stop at the first k with L(k) not finite or > divergence_factor L(0)
    (diverged), or L(k) <= target L(0) (converged), comparing Python floats; metrics at every
    record_every-th step and at the stop."""
    dec = trained_layers(regime)[1]
    W, V = p.W.clone(), None if p.V is None else p.V.clone()
    D0 = X @ p.W.mT > 0
    losses, rec, status = [], {"step": [], "weight_distance_W": [], "weight_distance_V": [], "pattern_flips": []}, None
    for k in range(steps + 1):
        q = Params(W, V, p.alpha)
        losses.append(float(loss(q, X, regime)))
        if not math.isfinite(losses[k]) or losses[k] > divergence_factor * losses[0]:
            status = "diverged"
        elif losses[k] <= target * losses[0]:
            status = "converged"
        if k % record_every == 0 or status or k == steps:
            rec["step"].append(k)
            rec["weight_distance_W"].append(float((W - p.W).norm()))
            rec["weight_distance_V"].append(float((V - p.V).norm()) if dec else math.nan)
            rec["pattern_flips"].append(float(((X @ W.mT > 0) != D0).double().mean()))
        if status or k == steps:
            break
        g = gradients(q, X, regime)
        W = W if g.W is None else W - eta * g.W
        V = V if g.V is None else V - eta * g.V
    return status or "max_steps", k, np.array(losses), {name: np.array(v) for name, v in rec.items()}, W, V


CASES = {"converged": (0.3, 0.2), "max_steps": (0.02, 1e-9), "diverged": (40.0, 0.2)}  # status: (eta, target)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("regime", REGIMES)
def test_the_engine_equals_a_plain_gradient_descent_loop(regime, dtype):
    """Status, stopping step, loss curve, recorded steps, movement, flips and final parameters of
    every network of a batch (three cases side by side, so they stop at different steps and the
    batch is compacted) against the plain loop, in float64 and float32."""
    rtol = 1e-10 if dtype == "float64" else 1e-4
    X = sphere(N, D, seed=6).to(getattr(torch, dtype))
    ps = [init_params(D, M, regime=regime, seed=s, dtype=dtype) for s in range(len(CASES))]
    etas = [eta for eta, _ in CASES.values()]
    for target in sorted({t for _, t in CASES.values()}):
        out = train_batch(X, stack(ps), regime, lr=np.array(etas), steps=120, target=target, record_every=5)
        for r, p, (case, (eta, t)) in zip(out, ps, CASES.items(), strict=True):
            if t != target:
                continue
            status, k, losses, rec, W, V = plain_descent(X, p, regime, eta, steps=120, target=target)
            assert status == case, f"the {case} case does not test what it says: {status}"
            assert (r.status, r.steps) == (status, k), case
            np.testing.assert_allclose(r.loss, losses, rtol=rtol, err_msg=case)
            np.testing.assert_array_equal(r.metrics["step"], rec["step"])
            for name, values in rec.items():
                if name in r.metrics and name != "step" and status != "diverged":
                    np.testing.assert_allclose(r.metrics[name], values, rtol=max(rtol, 1e-12) * 100, atol=1e-12,
                                               err_msg=f"{case}: {name}")
            if status != "diverged":
                for mine, plain in ((r.params.W, W), (r.params.V, V)):
                    if plain is not None:
                        torch.testing.assert_close(mine, plain, rtol=rtol * 100,
                                                   atol=1e-12 if dtype == "float64" else 1e-5)


def test_progress_reports_are_unique_and_increasing():
    X = sphere(N, D, seed=0)
    for sync_every in (1, 7, 64):
        seen: list[int] = []
        out = train_batch(X, stack(nets("joint", range(3))), "joint", lr=np.array([0.3, 0.2, 0.1]), steps=400,
                          target=1e-4, sync_every=sync_every, callback=lambda k, losses, seen=seen: seen.append(k))
        assert seen == sorted(set(seen)) and seen[0] == 0 and seen[-1] == max(r.steps for r in out), seen


@pytest.mark.parametrize("sync_every", [1, 3, 64])
def test_the_stopping_step_does_not_depend_on_when_the_host_looks(sync_every):
    """The stop rule runs on the device: looking every step or every 64 gives the same stopping
    steps and statuses, and the same runs to rounding. Not bit for bit on every CPU: stopped
    networks are dropped from the batch at the host's looks, so the batch shrinks at different
    steps (here the last network runs its final 19 steps alone with sync_every = 1, in a batch of
    two with 64), and a batch of one takes another GEMM layout for the shared-X encoder gradient
    (and BLAS may pick other kernels for other batch sizes). Bitwise equal on some CPUs; with
    ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE (other kernels) the loss differs by 2e-14
    relative. RTOL (1e-10) still catches a frozen network that takes one step too many or too few
    (a 2-4% change of its last loss here)."""
    X = sphere(N, D, seed=4)
    ps = stack(nets("joint", range(5)))
    ref = train_batch(X, ps, "joint", lr=0.2, steps=500, target=1e-5, sync_every=1)
    out = train_batch(X, ps, "joint", lr=0.2, steps=500, target=1e-5, sync_every=sync_every)
    assert len({r.steps for r in ref}) > 1
    for a, b in zip(ref, out, strict=True):
        assert a.steps == b.steps and a.status == b.status
        np.testing.assert_allclose(b.loss, a.loss, rtol=RTOL, atol=0)
        for mine, ref_param in ((b.params.W, a.params.W), (b.params.V, a.params.V)):  # rounding scales with the layer
            torch.testing.assert_close(mine, ref_param, rtol=RTOL, atol=RTOL * float(ref_param.abs().max()))


def test_callback_sees_each_networks_latest_loss():
    X = sphere(N, D, seed=0)
    seen = []
    train_batch(X, stack(nets("weak", range(2))), "weak", lr=0.2, steps=20, target=0.0, sync_every=4,
                callback=lambda k, losses: seen.append((k, losses.copy())))
    steps = [k for k, _ in seen]
    assert steps[:3] == [0, 4, 8] and steps[-1] == 20 and all(v.shape == (2,) for _, v in seen)


def test_inputs_are_not_modified():
    X = sphere(N, D, seed=0)
    ps = stack(nets("joint", range(2)))
    W, V = ps.W.clone(), ps.V.clone()
    train_batch(X, ps, "joint", lr=0.3, steps=10)
    assert torch.equal(ps.W, W) and torch.equal(ps.V, V)


@pytest.mark.parametrize("call, words", [
    (lambda X, p: train_batch(X, Params(p.W[0], p.V[0], p.alpha), "joint"), "batch dimension"),
    (lambda X, p: train_batch(X, Params(p.W[:0], p.V[:0], p.alpha), "joint"), "non-empty batch"),
    (lambda X, p: train_batch(torch.stack([X] * 3), p, "joint"), "B = 2"),
    (lambda X, p: train_batch(X, p, "joint", lr=[0.1, 0.2, 0.3]), "one per network"),
    (lambda X, p: train_batch(X, p, "joint", lr=np.array([0.1, -1.0])), "lr"),
    (lambda X, p: train_batch(X, p, "joint", lr="fast"), "lr"),
    (lambda X, p: train_batch(X, p, "joint", lr=np.array([0.1, np.nan])), "lr"),
    (lambda X, p: train_batch(X, p, "joint", lr=torch.tensor([0.1, np.inf])), "lr"),
    (lambda X, p: train_batch(X, p, "joint", lr=np.array([[0.1, 0.2]])), "one per network"),
    (lambda X, p: train_batch(X, p, "joint", lr=["a", "b"]), "one per network"),
    (lambda X, p: train_batch(X, p, "joint", lr=[[0.1], [0.2, 0.3]]), "lr"),
    (lambda X, p: train_batch(X, p, "joint", lr=np.array([0.1 + 1j, 0.2])), "one per network"),
    (lambda X, p: train_batch(X, p, "joint", lr=np.array([True, True])), "one per network"),
    (lambda X, p: train_batch(X, p, "joint", lr=np.array([None, None])), "one per network"),
    (lambda X, p: train_batch(X, p, "weak", lr_decoder=0.1), "lr_decoder"),
    (lambda X, p: train(X, Params(p.W, p.V, p.alpha), "joint"), "train_batch"),
    (lambda X, p: train(X, Params(p.W[0], p.V[0], p.alpha), "joint", lr=np.array([0.1])), "lr"),
])
def test_bad_batches_are_refused_with_one_line(call, words):
    X = sphere(N, D, seed=0)
    p = stack(nets("joint", range(2)))
    with pytest.raises(AedynError, match=words) as info:
        call(X, p)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------------------------
# the batched eigensolver behind lr="auto"


def spd(eigs: torch.Tensor, seed: int) -> torch.Tensor:
    Q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.float64))
    return Q @ torch.diag(eigs) @ Q.T


def test_batched_lanczos_equals_one_at_a_time_and_eigvalsh():
    """Three operators: a well-separated spectrum, a clustered one, and a rank-3 one whose Krylov
    space (3 eigenvectors and the start's null-space part) is invariant after 4 steps; it is carried
    along frozen while the others go on."""
    dim = 120
    mats = [spd(torch.cat([torch.linspace(0.1, 1, dim - 1), torch.tensor([4.0])]).double(), 0),
            spd(torch.linspace(1.0, 1.2, dim).double(), 1),
            spd(torch.cat([torch.tensor([1.0, 2.0, 3.0]), torch.zeros(dim - 3)]).double(), 2)]
    A = torch.stack(mats)
    out = lanczos_extremes_batch(lambda V: (A @ V[..., None])[..., 0], 3, dim, dtype=torch.float64, tol=1e-10)
    for b, M in enumerate(mats):
        alone = lanczos_extremes(lambda v, M=M: M @ v, dim, dtype=torch.float64, tol=1e-10)
        ref = torch.linalg.eigvalsh(M)
        assert out[b].converged
        if b < 2:  # stopped by tol at a check (every 5 steps; the residual bounds pass it by a factor 1.8 or more)
            assert out[b].iterations == alone.iterations
        else:
            # stopped on the invariant subspace: after step 4 the new Lanczos vector is pure rounding, measured
            # at 1.6-1.8x the invariance threshold eps ||T|| sqrt(dim) (batched and alone, on several kernel
            # paths), and at 0.01-0.02x after step 5; so a CPU's rounding may end it at step 4 or 5, and the
            # batched run and the run alone need not agree on which
            assert {out[b].iterations, alone.iterations} <= {4, 5} and alone.error_max == 0.0
        assert out[b].max == pytest.approx(alone.max, rel=1e-12) == pytest.approx(float(ref[-1]), rel=1e-9)
        assert out[b].min == pytest.approx(alone.min, rel=1e-12, abs=1e-12)
    assert out[2].iterations <= 5 < out[1].iterations and out[2].error_max == 0.0  # stopped on the invariant subspace


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("shared", [True, False])
def test_batched_ntk_lambda_max_equals_each_operator(regime, shared):
    d, n = 5, 16  # n d = 80 > DENSE_DIM: the Lanczos path
    X = sphere(n, d, seed=5) if shared else torch.stack([sphere(n, d, seed=s) for s in range(3)])
    ps = [init_params(d, 40, regime=regime, seed=s) for s in range(3)]
    ext = ntk_lambda_max_batch(stack(ps), X, regime, tol=1e-10)
    for b, p in enumerate(ps):
        ref = NTKOperator(p, X if shared else X[b], regime).extremes(which="max", tol=1e-10).max
        assert ext[b].max == pytest.approx(ref, rel=1e-8)


def _workspace_modes(monkeypatch, mode: str) -> None:
    """Make the engine's workspace evaluate network by network in blocks of 4 samples (the CPU path,
    blocks forced small so that every network is split), or as one batch (the GPU path, here on the
    CPU)."""
    import functools

    from aedyn import gd, model

    options = {"block": 4, "batched": False} if mode == "blocks" else {"batched": True}
    monkeypatch.setattr(gd, "Workspace", functools.partial(model.Workspace, **options))


@pytest.mark.parametrize("mode", ["blocks", "batched"])
@pytest.mark.parametrize("regime", REGIMES)
def test_every_workspace_path_equals_the_plain_loop(regime, mode, monkeypatch):
    """The engine's evaluation in blocks of samples (the CPU path with the sums over samples split)
    and as one batched computation (the GPU path) give the plain loop's runs: three networks
    stopping at different steps, so the batch also shrinks (float64, the same tolerance as above)."""
    _workspace_modes(monkeypatch, mode)
    X = sphere(N + 3, D, seed=6)  # 9 samples: blocks of 4, 4 and 1
    ps = [init_params(D, M, regime=regime, seed=s) for s in range(len(CASES))]
    etas = [eta for eta, _ in CASES.values()]
    out = train_batch(X, stack(ps), regime, lr=np.array(etas), steps=120, target=0.2, record_every=5)
    for r, p, (case, (eta, _)) in zip(out, ps, CASES.items(), strict=True):
        status, k, losses, rec, W, V = plain_descent(X, p, regime, eta, steps=120, target=0.2)
        assert (r.status, r.steps) == (status, k), case
        np.testing.assert_allclose(r.loss, losses, rtol=1e-10, err_msg=case)
        if status != "diverged":
            for name in ("weight_change_W", "weight_change_V", "pattern_flips"):
                if name in rec and name in r.metrics:
                    np.testing.assert_allclose(r.metrics[name], rec[name], rtol=1e-9, atol=1e-12)
            for mine, plain in ((r.params.W, W), (r.params.V, V)):
                if plain is not None:
                    torch.testing.assert_close(mine, plain, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("regime", REGIMES)
def test_a_workspace_evaluation_equals_the_plain_one_and_gives_safe_radii(regime):
    """Loss, residual, features and both gradients from the workspace (network by network, in blocks
    of 4 of 9 samples) equal the plain evaluation; the safe radii from step 0's pre-activations
    equal safe_radius; features are None unless asked for; a shrunken batch uses the leading rows."""
    from aedyn.model import Workspace, evaluate, safe_radius

    X = sphere(9, D, seed=2)
    P = stack(nets(regime, range(3)))
    plain = evaluate(P, X, regime)
    for ws in (Workspace(P, X, regime, block=4, batched=False), Workspace(P, X, regime, block=9, batched=False),
               Workspace(P, X, regime, batched=True), Workspace(P, X, regime)):
        got = evaluate(P, X, regime, workspace=ws, with_radius=True)
        torch.testing.assert_close(got.loss, plain.loss, rtol=1e-12, atol=0)
        torch.testing.assert_close(got.residual, plain.residual, rtol=1e-12, atol=1e-15)
        assert torch.equal(got.features.D, plain.features.D)
        for mine, ref in zip(got.grads, plain.grads, strict=True):
            assert (mine is None) == (ref is None)
            if ref is not None:
                torch.testing.assert_close(mine, ref, rtol=1e-12, atol=1e-15)
        if trained_layers(regime)[0]:
            torch.testing.assert_close(got.radius, safe_radius(P, X), rtol=1e-12, atol=0)
        assert evaluate(P, X, regime, workspace=ws, with_features=False).features is None
        two = Params(P.W[:2], None if P.V is None else P.V[:2], P.alpha)
        torch.testing.assert_close(evaluate(two, X, regime, workspace=ws).loss, plain.loss[:2], rtol=1e-12, atol=0)


def test_plain_steps_are_those_that_neither_record_nor_look():
    from aedyn.gd import plain_steps

    # record every 10, NTK every 25, look every 8: from step 1, steps 1..7 are plain (8 is a look)
    assert plain_steps(1, 100, 10, 25, 8) == 7
    assert plain_steps(9, 100, 10, 25, 8) == 1 and plain_steps(10, 100, 10, 25, 8) == 0  # 10 records
    assert plain_steps(11, 100, 10, 25, 8) == 5  # 16 is a look
    assert plain_steps(21, 100, 10, 25, 8) == 3 and plain_steps(25, 100, 10, 25, 8) == 0  # 24 looks, 25 checks
    assert plain_steps(97, 100, 10, None, 8) == 3  # the last step (100) is never plain
    assert plain_steps(1, 1000, 1001, None, 32) == 31  # E2's search on a GPU: 31 plain steps per look
    brute = [k for k in range(0, 200) if k < 200 and k % 7 and k % 12 and k % 30]
    for start in range(200):
        run = 0
        while start + run in brute:
            run += 1
        assert plain_steps(start, 200, 7, 30, 12) == run


@pytest.mark.parametrize("regime", REGIMES)
def test_runs_taken_in_segments_equal_runs_taken_step_by_step(regime, monkeypatch):
    """The GPU's path through the loop (plain steps between looks run as segments; on CUDA each is one
    captured graph, elsewhere the same kernels eagerly), forced on here on the CPU with a look every
    8 steps: every network's run equals the step-by-step run (networks that stop, diverge and run to
    the budget, so the batch also shrinks mid-run and segments restart on the new tensors)."""
    from aedyn import gd

    X = sphere(N, D, seed=6)
    ps = [init_params(D, M, regime=regime, seed=s) for s in range(len(CASES))]
    etas = np.array([eta for eta, _ in CASES.values()])
    kw = dict(lr=etas, steps=120, target=0.2, record_every=10, ntk_every=25, sync_every=8)
    plain = train_batch(X, stack(ps), regime, **kw)
    calls = []
    real = gd._Segments.run

    def counted(self, length, batch, dtype):
        calls.append((length, batch))
        return real(self, length, batch, dtype)

    monkeypatch.setattr(gd, "use_segments", lambda device: True)
    monkeypatch.setattr(gd._Segments, "run", counted)
    segmented = train_batch(X, stack(ps), regime, **kw)
    assert calls and max(length for length, _ in calls) == 7 and len({b for _, b in calls}) > 1
    for a, b in zip(segmented, plain, strict=True):
        assert (a.status, a.steps) == (b.status, b.steps)
        np.testing.assert_array_equal(a.loss, b.loss)  # the same kernels in the same order: the same numbers
        for name in b.metrics:
            np.testing.assert_array_equal(a.metrics[name], b.metrics[name], err_msg=name)
        assert torch.equal(a.params.W, b.params.W)


def test_the_workspace_picks_its_path_by_device_and_size():
    from aedyn.model import ONE_BY_ONE_BYTES, Workspace

    small = stack(nets("joint", range(2)))
    assert not Workspace(small, sphere(N, D, seed=1), "joint").one_by_one  # n m = 144: batched
    m = ONE_BY_ONE_BYTES // (8 * 64) + 1
    big = stack([init_params(8, m, seed=s) for s in range(2)])
    ws = Workspace(big, sphere(64, 8, seed=1), "joint")
    assert ws.one_by_one and ws.block == 64  # one 64 x m slab of 1 MiB: no split below BLOCK_BYTES
    assert not Workspace(big, sphere(64, 8, seed=1), "joint", batched=True).one_by_one
