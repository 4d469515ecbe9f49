"""Compact status rows: a node's fully cached run is one status row, read back as a row per
packet (``podline.observability.compact``). The reference is the same runs observed with
``compact_cached=False``, which writes a row per packet as every run did before."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl
import pytest

import podline
from podline import function_pod
from podline.observability import StatusObserver, inspect
from podline.observability.columns import PACKETS, PIPELINES, RUNS_PATH, STATUS_SCOPE
from podline.observability.compact import markers_path
from podline.pipeline import Pipeline
from podline.stores import MemoryStore, Store


@function_pod("y", live_output=False)
def double(x: int) -> int:
    if x < 0:
        raise ValueError("negative")
    return 2 * x


def source(values: list[int]) -> podline.DictSource:
    rows = [{"id": i, "x": v} for i, v in enumerate(values)]
    return podline.DictSource(rows, tag_columns=["id"], label="numbers")


def run(
    store: Store,
    name: str,
    values: list[int],
    *,
    compact: bool,
    run_id: str,
    in_status_tables: bool = False,
) -> None:
    """Run ``double`` on ``values``: default observers (``compact``), or a status observer
    writing a row per packet. ``in_status_tables``: the default observers as ``run()``
    made them before run records carried status rows (a fully cached node's compact row
    in its status table, as stores written by earlier versions hold it)."""
    with Pipeline(name, store) as pipeline:
        double.pod(source(values))
    observer = None
    if not compact:
        observer = StatusObserver(store.at(PIPELINES, name, STATUS_SCOPE), compact_cached=False)
    elif in_status_tables:
        observer = pipeline.default_observer()
    pipeline.run(observer=observer, run_id=run_id)


def carried(store: Store, name: str) -> pl.DataFrame:
    """The compact status rows the run records carry (``carried.py``), as stored."""
    records = store.at(PIPELINES, name).scan(RUNS_PATH)
    assert records is not None
    frame = pl.from_arrow(records)
    assert isinstance(frame, pl.DataFrame)
    return frame.filter(pl.col("status_same_as").is_not_null())


def status_rows(store: Store, name: str) -> pl.DataFrame:
    """Every stored status row of ``double``, as stored (compact rows included)."""
    scope = store.at(PIPELINES, name, STATUS_SCOPE)
    path = scope.list()[0]  # then the markers' table
    table = scope.scan(path)
    assert table is not None
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def scope_paths(store: Store, name: str) -> list[tuple[str, ...]]:
    """The status tables' paths below the status scope (then the markers')."""
    return store.at(PIPELINES, name, STATUS_SCOPE).list()


def comparable(frame: pl.DataFrame) -> pl.DataFrame:
    """What ``status()`` says, without the times (the two stores ran at other moments)."""
    columns = ["node", "state", "id", "run_id", "cached", "error_type", "attempts"]
    return frame.select(columns).sort(["run_id", "id", "state"])


# Sequences of source versions: each runs once, with the run ids r0, r1, ...
HISTORIES = {
    "cached again and again": [[1, 2, 3]] * 4,
    "a failure, then fixed by another version": [[1, -2, 3], [1, -2, 3], [1, 2, 3], [1, 2, 3]],
    "a growing source": [[1], [1, 2], [1, 2], [1, 2, 3], [1, 2, 3]],
    "a version back": [[1, 2], [5, 6], [1, 2], [1, 2]],
}


# Where the compact rows of fully cached runs go: carried by the run records (now), in the
# status tables (stores written before), or one then the other (a store used by both).
LAYOUTS = {"run records": [False], "status tables": [True], "both": [True, False, False, True]}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("history", sorted(HISTORIES))
def test_status_reads_as_if_every_packet_had_its_row(
    store: Store, history: str, layout: str
) -> None:
    other = MemoryStore()  # a store of its own: a shared memo would make its runs cached
    older = LAYOUTS[layout]
    for i, values in enumerate(HISTORIES[history]):
        before = older[i % len(older)]
        run(store, "p", values, compact=True, run_id=f"r{i}", in_status_tables=before)
        run(other, "p", values, compact=False, run_id=f"r{i}")
    compact = inspect(store, "p")
    reference = inspect(other, "p")
    for query in (
        lambda o: o.status(),
        lambda o: o.status(latest=False),
        lambda o: o.status(run_id="r3"),
        lambda o: o.status(state="CACHED"),
        lambda o: o.status(id=1, latest=False),
    ):
        assert comparable(query(compact)).equals(comparable(query(reference)))
    columns = ["run_id", "computed", "cached", "skipped", "failed", "unfinished"]
    assert compact.runs().select(columns).equals(reference.runs().select(columns))


def test_a_fully_cached_run_adds_one_status_row(store: Store) -> None:
    values = list(range(50))
    for i in range(4):
        run(store, "p", values, compact=True, run_id=f"r{i}")
    rows = status_rows(store, "p")
    assert rows.height == 50  # r0's rows; a row per later run, carried by its run record
    assert rows[PACKETS].null_count() == 50
    compact = carried(store, "p").sort("run_id")
    assert compact["run_id"].to_list() == ["r1", "r2", "r3"]
    assert compact["node"].to_list() == ["double"] * 3
    assert compact["status_packets"].to_list() == [50, 50, 50]
    assert set(compact["status_same_as"]) == {"r0"}  # the run that lists the packets
    assert compact["status_table"].to_list() == [list(scope_paths(store, "p")[0])] * 3
    scope = store.at(PIPELINES, "p", STATUS_SCOPE)
    markers = scope.scan(markers_path(scope.list()[0]))
    assert markers is not None
    (marker,) = markers.to_pylist()
    assert (marker["__record_id"], marker["__meta:run_id"], marker[PACKETS]) == (
        marker["__meta:node_hash"],
        "r0",
        50,
    )
    latest = inspect(store, "p").status()
    assert latest.height == 50
    assert set(latest["run_id"]) == {"r3"}
    assert set(latest["state"]) == {"CACHED"}


def test_a_run_not_fully_cached_writes_a_row_per_packet(store: Store) -> None:
    run(store, "p", [1, 2], compact=True, run_id="r0")
    run(store, "p", [1, 2, 3], compact=True, run_id="r1")  # two cached, one computed
    rows = status_rows(store, "p")
    assert rows[PACKETS].null_count() == rows.height
    assert rows.filter(pl.col("__meta:run_id") == "r1").height == 3


def _drop_marker(scope: Store) -> object:
    path = markers_path(scope.list()[0])
    markers = scope.scan(path)
    assert markers is not None
    return scope.delete(path, markers["__record_id"].to_pylist())


def _crash_before_marking(scope: Store) -> object:
    """As a run killed after its rows were written, before its marker: rows, no marker."""
    return _drop_marker(scope)


@pytest.mark.parametrize("forget", [_crash_before_marking])
def test_without_a_run_listing_the_packets_rows_are_written(
    store: Store, forget: Callable[[Store], object]
) -> None:
    run(store, "p", [1, 2, 3], compact=True, run_id="r0")
    forget(store.at(PIPELINES, "p", STATUS_SCOPE))
    run(store, "p", [1, 2, 3], compact=True, run_id="r1")  # all cached, no marker to name r0
    rows = status_rows(store, "p")
    assert rows.filter(pl.col("__meta:run_id") == "r1").height == 3
    run(store, "p", [1, 2, 3], compact=True, run_id="r2")  # r1 lists them all: compact
    r2 = carried(store, "p")
    assert r2.select("run_id", "status_packets", "status_same_as").rows() == [("r2", 3, "r1")]


def test_the_cached_packets_of_a_run_that_also_computes_are_one_row(store: Store) -> None:
    run(store, "p", [1, -2, 3], compact=True, run_id="r0")  # a row each, and the marker
    run(store, "p", [1, -2, 3], compact=True, run_id="r1")  # id 1 fails again, 0 and 2 cached
    r1 = status_rows(store, "p").filter(pl.col("__meta:run_id") == "r1")
    assert sorted(r1["__meta:state"].to_list()) == ["CACHED", "FAILED"]
    assert r1.filter(pl.col("__meta:state") == "CACHED")[PACKETS].to_list() == [2]
    latest = inspect(store, "p").status().sort("id")
    assert latest.select("id", "state", "run_id").rows() == [
        (0, "CACHED", "r1"),
        (1, "FAILED", "r1"),
        (2, "CACHED", "r1"),
    ]


@pytest.mark.parametrize("backend", ["pg_store", "s3_store"])
def test_compact_rows_on_postgres_and_object_storage(
    backend: str, request: pytest.FixtureRequest
) -> None:
    store: Store = request.getfixturevalue(backend)
    other = MemoryStore()
    for i, values in enumerate(HISTORIES["a failure, then fixed by another version"]):
        # r1 computes its failure again (its compact row in the status table), r3 is fully
        # cached: carried by its run record, or in the status table as stored before.
        before = backend == "s3_store"
        run(store, "p", values, compact=True, run_id=f"r{i}", in_status_tables=before)
        run(other, "p", values, compact=False, run_id=f"r{i}")
    in_tables = [2, 3] if before else [2]
    assert sorted(status_rows(store, "p")[PACKETS].drop_nulls().to_list()) == in_tables
    assert carried(store, "p")["status_packets"].to_list() == ([] if before else [3])
    for query in (lambda o: o.status(), lambda o: o.status(latest=False)):
        assert comparable(query(inspect(store, "p"))).equals(comparable(query(inspect(other, "p"))))
