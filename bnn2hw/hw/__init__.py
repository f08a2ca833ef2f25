"""Amaranth 0.5 hardware blocks; each module holds one concept."""
from .collect import CollectParams, CollectUnit
from .conv import ConvParams, ConvUnit
from .maxpool import MaxPoolParams, MaxPoolUnit
from .mvu import MatrixVectorUnit, MVUParams, scores_layout
from .network import Network
from .sliding_window import SlidingWindowUnit, WindowParams
from .threshold import ThresholdParams, ThresholdUnit

__all__ = ["CollectParams", "CollectUnit", "ConvParams", "ConvUnit", "MatrixVectorUnit", "MaxPoolParams",
           "MaxPoolUnit", "MVUParams", "Network", "SlidingWindowUnit", "ThresholdParams", "ThresholdUnit", "WindowParams",
           "scores_layout"]
