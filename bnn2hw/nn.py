"""Model layers for binary neural networks that bnn2hw compiles.

All layers work inside a plain ``torch.nn.Sequential``. In eval mode they compute exactly what the
hardware computes (see docs/integer_math.md). In training mode the binarizing layers use, by default,
the BinaryConnect-style clipped straight-through estimator; :mod:`bnn2hw.train` replaces that rule
while it trains (StoMPP masks, surrogates) by setting a layer's ``quantizer`` and removes it after.

Never ``torch.sign``: it maps 0 to 0, while every binary layer here (and the hardware) maps 0 to +1.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["InputQuant", "BinaryLinear", "BinaryConv2d", "BinaryAct", "QuantAct", "ResidualBlock", "hard_sign",
           "quantize_weight", "clip_weight", "weight_code_max", "PAD_VALUES", "ACT_MODES", "MAX_BITS"]

MAX_BITS = 8
"""Widest activation or weight a layer may have."""

ACT_MODES = ("symmetric", "signed", "unsigned")
"""Grids of :class:`QuantAct`: ``symmetric`` is InputQuant's [-1, 1] grid, ``signed`` Brevitas'
QuantIdentity/QuantHardTanh integer grid, ``unsigned`` its QuantReLU grid."""

PAD_VALUES = (-1.0, 1.0, 0.0)
"""Values a BinaryConv2d may pad with: -1 (the default, a 0 bit in hardware), +1, or 0 (torch's zero
padding, which no single bit represents; see docs/integer_math.md)."""


def hard_sign(x: torch.Tensor) -> torch.Tensor:
    """+1 where ``x >= 0``, else -1 (sign(0) = +1), in the dtype of ``x``."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class _ClippedSTESign(torch.autograd.Function):
    """Forward: hard sign. Backward: gradient passed where |x| <= 1 (inclusive), zero elsewhere."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return hard_sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x >= -1) & (x <= 1)).to(grad.dtype)


def _binarize(x: torch.Tensor, training: bool) -> torch.Tensor:
    if training and x.requires_grad:
        return _ClippedSTESign.apply(x)
    return hard_sign(x)


def _check_bits(owner: str, name: str, bits) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"{owner} {name} must be an integer from 1 to {MAX_BITS}, not {bits!r}")
    return bits


def weight_code_max(bits: int) -> int:
    """Largest weight code of a ``bits``-bit layer: narrow-range signed integers -M..M with
    M = 2**(bits-1) - 1 (ternary for 2 bits); 1 for binary (codes ±1, no 0)."""
    return 1 if bits == 1 else (1 << (bits - 1)) - 1


class _ClippedSTERound(torch.autograd.Function):
    """Forward: the weight's integer code. Backward: d(code)/dw = M where |w| <= 1, else 0."""

    @staticmethod
    def forward(ctx, w, bits):
        ctx.save_for_backward(w)
        ctx.scale = weight_code_max(bits)
        return quantize_weight(w, bits)

    @staticmethod
    def backward(ctx, grad):
        (w,) = ctx.saved_tensors
        return grad * ((w >= -1) & (w <= 1)).to(grad.dtype) * ctx.scale, None


def quantize_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The integer weight codes of latent weights ``w``: sign(w) (sign(0) = +1) for 1 bit, else
    round(M·clamp(w, -1, 1)) in -M..M (round half to even, as torch and Brevitas round)."""
    if bits == 1:
        return hard_sign(w)
    m = weight_code_max(bits)
    return torch.round(w.clamp(-1.0, 1.0) * m)


def clip_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The clipped (differentiable) path of a latent weight in code units: M·clamp(w, -1, 1)."""
    return w.clamp(-1.0, 1.0) * weight_code_max(bits)


class InputQuant(nn.Module):
    """Marks the model input as unsigned ``bits``-bit integer pixels.

    The input is a float tensor holding integers 0 .. 2**bits - 1; the forward pass maps x to
    (2x - (2**bits - 1)) / (2**bits - 1), i.e. onto [-1, 1]. The hardware receives the raw integers.
    """

    def __init__(self, bits: int):
        super().__init__()
        if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 8:
            raise ValueError(f"InputQuant bits must be an integer from 1 to 8, not {bits!r}")
        self.bits = bits

    @property
    def max_value(self) -> int:
        return (1 << self.bits) - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = float(self.max_value)
        return (2 * x - d) / d

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


