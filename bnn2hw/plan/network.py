"""The hardware plan of a network: its stages in stream order, walked once from the folded graph.

:func:`plan_network` walks the graph once, tracking the image shape while the stream carries pixels:
a convolution is a sliding window then a matrix-vector unit, a pool a window unit with a reduction,
the Flatten between the image part and the dense part a collect unit, and a dense layer a
matrix-vector unit (:class:`~bnn2hw.plan.layer.LayerPlan`). The :class:`NetworkPlan` it returns
gives the hardware stages (``stages``), the stream units besides the MVUs with their fixed rates,
the initiation interval and its bottleneck, and the latency. Everything after it reads this plan.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from ..hw import CollectParams, ConvParams, MaxPoolParams, ThresholdParams, WindowParams
from ..ir import BITS, Folding, Graph, InputThreshold, MaxPoolBits, ThresholdConv
from .layer import LayerPlan
from .target import HardwareTarget, target_for

__all__ = ["NetworkPlan", "StagePlan", "StreamUnitPlan", "plan_network", "DECOUPLING_ROWS"]

#: Line-buffer rows beyond each window unit's own need: the FIFO between two image stages. Without it
#: the row bursts of a producer and the row reads of its consumer can interlock and cost throughput
#: (2 of 16 random conv models ran 1.5 % and 4 % slower than their slowest stage); with one spare row
#: all 30 run at their estimate (bench/conv_timing.py, tests/test_conv_hw.py). Correctness never needs it.
DECOUPLING_ROWS = 1


@dataclass(frozen=True)
class StreamUnitPlan:
    """A stream unit with a rate fixed by its geometry: a convolution's sliding window ("<conv>
    window"), a pool (its layer name), the Flatten collector ("flatten") or an imported graph's input
    quantizer (its name)."""
    label: str
    kind: str                     # "window", "pool", "collect", "threshold"
    params: WindowParams | MaxPoolParams | CollectParams | ThresholdParams

    @property
    def cycles_per_frame(self) -> int:
        return self.params.cycles_per_frame

    @property
    def window(self) -> WindowParams | None:
        """The line buffer and window register (a pool's too); None for the collector."""
        return self.params.window if self.kind == "pool" else self.params if self.kind == "window" else None


@dataclass(frozen=True)
class StagePlan:
    """One stage of the network's stream: a compute layer (with its window, for a convolution), a
    pool or the collector."""
    name: str
    layer: LayerPlan | None = None
    unit: StreamUnitPlan | None = None

    @property
    def params(self):
        """The stage's hardware parameters (hw/network.py's STAGE_UNITS)."""
        if self.layer is None:
            return self.unit.params
        return ConvParams(self.unit.params, self.layer.mvu) if self.unit is not None else self.layer.mvu


def _window_params(node: ThresholdConv) -> WindowParams:
    win = node.window
    h, w, c = win.in_shape
    return WindowParams(h, w, c, elem_bits=1 if node.input_kind == BITS else node.in_bits, kernel=win.kernel,
                        stride=win.stride, padding=win.padding, pad_value=win.pad_code, extra_rows=DECOUPLING_ROWS)


def _pool_params(node: MaxPoolBits) -> MaxPoolParams:
    (k, _), (s, _) = node.kernel, node.stride
    extra = {} if node.bits == 1 else {"elem_bits": node.bits}
    return MaxPoolParams(*node.in_shape, kernel=k, stride=s, extra_rows=DECOUPLING_ROWS,
                         and_mask=tuple(bool(b) for b in node.and_mask), **extra)


@dataclass(frozen=True, eq=False)
class NetworkPlan:
    graph: Graph
    target: HardwareTarget
    stage_plans: tuple[StagePlan, ...]

    @property
    def layers(self) -> tuple[LayerPlan, ...]:
        """The compute layers, in graph order."""
        return tuple(s.layer for s in self.stage_plans if s.layer is not None)

    @property
    def stream_units(self) -> tuple[StreamUnitPlan, ...]:
        """Windows, pools and the collector, in stream order."""
        return tuple(s.unit for s in self.stage_plans if s.unit is not None)

    def layer(self, name: str) -> LayerPlan:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r}; layers are {', '.join(l.name for l in self.layers)}")

    @property
    def stream_bounds(self) -> tuple[tuple[str, int], ...]:
        """(label, cycles per frame) of the stream units; each bounds the initiation interval."""
        return tuple((u.label, u.cycles_per_frame) for u in self.stream_units)

    @property
    def bottleneck(self) -> tuple[str, int]:
        """(name, cycles per frame) of the slowest unit: the first slowest layer, unless a stream
        unit is slower still. Its cycles are the network's initiation interval."""
        slowest = max(self.layers, key=lambda l: l.cycles_per_frame)
        name, ii = slowest.name, slowest.cycles_per_frame
        for label, cycles in self.stream_bounds:
            if cycles > ii:
                name, ii = label, cycles
        return name, ii

    @property
    def cycles_per_frame(self) -> int:
        return self.bottleneck[1]

    @property
    def latency_cycles(self) -> int | None:
        """Σ over the layers of K + the unit's extra cycles (hw/mvu.py) for a dense network; None for a
        convolutional one, whose latency is measured in simulation."""
        if self.graph.has_convolutions:
            return None
        units = sum(u.params.latency_cycles for u in self.stream_units if u.kind == "threshold")
        return units + sum(l.cycles_per_frame + l.pipeline_cycles for l in self.layers)

    @cached_property
    def stages(self) -> tuple:
        """The hardware stages' parameters in stream order (hw.Network takes them)."""
        return tuple(s.params for s in self.stage_plans)

    @property
    def head(self) -> LayerPlan:
        return self.layers[-1]

    @property
    def pixel_bits(self) -> int:
        return self.graph.input.bits


