"""A small typed IR between the torch frontend and the hardware generator."""
from .graph import Graph, validate
from .ops import (BITS, CODES, PIXELS, SIGN_GRID, Activation, BatchNorm, Conv, Dense, Folding, Grid, InputSpec,
                  InputThreshold, MaxPool, MaxPoolBits, OutputMap, Quant, ScoresDense, Sign, ThresholdConv,
                  ThresholdDense, Window, accumulator_range, pixel_grid)

__all__ = ["Graph", "validate", "BITS", "CODES", "PIXELS", "SIGN_GRID", "Activation", "BatchNorm", "Conv", "Dense",
           "Folding", "Grid", "InputSpec", "InputThreshold", "MaxPool", "MaxPoolBits", "OutputMap", "Quant",
           "ScoresDense", "Sign", "ThresholdConv", "ThresholdDense", "Window", "accumulator_range", "pixel_grid"]
