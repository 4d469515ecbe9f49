"""Reading observations back: ``inspect(store, pipeline_name)`` and ``PipelineObservations``.

The reader needs only a store and a pipeline name — no pipeline code, no node objects — so
results can be examined in a fresh process, a notebook or a CI job. It uses the ``Store``
protocol alone (``list`` and ``scan``), so it works on every backend, and returns polars
DataFrames with friendly column names (see ``podline.observability.columns``).

* ``status()``: the latest state of every (node, tag) pair, failures first;
* ``logs()``: captured call output, filterable by node, run, state and tag values;
* ``runs()``: the run history with per-run counts and manifests (``manifest``), including
  runs that never finished.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import polars as pl
import pyarrow as pa

from podline.columns import is_system_tag
from podline.errors import ObservabilityError, format_names
from podline.observability.carried import status_rows
from podline.observability.columns import (
    LOGS_SCOPE,
    NODE,
    PACKETS,
    PIPELINE_URI,
    PIPELINES,
    RECORD_ID,
    RUN_ID,
    RUNS_PATH,
    SEQUENCE,
    STARTED_AT,
    STATE,
    STATE_ORDER,
    STATUS_SCOPE,
    STDERR,
    STDOUT,
    SUCCESS,
    TIMESTAMP,
    State,
    friendly_name,
    is_fixed,
)
from podline.observability.compact import expand, is_markers_path, packet_weight
from podline.stores import Store, open_store
from podline.value_text import as_text

__all__ = ["ObservabilityError", "PipelineObservations", "inspect"]


# The friendly columns every status / logs frame has, in display order; user tags go after
# the first two, system tags last.
_STATUS_COLUMNS: dict[str, pl.DataType] = {
    "node": pl.String(),
    "state": pl.String(),
    "error_type": pl.String(),
    "error_message": pl.String(),
    "cached": pl.Boolean(),
    "attempts": pl.Int64(),
    "reason": pl.String(),
    "timestamp": pl.Datetime("us", "UTC"),
    "started_at": pl.Datetime("us", "UTC"),
    "run_id": pl.String(),
    "node_hash": pl.String(),
    "pipeline_uri": pl.String(),
}
_LOG_COLUMNS: dict[str, pl.DataType] = {
    "node": pl.String(),
    "state": pl.String(),
    "success": pl.Boolean(),
    "duration": pl.Float64(),
    "stdout": pl.String(),
    "stderr": pl.String(),
    "log_records": pl.List(
        pl.Struct(
            {
                "time": pl.Datetime("us", "UTC"),
                "level": pl.String(),
                "logger": pl.String(),
                "message": pl.String(),
            }
        )
    ),
    "error_type": pl.String(),
    "error_message": pl.String(),
    "traceback": pl.String(),
    "cached": pl.Boolean(),
    "timestamp": pl.Datetime("us", "UTC"),
    "run_id": pl.String(),
    "node_hash": pl.String(),
    "pipeline_uri": pl.String(),
}
_LEADING = ("node", "state")
_RANK = {state.value: rank for rank, state in enumerate(STATE_ORDER)}
_RUN_COUNTS = ("computed", "cached", "skipped", "failed")
_WEIGHT = "__podline_packets"


def inspect(store: Store | str, pipeline_name: str) -> PipelineObservations:
    """The observations of pipeline ``pipeline_name`` in ``store`` (a store or its config).

    Raises ``ObservabilityError`` if the store holds nothing for that pipeline, naming the
    pipelines it does hold.
    """
    if isinstance(store, str):
        store = open_store(store)
    if not store.list((PIPELINES, pipeline_name)):
        known = {path[1] for path in store.list(PIPELINES) if len(path) > 1}
        raise ObservabilityError(
            f"store {store.to_config()!r} holds no records of pipeline {pipeline_name!r}; "
            f"pipelines there are {format_names(known) or 'none'}"
        )
    return PipelineObservations(store, pipeline_name)


class PipelineObservations:
    """Read-only view of one pipeline's status rows, logs and run records."""

    def __init__(self, store: Store, pipeline_name: str) -> None:
        self.store = store
        self.pipeline_name = pipeline_name
        self._scope = store.at(PIPELINES, pipeline_name)

    def __repr__(self) -> str:
        return f"PipelineObservations({self.store.to_config()!r}, {self.pipeline_name!r})"

    # ------------------------------------------------------------------ queries
    @property
    def nodes(self) -> list[str]:
        """Labels of the nodes that have status rows, logs or run records, sorted."""
        labels = {path[0] for scope in (STATUS_SCOPE, LOGS_SCOPE) for path in self._paths(scope)}
        runs = self._scope.scan(RUNS_PATH, columns=["node"])
        if runs is not None:
            labels.update(runs.column("node").to_pylist())
        return sorted(labels)

    def status(
        self,
        node: str | None = None,
        run_id: str | None = None,
        state: str | None = None,
        *,
        latest: bool = True,
        pipeline_uri: str | None = None,
        tags: Mapping[str, Any] | None = None,
        **tag_filters: Any,
    ) -> pl.DataFrame:
        """The latest state of every (node, tag values) pair, failures first.

        ``latest=True``: per node and user tag values, the rows of the latest run that touched
        them (one per packet, at its last state), so an older source version's rows do not
        show; ``latest=False`` returns every transition instead, in the order they happened.
        ``run_id`` limits the rows to one run; ``pipeline_uri`` (``<name>@<16 hex>``) to the
        runs of that version of the pipeline (the latest state is then the latest of its
        runs); ``state`` keeps the pairs whose latest state it is; tag filters
        (``subject="s1"``, or ``tags={"node": ...}`` for a tag whose name is taken by a
        parameter) keep the rows with those tag values. System-tag columns null
        in every row are left out.
        """
        wanted = self._state(state)
        frame = self._read(
            STATUS_SCOPE, node, run_id, None, {**(tags or {}), **tag_filters}, latest=latest
        )
        if frame is not None and pipeline_uri is not None:
            frame = frame.filter(pl.col(PIPELINE_URI) == pipeline_uri)
        if frame is None:
            return _empty(_STATUS_COLUMNS)
        frame = frame.sort([TIMESTAMP, SEQUENCE])
        if latest:
            frame = _latest(frame)
        if wanted is not None:
            frame = frame.filter(pl.col(STATE) == wanted)
        if latest:
            rank = pl.col(STATE).replace_strict(_RANK, default=len(_RANK), return_dtype=pl.Int8)
            frame = frame.sort([rank, pl.col(NODE), pl.col(TIMESTAMP)])
        return _friendly(frame, _STATUS_COLUMNS)

    def logs(
        self,
        node: str | None = None,
        run_id: str | None = None,
        state: str | None = None,
        *,
        pipeline_uri: str | None = None,
        tags: Mapping[str, Any] | None = None,
        **tag_filters: Any,
    ) -> pl.DataFrame:
        """Captured output of executed packets, oldest first.

        Filters: ``node`` (a label), ``run_id``, ``state`` (the packet's final state in its
        run: ``"FAILED"``, ``"SUCCESS"``, ``"SKIPPED"``, or ``"CACHED"`` when cache hits were
        logged), ``pipeline_uri`` (``<name>@<16 hex>``: the runs of that version of the
        pipeline) and tag values (``subject="s1"``, or ``tags={...}``).
        """
        wanted = self._state(state)
        frame = self._read(LOGS_SCOPE, node, run_id, wanted, {**(tags or {}), **tag_filters})
        if frame is not None and pipeline_uri is not None:
            frame = frame.filter(pl.col(PIPELINE_URI) == pipeline_uri)
        if frame is None:
            return _empty(_LOG_COLUMNS)
        ran = pl.col(SUCCESS).is_not_null()
        # Calls that printed nothing are stored with null output (see logs.py): show "".
        frame = frame.with_columns(
            pl.when(ran).then(pl.col(c).fill_null("")).otherwise(pl.col(c)).alias(c)
            for c in (STDOUT, STDERR)
        )
        return _friendly(frame.sort([TIMESTAMP, SEQUENCE]), _LOG_COLUMNS)

    def runs(self) -> pl.DataFrame:
        """The run history, newest first: one row per run with its counts and manifest
        (podline and Python versions, platform, packages, git commit; see
        ``podline.observability.manifest``).

        ``complete`` is false for a run that left no run record (it raised or was killed);
        its counts then come from the status rows, and ``unfinished`` counts the packets it
        left ``RUNNING``.
        """
        records = self._scope.scan(RUNS_PATH)
        by_records = None
        if records is not None and records.num_rows:
            by_records = (
                _with_manifest(_frame(records))
                .sort("finished_at")
                .group_by("run_id")
                .agg(
                    pl.col("pipeline_uri").first(),
                    pl.col("finished_at").max(),
                    pl.col("seconds").max(),
                    pl.col("node").n_unique().alias("nodes").cast(pl.Int64),
                    *(pl.col(c).sum().cast(pl.Int64) for c in _RUN_COUNTS),
                    # A run id given again: the manifest of its latest recording.
                    *(pl.col(c).last() for c in _MANIFEST_COLUMNS),
                )
                .with_columns(complete=pl.lit(True))
            )
        by_status = self._status_by_run()
        if by_records is None and by_status is None:
            return _empty(_RUNS_COLUMNS)
        if by_records is None:
            assert by_status is not None
            merged = by_status.with_columns(
                pl.col("status_pipeline_uri").alias("pipeline_uri"),
                pl.lit(None, pl.Datetime("us", "UTC")).alias("finished_at"),
                pl.lit(None, pl.Float64).alias("seconds"),
                pl.lit(None, pl.Int64).alias("nodes"),
                pl.lit(False).alias("complete"),
                *(pl.col(f"status_{c}").alias(c) for c in _RUN_COUNTS),
            )
        elif by_status is None:
            merged = by_records.with_columns(
                started_at=_started_from_record(),
                unfinished=pl.lit(None, pl.Int64),
            )
        else:
            merged = by_records.join(by_status, on="run_id", how="full", coalesce=True)
            merged = merged.with_columns(
                pl.col("complete").fill_null(False),
                pl.coalesce("started_at", _started_from_record()).alias("started_at"),
                pl.coalesce("pipeline_uri", "status_pipeline_uri").alias("pipeline_uri"),
                *(pl.coalesce(c, f"status_{c}").alias(c) for c in _RUN_COUNTS),
            )
        merged = _with_manifest(merged)
        merged = merged.with_columns(pl.col("finished_at").cast(pl.Datetime("us", "UTC")))
        return merged.select(
            pl.col(name).cast(dtype) for name, dtype in _RUNS_COLUMNS.items()
        ).sort("started_at", descending=True, nulls_last=True)

    def node_counts(
        self, run_id: str | None = None, *, pipeline_uri: str | None = None
    ) -> pl.DataFrame:
        """Per node, what one recorded run did: ``node``, ``run_id``, ``pipeline_uri``,
        ``computed``, ``cached``, ``skipped``, ``failed``, ``rows``, ``finished_at``, sorted by
        node.

        ``run_id=None``: the latest run that left a run record (of ``pipeline_uri`` only,
        when given, e.g. the pipeline's current graph). A run id given to several runs: its
        latest recording. A run that left no record (it raised or was killed) has no rows
        here; ``runs()`` shows it.
        """
        records = self._scope.scan(RUNS_PATH, columns=list(_NODE_COUNT_COLUMNS))
        if records is None or not records.num_rows:
            return _empty(_NODE_COUNT_COLUMNS)
        frame = pl.from_arrow(records)
        assert isinstance(frame, pl.DataFrame)
        if pipeline_uri is not None:
            frame = frame.filter(pl.col("pipeline_uri") == pipeline_uri)
        frame = frame.sort("finished_at")
        if run_id is None:
            if not frame.height:
                return _empty(_NODE_COUNT_COLUMNS)
            run_id = frame["run_id"][-1]
        frame = frame.filter(pl.col("run_id") == run_id)
        latest = frame.unique(subset="node", keep="last", maintain_order=True)
        return latest.select(
            pl.col(name).cast(dtype) for name, dtype in _NODE_COUNT_COLUMNS.items()
        ).sort("node")

    # ------------------------------------------------------------------ loading
    def _paths(self, scope: str) -> list[tuple[str, ...]]:
        return [p for p in self._scope.at(scope).list() if not is_markers_path(p)]

    def _state(self, state: str | None) -> str | None:
        if state is None:
            return None
        try:
            return State(str(state).upper()).value
        except ValueError:
            raise ObservabilityError(
                f"unknown state {state!r}; states are {format_names(s.value for s in State)}"
            ) from None

    def _read(
        self,
        scope: str,
        node: str | None,
        run_id: str | None,
        state: str | None,
        tag_filters: Mapping[str, Any],
        *,
        latest: bool = False,
    ) -> pl.DataFrame | None:
        """Every row of ``scope`` matching the filters, stored column names, or None."""
        paths = self._paths(scope)
        if node is not None:
            nodes = self.nodes
            if node not in nodes:
                raise ObservabilityError(
                    f"pipeline {self.pipeline_name!r} has no node {node!r}; "
                    f"nodes are {format_names(nodes) or 'none'}"
                )
            paths = [p for p in paths if p[0] == node]
        where: dict[str, Any] = {}
        if run_id is not None:
            where[RUN_ID] = run_id
        if state is not None:
            where[STATE] = state
        # A compact status row stands for rows of another run (``compact.expand``): status
        # rows are filtered once expanded.
        expanding = scope == STATUS_SCOPE
        frames: list[pl.DataFrame] = []
        # Every tag column's types in the tables read, rows filtered out or not: whether a
        # column is shown as text (``_concat``) depends on the nodes read, not on the rows.
        tag_types: dict[str, set[pl.DataType]] = {}
        tables: Iterable[tuple[tuple[str, ...], pa.Table | None]]
        if expanding:
            tables = self._status_tables(node)
        else:
            at = self._scope.at(scope)
            tables = ((path, at.scan(path, where=where or None)) for path in paths)
        for _, table in tables:
            if table is None:
                continue
            frame = _frame(table)
            for column, dtype in frame.schema.items():
                if not is_fixed(column):
                    tag_types.setdefault(column, set()).add(dtype)
            if not frame.height:
                continue
            if expanding:
                # (A run's own rows only, when asked for one: every compact row of it.)
                newest = latest and run_id is None
                frame = expand(frame, latest=newest).filter(
                    *(pl.col(c) == v for c, v in where.items())
                )
            kept = _filter_tags(frame, tag_filters)
            if kept is not None and kept.height:
                frames.append(kept)
        tag_names = {friendly_name(c) for c in tag_types}
        unknown = set(tag_filters) - {_tag_name(n) for n in tag_names}
        if unknown and tag_names:
            raise ObservabilityError(
                f"no tag column(s) {format_names(unknown)} in the {scope} of pipeline "
                f"{self.pipeline_name!r}; tag columns are {format_names(tag_names)}"
            )
        if not frames:
            return None
        return _concat(frames, tag_types)

    def _status_tables(self, node: str | None) -> Iterator[tuple[tuple[str, ...], pa.Table | None]]:
        """Every status table (of ``node``'s label only, when given), read one at a time,
        with the compact rows the run records carry for it (``carried.py``) as its own."""
        at = self._scope.at(STATUS_SCOPE)
        records = self._scope.scan(RUNS_PATH)
        carried = {} if records is None else status_rows(records)
        for path in dict.fromkeys([*self._paths(STATUS_SCOPE), *carried]):
            if node is not None and path[0] != node:
                continue
            table = at.scan(path)
            extra = carried.get(path)
            if extra is not None:
                table = extra if table is None else _concat_tables(table, extra)
            yield path, table

    def _status_by_run(self) -> pl.DataFrame | None:
        """Per run: its first status time, URI, and how many packets ended in each state
        (``unfinished``: still RUNNING when the run's last row was written)."""
        frames: list[pl.DataFrame] = []
        for _, table in self._status_tables(None):
            if table is None or not table.num_rows:
                continue
            frame = _frame(table).sort([TIMESTAMP, SEQUENCE])
            if PACKETS not in frame.columns:
                frame = frame.with_columns(pl.lit(None, pl.Int64).alias(PACKETS))
            # Latest row per packet and run; tags are the node table's non-fixed columns. A
            # compact row (no tags) stands for ``PACKETS`` packets (see ``compact.py``).
            keys = [RUN_ID, NODE, PACKETS, *(c for c in frame.columns if not is_fixed(c))]
            latest = frame.unique(subset=keys, keep="last", maintain_order=True)
            first = frame.group_by(RUN_ID).agg(
                pl.col(STARTED_AT).min().alias("first_started"),
                pl.col(TIMESTAMP).min().alias("first_at"),
            )
            frames.append(
                latest.select(RUN_ID, PIPELINE_URI, STATE, packet_weight().alias(_WEIGHT)).join(
                    first, on=RUN_ID, how="left"
                )
            )
        if not frames:
            return None

        def count(state: State) -> pl.Expr:
            return pl.col(_WEIGHT).filter(pl.col(STATE) == state.value).sum().cast(pl.Int64)

        return (
            pl.concat(frames, how="vertical_relaxed")
            .group_by(RUN_ID)
            .agg(
                pl.min_horizontal(pl.col("first_started").min(), pl.col("first_at").min()).alias(
                    "started_at"
                ),
                pl.col(PIPELINE_URI).first().alias("status_pipeline_uri"),
                count(State.RUNNING).alias("unfinished"),
                count(State.SUCCESS).alias("status_computed"),
                count(State.CACHED).alias("status_cached"),
                count(State.SKIPPED).alias("status_skipped"),
                count(State.FAILED).alias("status_failed"),
            )
            .rename({RUN_ID: "run_id"})
        )


