"""The results store: create/open/resume, refusals that leave foreign files alone, Parquet round-trips,
duplicate run_ids, damaged and temporary files, OS errors as one line."""

from __future__ import annotations

import errno
import json
import math
import multiprocessing
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aedyn import store as store_module
from aedyn.errors import AedynError, AedynWarning
from aedyn.store import STORE_FILE, Store, load_results

CONFIG = {"name": "grid", "widths": [8, 16], "lr": 0.1, "seeds": 2}
OTHER = {"name": "grid", "widths": [8, 32], "lr": 0.1, "seeds": 2}


def one_line(excinfo: pytest.ExceptionInfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    return text


def snapshot(folder) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def parts_of(store: Store) -> list[str]:
    return sorted(p.name for p in (store.path / "parts").iterdir())


def test_create_open_and_resume_with_the_same_config(tmp_path):
    out = tmp_path / "out"
    store = Store.create(out, CONFIG)
    meta = json.loads((out / STORE_FILE).read_text())
    assert meta["kind"] == "aedyn.store" and meta["format"] == 1
    assert meta["configs"] == [CONFIG] and store.configs == [CONFIG]
    assert isinstance(meta["created"], str) and {"aedyn", "python", "torch"} <= set(meta["versions"])
    store.append([{"run_id": "r1", "loss": 0.5}])
    before = (out / STORE_FILE).read_bytes()

    same = dict(reversed(list(CONFIG.items())))  # another key order is the same config
    again = Store.create(out, same)
    assert again.configs == [CONFIG]
    assert again.finished_ids() == {"r1"}
    assert (out / STORE_FILE).read_bytes() == before  # resuming rewrites nothing
    assert Store.open(out).configs == [CONFIG]
    assert Store.open(str(out)).load()["run_id"].tolist() == ["r1"]


def test_an_empty_folder_becomes_a_store(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    Store.create(out, CONFIG).append([{"run_id": "a"}])
    assert load_results(out)["run_id"].tolist() == ["a"]


def test_a_different_config_is_refused_then_added_with_force(tmp_path):
    out = tmp_path / "out"
    Store.create(out, CONFIG).append([{"run_id": "r1"}])
    meta = json.loads((out / STORE_FILE).read_text())
    (out / STORE_FILE).write_text(json.dumps({**meta, "created": "2000-01-01T00:00:00+00:00"}))
    before = snapshot(out)
    with pytest.raises(AedynError, match=r"different sweep config; use another --out folder, or --force") as err:
        Store.create(out, OTHER)
    one_line(err)
    assert snapshot(out) == before

    forced = Store.create(out, OTHER, force=True)
    assert forced.configs == [CONFIG, OTHER]
    assert Store.open(out).configs == [CONFIG, OTHER]
    assert Store.create(out, OTHER).configs == [CONFIG, OTHER]  # now either config resumes
    assert Store.create(out, CONFIG).finished_ids() == {"r1"}
    assert json.loads((out / STORE_FILE).read_text())["created"] == "2000-01-01T00:00:00+00:00"  # kept


@pytest.mark.parametrize("force", [False, True])
def test_a_foreign_folder_or_file_is_refused_even_with_force(tmp_path, force):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    refused = r"'.*mine' is not an aedyn store \(no store.json\).*new or empty folder"
    with pytest.raises(AedynError, match=refused) as err:
        Store.create(folder, CONFIG, force=force)
    one_line(err)
    assert snapshot(folder) == {"notes.txt": b"keep me"}
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]  # no parts/, no probe

    file = tmp_path / "results.csv"
    file.write_text("a,b\n1,2\n")
    with pytest.raises(AedynError, match=r"results.csv' is not an aedyn store .*new or empty folder") as err:
        Store.create(file, CONFIG, force=force)
    one_line(err)
    assert file.read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "results.csv"]


def test_missing_parent_folders_of_a_new_store_are_made_and_said(tmp_path):
    out = tmp_path / "no" / "such" / "out"
    assert store_module.missing_folders(out) == [tmp_path / "no", tmp_path / "no" / "such", out]
    assert Store.inspect(out) is None and not (tmp_path / "no").exists()  # a dry run makes nothing
    notes = []
    Store.create(out, CONFIG, on_note=notes.append).append([{"run_id": "a"}])
    assert load_results(out)["run_id"].tolist() == ["a"]
    assert len(notes) == 1 and "\n" not in notes[0]
    assert f"created the missing folders {str(tmp_path / 'no')!r}, {str(tmp_path / 'no' / 'such')!r}" in notes[0]
    notes.clear()
    Store.create(out, CONFIG, on_note=notes.append)  # resuming makes nothing and says nothing
    Store.create(tmp_path / "no" / "other", CONFIG, on_note=notes.append)  # its parent exists
    assert notes == []


