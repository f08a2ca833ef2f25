"""A small typed IR between the torch frontend and the hardware generator."""
from .graph import Graph, validate
from .ops import (BITS, PIXELS, BatchNorm, Conv, Dense, Folding, InputSpec, MaxPool, MaxPoolBits, ScoresDense, Sign,
                  ThresholdConv, ThresholdDense, Window, accumulator_range)

__all__ = ["Graph", "validate", "BITS", "PIXELS", "BatchNorm", "Conv", "Dense", "Folding", "InputSpec", "MaxPool",
           "MaxPoolBits", "ScoresDense", "Sign", "ThresholdConv", "ThresholdDense", "Window", "accumulator_range"]
