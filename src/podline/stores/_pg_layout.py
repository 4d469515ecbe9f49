"""How a ``PostgresStore`` lays records out in PostgreSQL: names, column types and values.

This module owns the mapping between a store path's Arrow schema and the PostgreSQL table
holding it, so that the table reads well with plain SQL and the Arrow types come back exactly:

* **Names.** A path's table is named after its segments joined by ``/`` (quoted, so any
  character is safe) when that fits PostgreSQL's 63-byte identifiers; a longer path gets a
  prefix of it and a hash (``names_for``). Column names follow the same rule. The catalog
  records which name each path and column got, so the mapping never depends on guessing.
* **Types.** Scalars are stored natively (``int8``, ``float8``, ``text``, ``bytea``,
  ``timestamptz``, ``numeric``...); unsigned integers in the signed type one size up.
  Lists, structs and maps are stored as ``json``: PostgreSQL arrays cannot hold ragged or
  nested lists nor structs, and JSON stays readable by SQL (``->``, ``->>``). The exact
  Arrow schema is kept in the catalog, and reading casts back to it.
* **Values.** ``encode`` turns a canonical batch into what the driver copies in (nested
  values written as JSON by polars, vectorized). JSON has no bytes, so bytes inside a nested
  value are written as JSON strings of their lowercase hex digits, and read back as bytes of
  the catalog's type (the SQL ``decode(v->>'digest', 'hex')`` reads them too). A value JSON
  would still change (a NaN in a list) is refused with a ``StoreError`` naming the column:
  the batch is decoded again at write and compared, so what a read returns is what was
  written. ``decode`` turns what the driver returns into the stored schema.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from podline.errors import StoreError
from podline.stores._common import conform, path_text
from podline.stores.base import StorePath

__all__ = ["decode", "encode", "ident", "names_for", "sql_type"]

#: PostgreSQL truncates identifiers to this many bytes (NAMEDATALEN - 1).
MAX_NAME = 63

_JSON_WRAP = '{"v":'


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier (any character is safe inside double quotes)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a quoted SQL string literal (for DDL, which takes no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def names_for(full: str) -> list[str]:
    """The names to try for a table or column called ``full``, best first: ``full`` itself
    when it fits 63 bytes, then a prefix of it and a hash of the whole (unique in practice;
    the catalog's unique key settles the rest)."""
    digest = hashlib.sha256(full.encode()).hexdigest()
    fits = [full] if len(full.encode()) <= MAX_NAME else []
    head = full.encode()[:40].decode(errors="ignore")
    return [*fits, f"{head}~{digest[:16]}", f"~{digest[:40]}"]


def is_nested(t: pa.DataType) -> bool:
    return pa.types.is_nested(t)


def sql_type(t: pa.DataType) -> str:
    """The PostgreSQL type of a column holding canonical Arrow type ``t``."""
    if is_nested(t):
        return "json"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        width = t.bit_width * (2 if pa.types.is_unsigned_integer(t) else 1)
        return {8: "int2", 16: "int2", 32: "int4"}.get(width, "int8")
    if pa.types.is_float32(t):
        return "float4"
    if pa.types.is_floating(t):
        return "float8"
    if pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz is None else "timestamptz"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    return "text"  # strings, and the null type (always NULL)


def _wire_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type the driver is handed for a scalar column of type ``t``."""
    if pa.types.is_integer(t):
        return {"int2": pa.int16(), "int4": pa.int32()}.get(sql_type(t), pa.int64())
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", t.tz)  # PostgreSQL keeps microseconds
    if pa.types.is_date(t):
        return pa.date32()
    if pa.types.is_fixed_size_binary(t):
        return pa.large_binary()
    if pa.types.is_null(t):
        return pa.large_string()
    return t


def encode(table: pa.Table, names: dict[str, str], path: StorePath) -> pa.Table:
    """``table`` (canonical, conformed) as the driver copies it into the path's table:
    columns renamed to their SQL names, nested values as JSON text."""
    columns = []
    for f in table.schema:
        column = table[f.name]
        if is_nested(f.type):
            column = _to_json(column.combine_chunks(), f, path)
        elif pa.types.is_large_string(f.type):
            _check_no_nul(column, f, path)
        else:
            try:
                column = column.cast(_wire_type(f.type))  # safe: a lossy value raises
            except pa.ArrowInvalid as exc:
                raise StoreError(
                    f"column {f.name!r} at {path_text(path)} cannot be stored in PostgreSQL "
                    f"as {sql_type(f.type)}: {exc}"
                ) from exc
        columns.append(column)
    return pa.table(columns, names=[names[n] for n in table.column_names])


def _check_no_nul(column: pa.ChunkedArray, f: pa.Field, path: StorePath) -> None:
    """Refuse a string holding U+0000, which PostgreSQL's ``text`` cannot hold (the driver's
    COPY fails with "invalid byte sequence for encoding UTF8: 0x00", naming a row of its
    staging table). Inside a nested value it is JSON's ``\\u0000``, which ``json`` keeps."""
    found = pc.match_substring(column, "\x00")
    if not pc.any(found).as_py():
        return
    value = column.filter(found)[0].as_py()
    raise StoreError(
        f"column {f.name!r} at {path_text(path)} holds {value!r}, a string with a NUL "
        "character (U+0000), which PostgreSQL text cannot hold; remove it where the string is "
        "made (value.replace('\\x00', '')), or keep such values as bytes"
    )


