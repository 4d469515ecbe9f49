"""Progress bars for pipeline runs: ``ProgressObserver`` and ``progress_enabled``.

This module owns how a run's progress is shown to a person: one bar per function node,
counting its computed, cached, skipped and failed packets, with rate and ETA.

Cost model. Function nodes report packets in batches; this observer counts a batch from its
columns (``on_packets_end``), so it never asks for per-packet objects, and its per-packet
hooks (for callers that use them) only bump an integer. Hooks never format, write or read the
clock. A daemon thread renders every open bar each ``refresh_seconds`` (and once more when the
node ends), so a fully cached node costs one or two writes in total, and a bar keeps its
elapsed time ticking while a node computes a long batch between two batches of hooks.

Rendering uses ``tqdm`` (the ``podline[progress]`` extra) when it is installed. Without it,
the observer still works: it writes one summary line per node when the node ends.

Totals. Orchestrators pass a function node's number of input packets as
``on_node_start(..., total=n)``, so bars get a percentage and an ETA; without it (a caller that
does not pass it) a bar is indeterminate (count, rate and elapsed time).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Literal, Protocol

import numpy as np

from podline.datagrams import Packet, Tag
from podline.errors import ConfigurationError
from podline.functions import RowStatus
from podline.nodes.observers import Observer
from podline.nodes.packets import PacketBatch, PacketOutcomes

_CACHED_CODE = tuple(RowStatus).index(RowStatus.CACHED)  # codes up to here produced output

__all__ = ["ProgressObserver", "progress_enabled"]

Backend = Literal["auto", "tqdm", "plain"]

#: Values of the ``CI`` variable that do not mean "running in CI".
_NOT_CI = frozenset({"", "0", "false", "no", "off"})


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in _NOT_CI


def _in_jupyter() -> bool:
    # Only look: importing IPython here would slow down every plain script.
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    # Jupyter kernels (notebook, lab, VS Code) run a ZMQ shell; a terminal IPython does not
    # need special casing since its stderr is a TTY.
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _is_tty(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    if not callable(isatty):
        return False
    try:
        return bool(isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def progress_enabled(stream: IO[str] | None = None) -> bool:
    """Whether progress bars should be drawn on ``stream`` (default: ``sys.stderr``).

    False when the ``CI`` environment variable is set (to anything but ``""``, ``0``,
    ``false``, ``no`` or ``off``); otherwise True when running in a Jupyter kernel (and
    ``stream`` is the notebook's stdout or stderr) or when ``stream`` is a terminal; False
    when the output is piped or redirected to a file.
    """
    if _in_ci():
        return False
    if _in_jupyter() and stream in (None, sys.stdout, sys.stderr):
        return True
    return _is_tty(sys.stderr if stream is None else stream)


# ----------------------------------------------------------------------------- rendering


class _Bar(Protocol):
    """What the observer needs from a bar: a renderer, tqdm-backed or plain."""

    def show(self, done: int, postfix: str) -> None: ...

    def close(self, done: int, postfix: str) -> None: ...


_FALLBACK_SIZE = (100, 24)


def _terminal_size(stream: Any) -> tuple[int, int] | None:
    """The columns and lines of the terminal behind ``stream``, (0, 0) for a terminal that
    does not say, None for no terminal (a file, a buffer: tqdm then does not limit width)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return (0, 0) if not (size.columns and size.lines) else (size.columns, size.lines)


class _TqdmBar:
    """A tqdm bar fed with absolute counts."""

    def __init__(
        self, label: str, total: int | None, file: IO[str] | None, leave: bool, postfix: str
    ) -> None:
        from tqdm import tqdm

        factory: type[tqdm[Any]] = tqdm
        if file is None and _in_jupyter():
            from tqdm.auto import tqdm as auto_tqdm  # notebook widgets with ipywidgets

            factory = auto_tqdm
        # A terminal that reports no size (some ptys do) would get empty bars from tqdm, which
        # sizes them to the screen: give those a fixed size.
        sized = _terminal_size(sys.stderr if file is None else file) != (0, 0)
        # mininterval=0 and miniters=0: the observer throttles, so every call here renders.
        self.bar = factory(
            total=total,
            desc=label,
            unit=" packets",
            file=file,
            leave=leave,
            dynamic_ncols=sized,
            ncols=None if sized else _FALLBACK_SIZE[0],
            nrows=None if sized else _FALLBACK_SIZE[1],
            mininterval=0,
            miniters=0,
            postfix=postfix,
        )

    def _advance(self, done: int, postfix: str) -> bool:
        """Set the counts; whether tqdm already redrew."""
        self.bar.set_postfix_str(postfix, refresh=False)
        delta = done - self.bar.n
        if delta:
            self.bar.update(delta)
        # Never update(0): it would reset tqdm's rate window, and the next burst of packets
        # would then look as if it took only one refresh interval.
        return bool(delta)

    def show(self, done: int, postfix: str) -> None:
        if not self._advance(done, postfix):
            self.bar.refresh()

    def close(self, done: int, postfix: str) -> None:
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.n = done
        self.bar.close()  # draws the final state, once


class _PlainBar:
    """Without tqdm: one summary line per node, written when the node ends."""

    def __init__(
        self, label: str, total: int | None, file: IO[str] | None, leave: bool, postfix: str
    ) -> None:
        self.label = label
        self.file = file
        self.started = time.perf_counter()

    def show(self, done: int, postfix: str) -> None:
        """Nothing while the node runs: plain output is for logs, not for live updates."""

    def close(self, done: int, postfix: str) -> None:
        seconds = time.perf_counter() - self.started
        rate = f"{done / seconds:,.1f} packet/s" if seconds > 0 else "-"
        file = self.file if self.file is not None else sys.stderr
        file.write(f"{self.label}: {done} packets in {seconds:.2f} s ({rate}), {postfix}\n")
        file.flush()


def _tqdm_available() -> bool:
    """Whether tqdm can be imported, without importing it (that costs tens of ms)."""
    if "tqdm" in sys.modules:
        return sys.modules["tqdm"] is not None  # None: imports of it are blocked
    try:
        return importlib.util.find_spec("tqdm") is not None
    except (ImportError, ValueError):
        return False


# ----------------------------------------------------------------------------- observers


class _NodeProgress(Observer):
    """One node's counters and bar: what ``ProgressObserver.contextualize`` returns.

    The packet hooks are the hot path (see the module docstring): attribute increments only.
    """

    def __init__(self, owner: ProgressObserver, label: str) -> None:
        self.owner = owner
        self.label = label
        self.total: int | None = None
        self.started = 0
        self.computed = 0
        self.cached = 0
        self.skipped = 0
        self.failed = 0
        self.bar: _Bar | None = None
        #: (done, started) when the bar was last drawn: files that are not terminals are only
        #: redrawn when something changed, so a long node does not fill a log with redraws.
        self.drawn = (-1, -1)

    # The hot hooks name every argument the nodes pass, so Python binds them directly instead
    # of building a ``**kwargs`` dict on each call.
    def on_packet_start(
        self,
        *,
        node_label: str = "",
        node_hash: str = "",
        tag: Tag | None = None,
        packet: Packet | None = None,
        **kwargs: Any,
    ) -> None:
        self.started += 1
        if self.bar is None:
            self.owner._open(self)

    def on_packet_end(
        self,
        *,
        node_label: str = "",
        node_hash: str = "",
        tag: Tag | None = None,
        input_packet: Packet | None = None,
        output_packet: Packet | None = None,
        cached: bool = False,
        **kwargs: Any,
    ) -> None:
        # Same classification as the run's NodeCounts: a skip is a skip whether it was
        # computed now or remembered; "cached" is an output not computed in this run.
        if output_packet is None:
            self.skipped += 1
        elif cached:
            self.cached += 1
        else:
            self.computed += 1
        if self.bar is None:
            self.owner._open(self)

    def on_packet_crash(self, **kwargs: Any) -> None:
        self.failed += 1
        if self.bar is None:
            self.owner._open(self)

    # The batch hooks count whole batches from their columns: no per-packet objects.
    def on_packets_start(self, *, batch: PacketBatch, **kwargs: Any) -> None:
        self.started += len(batch)
        if self.bar is None:
            self.owner._open(self)

    def on_packets_end(self, *, batch: PacketOutcomes, **kwargs: Any) -> None:
        # (See on_packet_end: a skip is a skip; "cached" is an output not computed now.)
        produced = batch.codes <= _CACHED_CODE
        self.computed += int(np.count_nonzero(produced & batch.computed))
        self.cached += int(np.count_nonzero(produced & ~batch.computed))
        self.skipped += batch.count(RowStatus.SKIPPED)
        self.failed += batch.count(RowStatus.FAILED)
        if self.bar is None:
            self.owner._open(self)

    def on_node_start(self, *, node_label: str = "", **kwargs: Any) -> None:
        self.label = node_label or self.label
        total = kwargs.get("total")
        self.total = int(total) if total is not None else None
        # With a known total the bar opens now, so a node that spends a while hashing and
        # looking up its inputs before its first packet is visibly running. Without one, it
        # opens at the first packet: nodes that report no packets (sources, operators) get
        # no bar at all.
        if self.total:
            self.owner._open(self)

    def on_node_end(self, **kwargs: Any) -> None:
        self.owner._close(self)

    def contextualize(self, *identity_path: str) -> _NodeProgress:
        return self

    @property
    def done(self) -> int:
        return self.computed + self.cached + self.skipped + self.failed

    def postfix(self) -> str:
        """The counts shown after the bar (``running`` only while calls are in flight)."""
        text = (
            f"computed={self.computed} cached={self.cached} "
            f"skipped={self.skipped} failed={self.failed}"
        )
        running = self.started - self.done
        return f"{text} running={running}" if running > 0 else text


class ProgressObserver(Observer):
    """Shows one progress bar per function node: packets computed, cached, skipped, failed.

    ``file``: where bars go (default ``sys.stderr``). ``enabled``: None decides with
    ``progress_enabled()`` when no ``file`` is given and draws on an explicitly given
    ``file``; False observes nothing (and tells nodes not to build packet objects for it).
    ``refresh_seconds``: how often open bars are redrawn. ``backend``: ``"tqdm"``,
    ``"plain"`` (one line per node at its end) or ``"auto"`` (tqdm when installed).
    ``leave``: keep finished tqdm bars on screen.
    """

    def __init__(
        self,
        *,
        file: IO[str] | None = None,
        enabled: bool | None = None,
        refresh_seconds: float = 0.2,
        backend: Backend = "auto",
        leave: bool = True,
    ) -> None:
        if backend not in ("auto", "tqdm", "plain"):
            raise ConfigurationError(f"backend must be 'auto', 'tqdm' or 'plain', got {backend!r}")
        if refresh_seconds <= 0:
            raise ConfigurationError(f"refresh_seconds must be positive, got {refresh_seconds!r}")
        self.file = file
        self.enabled = (
            (progress_enabled() if file is None else True) if enabled is None else enabled
        )
        # A disabled observer asks nodes not to build Tag/Packet objects for its hooks.
        self.observes_packets = self.enabled
        self.refresh_seconds = refresh_seconds
        self.leave = leave
        self._terminal = _is_tty(sys.stderr if file is None else file) or (
            file is None and _in_jupyter()
        )
        if backend == "auto":
            backend = "tqdm" if _tqdm_available() else "plain"
        self.backend: Backend = backend
        self._make_bar: Callable[[str, int | None, IO[str] | None, bool, str], _Bar] = (
            _TqdmBar if backend == "tqdm" else _PlainBar
        )
        self._lock = threading.Lock()
        self._open_nodes: list[_NodeProgress] = []
        self._by_label: dict[str, _NodeProgress] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ hooks
    def contextualize(self, *identity_path: str) -> Observer:
        if not self.enabled:
            return self
        return _NodeProgress(self, identity_path[0] if identity_path else "")

    def on_run_start(self, **kwargs: Any) -> None:
        self._by_label.clear()  # an observer can serve several runs

    def on_run_end(self, **kwargs: Any) -> None:
        # A node that raised gets no on_node_end: close its bar so its counts stay visible.
        with self._lock:
            remaining = list(self._open_nodes)
        for node in remaining:
            self._close(node)

    # Hooks that reach the observer itself (a node executed without contextualize) are
    # routed to a per-label view, so the counts are the same either way.
    def _view(self, node_label: str) -> _NodeProgress:
        view = self._by_label.get(node_label)
        if view is None:
            view = self._by_label[node_label] = _NodeProgress(self, node_label)
        return view

    def on_node_start(self, *, node_label: str = "", **kwargs: Any) -> None:
        if self.enabled:
            self._view(node_label).on_node_start(node_label=node_label, **kwargs)

    def on_node_end(self, *, node_label: str = "", **kwargs: Any) -> None:
        view = self._by_label.pop(node_label, None) if self.enabled else None
        if view is not None:
            view.on_node_end()

    def on_packet_start(self, *, node_label: str = "", **kwargs: Any) -> None:
        if self.enabled:
            self._view(node_label).on_packet_start(**kwargs)

    def on_packets_start(self, *, node_label: str = "", **kwargs: Any) -> None:
        if self.enabled:
            self._view(node_label).on_packets_start(**kwargs)

    def on_packets_end(self, *, node_label: str = "", **kwargs: Any) -> None:
        if self.enabled:
            self._view(node_label).on_packets_end(**kwargs)

    def on_packet_end(self, *, node_label: str = "", **kwargs: Any) -> None:
        if self.enabled:
            self._view(node_label).on_packet_end(**kwargs)

    def on_packet_crash(self, *, node_label: str = "", **kwargs: Any) -> None:
        if self.enabled:
            self._view(node_label).on_packet_crash(**kwargs)

    # ------------------------------------------------------------------ bars
    def _open(self, node: _NodeProgress) -> None:
        with self._lock:
            if node.bar is not None:
                return
            node.bar = self._make_bar(node.label, node.total, self.file, self.leave, node.postfix())
            node.drawn = (node.done, node.started)
            self._open_nodes.append(node)
            # Plain bars draw nothing until their node ends: no refresher needed.
            if self._thread is None and self.backend == "tqdm":
                self._wake.clear()
                self._thread = threading.Thread(
                    target=self._refresh_loop, name="podline-progress", daemon=True
                )
                self._thread.start()

    def _close(self, node: _NodeProgress) -> None:
        with self._lock:
            if node.bar is None or node not in self._open_nodes:
                return
            self._open_nodes.remove(node)
            node.bar.close(node.done, node.postfix())
            if not self._open_nodes:
                self._wake.set()  # the refresher has nothing left to draw: let it stop now

    def _refresh_loop(self) -> None:
        """Redraw every open bar each ``refresh_seconds``; stop when none is open."""
        while True:
            self._wake.wait(self.refresh_seconds)
            with self._lock:
                # A bar may have opened since the last one closed and set the event.
                self._wake.clear()
                if not self._open_nodes:
                    self._thread = None
                    return
                for node in self._open_nodes:
                    assert node.bar is not None
                    state = (node.done, node.started)
                    # On a terminal, redraw anyway: the elapsed time shows the node is alive.
                    if self._terminal or state != node.drawn:
                        node.drawn = state
                        node.bar.show(node.done, node.postfix())
