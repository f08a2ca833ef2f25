"""Analytic cycle and memory estimates of a folded graph, for report.json.

The cycle model is that of hw/mvu.py and hw/network.py: layer l needs K_l = NF·SF cycles per input
vector, one vector per frame for a dense layer and one per output position for a convolution; the
network's initiation interval is the largest of these and of the stream units' own rates (sliding
windows, pools, the Flatten collector: ``stages``), and a dense network's latency is Σ (K_l + the unit's pipeline cycles, MVUParams.pipeline_cycles).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..ir import PIXELS, Graph, ScoresDense
from .pack import folds

__all__ = ["LayerEstimate", "NetworkEstimate", "estimate", "MVU_PIPELINE_CYCLES"]

#: Cycles a unit adds beyond its K compute cycles: the ROM read and the output register.
MVU_PIPELINE_CYCLES = 2


@dataclass(frozen=True)
class LayerEstimate:
    name: str
    kind: str
    in_features: int
    out_features: int
    input: str
    pe: int
    simd: int
    neuron_folds: int
    synapse_folds: int
    positions: int              # input vectors per frame: 1, or out_h·out_w for a convolution
    cycles_per_frame: int
    weight_bits: int
    weight_rom_bits: int
    constant_bits: int


@dataclass(frozen=True)
class NetworkEstimate:
    layers: tuple[LayerEstimate, ...]
    cycles_per_frame: int
    latency_cycles: int | None   # None for convolutional networks: measured in simulation only
    clock_mhz: float
    frames_per_second: float
    bottleneck: str
    stream_units: tuple[tuple[str, int], ...] = ()     # (label, cycles per frame) besides the MVUs

    def to_json(self) -> dict:
        return asdict(self)


def estimate(graph: Graph, clock_mhz: float, widths: dict[str, int], stages=(),
             unit_cycles: int = MVU_PIPELINE_CYCLES) -> NetworkEstimate:
    """``widths`` maps layer name → bits of per-channel constants (threshold, or scale + offset) as built;
    ``stages`` are (label, cycles per frame) of the other stream units (codegen.stage_bounds), which
    bound the initiation interval too."""
    layers = []
    for node in graph.compute_nodes:
        f = graph.folding_of(node.name)
        nf, sf = folds(node.out_features, f.pe), folds(node.in_features, f.simd)
        window = getattr(node, "window", None)
        positions = 1 if window is None else window.out_hw[0] * window.out_hw[1]
        per_channel = widths[node.name]
        layers.append(LayerEstimate(
            name=node.name, kind="scores" if isinstance(node, ScoresDense) else "conv" if window else "threshold",
            in_features=node.in_features, out_features=node.out_features,
            input=f"{node.in_bits}-bit pixels" if node.input_kind == PIXELS else "bits",
            pe=f.pe, simd=f.simd, neuron_folds=nf, synapse_folds=sf, positions=positions,
            cycles_per_frame=positions * nf * sf,
            weight_bits=node.in_features * node.out_features, weight_rom_bits=nf * sf * f.pe * f.simd,
            constant_bits=per_channel * node.out_features))
    bottleneck = max(layers, key=lambda l: l.cycles_per_frame).name
    ii = max(l.cycles_per_frame for l in layers)
    for label, cycles in stages:
        if cycles > ii:
            ii, bottleneck = cycles, label
    latency = None if graph.has_convolutions else sum(l.cycles_per_frame + unit_cycles for l in layers)
    return NetworkEstimate(layers=tuple(layers), cycles_per_frame=ii, latency_cycles=latency,
                           clock_mhz=clock_mhz, frames_per_second=clock_mhz * 1e6 / ii, bottleneck=bottleneck,
                           stream_units=tuple(stages))
