"""podline: reproducible, content-addressed scientific data pipelines over Arrow streams.

Data flows as streams of (Tag, Packet) rows. Sources stamp every row with provenance; every
element has a content hash (data-inclusive) and a pipeline hash (schema and topology only).
"""

from podline.datagrams import Packet, Tag
from podline.errors import (
    DuplicateRecordIdError,
    HashingError,
    InputValidationError,
    PodlineError,
    ReservedColumnError,
    SchemaError,
    SourceError,
    UnsupportedTypeError,
)
from podline.hashing import HASH_SCHEME, ContentHash, hash_file, hash_table, hash_value
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
from podline.streams import LazyStream, Stream, TableStream

__version__ = "0.1.0"

__all__ = [
    "HASH_SCHEME",
    "ArrowTableSource",
    "CSVSource",
    "ContentHash",
    "DataFrameSource",
    "DeltaTableSource",
    "DictSource",
    "DuplicateRecordIdError",
    "HashingError",
    "InputValidationError",
    "LazyStream",
    "ListSource",
    "Packet",
    "ParquetSource",
    "PodlineError",
    "ReservedColumnError",
    "Schema",
    "SchemaError",
    "Source",
    "SourceError",
    "Stream",
    "TableStream",
    "Tag",
    "UnsupportedTypeError",
    "__version__",
    "hash_file",
    "hash_table",
    "hash_value",
]
