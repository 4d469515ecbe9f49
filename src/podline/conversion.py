"""Values between Python and Arrow: type inference, row/column conversion, typed tables,
and tables cut to a number of rows (``regrouped``).

``schema`` says which Arrow type stands for which Python annotation; this module moves values
across that mapping. Columns whose type needs no per-value work (ints, strings, lists of
floats, ...) are handed to Arrow as they are; only files, records, tuples and dicts are walked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from podline.errors import (
    ConfigurationError,
    InexactValueError,
    InputValidationError,
    UnsupportedTypeError,
    format_names,
)
from podline.exact import first_misfit
from podline.schema import (
    FILE_PATH_FIELD,
    PodType,
    Schema,
    args_of,
    arrow_field,
    dict_of,
    is_optional,
    is_record_type,
    list_of,
    normalize_type,
    origin_of,
    record_fields,
    strip_optional,
    tuple_of,
    type_name,
)

__all__ = [
    "cast_table",
    "column_to_python",
    "infer_schema",
    "infer_type",
    "map_entries",
    "narrowed",
    "null_in_required_child",
    "regrouped",
    "relaxed",
    "table_from_columns",
    "table_from_rows",
    "table_with_schema",
    "to_arrow_value",
    "to_python_value",
    "with_type",
]

_NONE_TYPE = type(None)
Converter = Callable[[Any], Any]


# --------------------------------------------------------------------------- inference


def infer_type(values: Iterable[Any], column: str = "<value>") -> PodType:
    """Infer the podline type of a column from its Python values.

    ``None`` values make the type ``T | None``; ints mixed with floats widen to ``float``; any
    other mix of types is an ``UnsupportedTypeError`` naming the column and the types seen.
    """
    values = list(values)
    present = [v for v in values if v is not None]
    if not present:
        return _NONE_TYPE
    base = _infer_present(present, column)
    return base | None if len(present) < len(values) else base


def _infer_present(values: list[Any], column: str) -> PodType:
    kinds = {_kind(v) for v in values}
    if kinds == {int, float}:
        return float
    if len(kinds) > 1:
        names = sorted(k.__name__ for k in kinds)
        raise UnsupportedTypeError(column, " | ".join(names), "a column must hold one type")
    kind = kinds.pop()
    if kind in (bool, int, float, str, bytes, dt.datetime, dt.date, Path):
        return kind
    if kind is list:
        return list_of(infer_type((x for v in values for x in v), f"{column}[]"))
    if kind is tuple:
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            return list_of(infer_type((x for v in values for x in v), f"{column}[]"))
        n = lengths.pop()
        items = tuple(infer_type((v[i] for v in values), f"{column}[{i}]") for i in range(n))
        return tuple_of(items)
    if kind is dict:
        key = infer_type((k for v in values for k in v), f"{column}.key")
        if is_optional(key) or key is _NONE_TYPE:
            raise UnsupportedTypeError(column, "dict", "dictionary keys cannot be None")
        value = infer_type((x for v in values for x in v.values()), f"{column}.value")
        return dict_of(key, value)
    if dataclasses.is_dataclass(kind):
        return kind
    raise UnsupportedTypeError(column, kind)


def _kind(value: Any) -> type:
    if isinstance(value, Path):
        return Path
    if isinstance(value, dt.datetime):
        return dt.datetime
    return type(value)


def infer_schema(columns: Mapping[str, Sequence[Any]]) -> Schema:
    """Infer a schema from Python columns (name -> values)."""
    return Schema((name, infer_type(values, name)) for name, values in columns.items())


# --------------------------------------------------------------------------- Python -> Arrow


def to_arrow_value(value: Any, tp: PodType) -> Any:
    """Convert one Python value of type ``tp`` to the form ``pa.array`` accepts."""
    convert = _to_arrow_converter(normalize_type(tp))
    return value if convert is None else convert(value)


@functools.cache
def _to_arrow_converter(tp: PodType) -> Converter | None:
    """A per-value converter for ``tp``, or None when Arrow takes the value as it is."""
    base = strip_optional(tp)
    inner = _to_arrow_base(base)
    if inner is None:
        return None
    return lambda v: None if v is None else inner(v)


def _to_arrow_base(tp: PodType) -> Converter | None:
    if tp is Path:
        return lambda v: {FILE_PATH_FIELD: str(v)}
    if is_record_type(tp):
        fields = {name: _to_arrow_converter(sub) for name, sub in record_fields(tp).items()}

        def record(v: Any) -> dict[str, Any]:
            data = v if isinstance(v, Mapping) else dataclasses.asdict(v)
            return {n: data.get(n) if c is None else c(data.get(n)) for n, c in fields.items()}

        return record
    origin, args = origin_of(tp), args_of(tp)
    if origin is list:
        item = _to_arrow_converter(args[0])
        return None if item is None else (lambda v: [item(x) for x in v])
    if origin is dict:
        key, val = _to_arrow_converter(args[0]), _to_arrow_converter(args[1])
        if key is None and val is None:
            return None
        k = key or (lambda x: x)
        w = val or (lambda x: x)
        return lambda v: [(k(a), w(b)) for a, b in v.items()]
    if origin is tuple:
        convs = [_to_arrow_converter(a) for a in args]
        if len(set(args)) == 1:
            c = convs[0]
            return list if c is None else (lambda v: [c(x) for x in v])
        names = [f"f{i}" for i in range(len(args))]
        return lambda v: {
            n: x if c is None else c(x) for n, c, x in zip(names, convs, v, strict=True)
        }
    return None


def _column_array(name: str, values: Sequence[Any], tp: PodType) -> pa.Array:
    field = arrow_field(name, tp)
    # Arrow converts some values lossily without a word (1.5 into int64 is 1): check first.
    found = first_misfit(values, tp)
    if found is not None:
        row, reason = found
        raise InexactValueError(name, row, values[row], reason, type_name(tp))
    convert = _to_arrow_converter(normalize_type(tp))
    data = values if convert is None else [convert(v) for v in values]
    try:
        array = pa.array(data, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        found = first_misfit(values, tp, by_value=True)
        if found is not None:
            row, reason = found
            raise InexactValueError(name, row, values[row], reason, type_name(tp)) from exc
        raise InputValidationError(
            f"column {name!r}: values do not fit type {type_name(tp)}: {exc}"
        ) from exc
    if not field.nullable and array.null_count:
        raise InputValidationError(
            f"column {name!r} has type {type_name(tp)} but holds None; "
            f"declare it as {type_name(tp)} | None"
        )
    nested = null_in_required_child(array, name)
    if nested is not None:
        raise InputValidationError(
            f"column {name!r} has type {type_name(tp)} but {nested!r} holds None; "
            f"declare that element as T | None"
        )
    return array


def null_in_required_child(array: pa.Array, path: str) -> str | None:
    """The path of a non-nullable nested field holding a null (``pa.array`` does not check)."""
    t = array.type
    if pa.types.is_struct(t):
        valid = array.drop_null() if array.null_count else array
        children = [
            (t.field(i), valid.field(i), f"{path}.{t.field(i).name}") for i in range(t.num_fields)
        ]
    elif pa.types.is_map(t):
        entries = map_entries(array)
        children = [
            (t.key_field, entries.field(0), f"{path}.key"),
            (t.item_field, entries.field(1), f"{path}.value"),
        ]
    elif pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
        children = [(t.value_field, array.flatten(), f"{path}[]")]
    else:
        return None
    for child_field, child, child_path in children:
        if not child_field.nullable and child.null_count:
            return child_path
        found = null_in_required_child(child, child_path)
        if found is not None:
            return found
    return None


def map_entries(array: pa.MapArray) -> pa.StructArray:
    """The (key, value) entries that belong to a possibly sliced map array."""
    if len(array) == 0:
        return array.values.slice(0, 0)
    start, stop = array.offsets[0].as_py(), array.offsets[-1].as_py()
    return array.values.slice(start, stop - start)


def table_from_columns(
    columns: Mapping[str, Sequence[Any]], schema: Mapping[str, PodType] | None = None
) -> pa.Table:
    """Build a typed Arrow table from Python columns; the schema is inferred when not given."""
    schema = infer_schema(columns) if schema is None else Schema(schema)
    missing = set(schema) - set(columns)
    extra = set(columns) - set(schema)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {format_names(missing)}")
        if extra:
            parts.append(f"column(s) not in the schema {format_names(extra)}")
        raise InputValidationError("data does not match schema: " + "; ".join(parts))
    arrays = [_column_array(name, columns[name], tp) for name, tp in schema.items()]
    return pa.Table.from_arrays(arrays, schema=schema.to_arrow())


def table_from_rows(
    rows: Sequence[Mapping[str, Any]], schema: Mapping[str, PodType] | None = None
) -> pa.Table:
    """Build a typed Arrow table from a list of row dicts. Every row must have the same keys."""
    if schema is not None:
        names = list(schema)
    elif rows:
        names = list(rows[0])
    else:
        raise InputValidationError("cannot infer a schema from zero rows; pass a schema")
    expected = set(names)
    for index, row in enumerate(rows):
        if row.keys() != expected:
            missing, extra = expected - row.keys(), row.keys() - expected
            detail = []
            if missing:
                detail.append(f"missing {format_names(missing)}")
            if extra:
                detail.append(f"unexpected {format_names(extra)}")
            raise InputValidationError(f"row {index} has different keys: {'; '.join(detail)}")
    columns = {name: [row[name] for row in rows] for name in names}
    return table_from_columns(columns, schema)


# --------------------------------------------------------------------------- Arrow -> Arrow


def with_type(data: pa.Array | pa.ChunkedArray, type_: pa.DataType) -> Any:
    """``data`` as Arrow type ``type_``, cast only when its type differs: Arrow's cast
    revalidates nested nullability even to the same type, and refuses a null fixed-size-list
    slot whose items are non-nullable (its child holds nulls no row refers to)."""
    return data if data.type == type_ else data.cast(type_)


def narrowed(data: pa.ChunkedArray, type_: pa.DataType) -> pa.ChunkedArray:
    """``data`` as Arrow type ``type_``, which may forbid nulls in nested fields where
    ``data``'s type allows them.

    Arrow's cast refuses to narrow nested nullability whenever a child buffer holds a null,
    even one no row refers to (a null fixed-size-list slot's items, as Parquet reads them back;
    a sliced array), and checks it even between equal types. So cast to ``type_`` with every
    nested field nullable, then relabel the result as ``type_`` (zero-copy). The rows are not
    checked: the caller checks them with ``null_in_required_child``. A value the cast cannot
    convert raises as Arrow's cast does (``pa.ArrowInvalid``, ``pa.ArrowNotImplementedError``).
    """
    if data.type == type_:
        return data
    loose = relaxed(type_)
    data = data.cast(loose) if data.type != loose else data
    if loose == type_:
        return data
    # Relabelled through the Arrow C data interface (the public PyCapsule protocol): the
    # buffers as they are, under ``type_``'s schema.
    chunks = [
        pa.array(_Relabelled(type_.__arrow_c_schema__(), chunk.__arrow_c_array__()[1]))
        for chunk in data.chunks
    ]
    return pa.chunked_array(chunks, type=type_)


class _Relabelled:
    """An array's buffers offered under another schema (``__arrow_c_array__``)."""

    def __init__(self, schema: object, array: object) -> None:
        self._capsules = (schema, array)

    def __arrow_c_array__(self, requested_schema: object = None) -> tuple[object, object]:
        return self._capsules


