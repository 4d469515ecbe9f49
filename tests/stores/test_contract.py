"""The Store contract, run against every backend (see ``conftest.BACKENDS``), against a
Delta store on a local S3 server and against a PostgreSQL store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import BACKENDS

from podline import matching
from podline.conversion import table_from_rows
from podline.errors import StoreError
from podline.stores import RECORD_ID, Store, _index, open_store

from .conftest import records


@pytest.fixture(
    params=[
        *sorted(BACKENDS),
        pytest.param("s3", marks=pytest.mark.service),
        pytest.param("postgres", marks=pytest.mark.service),
    ],
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every backend, a Delta store on a local S3 server and a PostgreSQL store: the
    contract is the same."""
    if request.param in ("s3", "postgres"):
        fixture = {"s3": "s3_store", "postgres": "pg_store"}[request.param]
        found: Store = request.getfixturevalue(fixture)
        yield found
        return
    backend = BACKENDS[request.param](tmp_path)
    yield backend
    backend.close()


# --------------------------------------------------------------------------- views


def test_implements_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert isinstance(store.at("a"), Store)
    assert type(store.at("a")) is type(store)


def test_views_compose(store: Store) -> None:
    assert store.at("a").at("b") == store.at("a", "b")
    assert store.at("a/b") == store.at("a", "b")
    assert store.at("a", "b").prefix == ("a", "b")
    assert store.at() == store
    assert store.at("a") != store.at("b")
    assert hash(store.at("a").at("b")) == hash(store.at("a", "b"))


def test_views_share_records(store: Store) -> None:
    store.at("a").write("b", records(["x"], v=[1]))
    assert store.read("a/b", ["x"]).to_pylist() == [{RECORD_ID: "x", "v": 1}]
    assert store.at("a", "b").read((), ["x"]).column("v").to_pylist() == [1]
    assert store.at("a").exists("b")
    assert store.exists(("a", "b"))
    assert not store.exists("a")
    assert not store.exists(())


def test_list_is_relative_to_the_view(store: Store) -> None:
    for path in ["a/b", "a/b/c", "a/d", "e"]:
        store.write(path, records(["x"], v=[1]))
    assert store.list() == [("a", "b"), ("a", "b", "c"), ("a", "d"), ("e",)]
    assert store.list("a/b") == [("a", "b"), ("a", "b", "c")]
    assert store.at("a").list() == [("b",), ("b", "c"), ("d",)]
    assert store.at("a").list("b") == [("b",), ("b", "c")]
    assert store.at("zzz").list() == []
    store.flush()
    assert store.at("a", "b").list() == [(), ("c",)]


@pytest.mark.parametrize("path", ["", (), ("a", ".."), ("a/b",), ("x\x00y",), (".",)])
def test_invalid_paths_are_rejected(store: Store, path: Any) -> None:
    with pytest.raises(StoreError):
        store.write(path, records(["x"], v=[1]))


# --------------------------------------------------------------------------- reads


def test_read_follows_the_requested_order(store: Store) -> None:
    store.write("t", records(["a", "b", "c"], v=[1, 2, 3]))
    got = store.read("t", ["c", "missing", "a", "c"])
    assert got.column(RECORD_ID).to_pylist() == ["c", "a", "c"]
    assert got.column("v").to_pylist() == [3, 1, 3]
    assert store.read("t", pa.array(["b"])).column("v").to_pylist() == [2]


def test_read_projects_columns(store: Store) -> None:
    store.write("t", records(["a", "b"], v=[1, 2], w=["x", "y"]))
    got = store.read("t", ["b"], columns=["w"])
    assert got.column_names == ["w"]
    assert got.to_pylist() == [{"w": "y"}]
    with pytest.raises(StoreError, match="'nope'"):
        store.read("t", ["b"], columns=["nope"])


def test_custom_id_column(store: Store) -> None:
    table = pa.table({"sid": ["s1", "s2", "s1"], "v": [1, 2, 3]})
    assert store.write("t", table, id_column="sid") == 2
    assert store.write("t", table, id_column="sid") == 0
    assert store.read("t", ["s1"], id_column="sid").column("v").to_pylist() == [1]


def test_none_when_nothing_was_written(store: Store) -> None:
    assert store.read("never", ["a"]) is None
    assert store.scan("never") is None
    assert store.scan("never", where={"v": 1}) is None


