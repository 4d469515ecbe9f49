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

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


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


def _interleaved(jobs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """Each job timed ``repeats`` times, one round of all at a time (so machine load hits all
    alike), after one round that warms caches and is dropped."""
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats + 1):
        for name, job in jobs.items():
            times[name].append(_timed(job))
    return {name: spans[1:] for name, spans in times.items()}


def _lookups(url: str, work: Path, wanted: pa.Array, repeats: int) -> None:
    from podline.stores import DeltaStore, PostgresStore

    raw = _Raw(url)
    jobs: dict[str, Callable[[], Any]] = {
        "raw ADBC = ANY($1)": lambda: raw.lookup_any(wanted),
        "raw ADBC temp table join": lambda: raw.lookup_join(wanted),
        "PostgresStore": lambda: PostgresStore(url, schema="bench").read("t", wanted),
        "DeltaStore": lambda: DeltaStore(work / "delta").read("t", wanted),
    }
    times = _interleaved(jobs, repeats)
    _report(f"lookup of {len(wanted):,} ids, new store object", times, "raw ADBC = ANY($1)")


def _appends(url: str, work: Path, batches: Iterator[pa.Table], repeats: int) -> None:
    from podline.stores import DeltaStore, PostgresStore

    raw = _Raw(url)
    warm_pg, warm_delta = PostgresStore(url, schema="bench"), DeltaStore(work / "delta")
    warm_pg.write("t", next(batches))
    warm_delta.write("t", next(batches))
    warm_delta.flush()

    def delta_write(store: DeltaStore) -> None:
        store.write("t", next(batches))
        store.flush()

    jobs: dict[str, Callable[[], Any]] = {
        "raw ADBC bulk copy": lambda: raw.append(next(batches)),
        "PostgresStore warm": lambda: warm_pg.write("t", next(batches)),
        "DeltaStore warm": lambda: delta_write(warm_delta),
        "PostgresStore cold": lambda: PostgresStore(url, schema="bench").write("t", next(batches)),
        "DeltaStore cold": lambda: delta_write(DeltaStore(work / "delta")),
    }
    times = _interleaved(jobs, repeats)
    warm_pg.close()
    warm_delta.close()
    _report("append of new records (write-once; raw: no check)", times, "raw ADBC bulk copy")


def _reruns(url: str, work: Path, rows: int, repeats: int) -> None:
    from bench_s3 import JOB, rerun_job

    from podline.stores import PostgresStore

    script = work / "job.py"
    script.write_text(JOB)
    configs = {
        "PostgresStore": PostgresStore(url, schema="rerun").to_config(),
        "DeltaStore": str(work / "rerun-delta"),
    }
    for config in configs.values():
        assert rerun_job(script, config, rows)["computed"] == rows
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, config in configs.items():
            figures = rerun_job(script, config, rows)
            assert figures["computed"] == 0
            times[name].append(figures["seconds"])
    _report(f"cached re-run of {rows:,} rows, fresh process", times, "DeltaStore")


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
    try:
        with tempfile.TemporaryDirectory() as scratch:
            work, url = Path(scratch), server.url()
            chunks = [_records(part * k, k, rng) for part in range(10)]
            _Raw(url).create(pa.concat_tables(chunks))
            with PostgresStore(url, schema="bench") as pg, DeltaStore(work / "delta") as delta:
                for chunk in chunks:
                    pg.append("t", chunk)
                    delta.append("t", chunk)
            stored = pa.concat_tables(chunks)["__record_id"]
            wanted = stored.take(pa.array(rng.choice(n, k, replace=False))).combine_chunks()
            print(f"table: {n:,} records (id + 3 columns); {repeats} runs each, interleaved")
            _lookups(url, work, wanted, repeats)
            batches = iter([_records(n + r * k, k, rng) for r in range(6 * (repeats + 1))])
            _appends(url, work, batches, repeats)
            _reruns(url, work, rerun_rows, repeats)
    finally:
        server.close()
