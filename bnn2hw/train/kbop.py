"""KBOP, a latent-free optimizer for binary weights, as reconstructed in spec §5.2.

FOUND (ICLR 2026 submission S11: abstract and reviews): binary weights change sign by a rule that uses the
gradient at the binary point, and the learning rate controls how rigid that rule is. The rule compares v, an
exponential moving average of gradients (EMA parameter β), against a per-layer threshold built from the mean
and standard deviation of the gradient magnitudes. A learnable scale is trained with its own LR, and "BNN
Init" sets the scale's initial value by Kaiming analysis. RECON (our guesses, so the forms are pluggable or
documented): θ = μ + κ(λ)·σ with κ(λ) = 1/λ − 1, the strict inequalities of the flip rule, "layer" meaning one
parameter tensor, population std, and α⁰ = sqrt(2 / fan_in). The scale α is not part of this optimizer:
the trainer (bnn2hw.train.trainer) keeps it as an ordinary parameter trained by Adam with its own LR.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import torch

from ..nn import hard_sign

__all__ = ["KBop", "binarize_", "bnn_init_scale", "default_rigidity"]


def default_rigidity(lr: float) -> float:
    """κ(λ) = 1/λ − 1 for λ ∈ [0, 1]: κ(1) = 0 (θ = μ) and κ → ∞ as λ → 0, so λ = 0 gives no flips at all."""
    if not 0 <= lr <= 1:
        raise ValueError(f"the default KBOP rigidity 1/lr - 1 needs lr in [0, 1], not {lr!r}")
    return math.inf if lr == 0 else 1.0 / lr - 1.0


def bnn_init_scale(fan_in: int) -> float:
    """The reconstructed "BNN Init" of a per-layer scale: α⁰ = sqrt(2 / fan_in), so Var(α·w) = α² for w = ±1
    matches Kaiming's 2 / fan_in (spec §5.2, RECON)."""
    fan_in = operator.index(fan_in)
    if fan_in < 1:
        raise ValueError(f"bnn_init_scale needs fan_in >= 1, not {fan_in!r}")
    return math.sqrt(2.0 / fan_in)


@torch.no_grad()
def binarize_(param: torch.Tensor) -> torch.Tensor:
    """Set ``param`` in place to hard_sign(param) (sign(0) = +1) and return it: the init KBop expects."""
    return param.copy_(hard_sign(param))


class KBop(torch.optim.Optimizer):
    """For binary weights w ∈ {-1, +1}, one layer per parameter tensor (spec §5.2, RECON):

        v ← β·v + (1 − β)·g                       g = ∂L/∂w at the binary weights
        θ = μ + κ(λ)·σ                            μ = mean(|v|), σ = population std(|v|) over the tensor
        w_i ← −w_i  iff  w_i·v_i > 0 and |v_i| > θ

    λ is the param group's ``lr``, so torch LR schedulers drive the rigidity κ(λ) (``rigidity``, default
    1/λ − 1). Smaller λ means a higher threshold and fewer flips. Both inequalities are strict: that is our
    reconstruction, the paper's exact forms are not known. v has no bias correction because the rule is
    invariant to scaling v by one factor per tensor. A tensor whose |v| are all equal (a one-element tensor,
    say) has σ = 0, θ = μ, and never flips. Parameters must already hold ±1 (see ``binarize_``).

    After each step, ``state[w]`` holds ``v``, ``threshold`` (θ, a 0-d tensor; +inf when κ is) and ``flips``
    (the number of entries flipped, a 0-d tensor, so no device sync).
    """

    def __init__(self, params, lr: float = 0.5, beta: float = 0.9,
                 rigidity: Callable[[float], float] = default_rigidity):
        if not callable(rigidity):
            raise TypeError(f"KBop rigidity must be a callable lr -> kappa, not {rigidity!r}")
        self.rigidity = rigidity
        _check_hyper(lr, beta)
        super().__init__(params, dict(lr=lr, beta=beta))

    def add_param_group(self, param_group: dict) -> None:
        _check_hyper(param_group.get("lr", self.defaults["lr"]), param_group.get("beta", self.defaults["beta"]))
        super().add_param_group(param_group)

    def kappa(self, lr: float) -> float:
        """κ for this LR from ``rigidity``, checked: a number that is finite or +inf."""
        kappa = float(self.rigidity(lr))
        if math.isnan(kappa) or kappa == -math.inf:
            raise ValueError(f"KBop rigidity({lr!r}) must be finite or +inf, not {kappa!r}")
        return kappa

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            kappa = self.kappa(group["lr"])
            beta = group["beta"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                if w.grad.is_sparse:
                    raise RuntimeError("KBop does not support sparse gradients")
                state = self.state[w]
                if "v" not in state:
                    _check_binary(w)
                    state["v"] = torch.zeros_like(w, memory_format=torch.preserve_format)
                v = state["v"]
                v.mul_(beta).add_(w.grad, alpha=1 - beta)
                mag = v.abs()
                if kappa == math.inf:
                    theta = torch.full((), math.inf, dtype=v.dtype, device=v.device)
                else:
                    theta = mag.mean() + kappa * mag.std(correction=0)
                flip = (w * v > 0) & (mag > theta)
                w.copy_(torch.where(flip, -w, w))
                state["threshold"] = theta
                state["flips"] = flip.sum()
        return loss


def _check_hyper(lr, beta) -> None:
    if not 0 < lr <= 1:
        raise ValueError(f"KBop lr (the rigidity knob) must be in (0, 1], not {lr!r}")
    if not 0 <= beta < 1:
        raise ValueError(f"KBop beta (the gradient EMA factor) must be in [0, 1), not {beta!r}")


def _check_binary(w: torch.Tensor) -> None:
    if not bool(((w == 1) | (w == -1)).all()):
        bad = w[(w != 1) & (w != -1)].flatten()[:3].tolist()
        raise ValueError(f"KBop needs parameters that hold exactly ±1, found values such as {bad}; initialise them "
                         "with bnn2hw.train.kbop.binarize_(w), i.e. w.copy_(bnn2hw.nn.hard_sign(w)) under no_grad")
