"""Loading a pipeline from its specification: ``Pipeline.load`` and ``open_pipeline``.

Nodes are built again in the specification's order, each in one of two ways:

* **live**: its source is read again (file sources), its operator built from its parameters,
  its function imported by module and qualified name, and every upstream is live. The node
  is what the user's code would build: it runs like any node. If its identity differs from
  the stored one (the code or the data changed since), ``LoadedPipeline.changed`` says why
  and a warning is issued: running computes what the change makes new.
* **read-only**: otherwise (``code=False`` makes every node read-only). The node keeps the
  stored identity and schema (``podline.pipeline.stand_ins``), so its stored results,
  status, logs and runs read as before; running it raises ``ReadOnlyNodeError`` naming the
  node and the cause, with the function's module and qualified name.

Importing a module runs its top-level code: ``code=False`` opens a store's pipeline without
importing or reading anything of the user's.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from podline.errors import PipelineError, PodlineError, ReadOnlyNodeError, format_names
from podline.functions import FunctionPod, FunctionPodStream, PacketFunction
from podline.operators import Operator
from podline.pipeline.orchestration import Orchestrator, OrchestratorResult
from podline.pipeline.pipeline import Pipeline
from podline.pipeline.plan_report import Plan
from podline.pipeline.spec import check_spec
from podline.pipeline.spec_store import stored_spec
from podline.pipeline.stand_ins import (
    StoredOperator,
    StoredProducedStream,
    StoredSource,
    stored_pod,
)
from podline.stores import Store, default_store, open_store
from podline.streams import ProducedStream, Stream

__all__ = ["LoadedPipeline", "load_pipeline", "open_pipeline"]


#: How a node's read-only reason names the read-only nodes it depends on.
_BLOCKED = "it depends on read-only node(s) "


class LoadedPipeline(Pipeline):
    """A pipeline built from a specification (see the module docs).

    ``read_only`` maps the label of every node that cannot run to why; ``changed`` maps the
    label of every live node whose identity differs from the stored one to why.
    """

    def __init__(
        self,
        spec: dict[str, Any],
        store: Store,
        *,
        result_store: Store | str | None = None,
        code: bool = True,
    ) -> None:
        if result_store is None and spec.get("result_store"):
            result_store = spec["result_store"]  # the run's separate result store
        modes = {
            node["label"]: node["operator"]["cache_mode"]
            for node in spec["nodes"]
            if node["kind"] == "operator"
        }
        results = open_store(result_store) if result_store is not None else None
        super().__init__(spec["name"], store, result_store=results, cache_modes=modes)
        self.spec = spec
        self.read_only: dict[str, str] = {}
        self.changed: dict[str, str] = {}
        self._recorded = _Builder(self, code).build(spec["nodes"])
        self.compile()
        if self.changed:
            details = "; ".join(f"{label!r}: {why}" for label, why in self.changed.items())
            warnings.warn(
                f"pipeline {self.name!r} differs from its stored specification ({details}); "
                "running it computes what changed, and its nodes read the results of the "
                "new identities (load with code=False to read the stored run's)",
                stacklevel=3,
            )

    def run(
        self, orchestrator: Orchestrator | Literal["sync", "async"] | None = None, **options: Any
    ) -> OrchestratorResult:
        """``Pipeline.run``, when no node is read-only (else ``ReadOnlyNodeError``)."""
        self._check_runnable()
        return super().run(orchestrator, **options)

    def plan(self, **options: Any) -> Plan:
        """``Pipeline.plan``, when no node is read-only (else ``ReadOnlyNodeError``)."""
        self._check_runnable()
        return super().plan(**options)

    def _check_runnable(self) -> None:
        if not self.read_only:
            return
        # Each node's own reason once; the nodes read-only only for what they depend on, by
        # name (a pipeline of many nodes would repeat the same reasons down the graph).
        own = {label: why for label, why in self.read_only.items() if not why.startswith(_BLOCKED)}
        details = "; ".join(
            f"{label!r}: {why.split(f'; {_BLOCKED}')[0]}" for label, why in own.items()
        )
        downstream = [label for label in self.read_only if label not in own]
        if downstream:
            details += f"; and downstream of them {format_names(downstream)}"
        raise ReadOnlyNodeError(
            f"pipeline {self.name!r} was loaded read-only for node(s) "
            f"{format_names(self.read_only)}: {details}. Their stored results, status, logs "
            "and runs stay readable; make the code importable and load again to run them"
        )


class _Builder:
    """Builds the streams of a specification's nodes, live where it can."""

    def __init__(self, pipeline: LoadedPipeline, code: bool) -> None:
        self.pipeline = pipeline
        self.code = code
        self.streams: dict[str, Stream] = {}

    def build(self, nodes: Sequence[dict[str, Any]]) -> list[ProducedStream]:
        recorded: list[ProducedStream] = []
        for node in nodes:
            stream = self._stream(node)
            self.streams[node["label"]] = stream
            if isinstance(stream, ProducedStream):
                recorded.append(stream)
        return recorded

    def _stream(self, node: dict[str, Any]) -> Stream:
        label = node["label"]
        upstreams = [self.streams[name] for name in node["upstreams"]]
        reasons = []
        try:
            part = self._part(node)
        except _NotRebuiltError as exc:
            part, reasons = None, [str(exc)]
        blocked = [name for name in node["upstreams"] if name in self.pipeline.read_only]
        if blocked:
            reasons.append(f"{_BLOCKED}{format_names(blocked)}")
        if part is None or reasons:
            reason = "; ".join(reasons)
            self.pipeline.read_only[label] = reason
            return _stand_in(node, upstreams, reason)
        live = _assemble(node, part, upstreams)
        if str(live.content_hash()) != node["content_hash"]:
            self.pipeline.changed[label] = _change(node, upstreams, self.pipeline.changed)
        return live

    def _part(self, node: dict[str, Any]) -> Stream | Operator | FunctionPod:
        """The node's own piece, built again: its source, operator or pod."""
        kind = node["kind"]
        if kind == "operator":
            return _operator(node, podline_only=not self.code)
        if kind == "source":
            if not self.code:
                raise _NotRebuiltError("loaded with code=False, its source was not read again")
            return _source(node)
        if not self.code:
            function = node["function"]
            raise _NotRebuiltError(
                f"loaded with code=False, function {function['module']}:"
                f"{function['qualname']} was not imported"
            )
        return _pod(node)


