"""Content hashes of files, cached by what ``os.stat`` says of them so unchanged files are read
once.

A ``pathlib.Path`` value's identity is its file's content: two paths to identical bytes hash
equal, and editing a file changes the hash. The cache lives for the process; an entry is reused
only while the file's size, modification time, status-change time (ctime), inode and device
are unchanged, as for file sources (``podline.sources.hash_cache``): a rewrite of the same size
whose mtime was put back (``cp -p``, ``rsync -t``, ``os.utime``) still changes the ctime. A
file changed within ``_RECENT_NS`` of being read is not cached: a second change within the same
clock tick would leave every time as it was.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from podline.errors import HashingError
from podline.hashing.digest import HASH_SCHEME, ContentHash
from podline.schema import FILE_PATH_FIELD

__all__ = [
    "clear_file_hash_cache",
    "file_digest",
    "file_hash_cache_info",
    "file_paths",
    "hash_file",
    "holds_files",
    "unreadable_files",
]

_CHUNK = 1 << 20
#: Longer than the coarsest clock tick file times are taken from.
_RECENT_NS = 100_000_000
_cache: dict[tuple[str, int, int, int, int, int], bytes] = {}
_lock = threading.Lock()
_stats = {"hits": 0, "reads": 0}


def hash_file(path: str | os.PathLike[str]) -> ContentHash:
    """The content hash of a regular file.

    Raises ``HashingError`` naming the path when it is missing, a directory or unreadable.
    """
    return ContentHash(HASH_SCHEME, file_digest(path))


def file_digest(path: str | os.PathLike[str]) -> bytes:
    """The raw SHA-256 digest of a file's bytes (cached; see module docs)."""
    resolved = os.path.abspath(os.fspath(path))
    try:
        stat = os.stat(resolved)
    except FileNotFoundError:
        raise HashingError(f"file {str(path)!r} does not exist, so it cannot be hashed") from None
    except OSError as exc:
        raise HashingError(f"cannot stat file {str(path)!r}: {exc}") from exc
    if not Path(resolved).is_file():
        raise HashingError(f"{str(path)!r} is not a regular file; only files can be hashed")
    key = (resolved, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            _stats["hits"] += 1
            return cached
        _stats["reads"] += 1
    hasher = hashlib.sha256()
    try:
        with open(resolved, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                hasher.update(chunk)
    except OSError as exc:
        raise HashingError(f"cannot read file {str(path)!r}: {exc}") from exc
    digest = hasher.digest()
    if time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > _RECENT_NS:
        with _lock:
            _cache[key] = digest
    return digest


def file_hash_cache_info() -> dict[str, int]:
    """Counters of the file-hash cache: ``hits``, ``reads`` (files actually read), ``size``."""
    with _lock:
        return {**_stats, "size": len(_cache)}


def clear_file_hash_cache() -> None:
    """Forget every cached file digest and reset the counters (mostly for tests)."""
    with _lock:
        _cache.clear()
        _stats.update(hits=0, reads=0)


def unreadable_files(table: pa.Table, digests: dict[str, bytes] | None = None) -> dict[int, str]:
    """The rows of ``table`` holding a file value (at any depth) that names no readable
    file, each with why (the first such file of the row, by column name). ``digests``, when
    given, receives the digest of every readable file (by path as the value holds it)."""
    problems: dict[int, str] = {}
    for name in sorted(table.column_names):
        column = table.column(name)
        if not holds_files(column.type):
            continue
        for row, value in enumerate(column.to_pylist()):
            if row in problems:
                continue
            for path in file_paths(value):
                try:
                    digest = file_digest(path)
                except HashingError as exc:
                    problems[row] = f"column {name!r}: {exc}"
                    break
                if digests is not None:
                    digests[path] = digest
    return problems


def holds_files(t: pa.DataType) -> bool:
    """Whether values of Arrow type ``t`` hold file values (at any depth)."""
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        return names == [FILE_PATH_FIELD] or any(
            holds_files(t.field(i).type) for i in range(t.num_fields)
        )
    if pa.types.is_map(t):
        return holds_files(t.key_type) or holds_files(t.item_type)
    lists = (
        pa.types.is_list,
        pa.types.is_large_list,
        pa.types.is_fixed_size_list,
        pa.types.is_list_view,
        pa.types.is_large_list_view,
    )
    if any(is_list(t) for is_list in lists):
        return holds_files(t.value_type)
    return False


def file_paths(value: Any) -> Iterator[str]:
    """The file paths inside one value as ``to_pylist`` gives it."""
    if isinstance(value, dict):
        if set(value) == {FILE_PATH_FIELD}:
            if value[FILE_PATH_FIELD] is not None:
                yield value[FILE_PATH_FIELD]
            return
        for item in value.values():
            yield from file_paths(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from file_paths(item)
