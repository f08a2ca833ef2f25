"""Automatic folding (PE, SIMD per layer) for a frame rate or a LUT budget, and the check that a design fits.

The rule is FINN's ``SetFolding``: for a target initiation interval T (cycles per frame), every layer
gets the smallest parallelism whose cycles per frame, positions·NF·SF (NF = ⌈out/PE⌉, SF = ⌈in/SIMD⌉),
are at most T. For each achievable SF the fewest SIMD lanes that give it are taken and the fewest PE
that then meet T; SIMD therefore grows first (up to the input width), PE only once SF = 1 cannot
meet T alone. Among those candidates, and the same with PE and SIMD rounded up to divisors of the
layer's widths (no padded lanes), the one with the smallest estimated cost wins: LUTs of the layer's
unit plus its block RAMs and DSPs in LUT equivalents (passes/resources.py, for ``family``); a divisor is taken
when it costs no more, a non-divisor only when it is cheaper. Stream units with a fixed rate (sliding
windows, pools, the Flatten collector: ``codegen.stage_bounds``) bound T from below, and so does a
fully unrolled layer (one cycle per output position).

* :func:`fold_for_cycles` / :func:`fold_for_fps` — the cheapest folding that reaches a rate;
* :func:`fold_for_budget` — the fastest folding whose estimated LUTs stay within a budget (binary
  search over the distinct cycle counts the layers can have);
* :func:`fit_check` / :func:`refold_to_fit` — does a folded design fit a device, and the fastest
  folding that does (:class:`~bnn2hw.errors.FitError` when none can).

Every estimate is for the family's hardware target (hw/target.py), as a board build generates it.

The result is a ``{layer: Folding}`` dict, which :func:`folding_file_dict` turns into an editable
folding file (``{"_comment": …, "target": …, "layers": {"dense0": {"pe": 4, "simd": 16}}}``) that
``passes.folding.load_folding_file`` reads back (it takes the ``"layers"`` object and ignores the rest).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import FitError, FoldingError
from ..ir import PIXELS, Folding, Graph, MaxPoolBits, ThresholdConv
from . import resources
from .folding import positions
from .pack import folds

__all__ = ["fold_for_cycles", "fold_for_fps", "fold_for_budget", "fit_check", "refold_to_fit", "stream_bounds",
           "folding_cycles", "folding_lanes", "folding_file_dict", "write_folding_file", "DEFAULT_FAMILY",
           "BRAM_LUT_EQUIVALENT", "DSP_LUT_EQUIVALENT", "DEFAULT_MARGIN", "COST_TOLERANCE", "LANE_SLACK"]

#: Family whose cost model picks between foldings of equal speed when none is given.
DEFAULT_FAMILY = "ice40"
#: LUTs one block RAM counts as when foldings are compared: the LUT/block ratio of a typical part
#: (iCE40 UP5K 5,280/30, ECP5-85F 83,640/208, XC7Z020 53,200/140).
BRAM_LUT_EQUIVALENT = {"ice40": 176.0, "ecp5": 402.0, "xilinx": 380.0}
#: LUTs one DSP block counts as (UP5K 5,280/8, ECP5-85F 83,640/156, XC7Z020 53,200/220): a pixel layer's
#: PEs each take one, and the UP5K has only 8.
DSP_LUT_EQUIVALENT = {"ice40": 660.0, "ecp5": 536.0, "xilinx": 242.0}
#: Candidates with more than LANE_SLACK × the fewest lanes (+ 16) are not costed.
LANE_SLACK = 4.0
#: Relative cost difference below which two foldings of a layer count as equally cheap.
COST_TOLERANCE = 0.02
#: Share of a device's LUTs and flip-flops a design may use (place and route needs room).
DEFAULT_MARGIN = 0.85


# ---- cycles ----

def stream_bounds(graph: Graph) -> list[tuple[str, int]]:
    """(label, cycles per frame) of the stream units with a fixed rate, labelled as codegen.stage_bounds
    labels them: "<conv> window", the pool's name, "flatten". Independent of the folding."""
    from ..codegen.elaborate import DECOUPLING_ROWS, window_params
    from ..hw import MaxPoolParams
    out, image = [], None
    for node in graph.nodes:
        if isinstance(node, ThresholdConv):
            out.append((f"{node.name} window", window_params(node).cycles_per_frame))
            image = node.window.out_hw + (node.out_features,)
        elif isinstance(node, MaxPoolBits):
            (k, _), (s, _) = node.kernel, node.stride
            pool = MaxPoolParams(*node.in_shape, kernel=k, stride=s, extra_rows=DECOUPLING_ROWS)
            out.append((node.name, pool.cycles_per_frame))
            image = node.out_hw + (node.in_shape[2],)
        elif hasattr(node, "weight_bits") and image is not None:
            out.append(("flatten", image[0] * image[1]))
            image = None
    return out


