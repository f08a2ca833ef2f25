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
from ..golden.execute import channel_last, layer_accumulators, node_outputs, raw_scores
from ..ir import (BITS, PIXELS, BatchNorm, Conv, Dense, Graph, MaxPool, MaxPoolBits, ScoresDense, Sign, ThresholdConv,
                  ThresholdDense, accumulator_range, validate)

__all__ = ["fold_batchnorm", "analytic_threshold", "accumulator_grid", "reference_bits"]

_MAX_GRID_ELEMENTS = 4_000_000   # grid × channels evaluated by torch at once


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


def _torch_head(raw_values: np.ndarray, input_kind: str, in_bits: int, dense: Dense, bn: BatchNorm | None) -> np.ndarray:
    """torch's float64 head output for integer raw scores (s, or A for pixel inputs)."""
    v = raw_values.astype(np.float64)
    if input_kind == PIXELS:
        v = v / ((1 << in_bits) - 1)
    y = _tensor(v)
    if dense.bias is not None:
        y = y + _tensor(dense.bias)[None, :]
    if bn is not None:
        t = _tensor
        y = F.batch_norm(y.contiguous(), t(bn.mean), t(bn.var), t(bn.gamma), t(bn.beta), training=False, eps=bn.eps)
    return y.numpy()


def _fold_scores(dense: Dense, bn: BatchNorm | None, input_kind: str, in_bits: int,
                 calibration_raw: np.ndarray) -> ScoresDense:
    bits = (dense.weight > 0).astype(np.uint8)
    base = dict(name=dense.name, position=dense.position, input_kind=input_kind, in_bits=in_bits, weight_bits=bits)
    if bn is None and dense.bias is None:
        return ScoresDense(**base)
    n = dense.out_features
    gamma = bn.gamma if bn is not None else np.ones(n)
    sd = np.sqrt(bn.var + bn.eps) if bn is not None else np.ones(n)
    mean = bn.mean if bn is not None else np.zeros(n)
    beta = bn.beta if bn is not None else np.zeros(n)
    b = dense.bias if dense.bias is not None else np.zeros(n)
    d_scale = ((1 << in_bits) - 1) if input_kind == PIXELS else 1
    a = gamma / sd / d_scale                       # per unit of the integer raw score
    d = beta + gamma * (b - mean) / sd
    max_raw = dense.in_features * d_scale
    expected = np.argmax(_torch_head(calibration_raw, input_kind, in_bits, dense, bn), axis=1)
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


def fold_batchnorm(graph: Graph, calibration=None, seed: int = 0) -> Graph:
    """Graph of Dense/BatchNorm/Sign nodes → graph of ThresholdDense nodes and one ScoresDense.

    ``calibration`` (integer pixel inputs) plus 2048 seeded random inputs validate the last layer's
    fixed-point affine, if it has one: its argmax must equal torch's on all of them.
    """
    groups, current = [], []
    for node in graph.nodes:
        if isinstance(node, Dense) and current:  # Conv is a Dense too: every layer starts a group
            groups.append(current)
            current = []
        current.append(node)
    groups.append(current)
    folded = []
    bits = graph.input.bits
    for i, group in enumerate(groups):
        dense = group[0]
        bn = next((n for n in group if isinstance(n, BatchNorm)), None)
        has_sign = any(isinstance(n, Sign) for n in group)
        kind = PIXELS if i == 0 else BITS
        if has_sign:
            node = _fold_threshold(dense, bn, kind, bits)
            if isinstance(dense, Conv):
                node = ThresholdConv(**{f: getattr(node, f) for f in node.__dataclass_fields__ if f != "window"},
                                     window=dense.window)
            folded.append(node)
            for pool in (n for n in group if isinstance(n, MaxPool)):
                # Before a BatchNorm with γ < 0 the channel's bits are non-increasing in the pooled
                # value: max-pooling becomes AND (spec §7.4); everywhere else it is OR.
                and_mask = node.flipped if pool.before_bn and bn is not None else np.zeros(dense.out_features, bool)
                folded.append(MaxPoolBits(pool.name, pool.position, pool.in_shape, pool.kernel, pool.stride,
                                          and_mask))
            continue
        rng = np.random.default_rng(seed)
        x = rng.integers(0, graph.input.max_value + 1, size=(2048, graph.input.size))
        if calibration is not None:
            x = np.concatenate([np.asarray(calibration).reshape(len(calibration), -1).astype(np.int64), x])
        data = channel_last(graph, x)
        for node in folded:
            data = node_outputs(node, data, bits)[1]
        probe = ScoresDense(name=dense.name, position=dense.position, input_kind=kind, in_bits=bits,
                            weight_bits=(dense.weight > 0).astype(np.uint8))
        raw = raw_scores(probe, layer_accumulators(probe, data, bits))
        folded.append(_fold_scores(dense, bn, kind, bits, raw))
    return validate(graph.replace(nodes=tuple(folded)))
