"""Hash ids held in memory as their digest bytes: ``pack`` and ``call_hex``.

Entry ids, result ids and argument hashes are ``ContentHash`` strings, ``pod3:`` and 64
lowercase hex digits: 69 characters, and 77 bytes an id in a large-string array. What a node
keeps of its records while a cached run serves them (``nodes.records.KnownEntries``) is
mostly such ids, so it keeps them packed: the 32 digest bytes of each id in a
``fixed_size_binary(32)`` array, 2.4 times smaller.

Packing is exact. Only the canonical form packs (the current scheme's prefix, 64 lowercase
hex digits), and it packs one to one, so two ids pack alike exactly when they are the same
string. Anything else (null, an older scheme, any other string) packs to null, which matches
nothing: a caller whose own ids do not all pack keeps them as strings. ``packs_of`` tells
whether packed ids are those of some strings without packing them.
"""

from __future__ import annotations

import binascii
from typing import TypeAlias

import numpy as np
import pyarrow as pa

from podline.hashing.digest import HASH_SCHEME

__all__ = ["PACKED", "call_hex", "digest_words", "pack", "packs_of"]

Ids: TypeAlias = pa.Array | pa.ChunkedArray

#: The type of a packed id.
PACKED = pa.binary(32)

_PREFIX = np.frombuffer(f"{HASH_SCHEME}:".encode(), dtype=np.uint8)
_WIDTH = len(_PREFIX) + 64
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
#: Per pair of bytes read as one native uint16, the byte two lowercase hex digits spell, or
#: 256 for any other pair: one lookup a byte, twice as fast as one a digit.
_PAIR = np.full(1 << 16, 256, dtype=np.uint16)
_PAIR[
    np.stack(np.broadcast_arrays(_HEX[:, None], _HEX[None, :]), axis=-1)
    .reshape(-1, 2)
    .copy()
    .view(np.uint16)
    .ravel()
] = np.arange(256, dtype=np.uint16)
#: Rows packed at a time: the temporaries are about 100 bytes a row.
_BLOCK = 1 << 16


def pack(ids: Ids) -> Ids:
    """Every id as its 32 digest bytes (null where it is not a canonical hash id), chunk for
    chunk."""
    if isinstance(ids, pa.ChunkedArray):
        return pa.chunked_array([_pack_array(chunk) for chunk in ids.chunks], PACKED)
    return _pack_array(ids)


def packs_of(packed: Ids, ids: Ids) -> bool:
    """Whether ``packed`` is ``pack(ids)`` item for item, without packing: the digits of
    ``ids`` are compared with the hex of ``packed`` (about a third of what packing costs,
    for the usual question of a cached run: are these the ids that come next?)."""
    if len(packed) != len(ids) or packed.null_count or ids.null_count:
        return False
    digits = _digits(ids)
    if digits is None:
        return False
    if isinstance(packed, pa.ChunkedArray):
        packed = packed.combine_chunks() if packed.num_chunks else pa.array([], PACKED)
    expected = binascii.hexlify(np.ascontiguousarray(_digest_matrix(packed)).tobytes())
    return digits == expected


def _digits(ids: Ids) -> bytes | None:
    """The hex digits of ids all of the canonical length and prefix, one after the other;
    None if one is not (its case is left to the comparison)."""
    parts = []
    for chunk in ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]:
        if not len(chunk):
            continue
        if not pa.types.is_string(chunk.type) and not pa.types.is_large_string(chunk.type):
            return None
        offsets, data = _layout(chunk)
        first = int(offsets[0])
        if int(offsets[-1]) - first != _WIDTH * len(chunk) or (np.diff(offsets) != _WIDTH).any():
            return None
        text = data[first : first + _WIDTH * len(chunk)].reshape(len(chunk), _WIDTH)
        if not all(bool((text[:, i] == byte).all()) for i, byte in enumerate(_PREFIX)):
            return None
        parts.append(np.ascontiguousarray(text[:, len(_PREFIX) :]).tobytes())
    return b"".join(parts)


def call_hex(packed: Ids) -> pa.Array:
    """The first 16 bytes of every packed id as 32 hex digits (``functions.memo.call_ids``
    of the id it packs), as one large-string array."""
    if isinstance(packed, pa.ChunkedArray):
        packed = packed.combine_chunks() if packed.num_chunks else pa.array([], PACKED)
    n = len(packed)
    text = binascii.hexlify(np.ascontiguousarray(_digest_matrix(packed)[:, :16]).tobytes())
    offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text), None, 0)


