"""Hardware plan → Amaranth components, and Verilog export."""
from .elaborate import build_network

__all__ = ["build_network"]