def _layer_cycles(node, f: Folding) -> int:
    return positions(node) * folds(node.out_features, f.pe) * folds(node.in_features, f.simd)


def folding_cycles(graph: Graph, folding: dict) -> int:
    """Initiation interval of ``graph`` with ``folding``: the slowest layer or stream unit."""
    layers = [_layer_cycles(n, folding[n.name]) for n in graph.compute_nodes]
    return max(layers + [c for _, c in stream_bounds(graph)])


def folding_lanes(graph: Graph, folding: dict) -> int:
    """Σ PE·SIMD over the layers, a pixel lane counting its bit width (passes/folding.py's lane cost)."""
    return sum(folding[n.name].pe * folding[n.name].simd * (n.in_bits if n.input_kind == PIXELS else 1)
               for n in graph.compute_nodes)


def _parallel_values(n: int) -> list[tuple[int, int]]:
    """Minimal p per fold count (ascending p) — computed in O(√n) steps."""
    values, p = [], 1
    while p <= n:
        f = -(-n // p)
        values.append((p, f))
        if f == 1:
            break
        p = -(-n // (f - 1))          # the smallest p with a smaller fold count
    return values


def _divisor_at_least(n: int, p: int) -> int:
    for d in range(p, n + 1):
        if n % d == 0:
            return d
    return n


class _Chooser:
    """Per-layer candidate foldings and their cost, cached across targets."""

    def __init__(self, graph: Graph, family: str):
        self.graph, self.family = graph, family
        self.nodes = graph.compute_nodes
        self._simd = {n.name: _parallel_values(n.in_features) for n in self.nodes}
        self._pe = {n.name: _parallel_values(n.out_features) for n in self.nodes}
        self._cost: dict[tuple, float] = {}

    def cost(self, node, pe: int, simd: int) -> float:
        key = (node.name, pe, simd)
        if key not in self._cost:
            unit = resources.layer_unit(node, pe, simd, self.family)
            self._cost[key] = (unit.luts + BRAM_LUT_EQUIVALENT[self.family] * unit.bram_blocks
                               + DSP_LUT_EQUIVALENT[self.family] * unit.dsp)
        return self._cost[key]

    def candidates(self, node, k_max: int) -> list[Folding]:
        """Foldings with NF·SF ≤ k_max: for each achievable SF the fewest SIMD, then the fewest PE."""
        n_in, n_out = node.in_features, node.out_features
        pes = self._pe[node.name]
        out = []
        for simd, sf in self._simd[node.name]:
            if sf > k_max:
                continue
            nf_max = k_max // sf
            pe = next(p for p, nf in pes if nf <= nf_max)
            out.append(Folding(pe, simd))
            if pe == 1:
                break          # more SIMD would only add lanes
        extra = []
        for f in out:
            d = Folding(_divisor_at_least(n_out, f.pe), _divisor_at_least(n_in, f.simd))
            if d != f:
                extra.append(d)
        return out + extra

    def choose(self, node, k_max: int) -> Folding:
        cands = self.candidates(node, k_max)
        fewest = min(c.pe * c.simd for c in cands)
        # candidates with far more lanes than the fewest are never cheaper; the rest compete on cost
        # (lanes alone would miss the per-PE cost: accumulators, result registers, a pixel PE's DSP)
        close = [c for c in cands if c.pe * c.simd <= LANE_SLACK * fewest + 16] or cands
        costs = {c: self.cost(node, c.pe, c.simd) for c in close}
        best = min(costs.values())
        # within the model's resolution (2 %) costs are equal: then no padded lanes, then SIMD first
        equal = [c for c in close if costs[c] <= best * (1 + COST_TOLERANCE) + 1]
        n_in, n_out = node.in_features, node.out_features
        waste = lambda c: (n_out % c.pe != 0) + (n_in % c.simd != 0)
        return min(equal, key=lambda c: (waste(c), c.pe, c.pe * c.simd, costs[c]))

    def fold(self, target: int) -> dict[str, Folding]:
        return {n.name: self.choose(n, target // positions(n)) for n in self.nodes}


def _lower_bound(graph: Graph) -> tuple[int, str, str]:
    """(cycles, unit, why) of the fastest any folding can be."""
    best = (0, "", "")
    for n in graph.compute_nodes:
        p = positions(n)
        if p > best[0]:
            what = (f"one cycle per output position ({p}) even fully unrolled (PE = {n.out_features}, "
                    f"SIMD = {n.in_features})" if p > 1 else "one cycle even fully unrolled")
            best = (p, n.name, what)
    for label, c in stream_bounds(graph):
        if c > best[0]:
            kind = "the Flatten collector takes one pixel per cycle" if label == "flatten" else \
                "its line buffer takes one pixel (or scans one padded column) per cycle"
            best = (c, label, kind)
    return best


def _cycles(n: int) -> str:
    return f"{n:,} cycle" + ("" if n == 1 else "s")


def fold_for_cycles(graph: Graph, target_cycles: int, family: str | None = None) -> dict[str, Folding]:
    """The cheapest folding with every layer's positions·NF·SF ≤ ``target_cycles`` (see the module
    docstring); ``family`` picks the cost model (default :data:`DEFAULT_FAMILY`). Raises FoldingError
    naming the layer or stream unit that cannot be that fast, with its minimum cycles."""
    target = int(target_cycles)
    need, unit, why = _lower_bound(graph)
    if target < need:
        raise FoldingError(f"a target of {target:,} cycles per frame is impossible: {unit} needs at least "
                           f"{_cycles(need)} per frame ({why}); ask for {_cycles(need)} or more")
    return _Chooser(graph, family or DEFAULT_FAMILY).fold(target)


def fold_for_fps(graph: Graph, fps: float, clock_mhz: float, family: str | None = None) -> dict[str, Folding]:
    """fold_for_cycles(⌊clock_mhz·10⁶ / fps⌋); the error of an impossible rate names the highest possible."""
    if not fps > 0 or not clock_mhz > 0:
        raise FoldingError(f"the target frame rate ({fps!r}) and clock ({clock_mhz!r} MHz) must be positive")
    target = math.floor(clock_mhz * 1e6 / fps)
    need, unit, why = _lower_bound(graph)
    if target < need:
        best = clock_mhz * 1e6 / need
        raise FoldingError(f"{fps:,.0f} frames/s at {clock_mhz:g} MHz leaves {target:,} cycles per frame, but {unit} "
                           f"needs at least {need:,} ({why}); at {clock_mhz:g} MHz this model reaches at most "
                           f"{best:,.0f} frames/s: ask for that or less, or a faster clock")
    return fold_for_cycles(graph, target, family)


# ---- search over targets ----

def _candidate_targets(graph: Graph, lo: int) -> np.ndarray:
    """Every distinct cycle count ≥ ``lo`` one layer can have (positions·NF·SF), sorted, plus ``lo``."""
    values = [np.array([lo], dtype=np.int64)]
    for n in graph.compute_nodes:
        nf = np.array([f for _, f in _parallel_values(n.out_features)], dtype=np.int64)
        sf = np.array([f for _, f in _parallel_values(n.in_features)], dtype=np.int64)
        values.append((positions(n) * np.outer(nf, sf)).ravel())
    all_values = np.unique(np.concatenate(values))
    return all_values[all_values >= lo]


def _search(graph: Graph, family: str, ok, badness) -> tuple[dict | None, object, int]:
    """The folding of the smallest candidate target whose estimate satisfies ``ok`` (binary search; the
    estimate is nearly monotone in the target). Without one: (None, the evaluated estimate with the
    least ``badness``, its target)."""
    chooser = _Chooser(graph, family)
    lo = _lower_bound(graph)[0]
    targets = _candidate_targets(graph, lo)
    cache: dict[int, tuple] = {}

    def at(i: int):
        if i not in cache:
            fold = chooser.fold(int(targets[i]))
            cache[i] = (fold, resources.estimate_resources(graph, family, fold))
        return cache[i]

    last = len(targets) - 1
    if ok(at(last)[1]):
        hi = last
    else:
        # not monotone near the slowest targets: try a coarse grid before giving up
        grid = sorted({int(round(x)) - 1 for x in np.geomspace(1, last + 1, num=min(last + 1, 32))})
        feasible = [i for i in grid if ok(at(i)[1])]
        if not feasible:
            i = min(cache, key=lambda i: badness(cache[i][1]))
            return None, cache[i][1], int(targets[i])
        hi = feasible[0]
    lo_i = -1                        # invariant: targets[hi] fits, targets[lo_i] does not (or is below all)
    while hi - lo_i > 1:
        mid = (lo_i + hi) // 2
        if ok(at(mid)[1]):
            hi = mid
        else:
            lo_i = mid
    return at(hi)[0], at(last)[1], int(targets[hi])


def fold_for_budget(graph: Graph, max_luts: int, family: str) -> dict[str, Folding]:
    """The fastest folding whose estimated LUTs (resources.estimate_resources for ``family``) are at
    most ``max_luts``; FoldingError with the LUTs of the smallest design if none is."""
    if family not in resources.FAMILIES:
        raise FoldingError(f"unknown FPGA family {family!r}; choose one of {', '.join(resources.FAMILIES)}")
    fold, smallest, cycles = _search(graph, family, lambda est: est.luts <= max_luts, lambda est: est.luts)
    if fold is None:
        raise FoldingError(f"no folding fits in {max_luts:,} LUTs ({family}): the smallest design found "
                           f"({cycles:,} cycles per frame) needs about {smallest.luts:,} LUTs; raise --max-luts to "
                           f"at least {smallest.luts:,} or use a smaller model")
    return fold


# ---- fit ----

_RESOURCES = (("luts", "LUTs"), ("ffs", "flip-flops"), ("cells", "logic cells (LUTs + flip-flops)"),
              ("bram_blocks", "block RAMs"), ("dsp", "DSP blocks"))
#: Resources kept within the margin of the device (place and route needs room); the others may fill it.
_MARGINED = ("luts", "ffs", "cells")
_BRAM_CELL = {"ice40": "SB_RAM40_4K", "ecp5": "DP16KD", "xilinx": "RAMB36"}
_DSP_CELL = {"ice40": "SB_MAC16", "ecp5": "MULT18X18D", "xilinx": "DSP48E1"}


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
        return (f"the design needs {_fmt(need)} block RAMs ({_BRAM_CELL[family]}, {est.bram_bits:,} bits of ROM and "
                f"line buffers) but the {board} has {_fmt(cap)}: fold it more (--max-luts or a smaller "
                "--target-fps make the weight ROMs deeper and narrower, which fills the blocks better), or pick "
                "a larger board")
    if resource == "dsp":
        users = "; ".join(u.dsp_note for u in est.units if u.dsp)
        return (f"the design needs {need} DSP blocks ({_DSP_CELL[family]}) but the {board} has {cap}: {users}; "
                "fewer PE in those layers (a folding file, --max-luts or a smaller --target-fps) use fewer")
    return f"the design needs {need} {resource} but the {board} has {cap}"


def fit_check(graph: Graph, family: str, capacity, device: str | None = None, margin: float = DEFAULT_MARGIN,
              folding: dict | None = None) -> list[str]:
    """Check the folded ``graph`` (or ``folding``) against ``capacity`` (a dict with "luts", "ffs",
    "bram_blocks", "dsp" and optionally "bram_bits" and "name", or a device name of resources.DEVICES).
    Raises FitError naming the first resource that does not fit (need, capacity, what to change);
    returns warnings for resources above ``margin`` of the device."""
    cap = resources.capacity_from(capacity)
    board = _board_name(cap, device)
    est = resources.estimate_resources(graph, family, folding)
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
    err = resources.CALIBRATION.get(family, {}).get("lut_error_max")
    if warnings and err:
        warnings.append(f"the LUT estimate is within about ±{100 * err:.0f} % of Yosys on the calibration designs")
    return warnings


def refold_to_fit(graph: Graph, family: str, capacity, margin: float = DEFAULT_MARGIN,
                  device: str | None = None) -> dict[str, Folding]:
    """The fastest folding whose estimate fits ``capacity``: LUTs and flip-flops within ``margin`` of the
    device, block RAMs and DSPs within the device. FitError if no folding does, naming the resource
    that the smallest design still exceeds (and whether the weights alone are too many)."""
    cap = resources.capacity_from(capacity)
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

    fold, smallest, cycles = _search(graph, family, ok, badness)
    if fold is not None:
        return fold
    need = _needs(smallest)
    weight_bits = sum(n.in_features * n.out_features for n in graph.compute_nodes)
    lut_bits = int(cap.get("luts", 0) * margin) * (1 << resources.LUT_SIZE[family])
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


# ---- folding files ----

def folding_file_dict(folding: dict, graph: Graph | None = None, note: str | None = None, **target) -> dict:
    """An editable folding file for ``folding``: "_comment" (how it was chosen), "target" (e.g.
    target_fps, clock_mhz, max_luts, family, cycles_per_frame) and "layers". load_folding_file reads
    the "layers" object and ignores the other keys."""
    info = {k: v for k, v in target.items() if v is not None}
    if graph is not None:
        info.setdefault("cycles_per_frame", folding_cycles(graph, folding))
        info.setdefault("lanes", folding_lanes(graph, folding))
    return {"_comment": note or ("PE (output channels per cycle) and SIMD (inputs per cycle) per layer, chosen by "
                                 "bnn2hw (passes/autofold.py); edit and pass back with --folding"),
            "target": info,
            "layers": {name: {"pe": f.pe, "simd": f.simd} for name, f in folding.items()}}


def write_folding_file(path: str | Path, folding: dict, graph: Graph | None = None, note: str | None = None,
                       **target) -> Path:
    path = Path(path)
    path.write_text(json.dumps(folding_file_dict(folding, graph, note, **target), indent=2) + "\n")
    return path
