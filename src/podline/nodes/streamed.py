"""Finding a node's input among its records as the input arrives, in bounded memory.

``ProvenanceRecords.known`` holds every id and result a node's records know, about 70 bytes a
row for as long as the node runs. But a cached re-run asks for its records in about the order
they were written, and so does reading a node's stored results back. ``StreamedEntries``
answers ``find`` as ``KnownEntries`` does, reading the records and the memo a piece at a time
(``Store.scan_batches``), each in a background thread a few pieces ahead, and letting a piece
go once every row of it was served:

- A chunk's entry ids are found among the pieces read in runs of consecutive rows: the first
  id of a run is searched for (where the last run ended first), the rest compared in bulk.
  The found records' result ids are found among the memo's pieces the same way.
- Rows need not come in order. Compaction moves rows (delta-rs merges a table's newest files
  first, so a merged file holds its rows about newest first), and the memo and the records are
  merged apart. A row asked for that was not read yet is read ahead for, up to
  ``HELD_ROWS`` rows held, which bounds the memory whatever the table's size.
- Rows may be asked for again: an input may repeat a row, and records often share a result.
  Pieces already served are kept, the newest ``KEPT_ROWS`` rows of them.
- Anything else hands this and every later chunk over to ``KnownEntries``: an id not found
  within reach (an input that changed, a result no longer stored, a row asked for again after
  its piece was let go), ids that do not pack, a memo mixing pieces with and without stored
  source-info tokens. If nothing was let go yet, that is built from what was read (the
  tables are read once, as before), else from the tables read again. The answers are
  ``KnownEntries``'s either way; only what is held differs.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa

from podline.functions import ResultCache
from podline.hashing.packed import PACKED, digest_words, pack, packs_of
from podline.nodes.records import (
    RESULT_ID,
    Found,
    KnownEntries,
    ProvenanceRecords,
    skipped_of,
    with_tokens,
)
from podline.stores import RECORD_ID

__all__ = ["HELD_ROWS", "StreamedEntries"]

#: The most rows a lookup holds of a table read ahead of what it served: beyond that, rows
#: are too far out of order to stream, and ``KnownEntries`` answers instead. podline's own
#: compaction keeps write order (local tables); delta-rs's (object stores) writes files of up
#: to ``compact_bytes`` (64 MiB by default, about 2 million memo rows of one integer output)
#: holding their rows about newest first: a re-run of a 10M-row store so compacted read up
#: to 2.8 million rows ahead.
HELD_ROWS = 1 << 22
#: The most rows kept of pieces already served, for rows asked for again.
KEPT_ROWS = 1 << 16
#: Pieces read ahead of the lookups, per table.
_AHEAD = 2
_SKIPPED = "skipped"
_NONE = np.zeros(0, dtype=bool)
_T = TypeVar("_T")


class _End:
    """The end of a read-ahead, or the error that ended it."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class ReadAhead(Generic[_T]):
    """The items of ``items()``, made in a background thread up to ``depth`` ahead of
    ``next()``, so that reads which release the GIL overlap with the caller's work. An error
    raised by the items is raised by ``next()``, in the caller's thread. The thread stops at
    ``close()``, or once this object is collected."""

    def __init__(self, items: Callable[[], Iterator[_T]], *, depth: int, name: str) -> None:
        self._queue: queue.Queue[_T | _End] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._ended = False
        weakref.finalize(self, self._stop.set)
        threading.Thread(
            target=_produce, args=(items, self._queue, self._stop), name=name, daemon=True
        ).start()

    def next(self) -> _T | None:
        """The next item, None after the last."""
        if self._ended:
            return None
        item = self._queue.get()
        if isinstance(item, _End):
            self._ended = True
            if item.error is not None:
                raise item.error
            return None
        return item

    def close(self) -> None:
        """Stop reading ahead."""
        self._ended = True
        self._stop.set()


