"""The report: run the experiments (or reuse their finished results) and write what they found.

Into one folder (``aedyn-report/`` by default)::

    report.md            one section per experiment: the claim, the set-up, figures, a table, the verdict
    report.html          the same, self-contained (figures inlined), opens offline
    summary.json         the headline numbers, one key per experiment, with the config and versions
    config.json          every experiment's config, the seeds and package versions
    report.json          the marker: this folder is an aedyn report
    E2/results.json      an experiment's raw results with its config (what a rerun reuses)
    E2/table.parquet     its tidy table (also .csv)
    E3/certificate.parquet  a further table an experiment offers (``tables``; also .csv)
    E2/<figure>.png      each figure (also .svg)
    E2/checkpoint.jsonl  while an experiment runs: its finished batches (an interrupted run resumes)

Each experiment module (:mod:`aedyn.experiments`) answers to the same verbs: ``config``, ``setup``,
``run``, ``tabulate``, ``figures``, ``verdict``, and optionally ``tables`` (further named tables,
each written and rendered after the main one). Rerunning into the same folder reuses every
experiment whose config is unchanged (and says so); a changed config is refused unless ``force``.
An interrupted run, restarted with the same config, keeps every finished batch (the experiment's
checkpoint) and retrains only the one in flight. Experiments not asked for (``only``) keep their
section while their finished results in the folder match this config. Every file is written
atomically; the folder must be new, empty, or an aedyn report.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aedyn._meta import aedyn_version, environment, jsonable
from aedyn.errors import AedynError
from aedyn.experiments import EXPERIMENTS, experiment
from aedyn.files import Checkpoint, describe_os_error, read_json, write_atomic, write_json

MARKER = "report.json"
CHECKPOINT = "checkpoint.jsonl"
"""An experiment's finished batches while it runs (``E2/checkpoint.jsonl``), removed once its
``results.json`` is written: an interrupted run, restarted, retrains only the batch in flight."""
_HINT = "choose a new or empty folder with --out"


@dataclass
class Section:
    """One experiment's part of the report, as data (rendered to Markdown and HTML alike)."""

    name: str
    title: str
    claim: str
    setup: list[str]
    figures: dict[str, str]  # figure name -> PNG path relative to the report folder
    table: Any  # a pandas DataFrame
    verdict: list[str]
    reused: bool
    wall_time: float
    resumed_batches: int = 0
    tables: dict[str, Any] = field(default_factory=dict)  # further tables: name -> DataFrame


@dataclass
class Report:
    """What :func:`reproduce` wrote: the folder, its sections, the summary, and the files."""

    folder: Path
    sections: list[Section]
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)


def _check_folder(folder: Path) -> dict[str, Any] | None:
    """The existing report marker, ``None`` for a new or empty folder; refuse anything else."""
    try:
        if folder.is_dir():
            if (folder / MARKER).exists():
                marker = read_json(folder / MARKER, what="an aedyn report marker", hint=_HINT)
                if not isinstance(marker, dict) or marker.get("kind") != "aedyn.report":
                    raise AedynError(f"{str(folder / MARKER)!r} is not an aedyn report marker; {_HINT}")
                return marker
            if any(folder.iterdir()):
                raise AedynError(f"{str(folder)!r} exists and is not an aedyn report (no {MARKER}); {_HINT}")
            return None
        if folder.exists():
            raise AedynError(f"{str(folder)!r} is a file, not a report folder; {_HINT}")
        if not folder.parent.is_dir():
            raise AedynError(f"the folder {str(folder.parent)!r} does not exist; create it first")
        folder.mkdir()
    except OSError as exc:
        raise AedynError(describe_os_error(exc, folder)) from None
    return None