def test_typed_empty_table_when_nothing_matches(store: Store) -> None:
    store.write("t", records(["a"], v=[1]))
    got = store.read("t", ["zzz"])
    assert got is not None
    assert got.num_rows == 0
    assert got.schema == pa.schema([(RECORD_ID, pa.large_string()), ("v", pa.int64())])
    empty = store.scan("t", where={"v": 99})
    assert empty is not None
    assert empty.num_rows == 0
    assert empty.schema == got.schema


def test_scan_filters_and_projects(store: Store) -> None:
    table = records(["a", "b", "c", "d"], k=["x", "y", "x", None], n=[1, 2, 3, 4])
    store.write("t", table)
    assert store.scan("t").num_rows == 4
    assert sorted(store.scan("t", where={"k": "x"}, columns=["n"]).column("n").to_pylist()) == [
        1,
        3,
    ]
    assert store.scan("t", where={"k": "x", "n": 3}).column(RECORD_ID).to_pylist() == ["c"]
    assert store.scan("t", where={"k": None}).column(RECORD_ID).to_pylist() == ["d"]
    assert store.scan("t", columns=["n", "k"]).column_names == ["n", "k"]
    with pytest.raises(StoreError, match="'nope'"):
        store.scan("t", where={"nope": 1})
    with pytest.raises(StoreError, match="'nope'"):
        store.scan("t", columns=["nope"])


def test_scan_rejects_filters_on_nested_columns(store: Store) -> None:
    store.write("t", records(["a"], l=[[1, 2]]))
    with pytest.raises(StoreError, match="'l'"):
        store.scan("t", where={"l": [1, 2]})


@pytest.mark.parametrize("flushed", [True, False])
def test_scan_batches_give_the_scan_in_pieces(store: Store, flushed: bool) -> None:
    # Several writes (several files), a column added later, some rows buffered or not:
    # the pieces concatenate to the scan, in its order, typed by the path's schema.
    assert store.scan_batches("t") is None
    store.write("t", records(["a", "b"], v=[1, 2]))
    store.flush()
    store.write("t", records(["c"], v=[3], w=["x"]))
    if flushed:
        store.flush()
    for columns in (None, ["w", RECORD_ID], ["v"]):
        whole = store.scan("t", columns=columns)
        assert whole is not None
        found = store.scan_batches("t", columns=columns)
        assert found is not None
        parts = list(found)
        assert parts
        assert all(part.schema == whole.schema for part in parts)
        assert pa.concat_tables(parts).equals(whole)


def test_scan_batches_of_an_empty_path_give_its_schema(store: Store) -> None:
    store.write("t", records(["a"], v=[1]))
    store.flush()
    store.delete("t", ["a"])
    found = store.scan_batches("t")
    assert found is not None
    rows = pa.concat_tables(list(found))
    assert rows.num_rows == 0
    assert rows.schema == store.scan("t").schema


# --------------------------------------------------------------------------- write once


def test_existing_id_is_a_no_op(store: Store) -> None:
    assert store.write("t", records(["a", "b"], v=[1, 2])) == 2
    assert store.write("t", records(["b", "c"], v=[20, 3])) == 1
    store.flush()
    assert store.write("t", records(["a", "c"], v=[10, 30])) == 0
    got = store.read("t", ["a", "b", "c"])
    assert got.column("v").to_pylist() == [1, 2, 3]


def test_duplicates_in_one_batch_first_wins(store: Store) -> None:
    assert store.write("t", records(["a", "b", "a", "a"], v=[1, 2, 3, 4])) == 2
    assert store.scan("t").num_rows == 2
    assert store.read("t", ["a"]).column("v").to_pylist() == [1]


def test_append_takes_the_callers_word_for_new_ids(store: Store) -> None:
    assert store.append("t", records(["a", "b"], v=[1, 2])) == 2
    assert store.read("t", ["b", "a"]).column("v").to_pylist() == [2, 1]  # read your writes
    store.flush()
    assert store.append("t", records(["c"], v=[3])) == 1
    # Appended ids count for later writes, committed or buffered.
    assert store.write("t", records(["a", "c", "d"], v=[10, 30, 4])) == 1
    assert sorted(store.scan("t").column(RECORD_ID).to_pylist()) == ["a", "b", "c", "d"]
    with pytest.raises(StoreError, match="None"):
        store.append("t", records(["e", None], v=[5, 6]))


