"""The report: every promised file, reuse of finished experiments, refusals."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from aedyn.errors import AedynError
from aedyn.experiments import e2
from aedyn.report import reproduce
from conftest import one_error_line, run_cli

TINY = {**e2.config(quick=True), "series": [{"data": "sphere", "vary": "n", "ns": [4, 8], "d": 3}], "seeds": 3,
        "max_width": 32, "criteria": ["reach"]}


@pytest.fixture
def tiny_e2(monkeypatch):
    """E2 on a config small enough for a test (the quick one takes minutes)."""
    monkeypatch.setattr(e2, "config", lambda quick=False, seeds=None, device="cpu": {**TINY, "device": device,
                                                                                     "seeds": seeds or 3})


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[dict] = []
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href", "").startswith("#"):
            self.links.append(attrs["href"][1:])


def test_reproduce_writes_every_promised_file_and_reuses_finished_results(tmp_path, tiny_e2, monkeypatch):
    out = tmp_path / "report"
    report = reproduce(out, quick=True, only=["E2"])
    for name in ("report.md", "report.html", "summary.json", "config.json", "report.json", "E2/results.json",
                 "E2/table.parquet", "E2/table.csv", "E2/widths.csv", "E2/details.md", "E2/figures.json",
                 "E2/m_star_vs_n.png", "E2/m_star_vs_n.svg", "E2/success_vs_width.png", "E2/success_vs_width.svg"):
        assert (out / name).is_file(), name
    assert plt.imread(out / "E2" / "m_star_vs_n.png").ndim == 3
    parser = _Parser()
    parser.feed((out / "report.html").read_text())
    assert {"h1", "h2", "table", "img", "nav", "details", "figcaption"} <= set(parser.tags)
    assert all(i["src"].startswith("data:image/png;base64,") and int(i["width"]) <= 980 for i in parser.images)
    assert {"scoreboard", "e2"} <= parser.ids and set(parser.links) <= parser.ids  # every anchor resolves
    summary = json.loads((out / "summary.json").read_text())
    assert {"E2", "scoreboard", "config", "versions", "wall_time"} <= set(summary)
    assert {"m_star", "exponent_n", "findings"} <= set(summary["E2"]) and summary["E2"]["m_star"][0]["regime"] == "weak"
    assert summary["scoreboard"] == [r.to_dict() for r in report.scoreboard]
    table = pd.read_parquet(out / "E2" / "table.parquet")
    assert len(table) == len(pd.read_csv(out / "E2" / "table.csv")) == 4
    md = (out / "report.md").read_text()
    assert md.index("## Scoreboard") < md.index("## Contents") < md.index("## E2 How much over-parameterisation")
    assert "\n\n- " in md and "*Figure E2.1." in md and "[E2/details.md](E2/details.md)" in md
    for f in report.sections[0].findings:
        assert f.sentence[1:] in md
    assert all(d in (out / "E2" / "details.md").read_text() for d in report.sections[0].details)
    # a reused experiment is not drawn again
    drawn = []
    real = e2.figures
    monkeypatch.setattr(e2, "figures", lambda r: drawn.append(1) or real(r))
    again = reproduce(out, quick=True, only=["E2"])
    assert again.sections[0].reused and not report.sections[0].reused and not drawn
    assert [f.path for f in again.sections[0].figures] == [f.path for f in report.sections[0].figures]
    (out / "E2" / "m_star_vs_n.svg").unlink()  # a figure missing: drawn again
    reproduce(out, quick=True, only=["E2"])
    assert drawn and (out / "E2" / "m_star_vs_n.svg").is_file()
    drawn.clear()
    manifest = json.loads((out / "E2" / "figures.json").read_text())
    manifest["stamp"]["aedyn"] = "0.0.0"  # drawn by another aedyn (or from other results): drawn again
    (out / "E2" / "figures.json").write_text(json.dumps(manifest))
    reproduce(out, quick=True, only=["E2"])
    assert drawn


def test_a_different_config_is_refused_unless_forced(tmp_path, tiny_e2):
    out = tmp_path / "report"
    reproduce(out, quick=True, only=["E2"])
    with pytest.raises(AedynError, match="different config"):
        reproduce(out, quick=True, seeds=4, only=["E2"])
    assert not reproduce(out, quick=True, seeds=4, only=["E2"], force=True).sections[0].reused


def test_the_folder_must_be_new_empty_or_a_report(tmp_path, tiny_e2):
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("precious")
    with pytest.raises(AedynError, match="not an aedyn report"):
        reproduce(stranger, only=["E2"])
    assert [p.name for p in stranger.iterdir()] == ["notes.txt"]
    with pytest.raises(AedynError, match="unknown experiment"):
        reproduce(tmp_path / "r", only=["E9"])


def test_reproduce_command_prints_the_scoreboard(tmp_path, capsys, tiny_e2):
    code, stdout, _ = run_cli(["reproduce", "--quick", "--only", "E2", "--out", str(tmp_path / "r"), "-q"], capsys)
    assert code == 0 and stdout.startswith("Scoreboard") and "report.html" in stdout
    assert "Joint training needs less width than weak training" in stdout and "(E2)" in stdout
    assert len(stdout.strip().splitlines()) <= 25
    code, _, err = run_cli(["reproduce", "--only", "E7", "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and one_error_line(err)


def test_damaged_results_and_an_empty_selection_are_one_line(tmp_path, tiny_e2):
    out = tmp_path / "report"
    reproduce(out, quick=True, only=["E2"])
    record = json.loads((out / "E2" / "results.json").read_text())
    (out / "E2" / "results.json").write_text(json.dumps({**record, "results": {"thresholds": 3}}))
    with pytest.raises(AedynError, match="delete it to run E2 again"):
        reproduce(out, quick=True, only=["E2"])
    with pytest.raises(AedynError, match="no experiment named"):
        reproduce(tmp_path / "other", only=[])


def stand_in(**extra) -> type:
    """A cheap experiment with every verb of the protocol."""
    from aedyn.findings import statement

    verbs = {"TITLE": "stand-in", "CLAIM": "c", "CAPTIONS": {}, "config": staticmethod(lambda **kw: {"x": 1}),
             "setup": staticmethod(lambda cfg: ["s"]),
             "run": staticmethod(lambda cfg, progress=None, runner=None: {}),
             "tabulate": staticmethod(lambda r: pd.DataFrame({"a": [1]})),
             "key_table": staticmethod(lambda r: pd.DataFrame({"A": [1]})),
             "figures": staticmethod(lambda r: {}),
             "findings": staticmethod(lambda r: [statement("convergence", "E1", "s", "q", "It converged.",
                                                           "supported", key="1.00x").as_headline()]),
             "details": staticmethod(lambda r: ["every setting"]),
             "summary": staticmethod(lambda r: {"k": 1}),
             "runs": staticmethod(lambda cfg: []), "missing": staticmethod(lambda cfg, r: [])}
    return type("E1", (), {**verbs, **extra})


def test_an_experiment_not_asked_for_keeps_its_section(tmp_path, tiny_e2, monkeypatch):
    """E2 finished earlier; a later --only E1 run (here: a stand-in E1 that is cheap) keeps E2 in
    the report, reused, rather than dropping it."""
    from aedyn import report as report_module
    from aedyn.experiments import e2 as e2_module

    out = tmp_path / "report"
    reproduce(out, quick=True, only=["E2"])
    monkeypatch.setattr(report_module, "EXPERIMENTS", ("E1", "E2"))
    fake = stand_in()
    monkeypatch.setattr(report_module, "experiment", lambda name: fake if name == "E1" else e2_module)
    again = reproduce(out, quick=True, only=["E1"])
    assert [s.name for s in again.sections] == ["E1", "E2"] and again.sections[1].reused
    assert {"E1", "E2"} <= set(json.loads((out / "summary.json").read_text()))
    assert [r.claim for r in again.scoreboard] == ["convergence", "width"]


def test_an_interrupted_run_resumes_from_its_run_store(tmp_path, tiny_e2, monkeypatch):
    """Killed while the fourth batch trains: the rerun reads the finished runs from the report's run
    store (OUT/runs) instead of training them, and its results equal an uninterrupted run's."""
    from aedyn import sweep

    trained: list[tuple] = []
    real = sweep.execute_batch

    def counting(runs, *args, **kw):
        trained.append(tuple(r.run_id for r in runs))
        if len(trained) == 4 and not again:
            raise KeyboardInterrupt  # the fourth batch is in flight when the run is killed
        return real(runs, *args, **kw)

    again: list = []
    monkeypatch.setattr(sweep, "execute_batch", counting)
    out = tmp_path / "report"
    with pytest.raises(KeyboardInterrupt):
        reproduce(out, quick=True, only=["E2"])
    assert not (out / "E2" / "results.json").exists()
    stored = sweep.Store.open(out / "runs").finished_ids()
    first = {i for batch in trained[:3] for i in batch}
    assert stored == first  # every finished batch is in the store, the one in flight is not
    again.append(True)
    trained.clear()
    resumed = reproduce(out, quick=True, only=["E2"])
    assert not first & {i for batch in trained for i in batch}  # the finished runs were not trained again
    whole = reproduce(tmp_path / "whole", quick=True, only=["E2"])
    assert resumed.summary["E2"] == whole.summary["E2"]
    assert resumed.sections[0].resumed == len(first) and whole.sections[0].resumed == 0


