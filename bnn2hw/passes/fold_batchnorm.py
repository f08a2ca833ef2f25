"""Fold bias and BatchNorm into integer thresholds (hidden layers) and a fixed-point affine (last layer).

The rules are those of docs/integer_math.md (TRAINING_AND_INTEGER_MATH.md §7): τ in float64,
T = ⌈(N + τ)/2⌉ on the popcount (or ⌈D·τ⌉ on the first layer's signed sum), ``≥`` comparators,
channels with γ < 0 get their weight bits flipped, channels with γ = 0 become constants.

Every channel is then checked exhaustively: each accumulator value the layer can produce is pushed
through torch's own eval-mode bias + BatchNorm + sign in float64, and the integer rule must give the
same bit. The two can only differ at an exact float tie; there the torch result wins (the reference
is monotone, so a single threshold still exists) and the channel is counted in ``tie_corrections``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import FoldingError, UnsupportedModelError
from ..golden.execute import channel_last, layer_accumulators, node_in_bits, node_outputs, raw_scores
from ..ir import (BITS, CODES, PIXELS, SIGN_GRID, Activation, BatchNorm, Conv, Dense, Graph, Grid, InputThreshold,
                  MaxPool, MaxPoolBits, OutputMap, Quant, ScoresDense, Sign, ThresholdConv, ThresholdDense,
                  accumulator_range, pixel_grid, validate)
from ..nn import QuantAct

__all__ = ["fold_batchnorm", "analytic_threshold", "accumulator_grid", "reference_bits"]

_MAX_GRID_ELEMENTS = 4_000_000   # grid × channels evaluated by torch at once
_MAX_EXHAUSTIVE = 1 << 25          # grid × channels a multi-threshold layer is checked on, value by value


def accumulator_grid(input_kind: str, n_in: int, in_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Every accumulator value a layer can produce, ascending, and the real value torch sees for each.

    Bits input: popcount p = 0..N, torch sees s = 2p - N. Pixel input: A = Σ ±q with q odd, so
    A ∈ {-N·D, -N·D + 2, …, N·D} and torch sees A / D (D = 2**bits - 1).
    """
    lo, hi = accumulator_range(input_kind, n_in, in_bits)
    if input_kind == BITS:
        acc = np.arange(lo, hi + 1, dtype=np.int64)
        return acc, (2 * acc - n_in).astype(np.float64)
    acc = np.arange(lo, hi + 1, 2, dtype=np.int64)
    return acc, acc.astype(np.float64) / ((1 << in_bits) - 1)


def _tensor(a) -> torch.Tensor:
    """A writable float64 copy (IR arrays are read-only, and torch wants writable memory)."""
    return torch.from_numpy(np.array(a, dtype=np.float64))


def reference_bits(values: np.ndarray, bias, bn: BatchNorm | None, channels: slice) -> np.ndarray:
    """torch's eval-mode float64 ``sign(BN(v + bias)) >= 0`` for every value × channel, as bool (G, C)."""
    v = _tensor(values)[:, None]
    c = range(*channels.indices(len(bn.gamma) if bn is not None else len(bias)))
    n_ch = len(c)
    y = v.expand(-1, n_ch)
    if bias is not None:
        y = y + _tensor(bias[channels])[None, :]
    if bn is not None:
        t = lambda a: _tensor(a[channels])
        y = F.batch_norm(y.contiguous(), t(bn.mean), t(bn.var), t(bn.gamma), t(bn.beta), training=False, eps=bn.eps)
    return (y >= 0).numpy()


