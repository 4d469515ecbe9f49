"""Several processes on one DeltaStore: concurrent writers, and a writer killed mid-write."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from podline.stores import RECORD_ID, DeltaStore

WRITER = Path(__file__).with_name("_writer.py")


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _assert_verified(root: Path, leftovers: set[str] | None = None) -> None:
    """podline reads every table as delta-rs does, and writers left only ``leftovers``."""
    report = DeltaStore(root).verify()
    assert report.ok, report
    assert {finding.kind for finding in report.leftovers} <= (leftovers or set()), report


@pytest.mark.slow
@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("lock", ["flock", "nolock"])
def test_two_writers_lose_nothing_and_duplicate_nothing(
    tmp_path: Path, lock: str, compact: bool
) -> None:
    root, go = tmp_path / "store", tmp_path / "go"
    batches = 12
    extra = (["compact"] if compact else []) + (["nolock"] if lock == "nolock" else [])
    # Ids 0.. are shared; writer A owns 100_000.., writer B 200_000..
    writers = [
        _start("race", root, name, own, 0, batches, go, *extra)
        for name, own in (("A", 100_000), ("B", 200_000))
    ]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
    go.touch()
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
        assert out.strip() == "done"

    table = DeltaTable(DeltaStore(root).table_uri("race/t")).to_pyarrow_table()
    ids = table.column(RECORD_ID).to_pylist()
    counts = Counter(ids)
    assert max(counts.values()) == 1
    expected = {f"id{start + i}" for start in (0, 100_000, 200_000) for i in range(batches * 50)}
    assert set(ids) == expected
    # Both writers won some of the shared ids or one won all; either way each is there once.
    shared = table.filter(pc.starts_with(table[RECORD_ID], "id")).num_rows
    assert shared == len(expected)
    uri = DeltaStore(root).table_uri("race/t")
    replaced = {  # files a merge replaced: kept until their retention ends
        json.loads(line)["remove"]["path"]
        for entry in Path(uri, "_delta_log").glob("*.json")
        for line in entry.read_text().splitlines()
        if '"remove"' in line
    }
    report = DeltaStore(root).verify()
    assert report.ok, report
    assert {finding.detail for finding in report.leftovers} <= replaced, report
    assert bool(replaced) == compact
    # Each writer's own rows read back in the order it wrote them, merged or not.
    read = DeltaStore(root).scan("race/t")
    assert read is not None
    for start in (100_000, 200_000):
        own = [int(i[2:]) for i in read.column(RECORD_ID).to_pylist() if int(i[2:]) >= start]
        own = [i for i in own if i < start + 100_000]
        assert own == sorted(own)
        assert len(own) == batches * 50
    if compact:
        history = DeltaTable(uri).history()
        assert any(entry["operation"] == "OPTIMIZE" for entry in history)


@pytest.mark.slow
@pytest.mark.parametrize("compact", [False, True])
def test_sigkill_leaves_every_committed_batch_whole(tmp_path: Path, compact: bool) -> None:
    root = tmp_path / "store"
    writer = _start("batches", root, *(["compact"] if compact else []))
    assert writer.stdout is not None
    committed = []
    target = random.randint(15, 30)
    while len(committed) < target:
        line = writer.stdout.readline()
        assert line, writer.stderr.read()
        committed.append(int(line))
    time.sleep(random.uniform(0, 0.05))  # land somewhere inside a later write
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    store = DeltaStore(root)
    table = store.scan("crash/t")
    assert table is not None
    assert max(Counter(table.column(RECORD_ID).to_pylist()).values()) == 1
    sizes = Counter(table.column("batch").to_pylist())
    assert set(committed) <= set(sizes)
    assert set(sizes.values()) == {100}
    assert sorted(sizes) == list(range(len(sizes)))
    order = table.column("batch").to_pylist()
    assert order == sorted(order)  # in the order written, merged or not
    if compact:
        history = DeltaTable(store.table_uri("crash/t")).history()
        assert any(entry["operation"] == "OPTIMIZE" for entry in history)
    _assert_verified(root, {"unreferenced-file", "temporary-file"})
    # The store is still writable after the crash.
    assert store.write("crash/t", table.slice(0, 1)) == 0
    store.close()
