"""Input threshold unit: an imported graph's input quantizer, applied to every integer pixel of a beat.

Each of the beat's ``elements`` unsigned ``in_bits``-bit pixels p becomes the code
q = #{k : p ≥ thresholds[k]} of ``out_bits`` bits (the same ascending thresholds for every element),
element k in bits [k·out_bits, (k+1)·out_bits) of the output, as of the input.

Latency / throughput: the codes of a beat are on ``o`` in the cycle after it is accepted; one beat per
cycle (a skid-free register stage: ``i.ready`` is ``o``'s register being empty or read this cycle).
Resources: per element L comparisons of an ``in_bits``-bit value with constants (a few LUTs each, often
one wire: p ≥ 128 is p's top bit) and an adder of their L results; an output register of
elements · out_bits bits.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .pe_array import tree_sum

__all__ = ["ThresholdParams", "ThresholdUnit"]


@dataclass(frozen=True)
class ThresholdParams:
    elements: int                    # pixels per beat (a dense input's whole frame, or a pixel's channels)
    in_bits: int                     # unsigned bits of a pixel
    thresholds: tuple[int, ...]      # ascending; code = how many a pixel reaches
    beats_per_frame: int = 1         # a convolutional input's H·W beats (for the frame rate only)

    def __post_init__(self):
        for name in ("elements", "in_bits", "beats_per_frame"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        t = self.thresholds
        if not t or any(not isinstance(v, int) for v in t) or list(t) != sorted(t):
            raise ValueError(f"thresholds must be a non-empty ascending tuple of integers, not {t!r}")

    @property
    def out_bits(self) -> int:
        return max(1, len(self.thresholds).bit_length())

    @property
    def in_payload_bits(self) -> int:
        return self.elements * self.in_bits

    @property
    def out_payload_bits(self) -> int:
        return self.elements * self.out_bits

    @property
    def cycles_per_frame(self) -> int:
        return self.beats_per_frame

    @property
    def latency_cycles(self) -> int:
        return 1


class ThresholdUnit(wiring.Component):
    """See the module docstring. Members: ``i`` (pixels) and ``o`` (codes), one beat each per cycle."""

    def __init__(self, params: ThresholdParams):
        self._p = params
        super().__init__({
            "i": In(stream.Signature(unsigned(params.in_payload_bits))),
            "o": Out(stream.Signature(unsigned(params.out_payload_bits))),
        })

    def elaborate(self, platform):
        p = self._p
        m = Module()
        codes = []
        top = (1 << p.in_bits) - 1
        for k in range(p.elements):
            pixel = self.i.payload[k * p.in_bits:(k + 1) * p.in_bits]
            # constants outside 0..2^bits − 1 are always (≤ 0) or never (> max) reached
            reached = [pixel >= t if 0 < t <= top else Const(int(t <= 0), 1) for t in p.thresholds]
            code = Signal(p.out_bits, name=f"code{k}")
            m.d.comb += code.eq(tree_sum(reached, m, f"code{k}") if len(reached) > 1 else reached[0])
            codes.append(code)
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [self.o.payload.eq(Cat(*codes)), self.o.valid.eq(1)]
        return m
