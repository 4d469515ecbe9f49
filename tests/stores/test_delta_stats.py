"""The file statistics podline writes (``_delta_stats``): bounded, and what delta-rs writes."""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, QueryBuilder, write_deltalake
from hypothesis import example, given, settings
from hypothesis import strategies as st

from podline.stores import RECORD_ID, DeltaStore
from podline.stores._delta_stats import STRING_BOUND_BYTES, file_stats

from .conftest import records

# Characters at the edges of UTF-8's widths and of what can be incremented.
_EDGES = "a~\x7f\x80\u07ff\u0800\ud7ff\ue000\uffff\U00010000\U0010ffff"
_TEXT = st.text(alphabet=st.sampled_from(_EDGES) | st.characters(codec="utf-8"), max_size=90)


def _added_stats(uri: str) -> list[dict[str, Any]]:
    """The statistics of every file added to the table, in log order."""
    stats = []
    for entry in sorted(Path(uri, "_delta_log").glob("*.json")):
        for line in entry.read_bytes().splitlines():  # bytes: not at U+0085 and the like
            action = json.loads(line)
            if "add" in action:
                stats.append(json.loads(action["add"]["stats"]))
    return stats


@settings(max_examples=60, deadline=None)
@given(values=st.lists(_TEXT, min_size=1, max_size=4))
@example(values=["a" * 100 + "x", "b" * 100])
@example(values=["\U0010ffff" * 40, "a"])  # a maximum no prefix of which can be raised
@example(values=["a" + "\U0010ffff" * 40])
@example(values=["a" * 63 + "\x7f" + "z" * 10])  # incrementing 0x7f would widen it
@example(values=["é" * 60])  # the 64-byte cut falls inside a character
def test_string_bounds_are_the_ones_delta_rs_writes(
    tmp_path_factory: pytest.TempPathFactory, values: list[str]
) -> None:
    rows = pa.table({"s": pa.array(values, pa.large_string())})
    uri = str(tmp_path_factory.mktemp("bounds") / "t")
    write_deltalake(uri, rows)
    (theirs,) = _added_stats(uri)
    ours = file_stats(rows)
    if "minValues" in ours:
        assert (ours["minValues"], ours["maxValues"]) == (theirs["minValues"], theirs["maxValues"])
    else:
        # No prefix of the maximum can be raised to a bound: delta-rs keeps the whole value,
        # however long; podline writes no bounds (which every reader takes as unknown).
        assert len(theirs["maxValues"]["s"].encode()) > STRING_BOUND_BYTES
        assert theirs["maxValues"]["s"] == max(values)
    assert ours["nullCount"] == theirs["nullCount"]
    assert ours["numRecords"] == theirs["numRecords"]


def test_huge_strings_make_small_log_entries(tmp_path: Path) -> None:
    store = DeltaStore(tmp_path / "store")
    big = ["x" * 1_000_000, "y" * 1_000_000]
    store.write("logs", records(["a", "b"], stdout=big))
    store.flush()
    (entry,) = Path(store.table_uri("logs"), "_delta_log").glob("*.json")
    assert entry.stat().st_size < 2_000  # delta-rs: 1.4 KB; the whole values: 2 MB
    stats = _added_stats(store.table_uri("logs"))[0]
    assert stats["minValues"]["stdout"] == "x" * STRING_BOUND_BYTES
    assert stats["maxValues"]["stdout"] == "y" * (STRING_BOUND_BYTES - 1) + "z"
    assert DeltaStore(tmp_path / "store").scan("logs").column("stdout").to_pylist() == big


_ROWS = st.fixed_dictionaries(
    {
        "i": st.none() | st.integers(-(2**63), 2**63 - 1),
        "s": st.none() | _TEXT,
        "f": st.none() | st.floats(allow_nan=True, allow_infinity=True),
        "b": st.none() | st.booleans(),
        "d": st.none() | st.dates(),
        "ts": st.none() | st.datetimes(timezones=st.just(dt.UTC)),
        "raw": st.none() | st.binary(max_size=3),
        "point": st.none() | st.fixed_dictionaries({"x": st.integers(-5, 5)}),
    }
)
_TYPES: dict[str, pa.DataType] = {
    "i": pa.int64(),
    "s": pa.large_string(),
    "f": pa.float64(),
    "b": pa.bool_(),
    "d": pa.date32(),
    "ts": pa.timestamp("us", tz="UTC"),
    "raw": pa.large_binary(),
    "point": pa.struct([("x", pa.int64())]),
}
_NONE = dict.fromkeys(_TYPES)


