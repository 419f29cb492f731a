"""The ``aedyn`` command line. Thin: it parses, calls the library, prints.

Exit codes: 0 for a run that converged or spent its step budget, 3 for a diverged run, 2 for any
input error (printed as one line, no traceback).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aedyn._meta import aedyn_version, jsonable
from aedyn.errors import AedynError
from aedyn.gd import TrainResult
from aedyn.job import KernelJob, TrainJob, run_job, run_kernel_job
from aedyn.model import DECODER_INITS, REGIMES

EXIT_INPUT = 2
EXIT_DIVERGED = 3

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Gradient-descent dynamics of over-parameterised two-layer ReLU autoencoders.")
out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = EXIT_INPUT) -> None:
    """Print one error line and exit."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out.print(f"aedyn {aedyn_version()}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """aedyn: exact GD, neural tangent kernels and NTK-limit predictions for the paper's autoencoder."""


def _choice(value: str, allowed: tuple[str, ...], flag: str) -> str:
    if value not in allowed:
        fail(f"{flag} {value!r} is not one of: {', '.join(allowed)}")
    return value


def _parse_lr(value: str, flag: str, *, allow_auto: bool = True) -> float | str:
    if allow_auto and value == "auto":
        return value
    try:
        lr = float(value)
    except ValueError:
        fail(f"{flag} must be {'auto or ' if allow_auto else ''}a positive number; got {value!r}")
    if not 0 < lr < float("inf"):
        fail(f"{flag} must be a positive number; got {value}")
    return lr


def _parse_classes(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(c) for c in value.split(",") if c.strip())
    except ValueError:
        fail(f"--classes takes digits separated by commas, e.g. --classes 0,1,7; got {value!r}")
    return None


def _refuse_overwrite(path: Path | None, force: bool, flag: str) -> None:
    if path is not None and path.exists() and not force:
        fail(f"{path} already exists; choose another {flag} or pass --force to overwrite it")


RegimeOpt = Annotated[str, typer.Option(help=f"Which layers train: {', '.join(REGIMES)}.")]
DataOpt = Annotated[str, typer.Option(help="sphere, digits, or a .npy/.npz/.csv/MNIST IDX file.")]
NOpt = Annotated[int | None, typer.Option(help="Number of samples (digits/files: a seeded random subset).")]
DOpt = Annotated[int | None, typer.Option(help="Input dimension (sphere).")]
ClassesOpt = Annotated[str | None, typer.Option(help="Digits only: keep these labels, e.g. 0,1.")]
KeyOpt = Annotated[str | None, typer.Option(help="Array name inside an .npz file.")]
NormalizeOpt = Annotated[bool, typer.Option("--normalize/--no-normalize",
                                            help="Scale rows to unit norm (default) or refuse non-unit rows.")]
