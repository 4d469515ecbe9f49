"""Reading the Parquet files of a Delta checkpoint: every action they hold, checked
(``checkpoint_rows`` with ``_delta_actions.checkpoint_actions``), or only the protocol, the
metadata and the paths of the data files (``checkpoint_metadata``), which is what appending
to a table needs and costs half as much to read."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from podline.errors import StoreError
from podline.stores._delta_actions import Action, checkpoint_actions
from podline.stores._delta_format import UnsupportedTable

__all__ = ["checkpoint_metadata", "checkpoint_rows"]

#: The columns of a checkpoint ``checkpoint_metadata`` reads.
_METADATA_COLUMNS = ("metaData", "protocol", "add.path")
_METADATA = ("metaData", "protocol")


def checkpoint_rows(path: Path, where: str) -> pa.Table:
    """Every column of the checkpoint file at ``path`` (``where`` names it in errors). Every
    one, not only those a read needs: damage to any of them makes delta-rs refuse the table.
    Raises ``FileNotFoundError`` if it is gone (a log cleanup may have deleted it)."""
    try:
        # A ParquetFile, not ``pq.read_table``: that loads Arrow's dataset engine (and
        # pandas), 200 ms in a fresh process.
        with pq.ParquetFile(path) as file:
            return file.read()
    except FileNotFoundError:
        raise
    except (OSError, ValueError, pa.ArrowException) as exc:  # ValueError: a name not UTF-8
        raise StoreError(f"{where} cannot be read: {exc}") from exc


def checkpoint_metadata(path: Path, where: str) -> tuple[list[Action], list[str]] | None:
    """The ``metaData`` and ``protocol`` actions of the checkpoint file at ``path``, checked,
    and the paths its ``add`` actions name, as the log gives them (unchecked: they are checked
    when the file is read whole); None for a file not read so simply (its whole is then read,
    and checked, by the caller). Raises ``FileNotFoundError`` if it is gone."""
    try:
        # (A few columns of a small file: read at once, without threads.)
        with pq.ParquetFile(path, pre_buffer=False) as file:
            rows = file.read(columns=list(_METADATA_COLUMNS), use_threads=False)
        actions = list(checkpoint_actions(rows, where, _METADATA))
        paths = pc.struct_field(rows["add"], "path").drop_null().to_pylist()
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, pa.ArrowException, UnsupportedTable, StoreError):
        return None
    return actions, paths
