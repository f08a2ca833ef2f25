"""The accumulator arithmetic every golden layer shares: XNOR-popcount of packed bits, the signed
sum of ±q for a pixel input, or Σ w·x over unsigned codes and signed integer weights (multi-bit). Dense layers apply it once per sample, convolutions once per window
(golden/conv.py); golden/execute.py chains the layers."""

from __future__ import annotations

import numpy as np

from ..ir import CODES, PIXELS
from .packing import pack_bits

__all__ = ["layer_accumulators", "xnor_popcount"]

_CHUNK = 4096   # samples per block: bounds the (n, out) popcount intermediates
_BLOCK_ELEMENTS = 1 << 18   # samples × outputs per block: the intermediates stay in cache


def _signs(weight_bits: np.ndarray) -> np.ndarray:
    return weight_bits.astype(np.int64) * 2 - 1


def layer_accumulators(node, inputs: np.ndarray, in_bits: int) -> np.ndarray:
    """The accumulator of ``node`` for a batch: popcount of XNOR (bits input) or Σ ±q (pixel input).

    ``inputs`` are pixels (n, in) int64 for :data:`PIXELS` layers and 0/1 bits (n, in) for :data:`BITS`.
    """
    if node.input_kind == CODES:
        w = node.weights
        bound = node.in_features * int(np.abs(w).max(initial=0)) * ((1 << in_bits) - 1)
        if bound < 2 ** 52:      # exact in float64, as for pixels below
            return (inputs.astype(np.float64) @ w.T.astype(np.float64)).astype(np.int64)
        return inputs.astype(np.int64) @ w.T
    if node.input_kind == PIXELS:
        q = 2 * inputs.astype(np.int64) - ((1 << in_bits) - 1)
        # Every product and partial sum is an integer below 2**53 in magnitude (|A| <= N * 255), so
        # float64 BLAS computes A exactly, and much faster than numpy's integer matmul.
        if node.in_features * ((1 << in_bits) - 1) < 2 ** 52:
            return (q.astype(np.float64) @ _signs(node.weight_bits).T.astype(np.float64)).astype(np.int64)
        return q @ _signs(node.weight_bits).T
    return xnor_popcount(pack_bits(inputs), pack_bits(node.weight_bits), node.in_features)


def xnor_popcount(x: np.ndarray, w: np.ndarray, n_in: int) -> np.ndarray:
    """popcount(XNOR) of packed rows ``x`` (n, words) against packed weights ``w`` (out, words), both
    uint64 with zero bits beyond the ``n_in`` real ones (any layout, the same in both): (n, out) int64.

    Mismatches are counted per word (XOR, then ``np.bitwise_count``) into uint16 (n_in < 2**16) or
    int64 blocks, in place, so no (n, out) temporary is wider than the count needs."""
    n, words = x.shape
    out = w.shape[0]
    acc = np.empty((n, out), dtype=np.int64)
    dtype = np.uint16 if n_in < (1 << 16) else np.int64
    rows = max(1, min(_CHUNK, _BLOCK_ELEMENTS // max(out, 1)))
    xor = np.empty((rows, out), dtype=np.uint64)
    count = np.empty((rows, out), dtype=np.uint8)
    mismatches = np.empty((rows, out), dtype=dtype)
    for s in range(0, n, rows):
        m = min(rows, n - s)
        mis = mismatches[:m]
        mis[...] = 0
        for k in range(words):                            # one (samples × outputs) XOR-popcount per word
            np.bitwise_xor(x[s:s + m, k, None], w[None, :, k], out=xor[:m])
            np.bitwise_count(xor[:m], out=count[:m])
            mis += count[:m]
        np.subtract(n_in, mis, out=acc[s:s + m], casting="unsafe")   # popcount(XNOR) over the real inputs
    return acc
