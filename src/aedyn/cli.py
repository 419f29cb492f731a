"""The ``aedyn`` command line. Thin: it parses, calls the library, prints.

Exit codes: 0 a run that converged or spent its step budget; 2 bad input or an impossible
request (one line, no traceback: the problem and the fix); 3 a diverged run; 4 a sweep some of
whose runs failed (the others are stored; rerunning resumes them, unless they were refused for
memory: the last line says what to change); 1 an internal error (one line;
``--debug`` shows the traceback); 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
Outputs are checked before any work and written atomically (:mod:`aedyn.files`): a failed or
interrupted command leaves no output file behind.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.main import get_command

from aedyn._check import check_choice, check_count
from aedyn._meta import aedyn_version
from aedyn._names import (
    CRITERIA,
    DECODER_INITS,
    DEVICES,
    DTYPE_NAMES,
    EXECUTORS,
    EXPERIMENT_NAMES,
    INIT_SCALES,
    PROFILES,
    REGIMES,
    SOURCES,
    STEP_RULES,
)
from aedyn.errors import AedynError, AedynWarning, is_out_of_memory
from aedyn.files import OutputExistsError, check_outputs, free_sibling, write_json
from aedyn.resources import parse_size

if TYPE_CHECKING:  # the modules that load torch are imported inside the commands that need them
    from aedyn.gd import TrainResult
    from aedyn.job import TrainJob
    from aedyn.limit import RatePrediction

EXIT_INTERNAL = 1
EXIT_RUNS_FAILED = 4
EXIT_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Gradient-descent dynamics of over-parameterised two-layer ReLU autoencoders.")
out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    """``--version``."""
    if value:
        out.print(f"aedyn {aedyn_version()}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """aedyn: exact GD, neural tangent kernels and NTK-limit predictions for the paper's autoencoder."""


def _parse_lr(value: str, flag: str, *, allow_auto: bool = True) -> float | str:
    if allow_auto and value == "auto":
        return value
    try:
        lr = float(value)
    except ValueError:
        raise AedynError(f"{flag} must be {'auto or ' if allow_auto else ''}a positive number; got {value!r}") from None
    if not 0 < lr < float("inf"):
        raise AedynError(f"{flag} must be a positive number; got {value}")
    return lr


def _parse_classes(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(c) for c in value.split(",") if c.strip())
    except ValueError:
        raise AedynError(f"--classes takes digits separated by commas, e.g. --classes 0,1,7; got {value!r}") from None


def _choices(*values: str) -> str:
    """An option's metavar listing the values it takes, e.g. ``[weak|joint|decoder|tied]``."""
    return f"[{'|'.join(values)}]"


RegimeOpt = Annotated[str, typer.Option(metavar=_choices(*REGIMES),
                                        help="Which layers train: the encoder (weak), both (joint), the decoder "
                                             "(decoder) or one matrix, V = W^T (tied).")]
ThresholdRegimeOpt = Annotated[str, typer.Option(metavar=_choices(*(r for r in REGIMES if r != "tied")),
                                                 help="Which layers train: the encoder (weak), both (joint) or the "
                                                      "decoder (decoder); tied has no infinite-width kernel for the "
                                                      "step budget.")]
DataOpt = Annotated[str, typer.Option(metavar=_choices(*SOURCES, "FILE"),
                                      help="An embedded data set, or a .npy/.npz/.csv/MNIST IDX file.")]
NOpt = Annotated[int | None, typer.Option(help="Number of samples (digits/files: a seeded random subset).")]
DOpt = Annotated[int | None, typer.Option(help="Input dimension (sphere).")]
ClassesOpt = Annotated[str | None, typer.Option(help="Digits only: keep these labels, e.g. 0,1.")]
KeyOpt = Annotated[str | None, typer.Option(help="Array name inside an .npz file.")]
NormalizeOpt = Annotated[bool, typer.Option("--normalize/--no-normalize",
                                            help="Scale rows to unit norm (default) or refuse non-unit rows.")]
KappaOpt = Annotated[float, typer.Option(help="Encoder init: w_r ~ N(0, kappa^2 I).")]
NuOpt = Annotated[float, typer.Option(help="Decoder init scale.")]
DecoderInitOpt = Annotated[str, typer.Option(metavar=_choices(*DECODER_INITS),
                                             help="The distribution of the decoder's initial entries.")]
SeedOpt = Annotated[int, typer.Option(help="Seeds the initialisation (and the data draw unless --data-seed).")]
DataSeedOpt = Annotated[int | None, typer.Option(help="Seeds the data draw (sphere samples, subsets); default: --seed. "
                                                      "The two feed independent random streams.")]
MaxMemoryOpt = Annotated[str | None, typer.Option(help="Refuse jobs estimated to need more, e.g. 8GB (default: the "
                                                       "memory available now).")]
DeviceOpt = Annotated[str, typer.Option(metavar=_choices(*DEVICES, "cuda:N"),
                                        help="Where to compute (auto: a GPU when one is visible).")]