def digest_words(packed: Ids) -> np.ndarray:
    """Every packed id as four unsigned 64-bit words, an ``(n, 4)`` array (zeros for a null):
    ids are equal exactly when their words are, and the first word is ``matching.id_hashes``'s
    hash of the id."""
    if isinstance(packed, pa.ChunkedArray):
        packed = packed.combine_chunks() if packed.num_chunks else pa.array([], PACKED)
    if not len(packed) or packed.buffers()[1] is None:
        return np.zeros((len(packed), 4), dtype=np.uint64)
    return _digest_matrix(packed).view(np.uint64)


def _digest_matrix(packed: pa.Array) -> np.ndarray:
    """The (n, 32) bytes of a packed array without nulls."""
    data = np.frombuffer(packed.buffers()[1], dtype=np.uint8)
    start = packed.offset * 32
    return data[start : start + 32 * len(packed)].reshape(len(packed), 32)


def _pack_array(ids: pa.Array) -> pa.Array:
    n = len(ids)
    if not pa.types.is_string(ids.type) and not pa.types.is_large_string(ids.type):
        return pa.nulls(n, PACKED)
    out = np.zeros((n, 32), dtype=np.uint8)
    valid = np.zeros(n, dtype=bool)
    if n:
        offsets, data = _layout(ids)
        present = ~np.asarray(ids.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        for start in range(0, n, _BLOCK):
            stop = min(start + _BLOCK, n)
            block = slice(start, stop)
            _pack_block(offsets[start : stop + 1], data, present[block], out[block], valid[block])
    mask = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.FixedSizeBinaryArray.from_buffers(
        PACKED, n, [mask, pa.py_buffer(out)], int(n - valid.sum())
    )


def _layout(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets of a (possibly sliced) string array's items and its character bytes."""
    width = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(strings.buffers()[1], dtype=width)
    data = strings.buffers()[2]
    chars = np.frombuffer(data, dtype=np.uint8) if data else np.zeros(0, np.uint8)
    return offsets[strings.offset : strings.offset + len(strings) + 1], chars


def _pack_block(
    offsets: np.ndarray, data: np.ndarray, present: np.ndarray, out: np.ndarray, valid: np.ndarray
) -> None:
    """Pack the rows whose ``offsets`` are given into ``out`` and mark in ``valid`` those that
    packed (views of the whole arrays' rows of one block)."""
    begins = offsets[:-1].astype(np.int64)
    right = (offsets[1:] - offsets[:-1] == _WIDTH) & present
    rows = np.flatnonzero(right)
    if not len(rows):
        return
    first = int(begins[rows[0]])
    if np.array_equal(begins[rows], first + _WIDTH * np.arange(len(rows))):
        text = data[first : first + _WIDTH * len(rows)].reshape(len(rows), _WIDTH)
    else:  # ids of other lengths in between: gather the right ones
        text = data[begins[rows][:, None] + np.arange(_WIDTH)]
    if len(rows) == len(out) and _unhexed(text, out):
        valid[:] = True  # every row canonical: the usual case
        return
    pairs = _PAIR[text[:, len(_PREFIX) :].view(np.uint16)]
    good = (text[:, : len(_PREFIX)] == _PREFIX).all(axis=1) & (pairs < 256).all(axis=1)
    at = rows[good]
    out[at] = pairs[good]
    valid[at] = True


def _unhexed(text: np.ndarray, out: np.ndarray) -> bool:
    """Decode rows of ``text`` (all ``_WIDTH`` bytes) into ``out`` if every one is
    canonical; False (``out`` untouched) otherwise. About three times faster than the
    table lookup for rows that are, as nearly all are."""
    if not all(bool((text[:, i] == byte).all()) for i, byte in enumerate(_PREFIX)):
        return False
    digits = np.ascontiguousarray(text[:, len(_PREFIX) :]).tobytes()
    try:
        decoded = binascii.unhexlify(digits)
    except binascii.Error:  # a byte that is no hex digit
        return False
    if binascii.hexlify(decoded) != digits:  # upper-case digits: not the canonical form
        return False
    out[:] = np.frombuffer(decoded, dtype=np.uint8).reshape(out.shape)
    return True
