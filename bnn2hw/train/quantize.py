"""The two elementwise paths of StoMPP and the surrogate gradients of sign (spec §2, §3.2).

Forward values are always exact: the clipped path is clamp(x, -1, 1), the hard path is sign with
sign(0) = +1. Only the backward pass differs between methods.

Multi-bit layers (``QuantAct`` with a grid other than the hard sign, weights of 2 bits or more) have
the same two paths on their own grid (:class:`Levels`): the hard path is the layer's quantized value,
the clipped path the input clamped to the grid's range, and their straight-through gradient is the
clipped STE (the clipped path's derivative). The other surrogates are derivatives of sign and have
no multi-level form (:func:`multilevel_q`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..nn import clip_weight, hard_sign, quantize_weight, weight_code_max

__all__ = ["ClipId", "clip_identity", "surrogate_sign", "stompp_q", "SURROGATES", "MODES", "ede_factors",
           "Levels", "act_levels", "weight_levels", "multilevel_q", "MULTILEVEL_SURROGATES"]

SURROGATES = ("ste", "ste_clip", "approxsign", "swishsign", "ede")
MODES = ("stompp", "stompp+sg", "ste")
MULTILEVEL_SURROGATES = ("ste_clip",)
"""The surrogates a multi-bit layer can use: the clipped STE only (the others are derivatives of sign)."""


class ClipId(torch.autograd.Function):
    """Forward clamp(x, -1, 1); backward g·1[-1 <= x <= 1] (inclusive at ±1)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(-1, 1)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x >= -1) & (x <= 1)).to(grad.dtype)


def clip_identity(x: torch.Tensor) -> torch.Tensor:
    return ClipId.apply(x)


def ede_factors(progress: float, t_min: float = 0.1, t_max: float = 10.0) -> tuple[float, float]:
    """IR-Net's EDE schedule at training progress u ∈ [0, 1]: t = 10^(log t_min + (log t_max - log t_min)·u),
    k = max(1/t, 1)."""
    t = 10 ** (math.log10(t_min) + (math.log10(t_max) - math.log10(t_min)) * progress)
    return t, max(1.0 / t, 1.0)


def _surrogate_grad(x: torch.Tensor, name: str, progress: float, beta: float) -> torch.Tensor:
    inside = ((x >= -1) & (x <= 1)).to(x.dtype)
    if name == "ste":
        return torch.ones_like(x)
    if name == "ste_clip":
        return inside
    if name == "approxsign":
        return (2 - 2 * x.abs()) * inside
    if name == "swishsign":
        return beta * (2 - beta * x * torch.tanh(beta * x / 2)) / (1 + torch.cosh(beta * x))
    if name == "ede":
        t, k = ede_factors(progress)
        return k * t * (1 - torch.tanh(t * x) ** 2)
    raise ValueError(f"unknown surrogate {name!r}; choose one of {', '.join(SURROGATES)}")


class _SurrogateSign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, name, progress, beta):
        ctx.save_for_backward(x)
        ctx.settings = (name, progress, beta)
        return hard_sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _surrogate_grad(x, *ctx.settings), None, None, None


def surrogate_sign(x: torch.Tensor, name: str = "ste_clip", progress: float = 0.0, beta: float = 5.0) -> torch.Tensor:
    """Forward hard sign (sign(0) = +1); backward the named surrogate derivative (spec §2.2)."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; choose one of {', '.join(SURROGATES)}")
    return _SurrogateSign.apply(x, name, progress, beta)


def stompp_q(x: torch.Tensor, frozen: torch.Tensor, mode: str = "stompp", surrogate: str = "ste_clip",
             progress: float = 0.0) -> torch.Tensor:
    """where(frozen, hard path, clipped path), with the gradient each method gives the frozen entries:

    * ``stompp``: none (the true derivative of the step; no STE anywhere);
    * ``stompp+sg``: the surrogate, on frozen entries only;
    * ``ste``: the BinaryConnect-style baseline: every entry hard, surrogate everywhere (``frozen`` ignored).
    """
    if mode == "ste":
        return surrogate_sign(x, surrogate, progress)
    if mode == "stompp":
        hard = hard_sign(x).detach()
    elif mode == "stompp+sg":
        hard = surrogate_sign(x, surrogate, progress)
    else:
        raise ValueError(f"unknown method {mode!r}; choose one of {', '.join(MODES)}")
    return torch.where(frozen, hard, clip_identity(x))


# -- multi-bit layers -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Levels:
    """A multi-level quantizer as StoMPP sees it: ``hard(x)`` the quantized value (the hard path),
    ``clip(x)`` the clipped path, whose derivative is ``slope`` on [lo, hi] (inclusive) and 0 outside."""

    hard: Callable[[torch.Tensor], torch.Tensor]
    clip: Callable[[torch.Tensor], torch.Tensor]
    lo: float
    hi: float
    slope: float = 1.0


def act_levels(act) -> Levels:
    """A ``bnn2hw.nn.QuantAct``'s paths: ``act.hard`` and ``act.clip`` (slope 1 on its value range)."""
    lo, hi = act.value_range
    return Levels(act.hard, act.clip, lo, hi, 1.0)


def weight_levels(bits: int) -> Levels:
    """The paths of ``bits``-bit weights in code units: ``quantize_weight`` and ``clip_weight``
    (M·clamp(w, -1, 1), slope M = ``weight_code_max(bits)`` on [-1, 1])."""
    return Levels(lambda w: quantize_weight(w, bits), lambda w: clip_weight(w, bits), -1.0, 1.0,
                  float(weight_code_max(bits)))


def _inside(x: torch.Tensor, levels: Levels, dtype) -> torch.Tensor:
    return ((x >= levels.lo) & (x <= levels.hi)).to(dtype) * levels.slope


class _LevelsClip(torch.autograd.Function):
    """Forward ``levels.clip(x)``; backward slope·g on [lo, hi] (inclusive), 0 outside."""

    @staticmethod
    def forward(ctx, x, levels):
        ctx.save_for_backward(x)
        ctx.levels = levels
        return levels.clip(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _inside(x, ctx.levels, grad.dtype), None


class _LevelsSTE(torch.autograd.Function):
    """Forward ``levels.hard(x)``; backward the clipped STE: slope·g on [lo, hi], 0 outside."""

    @staticmethod
    def forward(ctx, x, levels):
        ctx.save_for_backward(x)
        ctx.levels = levels
        return levels.hard(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _inside(x, ctx.levels, grad.dtype), None


def multilevel_q(x: torch.Tensor, frozen: torch.Tensor | None, mode: str, levels: Levels) -> torch.Tensor:
    """:func:`stompp_q` for a multi-level grid: where(frozen, levels.hard(x), levels.clip(x)), with

    * ``stompp``: no gradient on frozen entries; the clipped path's derivative on the others;
    * ``stompp+sg``: the clipped STE (slope inside [lo, hi]) on frozen entries too;
    * ``ste``: the hard path everywhere with the clipped STE (``frozen`` ignored).
    """
    if mode == "ste":
        return _LevelsSTE.apply(x, levels)
    if mode == "stompp":
        hard = levels.hard(x).detach()
    elif mode == "stompp+sg":
        hard = _LevelsSTE.apply(x, levels)
    else:
        raise ValueError(f"unknown method {mode!r}; choose one of {', '.join(MODES)}")
    return torch.where(frozen, hard, _LevelsClip.apply(x, levels))
