"""The two elementwise paths of StoMPP and the surrogate gradients of sign (spec §2, §3.2).

Forward values are always exact: the clipped path is clamp(x, -1, 1), the hard path is sign with
sign(0) = +1. Only the backward pass differs between methods.
"""

from __future__ import annotations

import math

import torch

from ..nn import hard_sign

__all__ = ["ClipId", "clip_identity", "surrogate_sign", "stompp_q", "SURROGATES", "MODES", "ede_factors"]

SURROGATES = ("ste", "ste_clip", "approxsign", "swishsign", "ede")
MODES = ("stompp", "stompp+sg", "ste")


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
