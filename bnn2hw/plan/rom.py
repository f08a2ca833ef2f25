"""ROM images: weights and per-channel constants laid out for a PE × SIMD unit.

Weight ROM row ``nf * SF + sf`` holds, for PE lane j and SIMD lane k, the bit of output channel
``nf * PE + j`` and input ``sf * SIMD + k`` at row bit ``j * SIMD + k`` (PE interleave, SIMD innermost,
element 0 at the least significant bit; docs/hardware.md). Inputs beyond the layer's fan-in get weight
bit 1, which meets input bit 0 and so adds nothing to the XNOR popcount; channels beyond the fan-out
get weight bit 1 and never reach the output.

A multi-bit weight ROM (:func:`weight_code_rom`, ``MVUParams.weight_precision`` = k) has the same rows,
with PE·SIMD fields of k bits: lane (j, s) in field j·SIMD + s, field f at bits [f·k, (f+1)·k). A
weight is a k-bit two's-complement integer (k = 1: ±1, bit 1 = +1); padding fields are 0, which
meet input codes 0 (the unit zero-extends its input vector to whole SIMD words) and add nothing.

A per-channel ROM (thresholds, scales, offsets) has one row per neuron fold with PE two's-complement
fields of one width, channel ``nf * PE + j`` in field j; channels beyond the fan-out hold 0.

A binary search over L ascending thresholds per channel (:func:`search_roms`, hw/mvu.py) takes
B = L.bit_length() stages; the thresholds are padded to 2^B − 1 with a value no accumulator reaches.
Stage 0's ROM is a per-channel ROM of T_m, m = 2^(B−1) (1-based); stage t ≥ 1 has one ROM per PE lane j
with NF·2^t rows of one field: row nf·2^t + r holds T_m, m = (2r + 1)·2^(B−1−t), of channel nf·PE + j,
the threshold that decides the next bit of q after its first t bits r.
"""

from __future__ import annotations

import numpy as np

from ..golden.packing import bits_to_int, pack_fields
from ..ir.arith import folds

__all__ = ["weight_image", "weight_rom", "weight_code_rom", "channel_fields", "channel_rom", "nonconstant_columns",
           "search_thresholds", "search_roms"]


def weight_image(weight_bits: np.ndarray, pe: int, simd: int) -> np.ndarray:
    """The weight ROM as a (NF·SF, PE·SIMD) array of 0/1, row bit k in column k."""
    n_out, n_in = weight_bits.shape
    nf, sf = folds(n_out, pe), folds(n_in, simd)
    padded = np.ones((nf * pe, sf * simd), dtype=np.uint8)
    padded[:n_out, :n_in] = weight_bits
    # (nf, pe, sf, simd) → (nf, sf, pe, simd): one row per (nf, sf), PE-major, SIMD innermost.
    return padded.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe * simd)


def weight_rom(weight_bits: np.ndarray, pe: int, simd: int) -> list[int]:
    """The weight ROM's rows as integers (see the module docstring)."""
    return [bits_to_int(r) for r in weight_image(weight_bits, pe, simd)]


def weight_code_rom(codes: np.ndarray, pe: int, simd: int, bits: int) -> list[int]:
    """Signed integer weights (n_out, n_in) → the weight ROM's rows of PE·SIMD ``bits``-bit fields (see
    the module docstring): two's complement for ``bits`` ≥ 2, and for ``bits`` = 1 the values ±1
    as bit 1 (+1) and bit 0 (−1). Padding fields are 0."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"weights must be a 2-D integer array, not {codes.dtype} of shape {codes.shape}")
    if not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an integer in 1..8, not {bits!r}")
    codes = codes.astype(np.int64)
    if bits == 1:
        if not np.isin(codes, (-1, 1)).all():
            raise ValueError("1-bit weights must be -1 or +1")
        fields = (codes > 0).astype(np.int64)
    else:
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if codes.size and (codes.min() < lo or codes.max() > hi):
            raise ValueError(f"{bits}-bit weights must lie in {lo}..{hi}, not {codes.min()}..{codes.max()}")
        fields = codes & ((1 << bits) - 1)
    n_out, n_in = codes.shape
    nf, sf = folds(n_out, pe), folds(n_in, simd)
    padded = np.zeros((nf * pe, sf * simd), dtype=np.int64)
    padded[:n_out, :n_in] = fields
    rows = padded.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe * simd)
    return [pack_fields(row.tolist(), bits) for row in rows]


def channel_fields(values, pe: int) -> np.ndarray:
    """Per-channel integers padded with 0 to whole neuron folds: an (NF, PE) int64 array."""
    values = np.asarray(values, dtype=np.int64)
    padded = np.zeros(folds(len(values), pe) * pe, dtype=np.int64)
    padded[:len(values)] = values
    return padded.reshape(-1, pe)


def channel_rom(values, pe: int, width: int) -> list[int]:
    """Per-channel integers → one row per neuron fold, PE fields of ``width`` bits per row."""
    return [pack_fields([int(v) for v in row], width) for row in channel_fields(values, pe)]


def nonconstant_columns(rows: np.ndarray) -> int:
    """Columns of a (rows, width) 0/1 ROM image that are not the same in every row (Yosys' opt_mem
    removes the others)."""
    return int(np.count_nonzero(rows.min(axis=0) != rows.max(axis=0)))


def search_thresholds(fields: np.ndarray, never: int) -> np.ndarray:
    """(NF, PE, L) ascending thresholds → (NF, PE, 2^B − 1), B = L.bit_length(), padded with ``never``."""
    fields = np.asarray(fields, dtype=np.int64)
    if np.any(np.diff(fields, axis=-1) < 0):
        raise ValueError("a binary search needs each channel's thresholds in ascending order")
    levels = fields.shape[-1]
    pad = np.full(fields.shape[:-1] + ((1 << levels.bit_length()) - 1 - levels,), never, dtype=np.int64)
    return np.concatenate([fields, pad], axis=-1)


def search_roms(fields: np.ndarray, width: int, never: int) -> tuple[tuple[int, ...], tuple]:
    """A binary search's ROM images (module docstring) from (NF, PE, L) ascending thresholds: (stage 0's
    rows of PE ``width``-bit fields, and per stage t = 1 .. B − 1 per lane the NF·2^t field values)."""
    t_all = search_thresholds(fields, never)
    nf, pe, count = t_all.shape
    b, mask = (count + 1).bit_length() - 1, (1 << width) - 1
    first = tuple(channel_rom(t_all[..., (1 << (b - 1)) - 1].reshape(-1), pe, width))
    stages = []
    for t in range(1, b):
        m = (2 * np.arange(1 << t) + 1) << (b - 1 - t)
        rows = t_all[..., m - 1]                                              # (NF, PE, 2^t)
        stages.append(tuple(tuple(int(v) & mask for v in rows[:, j, :].reshape(-1)) for j in range(pe)))
    return first, tuple(stages)
