"""Random models and inputs for bit-exactness tests (used by tests/, rtl_tests/ and bench/); the torch
reference they are compared with is :func:`bnn2hw.reference.torch_forward`.

Models are drawn to stress the integer math: widths that are primes or not multiples of anything,
BatchNorm with γ of both signs and exactly zero, running statistics that put thresholds inside the
reachable range, optional biases, and heads with or without a BatchNorm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .ir import BITS, PIXELS, ThresholdDense, accumulator_range
from .nn import BinaryAct, BinaryConv2d, BinaryLinear, InputQuant

__all__ = ["RandomModelSpec", "random_spec", "build_random_model", "random_inputs", "random_folding",
           "build_random_conv_model"]

_PRIMES = (3, 5, 7, 11, 13, 17, 31, 37, 61, 67, 97, 101, 127, 131, 199, 211, 251, 257, 293)


@dataclass(frozen=True)
class RandomModelSpec:
    seed: int
    input_bits: int
    widths: tuple[int, ...]      # input size, hidden widths..., classes
    head_bn: bool
    biases: bool

    def describe(self) -> str:
        return (f"seed={self.seed} bits={self.input_bits} widths={'-'.join(map(str, self.widths))} "
                f"head_bn={self.head_bn} bias={self.biases}")


def random_spec(seed: int, max_width: int = 300) -> RandomModelSpec:
    rng = np.random.default_rng(seed)
    hidden = int(rng.integers(1, 5))

    def width() -> int:
        if rng.random() < 0.4:
            return int(rng.choice([p for p in _PRIMES if p <= max_width]))
        return int(rng.integers(3, max_width + 1))

    widths = (width(),) + tuple(width() for _ in range(hidden)) + (int(rng.integers(2, 17)),)
    return RandomModelSpec(seed=seed, input_bits=int(rng.choice([1, 4, 8])), widths=widths,
                           head_bn=bool(seed % 2), biases=bool(rng.random() < 0.3))


def _random_bn(n: int, fan_in: float, rng: np.random.Generator, cls=nn.BatchNorm1d) -> nn.BatchNorm1d:
    """BatchNorm with γ of both signs (some exactly 0) and statistics around the reachable range."""
    bn = cls(n)
    spread = max(1.0, float(np.sqrt(fan_in)))
    gamma = rng.uniform(-1.5, 1.5, n)
    gamma[rng.random(n) < 0.1] = 0.0
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(rng.uniform(-1.0, 1.0, n)))
        bn.running_mean.copy_(torch.from_numpy(rng.uniform(-1.5, 1.5, n) * spread))
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.2, 2.0, n) * spread ** 2))
    return bn


def build_random_model(spec: RandomModelSpec) -> nn.Sequential:
    """The torch model of ``spec`` in eval mode (float32 parameters, like a trained model)."""
    rng = np.random.default_rng(spec.seed + 1_000_003)
    torch.manual_seed(spec.seed)
    layers: list[nn.Module] = [InputQuant(spec.input_bits)]
    pairs = list(zip(spec.widths, spec.widths[1:]))
    for k, (n_in, n_out) in enumerate(pairs):
        lin = BinaryLinear(n_in, n_out, bias=spec.biases)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(rng.uniform(-1, 1, (n_out, n_in))))
            if lin.bias is not None:
                lin.bias.copy_(torch.from_numpy(rng.uniform(-2, 2, n_out)))
        layers.append(lin)
        last = k == len(pairs) - 1
        if not last or spec.head_bn:
            layers.append(_random_bn(n_out, n_in, rng))
        if not last:
            layers.append(BinaryAct())
    return nn.Sequential(*layers).eval()


def random_inputs(spec_or_bits, size: int | None = None, n: int = 64, seed: int = 0) -> np.ndarray:
    """Uniform random integer pixels, shape (n, size)."""
    if isinstance(spec_or_bits, RandomModelSpec):
        bits, size = spec_or_bits.input_bits, spec_or_bits.widths[0]
    else:
        bits = int(spec_or_bits)
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1 << bits, size=(n, size), dtype=np.int64)


def random_folding(graph, seed: int, max_cycles: int = 64, max_lanes: int = 1024) -> dict[str, dict]:
    """PE/SIMD per layer drawn at random (mostly not dividing the layer sizes), returned as a
    folding-file dict. Each layer gets at most ``max_cycles`` cycles per frame, unless that would need
    more than ``max_lanes`` PE·SIMD lanes (a pixel lane counting its bit width): then as few cycles as
    ``max_lanes`` allows. Both limits only keep simulations short; any folding is valid."""
    rng = np.random.default_rng(seed + 7)
    out = {}
    for node in graph.compute_nodes:
        n_in, n_out = node.in_features, node.out_features
        lane_cost = node.in_bits if node.input_kind == "pixels" else 1
        target = max(max_cycles, -(-n_in * n_out * lane_cost // max_lanes))
        for _ in range(10_000):
            simd = int(rng.integers(1, n_in + 1))
            pe = int(rng.integers(1, n_out + 1))
            cycles = -(-n_in // simd) * -(-n_out // pe)
            if cycles <= target and pe * simd * lane_cost <= 2 * max_lanes:
                break
        else:   # a tight corner: fall back to the fewest lanes that meet the target
            simd, pe = n_in, -(-n_out // max(1, target))
        out[node.name] = {"pe": pe, "simd": simd}
    return out


def build_random_conv_model(seed: int, max_channels: int = 40) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """A random convolutional model in eval mode and its input shape (C, H, W).

    1–4 convolution blocks with kernels 1..5 (often non-square), strides 1–2, padding 0..3 with pad value
    ±1, a max-pool before the BatchNorm, between BatchNorm and sign, after the sign or none, γ of both
    signs and zero, channels from 1 to ``max_channels``; then Flatten, 0–2 hidden dense layers and a plain
    head. The first layer reads 1..8-bit pixels.
    """
    rng = np.random.default_rng(seed + 7_000_001)
    torch.manual_seed(seed)
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(6, 13)), int(rng.integers(6, 13))
    shape = (c, h, w)
    layers: list[nn.Module] = [InputQuant(int(rng.integers(1, 9)))]
    for _ in range(int(rng.integers(1, 5))):
        pad = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
        kernel = tuple(int(rng.integers(1, min(5, size + 2 * p) + 1)) for size, p in zip((h, w), pad))
        stride = int(rng.integers(1, 3))
        out_c = int(rng.integers(1, max_channels + 1)) if rng.random() < 0.3 else int(rng.integers(1, 13))
        conv = BinaryConv2d(c, out_c, kernel, stride=stride, padding=pad, pad_value=float(rng.choice([-1, 1])),
                            bias=bool(rng.random() < 0.3))
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(rng.uniform(-1, 1, conv.weight.shape)))
            if conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(rng.uniform(-2, 2, out_c)))
        h, w = (h + 2 * pad[0] - kernel[0]) // stride + 1, (w + 2 * pad[1] - kernel[1]) // stride + 1
        block = [conv, _random_bn(out_c, c * kernel[0] * kernel[1], rng, nn.BatchNorm2d), BinaryAct()]
        k = int(rng.integers(2, 4))
        if min(h, w) >= k and rng.random() < 0.6:
            block.insert(int(rng.integers(1, 4)), nn.MaxPool2d(k))
            h, w = (h - k) // k + 1, (w - k) // k + 1
        layers += block
        c = out_c
        if min(h, w) < 2:
            break
    layers.append(nn.Flatten())
    width = c * h * w
    for _ in range(int(rng.integers(0, 3))):
        n_out = int(rng.integers(2, 40))
        lin = BinaryLinear(width, n_out)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(rng.uniform(-1, 1, (n_out, width))))
        layers += [lin, _random_bn(n_out, width, rng), BinaryAct()]
        width = n_out
    head = BinaryLinear(width, int(rng.integers(2, 11)))
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(rng.uniform(-1, 1, head.weight.shape)))
    layers.append(head)
    return nn.Sequential(*layers).eval(), shape


def random_threshold_layer(n_in: int, n_out: int, pixel_bits: int = 0, seed: int = 0) -> ThresholdDense:
    """A folded dense threshold layer with random ±1 weights and thresholds anywhere in its accumulator
    range (pixel input of ``pixel_bits`` bits, or binary input for 0): for building one unit on its own
    through bnn2hw.plan.LayerPlan (benchmarks, synthesis tests)."""
    rng = np.random.default_rng(seed)
    kind = PIXELS if pixel_bits else BITS
    lo, hi = accumulator_range(kind, n_in, pixel_bits or 1)
    return ThresholdDense(name="dense0", position=0, input_kind=kind, in_bits=pixel_bits or 1,
                          weight_bits=rng.integers(0, 2, size=(n_out, n_in)),
                          thresholds=rng.integers(lo, hi + 1, size=n_out), flipped=np.zeros(n_out, bool))
