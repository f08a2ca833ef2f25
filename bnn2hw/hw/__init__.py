"""Amaranth 0.5 hardware blocks; each module holds one concept."""
from .mvu import MatrixVectorUnit, MVUParams, scores_layout
from .network import Network

__all__ = ["MatrixVectorUnit", "MVUParams", "Network", "scores_layout"]
