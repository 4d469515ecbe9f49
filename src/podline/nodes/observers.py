"""Observers: how a run reports what happens, node by node and packet by packet.

Every hook takes keyword arguments only and accepts ``**kwargs``, so podline can add an
argument to a hook without breaking observers written against an older version: subclass
``Observer`` (which implements every hook as a no-op) and override the hooks you need, keeping
``**kwargs`` in their signatures. ``ObserverProtocol`` is what the orchestrators rely on.

Hooks receive node labels and hashes, never node objects. ``contextualize(*identity_path)`` is
called once per node and returns the observer to use for that node (a node-bound view, or the
observer itself); ``create_packet_logger(tag, packet)`` returns the logger that receives a
computed call's capture.

Function nodes report packets in batches, through ``on_packets_start(batch=PacketBatch)`` and
``on_packets_end(batch=PacketOutcomes)`` (see ``podline.nodes.packets``): building a ``Tag`` and
a ``Packet`` per row costs more than many functions do. ``Observer`` turns the batch hooks into
the per-packet hooks (``on_packet_start``, ``on_packet_end``, ``on_packet_crash`` and the packet
loggers), in input order; an observer that needs speed overrides the batch hooks and reads
columns. An observer that implements only ``ObserverProtocol`` gets the same translation.

Whether an observer watches packets (``observes_packets``) follows from what its class
overrides, whatever its base: a subclass of ``Observer`` or ``NoOpObserver`` that overrides
none of the packet hooks lets nodes skip building per-packet objects; one that overrides any
of them gets them. A class that sets ``observes_packets`` in its own body keeps that value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from podline.datagrams import Packet, Tag
from podline.executors import CallCapture
from podline.functions import RowStatus
from podline.nodes.packets import PacketBatch, PacketOutcomes
from podline.schema import Schema

__all__ = [
    "CompositeObserver",
    "NoOpObserver",
    "NoOpPacketLogger",
    "NodeObserver",
    "Observer",
    "ObserverProtocol",
    "with_batch_hooks",
]


class NoOpPacketLogger:
    """A packet logger that discards what it receives."""

    def record(self, capture: CallCapture) -> None:
        """Ignore the capture."""


_NO_OP_LOGGER = NoOpPacketLogger()


@runtime_checkable
class ObserverProtocol(Protocol):
    """The hooks an orchestrator calls during a run."""

    def on_run_start(self, *, run_id: str, pipeline_uri: str, **kwargs: Any) -> None: ...

    def on_run_end(self, *, run_id: str, **kwargs: Any) -> None: ...

    def on_node_start(
        self, *, node_label: str, node_hash: str, tag_schema: Schema, **kwargs: Any
    ) -> None: ...

    def on_node_end(self, *, node_label: str, node_hash: str, **kwargs: Any) -> None: ...

    def on_packet_start(
        self, *, node_label: str, node_hash: str, tag: Tag, packet: Packet, **kwargs: Any
    ) -> None: ...

    def on_packet_end(
        self,
        *,
        node_label: str,
        node_hash: str,
        tag: Tag,
        input_packet: Packet,
        output_packet: Packet | None,
        cached: bool,
        **kwargs: Any,
    ) -> None: ...

    def on_packet_crash(
        self,
        *,
        node_label: str,
        node_hash: str,
        tag: Tag,
        packet: Packet,
        error: BaseException,
        **kwargs: Any,
    ) -> None: ...

    def on_commit(self, *, node_label: str, node_hash: str, **kwargs: Any) -> None: ...

    def contextualize(self, *identity_path: str) -> ObserverProtocol: ...

    def create_packet_logger(self, tag: Tag, packet: Packet) -> Any: ...


@runtime_checkable
class NodeObserver(Protocol):
    """What a function node calls: the batch hooks, ``on_commit``, and whether anyone
    watches packets. ``with_batch_hooks`` turns any ``ObserverProtocol`` into one."""

    observes_packets: bool

    def on_packets_start(
        self, *, node_label: str, node_hash: str, batch: PacketBatch, **kwargs: Any
    ) -> None: ...

    def on_packets_end(
        self, *, node_label: str, node_hash: str, batch: PacketOutcomes, **kwargs: Any
    ) -> None: ...

    def on_commit(self, *, node_label: str, node_hash: str, **kwargs: Any) -> None: ...


#: The hooks that take packets: overriding any of them makes an observer watch packets.
PACKET_HOOKS = (
    "on_packet_start",
    "on_packet_end",
    "on_packet_crash",
    "on_packets_start",
    "on_packets_end",
    "create_packet_logger",
)


class Observer:
    """Base class of observers: every hook is a no-op; override the ones you need.

    Keep ``**kwargs`` in overriding signatures so that new hook arguments never break you.
    ``observes_packets`` tells nodes whether to build per-packet ``Tag`` and ``Packet``
    objects for the packet hooks. It is derived per class from what the class overrides (see
    the module docs); a class (or an instance) may set it explicitly.
    """

    observes_packets: bool = False  # this class overrides nothing

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Decided per class, never inherited: a subclass of an observer that opted out of
        # packets still gets them once it overrides a packet hook.
        if "observes_packets" not in cls.__dict__:
            cls.observes_packets = overrides_packet_hooks(cls)

    def on_run_start(self, *, run_id: str, pipeline_uri: str, **kwargs: Any) -> None:
        """A run begins (``pipeline_uri`` names the pipeline and its DAG snapshot)."""

    def on_run_end(self, *, run_id: str, **kwargs: Any) -> None:
        """A run ended; called whether it succeeded or not."""

    def on_node_start(
        self, *, node_label: str, node_hash: str, tag_schema: Schema, **kwargs: Any
    ) -> None:
        """A node starts; ``tag_schema`` includes its system tags."""

    def on_node_end(self, *, node_label: str, node_hash: str, **kwargs: Any) -> None:
        """A node finished all its work."""

    def on_packet_start(
        self, *, node_label: str, node_hash: str, tag: Tag, packet: Packet, **kwargs: Any
    ) -> None:
        """A function node takes up one input packet."""

    def on_packet_end(
        self,
        *,
        node_label: str,
        node_hash: str,
        tag: Tag,
        input_packet: Packet,
        output_packet: Packet | None,
        cached: bool,
        **kwargs: Any,
    ) -> None:
        """An input packet is done: ``output_packet`` is None when it was skipped;
        ``cached`` says it was not computed in this run."""

    def on_packet_crash(
        self,
        *,
        node_label: str,
        node_hash: str,
        tag: Tag,
        packet: Packet,
        error: BaseException,
        **kwargs: Any,
    ) -> None:
        """An input packet's call failed with ``error``."""

    def on_packets_start(
        self, *, node_label: str, node_hash: str, batch: PacketBatch, **kwargs: Any
    ) -> None:
        """A batch of calls is about to compute these packets (default: ``on_packet_start``
        for each)."""
        _start_each(self, node_label=node_label, node_hash=node_hash, batch=batch)

    def on_packets_end(
        self, *, node_label: str, node_hash: str, batch: PacketOutcomes, **kwargs: Any
    ) -> None:
        """These packets are done (default: per packet in input order, the start hook if it
        did not fire yet, the packet logger of a computed call, then the end or crash hook)."""
        _end_each(self, node_label=node_label, node_hash=node_hash, batch=batch)

    def on_commit(self, *, node_label: str, node_hash: str, **kwargs: Any) -> None:
        """The node committed the results of the packets reported so far (at least every
        few seconds while calls finish, and before an interruption propagates): persist
        what you buffered about them now, so that a crash cannot lose it."""

    def contextualize(self, *identity_path: str) -> Observer:
        """The observer to use for the node at ``identity_path`` (default: this one)."""
        return self

    def create_packet_logger(self, tag: Tag, packet: Packet) -> Any:
        """The logger that receives the capture of this packet's call."""
        return _NO_OP_LOGGER