def test_read_your_writes_before_flush(store: Store) -> None:
    store.write("t", records(["a"], v=[1]))
    store.at("t").write((), records(["b"], v=[2]))
    assert store.read("t", ["b", "a"]).column("v").to_pylist() == [2, 1]
    assert store.scan("t").num_rows == 2
    assert store.list() == [("t",)]
    assert store.exists("t")
    store.flush()
    assert store.read("t", ["b", "a"]).column("v").to_pylist() == [2, 1]


def test_id_column_is_checked(store: Store) -> None:
    with pytest.raises(StoreError, match="'missing'"):
        store.write("t", records(["a"], v=[1]), id_column="missing")
    with pytest.raises(StoreError, match="strings"):
        store.write("t", pa.table({RECORD_ID: [1, 2]}))
    with pytest.raises(StoreError, match="None"):
        store.write("t", records(["a", None], v=[1, 2]))
    with pytest.raises(StoreError, match="None"):
        store.read("t", ["a", None])  # type: ignore[list-item]
    with pytest.raises(StoreError, match="strings"):
        store.read("t", pa.array([1, 2]))
    with pytest.raises(StoreError, match="pyarrow Table"):
        store.write("t", {RECORD_ID: ["a"]})
    assert not store.exists("t")
    batch = pa.RecordBatch.from_pydict({RECORD_ID: ["a"], "v": [1]})
    assert store.write("t", batch) == 1


def test_written_count_ignores_empty_batches(store: Store) -> None:
    assert store.write("t", records([], v=pa.array([], pa.int64()))) == 0
    assert not store.exists("t")
    assert store.read("t", ["a"]) is None


# --------------------------------------------------------------------------- schema


def test_new_nullable_column(store: Store) -> None:
    store.write("t", records(["a"], v=[1]))
    store.flush()
    store.write("t", records(["b"], v=[2], extra=["e"]))
    got = store.read("t", ["a", "b"])
    assert got.column("extra").to_pylist() == [None, "e"]
    assert got.schema.field("extra").nullable
    store.flush()
    assert store.read("t", ["a", "b"]).column("extra").to_pylist() == [None, "e"]


def test_missing_nullable_column_is_filled(store: Store) -> None:
    store.write("t", records(["a"], v=[1], w=["x"]))
    store.write("t", records(["b"], v=[2]))
    assert store.read("t", ["a", "b"]).column("w").to_pylist() == ["x", None]


def test_missing_required_column_is_an_error(store: Store) -> None:
    required = pa.schema([(RECORD_ID, pa.large_string()), pa.field("v", pa.int64(), False)])
    store.write("t", pa.table({RECORD_ID: ["a"], "v": [1]}, schema=required))
    with pytest.raises(StoreError, match="'v'"):
        store.write("t", records(["b"], w=["x"]))
    with pytest.raises(StoreError, match="'v'"):
        store.write("t", records(["b"], v=[None]))


def test_conflicting_type_names_the_column(store: Store) -> None:
    store.write("t", records(["a"], v=[1], w=["x"]))
    with pytest.raises(StoreError, match="'w'"):
        store.write("t", records(["b"], v=[2], w=[1.5]))
    store.flush()
    with pytest.raises(StoreError, match="'v'"):
        store.write("t", records(["b"], v=["two"]))
    assert store.read("t", ["b"]).num_rows == 0


def test_physical_variants_are_one_type(store: Store) -> None:
    store.write("t", pa.table({RECORD_ID: ["a"], "s": pa.array(["x"], pa.string())}))
    store.write("t", pa.table({RECORD_ID: ["b"], "s": pa.array(["y"], pa.large_string())}))
    got = store.scan("t")
    assert got.schema.field("s").type == pa.large_string()
    assert sorted(got.column("s").to_pylist()) == ["x", "y"]


def test_nested_nullability_is_checked_against_the_data(store: Store) -> None:
    strict = table_from_rows([{RECORD_ID: "a", "l": [1]}])
    store.write("t", strict)
    loose = pa.table({RECORD_ID: ["b", "c"], "l": pa.array([[2], [None]], pa.list_(pa.int64()))})
    with pytest.raises(StoreError, match=r"l\[\]"):
        store.write("t", loose)
    assert store.write("t", loose.slice(0, 1)) == 1


# --------------------------------------------------------------------------- types


class Inner(TypedDict):
    name: str
    score: float | None


@dataclasses.dataclass
class Outer:
    inner: Inner
    tags: list[str]


