"""Observers: how a run reports what happens, node by node and packet by packet.

Every hook takes keyword arguments only and accepts ``**kwargs``, so podline can add an
argument to a hook without breaking observers written against an older version: subclass
``Observer`` (which implements every hook as a no-op) and override the hooks you need, keeping
``**kwargs`` in their signatures. ``ObserverProtocol`` is what the orchestrators rely on.

Hooks receive node labels and hashes, never node objects. ``contextualize(*identity_path)`` is
called once per node and returns the observer to use for that node (a node-bound view, or the
observer itself); ``create_packet_logger(tag, packet)`` returns the logger that receives a
computed call's capture.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from podline.datagrams import Packet, Tag
from podline.executors import CallCapture
from podline.schema import Schema

__all__ = [
    "CompositeObserver",
    "NoOpObserver",
    "NoOpPacketLogger",
    "Observer",
    "ObserverProtocol",
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

    def contextualize(self, *identity_path: str) -> ObserverProtocol: ...

    def create_packet_logger(self, tag: Tag, packet: Packet) -> Any: ...


class Observer:
    """Base class of observers: every hook is a no-op; override the ones you need.

    Keep ``**kwargs`` in overriding signatures so that new hook arguments never break you.
    ``observes_packets = False`` tells nodes they may skip building per-packet ``Tag`` and
    ``Packet`` objects for the packet hooks.
    """

    observes_packets: bool = True

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

    def contextualize(self, *identity_path: str) -> Observer:
        """The observer to use for the node at ``identity_path`` (default: this one)."""
        return self

    def create_packet_logger(self, tag: Tag, packet: Packet) -> Any:
        """The logger that receives the capture of this packet's call."""
        return _NO_OP_LOGGER


class NoOpObserver(Observer):
    """Observes nothing: the default, so orchestrators never need ``None`` checks."""

    observes_packets = False


class CompositeObserver(Observer):
    """Fans every hook out to several observers, in order."""

    def __init__(self, *observers: ObserverProtocol) -> None:
        self.observers = tuple(observers)
        self.observes_packets = any(getattr(o, "observes_packets", True) for o in observers)

    def _fan_out(self, hook: str, kwargs: dict[str, Any]) -> None:
        for observer in self.observers:
            getattr(observer, hook)(**kwargs)

    def on_run_start(self, **kwargs: Any) -> None:
        self._fan_out("on_run_start", kwargs)

    def on_run_end(self, **kwargs: Any) -> None:
        self._fan_out("on_run_end", kwargs)

    def on_node_start(self, **kwargs: Any) -> None:
        self._fan_out("on_node_start", kwargs)

    def on_node_end(self, **kwargs: Any) -> None:
        self._fan_out("on_node_end", kwargs)

    def on_packet_start(self, **kwargs: Any) -> None:
        self._fan_out("on_packet_start", kwargs)

    def on_packet_end(self, **kwargs: Any) -> None:
        self._fan_out("on_packet_end", kwargs)

    def on_packet_crash(self, **kwargs: Any) -> None:
        self._fan_out("on_packet_crash", kwargs)

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