def _assemble(
    node: dict[str, Any], part: Stream | Operator | FunctionPod, upstreams: list[Stream]
) -> Stream:
    """The node's stream from its piece and its (live) upstreams."""
    label = node["label"]
    if isinstance(part, Operator):
        part.plan(upstreams)
        return ProducedStream(part, upstreams, label=label)
    if isinstance(part, FunctionPod):
        (upstream,) = upstreams
        part.check(upstream)
        return FunctionPodStream(part, upstream, label=label)
    return part


class _NotRebuiltError(PodlineError):
    """Why a node could not be built again (becomes its read-only reason)."""


def _change(node: dict[str, Any], upstreams: list[Stream], changed: dict[str, str]) -> str:
    moved = [u.label for u in upstreams if u.label in changed]
    if moved:
        return f"upstream {format_names(moved)} changed"
    if node["kind"] == "source":
        return "its data changed"
    if node["kind"] == "function":
        function = node["function"]
        return f"the code of {function['module']}:{function['qualname']} changed"
    return "its parameters changed"


def _stand_in(node: dict[str, Any], upstreams: list[Stream], reason: str) -> Stream:
    if node["kind"] == "source":
        return StoredSource(node, reason)
    if node["kind"] == "function":
        return StoredProducedStream(node, stored_pod(node, reason), upstreams, reason)
    try:
        producer: Any = _operator(node, podline_only=True)
    except _NotRebuiltError:
        producer = StoredOperator(node, reason)
    return StoredProducedStream(node, producer, upstreams, reason)


