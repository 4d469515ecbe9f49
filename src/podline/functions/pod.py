"""``FunctionPod``: a packet function applied to streams, memoized, on an executor.

Applying a pod (``pod.pod(stream)``) checks the stream against the function at once and returns
a lazy ``FunctionPodStream``. When rows are read, the pod:

1. selects the columns the function takes (renamed to parameter names via ``inputs=``) and
   hashes every row's *argument packet* in one call: the memo key. Extra packet columns are
   ignored (``strict=True`` makes them an error), so they never cause recomputation;
2. looks every distinct key up in the result store in one bulk read;
3. runs the misses, each distinct argument packet once, on the executor, with output capture;
4. builds the output packets (typed by the output schema, ``SKIP`` rows dropped), writes the new
   results to the store in one bulk write, and passes the tags, system tags included, through
   unchanged.

Each output value's source info is ``call::<name>@<identity>::<call id>::<key>``, where the call
id is the first 32 hex digits of the argument packet's hash: recomputing a call gives it the
same id, and a cache hit returns the stored tokens of the call that computed it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from podline.columns import source_info_column, token_array
from podline.conversion import column_to_python, table_from_columns
from podline.datagrams import Packet, Tag
from podline.errors import (
    FunctionCallError,
    InputValidationError,
    OutputValidationError,
    format_names,
)
from podline.executors import CallCapture, Executor, LocalExecutor
from podline.executors.base import paused_gc
from podline.functions.memo import SKIPPED_COLUMN, ResultCache
from podline.functions.packet_function import SKIP, IdentityMode, PacketFunction, SkipType
from podline.hashing import IdentityMixin, row_hash_strings
from podline.schema import PodType, Schema, is_assignable, is_optional, type_name
from podline.stores import RECORD_ID, Store
from podline.streams import ProducedStream, Stream, TableStream, invoke

__all__ = [
    "FunctionPod",
    "FunctionPodStream",
    "PacketLogger",
    "PodResult",
    "RowStatus",
    "function_pod",
]

OnError = Literal["raise", "continue"]

#: Calls per batch: results are typed and stored per batch (bounded memory and crash loss).
CALL_BATCH = 8192


class RowStatus(enum.StrEnum):
    """What happened to one input row."""

    COMPUTED = "computed"
    CACHED = "cached"
    SKIPPED = "skipped"
    FAILED = "failed"


class PacketLogger(Protocol):
    """Receives the capture of one computed call (observers provide these)."""

    def record(self, capture: CallCapture) -> None:
        """Called once, after the call finished, with everything it printed and logged."""
        ...


LoggerFactory = Callable[[Tag, Packet], PacketLogger]


_STATUSES = tuple(RowStatus)


@dataclass
class PodResult:
    """The outcome of running a pod over a stream.

    ``codes`` holds, per input row, the index of its ``RowStatus`` in declaration order
    (computed, cached, skipped, failed). Rows with the same argument packet share one call: the
    first is computed, the others are cached, and if the call failed they all failed (its
    error is reported once, at the first row).
    """

    stream: TableStream
    codes: np.ndarray
    errors: dict[int, FunctionCallError] = field(default_factory=dict)
    captures: dict[int, CallCapture] = field(default_factory=dict)
    #: Per input row: whether its call ran in this run (False for results found in the store
    #: or shared with an earlier row), whatever its status.
    computed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: Per input row: the hash of its argument packet, i.e. its record id in the memo.
    argument_hashes: pa.Array = field(default_factory=lambda: pa.array([], pa.large_string()))

    @property
    def status(self) -> list[RowStatus]:
        """Per input row, what happened to it."""
        return [_STATUSES[code] for code in self.codes.tolist()]

    def count(self, status: RowStatus) -> int:
        """How many input rows ended with ``status``."""
        return int(np.count_nonzero(self.codes == _STATUSES.index(status)))


class FunctionPod(IdentityMixin):
    """A packet function plus how to apply it: column mapping, executor and result store.

    Calling the pod calls the plain function. ``pod.pod(*streams)`` applies it to streams;
    several streams are joined first (a visible ``Join`` invocation).
    """

    def __init__(
        self,
        packet_function: PacketFunction,
        *,
        executor: Executor | None = None,
        result_store: Store | None = None,
        inputs: Mapping[str, str] | None = None,
        label: str | None = None,
        live_output: bool = True,
    ) -> None:
        self.packet_function = packet_function
        self.executor = executor
        self.result_store = result_store
        self.input_map = dict(inputs or {})
        unknown = set(self.input_map) - set(packet_function.input_schema)
        if unknown:
            raise InputValidationError(
                f"{packet_function.name}: inputs= maps unknown parameter(s) "
                f"{format_names(unknown)}; parameters are "
                f"{format_names(packet_function.input_schema)}"
            )
        self._label = label
        self.live_output = live_output

    # ------------------------------------------------------------------ plain function
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.packet_function.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionPod({self.packet_function.name!r})"

    @property
    def label(self) -> str:
        return self._label or self.packet_function.name

    # ------------------------------------------------------------------ identity
    def identity_structure(self) -> Any:
        # Executor, store, label and output echo never enter the identity.
        return {"function": self.packet_function, "inputs": sorted(self.input_map.items())}

    def argument_identity(self, inputs: Sequence[Stream]) -> Any:
        return tuple(inputs)

    # ------------------------------------------------------------------ application
    def with_options(
        self,
        *,
        inputs: Mapping[str, str] | None = None,
        executor: Executor | None = None,
        result_store: Store | None = None,
        label: str | None = None,
    ) -> FunctionPod:
        """A copy with some settings replaced (``None`` keeps the current one)."""
        return FunctionPod(
            self.packet_function,
            executor=executor or self.executor,
            result_store=result_store or self.result_store,
            inputs=self.input_map if inputs is None else inputs,
            label=label or self._label,
            live_output=self.live_output,
        )

    def pod(
        self,
        *streams: Stream,
        inputs: Mapping[str, str] | None = None,
        strict: bool = False,
        label: str | None = None,
    ) -> FunctionPodStream:
        """Apply the function to a stream (several streams are joined first); lazy.

        ``inputs`` maps parameter names to packet columns where they differ. With
        ``strict=True`` packet columns the function does not take are an error instead of
        being ignored.
        """
        if not streams:
            raise InputValidationError(f"{self.label}: pod() needs at least one stream")
        pod = self if inputs is None else self.with_options(inputs=inputs)
        stream = streams[0] if len(streams) == 1 else _join(streams)
        pod.check(stream, strict=strict)
        return invoke(FunctionPodStream(pod, stream, label=label))

    def check(self, stream: Stream, *, strict: bool = False) -> None:
        """Raise ``InputValidationError`` listing every missing, extra or mistyped column."""
        _, packets = stream.output_schema()
        fn = self.packet_function
        problems: list[str] = []
        missing = [
            f"{self._column(p)!r}" + (f" (for parameter {p!r})" if self._column(p) != p else "")
            for p in fn.input_schema.required
            if self._column(p) not in packets
        ]
        if missing:
            problems.append(f"missing column(s) {', '.join(sorted(missing))}")
        mistyped = sorted(
            f"{column!r} is {type_name(packets[column])}, parameter {p!r} takes {type_name(tp)}"
            for p, tp in fn.input_schema.items()
            if (column := self._column(p)) in packets and not is_assignable(packets[column], tp)
        )
        if mistyped:
            problems.append(f"mistyped column(s): {'; '.join(mistyped)}")
        used = {self._column(p) for p in fn.input_schema}
        extra = [c for c in packets if c not in used]
        if strict and extra:
            problems.append(f"extra column(s) {format_names(extra)} (strict=True)")
        if problems:
            raise InputValidationError(
                f"{fn.name} cannot be applied to {stream.label}: " + "; ".join(problems)
            )

    def _column(self, parameter: str) -> str:
        return self.input_map.get(parameter, parameter)

    # ------------------------------------------------------------------ Producer protocol
    def output_schema(self, *inputs: Stream, system_tags: bool = False) -> tuple[Schema, Schema]:
        (stream,) = inputs
        tags, _ = stream.output_schema(system_tags=system_tags)
        return tags, self.packet_function.output_schema

    def process(self, *inputs: Stream) -> TableStream:
        (stream,) = inputs
        return self.execute(stream).stream

    # ------------------------------------------------------------------ execution
    def execute(
        self,
        stream: Stream,
        *,
        executor: Executor | None = None,
        result_store: Store | None = None,
        logger_factory: LoggerFactory | None = None,
        on_error: OnError = "raise",
    ) -> PodResult:
        """Run the function over every row of ``stream`` (see the module docs).

        With ``on_error="raise"`` the first failing row (in input order) raises a
        ``FunctionCallError`` after every successful result has been stored; with
        ``"continue"`` failing rows are left out and reported in ``PodResult.errors``.
        """
        run = _Run(
            self,
            stream,
            executor or self.executor or LocalExecutor(),
            result_store if result_store is not None else self.result_store,
            logger_factory,
        )
        result = run.execute()
        if on_error == "raise" and result.errors:
            first = min(result.errors)
            raise result.errors[first]
        return result

    def call_packet(
        self, packet: Packet, tag: Tag | None = None, **options: Any
    ) -> tuple[Packet | SkipType, RowStatus]:
        """Run the function on one packet; returns the output packet (or ``SKIP``) and
        whether it was computed or came from the store."""
        tag = tag if tag is not None else Tag({"row": 0}, {"row": int})
        tags, values = tag.as_table(system_tags=True), packet.as_table()
        table = pa.Table.from_arrays(
            [*tags.columns, *values.columns], names=[*tags.column_names, *values.column_names]
        )
        result = self.execute(TableStream(table, tag.keys()), **options)
        status = result.status[0]
        if status is RowStatus.SKIPPED:
            return SKIP, status
        ((_, out),) = list(result.stream)
        return out, status


@dataclass
class _Unique:
    """Distinct argument packets of a run."""

    hashes: pa.Array  # one per distinct argument packet, in first-occurrence order
    of_row: np.ndarray  # for every input row, its index into ``hashes``
    first_row: np.ndarray  # for every distinct packet, the first input row holding it


class _Run:
    """One execution of a pod over a stream (kept apart so ``FunctionPod`` stays readable)."""

    def __init__(
        self,
        pod: FunctionPod,
        stream: Stream,
        executor: Executor,
        store: Store | None,
        logger_factory: LoggerFactory | None,
    ) -> None:
        self.pod = pod
        self.fn = pod.packet_function
        self.stream = stream
        self.executor = executor
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
        self.captures: dict[int, CallCapture] = {}

    def execute(self) -> PodResult:
        if self.table.num_rows == 0:
            empty = self._empty_results()
            return PodResult(self.output(empty, np.zeros(0, np.int64)), np.zeros(0, np.int8))
        unique = _distinct(row_hash_strings(self.args))
        stored = self.cache.lookup(unique.hashes) if self.cache else self._empty_results()
        hit = pc.is_in(unique.hashes, stored.column(RECORD_ID)).to_numpy(zero_copy_only=False)
        misses = np.flatnonzero(~hit)
        computed = self.compute(unique, misses)
        results = pa.concat_tables([stored, computed]) if computed.num_rows else stored
        # For every distinct argument packet, its result row (-1: its call failed).
        position = (
            pc.index_in(unique.hashes, results.column(RECORD_ID))
            .fill_null(-1)
            .to_numpy(zero_copy_only=False)
        )
        codes = self.codes(unique, results, position, misses)
        ran = np.zeros(len(codes), dtype=bool)
        ran[unique.first_row[misses]] = True
        return PodResult(
            self.output(results, position[unique.of_row]),
            codes,
            self.errors,
            self.captures,
            ran,
            unique.hashes.take(pa.array(unique.of_row)),
        )

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
        starts: memory stays bounded and a crash loses at most the batch in flight.
        """
        batches = [
            self._compute_batch(unique, misses[start : start + CALL_BATCH])
            for start in range(0, len(misses), CALL_BATCH)
        ]
        return pa.concat_tables(batches) if batches else self._empty_results()

    def _compute_batch(self, unique: _Unique, misses: np.ndarray) -> pa.Table:
        rows = unique.first_row[misses]
        selected = self.args.take(pa.array(rows))
        names = self.call_order
        columns = [column_to_python(selected.column(n), self.args_schema[n]) for n in names]
        with paused_gc():  # this batch's per-call Python objects (see paused_gc)
            # Positional tuples are cheaper to build than keyword dicts, where the signature
            # allows them (see PacketFunction.positional).
            arguments: list[Any] = list(zip(*columns, strict=True))
            if not self.positional:
                arguments = [dict(zip(names, values, strict=True)) for values in arguments]
            outcomes = self.executor.execute(self.fn.fn, arguments, live=self.pod.live_output)
            if self.logger_factory is not None:
                for position, outcome in enumerate(outcomes):
                    kwargs = dict(zip(names, (c[position] for c in columns), strict=True))
                    self._log(int(rows[position]), kwargs, outcome.capture)
            outputs, skipped, failures = self.fn.split_outputs([o.value for o in outcomes])
            failures.update({i: o.error for i, o in enumerate(outcomes) if o.error is not None})
            failed_captures = {i: outcomes[i].capture for i in failures}
            # Drop the per-call objects before the collector resumes, so it never scans them.
            del arguments, outcomes, columns
            typed = self._typed_outputs(outputs, skipped, failures)
            del outputs
        for position, error in failures.items():
            row = int(rows[position])
            self.captures[row] = failed_captures.get(position) or CallCapture()
            self._fail(row, error)
        good = np.setdiff1d(np.arange(len(rows)), np.fromiter(failures, np.int64, len(failures)))
        hashes = unique.hashes.take(pa.array(misses[good], pa.int64()))
        call_ids = pc.utf8_slice_codeunits(hashes, 5, 37)  # "pod1:" + 32 hex digits
        origin = f"{self.fn.name}@{self.fn.content_hash().short(16)}"
        tokens = {k: token_array("call", origin, call_ids, k) for k in self.fn.output_keys}
        skipped_array = pa.array(skipped, pa.bool_()).take(pa.array(good))
        if self.cache is not None:
            return self.cache.record(hashes, typed, tokens, skipped_array)
        return _results_table(self.fn, hashes, typed, tokens, skipped_array)

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
                except InputValidationError as exc:
                    failures[i] = OutputValidationError(f"{self.fn.name} returned {exc}")

    def _fail(self, row: int, error: BaseException) -> None:
        tag = self._tag(row)
        failure = FunctionCallError(
            f"{self.fn.name} failed on the row with tag {tag.as_dict()}: "
            f"{type(error).__qualname__}: {error}"
        )
        failure.__cause__ = error
        self.errors[row] = failure

    def _tag(self, row: int) -> Tag:
        tags, _ = self.stream.output_schema()
        values = self.table.select(list(tags)).slice(row, 1).to_pylist()[0]
        return Tag(values, tags, validate=False)

    def _log(self, row: int, kwargs: dict[str, Any], capture: CallCapture) -> None:
        if self.logger_factory is None:
            return
        packet = Packet(kwargs, self.args_schema, validate=False)
        self.logger_factory(self._tag(row), packet).record(capture)

    # -------------------------------------------------------------- assembling
    def codes(
        self, unique: _Unique, results: pa.Table, position: np.ndarray, misses: np.ndarray
    ) -> np.ndarray:
        """Per input row, the index of its ``RowStatus`` (see ``PodResult``)."""
        skipped = np.asarray(results.column(SKIPPED_COLUMN).to_numpy(zero_copy_only=False))
        of_row = position[unique.of_row]
        codes = np.full(len(of_row), _STATUSES.index(RowStatus.CACHED), dtype=np.int8)
        computed_rows = unique.first_row[misses]
        codes[computed_rows] = _STATUSES.index(RowStatus.COMPUTED)
        found = of_row >= 0
        skipped_row = np.zeros(len(of_row), dtype=bool)
        skipped_row[found] = skipped[of_row[found]]
        codes[skipped_row] = _STATUSES.index(RowStatus.SKIPPED)
        codes[~found] = _STATUSES.index(RowStatus.FAILED)
        return codes

    def output(self, results: pa.Table, result_of_row: np.ndarray) -> TableStream:
        """Tags of the rows that produced a packet, with their output packets."""
        found = result_of_row >= 0
        taken = results.take(pa.array(result_of_row[found], pa.int64()))
        keep = ~np.asarray(taken.column(SKIPPED_COLUMN).to_numpy(zero_copy_only=False), bool)
        rows = np.flatnonzero(found)[keep]
        taken = taken.filter(pa.array(keep, pa.bool_()))
        table = self.table.select(list(self.tag_names)).take(pa.array(rows, pa.int64()))
        for field_ in self.fn.output_schema.to_arrow():
            table = table.append_column(field_, taken.column(field_.name).cast(field_.type))
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