@settings(max_examples=10, deadline=None)
@given(files=st.lists(st.lists(_ROWS, min_size=1, max_size=4), min_size=1, max_size=4))
@example(files=[[{**_NONE, "f": 1.5, "b": True, "d": dt.date(2020, 1, 1)}]])  # unbounded on main
@example(files=[[{**_NONE, "s": "\U0010ffff" * 30}], [{**_NONE, "s": "a"}]])
@example(files=[[{**_NONE, "f": math.nan}, {**_NONE, "f": 2.0}], [{**_NONE, "f": -math.inf}]])
@example(files=[[{**_NONE, "ts": dt.datetime(2020, 1, 1, 0, 0, 0, 466001, tzinfo=dt.UTC)}]])
def test_delta_rs_skips_files_by_podline_bounds_without_losing_a_row(
    tmp_path_factory: pytest.TempPathFactory, files: list[list[dict[str, Any]]]
) -> None:
    """delta-rs's readers (its Arrow dataset, its SQL engine) skip files by the statistics
    podline wrote; a predicate on any column still finds every row that satisfies it."""
    store = DeltaStore(tmp_path_factory.mktemp("skipping"), flush_seconds=None)
    n = 0
    for rows in files:  # one file each
        columns = {name: pa.array([r[name] for r in rows], t) for name, t in _TYPES.items()}
        store.write("t", records([f"r{n + i}" for i in range(len(rows))], **columns))
        store.flush()
        n += len(rows)
    uri = store.table_uri("t")
    dataset = DeltaTable(uri).to_pyarrow_dataset()
    everything = dataset.to_table()
    for name in _TYPES:
        for probe in _probes(name, [r[name] for rows in files for r in rows]):
            found = dataset.to_table(filter=probe, columns=[RECORD_ID])
            assert sorted(found[RECORD_ID].to_pylist()) == sorted(
                everything.filter(probe)[RECORD_ID].to_pylist()
            ), (name, str(probe))
    strings = {r["s"] for rows in files for r in rows if r["s"] is not None}
    engine = QueryBuilder().register("t", DeltaTable(uri))
    for value in sorted(strings)[:3]:
        literal = value.replace("'", "''")
        result = pa.table(engine.execute(f"SELECT s FROM t WHERE s = '{literal}'").read_all())
        expected = [v for v in everything["s"].to_pylist() if v == value]
        assert result.column("s").to_pylist() == expected


_COMPARISONS = (operator.eq, operator.ge, operator.le)


def _probes(name: str, values: list[Any]) -> list[pc.Expression]:
    """Predicates on column ``name`` (holding ``values``): null tests and comparisons with
    its least, greatest and first values."""
    field = pc.field(name, "x") if name == "point" else pc.field(name)
    # (No is_nan: pyarrow's own Parquet reader skips a row group holding NaN by its
    # statistics, which leave NaN out, whatever the Delta log says.)
    probes = [field.is_null()]
    present = [v["x"] if name == "point" else v for v in values if v is not None]
    present = [v for v in present if not (isinstance(v, float) and math.isnan(v))]
    if present:
        t = pa.int64() if name == "point" else _TYPES[name]
        for value in {min(present), max(present), present[0]}:
            probes += [compare(field, pa.scalar(value, t)) for compare in _COMPARISONS]
    return probes


@settings(max_examples=60, deadline=None)
@given(row=_ROWS)
@example(row={**_NONE, "f": math.nan})
@example(row={**_NONE, "f": -0.0, "ts": dt.datetime(2020, 1, 1, 0, 0, 0, 466001, tzinfo=dt.UTC)})
def test_one_row_bounds_are_those_of_the_row_twice(row: dict[str, Any]) -> None:
    # A one-row file's bounds are found without kernels: the ones min_max gives for the
    # same value twice.
    one = pa.table({name: pa.array([row[name]], t) for name, t in _TYPES.items()})
    ours = file_stats(one)
    twice = file_stats(pa.concat_tables([one, one]))
    assert {k: v for k, v in ours.items() if k not in ("numRecords", "nullCount")} == {
        k: v for k, v in twice.items() if k not in ("numRecords", "nullCount")
    }
    assert {k: 2 * v for k, v in ours["nullCount"].items()} == twice["nullCount"]
