"""The report: run the experiments (or reuse their finished results) and write what they found.

Into one folder (``aedyn-report/`` by default)::

    report.md            the scoreboard (one row per claim of the paper), a table of contents, and one
                         section per experiment: the claim, its findings, captioned figures, a key table
    report.html          the same, self-contained (figures inlined), opens offline; set-up and every
                         setting in collapsed blocks
    summary.json         the scoreboard, each experiment's findings and headline numbers, configs, versions
    config.json          every experiment's config, the seeds and package versions
    report.json          the marker: this folder is an aedyn report
    E2/results.json      an experiment's raw results with its config (what a rerun reuses)
    E2/table.parquet     its full tidy table (also .csv); further tables beside it (``E3/certificate.csv``)
    E2/details.md        the set-up and every setting in sentences (the Markdown report links it)
    E2/<figure>.png      each figure (also .svg); E2/figures.json says what they were drawn from
    runs/                the run store (:class:`aedyn.sweep.Runner`): every training of every experiment,
                         one row each, with what it measured; what a rerun reads instead of training

Each experiment module answers to the verbs of :mod:`aedyn.experiments` (``config``, ``setup``,
``run``, ``tabulate``, ``tables``, ``key_table``, ``figures`` with ``CAPTIONS``, ``findings``,
``details``, ``summary``, ``runs``, ``missing``). Rerunning into the same folder reuses every
experiment whose config is unchanged (and says so), without drawing its figures again when they were drawn from the same
results by the same aedyn; a changed config is refused unless ``force``. Finished results are
checked against their config first (the experiment's ``missing``: every run it asks for, with its
seeds and settings): incomplete ones run again (their runs are read from the run store), damaged
ones are refused with what to do. An interrupted run,
restarted with the same config, keeps every finished run (the run store, or the experiment's
run store) and retrains only those in flight. ``executor``/``workers``/``scheduler`` choose where
the run layer trains (this process, or a Dask cluster). Experiments not asked for (``only``) keep their section while
their finished results in the folder match this config. Every file is written atomically; the
folder must be new, empty, or an aedyn report. Everything is checked before anything is written:
the options, the folder and each experiment's place in it, earlier results, and that the run layer
can hold the runs the seeds make.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import inspect
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aedyn._check import SEED_MAX, check_int
from aedyn._meta import aedyn_version, environment, jsonable
from aedyn._tensor import resolve_device
from aedyn.errors import AedynError, first_line
from aedyn.experiments import EXPERIMENTS, experiment, style
from aedyn.files import describe_os_error, read_json, write_atomic, write_json
from aedyn.findings import Finding, Row, scoreboard
from aedyn.resources import RUN_BYTES, MemoryEstimate, check_memory
from aedyn.sweep import Runner, check_executor

MARKER = "report.json"
RUNS = "runs"
"""The report's run store (``OUT/runs``)."""
_HINT = "choose a new or empty folder with --out"


@dataclass(frozen=True)
class FigureRef:
    """A figure of a section: its name, the PNG's path relative to the report folder, its caption and
    the width in pixels at which the page shows it (its drawn size, :data:`style.PX_PER_INCH`)."""

    name: str
    path: str
    caption: str
    width_px: int


@dataclass
class Section:
    """One experiment's part of the report, as data (rendered to Markdown and HTML alike)."""

    name: str
    title: str
    claim: str
    findings: list[Finding]
    figures: list[FigureRef]
    key_table: Any  # a pandas DataFrame with human headers, at most KEY_COLUMNS columns
    tables: list[str]  # the full tables' CSV paths, relative to the report folder
    setup: list[str]
    details: list[str]
    reused: bool
    wall_time: float
    resumed: int = 0

    @property
    def anchor(self) -> str:
        return self.name.lower()


