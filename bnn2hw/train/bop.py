"""Bop, the latent-free optimizer of Helwegen et al. (2019), with the strict flip rule (spec §5.1)."""

from __future__ import annotations

import torch

__all__ = ["Bop"]


class Bop(torch.optim.Optimizer):
    """For binary weights w ∈ {-1, +1}: m ← (1 - γ)·m + γ·g, then w ← -w where w·m > τ.

    The comparison is strict: at w·m = τ the weight keeps its sign (Larq's expression would set it to
    +1 there). Parameters must already hold ±1; non-binary parameters belong in another optimizer.
    """

    def __init__(self, params, gamma: float = 1e-4, tau: float = 1e-8):
        if not 0 < gamma <= 1:
            raise ValueError(f"Bop gamma (adaptivity rate) must be in (0, 1], not {gamma!r}")
        if tau < 0:
            raise ValueError(f"Bop tau (threshold) must be non-negative, not {tau!r}")
        super().__init__(params, dict(gamma=gamma, tau=tau))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                state = self.state[w]
                if "m" not in state:
                    state["m"] = torch.zeros_like(w)
                m = state["m"]
                m.mul_(1 - group["gamma"]).add_(w.grad, alpha=group["gamma"])
                w.mul_(torch.where(w * m > group["tau"], -1.0, 1.0).to(w.dtype))
        return loss