def analytic_threshold(input_kind: str, n_in: int, in_bits: int, gamma: float, beta: float, mean: float,
                       var: float, eps: float, bias: float) -> tuple[bool, int]:
    """The spec's canonical fold of one channel: returns (flip, T) with out = [acc' >= T].

    acc' is the accumulator after flipping the channel's weights when ``flip`` (p' = N - p for bits,
    A' = -A for pixels). Computed in float64 from τ = μ - b - β·σ'/γ.
    """
    lo, hi = accumulator_range(input_kind, n_in, in_bits)
    scale = None if input_kind == BITS else (1 << in_bits) - 1
    clamp = lambda t: int(min(max(t, lo), hi + 1))
    sd = math.sqrt(var + eps)
    if gamma == 0:
        return False, (lo if beta >= 0 else hi + 1)
    tau = mean - bias - beta * sd / gamma
    if scale is None:
        t = math.ceil((n_in + tau) / 2) if gamma > 0 else math.ceil((n_in - tau) / 2)
    else:
        t = math.ceil(scale * tau) if gamma > 0 else math.ceil(-scale * tau)
    return gamma < 0, clamp(t)


def _from_reference(ref: np.ndarray, acc: np.ndarray, flipped_acc: np.ndarray, name: str, ch: int) -> tuple[bool, int]:
    """The single ``≥`` rule that reproduces a monotone reference column exactly."""
    if ref.all():
        return False, int(acc[0])
    if not ref.any():
        return False, int(acc[-1] + 1)
    steps = np.flatnonzero(ref[1:] != ref[:-1])
    if len(steps) != 1:
        raise FoldingError(f"{name} channel {ch}: torch's BatchNorm + sign is not monotone in the accumulator, "
                           "so no threshold reproduces it; check the layer's parameters for NaN or inf")
    k = steps[0] + 1
    if ref[k]:                              # rising: -1 … -1 +1 … +1
        return False, int(acc[k])
    return True, int(flipped_acc[k - 1])     # falling: flip, last +1 becomes the threshold


