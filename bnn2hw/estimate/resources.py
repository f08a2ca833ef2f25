"""Resource estimate of a planned network: LUTs, flip-flops, block RAM and DSPs per unit and in total.

The estimate describes the hardware its plan builds (bnn2hw.plan: the plan's hardware target sets the
popcount shape, pipeline stages, input buffers and ROM styles) as Yosys maps it for ``family``
(``bnn2hw.synth``: synth_ice40 -dsp, synth_ecp5, synth_xilinx -family xc7; LUTs counted as
``synth.Resources.luts`` counts them: ECP5 CCU2C = 2 and DPR16X4 = 6 LUT4s, Xilinx LUT RAM in LUT6
sites). The per-unit counts are bnn2hw/estimate/units.py's, the memory mapping memory.py's, the LUT
coefficients and their measured error cost_model.py's, the device capacities families.py's.

The model is for choosing foldings and checking fit, not for sign-off: place and route reports the
truth, and a hardware change needs a re-calibration (``python bench/calibrate_resources.py --fit``).
"""

from __future__ import annotations

from ..plan import LayerPlan, NetworkPlan
from .units import ResourceEstimate, UnitEstimate, mvu_unit, stream_unit

__all__ = ["estimate_resources", "layer_unit", "lut_features"]


def estimate_resources(plan: NetworkPlan, family: str) -> ResourceEstimate:
    """Resources of the hardware ``plan`` describes, for ``family`` ("ice40", "ecp5", "xilinx"), unit by
    unit in stream order (a convolution's window before its MVU)."""
    units = []
    for stage in plan.stage_plans:
        if stage.unit is not None:
            units.append(stream_unit(stage.unit, family))
        if stage.layer is not None:
            units.append(mvu_unit(stage.layer, family))
    return ResourceEstimate(family, tuple(units))


def layer_unit(layer: LayerPlan, family: str) -> UnitEstimate:
    """Estimate of one compute layer's MVU alone (automatic folding costs candidates with it)."""
    return mvu_unit(layer, family)


def lut_features(plan: NetworkPlan, family: str) -> dict[str, float]:
    """Σ over the units of each LUT feature (before coefficients), plus ``lutram`` (exact LUT-RAM LUTs)."""
    total: dict[str, float] = {}
    for u in estimate_resources(plan, family).units:
        for k, v in u.features.items():
            total[k] = total.get(k, 0.0) + v
        total["lutram"] = total.get("lutram", 0.0) + u.lutram_luts
    return total