def relaxed(t: pa.DataType) -> pa.DataType:
    """``t`` with every nested field nullable (map keys stay non-nullable, as Arrow wants):
    how two types are compared when only nested nullability may differ."""

    def child(f: pa.Field) -> pa.Field:
        return pa.field(f.name, relaxed(f.type), nullable=True)

    if pa.types.is_large_list(t):
        return pa.large_list(child(t.value_field))
    if pa.types.is_list(t):
        return pa.list_(child(t.value_field))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(child(t.value_field), t.list_size)
    if pa.types.is_map(t):
        key = pa.field(t.key_field.name, relaxed(t.key_type), nullable=False)
        return pa.map_(key, child(t.item_field))
    if pa.types.is_struct(t):
        return pa.struct([child(t.field(i)) for i in range(t.num_fields)])
    return t


def cast_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` (with the columns of ``schema``, in any order) as ``schema``: each column
    ``narrowed`` to its field's type, and refused where it holds a null the field forbids, at
    any depth. Raises ``pa.ArrowInvalid`` (or what Arrow's cast raises) as ``Table.cast``
    would, where ``Table.cast`` also refuses nulls no row refers to (see ``narrowed``)."""
    if table.schema.equals(schema):
        return table
    columns = []
    for f in schema:
        column = narrowed(table.column(f.name), f.type)
        if not f.nullable and column.null_count:
            raise pa.ArrowInvalid(f"column {f.name!r} holds None, and its field is not nullable")
        for chunk in column.chunks:
            nested = null_in_required_child(chunk, f.name)
            if nested is not None:
                raise pa.ArrowInvalid(f"{nested!r} holds None, and its field is not nullable")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def table_with_schema(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` (with the columns of ``schema``, in its order) as ``schema``, column by
    column through ``with_type``."""
    columns = [with_type(table.column(field.name), field.type) for field in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def regrouped(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The rows of ``tables`` (of one schema), in order, as tables of ``rows`` rows (the last
    one shorter; none if there are no rows): larger tables are cut, smaller ones joined,
    without copying their data."""
    if rows < 1:  # (no piece would ever fill: the loop below would not end)
        raise ConfigurationError(f"tables are cut into pieces of at least 1 row, not {rows}")
    held: list[pa.Table] = []
    count = 0
    for table in tables:
        start = 0
        while start < table.num_rows:
            take = min(rows - count, table.num_rows - start)
            held.append(table.slice(start, take))
            count, start = count + take, start + take
            if count == rows:
                yield pa.concat_tables(held)
                held, count = [], 0
    if count:
        yield pa.concat_tables(held)


