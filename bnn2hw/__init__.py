"""bnn2hw: binary neural networks from PyTorch to bit-exact FPGA hardware."""
from .io import load, save

__version__ = "0.1.0"
__all__ = ["load", "save", "__version__"]