def _produce(
    items: Callable[[], Iterator[_T]], into: queue.Queue[_T | _End], stop: threading.Event
) -> None:
    # The thread holds the queue and the event, not the ReadAhead: dropping that stops it.
    def put(item: _T | _End) -> bool:
        while not stop.is_set():
            try:
                into.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for item in items():
            if not put(item):
                return
    except BaseException as exc:  # raised by next(), in the reader's thread
        put(_End(exc))
        return
    put(_End())


class _Piece:
    """A piece of a table read ahead: its rows, their keys (``digest_words`` of their ids),
    and which were served."""

    __slots__ = ("_order", "_sorted", "ids", "left", "rows", "served", "words")

    def __init__(self, rows: pa.Table, ids: pa.Array) -> None:
        self.rows = rows
        self.ids = ids
        self.words = digest_words(ids)
        self.served = np.zeros(len(self.words), dtype=bool)
        self.left = len(self.words)
        #: The keys' first words sorted, and the rows they are of: made at the first search
        #: past the piece's first row (rows in order never need it).
        self._sorted: np.ndarray | None = None
        self._order: np.ndarray | None = None

    def starts_with(self, key: np.ndarray) -> bool:
        return bool((self.words[0] == key).all())

    def find(self, key: np.ndarray) -> int:
        """The row whose key is ``key``, -1 if none."""
        if self.starts_with(key):
            return 0
        if self._sorted is None or self._order is None:
            self._order = np.argsort(self.words[:, 0], kind="stable").astype(np.uint32)
            self._sorted = self.words[self._order, 0]
        at = int(np.searchsorted(self._sorted, key[0]))
        while at < len(self._sorted) and self._sorted[at] == key[0]:
            row = int(self._order[at])
            if (self.words[row] == key).all():
                return row
            at += 1
        return -1


@dataclass
class _Run:
    """Rows ``start`` to ``start + length`` of a piece: consecutive keys of a lookup."""

    piece: _Piece
    start: int
    length: int

    def rows(self) -> pa.Table:
        return self.piece.rows.slice(self.start, self.length)