class _WeightQuantMixin:
    """Integer weight codes for BinaryLinear and BinaryConv2d: ±1 (1 bit), ternary (2 bits) or
    narrow-range k-bit integers, and an optional positive per-output-channel scale applied to the
    layer's output (so that the integer matrix product itself stays exact in float64)."""

    quantizer = None
    weight_bits = 1

    def _init_weight_quant(self, weight_bits: int, scale: bool, n_out: int) -> None:
        self.weight_bits = _check_bits(type(self).__name__, "weight_bits", weight_bits)
        if not isinstance(scale, bool):
            raise ValueError(f"{type(self).__name__} scale must be True or False, not {scale!r}")
        self.register_parameter("weight_scale", nn.Parameter(torch.ones(n_out)) if scale else None)

    def weight_codes(self) -> torch.Tensor:
        """The layer's weights as the hardware holds them: integer codes (eval mode; no gradient)."""
        return quantize_weight(self.weight.detach(), self.weight_bits)

    def binary_weight(self) -> torch.Tensor:
        """The weight the forward pass uses, in code units (±1 for binary layers)."""
        if self.training and self.quantizer is not None:
            return self.quantizer(self.weight)
        if self.weight_bits == 1:
            return _binarize(self.weight, self.training)
        if self.training and self.weight.requires_grad:
            return _ClippedSTERound.apply(self.weight, self.weight_bits)
        return quantize_weight(self.weight, self.weight_bits)

    def channel_scale(self) -> torch.Tensor | None:
        """|scale| per output channel, or None without a scale."""
        return None if self.weight_scale is None else self.weight_scale.abs()

    def _scaled(self, y: torch.Tensor, view) -> torch.Tensor:
        scale = self.channel_scale()
        if scale is not None:
            y = y * scale.view(view)
        if self.bias is not None:
            y = y + self.bias.view(view)
        return y


class BinaryLinear(_WeightQuantMixin, nn.Linear):
    """A fully connected layer whose forward pass uses quantized weights: sign(W) with sign(0) = +1
    (``weight_bits=1``, the default), ternary {-1, 0, +1} (2) or narrow-range integers -M..M with
    M = 2**(k-1) - 1 (k = 3..8). With ``scale=True`` a learned per-output-channel scale |s_c|
    multiplies the output: y = |s| · (x @ codesᵀ) + bias.

    The latent weight stays real-valued for training; only its code reaches the hardware. A bias, if
    present, is folded into the next threshold (or the class-score affine of the last layer).
    ``quantizer``, when set, maps the latent weight to the training-mode weight instead of the
    clipped estimator; eval mode ignores it.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, weight_bits: int = 1,
                 scale: bool = False):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BinaryLinear {name} must be a positive integer, not {value!r}")
        super().__init__(in_features, out_features, bias=bias)
        self._init_weight_quant(weight_bits, scale, out_features)
        # Uniform latents in [-1, 1]: the clipped estimator passes gradient to all of them.
        with torch.no_grad():
            bound = 1.0 / math.sqrt(in_features) if in_features > 1 else 1.0
            self.weight.uniform_(-1.0, 1.0)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._scaled(F.linear(x, self.binary_weight()), (1, -1))

    def extra_repr(self) -> str:
        extra = "" if self.weight_bits == 1 else f", weight_bits={self.weight_bits}"
        return super().extra_repr() + extra + (", scale=True" if self.weight_scale is not None else "")


def _pair(value, name: str, low: int, high: int) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high for v in pair):
        raise ValueError(f"BinaryConv2d {name} must be an integer or a pair of integers from {low} to {high}, "
                         f"not {value!r}")
    return pair


class BinaryConv2d(_WeightQuantMixin, nn.Conv2d):
    """A 2-d convolution with quantized weights (``weight_bits`` and ``scale`` as for BinaryLinear)
    that pads explicitly.

    The input is padded with ``pad_value`` (default -1, which the hardware stores as a 0 bit; +1 is a 1
    bit) *after* quantization and then convolved without padding, so training sees exactly what the
    hardware computes. ``pad_value=0`` is torch's zero padding (exact only where 0 is on the input
    activation's grid). Like ``BinaryLinear``, a training ``quantizer`` may replace the clipped
    straight-through estimator; eval mode ignores it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 pad_value: float = -1.0, bias: bool = False, weight_bits: int = 1, scale: bool = False):
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BinaryConv2d {name} must be a positive integer, not {value!r}")
        kernel = _pair(kernel_size, "kernel_size", 1, 64)
        stride = _pair(stride, "stride", 1, 64)
        padding = _pair(padding, "padding", 0, 64)
        if float(pad_value) not in PAD_VALUES:
            raise ValueError(f"BinaryConv2d pad_value must be -1, +1 or 0, not {pad_value!r}")
        super().__init__(in_channels, out_channels, kernel, stride=stride, padding=0, bias=bias)
        self._init_weight_quant(weight_bits, scale, out_channels)
        self.padding = padding  # applied in forward with pad_value; the convolution itself pads nothing
        self.pad_value = float(pad_value)
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0)
            if self.bias is not None:
                fan_in = in_channels * kernel[0] * kernel[1]
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 1 else 1.0
                self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padding
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph), value=self.pad_value)
        return self._scaled(F.conv2d(x, self.binary_weight(), None, self.stride), (1, -1, 1, 1))

    def extra_repr(self) -> str:
        extra = "" if self.weight_bits == 1 else f", weight_bits={self.weight_bits}"
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, pad_value={self.pad_value:g}, bias={self.bias is not None}" + extra
                + (", scale=True" if self.weight_scale is not None else ""))


