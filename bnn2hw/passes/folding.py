"""Choose PE (output channels per cycle) and SIMD (inputs per cycle) for every layer.

The default is FINN's balancing idea in its simplest form: start fully folded (PE = SIMD = 1) and keep
doubling the parallelism of the slowest layer (SIMD first, then PE) while the total lane budget allows.
A JSON folding file (docs/folding.md) overrides any layer: ``{"dense0": {"pe": 4, "simd": 16}}``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import FoldingError
from ..ir import Folding, Graph, validate
from ..ir.arith import lane_cost, layer_cycles

__all__ = ["default_folding", "apply_folding", "load_folding_file", "DEFAULT_LANE_BUDGET"]

#: Budget of binary XNOR lanes (PE × SIMD, a pixel lane counting as its bit width).
DEFAULT_LANE_BUDGET = 256


def default_folding(graph: Graph, lane_budget: int = DEFAULT_LANE_BUDGET) -> dict[str, Folding]:
    nodes = graph.compute_nodes
    fold = {n.name: Folding(1, 1) for n in nodes}
    cycles = lambda n: layer_cycles(n, fold[n.name].pe, fold[n.name].simd)
    while True:
        slowest = max(nodes, key=cycles)
        f = fold[slowest.name]
        if f.simd < slowest.in_features:
            grown = Folding(f.pe, min(2 * f.simd, slowest.in_features))
        elif f.pe < slowest.out_features:
            grown = Folding(min(2 * f.pe, slowest.out_features), f.simd)
        else:
            break
        trial = {**fold, slowest.name: grown}
        total = sum(lane_cost(n, trial[n.name].pe, trial[n.name].simd) for n in nodes)
        if total > lane_budget:
            break
        fold[slowest.name] = grown
    return fold


def load_folding_file(path: str | Path) -> dict[str, dict]:
    path = Path(path)
    if not path.is_file():
        raise FoldingError(f"folding file '{path}' does not exist; check the path")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FoldingError(f"folding file '{path}' is not valid JSON ({e}); "
                           'write it as {"dense0": {"pe": 4, "simd": 16}}') from None
    if isinstance(raw, dict) and isinstance(raw.get("layers"), dict):
        raw = raw["layers"]
    if not isinstance(raw, dict):
        raise FoldingError(f"folding file '{path}' must hold a JSON object mapping layer names to "
                           '{"pe": N, "simd": N}')
    return raw


def apply_folding(graph: Graph, overrides: dict | None = None, lane_budget: int = DEFAULT_LANE_BUDGET) -> Graph:
    """Attach a folding to every layer: the default, overridden per layer by ``overrides``."""
    nodes = {n.name: n for n in graph.compute_nodes}
    fold = default_folding(graph, lane_budget)
    for name, spec in (overrides or {}).items():
        if name not in nodes:
            raise FoldingError(f"folding names layer {name!r}, but the model's layers are "
                               f"{', '.join(nodes)}; use one of those names")
        if not isinstance(spec, dict):
            raise FoldingError(f"folding of {name} must be an object like {{\"pe\": 4, \"simd\": 16}}, not {spec!r}")
        values = {k.lower(): v for k, v in spec.items()}
        unknown = set(values) - {"pe", "simd"}
        if unknown:
            raise FoldingError(f"folding of {name} has unknown keys {sorted(unknown)}; only \"pe\" and \"simd\" exist")
        node = nodes[name]
        pe, simd = values.get("pe", fold[name].pe), values.get("simd", fold[name].simd)
        for key, value, limit, what in (("pe", pe, node.out_features, "outputs"),
                                        ("simd", simd, node.in_features, "inputs")):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FoldingError(f"{key.upper()} of {name} must be a positive integer, not {value!r}")
            if value > limit:
                raise FoldingError(f"{key.upper()} of {name} is {value}, more than its {limit} {what}; "
                                   f"use at most {limit}")
        fold[name] = Folding(pe, simd)
    return validate(graph.replace(folding=tuple((n, fold[n]) for n in nodes)))
