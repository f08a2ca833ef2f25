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

__all__ = ["InputQuant", "BinaryLinear", "BinaryAct", "hard_sign"]


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


class BinaryAct(nn.Module):
    """Hard sign activation, sign(0) = +1; clipped straight-through gradient while training, unless a
    training ``quantizer`` is set (eval mode ignores it)."""

    quantizer = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.quantizer is not None:
            return self.quantizer(x)
        return _binarize(x, self.training)
