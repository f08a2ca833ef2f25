"""IR → Amaranth components, and Verilog export."""
from .elaborate import build_network, constant_widths, layer_params, stage_bounds, stage_params

__all__ = ["build_network", "constant_widths", "layer_params", "stage_bounds", "stage_params"]