# The manifest's columns as polars types (``MANIFEST_SCHEMA`` is Arrow; a test keeps the two
# in step). Converting an Arrow table here would start polars' Arrow machinery at import.
_MANIFEST_COLUMNS: dict[str, pl.DataType] = {
    "podline_version": pl.String(),
    "hash_scheme": pl.String(),
    "python_version": pl.String(),
    "python_implementation": pl.String(),
    "platform": pl.String(),
    "packages": pl.List(pl.String()),
    "git_commit": pl.String(),
    "git_dirty": pl.Boolean(),
}
_RUNS_COLUMNS: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "started_at": pl.Datetime("us", "UTC"),
    "finished_at": pl.Datetime("us", "UTC"),
    "seconds": pl.Float64(),
    "complete": pl.Boolean(),
    "computed": pl.Int64(),
    "cached": pl.Int64(),
    "skipped": pl.Int64(),
    "failed": pl.Int64(),
    "unfinished": pl.Int64(),
    "nodes": pl.Int64(),
    "pipeline_uri": pl.String(),
    **_MANIFEST_COLUMNS,
}

# What ``node_counts`` returns (the run records' own columns, as ``Pipeline.run`` writes them).
_NODE_COUNT_COLUMNS: dict[str, pl.DataType] = {
    "node": pl.String(),
    "run_id": pl.String(),
    "pipeline_uri": pl.String(),
    **{name: pl.Int64() for name in (*_RUN_COUNTS, "rows")},
    "finished_at": pl.Datetime("us", "UTC"),
}


