"""podline: reproducible, content-addressed scientific data pipelines over Arrow streams.

Data flows as streams of (Tag, Packet) rows. Sources stamp every row with provenance; every
element has a content hash (data-inclusive) and a pipeline hash (schema and topology only).
"""

import podline.shutdown  # noqa: F401 - first, so its exit hook runs after every store's
from podline.datagrams import Packet, Tag
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
    RemoteCallError,
    ReservedColumnError,
    SchemaError,
    SourceError,
    StoreError,
    UnknownNodeTypeError,
    UnsupportedTypeError,
)
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
from podline.pipeline import AsyncPipelineOrchestrator, Pipeline, SyncPipelineOrchestrator
from podline.schema import Schema
from podline.sources import (
    ArrowTableSource,
    CSVSource,
    DataFrameSource,
    DeltaTableSource,
    DictSource,
    ListSource,
    ParquetSource,
    Source,
)
from podline.stores import DeltaStore, MemoryStore, Store, default_store, open_store
from podline.streams import LazyStream, Stream, TableStream
from podline.version import __version__

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
    "open_store",
]
