"""A ``PostgresStore`` against a real PostgreSQL server on 127.0.0.1 (see ``tests/services.py``):
the layout other tools read with plain SQL (hostile and long names), bytes inside nested values
kept exactly (as hex text in the JSON), values JSON would change refused at write, pipelines
run and re-run (also from a fresh process, and with output files), concurrent writers in
several processes lose and duplicate nothing, and a server restart mid-run loses nothing
committed. The store contract itself runs against PostgreSQL in ``test_contract.py``."""

from __future__ import annotations

import decimal
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from tests.services import PostgresServer

import podline
from podline.errors import StoreError
from podline.functions.output_files import FILES_TYPE
from podline.pipeline import Pipeline
from podline.stores import RECORD_ID, PathLike, PostgresStore, Store, default_store, open_store
from podline.stores.delegating import DelegatingStore

from .conftest import PIPELINE, records, run_script, script_file


def _sql(server: PostgresServer, statement: str) -> pa.Table:
    """``statement``'s result through a connection of its own: what another tool sees."""
    import adbc_driver_postgresql.dbapi as driver

    with driver.connect(server.url()) as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        table: pa.Table = cursor.fetch_arrow_table()
    return table


def _schema(store: Store) -> str:
    return dict(part.split("=") for part in store.to_config().split("?")[1].split("&"))["schema"]


def _finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


# --------------------------------------------------------------------------- without a server


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "adbc_driver_postgresql", None)
    monkeypatch.setitem(sys.modules, "adbc_driver_postgresql.dbapi", None)
    with pytest.raises(StoreError, match=r"podline\[postgres\]"):
        open_store("postgresql://someone@db.example/results")


def test_configs_leave_the_password_out() -> None:
    store = PostgresStore("postgresql://me:s3cret@db.example:5433/lab?sslmode=require", schema="x")
    assert store.to_config() == "postgresql://me@db.example:5433/lab?schema=x&sslmode=require"
    assert open_store("postgres://db.example/lab").to_config() == "postgres://db.example/lab"
    assert "s3cret" not in repr(store.at("a"))


def test_a_schema_named_twice_differently_is_refused() -> None:
    url = "postgresql://me@db.example/lab?schema=x"
    assert PostgresStore(url, schema="x").to_config() == PostgresStore(url).to_config()
    with pytest.raises(StoreError, match=r"two schemas: 'x' in the URL and schema='y'"):
        PostgresStore(url, schema="y")


def test_a_schema_name_postgresql_would_cut_is_refused() -> None:
    # PostgreSQL silently cuts names to 63 bytes: two stores whose schema names shared their
    # first 63 bytes were one, each listing and reading the other's records (a fault test).
    url = "postgresql://me@db.example/lab"
    assert PostgresStore(url, schema="x" * 63).to_config().endswith("x" * 63)
    for long in ("lab_" + "x" * 59 + "_alice", "ü" * 32):
        with pytest.raises(StoreError, match=r"is \d+ bytes long: PostgreSQL keeps the first 63"):
            PostgresStore(url, schema=long)
        with pytest.raises(StoreError, match="bytes long"):
            open_store(f"{url}?schema={long}")
    for bad in ("", "a\x00b"):
        with pytest.raises(StoreError, match="empty or holds a NUL"):
            PostgresStore(url, schema=bad)


# --------------------------------------------------------------------------- with a server

service = pytest.mark.service


