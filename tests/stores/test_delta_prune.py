"""Lookups on a Delta table read only what may hold their rows (``_delta_prune``), and return
exactly what reading everything returns, as podline and delta-rs read it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podline.stores import RECORD_ID, DeltaStore, _delta_table

_EDGES = "a~\x7f\x80\u07ff\u0800\ud7ff\ue000\uffff\U00010000\U0010ffff"
_TEXT = st.text(alphabet=st.sampled_from(_EDGES) | st.characters(codec="utf-8"), max_size=80)
_TIME = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)
_ROW = st.fixed_dictionaries(
    {
        "k": st.none() | st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 3),
        "s": st.none() | _TEXT | st.sampled_from(["x", "x" * 70, "x" * 63 + "y"]),
        "t": st.none() | _TIME,
        "f": st.none() | st.floats(allow_nan=True) | st.just(0.0),
    }
)
_SCHEMA = pa.schema(
    [
        (RECORD_ID, pa.large_string()),
        ("k", pa.int64()),
        ("s", pa.large_string()),
        ("t", pa.timestamp("us", tz="UTC")),
        ("f", pa.float64()),
    ]
)


@pytest.fixture(autouse=True)
def _prune_small_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    # These tables are small, and a small table is read whole (``SMALL_TABLE_BYTES``); the
    # pruning they test is that of larger ones.
    monkeypatch.setattr(_delta_table, "SMALL_TABLE_BYTES", 0)


def _batches(batches: list[list[dict[str, Any]]]) -> list[pa.Table]:
    tables, n = [], 0
    for rows in batches:
        ids = [f"r{n + i}" for i in range(len(rows))]
        n += len(rows)
        data = {RECORD_ID: ids, **{c: [r[c] for r in rows] for c in ("k", "s", "t", "f")}}
        tables.append(pa.table(data, schema=_SCHEMA))
    return tables


def _expected(table: pa.Table, where: dict[str, Any]) -> pa.Table:
    mask = None
    for name, value in where.items():
        column = table[name]
        test = pc.is_null(column) if value is None else pc.equal(column, value)
        mask = test if mask is None else pc.and_(mask, test)
    assert mask is not None
    return table.filter(pc.fill_null(mask, False))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(_ROW, min_size=1, max_size=6), min_size=1, max_size=5),
    data=st.data(),
    compact=st.booleans(),
)
def test_lookups_equal_full_reads_and_delta_rs(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[list[dict[str, Any]]],
    data: st.DataObject,
    compact: bool,
) -> None:
    root = tmp_path_factory.mktemp("prune")
    with DeltaStore(root, compact_files=None) as store:
        for table in _batches(batches):
            store.write("t", table)
            store.flush()  # a data file per batch
        if compact:  # delta-rs rewrites them, with its own statistics
            store.compact()
    rows = [r for batch in batches for r in batch]
    columns = data.draw(st.lists(st.sampled_from(["k", "s", "t", "f"]), min_size=1, unique=True))
    picked = data.draw(st.sampled_from(rows))
    where = {c: picked[c] if data.draw(st.booleans()) else data.draw(_ROW)[c] for c in columns}
    with DeltaStore(root) as store:  # a fresh reader: no buffers, no indexes
        everything = store.scan("t")
        assert everything is not None
        expected = _expected(everything, where)
        found = store.scan("t", where=where)
        assert found is not None
        # (NaN equals NaN here: Table.equals says it does not, whatever the rows.)
        assert found.schema == expected.schema
        assert pl.from_arrow(found).equals(pl.from_arrow(expected))
        projected = store.scan("t", columns=["s", RECORD_ID], where=where)
        assert projected is not None
        assert projected.equals(expected.select(["s", RECORD_ID]))
        ids = data.draw(st.lists(st.sampled_from([*everything[RECORD_ID].to_pylist(), "no"])))
        read = store.read("t", ids, columns=["t", "k"])
        position = {v: i for i, v in enumerate(everything[RECORD_ID].to_pylist())}
        order = [position[i] for i in ids if i in position]
        assert read is not None
        assert read.equals(everything.take(pa.array(order, pa.int64())).select(["t", "k"]))
        uri = store.table_uri("t")
    # delta-rs (through polars) reading the whole table finds the same records.
    frame = pl.read_delta(uri)
    theirs = _expected(frame.to_arrow().cast(everything.schema), where)
    assert sorted(theirs[RECORD_ID].to_pylist()) == sorted(expected[RECORD_ID].to_pylist())


def _data_files(table: Path) -> list[Path]:
    return sorted(table.glob("*.parquet"), key=lambda p: p.stat().st_mtime_ns)


def test_a_lookup_reads_no_file_its_statistics_exclude(tmp_path: Path) -> None:
    """A file whose bounds exclude the value is never opened: damaging it (same size) breaks
    a full scan and leaves the lookup as it was."""
    with DeltaStore(tmp_path, compact_files=None) as store:
        for start in (0, 100):
            ids = [f"r{start + i:03d}" for i in range(100)]
            rows = {RECORD_ID: ids, "k": list(range(start, start + 100))}
            store.write("t", pa.table(rows))
            store.flush()
        uri = Path(store.table_uri("t"))
    first = _data_files(uri)[0]
    first.write_bytes(b"\0" * first.stat().st_size)
    with DeltaStore(tmp_path) as store:
        found = store.scan("t", where={"k": 150})
        assert found is not None
        assert found.to_pylist() == [{RECORD_ID: "r150", "k": 150}]
        read = store.read("t", ["r199"])
        assert read is not None
        assert read.to_pylist() == [{RECORD_ID: "r199", "k": 199}]
        with pytest.raises(Exception, match="cannot be read"):
            store.scan("t")


def test_lookups_read_files_delta_rs_rewrote_with_view_types(tmp_path: Path) -> None:
    """A deletion is a delta-rs merge, which rewrites the remaining rows with string views,
    types Arrow cannot filter: a lookup that picks some rows of such a file converts them
    (user test: plan, explain and trace crashed after ``invalidate``)."""
    with DeltaStore(tmp_path, compact_files=None) as store:
        ids = [f"r{i:03d}" for i in range(20)]
        rows = {
            RECORD_ID: ids,
            "s": [f"text {i}" for i in range(20)],
            "b": [bytes([i]) for i in range(20)],
            "l": [[f"x{i}"] for i in range(20)],
        }
        store.write("t", pa.table(rows))
        store.flush()
        assert store.delete("t", ["r000"]) == 1
        uri = Path(store.table_uri("t"))
    written = {str(pq.ParquetFile(f).schema_arrow.field("s").type) for f in _data_files(uri)}
    assert "string_view" in written  # what this test is about: delta-rs's rewrite
    with DeltaStore(tmp_path) as store:
        read = store.read("t", ["r005", "r002"], columns=["s", "b", "l"])
        assert read is not None
        assert read.to_pylist() == [
            {"s": "text 5", "b": b"\x05", "l": ["x5"]},
            {"s": "text 2", "b": b"\x02", "l": ["x2"]},
        ]
        found = store.scan("t", columns=[RECORD_ID, "l"], where={"s": "text 7"})
        assert found is not None
        assert found.to_pylist() == [{RECORD_ID: "r007", "l": ["x7"]}]