def _imported(reference: str, what: str) -> Any:
    """The object at ``module:qualname``; ``_NotRebuiltError`` saying why not."""
    module_name, _, qualname = reference.partition(":")
    if module_name == "__main__":
        raise _NotRebuiltError(
            f"{what} {reference} was defined in a notebook or a script run as __main__, "
            "which cannot be imported; define it in a module (beside the notebook or "
            "script) to load it with its code"
        )
    if not qualname or "<locals>" in qualname:
        raise _NotRebuiltError(f"{what} {reference} is not defined at a module's top level")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except Exception as exc:  # any failure to import means: the code is not at hand
        raise _NotRebuiltError(
            f"{what} {reference} cannot be imported ({type(exc).__name__}: {exc})"
        ) from exc
    return found


def _source(node: dict[str, Any]) -> Stream:
    source = node["source"]
    if source["rebuild"] is None:
        kind = source["class"].rpartition(":")[2]
        raise _NotRebuiltError(
            f"its source ({kind}) was built from data or a function in memory, which a "
            "specification does not hold"
        )
    cls = _imported(source["class"], "source class")
    try:
        stream: Stream = cls(**source["rebuild"])
    except Exception as exc:
        raise _NotRebuiltError(f"its source cannot be read again ({exc})") from exc
    return stream


def _operator(node: dict[str, Any], *, podline_only: bool) -> Operator:
    operator = node["operator"]
    if operator["parameters"] is None:
        raise _NotRebuiltError("its operator's parameters have no JSON form")
    if podline_only and not operator["class"].startswith("podline."):
        raise _NotRebuiltError(
            f"loaded with code=False, operator {operator['class']} was not imported"
        )
    cls = _imported(operator["class"], "operator")
    built: Operator = cls.from_spec_parameters(operator["parameters"])
    return built


def _pod(node: dict[str, Any]) -> FunctionPod:
    spec = node["function"]
    reference = f"{spec['module']}:{spec['qualname']}"
    found = _imported(reference, "function")
    inputs = spec.get("inputs") or {}
    if isinstance(found, FunctionPod):
        return found.with_options(inputs=inputs)
    if not isinstance(found, PacketFunction):
        if not callable(found):
            raise _NotRebuiltError(f"function {reference} is not callable")
        found = PacketFunction(
            found,
            output_keys=spec["output_keys"],
            version=spec["version"],
            name=spec["name"],
            identity=spec["identity"],
            depends_on=list(spec.get("depends_on", {})),
        )
    return FunctionPod(found, inputs=inputs)


def load_pipeline(
    source: str | os.PathLike[str],
    store: Store | str | None = None,
    *,
    result_store: Store | str | None = None,
    code: bool = True,
) -> LoadedPipeline:
    """``Pipeline.load``: a pipeline from a saved JSON file, or by name from a store."""
    path = Path(source)
    if path.suffix == ".json" or path.is_file():
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PipelineError(f"cannot read pipeline file {str(path)!r}: {exc}") from exc
        spec = check_spec(spec, f"{str(path)!r}")
        if store is None:
            store = spec.get("store") or default_store()
        return LoadedPipeline(spec, open_store(store), result_store=result_store, code=code)
    opened = store if store is not None else default_store()
    return open_pipeline(opened, str(source), result_store=result_store, code=code)


def open_pipeline(
    store: Store | str | os.PathLike[str],
    name: str,
    *,
    result_store: Store | str | None = None,
    code: bool = True,
) -> LoadedPipeline:
    """The pipeline ``name`` (``<name>`` for its latest run's specification, or
    ``<name>@<16 hex>`` for that URI's) as the store holds it: live where its code can be
    imported and its sources read again, read-only elsewhere (see the module docs).
    Function results are read from ``result_store``, by default the result store the run
    used (the pipeline's store, or the separate one the specification names)."""
    opened = open_store(store)
    spec = stored_spec(opened, name)
    return LoadedPipeline(spec, opened, result_store=result_store, code=code)
