"""``DeltaStore.verify()``: every table read by podline and by delta-rs, compared, and what
writers left behind.

podline reads plain local tables with its own log code (``_delta_local``); its rule is that this
is never observable: on any table it returns what delta-rs returns, or raises. ``verify``
checks that rule on a real store, table by table, and lists the files that writers left
behind. It owns the report types (``VerifyReport``, ``Finding``) and the checks; the store
hands it a way to read a table as a new store object would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import unquote

import pyarrow as pa
from pyarrow import fs as pafs

from podline.errors import StoreError
from podline.stores._common import conform
from podline.stores._delta_actions import log_listing
from podline.stores._delta_format import (
    TABLE_SUFFIX,
    decode_segment,
    encode_segment,
    path_schema,
)
from podline.stores._delta_log import TableLog
from podline.stores._delta_publish import STAGED, STAGING
from podline.stores.base import StorePath

__all__ = ["Finding", "ProblemKind", "Verifiable", "VerifyReport", "verify_tables"]

#: What makes a table a problem. ``differs``: podline and delta-rs both read it and disagree
#: (version, data files, schema or rows); ``misread``: podline reads a table delta-rs
#: refuses; ``refused``: podline refuses a table delta-rs reads; ``unreadable``: both refuse
#: it (the table is damaged). Only ``refused`` and ``unreadable`` are within podline's rule.
ProblemKind = Literal["differs", "misread", "refused", "unreadable"]
#: What a writer may leave behind: ``half-created``, a table directory without a commit
#: (a writer killed while creating it; readers see no table); ``unreferenced-file``, a data
#: file the table's current version does not name (a killed or losing writer's, or one
#: replaced by a compaction and not yet vacuumed; ``compact()`` deletes it once it is older
#: than the retention); ``temporary-file``, a commit or checkpoint a writer was writing when it
#: was killed (``compact()`` deletes it once older than the retention), or the log of a new
#: table it was making.
LeftoverKind = Literal["half-created", "unreferenced-file", "temporary-file"]

#: A commit or checkpoint being written (``_delta_publish.STAGED``), or a new table's log
#: being made (``_delta_publish.create_log``).
_TEMPORARY = re.compile(rf"_delta_log/(?:{STAGED.pattern})|{re.escape(STAGING)}[^/]+/.*")
_LOG = "_delta_log/"

#: Reads a table as a new store object would: the log it read, and the rows.
PodlineRead = Callable[[StorePath], tuple[TableLog | None, pa.Table | None]]


@dataclass(frozen=True)
class Finding:
    """One thing ``verify`` found at the table of ``path``."""

    path: StorePath
    kind: ProblemKind | LeftoverKind
    detail: str

    def __str__(self) -> str:
        return f"{'/'.join(self.path)}: {self.kind}: {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    """What ``DeltaStore.verify`` found.

    ``tables`` are the store paths of the tables read (sorted). ``problems`` are tables whose
    reading by podline is not delta-rs's, or that neither reads; ``leftovers`` are files
    writers left behind, which no reader sees. A store is ``ok`` when it has no problems.
    """

    tables: tuple[StorePath, ...]
    problems: tuple[Finding, ...]
    leftovers: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = f"{len(self.tables)} tables: {len(self.problems)} problems, "
        lines = [head + f"{len(self.leftovers)} leftovers"]
        lines += [f"  {finding}" for finding in (*self.problems, *self.leftovers)]
        return "\n".join(lines)


@runtime_checkable
class Verifiable(Protocol):
    """A store that can check its tables (``DeltaStore``; PostgreSQL keeps its own tables
    consistent). ``podline verify`` runs it; a store of your own that can tell whether its
    tables read back as written implements it to be checked the same way::

        class MyStore(podline.stores.DelegatingStore):
            def verify(self, path: PathLike = ()) -> VerifyReport:
                return VerifyReport(tables=(), problems=(), leftovers=())
    """

    def verify(self, path: Any = ()) -> VerifyReport:
        """Every table at or below ``path`` checked, and what writers left behind."""
        ...


def verify_tables(
    filesystem: pafs.FileSystem,
    base: str,
    prefix: StorePath,
    read: PodlineRead,
    *,
    uri: Callable[[StorePath], str],
    storage_options: dict[str, str] | None,
) -> VerifyReport:
    """Check every table at or below ``prefix`` of the store whose root is ``base`` in
    ``filesystem``: ``read`` reads one as podline does, ``uri`` says where it lives."""
    tables = _table_files(filesystem, base, prefix)
    problems: list[Finding] = []
    leftovers: list[Finding] = []
    checked = []
    for path in sorted(tables):
        files = tables[path]
        leftovers += [Finding(path, "temporary-file", f) for f in files if _TEMPORARY.fullmatch(f)]
        log = [f[len(_LOG) :] for f in files if f.startswith(_LOG)]
        if log_listing(log).latest() < 0:
            what = ", ".join(sorted(files)) or "nothing"
            leftovers.append(Finding(path, "half-created", f"no commit; the table holds {what}"))
            continue
        checked.append(path)
        problem, current = _compare(path, uri(path), read, storage_options)
        problems += problem
        if current is not None:
            unreferenced = sorted(f for f in files if _is_data(f) and f not in current)
            leftovers += [Finding(path, "unreferenced-file", f) for f in unreferenced]
    return VerifyReport(tuple(checked), tuple(problems), tuple(leftovers))


def _table_files(
    filesystem: pafs.FileSystem, base: str, prefix: StorePath
) -> dict[StorePath, list[str]]:
    """Every table directory at or below ``prefix``, with the files in it (relative)."""
    parent = [encode_segment(segment) for segment in prefix[:-1]]
    directory = "/".join([*([base] if base else []), *parent])
    try:
        selector = pafs.FileSelector(directory, allow_not_found=True, recursive=True)
        entries = filesystem.get_file_info(selector)
    except OSError:
        return {}
    tables: dict[StorePath, list[str]] = {}
    for entry in entries:
        segments = entry.path[len(directory) :].strip("/").split("/")
        at = next((i for i, s in enumerate(segments) if s.endswith(TABLE_SUFFIX)), None)
        if at is None:
            continue
        path = _decoded(prefix[:-1], segments[: at + 1])
        if path is None or path[: len(prefix)] != prefix:
            continue
        files = tables.setdefault(path, [])
        if entry.type == pafs.FileType.File and at + 1 < len(segments):
            files.append("/".join(segments[at + 1 :]))
    return tables


def _decoded(parent: StorePath, names: list[str]) -> StorePath | None:
    *dirs, table = names
    segments = [decode_segment(name) for name in [*dirs, table[: -len(TABLE_SUFFIX)]]]
    if not all(segments):
        return None
    return (*parent, *(s for s in segments if s))


def _is_data(name: str) -> bool:
    # Delta readers and vacuum skip names starting with "_" or "." (logs, lock files).
    return not any(segment.startswith(("_", ".")) for segment in name.split("/"))


def _compare(
    path: StorePath, uri: str, read: PodlineRead, storage_options: dict[str, str] | None
) -> tuple[list[Finding], set[str] | None]:
    """The problems of one table, and the data files of the version read (None: neither
    reads it)."""
    from deltalake import DeltaTable

    latest = _attempt(lambda: DeltaTable(uri, storage_options=storage_options).version())
    podline = _attempt(lambda: read(path))
    ours = podline if isinstance(podline, BaseException) else podline[0]
    # delta-rs reads the version podline read (another writer may have committed since).
    version = ours.version() if ours is not None and not isinstance(ours, BaseException) else None
    theirs = _attempt(lambda: _delta_rs_read(uri, version, storage_options))
    if isinstance(podline, BaseException) or isinstance(theirs, BaseException):
        return [_failure(path, podline, theirs)], _files_of(theirs)
    log, rows = podline
    assert log is not None
    assert rows is not None
    problems = []
    difference = _difference(log, rows, theirs, latest, path)
    if difference:
        problems.append(Finding(path, "differs", difference))
    return problems, set(log.data_files())


def _delta_rs_read(
    uri: str, version: int | None, storage_options: dict[str, str] | None
) -> tuple[int, set[str], pa.Schema, pa.Table]:
    """A table as delta-rs reads it: version, data files, podline schema, rows."""
    from deltalake import DeltaTable

    table = DeltaTable(uri, version=version, storage_options=storage_options)
    files = {unquote(p) for p in pa.table(table.get_add_actions()).column("path").to_pylist()}
    schema = path_schema(pa.schema(table.schema().to_arrow()))
    return table.version(), files, schema, table.to_pyarrow_table()


def _difference(
    log: TableLog,
    rows: pa.Table,
    theirs: tuple[int, set[str], pa.Schema, pa.Table],
    latest: int | BaseException,
    path: StorePath,
) -> str | None:
    version, files, schema, their_rows = theirs
    if isinstance(latest, int) and log.version() < latest:
        return f"podline reads version {log.version()}; version {latest} was there before"
    if log.version() != version:
        return f"podline reads version {log.version()}, delta-rs version {version}"
    ours = set(log.data_files())
    if ours != files:
        only = f"podline only {sorted(ours - files)}, delta-rs only {sorted(files - ours)}"
        return f"data files differ: {only}"
    if not rows.schema.equals(schema):
        return f"schema: podline {rows.schema}, delta-rs {schema}"
    return _row_difference(rows, their_rows, path)


def _row_difference(ours: pa.Table, theirs: pa.Table, path: StorePath) -> str | None:
    import polars as pl

    if ours.num_rows != theirs.num_rows:
        return f"podline reads {ours.num_rows} rows, delta-rs {theirs.num_rows}"
    try:
        theirs = conform(theirs, ours.schema, path)
    except StoreError as exc:
        return f"delta-rs's rows do not convert to podline's types: {exc}"
    # Compared as multisets: neither reader promises an order. Rows are put in the order of
    # their hashes (equal rows hash alike), then compared whole.
    a, b = pl.from_arrow(ours), pl.from_arrow(theirs)
    assert isinstance(a, pl.DataFrame)
    assert isinstance(b, pl.DataFrame)
    same = a[a.hash_rows().arg_sort()].equals(b[b.hash_rows().arg_sort()])
    return None if same else "the rows differ"


def _failure(path: StorePath, podline: Any, theirs: Any) -> Finding:
    if isinstance(podline, BaseException) and isinstance(theirs, BaseException):
        detail = f"podline: {_text(podline)}; delta-rs: {_text(theirs)}"
        return Finding(path, "unreadable", detail)
    if isinstance(podline, BaseException):
        version, _, _, rows = theirs
        detail = f"{_text(podline)} (delta-rs reads version {version}, {rows.num_rows} rows)"
        return Finding(path, "refused", detail)
    log, rows = podline
    detail = f"podline reads version {log.version()} ({rows.num_rows} rows); delta-rs: "
    return Finding(path, "misread", detail + _text(theirs))


def _files_of(theirs: Any) -> set[str] | None:
    return None if isinstance(theirs, BaseException) else set(theirs[1])


def _attempt(action: Callable[[], Any]) -> Any:
    """What ``action`` returns, or the exception it raised (delta-rs raises bare exceptions,
    and a Rust panic as a ``BaseException``)."""
    try:
        return action()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        return exc


def _text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"
