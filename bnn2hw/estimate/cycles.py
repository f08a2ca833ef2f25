"""Cycle and memory figures of a planned network, for report.json: read from the plan, never re-derived.

Layer l needs K_l = NF·SF cycles per input vector, one vector per frame for a dense layer and one per
output position for a convolution; the network's initiation interval is the largest of these and of
the stream units' own rates (sliding windows, pools, the Flatten collector), and a dense network's
latency is Σ (K_l + the unit's extra cycles). All of it is bnn2hw.plan's (NetworkPlan, LayerPlan).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..ir.arith import weight_bits as layer_weight_bits
from ..plan import NetworkPlan

__all__ = ["LayerEstimate", "NetworkEstimate", "estimate_cycles"]


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
    constant_bits: int          # bits of the per-channel constant ROMs (−T, or scale + offset) as built


@dataclass(frozen=True)
class NetworkEstimate:
    layers: tuple[LayerEstimate, ...]
    cycles_per_frame: int
    latency_cycles: int | None   # None for convolutional networks: measured in simulation only
    clock_mhz: float
    frames_per_second: float
    bottleneck: str
    stream_units: tuple[tuple[str, int], ...] = ()     # (label, cycles per frame) besides the MVUs
    target: str = "generic"      # the hardware target the plan was made for

    def to_json(self) -> dict:
        return asdict(self)


def _input_label(layer) -> str:
    """What a layer reads, for reports: "8-bit pixels", "bits", or "2-bit codes, 2-bit weights"."""
    if layer.codes:
        return f"{layer.node.in_bits}-bit codes, {layer.weight_precision}-bit weights"
    return f"{layer.node.in_bits}-bit pixels" if layer.pixel_bits else "bits"


def estimate_cycles(plan: NetworkPlan, clock_mhz: float) -> NetworkEstimate:
    layers = tuple(LayerEstimate(
        name=l.name, kind=l.kind, in_features=l.n_in, out_features=l.n_out,
        input=_input_label(l),
        pe=l.pe, simd=l.simd, neuron_folds=l.nf, synapse_folds=l.sf, positions=l.positions,
        cycles_per_frame=l.cycles_per_frame, weight_bits=layer_weight_bits(l.node), weight_rom_bits=l.weight_rom_bits,
        constant_bits=l.const_field_bits * l.n_out) for l in plan.layers)
    bottleneck, ii = plan.bottleneck
    return NetworkEstimate(layers=layers, cycles_per_frame=ii, latency_cycles=plan.latency_cycles,
                           clock_mhz=clock_mhz, frames_per_second=clock_mhz * 1e6 / ii, bottleneck=bottleneck,
                           stream_units=plan.stream_bounds, target=plan.target.name)
