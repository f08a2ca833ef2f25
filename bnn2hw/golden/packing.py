"""The one bit order of bnn2hw (docs/integer_math.md, "Bit order").

* A binary value v ∈ {-1, +1} is the bit (v + 1) / 2: bit 1 = +1, bit 0 = -1.
* Element i of a vector is bit i of the packed integer: element 0 is the least significant bit.
  In the golden model that integer is split into little-endian uint64 words (element i lives in word
  i // 64 at bit i % 64); in hardware it is the stream payload or ROM row as one wide signal.
* Multi-bit elements (input pixels, scores) occupy consecutive fields, element 0 in the lowest field.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack_bits", "unpack_bits", "bits_to_int", "int_to_bits", "pack_fields", "unpack_fields",
           "words_for"]


def words_for(n_bits: int) -> int:
    return max(1, -(-n_bits // 64))


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(..., N) array of 0/1 → (..., ceil(N/64)) uint64 words, element i at word i//64 bit i%64."""
    bits = np.asarray(bits)
    if bits.dtype not in (np.uint8, np.bool_):
        bits = bits.astype(np.uint8)
    n = bits.shape[-1]
    w = words_for(n)
    as_bytes = np.packbits(bits, axis=-1, bitorder="little")       # (..., ceil(N/8)), zero-filled
    if as_bytes.shape[-1] != w * 8:
        as_bytes = np.concatenate(
            [as_bytes, np.zeros(as_bytes.shape[:-1] + (w * 8 - as_bytes.shape[-1],), dtype=np.uint8)], axis=-1)
    return np.ascontiguousarray(as_bytes).view("<u8")


def unpack_bits(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: (..., W) uint64 → (..., n) uint8 bits."""
    words = np.ascontiguousarray(words, dtype="<u8")
    as_bytes = words.view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=-1, bitorder="little")
    return bits[..., :n]


def bits_to_int(bits) -> int:
    """A 1-D 0/1 vector → Python int with element 0 as the least significant bit."""
    return int.from_bytes(np.packbits(np.asarray(bits, dtype=np.uint8), bitorder="little").tobytes(), "little")


def int_to_bits(value: int, n: int) -> np.ndarray:
    """Python int → 1-D uint8 vector of its n least significant bits, element 0 = LSB."""
    raw = int(value).to_bytes(-(-n // 8) or 1, "little")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")[:n]


def pack_fields(values, width: int) -> int:
    """Integers (two's complement if negative) → one int, element i in bits [i·width, (i+1)·width)."""
    mask = (1 << width) - 1
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (i * width)
    return out


def unpack_fields(value: int, count: int, width: int, signed: bool = False) -> list[int]:
    """Inverse of :func:`pack_fields`."""
    mask = (1 << width) - 1
    out = []
    for i in range(count):
        v = (int(value) >> (i * width)) & mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out
