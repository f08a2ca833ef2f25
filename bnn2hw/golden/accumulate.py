"""The accumulator arithmetic every golden layer shares: XNOR-popcount of packed bits, the signed
sum of ±q for a pixel input, or Σ w·x over unsigned codes and signed integer weights (multi-bit). Dense layers apply it once per sample, convolutions once per window
(golden/conv.py); golden/execute.py chains the layers."""

from __future__ import annotations

import numpy as np

from ..ir import CODES, PIXELS
from .packing import pack_bits

__all__ = ["layer_accumulators"]

_CHUNK = 4096   # samples per block: bounds the (n, out) popcount intermediates


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
    n_in = node.in_features
    w = pack_bits(node.weight_bits)                       # (out, words)
    x = pack_bits(inputs)                                 # (n, words)
    mismatches = np.zeros((inputs.shape[0], node.out_features), dtype=np.int32)
    for s in range(0, inputs.shape[0], _CHUNK):
        block = mismatches[s:s + _CHUNK]
        for k in range(w.shape[1]):                       # one (samples × outputs) XOR-popcount per word
            block += np.bitwise_count(x[s:s + _CHUNK, k, None] ^ w[None, :, k])
    acc = n_in - mismatches.astype(np.int64)              # popcount(XNOR) over the real inputs only
    return acc