def _previous(folder: Path, name: str, config: dict[str, Any], force: bool) -> dict[str, Any] | None:
    """The finished results of ``name`` in ``folder`` if they were made with ``config``; a different
    config is refused unless ``force`` (then the experiment runs again)."""
    path = folder / name / "results.json"
    if not path.exists():
        return None
    record = read_json(path, what=f"the results of {name}", hint="delete the file to run the experiment again")
    if not isinstance(record, dict) or "results" not in record or "config" not in record:
        raise AedynError(f"{str(path)!r} is not an experiment's results; delete it to run {name} again")
    if record["config"] == jsonable(config):
        return record
    if not force:
        raise AedynError(f"{str(folder)!r} holds {name} results of a different config (quick vs full, seeds or "
                         "device?); use another --out folder, or --force to run it again there")
    return None


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: the experiment's config and aedyn's version
    (a batch judged by other code is not mixed into a run)."""
    return {"config": config, "aedyn": aedyn_version()}


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    return buffer.getvalue()


def reproduce(folder: str | Path = "aedyn-report", *, quick: bool = False, seeds: int | None = None,
              device: str = "cpu", only: Sequence[str] | None = None, force: bool = False,
              progress: Callable[[str, str, float], None] | None = None) -> Report:
    """Run (or reuse) the experiments and write the report into ``folder`` (see the module
    docstring). ``only`` names a subset (``["E2"]``); ``progress(experiment, message, fraction)``
    reports how far each experiment is."""
    names = list(EXPERIMENTS) if only is None else [str(n).upper() for n in only]
    if not names:
        raise AedynError(f"no experiment named; choose from {', '.join(EXPERIMENTS)} (e.g. --only E2)")
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise AedynError(f"unknown experiment {', '.join(unknown)}; choose from {', '.join(EXPERIMENTS)}")
    modules = {name: experiment(name) for name in names}
    configs = {name: jsonable(mod.config(quick=quick, seeds=seeds, device=device)) for name, mod in modules.items()}
    folder = Path(folder)
    _check_folder(folder)
    previous = {name: _previous(folder, name, configs[name], force) for name in names}  # refusals before any work
    for name in names:
        if previous[name] is None and (folder / name / CHECKPOINT).exists():
            Checkpoint(folder / name / CHECKPOINT, _identity(configs[name]), force=force)  # another config's?
    for name in EXPERIMENTS:  # experiments not asked for stay in the report while their results fit this config
        if name not in modules:
            mod = experiment(name)
            config = jsonable(mod.config(quick=quick, seeds=seeds, device=device))
            try:
                record = _previous(folder, name, config, force=False)
            except AedynError:
                record = None
            if record is not None:
                modules[name], configs[name], previous[name] = mod, config, record
    modules = {name: modules[name] for name in EXPERIMENTS if name in modules}  # report order
    write_json(folder / MARKER, {"kind": "aedyn.report", "format": 1}, force=True, flag="report marker")
    t_start = time.perf_counter()
    report = Report(folder=folder, sections=[], summary={})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, mod in modules.items():
        record = previous[name]
        reused = record is not None
        if record is None:
            t0 = time.perf_counter()
            step = None if progress is None else (lambda message, fraction, name=name: progress(name, message,
                                                                                                 fraction))
            (folder / name).mkdir(exist_ok=True)
            checkpoint = Checkpoint(folder / name / CHECKPOINT, _identity(configs[name]), force=force)
            resumed = len(checkpoint)
            if resumed and progress is not None:
                progress(name, f"resuming an interrupted run: {resumed} finished batches kept", 0.0)
            results = mod.run(configs[name], progress=step, checkpoint=checkpoint)
            record = {"config": configs[name], "results": jsonable(results), "wall_time": time.perf_counter() - t0,
                      "resumed_batches": resumed}
            report.files.append(write_json(folder / name / "results.json", record, force=True, flag="results"))
            checkpoint.remove()
        elif progress is not None:
            progress(name, "reusing the finished results of the same config", 1.0)
        results = record["results"]
        try:
            table = mod.tabulate(results)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            if not reused:
                raise
            raise AedynError(f"{str(folder / name / 'results.json')!r} does not hold {name} results this version can "
                             f"read ({type(exc).__name__}: {exc}); delete it to run {name} again") from None
        (folder / name).mkdir(exist_ok=True)
        extra = mod.tables(results) if hasattr(mod, "tables") else {}
        for stem, frame in {"table": table, **extra}.items():
            report.files.append(write_atomic(folder / name / f"{stem}.parquet", lambda fh, t=frame: t.to_parquet(fh),
                                             force=True, flag="table"))
            report.files.append(write_atomic(folder / name / f"{stem}.csv",
                                             lambda fh, t=frame: fh.write(t.to_csv(index=False).encode()),
                                             force=True, flag="table"))
        pngs = {}
        for fig_name, fig in mod.figures(results).items():
            for ext in ("png", "svg"):
                path = folder / name / f"{fig_name}.{ext}"
                data = _png(fig) if ext == "png" else None
                writer = (lambda fh, d=data: fh.write(d)) if data is not None else (
                    lambda fh, f=fig: f.savefig(fh, format="svg", bbox_inches="tight"))
                report.files.append(write_atomic(path, writer, force=True, flag="figure"))
            pngs[fig_name] = f"{name}/{fig_name}.png"
            plt.close(fig)
        sentences, summary = mod.verdict(results)
        report.summary[name] = summary
        report.sections.append(Section(name=name, title=mod.TITLE, claim=mod.CLAIM, setup=mod.setup(configs[name]),
                                       figures=pngs, table=table, verdict=sentences, reused=reused,
                                       wall_time=float(record.get("wall_time", 0.0)),
                                       resumed_batches=int(record.get("resumed_batches", 0)), tables=extra))
    versions = environment()
    report.summary.update({"config": configs, "versions": versions, "wall_time": time.perf_counter() - t_start})
    report.files.append(write_json(folder / "summary.json", jsonable(report.summary), force=True, flag="summary"))
    report.files.append(write_json(folder / "config.json", {"quick": quick, "device": device, "experiments": configs,
                                                            "versions": versions}, force=True, flag="config"))
    header = _header(quick, device, versions)
    report.files.append(write_atomic(folder / "report.md", lambda fh: fh.write(markdown(header, report.sections)
                                                                               .encode()), force=True, flag="report"))
    report.files.append(write_atomic(folder / "report.html",
                                     lambda fh: fh.write(to_html(header, report.sections, folder).encode()),
                                     force=True, flag="report"))
    return report


def _header(quick: bool, device: str, versions: dict[str, str]) -> list[str]:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return [f"Generated by aedyn {versions['aedyn']} on {stamp}: the {'quick' if quick else 'full'} run on "
            f"{device} (torch {versions['torch']}, numpy {versions['numpy']}, Python {versions['python']}). "
            "Every number below comes from the runs recorded beside this file (config.json, */results.json)."]


def _table_rows(table: Any, limit: int = 40) -> tuple[list[str], list[list[str]]]:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "-" if v != v else f"{v:.4g}"
        return str(v)

    shown = table.head(limit)
    return [str(c) for c in shown.columns], [[cell(v) for v in row] for row in shown.itertuples(index=False)]


def _how(s: Section) -> str:
    if s.reused:
        return "reused from an earlier run"
    if s.resumed_batches:
        return f"ran in {s.wall_time:.0f} s after resuming an interrupted run ({s.resumed_batches} batches kept)"
    return f"ran in {s.wall_time:.0f} s"


def markdown(header: list[str], sections: Sequence[Section]) -> str:
    """The report as Markdown (figures as links to the PNG files beside it)."""
    lines = ["# aedyn: the paper's claims, measured", "", *header, ""]
    for s in sections:
        lines += [f"## {s.name} {s.title}", "", f"**Claim.** {s.claim}", "", "**Set-up.**", ""]
        lines += [f"- {item}" for item in s.setup] + [""]
        lines += [f"![{s.name} {fig}]({path})" for fig, path in s.figures.items()] + [""]
        for stem, frame in {"table": s.table, **s.tables}.items():
            columns, rows = _table_rows(frame)
            title = "Table" if stem == "table" else f"Table: {stem}"
            lines += [f"**{title}.**", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
            if len(frame) > len(rows):
                lines.append(f"\n({len(frame)} rows in all: {s.name}/{stem}.csv)")
            lines.append("")
        lines += ["", f"**Verdict** ({_how(s)}).", "", *s.verdict, ""]
    return "\n".join(lines)


def to_html(header: list[str], sections: Sequence[Section], folder: Path) -> str:
    """The report as one self-contained HTML page (figures inlined as base64 PNG)."""
    e = html.escape
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>aedyn report</title><style>",
           "body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.45}",
           "img{max-width:100%}table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;",
           "padding:.2em .5em;text-align:right}th{background:#f4f4f4}.verdict{background:#f6f8fa;padding:.5em 1em}",
           ".wide{overflow-x:auto;max-width:100%}",
           "</style></head><body>", "<h1>aedyn: the paper's claims, measured</h1>"]
    out += [f"<p>{e(p)}</p>" for p in header]
    for s in sections:
        out += [f"<h2>{e(s.name)} {e(s.title)}</h2>", f"<p><b>Claim.</b> {e(s.claim)}</p>", "<p><b>Set-up.</b></p><ul>"]
        out += [f"<li>{e(item)}</li>" for item in s.setup] + ["</ul>"]
        for fig, path in s.figures.items():
            data = base64.b64encode((folder / path).read_bytes()).decode()
            out.append(f"<figure><img alt='{e(s.name)} {e(fig)}' src='data:image/png;base64,{data}'></figure>")
        for stem, frame in {"table": s.table, **s.tables}.items():
            columns, rows = _table_rows(frame)
            title = "Table" if stem == "table" else f"Table: {stem}"
            out.append(f"<p><b>{e(title)}.</b></p><div class='wide'><table><tr>"
                       + "".join(f"<th>{e(c)}</th>" for c in columns) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{e(v)}</td>" for v in r) + "</tr>" for r in rows] + ["</table></div>"]
            if len(frame) > len(rows):
                out.append(f"<p>({len(frame)} rows in all: {e(s.name)}/{e(stem)}.csv)</p>")
        out += [f"<p><b>Verdict</b> ({e(_how(s))}).</p><div class='verdict'>"]
        out += [f"<p>{e(v)}</p>" for v in s.verdict] + ["</div>"]
    out.append("</body></html>")
    return "\n".join(out)
