"""The only bridge from the IR to Amaranth: folded, folded-out graph → hardware parameters → Network."""

from __future__ import annotations


from ..hw import CollectParams, ConvParams, MaxPoolParams, MVUParams, Network, WindowParams
from ..hw.target import HardwareTarget, target_for
from ..ir import PIXELS, Graph, MaxPoolBits, ScoresDense, ThresholdConv, ThresholdDense, accumulator_range
from ..passes.pack import channel_rom, signed_width, weight_rom

__all__ = ["layer_params", "stage_params", "stage_bounds", "build_network", "constant_widths"]


def score_range(node: ScoresDense) -> tuple[int, int]:
    """Range of a class score as the hardware computes it: the raw score (the signed pixel sum, or
    s = 2p − N for bits, range ±N), then scale·raw + offset when the layer is affine."""
    raw_lo, raw_hi = accumulator_range(node.input_kind, node.in_features, node.in_bits)
    if node.input_kind != PIXELS:
        raw_lo = -raw_hi
    if not node.has_affine:
        return raw_lo, raw_hi
    scale, offset = node.scale.astype(object), node.offset.astype(object)
    ends = [s * r + o for s, o in zip(scale, offset) for r in (raw_lo, raw_hi)]
    return min(min(ends), raw_lo), max(max(ends), raw_hi)


def layer_params(graph: Graph, target: HardwareTarget | str | None = None) -> list[MVUParams]:
    """One MVUParams per compute layer, in graph order. ``target`` (hw/target.py, a HardwareTarget or
    its name; None: the generic shape) sets the popcount shape, pipeline stages and ROM styles; it
    changes no result and no initiation interval (latency: ``MVUParams.latency_cycles``)."""
    target = target_for(target)
    params = []
    for node in graph.compute_nodes:
        f = graph.folding_of(node.name)
        nf, sf = -(-node.out_features // f.pe), -(-node.in_features // f.simd)
        common = dict(n_in=node.in_features, n_out=node.out_features, pe=f.pe, simd=f.simd,
                      pixel_bits=node.in_bits if node.input_kind == PIXELS else 0,
                      weight_rows=tuple(weight_rom(node.weight_bits, f.pe, f.simd)))
        common.update(target.mvu_options(nf * sf * f.pe * f.simd, 0, weight_rows=nf * sf))  # constants: below
        if isinstance(node, ThresholdDense):
            lo, hi = int(node.thresholds.min()), int(node.thresholds.max())
            tw = signed_width(min(lo, 0), max(hi, 1))
            common["const_rom_style"] = target.rom_style(nf * f.pe * (tw + 1), nf)
            params.append(MVUParams(**common, threshold_rows=tuple(channel_rom(node.thresholds, f.pe, tw)),
                                    threshold_width=tw))
        else:
            lo, hi = score_range(node)
            extra = {}
            if node.has_affine:
                sw = signed_width(int(node.scale.min()), int(node.scale.max()))
                ow = signed_width(int(node.offset.min()), int(node.offset.max()))
                extra = dict(scale_rows=tuple(channel_rom(node.scale, f.pe, sw)), scale_width=sw,
                             offset_rows=tuple(channel_rom(node.offset, f.pe, ow)), offset_width=ow,
                             const_rom_style=target.rom_style(nf * f.pe * max(sw, ow), nf))
            params.append(MVUParams(**{**common, **extra}, scores=True, score_width=signed_width(lo, hi)))
    return params


def constant_widths(params: list[MVUParams], graph: Graph) -> dict[str, int]:
    """Bits of per-channel constants of each layer, for the estimate."""
    return {node.name: (p.threshold_width + p.scale_width + p.offset_width)
            for node, p in zip(graph.compute_nodes, params)}


#: Line-buffer rows beyond each window unit's own need: the FIFO between two image stages. Without it
#: the row bursts of a producer and the row reads of its consumer can interlock and cost throughput
#: (2 of 16 random conv models ran 1.5 % and 4 % slower than their slowest stage); with one spare row
#: all 30 run at their estimate (bench/conv_timing.py, tests/test_conv_hw.py). Correctness never needs it.
DECOUPLING_ROWS = 1


def window_params(node: ThresholdConv) -> WindowParams:
    win = node.window
    h, w, c = win.in_shape
    return WindowParams(h, w, c, elem_bits=node.in_bits if node.input_kind == PIXELS else 1, kernel=win.kernel,
                        stride=win.stride, padding=win.padding, pad_value=win.pad_code, extra_rows=DECOUPLING_ROWS)


def stage_params(graph: Graph, mvus: list[MVUParams] | None = None,
                 target: HardwareTarget | str | None = None) -> list:
    """The network's stages in stream order: convolutions (window + MVU), pools, the Flatten between
    the image part and the dense part (a collect unit), and dense MVUs (``mvus``: layer_params(graph,
    target) if not already built)."""
    mvus = iter(layer_params(graph, target) if mvus is None else mvus)
    stages, image = [], None        # image: (H, W, C) while the stream carries pixels
    for node in graph.nodes:
        if isinstance(node, ThresholdConv):
            stages.append(ConvParams(window_params(node), next(mvus)))
            image = node.window.out_hw + (node.out_features,)
        elif isinstance(node, MaxPoolBits):
            (k, _), (s, _) = node.kernel, node.stride
            stages.append(MaxPoolParams(*node.in_shape, kernel=k, stride=s, extra_rows=DECOUPLING_ROWS,
                                        and_mask=tuple(bool(b) for b in node.and_mask)))
            image = node.out_hw + (node.in_shape[2],)
        else:
            if image is not None:
                stages.append(CollectParams(pixels=image[0] * image[1], pixel_bits=image[2]))
                image = None
            stages.append(next(mvus))
    return stages


def stage_bounds(graph: Graph, stages: list | None = None) -> list[tuple[str, int]]:
    """(label, cycles per frame) of the stream units besides the MVUs: sliding windows, pools, the
    Flatten collector; the initiation interval is at least each of these (passes/estimate.py).
    ``stages``: stage_params(graph) if already built."""
    labels, conv_names = [], iter(n.name for n in graph.nodes if isinstance(n, ThresholdConv))
    pool_names = iter(n.name for n in graph.nodes if isinstance(n, MaxPoolBits))
    for stage in stage_params(graph) if stages is None else stages:
        if isinstance(stage, ConvParams):
            labels.append((f"{next(conv_names)} window", stage.window.cycles_per_frame))
        elif isinstance(stage, MaxPoolParams):
            labels.append((next(pool_names), stage.cycles_per_frame))
        elif isinstance(stage, CollectParams):
            labels.append(("flatten", stage.cycles_per_frame))
    return labels


def build_network(graph: Graph, target: HardwareTarget | str | None = None) -> Network:
    """The hardware of a folded graph; ``target``: see :func:`layer_params`."""
    return Network(stage_params(graph, target=target))
