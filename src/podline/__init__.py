"""podline: reproducible, content-addressed scientific data pipelines over Arrow streams.

Data flows as streams of (Tag, Packet) rows. Sources stamp every row with provenance; every
element has a content hash (data-inclusive) and a pipeline hash (schema and topology only).

``import podline`` is cheap: the public names below load their module (and its third-party
dependencies: polars, deltalake, ...) on first access, through the module ``__getattr__``
(PEP 562). ``from podline import Pipeline`` therefore loads what a pipeline needs and no more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import podline.shutdown  # noqa: F401 - first, so its exit hook runs after every store's
from podline.allocator import prefer_jemalloc
from podline.errors import (
    ConfigurationError,
    DuplicateRecordIdError,
    FunctionCallError,
    FunctionDefinitionError,
    FunctionIdentityError,
    GraphError,
    HashingError,
    InputValidationError,
    OperatorError,
    OutputValidationError,
    PipelineError,
    PodlineError,
    ReadOnlyNodeError,
    RemoteCallError,
    ReservedColumnError,
    SchemaError,
    SourceError,
    StoreError,
    UnknownNodeTypeError,
    UnsupportedTypeError,
)
from podline.lazy import lazy_export
from podline.version import __version__

prefer_jemalloc()  # before anything loads pyarrow (see podline.allocator)

if TYPE_CHECKING:
    from podline.datagrams import Packet, Tag
    from podline.executors import Executor, LocalExecutor, ProcessExecutor, ThreadExecutor
    from podline.functions import SKIP, FunctionPod, PacketFunction, function_pod
    from podline.hashing import HASH_SCHEME, ContentHash, hash_file, hash_table, hash_value
    from podline.observability import LoggingObserver, ProgressObserver, StatusObserver
    from podline.operators import (
        Batch,
        DropPacketColumns,
        DropTagColumns,
        Filter,
        Join,
        MapPackets,
        MapTags,
        MergeJoin,
        SelectPacketColumns,
        SelectTagColumns,
        SemiJoin,
    )
    from podline.pipeline import (
        AsyncPipelineOrchestrator,
        Pipeline,
        SyncPipelineOrchestrator,
        open_pipeline,
    )
    from podline.schema import Schema
    from podline.sources import (
        ArrowTableSource,
        CSVSource,
        DataFrameSource,
        DeltaTableSource,
        DictSource,
        GeneratorSource,
        ListSource,
        ParquetSource,
        Source,
    )
    from podline.stores import DeltaStore, MemoryStore, Store, default_store, open_store
    from podline.streams import LazyStream, Stream, TableStream

#: Public name -> the module that defines it, imported on first access (see ``__getattr__``).
_LAZY: dict[str, str] = {
    "ArrowTableSource": "podline.sources",
    "AsyncPipelineOrchestrator": "podline.pipeline",
    "Batch": "podline.operators",
    "CSVSource": "podline.sources",
    "ContentHash": "podline.hashing",
    "DataFrameSource": "podline.sources",
    "DeltaStore": "podline.stores",
    "DeltaTableSource": "podline.sources",
    "DictSource": "podline.sources",
    "GeneratorSource": "podline.sources",
    "DropPacketColumns": "podline.operators",
    "DropTagColumns": "podline.operators",
    "Executor": "podline.executors",
    "Filter": "podline.operators",
    "FunctionPod": "podline.functions",
    "HASH_SCHEME": "podline.hashing",
    "Join": "podline.operators",
    "LazyStream": "podline.streams",
    "ListSource": "podline.sources",
    "LocalExecutor": "podline.executors",
    "LoggingObserver": "podline.observability",
    "MapPackets": "podline.operators",
    "MapTags": "podline.operators",
    "MemoryStore": "podline.stores",
    "MergeJoin": "podline.operators",
    "Packet": "podline.datagrams",
    "PacketFunction": "podline.functions",
    "ParquetSource": "podline.sources",
    "Pipeline": "podline.pipeline",
    "ProcessExecutor": "podline.executors",
    "ProgressObserver": "podline.observability",
    "SKIP": "podline.functions",
    "Schema": "podline.schema",
    "SelectPacketColumns": "podline.operators",
    "SelectTagColumns": "podline.operators",
    "SemiJoin": "podline.operators",
    "Source": "podline.sources",
    "StatusObserver": "podline.observability",
    "Store": "podline.stores",
    "Stream": "podline.streams",
    "SyncPipelineOrchestrator": "podline.pipeline",
    "TableStream": "podline.streams",
    "Tag": "podline.datagrams",
    "ThreadExecutor": "podline.executors",
    "default_store": "podline.stores",
    "function_pod": "podline.functions",
    "hash_file": "podline.hashing",
    "hash_table": "podline.hashing",
    "hash_value": "podline.hashing",
    "open_pipeline": "podline.pipeline",
    "open_store": "podline.stores",
}

__all__ = [
    "HASH_SCHEME",
    "SKIP",
    "ArrowTableSource",
    "AsyncPipelineOrchestrator",
    "Batch",
    "CSVSource",
    "ConfigurationError",
    "ContentHash",
    "DataFrameSource",
    "DeltaStore",
    "DeltaTableSource",
    "DictSource",
    "DropPacketColumns",
    "DropTagColumns",
    "DuplicateRecordIdError",
    "Executor",
    "Filter",
    "FunctionCallError",
    "FunctionDefinitionError",
    "FunctionIdentityError",
    "FunctionPod",
    "GeneratorSource",
    "GraphError",
    "HashingError",
    "InputValidationError",
    "Join",
    "LazyStream",
    "ListSource",
    "LocalExecutor",
    "LoggingObserver",
    "MapPackets",
    "MapTags",
    "MemoryStore",
    "MergeJoin",
    "OperatorError",
    "OutputValidationError",
    "Packet",
    "PacketFunction",
    "ParquetSource",
    "Pipeline",
    "PipelineError",
    "PodlineError",
    "ProcessExecutor",
    "ProgressObserver",
    "ReadOnlyNodeError",
    "RemoteCallError",
    "ReservedColumnError",
    "Schema",
    "SchemaError",
    "SelectPacketColumns",
    "SelectTagColumns",
    "SemiJoin",
    "Source",
    "SourceError",
    "StatusObserver",
    "Store",
    "StoreError",
    "Stream",
    "SyncPipelineOrchestrator",
    "TableStream",
    "Tag",
    "ThreadExecutor",
    "UnknownNodeTypeError",
    "UnsupportedTypeError",
    "__version__",
    "default_store",
    "function_pod",
    "hash_file",
    "hash_table",
    "hash_value",
    "open_pipeline",
    "open_store",
]


def __getattr__(name: str) -> object:
    """Import the module of a public name on first access and cache the name here."""
    return lazy_export(globals(), _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
