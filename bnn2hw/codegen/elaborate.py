"""The only bridge from the IR to Amaranth: folded, folded-out graph → hardware parameters → Network."""

from __future__ import annotations


from ..hw import MVUParams, Network
from ..ir import PIXELS, Graph, accumulator_range, ScoresDense, ThresholdDense
from ..passes.pack import channel_rom, signed_width, weight_rom

__all__ = ["layer_params", "build_network", "constant_widths"]


def _score_range(node: ScoresDense) -> tuple[int, int]:
    # raw score: the signed pixel sum itself, or s = 2p - N for bits (range ±N)
    raw_lo, raw_hi = accumulator_range(node.input_kind, node.in_features, node.in_bits)
    if node.input_kind != PIXELS:
        raw_lo = -raw_hi
    if not node.has_affine:
        return raw_lo, raw_hi
    scale, offset = node.scale.astype(object), node.offset.astype(object)
    ends = [s * r + o for s, o in zip(scale, offset) for r in (raw_lo, raw_hi)]
    return min(min(ends), raw_lo), max(max(ends), raw_hi)


def layer_params(graph: Graph) -> list[MVUParams]:
    params = []
    for node in graph.compute_nodes:
        f = graph.folding_of(node.name)
        common = dict(n_in=node.in_features, n_out=node.out_features, pe=f.pe, simd=f.simd,
                      pixel_bits=node.in_bits if node.input_kind == PIXELS else 0,
                      weight_rows=tuple(weight_rom(node.weight_bits, f.pe, f.simd)))
        if isinstance(node, ThresholdDense):
            lo, hi = int(node.thresholds.min()), int(node.thresholds.max())
            tw = signed_width(min(lo, 0), max(hi, 1))
            params.append(MVUParams(**common, threshold_rows=tuple(channel_rom(node.thresholds, f.pe, tw)),
                                    threshold_width=tw))
        else:
            lo, hi = _score_range(node)
            extra = {}
            if node.has_affine:
                sw = signed_width(int(node.scale.min()), int(node.scale.max()))
                ow = signed_width(int(node.offset.min()), int(node.offset.max()))
                extra = dict(scale_rows=tuple(channel_rom(node.scale, f.pe, sw)), scale_width=sw,
                             offset_rows=tuple(channel_rom(node.offset, f.pe, ow)), offset_width=ow)
            params.append(MVUParams(**common, scores=True, score_width=signed_width(lo, hi), **extra))
    return params


def constant_widths(params: list[MVUParams], graph: Graph) -> dict[str, int]:
    """Bits of per-channel constants of each layer, for the estimate."""
    return {node.name: (p.threshold_width + p.scale_width + p.offset_width)
            for node, p in zip(graph.compute_nodes, params)}


def build_network(graph: Graph) -> Network:
    return Network(layer_params(graph))