def decode(result: pa.Table, schema: pa.Schema, names: dict[str, str], path: StorePath) -> pa.Table:
    """What the driver returned for ``SELECT <names of schema>`` as a table of ``schema``."""
    columns = []
    for f in schema:
        column = result[names[f.name]]
        if isinstance(column.type, pa.ExtensionType):  # json, numeric: text underneath
            column = pa.chunked_array([c.storage for c in column.chunks], column.type.storage_type)
        if is_nested(f.type):
            column = _from_json(column.combine_chunks(), f.type)
        elif pa.types.is_null(f.type):
            column = pa.nulls(len(column), pa.null())
        columns.append(column)
    loose = pa.table(columns, names=schema.names)
    return conform(loose, schema, path)


def _json_type(t: pa.DataType) -> pa.DataType:
    """``t`` as polars decodes JSON into it: fixed-size lists as lists, all nullable, and
    bytes as their hex text."""
    if _is_binary(t):
        return pa.large_string()
    if pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.large_list(_json_type(t.value_type))
    if pa.types.is_map(t):
        return pa.map_(_json_type(t.key_type), _json_type(t.item_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _json_type(f.type)) for f in t])
    return t


def _to_json(column: pa.Array, f: pa.Field, path: StorePath) -> pa.Array:
    """Each value of a nested column as JSON text (null stays null), bytes as hex strings,
    checked to decode back to the same value: JSON has no NaN, and no map keys other than
    strings."""
    import polars as pl

    try:
        # Bytes first: polars cannot write them as JSON (it panics).
        frame = pl.DataFrame(pa.table({"v": _swap_binary(column, f.type, _hex)}))
        text = (
            frame.select(pl.struct("v").struct.json_encode().str.slice(len(_JSON_WRAP)))
            .to_series()
            .str.head(-1)
            .to_arrow()
        )
        text = pc.if_else(pc.is_null(column), pa.scalar(None, text.type), text)
        decoded = pa.table({"v": _from_json(text, f.type)})
        try:
            back = conform(decoded, pa.schema([f.with_name("v")]), path)
        except StoreError:  # a null where the type has none: JSON wrote a NaN as null
            same = False
        else:
            same = back.column(0).equals(pa.chunked_array([column]))
    except (Exception, pl.exceptions.PanicException) as exc:  # polars panics on some types
        raise _not_json(f, path, f"{type(exc).__name__}: {exc}") from exc
    if not same:
        raise _not_json(f, path, "a value would read back differently (a NaN or infinity?)")
    return text.cast(pa.large_string())


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _holds_binary(t: pa.DataType) -> bool:
    return _is_binary(t) or any(_holds_binary(t.field(i).type) for i in range(t.num_fields))


def _swap_binary(
    array: pa.Array, t: pa.DataType, leaf: Callable[[pa.Array, pa.DataType], pa.Array]
) -> pa.Array:
    """``array``, shaped as type ``t`` (up to the layout of its lists), with the values of
    each field where ``t`` holds bytes replaced by ``leaf(values, type of the field in t)``.

    The lists, structs and maps around them are rebuilt on the same offsets and validity
    (vectorized: one ``leaf`` call per field), so a null struct, a null list, an empty list
    and a null value inside stay what they were.
    """
    if not _holds_binary(t):
        return array
    if _is_binary(t):
        return leaf(array, t)
    at = array.type
    mask = array.is_null()
    if pa.types.is_struct(at):
        children = [
            _swap_binary(array.field(i), t.field(i).type, leaf) for i in range(t.num_fields)
        ]
        names = [at.field(i).name for i in range(at.num_fields)]
        return pa.StructArray.from_arrays(children, names=names, mask=mask)
    if pa.types.is_map(at):
        keys = _swap_binary(array.keys, t.key_type, leaf)
        items = _swap_binary(array.items, t.item_type, leaf)
        return pa.MapArray.from_arrays(array.offsets, keys, items, mask=mask)
    if pa.types.is_fixed_size_list(at):
        size = at.list_size  # its values start at the array's own offset, not at 0
        values = array.values.slice(array.offset * size, len(array) * size)
        values = _swap_binary(values, t.value_type, leaf)
        return pa.FixedSizeListArray.from_arrays(values, size, mask=mask)
    values = _swap_binary(array.values, t.value_type, leaf)
    lists = pa.LargeListArray if pa.types.is_large_list(at) else pa.ListArray
    return lists.from_arrays(array.offsets, values, mask=mask)


def _hex(values: pa.Array, t: pa.DataType) -> pa.Array:
    """Bytes as the text JSON holds them: their lowercase hex digits."""
    import polars as pl

    return pl.Series(values.cast(pa.large_binary())).bin.encode("hex").to_arrow()


def _unhex(text: pa.Array, t: pa.DataType) -> pa.Array:
    """What ``_hex`` wrote, as bytes of type ``t``."""
    import polars as pl

    return pl.Series(text.cast(pa.large_string())).str.decode("hex").to_arrow().cast(t)


def _from_json(text: pa.Array, t: pa.DataType) -> pa.Array:
    import polars as pl

    loose = _json_type(t)
    dtype = pl.DataFrame(pa.table({"v": pa.array([], loose)})).schema["v"]
    frame = pl.DataFrame(pa.table({"s": text.cast(pa.large_string())}))
    decoded = frame.select(
        (_JSON_WRAP + pl.col("s") + "}").str.json_decode(pl.Struct({"v": dtype})).struct.field("v")
    )
    values = decoded.to_series().to_arrow()
    # polars reads a null JSON value as a null row of the wrapper; keep SQL NULLs as nulls
    values = pc.if_else(pc.is_null(text), pa.scalar(None, values.type), values)
    return _swap_binary(values.cast(loose), t, _unhex)


def _not_json(f: pa.Field, path: StorePath, why: str) -> StoreError:
    return StoreError(
        f"column {f.name!r} at {path_text(path)} cannot be stored exactly in PostgreSQL (its "
        f"nested values are kept as JSON): {why}"
    )
