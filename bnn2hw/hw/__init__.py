"""Amaranth 0.5 hardware blocks; each module holds one concept."""
from .collect import CollectParams, CollectUnit
from .conv import ConvParams, ConvUnit
from .maxpool import MaxPoolParams, MaxPoolUnit
from .mvu import MatrixVectorUnit, MVUParams, scores_layout
from .network import Network
from .sliding_window import SlidingWindowUnit, WindowParams
from .target import ECP5, GENERIC, ICE40_UP5K, XILINX_7, HardwareTarget, target_for

__all__ = ["CollectParams", "CollectUnit", "ConvParams", "ConvUnit", "ECP5", "GENERIC", "HardwareTarget",
           "ICE40_UP5K", "MatrixVectorUnit", "MaxPoolParams", "MaxPoolUnit", "MVUParams", "Network",
           "SlidingWindowUnit", "WindowParams", "XILINX_7", "scores_layout", "target_for"]
