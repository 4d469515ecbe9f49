"""Sources read from files: ``CSVSource``, ``ParquetSource`` and ``DeltaTableSource``.

They are ``ChunkedSource``s: building one reads the file in chunks to type and hash it (or
takes what an earlier build of the unchanged file established, see
``podline.sources.hash_cache``), and runs read it again chunk by chunk, so a large file is
never held whole. An unreadable file fails at construction with a ``SourceError`` naming the
path. The label defaults to the file or directory name.

All of them are read in chunks: a CSV file (``pyarrow.csv.open_csv``, the options passed
through), a Parquet file or directory (the fragments ``read_table`` would read, with its
options, one row group at a time: the same rows in the same order, so the same identity;
``use_pandas_metadata=True`` alone reads the table whole), and a Delta table (at the version
the build saw).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from podline.columns import column_names
from podline.errors import PodlineError, SourceError
from podline.sources.chunked import ChunkedSource, or_empty
from podline.sources.csv_types import check_integer_columns, conversion_error
from podline.sources.hash_cache import FileStat, fingerprint

__all__ = ["CSVSource", "DeltaTableSource", "ParquetSource"]

PathLike = str | os.PathLike[str]
#: Rows per chunk read from a Parquet file or Delta table.
_BATCH_ROWS = 1 << 16


class _FileSource(ChunkedSource):
    """Reads a table with ``_read`` and reports any failure as a ``SourceError``."""

    kind = "file"

    def __init__(
        self,
        path: PathLike,
        tag_columns: str | Iterable[str] = (),
        *,
        source_id: str | None = None,
        record_id_column: str | None = None,
        label: str | None = None,
        **read_options: Any,
    ) -> None:
        self.path = os.fspath(path)
        label = label or Path(self.path).name or self.path
        self._arguments = _json_or_none(
            {
                "path": self.path if "://" in self.path else os.path.abspath(self.path),
                "tag_columns": list(column_names(tag_columns)),
                "source_id": source_id,
                "record_id_column": record_id_column,
                "label": label,
                # Credentials never go into a saved pipeline: loading reads them from the
                # environment, as delta-rs and Arrow do when none are given.
                **{k: v for k, v in read_options.items() if k != "storage_options"},
            }
        )
        self.label = label
        self._options = read_options
        try:
            self._build(
                tag_columns,
                source_id=source_id,
                record_id_column=record_id_column,
                nullable="infer",
                cache_key=self._cache_key(),
            )
        except PodlineError:  # the data's own faults (reserved names, types, ids)
            raise
        except Exception as exc:  # every reader failure means "unreadable"; keep the cause
            raise SourceError(f"{label}: cannot read {self.kind} {self.path!r}: {exc}") from exc

    def _chunks(self) -> Iterable[pa.Table | pa.RecordBatch]:
        return self._read(self.path, **self._options)

    def _location(self) -> str:
        return self.path

    def _fingerprint(self) -> tuple[FileStat, ...] | None:
        try:
            return fingerprint(self.path)
        except OSError as exc:
            raise SourceError(
                f"{self.label}: cannot read {self.kind} {self.path!r}: {exc}"
            ) from exc

    def _cache_key(self) -> dict[str, Any] | None:
        """What a build depends on besides the files (None: not cacheable, as when an
        option has no JSON form)."""
        if self._arguments is None:
            return None
        return {"kind": self.kind, **self._arguments, "label": None}

    def _read(self, path: str, **options: Any) -> Iterable[pa.Table | pa.RecordBatch]:
        raise NotImplementedError

    def rebuild_arguments(self) -> dict[str, Any] | None:
        """The arguments that read the same file again (the path made absolute; None when
        a read option has no JSON form, such as pyarrow's option objects)."""
        return None if self._arguments is None else dict(self._arguments)


def _json_or_none(arguments: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return dict(json.loads(json.dumps(arguments, sort_keys=True)))
    except (TypeError, ValueError):
        return None


class CSVSource(_FileSource):
    """A CSV file, read with ``pyarrow.csv`` (``read_options``, ``parse_options`` and
    ``convert_options`` are passed through). Integers are read exactly or refused: a column
    pyarrow would read as ``float64`` because its integers do not fit ``int64`` is a
    ``SourceError`` (``podline.sources.csv_types``)."""

    kind = "CSV file"
    #: Whether the file's first block was checked for integers float64 would round (once:
    #: every read of the unchanged file has the same first block).
    _integers_checked = False

    def _read(self, path: str, **options: Any) -> Iterable[pa.Table | pa.RecordBatch]:
        from pyarrow import csv

        try:
            with csv.open_csv(path, **options) as reader:
                if not self._integers_checked:
                    check_integer_columns(path, options, reader.schema, self.label)
                    self._integers_checked = True
                yield from or_empty(reader, reader.schema)
        except pa.ArrowInvalid as exc:
            error = conversion_error(path, options, exc, self.label)
            if error is None:
                raise
            raise error from exc


class ParquetSource(_FileSource):
    """A Parquet file (or dataset directory), read with ``pyarrow.parquet``."""

    kind = "Parquet file"

    def _read(self, path: str, **options: Any) -> Iterable[pa.Table | pa.RecordBatch]:
        from pyarrow import parquet

        if options.get("use_pandas_metadata"):  # it adds index columns: read_table knows which
            yield parquet.read_table(path, **options)
        else:
            rest = {k: v for k, v in options.items() if k != "use_pandas_metadata"}
            yield from _dataset_batches(path, **rest)


def _dataset_batches(
    path: str,
    *,
    columns: list[str] | None = None,
    filters: Any = None,
    use_threads: bool = True,
    **options: Any,
) -> Iterator[pa.Table | pa.RecordBatch]:
    """What ``pyarrow.parquet.read_table(path, ...)`` reads (a directory's files, partition
    columns included, or one file with options), batch by batch. ``read_table`` scans a
    ``ParquetDataset``'s fragments into one table; this scans the same fragments in the same
    order, one row group at a time: a dataset scan reads ahead, up to whole files, when the
    reader is slower than the disk."""
    from pyarrow import dataset, parquet

    found = parquet.ParquetDataset(path, filters=filters, **options)
    fragments = list(found.fragments)
    if not fragments:
        yield found.schema.empty_table()
        return
    expression = None if filters is None else parquet.filters_to_expression(filters)
    whole = dataset.FileSystemDataset(
        fragments, schema=found.schema, format=fragments[0].format, filesystem=found.filesystem
    )
    batches = (
        batch
        for fragment in fragments
        for group in fragment.split_by_row_group()
        for batch in group.to_batches(
            schema=found.schema,
            columns=columns,
            filter=expression,
            batch_size=_BATCH_ROWS,
            use_threads=use_threads,
        )
    )
    yield from or_empty(batches, whole.scanner(columns=columns).projected_schema)


class DeltaTableSource(_FileSource):
    """A Delta Lake table, optionally at a ``version``, on disk or object storage."""

    kind = "Delta table"

    def __init__(
        self,
        path: PathLike,
        tag_columns: str | Iterable[str] = (),
        *,
        version: int | None = None,
        storage_options: Mapping[str, str] | None = None,
        source_id: str | None = None,
        record_id_column: str | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(
            path,
            tag_columns,
            source_id=source_id,
            record_id_column=record_id_column,
            label=label,
            version=version,
            storage_options=dict(storage_options) if storage_options else None,
        )

    def _chunks(self) -> Iterable[pa.Table | pa.RecordBatch]:
        # The version the first read saw, so that every later read gives the same rows.
        if self._options.get("version") is None:
            from deltalake import DeltaTable

            storage = self._options.get("storage_options")
            version = DeltaTable(self.path, storage_options=storage).version()
            self._options = {**self._options, "version": version}
        return self._read(self.path, **self._options)

    def _read(self, path: str, **options: Any) -> Iterable[pa.Table | pa.RecordBatch]:
        from deltalake import DeltaTable
        from pyarrow import fs

        filesystem = None
        if "://" not in path:
            # Arrow's own file system, not the Python one delta-rs would give Arrow: buffers
            # of a Python file system left to Arrow's threads can abort the process at exit
            # (see podline.shutdown).
            filesystem = fs.SubTreeFileSystem(os.path.abspath(path), fs.LocalFileSystem())
        dataset = DeltaTable(path, **options).to_pyarrow_dataset(filesystem=filesystem)
        yield from or_empty(dataset.to_batches(batch_size=_BATCH_ROWS), dataset.schema)
