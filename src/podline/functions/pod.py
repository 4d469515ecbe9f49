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

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from podline.datagrams import Packet, Tag
from podline.errors import FunctionIdentityError, InputValidationError, format_names
from podline.executors import CallPolicy, Executor, LocalExecutor
from podline.executors.policy import DEFAULT_OUTPUT_LIMIT
from podline.functions.code_diff import code_changes
from podline.functions.durability import CommitClock
from podline.functions.execution import OnError, PartReport, PodRun
from podline.functions.memo import ResultCache
from podline.functions.packet_function import SKIP, IdentityMode, PacketFunction, SkipType
from podline.functions.results import LoggerFactory, PacketLogger, PodResult, RowStatus
from podline.hashing import ContentHash, IdentityMixin
from podline.schema import PodType, Schema, is_assignable, type_name
from podline.stores import Store
from podline.streams import ProducedStream, Stream, TableStream, invoke

__all__ = [
    "FunctionPod",
    "FunctionPodStream",
    "PacketLogger",
    "PodResult",
    "RowStatus",
    "function_pod",
]

#: Why a column's type is None: a source read it from data with no value in it (a CSV file
#: with a header only, or a column left empty in every row).
_NO_VALUES = (
    " (the source found no value in it to take a type from: give the source the column's "
    "type, e.g. CSVSource(..., convert_options=pyarrow.csv.ConvertOptions(column_types=...)))"
)


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
        policy: CallPolicy | None = None,
    ) -> None:
        self.packet_function = packet_function
        self.executor = executor
        self.result_store = result_store
        #: How each call runs: time limit, retries, captured output (``live_output`` wins).
        self.policy = replace(policy or CallPolicy(), live=live_output)
        self.input_map = dict(inputs or {})
        unknown = set(self.input_map) - set(packet_function.input_schema)
        if unknown:
            raise InputValidationError(
                f"{packet_function.name}: inputs= maps unknown parameter(s) "
                f"{format_names(unknown)}; parameters are "
                f"{format_names(packet_function.input_schema)}"
            )
        self._label = label

    @property
    def live_output(self) -> bool:
        """Whether calls' output is echoed as it happens."""
        return self.policy.live

    # ------------------------------------------------------------------ plain function
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.packet_function.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"FunctionPod({self.packet_function.name!r})"

    @property
    def label(self) -> str:
        return self._label or self.packet_function.name

    # ------------------------------------------------------------------ identity
    #: The function's content hash the cached hashes were made with.
    _function_hash: ContentHash | None = None

    def content_hash(self) -> ContentHash:
        self._follow_function()
        return super().content_hash()

    def pipeline_hash(self) -> ContentHash:
        self._follow_function()
        return super().pipeline_hash()

    def _follow_function(self) -> None:
        # The function's identity may be renewed (``PacketFunction.refresh``): the pod's
        # hashes, made from it, are renewed with it.
        function = self.packet_function.content_hash()
        if function != self._function_hash:
            self._content_hash_cache = self._pipeline_hash_cache = None
            self._function_hash = function

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
        **policy: Any,
    ) -> FunctionPod:
        """A copy with some settings replaced (``None`` keeps the current one); keyword
        arguments of ``CallPolicy`` (``timeout``, ``retries``, ``retry_on``, ``backoff``,
        ``output_limit``, ``live_output``) replace those of its policy."""
        if "live_output" in policy:
            policy["live"] = policy.pop("live_output")
        return FunctionPod(
            self.packet_function,
            executor=executor or self.executor,
            result_store=result_store or self.result_store,
            inputs=self.input_map if inputs is None else inputs,
            label=label or self._label,
            live_output=policy.get("live", self.live_output),
            policy=replace(self.policy, **policy),
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
        # In a notebook a later cell may have changed what the function uses: what is
        # built now gets the identity of the code that will run.
        self.packet_function.refresh()
        pod = self if inputs is None else self.with_options(inputs=inputs)
        stream = streams[0] if len(streams) == 1 else _join(streams)
        pod.check(stream, strict=strict)
        return invoke(FunctionPodStream(pod, stream, label=label))

    def check(self, stream: Stream, *, strict: bool = False) -> None:
        """Raise ``InputValidationError`` listing every missing, extra or mistyped column.

        A parameter reads a tag column only when ``inputs=`` maps it there explicitly; one
        that merely shares a tag's name is an error saying how to pass the tag's values.
        """
        tags, packets = stream.output_schema()
        fn = self.packet_function
        # What the parameters may read: packet columns, and tag columns mapped explicitly.
        readable = {**packets, **{c: tags[c] for c in self.input_map.values() if c in tags}}
        tag_named = [p for p in fn.input_schema if p in tags and p not in self.input_map]
        problems = _tag_named(fn.name, tag_named)
        missing = [
            f"{self._column(p)!r}" + (f" (for parameter {p!r})" if self._column(p) != p else "")
            for p in fn.input_schema.required
            if self._column(p) not in readable and p not in tag_named
        ]
        if missing:
            problems.append(f"missing column(s) {', '.join(sorted(missing))}")
        mistyped = sorted(
            f"{column!r} is {type_name(readable[column])}, parameter {p!r} takes {type_name(tp)}"
            + (_NO_VALUES if readable[column] is type(None) else "")
            for p, tp in fn.input_schema.items()
            if (column := self._column(p)) in readable and not is_assignable(readable[column], tp)
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
        before_calls: Callable[[np.ndarray], None] | None = None,
        keep_captures: bool = False,
        memo: ResultCache | None = None,
        timeout: float | None = None,
        clock: CommitClock | None = None,
        report: PartReport | None = None,
        recompute: bool = False,
        stop: threading.Event | None = None,
        fail_fast: bool = False,
    ) -> PodResult:
        """Run the function over every row of ``stream`` (see the module docs).

        With ``on_error="raise"`` the first failing row (in input order) raises a
        ``FunctionCallError`` after every successful result has been stored; with
        ``"continue"`` failing rows are left out and reported in ``PodResult.errors``.
        ``before_calls(rows)`` is told, before each batch of calls starts, which input rows
        that batch computes. ``keep_captures=True`` keeps every computed call's capture in
        ``PodResult.captures`` (else only failed calls' captures are kept). ``memo``, a
        result cache to use instead of one on ``result_store``, lets several executions share
        one (a node's batches share a preloaded one). ``timeout`` limits each call where the
        pod's policy sets no limit. ``clock`` and ``report`` set the durability window and
        receive its early parts (see ``PodRun``). ``recompute=True`` runs every call again,
        replacing the stored results. Once ``stop`` is set no call starts any more: what
        finished is stored, then ``RunCancelledError`` is raised. ``fail_fast=True``: the
        first call that raises stops the calls the same way, and its ``FunctionCallError``
        is raised once what finished is stored and reported (an output found wrong after its
        call, such as one of the wrong type, is reported as ``on_error`` says).
        """
        policy = self.policy
        if timeout is not None and policy.timeout is None:
            policy = replace(policy, timeout=timeout)
        run = PodRun(
            self,
            stream,
            executor=executor or self.executor or LocalExecutor(),
            store=result_store if result_store is not None else self.result_store,
            logger_factory=logger_factory,
            before_calls=before_calls,
            keep_captures=keep_captures,
            memo=memo,
            policy=policy,
            clock=clock,
            report=report,
            recompute=recompute,
            stop=stop,
            fail_fast=fail_fast,
        )
        result = run.execute()
        if on_error == "raise" and result.errors:
            first = min(result.errors)
            raise result.errors[first]
        return result

    def preview(
        self, stream: Stream, *, result_store: Store | None = None, recompute: bool = False
    ) -> tuple[PodResult, np.ndarray]:
        """What ``execute(stream, result_store=..., recompute=...)`` would do, calling nothing
        and writing nothing: see ``PodRun.preview``."""
        run = PodRun(
            self,
            stream,
            executor=self.executor or LocalExecutor(),
            store=result_store if result_store is not None else self.result_store,
            logger_factory=None,
            recompute=recompute,
        )
        return run.preview()

    def unserved(self, stream: Stream, *, memo: ResultCache) -> np.ndarray:
        """Per row of ``stream``, whether ``memo`` would not serve its result now: none is
        stored, or its output files no longer hold what was stored (see ``PodRun.unserved``).
        Calls nothing, writes nothing."""
        run = PodRun(
            self, stream, executor=LocalExecutor(), store=None, logger_factory=None, memo=memo
        )
        return run.unserved()

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


def _tag_named(function: str, parameters: list[str]) -> list[str]:
    """The problem of parameters named like tag columns (none: an empty list)."""
    if not parameters:
        return []
    names = format_names(parameters)
    mapping = ", ".join(f"{p!r}: {p!r}" for p in sorted(parameters))
    return [
        f"parameter(s) {names} name tag column(s), and a function receives packet columns "
        f"only; to pass the tag values, map them explicitly: "
        f"{function}.pod(stream, inputs={{{mapping}}}) (the values then enter the memo key)"
    ]


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
        #: The function's identity this stream was built with (see ``check_code``).
        self.function_hash = pod.packet_function.content_hash()
        self._function_code = pod.packet_function.code

    def check_code(self, node: str | None = None) -> None:
        """Raise ``FunctionIdentityError`` if the code the function uses changed since this
        stream was built (a notebook cell defined a helper or a constant anew): its identity,
        and so every result it reads or stores, would not be that of the code that runs."""
        function = self.producer.packet_function
        function.refresh()
        if function.content_hash() == self.function_hash:
            return
        built, now = self._function_code, function.code
        changes = code_changes(built.structure, now.structure) if built and now else []
        what = f"node {node!r}" if node is not None else f"this stream of {function.name!r}"
        raise FunctionIdentityError(
            f"{what}: the code of function {function.name!r} changed after it was built "
            f"({'; '.join(changes) or 'its code changed'}); build it again (run "
            "the cell that applies the pod, or the `with Pipeline(...)` block, again) to "
            "compute with the current code"
        )

    def _compute(self) -> TableStream:
        self.check_code()
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
    depends_on: Sequence[str] = (),
    live_output: bool = True,
    timeout: float | None = None,
    retries: int = 0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = (OSError,),
    backoff: float = 0.5,
    output_limit: int | None = DEFAULT_OUTPUT_LIMIT,
) -> Callable[[Callable[..., Any]], FunctionPod]:
    """Turn a typed function into a ``FunctionPod``.

    ``timeout`` (seconds) fails a call that runs longer; ``retries`` gives a call that fails
    with one of ``retry_on`` that many more attempts, ``backoff`` seconds apart (doubling);
    ``output_limit`` bounds the stdout and stderr kept per call (see ``CallPolicy``).
    ``depends_on`` names installed distributions whose versions join the identity, so that
    upgrading them recomputes (``depends_on=["numpy"]``; see docs/identity.md).

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
            depends_on=depends_on,
        )
        pod = FunctionPod(
            packet_function,
            executor=executor,
            result_store=result_store,
            label=label,
            live_output=live_output,
            policy=CallPolicy(
                timeout=timeout,
                retries=retries,
                retry_on=retry_on if isinstance(retry_on, tuple) else (retry_on,),
                backoff=backoff,
                output_limit=output_limit,
            ),
        )
        for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
            if hasattr(fn, attribute):
                setattr(pod, attribute, getattr(fn, attribute))
        pod.__wrapped__ = fn  # type: ignore[attr-defined]
        return pod

    return decorate
