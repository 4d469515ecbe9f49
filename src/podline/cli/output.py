"""How commands print: frames as text tables for people, JSON for scripts (``--json``).

JSON is one document on stdout: a list of row objects for a table. Values JSON has no type
for are written as text: datetimes and dates in ISO 8601, bytes as hex, decimals and paths
as their text, and non-finite floats as ``"nan"``, ``"inf"``, ``"-inf"`` (JSON has no NaN).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from collections.abc import Mapping
from typing import Any

import click
import polars as pl

__all__ = ["emit_frame", "emit_json", "jsonable"]


def jsonable(value: Any) -> Any:
    """``value`` with everything JSON cannot hold turned into text (see the module docs)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.date | dt.time):  # datetimes are dates
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def emit_json(data: Any) -> None:
    """Print ``data`` as one JSON document on stdout."""
    click.echo(json.dumps(jsonable(data), indent=2))


def emit_frame(frame: pl.DataFrame, *, as_json: bool, limit: int | None = None) -> None:
    """Print ``frame`` (its first ``limit`` rows) as JSON rows or as a text table."""
    if limit is not None:
        frame = frame.head(limit)
    if as_json:
        emit_json(frame.to_dicts())
        return
    if frame.is_empty():
        click.echo("(no rows)")
        return
    with pl.Config(
        tbl_rows=-1,
        tbl_cols=-1,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        tbl_formatting="UTF8_FULL_CONDENSED",
        fmt_str_lengths=80,
        tbl_width_chars=shutil.get_terminal_size((160, 24)).columns,
    ):
        click.echo(str(frame))
