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
from .ir.arith import lane_cost as _lane_cost
from .nn import BinaryAct, BinaryConv2d, BinaryLinear, InputQuant, QuantAct

__all__ = ["RandomModelSpec", "random_spec", "build_random_model", "random_inputs", "random_folding",
           "build_random_conv_model", "build_random_multibit_model", "build_random_multibit_conv_model",
           "torch_activation_codes", "multibit_inputs"]

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
        lane_cost = _lane_cost(node, 1, 1)
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


# -- multi-bit models (issue 15) ---------------------------------------------------------------------------------

_ACT_BITS = (1, 2, 3, 4, 8)
_WEIGHT_BITS = (1, 2, 4)


def _random_act(rng: np.random.Generator, dyadic: bool = False) -> nn.Module:
    """A random activation: the sign, or a QuantAct of 1..4 or 8 bits on one of the three grids with a
    power-of-two scale. The symmetric grid's levels (2q − D)/D are not dyadic, so torch's float64 sums
    of them are rounded; it is drawn only where ``dyadic`` is False: before a BatchNorm, whose random
    statistics meet no exact tie, but not before a head, whose class scores tie often and whose
    argmax torch would then decide by rounding."""
    bits = int(rng.choice(_ACT_BITS))
    if bits == 1 and rng.random() < 0.5:
        return BinaryAct()
    mode = str(rng.choice(["signed", "unsigned", "symmetric"], p=[0.45, 0.35, 0.2] if not dyadic else [0.55, 0.45, 0]))
    narrow = mode == "signed" and bits > 1 and bool(rng.random() < 0.4)
    return QuantAct(bits, mode, scale=2.0 ** -int(rng.integers(0, bits + 1)), narrow=narrow)


def _random_bn_adversarial(n: int, fan_in: float, rng: np.random.Generator, cls=nn.BatchNorm1d) -> nn.Module:
    """:func:`_random_bn`, and for about a third of the modules eps = 0 with var = 1 on a quarter of
    the channels (so that :func:`_plant_ties` can put a tie exactly on an accumulator value)."""
    bn = _random_bn(n, fan_in, rng, cls)
    if rng.random() < 0.35:
        bn.eps = 0.0
        with torch.no_grad():
            bn.running_var.clamp_(min=1e-3)
    return bn


def _plant_ties(model: nn.Sequential, x: torch.Tensor, rng: np.random.Generator) -> None:
    """For every BatchNorm with eps = 0 whose input is float64-exact (after a dyadic grid), make a
    quarter of its channels meet an exact tie: var = 1, γ = ±2^j, and the mean set to a value torch
    actually computed for that channel on ``x``, with β on a rounding boundary of the activation
    (sign: 0; integer grids: half a step). Torch then sees ties exactly at reachable accumulators."""
    modules = list(model)
    exact_input = False                   # the first layer reads InputQuant's non-dyadic grid
    for i, m in enumerate(modules):
        if isinstance(m, QuantAct):
            exact_input = m.mode != "symmetric" or m.bits == 1
        elif isinstance(m, BinaryAct):
            exact_input = True
        if not (isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.eps == 0.0 and exact_input):
            continue
        act = next((a for a in modules[i + 1:] if isinstance(a, (BinaryAct, QuantAct))), None)
        with torch.no_grad():
            z = nn.Sequential(*modules[:i]).double()(x)          # the BatchNorm's input, as torch computes it
            z = z.transpose(0, 1).reshape(m.num_features, -1)    # (channels, samples·positions)
            ties = np.flatnonzero(rng.random(m.num_features) < 0.25)
            for c in ties:
                m.running_var[c] = 1.0
                m.weight[c] = float(rng.choice([-1, 1])) * 2.0 ** int(rng.integers(-1, 2))
                m.running_mean[c] = z[c, int(rng.integers(0, z.shape[1]))]
                half = 0.0
                if isinstance(act, QuantAct) and act.mode != "symmetric":
                    half = (int(rng.integers(-1, 2)) + 0.5) * act.scale
                m.bias[c] = half
    model.float()      # as trained models are: every planted value is a float32 number too
    model.eval()