def overrides_packet_hooks(cls: type) -> bool:
    """Whether ``cls`` defines any packet hook other than ``Observer``'s no-op one."""
    return any(getattr(cls, hook, None) is not getattr(Observer, hook) for hook in PACKET_HOOKS)


class NoOpObserver(Observer):
    """Observes nothing: the default, so orchestrators never need ``None`` checks.

    A subclass that overrides a hook gets it, packet hooks included (see the module docs).
    """


def _fanning_out(hook: str) -> Callable[..., None]:
    """A ``CompositeObserver`` hook that hands its arguments to every observer in turn."""

    def fan_out(self: CompositeObserver, **kwargs: Any) -> None:
        self._fan_out(hook, kwargs)

    fan_out.__name__ = hook
    return fan_out


class CompositeObserver(Observer):
    """Fans every hook out to several observers, in order."""

    def __init__(self, *observers: ObserverProtocol) -> None:
        self.observers = tuple(observers)
        self.observes_packets = any(getattr(o, "observes_packets", True) for o in observers)
        self._batched = tuple(with_batch_hooks(o) for o in observers)

    def _fan_out(self, hook: str, kwargs: dict[str, Any]) -> None:
        for observer in self._batched:
            getattr(observer, hook)(**kwargs)

    on_run_start = _fanning_out("on_run_start")
    on_run_end = _fanning_out("on_run_end")
    on_node_start = _fanning_out("on_node_start")
    on_node_end = _fanning_out("on_node_end")
    on_packets_start = _fanning_out("on_packets_start")
    on_packets_end = _fanning_out("on_packets_end")
    on_packet_start = _fanning_out("on_packet_start")
    on_packet_end = _fanning_out("on_packet_end")
    on_packet_crash = _fanning_out("on_packet_crash")
    on_commit = _fanning_out("on_commit")

    def contextualize(self, *identity_path: str) -> CompositeObserver:
        return CompositeObserver(*(o.contextualize(*identity_path) for o in self.observers))

    def create_packet_logger(self, tag: Tag, packet: Packet) -> Any:
        loggers = [o.create_packet_logger(tag, packet) for o in self.observers]
        real = [logger for logger in loggers if not isinstance(logger, NoOpPacketLogger)]
        if not real:
            return _NO_OP_LOGGER
        return real[0] if len(real) == 1 else _FanOutLogger(real)


