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

__all__ = ["InputQuant", "BinaryLinear", "BinaryConv2d", "BinaryAct", "hard_sign", "PAD_VALUES"]

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


class BinaryLinear(nn.Linear):
    """A fully connected layer whose forward pass uses sign(W), with sign(0) = +1.

    The latent weight stays real-valued for training; only its sign reaches the hardware. A bias, if
    present, is folded into the next threshold (or the class-score affine of the last layer).
    ``quantizer``, when set, maps the latent weight to the training-mode weight instead of the
    clipped estimator; eval mode ignores it.
    """

    quantizer = None

    def __init__(self, in_features: int, out_features: int, bias: bool = False):
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BinaryLinear {name} must be a positive integer, not {value!r}")
        super().__init__(in_features, out_features, bias=bias)
        # Uniform latents in [-1, 1]: the clipped estimator passes gradient to all of them.
        with torch.no_grad():
            bound = 1.0 / math.sqrt(in_features) if in_features > 1 else 1.0
            self.weight.uniform_(-1.0, 1.0)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def binary_weight(self) -> torch.Tensor:
        if self.training and self.quantizer is not None:
            return self.quantizer(self.weight)
        return _binarize(self.weight, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.binary_weight(), self.bias)


def _pair(value, name: str, low: int, high: int) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high for v in pair):
        raise ValueError(f"BinaryConv2d {name} must be an integer or a pair of integers from {low} to {high}, "
                         f"not {value!r}")
    return pair


class BinaryConv2d(nn.Conv2d):
    """A 2-d convolution whose forward pass uses sign(W), with sign(0) = +1, and pads explicitly.

    The input is padded with ``pad_value`` (default -1, which the hardware stores as a 0 bit; +1 is a 1
    bit) *after* binarization and then convolved without padding, so training sees exactly what the
    hardware computes. ``pad_value=0`` is torch's zero padding. Like ``BinaryLinear``, a training
    ``quantizer`` may replace the clipped straight-through estimator; eval mode ignores it.
    """

    quantizer = None

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 pad_value: float = -1.0, bias: bool = False):
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BinaryConv2d {name} must be a positive integer, not {value!r}")
        kernel = _pair(kernel_size, "kernel_size", 1, 64)
        stride = _pair(stride, "stride", 1, 64)
        padding = _pair(padding, "padding", 0, 64)
        if float(pad_value) not in PAD_VALUES:
            raise ValueError(f"BinaryConv2d pad_value must be -1, +1 or 0, not {pad_value!r}")
        super().__init__(in_channels, out_channels, kernel, stride=stride, padding=0, bias=bias)
        self.padding = padding  # applied in forward with pad_value; the convolution itself pads nothing
        self.pad_value = float(pad_value)
        with torch.no_grad():
            self.weight.uniform_(-1.0, 1.0)
            if self.bias is not None:
                fan_in = in_channels * kernel[0] * kernel[1]
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 1 else 1.0
                self.bias.uniform_(-bound, bound)

    def binary_weight(self) -> torch.Tensor:
        if self.training and self.quantizer is not None:
            return self.quantizer(self.weight)
        return _binarize(self.weight, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.padding
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph), value=self.pad_value)
        return F.conv2d(x, self.binary_weight(), self.bias, self.stride)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, pad_value={self.pad_value:g}, bias={self.bias is not None}")


class BinaryAct(nn.Module):
    """Hard sign activation, sign(0) = +1; clipped straight-through gradient while training, unless a
    training ``quantizer`` is set (eval mode ignores it)."""

    quantizer = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.quantizer is not None:
            return self.quantizer(x)
        return _binarize(x, self.training)