def test_a_new_store_under_a_file_or_a_read_only_folder_is_refused(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("keep")
    for out in (tmp_path / "file" / "out", tmp_path / "file" / "deeper" / "out"):
        for call, args in ((Store.create, (out, CONFIG)), (Store.inspect, (out,))):
            with pytest.raises(AedynError, match=r"cannot make the store .*'.*file' is a file, not a folder") as err:
                call(*args)
            one_line(err)
    assert (tmp_path / "file").read_text() == "keep"

    monkeypatch.setattr(store_module.os, "access", lambda path, mode: False)  # root can write anywhere
    for call in (lambda: Store.create(tmp_path / "ro" / "out", CONFIG), lambda: Store.inspect(tmp_path / "ro")):
        with pytest.raises(AedynError, match=r"the folder '.*' is not writable; choose a folder you can write") as err:
            call()
        one_line(err)
    monkeypatch.undo()

    real = Path.mkdir

    def read_only_below_a(self, *args, **kwargs):
        if self.parent.name == "a":
            raise OSError(errno.EROFS, "Read-only file system")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only_below_a)
    with pytest.raises(AedynError, match=r"cannot write '.*b': the file system is read-only") as err:
        Store.create(tmp_path / "a" / "b" / "out", CONFIG)
    one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # the folder it made is removed again


def test_append_and_load_round_trip_every_kind_of_value(tmp_path):
    store = Store.create(tmp_path / "out", CONFIG)
    rows = [
        {"run_id": "b", "width": 8, "lr": 0.1, "ok": True, "status": "done", "note": None,
         "loss": [1.0, 0.5, float("nan"), float("inf")], "steps": [0, 10, 20, 30], "final": float("nan")},
        {"run_id": "a", "width": 16, "lr": 1e-300, "ok": False, "status": "diverged", "note": None,
         "loss": [], "steps": [0], "final": float("-inf")},
    ]
    path = store.append(rows)
    assert path is not None and path.parent == tmp_path / "out" / "parts"
    assert path.name.startswith("part-") and path.suffix == ".parquet"
    df = store.load()
    assert df["run_id"].tolist() == ["b", "a"]  # the written order, not sorted
    assert df.columns[0] == "run_id"
    assert df["width"].tolist() == [8, 16] and pd.api.types.is_integer_dtype(df["width"])
    assert df["lr"].tolist() == [0.1, 1e-300]
    assert df["ok"].tolist() == [True, False] and pd.api.types.is_bool_dtype(df["ok"])
    assert df["status"].tolist() == ["done", "diverged"]
    assert df["note"].isna().all()
    loss_b, loss_a = df["loss"]
    assert list(loss_b[:2]) == [1.0, 0.5] and math.isnan(loss_b[2]) and loss_b[3] == math.inf
    assert len(loss_a) == 0
    assert [list(s) for s in df["steps"]] == [[0, 10, 20, 30], [0]]
    assert all(isinstance(v, int) for v in df["steps"][0].tolist())
    assert math.isnan(df["final"][0]) and df["final"][1] == -math.inf
    assert store.append([]) is None
    assert len(parts_of(store)) == 1


def test_rows_with_different_columns_across_and_within_appends(tmp_path):
    store = Store.create(tmp_path / "out", CONFIG)
    store.append([{"x": 1, "run_id": "a"}, {"run_id": "b", "x": 2, "only_b": "yes"}])  # a column not in row 0
    store.append([{"run_id": "c", "y": 2.5, "x": None, "curve": [1.5]}])
    store.append([{"run_id": "d", "x": 4.5, "curve": [1, 2]}])  # ints where floats were
    df = load_results(tmp_path / "out")
    assert df["run_id"].tolist() == ["a", "b", "c", "d"]
    assert list(df.columns) == ["run_id", "x", "only_b", "y", "curve"]
    assert df["x"].tolist()[:2] == [1, 2] and math.isnan(df["x"][2]) and df["x"][3] == 4.5
    assert df["only_b"].tolist()[1] == "yes" and df["only_b"].isna().tolist() == [True, False, True, True]
    assert df["y"].isna().tolist() == [True, True, False, True]
    assert list(df["curve"][2]) == [1.5] and list(df["curve"][3]) == [1, 2]


