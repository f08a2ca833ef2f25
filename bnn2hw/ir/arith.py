"""The integer rules every later stage shares: folds, positions, cycles and two's-complement widths.

Each is defined here once; the hardware plan (bnn2hw.plan), the folding passes and the estimates call
these functions instead of writing the arithmetic out again.
"""

from __future__ import annotations

__all__ = ["folds", "positions", "layer_cycles", "lane_cost", "weight_bits", "signed_width", "unsigned_width",
           "popcount_threshold", "index_width"]


def folds(n: int, parallel: int) -> int:
    """Passes needed to cover ``n`` items ``parallel`` at a time: NF = folds(out, PE), SF = folds(in, SIMD)."""
    return -(-n // parallel)


def positions(node) -> int:
    """Input vectors a compute layer takes per frame: out_h·out_w windows for a convolution, else 1."""
    window = getattr(node, "window", None)
    return 1 if window is None else window.out_hw[0] * window.out_hw[1]


def layer_cycles(node, pe: int, simd: int) -> int:
    """Cycles per frame of a compute layer's matrix-vector unit at (PE, SIMD): positions·NF·SF."""
    return positions(node) * folds(node.out_features, pe) * folds(node.in_features, simd)


def signed_width(lo: int, hi: int) -> int:
    """Bits of the smallest two's-complement number holding every value in lo..hi (at least 1)."""
    lo, hi = int(lo), int(hi)
    return 1 + max((-lo - 1).bit_length() if lo < 0 else 0, hi.bit_length() if hi > 0 else 0)


def unsigned_width(max_value: int) -> int:
    """Bits of an unsigned number holding 0..max_value (at least 1)."""
    return max(1, int(max_value).bit_length())


def popcount_threshold(t, n_in: int):
    """The popcount threshold of a ±1-input threshold T over ``n_in`` lanes: 2p − N ≥ T ⇔
    p ≥ ⌈(T + N)/2⌉ (ints or numpy integer arrays)."""
    return -((-(t + n_in)) // 2)


def weight_bits(node) -> int:
    """Bits of a compute layer's weights, unpadded: in·out·weight precision (1 for ±1 weights)."""
    return node.in_features * node.out_features * getattr(node, "weight_precision", 1)


def lane_cost(node, pe: int, simd: int) -> int:
    """Binary lanes a layer's PE × SIMD array counts as: a pixel lane costs its bit width, a codes lane
    its input bits times its weight bits."""
    if node.input_kind == "codes":
        return pe * simd * node.in_bits * node.weight_precision
    return pe * simd * (node.in_bits if node.input_kind == "pixels" else 1)


def index_width(n: int) -> int:
    """Bits of an index 0..n − 1 (at least 1): a class index over ``n`` classes."""
    return max(1, (n - 1).bit_length())
