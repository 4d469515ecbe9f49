"""``DeltaStore.verify()``: podline's and delta-rs's reads of every table compared, and what
writers left behind (issue 15, point 10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.internals import drop_a_data_file_when_listing, read_every_protocol

from podline.stores import DeltaStore, Finding, VerifyReport

from .conftest import records


def _store(root: Path) -> DeltaStore:
    store = DeltaStore(root, flush_seconds=None)
    for path in ("a/t", "a/t/sub", "b"):
        for i in range(2):
            store.write(path, records([f"{path}{i}"], v=[i], xs=[[i, i + 1]]))
            store.flush()
    return store


def _added(table: Path) -> Path:
    entry = table / "_delta_log" / f"{0:020d}.json"
    # The action whose key is "add" (a line merely containing "add", as a hex id may, is not).
    actions = [json.loads(line) for line in entry.read_text().splitlines()]
    add = next(action["add"] for action in actions if "add" in action)
    return table / add["path"]


def test_a_sound_store_verifies_clean(tmp_path: Path) -> None:
    store = _store(tmp_path)
    report = store.verify()
    assert isinstance(report, VerifyReport)
    assert report.ok
    assert report.tables == (("a", "t"), ("a", "t", "sub"), ("b",))
    assert report.problems == report.leftovers == ()
    assert str(report) == "3 tables: 0 problems, 0 leftovers"
    # A view verifies what is below it, and names paths as the view does.
    assert store.at("a").verify().tables == (("t",), ("t", "sub"))
    assert store.verify("a/t/sub").tables == (("a", "t", "sub"),)


def test_leftovers_of_killed_writers_are_listed(tmp_path: Path) -> None:
    store = _store(tmp_path)
    half = Path(store.table_uri("half"))
    (half / "_delta_log").mkdir(parents=True)  # a writer killed while creating the table
    (half / "_podline.lock").touch()
    table = Path(store.table_uri("b"))
    (table / "part-00000-orphan-c000.parquet").write_bytes(b"never committed")
    (table / "_delta_log" / "_commit_0b1e-9f.json.tmp").write_text("{}")
    report = store.verify()
    assert report.ok  # leftovers are harmless: no reader sees them
    assert report.tables == (("a", "t"), ("a", "t", "sub"), ("b",))
    assert report.leftovers == (
        Finding(("b",), "temporary-file", "_delta_log/_commit_0b1e-9f.json.tmp"),
        Finding(("b",), "unreferenced-file", "part-00000-orphan-c000.parquet"),
        Finding(("half",), "half-created", "no commit; the table holds _podline.lock"),
    )


def test_a_table_podline_reads_differently_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    drop_a_data_file_when_listing(monkeypatch)
    report = store.verify()
    assert not report.ok
    assert [(f.path, f.kind) for f in report.problems] == [
        (("a", "t"), "differs"),
        (("a", "t", "sub"), "differs"),
        (("b",), "differs"),
    ]
    assert report.problems[0].detail.startswith("data files differ: podline only [], delta-rs")


def test_a_table_podline_reads_where_delta_rs_refuses_is_misread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    entry = Path(store.table_uri("b"), "_delta_log", f"{0:020d}.json")
    entry.write_text(entry.read_text().replace('"minReaderVersion": 1', '"minReaderVersion": 4'))
    read_every_protocol(monkeypatch)
    (problem,) = store.verify().problems
    assert (problem.path, problem.kind) == (("b",), "misread")
    assert "podline reads version 1 (2 rows); delta-rs: " in problem.detail


def test_damaged_tables_are_refused_or_unreadable(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with _added(Path(store.table_uri("b"))).open("ab") as file:
        file.write(b"appended")  # delta-rs reads the bytes the log names; podline refuses
    _added(Path(store.table_uri("a/t"))).unlink()  # nobody can read the table
    report = store.verify()
    assert [(f.path, f.kind) for f in report.problems] == [
        (("a", "t"), "unreadable"),
        (("b",), "refused"),
    ]
    assert "is missing" in report.problems[0].detail
    assert report.problems[1].detail.endswith("(delta-rs reads version 1, 2 rows)")
