"""Sources: streams with no upstream, stamped with system tags and source info."""

from podline.sources.base import Source
from podline.sources.files import CSVSource, DeltaTableSource, ParquetSource
from podline.sources.generated import GeneratorSource
from podline.sources.python import DictSource, ListSource
from podline.sources.tables import ArrowTableSource, DataFrameSource

__all__ = [
    "ArrowTableSource",
    "CSVSource",
    "DataFrameSource",
    "DeltaTableSource",
    "DictSource",
    "GeneratorSource",
    "ListSource",
    "ParquetSource",
    "Source",
]
