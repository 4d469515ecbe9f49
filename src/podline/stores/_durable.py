"""Making local files and directories durable before anything refers to them.

A file system keeps written data and new directory entries in memory for a while; a power loss
(or a crash of the machine, not of the process) then loses them, in any order. A Delta log
entry that survived while the data file it adds did not would leave a table no reader can
read. So podline's local commits ``fsync`` what an entry refers to (the data file, and the
directory holding its name) and the entry itself before the entry is published, and the log
directory after, so a commit that returned survives too. On systems where a directory cannot
be opened for ``fsync`` (Windows), only files are synced.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["make_dirs", "sync_dir", "sync_file", "write_synced"]


def sync_file(path: Path) -> None:
    """Flush the contents of the file at ``path`` to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_dir(path: Path) -> None:
    """Flush the entries of the directory ``path`` (names created, linked or renamed in it)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (IsADirectoryError, PermissionError):  # pragma: no cover - Windows
        return
    try:
        with contextlib.suppress(OSError):  # some file systems cannot sync a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: Path, data: bytes) -> None:
    """Create the file ``path`` (it must not exist) holding ``data``, flushed to storage."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each new entry flushed into its parent."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another writer made it meanwhile
            directory.mkdir()
        sync_dir(directory.parent)