def _quant_linear(n_in: int, n_out: int, rng: np.random.Generator, bias: bool) -> BinaryLinear:
    bits = int(rng.choice(_WEIGHT_BITS))
    lin = BinaryLinear(n_in, n_out, bias=bias, weight_bits=bits, scale=bool(rng.random() < 0.25))
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(rng.uniform(-1, 1, (n_out, n_in))))
        if lin.bias is not None:
            lin.bias.copy_(torch.from_numpy(rng.uniform(-2, 2, n_out)))
        if lin.weight_scale is not None:
            lin.weight_scale.copy_(torch.from_numpy(2.0 ** rng.integers(-2, 3, n_out).astype(np.float64)))
    return lin


def build_random_multibit_model(seed: int, max_width: int = 96) -> tuple[nn.Sequential, tuple[int]]:
    """A random dense model in eval mode mixing per-layer activation bits 1..4 and 8 (sign, signed,
    unsigned and symmetric grids, narrow or not) and weight bits 1, 2 and 4 (some with a channel
    scale), 1-, 4- or 8-bit input pixels, with adversarial BatchNorm (γ < 0, γ = 0, eps = 0 and exact
    ties at reachable accumulators), optional biases and a head with or without BatchNorm; and its
    input shape."""
    rng = np.random.default_rng(seed + 15_000_001)
    torch.manual_seed(seed)
    in_bits = int(rng.choice([1, 4, 8]))
    widths = [int(rng.integers(3, max_width + 1)) for _ in range(int(rng.integers(2, 5)))] + [int(rng.integers(2, 11))]
    biases = bool(rng.random() < 0.3)
    layers: list[nn.Module] = [InputQuant(in_bits)]
    for k, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        lin = _quant_linear(n_in, n_out, rng, biases)
        layers.append(lin)
        last = k == len(widths) - 2
        if not last or seed % 2:
            layers.append(_random_bn_adversarial(n_out, n_in * lin.weight_bits, rng))
        if not last:
            layers.append(_random_act(rng, dyadic=k == len(widths) - 3))
    model = nn.Sequential(*layers).eval()
    x = torch.from_numpy(multibit_inputs(model, (widths[0],), seed).astype(np.float64))
    _plant_ties(model, x, rng)
    return model, (widths[0],)