def plan_network(graph: Graph, target: HardwareTarget | str | None = None, folding: dict | None = None,
                 class_index: bool = True) -> NetworkPlan:
    """The plan of a folded graph for ``target`` (a HardwareTarget, a target name, or None: generic),
    with the graph's folding or ``folding`` (layer name → Folding). ``class_index=False``: the scores
    head builds no class index (inside a board top, which scans for the class itself)."""
    target = target_for(target)
    fold = (lambda n: graph.folding_of(n.name)) if folding is None else (lambda n: folding[n.name])
    last = graph.compute_nodes[-1].name
    stages, image = [], None        # image: (H, W, C) while the stream carries pixels
    elem_bits = 1                   # bits per channel of the image's pixels (output codes)

    def layer(node) -> LayerPlan:
        f: Folding = fold(node)
        return LayerPlan(node, f.pe, f.simd, target, class_index=class_index or node.name != last)

    for node in graph.nodes:
        if isinstance(node, InputThreshold):
            shape = graph.input.shape
            conv = graph.has_convolutions
            params = ThresholdParams(elements=shape[0] if conv else graph.input.size, in_bits=graph.input.bits,
                                     thresholds=tuple(int(t) for t in node.thresholds),
                                     beats_per_frame=shape[1] * shape[2] if conv else 1)
            stages.append(StagePlan(node.name, unit=StreamUnitPlan(node.name, "threshold", params)))
        elif isinstance(node, ThresholdConv):
            window = StreamUnitPlan(f"{node.name} window", "window", _window_params(node))
            stages.append(StagePlan(node.name, layer(node), window))
            image = node.window.out_hw + (node.out_features,)
            elem_bits = node.out_bits
        elif isinstance(node, MaxPoolBits):
            stages.append(StagePlan(node.name, unit=StreamUnitPlan(node.name, "pool", _pool_params(node))))
            image = node.out_hw + (node.in_shape[2],)
        else:
            if image is not None:
                collect = CollectParams(pixels=image[0] * image[1], pixel_bits=image[2] * elem_bits)
                stages.append(StagePlan("flatten", unit=StreamUnitPlan("flatten", "collect", collect)))
                image = None
            stages.append(StagePlan(node.name, layer(node)))
    return NetworkPlan(graph, target, _link(stages))


def _link(stages: list) -> tuple:
    """Each dense unit fed by another takes the target's chain buffers, and every unit learns the
    rate and buffers of the unit it feeds (its output slots: hw/mvu.output_slots). A stream unit
    (window, pool, collector) or the network's output takes a beat when offered."""
    dense = lambda s: s is not None and s.layer is not None and s.unit is None
    out = list(stages)
    for k, s in enumerate(out):
        if dense(s) and k and dense(stages[k - 1]):
            out[k] = replace(s, layer=replace(s.layer, chained=True))
    for k, s in enumerate(out):
        if s.layer is not None and k + 1 < len(out) and dense(out[k + 1]):
            nxt = out[k + 1].layer
            out[k] = replace(s, layer=replace(s.layer, consumer=(nxt.cycles, nxt.input_buffers)))
    return tuple(out)