def _with_manifest(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with every manifest column (null where runs recorded none: a run that did
    not finish, or one recorded before manifests existed)."""
    missing = [name for name in _MANIFEST_COLUMNS if name not in frame.columns]
    return frame.with_columns(pl.lit(None, _MANIFEST_COLUMNS[n]).alias(n) for n in missing)


def _latest(frame: pl.DataFrame) -> pl.DataFrame:
    """Per (node, user tag values): the rows of the latest run that touched it, each packet's
    last one. Rows of earlier runs go, those of an older source version included (same user
    tags, other system tags); packets that share user tags within that run stay apart."""
    tags = [c for c in frame.columns if not is_fixed(c)]
    user = [c for c in tags if not is_system_tag(c)]
    newest_run = pl.col(RUN_ID).last().over([NODE, *user])
    frame = frame.filter(pl.col(RUN_ID) == newest_run)
    return frame.unique(subset=[NODE, *tags], keep="last", maintain_order=True)


def _concat_tables(stored: pa.Table, carried: pa.Table) -> pa.Table:
    """A status table's rows, then the compact rows carried for it, typed as the table's
    columns (those they lack null), as they were when such rows were stored in it."""
    n = carried.num_rows
    columns = {
        f.name: carried.column(f.name).cast(f.type)
        if f.name in carried.column_names
        else pa.nulls(n, f.type)
        for f in stored.schema
    }
    columns.update(
        {name: carried.column(name) for name in carried.column_names if name not in columns}
    )
    return pa.concat_tables([stored, pa.table(columns)], promote_options="default")


def _started_from_record() -> pl.Expr:
    micros = (pl.col("seconds") * 1e6).cast(pl.Int64)
    return (pl.col("finished_at") - pl.duration(microseconds=micros)).cast(pl.Datetime("us", "UTC"))


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table.drop_columns([RECORD_ID]))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _tag_name(friendly: str) -> str:
    """The name a tag filter uses for a tag column's friendly name."""
    return friendly.removeprefix("tag:") if friendly.startswith("tag:") else friendly


def _filter_tags(frame: pl.DataFrame, filters: Mapping[str, Any]) -> pl.DataFrame | None:
    """Rows whose tags equal the filters; None when the frame lacks a filtered tag."""
    if not filters:
        return frame
    by_tag = {_tag_name(friendly_name(c)): c for c in frame.columns if not is_fixed(c)}
    conditions = []
    for name, value in filters.items():
        column = by_tag.get(name)
        if column is None:
            return None
        conditions.append(_equals(frame[column], value))
    return frame.filter(*conditions)


def _equals(column: pl.Series, value: Any) -> pl.Series | pl.Expr:
    """Where tag ``column`` equals ``value``. Text compares with a non-text column's text
    (``as_text``: what ``status()`` shows where nodes disagree on the column's type, and how
    ``podline status --tag`` compares); a list or struct equals only a list or mapping, so a
    scalar keeps a node's scalar rows and none of a batched node's list rows, without failing."""
    if value is None:
        return column.is_null()
    if isinstance(value, str):
        return as_text(column) == value
    if isinstance(value, tuple):
        value = list(value)
    if column.dtype.is_nested() != isinstance(value, list | Mapping):
        return pl.lit(False)
    return pl.col(column.name) == value


def _concat(
    frames: Sequence[pl.DataFrame], tag_types: Mapping[str, set[pl.DataType]]
) -> pl.DataFrame:
    """The frames' rows in one frame. A tag column of more than one type in ``tag_types`` (an
    int in one node, a list of ints in a node after a batch) becomes text in every row
    (``value_text.as_text``): no common type holds both without losing values, and each row's
    value stays whole and readable. Numbers of different types combine as polars combines them
    (an int and a float column: float); a column null throughout a table has no type."""
    mixed = []
    for column, found in tag_types.items():
        typed = found - {pl.Null()}
        if len(typed) > 1 and not all(dtype.is_numeric() for dtype in typed):
            mixed.append(column)
    if mixed:
        frames = [f.with_columns(as_text(f[c]) for c in mixed if c in f.columns) for f in frames]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def _friendly(frame: pl.DataFrame, fixed: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Rename to friendly names and order: node, state, user tags, fixed, system tags.

    System-tag columns null in every row (another node's, an older graph's) are left out; a
    fixed column no row has (written before podline recorded it: ``attempts`` and ``reason``
    in stores of podline before 2026-12-06) is there, null, so every frame has them all."""
    if frame.height:
        frame = frame.drop(
            c for c in frame.columns if is_system_tag(c) and frame[c].null_count() == frame.height
        )
    tags = [c for c in frame.columns if not is_fixed(c)]
    user = [friendly_name(c) for c in tags if not is_system_tag(c)]
    system = [friendly_name(c) for c in tags if is_system_tag(c)]
    frame = frame.drop(SEQUENCE).rename(
        {c: friendly_name(c) for c in frame.columns if c != SEQUENCE}
    )
    frame = frame.with_columns(
        pl.lit(None, dtype).alias(c) for c, dtype in fixed.items() if c not in frame.columns
    )
    rest = [c for c in fixed if c not in _LEADING]
    return frame.select(*_LEADING, *user, *rest, *system)


def _empty(columns: Mapping[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(schema=dict(columns))
