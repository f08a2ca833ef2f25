"""Automatic folding (PE, SIMD per layer) for a frame rate or a LUT budget, and the check that a design fits.

The rule is FINN's ``SetFolding``: for a target initiation interval T (cycles per frame), every layer
gets the smallest parallelism whose cycles per frame, positions·NF·SF (NF = ⌈out/PE⌉, SF = ⌈in/SIMD⌉),
are at most T. For each achievable SF the fewest SIMD lanes that give it are taken and the fewest PE
that then meet T; SIMD therefore grows first (up to the input width), PE only once SF = 1 cannot
meet T alone. Among those candidates, and the same with PE and SIMD rounded up to divisors of the
layer's widths (no padded lanes), the one with the smallest estimated cost wins: LUTs of the layer's
unit plus its block RAMs and DSPs in LUT equivalents (bnn2hw.estimate, for ``family``'s target); a divisor is taken
when it costs no more, a non-divisor only when it is cheaper. Stream units with a fixed rate (sliding
windows, pools, the Flatten collector: ``NetworkPlan.stream_bounds``) bound T from below, and so does a
fully unrolled layer (one cycle per output position).

* :func:`fold_for_cycles` / :func:`fold_for_fps` — the cheapest folding that reaches a rate;
* :func:`fold_for_budget` — the fastest folding whose estimated LUTs stay within a budget (binary
  search over the distinct cycle counts the layers can have);
(The fit check and the re-folding that uses this search are bnn2hw/estimate/fit.py's.)

Every estimate is for the family's hardware target (bnn2hw.estimate.families), as a board build
generates it, and costs a candidate through its hardware plan (bnn2hw.plan.LayerPlan).

The result is a ``{layer: Folding}`` dict, which :func:`folding_file_dict` turns into an editable
folding file (``{"_comment": …, "target": …, "layers": {"dense0": {"pe": 4, "simd": 16}}}``) that
``passes.folding.load_folding_file`` reads back (it takes the ``"layers"`` object and ignores the rest).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import FoldingError
from ..ir import Folding, Graph
from ..ir.arith import lane_cost, positions
from ..plan import HardwareTarget, LayerPlan, plan_network
from .families import DEFAULT_FAMILY, FAMILIES, family as family_info
from .resources import estimate_resources, layer_unit

__all__ = ["fold_for_cycles", "fold_for_fps", "fold_for_budget", "search_folding", "stream_bounds",
           "folding_cycles", "folding_lanes", "folding_file_dict", "write_folding_file", "COST_TOLERANCE",
           "LANE_SLACK"]

#: Candidates with more than LANE_SLACK × the fewest lanes (+ 16) are not costed.
LANE_SLACK = 4.0
#: Relative cost difference below which two foldings of a layer count as equally cheap.
COST_TOLERANCE = 0.02


# ---- cycles ----

def stream_bounds(graph: Graph) -> tuple[tuple[str, int], ...]:
    """(label, cycles per frame) of the stream units with a fixed rate, as the plan labels them:
    "<conv> window", the pool's name, "flatten". Independent of the folding."""
    return plan_network(graph, folding={n.name: Folding(1, 1) for n in graph.compute_nodes}).stream_bounds


def folding_cycles(graph: Graph, folding: dict) -> int:
    """Initiation interval of ``graph`` with ``folding``: the slowest layer or stream unit."""
    return plan_network(graph, folding=folding).cycles_per_frame


def folding_lanes(graph: Graph, folding: dict) -> int:
    """Σ PE·SIMD over the layers, a pixel lane counting its bit width (ir.arith.lane_cost)."""
    return sum(lane_cost(n, folding[n.name].pe, folding[n.name].simd) for n in graph.compute_nodes)


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

    def __init__(self, graph: Graph, family: str, hw_target: HardwareTarget | None = None):
        self.graph, self.family = graph, family
        self.info = family_info(family)
        self.hw_target = hw_target or self.info.target
        self.nodes = graph.compute_nodes
        self._simd = {n.name: _parallel_values(n.in_features) for n in self.nodes}
        self._pe = {n.name: _parallel_values(n.out_features) for n in self.nodes}
        self._cost: dict[tuple, float] = {}

    def cost(self, node, pe: int, simd: int) -> float:
        key = (node.name, pe, simd)
        if key not in self._cost:
            unit = layer_unit(LayerPlan(node, pe, simd, self.hw_target), self.family)
            self._cost[key] = (unit.luts + self.info.bram_lut_equivalent * unit.bram_blocks
                               + self.info.dsp_lut_equivalent * unit.dsp)
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


