"""A network: matrix-vector units chained by valid/ready streams.

Latency: Σ (K_l + 2) cycles from the input handshake to ``o.valid`` (K_l = NF·SF of layer l).
Initiation interval: max K_l cycles (the slowest layer), with no bubbles between frames.
Resources: the sum of its units (hw/mvu.py); no extra FIFOs, each unit double-buffers its input.
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .mvu import MatrixVectorUnit, MVUParams, scores_layout

__all__ = ["Network"]


class Network(wiring.Component):
    """Members: ``i`` — one input frame per beat (pixels, element 0 at the LSB); ``o`` — scores + class."""

    def __init__(self, layers: list[MVUParams]):
        if not layers:
            raise ValueError("a network needs at least one layer")
        if not layers[-1].scores or any(p.scores for p in layers[:-1]):
            raise ValueError("only the last layer of a network may (and must) produce scores")
        for a, b in zip(layers, layers[1:]):
            if a.n_out != b.n_in or b.pixel_bits:
                raise ValueError(f"layer with {a.n_out} outputs cannot feed a layer with {b.n_in} binary inputs")
        self._layers = list(layers)
        first, last = layers[0], layers[-1]
        super().__init__({
            "i": In(stream.Signature(unsigned(first.n_in * first.lane_bits))),
            "o": Out(stream.Signature(scores_layout(last.n_out, last.score_width, last.class_width))),
        })

    def elaborate(self, platform):
        m = Module()
        units = []
        for k, params in enumerate(self._layers):
            unit = MatrixVectorUnit(params)
            m.submodules[f"layer{k}"] = unit
            units.append(unit)
        wiring.connect(m, wiring.flipped(self.i), units[0].i)
        for a, b in zip(units, units[1:]):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, units[-1].o, wiring.flipped(self.o))
        return m
