"""Output files: what a function's stored ``Path`` results must still find on disk.

A function whose outputs hold ``pathlib.Path`` values writes files that later runs rely on. When
its results are stored, each file it returned is fingerprinted: path, size, modification time
and content digest. When a stored result is looked up, its files are checked, cheaply first:

* a file that is gone makes the result stale ("output file missing");
* a file whose size and modification time are unchanged, and whose status last changed
  (ctime) before the result was stored, is taken as it was;
* otherwise its content is hashed: the same digest means it was only touched, another one
  makes the result stale ("output file changed"). A rewrite of the same size whose mtime was
  put back (``cp -p``, ``rsync -t``) is caught by the ctime, which no call sets back; so is a
  ``chmod``, which costs a hash of the file in each process that checks it.

A stale result is not served: its row is computed again, and the new result replaces it. A
function that returns a path naming no readable file fails that row (there is nothing to
fingerprint, and a later run could not trust it).

**Where and when files are fingerprinted.** A call's files are fingerprinted where the call ran,
right after it returned (``OutputFingerprints``, run by the executor as the call's
``CallPolicy.fingerprint``), before that worker starts another call: a result's fingerprint is
its own call's content, even if another call writes the file later. When a window of finished
calls is stored, the driver checks that each row's files still hold what its call wrote
(``ReturnedFiles``): cheaply by their size, times and inode, and by content where those
changed or where another call of the execution returned the same file (two writes within one
tick of the file system's clock leave the times as they were). A row whose file was
overwritten since its call returned is not stored; it fails with
``OutputFileOverwrittenError``, naming the call that wrote the file when known. A file
returned by a call of an earlier window, whose result is stored, and now holding another
call's different content only warns (``SharedOutputFileWarning``): that stored result's
fingerprint no longer matches the file, so later runs compute it again instead of serving it.
Calls returning one file with the same content (an input file passed through, a file the
function did not write) are fine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.conversion import to_arrow_value
from podline.errors import HashingError
from podline.functions.packet_function import SKIP, PacketFunction
from podline.hashing.files import file_digest, file_paths, holds_files
from podline.schema import PodType

__all__ = [
    "FILES_TYPE",
    "OutputFingerprints",
    "ReturnedFiles",
    "SharedOutputFileWarning",
    "Witnessed",
    "Written",
    "files_array",
    "fingerprints",
    "holds_files",
    "paths_by_row",
    "rows_naming",
    "stale_results",
]


class SharedOutputFileWarning(UserWarning):
    """A call returned an output file that a call of an earlier window of the same execution
    returned too, and wrote other content into it: that call's stored result no longer
    matches its file, so later runs compute it again rather than serve it (and that call then
    overwrites this one's file). Names the function, the file and both rows' tags."""


#: One row's files: every file its outputs name, in output-key order.
FILES_TYPE = pa.large_list(
    pa.struct(
        [
            pa.field("path", pa.large_string(), nullable=False),
            pa.field("size", pa.int64(), nullable=False),
            pa.field("mtime_ns", pa.int64(), nullable=False),
            pa.field("digest", pa.large_binary(), nullable=False),
        ]
    )
)


#: A file as found right after a call returned it: size, modification time, status-change
#: time, inode, and the digest of its content.
Written = tuple[int, int, int, int, bytes]

#: What ``OutputFingerprints`` tells of one call: its files (by path, in output-key order),
#: or why one of them is not readable (a str), or None when its value does not fit the
#: outputs (the driver fails that row as it types it).
Witnessed = dict[str, Written] | str | None


def written(path: str) -> Written:
    """The fingerprint of the file at ``path`` (``OSError``/``HashingError`` if unreadable).
    Its times are read before its content: a write while it is hashed changes them, so a
    later check by times alone does not take the file for unchanged."""
    try:
        stat = os.stat(path)
    except OSError:
        file_digest(path)  # raises HashingError saying why, as for any file podline hashes
        raise
    digest = file_digest(path)
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, digest)


_UNREADABLE = "it returned a path to no readable file: "


class OutputFingerprints:
    """Fingerprints the files named by a function's return value, in the process that ran
    the call (``CallPolicy.fingerprint``): a ``Witnessed``. Picklable: it travels to worker
    processes with the function. Holds the output keys and the types of those that hold
    files, and finds paths as the driver's typing does (``to_arrow_value``), so that they
    are spelled as they will be stored."""

    def __init__(self, function: PacketFunction) -> None:
        arrow = function.output_schema.to_arrow()
        self.keys = tuple(function.output_keys)
        self.files: list[tuple[int, PodType]] = [
            (i, function.output_schema[k])
            for i, k in enumerate(self.keys)
            if holds_files(arrow.field(k).type)
        ]

    def __call__(self, value: Any) -> Witnessed:
        if value is SKIP:
            return {}
        if len(self.keys) == 1:
            values: Sequence[Any] = (value,)
        elif isinstance(value, tuple | list) and len(value) == len(self.keys):
            values = value
        else:
            return None
        found: dict[str, Written] = {}
        for index, tp in self.files:
            item = values[index]
            if item is None:
                continue
            try:
                paths = list(file_paths(to_arrow_value(item, tp)))
            except Exception:  # a value of another type: the driver says what is wrong with it
                return None
            for path in paths:
                if path not in found:
                    try:
                        found[path] = written(path)
                    except (HashingError, OSError) as exc:
                        return f"{_UNREADABLE}{exc}"
        return found


def fingerprints(
    outputs: pa.Table, witnessed: Sequence[Witnessed]
) -> tuple[list[dict[str, Written]], dict[int, str]]:
    """Per row of ``outputs``, its files as its call found them (``witnessed``, one per row,
    taken where the call ran); fingerprinted now for the rows without (an executor that
    takes none); and the rows naming a file that is not readable, with why."""
    rows: list[dict[str, Written]] = []
    problems: dict[int, str] = {}
    paths: list[list[str]] | None = None
    for row, seen in enumerate(witnessed):
        if isinstance(seen, str):
            problems[row] = seen
            rows.append({})
            continue
        if seen is not None:
            rows.append(seen)
            continue
        if paths is None:
            paths = paths_by_row(outputs)
        found: dict[str, Written] = {}
        for path in paths[row]:
            try:
                found[path] = written(path)
            except (HashingError, OSError) as exc:
                problems[row] = f"{_UNREADABLE}{exc}"
                break
        rows.append(found)
    return rows, problems


def paths_by_row(outputs: pa.Table) -> list[list[str]]:
    """Per row of ``outputs`` (output columns, typed), the paths of the files it names."""
    columns = [
        outputs.column(n).to_pylist()
        for n in outputs.column_names
        if holds_files(outputs.schema.field(n).type)
    ]
    if not columns:
        return [[] for _ in range(outputs.num_rows)]
    return [_paths_of(values) for values in zip(*columns, strict=True)]


def files_array(rows: Sequence[Mapping[str, Written]]) -> pa.Array:
    """The stored fingerprints (``FILES_TYPE``) of these rows' files."""
    return pa.array(
        [
            [
                {"path": path, "size": w[0], "mtime_ns": w[1], "digest": w[4]}
                for path, w in files.items()
            ]
            for files in rows
        ],
        FILES_TYPE,
    )


def rows_naming(files: pa.Array | pa.ChunkedArray, paths: Iterable[str]) -> np.ndarray:
    """The rows of a stored fingerprints column (``FILES_TYPE``) naming any of ``paths``."""
    if isinstance(files, pa.ChunkedArray):
        files = files.combine_chunks()
    value_set = pa.array(list(paths), pa.large_string())
    named = pc.is_in(pc.struct_field(pc.list_flatten(files), "path"), value_set=value_set)
    parents = pc.list_parent_indices(files).filter(named)
    return np.unique(parents.to_numpy(zero_copy_only=False)).astype(np.int64)


@dataclass
class Overwritten:
    """A row whose file no longer holds what its call wrote: the file, and the input row of
    the call of this execution that wrote what it holds, if known."""

    path: str
    writer: int | None


@dataclass
class ReturnedFiles:
    """The output files the calls of one execution returned and were stored with, checked
    window by window (``settle``): per path returned by one call, that call (input row,
    digest of what it found, window); per path returned by several, the first call that
    found each content (a file passed through by every call costs one entry)."""

    first: dict[str, tuple[int, bytes, int]] = field(default_factory=dict)
    shared: dict[str, dict[bytes, tuple[int, int]]] = field(default_factory=dict)
    #: Windows settled so far.
    windows: int = 0
    #: Paths already warned of (``settle``'s clashes name each path once).
    warned: set[str] = field(default_factory=set)

    def __contains__(self, path: object) -> bool:
        return path in self.first or path in self.shared

    def settle(
        self, calls: Sequence[tuple[int, Mapping[str, Written]]]
    ) -> tuple[dict[int, Overwritten], list[tuple[str, int, int]]]:
        """Check a window's calls (input row, files as its call found them): which of them
        (by position in ``calls``) returned a file that no longer holds what the call wrote,
        and the files shared with a stored call of an earlier window that found other
        content (path, that call's row, this call's row; once per path). Remembers the
        calls that pass."""
        self.windows += 1
        window = self.windows
        for row, files in calls:
            for path, w in files.items():
                self._add(path, row, w[4], window)
        overwritten: dict[int, Overwritten] = {}
        now: dict[str, bytes | None] = {}  # content found this window, by path
        for position, (row, files) in enumerate(calls):
            for path, w in files.items():
                if self._holds(path, w, now):
                    continue
                held = now.get(path)
                by = self.shared.get(path, {}).get(held) if held is not None else None
                overwritten[position] = Overwritten(path, by[0] if by and by[0] != row else None)
                break
        clashes: list[tuple[str, int, int]] = []
        for position, (row, files) in enumerate(calls):
            if position in overwritten:
                for path, w in files.items():
                    self._drop(path, row, w[4])
                continue
            for path, w in files.items():
                contents = self.shared.get(path)
                if contents is None or path in self.warned:
                    continue
                other = next(
                    (r for d, (r, at) in contents.items() if at < window and d != w[4]), None
                )
                if other is not None:
                    self.warned.add(path)
                    clashes.append((path, other, row))
        return overwritten, clashes

    def writers(self, path: str) -> list[int]:
        """Input rows of stored calls of this execution that returned ``path`` (one per
        content found)."""
        contents = self.shared.get(path)
        if contents is not None:
            return [row for row, _ in contents.values()]
        first = self.first.get(path)
        return [] if first is None else [first[0]]

    def _add(self, path: str, row: int, digest: bytes, window: int) -> None:
        contents = self.shared.get(path)
        if contents is None:
            first = self.first.get(path)
            if first is None:
                self.first[path] = (row, digest, window)
                return
            del self.first[path]
            contents = self.shared[path] = {first[1]: (first[0], first[2])}
        contents.setdefault(digest, (row, window))

    def _drop(self, path: str, row: int, digest: bytes) -> None:
        """Forget a call that failed the check (a path stays shared: conservative)."""
        contents = self.shared.get(path)
        if contents is not None:
            if contents.get(digest, (None, 0))[0] == row:
                del contents[digest]
        elif path in self.first and self.first[path][0] == row:
            del self.first[path]

    def _holds(self, path: str, w: Written, now: dict[str, bytes | None]) -> bool:
        """Whether the file still holds what a call found (``w``): cheaply by its size,
        times and inode, unless another call returned it too; else by its content."""
        if path not in now:
            if path not in self.shared:
                try:
                    stat = os.stat(path)
                except OSError:
                    now[path] = None
                    return False
                if (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino) == w[:4]:
                    return True
            try:
                now[path] = file_digest(path)
            except HashingError:
                now[path] = None
        return now[path] == w[4]


def stale_results(
    files: pa.Array | pa.ChunkedArray, stored_at: pa.Array | pa.ChunkedArray
) -> dict[int, str]:
    """The rows whose files are gone or changed since they were fingerprinted, with why;
    ``stored_at``: when each row's result was stored (a timestamp)."""
    stale: dict[int, str] = {}
    times = stored_at.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_pylist()
    for row, (prints, at) in enumerate(zip(files.to_pylist(), times, strict=True)):
        for printed in prints or ():
            reason = _changed(printed, at)
            if reason is not None:
                stale[row] = reason
                break
    return stale


def _changed(printed: dict[str, object], stored_at_ns: int) -> str | None:
    path = str(printed["path"])
    try:
        stat = os.stat(path)
    except OSError:
        return f"output file missing: {path}"
    if (
        stat.st_size == printed["size"]
        and stat.st_mtime_ns == printed["mtime_ns"]
        and stat.st_ctime_ns <= stored_at_ns
    ):
        return None
    try:
        same = file_digest(path) == printed["digest"]
    except HashingError:
        return f"output file missing: {path}"
    return None if same else f"output file changed: {path}"


def _paths_of(values: Iterable[object]) -> list[str]:
    return [path for value in values for path in file_paths(value)]
