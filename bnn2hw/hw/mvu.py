"""Matrix-vector unit: PE × SIMD XNOR-popcount (or ±pixel) MAC with thresholds or class scores.

One component serves every dense layer. It takes a whole input vector per stream beat, computes
PE output channels × SIMD inputs per cycle from a weight ROM, and emits the whole output vector as
one beat: output bits (``Threshold``) or integer class scores plus their argmax (``Scores``).

Latency / throughput (K = NF·SF, NF = ⌈out/PE⌉, SF = ⌈in/SIMD⌉):
    * an input beat accepted in cycle t gives ``o.valid`` in cycle t + K + 2 (no stalls);
    * initiation interval K cycles: two input buffers let the next frame load while one computes,
      and the output register is refilled in the same cycle it is read.
Resources:
    * weight ROM NF·SF × PE·SIMD bits, threshold/affine ROM NF rows;
    * 2 input buffers (in × pixel bits) and one result + one output register (out bits or scores);
    * PE popcount (or signed adder) trees of SIMD inputs, PE accumulators and comparators.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .pe_array import PEArray, resize, tree_sum

__all__ = ["MVUParams", "MatrixVectorUnit", "scores_layout", "tree_sum", "argmax_chain"]


@dataclass(frozen=True)
class MVUParams:
    """Plain parameters of one unit (codegen builds these from the IR; see passes/pack.py for ROM rows)."""
    n_in: int
    n_out: int
    pe: int
    simd: int
    pixel_bits: int                      # 0: binary input; 1..8: unsigned pixels of that width
    weight_rows: tuple[int, ...]
    threshold_rows: tuple[int, ...] = ()
    threshold_width: int = 0             # signed width of thresholds (TW)
    scores: bool = False                 # last layer: scores + argmax instead of output bits
    score_width: int = 0
    scale_rows: tuple[int, ...] = ()     # affine head only
    offset_rows: tuple[int, ...] = ()
    scale_width: int = 0
    offset_width: int = 0

    def __post_init__(self):
        """Parameters are checked here, before any hardware object exists."""
        p = self
        for name in ("n_in", "n_out", "pe", "simd"):
            value = getattr(p, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not 0 <= p.pixel_bits <= 8:
            raise ValueError(f"pixel_bits must be 0 (binary input) or 1..8, not {p.pixel_bits!r}")
        if len(p.weight_rows) != p.cycles:
            raise ValueError(f"weight ROM must have {p.cycles} rows, not {len(p.weight_rows)}")
        if not p.scores and len(p.threshold_rows) != p.nf:
            raise ValueError(f"threshold ROM must have {p.nf} rows, not {len(p.threshold_rows)}")

    @property
    def nf(self) -> int:
        return -(-self.n_out // self.pe)

    @property
    def sf(self) -> int:
        return -(-self.n_in // self.simd)

    @property
    def cycles(self) -> int:
        return self.nf * self.sf

    @property
    def lane_bits(self) -> int:
        return self.pixel_bits or 1

    @property
    def acc_range(self) -> tuple[int, int]:
        if self.pixel_bits:
            d = (1 << self.pixel_bits) - 1
            return -self.n_in * d, self.n_in * d
        return 0, self.n_in

    @property
    def has_affine(self) -> bool:
        return bool(self.scale_rows)

    @property
    def class_width(self) -> int:
        return max(1, (self.n_out - 1).bit_length())

    @property
    def in_payload_bits(self) -> int:
        return self.n_in * self.lane_bits

    @property
    def out_payload_bits(self) -> int:
        return self.n_out * self.score_width + self.class_width if self.scores else self.n_out

    @property
    def cycles_per_frame(self) -> int:
        return self.cycles


def scores_layout(n_classes: int, score_width: int, class_width: int) -> data.StructLayout:
    """Payload of the last layer: ``scores`` (element 0 at the LSB) then ``cls``."""
    return data.StructLayout({
        "scores": data.ArrayLayout(signed(score_width), n_classes),
        "cls": unsigned(class_width),
    })


def argmax_chain(m: Module, values: list) -> Signal:
    """Index of the largest value, lowest index on ties; combinational compare chain."""
    best, idx = values[0], Const(0, max(1, (len(values) - 1).bit_length()))
    for i, v in enumerate(values[1:], start=1):
        take = Signal(name=f"argmax_take{i}")
        m.d.comb += take.eq(v > best)
        best = Mux(take, v, best)
        idx = Mux(take, i, idx)
    out = Signal(max(1, (len(values) - 1).bit_length()), name="argmax")
    m.d.comb += out.eq(idx)
    return out


class MatrixVectorUnit(wiring.Component):
    """See the module docstring for latency, throughput and resources.

    Members: ``i`` (stream of input vectors: ``n_in`` bits, or ``n_in`` pixels of ``pixel_bits``, element
    0 at the LSB) and ``o`` (stream of output vectors: ``n_out`` bits, or :func:`scores_layout`).
    """

    def __init__(self, params: MVUParams):
        p = params
        self._p = p
        out_shape = (scores_layout(p.n_out, p.score_width, p.class_width) if p.scores else unsigned(p.n_out))
        super().__init__({
            "i": In(stream.Signature(unsigned(p.n_in * p.lane_bits))),
            "o": Out(stream.Signature(out_shape)),
        })

    def elaborate(self, platform):
        p = self._p
        m = Module()
        lane_w = p.lane_bits
        word_w = p.simd * lane_w
        buf_w = p.sf * word_w
        lo, hi = p.acc_range
        acc_shape = signed(max(lo.bit_length(), hi.bit_length()) + 2) if p.pixel_bits else unsigned(hi.bit_length())

        # ---- two input buffers: one loads while the other is read by the issue stage ----
        bufs = [Signal(buf_w, name=f"in_buf{k}") for k in range(2)]
        full = [Signal(name=f"in_full{k}") for k in range(2)]
        wr_sel, rd_sel = Signal(), Signal()
        m.d.comb += self.i.ready.eq(~Mux(wr_sel, full[1], full[0]))
        with m.If(self.i.valid & self.i.ready):
            for k in range(2):
                with m.If(wr_sel == k):
                    m.d.sync += [bufs[k].eq(self.i.payload), full[k].eq(1)]
            m.d.sync += wr_sel.eq(~wr_sel)

        # ---- global stall: only when a finished frame meets a full output register ----
        advance = Signal()
        o_full = Signal()

        # ---- issue stage: counters address the ROMs and pick the SIMD word ----
        # Counters are at least 1 bit wide even when they only ever hold 0 (no zero-width wires).
        sf_ctr = Signal(range(max(2, p.sf)), name="sf_ctr")
        nf_ctr = Signal(range(max(2, p.nf)), name="nf_ctr")
        addr = Signal(range(max(2, p.cycles)), name="addr")
        frame_ready = Mux(rd_sel, full[1], full[0])
        issue = Signal()
        m.d.comb += issue.eq(advance & frame_ready)
        last_sf = sf_ctr == p.sf - 1
        last_beat = addr == p.cycles - 1
        with m.If(issue):
            m.d.sync += addr.eq(Mux(last_beat, 0, addr + 1))
            m.d.sync += sf_ctr.eq(Mux(last_sf, 0, sf_ctr + 1))
            with m.If(last_sf):
                m.d.sync += nf_ctr.eq(Mux(nf_ctr == p.nf - 1, 0, nf_ctr + 1))
            with m.If(last_beat):
                for k in range(2):
                    with m.If(rd_sel == k):
                        m.d.sync += full[k].eq(0)
                m.d.sync += rd_sel.eq(~rd_sel)

        # ROMs get at least two rows: a one-row memory has a zero-width address, which exports as an
        # illegal `wire [-1:0]` range. The extra row is never addressed.
        rom_rows = lambda rows: list(rows) + [0] * (2 - len(rows)) if len(rows) < 2 else list(rows)
        m.submodules.weights = wrom = Memory(shape=unsigned(p.pe * p.simd), depth=max(2, p.cycles),
                                             init=rom_rows(p.weight_rows))
        w_rd = wrom.read_port(domain="sync")
        m.d.comb += [w_rd.addr.eq(addr), w_rd.en.eq(advance)]
        chan_ports = {}
        for name, rows, width in (("thresholds", p.threshold_rows, p.threshold_width * p.pe),
                                  ("scales", p.scale_rows, p.scale_width * p.pe),
                                  ("offsets", p.offset_rows, p.offset_width * p.pe)):
            if rows:
                m.submodules[name] = rom = Memory(shape=unsigned(width), depth=max(2, p.nf), init=rom_rows(rows))
                port = rom.read_port(domain="sync")
                m.d.comb += [port.addr.eq(nf_ctr), port.en.eq(advance)]
                chan_ports[name] = port

        # ---- stage 1: ROM data is here; registered copies of the issue-stage control ----
        s1_valid, s1_first, s1_last = Signal(), Signal(), Signal()
        s1_nf = Signal(range(max(2, p.nf)))
        s1_sf = Signal(range(max(2, p.sf)))
        s1_x = Signal(word_w)
        cur_buf = Mux(rd_sel, bufs[1], bufs[0])
        with m.If(advance):
            m.d.sync += [s1_valid.eq(issue), s1_first.eq(sf_ctr == 0), s1_last.eq(last_sf),
                         s1_nf.eq(nf_ctr), s1_sf.eq(sf_ctr), s1_x.eq(self._select_word(m, cur_buf, sf_ctr, word_w))]

        tail = p.n_in - (p.sf - 1) * p.simd       # real lanes in the last SIMD word
        acc_w = Shape.cast(acc_shape).width
        m.submodules.pe_array = lanes = PEArray(p.pe, p.simd, p.pixel_bits, tail, acc_w)
        m.d.comb += [lanes.x.eq(s1_x), lanes.w.eq(w_rd.data), lanes.last_word.eq(s1_sf == p.sf - 1)]
        # All PE accumulators live in one wide register: one signal update per cycle in simulation.
        acc_all = Signal(p.pe * acc_w, name="acc")
        acc_next_all = Signal(p.pe * acc_w, name="acc_next")
        lane = lambda v, j: (v[j * acc_w:(j + 1) * acc_w].as_signed() if p.pixel_bits
                             else v[j * acc_w:(j + 1) * acc_w])
        m.d.comb += acc_next_all.eq(Cat(*(resize(Mux(s1_first, 0, lane(acc_all, j)) + lane(lanes.partial, j),
                                                 acc_w) for j in range(p.pe))))
        with m.If(advance & s1_valid):
            m.d.sync += acc_all.eq(acc_next_all)
        acc_next = [lane(acc_next_all, j) for j in range(p.pe)]

        # ---- per-neuron-fold results, collected until the frame is complete ----
        frame_done = Signal()
        m.d.comb += frame_done.eq(s1_valid & s1_last & (s1_nf == p.nf - 1))
        m.d.comb += advance.eq(~(frame_done & o_full & ~self.o.ready))

        if p.scores:
            lane_vals = self._scores(m, acc_next, chan_ports)
            field_w = p.score_width
        else:
            t_data = chan_ports["thresholds"].data
            lane_vals = [acc_next[j] >= t_data[j * p.threshold_width:(j + 1) * p.threshold_width].as_signed()
                         for j in range(p.pe)]
            field_w = 1
        res_w = p.nf * p.pe * field_w
        result = Signal(res_w, name="result")
        result_next = Signal(res_w, name="result_next")
        m.d.comb += result_next.eq(result)
        group_w = p.pe * field_w
        with m.If(s1_last):
            for k in range(p.nf):      # a decoder, not a variable-index write (lint-clean Verilog)
                with m.If(s1_nf == k):
                    m.d.comb += result_next[k * group_w:(k + 1) * group_w].eq(Cat(*lane_vals))
        with m.If(advance & s1_valid & s1_last):
            m.d.sync += result.eq(result_next)

        # ---- output register ----
        obuf = Signal(res_w, name="out_buf")
        m.d.comb += self.o.valid.eq(o_full)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += o_full.eq(0)
        with m.If(advance & frame_done):
            m.d.sync += [obuf.eq(result_next), o_full.eq(1)]
        if p.scores:
            scores = [obuf[c * field_w:(c + 1) * field_w].as_signed() for c in range(p.n_out)]
            m.d.comb += [self.o.payload.scores[c].eq(scores[c]) for c in range(p.n_out)]
            m.d.comb += self.o.payload.cls.eq(argmax_chain(m, scores))
        else:
            m.d.comb += self.o.payload.eq(obuf[:p.n_out])
        return m

    def _select_word(self, m: Module, buf, index, width: int):
        """buf[index*width +: width] as a mux tree (lint-clean, unlike a variable shift)."""
        if self._p.sf == 1:
            return buf[:width]
        words = [buf[k * width:(k + 1) * width] for k in range(self._p.sf)]
        # Cover every index value (unreachable ones repeat word 0) so the case statement is complete.
        words += [words[0]] * ((1 << len(index)) - len(words))
        return Array(words)[index]

    def _scores(self, m: Module, acc_next: list, ports: dict) -> list:
        p = self._p
        out = []
        for j in range(p.pe):
            raw = acc_next[j] if p.pixel_bits else 2 * acc_next[j] - p.n_in
            if p.has_affine:
                scale = ports["scales"].data[j * p.scale_width:(j + 1) * p.scale_width].as_signed()
                offset = ports["offsets"].data[j * p.offset_width:(j + 1) * p.offset_width].as_signed()
                raw = raw * scale + offset
            out.append(resize(raw, p.score_width, signed_value=True))
        return out