# --------------------------------------------------------------------------- Arrow -> Python


def to_python_value(value: Any, tp: PodType) -> Any:
    """Convert one value from ``Array.to_pylist()`` form to the Python form of ``tp``."""
    convert = _to_python_converter(normalize_type(tp))
    return value if convert is None else convert(value)


def column_to_python(array: pa.Array | pa.ChunkedArray, tp: PodType) -> list[Any]:
    """All values of an Arrow column as Python values of type ``tp``."""
    values = array.to_pylist()
    convert = _to_python_converter(normalize_type(tp))
    return values if convert is None else [convert(v) for v in values]


@functools.cache
def _to_python_converter(tp: PodType) -> Converter | None:
    inner = _to_python_base(strip_optional(tp))
    if inner is None:
        return None
    return lambda v: None if v is None else inner(v)


def _to_python_base(tp: PodType) -> Converter | None:
    if tp is Path:
        return lambda v: Path(v[FILE_PATH_FIELD])
    if is_record_type(tp):
        fields = {name: _to_python_converter(sub) for name, sub in record_fields(tp).items()}

        def build(v: dict[str, Any]) -> dict[str, Any]:
            return {n: v[n] if c is None else c(v[n]) for n, c in fields.items()}

        if dataclasses.is_dataclass(tp):
            record_class: Any = tp
            return lambda v: record_class(**build(v))
        return build
    origin, args = origin_of(tp), args_of(tp)
    if origin is list:
        item = _to_python_converter(args[0])
        return None if item is None else (lambda v: [item(x) for x in v])
    if origin is dict:
        k = _to_python_converter(args[0]) or (lambda x: x)
        w = _to_python_converter(args[1]) or (lambda x: x)
        return lambda v: {k(a): w(b) for a, b in v}
    if origin is tuple:
        convs = [_to_python_converter(a) for a in args]
        if len(set(args)) == 1:
            return lambda v: tuple(x if c is None else c(x) for c, x in zip(convs, v, strict=True))
        names = [f"f{i}" for i in range(len(args))]
        return lambda v: tuple(
            v[n] if c is None else c(v[n]) for n, c in zip(names, convs, strict=True)
        )
    return None
