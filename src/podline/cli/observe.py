"""``podline pipelines``, ``status``, ``logs`` and ``runs``: what runs recorded, read from the
store alone (``podline.observability.PipelineObservations``), without the pipeline's code."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import click
import polars as pl

from podline.cli.options import (
    json_option,
    open_store_option,
    pipeline_names,
    pipeline_option,
    resolve_pipeline,
    split_uri,
    store_option,
)
from podline.cli.output import emit_frame, emit_json
from podline.columns import RESERVED_PREFIX, parse_system_tag
from podline.errors import NotFoundError, SchemaError, format_names
from podline.observability import PipelineObservations, State
from podline.value_text import as_text, short_repr, short_text

__all__ = ["COMMANDS"]

F = TypeVar("F", bound=Callable[..., Any])

#: ``podline runs`` columns shown as text (``--json`` gives every column, manifests too).
#: The URI tells runs of several versions of one pipeline apart (users running different
#: code under one name); ``--pipeline`` takes it to read one version.
RUN_COLUMNS = (
    "run_id",
    "pipeline_uri",
    "started_at",
    "seconds",
    "complete",
    "computed",
    "cached",
    "skipped",
    "failed",
    "unfinished",
)

#: ``podline status`` columns shown as text after node, state and the user's tags.
STATUS_SHOWN = ("error_type", "error_message", "reason", "attempts", "timestamp")
_STATUS_FIXED = frozenset(
    (
        *STATUS_SHOWN,
        "node",
        "state",
        "cached",
        "started_at",
        "run_id",
        "node_hash",
        "pipeline_uri",
    )
)

node_option = click.option("-n", "--node", metavar="NODE", help="Only this node's rows.")
run_option = click.option("-r", "--run-id", metavar="RUN", help="Only this run's rows.")
state_option = click.option(
    "--state",
    type=click.Choice([state.value for state in State], case_sensitive=False),
    help="Only rows in this state.",
)
tag_option = click.option(
    "-t",
    "--tag",
    "tags",
    multiple=True,
    metavar="NAME=VALUE",
    help="Only rows whose tag NAME shows as VALUE (repeatable).",
)


def row_filters(command: F) -> F:
    """The options choosing the rows of ``status`` and ``logs``: store, pipeline, node, run,
    state and tags."""
    for option in reversed(
        (store_option, pipeline_option, node_option, run_option, state_option, tag_option)
    ):
        command = option(command)
    return command


limit_option = click.option(
    "-l",
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    # 0 is every row, as for ``show`` (whose default limit is 20).
    callback=lambda _ctx, _param, value: None if value == 0 else value,
    help="Show at most N rows (0: all).",
)


def _observations(
    store: str | None, pipeline: str | None, node: str | None = None
) -> tuple[PipelineObservations, str | None]:
    """The pipeline's records, and the URI ``--pipeline NAME@<hex>`` keeps them to (None for
    a plain name: every version's)."""
    opened = open_store_option(store)
    name, uri = split_uri(resolve_pipeline(opened, pipeline))
    observations = PipelineObservations(opened, name)
    if node is not None and node not in observations.nodes:
        raise NotFoundError(
            f"pipeline {observations.pipeline_name!r} recorded nothing of a node {node!r}; "
            f"its nodes are {format_names(observations.nodes) or 'none'}"
        )
    return observations, uri


def _with_tags(frame: pl.DataFrame, tags: Sequence[str], fixed: Collection[str]) -> pl.DataFrame:
    """Rows whose tag columns show as the ``NAME=VALUE`` texts given (compared as text,
    ``value_text.as_text``: ``subject=3`` matches an integer tag 3, ``k=[1, 2]`` a list)."""
    for text in tags:
        name, sep, value = text.partition("=")
        if not sep:
            raise click.BadParameter(f"{text!r} is not NAME=VALUE", param_hint="--tag")
        if name not in frame.columns:
            # The user's tags: the columns a person types (not the fixed ones, not system
            # tags, whose long names would drown them).
            names = _user_tags(frame, fixed)
            raise click.BadParameter(
                f"no tag {name!r}; the tags are {format_names(names) or 'none'}"
                + (" (quote a NAME=VALUE with spaces)" if any(" " in n for n in names) else ""),
                param_hint="--tag",
            )
        frame = frame.filter(_shows_as(frame[name], value))
    return frame


def _shows_as(column: pl.Series, value: str) -> pl.Series:
    """Which values of ``column`` the text ``value`` names: a float as a number (``1e-05``,
    ``0.00001`` and ``1e-5`` are one value, ``nan`` matches NaN), anything else as text."""
    if column.dtype.is_float():
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            test = column.is_nan() if math.isnan(number) else column == number
            return test.fill_null(False)
    return as_text(column) == value


def _is_system_tag(column: str) -> bool:
    """Whether a reader's column is a system tag (shown as ``tag:<kind>::<lineage>``; a user
    tag named like a fixed column, ``tag:node``, is not one)."""
    try:
        parse_system_tag(RESERVED_PREFIX + column)
    except SchemaError:
        return False
    return True


def _user_tags(frame: pl.DataFrame, fixed: Collection[str]) -> list[str]:
    return [c for c in frame.columns if c not in fixed and not _is_system_tag(c)]