def build_random_multibit_conv_model(seed: int, max_channels: int = 12) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """A random convolutional model in eval mode with multi-bit activations and weights (as
    :func:`build_random_multibit_model`), 1–3 convolution blocks with kernels 1..3, strides 1–2,
    padding with a value on the input activation's grid, max-pools before the BatchNorm, between
    BatchNorm and activation or after it; then Flatten, 0–1 hidden dense layers and a head."""
    rng = np.random.default_rng(seed + 15_500_003)
    torch.manual_seed(seed)
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(5, 10)), int(rng.integers(5, 10))
    shape = (c, h, w)
    in_bits = int(rng.choice([1, 4, 8]))
    layers: list[nn.Module] = [InputQuant(in_bits)]
    grid_values = np.array([-1.0, 1.0])      # values a first-layer pad may take
    for _ in range(int(rng.integers(1, 4))):
        pads = [v for v in grid_values if v in (-1.0, 0.0, 1.0)]     # values BinaryConv2d may pad with
        pad = (int(rng.integers(0, 2)), int(rng.integers(0, 2))) if pads else (0, 0)
        kernel = tuple(int(rng.integers(1, min(3, size + 2 * p) + 1)) for size, p in zip((h, w), pad))
        stride = int(rng.integers(1, 3))
        out_c = int(rng.integers(1, max_channels + 1))
        pad_value = float(rng.choice(pads)) if pads else -1.0
        conv = BinaryConv2d(c, out_c, kernel, stride=stride, padding=pad, pad_value=pad_value,
                            bias=bool(rng.random() < 0.3), weight_bits=int(rng.choice(_WEIGHT_BITS)),
                            scale=bool(rng.random() < 0.2))
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(rng.uniform(-1, 1, conv.weight.shape)))
            if conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(rng.uniform(-2, 2, out_c)))
            if conv.weight_scale is not None:
                conv.weight_scale.copy_(torch.from_numpy(2.0 ** rng.integers(-2, 3, out_c).astype(np.float64)))
        h, w = (h + 2 * pad[0] - kernel[0]) // stride + 1, (w + 2 * pad[1] - kernel[1]) // stride + 1
        act = _random_act(rng, dyadic=True)
        block = [conv, _random_bn_adversarial(out_c, c * kernel[0] * kernel[1] * conv.weight_bits, rng,
                                              nn.BatchNorm2d), act]
        if min(h, w) >= 2 and rng.random() < 0.6:
            block.insert(int(rng.integers(1, 4)), nn.MaxPool2d(2))
            h, w = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        layers += block
        c = out_c
        grid_values = act.level_values().numpy() if isinstance(act, QuantAct) else np.array([-1.0, 1.0])
        if min(h, w) < 2:
            break
    layers.append(nn.Flatten())
    width = c * h * w
    if rng.random() < 0.5:
        n_out = int(rng.integers(2, 24))
        lin = _quant_linear(width, n_out, rng, False)
        layers += [lin, _random_bn_adversarial(n_out, width, rng), _random_act(rng, dyadic=True)]
        width = n_out
    layers.append(_quant_linear(width, int(rng.integers(2, 9)), rng, False))
    model = nn.Sequential(*layers).eval()
    x = torch.from_numpy(multibit_inputs(model, shape, seed, n=16).astype(np.float64))
    _plant_ties(model, x, rng)
    return model, shape


def multibit_inputs(model: nn.Sequential, shape: tuple[int, ...], seed: int, n: int = 64) -> np.ndarray:
    """Random integer pixels for a model of :func:`build_random_multibit_model` (or its conv variant):
    the first 16 (conv) or 64 samples are the ones its exact ties were planted on."""
    rng = np.random.default_rng(seed + 99)
    return rng.integers(0, 1 << model[0].bits, size=(n,) + tuple(shape), dtype=np.int64)


def torch_activation_codes(model: nn.Sequential, x: np.ndarray) -> dict[int, np.ndarray]:
    """Every activation's output in torch (eval, float64) as integer codes, flattened per sample in
    channel-last (H, W, C) order: {module position: (n, features)}. Sign outputs are 0/1; a QuantAct's
    codes are the indices of its levels. A max-pool right after an activation is applied to it."""
    import copy
    m = copy.deepcopy(model).double().eval()
    outputs: dict[int, torch.Tensor] = {}
    modules = list(m)
    for pos, mod in enumerate(modules):
        if isinstance(mod, (BinaryAct, QuantAct)):
            nxt = modules[pos + 1] if pos + 1 < len(modules) else None
            target = nxt if isinstance(nxt, nn.MaxPool2d) else mod
            target.register_forward_hook(lambda _m, _i, out, pos=pos: outputs.__setitem__(pos, out.detach()))
    with torch.no_grad():
        m(torch.from_numpy(np.asarray(x, dtype=np.float64)))
    codes = {}
    for pos, out in outputs.items():
        act = modules[pos]
        if isinstance(act, QuantAct):
            levels = act.level_values()
            q = torch.searchsorted(levels, out.contiguous())
            assert torch.equal(levels[q.clamp(max=len(levels) - 1)], out), "an activation is off its grid"
        else:
            q = (out > 0).long()
        if q.ndim == 4:
            q = q.permute(0, 2, 3, 1)
        codes[pos] = q.reshape(q.shape[0], -1).numpy()
    return codes