@service
def test_podline_store_names_a_postgres_store(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_store.write("t", records(["a"], v=[1]))
    monkeypatch.setenv("PODLINE_STORE", pg_store.to_config())
    found = default_store()
    assert isinstance(found, PostgresStore)
    assert found.read("t", ["a"]).column("v").to_pylist() == [1]


@service
def test_layout_is_plain_sql_with_hostile_and_long_names(
    pg_server: PostgresServer, pg_store: Store
) -> None:
    hostile = ("a", 'we"ird; DROP TABLE x;--', "ü ß")
    long = ("results", "x" * 80, "y" * 40)
    column = "c" * 70
    pg_store.write(hostile, records(["r1", "r2"], v=[1, 2]))
    pg_store.write(long, pa.table({"__record_id": ["r1"], column: ["long"], "l": [[1, 2]]}))
    pg_store.write("podline_catalog", records(["r1"], v=[3]))  # the catalog's own name
    schema = _schema(pg_store)
    catalog = _sql(pg_server, f'SELECT path, name, columns FROM "{schema}".podline_catalog')
    names = {tuple(r["path"]): r for r in catalog.to_pylist()}
    assert names[hostile]["name"] == "/".join(hostile)  # short paths keep their own name
    assert len(names[long]["name"].encode()) <= 63
    assert names[long]["name"].startswith("results/xxx")
    assert names[("podline_catalog",)]["name"] != "podline_catalog"
    table = '"' + "/".join(hostile).replace('"', '""') + '"'
    plain = _sql(pg_server, f'SELECT "__record_id", v FROM "{schema}".{table} ORDER BY v')
    assert plain.to_pylist() == [{"__record_id": "r1", "v": 1}, {"__record_id": "r2", "v": 2}]
    long_table, long_columns = names[long]["name"], names[long]["columns"]
    assert all(len(c.encode()) <= 63 for c in long_columns)
    row = _sql(pg_server, f'SELECT * FROM "{schema}"."{long_table}"').to_pylist()[0]
    assert sorted(str(v) for v in row.values()) == ["[1,2]", "long", "r1"]  # lists as JSON
    again = open_store(pg_store.to_config())
    assert again.list() == sorted([hostile, long, ("podline_catalog",)])
    assert again.read(long, ["r1"]).to_pylist() == [
        {"__record_id": "r1", column: "long", "l": [1, 2]}
    ]
    assert again.scan("podline_catalog").column("v").to_pylist() == [3]


_EXACT = {
    # Arrow types outside the contract's schema vocabulary, stored natively and read back
    # exactly through the catalog's schema.
    "decimal": pa.array([decimal.Decimal("1.250"), None], pa.decimal128(10, 3)),
    "int8": pa.array([-128, 127], pa.int8()),
    "float32": pa.array([1.5, None], pa.float32()),
    "zone": pa.array([1, 2], pa.timestamp("us", "Europe/Paris")),
    "whole microseconds in ns": pa.array([1000, 2000], pa.timestamp("ns")),
    "fixed-size binary": pa.array([b"ab", b"cd"], pa.binary(2)),
    "decimals in a list": pa.array(
        [[decimal.Decimal("1.5")], None], pa.large_list(pa.decimal128(5, 2))
    ),
}


@service
@pytest.mark.parametrize("case", sorted(_EXACT))
def test_other_arrow_types_read_back_exactly(pg_store: Store, case: str) -> None:
    values = _EXACT[case]
    pg_store.write("t", records(["a", "b"], v=values))
    got = open_store(pg_store.to_config()).read("t", ["a", "b"]).column("v")
    assert got.type == values.type
    assert got.equals(pa.chunked_array([values]))


@service
def test_a_timestamp_finer_than_microseconds_is_refused(pg_store: Store) -> None:
    # Every store refuses it (stores/_storable), before the driver would.
    finer = r"column 'v' at 't' holds 1970-01-01T00:00:00\.000001001, a timestamp finer"
    with pytest.raises(StoreError, match=finer):
        pg_store.write("t", records(["a"], v=pa.array([1001], pa.timestamp("ns"))))
    assert not pg_store.exists("t")


@service
@pytest.mark.parametrize(
    ("values", "why"),
    [
        (pa.array([[1.0, float("nan")]], pa.large_list(pa.float64())), "NaN"),
        (pa.array([[float("inf")]], pa.large_list(pa.float32())), "infinity"),
        # (a list of floats a function returns: its items non-nullable; the message said
        # "'v[]' ... is stored as non-nullable but the written table holds None in it")
        (
            pa.array([[1.0, float("nan")]], pa.large_list(pa.field("item", pa.float64(), False))),
            "NaN",
        ),
    ],
)
def test_nested_values_json_would_change_are_refused(
    pg_store: Store, values: pa.Array, why: str
) -> None:
    with pytest.raises(StoreError, match=rf"column 'v' at 'bad'.*JSON.*{why}"):
        pg_store.write("bad", records(["x"], v=values))
    assert not pg_store.exists("bad")
    # Outside lists the same values are stored natively, exactly.
    flat = values.flatten()
    ids = [f"r{i}" for i in range(len(flat))]
    pg_store.write("flat", records(ids, v=flat))
    got = pg_store.read("flat", ids).column("v")
    assert str(got.to_pylist()) == str(flat.to_pylist())  # str: NaN is not equal to itself


@service
def test_a_string_holding_nul_is_refused_naming_it(pg_store: Store) -> None:
    """PostgreSQL text cannot hold U+0000: the driver's COPY failed with "invalid byte
    sequence for encoding UTF8: 0x00 ... COPY podline_stage, line 2", naming no value."""
    with pytest.raises(
        StoreError, match=r"column 'v' at 'bad' holds 'a\\x00b', a string with a NUL"
    ):
        pg_store.write("bad", records(["x", "y"], v=["ok", "a\x00b"]))
    assert not pg_store.exists("bad")
    # Inside a nested value it is JSON's escape, which PostgreSQL's json keeps.
    pg_store.write(
        "nested", records(["x"], v=pa.array([["a\x00b"]], pa.large_list(pa.large_string())))
    )
    assert pg_store.read("nested", ["x"]).column("v").to_pylist() == [["a\x00b"]]


def _struct(**fields: pa.DataType) -> pa.DataType:
    return pa.struct([pa.field(name, t) for name, t in fields.items()])


_FILE = {"path": "/d/a.txt", "size": 3, "mtime_ns": 1, "digest": bytes(range(256))}
_DEEP = pa.large_list(
    _struct(
        bs=pa.large_list(pa.binary(3)),
        m=pa.map_(pa.large_string(), _struct(b=pa.large_binary())),
    )
)

_NESTED_BYTES = {
    # Bytes at several depths, beside nulls at every level: a null value, a null struct, a
    # null list and an empty list must each read back as what they were.
    "list of bytes": pa.array(
        [[b"\x00\xff", None, b""], [], None, [b'"\\'], [b"\x80" * 40]],
        pa.large_list(pa.large_binary()),
    ),
    "struct with bytes": pa.array(
        [{"digest": b"\x01", "n": 1}, {"digest": None, "n": 2}, None, {"digest": b"", "n": None}],
        _struct(digest=pa.large_binary(), n=pa.int64()),
    ),
    "output-file fingerprints": pa.array([[_FILE, {**_FILE, "digest": b""}], [], None], FILES_TYPE),
    "map to bytes": pa.array(
        [[("a", b"\x00"), ("b", None)], [], None, [("c", b"\xfe\xff")]],
        pa.map_(pa.large_string(), pa.large_binary()),
    ),
    "bytes as map keys": pa.array(
        [[(b"\x00", 1), (b"\xff", 2)], None], pa.map_(pa.large_binary(), pa.int64())
    ),
    "fixed-size bytes in a fixed-size list": pa.array(
        [[b"ab", None], None, [b"\x00\x00", b"\xff\xff"]], pa.list_(pa.binary(2), 2)
    ),
    "deep": pa.array(
        [
            [{"bs": [b"abc", None], "m": [("k", {"b": b"\x00"}), ("n", None), ("o", {"b": None})]}],
            [None, {"bs": None, "m": []}, {"bs": [], "m": None}],
            None,
            [],
        ],
        _DEEP,
    ),
    # A written table may be a slice: its arrays start at an offset into their buffers.
    "a slice": pa.array(
        [[{"path": "skipped", "size": 0, "mtime_ns": 0, "digest": b"\xaa"}], None, [_FILE], []],
        FILES_TYPE,
    ).slice(1),
}


@service
@pytest.mark.parametrize("case", sorted(_NESTED_BYTES))
def test_bytes_inside_nested_values_read_back_exactly(pg_store: Store, case: str) -> None:
    values = _NESTED_BYTES[case]
    ids = [f"r{i}" for i in range(len(values))]
    pg_store.write("t", records(ids, v=values))
    got = open_store(pg_store.to_config()).read("t", ids).column("v")
    assert got.type == values.type
    assert got.equals(pa.chunked_array([values]))


@service
def test_bytes_inside_nested_values_are_hex_text_to_sql(
    pg_server: PostgresServer, pg_store: Store
) -> None:
    files = pa.array([[{**_FILE, "digest": b"\x00\xab"}]], FILES_TYPE)
    pg_store.write("t", records(["a"], files=files))
    row = _sql(
        pg_server,
        "SELECT files->0->>'digest' AS hex, decode(files->0->>'digest', 'hex') AS raw "
        f'FROM "{_schema(pg_store)}"."t"',
    )
    assert row.to_pylist() == [{"hex": "00ab", "raw": b"\x00\xab"}]


@podline.function_pod("note", live_output=False)
def write_note(folder: str, name: str) -> Path:
    path = Path(folder) / f"{name}.txt"
    path.write_text(name)
    return path


@service
def test_a_function_returning_a_path_runs_and_reruns(tmp_path: Path, pg_store: Store) -> None:
    def run() -> tuple[int, int, int, int]:
        rows = [{"k": i, "folder": str(tmp_path), "name": n} for i, n in enumerate("ab")]
        with Pipeline("notes", pg_store) as pipeline:
            write_note.pod(podline.DictSource(rows, tag_columns=["k"]))
        c = pipeline.run(error_policy="fail_fast").counts["write_note"]
        return c.computed, c.cached, c.failed, c.recomputed

    assert run() == (2, 0, 0, 0)
    assert run() == (0, 2, 0, 0)  # the files' fingerprints read back, and match
    edited = tmp_path / "b.txt"
    edited.write_text("edited by hand")
    stat = edited.stat()  # a new size and a later time: the digest is compared
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert run() == (1, 1, 0, 1)
    assert edited.read_text() == "b"
    assert run() == (0, 2, 0, 0)


@service
def test_the_url_may_name_the_schema(pg_server: PostgresServer, pg_store: Store) -> None:
    schema = _schema(pg_store)
    PostgresStore(f"{pg_server.url()}?schema={schema}").write("t", records(["a"], v=[1]))
    assert pg_store.read("t", ["a"]).column("v").to_pylist() == [1]
    assert PostgresStore(pg_server.url(), schema=schema).list() == [("t",)]


@service
def test_pipeline_runs_and_a_fresh_process_resumes(tmp_path: Path, pg_store: Store) -> None:
    script = script_file(tmp_path, "pipeline", PIPELINE)
    config = pg_store.to_config()
    first = json.loads(_finish(run_script(script, config, "50")))
    assert first == {"computed": [50, 50], "z": sorted(i * i + 1 for i in range(50))}
    again = json.loads(_finish(run_script(script, config, "60")))  # a new process, ten new rows
    assert again == {"computed": [10, 10], "z": sorted(i * i + 1 for i in range(60))}
    assert json.loads(_finish(run_script(script, config, "60")))["computed"] == [0, 0]


class _RacedBySpecWriter(DelegatingStore):
    """A store where another process stores the same new pipeline specification between this
    process's lookup and its append (the race of two first runs started together)."""

    raced = False

    def append(self, path: PathLike, table: pa.Table, *, id_column: str = RECORD_ID) -> int:
        segments = path.split("/") if isinstance(path, str) else list(path)
        if not _RacedBySpecWriter.raced and segments[-1:] == ["specs"]:
            _RacedBySpecWriter.raced = True
            self.inner.append(path, table, id_column=id_column)  # the other process's
        return self.inner.append(path, table, id_column=id_column)


@service
def test_two_first_runs_of_one_pipeline_at_once_both_run(pg_store: Store) -> None:
    # Both looked the new specification up, found nothing and appended it: the unique index
    # refused the second append, a StoreError that failed that run before it computed anything
    # (3 of 4 processes started together failed so).
    @podline.function_pod("y")
    def double(x: int) -> int:
        return 2 * x

    store = _RacedBySpecWriter(pg_store)
    with Pipeline("raced", store) as pipeline:
        double.pod(podline.DictSource([{"k": i, "x": i} for i in range(3)], tag_columns=["k"]))
    assert pipeline.run().counts["double"].computed == 3
    assert _RacedBySpecWriter.raced
    assert pg_store.scan("pipelines/raced/specs").num_rows == 1
    loaded = Pipeline.load("raced", pg_store, code=False)  # the stored specification opens
    assert sorted(loaded.double.as_table().column("y").to_pylist()) == [0, 2, 4]


WRITER = """
import json, sys
import pyarrow as pa
from podline.stores import open_store

config, who, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = open_store(config)
added = appended = 0
for r in range(rounds):
    # Half the ids every writer writes too (write-once must keep one), half its own.
    ids = [f"{r}-{i}" for i in range(50)] + [f"{who}{r}-{i}" for i in range(50)]
    table = pa.table({"__record_id": pa.array(ids, pa.large_string()), "who": [who] * 100})
    if r % 5 == 4:  # the writers widen the path's schema at the same time, each its own way
        table = table.append_column(f"x_{who}", pa.array([r] * 100))
    added += store.write("shared", table)
    log = pa.table({"__record_id": [f"{who}-{r}"], "round": [r]})
    appended += store.append("log", log)
store.close()
print(json.dumps([added, appended]))
"""


@service
def test_concurrent_writers_lose_and_duplicate_nothing(
    tmp_path: Path, pg_server: PostgresServer, pg_store: Store
) -> None:
    script = script_file(tmp_path, "writer", WRITER)
    writers, rounds = ["a", "b", "c"], 20
    running = [run_script(script, pg_store.to_config(), who, str(rounds)) for who in writers]
    counts = [json.loads(_finish(p)) for p in running]
    # Every id stored once, and the writers' counts add up to what is stored: no record was
    # counted by two writers, none lost.
    expected = rounds * 50 * (1 + len(writers))
    assert sum(added for added, _ in counts) == expected
    assert sum(appended for _, appended in counts) == rounds * len(writers)
    schema = _schema(pg_store)
    name = _sql(
        pg_server, f"SELECT name FROM \"{schema}\".podline_catalog WHERE path = '{{shared}}'"
    )
    stored = _sql(
        pg_server,
        f'SELECT count(*) AS n, count(DISTINCT "__record_id") AS d FROM "{schema}"."{name[0][0]}"',
    ).to_pylist()[0]
    assert stored == {"n": expected, "d": expected}
    shared = open_store(pg_store.to_config()).scan("shared")
    assert {"x_a", "x_b", "x_c"} <= set(shared.column_names)
    assert shared.num_rows == expected
    assert open_store(pg_store.to_config()).scan("log").num_rows == rounds * len(writers)


@service
def test_a_server_restart_loses_nothing_committed(
    pg_server: PostgresServer, pg_store: Store
) -> None:
    pg_store.write("t", records(["a", "b"], v=[1, 2]))
    pg_server.stop(fast=False)  # a crash, while the store holds its connection
    try:
        with pytest.raises(StoreError, match=r"PostgreSQL store .*: write at 't' failed"):
            pg_store.write("t", records(["c"], v=[3]))
        with pytest.raises(StoreError, match="append at 't' failed"):
            pg_store.append("t", records(["d"], v=[4]))
    finally:
        pg_server.start()
    # The same store object goes on (a new connection), and a re-run writes only what is new.
    assert pg_store.write("t", records(["a", "b", "c"], v=[1, 2, 3])) == 1
    assert sorted(pg_store.scan("t").column("v").to_pylist()) == [1, 2, 3]
    # A restart between calls is not even an error: reads and writes retry on a new connection.
    pg_server.stop()
    pg_server.start()
    assert pg_store.read("t", ["c"]).column("v").to_pylist() == [3]


CRASHING = """
import json, os, signal, sys, time
import podline
from podline.pipeline import Pipeline
from podline.stores import open_store

config, n = sys.argv[1], int(sys.argv[2])

@podline.function_pod("y")
def slow_square(x: int) -> int:
    # From the environment, so that the re-run's function is the same code and values.
    if str(x) == os.environ.get("CRASH_AT"):
        os.kill(int(os.environ["SERVER_PID"]), signal.SIGQUIT)  # the server crashes mid-run
        time.sleep(0.5)
    time.sleep(0.02)
    return x * x

store = open_store(config)
with Pipeline("crash", store) as pipeline:
    slow_square.pod(podline.DictSource([{"k": i, "x": i} for i in range(n)], tag_columns=["k"]))
result = pipeline.run(commit_seconds=0.1)
print(json.dumps(result.counts["slow_square"].computed))
"""


@service
def test_a_server_crash_mid_run_is_an_error_and_the_rerun_resumes(
    tmp_path: Path, pg_server: PostgresServer, pg_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = script_file(tmp_path, "crashing", CRASHING)
    config, n = pg_store.to_config(), 40
    try:
        with monkeypatch.context() as env:
            env.setenv("CRASH_AT", "30")
            env.setenv("SERVER_PID", str(pg_server.pid))
            crashed = run_script(script, config, str(n))
        _, err = crashed.communicate(timeout=120)
    finally:
        pg_server.stop()
        pg_server.start()
    assert crashed.returncode != 0
    assert "StoreError: PostgreSQL store" in err
    resumed = json.loads(_finish(run_script(script, config, str(n))))
    assert 0 < resumed < n  # what was committed before the crash is kept, the rest computed
    memo = [p for p in open_store(config).list() if "slow_square" in "/".join(p)]
    assert memo
    assert json.loads(_finish(run_script(script, config, str(n)))) == 0
