"""The grammar of podline's hidden columns: system tags, source info and meta columns.

Every hidden column starts with the reserved prefix ``__``; user columns may not (they are
rejected with ``ReservedColumnError``, never dropped). The families are:

``__tag:source_id::<lineage>`` / ``__tag:record_id::<lineage>``
    System tags: which source record a row came from. A source stamps one pair whose lineage is
    the first 12 hex digits of the source's pipeline hash, ``S``. A join extends the lineage of
    every input's columns with ``::<H>:<pos>``, where ``H`` is the first 12 hex digits of that
    input's pipeline hash and ``pos`` its position once inputs are sorted by pipeline hash. So
    ``__tag:record_id::1f2e3d4c5b6a::9a8b7c6d5e4f:1`` reads "record id from source
    1f2e..., reached through the join input 9a8b... at canonical position 1".
``__source:<column>``
    Source info: one per packet column, a token naming what produced that value:
    ``source::<source_id>::<record_id>::<column>`` for a source record, or
    ``call::<function>::<call_id>::<column>`` for a function call. ``%`` and ``:`` inside a
    component are percent-escaped, so a token always splits into exactly four parts.
``__meta:<name>``
    Meta columns that travel with rows (e.g. flags written by nodes).
``__content_hash``
    The per-row packet content hash, added on request by ``Stream.as_table``.

Wherever podline takes column names (``tag_columns=``, ``columns=``, ...), ``column_names``
reads them: one name as a string, or several in an iterable; a lone string is one name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from podline.errors import ReservedColumnError, SchemaError

__all__ = [
    "CONTENT_HASH_COLUMN",
    "LINEAGE_HEX_CHARS",
    "RESERVED_PREFIX",
    "ColumnGroups",
    "SourceToken",
    "check_user_columns",
    "column_names",
    "extend_lineage",
    "is_reserved",
    "is_source_info",
    "is_system_tag",
    "meta_column",
    "parse_system_tag",
    "parse_token",
    "source_info_column",
    "source_info_target",
    "source_lineage",
    "source_tokens",
    "split_columns",
    "system_tag_columns",
    "token",
    "token_array",
]

RESERVED_PREFIX = "__"
SYSTEM_TAG_PREFIX = "__tag:"
SOURCE_INFO_PREFIX = "__source:"
META_PREFIX = "__meta:"
CONTENT_HASH_COLUMN = "__content_hash"
LINEAGE_HEX_CHARS = 12

SystemTagKind = Literal["source_id", "record_id"]
TokenKind = Literal["source", "call"]

_HEX = f"[0-9a-f]{{{LINEAGE_HEX_CHARS}}}"
_SYSTEM_TAG = re.compile(
    rf"^{re.escape(SYSTEM_TAG_PREFIX)}(source_id|record_id)::({_HEX}(?:::{_HEX}:\d+)*)$"
)
_SEP = "::"


# --------------------------------------------------------------------------- reserved names


def is_reserved(name: str) -> bool:
    """True if ``name`` belongs to podline's hidden-column namespace."""
    return name.startswith(RESERVED_PREFIX)


def column_names(columns: str | Iterable[str]) -> tuple[str, ...]:
    """Column names given as one name or an iterable of names: a lone string is one name,
    never a sequence of one-letter names."""
    return (columns,) if isinstance(columns, str) else tuple(columns)


def check_user_columns(names: Iterable[str]) -> None:
    """Reject user-supplied column names that use the reserved prefix."""
    bad = [name for name in names if is_reserved(name)]
    if bad:
        raise ReservedColumnError(bad, RESERVED_PREFIX)


# --------------------------------------------------------------------------- system tags


def source_lineage(pipeline_hash_hex: str) -> str:
    """The lineage a source stamps: the first 12 hex digits of its pipeline hash."""
    return pipeline_hash_hex[:LINEAGE_HEX_CHARS]


def system_tag_columns(lineage: str) -> tuple[str, str]:
    """The (source id, record id) system-tag column names for a lineage."""
    return (
        f"{SYSTEM_TAG_PREFIX}source_id{_SEP}{lineage}",
        f"{SYSTEM_TAG_PREFIX}record_id{_SEP}{lineage}",
    )


def is_system_tag(name: str) -> bool:
    """True for a system-tag column name."""
    return name.startswith(SYSTEM_TAG_PREFIX)


@dataclass(frozen=True, slots=True)
class SystemTagName:
    """A parsed system-tag column name."""

    kind: SystemTagKind
    lineage: str

    @property
    def source_lineage(self) -> str:
        """The lineage stamped by the source, before any join extended it."""
        return self.lineage[:LINEAGE_HEX_CHARS]

    @property
    def hops(self) -> tuple[tuple[str, int], ...]:
        """The (input pipeline hash prefix, canonical position) of each join passed through."""
        parts = self.lineage.split(_SEP)[1:]
        return tuple((h, int(p)) for h, p in (part.split(":") for part in parts))


