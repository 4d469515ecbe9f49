"""The hash scheme: ``ContentHash`` values and the SHA-256 digest of byte strings, one or many.

Scheme ``pod3`` is SHA-256 over podline's canonical encodings (see ``arrow_encoding`` and
``values``, and for code ``podline.functions.canonical``). The scheme id is part of every
``ContentHash`` and of its string form ``pod3:<64 hex digits>``, so a persisted hash always
says how it was made. A change to any canonical encoding must come with a new scheme id.

Many digests at once (one per table row) go through the ``polars-hash`` plugin when it is
installed and passes a known-answer check against ``hashlib``; otherwise through ``hashlib``.
Both produce the same digests; only the speed differs.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import string
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa

from podline.errors import HashingError

__all__ = ["HASH_SCHEME", "ContentHash", "digest_bytes", "hex_digests"]

HASH_SCHEME = "pod3"
DIGEST_SIZE = 32
_log = logging.getLogger(__name__)

#: Below this many rows, the per-call overhead of the vectorized path is not worth it.
_VECTOR_THRESHOLD = 256


@dataclass(frozen=True, slots=True)
class ContentHash:
    """A hash value: the scheme that made it plus the raw digest.

    ``str(h)`` is ``"<scheme>:<hex>"`` and ``ContentHash.parse(str(h)) == h``.
    """

    scheme: str
    digest: bytes

    def __post_init__(self) -> None:
        if not self.scheme or ":" in self.scheme:
            raise HashingError(f"invalid hash scheme id {self.scheme!r}")

    def __str__(self) -> str:
        return f"{self.scheme}:{self.digest.hex()}"

    def __repr__(self) -> str:
        return f"ContentHash({str(self)!r})"

    @property
    def hex(self) -> str:
        """The digest as lowercase hex (without the scheme)."""
        return self.digest.hex()

    def short(self, n: int = 12) -> str:
        """The first ``n`` hex digits of the digest, for names and display."""
        return self.digest.hex()[:n]

    @classmethod
    def parse(cls, text: str) -> ContentHash:
        """Parse the ``"<scheme>:<hex>"`` form."""
        scheme, sep, hexdigest = text.partition(":")
        if not sep or not scheme:
            raise HashingError(f"{text!r} is not a content hash ('<scheme>:<hex>')")
        # bytes.fromhex alone would accept an empty digest and embedded whitespace.
        if not hexdigest or not all(c in string.hexdigits for c in hexdigest):
            raise HashingError(f"{text!r} has a malformed hex digest")
        try:
            return cls(scheme, bytes.fromhex(hexdigest))
        except ValueError:
            raise HashingError(f"{text!r} has a malformed hex digest") from None

    @classmethod
    def of(cls, data: bytes) -> ContentHash:
        """The current scheme's hash of raw bytes."""
        return cls(HASH_SCHEME, digest_bytes(data))


def digest_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """The raw SHA-256 digest of one byte string."""
    return hashlib.sha256(data).digest()


def hex_digests(messages: pa.LargeBinaryArray) -> pa.Array:
    """Hex SHA-256 digests of every message in a binary array, as a string array.

    Messages must not be null. The result has the same length and order.
    """
    if messages.null_count:
        raise HashingError("cannot hash null messages")  # pragma: no cover - internal misuse
    if len(messages) >= _VECTOR_THRESHOLD and _polars_hash_ok():
        return _polars_hex_digests(messages)
    return pa.array(_hashlib_hex_digests(messages), pa.large_string())


def _hashlib_hex_digests(messages: pa.LargeBinaryArray) -> list[str]:
    offsets_buf, data_buf = messages.buffers()[1:3]
    start = messages.offset
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[start : start + len(messages) + 1]
    data = memoryview(data_buf) if data_buf is not None else memoryview(b"")
    bounds = offsets.tolist()
    sha = hashlib.sha256
    return [sha(data[a:b]).hexdigest() for a, b in itertools.pairwise(bounds)]


def _polars_hex_digests(messages: pa.LargeBinaryArray) -> pa.Array:
    import polars as pl
    import polars_hash as plh

    frame = pl.DataFrame({"m": pl.Series("m", messages, dtype=pl.Binary)})
    digests = frame.select(plh.col("m").chash.sha2_256()).to_series()
    return digests.to_arrow().cast(pa.large_string())


@cache
def _polars_hash_ok() -> bool:
    """True when polars-hash is importable and agrees with hashlib on known answers."""
    probes: list[Any] = [b"", b"abc", bytes(range(256)) * 3] * (_VECTOR_THRESHOLD // 3 + 1)
    try:
        array = pa.array(probes, pa.large_binary())
        got = _polars_hex_digests(array).to_pylist()
    except Exception as exc:  # any failure of an optional accelerator means: do not use it
        _log.debug("polars-hash unavailable, using hashlib: %s", exc)
        return False
    expected = [hashlib.sha256(p).hexdigest() for p in probes]
    if got != expected:
        _log.warning("polars-hash disagrees with hashlib; using hashlib")
        return False
    return True
