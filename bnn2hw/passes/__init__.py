"""Graph → Graph passes: fold_batchnorm, folding; plus ROM packing and estimates."""
from .estimate import NetworkEstimate, estimate
from .fold_batchnorm import fold_batchnorm
from .folding import apply_folding, default_folding, load_folding_file

__all__ = ["fold_batchnorm", "apply_folding", "default_folding", "load_folding_file", "estimate",
           "NetworkEstimate"]