def _join(streams: Sequence[Stream]) -> Stream:
    # Function pods and operators are one layer; a multi-input pod is defined as a Join.
    from podline.operators import Join

    joined: Stream = Join()(*streams)
    return joined


class FunctionPodStream(ProducedStream):
    """The lazy result of applying a ``FunctionPod``; ``result`` holds the last run's details."""

    producer: FunctionPod

    def __init__(self, pod: FunctionPod, stream: Stream, *, label: str | None = None) -> None:
        super().__init__(pod, (stream,), label=label)
        self.result: PodResult | None = None

    def _compute(self) -> TableStream:
        self.result = self.producer.execute(self.upstreams[0])
        return self.result.stream


def function_pod(
    output_keys: str | Sequence[str],
    *,
    version: str = "v0",
    label: str | None = None,
    executor: Executor | None = None,
    result_store: Store | None = None,
    name: str | None = None,
    input_schema: Mapping[str, PodType] | None = None,
    output_schema: Mapping[str, PodType] | None = None,
    identity: IdentityMode = "code",
    live_output: bool = True,
) -> Callable[[Callable[..., Any]], FunctionPod]:
    """Turn a typed function into a ``FunctionPod``.

    >>> @function_pod("area", version="v1")
    ... def area(width: float, height: float) -> float:
    ...     return width * height
    >>> area(2.0, 3.0)  # still the plain function
    6.0

    ``area.pod(stream)`` applies it to a stream. See ``PacketFunction`` for the identity modes.
    """

    def decorate(fn: Callable[..., Any]) -> FunctionPod:
        packet_function = PacketFunction(
            fn,
            output_keys=output_keys,
            version=version,
            name=name,
            input_schema=input_schema,
            output_schema=output_schema,
            identity=identity,
        )
        pod = FunctionPod(
            packet_function,
            executor=executor,
            result_store=result_store,
            label=label,
            live_output=live_output,
        )
        for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
            if hasattr(fn, attribute):
                setattr(pod, attribute, getattr(fn, attribute))
        pod.__wrapped__ = fn  # type: ignore[attr-defined]
        return pod

    return decorate
