"""ROM images: weights and per-channel constants laid out for a PE × SIMD unit.

Weight ROM row ``nf * SF + sf`` holds, for PE lane j and SIMD lane k, the bit of output channel
``nf * PE + j`` and input ``sf * SIMD + k`` at row bit ``j * SIMD + k`` (PE interleave, SIMD innermost,
element 0 at the least significant bit; docs/hardware.md). Inputs beyond the layer's fan-in get weight
bit 1, which meets input bit 0 and so adds nothing to the XNOR popcount; channels beyond the fan-out
get weight bit 1 and never reach the output.

A per-channel ROM (thresholds, scales, offsets) has one row per neuron fold with PE two's-complement
fields of one width, channel ``nf * PE + j`` in field j; channels beyond the fan-out hold 0.
"""

from __future__ import annotations

import numpy as np

from ..golden.packing import bits_to_int, pack_fields
from ..ir.arith import folds

__all__ = ["weight_image", "weight_rom", "channel_fields", "channel_rom", "nonconstant_columns"]


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
