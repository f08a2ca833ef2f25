"""The LUT cost model: coefficients per feature and family, how well they match Yosys, and their fitter.

* **LUTs** are ``Σ coefficient·feature`` over a few features per unit (:func:`lut_features`):
  XNOR-popcount lanes PE·SIMD, pixel lane bits PE·SIMD·bits, lanes with constant weights, the word
  multiplexer in front of the PE array (buffers·SF inputs per word bit), accumulator bits per PE
  (threshold layers start at −T: no comparator), output-register bits, the
  class-score argmax chain, ROMs that became logic (per column ceil(D / 2^k) LUTs, plus the 2:1
  multiplexers a LUT4 family without wide-function muxes needs), window multiplexers, pool gates,
  the output slots' 2:1 multiplexers ((Q − 1) frames: every slot of the queue but the last picks the
  next slot or the new frame; prior 1 LUT per bit in every family) and a constant per unit; plus the LUTs of LUT-RAM cells, counted exactly. The coefficients are one
  table per family (:data:`COST_MODELS`), fitted by ``python bench/calibrate_resources.py --fit``
  (one factor per :data:`FEATURE_GROUPS` group, so that nine Yosys runs per family determine them).
* **DSPs** hold the multiplications the plan lists (``LayerPlan.multipliers``) that pass Yosys'
  mul2dsp size limits (both operands ≥ 2 bits; product ≥ 11 bits on iCE40, ≥ 9 on Xilinx): the
  raw × scale of a class-score layer with a scale per class, one per PE. A pixel layer's
  D·(2C − V) is shifts and adds (``LayerPlan.pixel_multiplier`` is False), binary layers multiply
  nothing. ``UnitEstimate.dsp_note`` names them; on the iCE40 UP5K (8 SB_MAC16) such a head with
  more than 8 PEs does not fit.

**Measured error** (bench/calibrate_resources.py --fit; YoWASP Yosys 0.70; the hardware of
2026-12-02, after the class tournament and the result shift register, with its bnn2hw/plan/target.py shapes;
9 calibration designs per family: the digits MLP with three foldings, a fully unrolled MLP, an
odd-sized one, an 8-bit affine-head one, the digits CNN with two foldings and a random CNN). Block
RAMs and DSPs: exact on all 36 runs. LUTs, in the fit: mean 1.3 / 4.4 / 4.8 %, worst 3.0 / 7.2 /
14.3 % (iCE40 / ECP5 / Xilinx); each design predicted by a fit without it (leave-one-out): mean
3.5 / 12.7 / 11.0 %, worst 9 / 39 / 34 %; on 3 designs the fit never saw (the digits MLP and CNN
folded by bnn2hw/estimate/autofold.py, another random CNN): worst 7.0 / 31 / 16 % (the worst: the MLP at
PE = 64, SIMD = 2, whose 64 pixel PEs ECP5 builds with DSPs and fewer LUTs than modelled).
Flip-flops: −22 … +24 % (the model is high except on the fully unrolled design on iCE40, the only
one with constant weights) (:data:`CALIBRATION`). The model is for choosing foldings and
checking fit, not for sign-off: place and route reports the truth, and a hardware change needs a
re-calibration (one command, above).

**Xilinx refitted 2026-12-07, twice** (issue 17's hardware: the MVU's credit scheme, commit c9134ea).
First with the output slots as their own feature (``out_slot_bits``); then again after the xilinx-7
target gave chained units an input buffer (which removed the second output slots: the digits MLP
1,751 → 1,479 Yosys LUTs). The second fit, on the same 9 designs (12 Yosys runs, 4 minutes): in the
fit mean 4.8 %, worst 14.9 %; leave-one-out mean 10.8 %, worst 30.8 %; held out mean 12.6 %, worst
17.5 % (the MLP folded for 64 cycles; the model is low on it); block RAM and DSP exact in 12 of 12.
Flip-flops (every register stage of the targets counted, bnn2hw/estimate/units.py): +2 … +14 % on
these designs, and −1 … +7 % on the shipped models' board plans of every family. The iCE40 and ECP5
LUT tables are the 2026-12-02 fit (their ``out_slot_bits`` is the 1-LUT prior, not yet fitted).
"""

from __future__ import annotations

import numpy as np

__all__ = ["COST_MODELS", "CALIBRATION", "FEATURE_GROUPS", "fit_lut_coefficients"]

