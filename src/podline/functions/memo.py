"""The function-result memo: (function identity, input packet hash) -> stored output packet.

One store table per function identity, at ``functions/<name>/<first 16 hex of its content
hash>``; a record's id is the content hash of the call's argument packet (parameter names,
types and values). A record keeps the output values, whether the call returned ``SKIP`` (skips
are remembered too), and when it was computed. Columns are stored nullable so that a skipped
call can be recorded; reads cast them back to the declared output types.

Reads also give each output value its source-info token (so a cache hit carries the provenance
of the call that computed it). A token names the function identity, the call's argument hash
and the output column (``call_tokens``), all of which the table's path and the record id say
already, so tokens are made when read, not stored; tables written before that store them, and
a stored token is read as it is.

A function whose outputs hold files also stores each result's file fingerprints
(``output_files``): a looked-up result whose files are gone or changed is *stale*, left out
of the answer (``stale`` says why), and replaced when the call is recorded again (see
``podline.functions.output_files``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import meta_column, source_info_column, token_array
from podline.conversion import table_with_schema, with_type
from podline.functions.output_files import FILES_TYPE, holds_files, stale_results
from podline.functions.packet_function import PacketFunction
from podline.matching import IdHashes, id_hashes, index_in, take_table_rows
from podline.stores import RECORD_ID, Store

__all__ = ["SKIPPED_COLUMN", "ResultCache", "call_ids", "call_tokens", "tokens_of_calls"]

SKIPPED_COLUMN = meta_column("skipped")
COMPUTED_AT_COLUMN = meta_column("computed_at")
FILES_COLUMN = meta_column("output_files")


class ResultCache:
    """Bulk lookups and writes of one function's results in a store."""

    def __init__(self, store: Store, function: PacketFunction, *, preload: bool = False) -> None:
        self.store = store
        self.function = function
        #: With ``preload``, the first lookup reads every stored result once and later ones
        #: look there first: a node asking batch after batch would otherwise have the store
        #: read the whole table for each batch. (Results recorded since are not kept: the
        #: store answers for those.)
        self.preload = preload
        self._stored: pa.Table | None = None
        #: Whether ``read_pieces`` read every stored result. A lookup after it first rules out
        #: ids none of which are stored (by the hashes of the stored ids, ``_stored_hashes``)
        #: and asks the store for those alone instead of loading every result.
        self._read_whole = False
        self._seen: IdHashes | None = None
        self.path = ("functions", function.name, function.content_hash().short(16))
        outputs = function.output_schema.to_arrow()
        #: Whether results name files, whose fingerprints are stored and checked.
        self.files = any(holds_files(field.type) for field in outputs)
        #: Stored results not to serve (argument hash -> why: their files changed, or a
        #: recompute was asked for), replaced when their calls are recorded again.
        self.stale: dict[str, str] = {}
        #: The output files of the results recorded through this cache, and the digest of
        #: what the last of them found (by path): a result served from the store that names
        #: one of them may name another call's content now (see ``PodRun._still_served``).
        self.written: dict[str, bytes] = {}
        #: What reads return; the store holds these columns but the tokens.
        self.schema = pa.schema(
            [
                pa.field(RECORD_ID, pa.large_string(), nullable=False),
                *(field.with_nullable(True) for field in outputs),
                *(pa.field(source_info_column(k), pa.large_string()) for k in outputs.names),
                pa.field(SKIPPED_COLUMN, pa.bool_(), nullable=False),
                pa.field(COMPUTED_AT_COLUMN, pa.timestamp("us", tz="UTC"), nullable=False),
                *([pa.field(FILES_COLUMN, FILES_TYPE)] if self.files else []),
            ]
        )
        self._tokens = [source_info_column(k) for k in outputs.names]

    @staticmethod
    def empty_for(function: PacketFunction) -> pa.Table:
        """A zero-row table in the memo layout of ``function``."""
        outputs = function.output_schema.to_arrow()
        return pa.schema(
            [
                *(field.with_nullable(True) for field in outputs),
                *(pa.field(source_info_column(k), pa.large_string()) for k in outputs.names),
            ]
        ).empty_table()

    def lookup(self, input_hashes: Sequence[str] | pa.Array | pa.ChunkedArray) -> pa.Table:
        """Stored records for these input hashes (hits only, in any order), typed by
        ``self.schema``."""
        ids = _ids(input_hashes)
        if not self.preload or (
            self._stored is None
            and self._read_whole
            and not self._stored_hashes().may_hold(ids).any()
        ):
            # (Results recorded since ``read_pieces``, if any, are found by the store.)
            return self._fresh(self._typed(self.store.read(self.path, ids)))
        stored = self.load()
        position = index_in(ids, stored.column(RECORD_ID))
        if len(position) == len(stored) and np.array_equal(position, np.arange(len(stored))):
            return self._fresh(self._typed(stored))  # everything, in stored order (a re-run)
        hits = self._typed(take_table_rows(stored, position[position >= 0]))
        rest = ids.filter(pa.array(position < 0))
        if not len(rest):
            return self._fresh(hits)
        if isinstance(rest, pa.ChunkedArray):
            rest = rest.combine_chunks()
        read = self._typed(self.store.read(self.path, rest))
        return self._fresh(pa.concat_tables([hits, read]))

    def _fresh(self, found: pa.Table) -> pa.Table:
        """``found`` without the results whose files are gone or changed (kept in
        ``stale``); all of it for functions whose results name no files."""
        if not self.files or not found.num_rows:
            return found
        stale = stale_results(found.column(FILES_COLUMN), found.column(COMPUTED_AT_COLUMN))
        if not stale:
            return found
        ids = found.column(RECORD_ID)
        for row, reason in stale.items():
            self.stale[ids[row].as_py()] = reason
        keep = np.ones(found.num_rows, dtype=bool)
        keep[list(stale)] = False
        return found.filter(pa.array(keep))

    def load(self) -> pa.Table:
        """Every stored result, read once: the preloaded table ``lookup`` looks in first.
        Typed by ``self.schema``, except that its source-info tokens are only those the
        table stores (made for all rows at once, they would cost as much memory as the ids):
        ``lookup`` makes them for the rows it returns, ``typed`` for others."""
        if self._stored is None:
            self._stored = self._typed(self.store.scan(self.path), tokens=False)
        return self._stored

    def read_pieces(self) -> Iterator[pa.Table]:
        """Every stored result but stale ones, typed as ``load`` types them, a piece at a
        time as the store reads them (``Store.scan_batches``; one piece: ``load``'s copy),
        and not kept, so that the lookups that follow load every result only if one of them
        may be stored. (A fully cached run looks nothing up, and would hold every result
        twice: here, and in what it serves.)"""
        if self._stored is not None:
            yield self._fresh(self._stored)
            return
        for piece in self.store.scan_batches(self.path) or ():
            if piece.num_rows:
                yield self._fresh(self._typed(piece, tokens=False))
        self._read_whole = True

    def _stored_hashes(self) -> IdHashes:
        """The hashes of the stored results' ids, read (the id column alone, a piece at a
        time) at the first lookup that asks, rather than gathered as ``read_pieces`` read:
        a fully cached run looks nothing up after it, and held them for nothing (8 bytes a
        result, and three times that while they were sorted: 240 MB at 10M results)."""
        if self._seen is None:
            hashes = [
                id_hashes(piece.column(RECORD_ID))
                for piece in self.store.scan_batches(self.path, columns=[RECORD_ID]) or ()
            ]
            self._seen = IdHashes.of_hashes(
                np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
            )
        return self._seen

    def typed(self, results: pa.Table) -> pa.Table:
        """Rows of ``load``/``read_pieces`` with their source-info tokens (``self.schema``)."""
        return self._typed(results)

    def _typed(self, found: pa.Table | None, *, tokens: bool = True) -> pa.Table:
        if found is None or found.num_rows == 0:
            return self.schema.empty_table()
        if not tokens:
            have = set(found.column_names)
            names = [n for n in self.schema.names if n not in self._tokens or n in have]
            schema = pa.schema([self.schema.field(n) for n in names])
            return table_with_schema(found.select(names), schema)
        tokens_of: dict[str, pa.Array | pa.ChunkedArray] = {}
        made = None
        for name, key in zip(self._tokens, self.function.output_keys, strict=True):
            stored = found.column(name) if name in found.column_names else None
            if stored is not None and not stored.null_count:
                tokens_of[name] = stored
                continue
            if made is None:
                made = call_tokens(self.function, found.column(RECORD_ID))
            tokens_of[name] = made[key] if stored is None else pc.coalesce(stored, made[key])
        columns = [tokens_of[n] if n in tokens_of else found.column(n) for n in self.schema.names]
        return table_with_schema(pa.table(columns, names=self.schema.names), self.schema)

    def record(
        self,
        input_hashes: pa.Array,
        outputs: pa.Table,
        tokens: dict[str, pa.Array],
        skipped: pa.Array,
        *,
        files: pa.Array | None = None,
    ) -> pa.Table:
        """Build the records for freshly computed calls, write them, and return them.

        ``files`` holds the fingerprints of their output files (functions whose results name
        files). Stored results of the same calls are replaced when they were found stale
        (``stale``: their files changed, or a recompute was asked for)."""
        now = pa.scalar(dt.datetime.now(dt.UTC), self.schema.field(COMPUTED_AT_COLUMN).type)
        keys = self.function.output_keys
        columns = [
            input_hashes,
            *(outputs.column(k) for k in keys),
            *(tokens[k] for k in keys),
            skipped,
            pa.repeat(now, len(input_hashes)),
        ]
        if self.files:
            columns.append(files if files is not None else pa.nulls(len(input_hashes), FILES_TYPE))
        table = pa.Table.from_arrays(
            [
                with_type(column, field.type)
                for column, field in zip(columns, self.schema, strict=True)
            ],
            schema=self.schema,
        )
        if table.num_rows:
            ids = [h for h in input_hashes.to_pylist() if h in self.stale] if self.stale else []
            if ids:
                self.delete(ids)
            self.store.write(self.path, table.drop_columns(self._tokens))
        return table

    def delete(self, input_hashes: list[str]) -> int:
        """Forget the stored results of these calls (they will be computed again)."""
        for input_hash in input_hashes:
            self.stale.pop(input_hash, None)
        self._stored = None  # the preloaded copy would still hold them
        return self.store.delete(self.path, input_hashes)