class _FanOutLogger:
    """Hands one capture to several loggers."""

    def __init__(self, loggers: list[Any]) -> None:
        self.loggers = loggers

    def record(self, capture: CallCapture) -> None:
        for logger in self.loggers:
            logger.record(capture)


class _PacketHooks:
    """An observer that implements only ``ObserverProtocol``, given the batch hooks."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        # An observer written against the protocol alone watches packets unless it says not.
        self.observes_packets = bool(getattr(inner, "observes_packets", True))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def on_packets_start(self, **kwargs: Any) -> None:
        _start_each(self._inner, **kwargs)

    def on_packets_end(self, **kwargs: Any) -> None:
        _end_each(self._inner, **kwargs)

    def on_commit(self, **kwargs: Any) -> None:
        if hasattr(self._inner, "on_commit"):  # observers older than the hook lack it
            self._inner.on_commit(**kwargs)

    def contextualize(self, *identity_path: str) -> Any:
        return with_batch_hooks(self._inner.contextualize(*identity_path))


_BATCH_HOOKS = ("on_packets_start", "on_packets_end", "on_commit")


def with_batch_hooks(observer: Any) -> Any:
    """``observer`` itself if it is a ``NodeObserver`` already (every ``Observer`` is), else
    a view of it that has the batch hooks, ``on_commit`` and ``observes_packets``."""
    if isinstance(observer, NodeObserver) and all(hasattr(observer, h) for h in _BATCH_HOOKS):
        return observer
    return _PacketHooks(observer)


def _start_each(observer: Any, *, node_label: str, node_hash: str, batch: PacketBatch) -> None:
    for tag, packet in batch.rows():
        observer.on_packet_start(node_label=node_label, node_hash=node_hash, tag=tag, packet=packet)


_FAILED = tuple(RowStatus).index(RowStatus.FAILED)


def _end_each(observer: Any, *, node_label: str, node_hash: str, batch: PacketOutcomes) -> None:
    logs = _has_packet_loggers(observer)
    outputs = batch.output_packets()
    codes, computed, started = batch.codes.tolist(), batch.computed.tolist(), batch.started
    for row, (tag, packet) in enumerate(batch.rows()):
        if not started[row]:
            observer.on_packet_start(
                node_label=node_label, node_hash=node_hash, tag=tag, packet=packet
            )
        capture = batch.capture(row) if computed[row] else None
        if logs and capture is not None:
            observer.create_packet_logger(tag, packet).record(capture)
        if codes[row] == _FAILED:
            error = batch.errors.get(row)
            observer.on_packet_crash(
                node_label=node_label,
                node_hash=node_hash,
                tag=tag,
                packet=packet,
                error=error if error is not None else RuntimeError("failed with an equal row"),
            )
            continue
        observer.on_packet_end(
            node_label=node_label,
            node_hash=node_hash,
            tag=tag,
            input_packet=packet,
            output_packet=outputs[row],
            cached=not computed[row],
        )


def _has_packet_loggers(observer: Any) -> bool:
    """Whether ``observer`` may hand out a real packet logger (asking costs per packet)."""
    factory = getattr(type(observer), "create_packet_logger", None)
    return factory is not None and factory is not Observer.create_packet_logger