def _fold_threshold(dense: Dense, bn: BatchNorm | None, input_kind: str, in_bits: int) -> ThresholdDense:
    n_in, n_out = dense.in_features, dense.out_features
    acc, values = accumulator_grid(input_kind, n_in, in_bits)
    flipped_acc = (n_in - acc) if input_kind == BITS else -acc
    bias = dense.bias
    flips = np.zeros(n_out, dtype=bool)
    thresholds = np.zeros(n_out, dtype=np.int64)
    corrections = 0
    step = max(1, _MAX_GRID_ELEMENTS // len(acc))
    if bn is None:
        bn_params = (np.ones(n_out), np.zeros(n_out), np.zeros(n_out), np.ones(n_out), 0.0)
    else:
        bn_params = (bn.gamma, bn.beta, bn.mean, bn.var, bn.eps)
    bias_ref = bias if bias is not None else (np.zeros(n_out) if bn is None else None)
    for start in range(0, n_out, step):
        chans = slice(start, min(n_out, start + step))
        ref = reference_bits(values, bias_ref, bn, chans)
        for j, ch in enumerate(range(chans.start, chans.stop)):
            g, b, m, v, e = (p[ch] if isinstance(p, np.ndarray) else p for p in bn_params)
            flip, t = analytic_threshold(input_kind, n_in, in_bits, g, b, m, v, e,
                                         0.0 if bias is None else bias[ch])
            column = ref[:, j]
            hw = (flipped_acc if flip else acc) >= t
            if not np.array_equal(hw, column):          # only at a float tie: follow torch exactly
                flip, t = _from_reference(column, acc, flipped_acc, dense.name, ch)
                hw = (flipped_acc if flip else acc) >= t
                if not np.array_equal(hw, column):
                    raise FoldingError(f"{dense.name} channel {ch}: no integer threshold matches torch")
                corrections += 1
            flips[ch], thresholds[ch] = flip, t
    bits = (dense.weight > 0).astype(np.uint8)
    bits[flips] ^= 1
    return ThresholdDense(name=dense.name, position=dense.position, input_kind=input_kind, in_bits=in_bits,
                          weight_bits=bits, thresholds=thresholds, flipped=flips, tie_corrections=corrections)


# -- multi-bit layers: codes datapath and multi-thresholds (docs/integer_math.md) -------------------------

def _lattice(kind: str, dense: Dense, in_bits: int) -> tuple[int, int, int]:
    """(lowest, step, count) of the accumulator values a layer can produce (a superset for codes)."""
    lo, hi = accumulator_range(kind, dense.in_features, in_bits, dense.weight_precision)
    step = 2 if kind == PIXELS else 1
    return lo, step, (hi - lo) // step + 1


def _flip(kind: str, n_in: int, acc):
    """The accumulator of a channel whose weights are flipped (bits) or negated (pixels, codes)."""
    return n_in - acc if kind == BITS else -acc


def layer_values(kind: str, dense: Dense, in_grid: Grid, acc: np.ndarray, channels: slice) -> np.ndarray:
    """The real output of ``dense`` (before bias) that torch computes where the accumulator is ``acc``
    ((M, C) or (M, 1) integers) for the channels ``channels``: s = 2p − N for bits, A/D for pixels,
    (offset·Σw + step·A)·scale/divisor for codes; times the channel scale if the layer has one. Exact
    for dyadic grids; otherwise the exact value rounded once."""
    acc = np.asarray(acc, dtype=np.int64)
    if kind == BITS:
        v = (2 * acc - dense.in_features).astype(np.float64)
    elif kind == PIXELS:
        v = acc.astype(np.float64) / in_grid.divisor
    else:
        wsum = dense.weight[channels].astype(np.int64).sum(axis=1)[None, :]
        v = (in_grid.offset * wsum + in_grid.step * acc).astype(np.float64) * in_grid.scale / in_grid.divisor
    if dense.scale is not None:
        v = v * dense.scale[channels][None, :]
    return v


def _reference_codes(values: np.ndarray, bias, bn: BatchNorm | None, act, channels: slice) -> np.ndarray:
    """torch's eval-mode float64 bias + BatchNorm + activation (sign or QuantAct) on ``values`` (M, C) of
    the channels ``channels``: the output codes (M, C) int64 (sign: 1 for +1)."""
    y = _tensor(np.ascontiguousarray(values))
    if bias is not None:
        y = y + _tensor(bias[channels])[None, :]
    if bn is not None:
        t = lambda a: _tensor(a[channels])
        y = F.batch_norm(y.contiguous(), t(bn.mean), t(bn.var), t(bn.gamma), t(bn.beta), training=False, eps=bn.eps)
    if isinstance(act, Activation):         # an imported graph's own nodes compute the codes
        return np.asarray(act.reference(np.asarray(values, dtype=np.float64), channels), dtype=np.int64)
    if isinstance(act, Quant):
        quant = QuantAct(act.bits, mode=act.mode, scale=act.scale, narrow=act.narrow)
        return quant.codes(y).numpy().astype(np.int64)
    return (y >= 0).numpy().astype(np.int64)


def _fold_multithreshold(dense: Dense, bn: BatchNorm | None, act, kind: str, in_bits: int,
                         in_grid: Grid) -> ThresholdDense:
    """Per-channel thresholds t_1 ≤ … ≤ t_L with q = #{k : acc′ ≥ t_k} equal to torch's codes.

    torch's bias + BatchNorm + quantizer is monotone in the accumulator (every float64 step is), so
    each channel is either non-decreasing (kept), non-increasing (weights flipped: acc′ = N − p, or −A)
    or constant. Each t_k is found by bisection on torch's own function; then every accumulator value
    is checked when the grid is small enough (``_MAX_EXHAUSTIVE``), else both sides of every threshold,
    which for a monotone function covers every value."""
    n_in, n_out = dense.in_features, dense.out_features
    levels = act.grid.levels if isinstance(act, (Quant, Activation)) else 2
    n_t = levels - 1
    lo, step, count = _lattice(kind, dense, in_bits)
    hi = lo + step * (count - 1)
    flips = np.zeros(n_out, dtype=bool)
    thresholds = np.zeros((n_out, n_t), dtype=np.int64)
    chunk = max(1, _MAX_GRID_ELEMENTS // max(count, 64))
    for start in range(0, n_out, chunk):
        ch = slice(start, min(n_out, start + chunk))
        c = ch.stop - ch.start

        def codes_at(acc_flipped: np.ndarray, flip: np.ndarray) -> np.ndarray:
            acc = np.where(flip[None, :], _flip(kind, n_in, acc_flipped), acc_flipped)
            return _reference_codes(layer_values(kind, dense, in_grid, acc, ch), dense.bias, bn, act, ch)

        ends = codes_at(np.array([[lo] * c, [hi] * c]), np.zeros(c, bool))
        flip = ends[0] > ends[1]
        flips[ch] = flip
        # bisection on the lattice index for every (channel, k) at once: first index with code >= k
        k = np.arange(1, n_t + 1)[:, None]
        low = np.zeros((n_t, c), dtype=np.int64)
        high = np.full((n_t, c), count, dtype=np.int64)
        while np.any(low < high):
            mid = np.minimum((low + high) // 2, count - 1)
            reached = codes_at(lo + step * mid, flip) >= k
            active = low < high
            high = np.where(active & reached, mid, high)
            low = np.where(active & ~reached, mid + 1, low)
        t = np.where(low >= count, hi + 1, lo + step * low)            # hi + 1: never reached
        thresholds[ch] = t.T
        _check_multithreshold(dense.name, ch, t, codes_at, flip, lo, step, count, hi, n_t)
    weights = dense.weight.astype(np.int64)
    if kind == CODES:
        weights = np.where(flips[:, None], -weights, weights)
        bits = (weights > 0).astype(np.uint8)
    else:
        bits = (dense.weight > 0).astype(np.uint8)
        bits[flips] ^= 1
        weights = None
    return ThresholdDense(name=dense.name, position=dense.position, input_kind=kind, in_bits=in_bits,
                          weight_bits=bits, thresholds=thresholds if n_t > 1 else thresholds[:, 0], flipped=flips,
                          weights=weights, weight_precision=dense.weight_precision,
                          in_grid=in_grid if kind == CODES else None,
                          out_grid=act.grid if isinstance(act, (Quant, Activation)) and not act.grid.is_sign else None)


def _check_multithreshold(name: str, ch: slice, t: np.ndarray, codes_at, flip, lo: int, step: int, count: int,
                          hi: int, n_t: int) -> None:
    """Every accumulator value (small grids) or both sides of every threshold (monotone: all values)."""
    c = ch.stop - ch.start
    if count * c <= _MAX_EXHAUSTIVE:
        for start in range(0, count, max(1, _MAX_GRID_ELEMENTS // c)):
            acc = lo + step * np.arange(start, min(count, start + max(1, _MAX_GRID_ELEMENTS // c)), dtype=np.int64)
            want = codes_at(np.repeat(acc[:, None], c, axis=1), flip)
            got = (acc[:, None, None] >= t.T[None, :, :]).sum(axis=-1)
            bad = np.flatnonzero((want != got).any(axis=0))
            if len(bad):
                raise FoldingError(f"{name} channel {ch.start + int(bad[0])}: torch's BatchNorm + quantizer is not "
                                   "monotone in the accumulator, so no thresholds reproduce it; check the layer's "
                                   "parameters for NaN or inf")
        return
    k = np.arange(1, n_t + 1)[:, None]
    inside = (t > lo) & (t <= hi)
    above = codes_at(np.clip(t, lo, hi), flip) >= k
    below = codes_at(np.clip(t - step, lo, hi), flip) < k
    ok = np.where(t > hi, codes_at(np.full_like(t, hi), flip) < k, above) & np.where(inside, below, True)
    if not ok.all():
        raise FoldingError(f"{name}: no integer thresholds match torch's BatchNorm + quantizer")


def _torch_head(calibration_acc: np.ndarray, input_kind: str, dense: Dense, bn: BatchNorm | None,
                in_grid: Grid, output_map: OutputMap | None = None) -> np.ndarray:
    """torch's float64 head output for the head's integer accumulators (popcounts, pixel sums or
    codes sums); an imported head's own output nodes (``output_map``) instead of torch."""
    v = layer_values(input_kind, dense, in_grid, calibration_acc, slice(None))
    if output_map is not None:
        return np.asarray(output_map.reference(v, slice(None)), dtype=np.float64)
    y = _tensor(np.ascontiguousarray(v))
    if dense.bias is not None:
        y = y + _tensor(dense.bias)[None, :]
    if bn is not None:
        t = _tensor
        y = F.batch_norm(y.contiguous(), t(bn.mean), t(bn.var), t(bn.gamma), t(bn.beta), training=False, eps=bn.eps)
    return y.numpy()


def _head_slope(input_kind: str, dense: Dense, in_grid: Grid, bn: BatchNorm | None) -> tuple[np.ndarray, np.ndarray]:
    """(m, k) per class: the head's real output before bias and BatchNorm is m·raw + k, with raw the
    integer raw score (s = 2p − N for bits, A for pixels and codes). For a codes head without bias and
    BatchNorm the common positive factor scale/divisor is left out (it cannot change the argmax), so
    that m and k stay integers (times the channel scale) and ties stay ties."""
    n = dense.out_features
    sigma = dense.scale if dense.scale is not None else np.ones(n)
    if input_kind == CODES:
        wsum = dense.weight.astype(np.int64).sum(axis=1)
        common = 1.0 if bn is None and dense.bias is None else in_grid.scale / in_grid.divisor
        return sigma * (in_grid.step * common), sigma * (in_grid.offset * wsum * common)
    d_scale = in_grid.divisor if input_kind == PIXELS else 1.0
    return sigma / d_scale, np.zeros(n)


def _common_increasing(output_map: OutputMap, dense: Dense, input_kind: str, in_grid: Grid, m: np.ndarray,
                       k: np.ndarray) -> bool:
    """Whether an imported head's output nodes order the classes exactly as the integer scores
    m·raw + k do (ties included): every reachable raw value of every class is pushed through the
    layer's real value and the graph's own output nodes, and the outputs must be one strictly
    increasing function of the integer score, the same for every class."""
    lo, hi = accumulator_range(input_kind, dense.in_features, in_grid.bits, dense.weight_precision)
    step = 2 if input_kind == PIXELS else 1
    acc = np.arange(lo, hi + 1, step, dtype=np.int64)
    n = dense.out_features
    if len(acc) * n > _MAX_GRID_ELEMENTS:
        return False
    acc_all = np.repeat(acc[:, None], n, axis=1)
    out = np.asarray(output_map.reference(layer_values(input_kind, dense, in_grid, acc_all, slice(None)),
                                          slice(None)), dtype=np.float64).reshape(-1)
    raw = raw_scores(ScoresDense(dense.name, dense.position, input_kind, in_grid.bits,
                                 (dense.weight > 0).astype(np.uint8)), acc_all)
    score = (raw * m[None, :] + k[None, :]).reshape(-1)
    order = np.argsort(score, kind="stable")
    score, out = score[order], out[order]
    same = score[1:] == score[:-1]
    return bool(np.all(out[1:][same] == out[:-1][same]) and np.all(out[1:][~same] > out[:-1][~same]))


def _fold_scores(dense: Dense, bn: BatchNorm | None, input_kind: str, in_bits: int, in_grid: Grid,
                 calibration_acc: np.ndarray, output_map: OutputMap | None = None) -> ScoresDense:
    bits = (dense.weight > 0).astype(np.uint8)
    base = dict(name=dense.name, position=dense.position, input_kind=input_kind, in_bits=in_bits, weight_bits=bits)
    if input_kind == CODES:
        base.update(weights=dense.weight.astype(np.int64), weight_precision=dense.weight_precision, in_grid=in_grid)
    m, k = _head_slope(input_kind, dense, in_grid, bn)
    if output_map is not None:
        # integer scores: the raw score, or step·A + offset·Σw on a grid with an offset, times each
        # class's weight scale in units of the smallest (powers of two: integers)
        n = dense.out_features
        m_int = np.full(n, in_grid.step if input_kind == CODES else 1, dtype=np.int64)
        k_int = (in_grid.offset * dense.weight.astype(np.int64).sum(axis=1) if input_kind == CODES
                 else np.zeros(n, dtype=np.int64))
        ratio = np.ones(n) if dense.scale is None else dense.scale / dense.scale.min()
        integral = np.all(ratio == np.round(ratio)) and ratio.max() < 2 ** 20
        if integral:
            m_int, k_int = m_int * ratio.astype(np.int64), k_int * ratio.astype(np.int64)
        if integral and _common_increasing(output_map, dense, input_kind, in_grid, m_int, k_int):
            if np.all(m_int == 1) and not k_int.any():
                return ScoresDense(**base)
            return ScoresDense(**base, scale=m_int, offset=k_int, frac_bits=0)
        # per-class output nodes: the fixed-point affine below, validated against the graph itself
    legacy = input_kind != CODES and dense.scale is None and output_map is None
    if bn is None and dense.bias is None and dense.scale is None and not k.any() and output_map is None:
        return ScoresDense(**base)     # raw scores are torch's output times one positive constant
    n = dense.out_features
    gamma = bn.gamma if bn is not None else np.ones(n)
    sd = np.sqrt(bn.var + bn.eps) if bn is not None else np.ones(n)
    mean = bn.mean if bn is not None else np.zeros(n)
    beta = bn.beta if bn is not None else np.zeros(n)
    b = dense.bias if dense.bias is not None else np.zeros(n)
    if legacy:     # the original expressions, so that the fixed-point images of 1-bit heads stay as they were
        d_scale = ((1 << in_bits) - 1) if input_kind == PIXELS else 1
        a = gamma / sd / d_scale                       # per unit of the integer raw score
        d = beta + gamma * (b - mean) / sd
        max_raw = dense.in_features * d_scale
    else:
        lo, hi = accumulator_range(input_kind, dense.in_features, in_bits, dense.weight_precision)
        max_raw = max(abs(lo), abs(hi), dense.in_features)
        if output_map is None:
            a = gamma / sd * m
            d = beta + gamma * (k + b - mean) / sd
        else:      # the output nodes' slope and intercept per unit of raw score, read off the graph itself
            probe = ScoresDense(**base)
            acc = np.array([[lo] * n, [hi] * n]) if input_kind != BITS else np.array([[0] * n, [dense.in_features] * n])
            raw = raw_scores(probe, acc).astype(np.float64)
            out = _torch_head(acc, input_kind, dense, None, in_grid, output_map)
            a = (out[1] - out[0]) / (raw[1] - raw[0])
            d = out[0] - a * raw[0]
    calibration_raw = raw_scores(ScoresDense(**base), calibration_acc)
    expected = np.argmax(_torch_head(calibration_acc, input_kind, dense, bn, in_grid, output_map), axis=1)
    if bn is None and dense.bias is None and dense.scale is None and output_map is None:
        # A codes head on a grid with an offset: torch's score is (step·A + o·W_c)·s/d, so the integers
        # step·A + o·W_c are exact scores (one common scale, no fraction bits), kept where they give
        # torch's argmax (always, for dyadic grids).
        scale, offset = m.astype(np.int64), k.astype(np.int64)
        if np.array_equal(scale, m) and np.array_equal(offset, k) and np.array_equal(
                np.argmax(calibration_raw * scale[None, :] + offset[None, :], axis=1), expected):
            return ScoresDense(**base, scale=scale, offset=offset, frac_bits=0)
    # Largest fraction width whose products stay well inside int64, then the smallest that keeps argmax.
    mag = float(max(np.max(np.abs(a)) * max_raw + np.max(np.abs(d)), 1e-300))
    f_cap = min(40, int(math.floor(60 - math.log2(mag))))
    for frac in range(8, f_cap + 1):
        scale = np.round(a * 2.0 ** frac).astype(np.int64)
        offset = np.round(d * 2.0 ** frac).astype(np.int64)
        got = np.argmax(calibration_raw * scale[None, :] + offset[None, :], axis=1)
        if np.array_equal(got, expected):
            frac = min(frac + 8, f_cap)            # margin for inputs beyond the calibration set
            scale = np.round(a * 2.0 ** frac).astype(np.int64)
            offset = np.round(d * 2.0 ** frac).astype(np.int64)
            return ScoresDense(**base, scale=scale, offset=offset, frac_bits=frac)
    raise UnsupportedModelError(
        [(dense.position, "the last layer's per-class BatchNorm/bias cannot be represented in fixed point "
                          "without changing torch's argmax")],
        hint="retrain the head without BatchNorm1d and bias, so the class scores are plain integers")


def _input_kind(reads_pixels: bool, dense: Dense, in_grid: Grid) -> str:
    """Which accumulator a layer has: the 1-bit datapaths (InputQuant's pixels, bits after a sign) for
    ±1 weights, else Σ w·x over codes (any other grid, an imported graph's plain input among them)."""
    if dense.weight_precision == 1 and reads_pixels and in_grid == pixel_grid(in_grid.bits):
        return PIXELS
    if dense.weight_precision == 1 and in_grid.is_sign:
        return BITS
    return CODES


def fold_batchnorm(graph: Graph, calibration=None, seed: int = 0) -> Graph:
    """Graph of Dense/BatchNorm/Sign/Quant nodes → graph of ThresholdDense nodes and one ScoresDense.

    ``calibration`` (integer pixel inputs) plus 2048 seeded random inputs validate the last layer's
    fixed-point affine, if it has one: its argmax must equal torch's on all of them.
    """
    nodes = list(graph.nodes)
    folded = []
    bits = graph.input.bits
    in_grid = graph.input.value_grid
    if nodes and isinstance(nodes[0], InputThreshold):      # an imported input quantizer: the first layer reads codes
        folded.append(nodes[0])
        in_grid = nodes.pop(0).grid
    groups, current = [], []
    for node in nodes:
        if isinstance(node, Dense) and current:  # Conv is a Dense too: every layer starts a group
            groups.append(current)
            current = []
        current.append(node)
    groups.append(current)
    for i, group in enumerate(groups):
        dense = group[0]
        bn = next((n for n in group if isinstance(n, BatchNorm)), None)
        act = next((n for n in group if isinstance(n, (Sign, Quant, Activation))), None)
        output_map = next((n for n in group if isinstance(n, OutputMap)), None)
        kind = _input_kind(i == 0 and graph.input_threshold is None, dense, in_grid)
        node_bits = in_grid.bits if kind == CODES else bits
        if act is not None:
            if isinstance(act, Sign) and kind != CODES and dense.scale is None:
                node = _fold_threshold(dense, bn, kind, bits)
            else:
                node = _fold_multithreshold(dense, bn, act, kind, node_bits, in_grid)
            if isinstance(dense, Conv):
                node = ThresholdConv(**{f: getattr(node, f) for f in node.__dataclass_fields__ if f != "window"},
                                     window=dense.window)
            folded.append(node)
            for pool in (n for n in group if isinstance(n, MaxPool)):
                # Before a BatchNorm with γ < 0 the channel's outputs are non-increasing in the pooled
                # value: max-pooling becomes AND / min (spec §7.4); everywhere else it is OR / max.
                and_mask = node.flipped if pool.before_bn and bn is not None else np.zeros(dense.out_features, bool)
                folded.append(MaxPoolBits(pool.name, pool.position, pool.in_shape, pool.kernel, pool.stride,
                                          and_mask, bits=node.out_bits))
            in_grid = act.grid if isinstance(act, (Quant, Activation)) else SIGN_GRID
            continue
        rng = np.random.default_rng(seed)
        x = rng.integers(0, graph.input.max_value + 1, size=(2048, graph.input.size))
        if calibration is not None:
            x = np.concatenate([np.asarray(calibration).reshape(len(calibration), -1).astype(np.int64), x])
        data = channel_last(graph, x)
        for node in folded:
            data = node_outputs(node, data, bits, keep_acc=False)[1]
        probe = ScoresDense(name=dense.name, position=dense.position, input_kind=kind, in_bits=node_bits,
                            weight_bits=(dense.weight > 0).astype(np.uint8),
                            weights=dense.weight.astype(np.int64) if kind == CODES else None)
        acc = layer_accumulators(probe, data, node_in_bits(probe, bits))
        folded.append(_fold_scores(dense, bn, kind, node_bits, in_grid, acc, output_map))
    return validate(graph.replace(nodes=tuple(folded)))