@dataclass
class Report:
    """What :func:`reproduce` wrote: the folder, its sections, the scoreboard, the summary, the files."""

    folder: Path
    sections: list[Section]
    scoreboard: list[Row]
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def _check_folder(folder: Path, names: Sequence[str]) -> dict[str, Any] | None:
    """The existing report marker, ``None`` for a new or empty folder (or one still to make); refuse
    anything else, and a report whose place for an experiment of ``names`` (or for its run store)
    is not a folder. Creates nothing."""
    try:
        if folder.is_dir():
            if (folder / MARKER).exists():
                marker = read_json(folder / MARKER, what="an aedyn report marker", hint=_HINT)
                if not isinstance(marker, dict) or marker.get("kind") != "aedyn.report":
                    raise AedynError(f"{str(folder / MARKER)!r} is not an aedyn report marker; {_HINT}")
                for part in (*names, RUNS):
                    if (folder / part).exists() and not (folder / part).is_dir():
                        what = "its run store" if part == RUNS else f"the results of {part}"
                        raise AedynError(f"{str(folder / part)!r} is a file where the report keeps {what}; move it "
                                         "out of the folder (aedyn does not delete it), or choose another folder "
                                         "with --out")
                return marker
            if any(folder.iterdir()):
                raise AedynError(f"{str(folder)!r} exists and is not an aedyn report (no {MARKER}); {_HINT}")
            return None
        if folder.exists():
            raise AedynError(f"{str(folder)!r} is a file, not a report folder; {_HINT}")
        if not folder.parent.is_dir():
            raise AedynError(f"the folder {str(folder.parent)!r} does not exist; create it first")
    except OSError as exc:
        raise AedynError(describe_os_error(exc, folder)) from None
    return None


def _non_finite(value: Any) -> bool:
    """``value`` holds a NaN or an infinity (somewhere inside)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    return isinstance(value, list) and any(_non_finite(v) for v in value)


def _why(exc: BaseException) -> str:
    return f"no {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else first_line(exc, 200)


def _previous(folder: Path, name: str, mod: Any, config: dict[str, Any], force: bool,
              on_note: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """The finished results of ``name`` in ``folder`` if they were made with ``config`` and hold
    everything it asks for (the experiment's ``missing``); a different config is refused unless
    ``force`` (then the experiment runs again), damaged results are refused, incomplete ones run
    again (and ``on_note`` says so)."""
    path = folder / name / "results.json"
    if not path.exists():
        return None
    fix = f"delete it to run {name} again"
    record = read_json(path, what=f"the results of {name}", hint=fix)
    if not isinstance(record, dict) or "results" not in record or "config" not in record:
        raise AedynError(f"{str(path)!r} is not an experiment's results; {fix}")
    if _non_finite(record):
        raise AedynError(f"{str(path)!r} holds NaN or infinity, which aedyn never writes (it writes null), so it is "
                         f"not {name} results as aedyn wrote them; {fix}")
    if record["config"] != jsonable(config):
        if not force:
            raise AedynError(f"{str(folder)!r} holds {name} results of a different config (quick vs full, seeds or "
                             "device?); use another --out folder, or --force to run it again there")
        return None
    try:
        gaps = mod.missing(record["config"], record["results"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise AedynError(f"{str(path)!r} does not hold {name} results this version can read ({_why(exc)}); "
                         f"{fix}") from None
    if gaps:
        if on_note is not None:
            on_note(f"{path} {'; '.join(gaps)}: running {name} again (the runs it has are read from the run store, "
                    "not trained)")
        return None
    return record


def _check_runs(modules: dict[str, Any], quick: bool, seeds: int | None, device: str, profile: str | None,
                max_memory: int | None) -> None:
    """Refuse ``seeds`` that make more runs than the run layer can hold (each run's job and row,
    :data:`aedyn.resources.RUN_BYTES`), before any config lists them: an experiment's runs grow
    linearly with the seeds, so its configs at one and two seeds tell how many."""
    if seeds is None:
        return
    total = 0
    for mod in modules.values():
        one, two = (len(mod.runs(_config(mod, quick, s, device, profile))) for s in (1, 2))
        total += one + (seeds - 1) * (two - one)
    est = MemoryEstimate()
    est.add("run records", total * RUN_BYTES, on_device=False)
    check_memory(est, device=resolve_device(device), limit=max_memory,
                 what=f"{seeds} seeds per setting ({total} runs)", advice="use fewer seeds")


def _knows_profile(mod: Any) -> bool:
    return "profile" in inspect.signature(mod.config).parameters


def _config(mod: Any, quick: bool, seeds: int | None, device: str, profile: str | None) -> dict[str, Any]:
    """An experiment's config; a ``profile`` goes to the experiments that know it (and is refused
    by name where none does)."""
    if profile is not None and _knows_profile(mod):
        return mod.config(quick=quick, seeds=seeds, device=device, profile=profile)
    return mod.config(quick=quick, seeds=seeds, device=device)


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=style.DPI, bbox_inches="tight")
    return buffer.getvalue()


def _png_width(data: bytes) -> int:
    """The width in pixels of a PNG (its IHDR chunk)."""
    return int.from_bytes(data[16:20], "big")


KEY_COLUMNS = 10
"""A section's table shows at most this many columns (the full table is linked)."""
FIGURES = "figures.json"
"""Per experiment, what its figures were drawn from (the results' hash and aedyn's version), their
captions and sizes: a reused experiment whose figures match is not drawn again."""


