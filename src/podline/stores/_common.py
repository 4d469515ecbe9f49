"""The store contract's shared rules, so every backend applies them identically.

This module owns what ``base.Store`` promises and no backend may reinterpret: how paths are
joined and validated, how an incoming batch is checked and reduced to its first occurrences,
how the stored schema evolves and how a batch is conformed to it, how reads are projected,
filtered and ordered, and how configs and store locations are read (a malformed URL is
refused, never taken for a directory). Backends only decide where records live.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.conversion import narrowed, null_in_required_child, relaxed
from podline.errors import StoreError, UnsupportedTypeError, format_names
from podline.schema import python_type, type_name
from podline.stores.base import PathLike, StorePath, normalize_path, segment_problem

__all__ = [
    "RowFilter",
    "add_prefix",
    "add_query",
    "canonical_type",
    "check_columns",
    "conform",
    "describe_type",
    "evolve_schema",
    "first_occurrences",
    "id_array",
    "join_path",
    "local_directory",
    "path_text",
    "pieces",
    "prepare_batch",
    "record_path",
    "row_filter",
    "split_config",
    "split_query",
]

# --------------------------------------------------------------------------- paths


def path_text(path: StorePath) -> str:
    """A path as users write it, for messages: ``'a/b'``."""
    return repr("/".join(path))


def join_path(prefix: StorePath, path: PathLike) -> StorePath:
    """``prefix`` extended by ``path``, every segment validated (``segment_problem``)."""
    segments = normalize_path(path)
    for segment in segments:
        if not isinstance(segment, str):
            raise StoreError(f"path segments must be strings, got {segment!r} in {path!r}")
        problem = segment_problem(segment)
        if problem is not None:
            raise StoreError(f"invalid path segment {segment!r} in {path!r}: {problem}")
    return prefix + segments


def record_path(prefix: StorePath, path: PathLike) -> StorePath:
    """The full path of a table of records: like ``join_path`` but never empty."""
    full = join_path(prefix, path)
    if not full:
        raise StoreError("records need a path with at least one segment; got the store root")
    return full


# --------------------------------------------------------------------------- ids


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def id_array(ids: Sequence[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """Requested ids as one ``large_string`` array; a null or non-string id is an error."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if isinstance(ids, pa.Array):
        array = ids
    else:
        try:
            array = pa.array(list(ids), pa.large_string())
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise StoreError(f"record ids must be strings: {exc}") from exc
    if not _is_string(array.type):
        raise StoreError(f"record ids must be strings, not {array.type}")
    if array.null_count:
        raise StoreError("record ids may not be None")
    return array.cast(pa.large_string())


def first_occurrences(ids: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """A mask keeping the first row of every id, or None when every id is distinct."""
    import polars as pl

    series = pl.Series(ids)
    if series.n_unique() == len(series):
        return None
    return series.is_first_distinct().to_numpy()


def prepare_batch(
    table: pa.Table, id_column: str, path: StorePath, *, distinct: bool = False
) -> pa.Table:
    """A written table checked and made canonical: string ids present and not null, Arrow
    types in canonical form, and only the first row of each repeated id (first wins; not
    looked for when the caller says ids are ``distinct``)."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise StoreError(
            f"write to {path_text(path)} needs a pyarrow Table, got {type(table).__name__}"
        )
    names = table.column_names
    if len(set(names)) != len(names):
        dupes = {n for n in names if names.count(n) > 1}
        raise StoreError(
            f"table written to {path_text(path)} repeats column(s) {format_names(dupes)}"
        )
    if id_column not in names:
        raise StoreError(
            f"table written to {path_text(path)} has no id column {id_column!r}; "
            f"columns are {format_names(names)}"
        )
    ids = table[id_column]
    if not _is_string(ids.type):
        raise StoreError(
            f"id column {id_column!r} written to {path_text(path)} must hold strings, "
            f"not {ids.type}"
        )
    if ids.null_count:
        raise StoreError(f"id column {id_column!r} written to {path_text(path)} holds None")
    table = _canonical_table(table)
    if distinct:
        return table
    keep = first_occurrences(table[id_column])
    return table if keep is None else table.filter(keep)


# --------------------------------------------------------------------------- schemas


def canonical_type(t: pa.DataType) -> pa.DataType:
    """``t`` with every physical variant replaced by podline's canonical form (``large_string``,
    ``large_binary``, ``large_list``; dictionaries decoded), recursively.

    Only layout changes, never values: widths, units and zones are kept. This is what makes a
    column read back from any backend with the type it was written with, since e.g. Delta Lake
    returns ``string`` for a ``large_string`` column.
    """
    return _rebuild(t)


def _canonical_table(table: pa.Table) -> pa.Table:
    """``table`` with canonical column types and no schema metadata."""
    for i, f in enumerate(table.schema):
        canonical = canonical_type(f.type)
        if canonical != f.type:
            # Only columns that change are cast: a cast re-validates nested nullability,
            # which Arrow gets wrong for null fixed-size-list slots.
            table = table.set_column(i, f.with_type(canonical), table.column(i).cast(canonical))
    return table.replace_schema_metadata(None)


def _rebuild(t: pa.DataType) -> pa.DataType:
    """The canonical form of ``t`` (``canonical_type``)."""

    def child(name: str, f: pa.Field) -> pa.Field:
        return pa.field(name, _rebuild(f.type), nullable=f.nullable)

    if pa.types.is_dictionary(t):
        return _rebuild(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.large_string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.large_binary()
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    ):
        return pa.large_list(child("item", t.value_field))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(child("item", t.value_field), t.list_size)
    if pa.types.is_map(t):
        key = pa.field("key", _rebuild(t.key_field.type), nullable=False)
        return pa.map_(key, child("value", t.item_field))
    if pa.types.is_struct(t):
        return pa.struct([child(t.field(i).name, t.field(i)) for i in range(t.num_fields)])
    return t


def describe_type(t: pa.DataType) -> str:
    """A type as podline names it (``list[int]``), or Arrow's name outside that vocabulary."""
    try:
        return type_name(python_type(t))
    except UnsupportedTypeError:
        return str(t)


