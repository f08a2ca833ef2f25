"""Graph → Graph passes: fold_batchnorm (BatchNorm into integer thresholds), apply_folding (PE/SIMD)."""
from .fold_batchnorm import fold_batchnorm
from .folding import DEFAULT_LANE_BUDGET, apply_folding, default_folding, load_folding_file

__all__ = ["fold_batchnorm", "apply_folding", "default_folding", "load_folding_file", "DEFAULT_LANE_BUDGET"]
