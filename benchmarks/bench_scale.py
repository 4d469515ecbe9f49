"""Pipelines at scale: ``Parquet source → a + b → total * 2`` at 1M and 10M rows.

Every step runs in a fresh process, and its peak RSS is the process's own high-water mark
(``VmHWM`` in ``/proc/self/status`` where there is one, else ``wait4``'s ``ru_maxrss``, which
on Linux also counts the parent's memory the child was forked with, so that under
``benchmarks/run.py``, after benchmarks that left the parent large, it reported the parent's
size for every step):

* ``first`` and ``cached``: a first run, then a fully cached re-run, on the default Delta store
  with the default observers (status and logs), ``materialize_results=False``; sync and async
  orchestrators, each on a store of its own. Reported: wall time of ``run()``, µs per packet,
  the time to build the pipeline before it (source read and hashed, graph compiled), peak RSS,
  and the store's size after the run.
* ``read``: a fresh process opens the stored pipeline and reads the last node's results as a
  table; compared with the table's own size in memory.
* raw limits, measured in the same run: a bare Python loop calling the two functions over the
  rows (read in batches), pyarrow's vectorized add and multiply, and
  ``deltalake.write_deltalake`` of the two result tables (tag and output column), whose size
  on disk is the baseline of the store's size.

Targets (issue #23): peak RSS at 10M at most 1.3x that at 1M and under 1 GB, first-run µs per
packet at 10M at most 1.2x that at 1M, the store at most 3x the plain write, a cached re-run
adding at most 1% of the store's size. ``--quick`` runs 20,000 and 100,000 rows instead;
``PODLINE_BENCH_ROWS=1000000,2000000`` any two sizes (the 10M run takes the better part of an
hour on two cores and about 7 GB).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

_PREPARE = """
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
n, chunk = {n}, 1_000_000
schema = pa.schema([("k", pa.int64()), ("a", pa.int64()), ("b", pa.int64())])
with pq.ParquetWriter({data!r}, schema) as writer:
    for start in range(0, n, chunk):
        ints = np.arange(start, min(n, start + chunk), dtype=np.int64)
        writer.write_table(pa.table({{"k": ints, "a": ints, "b": ints * 2}}, schema=schema))
print("{{}}")
"""

_PIPELINE = """
import json, time
start = time.perf_counter()
import podline
from podline import function_pod
from podline.pipeline import Pipeline
from podline.stores import DeltaStore
imported = time.perf_counter() - start

@function_pod("total", live_output=False)
def add(a: int, b: int) -> int:
    return a + b

@function_pod("doubled", live_output=False)
def double(total: int) -> int:
    return total * 2
"""

_RUN = (
    _PIPELINE
    + """
start = time.perf_counter()
source = podline.ParquetSource({data!r}, ["k"], source_id="scale")
with Pipeline("scale", DeltaStore({store!r})) as pipeline:
    double.pod(add.pod(source))
pipeline.compile()
build = time.perf_counter() - start
start = time.perf_counter()
result = pipeline.run({orchestrator!r}, materialize_results=False)
seconds = time.perf_counter() - start
counts = result.counts["double"]
print(json.dumps({{"import": imported, "build": build, "seconds": seconds,
                   "computed": counts.computed, "cached": counts.cached}}))
"""
)

_READ = """
import json, time
import podline
start = time.perf_counter()
pipeline = podline.open_pipeline(podline.stores.DeltaStore({store!r}), "scale")
table = pipeline.double.as_table()
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "rows": table.num_rows, "nbytes": table.nbytes}}))
"""

_RAW = """
import json, time, os
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
from deltalake import write_deltalake

def add(a, b):
    return a + b

def double(total):
    return total * 2

file = pq.ParquetFile({data!r})
start = time.perf_counter()
for batch in file.iter_batches(batch_size=100_000, columns=["a", "b"]):
    [double(add(a, b)) for a, b in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist())]
bare = time.perf_counter() - start
table = pq.read_table({data!r})
start = time.perf_counter()
total = pc.add(table["a"], table["b"])
doubled = pc.multiply(total, 2)
vectorized = time.perf_counter() - start
start = time.perf_counter()
write_deltalake(os.path.join({out!r}, "total"), pa.table({{"k": table["k"], "total": total}}))
write_deltalake(os.path.join({out!r}, "doubled"), pa.table({{"k": table["k"], "doubled": doubled}}))
written = time.perf_counter() - start
print(json.dumps({{"bare": bare, "vectorized": vectorized, "written": written}}))
"""


def _measured(root: Path, name: str, code: str, **values: Any) -> dict[str, float]:
    """Runs ``code`` in a fresh process: its JSON line, plus ``peak_mb``, its own peak RSS."""
    # A file, not ``-c``: podline hashes the functions' source, which must be readable.
    script = root / f"{name}.py"
    script.write_text(textwrap.dedent(code.format(**values)) + _HIGH_WATER)
    out_path, err_path = root / f"{name}.out", root / f"{name}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        pid = subprocess.Popen([sys.executable, str(script)], stdout=out, stderr=err).pid
        _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{name} failed ({status}):\n{err_path.read_text()[-4000:]}")
    *_, line, high_water = out_path.read_text().strip().splitlines()
    figures: dict[str, float] = json.loads(line)
    own = json.loads(high_water)["high_water_kb"]
    figures["peak_mb"] = (own if own is not None else usage.ru_maxrss) / 1024
    return figures


#: Appended to every step's script: its own high-water mark, as a last JSON line.
_HIGH_WATER = """
import json as _json


