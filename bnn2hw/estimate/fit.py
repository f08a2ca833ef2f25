"""Does a planned design fit a device, and the fastest folding that does.

* :func:`fit_check` — the estimate of the plan that will be built, against a device's capacity:
  :class:`~bnn2hw.errors.FitError` naming the first resource that does not fit (need, capacity,
  what to change), warnings for resources above the margin;
* :func:`refold_to_fit` — the fastest folding whose estimate fits (bnn2hw/estimate/autofold.py's
  search), or a FitError naming the resource that even the smallest design exceeds.
"""

from __future__ import annotations

import math

from ..errors import FitError
from ..ir import Folding, Graph
from ..ir.arith import weight_bits as layer_weight_bits
from ..plan import HardwareTarget, NetworkPlan
from .cost_model import CALIBRATION
from .families import FAMILIES, LUT_SIZE, capacity_from
from .autofold import search_folding
from .resources import estimate_resources

__all__ = ["fit_check", "refold_to_fit", "DEFAULT_MARGIN"]

#: Share of a device's LUTs and flip-flops a design may use (place and route needs room).
DEFAULT_MARGIN = 0.85

_RESOURCES = (("luts", "LUTs"), ("ffs", "flip-flops"), ("cells", "logic cells (LUTs + flip-flops)"),
              ("bram_blocks", "block RAMs"), ("dsp", "DSP blocks"))
#: Resources kept within the margin of the device (place and route needs room); the others may fill it.
_MARGINED = ("luts", "ffs", "cells")


def _suggest_luts(cap: float, margin: float) -> int:
    return int(cap * margin) // 10 * 10


def _board_name(capacity: dict, device: str | None) -> str:
    return capacity.get("name") or device or capacity.get("device") or "the device"


def _needs(est) -> dict:
    return {"luts": est.luts, "ffs": est.ffs, "cells": est.luts + est.ffs, "bram_blocks": est.bram_blocks,
            "dsp": est.dsp, "bram_bits": est.bram_bits}


def _fmt(value) -> str:
    return f"{value:,.1f}".rstrip("0").rstrip(".") if isinstance(value, float) else f"{value:,}"


def _overflow_message(resource: str, need, cap, board: str, family: str, est, margin: float) -> str:
    if resource == "luts":
        return (f"the design needs about {need:,} LUTs but the {board} has {cap:,}: fold it more with "
                f"--max-luts {_suggest_luts(cap, margin)} or a smaller --target-fps, or pick a larger board")
    if resource == "ffs":
        return (f"the design needs about {need:,} flip-flops but the {board} has {cap:,}; most of them are the "
                "layers' input buffers (inputs × bits, once or twice per layer) and output registers, which "
                "folding does not change: pick a larger board or a smaller model")
    if resource == "cells":
        return (f"the design needs about {need:,} logic cells (LUTs + flip-flops: an iCE40 cell holds one of "
                f"each) but the {board} has {cap:,}: fold it more with --max-luts "
                f"{_suggest_luts(cap - est.ffs, margin)} or a smaller --target-fps, or pick a larger board")
    if resource == "bram_blocks":
        return (f"the design needs {_fmt(need)} block RAMs ({FAMILIES[family].bram_cell}, {est.bram_bits:,} bits of ROM and "
                f"line buffers) but the {board} has {_fmt(cap)}: fold it more (--max-luts or a smaller "
                "--target-fps make the weight ROMs deeper and narrower, which fills the blocks better), or pick "
                "a larger board")
    if resource == "dsp":
        users = "; ".join(u.dsp_note for u in est.units if u.dsp)
        return (f"the design needs {need} DSP blocks ({FAMILIES[family].dsp_cell}) but the {board} has {cap}: {users}; "
                "fewer PE in those layers (a folding file, --max-luts or a smaller --target-fps) use fewer")
    return f"the design needs {need} {resource} but the {board} has {cap}"