def fold_for_cycles(graph: Graph, target_cycles: int, family: str | None = None,
                    hw_target: HardwareTarget | None = None) -> dict[str, Folding]:
    """The cheapest folding with every layer's positions·NF·SF ≤ ``target_cycles`` (see the module
    docstring); ``family`` picks the cost model (default :data:`DEFAULT_FAMILY`), ``hw_target`` the
    units' shape (default: the family's, bnn2hw.estimate.families.Family.target). Raises FoldingError
    naming the layer or stream unit that cannot be that fast, with its minimum cycles."""
    target = int(target_cycles)
    need, unit, why = _lower_bound(graph)
    if target < need:
        raise FoldingError(f"a target of {target:,} cycles per frame is impossible: {unit} needs at least "
                           f"{_cycles(need)} per frame ({why}); ask for {_cycles(need)} or more")
    return _Chooser(graph, family or DEFAULT_FAMILY, hw_target).fold(target)


def fold_for_fps(graph: Graph, fps: float, clock_mhz: float, family: str | None = None,
                 hw_target: HardwareTarget | None = None) -> dict[str, Folding]:
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
    return fold_for_cycles(graph, target, family, hw_target)


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


def search_folding(graph: Graph, family: str, ok, badness, class_index: bool = True,
                   hw_target: HardwareTarget | None = None) -> tuple[dict | None, object, int]:
    """The folding of the smallest candidate target whose estimate (for ``family``'s target; without a
    class index if ``class_index`` is False, as inside a board top) satisfies ``ok`` (binary search;
    the estimate is nearly monotone in the target). Without one: (None, the evaluated estimate with
    the least ``badness``, its target)."""
    chooser = _Chooser(graph, family, hw_target)
    lo = _lower_bound(graph)[0]
    targets = _candidate_targets(graph, lo)
    cache: dict[int, tuple] = {}

    def at(i: int):
        if i not in cache:
            fold = chooser.fold(int(targets[i]))
            plan = plan_network(graph, chooser.hw_target, folding=fold, class_index=class_index)
            cache[i] = (fold, estimate_resources(plan, family))
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


def fold_for_budget(graph: Graph, max_luts: int, family: str, hw_target: HardwareTarget | None = None) -> dict[str, Folding]:
    """The fastest folding whose estimated LUTs (bnn2hw.estimate for ``family``) are at most
    ``max_luts``; FoldingError with the LUTs of the smallest design if none is."""
    if family not in FAMILIES:
        raise FoldingError(f"unknown FPGA family {family!r}; choose one of {', '.join(FAMILIES)}")
    fold, smallest, cycles = search_folding(graph, family, lambda est: est.luts <= max_luts, lambda est: est.luts,
                                            hw_target=hw_target)
    if fold is None:
        raise FoldingError(f"no folding fits in {max_luts:,} LUTs ({family}): the smallest design found "
                           f"({cycles:,} cycles per frame) needs about {smallest.luts:,} LUTs; raise --max-luts to "
                           f"at least {smallest.luts:,} or use a smaller model")
    return fold


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
                                 "bnn2hw (bnn2hw/estimate/autofold.py); edit and pass back with --folding"),
            "target": info,
            "layers": {name: {"pe": f.pe, "simd": f.simd} for name, f in folding.items()}}


def write_folding_file(path: str | Path, folding: dict, graph: Graph | None = None, note: str | None = None,
                       **target) -> Path:
    path = Path(path)
    path.write_text(json.dumps(folding_file_dict(folding, graph, note, **target), indent=2) + "\n")
    return path
