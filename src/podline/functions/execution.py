"""Running a function pod over a stream: the batched, memoized execution.

``PodRun`` owns one execution (see ``FunctionPod.execute`` for the steps) and returns a
``PodResult`` (``podline.functions.results``); ``PodRun.preview`` says what an execution would
do, calling nothing and writing nothing.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import source_info_column
from podline.conversion import column_to_python, table_from_columns, with_type
from podline.datagrams import Packet, Tag
from podline.errors import (
    FunctionCallError,
    HashingError,
    InexactValueError,
    InputFileError,
    InputValidationError,
    OutputFileOverwrittenError,
    OutputValidationError,
    RunCancelledError,
)
from podline.executors import CallCapture, CallOutcome, CallPolicy, Executor, Finished
from podline.executors.base import Halt, draining, stopping
from podline.functions.durability import CommitClock
from podline.functions.memo import (
    COMPUTED_AT_COLUMN,
    FILES_COLUMN,
    SKIPPED_COLUMN,
    ResultCache,
    call_tokens,
)
from podline.functions.output_files import (
    OutputFingerprints,
    ReturnedFiles,
    SharedOutputFileWarning,
    Witnessed,
    files_array,
    fingerprints,
    holds_files,
    rows_naming,
    stale_results,
)
from podline.functions.packet_function import PacketFunction
from podline.functions.results import STATUSES, LoggerFactory, PodResult, RowStatus
from podline.hashing import row_hash_strings, unreadable_files
from podline.hashing.files import file_digest, file_paths
from podline.matching import index_in, is_in
from podline.runtime import deferred_interrupts, paused_gc
from podline.schema import PodType, Schema, is_optional, type_name
from podline.stores import RECORD_ID, Store
from podline.streams import Stream, TableStream

if TYPE_CHECKING:
    from podline.functions.pod import FunctionPod

__all__ = ["CALL_BATCH", "OnError", "PodRun", "call_failure", "overwritten_error"]

OnError = Literal["raise", "continue"]

#: Calls per batch: results are typed and stored per batch (bounded memory and crash loss).
CALL_BATCH = 8192


_CAPTURE = attrgetter("capture")
_START = attrgetter("start")
_END = attrgetter("end")
_TOLD = attrgetter("told")


@dataclass
class _Unique:
    """Distinct argument packets of a run."""

    hashes: pa.Array  # one per distinct argument packet, in first-occurrence order
    of_row: np.ndarray  # for every input row, its index into ``hashes``
    first_row: np.ndarray  # for every distinct packet, the first input row holding it


#: Receives an early part of a run: the input rows whose calls finished in one window (in
#: input order), their ``PodResult`` (rows in that order), and whether to commit them now.
PartReport = Callable[[np.ndarray, PodResult, bool], None]


class PodRun:
    """One execution of a pod over a stream (kept apart so ``FunctionPod`` stays readable).

    Calls finish in windows (see ``podline.functions.durability``): when ``clock`` says a
    report is due, the results of the calls finished so far are typed and stored, and the
    rows they settle go to ``report`` before the rest finish (with ``commit`` set at least
    every ``commit_seconds``; without ``report`` the run commits its memo itself). If the
    calls are interrupted (Ctrl-C, a cancelled run, an executor failure), what finished is
    stored, reported and committed before the error propagates.
    """

    def __init__(
        self,
        pod: FunctionPod,
        stream: Stream,
        *,
        executor: Executor,
        store: Store | None,
        logger_factory: LoggerFactory | None,
        before_calls: Callable[[np.ndarray], None] | None = None,
        keep_captures: bool = False,
        memo: ResultCache | None = None,
        policy: CallPolicy | None = None,
        clock: CommitClock | None = None,
        report: PartReport | None = None,
        recompute: bool = False,
        stop: threading.Event | None = None,
        fail_fast: bool = False,
    ) -> None:
        self.pod = pod
        self.recompute = recompute
        self.stop = stop
        self.fail_fast = fail_fast
        self.keep_captures = keep_captures
        self.before_calls = before_calls
        self.fn = pod.packet_function
        self.stream = stream
        self.executor = executor
        self.policy = policy if policy is not None else pod.policy
        self.clock = clock if clock is not None else CommitClock()
        self.report = report
        if memo is not None:
            self.cache: ResultCache | None = memo
        else:
            self.cache = ResultCache(store, self.fn) if store is not None else None
        self.logger_factory = logger_factory
        self.table = stream.as_table(system_tags=True)
        self.tag_names, _ = stream.keys(system_tags=True)
        self.args = self.arguments()
        # Values are converted to the function's declared types (dataclasses, tuples, ...).
        self.args_schema = self.fn.input_schema.select(self.args.column_names)
        order = self.fn.positional
        self.positional = order is not None and set(order) == set(self.args.column_names)
        self.call_order: tuple[str, ...] = (
            order if order is not None and self.positional else tuple(self.args.column_names)
        )
        self.errors: dict[int, FunctionCallError] = {}
        self.reasons: dict[int, str] = {}
        self.captures: dict[int, CallCapture] = {}
        #: The output files this execution's calls returned (see ``ReturnedFiles``).
        self.returned_files = ReturnedFiles()
        self.call_times = np.full((self.table.num_rows, 2), np.nan) if keep_captures else None
        #: Per distinct argument packet: whether its call runs in this execution.
        self.ran = np.zeros(0, dtype=bool)
        #: The argument columns holding input files, and each file's digest when the memo
        #: keys were made: a file changed while a call ran fails that call (its result
        #: would be stored under the old content's identity).
        self.file_columns = [
            n for n in self.args.column_names if holds_files(self.args.schema.field(n).type)
        ]
        self.input_digests: dict[str, bytes] = {}
        #: Whether the outputs hold files, which must exist and are fingerprinted where each
        #: call ran, as soon as it returned (see ``podline.functions.output_files``). Other
        #: functions' calls do nothing more.
        self.output_files = any(holds_files(f.type) for f in self.fn.output_schema.to_arrow())
        if self.output_files:
            self.policy = replace(self.policy, fingerprint=OutputFingerprints(self.fn))

    def execute(self) -> PodResult:
        if self.table.num_rows == 0:
            return self._empty_result()
        unique, stored = self._look_up()
        computed = self.compute(unique, np.flatnonzero(self.ran))
        if self.cache is not None and self.cache.written and stored.num_rows:
            stored = self._still_served(unique, stored, self.cache.written)
        results = pa.concat_tables([stored, computed]) if computed.num_rows else stored
        return self.assemble(unique, results)

    def unserved(self) -> np.ndarray:
        """Per row, whether the store would not serve its result now: none is stored, or
        its files no longer hold what was stored (such a result is noted stale in the memo
        and replaced when its call is recorded again). Calls nothing, writes nothing."""
        assert self.cache is not None  # (asked of runs with a memo)
        unique = _distinct(row_hash_strings(self.args))
        stored = self.cache.lookup(unique.hashes)
        return ~is_in(unique.hashes, stored.column(RECORD_ID))[unique.of_row]

    def _still_served(
        self, unique: _Unique, stored: pa.Table, written: Mapping[str, bytes]
    ) -> pa.Table:
        """The stored results to serve, without those whose files a call recorded through
        this memo (``written``: their files) overwrote since they were looked up (another
        call returning the same file: a result recorded before the duplicate was found, or
        one computed again because its file had changed). Their rows fail: served, they
        would name another call's content; the next run computes them again."""
        replaced = unique.hashes.filter(pa.array(self.ran))
        suspects = rows_naming(stored.column(FILES_COLUMN), written)
        if len(replaced) and len(suspects):
            ids = stored.column(RECORD_ID).take(pa.array(suspects, pa.int64()))
            suspects = suspects[~is_in(ids, replaced)]
        if not len(suspects):
            return stored
        taken = stored.take(pa.array(suspects, pa.int64()))
        stale = stale_results(taken.column(FILES_COLUMN), taken.column(COMPUTED_AT_COLUMN))
        if not stale:
            return stored
        packets = index_in(taken.column(RECORD_ID), unique.hashes)
        for at in stale:
            row = int(unique.first_row[packets[at]])
            paths = [p["path"] for p in taken.column(FILES_COLUMN)[at].as_py()]
            path = next(p for p in paths if p in written)
            writers = self.returned_files.writers(path)
            writer = writers[0] if writers else None
            self._fail(row, self._overwritten(row, path, writer, served=True))
        drop = np.zeros(stored.num_rows, dtype=bool)
        drop[suspects[list(stale)]] = True
        return stored.filter(pa.array(~drop))

    def preview(self) -> tuple[PodResult, np.ndarray]:
        """What ``execute`` would do, calling nothing and writing nothing: the result of the
        rows the store serves (their outputs), the rows whose calls would run as computed,
        the rows sharing such a call as cached (as they would be if the call succeeds), the
        rows naming a missing input file as failed; and, per row, whether its output waits
        for a call of this run."""
        if self.table.num_rows == 0:
            return self._empty_result(), np.zeros(0, dtype=bool)
        unique, stored = self._look_up()
        # A stored result the run replaces (recompute, output file gone) is not served.
        replaced = is_in(stored.column(RECORD_ID), unique.hashes.filter(pa.array(self.ran)))
        result = self.assemble(unique, stored.filter(pa.array(~replaced)))
        waiting = self.ran[unique.of_row]
        first = unique.first_row[unique.of_row] == np.arange(len(unique.of_row))
        result.codes[waiting] = STATUSES.index(RowStatus.CACHED)
        result.codes[waiting & first] = STATUSES.index(RowStatus.COMPUTED)
        result.computed = waiting & first
        return result, waiting

    def _look_up(self) -> tuple[_Unique, pa.Table]:
        """The distinct argument packets and their stored results, read in one bulk lookup;
        sets ``ran`` (the packets whose calls run), ``reasons`` (stored results replaced) and
        the errors of packets naming missing input files."""
        unique = _distinct(row_hash_strings(self.args))
        stored = self.cache.lookup(unique.hashes) if self.cache else self._empty_results()
        hit = is_in(unique.hashes, stored.column(RECORD_ID))
        if self.recompute and self.cache is not None:
            # Stored results of every call are stale: they are replaced as calls finish.
            for packet in np.flatnonzero(hit).tolist():
                self.cache.stale[unique.hashes[packet].as_py()] = "recompute requested"
            hit = np.zeros(len(hit), dtype=bool)
        if self.cache is not None and self.cache.stale:
            stale = self.cache.stale
            for packet in np.flatnonzero(is_in(unique.hashes, pa.array(list(stale)))).tolist():
                self.reasons[int(unique.first_row[packet])] = stale[unique.hashes[packet].as_py()]
        self.ran = ~hit & ~self._without_files(unique)
        return unique, stored

    def _empty_result(self) -> PodResult:
        empty = self._empty_results()
        return PodResult(self.output(empty, np.zeros(0, np.int64)), np.zeros(0, np.int8))

    def assemble(
        self, unique: _Unique, results: pa.Table, packets: np.ndarray | None = None
    ) -> PodResult:
        """The result of the input rows whose argument packets are ``packets`` (indexes into
        ``unique``; None: every row), in input order, from ``results`` (which holds theirs).
        """
        # For every distinct argument packet concerned, its result row (-1: its call failed).
        if packets is None:
            position = index_in(unique.hashes, results.column(RECORD_ID))
            rows = None
            of_row = unique.of_row
        else:
            position = np.full(len(unique.hashes), -1, dtype=np.int64)
            position[packets] = index_in(unique.hashes.take(pa.array(packets)), results[RECORD_ID])
            concerned = np.zeros(len(unique.hashes), dtype=bool)
            concerned[packets] = True
            rows = np.flatnonzero(concerned[unique.of_row])
            of_row = unique.of_row[rows]
        all_rows = np.arange(len(unique.of_row)) if rows is None else rows
        ran = self.ran[of_row] & (unique.first_row[of_row] == all_rows)
        codes = self.codes(results, position[of_row], ran)
        part = (lambda found: found) if rows is None else _Subset(rows).of
        return PodResult(
            self.output(results, position[of_row], rows),
            codes,
            part(self.errors),
            part(self.captures),
            ran,
            unique.hashes.take(pa.array(of_row)),
            None if self.call_times is None else self.call_times[all_rows],
            part(self.reasons),
        )

    def _without_files(self, unique: _Unique) -> np.ndarray:
        """Per distinct argument packet: whether it names an input file that is missing or
        unreadable. Such a packet fails (at its first row) without a call."""
        missing = np.zeros(len(unique.hashes), dtype=bool)
        for row, problem in unreadable_files(self.args, self.input_digests).items():
            packet = unique.of_row[row]
            if not missing[packet]:
                missing[packet] = True
                self._fail(int(unique.first_row[packet]), InputFileError(problem))
        return missing

    # -------------------------------------------------------------- arguments
    def arguments(self) -> pa.Table:
        """The argument packet of every row: the mapped columns, named as parameters."""
        present = [
            p for p in self.fn.input_schema if self.pod._column(p) in self.table.column_names
        ]
        args = self.table.select([self.pod._column(p) for p in present])
        return args.rename_columns(present)

    # -------------------------------------------------------------- computing
    def compute(self, unique: _Unique, misses: np.ndarray) -> pa.Table:
        """Run the calls for the distinct argument packets at ``misses``, in bounded batches.

        Each batch's results are typed, stored and dropped from Python before the next
        starts: memory stays bounded.
        """
        batches = [
            self._compute_batch(unique, misses[start : start + CALL_BATCH])
            for start in range(0, len(misses), CALL_BATCH)
        ]
        return pa.concat_tables(batches) if batches else self._empty_results()

    def _compute_batch(self, unique: _Unique, misses: np.ndarray) -> pa.Table:
        rows = unique.first_row[misses]
        if self.before_calls is not None:
            self.before_calls(rows)
        selected = self.args.take(pa.array(rows))
        names = self.call_order
        columns = [column_to_python(selected.column(n), self.args_schema[n]) for n in names]
        with paused_gc():  # this batch's per-call Python objects (see paused_gc)
            # Positional tuples are cheaper to build than keyword dicts, where the signature
            # allows them (see PacketFunction.positional).
            arguments: list[Any] = list(zip(*columns, strict=True))
            if not self.positional:
                arguments = [dict(zip(names, values, strict=True)) for values in arguments]
            parts = self._run_calls(unique, _Batch(misses, columns), arguments)
            # Drop the per-call objects before the collector resumes, so it never scans them.
            del arguments, columns
        return pa.concat_tables(parts) if len(parts) != 1 else parts[0]

    def _run_calls(self, unique: _Unique, batch: _Batch, arguments: list[Any]) -> list[pa.Table]:
        """Run one batch's calls, settling them window by window (see the class docs)."""
        if self.stop is not None and self.stop.is_set():
            raise _cancelled()
        # With fail_fast, the first failing call stops the calls: none starts after it, and
        # those in flight finish and are stored (see executors.base.Halt).
        halt = Halt(self.stop) if self.fail_fast else self.stop
        finished = self.executor.execute(self.fn.fn, arguments, policy=self.policy)
        parts: list[pa.Table] = []
        window: list[Finished] = []
        due = self.clock.next_report
        stopped_at: float | None = None
        try:
            # stopping: executors waiting on other processes notice a stop before a call ends
            with stopping(halt):
                for item in finished:
                    window.append(item)
                    # Inline rather than clock.report_due: this runs once per call.
                    if item[1].capture.end >= due:
                        parts.append(self._settle(unique, batch, window, early=True))
                        window = []
                        due = self.clock.next_report
                    if isinstance(halt, Halt) and item[1].error is not None:
                        halt.halt()
                    if halt is not None and halt.is_set() and not draining(halt):
                        # Once stopped, an executor starts no call and hands over the calls
                        # that finished meanwhile, which are stored below. One that started a
                        # call after the stop does not honour it: stop taking its calls.
                        if stopped_at is None:
                            stopped_at = time.time()
                        elif item[1].capture.start >= stopped_at:
                            break
                if halt is not None and halt.is_set():
                    raise _cancelled()
        except BaseException as error:
            finished.close()
            if window:
                self._settle_interrupted(unique, batch, window, error)
            if isinstance(error, RunCancelledError) and draining(halt) and self.errors:
                # What finished is stored and reported: the failure is what the caller sees.
                failure = self.errors[min(self.errors)]
                raise failure from failure.__cause__
            raise
        finished.close()
        if window or not parts:
            parts.append(self._settle(unique, batch, window, early=False))
        return parts

    def _settle_interrupted(
        self, unique: _Unique, batch: _Batch, window: list[Finished], error: BaseException
    ) -> None:
        """Store, report and commit the calls that finished before ``error``."""
        try:
            self._settle(unique, batch, window, early=True, commit=True)
        except Exception as failure:  # the interruption is what the caller must see
            error.add_note(f"podline could not store the calls finished before it: {failure}")

    def _settle(
        self,
        unique: _Unique,
        batch: _Batch,
        window: list[Finished],
        *,
        early: bool,
        commit: bool = False,
    ) -> pa.Table:
        """Type and store the results of the finished calls in ``window``; an ``early``
        window's rows are reported (and committed when the clock says so) at once. Ctrl-C
        waits until this is done (see ``deferred_interrupts``)."""
        with deferred_interrupts():
            return self._settle_now(unique, batch, window, early=early, commit=commit)

    def _settle_now(
        self,
        unique: _Unique,
        batch: _Batch,
        window: list[Finished],
        *,
        early: bool,
        commit: bool,
    ) -> pa.Table:
        indices, finished = zip(*window, strict=True) if window else ((), ())
        positions = np.array(indices, dtype=np.int64)
        outcomes = list(finished)
        del indices, finished
        window.clear()
        table = self._record(unique, batch, positions, outcomes)
        if early:
            now = time.time()
            commit = self.clock.reported(now) or commit
            packets = batch.misses[positions]
            if self.report is not None:
                self.report(*self._part(unique, table, packets), commit)
            elif commit and self.cache is not None:
                self.cache.store.flush()
        return table

    def _part(
        self, unique: _Unique, table: pa.Table, packets: np.ndarray
    ) -> tuple[np.ndarray, PodResult]:
        concerned = np.zeros(len(unique.hashes), dtype=bool)
        concerned[packets] = True
        rows = np.flatnonzero(concerned[unique.of_row])
        return rows, self.assemble(unique, table, packets)

    def _record(
        self, unique: _Unique, batch: _Batch, positions: np.ndarray, outcomes: list[CallOutcome]
    ) -> pa.Table:
        """The memo records of finished calls (``positions`` into the batch), stored."""
        rows = unique.first_row[batch.misses[positions]]
        if self.keep_captures:
            self._keep(rows, outcomes)
        if self.logger_factory is not None:
            tags = self._tags(rows)
            names = self.call_order
            for tag, position, outcome in zip(tags, positions.tolist(), outcomes, strict=True):
                values = dict(zip(names, (c[position] for c in batch.columns), strict=True))
                packet = Packet(values, self.args_schema, validate=False)
                self.logger_factory(tag, packet).record(outcome.capture)
        outputs, skipped, failures = self.fn.split_outputs([o.value for o in outcomes])
        failures.update({i: o.error for i, o in enumerate(outcomes) if o.error is not None})
        if self.file_columns:
            self._check_inputs_unchanged(rows, failures)
        failed_captures = {i: outcomes[i].capture for i in failures}
        witnessed = [o.fingerprints for o in outcomes] if self.output_files else None
        del outcomes
        typed = self._typed_outputs(outputs, skipped, failures)
        del outputs
        files = None
        if witnessed is not None:
            typed, files = self._fingerprinted(typed, failures, witnessed, rows)
        for position, error in failures.items():
            row = int(rows[position])
            self.captures[row] = failed_captures.get(position) or CallCapture()
            self._fail(row, error)
        good = np.setdiff1d(np.arange(len(rows)), np.fromiter(failures, np.int64, len(failures)))
        hashes = unique.hashes.take(pa.array(batch.misses[positions[good]], pa.int64()))
        tokens = call_tokens(self.fn, hashes)
        skipped_array = pa.array(skipped, pa.bool_()).take(pa.array(good))
        if self.cache is not None:
            return self.cache.record(hashes, typed, tokens, skipped_array, files=files)
        return _results_table(self.fn, hashes, typed, tokens, skipped_array)

    def _check_inputs_unchanged(self, rows: np.ndarray, failures: dict[int, BaseException]) -> None:
        """Fail the finished calls (``rows``, by position) whose input files changed since
        their memo keys were made: the function may have read the new content, which the
        store would serve for the old. Such a call's result is dropped, as a failed call's."""
        selected = self.args.select(self.file_columns).take(pa.array(rows, pa.int64()))
        for name in self.file_columns:
            for position, value in enumerate(selected.column(name).to_pylist()):
                if position in failures:
                    continue
                for path in file_paths(value):
                    before = self.input_digests.get(path)
                    try:
                        now = file_digest(path)
                    except HashingError:
                        now = None
                    if before is not None and now != before:
                        what = "was removed" if now is None else "changed"
                        failures[position] = InputFileError(
                            f"column {name!r}: file {path!r} {what} while the function ran, "
                            "so its result was not stored (it may have read either content); "
                            "run again to compute it from the file as it is now"
                        )
                        break

    def _fingerprinted(
        self,
        typed: pa.Table,
        failures: dict[int, BaseException],
        witnessed: list[Witnessed],
        rows: np.ndarray,
    ) -> tuple[pa.Table, pa.Array]:
        """The outputs of the calls whose files are readable and still hold what each call
        wrote, and those files' fingerprints (taken where each call ran, as it returned);
        the other calls join ``failures``. ``typed`` holds the calls (by position in the
        window) not in ``failures``; ``rows`` are the input rows of all of them."""
        good = [i for i in range(len(witnessed)) if i not in failures]
        prints, problems = fingerprints(typed, [witnessed[i] for i in good])
        for row, problem in problems.items():
            failures[good[row]] = OutputValidationError(f"{self.fn.name}: {problem}")
        kept = [r for r in range(len(good)) if r not in problems]
        calls = [(int(rows[good[r]]), prints[r]) for r in kept]
        # Files this execution's calls returned before this window (the others' earlier
        # returns, if any, were by calls of other executions sharing the memo).
        ours = {p for _, files in calls for p in files if p in self.returned_files}
        overwritten, clashes = self.returned_files.settle(calls)
        for at, found in overwritten.items():
            position = good[kept[at]]
            failures[position] = self._overwritten(int(rows[position]), found.path, found.writer)
        for path, earlier, row in clashes:
            self._warn_shared(path, earlier, row)
        if self.cache is not None:
            written, warned = self.cache.written, self.returned_files.warned
            for at, (row, files) in enumerate(calls):
                if at in overwritten:
                    continue
                for path, w in files.items():
                    before = written.get(path)
                    if before not in (None, w[4]) and path not in ours and path not in warned:
                        warned.add(path)
                        self._warn_shared(path, None, row)
                    written[path] = w[4]
        if not problems and not overwritten:
            return typed, files_array(prints)
        stored = np.zeros(len(good), dtype=bool)
        stored[[r for at, r in enumerate(kept) if at not in overwritten]] = True
        return typed.filter(pa.array(stored)), files_array(
            [p for p, keep in zip(prints, stored.tolist(), strict=True) if keep]
        )

    def _overwritten(
        self, row: int, path: str, writer: int | None, *, served: bool = False
    ) -> OutputFileOverwrittenError:
        return overwritten_error(
            self.fn.name,
            path,
            self._tag(row),
            None if writer is None else self._tag(writer),
            served=served,
        )

    def _warn_shared(self, path: str, earlier: int | None, row: int) -> None:
        """Warn that the call of ``row`` overwrote ``path``, which the stored call of
        ``earlier`` (None: of another execution, a node's earlier batch) returned."""
        first = (
            f"the calls of the rows with tags {self._tag(earlier).as_dict()} and "
            f"{self._tag(row).as_dict()} both returned"
            if earlier is not None
            else f"the call of the row with tags {self._tag(row).as_dict()} and a call of an "
            "earlier batch both returned"
        )
        warnings.warn(
            f"{self.fn.name}: {first} the file {path!r}, with different content: it holds "
            "what the later call wrote, so the stored result of the earlier one no longer "
            "matches it, and later runs compute that result again rather than serve it "
            "(overwriting the file again); give each call a file of its own, named after "
            "its arguments or tags",
            SharedOutputFileWarning,
            stacklevel=2,
        )

    def _keep(self, rows: np.ndarray, outcomes: Sequence[CallOutcome]) -> None:
        """Keep the times of these calls, and the captures of those that told more."""
        assert self.call_times is not None  # (kept with the captures)
        n = len(outcomes)
        captures = list(map(_CAPTURE, outcomes))
        # Read attribute by attribute in C: a Python loop over the calls costs more than
        # the rest of the batch's bookkeeping.
        self.call_times[rows, 0] = np.fromiter(map(_START, captures), np.float64, n)
        self.call_times[rows, 1] = np.fromiter(map(_END, captures), np.float64, n)
        told = np.fromiter(map(_TOLD, captures), bool, n)
        for i in np.flatnonzero(told).tolist():
            self.captures[int(rows[i])] = captures[i]

    def _typed_outputs(
        self,
        outputs: dict[str, list[Any]],
        skipped: list[bool],
        failures: dict[int, BaseException],
    ) -> pa.Table:
        """The output columns of the rows not in ``failures``, typed by the output schema
        (nullable, for skipped rows). Rows whose values do not fit join ``failures``."""
        schema = self.fn.output_schema
        nullable = Schema({k: _nullable(tp) for k, tp in schema.items()})
        n = len(skipped)
        while True:
            good = [i for i in range(n) if i not in failures]
            columns = {k: [outputs[k][i] for i in good] for k in schema}
            try:
                return table_from_columns(columns, nullable)
            except InputValidationError:
                pass
            # Find the rows whose values do not fit, so their errors can name their tags.
            for i in good:
                if skipped[i]:
                    continue
                try:
                    table_from_columns({k: [outputs[k][i]] for k in schema}, schema)
                except InexactValueError as exc:
                    failures[i] = OutputValidationError(
                        f"{self.fn.name} returned, for output {exc.column!r} of type "
                        f"{type_name(schema[exc.column])}: {exc.reason}"
                    )
                except InputValidationError as exc:
                    failures[i] = OutputValidationError(f"{self.fn.name} returned {exc}")

    def _fail(self, row: int, error: BaseException) -> None:
        self.errors[row] = call_failure(self.fn.name, self._tag(row), error)

    def _tag(self, row: int) -> Tag:
        return self._tags(np.array([row]))[0]

    def _tags(self, rows: np.ndarray) -> list[Tag]:
        """The tags of these input rows (one table operation for all of them)."""
        tags, _ = self.stream.output_schema()
        if not tags:  # a table with no columns has no rows to list
            return [Tag({}, tags, validate=False) for _ in rows]
        values = self.table.select(list(tags)).take(pa.array(rows, pa.int64())).to_pylist()
        return [Tag(v, tags, validate=False) for v in values]

    # -------------------------------------------------------------- assembling
    def codes(self, results: pa.Table, of_row: np.ndarray, ran: np.ndarray) -> np.ndarray:
        """Per row, the index of its ``RowStatus`` (see ``PodResult``): ``of_row`` is each
        row's result in ``results`` (-1: failed), ``ran`` whether its call ran for it."""
        skipped = np.asarray(results.column(SKIPPED_COLUMN).to_numpy(zero_copy_only=False))
        codes = np.full(len(of_row), STATUSES.index(RowStatus.CACHED), dtype=np.int8)
        codes[ran] = STATUSES.index(RowStatus.COMPUTED)
        found = of_row >= 0
        skipped_row = np.zeros(len(of_row), dtype=bool)
        skipped_row[found] = skipped[of_row[found]]
        codes[skipped_row] = STATUSES.index(RowStatus.SKIPPED)
        codes[~found] = STATUSES.index(RowStatus.FAILED)
        return codes

    def output(
        self, results: pa.Table, result_of_row: np.ndarray, rows: np.ndarray | None = None
    ) -> TableStream:
        """Tags of the rows that produced a packet, with their output packets (``rows``: the
        input rows ``result_of_row`` speaks of; None: all of them)."""
        found = result_of_row >= 0
        taken = results.take(pa.array(result_of_row[found], pa.int64()))
        keep = ~np.asarray(taken.column(SKIPPED_COLUMN).to_numpy(zero_copy_only=False), bool)
        produced = np.flatnonzero(found)[keep]
        if rows is not None:
            produced = rows[produced]
        taken = taken.filter(pa.array(keep, pa.bool_()))
        table = self.table.select(list(self.tag_names)).take(pa.array(produced, pa.int64()))
        for field_ in self.fn.output_schema.to_arrow():
            table = table.append_column(field_, with_type(taken.column(field_.name), field_.type))
        for k in self.fn.output_keys:
            info = source_info_column(k)
            table = table.append_column(info, taken.column(info))
        tag_columns, _ = self.stream.keys()
        tag_types, _ = self.stream.output_schema()
        return TableStream(
            table,
            tag_columns,
            label=self.pod.label,
            types={**tag_types, **self.fn.output_schema},
        )

    def _empty_results(self) -> pa.Table:
        return _results_table(
            self.fn,
            pa.array([], pa.large_string()),
            self.fn.output_schema.to_arrow().empty_table(),
            {k: pa.array([], pa.large_string()) for k in self.fn.output_keys},
            pa.array([], pa.bool_()),
        )