def evolve_schema(stored: pa.Schema | None, incoming: pa.Schema, path: StorePath) -> pa.Schema:
    """The path's schema after accepting a batch typed ``incoming`` (canonical).

    Evolution is additive: columns new to the path are appended, nullable because the rows
    already stored have no value for them. A column whose type differs from the stored one
    (ignoring only physical layout and nested nullability, which ``conform`` checks against
    the data) is a ``StoreError`` naming it.
    """
    if stored is None:
        return incoming
    fields = list(stored)
    for f in incoming:
        index = stored.get_field_index(f.name)
        if index < 0:
            same = [name for name in stored.names if name.lower() == f.name.lower()]
            if same:  # see _storable: Delta tables do not tell such names apart
                raise StoreError(
                    f"column {f.name!r} at {path_text(path)} differs only in case from the "
                    f"stored column {same[0]!r}, which Delta tables do not tell apart"
                )
            fields.append(f.with_nullable(True))
            continue
        have = stored.field(index).type
        # Equal types are the common case (every batch of a table); only different ones
        # need comparing up to layout and nested nullability.
        if have != f.type and relaxed(canonical_type(have)) != relaxed(canonical_type(f.type)):
            raise StoreError(
                f"column {f.name!r} at {path_text(path)} is stored as {describe_type(have)}; "
                f"cannot write {describe_type(f.type)} to it"
            )
    return pa.schema(fields)


def conform(table: pa.Table, schema: pa.Schema, path: StorePath) -> pa.Table:
    """``table`` with exactly the columns of ``schema``, in its order and types.

    Columns the table lacks are filled with nulls, which only a nullable column accepts; a null
    where the schema forbids one is an error naming the column (or nested field).
    """
    if table.schema.equals(schema):
        return table
    extra = set(table.column_names) - set(schema.names)
    if extra:
        raise StoreError(
            f"column(s) {format_names(extra)} are not in the schema of {path_text(path)}"
        )
    columns = []
    for f in schema:
        if f.name not in table.column_names:
            if not f.nullable:
                raise StoreError(
                    f"table written to {path_text(path)} lacks column {f.name!r}, which is "
                    f"stored as non-nullable {describe_type(f.type)}"
                )
            columns.append(pa.nulls(table.num_rows, f.type))
            continue
        column = _convert(table[f.name], f, path)
        if not f.nullable and column.null_count:
            raise StoreError(
                f"column {f.name!r} at {path_text(path)} is stored as non-nullable but the "
                f"written table holds None in it"
            )
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _convert(column: pa.ChunkedArray, f: pa.Field, path: StorePath) -> pa.ChunkedArray:
    """``column`` as type ``f.type``, which ``evolve_schema`` found compatible with it."""
    if column.type == f.type:
        return column
    try:
        column = narrowed(column, f.type)  # (Arrow's cast refuses nulls no row refers to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise StoreError(
            f"column {f.name!r} at {path_text(path)} does not fit its stored type "
            f"{describe_type(f.type)}: {exc}"
        ) from exc
    for chunk in column.chunks:
        nested = null_in_required_child(chunk, f.name)
        if nested is not None:
            raise StoreError(
                f"{nested!r} at {path_text(path)} is stored as non-nullable but the written "
                f"table holds None in it"
            )
    return column


# --------------------------------------------------------------------------- reads


def check_columns(names: Iterable[str], schema: pa.Schema, path: StorePath) -> None:
    """Raise a ``StoreError`` naming every column of ``names`` that ``schema`` lacks."""
    missing = [name for name in names if schema.get_field_index(name) < 0]
    if missing:
        raise StoreError(
            f"no column(s) {format_names(missing)} at {path_text(path)}; "
            f"columns are {format_names(schema.names)}"
        )


