"""Collect unit: the ``nn.Flatten`` between the convolutional and the dense part of a network.

Input ``i``: one pixel (``pixel_bits`` bits) per beat, ``pixels`` beats per frame, raster order.
Output ``o``: the whole frame as one beat of ``pixels · pixel_bits`` bits, pixel k in bits
[k·pixel_bits, (k+1)·pixel_bits): the (H, W, C) feature vector a dense unit takes as its input.

Latency / throughput:
    * the frame is on ``o`` in the cycle after its last pixel is accepted;
    * one pixel per cycle, frames back to back (``pixels`` cycles per frame): pixels of the next frame
      are accepted while the previous frame waits on ``o``; only its last pixel waits for ``o`` to empty.
Resources: two registers of pixels · pixel_bits bits (assembly and output), a pixel counter.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CollectParams", "CollectUnit"]


@dataclass(frozen=True)
class CollectParams:
    pixels: int          # beats per frame (H·W)
    pixel_bits: int      # bits per beat (C)

    def __post_init__(self):
        for name in ("pixels", "pixel_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")

    @property
    def in_payload_bits(self) -> int:
        return self.pixel_bits

    @property
    def out_payload_bits(self) -> int:
        return self.pixels * self.pixel_bits

    @property
    def cycles_per_frame(self) -> int:
        return self.pixels


class CollectUnit(wiring.Component):
    """See the module docstring. Members: ``i`` (pixel stream) and ``o`` (one vector per frame)."""

    def __init__(self, params: CollectParams):
        self._p = params
        super().__init__({
            "i": In(stream.Signature(unsigned(params.in_payload_bits))),
            "o": Out(stream.Signature(unsigned(params.out_payload_bits))),
        })

    def elaborate(self, platform):
        p = self._p
        m = Module()
        P, N = p.pixel_bits, p.pixels
        # Pixels shift in at the top, so after N of them pixel 0 sits at the least significant bits.
        assembly = Signal(p.out_payload_bits)
        count = Signal(range(max(2, N)))
        last = count == N - 1
        out_full = Signal()
        out_free = ~out_full | self.o.ready
        m.d.comb += [self.i.ready.eq(~last | out_free), self.o.valid.eq(out_full)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += out_full.eq(0)
        shifted = Cat(assembly[P:], self.i.payload) if N > 1 else self.i.payload
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += assembly.eq(shifted)
            with m.If(last):
                m.d.sync += [count.eq(0), self.o.payload.eq(shifted), out_full.eq(1)]
            with m.Else():
                m.d.sync += count.eq(count + 1)
        return m
