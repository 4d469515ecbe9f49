"""A DeltaStore flush of several tables: the tables commit side by side, every one of them
is committed or reported, and what delta-rs reads afterwards is exactly what was written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from tests.internals import real_commit, replace_commits

import podline
from podline.errors import StoreError
from podline.stores import RECORD_ID, DeltaStore

from .conftest import records

_TABLES = ["status/a", "status/b", "status/c", "runs"]
_SRC = str(Path(podline.__file__).parent.parent)


def _read_back(store: DeltaStore, path: str) -> list[str]:
    return sorted(DeltaTable(store.table_uri(path)).to_pyarrow_table()[RECORD_ID].to_pylist())


def test_tables_of_one_flush_commit_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each commit waits for another one to be under way at the same time: one after the
    other, the first would wait in vain (the barrier breaks after its timeout)."""
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    for path in _TABLES:
        store.write(path, records([f"{path}-1", f"{path}-2"], v=[1, 2]))
    commit = real_commit()
    meeting = threading.Barrier(2, timeout=20)
    threads: set[str] = set()

    def paired(*args: Any, **kwargs: Any) -> Any:
        threads.add(threading.current_thread().name)
        meeting.wait()
        return commit(*args, **kwargs)

    with monkeypatch.context() as patch:
        replace_commits(patch, paired)
        store.flush()
    assert len(threads) >= 2
    for path in _TABLES:
        assert _read_back(store, path) == [f"{path}-1", f"{path}-2"]
    store.close()


def test_a_failing_table_spares_the_others_and_keeps_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DeltaStore(tmp_path / "store", flush_seconds=None)
    for path in _TABLES:
        store.write(path, records([f"{path}-1"], v=[1]))
    commit = real_commit()

    def failing_for_b_and_runs(self: Any, state: Any, path: tuple[str, ...], *rest: Any) -> Any:
        if path in {("status", "b"), ("runs",)}:
            raise OSError(f"disk on fire under {'/'.join(path)}")
        return commit(self, state, path, *rest)

    with monkeypatch.context() as patch:
        replace_commits(patch, failing_for_b_and_runs)
        with pytest.raises(StoreError, match=r"flushing 2 tables failed") as failed:
            store.flush()
    # Both failures are named, in the order of the tables in the store.
    message = str(failed.value)
    assert message.index("'status/b'") < message.index("'runs'")
    assert _read_back(store, "status/a") == ["status/a-1"]
    assert _read_back(store, "status/c") == ["status/c-1"]
    assert not DeltaTable.is_deltatable(store.table_uri("status/b"))
    assert store.read("status/b", ["status/b-1"]).num_rows == 1  # still buffered
    store.flush()
    assert _read_back(store, "status/b") == ["status/b-1"]
    assert _read_back(store, "runs") == ["runs-1"]
    store.close()


def test_tables_buffered_at_exit_are_all_committed(tmp_path: Path) -> None:
    """At interpreter exit no thread can start: the exit flush commits the tables one after
    another instead, and loses none of them."""
    root = tmp_path / "store"
    script = textwrap.dedent(
        f"""
        import pyarrow as pa
        from podline.stores import RECORD_ID, DeltaStore
        store = DeltaStore({str(root)!r}, flush_seconds=None)
        for path in {_TABLES!r}:
            store.write(path, pa.table({{RECORD_ID: [path + "-1"], "v": [1]}}))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([_SRC, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    store = DeltaStore(root)
    for path in _TABLES:
        assert _read_back(store, path) == [f"{path}-1"]