def _high_water_kb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


print(_json.dumps({"high_water_kb": _high_water_kb()}))
"""


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _scale(n: int, root: Path) -> dict[str, Any]:
    data = str(root / "data.parquet")
    _measured(root, "prepare", _PREPARE, n=n, data=data)
    raw = _measured(root, "raw", _RAW, data=data, out=str(root / "plain"))
    figures: dict[str, Any] = {"raw": raw, "plain_bytes": _size(root / "plain")}
    for orchestrator in ("sync", "async"):
        store = str(root / f"store-{orchestrator}")
        runs = {}
        for step in ("first", "cached"):
            runs[step] = _measured(
                root, f"{orchestrator}-{step}", _RUN,
                data=data, store=store, orchestrator=orchestrator,
            )  # fmt: skip
            runs[step]["store_bytes"] = _size(Path(store))
        assert runs["first"]["computed"] == n, runs["first"]
        assert runs["cached"]["cached"] == n, runs["cached"]
        figures[orchestrator] = runs
    figures["read"] = _measured(root, "read", _READ, store=str(root / "store-sync"))
    assert figures["read"]["rows"] == n, figures["read"]
    return figures


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _report(n: int, f: dict[str, Any]) -> None:
    raw, plain = f["raw"], f["plain_bytes"]
    bare_us = raw["bare"] / n * 1e6
    print(f"N = {n:,}")
    print(
        f"  raw limits: bare loop {bare_us:.2f} µs/row, pyarrow add+multiply"
        f" {raw['vectorized'] / n * 1e6:.3f} µs/row, write_deltalake"
        f" {raw['written'] / n * 1e6:.2f} µs/row, {plain / n:.1f} B/row on disk"
    )
    for orchestrator in ("sync", "async"):
        for step in ("first", "cached"):
            r = f[orchestrator][step]
            us = r["seconds"] / n * 1e6
            print(
                f"  {orchestrator:5} {step:6}: run {r['seconds']:7.2f} s, {us:6.2f} µs/packet"
                f" ({us / bare_us:5.1f}x bare), build {r['build']:6.2f} s,"
                f" import {r['import']:.2f} s, peak RSS {r['peak_mb']:6.0f} MB,"
                f" store {r['store_bytes'] / n:6.1f} B/row"
            )
        first, cached = f[orchestrator]["first"], f[orchestrator]["cached"]
        added = (cached["store_bytes"] - first["store_bytes"]) / first["store_bytes"]
        ratio = first["store_bytes"] / plain
        print(
            f"  {orchestrator:5} store: {ratio:.1f}x the plain write (target <= 3:"
            f" {_met(ratio <= 3)}); the cached re-run added {added:.1%} (target <= 1%:"
            f" {_met(added <= 0.01)})"
        )
    read = f["read"]
    print(
        f"  read back: {read['seconds']:.2f} s, peak RSS {read['peak_mb']:.0f} MB for a table"
        f" of {read['nbytes'] / 2**20:.0f} MB"
    )


def run(quick: bool = False) -> None:
    sizes = (20_000, 100_000) if quick else (1_000_000, 10_000_000)
    if os.environ.get("PODLINE_BENCH_ROWS"):  # e.g. "1000000,2000000" for a shorter run
        small, large = (int(n) for n in os.environ["PODLINE_BENCH_ROWS"].split(","))
        sizes = (small, large)
    results = {}
    for n in sizes:
        with tempfile.TemporaryDirectory() as root:
            results[n] = _scale(n, Path(root))
        _report(n, results[n])
    small, large = sizes
    for orchestrator in ("sync", "async"):
        for step in ("first", "cached"):
            a, b = results[small][orchestrator][step], results[large][orchestrator][step]
            growth = (b["seconds"] / large) / (a["seconds"] / small)
            memory = b["peak_mb"] / a["peak_mb"]
            print(
                f"{orchestrator:5} {step:6} {small:,} -> {large:,}: µs/packet x{growth:.2f}"
                f" (target <= 1.2: {_met(growth <= 1.2)}), peak RSS x{memory:.2f}"
                f" (target <= 1.3: {_met(memory <= 1.3)}), {b['peak_mb']:.0f} MB"
                f" (target < 1 GB: {_met(b['peak_mb'] < 1024)})"
            )
