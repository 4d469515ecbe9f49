"""``Pipeline``: records what is applied inside ``with pipeline:``, compiles it, runs it.

Inside the block every operator and function-pod invocation is recorded and nothing is
computed. Leaving the block compiles the recorded streams into nodes (``pipeline.nodes``,
also reachable as attributes: ``pipeline.<label>``) bound to scopes of its stores
(``podline.pipeline.layout``):

* function results go to ``results/`` of the result store (the memo, shared by every
  pipeline on that store; the result store is the pipeline's store unless given);
* operator nodes keep their LOG/REPLAY rows under ``pipelines/<name>/nodes/<identity>``;
* run records go to ``pipelines/<name>/runs``, each with the run's manifest (podline, Python,
  platform, package versions, git commit; ``podline.observability.manifest``), and the code
  structure of every function that computed to ``code`` of the result store (shared, like
  the results);
* unless ``observe=False``, each packet's status transitions and each computed call's captured
  output go to ``pipelines/<name>/status`` and ``pipelines/<name>/logs`` (see
  ``podline.observability``), read back with ``status()``, ``logs()`` and ``runs()``.

``run()`` executes the graph (sync orchestrator by default) and returns the orchestrator's
result, whose ``counts`` say per node how many packets were computed, cached, skipped and
failed. Its URI, ``<name>@<16 hex>``, changes whenever a node or an edge does.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from podline.allocator import choose_arrow_allocator
from podline.columns import column_names
from podline.errors import ConfigurationError, PipelineError, format_names
from podline.executors import Executor
from podline.nodes import CacheMode, ErrorPolicy, FunctionNode, Node, is_function_node
from podline.nodes.observers import ObserverProtocol
from podline.observability import ProgressObserver, default_observer
from podline.observability.carried import CarriedRows
from podline.observability.manifest import ManifestProbe, RunManifest, record_code
from podline.pipeline.async_orchestrator import AsyncPipelineOrchestrator
from podline.pipeline.graph import PipelineGraph, compile_graph
from podline.pipeline.layout import PipelineLayout
from podline.pipeline.orchestration import Orchestrator, OrchestratorResult, RunOptions
from podline.pipeline.orchestrator import SyncPipelineOrchestrator
from podline.pipeline.plan_report import Explanation, Plan
from podline.pipeline.spec import describe_pipeline, pipeline_spec, spec_text
from podline.pipeline.spec_store import SPEC_ID, record_spec
from podline.stores import RECORD_ID, Store, default_store, open_store, segment_problem
from podline.streams import ProducedStream, tracking

if TYPE_CHECKING:
    import polars as pl

    from podline.functions import PacketFunction
    from podline.observability import PipelineObservations
    from podline.pipeline.graph_render import GraphDrawing
    from podline.pipeline.lineage_report import Impact, Trace
    from podline.pipeline.lineage_rows import LineageScope
    from podline.pipeline.loading import LoadedPipeline

__all__ = ["Pipeline", "PipelineError"]


class Pipeline:
    """A named pipeline over a store (``None``: ``podline.default_store()``; a path or URL
    opens one, as ``open_store`` does); function results go to ``result_store`` (``None``:
    the same store; see docs/pipelines.md)."""

    def __init__(
        self,
        name: str,
        store: Store | str | os.PathLike[str] | None = None,
        *,
        result_store: Store | str | os.PathLike[str] | None = None,
        cache_modes: Mapping[str, CacheMode | str] | None = None,
        observe: bool = True,
    ) -> None:
        # The name is a segment of every path the pipeline's tables live at.
        problem = "it is empty" if not name else segment_problem(name)
        if problem is not None:
            raise PipelineError(f"invalid pipeline name {name!r}: {problem}")
        self.name = name
        choose_arrow_allocator()
        # A store, or its path or URL (``open_store``).
        self.store = open_store(store) if store is not None else default_store()
        #: Where function results (the memo) and code records go (``PipelineLayout``).
        self.result_store = open_store(result_store) if result_store is not None else self.store
        self.cache_modes = {k: CacheMode(v) for k, v in (cache_modes or {}).items()}
        self._recorded: list[ProducedStream] = []
        self._tracking: Any = None
        self.graph: PipelineGraph | None = None
        #: Whether ``run()`` without an observer records status and logs (``default_observer``).
        self.observe = observe
        self._code_recorded: set[str] = set()  # function identities whose code was stored
        self._spec_stored: PipelineGraph | None = None  # the graph whose spec a run stored
        self._spec_key = ""  # and the id it is stored under (see ``spec_store``)

    # ------------------------------------------------------------------ tracking
    def record(self, stream: ProducedStream) -> None:
        """Called for every invocation made inside the ``with`` block."""
        self._recorded.append(stream)

    def __enter__(self) -> Pipeline:
        if self._tracking is not None:
            raise PipelineError(f"pipeline {self.name!r} is already recording")
        self._tracking = tracking(self)
        self._tracking.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._tracking.__exit__(exc_type, exc, tb)
        self._tracking = None
        if exc_type is None:
            self.compile()

    def compile(self) -> PipelineGraph:
        """Build the node graph of everything recorded so far. Nodes compiled before are
        kept, with their outputs and state: entering ``with pipeline:`` again adds nodes."""
        self.graph = compile_graph(
            self._recorded,
            result_store=self._layout.results,
            node_store=self._layout.nodes,
            cache_modes=self.cache_modes,
            previous=self.graph,
        )
        return self.graph

    @property
    def _layout(self) -> PipelineLayout:
        return PipelineLayout(self.name, self.store, self.result_store)

    # ------------------------------------------------------------------ nodes
    @property
    def nodes(self) -> dict[str, Node]:
        """The compiled nodes by label."""
        if self.graph is None:
            self.compile()
        assert self.graph is not None
        return dict(self.graph.by_label)

    def __repr__(self) -> str:
        return describe_pipeline(self.name, self.store, self.graph)

    def __getattr__(self, name: str) -> Node:
        graph = self.__dict__.get("graph")
        if graph is not None and name in graph.by_label:
            return graph.by_label[name]
        labels = format_names(graph.by_label) if graph is not None else "none (not compiled)"
        raise AttributeError(f"pipeline has no node {name!r}; nodes are {labels}")

    @property
    def uri(self) -> str:
        """``<name>@<16 hex of the DAG snapshot>``: deterministic for the same graph."""
        graph = self.graph if self.graph is not None else self.compile()
        return f"{self.name}@{graph.snapshot_hash()}"

    # ------------------------------------------------------------------ drawing
    def show_graph(
        self, result: OrchestratorResult | None = None, *, counts: bool = True
    ) -> GraphDrawing:
        """The node graph as a ``GraphDrawing`` (docs/graphs.md): ``print()`` it, save it,
        or let Jupyter display it. Nodes show ``result``'s counts, else (``counts=True``)
        those of the latest run of this graph recorded in the store."""
        from podline.pipeline.graph_render import draw_pipeline

        return draw_pipeline(self, result, counts=counts)

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        # Jupyter shows the graph; the plain-text form stays ``repr(pipeline)``.
        bundle = self.show_graph()._repr_mimebundle_(include, exclude)
        bundle.pop("text/plain")
        return bundle

    # ------------------------------------------------------------------ save and load
    def specification(self) -> dict[str, Any]:
        """What the pipeline is made of, as JSON values (``podline.pipeline.spec``; the
        format is documented in docs/save-and-load.md). Every run stores it."""
        graph = self.graph if self.graph is not None else self.compile()
        layout = self._layout
        results = layout.result_store.to_config() if layout.separate else None
        return pipeline_spec(self.name, self.uri, graph.nodes, results)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the specification, and the store's configuration, to a JSON file;
        ``Pipeline.load(path)`` builds the pipeline again. Returns the path."""
        target = Path(path)
        text = spec_text({**self.specification(), "store": self.store.to_config()})
        target.write_text(text, encoding="utf-8")
        return target

    @classmethod
    def load(
        cls,
        source: str | os.PathLike[str],
        store: Store | str | None = None,
        *,
        result_store: Store | str | None = None,
        code: bool = True,
    ) -> LoadedPipeline:
        """A pipeline from a file ``save`` wrote, or by name (``<name>`` or ``<name>@<hex>``)
        from ``store`` (default: the file's store, else ``default_store()``). Nodes whose
        code cannot be imported (all of them with ``code=False``) are read-only: their
        results, status, logs and runs read as before, running them raises
        ``ReadOnlyNodeError`` (``podline.pipeline.loading``). ``result_store``: where the
        function results are, if not in the result store the specification names."""
        from podline.pipeline.loading import load_pipeline

        return load_pipeline(source, store, result_store=result_store, code=code)

    def _store_spec(self, graph: PipelineGraph) -> None:
        if self._spec_stored is not graph:  # unchanged: stored by an earlier run already
            self._spec_key = record_spec(self.store, self.name, self.specification())
            self._spec_stored = graph

    # ------------------------------------------------------------------ running
    def run(
        self,
        orchestrator: Orchestrator | Literal["sync", "async"] | None = None,
        *,
        observer: ObserverProtocol | None = None,
        executor: Executor | None = None,
        error_policy: ErrorPolicy | None = None,
        materialize_results: bool = True,
        run_id: str | None = None,
        timeout: float | None = None,
        commit_seconds: float | None = None,
        recompute: bool | str | Sequence[str] = False,
        progress: bool | None = None,
    ) -> OrchestratorResult:
        """Compile if needed, run every node, flush the stores and record the run.

        ``orchestrator`` is any ``Orchestrator``; ``"async"`` is short for
        ``AsyncPipelineOrchestrator()`` and ``"sync"`` (like ``None``) for
        ``SyncPipelineOrchestrator()`` (see docs/async.md). It is never changed: the options
        below travel with this run (``RunOptions``), and those left ``None`` keep the
        orchestrator's own settings.

        ``observer=None`` records status and logs in the store (``default_observer()``),
        unless the pipeline was made with ``observe=False``; an observer given here replaces
        that default (combine them with ``CompositeObserver`` to keep both). ``progress``:
        progress bars beside that default (or alone, with ``observe=False``): ``True`` or
        ``False`` always or never, ``None`` where someone watches (``progress_enabled``).
        ``error_policy``: ``"continue"`` or ``"fail_fast"``. ``timeout`` limits each call
        (seconds) of the pods that set no limit of their own; ``commit_seconds`` is the
        durability window (finished calls are committed at least this often; default 2 s).
        ``recompute`` runs every call of the named function nodes again (``True``: of all of
        them), replacing their stored results (see docs/recompute.md).
        """
        if orchestrator is None or orchestrator == "sync":
            orchestrator = SyncPipelineOrchestrator()
        elif orchestrator == "async":
            orchestrator = AsyncPipelineOrchestrator()
        elif isinstance(orchestrator, str) or not isinstance(orchestrator, Orchestrator):
            raise ConfigurationError(
                "orchestrator must be 'sync', 'async' or an Orchestrator (an object with a "
                f"run(graph, ...) method), got {orchestrator!r}"
            )
        graph = self.graph if self.graph is not None else self.compile()
        _check_code(graph)
        self._store_spec(graph)
        options = RunOptions(
            error_policy=error_policy,
            commit_seconds=commit_seconds,
            timeout=timeout,
            recompute=self._recompute_labels(graph, recompute),
        )
        observed = observer is None and self.observe
        # Fully cached nodes' status rows, for the run record to carry (``carried.py``).
        carried = CarriedRows()
        if observed:
            # Their rows are committed with the run record (``_record_run``).
            observer = default_observer(
                self._layout.pipeline_store,
                self.name,
                progress=progress,
                commit_at_run_end=False,
                carried=carried,
            )
        elif observer is None and progress:
            observer = ProgressObserver(enabled=True)
        probe = ManifestProbe(graph.packet_functions().values())  # answers meanwhile
        try:
            result = orchestrator.run(
                graph,
                observer=observer,
                materialize_results=materialize_results,
                run_id=run_id,
                pipeline_uri=self.uri,
                executor=executor,
                options=options,
            )
        except BaseException:
            carried.release()  # no run record: the rows go to their status tables
            self._layout.flush()  # what finished, and the rows observed about it
            probe.result()
            raise
        try:
            self._record_run(graph, result, probe.result(), carried)
        except BaseException:
            carried.release()  # the rows no written run record carries
            self._layout.flush()  # what finished stands, whatever became of its run record
            raise
        if observed:
            result.failure_logs = f"pipeline.logs(state='FAILED', run_id='{result.run_id}')"
        return result

    def _recompute_labels(
        self, graph: PipelineGraph, recompute: bool | str | Sequence[str]
    ) -> frozenset[str]:
        functions = {node.label for node in graph if is_function_node(node)}
        if recompute is True:
            return frozenset(functions)
        if recompute is False:
            return frozenset()
        wanted = set(column_names(recompute))
        unknown = wanted - functions
        if unknown:
            raise PipelineError(
                f"recompute names no function node: {format_names(unknown)}; the function "
                f"nodes are {format_names(functions)}"
            )
        return frozenset(wanted)

    # ------------------------------------------------------------------ planning
    def plan(self, *, recompute: bool | str | Sequence[str] = False) -> Plan:
        """What ``run(recompute=recompute)`` would do, per node and per row, and why,
        calling no function and writing nothing (``podline.pipeline.plan``; docs/plan.md).
        ``str(plan)`` is a table, ``plan.counts()``, ``plan.reasons()`` and
        ``plan.rows(node)`` are polars frames."""
        from podline.pipeline.plan import make_plan  # planning's code is loaded when used

        graph = self.graph if self.graph is not None else self.compile()
        _check_code(graph)
        return make_plan(
            graph,
            self._layout,
            uri=self.uri,
            recompute=self._recompute_labels(graph, recompute),
        )

    def explain(
        self,
        node: str,
        *,
        recompute: bool | str | Sequence[str] = False,
        tags: Mapping[str, Any] | None = None,
        **tag_values: Any,
    ) -> Explanation:
        """Why the next run would compute, serve or skip the rows of ``node`` whose tags
        equal ``tag_values`` (``tags=`` for tag names that are not identifiers), planning
        only ``node`` and what it depends on; ``.frame`` holds the rows."""
        graph = self.graph if self.graph is not None else self.compile()
        if node not in graph.by_label:
            raise PipelineError(
                f"explain names no node: {node!r}; nodes are {format_names(graph.by_label)}"
            )
        from podline.pipeline.plan import make_plan

        plan = make_plan(
            graph,
            self._layout,
            uri=self.uri,
            recompute=self._recompute_labels(graph, recompute),
            upto=node,
        )
        return plan.explain(node, **{**(tags or {}), **tag_values})

    def invalidate(self, node: str, **tag_values: Any) -> int:
        """Forget the stored results of function node ``node`` for the rows whose tags equal
        ``tag_values`` (every row without any): the next run computes them again. Returns
        how many rows were forgotten (see ``FunctionNode.invalidate``)."""
        found = self.nodes.get(node)
        if found is None or not is_function_node(found):
            functions = [n.label for n in self.nodes.values() if is_function_node(n)]
            raise PipelineError(
                f"invalidate names no function node: {node!r}; the function nodes are "
                f"{format_names(functions)}"
            )
        return found.invalidate(**tag_values)

    # ------------------------------------------------------------------ lineage
    def trace(
        self,
        node: str,
        *,
        row: int | None = None,
        tags: Mapping[str, Any] | None = None,
        **tag_values: Any,
    ) -> Trace:
        """The lineage of the rows of ``node`` whose tags equal ``tag_values`` (``tags=``
        for names that are not identifiers; ``row=i``: its ``i``-th output row), back to
        their source records, computing nothing (``podline.pipeline.lineage``;
        docs/lineage.md). ``.frame`` and ``.records()`` are polars frames."""
        from podline.pipeline.lineage import trace

        return trace(self._lineage_scope(), node, row=row, tags={**(tags or {}), **tag_values})

    def impact(
        self,
        source: str,
        *,
        record_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        **tag_values: Any,
    ) -> Impact:
        """Every row of every node that depends on the records of ``source`` (a source
        node's label or source id) with ``record_id`` or tags equal to ``tag_values``;
        ``.frame`` is a polars frame (docs/lineage.md)."""
        from podline.pipeline.lineage import impact

        scope = self._lineage_scope()
        return impact(scope, source, record_id=record_id, tags={**(tags or {}), **tag_values})

    def _lineage_scope(self) -> LineageScope:
        from podline.pipeline.lineage_rows import LineageScope

        graph = self.graph if self.graph is not None else self.compile()
        return LineageScope(graph, self.store, self.name)

    # ------------------------------------------------------------------ observations
    def default_observer(self) -> ObserverProtocol:
        """The observer ``run()`` uses when given none: status and logs in the store."""
        return default_observer(self._layout.pipeline_store, self.name)

    @property
    def observations(self) -> PipelineObservations:
        """The reader of this pipeline's status, logs and runs (``podline.observability``)."""
        from podline.observability import PipelineObservations

        return PipelineObservations(self.store, self.name)

    def status(
        self,
        node: str | None = None,
        run_id: str | None = None,
        state: str | None = None,
        *,
        latest: bool = True,
        tags: Mapping[str, Any] | None = None,
        **tag_filters: Any,
    ) -> pl.DataFrame:
        """Latest state per (node, tag values), from the latest run that touched them,
        failures first (``latest=False``: every recorded row); see
        ``PipelineObservations.status``."""
        return self.observations.status(
            node, run_id, state, latest=latest, tags=tags, **tag_filters
        )

    def logs(
        self,
        node: str | None = None,
        run_id: str | None = None,
        state: str | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
        **tag_filters: Any,
    ) -> pl.DataFrame:
        """Captured output of the executed packets, filtered by node, run, final state and
        tag values; see ``PipelineObservations.logs``."""
        return self.observations.logs(node, run_id, state, tags=tags, **tag_filters)

    def runs(self) -> pl.DataFrame:
        """The run history with per-run counts, newest first: ``PipelineObservations.runs``."""
        return self.observations.runs()

    def _record_code(
        self, functions: Mapping[str, PacketFunction], result: OrchestratorResult
    ) -> None:
        """Keep the code structure of each function that computed, once per identity (a
        fully cached function had its code kept by the run that computed its results)."""
        computed = {
            label: function
            for label, function in functions.items()
            if label in result.counts
            and result.counts[label].computed
            and str(function.content_hash()) not in self._code_recorded
        }
        record_code(self.result_store, computed)
        self._code_recorded |= {str(f.content_hash()) for f in computed.values()}

    def _record_run(
        self,
        graph: PipelineGraph,
        result: OrchestratorResult,
        manifest: RunManifest,
        carried: CarriedRows,
    ) -> None:
        self._record_code(graph.packet_functions(), result)
        # Appended under ids of their own: a run id may be given again (``run(run_id=...)``),
        # and the write-once check would read every earlier run's ids.
        recording = uuid.uuid4().hex[:16]
        rows = [
            {
                RECORD_ID: f"{result.run_id}/{label}/{recording}",
                "run_id": result.run_id,
                "pipeline_uri": result.pipeline_uri,
                # Which specification of the URI this run's code is: several texts may share
                # one (a function run from a script, then imported from its module).
                SPEC_ID: self._spec_key,
                "node": label,
                "computed": c.computed,
                "cached": c.cached,
                "skipped": c.skipped,
                "failed": c.failed,
                "rows": c.rows,
                "seconds": result.seconds,
                "finished_at": dt.datetime.now(dt.UTC),
            }
            for label, c in result.counts.items()
        ]
        if rows:
            table = manifest.append_to(pa.Table.from_pylist(rows))
            table, placed = carried.add_to(table)
            self.store.append(("pipelines", self.name, "runs"), table)
            carried.forget(placed)
        carried.release()  # a held row no run-record row took: to its status table
        # One round of commits (tables side by side): the code records, the rows the
        # default observers buffered at the run's end, and the run record (with the
        # status rows of its fully cached nodes).
        self._layout.flush()


def _check_code(graph: PipelineGraph) -> None:
    """Before a run or a plan: a ``FunctionIdentityError`` naming the node whose function's
    code changed since the pipeline was built (a notebook cell defined a helper anew)."""
    for node in graph:
        if isinstance(node, FunctionNode):
            node.check_code()