def fit_check(plan: NetworkPlan, family: str, capacity, device: str | None = None,
              margin: float = DEFAULT_MARGIN) -> list[str]:
    """Check the design ``plan`` describes against ``capacity`` (a dict with "luts", "ffs",
    "bram_blocks", "dsp" and optionally "bram_bits" and "name", or a device name of
    estimate.families.DEVICES). Raises FitError naming the first resource that does not fit (need,
    capacity, what to change); returns warnings for resources above ``margin`` of the device."""
    cap = capacity_from(capacity)
    board = _board_name(cap, device)
    est = estimate_resources(plan, family)
    need = _needs(est)
    for key, _ in _RESOURCES:
        if key in cap and need[key] > cap[key]:
            raise FitError(_overflow_message(key, need[key], cap[key], board, family, est, margin),
                           key, need[key], cap[key])
    warnings = []
    for key, what in _RESOURCES:
        if key in cap and cap[key] and need[key] > margin * cap[key] and key in _MARGINED:
            warnings.append(f"the design uses about {100 * need[key] / cap[key]:.0f} % of the {board}'s {what} "
                            f"({_fmt(need[key])} of {_fmt(cap[key])}); place and route may fail or be slow above "
                            f"about {100 * margin:.0f} %")
    err = CALIBRATION.get(family, {}).get("lut_error_max")
    if warnings and err:
        warnings.append(f"the LUT estimate is within about ±{100 * err:.0f} % of Yosys on the calibration designs")
    return warnings


def refold_to_fit(graph: Graph, family: str, capacity, margin: float = DEFAULT_MARGIN,
                  device: str | None = None, class_index: bool = True,
                  hw_target: HardwareTarget | None = None) -> dict[str, Folding]:
    """The fastest folding whose estimate (for ``family``'s target) fits ``capacity``: LUTs and
    flip-flops within ``margin`` of the device, block RAMs and DSPs within the device. FitError if no
    folding does, naming the resource that the smallest design still exceeds (and whether the weights
    alone are too many). ``class_index``: as the plan that will be built (False inside a board top)."""
    cap = capacity_from(capacity)
    board = _board_name(cap, device)
    limits = {key: (margin if key in _MARGINED else 1) * cap.get(key, math.inf) for key, _ in _RESOURCES}

    def ok(est) -> bool:
        need = _needs(est)
        return all(need[k] <= v for k, v in limits.items())

    def badness(est) -> float:
        """How far over its worst limit a design is (need / limit)."""
        need = _needs(est)
        ratios = [need[k] / v if v > 0 else (math.inf if need[k] > 0 else 0.0)
                  for k, v in limits.items() if v != math.inf]
        return max(ratios, default=0.0)

    fold, smallest, cycles = search_folding(graph, family, ok, badness, class_index=class_index, hw_target=hw_target)
    if fold is not None:
        return fold
    need = _needs(smallest)
    weight_bits = sum(layer_weight_bits(n) for n in graph.compute_nodes)
    lut_bits = int(cap.get("luts", 0) * margin) * (1 << LUT_SIZE[family])
    bram_bits = cap.get("bram_bits") or 0
    if bram_bits and weight_bits > bram_bits + lut_bits:
        raise FitError(f"no folding fits the {board}: the weights alone are {weight_bits:,} bits, more than its "
                       f"{bram_bits:,} bits of block RAM plus the about {lut_bits:,} bits its LUTs could hold as "
                       "logic; use a smaller model or a larger board", "bram_bits", weight_bits, bram_bits + lut_bits)
    for key, what in _RESOURCES:
        if need[key] > limits[key]:
            shown = cap.get(key)
            extra = f" ({100 * margin:.0f} % of {cap[key]:,} usable)" if key in _MARGINED else ""
            raise FitError(f"no folding fits the {board}: even the smallest design found ({cycles:,} cycles "
                           f"per frame) needs about {_fmt(need[key])} {what}, and the {board} has {_fmt(shown)}"
                           f"{extra}; use a smaller model or a larger board", key, need[key], shown)
    raise FitError(f"no folding fits the {board}", None, None, None)      # pragma: no cover - ok() was False