KappaOpt = Annotated[float, typer.Option(help="Encoder init: w_r ~ N(0, kappa^2 I).")]
NuOpt = Annotated[float, typer.Option(help="Decoder init scale.")]
DecoderInitOpt = Annotated[str, typer.Option(help=f"Decoder entries: {', '.join(DECODER_INITS)}.")]
SeedOpt = Annotated[int, typer.Option(help="Seeds the data draw and the initialisation.")]
DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda or auto.")]
DtypeOpt = Annotated[str, typer.Option(help="float64 (default) or float32.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write the JSON record here.")]
ForceOpt = Annotated[bool, typer.Option(help="Overwrite output files if they exist.")]


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
    init_scale: Annotated[str, typer.Option(help="Output scale alpha: ntk (1/sqrt(m)), mean-field (1/m) "
                                                 "or a number.")] = "ntk",
    seed: SeedOpt = 0,
    lr: Annotated[str, typer.Option(help="Step size, or auto = 1/lambda_max of the finite-width NTK.")] = "auto",
    lr_decoder: Annotated[str | None, typer.Option(help="Separate decoder step size (joint, decoder).")] = None,
    steps: Annotated[int, typer.Option(help="Step budget.")] = 5000,
    target: Annotated[float, typer.Option(help="Stop at this fraction of the initial loss.")] = 1e-6,
    record_every: Annotated[int, typer.Option(help="Record weight movement and pattern flips every k steps.")] = 10,
    ntk_every: Annotated[int | None, typer.Option(help="Record the NTK's extremes and drift every k steps.")] = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float64",
    out_path: OutOpt = None,
    save_params: Annotated[Path | None, typer.Option(help="Write final parameters (.npz) here.")] = None,
    force: ForceOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train one autoencoder by full-batch gradient descent and summarise the run."""
    _refuse_overwrite(out_path, force, "--out")
    _refuse_overwrite(save_params, force, "--save-params")
    job = TrainJob(
        regime=_choice(regime, REGIMES, "--regime"), data=data, n=n, d=d, classes=_parse_classes(classes),
        key=key, normalize=normalize, width=width, kappa=kappa, nu=nu,
        decoder_init=_choice(decoder_init, DECODER_INITS, "--decoder-init"), init_scale=init_scale, seed=seed,
        lr=_parse_lr(lr, "--lr"),
        lr_decoder=None if lr_decoder is None else _parse_lr(lr_decoder, "--lr-decoder", allow_auto=False),
        steps=steps, target=target, record_every=record_every, ntk_every=ntk_every, device=device, dtype=dtype)
    result = _run_with_progress(job, quiet)
    if out_path is not None:
        out_path.write_text(json.dumps(result.to_record(), indent=1))
    if save_params is not None and result.params is not None:
        result.params.to(device="cpu").save(save_params)
    _print_summary(result, out_path, save_params)
    if result.status == "diverged":
        raise typer.Exit(EXIT_DIVERGED)


def note(message: str) -> None:
    err.print(f"[yellow]note:[/] {message}", highlight=False, soft_wrap=True)


def _run_with_progress(job: TrainJob, quiet: bool) -> TrainResult:
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

        return run_job(job, callback=callback, on_note=note)


def _print_summary(result: TrainResult, out_path: Path | None, save_params: Path | None) -> None:
    s = result.summary()
    colour = {"converged": "green", "max_steps": "yellow", "diverged": "red"}[result.status]
    rows = [("status", f"[{colour}]{result.status}[/] - {result.message}"),
            ("steps", str(result.steps)),
            ("final loss", f"{s['final_relative_loss']:.3e} x initial ({result.loss[-1]:.3e})")]
    eta = f"{result.lr:.4g}"
    if result.lambda_max is not None:
        eta += f" (auto: 1/lambda_max of the NTK at init, lambda_max = {result.lambda_max:.4g})"
    if result.lr_decoder is not None and result.lr_decoder != result.lr:
        eta += f"; decoder {result.lr_decoder:.4g}"
    rows.append(("eta", eta))
    fit = result.rate_fit
    rows.append(("rate", "-" if fit is None else
                 f"{fit.rate:.6f} per step (loss contraction; log-linear fit over steps {fit.start}-{fit.stop}, "
                 f"R^2 = {fit.r2:.4f})"))
    moved = [f"||{L}-{L}0||/||{L}0|| = {s[f'weight_change_{L}']:.3e}" for L in "WV" if f"weight_change_{L}" in s]
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
    rows.append(("wall time", f"{result.wall_time:.2f} s"))
    for path, what in ((out_path, "record"), (save_params, "parameters")):
        if path is not None:
            rows.append(("wrote", f"{what} to {path}"))
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
                                              help="Also the finite-width NTK of one random network.")] = None,
    kappa: KappaOpt = 1.0,
    nu: NuOpt = 1.0,
    decoder_init: DecoderInitOpt = "gaussian",
    seed: SeedOpt = 0,
    tol: Annotated[float, typer.Option(help="Relative accuracy of the finite-width eigenvalues.")] = 1e-8,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float64",
    out_path: OutOpt = None,
    force: ForceOpt = False,
) -> None:
    """The NTK's spectrum: lambda_0 = lambda_min(K0), mu_0 = lambda_min(K1), the regime kernel, and
    with --width the finite-width NTK beside them (matrix-free, any n*d)."""
    _refuse_overwrite(out_path, force, "--out")
    job = KernelJob(regime=_choice(regime, REGIMES, "--regime"), data=data, n=n, d=d,
                    classes=_parse_classes(classes), key=key, normalize=normalize, width=width, kappa=kappa, nu=nu,
                    decoder_init=_choice(decoder_init, DECODER_INITS, "--decoder-init"), seed=seed, tol=tol,
                    device=device, dtype=dtype)
    with err.status("computing spectra", spinner="dots"):
        record = run_kernel_job(job, on_note=note)
    if out_path is not None:
        out_path.write_text(json.dumps(jsonable(record), indent=1))
    rows = [("data", f"{data}: n = {record['n']}, d = {record['d']} (nd = {record['n'] * record['d']})")]
    if "infinite" in record:
        inf = record["infinite"]
        rows += [("lambda_0", f"{inf['lambda_0']:.6g}   lambda_min(K0), K0 = E[(x.y) 1{{w.x>0}} 1{{w.y>0}}]"),
                 ("mu_0", f"{inf['mu_0']:.6g}   lambda_min(K1), K1 = E[relu(w.x) relu(w.y)]"),
                 (f"K_{regime}", f"lambda_min {inf['lambda_min']:.6g}, lambda_max {inf['lambda_max']:.6g}, "
                                 f"condition number {inf['condition_number']:.4g}  (infinite width; NTK = K ⊗ I_d)")]
    else:
        rows.append(("infinite", "no infinite-width NTK for tied (f_0 grows like sqrt(m)); finite width only"))
    if "finite" in record:
        fin = record["finite"]
        conv = "" if fin["converged"] else "  [not converged: raise --tol]"
        rows.append((f"Theta m={fin['width']}",
                     f"lambda_min {fin['lambda_min']:.6g}, lambda_max {fin['lambda_max']:.6g}, "
                     f"condition number {fin['condition_number']:.4g}{conv}"))
        if "gap" in record:
            g = record["gap"]
            rows.append(("gap", f"lambda_min {100 * g['lambda_min']:+.3f}%, lambda_max {100 * g['lambda_max']:+.3f}% "
                                "(finite vs infinite width)"))
    rows.append(("wall time", f"{record['wall_time']:.2f} s"))
    if out_path is not None:
        rows.append(("wrote", f"record to {out_path}"))
    _print_rows([(k, escape(v)) for k, v in rows])


def main() -> None:
    """Entry point: run the app; turn :class:`AedynError` into one line and exit code 2."""
    try:
        app()
    except AedynError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_INPUT)
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        sys.exit(130)


if __name__ == "__main__":
    main()
