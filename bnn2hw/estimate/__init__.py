"""Estimation above the hardware plan: cycles, resources (memory mapping, cost model, per-unit counts),
the family and device registry, automatic folding and the fit check. Nothing here derives a hardware
number of its own: every figure is read from bnn2hw.plan."""
from .autofold import fold_for_budget, fold_for_cycles, fold_for_fps, folding_cycles, folding_lanes, stream_bounds
from .cost_model import CALIBRATION, COST_MODELS, FEATURE_GROUPS, fit_lut_coefficients
from .cycles import LayerEstimate, NetworkEstimate, estimate_cycles
from .families import (DEFAULT_FAMILY, DEVICES, FAMILIES, FAMILY_NAMES, LUT_SIZE, Device, Family, capacity_from,
                       device_capacity, family)
from .fit import DEFAULT_MARGIN, fit_check, refold_to_fit
from .memory import MemoryEstimate, map_memory
from .resources import estimate_resources, layer_unit, lut_features
from .units import ResourceEstimate, UnitEstimate

__all__ = ["fold_for_budget", "fold_for_cycles", "fold_for_fps", "folding_cycles", "folding_lanes", "stream_bounds",
           "CALIBRATION", "COST_MODELS", "FEATURE_GROUPS", "fit_lut_coefficients", "LayerEstimate",
           "NetworkEstimate", "estimate_cycles", "DEFAULT_FAMILY", "DEVICES", "FAMILIES", "FAMILY_NAMES", "LUT_SIZE",
           "Device", "Family", "capacity_from", "device_capacity", "family", "DEFAULT_MARGIN", "fit_check",
           "refold_to_fit", "MemoryEstimate", "map_memory", "estimate_resources", "layer_unit", "lut_features",
           "ResourceEstimate", "UnitEstimate"]
