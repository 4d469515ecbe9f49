"""A writer process for the concurrency and crash tests (run as a script, not collected).

``_writer.py race ROOT NAME OWN_START SHARED_START BATCHES GO_FILE [compact] [nolock]``
writes ``BATCHES`` batches, each holding 50 ids shared with the other writer and 50 of its
own, flushing after every batch; it starts when ``GO_FILE`` exists, so both writers race.
With ``compact``, the store compacts the table every three files (the writers' merges race
too).

``_writer.py batches ROOT [compact]`` writes batches of 100 rows (``batch`` = its number),
flushing each, and prints the number of every batch once its commit returned, until killed.
With ``compact``, the store compacts the table every three files (a kill may land in a merge).

``_writer.py tables ROOT`` creates table after table (``new/t<k>``, ten rows each), and prints
``k`` once table ``k`` was created, until killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pyarrow as pa

from podline.stores import DeltaStore, _delta_format

BATCH = 50


def race(
    root: str, name: str, own: int, shared: int, *, batches: int, go: str, compact: bool
) -> None:
    compact_files = 3 if compact else 64
    store = DeltaStore(root, flush_rows=10 * BATCH, flush_seconds=None, compact_files=compact_files)
    print("ready", flush=True)
    while not Path(go).exists():
        time.sleep(0.005)
    for k in range(batches):
        ids = [f"id{shared + k * BATCH + i}" for i in range(BATCH)]
        ids += [f"id{own + k * BATCH + i}" for i in range(BATCH)]
        table = pa.table({"__record_id": ids, "writer": [name] * len(ids)})
        store.write("race/t", table)
        store.flush()
    store.close()
    print("done", flush=True)


def batches(root: str, *, compact: bool) -> None:
    compact_files = 3 if compact else 64
    store = DeltaStore(root, flush_rows=100, flush_seconds=None, compact_files=compact_files)
    k = 0
    while True:
        ids = [f"{k}-{i}" for i in range(100)]
        store.write("crash/t", pa.table({"__record_id": ids, "batch": [k] * 100}))
        # A full buffer is committed in the background: wait for it before saying so.
        store.flush()
        print(k, flush=True)
        k += 1


def tables(root: str) -> None:
    store = DeltaStore(root, flush_seconds=None)
    k = 0
    while True:
        ids = [f"{k}-{i}" for i in range(10)]
        store.write(f"new/t{k}", pa.table({"__record_id": ids, "k": [k] * 10}))
        store.flush()
        print(k, flush=True)
        k += 1


if __name__ == "__main__":
    if sys.argv[-1] == "nolock":
        # Exercise the optimistic protocol alone, as on object stores.
        _delta_format.fcntl = None  # type: ignore[assignment]
        sys.argv.pop()
    if sys.argv[1] == "race":
        root, name, own, shared, count, go = sys.argv[2:8]
        compact = sys.argv[8:] == ["compact"]
        race(root, name, int(own), int(shared), batches=int(count), go=go, compact=compact)
    elif sys.argv[1] == "tables":
        tables(sys.argv[2])
    else:
        batches(sys.argv[2], compact=sys.argv[3:] == ["compact"])
