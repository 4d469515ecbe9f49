"""Canonical hashing of Python values: the identity structures of podline elements.

``hash_value(obj)`` encodes ``obj`` into a tagged, length-prefixed byte string and hashes it.
The encoding depends only on the value, never on ``PYTHONHASHSEED``, object ids or insertion
order of dicts and sets:

* ``None``, ``bool``, ``int`` (any size), ``float`` (one NaN; ``-0.0`` is not ``0.0``), ``str``,
  ``bytes``, ``datetime``/``date``, ``uuid.UUID``, ``enum.Enum`` members;
* ``list`` and ``tuple`` (distinguished), ``dict`` and other mappings (entries sorted by their
  encoded key), ``set``/``frozenset`` (items sorted by encoding), ``Unordered`` (a multiset:
  items sorted by encoding, repeats kept);
* ``ContentHash`` values, embedded as they are (a Merkle link);
* type annotations (``int``, ``list[str] | None``, records) by their podline type name;
* ``pathlib.Path`` by the content of the file it names;
* Arrow tables and record batches by ``hash_table``;
* dataclass instances by class name and fields;
* objects with an identity (see ``identity``): resolved to a hash by ``resolver``, so a nested
  element contributes its own hash rather than its whole structure;
* objects that only define ``identity_structure()`` (e.g. ``Schema``): that structure, inline.

Anything else is a ``HashingError`` naming the type: an unhashable value must never be silently
replaced by something like its ``repr``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import struct
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from podline.errors import HashingError, UnsupportedTypeError
from podline.hashing.arrow_encoding import hash_table
from podline.hashing.digest import HASH_SCHEME, ContentHash
from podline.hashing.files import file_digest
from podline.schema import type_name

__all__ = ["Resolver", "Unordered", "encode_value", "hash_value"]

#: Turns an identifiable element into the hash that stands for it inside a parent structure.
Resolver = Callable[[Any], ContentHash]


@dataclasses.dataclass(frozen=True, slots=True)
class Unordered:
    """A multiset for identity structures: order does not count, repeats do.

    The inputs of a commutative operator are ``Unordered(inputs)``: ``Join(a, b)`` and
    ``Join(b, a)`` hash equal, while ``Join(a, a)`` differs from ``Join(a)``.
    """

    items: tuple[Any, ...]

    def __init__(self, items: Iterable[Any]) -> None:
        object.__setattr__(self, "items", tuple(items))


def hash_value(obj: Any, resolver: Resolver | None = None) -> ContentHash:
    """The content hash of a Python value (see module docs for what is supported)."""
    return ContentHash.of(f"{HASH_SCHEME}:value\x1d".encode() + encode_value(obj, resolver))


def encode_value(obj: Any, resolver: Resolver | None = None) -> bytes:
    """The canonical byte encoding that ``hash_value`` hashes."""
    out = bytearray()
    _Encoder(resolver, out).encode(obj)
    return bytes(out)


def _default_resolver(obj: Any) -> ContentHash:
    result = obj.content_hash()
    if not isinstance(result, ContentHash):  # pragma: no cover - a protocol violation
        raise HashingError(f"{type(obj).__name__}.content_hash() did not return a ContentHash")
    return result


class _Encoder:
    __slots__ = ("_active", "_out", "_resolver")

    def __init__(self, resolver: Resolver | None, out: bytearray) -> None:
        self._resolver = resolver or _default_resolver
        self._out = out
        self._active: set[int] = set()

    def _tag(self, tag: bytes, payload: bytes = b"") -> None:
        self._out += tag
        self._out += struct.pack("<Q", len(payload))
        self._out += payload

    def _nested(self, tag: bytes, items: list[bytes]) -> None:
        self._out += tag
        self._out += struct.pack("<Q", len(items))
        for item in items:
            self._out += struct.pack("<Q", len(item))
            self._out += item

    def _sub(self, obj: Any) -> bytes:
        sub = _Encoder(self._resolver, bytearray())
        sub._active = self._active
        sub.encode(obj)
        return bytes(sub._out)

    def encode(self, obj: Any) -> None:
        if obj is None:
            self._tag(b"N")
        elif isinstance(obj, bool):
            self._tag(b"B", b"\x01" if obj else b"\x00")
        elif isinstance(obj, enum.Enum):
            cls = type(obj)
            self._nested(
                b"M", [f"{cls.__module__}.{cls.__qualname__}".encode(), self._sub(obj.value)]
            )
        elif isinstance(obj, int):
            self._tag(b"I", obj.to_bytes((obj.bit_length() + 8) // 8 or 1, "little", signed=True))
        elif isinstance(obj, float):
            self._tag(b"F", struct.pack("<d", math.nan if math.isnan(obj) else obj))
        elif isinstance(obj, str):
            self._tag(b"S", obj.encode("utf-8"))
        elif isinstance(obj, bytes | bytearray | memoryview):
            self._tag(b"Y", bytes(obj))
        elif isinstance(obj, ContentHash):
            self._tag(b"H", f"{obj.scheme}:".encode() + obj.digest)
        elif isinstance(obj, dt.datetime):
            self._tag(b"T", obj.isoformat().encode())
        elif isinstance(obj, dt.date):
            self._tag(b"D", obj.isoformat().encode())
        elif isinstance(obj, uuid.UUID):
            self._tag(b"U", obj.bytes)
        elif isinstance(obj, Path):
            self._tag(b"P", file_digest(obj))
        elif isinstance(obj, pa.Table | pa.RecordBatch):
            self._tag(b"A", hash_table(obj).digest)
        elif _is_annotation(obj):
            self._tag(b"t", _annotation_name(obj).encode())
        elif hasattr(obj, "content_hash") and hasattr(obj, "identity_structure"):
            self._tag(b"H", _hash_bytes(self._resolver(obj)))
        elif hasattr(obj, "identity_structure"):
            self._guarded(obj, lambda: self._structure(obj))
        elif isinstance(obj, Mapping):
            self._guarded(obj, lambda: self._mapping(obj))
        elif isinstance(obj, list | tuple):
            tag = b"L" if isinstance(obj, list) else b"R"
            self._guarded(obj, lambda: self._nested(tag, [self._sub(x) for x in obj]))
        elif isinstance(obj, set | frozenset):
            self._guarded(obj, lambda: self._nested(b"E", sorted(self._sub(x) for x in obj)))
        elif isinstance(obj, Unordered):
            self._guarded(obj, lambda: self._nested(b"Q", sorted(self._sub(x) for x in obj.items)))
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
            qualified = f"{type(obj).__module__}.{type(obj).__qualname__}".encode()
            self._guarded(obj, lambda: self._nested(b"C", [qualified, self._sub(fields)]))
        else:
            raise HashingError(
                f"cannot hash a value of type {type(obj).__module__}.{type(obj).__qualname__}; "
                "give it an identity_structure() or convert it to a supported type"
            )

    def _structure(self, obj: Any) -> None:
        cls = type(obj)
        name = f"{cls.__module__}.{cls.__qualname__}".encode()
        self._nested(b"O", [name, self._sub(obj.identity_structure())])

    def _mapping(self, obj: Mapping[Any, Any]) -> None:
        entries = sorted((self._sub(k), self._sub(v)) for k, v in obj.items())
        self._nested(b"K", [k + v for k, v in entries])

    def _guarded(self, obj: Any, encode: Callable[[], None]) -> None:
        key = id(obj)
        if key in self._active:
            raise HashingError(f"cannot hash a self-referencing {type(obj).__name__}")
        self._active.add(key)
        try:
            encode()
        finally:
            self._active.discard(key)


def _hash_bytes(h: ContentHash) -> bytes:
    return f"{h.scheme}:".encode() + h.digest


def _is_annotation(obj: Any) -> bool:
    return isinstance(obj, type | types.GenericAlias | types.UnionType) or (
        type(obj).__module__ == "typing" and typing.get_origin(obj) is not None
    )


def _annotation_name(obj: Any) -> str:
    try:
        return type_name(obj)
    except UnsupportedTypeError:
        if isinstance(obj, type):
            return f"class:{obj.__module__}.{obj.__qualname__}"
        raise HashingError(f"cannot hash the type annotation {obj!r}") from None