DtypeOpt = Annotated[str, typer.Option(metavar=_choices(*DTYPE_NAMES), help="Floating-point precision.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write the JSON record here.")]
ForceOpt = Annotated[bool, typer.Option(help="Replace output files that exist.")]

def _executor(scheduler: str | None, workers: int | None) -> str:
    """The executor that --scheduler or --workers imply: dask with either, else local."""
    return "dask" if scheduler is not None or workers is not None else "local"


SchedulerOpt = Annotated[str | None, typer.Option(help="Dask: join the cluster at tcp://HOST:PORT.")]
WorkersOpt = Annotated[int | None, typer.Option(help="Dask: start N single-threaded worker processes here.")]


@app.command()
def train(
    regime: RegimeOpt = "joint",
    data: DataOpt = "digits",
    n: NOpt = None,
    d: DOpt = None,
    classes: ClassesOpt = None,
    key: KeyOpt = None,
    normalize: NormalizeOpt = True,
    width: Annotated[int, typer.Option("--width", "-m", help="Hidden width m.")] = 1024,
    kappa: KappaOpt = 1.0,
    nu: NuOpt = 1.0,
    decoder_init: DecoderInitOpt = "gaussian",
    init_scale: Annotated[str, typer.Option(metavar=_choices(*INIT_SCALES, "NUMBER"),
                                            help="Output scale alpha: ntk (1/sqrt(m)), mean-field (1/m) "
                                                 "or a number.")] = "ntk",
    seed: SeedOpt = 0,
    data_seed: DataSeedOpt = None,
    lr: Annotated[str, typer.Option(metavar=_choices("auto", "NUMBER"),
                                    help="Step size, or auto = 1/lambda_max of the finite-width NTK.")] = "auto",
    lr_decoder: Annotated[str | None, typer.Option(help="Separate decoder step size (joint, decoder).")] = None,
    steps: Annotated[int, typer.Option(help="Step budget.")] = 5000,
    target: Annotated[float, typer.Option(help="Stop at this fraction of the initial loss.")] = 1e-6,
    record_every: Annotated[int, typer.Option(help="Record weight movement and pattern flips every k steps.")] = 10,
    ntk_every: Annotated[int | None, typer.Option(help="Record the NTK's extremes and drift every k steps.")] = None,
    certify: Annotated[bool, typer.Option("--certify", help="Check the invariants the convergence proofs rely on "
                                          "along the run (the NTK every --ntk-every steps, default 50 times "
                                          "across the budget).")] = False,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float64",
    out_path: OutOpt = None,
    save_params: Annotated[Path | None, typer.Option(help="Write final parameters (.npz) here.")] = None,
    force: ForceOpt = False,
    max_memory: MaxMemoryOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train one autoencoder by full-batch gradient descent and summarise the run."""
    from aedyn.job import Notes, TrainJob
    from aedyn.limit import predicted_rates

    job = TrainJob(
        regime=check_choice(regime, REGIMES, "--regime"), data=data, n=n, d=d, classes=_parse_classes(classes),
        key=key, normalize=normalize, width=width, kappa=kappa, nu=nu,
        decoder_init=check_choice(decoder_init, DECODER_INITS, "--decoder-init"), init_scale=init_scale, seed=seed,
        data_seed=data_seed, lr=_parse_lr(lr, "--lr"),
        lr_decoder=None if lr_decoder is None else _parse_lr(lr_decoder, "--lr-decoder", allow_auto=False),
        steps=steps, target=target, record_every=record_every, ntk_every=ntk_every, certify=certify, device=device,
        dtype=dtype)
    outputs = check_outputs({"--out": out_path, "--save-params": save_params}, force=force,
                            inputs={"--data": job.data_path})
    result = _run_with_progress(job, quiet, None if max_memory is None else parse_size(max_memory))
    written = []
    if out_path is not None:
        written.append(("record", _save(lambda p, f: result.save(p, force=f), outputs["--out"], force)))
    if save_params is not None and result.params is not None:
        params = result.params.to(device="cpu")
        written.append(("parameters", _save(lambda p, f: params.save(p, force=f), outputs["--save-params"], force)))
    prediction = None if result.status == "diverged" else predicted_rates(result, job.load(Notes()), kappa=job.kappa,
                                                                            nu=job.nu)
    _print_summary(result, written, prediction, certify)
    if result.status == "diverged":
        raise typer.Exit(EXIT_DIVERGED)


def note(message: str) -> None:
    err.print(f"[yellow]note:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _save(write: Callable[[Path, bool], Path], path: Path, force: bool) -> Path:
    """Write a finished result to ``path``; if that path appeared while the job ran, keep the
    result under the next free name and say so rather than lose it."""
    try:
        return write(path, force)
    except OutputExistsError:
        pass
    while True:  # another process may take each free name as we try it: keep going, never lose the result
        other = free_sibling(path)
        try:
            written = write(other, False)
        except OutputExistsError:
            continue
        note(f"{path} appeared while this ran and was left alone; wrote {other} instead")
        return written


def _run_with_progress(job: TrainJob, quiet: bool, max_memory: int | None) -> TrainResult:
    from aedyn.job import run_job

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[rel]}"), TimeElapsedColumn(),
                        console=err, transient=True, disable=quiet)
    with progress:
        task = progress.add_task("estimating eta" if job.lr == "auto" else "training", total=job.steps + 1,
                                 rel="-")
        state: dict[str, Any] = {}

        def callback(k: int, loss: float) -> None:
            if k == 0:
                state["L0"] = loss
                progress.update(task, description="training")
            progress.update(task, completed=k + 1, rel=f"{loss / state['L0']:.2e} x initial")

        return run_job(job, callback=callback, on_note=note, max_memory=max_memory)


def _print_summary(result: TrainResult, written: list[tuple[str, Path]], prediction: RatePrediction | None = None,
                   certify: bool = False) -> None:
    s = result.summary()
    colour = {"converged": "green", "max_steps": "yellow", "diverged": "red"}[result.status]
    job, notes = result.config.get("job", {}), result.config.get("notes", [])
    data = f"{escape(str(job.get('data', 'data')))}: n = {result.config['n']}, d = {result.config['d']}"
    data += "".join(f"; {escape(text.split(';')[0])}" for text in notes)  # what happened to the data, briefly
    rows = [("data", data),
            ("status", f"[{colour}]{result.status}[/] - {result.message}"),
            ("steps", str(result.steps)),
            ("final loss", f"{s['final_relative_loss']:.3e} x initial ({result.loss[-1]:.3e})")]
    eta = f"{result.lr:.4g}"
    if result.lambda_max is not None:
        eta += f" (auto: 1/lambda_max of the NTK at init, lambda_max = {result.lambda_max:.4g})"
    if result.lr_decoder is not None and result.lr_decoder != result.lr:
        eta += f"; decoder {result.lr_decoder:.4g}"
    rows.append(("eta", eta))
    fit = result.rate_fit
    floor = "" if fit is None or fit.floor_step is None else (
        f"; the loss reached the {result.config.get('dtype', 'float64')} rounding floor at step {fit.floor_step}, "
        "later steps are not fitted")
    rows.append(("rate", "-" if fit is None else
                 f"{fit.rate:.6f} per step (loss contraction; log-linear fit over steps {fit.start}-{fit.stop}, "
                 f"R^2 = {fit.r2:.4f}{floor})"))
    if prediction is not None:
        parts = [f"{value:.6f} {label}" if value is not None else f"no {label} ({prediction.why.get(key, '-')})"
                 for key, value, label in (("finite", prediction.finite, "finite width (averaged Theta(0))"),
                                           ("infinite", prediction.infinite, "infinite width"))]
        rows.append(("predicted", "; ".join(parts) + " (linearised GD from this run's R(0), fitted over the same "
                                                     "steps)"))
    moved = []
    for L in "WV":
        if f"weight_change_{L}" not in s:
            continue
        rel, dist = s[f"weight_change_{L}"], s[f"weight_distance_{L}"]
        moved.append(f"||{L}-{L}0||/||{L}0|| = {rel:.3e}" if rel == rel else
                     f"||{L}-{L}0||/||{L}0|| undefined ({L}0 = 0), ||{L}-{L}0|| = {dist:.3e}")
    rows.append(("movement", ", ".join(moved)))
    neuron = [f"max_r ||{c}_r-{c}_r(0)|| = {s[f'max_neuron_change_{L}']:.3e}"
              for L, c in (("W", "w"), ("V", "v")) if f"max_neuron_change_{L}" in s]
    rows.append(("per neuron", ", ".join(neuron)))
    if "pattern_flips" in s:
        rows.append(("flips", f"{100 * s['pattern_flips']:.3f}% of activation patterns 1{{w_r . x_i > 0}}"))
    if "ntk_drift" in s:
        rows.append(("NTK", f"lambda_min {s['ntk_lambda_min']:.4g}, lambda_max {s['ntk_lambda_max']:.4g}, "
                            f"drift ||Theta(t)-Theta(0)||/||Theta(0)|| = {s['ntk_drift']:.3e} "
                            f"({result.config.get('ntk_drift_method')})"))
    if certify:
        cert = result.certificate
        if cert is None:
            rows.append(("certificate", "[red]not computed[/]: the run diverged, outside any regime the proofs "
                                        "describe"))
        else:
            for i, check in enumerate(cert.checks):
                held = "[green]holds[/]" if check.holds else "[red]FAILS[/]"
                text = (f"{check.name}: [yellow]not checked[/] (no step taken)" if cert.vacuous
                        else f"{escape(check.line.rpartition(': ')[0])}: {held}")
                rows.append(("certificate" if i == 0 else "", text))
            colour = "yellow" if cert.vacuous else "green" if cert.inside else "red"
            rows.append(("", f"[{colour}]{escape(cert.verdict)}[/]"))
    rows.append(("wall time", f"{result.wall_time:.2f} s"))
    rows += [("wrote", f"{what} to {path}") for what, path in written]
    _print_rows(rows)


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        out.print(f"{k:<{width}}  {v}", highlight=False, soft_wrap=True)


@app.command()
def kernel(
    regime: RegimeOpt = "joint",
    data: DataOpt = "digits",
    n: NOpt = None,
    d: DOpt = None,
    classes: ClassesOpt = None,
    key: KeyOpt = None,
    normalize: NormalizeOpt = True,
    width: Annotated[int | None, typer.Option("--width", "-m",
                                              help="Also the finite-width NTK of one random network "
                                                   "(tied: needed, it has no n x n limit).")] = None,
    kappa: KappaOpt = 1.0,
    nu: NuOpt = 1.0,
    decoder_init: DecoderInitOpt = "gaussian",
    seed: SeedOpt = 0,
    data_seed: DataSeedOpt = None,
    tol: Annotated[float, typer.Option(help="Relative accuracy of the finite-width eigenvalues, in (0, 1).")] = 1e-8,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float64",
    out_path: OutOpt = None,
    force: ForceOpt = False,
    max_memory: MaxMemoryOpt = None,
) -> None:
    """The NTK's spectrum: lambda_0 = lambda_min(K0), mu_0 = lambda_min(K1), the regime kernel, and
    with --width the finite-width NTK beside them (matrix-free, any n*d)."""
    from aedyn.job import KernelJob, run_kernel_job

    job = KernelJob(regime=check_choice(regime, REGIMES, "--regime"), data=data, n=n, d=d,
                    classes=_parse_classes(classes), key=key, normalize=normalize, width=width, kappa=kappa, nu=nu,
                    decoder_init=check_choice(decoder_init, DECODER_INITS, "--decoder-init"), seed=seed,
                    data_seed=data_seed, tol=tol, device=device, dtype=dtype)
    outputs = check_outputs({"--out": out_path}, force=force, inputs={"--data": job.data_path})
    with err.status("computing spectra", spinner="dots"):
        record = run_kernel_job(job, on_note=note, max_memory=None if max_memory is None else parse_size(max_memory))
    written = None
    if out_path is not None:
        written = _save(lambda p, f: write_json(p, record, force=f, flag="--out"), outputs["--out"], force)
    rows = [("data", f"{data}: n = {record['n']}, d = {record['d']} (nd = {record['n'] * record['d']})")]
    if "infinite" in record:
        inf = record["infinite"]
        rows += [("lambda_0", f"{inf['lambda_0']:.6g}   lambda_min(K0), K0 = E[(x.y) 1{{w.x>0}} 1{{w.y>0}}]"),
                 ("mu_0", f"{inf['mu_0']:.6g}   lambda_min(K1), K1 = E[relu(w.x) relu(w.y)]"),
                 (f"K_{regime}", f"lambda_min {inf['lambda_min']:.6g}, lambda_max {inf['lambda_max']:.6g}, "
                                 f"condition number {inf['condition_number']:.4g}  (infinite width; NTK = K ⊗ I_d)")]
    else:
        rows.append(("infinite", "the tied NTK's infinite-width limit couples output coordinates (not K ⊗ I_d); "
                                 "not computed here, finite width only"))
    if "finite" in record:
        fin = record["finite"]
        conv = "" if fin["converged"] else "  [not converged: raise --tol]"
        rows.append((f"Theta m={fin['width']}",
                     f"lambda_min {fin['lambda_min']:.6g}, lambda_max {fin['lambda_max']:.6g}, "
                     f"condition number {fin['condition_number']:.4g}{conv}"))
        if "gap" in record:
            g = {k: "n/a (singular infinite-width kernel)" if v is None else f"{100 * v:+.3f}%"
                 for k, v in record["gap"].items()}
            rows.append(("gap", f"lambda_min {g['lambda_min']}, lambda_max {g['lambda_max']} "
                                "(finite vs infinite width)"))
    rows.append(("wall time", f"{record['wall_time']:.2f} s"))
    if written is not None:
        rows.append(("wrote", f"record to {written}"))
    _print_rows([(k, escape(v)) for k, v in rows])


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="The sweep's TOML file: \\[grid] axes, \\[train] options, \\[sweep].",
                                           show_default=False)],
    out_path: Annotated[Path, typer.Option("--out", help="The store folder: created, or resumed if it holds this "
                                                         "sweep.", show_default=False)],
    executor: Annotated[str | None, typer.Option(metavar=_choices(*EXECUTORS),
                                                 help="This process (local, default) or Dask (dask).")] = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="Networks per batch at most (default: \\[sweep] "
                                                        "batch_size, or 64).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count runs, batches and finished runs, estimate the "
                                                             "time; write nothing.")] = False,
    force: Annotated[bool, typer.Option(help="Add this sweep's runs to a store of a different sweep.")] = False,
    max_memory: MaxMemoryOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run a grid of training runs declared in TOML into a results store; rerun to resume.

    Every list in \\[grid] (and in \\[train]) is an axis and the sweep is their product; keys are the
    options of 'aedyn train' (data_seed defaults to seed; d is dropped for digits and files)."""
    from aedyn import sweep as sweeps

    if executor is None:
        executor = _executor(scheduler, workers)
    executor = check_choice(executor, sweeps.EXECUTORS, "--executor")
    cfg = sweeps.load_config(config)
    if batch_size is not None:
        cfg = dataclasses.replace(cfg, batch_size=check_count(batch_size, "--batch-size"))
    limit = None if max_memory is None else parse_size(max_memory)
    title = escape(cfg.name or str(config))
    if dry_run:
        sweeps.check_executor(executor, scheduler, workers)
        counting = Progress(TextColumn("planning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=err, transient=True, disable=quiet)
        bars: list[Any] = []  # a bar only for a plan that takes a while

        def planned(done: int, total: int) -> None:
            if not bars:
                counting.start()
                bars.append(counting.add_task("plan", total=total))
            counting.update(bars[0], completed=done)

        try:
            p = sweeps.dry_run(cfg, out_path, workers=workers, progress=planned)
        finally:
            counting.stop()
        if not p.store_exists:
            parents = p.new_folders[:-1]
            missing = f"folder{'s' * (len(parents) > 1)} {', '.join(escape(repr(f)) for f in parents)}"
            stored = "does not exist yet" + (f": it would be made, with the missing {missing}" if parents else "")
        else:
            stored = f"{p.finished} of these runs finished (would be skipped)"
            if not p.same_config:
                stored += "; it holds a different sweep: refused unless --force"
        where = f" on {p.parallel} workers side by side" if p.parallel > 1 else ""
        _print_rows([("sweep", f"{title}: {p.runs} runs"),
                     ("store", f"{escape(str(out_path))} {stored}"),
                     ("to run", f"{p.to_run} runs in {p.batches} batches (at most {cfg.batch_size} networks each)"),
                     ("estimate", f"up to ~{_duration(p.estimate_s)}{where} if every run spends its step budget "
                                  "(a rough cost model; converged runs stop early)"),
                     ("dry run", "nothing trained, nothing written")])
        return

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                        TimeRemainingColumn(), console=err, transient=True, disable=quiet)
    tasks: list[Any] = []  # the bar appears with the first report, after the sweep is validated

    def show(p: Any) -> None:
        if not tasks:
            progress.start()
            tasks.append(progress.add_task("runs", total=None, rate=""))
        rate = f"{p.done / p.elapsed:.2f} runs/s" if p.done and p.elapsed > 0 else ""
        failed = f", {p.failed} failed" if p.failed else ""
        progress.update(tasks[0], total=p.total, completed=p.done + p.failed + p.stored_meanwhile + p.partial,
                        rate=rate + failed, description=f"batch {p.batches_done}/{p.batches}")

    try:
        result = sweeps.run_sweep(cfg, out_path, executor=executor, scheduler=scheduler, workers=workers,
                                  force=force, progress=show, on_note=note, max_memory=limit)
    finally:
        progress.stop()
    statuses = ", ".join(f"{v} {k}" for k, v in sorted(result.statuses.items(), key=lambda kv: -kv[1])) or "-"
    on = {"local": "this process", "dask": f"dask, {result.workers} local workers" if result.workers
          else f"dask at {escape(str(scheduler))}"}[executor]
    rows = [("sweep", f"{title}: {result.total} runs"),
            ("store", escape(str(result.store))),
            ("trained", f"{result.done} runs in {result.batches} batches ({on}); {result.skipped} already finished"),
            ("status", statuses),
            ("wall time", f"{result.wall_time:.2f} s")]
    if result.failed:
        rows.append(("failed", f"{result.failed} runs (not stored)"))
    _print_rows(rows)
    if result.failed:
        problems = []
        if result.refused:
            problems.append(f"{result.refused} of {result.total} runs were refused for memory (see the notes above) "
                            "and would be refused again: lower batch_size (--batch-size or [sweep]), or width or n "
                            "in the config, or raise --max-memory if the estimate is too cautious")
        if result.failed > result.refused:
            problems.append(f"{result.failed - result.refused} of {result.total} runs failed (see the notes above); "
                            "rerun the same command to resume them")
        _error("; ".join(problems))
        raise typer.Exit(EXIT_RUNS_FAILED)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@app.command()
def results(
    store: Annotated[Path, typer.Argument(help="A store folder written by 'aedyn sweep --out'.", show_default=False)],
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write every row to this CSV file.")] = None,
    force: ForceOpt = False,
) -> None:
    """Summarise a sweep's results: runs by status, and per setting (every setting that varies
    across the runs; seeds pooled) the runs that converged, diverged or failed, and the median final
    relative loss and rate of those that did not; --csv exports every row."""
    from aedyn import sweep as sweeps
    from aedyn.store import load_results

    outputs = check_outputs({"--csv": csv}, force=force, inputs={"STORE": store})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = load_results(store)
    for w in caught:
        err.print(f"warning: {escape(' '.join(str(w.message).split()))}", highlight=False, soft_wrap=True)
    if len(frame) == 0:
        out.print(f"{escape(str(store))}: no runs stored yet", highlight=False, soft_wrap=True)
    else:
        counts = sweeps.status_counts(frame)
        out.print(f"{escape(str(store))}: {len(frame)} runs; " + ", ".join(f"{v} {k}" for k, v in counts.items()),
                  highlight=False, soft_wrap=True)
        fixed = ", ".join(f"{k}={v}" for k, v in sweeps.fixed_settings(frame).items())
        out.print(escape(f"held fixed: {fixed or '-'}; seeds pooled; medians of the runs that converged or spent "
                         "their budget"), highlight=False, soft_wrap=True)
        summary = sweeps.summary_table(frame)
        table = Table(box=box.SIMPLE, pad_edge=False)
        settings = [c for c in summary.columns if c not in (*sweeps.SUMMARY_COUNTS, "median_relative_loss",
                                                            "median_rate")]
        for name in settings:
            table.add_column(escape(name), justify="left")
        for name in (*sweeps.SUMMARY_COUNTS, "median rel. loss", "median rate"):
            table.add_column(name, justify="right")
        for row in summary.to_dict(orient="records"):
            loss, rate = row["median_relative_loss"], row["median_rate"]
            table.add_row(*(escape("-" if row[c] is None else str(row[c])) for c in settings),
                          *(str(row[c]) for c in sweeps.SUMMARY_COUNTS),
                          "-" if loss != loss else f"{loss:.3e}", "-" if rate != rate else f"{rate:.6f}")
        out.print(table)
    if csv is not None:
        written = _save(lambda p, f: sweeps.write_csv(frame, p, force=f), outputs["--csv"], force)
        out.print(f"wrote {len(frame)} rows to {escape(str(written))}", highlight=False, soft_wrap=True)


@app.command()
def threshold(
    regime: ThresholdRegimeOpt = "joint",
    data: DataOpt = "sphere",
    n: NOpt = 64,
    d: Annotated[int | None, typer.Option(help="Input dimension (sphere; default 16).")] = None,
    criterion: Annotated[str, typer.Option(metavar=_choices(*CRITERIA, "all"),
                                           help="The success criterion, or all of them.")] = "all",
    seeds: Annotated[int, typer.Option(help="Initialisation seeds 0..N-1 per width.")] = 8,
    quorum: Annotated[float, typer.Option(help="Share of seeds that must pass for a width to succeed.")] = 0.9,
    target: Annotated[float, typer.Option(help="The target, as a fraction of the initial loss.")] = 1e-6,
    budget_factor: Annotated[float, typer.Option(help="Step budget, in units of the steps the infinite-width "
                                                      "kernel predicts.")] = 4.0,
    max_width: Annotated[int, typer.Option(help="Search widths up to this.")] = 4096,
    data_seed: Annotated[int, typer.Option(help="Seeds the data draw (shared by all seeds and widths).")] = 0,
    kappa: KappaOpt = 1.0,
    nu: NuOpt = 1.0,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float64",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (m_star per criterion, "
                                                         "the estimates, every width tried).")] = False,
    max_memory: MaxMemoryOpt = None,
    step_rule: Annotated[str, typer.Option(metavar=_choices(*STEP_RULES),
                                           help="global (one step 1/lambda_max(Theta(0))) or layerwise (joint: "
                                                "each layer at 1/lambda_max of its own NTK block).")] = "global",
    store: Annotated[Path | None, typer.Option("--out", help="A run store to keep every training in (new, or one "
                                                              "written before: its runs are read, not trained).")]
    = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """The least width m* at which gradient descent succeeds, per criterion.

    A width succeeds when --quorum of the seeds pass: reach (the target within the budget) or
    lambda0 (lambda_min(Theta(t)) >= lambda_0/2 throughout, lambda_0 the infinite-width kernel's
    least eigenvalue). A search over the width grid round(2^(j/2)), not a full scan; beside the
    grid's m*, the quorum width estimated from every seed's bracket, with its 95% interval."""
    import json

    from aedyn import threshold as thresholds
    from aedyn.sweep import Runner

    criteria = thresholds.CRITERIA if criterion == "all" else thresholds.check_criteria([criterion])

    def show(trial: Any) -> None:
        if not quiet:
            fractions = ", ".join(f"{c} {100 * trial.fraction(c):.0f}%" for c in trial.passed)
            count = len(trial.seeds)
            err.print(f"m = {trial.width}: {fractions} of {count} seed{'s' if count > 1 else ''}", highlight=False)

    if d is None and data == "sphere":
        d = 16
    limit = None if max_memory is None else parse_size(max_memory)
    search = thresholds.WidthSearch(regime, data, n, d, seeds=seeds, criteria=criteria, target=target,
                                    budget_factor=budget_factor, quorum=quorum, max_width=max_width,
                                    data_seed=data_seed, kappa=kappa, nu=nu, dtype=dtype, device=device,
                                    step_rule=step_rule, max_memory=limit)
    with Runner(store, executor=_executor(scheduler, workers),
                scheduler=scheduler, workers=workers, max_memory=limit, on_note=note) as runner:
        result = thresholds.least_widths([search], runner=runner, on_trial=lambda s, t: show(t))[0]
        if runner.read and not quiet:
            err.print(f"read {runner.read} finished run(s) from {escape(str(store))}, trained {runner.trained}",
                      highlight=False)
    estimates = {c: result.quorum_width(c) for c in result.m_star if any(any(t.passed[c]) for t in result.trials)}
    if as_json:
        record = result.to_dict()
        record["estimates"] = {c: e.to_dict() for c, e in estimates.items()}
        from aedyn._meta import jsonable

        out.print_json(json.dumps(jsonable(record), allow_nan=False))
        return
    s = result.setting
    count = len(s["seeds"])
    seeds_text = f"{count} seed{'s' if count > 1 else ''}"
    rows = [("setting", f"{regime}, {escape(str(data))}: n = {s['n']}, d = {s['d']}, {seeds_text}, "
                        f"success = at least {100 * quorum:.0f}% of seeds"),
            ("budget", f"{result.budget} steps = {budget_factor:g} x {result.predicted_steps} (the infinite-width "
                       f"kernel's steps to {target:g} x the initial loss); " + (
                           "eta = 1/lambda_max(Theta(0)) per network" if step_rule == "global" else
                           "layer-wise steps: encoder 1/lambda_max(Theta_W(0)), decoder 1/lambda_max(Theta_V(0))"))]
    for c, m in result.m_star.items():
        low, _ = result.bracket(c)
        e = estimates.get(c)
        est = "" if e is None else (f"; quorum width {e.value:.0f}, 95% CI {e.low:.0f} to "
                                    f"{'inf' if e.high == float('inf') else f'{e.high:.0f}'}")
        failed = result.checks.get(c, {}).get("failed_above", [])
        check = "" if not failed else f"; widths {', '.join(map(str, failed))} failed above the first pass"
        if m is None:
            rows.append((f"m* {c}", f"none up to m = {max_width}{est}{check}"))
        else:
            rows.append((f"m* {c}", f"{m} (bracket {low}-{m}; m/n = {m / s['n']:.3g}{est}{check})"))
    tried = ", ".join(f"{t.width} ({'/'.join(f'{100 * t.fraction(c):.0f}' for c in result.m_star)}%)"
                      for t in result.trials)
    rows.append(("tried", escape(f"{tried}  [% of seeds passing {'/'.join(result.m_star)}]")))
    _print_rows(rows)


@app.command()
def reproduce(
    quick: Annotated[bool, typer.Option("--quick", help="The small configuration (minutes on a laptop).")] = False,
    out_path: Annotated[Path, typer.Option("--out", help="The report folder: new, empty, or an earlier report "
                                                         "(finished experiments of the same config are reused).")]
    = Path("aedyn-report"),
    device: DeviceOpt = "cpu",
    seeds: Annotated[int | None, typer.Option(help="Seeds per setting (default: each experiment's own).")] = None,
    only: Annotated[str | None, typer.Option(metavar=_choices(*EXPERIMENT_NAMES) + ",...",
                                             help="Run only these experiments, e.g. E2 or E1,E2.")] = None,
    force: Annotated[bool, typer.Option(help="Rerun experiments whose config changed, replacing their results "
                                             "in the folder.")] = False,
    profile: Annotated[str | None, typer.Option(metavar=_choices(*PROFILES),
                                                help="A named configuration: scale (E2 to large n; with "
                                                     "--only E2).")] = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    max_memory: MaxMemoryOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run the experiments and write the report (report.md, report.html, figures, tables, summary.json).

    Uses the embedded data (sphere, scikit-learn digits); finished experiments of the same config
    in --out are reused."""
    from aedyn.report import reproduce as run_report

    names = None if only is None else [n.strip() for n in only.split(",") if n.strip()]
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                        TimeElapsedColumn(), console=err, transient=True, disable=quiet)
    tasks: dict[str, Any] = {}

    def show(name: str, message: str, fraction: float) -> None:
        if not tasks:
            progress.start()
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=1.0)
        progress.update(tasks[name], completed=fraction, description=f"{name}: {escape(message)[:60]}")

    said: set[str] = set()

    def say_once(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        """Warnings (a slow eigensolver, say) as one note each, not a source line per occurrence."""
        text = str(message).split(";")[0]
        if text not in said:
            said.add(text)
            note(str(message))

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", AedynWarning)
            warnings.showwarning = say_once
            report = run_report(out_path, quick=quick, seeds=None if seeds is None else check_count(seeds, "--seeds"),
                                device=device, only=names, force=force, progress=show, profile=profile,
                                executor=_executor(scheduler, workers), scheduler=scheduler, workers=workers,
                                on_note=note, max_memory=None if max_memory is None else parse_size(max_memory))
    finally:
        progress.stop()
    _print_scoreboard(report)
    out.print(f"wrote {escape(str(out_path / 'report.html'))} (open it for the figures and every number), report.md, "
              "summary.json and "
              f"{len(report.files) - 4} figure, table and result files", highlight=False, soft_wrap=True)


_VERDICT_STYLE = {"supported": "green", "partly supported": "yellow", "not supported": "red",
                  "inconclusive": "bright_black"}


def _print_scoreboard(report: Any) -> None:
    """The scoreboard, two lines a claim: the claim with its verdict, then the key number and where
    to look; then one line on how each experiment ran (at most 25 lines in all)."""
    out.print("[bold]Scoreboard[/] (every interval 95%)", highlight=False)
    for row in report.scoreboard:
        colour = _VERDICT_STYLE[row.verdict]
        out.print(f"  [{colour}]{row.verdict:>16}[/]  {escape(row.text)}", highlight=False, soft_wrap=True)
        key = row.key if len(row.key) <= 90 else row.key[:87] + "..."
        out.print(f"  {'':>16}  {escape(key)}  ({row.section})", highlight=False, soft_wrap=True)
    runs = ", ".join(f"{s.name} {'reused' if s.reused else f'{s.wall_time:.0f} s'}" for s in report.sections)
    out.print(f"  {runs}", highlight=False, soft_wrap=True)


SHRINK = {
    "train": "make the problem smaller (--width, --n, --steps)",
    "kernel": "make the problem smaller (--width, --n)",
    "sweep": "lower --batch-size, or the widths and n of the sweep's config",
    "threshold": "lower --seeds, --max-width, --budget-factor or --n",
    "reproduce": "lower --seeds, or run fewer experiments (--only) or the small configuration (--quick)",
}
"""Per command, what to lower when its work does not fit in memory: options that command has."""


def memory_advice(name: str | None, *, refused: bool) -> str:
    """What the command ``name`` can lower to fit in memory, and ``--max-memory`` where it has that
    option: to overrule a refusal (``refused``), or to be warned before an allocation fails."""
    advice = SHRINK.get(name or "", "free some memory or make the problem smaller")
    sub = get_command(app).commands.get(name or "")  # type: ignore[attr-defined]
    if sub is None or not any(p.name == "max_memory" for p in sub.params):
        return advice
    return advice + (" (or set --max-memory if you know better)" if refused else
                     " or set --max-memory to be warned before allocating")


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so ``finally`` blocks (temporary files) run."""


class _Interrupted(BaseException):
    """SIGINT (Ctrl-C), raised in the main thread so ``finally`` blocks run. Not a
    ``KeyboardInterrupt``: click and typer catch that inside the command and end it with a bare exit
    code (typer: 130 and nothing said; click: an empty line), before :func:`run` could say why."""


@contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` and SIGINT into :class:`_Interrupted` while a command
    runs (main thread only)."""
    def terminated(signum: int, frame: Any) -> None:
        raise _Terminated

    def interrupted(signum: int, frame: Any) -> None:
        raise _Interrupted

    try:
        previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, terminated)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored (nohup, &)
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Every failure ends as one line on stderr: :class:`AedynError` (exit 2) and usage errors
    (exit 2) say what to fix; running out of memory says so (exit 2); anything else is an internal
    error (exit 1) whose traceback ``--debug`` (anywhere on the line) or ``AEDYN_DEBUG=1`` shows.
    """
    from aedyn.errors import MemoryRefusal

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("AEDYN_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    command = get_command(app)
    name = next((a for a in args if not a.startswith("-")), None)  # the group has flags only (--version)
    try:
        with _terminate_cleanly():
            code = command.main(args=args, prog_name="aedyn", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except MemoryRefusal as exc:
        _error(str(exc.advise(memory_advice(name, refused=True))))
        return EXIT_INPUT
    except AedynError as exc:
        _error(str(exc))
        return EXIT_INPUT
    except typer.Abort:  # EOF on stdin
        _error("aborted (end of input)")
        return EXIT_INPUT
    except _Terminated:
        err.print("terminated", highlight=False)
        return EXIT_TERMINATED
    except (_Interrupted, KeyboardInterrupt):
        err.print("interrupted", highlight=False)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if getattr(exc, "exit_code", None) is not None and hasattr(exc, "format_message"):  # click usage error
            if type(exc).__name__ == "NoArgsIsHelpError":
                out.print(exc.ctx.get_help(), highlight=False)  # type: ignore[attr-defined]
                return 0
            ctx = getattr(exc, "ctx", None)
            where = f" (see '{ctx.command_path} --help')" if ctx is not None else " (see 'aedyn --help')"
            _error(" ".join(exc.format_message().split()) + where)
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if debug:
            traceback.print_exc()
        if is_out_of_memory(exc):
            _error(f"out of memory ({type(exc).__name__}): {memory_advice(name, refused=False)}")
            return EXIT_INPUT
        message = " ".join(str(exc).split())[:300]
        _error(f"internal error: {type(exc).__name__}: {message}; rerun with --debug for the traceback")
        return EXIT_INTERNAL


def _error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def main() -> None:
    """Console entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
