"""Why a function node's row would be computed: what the store remembers of earlier versions.

A row is computed when neither its node's provenance records nor its function's memo hold a
usable result for it. ``NodeHistory.why`` looks for the reason in what earlier runs left in
the store, reading only, in this order:

1. **changed code**: the row's argument packet has a stored result under *another identity*
   of the same function (another memo table at ``functions/<name>/<identity prefix>``): the
   function changed since. The latest such result names the earlier identity, whose code
   structure (kept at the result store's ``code`` path by the run that computed) is compared with
   the current one to name the function, helper, class, constant or closure value that
   changed (``podline.functions.code_diff``). Same code but another identity: its version,
   schemas, output keys or ``depends_on`` versions changed (**changed function**). Unless a
   run of this very node (its content hash: this code on this input) recorded the row ending
   with a result: this code had one, since forgotten or deleted (**stored result missing**);
2. **changed input content**: a record of this node's label (any of its record sets: each
   content of the node's input, each version of its code has its own) holds the same user tag
   values with another input packet; the same tags with the same packet means the result was
   forgotten or deleted (**stored result missing**). Where every such record hashed its input
   under an older hash scheme (an older podline wrote it: ``pod1:...``), the input may well be
   the same: the scheme changed (**hash scheme changed**, naming both schemes), and every
   hash with it, so the result is computed once again (docs/identity.md);
3. for tag values no record holds, the status an earlier run recorded for them (when runs
   were observed): a failure (**earlier call failed**, with its error: failures are not
   stored, so the call runs again), or a result since forgotten with ``invalidate()`` or
   deleted (**stored result missing**);
4. **new input row** otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from podline.errors import StoreError
from podline.functions import PacketFunction
from podline.functions.code_diff import code_changes
from podline.functions.memo import COMPUTED_AT_COLUMN
from podline.hashing import HASH_SCHEME, ContentHash
from podline.matching import index_in
from podline.nodes.records import INPUT_HASH, RESULT_ID
from podline.observability.columns import (
    ERROR_MESSAGE,
    ERROR_TYPE,
    NODE_HASH,
    PIPELINES,
    SEQUENCE,
    STATE,
    STATUS_SCOPE,
    TIMESTAMP,
    State,
)
from podline.observability.manifest import CODE_PATH
from podline.pipeline.layout import PipelineLayout
from podline.stores import RECORD_ID, Store

__all__ = [
    "CHANGED_CODE",
    "CHANGED_FUNCTION",
    "CHANGED_INPUT",
    "EARLIER_FAILURE",
    "NEW_ROW",
    "RESULT_MISSING",
    "SCHEME_CHANGED",
    "NodeHistory",
]

CHANGED_CODE = "changed code"
CHANGED_FUNCTION = "changed function"
CHANGED_INPUT = "changed input content"
SCHEME_CHANGED = "hash scheme changed"
RESULT_MISSING = "stored result missing"
EARLIER_FAILURE = "earlier call failed"
_FORGOTTEN = "an earlier run gave it a result, since forgotten (invalidate) or deleted"
NEW_ROW = "new input row"

_ROW = "__plan_row"
_HASH = "__plan_hash"


class NodeHistory:
    """What a pipeline's stores (``layout``) remember of one function node's earlier
    versions: the record sets and status tables of the node's ``label`` in the pipeline's
    store, the function's memo and code records in the result store (see the module docs)."""

    def __init__(
        self, layout: PipelineLayout, label: str, function: PacketFunction, node_hash: str
    ) -> None:
        self.records = layout.store.at(PIPELINES, layout.name, "nodes", label)
        self.status = layout.store.at(PIPELINES, layout.name, STATUS_SCOPE, label)
        #: The node's content hash, as its runs' status rows name it.
        self.node_hash = node_hash
        self.results = layout.results
        self.code = layout.result_store
        self.function = function

    def why(
        self, tags: pa.Table, packet_hashes: pa.Array, argument_hashes: pa.Array
    ) -> tuple[np.ndarray, list[tuple[str, str]]]:
        """Why each row (its user tag values, input packet hash and argument hash) would be
        computed: per row an index into the returned (reason, detail) pairs."""
        reasons = [(NEW_ROW, "")]
        codes = np.zeros(len(argument_hashes), dtype=np.int64)
        owner, prefixes = self._earlier_identity(argument_hashes)
        elsewhere = np.flatnonzero(owner >= 0)
        if len(elsewhere) and tags.num_columns:
            ended = self._ended_here(tags.take(pa.array(elsewhere, pa.int64())))
            codes[elsewhere[ended]] = len(reasons)
            owner[elsewhere[ended]] = -2  # explained: neither changed code nor the rest
            reasons.append((RESULT_MISSING, _FORGOTTEN))
        for index, prefix in enumerate(prefixes):
            codes[owner == index] = len(reasons)
            reasons.append(_describe_change(self.function, self._code_records.get(prefix)))
        rest = np.flatnonzero(owner == -1)
        if len(rest) and tags.num_columns:
            picked = pa.array(rest, pa.int64())
            same, older = self._earlier_content(tags.take(picked), packet_hashes.take(picked))
            codes[rest[same == 0]] = len(reasons)
            codes[rest[same == 1]] = len(reasons) + 1
            codes[rest[same == 2]] = len(reasons) + 2
            reasons += [(CHANGED_INPUT, ""), (RESULT_MISSING, ""), _scheme_change(older)]
            unknown = rest[same < 0]
            if len(unknown):
                found = self._earlier_status(tags.take(pa.array(unknown, pa.int64())))
                for row, pair in zip(unknown.tolist(), found, strict=True):
                    if pair is not None:
                        codes[row] = len(reasons)
                        reasons.append(pair)
        return codes, reasons

    # ------------------------------------------------------------------ code
    def _earlier_identity(self, argument_hashes: pa.Array) -> tuple[np.ndarray, list[str]]:
        """Per argument hash, the function identity (an index into the returned prefixes;
        -1: none) holding its latest stored result among the identities other than the
        current one."""
        name, current = self.function.name, self.function.content_hash().short(16)
        latest = np.full(len(argument_hashes), np.iinfo(np.int64).min, dtype=np.int64)
        owner = np.full(len(argument_hashes), -1, dtype=np.int64)
        prefixes: list[str] = []
        for path in self.results.list(("functions", name)):
            if len(path) != 3 or path[2] == current:
                continue
            columns = [RECORD_ID, COMPUTED_AT_COLUMN]
            found = self.results.read(path, argument_hashes, columns=columns)
            if found is None or not found.num_rows:
                continue
            position = index_in(argument_hashes, found.column(RECORD_ID))
            when = found.column(COMPUTED_AT_COLUMN).cast(pa.int64()).to_numpy()
            times = np.where(position >= 0, when[np.maximum(position, 0)], latest)
            owner[times > latest] = len(prefixes)
            prefixes.append(path[2])
            latest = np.maximum(latest, times)
        return owner, prefixes

    @cached_property
    def _code_records(self) -> dict[str, Mapping[str, Any]]:
        """The stored code records, by the 16-hex prefix of their function identity."""
        table = self.code.scan(CODE_PATH)
        if table is None:
            return {}
        return {ContentHash.parse(row[RECORD_ID]).short(16): row for row in table.to_pylist()}

    # ------------------------------------------------------------------ input content
    def _earlier_content(
        self, tags: pa.Table, packet_hashes: pa.Array
    ) -> tuple[np.ndarray, list[str]]:
        """Per row: 1 if a record of the label holds its tag values with the same input
        packet, 0 if only with others, 2 if only with input hashes of an older hash scheme,
        -1 if none holds them; and the older schemes those rows' records were hashed under."""
        none = np.full(tags.num_rows, -1, dtype=np.int8)
        names = tags.column_names
        columns = [*names, INPUT_HASH, RESULT_ID]
        frames = _frames(self.records, columns, lambda path: path[-1] == "records")
        if not frames:
            return none, []
        # A null input hash is the result id's (see ``podline.nodes.records``).
        frames = [
            f.with_columns(pl.coalesce(INPUT_HASH, RESULT_ID).alias(INPUT_HASH)) for f in frames
        ]
        mine = _frame(tags.append_column(_HASH, packet_hashes))
        # Every stored hash starts with its scheme id (``pod3:<hex>``).
        scheme = pl.col(INPUT_HASH).str.split_exact(":", 1).struct.field("field_0")
        try:
            earlier = pl.concat(frames, how="vertical_relaxed")
            matched = (
                mine.with_row_index(_ROW)
                .join(earlier, on=names, how="inner")
                .group_by(_ROW)
                .agg(
                    (pl.col(INPUT_HASH) == pl.col(_HASH)).any().alias("same"),
                    (scheme != HASH_SCHEME).all().alias("older"),
                    scheme.unique().alias("schemes"),
                )
            )
        except pl.exceptions.PolarsError:  # tag types changed since: not the same rows
            return none, []
        rows = matched[_ROW].to_numpy()
        same = matched["same"].to_numpy()
        older = matched["older"].to_numpy() & ~same
        none[rows] = np.where(older, 2, same.astype(np.int8))
        schemes = matched.filter(pl.col("older"))["schemes"].explode().unique().sort()
        return none, schemes.to_list()

    # ------------------------------------------------------------------ status
    def _ended_here(self, tags: pa.Table) -> np.ndarray:
        """Per row: whether a run of this node (its content hash) recorded its tag values
        ending with a result (computed or served, not failed)."""
        names = tags.column_names
        frames = _frames(self.status, [*names, STATE, NODE_HASH], lambda path: True)
        if not frames:
            return np.zeros(tags.num_rows, dtype=bool)
        try:
            ended = pl.concat(frames, how="vertical_relaxed").filter(
                (pl.col(NODE_HASH) == self.node_hash)
                & ~pl.col(STATE).is_in([State.RUNNING, State.FAILED])
            )
            rows = _frame(tags).with_row_index(_ROW).join(ended, on=names, how="semi")
        except pl.exceptions.PolarsError:  # tag types changed since: not the same rows
            return np.zeros(tags.num_rows, dtype=bool)
        found = np.zeros(tags.num_rows, dtype=bool)
        found[rows[_ROW].to_numpy()] = True
        return found

    def _earlier_status(self, tags: pa.Table) -> list[tuple[str, str] | None]:
        """Per row: what the latest status recorded for its tag values says (an earlier
        failure, or a result since forgotten), None where no run recorded them."""
        names = tags.column_names
        columns = [*names, STATE, TIMESTAMP, SEQUENCE, ERROR_TYPE, ERROR_MESSAGE]
        frames = _frames(self.status, columns, lambda path: True)
        if not frames:
            return [None] * tags.num_rows
        try:
            latest = (
                pl.concat(frames, how="vertical_relaxed")
                .filter(pl.col(STATE) != State.RUNNING)
                .sort(TIMESTAMP, SEQUENCE)
                .group_by(names, maintain_order=True)
                .last()
            )
            mine = _frame(tags).with_row_index(_ROW).join(latest, on=names, how="inner")
        except pl.exceptions.PolarsError:  # tag types changed since: not the same rows
            return [None] * tags.num_rows
        found: list[tuple[str, str] | None] = [None] * tags.num_rows
        for row in mine.iter_rows(named=True):
            if row[STATE] == State.FAILED:
                error = f"{row[ERROR_TYPE] or 'error'}: {row[ERROR_MESSAGE] or ''}".rstrip(": ")
                found[row[_ROW]] = (EARLIER_FAILURE, error)
            else:
                found[row[_ROW]] = (RESULT_MISSING, _FORGOTTEN)
        return found