def test_columns_of_incompatible_kinds_across_files_still_load(tmp_path):
    store = Store.create(tmp_path / "out", CONFIG)
    store.append([{"run_id": "a", "tag": 3}])
    store.append([{"run_id": "b", "tag": "three"}])
    assert store.load()["tag"].tolist() == [3, "three"]


def test_a_column_of_mixed_kinds_is_refused_and_nothing_is_written(tmp_path):
    store = Store.create(tmp_path / "out", CONFIG)
    with pytest.raises(AedynError, match=r"column 'v' cannot be stored") as err:
        store.append([{"run_id": "a", "v": 1.0}, {"run_id": "b", "v": "x"}])
    one_line(err)
    assert parts_of(store) == [] and store.finished_ids() == set()


def test_finished_ids_see_every_part_file(tmp_path):
    out = tmp_path / "out"
    store = Store.create(out, CONFIG)
    assert store.finished_ids() == set()
    store.append([{"run_id": "a"}, {"run_id": "b"}])
    store.append([{"run_id": "c"}])
    assert store.finished_ids() == {"a", "b", "c"}
    other = Store.open(out)
    assert other.finished_ids() == {"a", "b", "c"}
    other.append([{"run_id": "d"}])  # a file written through another handle is seen too
    assert store.finished_ids() == {"a", "b", "c", "d"}
    ids = store.finished_ids()
    ids.add("zzz")  # a copy: the caller cannot corrupt the store's memory
    assert "zzz" not in store.finished_ids()


def test_rows_without_a_string_run_id_are_refused(tmp_path):
    store = Store.create(tmp_path / "out", CONFIG)
    for bad in ({"x": 1}, {"run_id": 7}, {"run_id": ""}, {"run_id": None}):
        with pytest.raises(AedynError, match=r"row 1 has no run_id") as err:
            store.append([{"run_id": "ok"}, bad])
        one_line(err)
    with pytest.raises(AedynError, match=r"not a dict"):
        store.append([("run_id", "x")])
    assert parts_of(store) == []


def test_duplicate_run_ids_are_refused_within_a_call_and_against_the_store(tmp_path):
    store = Store.create(tmp_path / "out", CONFIG)
    with pytest.raises(AedynError, match=r"run_id 'a' appears twice") as err:
        store.append([{"run_id": "a"}, {"run_id": "b"}, {"run_id": "a"}])
    one_line(err)
    assert parts_of(store) == []
    store.append([{"run_id": "a"}, {"run_id": "b"}])
    written = parts_of(store)
    with pytest.raises(AedynError, match=r"run_id 'b' is already in the store .*would duplicate") as err:
        store.append([{"run_id": "c"}, {"run_id": "b"}])
    one_line(err)
    with pytest.raises(AedynError, match=r"would duplicate"):
        Store.open(tmp_path / "out").append([{"run_id": "a"}])  # a fresh handle reads the ids first
    assert parts_of(store) == written
    assert store.finished_ids() == {"a", "b"}


def test_a_run_in_two_part_files_is_loaded_once_with_a_warning(tmp_path):
    store = Store.create(tmp_path / "out", CONFIG)
    first = store.append([{"run_id": "a", "v": 1}, {"run_id": "b", "v": 2}])
    store.append([{"run_id": "c", "v": 3}])
    stamp = first.name.split("-")[1]
    copy = first.with_name(f"part-{stamp}-zzzz.parquet")  # a second writer, between the two appends
    shutil.copy(first, copy)
    later = first.with_name("part-99999999999999999999-x.parquet")  # and one after them, with other values
    pq.write_table(pa.Table.from_pylist([{"run_id": "b", "v": 20}]), later)
    assert parts_of(store)[:2] == [first.name, copy.name] and parts_of(store)[-1] == later.name
    with pytest.warns(AedynWarning, match=r"3 duplicate row\(s\).*kept the first"):
        df = load_results(tmp_path / "out")
    assert df["run_id"].tolist() == ["a", "b", "c"]
    assert df["v"].tolist() == [1, 2, 3]
    assert df.index.tolist() == [0, 1, 2]
    assert Store.open(tmp_path / "out").finished_ids() == {"a", "b", "c"}


