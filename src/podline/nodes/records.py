"""Pipeline provenance records of a function node: which input row led to which result.

One record per input entry, keyed by its *entry id*: the hash of the whole input row, its tag,
system tags and packet values. Same tag, system tags and packet content: same id; any change in
provenance or content: a new id. A record holds the tag and system tags, the input packet hash,
the result's record id in the function memo, and whether the first run that saw the entry
computed it, found it in the memo, or skipped it. Records are written once per entry id, like
every store record, so repeated runs add nothing. The input packet hash is stored only where it
differs from the result's record id (the call's argument hash): null means "the same" (records
written before that hold both).

Joined with the memo, records give back a node's output without running anything: that is how a
node serves reads, and ``get_cached_results``, in a fresh process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import meta_column, source_info_column
from podline.conversion import with_type
from podline.functions import PacketFunction, ResultCache
from podline.functions.memo import SKIPPED_COLUMN, call_ids, tokens_of_calls
from podline.hashing import row_hash_strings
from podline.hashing.packed import PACKED, call_hex, pack, packs_of
from podline.matching import Positions, index_in, is_in, take_rows, take_table_rows
from podline.stores import RECORD_ID, Store
from podline.streams import TableStream

__all__ = [
    "INPUT_HASH",
    "RESULT_ID",
    "STATUS",
    "Found",
    "KnownEntries",
    "ProvenanceRecords",
    "skipped_of",
    "with_tokens",
]

INPUT_HASH = meta_column("input_hash")
RESULT_ID = meta_column("result_id")
STATUS = meta_column("status")
_PATH = ("records",)
_KNOWN_READS = threading.Lock()
#: The columns of a record that a lookup reads.
_LOOKED_UP = [RECORD_ID, RESULT_ID, STATUS]


@dataclass
class Found:
    """What ``ProvenanceRecords.find`` knows about a batch of entries.

    ``found[i]``: entry ``i`` needs no computing; ``skipped[i]``: it was skipped;
    ``outputs``: the output columns (and source info) of the found, not skipped entries, in
    entry order.
    """

    found: np.ndarray
    skipped: np.ndarray
    outputs: pa.Table

    def slice(self, start: int, length: int) -> Found:
        """What is known about entries ``start`` to ``start + length``."""
        produced = self.found & ~self.skipped
        first = int(np.count_nonzero(produced[:start]))
        rows = int(np.count_nonzero(produced[start : start + length]))
        return Found(
            self.found[start : start + length],
            self.skipped[start : start + length],
            self.outputs.slice(first, rows),
        )


@dataclass
class KnownEntries:
    """The entries a node's records know, in memory: ``produced`` ids with their ``outputs``
    (row for row) and ``skipped`` ids. ``find`` answers like ``ProvenanceRecords.find``.

    Chunks usually arrive in the order the records were written (a re-run of the same input):
    each ``find`` first checks whether its ids are the produced ids that follow the previous
    chunk's, which costs a comparison instead of a hash lookup, and serves the outputs as a
    slice instead of a copy.

    The ids are strings, or all packed (``hashing.packed``): then a chunk is checked against
    the packed ids that follow by their hex (``packs_of``), and packed to be looked up when
    it is out of order; an id that does not pack is one the records do not hold."""

    produced: pa.Array | pa.ChunkedArray
    outputs: pa.Table
    skipped: pa.Array | pa.ChunkedArray
    #: With ``calls`` (the result ids of the ``outputs`` rows, which then hold no source
    #: info), the function whose tokens are made for the rows each ``find`` serves.
    function: PacketFunction | None = None
    calls: pa.Array | pa.ChunkedArray | None = None
    #: Where the next chunk's ids would start among ``produced`` if the order holds.
    cursor: int = 0
    #: Chunks out of order so far; from the second on, ``produced`` is looked up through
    #: ``_positions``, hashed and sorted once, instead of hashed whole per chunk.
    _misses: int = 0
    _positions: Positions | None = None

    def find(self, entry_ids: pa.Array) -> Found:
        n, start = len(entry_ids), self.cursor
        if n and start + n <= len(self.produced):
            following = self.produced.slice(start, n)
            if following.type == PACKED:
                aligned = packs_of(following, entry_ids)
            else:
                aligned = _chunked(entry_ids).equals(_chunked(following))
            if aligned:
                # Every id has an output (produced wins over skipped, as below).
                self.cursor = start + n
                none = np.zeros(n, dtype=bool)
                return Found(~none, none, self._served(self.outputs.slice(start, n), start, n))
        if self.produced.type == PACKED:
            entry_ids = pack(entry_ids)
        if self._positions is None:
            self._misses += 1
            if self._misses > 1:  # a second chunk out of order: more will come
                self._positions = Positions(self.produced)
        if self._positions is None:
            position = index_in(entry_ids, self.produced)
        else:
            position = self._positions.positions(entry_ids)
        has_output = position >= 0
        skipped = is_in(entry_ids, self.skipped) & ~has_output
        rows = position[has_output]
        return Found(has_output | skipped, skipped, self._served(_rows(self.outputs, rows), rows))

    def _served(
        self, outputs: pa.Table, rows: np.ndarray | int, length: int | None = None
    ) -> pa.Table:
        """``outputs`` (rows ``rows`` of ``self.outputs``, or the slice of ``length`` from
        ``rows``) with their source info."""
        if self.calls is None or self.function is None:
            return outputs
        if isinstance(rows, int):
            calls = self.calls.slice(rows, length)
        else:
            calls = take_rows(self.calls, rows)
        return with_tokens(self.function, outputs, calls)


def with_tokens(
    function: PacketFunction, outputs: pa.Table, calls: pa.Array | pa.ChunkedArray
) -> pa.Table:
    """``outputs`` with the source-info tokens of ``function``'s ``calls`` (the rows' result
    ids, packed or not) appended."""
    calls = call_hex(calls) if calls.type == PACKED else call_ids(calls)
    for key, tokens in tokens_of_calls(function, calls).items():
        outputs = outputs.append_column(
            pa.field(source_info_column(key), pa.large_string()), tokens
        )
    return outputs


class ProvenanceRecords:
    """The records of one function node, in its scope of the pipeline's store."""

    def __init__(
        self,
        store: Store,
        function: PacketFunction,
        result_store: Store | None,
        *,
        memo: ResultCache | None = None,
    ) -> None:
        self.store = store
        self.function = function
        if memo is None and result_store is not None:
            memo = ResultCache(result_store, function)
        #: Where results are looked up (given: one an execution shares, see FunctionNode).
        self.memo = memo

    @staticmethod
    def entry_ids(table: pa.Table, columns: Sequence[str]) -> pa.Array:
        """The entry id of every row: one hash over its tags, system tags and packet values
        (``columns``), encoded as packet hashes encode them. The same as hashing the tags
        with the packet's content hash, in one pass instead of two."""
        return row_hash_strings(table, list(columns))

    def write(
        self,
        tags: pa.Table,
        *,
        entry_ids: pa.Array,
        packet_hashes: pa.Array,
        result_ids: pa.Array,
        statuses: pa.Array,
    ) -> None:
        """Record these rows, given their tags and system tags (rows already recorded are
        left as they are)."""
        records = tags
        # The input packet's hash is almost always the call's argument hash (parameters named
        # as the packet's columns): stored only where it differs, null meaning "the same".
        same = pc.equal(packet_hashes, result_ids)
        input_hashes = pc.if_else(same, pa.scalar(None, packet_hashes.type), packet_hashes)
        for name, column in (
            (RECORD_ID, entry_ids),
            (INPUT_HASH, input_hashes),
            (RESULT_ID, result_ids),
            (STATUS, statuses),
        ):
            records = records.append_column(name, column)
        if records.num_rows:
            self.store.write(_PATH, records)

    def find(self, entry_ids: pa.Array) -> Found:
        """Which of these entries this node has already handled, without computing.

        An entry counts as found when its record says it was skipped, or when the memo
        still holds its result; the rest must be run (again).
        """
        return self.found_among(entry_ids, self.store.read(_PATH, entry_ids, columns=_LOOKED_UP))

    def found_among(self, entry_ids: pa.Array, records: pa.Table | None) -> Found:
        """What ``find`` says of ``entry_ids``, given the stored records holding them, in
        their order (None: no records stored)."""
        none = np.zeros(len(entry_ids), dtype=bool)
        if self.memo is None or records is None or records.num_rows == 0:
            return Found(none, none, self.outputs_of(ResultCache.empty_for(self.function)))
        results = self.memo.lookup(records.column(RESULT_ID))
        skipped = skipped_of(records)
        position = index_in(records.column(RESULT_ID), results.column(RECORD_ID))
        usable, outputs = self._resolve(skipped, results, position)
        outputs = self.outputs_of(outputs)
        # Map back from stored records to the entries asked for (read keeps their order).
        row_of = index_in(records.column(RECORD_ID), entry_ids)
        found, was_skipped = none.copy(), none.copy()
        found[row_of[usable]] = True
        was_skipped[row_of[skipped]] = True
        return Found(found, was_skipped, outputs)

    def forget(self, where: dict[str, object]) -> int:
        """Forget the records whose tag columns equal ``where`` (every record when empty)
        and the memo's results of their calls, so a run computes them again; returns how
        many records were forgotten."""
        records = self.store.scan(_PATH, columns=[RECORD_ID, RESULT_ID], where=where or None)
        if records is None or records.num_rows == 0:
            return 0
        if self.memo is not None:
            results = pc.unique(records.column(RESULT_ID).combine_chunks())
            self.memo.delete(results.to_pylist())
        return self.store.delete(_PATH, records.column(RECORD_ID).combine_chunks())

    def record_pieces(self) -> Iterator[pa.Table]:
        """The records' ids, result ids and statuses (what ``find`` looks at), a piece at a
        time (``Store.scan_batches``)."""
        yield from self.store.scan_batches(_PATH, columns=_LOOKED_UP) or ()

    def known(self) -> KnownEntries:
        """Everything the records know, loaded at once: for callers that then ask about many
        small chunks of entries (each ``find`` reads the stored tables).

        The records and the memo are read a piece at a time (``Store.scan_batches``), and
        their ids kept packed (``hashing.packed``: 32 bytes an id instead of 77), so neither
        table is ever held whole as strings. Records holding an id that does not pack
        (written by an older scheme) are read again and kept as strings.

        One node at a time: reading a node's records and memo briefly holds several times
        what is kept, and an async run begins every node at once."""
        with _KNOWN_READS:
            return self._known()

    def _known(self) -> KnownEntries:
        read = self.store.scan_batches(_PATH, columns=_LOOKED_UP)
        if self.memo is None or read is None:
            return self._known_of_nothing()
        ids: list[pa.Array] = []
        result_ids: list[pa.Array] = []
        skipped: list[np.ndarray] = []
        for piece in read:
            skipped.append(skipped_of(piece))
            ids.extend(pack(piece.column(RECORD_ID)).chunks)
            result_ids.extend(pack(piece.column(RESULT_ID)).chunks)
        packed_ids = pa.chunked_array(ids, PACKED)
        packed_results = pa.chunked_array(result_ids, PACKED)
        if not len(packed_ids):
            return self._known_of_nothing()
        if packed_ids.null_count or packed_results.null_count:
            return self._known_as_strings()
        memo = self._memo_results(packed=True)
        return self.known_of(packed_ids, packed_results, np.concatenate(skipped), memo)

    def known_of(
        self,
        ids: pa.Array | pa.ChunkedArray,
        result_ids: pa.Array | pa.ChunkedArray,
        skipped: np.ndarray,
        memo: tuple[pa.Table, bool] | None = None,
    ) -> KnownEntries:
        """``known()`` of records already read: their packed ``ids`` and ``result_ids`` and
        which were ``skipped``; ``memo``: the memo's results and whether they hold tokens, as
        ``memo_pieces`` gives them (read here if not given)."""
        if not len(ids):
            return self._known_of_nothing()
        if memo is None:
            with _KNOWN_READS:  # (as ``known()``: the read and the join, a node at a time)
                return self.known_of(ids, result_ids, skipped, self._memo_results(packed=True))
        results, stored_tokens = memo
        return self._known_of(
            ids, result_ids, skipped=skipped, results=results, stored_tokens=stored_tokens
        )

    def _known_of_nothing(self) -> KnownEntries:
        nothing = pa.array([], pa.large_string())
        return KnownEntries(nothing, self.outputs_of(ResultCache.empty_for(self.function)), nothing)

    def _known_as_strings(self) -> KnownEntries:
        """``known`` for records whose ids do not all pack: every id kept as it is stored."""
        records = self.store.scan(_PATH, columns=_LOOKED_UP)
        assert records is not None  # (known() read them)
        results, stored_tokens = self._memo_results(packed=False)
        return self._known_of(
            records.column(RECORD_ID),
            records.column(RESULT_ID),
            skipped=skipped_of(records),
            results=results,
            stored_tokens=stored_tokens,
        )

    def _memo_results(self, *, packed: bool) -> tuple[pa.Table, bool]:
        """The memo's results, read a piece at a time (``memo_pieces``), in one table, and
        whether they hold source-info tokens."""
        pieces = list(self.memo_pieces(packed=packed))
        if not pieces:  # nothing stored: no record resolves
            none = pa.array([], PACKED if packed else pa.large_string())
            return ResultCache.empty_for(self.function).append_column(RECORD_ID, none), True
        return pa.concat_tables([piece for piece, _ in pieces]), pieces[-1][1]

    def memo_pieces(self, *, packed: bool) -> Iterator[tuple[pa.Table, bool]]:
        """The memo's results a piece at a time: the columns served and the ids
        (``RECORD_ID``, packed if ``packed``), and whether the piece holds source-info tokens
        (a memo written before tokens were made on read). A memo id that does not pack is
        null, which no packed id matches, as no canonical id equals it."""
        assert self.memo is not None  # (asked only with a memo)
        tokens = [source_info_column(k) for k in self.function.output_keys]
        outputs = list(self.function.output_schema.keys())
        for piece in self.memo.read_pieces():
            stored_tokens = any(name in piece.column_names for name in tokens)
            results = self.memo.typed(piece) if stored_tokens else piece
            ids = results.column(RECORD_ID)
            served = results.select([*outputs, *(tokens if stored_tokens else ())])
            yield served.append_column(RECORD_ID, pack(ids) if packed else ids), stored_tokens

    def _known_of(
        self,
        ids: pa.Array | pa.ChunkedArray,
        result_ids: pa.Array | pa.ChunkedArray,
        *,
        skipped: np.ndarray,
        results: pa.Table,
        stored_tokens: bool,
    ) -> KnownEntries:
        """``KnownEntries`` of records (their ``ids``, ``result_ids`` and ``skipped`` flags)
        resolved against the memo's ``results`` (the served columns and ``RECORD_ID``)."""
        position = index_in(result_ids, results.column(RECORD_ID))
        usable, outputs = self._resolve(skipped, results.drop_columns([RECORD_ID]), position)
        produced = usable & ~skipped
        mask = None if produced.all() else pa.array(produced)
        calls = None
        if not stored_tokens:  # made for each served chunk from these
            calls = result_ids if mask is None else result_ids.filter(mask)
        return KnownEntries(
            ids if mask is None else ids.filter(mask),
            self.outputs_of(outputs, tokens=stored_tokens),
            ids.filter(pa.array(skipped)),
            self.function,
            calls,
        )

    def _resolve(
        self, skipped: np.ndarray, results: pa.Table, position: np.ndarray
    ) -> tuple[np.ndarray, pa.Table]:
        """For stored records (which were ``skipped``) and the memo's ``results`` for them
        (``position``: the row of each record's result, -1 for none): which need no
        computing, and the results of the others (usable and not skipped), in record order.
        (``index_in`` answers at once when ``results`` are the records' results in their
        order, the usual case of a cached run.)"""
        resolved = position >= 0
        produced = resolved & ~skipped
        if produced.all() and np.array_equal(position, np.arange(len(results))):
            outputs = results  # every record resolved, row for row
        else:
            outputs = take_table_rows(results, position[produced])
        return skipped | resolved, outputs

    def outputs_of(self, results: pa.Table, *, tokens: bool = True) -> pa.Table:
        """Output columns and (with ``tokens``) their source info, typed by the output
        schema."""
        columns: dict[str, pa.ChunkedArray] = {}
        fields = []
        for field in self.function.output_schema.to_arrow():
            columns[field.name] = with_type(results.column(field.name), field.type)
            fields.append(field)
        for key in self.function.output_keys if tokens else ():
            info = source_info_column(key)
            columns[info] = results.column(info)
            fields.append(pa.field(info, pa.large_string()))
        return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))

    def output(
        self, tag_columns: Sequence[str], entry_ids: Sequence[str] | pa.Array | None = None
    ) -> tuple[pa.Array, TableStream] | None:
        """The stored output rows (of ``entry_ids``, or of every record) and their entry ids,
        or None if nothing usable is stored: no records, or no memo to resolve them."""
        if self.memo is None:
            return None
        records = self.store.scan(_PATH) if entry_ids is None else self.store.read(_PATH, entry_ids)
        if records is None or records.num_rows == 0:
            return None
        results = self.memo.lookup(records.column(RESULT_ID))
        position = index_in(records.column(RESULT_ID), results.column(RECORD_ID))
        ids = records.column(RECORD_ID)
        table = records.drop_columns([RECORD_ID, INPUT_HASH, RESULT_ID, STATUS])
        del records
        # Rows are taken only where some are left out, and only the columns served: a read
        # of a large node's results must not hold several copies of them.
        keys = self.function.output_keys
        served = [*keys, *(source_info_column(k) for k in keys), SKIPPED_COLUMN]
        rows = np.flatnonzero(position >= 0)
        taken = _rows(results.select(served), position[rows])
        del results
        produced = ~taken.column(SKIPPED_COLUMN).to_numpy(zero_copy_only=False)
        if not produced.all():
            rows, taken = rows[produced], taken.filter(pa.array(produced))
        if not _every(rows, table.num_rows):
            table, ids = _rows(table, rows), take_rows(ids, rows)
        for field in self.function.output_schema.to_arrow():
            table = table.append_column(field, with_type(taken.column(field.name), field.type))
        for key in keys:
            table = table.append_column(
                source_info_column(key), taken.column(source_info_column(key))
            )
        types = dict(self.function.output_schema)
        return ids, TableStream(table, tuple(tag_columns), types=types)


def skipped_of(records: pa.Table) -> np.ndarray:
    """Which records say their entry was skipped."""
    return pc.equal(records.column(STATUS), "skipped").to_numpy(zero_copy_only=False)


def _every(rows: np.ndarray, n: int) -> bool:
    """Whether ``rows`` are all ``n`` rows, in order."""
    return len(rows) == n and bool(np.array_equal(rows, np.arange(n)))


def _rows(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """The rows ``rows`` of ``table``: the table itself when that is all of them in order."""
    return table if _every(rows, table.num_rows) else take_table_rows(table, rows)


def _chunked(ids: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    return ids if isinstance(ids, pa.ChunkedArray) else pa.chunked_array([ids])
