"""Sliding-window unit: a raster stream of pixels in, one whole convolution window per beat out.

Input ``i``: one pixel per beat (C channels of ``elem_bits``, channel c in bits [c·eb, (c+1)·eb)),
raster order, frames back to back. Output ``o``: one window per beat, output positions in raster
order, elements in (ky, kx, c) order with c fastest (element e = (ky·kw + kx)·C + c), which is the
input vector of a matrix-vector unit and torch's ``weight.permute(0, 2, 3, 1).reshape(out, -1)``.
Padding is inserted here with ``pad_value``; it never travels on the input stream.

How it works. A writer stores input row g (counted across frames) in slot g mod R of a line buffer
of R rows: one ``Memory`` word per image column holds that column's pixel of every slot (one write
lane per slot). A reader scans, for each output row, the Ws = (ow−1)·sw + kw padded columns its
windows cover: it reads one column of all slots per cycle, picks the kh rows of the window (or the
pad code) and shifts them into a kh × kw window register, which is also the output register.
``fill`` (rows written − rows released) is the only coupling: the writer takes a pixel while a slot
is free (fill < R); the reader starts an output row once the rows its windows read are complete
(an output row wholly in the top padding waits for row 0), and after its last column releases the
rows no later window of the frame reads, including skipped rows (sh > kh) that may not have arrived
yet (fill then goes negative). Output rows in the bottom padding need no new input while the next
frame's first rows go into released slots, so frames overlap.

R = ``WindowParams.slots``: ``lookahead_rows`` (the rows an output row holds plus those the next one
reads, across the frame boundary too: 4 for 3×3/s1/p1, 6 for 3×3/p0, 4 for 2×2/s2 pooling), raised
where needed until the free-running rate below is reached (rare: narrow, padded images), plus
``extra_rows``. With lookahead_rows a reader throttled by its consumer never waits at a row or frame
boundary for rows that its producer could already have delivered.

Latency / throughput (oh, ow: output size, Ws as above):
    * an output row's columns are read one per cycle from 1 cycle after the last pixel of the last
      row it reads is accepted; the window whose last column is read in cycle t is on ``o`` in cycle
      t + 2 (synchronous read, then the window register). So the first window of a row follows that
      pixel by kw + 2 cycles, and the row's windows follow one every sw cycles;
    * free-running: exactly max(H·W, oh·Ws) cycles per frame (``cycles_per_frame``), no bubbles
      between frames: one pixel accepted per cycle, or one padded column scanned per cycle, whichever
      is the bottleneck. For sw = 1, Ws = W + 2·pw, so a padded stride-1 layer is scan-bound at
      oh·(W + 2·pw): 32·34 = 1088 cycles for 32×32 with 3×3/p1, 6 % over H·W;
    * output back-pressure stalls the reader only; the writer keeps filling free slots.
Resources:
    * line buffer: max(2, W) words × R·C·elem_bits bits, one write port with R lanes, one read port;
    * window register kh·kw·C·elem_bits bits; one R:1 pixel multiplexer per kernel row; counters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["WindowParams", "SlidingWindowUnit", "reference_windows"]


def _pair(name: str, value, lo: int, hi: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and lo <= v <= hi for v in pair):
        raise ValueError(f"{name} must be an integer or a pair of integers in {lo}..{hi}, not {value!r}")
    return pair


@dataclass(frozen=True)
class WindowParams:
    """Geometry of one sliding window; ``kernel``, ``stride`` and ``padding`` may be ints or (y, x) pairs."""
    height: int
    width: int
    channels: int
    elem_bits: int = 1                   # 1: binary activations (bit 0 means −1); 1..8: pixel codes
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)    # symmetric: rows top and bottom, columns left and right
    pad_value: int = 0                   # elem_bits-wide code of a padded tap (binary: 0 = −1)
    extra_rows: int = 0                  # line-buffer rows beyond `min_slots`, to absorb an upstream burst

    def __post_init__(self):
        """Parameters are checked (and ints widened to pairs) here, before any hardware object exists."""
        for name in ("height", "width", "channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(self.elem_bits, int) or not 1 <= self.elem_bits <= 8:
            raise ValueError(f"elem_bits must be an integer in 1..8, not {self.elem_bits!r}")
        object.__setattr__(self, "kernel", _pair("kernel", self.kernel, 1, 7))
        object.__setattr__(self, "stride", _pair("stride", self.stride, 1, 4))
        object.__setattr__(self, "padding", _pair("padding", self.padding, 0, 3))
        if not isinstance(self.pad_value, int) or not 0 <= self.pad_value < 1 << self.elem_bits:
            raise ValueError(f"pad_value must be an unsigned {self.elem_bits}-bit code, not {self.pad_value!r}")
        if not isinstance(self.extra_rows, int) or not 0 <= self.extra_rows <= 64:
            raise ValueError(f"extra_rows must be an integer in 0..64, not {self.extra_rows!r}")
        (kh, kw), (ph, pw) = self.kernel, self.padding
        if kh > self.height + 2 * ph or kw > self.width + 2 * pw:
            raise ValueError(f"kernel {kh}×{kw} does not fit the padded {self.height + 2 * ph}×"
                             f"{self.width + 2 * pw} image")

    @property
    def out_height(self) -> int:
        return (self.height + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1

    @property
    def out_width(self) -> int:
        return (self.width + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1

    @property
    def pixel_bits(self) -> int:
        return self.channels * self.elem_bits

    @property
    def window_bits(self) -> int:
        return self.kernel[0] * self.kernel[1] * self.pixel_bits

    @property
    def scan_width(self) -> int:
        """Padded columns the reader scans per output row (trailing columns no window covers are skipped)."""
        return (self.out_width - 1) * self.stride[1] + self.kernel[1]

    def row_spans(self) -> list[tuple[int, int, int]]:
        """Per output row: image rows [lo, hi) it waits for, and the first row it keeps (rows below are
        released after it). A row wholly in the top padding waits for row 0, so no window leaves early."""
        H, (kh, sh), ph = self.height, (self.kernel[0], self.stride[0]), self.padding[0]
        clamp = lambda v, floor=0: min(max(v, floor), H)
        spans = [(clamp(oy * sh - ph), clamp(oy * sh - ph + kh, 1)) for oy in range(self.out_height)]
        return [(lo, hi, spans[k + 1][0] if k + 1 < len(spans) else H) for k, (lo, hi) in enumerate(spans)]

    @property
    def lookahead_rows(self) -> int:
        """Rows held while an output row is read plus the rows the next one reads, across frames too:
        with this many slots a throttled reader never waits for rows an upstream could have sent."""
        spans = self.row_spans()
        pairs = zip(spans, spans[1:] + [(lo + self.height, hi + self.height, keep) for lo, hi, keep in spans[:1]])
        return max(2, *(hi_next - lo for (lo, _, _), (_, hi_next, _) in pairs))

    @cached_property
    def min_slots(self) -> int:
        """Default line-buffer depth: at least ``lookahead_rows``, and enough that the unit alone,
        free-running, reaches max(H·W, oh·Ws) cycles per frame."""
        first = self.lookahead_rows
        target = max(self.height * self.width, self.out_height * self.scan_width)
        for slots in range(first, first + self.height + sum(self.kernel) + sum(self.stride)):
            if _free_running_period(self, slots) == target:
                return slots
        return slots        # not reached in any geometry tried; cycles_per_frame then says the truth

    @property
    def slots(self) -> int:
        return self.min_slots + self.extra_rows

    @cached_property
    def cycles_per_frame(self) -> int:
        """Free-running initiation interval: max(H·W, oh·Ws) (input-bound or scan-bound)."""
        return _free_running_period(self, self.slots)


def _free_running_period(p: WindowParams, slots: int) -> int:
    """Steady-state cycles per frame with input always valid and output always ready.

    A row-level replay of the control in :class:`SlidingWindowUnit`: an input row takes W cycles once
    its slot is released; an output row takes Ws cycles once the rows it reads are complete; each side
    sees the other's update one cycle later. Tests check it against the simulated hardware.
    """
    H, W, ws, spans = p.height, p.width, p.scan_width, p.row_spans()
    done, freed, ends, end = [], [], [], -1     # per global input row: completion / release cycle
    for f in range(slots // H + 8):
        for lo, hi, keep in spans:
            while len(done) < f * H + hi:
                g = len(done)
                start = done[-1] + 1 if done else 0
                if g >= slots:
                    start = max(start, freed[g - slots] + 1)
                done.append(start + W - 1)
            end = max(end + 1, done[f * H + hi - 1] + 1) + ws - 1
            freed += [end] * (keep - lo)
        ends.append(end)
    periods = {b - a for a, b in zip(ends[-4:], ends[-3:])}
    return periods.pop() if len(periods) == 1 else max(periods)


def reference_windows(x, params: WindowParams) -> np.ndarray:
    """Windows of ``x`` (frames, H, W, C) integer codes → (frames, oh·ow, kh·kw·C), (ky, kx, c) order, padded."""
    p = params
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1:] != (p.height, p.width, p.channels):
        raise ValueError(f"input must have shape (frames, {p.height}, {p.width}, {p.channels}), not {x.shape}")
    (kh, kw), (sh, sw), (ph, pw) = p.kernel, p.stride, p.padding
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=p.pad_value)
    rows = [padded[:, oy * sh:oy * sh + kh, ox * sw:ox * sw + kw, :].reshape(len(x), -1)
            for oy in range(p.out_height) for ox in range(p.out_width)]
    return np.stack(rows, axis=1)


def _step(value, delta: int, modulus: int):
    """(value + delta) mod modulus for 0 <= value, delta < modulus."""
    if delta == 0:
        return value
    return Mux(value + delta >= modulus, value + delta - modulus, value + delta)


class SlidingWindowUnit(wiring.Component):
    """See the module docstring for latency, throughput and resources.

    Members: ``i`` (stream of pixels, ``C·elem_bits`` bits) and ``o`` (stream of windows,
    ``kh·kw·C·elem_bits`` bits, element (ky·kw + kx)·C + c at bits [e·elem_bits, (e+1)·elem_bits)).
    """

    def __init__(self, params: WindowParams):
        self._p = params
        super().__init__({
            "i": In(stream.Signature(unsigned(params.pixel_bits))),
            "o": Out(stream.Signature(unsigned(params.window_bits))),
        })

    def elaborate(self, platform):
        p = self._p
        m = Module()
        H, W, P, R = p.height, p.width, p.pixel_bits, p.slots
        (kh, kw), (sh, sw), (ph, pw) = p.kernel, p.stride, p.padding
        oh, ws = p.out_height, p.scan_width

        # A depth-1 memory would export a zero-width address; the extra row is never addressed.
        m.submodules.lines = lines = Memory(shape=unsigned(R * P), depth=max(2, W), init=[])
        wr = lines.write_port(granularity=P)
        rd = lines.read_port(domain="sync")

        # Rows written minus rows released. Rows no window reads (sh > kh, or below the last window) are
        # released when the reader passes them, possibly before they arrive: then fill is negative.
        spans = p.row_spans()
        fill = Signal(range(min(0, *(hi - keep for _, hi, keep in spans)), R + 1))
        row_done = Signal()
        released = Signal(range(max(keep - lo for lo, _, keep in spans) + 1))
        m.d.sync += fill.eq(fill + row_done - released)

        # ---- writer: input row g goes to slot g mod R ----
        wx = Signal(range(max(2, W)))
        wslot = Signal(range(R))
        accept = Signal()
        m.d.comb += [self.i.ready.eq(fill < R), accept.eq(self.i.valid & self.i.ready),
                     wr.addr.eq(wx), wr.data.eq(Cat(*([self.i.payload] * R))),
                     wr.en.eq(Cat(*(accept & (wslot == s) for s in range(R))))]
        with m.If(accept):
            with m.If(wx == W - 1):
                m.d.comb += row_done.eq(1)
                m.d.sync += [wx.eq(0), wslot.eq(_step(wslot, 1, R))]
            with m.Else():
                m.d.sync += wx.eq(wx + 1)

        # ---- reader, issue stage: output row oy covers image rows top..top+kh-1 (top = oy·sh − ph) ----
        top_last = (oh - 1) * sh - ph
        top = Signal(range(-4, max(top_last, 0) + 2), init=-ph)
        tslot = Signal(range(R), init=-ph % R)    # slot of image row `top` (mod R, also when top < 0)
        oy = Signal(range(max(2, oh)))
        xp = Signal(range(max(2, ws)))            # padded column
        phase = Signal(range(max(2, sw)))         # (xp − kw + 1) mod sw once xp >= kw − 1
        last_row, last_col = oy == oh - 1, xp == ws - 1

        def clamp(v, floor=0):
            return Mux(v < floor, floor, Mux(v > H, H, v))
        # Rows lo..hi-1 are in the window. An output row wholly in the top padding still waits for row 0,
        # so that no window of a frame leaves before the frame has begun.
        lo, hi = clamp(top), clamp(top + kh, floor=1)
        next_lo = Mux(last_row, H, clamp(top + sh))
        need = hi - lo

        advance, issue, win_valid = Signal(), Signal(), Signal()
        m.d.comb += [advance.eq(~win_valid | self.o.ready), issue.eq(advance & (fill >= need))]
        # `xp >= 0` would be a constant comparison, which Verilator's lint rejects.
        at_least = lambda v, n: v >= n if n > 0 else Const(1)
        col_valid = at_least(xp, pw) & (xp < pw + W)
        past_first = at_least(xp, kw - 1)         # the window register holds a whole window
        m.d.comb += [rd.addr.eq(Mux(col_valid, xp - pw, 0)), rd.en.eq(advance)]

        with m.If(issue):
            with m.If(past_first):
                m.d.sync += phase.eq(_step(phase, 1, sw))
            with m.If(last_col):
                m.d.comb += released.eq(next_lo - lo)
                m.d.sync += [xp.eq(0), phase.eq(0)]
                with m.If(last_row):
                    m.d.sync += [oy.eq(0), top.eq(-ph), tslot.eq(_step(tslot, (H - ph - top_last) % R, R))]
                with m.Else():
                    m.d.sync += [oy.eq(oy + 1), top.eq(top + sh), tslot.eq(_step(tslot, sh % R, R))]
            with m.Else():
                m.d.sync += xp.eq(xp + 1)

        # ---- stage 1: the column is on rd.data; registered per-tap slot and validity ----
        s1_valid, s1_emit = Signal(), Signal()
        s1_tap = Signal(kh)
        s1_slot = [Signal(range(R), name=f"s1_slot{ky}") for ky in range(kh)]
        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_emit.eq(past_first & (phase == 0)),
                         s1_tap.eq(Cat(*(col_valid & (top + ky >= 0) & (top + ky < H) for ky in range(kh))))]
            m.d.sync += [s1_slot[ky].eq(_step(tslot, ky % R, R)) for ky in range(kh)]

        # ---- stage 2: shift the column into the window register (the output register) ----
        lanes = [rd.data[s * P:(s + 1) * P] for s in range(R)]
        lanes += [lanes[0]] * ((1 << len(s1_slot[0])) - R)    # complete case statements
        pad_pixel = Const(sum(p.pad_value << (c * p.elem_bits) for c in range(p.channels)), P)
        column = Cat(*(Mux(s1_tap[ky], Array(lanes)[s1_slot[ky]], pad_pixel) for ky in range(kh)))
        cols = [Signal(kh * P, name=f"win_col{kx}") for kx in range(kw)]
        with m.If(advance):
            m.d.sync += win_valid.eq(s1_valid & s1_emit)
            with m.If(s1_valid):
                m.d.sync += [cols[kx].eq(cols[kx + 1]) for kx in range(kw - 1)]
                m.d.sync += cols[kw - 1].eq(column)
        m.d.comb += [self.o.valid.eq(win_valid),
                     self.o.payload.eq(Cat(*(cols[kx][ky * P:(ky + 1) * P] for ky in range(kh) for kx in range(kw))))]
        return m