def test_a_hidden_temporary_file_is_never_read(tmp_path):
    store = Store.create(tmp_path / "out", CONFIG)
    store.append([{"run_id": "a"}])
    (tmp_path / "out" / "parts" / ".part-x.parquet.123.tmp").write_bytes(b"half a parquet file \x00\x01")
    (tmp_path / "out" / "parts" / "part-dir.parquet").mkdir()  # a folder with a data name is no data either
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_results(tmp_path / "out")["run_id"].tolist() == ["a"]
    assert Store.open(tmp_path / "out").finished_ids() == {"a"}


@pytest.mark.parametrize("damage", ["truncate", "garbage", "no_run_id"])
def test_a_damaged_part_file_is_named_with_the_fix(tmp_path, damage):
    store = Store.create(tmp_path / "out", CONFIG)
    good = store.append([{"run_id": "a", "curve": [1.0, 2.0]}])
    bad = store.append([{"run_id": "b", "curve": [3.0]}])
    if damage == "truncate":
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    elif damage == "garbage":
        bad.write_bytes(b"not parquet at all")
    else:
        pq.write_table(pa.table({"x": [1]}), bad)
    for read in (lambda: Store.open(tmp_path / "out").load(), lambda: Store.open(tmp_path / "out").finished_ids()):
        with pytest.raises(AedynError, match=rf"part file '.*{bad.name}' is damaged .*delete it and rerun") as err:
            read()
        one_line(err)
    assert good.exists() and bad.exists()  # reading never deletes


def test_load_results_of_something_that_is_not_a_store(tmp_path):
    hint = r"pass a folder written by 'aedyn sweep --out'"
    with pytest.raises(AedynError, match=rf"does not exist.*{hint}"):
        load_results(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(AedynError, match=rf"not an aedyn store \(no store.json\); {hint}") as err:
        load_results(tmp_path / "plain")
    one_line(err)
    (tmp_path / "f.parquet").write_bytes(b"x")
    with pytest.raises(AedynError, match=rf"is a file.*{hint}"):
        Store.open(tmp_path / "f.parquet")


def test_an_empty_store_loads_to_an_empty_frame_with_run_id(tmp_path):
    Store.create(tmp_path / "out", CONFIG)
    df = load_results(tmp_path / "out")
    assert isinstance(df, pd.DataFrame) and len(df) == 0 and "run_id" in df.columns
    shutil.rmtree(tmp_path / "out" / "parts")  # a store killed before parts/ was made
    assert len(load_results(tmp_path / "out")) == 0
    assert Store.open(tmp_path / "out").finished_ids() == set()


@pytest.mark.parametrize("text, match", [
    ("{not json", r"not valid JSON"),
    ('{"kind": "something.else", "format": 1, "configs": []}', r"not an aedyn store file"),
    ('{"kind": "aedyn.store", "format": 1, "configs": {"a": 1}}', r"no list of configs"),
    ('{"kind": "aedyn.store", "format": 2, "configs": []}', r"format 2, newer than this aedyn reads.*upgrade"),
    ("[1, 2]", r"not an aedyn store file"),
])
def test_a_corrupt_store_file_is_one_line(tmp_path, text, match):
    out = tmp_path / "out"
    Store.create(out, CONFIG)
    (out / STORE_FILE).write_text(text)
    calls = (lambda: Store.open(out), lambda: Store.create(out, CONFIG), lambda: Store.create(out, OTHER, force=True))
    for call in calls:
        with pytest.raises(AedynError, match=match) as err:
            call()
        one_line(err)
    assert (out / STORE_FILE).read_text() == text  # force never overwrites a store file it cannot read


def test_a_config_that_is_not_json_is_refused(tmp_path):
    with pytest.raises(AedynError, match=r"cannot be written as JSON"):
        Store.create(tmp_path / "out", {"f": object()})
    with pytest.raises(AedynError, match=r"must be a dict"):
        Store.create(tmp_path / "out", ["a"])  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_os_errors_are_one_line(tmp_path, monkeypatch):
    store = Store.create(tmp_path / "out", CONFIG)

    def full(table, fh):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module.pq, "write_table", full)
    with pytest.raises(AedynError, match=r"cannot write .*part-.*the disk is full") as err:
        store.append([{"run_id": "a"}])
    one_line(err)
    monkeypatch.undo()
    assert parts_of(store) == []  # no part file, no temporary left behind
    assert store.finished_ids() == set()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store_module.tempfile, "mkstemp", read_only)
    with pytest.raises(AedynError, match=r"cannot write .*parts'.*read-only; choose a writable folder") as err:
        Store.create(tmp_path / "out", CONFIG)  # resuming checks that the store can still be written
    one_line(err)


