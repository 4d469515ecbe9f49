"""Every place the tests reach into podline's internals, gathered in one module.

Tests check behaviour through public observables wherever one exists (results, counts, store
statistics, observers, what delta-rs reads back). What is left here has none, on purpose:

* **Fault injection** below the public API: a commit that fails or stalls, or races another
  writer, a compaction that breaks. Tests run as root, so a read-only directory cannot make a
  commit fail, and a race needs a commit to pause at an exact point.
* **I/O a store does beneath its API**: whether a lookup opened the table's data files or read
  its id column. Store statistics count calls to the store, not the files a call touched.
  (And the size from which a store lets go of an idle table's id index, which only that I/O
  shows, too large for a test to reach.)
* **A misreading fast path**, to show that ``verify`` catches one: podline's log reader made to
  drop a file or to read a protocol it should hand to delta-rs.
* **Work nobody asked for**: whether rows were turned into ``Tag``/``Packet`` objects.

When an internal moves, only this module changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

import podline
from podline.stores import (
    _delta_actions,
    _delta_commit,
    _delta_format,
    _delta_local,
    _delta_table,
)
from podline.stores import delta as delta_module

#: Where every commit of a Delta store goes through (podline's own appends and delta-rs's).
_COMMIT_OWNER = _delta_commit.Committer


def replace_commits(monkeypatch: pytest.MonkeyPatch, commit: Callable[..., Any]) -> None:
    """Make every Delta commit call ``commit`` (same arguments as the real one)."""
    monkeypatch.setattr(_COMMIT_OWNER, "_commit", commit)


def real_commit() -> Callable[..., Any]:
    """The real Delta commit, for a replacement to call on."""
    commit: Callable[..., Any] = _COMMIT_OWNER._commit
    return commit


def without_file_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn local file locks off, as on object stores: only the optimistic commit protocol
    then stands between concurrent writers."""
    monkeypatch.setattr(_delta_format, "fcntl", None)


def break_compaction(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """Make the store's small-file compaction raise ``error``."""

    def broken(*args: object, **kwargs: object) -> bool:
        raise error

    # In a flush or on request, and in the background (written, then committed).
    monkeypatch.setattr(delta_module, "rewrite_small_files", broken)
    monkeypatch.setattr(delta_module, "merge_small_files", broken)


def after_each_compaction(monkeypatch: pytest.MonkeyPatch, then: Callable[[], None]) -> None:
    """Call ``then`` right after each small-file compaction of a Delta store commits, before
    the store accounts for it."""
    for name in ("rewrite_small_files", "commit_merged"):  # see break_compaction
        real = getattr(delta_module, name)

        def compacting(*args: Any, _real: Any = real, **kwargs: Any) -> bool:
            rewrote: bool = _real(*args, **kwargs)
            then()
            return rewrote

        monkeypatch.setattr(delta_module, name, compacting)


def drop_a_data_file_when_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make podline's local log reader leave the last data file of every table out."""
    data_files = _delta_local.LocalLog.data_files

    def one_file_short(self: _delta_local.LocalLog) -> dict[str, int]:
        files = data_files(self)
        files.popitem()
        return files

    monkeypatch.setattr(_delta_local.LocalLog, "data_files", one_file_short)


def read_every_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make podline's log reader take tables of any protocol version, features unchecked."""
    monkeypatch.setattr(_delta_local, "readable_protocol", lambda protocol: True)


def count_table_reads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """A list that grows by one each time a Delta store reads rows from a table's files."""
    reads: list[object] = []
    real = delta_module.stored_rows

    def counting(*args: Any, **kwargs: Any) -> Any:
        reads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(delta_module, "stored_rows", counting)
    return reads


def record_data_file_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list of the data files (names relative to their table) whose rows a Delta store
    reads for a ``read`` or ``scan``, one entry per file read."""
    reads: list[str] = []
    for name in ("read_parquet", "read_matching"):
        real = getattr(_delta_table, name)

        def recording(files: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            reads.extend(files)
            return _real(files, *args, **kwargs)

        monkeypatch.setattr(_delta_table, name, recording)
    return reads


def count_id_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list of the table URIs whose id column a Delta store reads (for write-once
    checks: an index catching up, or confirming a hash match), one entry per read."""
    reads: list[str] = []
    real = _delta_table.TableIds.batches

    def counting(source: Any, log: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(log.uri)
        return real(source, log, *args, **kwargs)

    monkeypatch.setattr(_delta_table.TableIds, "batches", counting)
    return reads


def release_idle_indexes_from(monkeypatch: pytest.MonkeyPatch, hashes: int) -> None:
    """Have a Delta store let go of the id index of a table it stopped writing from
    ``hashes`` hashes on (default: 262,144), so that a small test reaches the threshold."""
    monkeypatch.setattr(_delta_commit, "_IDLE_INDEX_HASHES", hashes)


def count_checkpoint_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list of the checkpoint files podline's log reader reads whole, by name."""
    reads: list[str] = []
    real = _delta_local.checkpoint_rows

    def counting(path: Any, where: str) -> Any:
        reads.append(path.name)
        return real(path, where)

    monkeypatch.setattr(_delta_local, "checkpoint_rows", counting)
    return reads


def count_log_listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A list of the directories podline's log reader lists, one entry per listing."""
    listed: list[str] = []
    real = _delta_actions.os.listdir

    def counting(path: Any) -> list[str]:
        listed.append(str(path))
        return real(path)

    monkeypatch.setattr(_delta_actions.os, "listdir", counting)
    return listed


@contextmanager
def counting_row_builds() -> Iterator[list[int]]:
    """Within the block, a list of the sizes of the streams whose rows were turned into
    ``Tag``/``Packet`` objects."""
    built: list[int] = []
    original = podline.TableStream._build_rows

    def spy(self: podline.TableStream) -> Any:
        built.append(len(self))
        return original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(podline.TableStream, "_build_rows", spy)
        yield built
