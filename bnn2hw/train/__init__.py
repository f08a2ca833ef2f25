"""Training-time binarization (issue 3, in progress): the STE-free StoMPP primitives, surrogate
gradients, the per-layer freezing schedule, stochastic partial masks with soft refresh, and Bop.

Spec: ../shared/design/TRAINING_AND_INTEGER_MATH.md §2–§5 (choices marked [RECON] there are options
here). The training loop, CLI and experiments that use these pieces are not built yet.
"""
from .bop import Bop
from .masks import FrozenLatentGuard, grow_mask, soft_refresh
from .quantize import SURROGATES, ClipId, clip_identity, stompp_q, surrogate_sign
from .schedule import FreezeSchedule

__all__ = ["Bop", "FrozenLatentGuard", "grow_mask", "soft_refresh", "SURROGATES", "ClipId", "clip_identity",
           "stompp_q", "surrogate_sign", "FreezeSchedule"]
