"""Threshold folding, checked exhaustively against torch's own eval-mode BatchNorm + sign in float64."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from bnn2hw.ir import BITS, PIXELS, BatchNorm, Dense
from bnn2hw.nn import BinaryAct
from bnn2hw.passes.fold_batchnorm import _fold_threshold, _from_reference, accumulator_grid, analytic_threshold


def torch_reference(values, gamma, beta, mean, var, eps, bias):
    """Independent reference: a real nn.BatchNorm1d module in eval mode, float64, then BinaryAct."""
    n = len(gamma)
    bn = nn.BatchNorm1d(n, eps=eps).double().eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma)); bn.bias.copy_(torch.tensor(beta))
        bn.running_mean.copy_(torch.tensor(mean)); bn.running_var.copy_(torch.tensor(var))
        pre = torch.tensor(values, dtype=torch.float64)[:, None].repeat(1, n) + torch.tensor(bias)[None, :]
        return BinaryAct().eval()(bn(pre)).numpy() > 0


def fold_and_check(kind, n_in, in_bits, gamma, beta, mean, var, eps, bias):
    gamma, beta, mean, var, bias = (np.asarray(a, dtype=np.float64) for a in (gamma, beta, mean, var, bias))
    n_out = len(gamma)
    weight = np.ones((n_out, n_in), dtype=np.int8)
    dense = Dense(name="d", position=1, weight=weight, bias=bias)
    bn = BatchNorm(name="bn", position=2, gamma=gamma, beta=beta, mean=mean, var=var, eps=eps)
    node = _fold_threshold(dense, bn, kind, in_bits)
    acc, values = accumulator_grid(kind, n_in, in_bits)
    flipped = (n_in - acc) if kind == BITS else -acc
    ref = torch_reference(values, gamma, beta, mean, var, eps, bias)
    for c in range(n_out):
        hw = ((flipped if node.flipped[c] else acc) >= node.thresholds[c])
        assert np.array_equal(hw, ref[:, c]), f"channel {c}: integer rule differs from torch"
    # Flipped channels carry inverted weight bits, everything else is untouched.
    assert np.array_equal(node.weight_bits[node.flipped], np.zeros((node.flipped.sum(), n_in)))
    return node


@pytest.mark.parametrize("n_in", [1, 2, 3, 7, 36, 64, 255, 300])
@pytest.mark.parametrize("seed", range(4))
def test_random_channels_bits(n_in, seed):
    rng = np.random.default_rng(seed * 1000 + n_in)
    n = 64
    gamma = rng.uniform(-2, 2, n); gamma[:6] = 0.0
    spread = math.sqrt(n_in)
    fold_and_check(BITS, n_in, 0, gamma, rng.uniform(-1, 1, n), rng.uniform(-2, 2, n) * spread,
                   rng.uniform(0.1, 3, n) * n_in, 1e-5, rng.uniform(-3, 3, n) * (seed % 2))


@pytest.mark.parametrize("bits", [1, 4, 8])
@pytest.mark.parametrize("n_in", [1, 5, 27, 64])
def test_random_channels_pixels(bits, n_in):
    rng = np.random.default_rng(bits * 100 + n_in)
    n = 24
    gamma = rng.uniform(-2, 2, n); gamma[:3] = 0.0
    fold_and_check(PIXELS, n_in, bits, gamma, rng.uniform(-1, 1, n), rng.uniform(-1, 1, n) * math.sqrt(n_in),
                   rng.uniform(0.05, 2, n) * n_in, 1e-5, rng.uniform(-1, 1, n))


def test_exact_ties_resolve_to_plus_one():
    """y == 0 exactly at a reachable accumulator value: sign(0) = +1 must win, for both signs of γ."""
    n_in = 36
    # var + eps == 1 exactly (0.75 + 0.25), so BN is y = γ (s - μ) + β with no rounding anywhere.
    means = np.arange(-36, 37, 2, dtype=np.float64)         # every reachable s is a tie for one channel
    gamma = np.where(np.arange(len(means)) % 2 == 0, 1.0, -1.0)
    node = fold_and_check(BITS, n_in, 0, gamma, np.zeros_like(means), means, np.full_like(means, 0.75), 0.25,
                          np.zeros_like(means))
    acc, values = accumulator_grid(BITS, n_in, 0)
    for c, mu in enumerate(means):
        p_tie = int(np.flatnonzero(values == mu)[0])
        a = (n_in - acc[p_tie]) if node.flipped[c] else acc[p_tie]
        assert a >= node.thresholds[c], "a tie must give +1"


def test_pixel_ties_resolve_to_plus_one():
    bits, n_in = 4, 3
    acc, values = accumulator_grid(PIXELS, n_in, bits)
    # BN with var + eps = 1 and β = 0: y = γ (A/15 - μ) is zero exactly where μ = A/15 (same float).
    means = values[::5]
    gamma = np.where(np.arange(len(means)) % 2 == 0, 0.5, -0.5)
    fold_and_check(PIXELS, n_in, bits, gamma, np.zeros_like(means), means, np.full_like(means, 0.75), 0.25,
                   np.zeros_like(means))


def test_spec_examples_agree_with_torch():
    """The worked examples of the integer-math spec (γ > 0, γ < 0, γ = 0 both ways, bias)."""
    fold_and_check(BITS, 36, 0, [0.8, -0.5, 0.0, 0.0, 0.8], [0.2, 0.3, -0.1, 0.1, 0.2], [3.0, -2.0, 0.0, 0.0, 3.0],
                   [15.0, 4.0, 1.0, 1.0, 15.0], 1e-5, [0.0, 0.0, 0.0, 0.0, 1.5])


def test_no_batchnorm_plain_sign():
    rng = np.random.default_rng(3)
    dense = Dense(name="d", position=1, weight=np.ones((16, 9), dtype=np.int8), bias=rng.uniform(-9, 9, 16))
    node = _fold_threshold(dense, None, BITS, 0)
    acc, values = accumulator_grid(BITS, 9, 0)
    ref = (values[:, None] + dense.bias[None, :]) >= 0
    assert np.array_equal(acc[:, None] >= node.thresholds[None, :], ref)


def test_analytic_formula_matches_reference_without_ties():
    """Away from float ties, the spec's formula alone already gives torch's answer."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        n_in = int(rng.integers(1, 100))
        g, b, m, v, bias = rng.uniform(-2, 2), rng.uniform(-1, 1), rng.uniform(-10, 10), rng.uniform(0.1, 50), rng.uniform(-2, 2)
        flip, t = analytic_threshold(BITS, n_in, 0, g, b, m, v, 1e-5, bias)
        acc, values = accumulator_grid(BITS, n_in, 0)
        ref = torch_reference(values, [g], [b], [m], [v], 1e-5, [bias])[:, 0]
        assert np.array_equal(((n_in - acc) if flip else acc) >= t, ref)


def test_from_reference_rebuilds_rising_falling_and_constant_columns():
    acc = np.arange(6)
    flipped = 5 - acc
    for ref in ([0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1] * 6, [0] * 6):
        ref = np.array(ref, dtype=bool)
        flip, t = _from_reference(ref, acc, flipped, "d", 0)
        assert np.array_equal(((flipped if flip else acc) >= t), ref)


def test_non_monotone_reference_is_an_error():
    from bnn2hw.errors import FoldingError
    with pytest.raises(FoldingError, match="not monotone"):
        _from_reference(np.array([0, 1, 0, 1], dtype=bool), np.arange(4), 3 - np.arange(4), "d", 5)
