"""The IR graph: an input spec, an ordered tuple of nodes, and (after folding) PE/SIMD per layer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .ops import (BITS, CODES, PIXELS, BatchNorm, Conv, Dense, Folding, InputSpec, InputThreshold, MaxPool,
                  MaxPoolBits, ScoresDense, ThresholdConv, ThresholdDense)

__all__ = ["Graph", "validate"]


@dataclass(frozen=True)
class Graph:
    input: InputSpec
    nodes: tuple
    folding: tuple[tuple[str, Folding], ...] = ()

    def replace(self, **changes) -> "Graph":
        return dataclasses.replace(self, **changes)

    def folding_of(self, name: str) -> Folding:
        for n, f in self.folding:
            if n == name:
                return f
        raise KeyError(f"layer {name!r} has no folding yet; run the folding pass first")

    @property
    def compute_nodes(self) -> tuple:
        return tuple(n for n in self.nodes if isinstance(n, (ThresholdDense, ScoresDense)))

    @property
    def is_folded(self) -> bool:
        return all(isinstance(n, (ThresholdDense, ScoresDense, MaxPoolBits, InputThreshold)) for n in self.nodes)

    @property
    def input_threshold(self) -> InputThreshold | None:
        """The imported input quantizer the first layer reads, if the graph has one."""
        return self.nodes[0] if isinstance(self.nodes[0], InputThreshold) else None

    @property
    def has_convolutions(self) -> bool:
        return any(isinstance(n, (Conv, ThresholdConv, MaxPool, MaxPoolBits)) for n in self.nodes)

    @property
    def num_classes(self) -> int:
        return self.nodes[-1].out_features


def validate(graph: Graph) -> Graph:
    """Check shape and kind invariants; raise AssertionError naming the node on violation (a bnn2hw bug)."""
    width = graph.input.size
    first_compute = next(i for i, n in enumerate(graph.nodes) if isinstance(n, (Dense, ThresholdDense, ScoresDense)))
    for i, node in enumerate(graph.nodes):
        window = getattr(node, "window", None)
        if window is not None:
            h, w, c = window.in_shape
            assert h * w * c == width, f"{node.name}: expects a {h}×{w}×{c} image, gets {width} values"
            assert node.in_features == window.features, f"{node.name}: weights do not match its window"
            width = window.out_hw[0] * window.out_hw[1] * node.out_features
            channels = node.out_features
        elif isinstance(node, (MaxPool, MaxPoolBits)):
            h, w, c = node.in_shape
            assert h * w * c == width, f"{node.name}: expects a {h}×{w}×{c} image, gets {width} values"
            width = node.out_hw[0] * node.out_hw[1] * c
        elif isinstance(node, (Dense, ThresholdDense, ScoresDense)):
            assert node.in_features == width, f"{node.name}: expects {node.in_features} inputs, gets {width}"
            width = node.out_features
            channels = width
        elif isinstance(node, BatchNorm):
            assert node.gamma.shape == (channels,), f"{node.name}: {node.gamma.shape[0]} channels, expected {channels}"
        if isinstance(node, InputThreshold):
            assert i == 0, f"{node.name}: an input threshold must be the first node"
        if isinstance(node, (ThresholdDense, ScoresDense)):
            expected = (PIXELS if i == first_compute and graph.input_threshold is None else BITS, CODES)
            assert node.input_kind in expected, f"{node.name}: input kind {node.input_kind}, expected {expected}"
        if isinstance(node, ScoresDense):
            assert i == len(graph.nodes) - 1, f"{node.name}: a scores layer must be last"
    if graph.folding:
        names = [n.name for n in graph.compute_nodes]
        assert [n for n, _ in graph.folding] == names, "folding does not list every layer in order"
    return graph
