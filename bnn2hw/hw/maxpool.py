"""Max-pool unit on binary activations or unsigned codes: k × k windows, stride s, no padding,
per-channel max (OR) or min (AND).

Channel c pools with OR (max of ±1: pooling after the sign, or a channel whose BatchNorm scale is
positive) or, where ``and_mask[c]`` is set, with AND (min of ±1: a channel with negative scale when
the model pools before BatchNorm + sign, TRAINING_AND_INTEGER_MATH.md §7.4).

Multi-bit codes (``elem_bits`` = b ≥ 2, e.g. the q = Σ [A ≥ T_k] outputs of a multi-threshold
layer): channel c is an unsigned b-bit field and pools with max, or min where ``and_mask[c]``; for
b = 1 these are exactly the OR and AND above.

Input ``i``: one pixel (C fields of ``elem_bits``, channel c at bits [c·b, (c+1)·b)) per beat, raster
order, frames back to back. Output ``o``: one pooled pixel (the same layout) per beat, raster order
over the (H − k)//s + 1 rows and (W − k)//s + 1 columns.

It is a :class:`SlidingWindowUnit` (kernel k × k, stride s, no padding) whose window register is
reduced combinationally, so latency and stall behaviour are the window unit's.
Latency / throughput:
    * a pooled row starts 1 cycle after the last input row it reads is complete; its first pixel is
      on ``o`` 2 cycles later, the rest follow one input column per cycle;
    * free-running: H·W cycles per frame (one pixel accepted per cycle; without padding the scan
      of (ow − 1)·s + k ≤ W columns per pooled row never dominates).
Resources: the window unit's line buffer (``window.slots`` rows × W × C·b bits; about 2k rows, e.g.
4 for 2 × 2/s2 on an even height: one pooled row's rows and the next one's) and k²·C·b window bits,
plus C reduction gates of k² inputs (b = 1), or C trees of k² − 1 b-bit compare-and-select (b ≥ 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Module, Mux, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .sliding_window import SlidingWindowUnit, WindowParams

__all__ = ["MaxPoolParams", "MaxPoolUnit", "reference_maxpool"]


@dataclass(frozen=True)
class MaxPoolParams:
    """Geometry and per-channel mode of one pool; ``and_mask`` None means OR on every channel."""
    height: int
    width: int
    channels: int
    kernel: int = 2
    stride: int = 2
    and_mask: tuple[bool, ...] | None = None
    extra_rows: int = 0                  # passed to the window unit (line-buffer rows for FIFO sizing)
    elem_bits: int = 1                   # bits per channel: 1 (binary), 2..8 (unsigned codes)

    def __post_init__(self):
        """Parameters are checked (and the mask normalised to C bools) before any hardware object exists."""
        for name in ("height", "width", "channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(self.elem_bits, int) or not 1 <= self.elem_bits <= 8:
            raise ValueError(f"elem_bits must be an integer in 1..8, not {self.elem_bits!r}")
        for name in ("kernel", "stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 4:
                raise ValueError(f"{name} must be an integer in 1..4, not {value!r}")
        if self.kernel > min(self.height, self.width):
            raise ValueError(f"pool kernel {self.kernel} does not fit the {self.height}×{self.width} image")
        mask = (False,) * self.channels if self.and_mask is None else tuple(self.and_mask)
        if len(mask) != self.channels or not all(isinstance(b, (bool, np.bool_)) for b in mask):
            raise ValueError(f"and_mask must hold {self.channels} bools, not {self.and_mask!r}")
        object.__setattr__(self, "and_mask", tuple(bool(b) for b in mask))
        self.window          # checks extra_rows

    @property
    def window(self) -> WindowParams:
        return WindowParams(self.height, self.width, self.channels, elem_bits=self.elem_bits, kernel=self.kernel,
                            stride=self.stride, padding=0, extra_rows=self.extra_rows)

    @property
    def out_height(self) -> int:
        return (self.height - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        return (self.width - self.kernel) // self.stride + 1

    @property
    def cycles_per_frame(self) -> int:
        return self.window.cycles_per_frame

    @property
    def in_payload_bits(self) -> int:
        return self.channels * self.elem_bits

    @property
    def out_payload_bits(self) -> int:
        return self.channels * self.elem_bits


def reference_maxpool(bits, k: int, s: int, and_mask) -> np.ndarray:
    """Pool ``bits`` (frames, H, W, C) of 0/1 or unsigned codes (up to 8 bits) → (frames, oh, ow, C):
    max (OR) per channel, min (AND) where ``and_mask``."""
    bits = np.asarray(bits).astype(np.uint8)
    if bits.ndim != 4:
        raise ValueError(f"bits must have shape (frames, H, W, C), not {bits.shape}")
    _, h, w, c = bits.shape
    mask = np.asarray(and_mask, dtype=bool).reshape(c)
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    windows = np.stack([bits[:, dy:dy + (oh - 1) * s + 1:s, dx:dx + (ow - 1) * s + 1:s, :]
                        for dy in range(k) for dx in range(k)])
    return np.where(mask, windows.min(axis=0), windows.max(axis=0)).astype(np.uint8)


class MaxPoolUnit(wiring.Component):
    """See the module docstring. Members: ``i`` and ``o``, streams of C·elem_bits-bit pixels (channel c
    at bits [c·elem_bits, (c+1)·elem_bits))."""

    def __init__(self, params: MaxPoolParams):
        self._p = params
        super().__init__({
            "i": In(stream.Signature(unsigned(params.in_payload_bits))),
            "o": Out(stream.Signature(unsigned(params.out_payload_bits))),
        })

    def elaborate(self, platform):
        p = self._p
        m = Module()
        m.submodules.window = window = SlidingWindowUnit(p.window)
        wiring.connect(m, wiring.flipped(self.i), window.i)
        taps = p.kernel * p.kernel
        pooled = []
        eb = p.elem_bits
        for c, use_and in enumerate(p.and_mask):
            if eb == 1:
                bits = Cat(*(window.o.payload[t * p.channels + c] for t in range(taps)))
                pooled.append(bits.all() if use_and else bits.any())
                continue
            # b-bit codes: a balanced tree of compare-and-select, max (or min where and_mask)
            level = [window.o.payload[(t * p.channels + c) * eb:(t * p.channels + c + 1) * eb] for t in range(taps)]
            while len(level) > 1:
                pick = (lambda a, b: Mux(a < b, a, b)) if use_and else (lambda a, b: Mux(a > b, a, b))
                level = [pick(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                         for i in range(0, len(level), 2)]
            pooled.append(level[0])
        m.d.comb += [self.o.valid.eq(window.o.valid), window.o.ready.eq(self.o.ready),
                     self.o.payload.eq(Cat(*pooled))]
        return m