class BinaryAct(nn.Module):
    """Hard sign activation, sign(0) = +1; clipped straight-through gradient while training, unless a
    training ``quantizer`` is set (eval mode ignores it)."""

    quantizer = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.quantizer is not None:
            return self.quantizer(x)
        return _binarize(x, self.training)


class _QuantSTE(torch.autograd.Function):
    """Forward: the quantized value. Backward: gradient passed inside [lowest, highest level] (inclusive)."""

    @staticmethod
    def forward(ctx, x, act):
        ctx.save_for_backward(x)
        ctx.range = act.value_range
        return act.hard(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.range
        return grad * ((x >= lo) & (x <= hi)).to(grad.dtype), None


class QuantAct(nn.Module):
    """A uniform activation quantizer with integer codes q = 0 .. levels - 1 (docs/integer_math.md).

    Grids (``mode``), each times ``scale`` (a positive number; powers of two keep float64 exact):

    * ``"symmetric"`` (InputQuant's grid on [-1, 1]): 2**bits levels (2q - D)/D, D = 2**bits - 1, with
      q = round((x/scale + 1)·D/2) clamped to 0..D. ``bits=1`` is the hard sign (sign(0) = +1),
      exactly BinaryAct.
    * ``"signed"`` (Brevitas QuantIdentity / QuantHardTanh): integers k = round(x/scale) clamped to
      -2**(bits-1) .. 2**(bits-1) - 1, or with ``narrow=True`` to ±(2**(bits-1) - 1) (2 bits, narrow:
      {-1, 0, +1}, FINN's W1A2/W2A2 activations); q = k - lowest.
    * ``"unsigned"`` (Brevitas QuantReLU): k = round(x/scale) clamped to 0 .. 2**bits - 1; q = k.

    Rounding is torch.round (half to even, as Brevitas and QONNX round). The value of code q is
    ``(offset + step·q) · scale / divisor`` (:attr:`grid`), computed in that order in float64, which is
    what the compiler folds. Training: the clipped straight-through estimator (gradient inside the
    grid's range), unless a training ``quantizer`` is set; eval mode ignores it.
    """

    quantizer = None

    def __init__(self, bits: int, mode: str = "symmetric", scale: float = 1.0, narrow: bool = False):
        super().__init__()
        self.bits = _check_bits("QuantAct", "bits", bits)
        if mode not in ACT_MODES:
            raise ValueError(f"QuantAct mode must be one of {', '.join(ACT_MODES)}, not {mode!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"QuantAct scale must be a positive finite number, not {scale!r}")
        if not isinstance(narrow, bool):
            raise ValueError(f"QuantAct narrow must be True or False, not {narrow!r}")
        if narrow and mode != "signed":
            raise ValueError("QuantAct narrow=True applies to mode='signed' only (the other grids have no "
                             "unused lowest code)")
        if narrow and bits == 1:
            raise ValueError("QuantAct(bits=1, mode='signed', narrow=True) would have a single level; use "
                             "bits >= 2")
        self.mode, self.scale, self.narrow = mode, float(scale), narrow

    @property
    def grid(self) -> tuple[int, int, float, float, int]:
        """(offset, step, scale, divisor, levels): code q has value (offset + step·q)·scale/divisor."""
        b = self.bits
        if self.mode == "symmetric":
            d = (1 << b) - 1
            return (-1, 2, self.scale, 1.0, 2) if b == 1 else (-d, 2, self.scale, float(d), d + 1)
        if self.mode == "signed":
            lo = -(1 << (b - 1)) + (1 if self.narrow else 0)
            return lo, 1, self.scale, 1.0, (1 << (b - 1)) - lo
        return 0, 1, self.scale, 1.0, 1 << b

    @property
    def levels(self) -> int:
        return self.grid[4]

    def level_values(self, dtype=torch.float64) -> torch.Tensor:
        """The value of every code 0 .. levels - 1, ascending."""
        offset, step, scale, divisor, levels = self.grid
        q = torch.arange(levels, dtype=dtype)
        return (offset + step * q) * scale / divisor

    @property
    def value_range(self) -> tuple[float, float]:
        v = self.level_values()
        return float(v[0]), float(v[-1])

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Integer codes 0 .. levels - 1 of ``x`` (in the dtype of ``x``)."""
        offset, step, scale, divisor, levels = self.grid
        if self.mode == "symmetric" and self.bits == 1:
            return (x >= 0).to(x.dtype)
        if self.mode == "symmetric":
            q = torch.round((x / scale + 1) * divisor / 2)
        else:
            q = torch.round(x / scale) - offset
        return q.clamp(0, levels - 1)

    def hard(self, x: torch.Tensor) -> torch.Tensor:
        """The quantized value of ``x`` (no gradient): the eval-mode forward."""
        offset, step, scale, divisor, _ = self.grid
        return (offset + step * self.codes(x.detach())) * scale / divisor

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        """The clipped (differentiable) path: ``x`` clamped to the grid's range."""
        lo, hi = self.value_range
        return x.clamp(lo, hi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.quantizer is not None:
            return self.quantizer(x)
        if self.training and x.requires_grad:
            return _QuantSTE.apply(x, self)
        return self.hard(x)

    def extra_repr(self) -> str:
        extra = "" if self.scale == 1.0 else f", scale={self.scale:g}"
        return f"bits={self.bits}, mode={self.mode!r}" + extra + (", narrow=True" if self.narrow else "")


class ResidualBlock(nn.Module):
    """A binary block with a shortcut around it: ``out = body(s) + s`` (Bi-Real Net style).

    ``body`` is a sequence of layers that keeps the shape, typically ``BinaryAct → BinaryLinear →
    BatchNorm1d`` (or ``BinaryConv2d`` with padding and ``BatchNorm2d``). ``s`` is the block's input
    itself (``shortcut=None``: a real-valued shortcut, as Bi-Real Net), or the input quantized by
    ``shortcut``, a :class:`QuantAct` (the multi-bit activation grid), so that every value the block
    adds and passes on is a fixed-point number a compiler can carry. The body's sign then reads the
    quantized value too. bnn2hw trains such blocks; its compiler does not build them yet.
    """

    def __init__(self, *body: nn.Module, shortcut: QuantAct | None = None):
        super().__init__()
        if not body:
            raise ValueError("ResidualBlock needs at least one layer in its body")
        if shortcut is not None and not isinstance(shortcut, QuantAct):
            raise ValueError(f"ResidualBlock shortcut must be None (real-valued) or a QuantAct, not "
                             f"{type(shortcut).__name__}")
        self.shortcut = shortcut   # registered before the body: modules() meets it first, in forward order
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x if self.shortcut is None else self.shortcut(x)
        return self.body(s) + s

    def extra_repr(self) -> str:
        return "shortcut=real" if self.shortcut is None else ""
