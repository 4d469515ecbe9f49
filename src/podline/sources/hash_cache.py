"""What building a file source establishes, cached across processes while its files are
unchanged.

Building a source from a file reads every row three times: to type it (which columns hold
nulls), to hash it for its default source id, and to hash it stamped for its content hash. For
10 million rows that is seconds per build, on every run. The cache keeps the outcome (row
count, schema, source id, content hash) in ``<cache dir>/source-hashes/<key>.json``, where the
cache dir is ``$PODLINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/podline``, else
``~/.cache/podline``; ``PODLINE_CACHE_DIR=off`` turns the cache off.

The key is a hash of everything the outcome depends on: the cache format, the hash scheme, the
reader and its options, the tag columns, ``source_id``, ``record_id_column``, and the
*fingerprint* of the files: for every regular file under the path, its relative path, size,
modification time, status-change time (ctime), inode and device, as ``os.stat`` gives them in
nanoseconds. Like ``podline.hashing.files`` (size and mtime), it trusts the file system's
metadata instead of reading the bytes; it adds the ctime and the inode, so that these changes
are detected as well:

* a rewrite of the same size whose mtime was put back (``os.utime``, ``touch -d``, ``cp -p``,
  ``rsync -t``): writing and setting the mtime both set the ctime to *now*, and no call sets
  it back;
* a file replaced by another one (a new inode), or the same path on another file system.

Not detected: a change that also puts the ctime back, which takes setting the system clock
back or writing to the disk under the file system. Files on object storage (``s3://...``) are
not cached: every build reads them. Sources read the fingerprint again whenever they read
their rows, so a file that changes after its source was built is never read under the
identity of its earlier content (``SourceError``).

A ``GeneratorSource`` has no files: it is cached only under a ``cache_key`` its user gives
(an empty fingerprint), and its entry also keeps every chunk's digests, against which each of
its reads checks the chunks it gives.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from podline.hashing import HASH_SCHEME, ContentHash

__all__ = [
    "CACHE_ENV",
    "CachedBuild",
    "ChunkDigest",
    "cache_directory",
    "fingerprint",
    "load_build",
    "save_build",
]

CACHE_ENV = "PODLINE_CACHE_DIR"
#: Bumped whenever what an entry holds, or how a source is built from a file, changes.
_FORMAT = "source-build-2"

#: One file's fingerprint: relative path, size, mtime_ns, ctime_ns, inode, device.
FileStat = tuple[str, int, int, int, int, int]
#: One chunk's digests, as a ``GeneratorSource`` checks its chunks: IPC bytes, content hash.
ChunkDigest = tuple[str, str]


@dataclass(frozen=True)
class CachedBuild:
    """What building a source from unchanged files established."""

    num_rows: int
    schema: pa.Schema
    source_id: str
    content_hash: ContentHash
    #: Every chunk's digests, for sources that check each chunk they read (else None).
    chunks: tuple[ChunkDigest, ...] | None = None


def cache_directory() -> Path | None:
    """Where entries live (None: the cache is off)."""
    configured = os.environ.get(CACHE_ENV, "")
    if configured.lower() == "off":
        return None
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "podline"


def fingerprint(path: str) -> tuple[FileStat, ...] | None:
    """The fingerprint of the files at ``path`` (a file, or every file under a directory,
    sorted), or None for a URL, which is not cached."""
    if "://" in path:
        return None
    root = os.path.abspath(path)
    if not os.path.isdir(root):
        return (_stat(root, "."),)
    found: list[FileStat] = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        for name in sorted(files):
            full = os.path.join(directory, name)
            found.append(_stat(full, os.path.relpath(full, root)))
    return tuple(found)


def _stat(full: str, relative: str) -> FileStat:
    info = os.stat(full)
    return (relative, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev)


def _key(files: tuple[FileStat, ...], build: dict[str, Any]) -> str:
    text = json.dumps(
        {"format": _FORMAT, "scheme": HASH_SCHEME, "files": files, "build": build},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def load_build(files: tuple[FileStat, ...], build: dict[str, Any]) -> CachedBuild | None:
    """The cached outcome of ``build`` over exactly these ``files``, if any. An entry that
    cannot be read is ignored (the source is built again and the entry rewritten)."""
    directory = cache_directory()
    if directory is None:
        return None
    entry = directory / "source-hashes" / f"{_key(files, build)}.json"
    try:
        data = json.loads(entry.read_text(encoding="utf-8"))
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data["schema"])))
        return CachedBuild(
            int(data["num_rows"]),
            schema,
            str(data["source_id"]),
            ContentHash.parse(str(data["content_hash"])),
            None if data.get("chunks") is None else tuple((q, c) for q, c in data["chunks"]),
        )
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None


def save_build(files: tuple[FileStat, ...], build: dict[str, Any], outcome: CachedBuild) -> None:
    """Keep ``outcome`` for these ``files``; written whole or not at all (a cache that
    cannot be written only costs the next build its passes)."""
    directory = cache_directory()
    if directory is None:
        return
    folder = directory / "source-hashes"
    data = {
        "num_rows": outcome.num_rows,
        "schema": base64.b64encode(outcome.schema.serialize().to_pybytes()).decode(),
        "source_id": outcome.source_id,
        "content_hash": str(outcome.content_hash),
        "chunks": None if outcome.chunks is None else [list(c) for c in outcome.chunks],
    }
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(data, out)
            os.replace(temporary, folder / f"{_key(files, build)}.json")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