def test_inspect_judges_as_create_does_and_writes_nothing(tmp_path):
    assert Store.inspect(tmp_path / "new") is None and not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    assert Store.inspect(tmp_path / "empty") is None and not any((tmp_path / "empty").iterdir())
    (tmp_path / "stranger").mkdir()
    (tmp_path / "stranger" / "notes.txt").write_text("mine")
    with pytest.raises(AedynError, match="not an aedyn store"):
        Store.inspect(tmp_path / "stranger")
    Store.create(tmp_path / "s", {"a": 1})
    found = Store.inspect(tmp_path / "s")
    assert found is not None and found.holds({"a": 1}) and not found.holds({"a": 2})


def test_paths_that_are_not_paths_are_one_line():
    for call in (lambda: load_results(None), lambda: load_results(123), lambda: Store.open(None),
                 lambda: Store.inspect(""), lambda: Store.create(None, CONFIG)):
        with pytest.raises(AedynError, match=r"the store folder must be a path \(a string or pathlib.Path\); got") \
                as err:
            call()
        one_line(err)
    with pytest.raises(AedynError, match=r"got None$"):
        load_results(None)


def test_a_parts_file_in_place_of_the_folder_is_a_damaged_store(tmp_path):
    out = tmp_path / "out"
    Store.create(out, CONFIG)
    shutil.rmtree(out / "parts")
    (out / "parts").write_text("not a folder")
    for read in (lambda: load_results(out), lambda: Store.open(out).finished_ids()):
        with pytest.raises(AedynError, match=r"parts' is not a folder, so '.*out' is a damaged store; move") as err:
            read()
        one_line(err)


# ---- processes writing one store at once ---------------------------------------------------------

def _together(count: int, target, *args) -> list[int]:
    """Run ``target(barrier, k, *args)`` in ``count`` forked processes that start together; their exit codes."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(count)
    procs = [ctx.Process(target=target, args=(barrier, k, *args)) for k in range(count)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    return [proc.exitcode for proc in procs]


def _create(barrier, k: int, out: str, config: dict | None) -> None:
    barrier.wait()
    try:
        Store.create(out, {"cfg": k} if config is None else config, force=config is None)
    except AedynError as exc:
        print(exc)
        raise SystemExit(1) from None


def _append(barrier, k: int, out: str) -> None:
    store = Store.open(out)
    store.finished_ids()  # a sweep reads what is stored, trains, then writes: both see nothing yet
    barrier.wait()
    store.append([{"run_id": f"r{j}", "writer": k} for j in range(5)], skip_stored=True)


def test_configs_forced_into_one_store_at_once_are_all_kept(tmp_path):
    out = tmp_path / "out"
    Store.create(out, {"cfg": "first"})
    assert _together(40, _create, str(out), None) == [0] * 40
    configs = Store.open(out).configs
    assert len(configs) == 41 and {c["cfg"] for c in configs} == {"first", *range(40)}
    assert sorted(p.name for p in out.iterdir()) == ["parts", STORE_FILE, "store.lock"]  # no temporaries left


def test_processes_creating_one_new_store_at_once_all_succeed(tmp_path):
    for trial in range(8):
        out = tmp_path / f"new{trial}" / "out"  # its parent is made at the same moment too
        assert _together(4, _create, str(out), CONFIG) == [0] * 4, trial
        assert Store.open(out).configs == [CONFIG]


def test_two_writers_of_one_run_store_it_once(tmp_path):
    out = tmp_path / "out"
    Store.create(out, CONFIG)
    assert _together(6, _append, str(out)) == [0] * 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = load_results(out)
    assert sorted(frame["run_id"]) == [f"r{j}" for j in range(5)] and frame["writer"].nunique() == 1
    assert len(parts_of(Store.open(out))) == 1
