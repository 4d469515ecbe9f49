"""PostgresStore against DeltaStore and plain ADBC (the raw limit), in the same run.

A throwaway PostgreSQL cluster (the one the tests start, ``tests/services.py``) holds
1,000,000 records (``bench_stores``' records: a 32-character id and three columns) twice: at a
``PostgresStore`` path, and in a plain table with a unique index on the id, written and read
with ADBC directly. A local ``DeltaStore`` holds them too. Measured, interleaved, each
repeated (median and range):

* lookup of 100,000 ids with a new store object (raw: ``SELECT ... WHERE id = ANY($1)`` on a
  new connection; also a temporary table of the ids joined to the table, the alternative);
* append of 100,000 new records with write-once (raw: the driver's bulk copy, no check), by a
  store that has written before ("warm") and by a new store object ("cold");
* a cached re-run of a 100,000-row pipeline (source -> one function), each run in a fresh
  process, on PostgreSQL and on a local Delta store.

Without PostgreSQL binaries or the ADBC driver it says so and skips.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

_JOB = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np, pyarrow as pa
    import podline
    from podline import function_pod
    from podline.pipeline import NoOpObserver, Pipeline
    from podline.stores import open_store

    @function_pod("total", live_output=False)
    def add(a: int, b: int) -> int:
        return a + b

    config, n = sys.argv[1], int(sys.argv[2])
    ints = np.arange(n)
    source = podline.ArrowTableSource(
        pa.table({"k": ints, "a": ints, "b": ints * 2}), tag_columns=["k"], source_id="s"
    )
    store = open_store(config)
    with Pipeline("bench", store) as pipeline:
        add.pod(source)
    started = time.perf_counter()
    result = pipeline.run(observer=NoOpObserver())
    seconds = time.perf_counter() - started
    store.close()
    print(json.dumps({"seconds": seconds, "computed": result.counts["add"].computed}))
    """
)


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _job(script: Path, config: str, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, str(script), config, str(n)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def _span(times: list[float]) -> str:
    low, high = min(times) * 1e3, max(times) * 1e3
    return f"{statistics.median(times) * 1e3:8.1f} ms ({low:.1f}-{high:.1f})"


def _report(title: str, rows: dict[str, list[float]], base: str) -> None:
    print(f"  {title}")
    reference = statistics.median(rows[base])
    for name, times in rows.items():
        ratio = statistics.median(times) / reference
        print(f"    {name:<28} {_span(times)}   {ratio:5.2f}x {base}")


class _Raw:
    """Plain ADBC against a table ``raw`` with a unique index on the id: the raw limit."""

    def __init__(self, url: str) -> None:
        import adbc_driver_postgresql.dbapi as driver

        self.driver, self.url = driver, url

    def create(self, table: pa.Table) -> None:
        with self.driver.connect(self.url) as conn, conn.cursor() as cur:
            cur.adbc_ingest("raw", table, mode="create")
            cur.execute('CREATE UNIQUE INDEX raw_id ON raw ("__record_id")')
            conn.commit()

    def append(self, table: pa.Table) -> None:
        with self.driver.connect(self.url) as conn, conn.cursor() as cur:
            cur.adbc_ingest("raw", table, mode="append")
            conn.commit()

    def lookup_any(self, ids: pa.Array) -> pa.Table:
        wanted = pa.LargeListArray.from_arrays(pa.array([0, len(ids)], pa.int64()), ids)
        with self.driver.connect(self.url) as conn, conn.cursor() as cur:
            cur.execute(
                'SELECT * FROM raw WHERE "__record_id" = ANY($1)',
                parameters=pa.table({"ids": wanted}),
            )
            found: pa.Table = cur.fetch_arrow_table()
        return found

    def lookup_join(self, ids: pa.Array) -> pa.Table:
        with self.driver.connect(self.url) as conn, conn.cursor() as cur:
            cur.adbc_ingest("wanted", pa.table({"id": ids}), mode="replace", temporary=True)
            cur.execute('SELECT raw.* FROM raw JOIN pg_temp.wanted w ON raw."__record_id" = w.id')
            found: pa.Table = cur.fetch_arrow_table()
        return found


def run(quick: bool) -> None:
    try:
        import adbc_driver_postgresql  # noqa: F401
        from tests.services import PostgresServer, postgres_bin
    except ImportError as exc:
        print(f"  skipped: {exc} (pip install -e '.[postgres]')")
        return
    bin_dir = postgres_bin()
    if bin_dir is None:
        print("  skipped: no PostgreSQL binaries (set PODLINE_TEST_PG_BIN)")
        return
    from bench_stores import _records

    from podline.stores import DeltaStore, PostgresStore

    n, repeats, rerun_rows = (20_000, 1, 2_000) if quick else (1_000_000, 5, 100_000)
    k = n // 10
    rng = np.random.default_rng(0)
    server = PostgresServer(bin_dir)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        try:
            raw, url = _Raw(server.url()), server.url()
            chunks = [_records(part * k, k, rng) for part in range(10)]
            raw.create(pa.concat_tables(chunks))
            pg, delta = PostgresStore(url, schema="bench"), DeltaStore(work / "delta")
            for chunk in chunks:
                pg.append("t", chunk)
                delta.append("t", chunk)
            pg.close()
            delta.close()
            stored = pa.concat_tables(chunks)["__record_id"]
            wanted = stored.take(pa.array(rng.choice(n, k, replace=False))).combine_chunks()
            lookups: dict[str, list[float]] = {
                "raw ADBC = ANY($1)": [],
                "raw ADBC temp table join": [],
                "PostgresStore": [],
                "DeltaStore": [],
            }
            for _ in range(repeats + 1):  # the first round warms caches and is dropped
                for name, fn in zip(
                    lookups,
                    [
                        lambda: raw.lookup_any(wanted),
                        lambda: raw.lookup_join(wanted),
                        lambda: PostgresStore(url, schema="bench").read("t", wanted),
                        lambda: DeltaStore(work / "delta").read("t", wanted),
                    ],
                    strict=True,
                ):
                    lookups[name].append(_timed(fn))
            for times in lookups.values():
                del times[0]
            print(f"table: {n:,} records (id + 3 columns); {repeats} runs each, interleaved")
            _report(f"lookup of {k:,} ids, new store object", lookups, "raw ADBC = ANY($1)")

            batches = iter([_records(n + r * k, k, rng) for r in range(6 * repeats + 2)])
            warm_pg, warm_delta = PostgresStore(url, schema="bench"), DeltaStore(work / "delta")
            warm_pg.write("t", next(batches))
            warm_delta.write("t", next(batches))
            warm_delta.flush()
            appends: dict[str, list[float]] = {
                "raw ADBC bulk copy": [],
                "PostgresStore warm": [],
                "DeltaStore warm": [],
                "PostgresStore cold": [],
                "DeltaStore cold": [],
            }

            def delta_write(store: DeltaStore, batch: pa.Table) -> None:
                store.write("t", batch)
                store.flush()

            for _ in range(repeats):
                work_items = [
                    lambda b: raw.append(b),
                    lambda b: warm_pg.write("t", b),
                    lambda b: delta_write(warm_delta, b),
                    lambda b: PostgresStore(url, schema="bench").write("t", b),
                    lambda b: delta_write(DeltaStore(work / "delta"), b),
                ]
                for name, fn in zip(appends, work_items, strict=True):
                    batch = next(batches)
                    appends[name].append(_timed(lambda fn=fn, batch=batch: fn(batch)))
            warm_pg.close()
            warm_delta.close()
            _report(f"append of {k:,} new records (write-once)", appends, "raw ADBC bulk copy")

            script = work / "job.py"
            script.write_text(_JOB)
            configs = {
                "PostgresStore": PostgresStore(url, schema="rerun").to_config(),
                "DeltaStore": str(work / "rerun-delta"),
            }
            for config in configs.values():
                assert _job(script, config, rerun_rows)["computed"] == rerun_rows
            reruns: dict[str, list[float]] = {name: [] for name in configs}
            for _ in range(repeats):
                for name, config in configs.items():
                    figures = _job(script, config, rerun_rows)
                    assert figures["computed"] == 0
                    reruns[name].append(figures["seconds"])
            _report(
                f"cached re-run of {rerun_rows:,} rows, fresh process", reruns, "DeltaStore"
            )
        finally:
            server.close()