def parse_system_tag(name: str) -> SystemTagName:
    """Parse a system-tag column name, raising ``SchemaError`` if it is malformed."""
    match = _SYSTEM_TAG.match(name)
    if match is None:
        raise SchemaError(f"{name!r} is not a well-formed system-tag column name")
    kind: SystemTagKind = "source_id" if match.group(1) == "source_id" else "record_id"
    return SystemTagName(kind, match.group(2))


def extend_lineage(name: str, input_pipeline_hash_hex: str, position: int) -> str:
    """Rename a system-tag column as it passes through a join input."""
    parse_system_tag(name)
    return f"{name}{_SEP}{input_pipeline_hash_hex[:LINEAGE_HEX_CHARS]}:{position}"


# --------------------------------------------------------------------------- source info


def source_info_column(column: str) -> str:
    """The source-info column that travels with packet column ``column``."""
    return f"{SOURCE_INFO_PREFIX}{column}"


def is_source_info(name: str) -> bool:
    """True for a source-info column name."""
    return name.startswith(SOURCE_INFO_PREFIX)


def source_info_target(name: str) -> str:
    """The packet column a source-info column describes."""
    if not is_source_info(name):
        raise SchemaError(f"{name!r} is not a source-info column")
    return name[len(SOURCE_INFO_PREFIX) :]


def meta_column(name: str) -> str:
    """The hidden column name of meta field ``name``."""
    return f"{META_PREFIX}{name}"


def is_meta(name: str) -> bool:
    """True for a meta column name (the per-row content-hash column counts as meta)."""
    return name.startswith(META_PREFIX) or name == CONTENT_HASH_COLUMN


@dataclass(frozen=True, slots=True)
class ColumnGroups:
    """Table column names split into their families, each in table order."""

    data: tuple[str, ...]
    system_tags: tuple[str, ...]
    source_info: tuple[str, ...]
    meta: tuple[str, ...]


def split_columns(names: Iterable[str]) -> ColumnGroups:
    """Split column names into user data, system tags, source info and meta columns.

    A reserved name that belongs to no family is an error: it is neither dropped nor treated as
    data.
    """
    data: list[str] = []
    system: list[str] = []
    info: list[str] = []
    meta: list[str] = []
    unknown: list[str] = []
    for name in names:
        if not is_reserved(name):
            data.append(name)
        elif is_system_tag(name):
            parse_system_tag(name)
            system.append(name)
        elif is_source_info(name):
            info.append(name)
        elif is_meta(name):
            meta.append(name)
        else:
            unknown.append(name)
    if unknown:
        raise ReservedColumnError(unknown, RESERVED_PREFIX)
    return ColumnGroups(tuple(data), tuple(system), tuple(info), tuple(meta))


# --------------------------------------------------------------------------- tokens


def _escape(component: str) -> str:
    return component.replace("%", "%25").replace(":", "%3A")


def _unescape(component: str) -> str:
    return component.replace("%3A", ":").replace("%25", "%")


@dataclass(frozen=True, slots=True)
class SourceToken:
    """A parsed source-info token: what produced one packet value."""

    kind: TokenKind
    origin: str
    record: str
    column: str

    def __str__(self) -> str:
        return token(self.kind, self.origin, self.record, self.column)


def token(kind: TokenKind, origin: str, record: str, column: str) -> str:
    """Format a source-info token; ``origin`` is a source id or a function's identity."""
    return _SEP.join((kind, _escape(origin), _escape(record), _escape(column)))


def parse_token(text: str) -> SourceToken:
    """Parse a token written by :func:`token`."""
    parts = text.split(_SEP)
    if len(parts) != 4 or parts[0] not in ("source", "call"):
        raise SchemaError(f"{text!r} is not a well-formed source-info token")
    kind: TokenKind = "source" if parts[0] == "source" else "call"
    return SourceToken(kind, *(_unescape(p) for p in parts[1:]))


def token_array(kind: TokenKind, origin: str, records: pa.Array, column: str) -> pa.Array:
    """Tokens for many records of one origin and column, built in one vectorized step."""
    escaped = pc.replace_substring(
        pc.replace_substring(records.cast(pa.large_string()), "%", "%25"), ":", "%3A"
    )

    def text(value: str) -> pa.Scalar:
        return pa.scalar(value, pa.large_string())

    prefix = text(f"{kind}{_SEP}{_escape(origin)}{_SEP}")
    suffix = text(f"{_SEP}{_escape(column)}")
    return pc.binary_join_element_wise(prefix, escaped, suffix, text(""))


def source_tokens(source_id: str, record_ids: pa.Array, column: str) -> pa.Array:
    """Source-info tokens for every row of a source column."""
    return token_array("source", source_id, record_ids, column)
