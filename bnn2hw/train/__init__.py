"""Training binary (and multi-bit) networks for bnn2hw: StoMPP (STE-free progressive binarization), its
surrogate composition, the BinaryConnect-style STE baseline, and the latent-free optimizers Bop and KBOP;
plain or residual networks (``TrainConfig.residual``), in one process or several (distributed.py:
DistributedDataParallel over gloo, under torchrun or ``spawn_local``).

Spec: ../shared/design/TRAINING_AND_INTEGER_MATH.md §2–§5; every choice marked [RECON] there is an
option here (docs/training.md lists them with their defaults).
"""
from ..data import DATASETS, TrainingData, load_training_data
from .binarizer import BinarizationConfig, Binarizer, find_units
from .bop import Bop
from .kbop import KBop, bnn_init_scale
from .masks import FrozenLatentGuard, grow_mask, soft_refresh
from .quantize import (SURROGATES, ClipId, Levels, act_levels, clip_identity, multilevel_q, stompp_q, surrogate_sign,
                       weight_levels)
from .schedule import FreezeSchedule
from .trainer import (TrainConfig, TrainResult, activation, build_cnn, build_mlp, deploy_accuracy,
                      recalibrate_batchnorm, train)

__all__ = ["BinarizationConfig", "Binarizer", "find_units", "Bop", "KBop", "bnn_init_scale", "DATASETS",
           "TrainingData", "load_training_data", "FrozenLatentGuard", "grow_mask", "soft_refresh", "SURROGATES",
           "ClipId", "clip_identity", "stompp_q", "surrogate_sign", "FreezeSchedule", "TrainConfig", "TrainResult",
           "build_cnn", "build_mlp", "deploy_accuracy", "recalibrate_batchnorm", "train", "Levels", "act_levels",
           "weight_levels", "multilevel_q", "activation"]
