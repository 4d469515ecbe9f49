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
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pyarrow as pa

from podline.errors import HashingError
from podline.hashing.files import file_digest, file_paths, holds_files

__all__ = ["FILES_TYPE", "SharedOutputFileWarning", "fingerprints", "holds_files", "stale_results"]


class SharedOutputFileWarning(UserWarning):
    """Two calls of one function returned the same output file: it holds what one of them
    wrote, so the other's stored result names a file that is not its own. Names the function,
    the file and both rows' tags."""


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


def fingerprints(outputs: pa.Table) -> tuple[pa.Array, dict[int, str]]:
    """Per row of ``outputs``, the fingerprints of the files it names; and the rows naming a
    file that is not readable, with why."""
    columns = [
        outputs.column(n).to_pylist()
        for n in outputs.column_names
        if holds_files(outputs.schema.field(n).type)
    ]
    rows: list[list[dict[str, object]]] = []
    problems: dict[int, str] = {}
    for row, values in enumerate(zip(*columns, strict=True)):
        prints: list[dict[str, object]] = []
        for path in _paths_of(values):
            try:
                digest = file_digest(path)
                stat = os.stat(path)
            except (HashingError, OSError) as exc:
                problems[row] = f"it returned a path to no readable file: {exc}"
                break
            prints.append(
                {"path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "digest": digest}
            )
        rows.append(prints)
    if not columns:
        rows = [[] for _ in range(outputs.num_rows)]
    return pa.array(rows, FILES_TYPE), problems


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
