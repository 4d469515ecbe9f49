"""``Opener``: opening and refreshing the Delta logs of one store's tables.

Podline's own log reader (``_delta_local``) opens plain local tables; delta-rs opens the others
and the local tables with features podline does not read, including one that gains such a
feature while it is open. Every failure is a ``StoreError`` naming the store path at fault.
"""

from __future__ import annotations

from typing import NamedTuple

from podline.errors import StoreError
from podline.stores._common import path_text
from podline.stores._delta_local import open_log
from podline.stores._delta_log import TableLog, UnsupportedTable, first_line
from podline.stores.base import StorePath

__all__ = ["Opener"]


class Opener(NamedTuple):
    """How a store opens its tables: local or not, and delta-rs's storage options."""

    local: bool
    storage_options: dict[str, str] | None

    def open(
        self, uri: str, path: StorePath, version: int | None = None, *, files: bool = True
    ) -> TableLog | None:
        """The table's log (at ``version``; default: the latest), None while none exists;
        without ``files``, the data files may be left unread until they are asked for."""
        try:
            return open_log(
                uri,
                local=self.local,
                storage_options=self.storage_options,
                version=version,
                files=files,
            )
        except StoreError as exc:  # it names the table's directory, the version and the fault
            raise StoreError(f"cannot open the table of {path_text(path)}: {exc}") from exc
        except Exception as exc:  # delta-rs raises bare Exceptions for I/O and log errors
            raise StoreError(
                f"cannot open the table of {path_text(path)} at {uri}: {first_line(exc)}"
            ) from exc

    def latest(
        self, log: TableLog | None, uri: str, path: StorePath, *, files: bool = True
    ) -> TableLog | None:
        """``log`` brought up to date (with its data files read, if ``files``), or the table
        opened if there is no log yet."""
        if log is None:
            return self.open(uri, path, files=files)
        try:
            log.update()
        except UnsupportedTable:  # a feature podline does not read came in: delta-rs reads it
            return self.open(uri, path)
        except Exception as exc:  # see open
            raise StoreError(
                f"cannot refresh the table of {path_text(path)}: {first_line(exc)}"
            ) from exc
        return self.with_files(log, uri, path) if files else log

    def with_files(self, log: TableLog, uri: str, path: StorePath) -> TableLog | None:
        """``log`` with the table's data files read, or the table opened anew where they are
        for delta-rs to read (or where the checkpoint listing them was cleaned up)."""
        try:
            log.read_files()
        except UnsupportedTable:
            return self.open(uri, path)
        except Exception as exc:  # see open
            raise StoreError(
                f"cannot read the table of {path_text(path)}: {first_line(exc)}"
            ) from exc
        return log
