"""What a Delta log says, checked before podline's log reader (``_delta_local``) believes it.

podline replays local Delta logs itself, so it must never read what delta-rs would not. This
module owns how a log's entries are named and listed (``list_log``), how a commit's JSON lines
and a checkpoint's rows become actions, the checks every action passes, and how an ``add``
action's path names a data file (``data_file``). The rules:

- An entry that is not UTF-8, newline-delimited JSON objects (a truncated or damaged entry, a
  line holding an array or a number) is a ``StoreError`` naming the table, the version and the
  line: delta-rs refuses it too.
- An action a reader depends on (``add``, ``remove``, ``metaData``, ``protocol``) has exactly
  the shape the Delta protocol gives it (its required fields, of their types); otherwise, and
  for a reader protocol or reader feature podline does not interpret, podline does not read
  the table (``UnsupportedTable``): delta-rs reads it, or refuses it. Other actions
  (``commitInfo``, ``txn``, ...) change nothing a read returns and are skipped, as delta-rs
  skips them; those a checkpoint carries are named (``CARRIED``), and podline leaves the
  checkpoints of a table holding any to delta-rs.
- A data file's path is a relative URI reference, percent-encoded; one that is absolute, has a
  scheme, or holds an empty, ``.`` or ``..`` segment is refused (``StoreError``): podline
  never reads a file outside the table.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa

from podline.errors import StoreError
from podline.stores._delta_format import UnsupportedTable

__all__ = [
    "CARRIED",
    "Action",
    "LogListing",
    "checkpoint_actions",
    "commit_actions",
    "data_file",
    "list_log",
    "readable_protocol",
    "schema_fields",
]

#: Actions a checkpoint carries besides the table's files, metadata and protocol: a read
#: depends on none of them, but a checkpoint that dropped them would change the table.
CARRIED = frozenset({"txn", "domainMetadata", "sidecar", "checkpointMetadata"})

_COMMIT = re.compile(r"(\d{20})\.json")
_CHECKPOINT = re.compile(r"(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10}))?\.parquet")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
#: Reader features that change nothing about reading plain Parquet files.
_PLAIN_READER_FEATURES = frozenset({"timestampNtz"})
#: Writer features that ask nothing of a reader. Any other feature a table's protocol lists
#: for writers is one a reader must support too (or one podline does not know): delta-rs
#: refuses a table listing such a feature for writers but not for readers.
_WRITER_ONLY_FEATURES = frozenset(
    {
        "appendOnly",
        "invariants",
        "checkConstraints",
        "changeDataFeed",
        "generatedColumns",
        "identityColumns",
        "rowTracking",
        "domainMetadata",
        "icebergCompatV1",
        "icebergCompatV2",
        "clustering",
        "inCommitTimestamp",
        "allowColumnDefaults",
    }
)
#: What JSON counts as white space besides the line breaks entries are split at.
_JSON_SPACE = " \t\r"
_JSON_NAMES = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}
_INT64 = range(-(2**63), 2**63)
_INT32 = range(-(2**31), 2**31)

#: An action podline reads: its kind and its fields.
Action = tuple[str, dict[str, Any]]

# The fields of each action a read depends on, as the protocol types them: required ones,
# then optional ones (absent or null). Integers are JSON integers in int64 (int32 for protocol
# versions), never booleans; unknown fields are ignored, as delta-rs ignores them.
_REQUIRED: dict[str, dict[str, type]] = {
    "add": {
        "path": str,
        "partitionValues": dict,
        "size": int,
        "modificationTime": int,
        "dataChange": bool,
    },
    "remove": {"path": str, "dataChange": bool},
    "metaData": {
        "id": str,
        "format": dict,
        "schemaString": str,
        "partitionColumns": list,
        "configuration": dict,
    },
    "protocol": {"minReaderVersion": int, "minWriterVersion": int},
}
_OPTIONAL: dict[str, dict[str, type]] = {
    "add": {
        "stats": str,
        "tags": dict,
        "deletionVector": dict,
        "baseRowId": int,
        "defaultRowCommitVersion": int,
        "clusteringProvider": str,
    },
    "remove": {
        "deletionTimestamp": int,
        "extendedFileMetadata": bool,
        "partitionValues": dict,
        "size": int,
        "stats": str,
        "tags": dict,
        "deletionVector": dict,
        "baseRowId": int,
        "defaultRowCommitVersion": int,
    },
    "metaData": {"name": str, "description": str, "createdTime": int},
    "protocol": {"readerFeatures": list, "writerFeatures": list},
}
#: Per action: (field, type, required, the integers it may hold or None), from the above.
_SPECS: dict[str, tuple[tuple[str, type, bool, range | None], ...]] = {
    kind: tuple(
        (
            name,
            expected,
            required,
            (_INT32 if kind == "protocol" else _INT64) if expected is int else None,
        )
        for fields, required in ((_REQUIRED[kind], True), (_OPTIONAL[kind], False))
        for name, expected in fields.items()
    )
    for kind in _REQUIRED
}
#: The fields of a deletion vector's descriptor (in ``add`` and ``remove``), as the protocol
#: types them: (field, type, required, the integers it may hold or None). delta-rs refuses
#: a descriptor without a required field, in a ``remove`` too.
_DELETION_VECTOR = (
    ("storageType", str, True, None),
    ("pathOrInlineDv", str, True, None),
    ("offset", int, False, _INT32),
    ("sizeInBytes", int, True, _INT32),
    ("cardinality", int, True, _INT64),
)
#: Fields holding string maps (a checkpoint stores them as lists of key-value pairs).
_MAPS = {"add": ("partitionValues", "tags"), "metaData": ("configuration",)}


# --------------------------------------------------------------------------- listing


class LogListing:
    """The entries of a ``_delta_log`` directory, from its file names.

    Versions are zero-padded to one width, so sorted names are sorted by version, and what a
    reader asks of a log (its newest version, the newest complete checkpoint up to a version,
    whether a commit is there) is found from the end of the sorted names or by bisection. A
    log keeps 30 days of entries by default: sorting them costs a few microseconds per
    hundred, parsing each name in Python some hundred times that.

    Parts of one checkpoint are grouped by their count: a version may hold a single-file and
    a multi-part checkpoint, or parts of two multi-part ones, and only a complete set is read.
    """

    __slots__ = ("_end", "_names", "_start")

    def __init__(self, names: Iterable[str]) -> None:
        self._names = sorted(names)
        # Entries start with a digit; others (``_last_checkpoint``, temporary files) sort
        # before or after them.
        self._start = bisect.bisect_left(self._names, "0")
        self._end = bisect.bisect_left(self._names, ":", self._start)

    def _below(self, version: int | None) -> Iterator[tuple[int, bool, list[str] | None]]:
        """From ``version`` (inclusive; None: the newest) down: each version with an entry,
        whether it has a commit, and the names of its complete checkpoint (None: none)."""
        position = (
            self._end
            if version is None
            else bisect.bisect_right(self._names, f"{version:020d}~", self._start, self._end)
        )
        current, commit = -1, False
        groups: dict[tuple[bool, int], dict[int, str]] = {}
        for name in reversed(self._names[self._start : position]):
            if name[-5:] == ".json" and (m := _COMMIT.fullmatch(name)):
                at, part = int(m[1]), None
            elif ".checkpoint." in name and (m := _CHECKPOINT.fullmatch(name)):
                at = int(m[1])
                multi = m[3] is not None
                part = ((multi, int(m[3]) if multi else 1), int(m[2]) if multi else 1)
            else:
                continue
            if at != current:
                if current >= 0:
                    yield current, commit, _complete(groups)
                current, commit, groups = at, False, {}
            if part is None:
                commit = True
            else:
                groups.setdefault(part[0], {})[part[1]] = name
        if current >= 0:
            yield current, commit, _complete(groups)

    def latest(self) -> int:
        """The newest version the log holds a commit or a complete checkpoint of (-1: none)."""
        for at, commit, checkpoint in self._below(None):
            if commit or checkpoint is not None:
                return at
        return -1

    def has_commit(self, version: int) -> bool:
        """Whether the log holds the JSON commit of ``version``."""
        name = f"{version:020d}.json"
        at = bisect.bisect_left(self._names, name, self._start, self._end)
        return at < self._end and self._names[at] == name

    def checkpoint(self, at_most: int) -> tuple[int, list[str]] | None:
        """The newest complete checkpoint at ``at_most`` or before: its version and the names
        of its files (the single file if there is one, else all parts of one multi-part set)."""
        for at, _, checkpoint in self._below(at_most):
            if checkpoint is not None:
                return at, checkpoint
        return None


def _complete(groups: dict[tuple[bool, int], dict[int, str]]) -> list[str] | None:
    """The names of the first complete checkpoint among a version's ``groups`` of parts,
    keyed by (multi-part, part count): the single file first, then sets by their count."""
    for (_, count), parts in sorted(groups.items()):
        if parts.keys() == set(range(1, count + 1)):
            return [parts[part] for part in sorted(parts)]
    return None


def list_log(directory: str | Path) -> LogListing:
    """The entries of the log ``directory`` (raises ``OSError`` if it cannot be listed)."""
    return LogListing(os.listdir(directory))


def log_listing(names: Iterable[str]) -> LogListing:
    """The log entries among the file ``names`` of a ``_delta_log`` directory."""
    return LogListing(names)


# --------------------------------------------------------------------------- actions


def commit_actions(data: bytes, at: int, uri: str) -> list[Action]:
    """The actions of log entry ``at`` (its bytes ``data``) of the table at ``uri`` that a
    read depends on, checked (see the module docs), and the kinds of those a checkpoint
    carries (``CARRIED``), each as its kind with an empty value."""
    where = f"log entry {at} of the Delta table at {uri}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreError(f"{where} is not UTF-8 text ({exc}): it is damaged") from None
    actions: list[Action] = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip(_JSON_SPACE):
            continue
        try:
            action = _DECODER.decode(line)
        except (ValueError, RecursionError) as exc:
            raise StoreError(
                f"line {number} of {where} is not valid JSON ({exc}): the entry is truncated "
                f"or damaged"
            ) from None
        if not isinstance(action, dict):
            raise StoreError(
                f"line {number} of {where} holds a JSON {_JSON_NAMES[type(action)]}, not an "
                f"action object"
            )
        kinds = action.keys() & _SPECS.keys()
        if len(kinds) > 1:
            raise UnsupportedTable(f"line {number} of {where} holds {sorted(kinds)} at once")
        if kinds:
            (kind,) = kinds
            actions.append((kind, check_action(kind, action[kind], where)))
        else:  # unchecked: a read does not depend on it, but a checkpoint would carry it
            actions += [(kind, {}) for kind in sorted(action.keys() & CARRIED)]
    _check_reconciled(actions, where)
    return actions


def checkpoint_actions(
    rows: pa.Table, where: str, kinds: tuple[str, ...] = ("add", "metaData", "protocol")
) -> Iterator[Action]:
    """The actions of checkpoint rows, checked: the ``add``, ``metaData`` and ``protocol``
    ones, or those of ``kinds``."""
    for kind in kinds:
        if kind not in rows.column_names:
            raise UnsupportedTable(f"{where} has no {kind} column")
        column = rows.column(kind)
        for value in column.filter(column.is_valid()).to_pylist():
            yield kind, check_action(kind, _unmapped(kind, value), where)


def check_action(kind: str, value: Any, where: str) -> dict[str, Any]:
    """``value``, if it has the shape of a ``kind`` action (see the module docs)."""
    if not isinstance(value, dict):
        raise UnsupportedTable(f"a {kind} action of {where} is {type(value).__name__}")
    _check_fields(kind, value, _SPECS[kind], where)
    if value.get("deletionVector") is not None:
        dv = value["deletionVector"]
        _check_fields(f"{kind}.deletionVector", dv, _DELETION_VECTOR, where)
    if kind == "metaData":
        _check_metadata(value, where)
    elif kind == "protocol":
        for name in ("readerFeatures", "writerFeatures"):
            if not all(isinstance(f, str) for f in value.get(name) or ()):
                raise UnsupportedTable(f"protocol.{name} of {where} is {value[name]!r}")
    for name in ("partitionValues", "tags"):
        strings = value.get(name)
        if strings and not all(isinstance(v, str | None) for v in strings.values()):
            raise UnsupportedTable(f"{kind}.{name} of {where} holds a value that is no string")
    return value


def _check_fields(
    kind: str,
    value: dict[str, Any],
    specs: tuple[tuple[str, type, bool, range | None], ...],
    where: str,
) -> None:
    for name, expected, required, valid in specs:
        got = value.get(name)
        if got is None and not required:
            continue
        if type(got) is not expected or (valid is not None and got not in valid):
            raise UnsupportedTable(f"{kind}.{name} of {where} is {got!r}")


def readable_protocol(protocol: dict[str, Any]) -> bool:
    """Whether a table under ``protocol`` (checked by ``check_action``) is one podline reads:
    reader version 1, or 3 with only reader features that change nothing about reading plain
    Parquet files, under every rule delta-rs checks a protocol against (features listed
    exactly with versions 3 and 7, reader features among the writer features, and every
    writer feature a reader must know among the reader features)."""
    reader, writer = protocol["minReaderVersion"], protocol["minWriterVersion"]
    readers, writers = protocol.get("readerFeatures"), protocol.get("writerFeatures")
    if (writers is not None) != (writer == 7) or not 1 <= writer <= 7:
        return False
    if (readers is not None) != (reader == 3) or reader not in (1, 3):
        return False
    if reader == 3 and writer != 7:  # reader features come with writer features
        return False
    readers, writers = set(readers or ()), set(writers or ())
    return (
        readers <= _PLAIN_READER_FEATURES & writers and writers - readers <= _WRITER_ONLY_FEATURES
    )


def schema_fields(schema_string: str) -> list[dict[str, Any]]:
    """The fields of a ``metaData`` action's schema, each (nested ones too) with the name,
    type, nullability and metadata the protocol requires of it, names unique in their
    struct."""
    try:
        schema = json.loads(schema_string, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise UnsupportedTable(f"the table's schema is not JSON: {exc}") from None
    if not isinstance(schema, dict) or schema.get("type") != "struct":
        raise UnsupportedTable("the table's schema is not a struct")
    _check_type(schema)
    fields: list[dict[str, Any]] = schema["fields"]
    return fields


def _check_type(spec: Any) -> None:
    if isinstance(spec, str):
        return  # a primitive type: ``_delta_format.arrow_field`` knows it or refuses it
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "struct":
        fields = spec.get("fields")
        shape = {"name": str, "nullable": bool, "metadata": dict}
        if not isinstance(fields, list) or not all(
            isinstance(f, dict) and all(type(f.get(k)) is t for k, t in shape.items())
            for f in fields
        ):
            raise UnsupportedTable("a field of the table's schema lacks a name, type, or so")
        if len({f["name"] for f in fields}) != len(fields):
            raise UnsupportedTable("the table's schema repeats a field name")
        for f in fields:
            _check_type(f.get("type"))
    elif kind == "array" and type(spec.get("containsNull")) is bool:
        _check_type(spec.get("elementType"))
    elif kind == "map" and type(spec.get("valueContainsNull")) is bool:
        _check_type(spec.get("keyType"))
        _check_type(spec.get("valueType"))
    else:
        raise UnsupportedTable(f"the table's schema holds the type {spec!r}")


def data_file(path: str, where: str) -> str:
    """The data file an ``add`` action's ``path`` names, relative to the table's root.

    The protocol makes the path a URI reference, percent-encoded. Only a relative one naming a
    file inside the table is followed: an absolute path or URI, or an empty, ``.`` or ``..``
    segment, is refused, so a crafted or foreign log cannot make podline read (and return as
    records) a file elsewhere. delta-rs never leaves the table either.
    """
    try:
        name = unquote(path, errors="strict")
    except UnicodeDecodeError:
        name = ""
    segments = name.split("/")
    if _SCHEME.match(name) or "\x00" in name or any(s in ("", ".", "..") for s in segments):
        raise StoreError(
            f"data file {path!r} in {where} is not a relative path inside the table: podline "
            f"does not read files outside a table"
        )
    return name


def _check_metadata(metadata: dict[str, Any], where: str) -> None:
    form = metadata["format"]
    options = form.get("options")
    if not isinstance(form.get("provider"), str) or not isinstance(options, dict):
        raise UnsupportedTable(f"metaData.format of {where} is {form!r}")
    strings = [*metadata["partitionColumns"], *metadata["configuration"].values()]
    if not all(isinstance(v, str) for v in [*strings, *options.values()]):
        raise UnsupportedTable(f"metaData of {where} holds a value that is no string")
    mode = metadata["configuration"].get("delta.columnMapping.mode", "none")
    if mode != "none":
        raise UnsupportedTable(f"the table uses column mapping ({mode!r} mode)")


def _unmapped(kind: str, value: Any) -> Any:
    """A checkpoint row's action with its string maps as dicts, as a commit writes them."""
    if not isinstance(value, dict):
        return value
    value = {**value}
    for name in _MAPS.get(kind, ()):
        if isinstance(value.get(name), list):
            value[name] = dict(value[name])
    form = value.get("format")
    if isinstance(form, dict) and isinstance(form.get("options"), list):
        value["format"] = {**form, "options": dict(form["options"])}
    return value


def _check_reconciled(actions: list[Action], where: str) -> None:
    """A version may name a data file once: delta-rs's reading of a file both added and
    removed in one commit depends on the order of their lines; delta-rs decides it."""
    paths = [value["path"] for kind, value in actions if kind in ("add", "remove")]
    if len(set(paths)) != len(paths):
        raise UnsupportedTable(f"{where} names a data file twice")


def _no_constant(name: str) -> Any:
    # Python's json module reads NaN and Infinity; JSON (and delta-rs) has no such values.
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