def _readable(frame: pl.DataFrame, fixed: Collection[str], shown: Sequence[str]) -> pl.DataFrame:
    """The columns a person reads first: node and state, the user's tags (long lists and text
    shortened), then ``shown`` where some row has a value (``--json`` keeps every column)."""
    tags = _user_tags(frame, fixed)
    columns = ["node", "state", *tags]
    columns += [c for c in shown if frame.get_column(c).null_count() < frame.height]
    # A tag read as text (nodes disagree on its type) may hold a long list's JSON: shortened
    # as polars shows a list column.
    text = [c for c in tags if frame.schema[c] == pl.String]
    return frame.select(columns).with_columns(
        pl.col(c).map_elements(short_text, return_dtype=pl.String) for c in text
    )


@click.command(epilog="\b\nExamples:\n  podline pipelines\n  podline pipelines --json")
@store_option
@json_option
def pipelines(*, store: str | None, as_json: bool) -> None:
    """List the pipelines the store holds records of."""
    names = pipeline_names(open_store_option(store))
    if as_json:
        emit_json(names)
    else:
        click.echo("\n".join(names) if names else "(no pipelines)")


@click.command(
    epilog="""\b
Examples:
  podline status
  podline status --state FAILED --node speed
  podline status --tag subject=s01 --all
  podline status --json | jq 'map(select(.state == "FAILED")) | length'
"""
)
@row_filters
@click.option("--all", "every", is_flag=True, help="Every transition, not the latest state.")
@limit_option
@json_option
def status(
    *,
    store: str | None,
    pipeline: str | None,
    node: str | None,
    run_id: str | None,
    state: str | None,
    tags: tuple[str, ...],
    every: bool,
    limit: int | None,
    as_json: bool,
) -> None:
    """Show every packet's latest state, failures first.

    One row per node and tag values, from the latest run that touched it (--all: every
    state transition). As text: node, state, the tags and, where set, the error, reason,
    attempts and time; --json gives every column, run ids and system tags included.
    """
    observations, uri = _observations(store, pipeline, node)
    frame = _with_tags(
        observations.status(node, run_id, state, latest=not every, pipeline_uri=uri),
        tags,
        _STATUS_FIXED,
    )
    if not as_json:
        frame = _readable(frame, _STATUS_FIXED, STATUS_SHOWN)
    emit_frame(frame, as_json=as_json, limit=limit)


@click.command(
    epilog="""\b
Examples:
  podline logs --state FAILED
  podline logs --node speed --tag subject=s01
  podline logs --run-id 3f2a... --json
"""
)
@row_filters
@limit_option
@json_option
def logs(
    *,
    store: str | None,
    pipeline: str | None,
    node: str | None,
    run_id: str | None,
    state: str | None,
    tags: tuple[str, ...],
    limit: int | None,
    as_json: bool,
) -> None:
    """Show the captured output of the calls that ran, oldest first.

    Each call's stdout, stderr, logging records and, for a failed call, its traceback.
    """
    observations, uri = _observations(store, pipeline, node)
    frame = _with_tags(observations.logs(node, run_id, state, pipeline_uri=uri), tags, _LOG_FIELDS)
    if limit is not None:
        frame = frame.head(limit)
    if as_json:
        emit_frame(frame, as_json=True)
        return
    if frame.is_empty():
        click.echo("(no logs)")
    tag_columns = _user_tags(frame, _LOG_FIELDS)
    for row in frame.iter_rows(named=True):
        click.echo(_log_entry(row, tag_columns))


_LOG_FIELDS = frozenset(
    (
        "node",
        "state",
        "success",
        "duration",
        "stdout",
        "stderr",
        "log_records",
        "error_type",
        "error_message",
        "traceback",
        "cached",
        "timestamp",
        "run_id",
        "node_hash",
        "pipeline_uri",
    )
)


def _log_entry(row: dict[str, object], tag_columns: Sequence[str]) -> str:
    tags = " ".join(f"{c}={short_repr(row[c])}" for c in tag_columns if row[c] is not None)
    duration = f"{row['duration']:.3f} s" if isinstance(row["duration"], float) else "-"
    lines = [f"== {row['node']} {row['state']} {tags}  (run {row['run_id']}, {duration})"]
    for name in ("stdout", "stderr", "traceback"):
        text = row[name]
        if isinstance(text, str) and text.strip():
            lines.append(f"-- {name}:")
            lines.extend(f"   {line}" for line in text.rstrip("\n").splitlines())
    records = row["log_records"]
    if isinstance(records, list) and records:
        lines.append("-- logging:")
        lines.extend(f"   {r['level']} {r['logger']}: {r['message']}" for r in records)
    traceback = row["traceback"]
    if row["error_type"] and not (isinstance(traceback, str) and traceback.strip()):
        # A call that returned a value its types refuse (or one that never ran: a missing
        # input file) failed without a traceback: its error is all there is to show.
        lines.append("-- error:")
        lines.extend(
            f"   {line}" for line in f"{row['error_type']}: {row['error_message']}".splitlines()
        )
    return "\n".join(lines)


@click.command(
    epilog="\b\nExamples:\n  podline runs\n  podline runs --limit 1 --json | jq '.[0].failed'"
)
@store_option
@pipeline_option
@limit_option
@json_option
def runs(*, store: str | None, pipeline: str | None, limit: int | None, as_json: bool) -> None:
    """Show the run history, newest first, with per-run counts.

    --json adds each run's manifest: podline and Python versions, platform, package versions
    and git commit.
    """
    observations, uri = _observations(store, pipeline)
    frame = observations.runs()
    if uri is not None:
        frame = frame.filter(pl.col("pipeline_uri") == uri)
    if not as_json:
        frame = frame.select(RUN_COLUMNS)
    emit_frame(frame, as_json=as_json, limit=limit)


COMMANDS = (pipelines, status, logs, runs)