def _frames(
    store: Store, columns: list[str], keep: Callable[[tuple[str, ...]], bool]
) -> list[pl.DataFrame]:
    """``columns`` of every non-empty table of ``store`` whose path ``keep`` accepts; tables
    without them (an earlier version with other tag columns: not the same rows) are left out."""
    frames: list[pl.DataFrame] = []
    for path in store.list():
        if not keep(path):
            continue
        try:
            stored = store.scan(path, columns=columns)
        except StoreError:
            continue
        if stored is not None and stored.num_rows:
            frames.append(_frame(stored))
    return frames


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _scheme_change(older: list[str]) -> tuple[str, str]:
    """(reason, detail) of rows whose records an older podline hashed under ``older``."""
    return SCHEME_CHANGED, (
        f"stored by an older podline under hash scheme {', '.join(older) or '(unknown)'}; "
        f"this podline hashes with {HASH_SCHEME}, so the result is computed once again and "
        "stored beside the old one (docs/identity.md)"
    )


def _describe_change(function: PacketFunction, record: Mapping[str, Any] | None) -> tuple[str, str]:
    """(reason, detail) of the change from the function version ``record`` (a stored code
    record; None: none was kept) to ``function``."""
    name = function.name
    if record is None:
        return CHANGED_CODE, f"function `{name}` changed (no code record of its earlier version)"
    code = function.code
    if code is not None and record.get("structure"):
        changes = code_changes(json.loads(record["structure"]), code.structure)
        if changes:
            return CHANGED_CODE, "; ".join(changes)
    elif (code is None) != (record.get("code_hash") is None):
        return CHANGED_FUNCTION, f"function `{name}`: identity mode changed (code or version)"
    before = json.loads(record.get("depends_on") or "{}")
    after = function.dependencies
    if before != after:
        moved = [
            f"{dist} {before.get(dist, '(none)')} -> {after.get(dist, '(none)')}"
            for dist in sorted(before.keys() | after.keys())
            if before.get(dist) != after.get(dist)
        ]
        return CHANGED_FUNCTION, f"depends_on versions changed: {', '.join(moved)}"
    return CHANGED_FUNCTION, f"function `{name}`: version, schemas or output keys changed"
