"""ROM images: weights and per-channel constants laid out for a PE × SIMD unit.

Weight ROM row ``nf * SF + sf`` holds, for PE lane j and SIMD lane k, the bit of output channel
``nf * PE + j`` and input ``sf * SIMD + k`` at row bit ``j * SIMD + k`` (PE interleave, SIMD innermost,
element 0 at the least significant bit; docs/hardware.md). Inputs beyond the layer's fan-in get weight
bit 1, which meets input bit 0 and so adds nothing to the XNOR popcount; channels beyond the fan-out
get weight bit 1 and never reach the output.
"""

from __future__ import annotations

import numpy as np

from ..golden.packing import bits_to_int, pack_fields

__all__ = ["folds", "weight_rom", "channel_rom", "signed_width", "unsigned_width"]


def folds(n: int, parallel: int) -> int:
    """Number of passes needed to cover ``n`` items ``parallel`` at a time (ceil division)."""
    return -(-n // parallel)


def weight_rom(weight_bits: np.ndarray, pe: int, simd: int) -> list[int]:
    n_out, n_in = weight_bits.shape
    nf, sf = folds(n_out, pe), folds(n_in, simd)
    padded = np.ones((nf * pe, sf * simd), dtype=np.uint8)
    padded[:n_out, :n_in] = weight_bits
    # (nf, pe, sf, simd) → (nf, sf, pe, simd): one row per (nf, sf), PE-major, SIMD innermost.
    rows = padded.reshape(nf, pe, sf, simd).transpose(0, 2, 1, 3).reshape(nf * sf, pe * simd)
    return [bits_to_int(r) for r in rows]


def channel_rom(values: np.ndarray, pe: int, width: int, pad_value: int = 0) -> list[int]:
    """Per-channel integers (thresholds, scales, offsets) → one row per neuron fold, PE fields per row."""
    n = len(values)
    nf = folds(n, pe)
    padded = np.full(nf * pe, pad_value, dtype=object)
    padded[:n] = [int(v) for v in values]
    return [pack_fields(padded[r * pe:(r + 1) * pe], width) for r in range(nf)]


def unsigned_width(max_value: int) -> int:
    """Bits of an unsigned number holding 0..max_value (at least 1)."""
    return max(1, int(max_value).bit_length())


def signed_width(lo: int, hi: int) -> int:
    """Bits of a two's-complement number holding lo..hi."""
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w