class RowFilter:
    """Validated ``column == value`` tests (``None`` tests for null); a row passes when it
    passes all of them.

    Tables are filtered with compute kernels, not with an expression: filtering a table by
    an expression loads Arrow's dataset engine (and pandas), some 40 MB, for one comparison.
    """

    __slots__ = ("tests",)

    def __init__(self, where: Mapping[str, Any], schema: pa.Schema, path: StorePath) -> None:
        check_columns(where, schema, path)
        self.tests: list[tuple[str, pa.Scalar | None]] = []
        for name, value in where.items():
            t = schema.field(name).type
            if pa.types.is_nested(t):
                raise StoreError(
                    f"cannot filter {path_text(path)} on column {name!r}: equality filters "
                    f"need a scalar column, and it holds {describe_type(t)}"
                )
            try:
                scalar = None if value is None else pa.scalar(value, type=t)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
                raise StoreError(
                    f"cannot filter {path_text(path)} on column {name!r} "
                    f"({describe_type(t)}) with {value!r}: {exc}"
                ) from exc
            self.tests.append((name, scalar))

    def restricted(self, names: Iterable[str]) -> RowFilter:
        """The tests on the columns among ``names`` only (for a partial, early filter)."""
        kept = copy.copy(self)
        present = set(names)
        kept.tests = [(name, value) for name, value in self.tests if name in present]
        return kept

    def expression(self) -> pc.Expression | None:
        """The tests as an expression, for datasets that push it down (None: no tests)."""
        expression: pc.Expression | None = None
        for name, value in self.tests:
            test = pc.field(name).is_null() if value is None else pc.field(name) == value
            expression = test if expression is None else expression & test
        return expression

    def mask(self, table: pa.Table) -> Any:
        """Which rows of ``table`` pass every test (None: no tests)."""
        mask: Any = None
        for name, value in self.tests:
            column = table[name]
            test = pc.is_null(column) if value is None else pc.equal(column, value)
            mask = test if mask is None else pc.and_(mask, test)
        return mask if mask is None else pc.fill_null(mask, False)

    def apply(self, table: pa.Table) -> pa.Table:
        """The rows of ``table`` that pass every test."""
        mask = self.mask(table)
        return table if mask is None else table.filter(mask)


def row_filter(
    where: Mapping[str, Any] | None, schema: pa.Schema, path: StorePath
) -> RowFilter | None:
    """The validated filter of ``where`` (None when there is nothing to test)."""
    return RowFilter(where, schema, path) if where else None


# --------------------------------------------------------------------------- configs


def split_config(config: str) -> tuple[str, StorePath]:
    """``"<base>#a/b"`` -> (``"<base>"``, ``("a", "b")``): a view's prefix is the fragment.

    Only URLs (``scheme://...``) carry a fragment; a plain path is taken literally, so a
    directory name holding ``#`` stays usable.
    """
    if "://" not in config or "#" not in config:
        return config, ()
    base, _, fragment = config.partition("#")
    return base, tuple(unquote(part) for part in fragment.split("/") if part)


def add_prefix(base: str, prefix: StorePath) -> str:
    """The config of a view scoped to ``prefix`` of the store configured by ``base``."""
    if not prefix:
        return base
    return base + "#" + "/".join(quote(segment, safe="") for segment in prefix)


def split_query(url: str) -> tuple[str, dict[str, str]]:
    """``"s3://b/x?k=v"`` -> (``"s3://b/x"``, ``{"k": "v"}``)."""
    parts = urlsplit(url)
    base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return base, dict(parse_qsl(parts.query, keep_blank_values=True))


def add_query(base: str, options: Mapping[str, str]) -> str:
    """``base`` with ``options`` as a query string (sorted, so configs compare equal)."""
    if not options:
        return base
    return base + "?" + urlencode(sorted(options.items()))


def local_directory(location: str, schemes: Sequence[str]) -> Path | None:
    """The directory of a local store ``location`` (a path or ``file://`` URL), or None for
    an object-store URL of one of ``schemes``. A URL without its bucket (``s3://``) or path
    (``file://``), or of another scheme, is refused: ``s3://`` once named a directory
    ``./s3:``."""
    if "://" not in location:
        return Path(location).expanduser().absolute()
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme == "file" and parts.netloc in ("", "localhost") and parts.path:
        return Path(unquote(parts.path))
    if scheme not in ("", "file") and scheme in schemes and parts.netloc:
        return None
    raise StoreError(
        f"malformed store URL {location!r}: a local store is a directory or "
        f"file:///absolute/path, an object store a URL naming its bucket or container, "
        f"as in s3://bucket/dir (schemes: {', '.join(filter(None, schemes))})"
    )


# --------------------------------------------------------------------------- pieces

#: Rows per piece of ``pieces``.
PIECE_ROWS = 1 << 16


def pieces(table: pa.Table | None) -> Iterator[pa.Table] | None:
    """``table`` (a whole path, read at once) as consecutive slices of ``PIECE_ROWS`` rows
    (one empty piece for an empty table); None for None."""
    if table is None:
        return None
    return iter(
        [table.slice(start, PIECE_ROWS) for start in range(0, max(len(table), 1), PIECE_ROWS)]
    )