def test_reproduce_command_turns_warnings_into_one_note_each(tmp_path, capsys, tiny_e2, monkeypatch):
    """A warning raised many times while the experiments run is one 'note:' line, no source line."""
    import warnings as w

    from aedyn.errors import AedynWarning

    real = e2.least_widths

    def noisy(*args, **kwargs):
        for _ in range(3):
            w.warn(AedynWarning("LOBPCG stopped after 500 iterations; raise max_iter"), stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(e2, "least_widths", noisy)
    code, _, err = run_cli(["reproduce", "--quick", "--only", "E2", "--out", str(tmp_path / "r"), "-q"], capsys)
    assert code == 0 and err.count("note: LOBPCG stopped") == 1 and ".py:" not in err


def test_further_tables_of_an_experiment_are_written_and_linked(tmp_path, monkeypatch):
    """An experiment's ``tables`` (E3's certificate) land beside its main table, as Parquet and CSV,
    linked from the section; the section's own table is its key table."""
    from aedyn import report as report_module

    fake = stand_in(tables=staticmethod(lambda r: {"certificate": pd.DataFrame({"inside": [3, 0]})}))
    monkeypatch.setattr(report_module, "EXPERIMENTS", ("E1",))
    monkeypatch.setattr(report_module, "experiment", lambda name: fake)
    out = tmp_path / "r"
    reproduce(out, quick=True, only=["E1"])
    assert pd.read_parquet(out / "E1" / "certificate.parquet")["inside"].tolist() == [3, 0]
    assert pd.read_csv(out / "E1" / "certificate.csv")["inside"].tolist() == [3, 0]
    md = (out / "report.md").read_text()
    assert "[E1/certificate.csv](E1/certificate.csv)" in md and "| A |" in md
    assert "E1/certificate.csv" in (out / "report.html").read_text()


def test_a_key_table_with_too_many_columns_or_a_figure_without_caption_is_refused(tmp_path, monkeypatch):
    from aedyn import report as report_module

    monkeypatch.setattr(report_module, "EXPERIMENTS", ("E1",))
    wide = stand_in(key_table=staticmethod(lambda r: pd.DataFrame({f"c{i}": [1] for i in range(11)})))
    monkeypatch.setattr(report_module, "experiment", lambda name: wide)
    with pytest.raises(ValueError, match="11 columns"):
        reproduce(tmp_path / "a", quick=True, only=["E1"])
    fig = plt.figure()
    bare = stand_in(figures=staticmethod(lambda r: {"curve": fig}))
    monkeypatch.setattr(report_module, "experiment", lambda name: bare)
    with pytest.raises(AedynError, match="no caption"):
        reproduce(tmp_path / "b", quick=True, only=["E1"])


def test_a_profile_goes_to_the_experiments_that_have_one_and_is_refused_elsewhere(tmp_path):
    with pytest.raises(AedynError, match="profile 'scale'"):
        reproduce(tmp_path / "r", only=["E1"], profile="scale")
    with pytest.raises(AedynError, match="profile"):
        e2.config(profile="huge")
    scale = e2.config(profile="scale")
    assert max(n for sr in scale["series"] for n in sr["ns"]) == 256
    assert {sr.get("step_rule", "global") for sr in scale["series"]} == {"global", "layerwise"}
    assert not (tmp_path / "r").exists()  # refused before anything was written


KILLED = '''
import sys, time, json
from aedyn import cli, sweep
from aedyn.experiments import e2
tiny = json.loads(sys.argv[2])
e2.config = lambda quick=False, seeds=None, device="cpu", profile=None: {**tiny, "device": device, "profile": profile}
real = sweep.execute_batch
def slowed(*args, **kw):
    out = real(*args, **kw)
    time.sleep(float(sys.argv[3]))  # room for the test to kill it between batches and within one
    return out
sweep.execute_batch = slowed
sys.exit(cli.run(["reproduce", "--only", "E2", "--profile", "scale", "--out", sys.argv[1]]))
'''


@pytest.mark.slow
def test_the_scale_profile_resumes_after_kill_9_and_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    """`aedyn reproduce --only E2 --profile scale` (here with a small config in its place) killed with
    SIGKILL while it trains: the rerun reads every stored run, trains the rest, leaves no temporary
    file and no run twice in the store, and its E2 results equal an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from aedyn.store import Store

    tiny = {**TINY, "series": [{"data": "sphere", "vary": "n", "ns": [4, 8, 16], "d": 3},
                               {"data": "sphere", "vary": "n", "ns": [4, 8, 16], "d": 3, "step_rule": "layerwise"}],
            "criteria": ["reach", "lambda0"]}
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    out = tmp_path / "report"
    cmd = [sys.executable, str(script), str(out), json.dumps(tiny)]
    proc = subprocess.Popen([*cmd, "0.4"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    parts = out / "runs" / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and (
            not parts.is_dir() or len(list(parts.glob("*.parquet"))) < 3):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()  # still training when killed
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = Store.open(out / "runs").finished_ids()
    assert stored and not (out / "E2" / "results.json").exists()  # killed mid-way
    done = subprocess.run([*cmd, "0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    store = Store.open(out / "runs")
    frame = store.load()
    assert frame["run_id"].is_unique and stored <= set(frame["run_id"])
    assert not [p for p in (out / "runs").rglob("*") if p.name.startswith(".")]  # no temporary file left
    monkeypatch.setattr(e2, "config", lambda quick=False, seeds=None, device="cpu", profile=None:
                        {**tiny, "device": device, "profile": profile})
    whole = reproduce(tmp_path / "whole", only=["E2"], profile="scale")
    resumed = json.loads((out / "E2" / "results.json").read_text())
    assert json.dumps(resumed["results"], sort_keys=True) == json.dumps(
        json.loads((tmp_path / "whole" / "E2" / "results.json").read_text())["results"], sort_keys=True)
    assert resumed["resumed"] >= len(stored) and whole.sections[0].resumed == 0


def test_incomplete_results_run_again_from_the_run_store_and_are_never_reported(tmp_path, tiny_e2, monkeypatch):
    """E2's results cut short (a search dropped, another unfinished) are not reused: E2 runs again,
    reading every run from the report's run store (nothing trained), and the report equals the
    whole one."""
    from aedyn import sweep

    out = tmp_path / "report"
    whole = reproduce(out, quick=True, only=["E2"])
    path = out / "E2" / "results.json"
    record = json.loads(path.read_text())
    thresholds = record["results"]["thresholds"]
    unfinished = {**thresholds[1], "trials": thresholds[1]["trials"][:1]}
    trained: list[int] = []
    monkeypatch.setattr(sweep, "execute_batch", lambda *a, **k: trained.append(1))
    for cut in ([thresholds[0]], [unfinished, *thresholds[1:]], [*thresholds, thresholds[0]]):
        path.write_text(json.dumps({**record, "results": {**record["results"], "thresholds": cut}}))
        notes: list[str] = []
        again = reproduce(out, quick=True, only=["E2"], on_note=notes.append)
        assert not again.sections[0].reused and not trained
        assert any("running E2 again" in n for n in notes), notes
        assert again.summary["E2"] == whole.summary["E2"]
        assert json.loads(path.read_text())["results"] == record["results"]


@pytest.mark.parametrize(("damage", "words"), [
    (lambda r: r.update(thresholds="x"), "'thresholds' must be a list"),
    (lambda r: r["thresholds"].__setitem__(0, {}), "no 'setting' in thresholds[0]"),
    (lambda r: r["thresholds"][0].update(trials=3), "internal"),
    (lambda r: r["thresholds"][0]["trials"][0].update(width="wide"), "internal"),
    (lambda r: r.pop("config"), "no 'config'"),
    (lambda r: r["thresholds"][0]["setting"].update(lambda_min_inf=float("nan")), "NaN"),
    (lambda r: r["thresholds"][0]["m_star"].update(reach=4096), "does not follow from its trials"),
])
def test_damaged_results_are_one_line_that_names_the_problem_and_the_fix(tmp_path, tiny_e2, capsys, damage, words):
    out = tmp_path / "report"
    reproduce(out, quick=True, only=["E2"])
    path = out / "E2" / "results.json"
    record = json.loads(path.read_text())
    damage(record["results"])
    path.write_text(json.dumps(record))
    code, _, err = run_cli(["reproduce", "--quick", "--only", "E2", "--out", str(out), "-q"], capsys)
    assert code == 2 and one_error_line(err), err
    assert "delete it to run E2 again" in err and "internal error" not in err
    if words != "internal":
        assert words in err


def test_nothing_is_written_before_every_option_is_checked(tmp_path, tiny_e2, capsys):
    """A bad device, seeds beyond any seed or too many for memory: refused with nothing written, so
    the corrected command then runs."""
    out = tmp_path / "r"
    for bad in (["--device", "tpu"], ["--seeds", "99999999999999999999999"], ["--seeds", "1000000000"],
                ["--max-memory", "1e400"]):
        code, _, err = run_cli(["reproduce", "--quick", "--only", "E2", "--out", str(out), "-q", *bad], capsys)
        assert code == 2 and one_error_line(err) and "internal error" not in err, (bad, err)
        assert not out.exists(), bad
    assert "runs) needs about" in run_cli(["reproduce", "--only", "E2", "--out", str(out), "--seeds", "1000000000"],
                                          capsys)[2]
    code, _, _ = run_cli(["reproduce", "--quick", "--only", "E2", "--out", str(out), "-q"], capsys)
    assert code == 0 and (out / "E2" / "results.json").is_file()


def test_a_file_where_an_experiment_goes_is_refused_and_kept(tmp_path, tiny_e2, capsys):
    out = tmp_path / "r"
    reproduce(out, quick=True, only=["E2"])
    for part in ("E2", "runs"):
        kept = tmp_path / "kept"
        (out / part).rename(kept)
        (out / part).write_text("mine")
        code, _, err = run_cli(["reproduce", "--quick", "--only", "E2", "--out", str(out), "-q"], capsys)
        assert code == 2 and one_error_line(err) and "is a file where the report keeps" in err, err
        assert (out / part).read_text() == "mine"
        (out / part).unlink()
        kept.rename(out / part)


def test_a_memory_refusal_inside_e2_is_an_error_naming_reproduces_options(tmp_path, tiny_e2, capsys):
    out = tmp_path / "r"
    code, _, err = run_cli(["reproduce", "--quick", "--only", "E2", "--out", str(out), "--max-memory", "1KB", "-q"],
                           capsys)
    assert code == 2 and one_error_line(err) and "first width" in err, err
    assert "--seeds" in err and "--width," not in err and "--steps" not in err and "--max-width" not in err
    assert not (out / "E2" / "results.json").exists()