#: LUTs per unit of each feature of lut_features(), per family. Refit with
#: ``python bench/calibrate_resources.py --fit`` after a hardware change and paste its output here.
COST_MODELS: dict[str, dict[str, float]] = {
    "ice40": {"const_lanes": 1.865, "popcount_lanes": 3.331, "pixel_lane_bits": 1.903, "select_mux": 0.51,
        "acc_bits": 0.68, "pixel_combine_bits": 1.02, "score_bits": 0.511, "argmax_bits": 0.68,
        "out_bits": 0.51, "rom_logic": 1.325, "mvu_control": 58.817, "window_mux": 0.51,
        "window_control": 88.226, "ram_logic": 1.325, "pool_inputs": 0.204, "collect_control": 14.704,
        "mul_bits": 0.341, "out_slot_bits": 1.0},
    "ecp5": {"const_lanes": 1.379, "popcount_lanes": 3.231, "pixel_lane_bits": 2.154, "select_mux": 0.376,
        "acc_bits": 1.868, "pixel_combine_bits": 2.801, "score_bits": 1.4, "argmax_bits": 1.868,
        "out_bits": 0.628, "rom_logic": 1.196, "mvu_control": 61.704, "window_mux": 0.376,
        "window_control": 92.556, "ram_logic": 1.196, "pool_inputs": 0.252, "collect_control": 15.426,
        "mul_bits": 0.934, "out_slot_bits": 1.0},
    "xilinx": {"const_lanes": 0.7779, "popcount_lanes": 2.3188, "pixel_lane_bits": 1.3921,
        "select_mux": 0.3061, "acc_bits": 0.6592, "pixel_combine_bits": 1.099, "score_bits": 0.5495,
        "argmax_bits": 0.6592, "out_bits": 0.525, "rom_logic": 0.9485, "mvu_control": 37.9567,
        "window_mux": 0.3061, "window_control": 50.6093, "ram_logic": 0.3788, "pool_inputs": 0.2189,
        "collect_control": 10.1223, "mul_bits": 0.329, "out_slot_bits": 1.0357},
}

#: How well COST_MODELS matched Yosys when last calibrated (bench/calibrate_resources.py --fit; relative
#: LUT error |model − Yosys| / Yosys): on the 9 calibration designs in the fit and leave-one-out, and
#: on 3 held-out designs; ``lut_error_max`` (the worse of fit and held-out) is what fit_check quotes.
#: Block RAMs and DSPs were exact on all 36 runs (flip-flops: the module docstring).
CALIBRATION: dict[str, dict] = {
    "ice40": {"designs": 9, "lut_error_fit_mean": 0.013, "lut_error_fit_max": 0.03,
              "lut_error_loo_mean": 0.035, "lut_error_loo_max": 0.092, "holdout_designs": 3,
              "lut_error_holdout_mean": 0.042, "lut_error_holdout_max": 0.07, "lut_error_max": 0.07},
    "ecp5": {"designs": 9, "lut_error_fit_mean": 0.044, "lut_error_fit_max": 0.072,
             "lut_error_loo_mean": 0.127, "lut_error_loo_max": 0.391, "holdout_designs": 3,
             "lut_error_holdout_mean": 0.141, "lut_error_holdout_max": 0.31, "lut_error_max": 0.31},
    "xilinx": {"designs": 9, "lut_error_fit_mean": 0.048, "lut_error_fit_max": 0.149,
               "lut_error_loo_mean": 0.108, "lut_error_loo_max": 0.308, "holdout_designs": 3,
               "lut_error_holdout_mean": 0.126, "lut_error_holdout_max": 0.175, "lut_error_max": 0.175},
}


#: Features whose coefficients the calibration scales together (one factor per group), so that a few
#: Yosys runs determine the factors; the ratios inside a group stay as derived from the hardware.
FEATURE_GROUPS = {
    "lanes": ("popcount_lanes", "pixel_lane_bits"),
    "constant weights": ("const_lanes",),
    "arith": ("acc_bits", "pixel_combine_bits", "score_bits", "argmax_bits", "mul_bits"),
    "mux": ("select_mux", "window_mux", "out_bits", "pool_inputs"),
    "rom": ("rom_logic", "ram_logic"),
    "fixed": ("mvu_control", "window_control", "collect_control"),
    "output slots": ("out_slot_bits",),
}


def fit_lut_coefficients(features: list[dict], measured: list[float], prior: dict | None = None,
                         family: str | None = None, strength: float = 0.1) -> dict[str, float]:
    """LUT coefficients fitted to Yosys' counts: each :data:`FEATURE_GROUPS` group of ``prior``
    (default COST_MODELS[family]) is multiplied by one factor, chosen by least squares on the relative
    error over the designs with a ridge of ``strength`` toward 1 (a group no design exercises keeps
    its prior); factors are kept ≥ 0.05."""
    prior = dict(prior or COST_MODELS[family or "ice40"])
    groups = [(g, [k for k in keys if k in prior]) for g, keys in FEATURE_GROUPS.items()]
    X = np.array([[sum(prior[k] * f.get(k, 0.0) for k in keys) for _, keys in groups] for f in features])
    meas = np.array(measured, dtype=float)
    y = meas - np.array([f.get("lutram", 0.0) for f in features])
    w = 1.0 / np.maximum(1.0, meas)
    A, b = X * w[:, None], y * w
    reg = strength * np.ones(len(groups))
    scale = np.linalg.lstsq(np.vstack([A, np.diag(reg)]), np.concatenate([b, reg]), rcond=None)[0]
    scale = np.maximum(scale, 0.05)
    out = dict(prior)
    for (_, keys), f in zip(groups, scale):
        for k in keys:
            out[k] = float(prior[k] * f)
    return out

