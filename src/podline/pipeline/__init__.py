"""Pipelines: recording and compiling invocations, orchestrators and observers."""

from podline.nodes.observers import (
    CompositeObserver,
    NoOpObserver,
    NoOpPacketLogger,
    Observer,
    ObserverProtocol,
)
from podline.pipeline.async_orchestrator import AsyncPipelineOrchestrator
from podline.pipeline.graph import PipelineGraph, compile_graph
from podline.pipeline.orchestration import NodeCounts, Orchestrator, OrchestratorResult, RunOptions
from podline.pipeline.orchestrator import SyncPipelineOrchestrator
from podline.pipeline.pipeline import Pipeline, PipelineError

__all__ = [
    "AsyncPipelineOrchestrator",
    "CompositeObserver",
    "NoOpObserver",
    "NoOpPacketLogger",
    "NodeCounts",
    "Observer",
    "ObserverProtocol",
    "Orchestrator",
    "OrchestratorResult",
    "Pipeline",
    "PipelineError",
    "PipelineGraph",
    "RunOptions",
    "SyncPipelineOrchestrator",
    "compile_graph",
]
