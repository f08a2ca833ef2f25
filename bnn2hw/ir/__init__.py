"""A small typed IR between the torch frontend and the hardware generator."""
from .graph import Graph, validate
from .ops import BITS, PIXELS, accumulator_range, BatchNorm, Dense, Folding, InputSpec, ScoresDense, Sign, ThresholdDense

__all__ = ["Graph", "validate", "BITS", "PIXELS", "BatchNorm", "Dense", "Folding", "InputSpec",
           "ScoresDense", "Sign", "ThresholdDense", "accumulator_range"]