SCHEMA: dict[str, Any] = {
    RECORD_ID: str,
    "i": int,
    "f": float,
    "b": bool,
    "s": str,
    "by": bytes,
    "ts": dt.datetime,
    "d": dt.date,
    "p": Path,
    "l": list[int],
    "m": dict[str, float],
    "pair": tuple[int, int],
    "mixed": tuple[int, str],
    "rec": Outer,
    "nested": list[dict[str, list[int | None]]],
    "oi": int | None,
    "os": str | None,
    "ol": list[int | None] | None,
    "otup": tuple[float, float] | None,
    "orec": Inner | None,
    "nothing": None,
}


def _row(i: int) -> dict[str, Any]:
    none = i % 2 == 1
    return {
        RECORD_ID: f"r{i}",
        "i": -(2**62) + i,
        "f": 1.5 * i,
        "b": i % 2 == 0,
        "s": f"é{i}",
        "by": bytes([0, i]),
        "ts": dt.datetime(2024, 2, 29, 23, 59, 59, 123456) + dt.timedelta(days=i),
        "d": dt.date(1970, 1, 1) + dt.timedelta(days=i),
        "p": Path(f"/data/file{i}.txt"),
        "l": list(range(i)),
        "m": {"a": 0.5, "b": float(i)},
        "pair": (i, i + 1),
        "mixed": (i, "x"),
        "rec": Outer(Inner(name="n", score=None if none else 0.25), ["t", "u"]),
        "nested": [{"k": [1, None]}, {}],
        "oi": None if none else i,
        "os": None if none else "s",
        "ol": None if none else [None, 1],
        "otup": None if none else (0.5, 1.5),
        "orec": None if none else Inner(name="o", score=1.0),
        "nothing": None,
    }


def test_every_schema_type_round_trips(store: Store) -> None:
    table = table_from_rows([_row(i) for i in range(4)], SCHEMA)
    assert store.write("types", table) == 4
    store.flush()
    again = open_store(store.to_config())
    got = again.read("types", [f"r{i}" for i in range(4)])
    assert got.schema == table.schema
    assert got.equals(table)
    assert again.scan("types", where={"i": -(2**62) + 2}).column("s").to_pylist() == ["é2"]
    assert again.scan("types", where={"oi": None}).num_rows == 2
    assert again.scan("types", where={"d": dt.date(1970, 1, 2)}).num_rows == 1


def test_read_before_flush_has_the_stored_types(store: Store) -> None:
    table = table_from_rows([_row(i) for i in range(2)], SCHEMA)
    store.write("types", table)
    assert store.read("types", ["r0", "r1"]).equals(table)


# --------------------------------------------------------------------------- what a store keeps


def _nested(depth: int) -> pa.Array:
    """One row holding ``1`` in a list of lists ``depth`` deep."""
    value: Any = 1
    t: pa.DataType = pa.int64()
    for _ in range(depth):
        value, t = [value], pa.large_list(t)
    return pa.array([value], t)


_UNSTORABLE = {
    # No commit could store these; write() refuses them, naming the table and the column.
    "above int64": (pa.array([2**64 - 1], pa.uint64()), "18446744073709551615"),
    "above int8": (pa.array([200], pa.uint8()), "200, above 127"),
    "nested above int32": (pa.array([[1, 2**32 - 1]], pa.large_list(pa.uint32())), "'v[]'"),
    "list 50 deep": (_nested(50), "nested 100 levels deep"),
    "seconds beyond microseconds": (pa.array([2**62], pa.timestamp("s", tz="UTC")), "64-bit"),
    # Delta truncated these to the microsecond without a word (two tags a nanosecond apart
    # read back as one), PostgreSQL refused them: every store refuses them.
    "nanoseconds": (
        pa.array([1704067200000000001], pa.timestamp("ns")),
        "2024-01-01T00:00:00.000000001, a timestamp finer than a microsecond",
    ),
    "zoned nanoseconds in a list": (
        pa.array([[-1]], pa.large_list(pa.timestamp("ns", "Europe/Paris"))),
        "(at 'v[]') holds 1970-01-01T00:59:59.999999999+0100",
    ),
    "time of day": (pa.array([dt.time(1, 2)], pa.time64("us")), "time64"),
    "duration": (pa.array([dt.timedelta(seconds=1)], pa.duration("us")), "duration"),
    "half float": (pa.array([None], pa.float16()), "halffloat"),
    "struct without fields": (pa.array([{}], pa.struct([])), "without fields"),
    "map to a duration": (
        pa.array([[("k", dt.timedelta(1))]], pa.map_(pa.large_string(), pa.duration("us"))),
        "'v.value'",
    ),
}