class _Window:
    """The pieces of a table (``pieces``, each made ready by ``ready``: the rows kept and
    their packed ids, or None where they cannot be streamed) read ahead and held until every
    row of them was served."""

    def __init__(
        self,
        pieces: ReadAhead[Any],
        ready: Callable[[Any], tuple[pa.Table, pa.Array] | None],
    ) -> None:
        self._pieces = pieces
        self._ready = ready
        self._held: list[_Piece] = []
        self._rows = 0
        #: Pieces every row of which was served, newest last, kept up to ``KEPT_ROWS`` rows:
        #: an input repeats rows, and many records share a result.
        self._spent: deque[_Piece] = deque()
        self._spent_rows = 0
        self._ended = False
        #: Whether a piece was let go: then what is held is not the whole table.
        self._dropped = False
        #: Where the last run ended: the next run most often starts there.
        self._cursor: tuple[_Piece, int] | None = None

    def runs(self, keys: np.ndarray) -> list[_Run] | None:
        """The rows of ``keys`` (``digest_words``), in their order, as runs of consecutive
        rows; None if one is not within reach."""
        runs: list[_Run] = []
        at = 0
        while at < len(keys):
            hit = self._find(keys[at])
            if hit is None:
                return None
            piece, row = hit
            span = min(len(keys) - at, len(piece.words) - row)
            same = (piece.words[row : row + span] == keys[at : at + span]).all(axis=1)
            length = span if same.all() else int(np.argmin(same))
            runs.append(_Run(piece, row, length))
            self._cursor = (piece, row + length)
            at += length
        return self._served(runs)

    def _served(self, runs: list[_Run]) -> list[_Run]:
        """``runs``, marked served; the pieces all served let go."""
        for run in runs:
            rows = slice(run.start, run.start + run.length)
            run.piece.left -= run.length - int(np.count_nonzero(run.piece.served[rows]))
            run.piece.served[rows] = True
            self._cursor = (run.piece, rows.stop)
        self._let_go()
        return runs

    def following(self, ids: pa.Array) -> list[_Run] | None:
        """``runs`` of ids (strings) that are the rows following the last run, in its piece;
        None if they are not (compared by their digits, without packing them)."""
        if self._cursor is None:
            return None
        piece, row = self._cursor
        if row + len(ids) > len(piece.words) or not packs_of(piece.ids.slice(row, len(ids)), ids):
            return None
        return self._served([_Run(piece, row, len(ids))])

    def close(self) -> None:
        self._pieces.close()
        self._held, self._cursor = [], None
        self._spent.clear()

    def whole(self) -> tuple[list[pa.Table], list[pa.Array]] | None:
        """Every row of the table and their ids, if they are all held once the rest is read
        within ``HELD_ROWS``, else None."""
        while not self._ended and self._rows < HELD_ROWS and self._read() is not None:
            pass
        if not self._ended or self._dropped:
            return None
        pieces = [*self._spent, *self._held]
        return [piece.rows for piece in pieces], [piece.ids for piece in pieces]

    def _find(self, key: np.ndarray) -> tuple[_Piece, int] | None:
        if self._cursor is not None:
            piece, row = self._cursor
            if row < len(piece.words) and (piece.words[row] == key).all():
                return self._cursor
            # In order, the last run ended with its piece and this one starts the next piece
            # (most often, the next one read): found without sorting the keys of the pieces
            # held to search them.
            if row == len(piece.words):
                for held in self._held:
                    if held.starts_with(key):
                        return held, 0
                if not self._ended and self._rows < HELD_ROWS:
                    read = self._read()
                    if read is not None and read.starts_with(key):
                        return read, 0
        for piece in (*self._held, *reversed(self._spent)):
            row = piece.find(key)
            if row >= 0:
                return piece, row
        while self._rows < HELD_ROWS:
            read = self._read()
            if read is None:
                return None
            row = read.find(key)
            if row >= 0:
                return read, row
        return None

    def _read(self) -> _Piece | None:
        """The next piece, now held; None at the end or where it cannot be streamed."""
        while (item := self._pieces.next()) is not None:
            ready = self._ready(item)
            if ready is None:  # nothing more is read, and what is held is not the table
                self._ended = self._dropped = True
                return None
            rows, ids = ready
            if not len(ids):
                continue
            ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
            piece = _Piece(rows, ids)
            self._held.append(piece)
            self._rows += len(piece.words)
            return piece
        self._ended = True
        return None

    def _let_go(self) -> None:
        if all(piece.left for piece in self._held):
            return
        for piece in self._held:
            if not piece.left:
                self._spent.append(piece)
                self._spent_rows += len(piece.words)
        self._held = [piece for piece in self._held if piece.left]
        self._rows = sum(len(piece.words) for piece in self._held)
        while self._spent_rows > KEPT_ROWS:
            self._dropped = True
            self._spent_rows -= len(self._spent.popleft().words)


