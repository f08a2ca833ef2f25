"""Stochastic partial masks with soft refresh, and the guard that keeps frozen latents frozen
(spec §3.2 and pitfall P2). A mask is a bool tensor shaped like what it masks; True = frozen (hard).
"""

from __future__ import annotations

import torch

from ..nn import clip_weight

__all__ = ["grow_mask", "soft_refresh", "FrozenLatentGuard", "PRIORITIES", "GRANULARITIES"]

PRIORITIES = ("uniform", "error")
GRANULARITIES = ("element", "out_channel")


def _units(mask: torch.Tensor, granularity: str) -> torch.Tensor:
    """The mask as one bool per selectable unit: every element, or every output channel (dim 0)."""
    if granularity == "element":
        return mask.reshape(-1)
    if granularity == "out_channel":
        return mask.reshape(mask.shape[0], -1)[:, 0]
    raise ValueError(f"unknown mask granularity {granularity!r}; choose one of {', '.join(GRANULARITIES)}")


def _expand(units: torch.Tensor, like: torch.Tensor, granularity: str) -> torch.Tensor:
    if granularity == "element":
        return units.reshape(like.shape)
    return units.reshape(-1, *([1] * (like.dim() - 1))).expand_as(like).clone()


def grow_mask(mask: torch.Tensor, fraction: float, generator: torch.Generator, latent: torch.Tensor | None = None,
              priority: str = "uniform", granularity: str = "element", eps: float = 1e-3,
              bits: int = 1) -> torch.Tensor:
    """A new mask with round(fraction · units) frozen units, freezing only units not frozen yet.

    ``priority="error"`` (SQ-style) draws units with probability ∝ 1 / (eps + 1 - |clip(latent)|), so
    latents already near ±1 tend to freeze first; it needs ``latent``. For ``bits``-bit weights
    (``bits >= 2``) the error is the rounding error of the code: ∝ 1 / (eps + 2·|c - round(c)|) with
    c = M·clamp(latent, -1, 1), so latents already near one of their levels tend to freeze first.
    """
    if priority not in PRIORITIES:
        raise ValueError(f"unknown mask priority {priority!r}; choose one of {', '.join(PRIORITIES)}")
    units = _units(mask, granularity).clone()
    target = round(min(max(fraction, 0.0), 1.0) * units.numel())
    missing = target - int(units.sum())
    if missing <= 0:
        return mask.clone()
    free = torch.nonzero(~units).reshape(-1)
    if priority == "uniform":
        chosen = free[torch.randperm(len(free), generator=generator)[:missing]]
    else:
        if latent is None:
            raise ValueError("priority='error' needs the latent tensor to rank entries")
        if bits == 1:
            closeness = latent.detach().clamp(-1, 1).abs()
        else:
            code = clip_weight(latent.detach(), bits)
            closeness = 1.0 - 2.0 * (code - torch.round(code)).abs()
        closeness = closeness.reshape(-1) if granularity == "element" else closeness.reshape(len(units), -1).mean(1)
        weights = 1.0 / (eps + 1.0 - closeness[free])
        chosen = free[torch.multinomial(weights.double(), missing, replacement=False, generator=generator)]
    units[chosen] = True
    return _expand(units, mask, granularity)


def soft_refresh(mask: torch.Tensor, rho: float, generator: torch.Generator, granularity: str = "element") -> torch.Tensor:
    """Release round(rho · frozen) random frozen units and freeze as many others (not those just
    released): the frozen count is unchanged, but no unit stays committed for good. [RECON]"""
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"refresh fraction must be in [0, 1], not {rho}")
    units = _units(mask, granularity).clone()
    frozen = torch.nonzero(units).reshape(-1)
    free = torch.nonzero(~units).reshape(-1)
    k = min(round(rho * len(frozen)), len(free))
    if k == 0:
        return mask.clone()
    released = frozen[torch.randperm(len(frozen), generator=generator)[:k]]
    refrozen = free[torch.randperm(len(free), generator=generator)[:k]]
    units[released] = False
    units[refrozen] = True
    return _expand(units, mask, granularity)


class FrozenLatentGuard:
    """Restores frozen latents after an optimizer step (pitfall P2: momentum, Adam moments and weight
    decay move entries whose gradient is zero, and could silently flip a frozen sign).

        with FrozenLatentGuard([(layer.weight, layer.weight_mask)]):
            optimizer.step()
    """

    def __init__(self, pairs):
        self._pairs = list(pairs)
        self._saved = []

    def __enter__(self):
        self._saved = [(p, m.clone(), p.detach()[m].clone()) for p, m in self._pairs]
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            for param, mask, values in self._saved:
                param[mask] = values
        self._saved = []
        return False
