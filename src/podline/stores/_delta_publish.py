"""Publishing a commit of a local Delta table so that it appears whole or not at all: the
next entry of a log by a hard link (``link_entry``), the first entry of a new table by
renaming its log directory into place (``create_log``); and whether a directory holds a
table at all (``has_log``). What an entry refers to is synced before it is published
(``_durable.Syncing``)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import time
import uuid
from pathlib import Path

from podline.stores._delta_actions import list_log
from podline.stores._delta_format import UnsupportedTable
from podline.stores._delta_log import CommitConflict
from podline.stores._durable import Syncing, sync_dir, write_synced

__all__ = ["STAGED", "STAGING", "create_log", "has_log", "link_entry", "staged_name"]

#: The name of a new table's log while it is being made (see ``create_log``).
STAGING = "_delta_log.new-"
#: The names of files being written in a log directory before they are published: a commit
#: (``_commit_<uuid>.json.tmp``, as delta-rs names its own) and a file renamed into place
#: (``staged_name``). A writer killed meanwhile leaves one; no reader looks at them.
STAGED = re.compile(r"_commit_[0-9a-f-]+\.json\.tmp|\.[0-9a-f-]{36}\.[^/]+\.tmp")
#: Age past which such a log being made is a dead creator's, and removed.
_STALE_SECONDS = 3600
#: What ``os.link`` fails with where a file system has no hard links.
_NO_LINKS = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV, errno.EINVAL}
)


def has_log(uri: str) -> bool:
    """Whether a local Delta table exists at ``uri``: its log holds a commit or checkpoint
    (a log directory without one is no table to any reader)."""
    log = Path(uri, "_delta_log")
    if log.joinpath(f"{0:020d}.json").exists():  # unless its first commits were cleaned up
        return True
    try:
        return list_log(str(log)).latest() >= 0
    except (FileNotFoundError, NotADirectoryError):
        return False


def staged_name(path: Path) -> Path:
    """The temporary name beside ``path`` under which it is written whole before it is
    renamed into place (one of ``STAGED``)."""
    return path.with_name(f".{uuid.uuid4()}.{path.name}.tmp")


def link_entry(log: Path, entry: bytes, at: int, syncing: Syncing) -> Path:
    """Publish ``entry`` as version ``at``: written and synced under a temporary name,
    then hard-linked to its own, which fails if the name exists, so another writer's
    version is never overwritten and a reader never sees a partial entry. Raises only
    while nothing is published; returns the directory to sync."""
    temporary = log / f"_commit_{uuid.uuid4()}.json.tmp"
    try:
        write_synced(temporary, entry)
        syncing.wait()
        try:
            os.link(temporary, log / f"{at:020d}.json")
        except FileExistsError:
            raise CommitConflict(
                f"version {at} of {log.parent} was committed by another writer"
            ) from None
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            # A file system without hard links (FAT, some network shares): without them
            # no commit is safe from a concurrent one, so delta-rs, which knows others,
            # commits.
            raise UnsupportedTable(f"no hard links in {log.parent}: {exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return log


def create_log(table: Path, entry: bytes, syncing: Syncing) -> Path:
    """Publish ``entry`` as version 0 of a new table: the log directory is made whole
    under a temporary name and renamed into place, so no reader ever sees a log without
    a commit (a writer killed meanwhile leaves only names Delta readers ignore). Raises
    ``CommitConflict`` if another writer created the table first; returns the directory
    to sync."""
    for staged in table.glob(f"{STAGING}*"):  # of creators killed before they renamed
        with contextlib.suppress(OSError):  # (a creator at work is never this slow)
            if time.time() - staged.stat().st_mtime > _STALE_SECONDS:
                shutil.rmtree(staged, ignore_errors=True)
    staging = table / f"{STAGING}{uuid.uuid4()}"
    staging.mkdir()
    try:
        write_synced(staging / f"{0:020d}.json", entry)
        sync_dir(staging)
        syncing.wait()
        _rename_log(staging, table / "_delta_log")
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # still there only if not renamed
    return table


def _rename_log(staging: Path, log: Path) -> None:
    """Rename ``staging`` to the log directory, unless a log with a commit is there."""
    for attempt in range(2):
        try:
            os.rename(staging, log)  # replaces an empty directory, on POSIX
            return
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EACCES):
                raise
            if has_log(str(log.parent)) or attempt:
                raise CommitConflict(f"another writer created {log.parent}") from None
        # A log directory holding no commit is a leftover: of a creator killed before
        # it committed, by older podline versions or other writers. Replace it.
        shutil.rmtree(log, ignore_errors=True)
