"""Local commits are durable before they are visible, and a table exists whole or not at all
(``_durable``, ``_delta_publish.link_entry`` and ``create_log``)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from podline.stores import DeltaStore

from .conftest import records

WRITER = Path(__file__).with_name("_writer.py")

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="names synced files through /proc"
)


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every fsync (of the file or directory, by name), link and rename, in order."""
    events: list[tuple[str, str]] = []
    real_fsync, real_link, real_rename = os.fsync, os.link, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def link(source: str, target: str) -> None:
        real_link(source, target)
        events.append(("publish", os.fspath(target)))

    def rename(source: str, target: str) -> None:
        real_rename(source, target)
        events.append(("publish", os.fspath(target)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "rename", rename)
    return events


def _added(entry: Path) -> str:
    """The data file a podline log entry adds."""
    for line in entry.read_bytes().splitlines():
        action = json.loads(line)
        if "add" in action:
            return str(action["add"]["path"])
    raise AssertionError(f"{entry} adds no file")


def test_a_commit_is_durable_before_it_is_published(
    tmp_path: Path, synced: list[tuple[str, str]]
) -> None:
    """A power loss cannot publish an entry whose data file is missing: before the entry's
    name appears (by link, or by renaming a new table's log into place), the data file, the
    directory naming it and the entry itself were synced; after it, the directory naming
    the entry, so a commit that returned survives too."""
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    for batch in range(3):  # the first creates the table
        store.write("t", records([str(batch)], v=[batch]))
        store.flush()
    table = Path(store.table_uri("t"))
    log = table / "_delta_log"
    publishes = [i for i, (kind, _) in enumerate(synced) if kind == "publish"]
    assert [Path(synced[i][1]) for i in publishes] == [
        log,
        log / f"{1:020d}.json",
        log / f"{2:020d}.json",
    ]
    start = 0
    for version, at in enumerate(publishes):
        before = {Path(name) for kind, name in synced[start:at] if kind == "fsync"}
        data = table / _added(log / f"{version:020d}.json")
        assert data in before
        assert table in before
        entry = (
            log / f"{version:020d}.json.tmp"
            if version
            else table / "_delta_log.new-" / f"{0:020d}.json"
        )
        assert any(_same_kind(p, entry) for p in before), (entry, before)
        after = synced[at + 1] if at + 1 < len(synced) else ("", "")
        assert after == ("fsync", str(table if version == 0 else log))
        start = at + 1


def _exit_with_a_row_buffered(
    root: Path, before_exit: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run a fresh interpreter that commits one row to ``root``, leaves a second buffered,
    runs ``before_exit`` and exits (the store flushes at exit)."""
    script = (
        "import errno, sys, pyarrow as pa\n"
        "from podline.stores import DeltaStore\n"
        "from podline.stores import _delta_local\n"
        "store = DeltaStore(sys.argv[1], flush_seconds=None)\n"
        "store.write('t', pa.table({'__record_id': ['a'], 'v': [1]}))\n"
        "store.flush()\n"
        f"{before_exit}"
        "store.write('t', pa.table({'__record_id': ['b'], 'v': [2]}))  # left buffered\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(root)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_what_is_buffered_at_exit_is_committed_and_synced(tmp_path: Path) -> None:
    """The store flushes at interpreter exit, when no new thread may start: the commit's
    syncs run in the exiting thread."""
    root = tmp_path / "store"
    done = _exit_with_a_row_buffered(root)
    assert done.returncode == 0, done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
    assert sorted(DeltaStore(root).scan("t").column("v").to_pylist()) == [1, 2]


def test_a_commit_failing_at_exit_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """Nobody can catch what fails at interpreter exit (a full disk, here simulated): the
    store says in one line which records were not committed, and the rows committed before
    stay readable."""
    root = tmp_path / "store"
    full = (
        "def full(*args, **kwargs):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "_delta_local.LocalLog._commit_rows = full\n"
    )
    done = _exit_with_a_row_buffered(root, full)
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("podline: at exit, ")
    assert "No space left on device" in lines[0]
    assert DeltaStore(root).scan("t").column("v").to_pylist() == [1]


def _same_kind(synced: Path, entry: Path) -> bool:
    """Whether ``synced`` is a temporary log entry of the kind ``entry`` stands for: a
    ``_commit_*.json.tmp`` in the log, or the first commit in a new log being made."""
    if entry.name.endswith(".tmp"):
        return synced.parent == entry.parent and synced.name.endswith(".json.tmp")
    return synced.name == entry.name and synced.parent.name.startswith(entry.parent.name)


def _leftovers(table: Path) -> None:
    """What writers killed while creating ``table`` leave (this version of podline leaves
    the data file and logs being made, an hour old and new; older versions, and other
    writers, the rest)."""
    table.mkdir(parents=True)
    (table / "_podline.lock").touch()
    (table / "part-00000-0-c000.parquet").write_bytes(b"PAR1 not really")
    for name, age in (("_delta_log.new-0", 7200), ("_delta_log.new-1", 0)):
        (table / name).mkdir()
        (table / name / f"{0:020d}.json").write_text("{")
        made = time.time() - age
        os.utime(table / name, (made, made))
    (table / "_delta_log").mkdir()
    (table / "_delta_log" / "_commit_0.json.tmp").write_text("{")


def test_a_half_created_table_is_no_table_and_is_created_over(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = DeltaStore(root, flush_seconds=None)
    _leftovers(Path(store.table_uri("a/t")))
    assert not store.exists("a/t")
    assert store.list() == []  # list() never names a path exists() denies
    assert store.scan("a/t") is None
    store.write("a/t", records(["x"], v=[1]))
    store.flush()
    assert store.list() == [("a", "t")]
    assert DeltaStore(root).scan("a/t").column("v").to_pylist() == [1]
    table = Path(store.table_uri("a/t"))
    assert DeltaTable(str(table)).to_pyarrow_table().column("v").to_pylist() == [1]
    # A dead creator's log in the making is removed once an hour old (a live one never is),
    # and verify() lists what is left.
    assert [p.name for p in table.glob("_delta_log.new-*")] == ["_delta_log.new-1"]
    report = store.verify()
    assert report.ok
    assert ("temporary-file", f"_delta_log.new-1/{0:020d}.json") in {
        (f.kind, f.detail) for f in report.leftovers
    }


@pytest.mark.slow
def test_a_writer_killed_while_creating_tables_leaves_each_whole_or_absent(
    tmp_path: Path,
) -> None:
    """SIGKILL at random moments of a writer creating table after table: no log directory
    without a commit is ever left, every table the store lists is one delta-rs opens, and
    each is whole."""
    root = tmp_path / "store"
    for _ in range(4):
        writer = subprocess.Popen(
            [sys.executable, str(WRITER), "tables", str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        for _ in range(random.randint(3, 8)):
            assert writer.stdout.readline(), writer.stderr.read() if writer.stderr else ""
        time.sleep(random.uniform(0, 0.02))
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        store = DeltaStore(root)
        for log in Path(root).rglob("_delta_log"):
            assert any(p.suffix == ".json" for p in log.iterdir()), f"{log} has no commit"
        paths = store.list()
        assert paths
        for path in paths:
            assert store.exists(path)
            rows = DeltaTable(store.table_uri(path)).to_pyarrow_table()
            assert rows.num_rows == 10
            assert set(rows.column("k").to_pylist()) == {int(path[-1][1:])}