def _caption(captions: dict[str, str], name: str) -> str:
    """The caption of figure ``name``: its own entry, else the longest entry it starts with."""
    if name in captions:
        return captions[name]
    prefixes = [k for k in captions if name.startswith(k)]
    if not prefixes:
        raise AedynError(f"figure {name!r} has no caption")
    return captions[max(prefixes, key=len)]


def _draw(folder: Path, name: str, mod: Any, results: dict[str, Any], digest: str, files: list[Path],
          reused: bool) -> list[FigureRef]:
    """The experiment's figures: drawn and written (PNG and SVG) unless a reused experiment's figures
    were drawn from these very results by this aedyn (its ``figures.json``), then only listed."""
    import matplotlib.pyplot as plt

    manifest_path = folder / name / FIGURES
    stamp = {"results": digest, "aedyn": aedyn_version()}
    if reused and manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = None
        if (isinstance(manifest, dict) and manifest.get("stamp") == stamp and all(
                (folder / f["path"]).exists() and (folder / f["path"]).with_suffix(".svg").exists()
                for f in manifest.get("figures", []))):
            return [FigureRef(**f) for f in manifest["figures"]]
    refs = []
    captions = getattr(mod, "CAPTIONS", {})
    for fig_name, fig in mod.figures(results).items():
        data = _png(fig)
        files.append(write_atomic(folder / name / f"{fig_name}.png", lambda fh, d=data: fh.write(d), force=True,
                                  flag="figure"))
        files.append(write_atomic(folder / name / f"{fig_name}.svg",
                                  lambda fh, f=fig: f.savefig(fh, format="svg", bbox_inches="tight"), force=True,
                                  flag="figure"))
        plt.close(fig)
        width = round(_png_width(data) * style.PX_PER_INCH / style.DPI)
        refs.append(FigureRef(fig_name, f"{name}/{fig_name}.png", _caption(captions, fig_name), width))
    files.append(write_json(manifest_path, {"stamp": stamp, "figures": [r.__dict__ for r in refs]}, force=True,
                            flag="figure list"))
    return refs


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reproduce(folder: str | Path = "aedyn-report", *, quick: bool = False, seeds: int | None = None,
              device: str = "cpu", only: Sequence[str] | None = None, force: bool = False,
              progress: Callable[[str, str, float], None] | None = None, executor: str = "local",
              workers: int | None = None, scheduler: str | None = None, profile: str | None = None,
              on_note: Callable[[str], None] | None = None, max_memory: int | None = None) -> Report:
    """Run (or reuse) the experiments and write the report into ``folder`` (see the module
    docstring). ``only`` names a subset (``["E2"]``); ``progress(experiment, message, fraction)``
    reports how far each experiment is. ``executor``, ``workers``, ``scheduler``: where the run
    layer trains (:class:`aedyn.sweep.Runner`). ``profile``: an experiment's named configuration
    (``"scale"``: E2 to large ``n``, :func:`aedyn.experiments.e2.config`), for the experiments that
    have it. ``max_memory`` (bytes) replaces the memory available in every check (the run layer's).
    Nothing is written before every option, the folder and its earlier results are checked."""
    check_executor(executor, scheduler, workers)
    resolve_device(device)
    if seeds is not None:
        seeds = check_int(seeds, "seeds", minimum=1, maximum=SEED_MAX + 1,
                          hint=" (the seeds 0..N-1 are integers up to 2^63 - 1)")
    if max_memory is not None:
        max_memory = check_int(max_memory, "max_memory (bytes)", minimum=1)
    names = list(EXPERIMENTS) if only is None else [str(n).upper() for n in only]
    if not names:
        raise AedynError(f"no experiment named; choose from {', '.join(EXPERIMENTS)} (e.g. --only E2)")
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise AedynError(f"unknown experiment {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    modules = {name: experiment(name) for name in names}
    if profile is not None and not any(_knows_profile(mod) for mod in modules.values()):
        raise AedynError(f"no experiment asked for has a profile {profile!r}; profiles are E2's (--only E2 --profile "
                         "scale)")
    _check_runs(modules, quick, seeds, device, profile, max_memory)
    configs = {name: jsonable(_config(mod, quick, seeds, device, profile)) for name, mod in modules.items()}
    folder = Path(folder)
    _check_folder(folder, names)
    previous = {name: _previous(folder, name, modules[name], configs[name], force, on_note)
                for name in names}  # refusals before any work
    for name in EXPERIMENTS:  # experiments not asked for stay in the report while their results fit this config
        if name not in modules and folder.is_dir():
            mod = experiment(name)
            config = jsonable(_config(mod, quick, seeds, device, profile))
            try:
                record = _previous(folder, name, mod, config, force=False)
            except AedynError:
                record = None
            if record is not None:
                modules[name], configs[name], previous[name] = mod, config, record
    modules = {name: modules[name] for name in EXPERIMENTS if name in modules}  # report order
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise AedynError(describe_os_error(exc, folder)) from None
    write_json(folder / MARKER, {"kind": "aedyn.report", "format": 2}, force=True, flag="report marker")
    t_start = time.perf_counter()
    report = Report(folder=folder, sections=[], scoreboard=[], summary={})
    with Runner(folder / RUNS, executor=executor, workers=workers, scheduler=scheduler, max_memory=max_memory,
                on_note=on_note) as runner:
        _run_all(folder, modules, configs, previous, report, runner, progress)
    report.scoreboard = scoreboard(f for s in report.sections for f in s.findings)
    versions = environment()
    report.summary.update({"scoreboard": [r.to_dict() for r in report.scoreboard], "config": configs,
                           "versions": versions, "wall_time": time.perf_counter() - t_start})
    report.files.append(write_json(folder / "summary.json", jsonable(report.summary), force=True, flag="summary"))
    report.files.append(write_json(folder / "config.json", {"quick": quick, "device": device, "experiments": configs,
                                                            "versions": versions}, force=True, flag="config"))
    header = _header(quick, device, versions)
    report.files.append(write_atomic(folder / "report.md", lambda fh: fh.write(
        markdown(header, report.scoreboard, report.sections).encode()), force=True, flag="report"))
    report.files.append(write_atomic(folder / "report.html", lambda fh: fh.write(
        to_html(header, report.scoreboard, report.sections, folder).encode()), force=True, flag="report"))
    return report


def _run_all(folder: Path, modules: dict[str, Any], configs: dict[str, Any], previous: dict[str, Any],
             report: Report, runner: Runner, progress: Callable[[str, str, float], None] | None) -> None:
    """Run (or reuse) each experiment and add its section to ``report``."""
    for name, mod in modules.items():
        record = previous[name]
        reused = record is not None
        if record is None:
            t0 = time.perf_counter()
            step = None if progress is None else (lambda message, fraction, name=name: progress(name, message,
                                                                                                 fraction))
            (folder / name).mkdir(exist_ok=True)
            read = runner.read
            results = mod.run(configs[name], progress=step, runner=runner)  # its trainings: the runner's store
            resumed = runner.read - read
            if resumed and progress is not None:
                progress(name, f"read {resumed} finished runs from the run store instead of training them", 1.0)
            record = {"config": configs[name], "results": jsonable(results), "wall_time": time.perf_counter() - t0,
                      "resumed": resumed}
            report.files.append(write_json(folder / name / "results.json", record, force=True, flag="results"))
        elif progress is not None:
            progress(name, "reusing the finished results of the same config", 1.0)
        results = record["results"]
        try:
            section, summary = _section(folder, name, mod, results, configs[name], record, reused, report.files)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            if not reused:
                raise
            raise AedynError(f"{str(folder / name / 'results.json')!r} does not hold {name} results this version can "
                             f"read ({type(exc).__name__}: {exc}); delete it to run {name} again") from None
        report.sections.append(section)
        report.summary[name] = {**summary, "findings": [f.to_dict() for f in section.findings]}


def _section(folder: Path, name: str, mod: Any, results: dict[str, Any], config: dict[str, Any],
             record: dict[str, Any], reused: bool, files: list[Path]) -> tuple[Section, dict[str, Any]]:
    """Tables, figures, findings and details of one experiment, written beside the report."""
    (folder / name).mkdir(exist_ok=True)
    tables = {"table": mod.tabulate(results), **(mod.tables(results) if hasattr(mod, "tables") else {})}
    links = []
    for stem, frame in tables.items():
        files.append(write_atomic(folder / name / f"{stem}.parquet", lambda fh, t=frame: t.to_parquet(fh),
                                  force=True, flag="table"))
        files.append(write_atomic(folder / name / f"{stem}.csv",
                                  lambda fh, t=frame: fh.write(t.to_csv(index=False).encode()), force=True,
                                  flag="table"))
        links.append(f"{name}/{stem}.csv")
    figures = _draw(folder, name, mod, results, _digest(folder / name / "results.json"), files, reused)
    findings = list(mod.findings(results))
    setup, details = mod.setup(config), list(mod.details(results))
    key = mod.key_table(results)
    if len(key.columns) > KEY_COLUMNS:
        raise ValueError(f"{name}'s key table has {len(key.columns)} columns; at most {KEY_COLUMNS}")
    files.append(write_atomic(folder / name / "details.md", lambda fh: fh.write(
        _details_md(name, mod.TITLE, setup, details).encode()), force=True, flag="details"))
    section = Section(name=name, title=mod.TITLE, claim=mod.CLAIM, findings=findings, figures=figures, key_table=key,
                      tables=links, setup=setup, details=details, reused=reused,
                      wall_time=float(record.get("wall_time", 0.0)),
                      resumed=int(record.get("resumed", record.get("resumed_batches", 0))))
    return section, mod.summary(results)


def _details_md(name: str, title: str, setup: list[str], details: list[str]) -> str:
    lines = [f"# {name} {title}: set-up and details", "", "## Set-up", ""]
    lines += [f"- {item}" for item in setup] + ["", "## Every setting", ""]
    lines += [f"- {item}" for item in details] + [""]
    return "\n".join(lines)


def _header(quick: bool, device: str, versions: dict[str, str]) -> list[str]:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [f"Generated by aedyn {versions['aedyn']} on {stamp}: the {'quick' if quick else 'full'} run on "
            f"{device} (torch {versions['torch']}, numpy {versions['numpy']}, Python {versions['python']}). "
            "Every number below comes from the runs recorded beside this file (config.json, */results.json); "
            "every interval is a 95% confidence interval."]


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "-" if v != v else f"{v:.4g}"
    return "-" if v is None else str(v)


def _table_rows(table: Any, limit: int = 40) -> tuple[list[str], list[list[str]]]:
    shown = table.head(limit)
    return [str(c) for c in shown.columns], [[_cell(v) for v in row] for row in shown.itertuples(index=False)]


def _how(s: Section) -> str:
    if s.reused:
        return "reused from an earlier run"
    if s.resumed:
        return (f"ran in {s.wall_time:.0f} s after resuming an interrupted run ({s.resumed} finished runs or "
                "batches kept)")
    return f"ran in {s.wall_time:.0f} s"


def _sentence(text: str) -> str:
    """A finding as a sentence: its first word capitalised when it is a plain word ("sphere, n = 64:"
    becomes "Sphere, ..."; "m* grows" stays)."""
    first = text.split(" ", 1)[0].rstrip(",:;")
    return text[:1].upper() + text[1:] if first.isalpha() and first.islower() else text


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(header: list[str], rows: Sequence[Row], sections: Sequence[Section]) -> str:
    """The report as Markdown: the scoreboard, a table of contents, then one section per experiment
    (figures as links to the PNG files beside it; set-up and every setting in ``E?/details.md``)."""
    lines = ["# aedyn: the paper's claims, measured", "", *header, "", "## Scoreboard", "",
             "| Claim of the paper | Verdict | Key number [95% CI] | Where |", "|---|---|---|---|"]
    for r in rows:
        where = f"[{r.section}](#{r.section.lower()})" + ("" if r.figure is None else
                                                           f", [figure]({r.section}/{r.figure}.png)")
        lines.append(f"| {_md_escape(r.text)} | **{r.verdict}** | {_md_escape(r.key)} | {where} |")
    lines += ["", "What was found, claim by claim:", ""]
    lines += [f"{i}. **{r.text}** ({r.verdict}). {_sentence(r.finding)}" for i, r in enumerate(rows, start=1)]
    lines += ["", "## Contents", ""]
    lines += [f"- [{s.name} {s.title}](#{s.anchor})" for s in sections] + [""]
    for s in sections:
        lines += [f'<a id="{s.anchor}"></a>', "", f"## {s.name} {s.title}", "", f"**Claim.** {s.claim}", "",
                  "**Findings.**", ""]
        lines += [f"- {_sentence(f.sentence)} (**{f.verdict}**)" for f in s.findings] or ["- No finding."]
        lines.append("")
        for i, fig in enumerate(s.figures, start=1):
            lines += [f"![{s.name} figure {i}]({fig.path})", "", f"*Figure {s.name}.{i}. {fig.caption}*", ""]
        columns, body = _table_rows(s.key_table)
        lines += ["**Key numbers.**", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in body]
        if len(s.key_table) > len(body):
            lines.append(f"\n({len(s.key_table)} rows in all.)")
        lines += ["", "Full tables: " + ", ".join(f"[{t}]({t})" for t in s.tables)
                  + f". Set-up and every setting: [{s.name}/details.md]({s.name}/details.md). ({_how(s)}.)", ""]
    return "\n".join(lines)


_VERDICT_CLASS = {"supported": "ok", "partly supported": "partly", "not supported": "no", "inconclusive": "open"}
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:980px;margin:0 auto;padding:1em 16px;
line-height:1.5;color:#1a1a1a;font-size:16px}
h1{font-size:1.7em;margin-bottom:.2em}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#555;font-size:.9em}nav ol{columns:2;padding-left:1.2em}
figure{margin:1.2em 0}figure img{max-width:100%;height:auto;display:block}
figcaption{font-size:.92em;color:#333;margin-top:.3em}
table{border-collapse:collapse;font-size:.9em;margin:.6em 0}td,th{border:1px solid #d0d0d0;padding:.25em .55em;
vertical-align:top}th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.wide{overflow-x:auto;max-width:100%}.board td{text-align:left}
.v{font-weight:600;white-space:nowrap;padding:.05em .4em;border-radius:3px}
.v.ok{background:#d8f0dc;color:#14532d}.v.partly{background:#fdf0c8;color:#6b4e00}
.v.no{background:#f9d7d7;color:#7a1c1c}.v.open{background:#e4e7ec;color:#333}
ul.findings li{margin:.35em 0}details{margin:1em 0;background:#fafafa;border:1px solid #e5e5e5;padding:.4em .8em}
summary{cursor:pointer;font-weight:600}.board details{margin:.3em 0 0;padding:.1em .4em;font-size:.9em;border:none}
.board summary{font-weight:400;color:#555}.board td:first-child{width:38%}
"""


def _numeric(v: str) -> bool:
    try:
        float(v.replace("x", "").split(" ")[0])
    except ValueError:
        return False
    return True


def to_html(header: list[str], rows: Sequence[Row], sections: Sequence[Section], folder: Path) -> str:
    """The report as one self-contained HTML page (figures inlined as base64 PNG): the scoreboard, a
    table of contents with anchors, the sections; set-up and every setting in collapsed blocks."""
    e = html.escape
    out = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
           "<meta name='viewport' content='width=device-width, initial-scale=1'>",
           f"<title>aedyn report</title><style>{_CSS}</style></head><body>",
           "<h1>aedyn: the paper's claims, measured</h1>"]
    out += [f"<p class='meta'>{e(p)}</p>" for p in header]
    out += ["<h2 id='scoreboard'>Scoreboard</h2>", "<div class='wide'><table class='board'><tr>"
            "<th>Claim of the paper</th><th>Verdict</th><th>Key number [95% CI]</th><th>Where</th></tr>"]
    for r in rows:
        where = f"<a href='#{e(r.section.lower())}'>{e(r.section)}</a>"
        if r.figure is not None:
            where += f", <a href='#{e(r.section.lower())}-{e(r.figure)}'>figure</a>"
        found = e(_sentence(r.finding))
        out.append(f"<tr><td>{e(r.text)}<details><summary>what was found</summary>{found}</details></td>"
                   f"<td><span class='v {_VERDICT_CLASS[r.verdict]}'>{e(r.verdict)}</span></td><td>{e(r.key)}</td>"
                   f"<td>{where}</td></tr>")
    out.append("</table></div>")
    out += ["<nav><h2>Contents</h2><ol>"] + [f"<li><a href='#{e(s.anchor)}'>{e(s.name)} {e(s.title)}</a></li>"
                                             for s in sections] + ["</ol></nav>"]
    for s in sections:
        out += [f"<h2 id='{e(s.anchor)}'>{e(s.name)} {e(s.title)}</h2>", f"<p><b>Claim.</b> {e(s.claim)}</p>",
                "<p><b>Findings.</b></p><ul class='findings'>"]
        out += [f"<li>{e(_sentence(f.sentence))} <span class='v {_VERDICT_CLASS[f.verdict]}'>{e(f.verdict)}</span></li>"
                for f in s.findings] or ["<li>No finding.</li>"]
        out.append("</ul>")
        for i, fig in enumerate(s.figures, start=1):
            data = base64.b64encode((folder / fig.path).read_bytes()).decode()
            out.append(f"<figure id='{e(s.anchor)}-{e(fig.name)}'><img alt='{e(s.name)} figure {i}' "
                       f"width='{fig.width_px}' src='data:image/png;base64,{data}'><figcaption><b>Figure {e(s.name)}."
                       f"{i}.</b> {e(fig.caption)}</figcaption></figure>")
        columns, body = _table_rows(s.key_table)
        out.append("<p><b>Key numbers.</b></p><div class='wide'><table><tr>"
                   + "".join(f"<th>{e(c)}</th>" for c in columns) + "</tr>")
        out += ["<tr>" + "".join(f"<td class='n'>{e(v)}</td>" if _numeric(v) else f"<td>{e(v)}</td>" for v in r)
                + "</tr>" for r in body] + ["</table></div>"]
        if len(s.key_table) > len(body):
            out.append(f"<p>({len(s.key_table)} rows in all.)</p>")
        out.append("<p>Full tables (beside this file): " + ", ".join(f"<code>{e(t)}</code>" for t in s.tables)
                   + f". ({e(_how(s))}.)</p>")
        out += ["<details><summary>Set-up</summary><ul>"] + [f"<li>{e(x)}</li>" for x in s.setup] + ["</ul></details>"]
        out += [f"<details><summary>Every setting ({len(s.details)})</summary><ul>"]
        out += [f"<li>{e(x)}</li>" for x in s.details] + ["</ul></details>"]
    out.append("</body></html>")
    return "\n".join(out)
