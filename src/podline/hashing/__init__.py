"""Hashing: the ``pod3`` scheme, canonical hashes of values, rows, tables and files, identity.

See ``docs/identity.md`` for the rules; each submodule's docstring specifies its encoding.
"""

from podline.hashing.arrow_encoding import (
    TableHasher,
    hash_table,
    logical_type,
    row_hash_strings,
    row_hashes_hex,
)
from podline.hashing.digest import HASH_SCHEME, ContentHash
from podline.hashing.files import (
    clear_file_hash_cache,
    file_hash_cache_info,
    hash_file,
    unreadable_files,
)
from podline.hashing.identity import Identifiable, IdentityMixin, PipelineElement
from podline.hashing.values import Unordered, encode_value, hash_value

__all__ = [
    "HASH_SCHEME",
    "ContentHash",
    "Identifiable",
    "IdentityMixin",
    "PipelineElement",
    "TableHasher",
    "Unordered",
    "clear_file_hash_cache",
    "encode_value",
    "file_hash_cache_info",
    "hash_file",
    "hash_table",
    "hash_value",
    "logical_type",
    "row_hash_strings",
    "row_hashes_hex",
    "unreadable_files",
]
