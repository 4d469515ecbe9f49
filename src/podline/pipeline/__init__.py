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
from podline.pipeline.graph_render import GraphDrawing, GraphNode
from podline.pipeline.loading import LoadedPipeline, open_pipeline
from podline.pipeline.orchestration import NodeCounts, Orchestrator, OrchestratorResult, RunOptions
from podline.pipeline.orchestrator import SyncPipelineOrchestrator
from podline.pipeline.pipeline import Pipeline, PipelineError
from podline.pipeline.plan_report import Explanation, NodePlan, Plan

__all__ = [
    "AsyncPipelineOrchestrator",
    "CompositeObserver",
    "Explanation",
    "GraphDrawing",
    "GraphNode",
    "LoadedPipeline",
    "NoOpObserver",
    "NoOpPacketLogger",
    "NodeCounts",
    "NodePlan",
    "Observer",
    "ObserverProtocol",
    "Orchestrator",
    "OrchestratorResult",
    "Pipeline",
    "PipelineError",
    "PipelineGraph",
    "Plan",
    "RunOptions",
    "SyncPipelineOrchestrator",
    "compile_graph",
    "open_pipeline",
]
