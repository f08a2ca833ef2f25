"""The per-unit freezing schedule of StoMPP (spec §3.2, shape [RECON], every choice configurable).

Training progress u ∈ [0, 1]. Units (binarized layers, in forward execution order) get windows of equal
length inside [start, end] that overlap by the fraction ``overlap``; within its window a unit's frozen
fraction ramps from 0 to 1 (linearly or as a half cosine). ``order`` chooses which unit goes first,
``scope="global"`` gives every unit the whole window at once. ``spacing="cubic"`` (FreezeOut-style)
places the k-th window of L between start + (end - start)·(k/L)³ and start + (end - start)·((k+1)/L)³:
the first units freeze quickly, the last ones slowly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FreezeSchedule", "ORDERS", "SCOPES", "RAMPS", "SPACINGS"]

ORDERS = ("forward", "reverse", "random")
SCOPES = ("layerwise", "global")
SPACINGS = ("uniform", "cubic")
RAMPS = ("linear", "cosine")


@dataclass(frozen=True)
class FreezeSchedule:
    n_units: int
    start: float = 0.0
    end: float = 0.9
    overlap: float = 0.0
    ramp: str = "linear"
    order: str = "forward"
    scope: str = "layerwise"
    seed: int = 0
    spacing: str = "uniform"
    ranks: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.n_units, int) or self.n_units < 1:
            raise ValueError(f"a schedule needs at least one binarized layer, not {self.n_units!r}")
        if not 0.0 <= self.start < self.end <= 1.0:
            raise ValueError(f"the freezing window must satisfy 0 <= start < end <= 1, not start={self.start} "
                             f"end={self.end}")
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), not {self.overlap}")
        for name, value, allowed in (("ramp", self.ramp, RAMPS), ("order", self.order, ORDERS),
                                     ("scope", self.scope, SCOPES), ("spacing", self.spacing, SPACINGS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if self.spacing == "cubic" and self.overlap:
            raise ValueError("cubic spacing sets every window's length itself; use overlap 0 with it")
        if self.order == "forward":
            ranks = list(range(self.n_units))
        elif self.order == "reverse":
            ranks = list(range(self.n_units))[::-1]
        else:
            ranks = [int(r) for r in np.random.default_rng(self.seed).permutation(self.n_units)]
        object.__setattr__(self, "ranks", tuple(ranks))

    @property
    def window_length(self) -> float:
        if self.scope == "global":
            return self.end - self.start
        n = self.n_units
        return (self.end - self.start) / (n - (n - 1) * self.overlap)

    def window(self, unit: int) -> tuple[float, float]:
        """(start, end) of ``unit``'s window in training progress."""
        if self.spacing == "cubic" and self.scope == "layerwise":
            span, k, n = self.end - self.start, self.ranks[unit], self.n_units
            return self.start + span * (k / n) ** 3, self.start + span * ((k + 1) / n) ** 3
        length = self.window_length
        begin = self.start if self.scope == "global" else self.start + self.ranks[unit] * length * (1 - self.overlap)
        return begin, begin + length

    def fraction(self, unit: int, progress: float) -> float:
        """Target frozen fraction f_k(u) of ``unit`` at training progress ``progress``."""
        begin, end = self.window(unit)
        r = min(max((progress - begin) / (end - begin), 0.0), 1.0)
        return r if self.ramp == "linear" else 0.5 * (1 - math.cos(math.pi * r))