def call_tokens(
    function: PacketFunction, hashes: pa.Array | pa.ChunkedArray
) -> dict[str, pa.Array | pa.ChunkedArray]:
    """Per output key, the source-info tokens of the calls of ``function`` whose argument
    hashes (``pod3:<hex>``) are ``hashes``: what a cache hit says produced each value."""
    return tokens_of_calls(function, call_ids(hashes))


def call_ids(hashes: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The part of each argument hash that names its call in a source-info token (32 of its
    69 characters: what a caller keeps until it makes the tokens)."""
    return pc.utf8_slice_codeunits(hashes, 5, 37)  # "pod3:" + 32 hex digits


def tokens_of_calls(
    function: PacketFunction, ids: pa.Array | pa.ChunkedArray
) -> dict[str, pa.Array | pa.ChunkedArray]:
    """``call_tokens`` of the calls whose ``call_ids`` are ``ids``."""
    origin = f"{function.name}@{function.content_hash().short(16)}"
    return {k: token_array("call", origin, ids, k) for k in function.output_keys}


def _ids(hashes: Sequence[str] | pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    # Chunks are kept: combining 100,000 ids copies megabytes into fresh pages, which cost
    # a cached re-run more than the lookup itself.
    if isinstance(hashes, pa.Array | pa.ChunkedArray):
        return hashes
    return pa.array(list(hashes), pa.large_string())
