"""A small typed IR between the torch frontend and the hardware generator."""
from .graph import Graph, validate
from .ops import (BITS, CODES, PIXELS, SIGN_GRID, BatchNorm, Grid, Quant, pixel_grid, Conv, Dense, Folding, InputSpec, MaxPool, MaxPoolBits, ScoresDense, Sign,
                  ThresholdConv, ThresholdDense, Window, accumulator_range)

__all__ = ["Graph", "validate", "BITS", "CODES", "PIXELS", "SIGN_GRID", "Grid", "Quant", "pixel_grid", "BatchNorm", "Conv", "Dense", "Folding", "InputSpec", "MaxPool",
           "MaxPoolBits", "ScoresDense", "Sign", "ThresholdConv", "ThresholdDense", "Window", "accumulator_range"]
