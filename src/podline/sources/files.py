"""Sources read from files: ``CSVSource``, ``ParquetSource`` and ``DeltaTableSource``.

Files are read when the source is built, so an unreadable file fails at construction with a
``SourceError`` naming the path. The label defaults to the file or directory name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from podline.columns import column_names
from podline.errors import SourceError
from podline.sources.base import Source

__all__ = ["CSVSource", "DeltaTableSource", "ParquetSource"]

PathLike = str | os.PathLike[str]


class _FileSource(Source):
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
        try:
            table = self._read(self.path, **read_options)
        except SourceError:
            raise
        except Exception as exc:  # every reader failure means "unreadable"; keep the cause
            raise SourceError(f"{label}: cannot read {self.kind} {self.path!r}: {exc}") from exc
        super().__init__(
            table, tag_columns, source_id=source_id, record_id_column=record_id_column, label=label
        )

    def _read(self, path: str, **options: Any) -> pa.Table:
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
    ``convert_options`` are passed through)."""

    kind = "CSV file"

    def _read(self, path: str, **options: Any) -> pa.Table:
        from pyarrow import csv

        return csv.read_csv(path, **options)


class ParquetSource(_FileSource):
    """A Parquet file (or dataset directory), read with ``pyarrow.parquet``."""

    kind = "Parquet file"

    def _read(self, path: str, **options: Any) -> pa.Table:
        from pyarrow import parquet

        return parquet.read_table(path, **options)


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

    def _read(self, path: str, **options: Any) -> pa.Table:
        from deltalake import DeltaTable
        from pyarrow import fs

        filesystem = None
        if "://" not in path:
            # Arrow's own file system, not the Python one delta-rs would give Arrow: buffers
            # of a Python file system left to Arrow's threads can abort the process at exit
            # (see podline.shutdown).
            filesystem = fs.SubTreeFileSystem(os.path.abspath(path), fs.LocalFileSystem())
        table = DeltaTable(path, **options).to_pyarrow_table(filesystem=filesystem)
        assert isinstance(table, pa.Table)
        return table
