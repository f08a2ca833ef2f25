"""A network: a chain of stream units, from the input pixels to the class scores.

Stages, each given by its parameter object: ``MVUParams`` (a dense layer: one vector per beat),
``ConvParams`` (sliding window + MVU: one pixel per beat), ``MaxPoolParams`` (one pixel per beat)
``CollectParams`` (the Flatten: pixels in, one vector out) and, first, ``ThresholdParams`` (an imported
graph's input quantizer: pixels in, codes out, one beat per beat). A dense network takes one whole frame
per input beat; a convolutional one takes one pixel (all channels) per beat, ``input_beats`` per
frame, in raster order.

Initiation interval: the slowest stage's cycles per frame, with no bubbles between frames.
Latency (dense networks): Σ (K_l + 2) cycles from the input handshake to ``o.valid``.
Deadlock: the chain is linear and every unit makes progress whenever its producer eventually sends
and its consumer eventually takes (a window unit holds every row its next window reads), so no
stall pattern can deadlock it and no FIFO is needed for correctness.
Resources: the sum of its units; no extra FIFOs (each MVU double-buffers its input vector).
"""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .collect import CollectParams, CollectUnit
from .conv import ConvParams, ConvUnit
from .maxpool import MaxPoolParams, MaxPoolUnit
from .mvu import MatrixVectorUnit, MVUParams, scores_layout
from .threshold import ThresholdParams, ThresholdUnit

__all__ = ["Network", "STAGE_UNITS"]

#: Parameter type → the component that implements it.
STAGE_UNITS = {MVUParams: MatrixVectorUnit, ConvParams: ConvUnit, MaxPoolParams: MaxPoolUnit,
               CollectParams: CollectUnit, ThresholdParams: ThresholdUnit}


def _describe(stage) -> str:
    return f"{type(stage).__name__} ({stage.in_payload_bits} bits in, {stage.out_payload_bits} out)"


class Network(wiring.Component):
    """Members: ``i`` — the input stream (a frame, or a pixel, per beat; element 0 at the LSB);
    ``o`` — scores + class, one beat per frame."""

    def __init__(self, stages: list):
        stages = list(stages)
        if not stages:
            raise ValueError("a network needs at least one layer")
        for s in stages:
            if type(s) not in STAGE_UNITS:
                raise ValueError(f"{type(s).__name__} is not a network stage; use one of "
                                 f"{', '.join(t.__name__ for t in STAGE_UNITS)}")
        mvus = [s.mvu if isinstance(s, ConvParams) else s for s in stages if isinstance(s, (MVUParams, ConvParams))]
        last = stages[-1]
        if not isinstance(last, MVUParams) or not last.scores or any(p.scores for p in mvus[:-1]):
            raise ValueError("only the last layer of a network may (and must) produce scores")
        for a, b in zip(stages, stages[1:]):
            pixels_inside = isinstance(b, MVUParams) and b.pixel_bits and not getattr(b, "codes", False)
            if a.out_payload_bits != b.in_payload_bits or pixels_inside:   # codes layers read codes from inside
                raise ValueError(f"{_describe(a)} cannot feed {_describe(b)}")
        self._stages = stages
        if any(isinstance(s, ThresholdParams) for s in stages[1:]):
            raise ValueError("an input threshold unit can only be the first stage")
        first = stages[0]
        if isinstance(first, ThresholdParams):
            self.pixel_bits, self.input_beats = first.in_bits, first.beats_per_frame
        else:
            self.pixel_bits = first.window.elem_bits if isinstance(first, ConvParams) else first.lane_bits
            self.input_beats = first.window.height * first.window.width if isinstance(first, ConvParams) else 1
        super().__init__({
            "i": In(stream.Signature(unsigned(first.in_payload_bits))),
            "o": Out(stream.Signature(scores_layout(last.n_out, last.score_width, last.class_width))),
        })

    @property
    def stages(self) -> tuple:
        return tuple(self._stages)

    @property
    def head(self) -> MVUParams:
        return self._stages[-1]

    def elaborate(self, platform):
        m = Module()
        units = []
        for k, params in enumerate(self._stages):
            unit = STAGE_UNITS[type(params)](params)
            m.submodules[f"layer{k}"] = unit
            units.append(unit)
        wiring.connect(m, wiring.flipped(self.i), units[0].i)
        for a, b in zip(units, units[1:]):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, units[-1].o, wiring.flipped(self.o))
        return m