@pytest.mark.parametrize("case", sorted(_UNSTORABLE))
def test_what_no_commit_can_store_is_refused_at_write(store: Store, case: str) -> None:
    values, named = _UNSTORABLE[case]
    store.write("ok", records(["a"], v=[1]))  # buffered, not yet committed
    with pytest.raises(StoreError, match="'bad'") as refused:
        store.write("bad", records(["x"], v=values))
    message = str(refused.value)
    assert "column 'v'" in message
    assert named in message
    with pytest.raises(StoreError, match="'bad'"):
        store.append("bad", records(["x"], v=values))
    # Nothing was taken, and the store goes on: earlier rows are kept, later ones too.
    assert not store.exists("bad")
    store.write("ok", records(["b"], v=[2]))
    store.flush()
    again = open_store(store.to_config())
    assert sorted(again.scan("ok").column("v").to_pylist()) == [1, 2]
    assert again.list() == [("ok",)]


def test_what_a_store_keeps_at_the_limits_round_trips(store: Store) -> None:
    store.write("deep", records(["x"], v=_nested(49)))  # the deepest Parquet reads back
    store.write("u", records(["x"], v=pa.array([2**63 - 1], pa.uint64())))
    store.write("ms", records(["x"], v=pa.array([2**62 // 1000], pa.timestamp("ms", "UTC"))))
    whole = pa.array([1704067200000001000, None], pa.timestamp("ns"))  # whole microseconds
    store.write("ns", records(["x", "y"], v=whole))
    store.flush()
    again = open_store(store.to_config())
    assert again.scan("deep").column("v").to_pylist() == _nested(49).to_pylist()
    assert again.scan("u").column("v").to_pylist() == [2**63 - 1]
    assert again.scan("ms").num_rows == 1
    # (Delta keeps them in microseconds: the same instants.)
    instants = again.read("ns", ["x", "y"]).column("v").cast(pa.timestamp("ns"))
    assert instants.cast(pa.int64()).to_pylist() == [
        1704067200000001000,
        None,
    ]


def test_column_names_differing_only_in_case_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match=r"'Name' and 'name'.*differ only in case"):
        store.write("t", records(["x"], Name=[1], name=[2]))
    store.write("t", records(["x"], name=[1]))
    with pytest.raises(StoreError, match=r"'NAME'.*differs only in case.*'name'"):
        store.write("t", records(["y"], NAME=[2]))
    store.flush()
    assert open_store(store.to_config()).scan("t").column_names == [RECORD_ID, "name"]


# --------------------------------------------------------------------------- configs


def test_config_round_trip(store: Store) -> None:
    view = store.at("a", "b c")
    view.write("t", records(["x"], v=[1]))
    view.flush()
    for s in (store, view):
        config = s.to_config()
        reopened = open_store(config)
        assert type(reopened) is type(s)
        assert reopened.to_config() == config
        assert reopened.prefix == s.prefix
        assert type(s).from_config(config).to_config() == config
    assert open_store(view.to_config()).read("t", ["x"]).column("v").to_pylist() == [1]


def test_stores_pickle_as_how_to_reopen_them(store: Store) -> None:
    view = store.at("p")
    view.write("t", records(["x"], v=[1]))
    view.flush()
    copy = pickle.loads(pickle.dumps(view))
    assert type(copy) is type(view)
    assert copy.to_config() == view.to_config()
    assert copy.read("t", ["x"]).column("v").to_pylist() == [1]


def test_context_manager_flushes(store: Store) -> None:
    with store.at("ctx") as s:
        assert s.write("t", records(["x"], v=[1])) == 1
    assert open_store(store.to_config()).read("ctx/t", ["x"]).column("v").to_pylist() == [1]
    # A closed store reopens what it needs when used again.
    assert store.write("ctx/t", records(["y"], v=[2])) == 1
    assert store.read("ctx/t", ["x", "y"]).num_rows == 2


# --------------------------------------------------------------------------- delete


def test_delete_removes_stored_and_buffered_records(store: Store) -> None:
    store.write("t", records(["a", "b", "c"], x=[1, 2, 3]))
    store.flush()
    store.write("t", records(["d", "e"], x=[4, 5]))  # still buffered
    assert store.delete("t", ["b", "d", "nope"]) == 2
    assert sorted(store.scan("t").column("__record_id").to_pylist()) == ["a", "c", "e"]
    assert store.read("t", ["b", "d"]).num_rows == 0
    store.flush()
    assert sorted(store.scan("t").column("__record_id").to_pylist()) == ["a", "c", "e"]


def test_a_deleted_id_may_be_written_again(store: Store) -> None:
    store.write("t", records(["a", "b"], x=[1, 2]))
    store.flush()
    store.delete("t", ["b"])
    assert store.write("t", records(["b", "a"], x=[20, 10])) == 1  # "a" is still there
    store.flush()
    rows = {r["__record_id"]: r["x"] for r in store.scan("t").to_pylist()}
    assert rows == {"a": 1, "b": 20}


def test_write_once_is_exact_when_every_id_hash_collides(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every id hashes alike in the in-process id indexes and lookups: each id written matches
    # a hash, and only the ids themselves (buffered, or read from the stored table) can tell.
    def same(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        return np.zeros(len(ids), np.uint64)

    monkeypatch.setattr(_index, "id_hashes", same)
    monkeypatch.setattr(matching, "id_hashes", same)
    store.write("t", records(["a", "b"], x=[1, 2]))
    store.flush()
    assert store.write("t", records(["c", "a", "d"], x=[3, 10, 4])) == 2
    assert store.write("t", records(["c", "e"], x=[30, 5])) == 1  # "c" is buffered
    store.flush()
    assert store.write("t", records(["b", "f", "d"], x=[20, 6, 40])) == 1
    store.flush()
    again = open_store(store.to_config())  # its index is read from the stored table
    assert again.write("t", records(["g", "e", "a"], x=[7, 50, 10])) == 1
    again.flush()
    rows = {r[RECORD_ID]: r["x"] for r in open_store(store.to_config()).scan("t").to_pylist()}
    assert rows == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7}
    assert again.read("t", ["g", "c"]).column("x").to_pylist() == [7, 3]


def test_delete_of_nothing(store: Store) -> None:
    assert store.delete("never", ["a"]) == 0
    store.write("t", records(["a"], x=[1]))
    assert store.delete("t", []) == 0
    assert store.delete("t", ["zz"]) == 0
    assert store.at("t2").delete("x", ["a"]) == 0


def test_delete_is_seen_by_delta_rs_and_a_fresh_store(tmp_path: Path) -> None:
    from deltalake import DeltaTable

    from podline.stores import DeltaStore

    store = DeltaStore(tmp_path / "s", flush_seconds=None)
    store.write("t", records([f"r{i}" for i in range(100)], x=list(range(100))))
    store.flush()
    assert store.delete("t", [f"r{i}" for i in range(0, 100, 2)]) == 50
    remaining = DeltaTable(store.table_uri("t")).to_pyarrow_table().column("x").to_pylist()
    assert sorted(remaining) == list(range(1, 100, 2))
    fresh = DeltaStore(tmp_path / "s")
    assert fresh.scan("t").num_rows == 50
    assert fresh.write("t", records(["r0", "r1"], x=[0, 1])) == 1


def test_statistics_count_calls_by_operation_and_path_across_views(store: Store) -> None:
    view = store.at("a")
    before = store.statistics()
    view.write("t", records(["x", "y"], v=[1, 2]))
    view.write("t", records(["x"], v=[1]))  # counted though it adds nothing
    view.append("log", records(["1"], v=[1]))
    view.read("t", ["x"])
    store.scan("a/t", where={"v": 1})
    store.delete("a/t", ["y"])
    store.flush()
    used = store.statistics() - before
    assert used.count("write") == 2
    assert (used.count("append", "a"), used.count("read", "a/t"), used.count("scan")) == (1, 1, 1)
    assert (used.count("delete"), used.count("flush")) == (1, 1)
    assert used.paths("write") == [("a", "t")]
    # A view counts what every view did, at paths relative to it; other paths are not its own.
    assert view.statistics().paths("read") == [("t",)]
    assert store.at("b").statistics().count("write") == 0
    assert (store.statistics() - store.statistics()).calls == {}
    with pytest.raises(StoreError, match="no operation 'commit' is counted"):
        used.count("commit")
