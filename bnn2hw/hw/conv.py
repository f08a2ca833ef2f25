"""Convolution unit: a sliding-window unit feeding a matrix-vector unit.

Input ``i``: one pixel per beat (C channels of ``window.elem_bits``), raster order, frames back to
back. Output ``o``: one output pixel per beat (``mvu.n_out`` fields of ``mvu.out_bits``, channel c at
bits [c·out_bits, (c+1)·out_bits): one bit per channel for a binary output), raster order.
Each window is one MVU input vector (n_in = kh·kw·C, (ky, kx, c) order, hw/sliding_window.py).

Latency / throughput (K = NF·SF of the MVU, positions = oh·ow):
    * a window on the window unit's output is on ``o`` ``mvu.latency_cycles`` after the MVU accepts it
      (K + 2, more with pipeline or binary-search stages);
    * cycles per frame: max(window.cycles_per_frame, positions · K) when one side clearly dominates
      (``cycles_per_frame``); the two are coupled directly, the MVU's two input buffers absorbing the
      window unit's row transitions.
Resources: the two units' (hw/sliding_window.py, hw/mvu.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .mvu import MatrixVectorUnit, MVUParams
from .sliding_window import SlidingWindowUnit, WindowParams

__all__ = ["ConvParams", "ConvUnit"]


@dataclass(frozen=True)
class ConvParams:
    window: WindowParams
    mvu: MVUParams

    def __post_init__(self):
        w, u = self.window, self.mvu
        if u.scores:
            raise ValueError("a convolution produces output bits, not class scores")
        if u.n_in != w.window_bits // w.elem_bits or u.lane_bits != w.elem_bits:
            raise ValueError(f"the MVU takes {u.n_in} inputs of {u.lane_bits} bits, but the window holds "
                             f"{w.window_bits // w.elem_bits} of {w.elem_bits} bits")

    @property
    def in_payload_bits(self) -> int:
        return self.window.pixel_bits

    @property
    def out_payload_bits(self) -> int:
        return self.mvu.out_payload_bits

    @property
    def positions(self) -> int:
        return self.window.out_height * self.window.out_width

    @property
    def cycles_per_frame(self) -> int:
        return max(self.window.cycles_per_frame, self.positions * self.mvu.cycles)


class ConvUnit(wiring.Component):
    """See the module docstring. Members: ``i`` (input pixels) and ``o`` (output pixels)."""

    def __init__(self, params: ConvParams):
        self._p = params
        super().__init__({
            "i": In(stream.Signature(unsigned(params.in_payload_bits))),
            "o": Out(stream.Signature(unsigned(params.out_payload_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = window = SlidingWindowUnit(self._p.window)
        m.submodules.mvu = mvu = MatrixVectorUnit(self._p.mvu)
        wiring.connect(m, wiring.flipped(self.i), window.i)
        wiring.connect(m, window.o, mvu.i)
        wiring.connect(m, mvu.o, wiring.flipped(self.o))
        return m