class StreamedEntries:
    """What ``records`` know of a node's input, found as the input's chunks ask (see the
    module): ``find`` answers as ``KnownEntries.find`` does. ``close()`` stops the reads
    ahead (also done once the object is collected)."""

    def __init__(self, records: ProvenanceRecords, *, name: str = "podline-records") -> None:
        self._records = records
        self._known: KnownEntries | None = None
        self._tokens: bool | None = None
        self._entries = _Window(
            ReadAhead(records.record_pieces, depth=_AHEAD, name=name), _ready_records
        )
        self._results = _Window(
            ReadAhead(lambda: records.memo_pieces(packed=True), depth=_AHEAD, name=name),
            self._ready_results,
        )

    def find(self, entry_ids: pa.Array) -> Found:
        if self._known is None:
            found = self._streamed(entry_ids)
            if found is not None:
                return found
            self._known = self._whole()
            self.close()
        return self._known.find(entry_ids)

    def close(self) -> None:
        self._entries.close()
        self._results.close()

    def _whole(self) -> KnownEntries:
        """``KnownEntries`` of the whole records: of what was read, if nothing was let go yet
        (then the tables are read once, as before), else read again."""
        entries = self._entries.whole()
        if entries is None:
            self.close()  # (what was held goes before the tables are read again)
            return self._records.known()
        tables, ids = entries
        records = pa.concat_tables(tables) if tables else None
        if records is None:
            return self._records.known_of(pa.array([], PACKED), pa.array([], PACKED), _NONE)
        skipped = records.column(_SKIPPED).to_numpy(zero_copy_only=False)
        memo = self._results.whole()
        results = None
        if memo is not None and memo[0]:
            held = pa.concat_tables(memo[0])
            results = (
                held.append_column(RECORD_ID, pa.chunked_array(memo[1], PACKED)),
                bool(self._tokens),
            )
        self.close()
        return self._records.known_of(
            pa.chunked_array(ids, PACKED), records.column(RESULT_ID), skipped, results
        )

    def _streamed(self, entry_ids: pa.Array) -> Found | None:
        n, function = len(entry_ids), self._records.function
        runs = self._entries.following(entry_ids)  # the usual case, checked without packing
        if runs is None:
            packed = pack(entry_ids)
            if packed.null_count:
                return None
            runs = self._entries.runs(digest_words(packed))
        if runs is None:
            return None
        skipped = np.zeros(0, dtype=bool)
        if runs:
            records = _rows_of(runs)
            skipped = records.column(_SKIPPED).to_numpy(zero_copy_only=False)
        if skipped.all():  # (no row asked for, or every row skipped)
            outputs = self._records.outputs_of(ResultCache.empty_for(function))
            return Found(np.ones(n, dtype=bool), skipped, outputs)
        calls = records.column(RESULT_ID)
        if skipped.any():
            calls = calls.filter(pa.array(~skipped))
        results = self._results.runs(digest_words(calls))
        if results is None:
            return None
        outputs = self._records.outputs_of(_rows_of(results), tokens=bool(self._tokens))
        if not self._tokens:  # (made on read, as KnownEntries makes them)
            outputs = with_tokens(function, outputs, calls)
        return Found(np.ones(n, dtype=bool), skipped, outputs)

    def _ready_results(self, piece: tuple[pa.Table, bool]) -> tuple[pa.Table, pa.Array] | None:
        """A piece of the memo as held: its served columns, keyed by packed result id; None
        if it holds source-info tokens where earlier pieces did not, or the other way."""
        results, tokens = piece
        if self._tokens is None:
            self._tokens = tokens
        elif tokens != self._tokens:
            return None
        ids = results.column(RECORD_ID).combine_chunks()
        if ids.null_count:  # ids that do not pack match no record's: dropped
            valid = ids.is_valid()
            results, ids = results.filter(valid), ids.filter(valid)
        return results.drop_columns([RECORD_ID]), ids


def _ready_records(piece: pa.Table) -> tuple[pa.Table, pa.Array] | None:
    """A piece of records as held: whether each was skipped and its packed result id, keyed
    by its packed entry id; None if an id does not pack (``KnownEntries`` keeps those)."""
    ids, results = pack(piece.column(RECORD_ID)), pack(piece.column(RESULT_ID))
    if ids.null_count or results.null_count:
        return None
    skipped = pa.array(skipped_of(piece))
    rows = pa.table({_SKIPPED: skipped, RESULT_ID: results.combine_chunks()})
    return rows, ids.combine_chunks()


def _rows_of(runs: list[_Run]) -> pa.Table:
    """The rows of ``runs``, in order."""
    return runs[0].rows() if len(runs) == 1 else pa.concat_tables([run.rows() for run in runs])
