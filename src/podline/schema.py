"""Column types: the two-way mapping between Python annotations and Arrow types, and ``Schema``.

A podline type is a Python annotation. The supported vocabulary is:

========================  ==============================================================
Python annotation         Arrow type
========================  ==============================================================
``int``                   ``int64``
``float``                 ``float64``
``bool``                  ``bool``
``str``                   ``large_string``
``bytes``                 ``large_binary``
``datetime.datetime``     ``timestamp[us]``
``datetime.date``         ``date32``
``pathlib.Path``          ``struct<__file_path: large_string>`` (a file; hashed by content)
``list[T]``               ``large_list<T>`` (``tuple[T, ...]`` maps here too)
``dict[K, V]``            ``map<K, V>``
``tuple[A, B, ...]``      ``fixed_size_list<T, n>`` if homogeneous, else ``struct<f0, f1, ...>``
TypedDict / dataclass     ``struct<field: type, ...>`` (a nested record)
``T | None``              ``T`` with ``nullable=True``; plain ``T`` is non-nullable
``None``                  ``null`` (a column that only holds nulls)
========================  ==============================================================

Arrow to Python is the inverse, widened where Arrow has several physical forms of one logical
type: every integer width is ``int``, every float width ``float``, string views and
``string`` are ``str``, ``date64`` is ``date``, any timestamp unit is ``datetime``. A struct with
no Python class behind it comes back as a generated ``TypedDict`` named ``Record`` (the same
class object for the same fields, so schemas compare equal).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeAlias, get_type_hints, is_typeddict

import pyarrow as pa

from podline.errors import SchemaError, UnsupportedTypeError, format_names

__all__ = [
    "FILE_PATH_FIELD",
    "Schema",
    "arrow_field",
    "arrow_type",
    "is_assignable",
    "is_file_type",
    "is_optional",
    "normalize_type",
    "python_type",
    "record_fields",
    "strip_optional",
    "type_name",
]

#: A podline type: a Python annotation such as ``int``, ``list[str]`` or ``float | None``.
PodType: TypeAlias = Any

#: The single field of the struct that stores a ``pathlib.Path`` value.
FILE_PATH_FIELD = "__file_path"

_NONE_TYPE = type(None)
_SCALARS: dict[Any, pa.DataType] = {
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    str: pa.large_string(),
    bytes: pa.large_binary(),
    dt.datetime: pa.timestamp("us"),
    dt.date: pa.date32(),
}
_SCALAR_NAMES = {
    int: "int",
    float: "float",
    bool: "bool",
    str: "str",
    bytes: "bytes",
    dt.datetime: "datetime",
    dt.date: "date",
    Path: "Path",
    _NONE_TYPE: "None",
}
_FILE_STRUCT = pa.struct([pa.field(FILE_PATH_FIELD, pa.large_string(), nullable=False)])


# Annotations are built and taken apart at run time; these helpers keep that dynamic (Any) so
# static checkers do not try to read ``list[x]`` with a run-time ``x`` as a type expression.
_LIST: Any = list
_DICT: Any = dict
_TUPLE: Any = tuple


def origin_of(tp: PodType) -> Any:
    """``typing.get_origin``, typed for run-time use."""
    return typing.get_origin(tp)


def args_of(tp: PodType) -> tuple[Any, ...]:
    """``typing.get_args``, typed for run-time use."""
    return tuple(typing.get_args(tp))


def list_of(item: PodType) -> PodType:
    """The annotation ``list[item]``."""
    return _LIST[item]


def dict_of(key: PodType, value: PodType) -> PodType:
    """The annotation ``dict[key, value]``."""
    return _DICT[key, value]


def tuple_of(items: tuple[PodType, ...]) -> PodType:
    """The annotation ``tuple[items...]``."""
    return _TUPLE[items]


# --------------------------------------------------------------------------- normalization


def is_optional(tp: PodType) -> bool:
    """True for ``T | None`` (after normalization)."""
    return origin_of(tp) in (types.UnionType, typing.Union) and _NONE_TYPE in args_of(tp)


def strip_optional(tp: PodType) -> PodType:
    """``T | None`` -> ``T``; any other type is returned unchanged."""
    if not is_optional(tp):
        return tp
    rest = [arg for arg in args_of(tp) if arg is not _NONE_TYPE]
    return functools.reduce(lambda a, b: a | b, rest)


def is_file_type(tp: PodType) -> bool:
    """True for ``pathlib.Path`` (and its concrete subclasses)."""
    return isinstance(tp, type) and issubclass(tp, Path)


def is_record_type(tp: PodType) -> bool:
    """True for a TypedDict or a dataclass class (a nested record)."""
    return isinstance(tp, type) and (is_typeddict(tp) or dataclasses.is_dataclass(tp))


def record_fields(tp: PodType) -> dict[str, PodType]:
    """The fields of a record type, in declaration order, with normalized types."""
    hints = get_type_hints(tp)
    if dataclasses.is_dataclass(tp):
        names = [f.name for f in dataclasses.fields(tp)]
    else:
        names = list(hints)
    return {name: normalize_type(hints[name], f"{tp.__name__}.{name}") for name in names}


def normalize_type(tp: PodType, field: str = "<value>") -> PodType:
    """Return the canonical form of an annotation, or raise ``UnsupportedTypeError``.

    ``Optional[X]`` becomes ``X | None``, ``typing.List`` becomes ``list`` and so on, so that
    equal types compare equal. ``field`` names the column in the error message.
    """
    if tp is None or tp is _NONE_TYPE:
        return _NONE_TYPE
    if tp in _SCALARS:
        return tp
    if is_file_type(tp):
        return Path
    if is_record_type(tp):
        record_fields(tp)  # validates every field type
        return tp
    origin = origin_of(tp)
    args = args_of(tp)
    if origin in (types.UnionType, typing.Union):
        members = [arg for arg in args if arg is not _NONE_TYPE]
        if len(members) != 1 or len(members) == len(args):
            raise UnsupportedTypeError(
                field, tp, "only 'T | None' unions are supported; use a record for alternatives"
            )
        return normalize_type(members[0], field) | None
    if origin is list and len(args) == 1:
        return list_of(normalize_type(args[0], f"{field}[]"))
    if origin is dict and len(args) == 2:
        key = normalize_type(args[0], f"{field}.key")
        if is_optional(key):
            raise UnsupportedTypeError(field, tp, "dictionary keys cannot be None")
        return dict_of(key, normalize_type(args[1], f"{field}.value"))
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return list_of(normalize_type(args[0], f"{field}[]"))
        items = tuple(normalize_type(arg, f"{field}[{i}]") for i, arg in enumerate(args))
        return tuple_of(items)
    if tp in (list, dict, tuple):
        raise UnsupportedTypeError(field, tp, "give the element types, e.g. list[int]")
    raise UnsupportedTypeError(field, tp)


# --------------------------------------------------------------------------- Python -> Arrow


def arrow_type(tp: PodType, field: str = "<value>") -> pa.DataType:
    """The Arrow type of a podline type (nullability is a property of the field, not the type)."""
    return arrow_field(field, tp).type


def arrow_field(name: str, tp: PodType) -> pa.Field:
    """An Arrow field for a column ``name`` of type ``tp``; ``T | None`` makes it nullable."""
    tp = normalize_type(tp, name)
    nullable = is_optional(tp) or tp is _NONE_TYPE
    return pa.field(name, _arrow_type(strip_optional(tp), name), nullable=nullable)


def _arrow_type(tp: PodType, field: str) -> pa.DataType:
    if tp is _NONE_TYPE:
        return pa.null()
    if tp in _SCALARS:
        return _SCALARS[tp]
    if tp is Path:
        return _FILE_STRUCT
    if is_record_type(tp):
        return pa.struct([arrow_field(name, sub) for name, sub in record_fields(tp).items()])
    origin, args = origin_of(tp), args_of(tp)
    if origin is list:
        return pa.large_list(arrow_field("item", args[0]))
    if origin is dict:
        return pa.map_(arrow_field("key", args[0]), arrow_field("value", args[1]))
    if origin is tuple:
        if len(set(args)) == 1:
            return pa.list_(arrow_field("item", args[0]), len(args))
        return pa.struct([arrow_field(f"f{i}", arg) for i, arg in enumerate(args)])
    raise UnsupportedTypeError(field, tp)  # pragma: no cover - normalize_type rejects first


# --------------------------------------------------------------------------- Arrow -> Python


def python_type(arrow: pa.DataType | pa.Field, field: str = "<value>") -> PodType:
    """The podline type of an Arrow field (nullable -> ``T | None``) or of a bare Arrow type."""
    if isinstance(arrow, pa.Field):
        return _field_type(arrow, arrow.name)
    return _python_type(arrow, field)


def _field_type(f: pa.Field, path: str) -> PodType:
    """The podline type of a (possibly nested) field; errors name ``path``, not ``f.name``."""
    base = _python_type(f.type, path)
    return base | None if f.nullable and base is not _NONE_TYPE else base


def _python_type(t: pa.DataType, field: str) -> PodType:
    if pa.types.is_dictionary(t):
        return _python_type(t.value_type, field)
    if pa.types.is_null(t):
        return _NONE_TYPE
    if pa.types.is_boolean(t):
        return bool
    if pa.types.is_integer(t):
        return int
    if pa.types.is_floating(t):
        return float
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return str
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return bytes
    if pa.types.is_timestamp(t):
        return dt.datetime
    if pa.types.is_date(t):
        return dt.date
    if pa.types.is_map(t):
        key = _field_type(t.key_field, f"{field}.key")
        return dict_of(strip_optional(key), _field_type(t.item_field, f"{field}.value"))
    if pa.types.is_fixed_size_list(t):
        item = _field_type(t.value_field, f"{field}[]")
        return tuple_of((item,) * t.list_size)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return list_of(_field_type(t.value_field, f"{field}[]"))
    if pa.types.is_large_list_view(t):
        return list_of(_field_type(t.value_field, f"{field}[]"))
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        if names == [FILE_PATH_FIELD]:
            return Path
        subtypes = tuple(_field_type(t.field(i), f"{field}.{name}") for i, name in enumerate(names))
        if names and names == [f"f{i}" for i in range(len(names))]:
            return tuple_of(subtypes)
        return _record_class(tuple(zip(names, subtypes, strict=True)))
    raise UnsupportedTypeError(field, t, _instead(t))


def _instead(t: pa.DataType) -> str:
    """What to do with a column of an Arrow type podline has no type for, where one is known."""
    if pa.types.is_decimal(t):
        return (
            "podline has no decimal type; cast the column before podline reads it "
            "(pyarrow.compute.cast, then an ArrowTableSource): to pa.string() to keep every "
            "digit, or to pa.float64() where rounding is acceptable"
        )
    if pa.types.is_duration(t):
        return "podline has no duration type; cast the column to pa.int64() (its unit's count)"
    return ""


@functools.cache
def _record_class(fields: tuple[tuple[str, PodType], ...]) -> type:
    """A TypedDict for a struct with no Python class; cached so equal structs share a class."""
    make_typeddict: Any = typing.TypedDict
    cls: type = make_typeddict("Record", dict(fields))
    cls.__module__ = __name__
    return cls


# --------------------------------------------------------------------------- names


def type_name(tp: PodType) -> str:
    """A canonical, readable name for a podline type, e.g. ``list[int] | None``."""
    tp = normalize_type(tp)
    if is_optional(tp):
        return f"{type_name(strip_optional(tp))} | None"
    if tp in _SCALAR_NAMES:
        return _SCALAR_NAMES[tp]
    if is_record_type(tp):
        inner = ", ".join(f"{k}: {type_name(v)}" for k, v in record_fields(tp).items())
        return f"{tp.__name__}{{{inner}}}"
    origin, args = origin_of(tp), args_of(tp)
    return f"{origin.__name__}[{', '.join(type_name(arg) for arg in args)}]"


def is_assignable(source: PodType, target: PodType) -> bool:
    """Whether a value of type ``source`` may be passed where ``target`` is declared.

    Equal types are assignable, ``T`` is assignable to ``T | None`` (not the reverse), the
    ``None`` type to any ``T | None``, ``S | None`` to ``T | None`` where ``S`` is to ``T``,
    and ``int`` to ``float``. Containers are invariant
    (``list[int]`` is not a ``list[float]``) except for nullability, at any depth: a
    ``list[float]`` is a ``list[float | None]`` and a record whose field is ``str`` fits one
    whose field is ``str | None`` (a source's column is nullable only when it holds a null, so
    that whether today's data hold one does not decide whether a function applies); records
    compare by structure, so a dataclass and a TypedDict with the same fields match.
    """
    source, target = normalize_type(source), normalize_type(target)
    if source == target:
        return True
    if is_optional(target):
        # ``T | None`` takes None and what ``T`` takes; a nullable source column fits when
        # its values do (``int | None`` a ``float | None``, a record one of the same fields).
        return source is _NONE_TYPE or is_assignable(strip_optional(source), strip_optional(target))
    if is_optional(source):
        return False
    if (source, target) == (int, float):
        return True
    try:
        return _widens(arrow_type(source), arrow_type(target))
    except UnsupportedTypeError:  # pragma: no cover - both were normalized above
        return False


def _widens(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether ``source`` is ``target`` but for nested fields ``target`` makes nullable, or
    that hold nulls only (Arrow's null type, as a record field that held no value in the data
    infers) where ``target`` has a nullable field of any type."""
    if source.equals(target):
        return True
    if source.id != target.id or source.num_fields != target.num_fields or not source.num_fields:
        return False
    if pa.types.is_fixed_size_list(source) and source.list_size != target.list_size:
        return False
    for i in range(source.num_fields):
        have, want = source.field(i), target.field(i)
        if have.name != want.name or (have.nullable and not want.nullable):
            return False
        if pa.types.is_null(have.type) and want.nullable:
            continue
        if not _widens(have.type, want.type):
            return False
    return True


# --------------------------------------------------------------------------- Schema


class Schema(Mapping[str, PodType]):
    """An immutable mapping of column name to podline type, in column order.

    Equality is mapping equality (order-insensitive). ``optional`` names the fields that may be
    left out (function parameters with defaults); it takes part in equality and identity.
    """

    __slots__ = ("_fields", "_hash", "_optional")

    def __init__(
        self,
        fields: Mapping[str, PodType] | Iterable[tuple[str, PodType]] = (),
        *,
        optional: Iterable[str] = (),
    ) -> None:
        items = fields.items() if isinstance(fields, Mapping) else fields
        normalized: dict[str, PodType] = {}
        for name, tp in items:
            if not isinstance(name, str) or not name:
                raise SchemaError(f"column names must be non-empty strings, got {name!r}")
            if name in normalized:
                raise SchemaError(f"duplicate column {name!r} in schema")
            normalized[name] = normalize_type(tp, name)
        self._fields = normalized
        self._optional = frozenset(optional)
        unknown = self._optional - normalized.keys()
        if unknown:
            raise SchemaError(f"optional field(s) {format_names(unknown)} are not in the schema")
        self._hash: int | None = None

    # Mapping protocol
    def __getitem__(self, name: str) -> PodType:
        try:
            return self._fields[name]
        except KeyError:
            raise KeyError(
                f"no column {name!r}; columns are {format_names(self._fields)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Schema):
            return self._fields == other._fields and self._optional == other._optional
        if isinstance(other, Mapping):
            return not self._optional and self._fields == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash((frozenset(self._fields.items()), self._optional))
        return self._hash

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{name}: {type_name(tp)}{'?' if name in self._optional else ''}"
            for name, tp in self._fields.items()
        )
        return f"Schema({inner})"

    @property
    def optional(self) -> frozenset[str]:
        """Fields that may be absent (e.g. parameters with defaults)."""
        return self._optional

    @property
    def required(self) -> tuple[str, ...]:
        """Fields that must be present, in column order."""
        return tuple(name for name in self._fields if name not in self._optional)

    # Constructors and conversions
    @classmethod
    def from_arrow(cls, schema: pa.Schema) -> Schema:
        """The podline schema of an Arrow schema (nullable fields become ``T | None``)."""
        return cls((f.name, python_type(f)) for f in schema)

    def to_arrow(self) -> pa.Schema:
        """The Arrow schema of this schema (``T | None`` fields are nullable)."""
        return pa.schema([arrow_field(name, tp) for name, tp in self._fields.items()])

    def identity_structure(self) -> tuple[tuple[str, str, bool], ...]:
        """What identifies this schema for hashing: sorted (name, type name, optional)."""
        return tuple(
            (name, type_name(self._fields[name]), name in self._optional)
            for name in sorted(self._fields)
        )

    # Algebra
    def select(self, names: Iterable[str]) -> Schema:
        """The sub-schema of ``names`` (in the given order); unknown names are an error."""
        names = list(names)
        self._require(names)
        return Schema(((n, self._fields[n]) for n in names), optional=self._optional & set(names))

    def drop(self, names: Iterable[str]) -> Schema:
        """This schema without ``names``; unknown names are an error."""
        dropped = set(names)
        self._require(dropped)
        return Schema(
            ((n, tp) for n, tp in self._fields.items() if n not in dropped),
            optional=self._optional - dropped,
        )

    def rename(self, mapping: Mapping[str, str]) -> Schema:
        """This schema with columns renamed by ``mapping``; a resulting collision is an error."""
        self._require(mapping)
        renamed = [(mapping.get(n, n), tp) for n, tp in self._fields.items()]
        counts: dict[str, int] = {}
        for name, _ in renamed:
            counts[name] = counts.get(name, 0) + 1
        clashes = [name for name, count in counts.items() if count > 1]
        if clashes:
            raise SchemaError(f"renaming makes duplicate column(s) {format_names(clashes)}")
        return Schema(renamed, optional={mapping.get(n, n) for n in self._optional})

    def merge(self, other: Mapping[str, PodType]) -> Schema:
        """The union of two schemas; a column present in both must have the same type."""
        other = other if isinstance(other, Schema) else Schema(other)
        conflicts = sorted(
            f"{name!r} ({type_name(self._fields[name])} vs {type_name(other[name])})"
            for name in self._fields.keys() & other.keys()
            if self._fields[name] != other[name]
        )
        if conflicts:
            raise SchemaError(f"conflicting column types: {', '.join(conflicts)}")
        merged = dict(self._fields)
        merged.update(other)
        return Schema(merged, optional=self._optional | other.optional)

    def _require(self, names: Iterable[str]) -> None:
        missing = [n for n in names if n not in self._fields]
        if missing:
            raise SchemaError(
                f"unknown column(s) {format_names(missing)}; "
                f"columns are {format_names(self._fields)}"
            )