def call_failure(function: str, tag: Tag, error: BaseException) -> FunctionCallError:
    """The error of a row that failed with ``error`` (its cause), naming the function and
    the row's tag."""
    failure = FunctionCallError(
        f"{function} failed on the row with tag {tag.as_dict()}: "
        f"{type(error).__qualname__}: {error}"
    )
    failure.__cause__ = error
    return failure


def overwritten_error(
    function: str, path: str, tag: Tag, writer: Tag | None, *, served: bool
) -> OutputFileOverwrittenError:
    """The error of a row whose output file ``path`` was overwritten by another call (that
    of the row tagged ``writer``, if known) after its own call returned it (``served``:
    after its stored result was looked up, to be served)."""
    by = (
        f"the call of the row with tags {writer.as_dict()} (which returned it too)"
        if writer is not None
        else "another call or process"
    )
    what = (
        "this row's stored result was not served (the next run computes it again)"
        if served
        else "this row's result was not stored"
    )
    return OutputFileOverwrittenError(
        f"{function}: the file {path!r} that the call of the row with tags {tag.as_dict()} "
        f"returned no longer holds what that call wrote: {by} wrote it since, so {what}; "
        "give each call a file of its own, named after its arguments or tags"
    )


def _results_table(
    fn: PacketFunction,
    hashes: pa.Array,
    outputs: pa.Table,
    tokens: Mapping[str, pa.Array],
    skipped: pa.Array,
) -> pa.Table:
    """Result records in the memo layout, for runs without a store."""
    columns: dict[str, Any] = {RECORD_ID: hashes}
    for k in fn.output_keys:
        columns[k] = outputs.column(k)
    for k in fn.output_keys:
        columns[source_info_column(k)] = tokens[k]
    columns[SKIPPED_COLUMN] = skipped
    return pa.table(columns)


def _nullable(tp: PodType) -> PodType:
    return tp if is_optional(tp) or tp is type(None) else tp | None


def _distinct(hashes: pa.Array) -> _Unique:
    encoded = pc.dictionary_encode(hashes)
    of_row = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    _, first_row = np.unique(of_row, return_index=True)
    return _Unique(encoded.dictionary, of_row, first_row)


def _cancelled() -> RunCancelledError:
    return RunCancelledError("the run was cancelled; the calls not started were not made")


@dataclass
class _Batch:
    """One batch of calls: the distinct argument packets it computes (indexes into the
    run's ``_Unique``) and their argument columns as Python values."""

    misses: np.ndarray
    columns: list[list[Any]]


@dataclass
class _Subset:
    """Input rows ``rows`` of a run, as positions of a part of its result."""

    rows: np.ndarray

    def of(self, by_row: Mapping[int, Any]) -> dict[int, Any]:
        """The entries of ``by_row`` (keyed by input row) for these rows, keyed by position."""
        if not by_row:
            return {}
        position = {row: i for i, row in enumerate(self.rows.tolist())}
        return {position[row]: v for row, v in by_row.items() if row in position}
