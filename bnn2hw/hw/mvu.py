"""Matrix-vector unit: PE × SIMD XNOR-popcount (±pixel, or integer code) MAC with thresholds or class scores.

One component serves every dense layer. It takes a whole input vector per stream beat, computes
PE output channels × SIMD inputs per cycle from a weight ROM, and emits the whole output vector as
one beat: output bits (``Threshold``) or integer class scores plus their argmax (``Scores``).
1-bit pixels are ±1 values, as binary inputs are: they take the XNOR-popcount datapath too, with
the thresholds moved onto popcounts (2p − N ≥ T ⇔ p ≥ ⌈(T + N)/2⌉) by the plan, which hands the
unit every ROM in its final form (bnn2hw/plan/layer.py).

Multi-bit precision (``MVUParams.codes``, ``weight_precision``, ``levels``): with ``codes`` the input
lanes are unsigned ``pixel_bits``-bit integers x and the weights signed integers w of
``weight_precision`` bits (1: ±1, bit 1 = +1; k ≥ 2: k-bit two's complement, ternary = 2), and the
PE accumulates A_j = Σ_s w_js · x_s exactly (hw/pe_array.py). With ``levels`` L ≥ 2 a threshold layer's
accumulator starts at 0 and channel j outputs q_j = Σ_k [A_j ≥ T_jk] over its L thresholds (a
comparator bank on the final accumulator value, in the stage where L = 1 takes the sign bit), an
unsigned field of ``out_bits`` = max(1, L.bit_length()) bits, channel c at bits [c·out_bits, …).
A is the datapath's accumulator: the popcount for XNOR lanes, Σ ±(2x − D) for pixels, Σ w·x for codes.

Latency / throughput (K = NF·SF, NF = ⌈out/PE⌉, SF = ⌈in/SIMD⌉, P = ``MVUParams.pipeline``):
    * an input beat offered in cycle t gives ``o.valid`` in cycle t + K + 2 + P (no stalls): input
      buffer, ROM read, P pipeline registers in the PE array, output register
      (``MVUParams.latency_cycles``; one cycle less without an input buffer);
    * initiation interval K cycles for every P: two input buffers let the next frame load while one
      computes, the pipeline takes a new word every cycle, and the output register is refilled in
      the same cycle it is read;
    * codes, weight precision and L thresholds change none of this: the comparator bank is
      combinational on the last accumulator value, where L = 1 takes the sign bit.
Resources:
    * weight ROM NF·SF × PE·SIMD·``weight_precision`` bits, threshold/affine ROM NF rows (PE·L
      threshold fields per row; ``rom_style``: block RAM, LUT RAM or logic, by the target);
    * ``input_buffers`` (2, 1 or 0) input buffers (in × pixel bits), one result shift register
      ((NF − 1)·PE bits or scores) and one output register (out bits or scores), P × (PE partial sums + control)
      pipeline flip-flops;
    * PE popcount (or signed adder) trees of SIMD inputs shaped for the target's LUT size
      (hw/pe_array.py) and PE accumulators. Threshold layers start each accumulator at −T (the ROM
      holds −T), so the output bit is the accumulator's sign: no comparator;
    * codes: PE × ``weight_precision`` adder trees of SIMD ``pixel_bits``-bit lanes (one weight bit
      plane each, hw/pe_array.py);
    * L ≥ 2 thresholds, as the target chooses (``search_stages``, bnn2hw/plan/target.py):
      - a comparator bank (``search_stages`` = 0): L comparators of acc_width bits per PE and an adder
        of their L result bits, on the final accumulator value, in the stage where L = 1 takes the sign
        bit; the threshold ROM has PE·L fields per row. For FINN's W1A2/W2A2 layers (L = 2 or 3) and up
        to 4-bit outputs (L = 15) this is the smaller and shallower form: L parallel comparators are one
        carry chain deep each, with no extra register stage or ROM;
      - a pipelined binary search (``search_stages`` = B = out_bits, for wider outputs): stage t
        compares A with one threshold, T_m, m = (2·prefix + 1)·2^(B−1−t), chosen by the t bits of q
        decided before it, and adds one bit. Stage 0 reads the threshold ROM (PE fields, T_{2^(B−1)});
        stage t ≥ 1 reads one ROM per PE of NF·2^t rows of one field, addressed by (nf, prefix) in the
        stage before. B comparators and B·PE·(acc_width + B) flip-flops instead of 2^B − 1 comparators
        (255 per PE for 8 bits, whose ROM row of PE·255 fields no block RAM holds); B cycles more
        latency, the same initiation interval. Missing thresholds (m > L) hold acc_max + 1, never reached;
      the result and output registers hold out_bits per channel.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..ir.arith import folds, index_width
from .pe_array import PEArray, pipeline_stages, resize, tree_depth, tree_levels, tree_sum

__all__ = ["MVUParams", "MatrixVectorUnit", "scores_layout", "tree_sum", "argmax_tree", "ROM_STYLES",
           "extra_cycles", "output_slots", "class_stages", "datapath_pixel_bits", "UnitShape"]

#: Values of ``MVUParams.rom_style``: "" lets synthesis choose; the others become Yosys' ``rom_style``
#: attribute on the memory ("block": block RAM, "distributed": LUT RAM, "logic": LUTs).
ROM_STYLES = ("", "block", "distributed", "logic")


def datapath_pixel_bits(pixel_bits: int) -> int:
    """Pixel bits of the PE array's lanes for ``pixel_bits``-bit inputs (0: binary). Binary input and
    1-bit pixels give 0, the XNOR-popcount datapath: Σ ±(2x − 1) over N lanes is 2·popcount(XNOR(w, x))
    − N, so thresholds and scores are mapped onto popcounts; wider pixels take the ±pixel sum."""
    return 0 if pixel_bits <= 1 else pixel_bits


def extra_cycles(input_buffers: int, pipeline: int, search_stages: int = 0, rom_registers: int = 0,
                 compare_register: bool = False, class_stages: int = 0) -> int:
    """Cycles a unit's latency adds to its K compute cycles: the input buffer load (if any), the ROM
    read and its ``rom_registers`` output registers, ``pipeline`` PE-array stages, the accumulator,
    a binary search's ``search_stages`` − 1 stages after it, the comparator (or affine) register, the
    class tournament's ``class_stages`` and the output register. The one latency rule of a unit."""
    return ((1 if input_buffers else 0) + 2 + rom_registers + pipeline + max(0, search_stages - 1)
            + int(compare_register) + class_stages)


def output_slots(latency: int, cycles: int, consumer_cycles: int = 1, consumer_buffers: int | None = None) -> int:
    """Output slots Q of a unit (``MVUParams.out_slots``) so that its credits never cost throughput.

    A unit issues the last word of a vector only while fewer than Q of its vectors are issued and not
    yet taken by its consumer (the credits), so its pipeline never stalls; a vector is on ``o``
    ``latency`` (L) cycles after its last word is issued, and a credit comes back the cycle after the
    consumer takes the vector. With K = ``cycles`` (the unit's interval) and K_c = ``consumer_cycles``:

    * a consumer that takes a beat as soon as it is offered (a stream unit, the network's output;
      ``consumer_buffers`` None): Q = 1 + ⌊L / K⌋;
    * a matrix-vector unit reading its words from the held beat (``consumer_buffers`` 0) holds it K_c
      cycles: Q = 1 + max(⌊(L + K_c − 1) / K⌋, ⌈L / K_c⌉) (the second term: the consumer is the
      slower one and must find the next vector ready when it takes one);
    * a matrix-vector unit with input buffers takes the beat into a buffer when one is free:
      Q = max(1 + ⌊L / K⌋, ⌈(L + 1) / K_c⌉).

    Q = 1 (the output register alone) wherever K and K_c exceed the latency, as in every FINN network."""
    lp, k, kc = latency, max(1, cycles), max(1, consumer_cycles)
    if consumer_buffers is None:
        return 1 + lp // k
    if consumer_buffers == 0:
        return 1 + max((lp + kc - 1) // k, -(-lp // kc))
    return max(1 + lp // k, -(-(lp + 1) // kc))


def class_stages(n_classes: int, levels_per_stage: int) -> int:
    """Register stages of a pipelined class tournament: ⌈⌈log2 classes⌉ / levels_per_stage⌉ (0: none,
    the tournament is combinational after the output register)."""
    return -(-tree_depth(n_classes) // levels_per_stage) if levels_per_stage > 0 else 0


class UnitShape:
    """The shape of a PE × SIMD unit from ``n_in``, ``n_out``, ``pe``, ``simd`` and ``pixel_bits``:
    shared by the unit's parameters (:class:`MVUParams`) and its plan (bnn2hw.plan.LayerPlan)."""

    @property
    def nf(self) -> int:
        return folds(self.n_out, self.pe)

    @property
    def sf(self) -> int:
        return folds(self.n_in, self.simd)

    @property
    def cycles(self) -> int:
        """K = NF·SF: cycles per input vector, the unit's initiation interval."""
        return self.nf * self.sf

    @property
    def lane_bits(self) -> int:
        return self.pixel_bits or 1

    @property
    def pe_pixel_bits(self) -> int:
        """Pixel bits of the PE array's lanes (:func:`datapath_pixel_bits`)."""
        return datapath_pixel_bits(self.pixel_bits)

    @property
    def xnor_lanes(self) -> bool:
        return not self.pe_pixel_bits

    @property
    def class_width(self) -> int:
        return index_width(self.n_out)


@dataclass(frozen=True)
class MVUParams(UnitShape):
    """Plain parameters of one unit, every width and ROM image already decided: bnn2hw.plan derives
    them from a folded layer (its ROM layout: bnn2hw/plan/rom.py). Nothing here is re-derived."""
    n_in: int
    n_out: int
    pe: int
    simd: int
    pixel_bits: int                      # 0: binary input; 1..8: unsigned pixels (or codes) of that width
    weight_rows: tuple[int, ...]
    acc_width: int = 0                   # PE accumulator bits (signed, or unsigned for a binary scores head)
    threshold_rows: tuple[int, ...] = ()  # −T per channel, the accumulator's start value (a popcount
                                         # threshold with 1-bit pixels): PE fields of threshold_width bits;
                                         # levels L ≥ 2: T_jk (ascending) in field j·L + k of PE·L fields
    threshold_width: int = 0             # signed width of the −T (or T_jk) fields
    scores: bool = False                 # last layer: scores + argmax instead of output bits
    score_width: int = 0
    scale_rows: tuple[int, ...] = ()     # affine head only: a scale per class (none: score_scale for all)
    offset_rows: tuple[int, ...] = ()
    score_scale: int = 1                 # affine head without scale rows: one constant scale for every class
    scale_width: int = 0
    offset_width: int = 0
    class_index: bool = True             # scores head: also drive o.payload.cls (0 when False)
    # ---- target shaping (bnn2hw/plan/target.py); the defaults keep the generic behaviour ----
    lut_inputs: int = 6                  # popcount tree for 6-input (Xilinx) or 4-input (iCE40, ECP5) LUTs
    compressor: bool = False             # popcount as a Wallace tree of LUT-sized compressors (Xilinx, ECP5)
    carry_adders: bool = False           # popcount as a carry-chain adder tree (iCE40)
    pipeline: int = 0                    # register stages in the PE array (latency + pipeline, same II)
    levels_per_stage: int = 0            # > 0: the PE trees get a register every this many levels (then
                                         # pipeline = 1 + ⌊(levels − 1)/N⌋); 0: `pipeline` stages spread
    rom_registers: int = 0               # registers after every ROM read (the first: a block RAM's own
                                         # output register where the family has one)
    compare_register: bool = False       # a register after the comparator bank / the affine score
    class_levels_per_stage: int = 0      # scores head: > 0: the class tournament is pipelined, a register
                                         # every this many compare-and-select levels; 0: combinational
    out_slots: int = 0                   # output slots Q (output_slots()); 0: sized for a consumer that
                                         # takes a beat as soon as it is offered
    rom_style: str = ""                  # weight ROM: "" (synthesis decides), "block", "distributed", "logic"
    const_rom_style: str = ""            # threshold / scale / offset ROMs, same choices
    input_buffers: int = 2               # 2: the next vector loads while one computes; 1: the producer's
                                         # output register holds it (same II, half the buffer registers);
                                         # 0: words are read from the held input beat itself (no buffer)
    onehot_select: bool = False          # pick the SIMD word with a one-hot ring (AND-OR, SF flip-flops)
                                         # instead of a multiplexer on the word counter (LUT4 targets)
    # ---- multi-bit precision (module docstring); the defaults keep the binary / pixel datapaths ----
    codes: bool = False                  # lanes are unsigned pixel_bits-bit codes x: A = Σ w·x exactly
    weight_precision: int = 1            # weight ROM bits per weight: 1: ±1 (bit 1 = +1); k ≥ 2 (codes
                                         # only): k-bit two's complement (2: ternary)
    levels: int = 1                      # thresholds per channel L: 1: output bit A ≥ T (start at −T);
                                         # 2..255 (threshold layers): q = Σ_k [A ≥ T_k], out_bits wide
    search_stages: int = 0               # L ≥ 2: 0 = a bank of L comparators; B = out_bits: a pipelined
                                         # binary search, one comparator per stage (module docstring)
    search_rows: tuple[tuple[tuple[int, ...], ...], ...] = ()   # stage t = 1 .. B − 1, lane j: NF·2^t
                                         # rows of one threshold_width field, row nf·2^t + prefix

    def __post_init__(self):
        """Parameters are checked here, before any hardware object exists."""
        p = self
        for name in ("n_in", "n_out", "pe", "simd", "acc_width"):
            value = getattr(p, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not 0 <= p.pixel_bits <= 8:
            raise ValueError(f"pixel_bits must be 0 (binary input) or 1..8, not {p.pixel_bits!r}")
        if len(p.weight_rows) != p.cycles:
            raise ValueError(f"weight ROM must have {p.cycles} rows, not {len(p.weight_rows)}")
        if not p.scores and len(p.threshold_rows) != p.nf:
            raise ValueError(f"threshold ROM must have {p.nf} rows, not {len(p.threshold_rows)}")
        if not p.scores and p.threshold_width < 1:
            raise ValueError(f"threshold_width must be a positive integer, not {p.threshold_width!r}")
        if not isinstance(p.onehot_select, bool):
            raise ValueError(f"onehot_select must be True or False, not {p.onehot_select!r}")
        if p.input_buffers not in (0, 1, 2):
            raise ValueError(f"input_buffers must be 0, 1 or 2, not {p.input_buffers!r}")
        if p.lut_inputs not in (4, 5, 6):
            raise ValueError(f"lut_inputs must be 4, 5 or 6, not {p.lut_inputs!r}")
        # A target that cuts every N tree levels gives a unit as many stages as its trees need: a
        # 1,024-lane 8-bit tree cut after every level is about 20 (the bound only catches nonsense).
        if not isinstance(p.pipeline, int) or not 0 <= p.pipeline <= 32:
            raise ValueError(f"pipeline must be 0..32 register stages, not {p.pipeline!r}")
        for name in ("rom_style", "const_rom_style"):
            if getattr(p, name) not in ROM_STYLES:
                raise ValueError(f"{name} must be one of {ROM_STYLES}, not {getattr(p, name)!r}")
        if not isinstance(p.codes, bool):
            raise ValueError(f"codes must be True or False, not {p.codes!r}")
        if p.codes and p.pixel_bits < 1:
            raise ValueError("codes=True needs pixel_bits 1..8 (the unsigned code width), not 0")
        if not isinstance(p.weight_precision, int) or not 1 <= p.weight_precision <= 8:
            raise ValueError(f"weight_precision must be an integer in 1..8, not {p.weight_precision!r}")
        if p.weight_precision > 1 and not p.codes:
            raise ValueError(f"weight_precision {p.weight_precision} needs codes=True (the XNOR and ±pixel "
                             "datapaths take 1-bit weights)")
        if not isinstance(p.levels, int) or not 1 <= p.levels <= 255:
            raise ValueError(f"levels must be an integer in 1..255, not {p.levels!r}")
        if p.levels > 1 and p.scores:
            raise ValueError(f"levels {p.levels} is for threshold layers; a scores head has no thresholds")
        if p.search_stages not in (0, p.out_bits) or (p.search_stages and p.levels < 2):
            raise ValueError(f"search_stages must be 0 (comparator bank) or out_bits = {p.out_bits} with levels "
                             f">= 2, not {p.search_stages!r}")
        if p.search_stages:
            shape = tuple((p.nf << t,) * p.pe for t in range(1, p.search_stages))
            if tuple(tuple(len(lane) for lane in stage) for stage in p.search_rows) != shape:
                raise ValueError(f"search_rows must hold, for stages 1..{p.search_stages - 1}, {p.pe} lanes of "
                                 "NF·2^stage rows each")
        for name in ("levels_per_stage", "class_levels_per_stage"):
            value = getattr(p, name)
            if not isinstance(value, int) or not 0 <= value <= 16:
                raise ValueError(f"{name} must be an integer in 0..16, not {value!r}")
        if not isinstance(p.rom_registers, int) or not 0 <= p.rom_registers <= 4:
            raise ValueError(f"rom_registers must be an integer in 0..4, not {p.rom_registers!r}")
        for name in ("compare_register",):
            if not isinstance(getattr(p, name), bool):
                raise ValueError(f"{name} must be True or False, not {getattr(p, name)!r}")
        if p.levels_per_stage and p.pipeline != pipeline_stages(p.tree_levels, p.levels_per_stage):
            raise ValueError(f"pipeline must be {pipeline_stages(p.tree_levels, p.levels_per_stage)} for trees of "
                             f"{p.tree_levels} levels cut every {p.levels_per_stage}, not {p.pipeline!r}")
        if not isinstance(p.out_slots, int) or not 0 <= p.out_slots <= 64:
            raise ValueError(f"out_slots must be an integer in 0..64 (0: automatic), not {p.out_slots!r}")

    @property
    def acc_signed(self) -> bool:
        """Threshold layers start at −T (or compare signed thresholds), and pixel and code sums are
        signed; only a binary scores head's popcount is not."""
        return bool(self.pe_pixel_bits) or not self.scores or self.codes

    @property
    def out_bits(self) -> int:
        """Bits per output channel of a threshold layer: 1, or q = 0..L for L ≥ 2 thresholds."""
        return max(1, self.levels.bit_length())

    @property
    def has_affine(self) -> bool:
        return bool(self.scale_rows or self.offset_rows)

    @property
    def in_payload_bits(self) -> int:
        return self.n_in * self.lane_bits

    @property
    def out_payload_bits(self) -> int:
        return self.n_out * self.score_width + self.class_width if self.scores else self.n_out * self.out_bits

    @property
    def cycles_per_frame(self) -> int:
        return self.cycles

    @property
    def threshold_fields(self) -> int:
        """Fields per row of the threshold ROM: PE·L for a comparator bank, else PE (a binary search's
        first stage, or one threshold)."""
        return self.pe * (self.levels if self.levels > 1 and not self.search_stages else 1)

    @property
    def tree_levels(self) -> int:
        """Levels of the PE array's trees (hw/pe_array.tree_levels), where pipeline registers may go."""
        return tree_levels(self.simd, self.pixel_bits if self.codes else self.pe_pixel_bits, self.lut_inputs,
                           self.compressor and not self.carry_adders, self.carry_adders, self.codes,
                           self.weight_precision)

    @property
    def class_stages(self) -> int:
        """Stages of the pipelined class tournament (:func:`class_stages`; 0 without one)."""
        return class_stages(self.n_out, self.class_levels_per_stage) if self.scores and self.class_index else 0

    @property
    def pipeline_cycles(self) -> int:
        """Cycles beyond the K compute cycles (:func:`extra_cycles`)."""
        return extra_cycles(self.input_buffers, self.pipeline, self.search_stages, self.rom_registers,
                            self.compare_register, self.class_stages)

    @property
    def output_latency(self) -> int:
        """Cycles from the issue of a vector's last word to its ``o.valid``: the credit loop's length."""
        return extra_cycles(0, self.pipeline, self.search_stages, self.rom_registers, self.compare_register,
                            self.class_stages) + 1

    @property
    def slots(self) -> int:
        """Output slots Q: ``out_slots``, or (0) as many as a consumer that takes each beat at once needs."""
        return self.out_slots or output_slots(self.output_latency, self.cycles)

    @property
    def latency_cycles(self) -> int:
        """From the cycle an input beat is offered to an idle unit to ``o.valid``, with no stalls."""
        return self.cycles + self.pipeline_cycles

    @property
    def weight_rom_bits(self) -> int:
        return self.cycles * self.pe * self.simd * self.weight_precision

    @property
    def const_rom_bits(self) -> int:
        thresholds = self.nf * self.threshold_width * (self.pe * ((1 << self.search_stages) - 1)
                                                         if self.search_stages else self.threshold_fields)
        return thresholds + self.nf * self.pe * (self.scale_width + self.offset_width)


def scores_layout(n_classes: int, score_width: int, class_width: int) -> data.StructLayout:
    """Payload of the last layer: ``scores`` (element 0 at the LSB) then ``cls``."""
    return data.StructLayout({
        "scores": data.ArrayLayout(signed(score_width), n_classes),
        "cls": unsigned(class_width),
    })


def _matches(level: list, count: int, m: Module, depth: int) -> tuple[list, int]:
    """``count`` levels of the class tournament over (value, index) pairs (see :func:`argmax_tree`)."""
    for _ in range(count):
        if len(level) <= 1:
            break
        nxt = []
        for k in range(0, len(level) - 1, 2):
            (lo, lo_i), (hi, hi_i) = level[k], level[k + 1]
            take = Signal(name=f"argmax_take{depth}_{k // 2}")
            m.d.comb += take.eq(hi > lo)
            nxt.append((Mux(take, hi, lo), Mux(take, hi_i, lo_i)))
        if len(level) % 2:
            nxt.append(level[-1])
        level, depth = nxt, depth + 1
    return level, depth


def argmax_tree(m: Module, values: list) -> Signal:
    """Index of the largest value, lowest index on ties; combinational. A tournament of ⌈log2 n⌉
    compare-and-select levels (a chain was n − 1 levels: 31 ns of TFC's ECP5 critical path for 10
    classes). Each match keeps the lower-index side unless the other is strictly greater, so every
    subtree's winner is its maximum with the lowest index, and so is the whole tree's."""
    idx_w = index_width(len(values))
    level, _ = _matches([(v, Const(i, idx_w)) for i, v in enumerate(values)], tree_depth(len(values)), m, 0)
    out = Signal(idx_w, name="argmax")
    m.d.comb += out.eq(level[0][1])
    return out


class _Datapath:
    """The signals the stages of one unit share while it is elaborated (a plain namespace)."""


class MatrixVectorUnit(wiring.Component):
    """One dense layer's PE × SIMD unit; latency, throughput and resources: the module docstring.

    Parameters
    ----------
    params : :class:`MVUParams`
        Every width and ROM image, as bnn2hw.plan decided them.

    Members
    -------
    i : In(stream.Signature(n_in · lane bits))
        Input vectors: ``n_in`` bits, or ``n_in`` pixels of ``pixel_bits``, element 0 at the LSB.
    o : Out(stream.Signature(n_out · out_bits or :func:`scores_layout`))
        Output vectors: ``n_out`` bits (``n_out`` fields of ``out_bits`` for L ≥ 2 thresholds), or
        the class scores and their argmax.

    ``elaborate`` builds the unit stage by stage, in stream order, one method each: input buffers,
    the issue stage (counters, credits, word select, weight ROM), the first stage and the ROM
    register, the PE array's pipeline control, the per-channel constant ROMs, the PE array and
    accumulators, and the output stages (thresholds or scores, the result register, the class
    tournament, the output slots). Only the issue stage ever waits; every stage after it runs
    every cycle, its data marked by a valid flag that travels beside it.
    """

    def __init__(self, params: MVUParams):
        p = params
        self._p = p
        out_shape = (scores_layout(p.n_out, p.score_width, p.class_width) if p.scores
                     else unsigned(p.out_payload_bits))
        super().__init__({
            "i": In(stream.Signature(unsigned(p.n_in * p.lane_bits))),
            "o": Out(stream.Signature(out_shape)),
        })

    def elaborate(self, platform):
        m, d = Module(), _Datapath()
        d.m = m
        self._input_buffers(m, d)
        self._issue(m, d)
        self._first_stage(m, d)
        self._pipeline_control(m, d)
        self._constant_roms(m, d)
        self._accumulate(m, d)
        self._collect_and_output(m, d)
        return m

    @staticmethod
    def _rom_attrs(style: str):
        return {"rom_style": style} if style else None

    @staticmethod
    def _rom_rows(rows) -> list[int]:
        """ROMs get at least two rows: a one-row memory has a zero-width address, which exports as an
        illegal `wire [-1:0]` range. The extra row is never addressed."""
        return list(rows) + [0] * (2 - len(rows)) if len(rows) < 2 else list(rows)

    @staticmethod
    def _delay(m: Module, value, cycles: int, name: str, reset_less: bool = True):
        """``value`` through ``cycles`` free-running registers (the stages after the issue stage never wait)."""
        for k in range(cycles):
            reg = Signal(len(value), name=f"{name}_d{k + 1}", reset_less=reset_less)
            m.d.sync += reg.eq(value)
            value = reg
        return value

    def _input_buffers(self, m: Module, d: _Datapath) -> None:
        """With two buffers one loads while the other is read by the issue stage; with one, the next
        vector loads in the cycle the last word of the current one is issued (its producer holds it
        until then, so its output register is the second buffer); with none, the words are read from
        the input beat, which a stream producer holds until it is taken, and the beat is taken in the
        cycle its last word is issued."""
        p = self._p
        d.word_w = p.simd * p.lane_bits
        d.buf_w = p.sf * d.word_w
        d.nbuf = nbuf = p.input_buffers
        d.bufs = [Signal(d.buf_w, name=f"in_buf{k}", reset_less=True) for k in range(nbuf)]
        d.full = [Signal(name=f"in_full{k}") for k in range(nbuf)]
        d.wr_sel, d.rd_sel = Signal(name="wr_sel"), Signal(name="rd_sel")
        d.refill = Signal(name="refill")     # the current vector's last word is issued this cycle
        if nbuf == 2:
            m.d.comb += self.i.ready.eq(~Mux(d.wr_sel, d.full[1], d.full[0]))
        # (one buffer: i.ready is set in _issue, from the credit)
        else:
            # No buffer: the beat is taken when its last word is issued (issue implies i.valid). i.ready
            # is one LUT of flip-flops (valid, last_beat, the credit count): no ready chain crosses units.
            m.d.comb += self.i.ready.eq(d.refill)
        with m.If(self.i.valid & self.i.ready):
            for k in range(nbuf):
                with m.If(d.wr_sel == k):
                    m.d.sync += [d.bufs[k].eq(self.i.payload), d.full[k].eq(1)]
            if nbuf == 2:
                m.d.sync += d.wr_sel.eq(~d.wr_sel)

    def _issue(self, m: Module, d: _Datapath) -> None:
        """Counters address the ROMs and pick the SIMD word; the weight ROM is read here. A word is
        issued when its vector is there, and a vector's last word only while the unit holds a credit
        (fewer than ``slots`` of its vectors issued and not taken): this is the unit's only wait."""
        p, nbuf, full = self._p, d.nbuf, d.full
        # With the one-hot word ring and at least one stage before the accumulator, the issue stage
        # needs no word or group counter: the ring gives the first and last word of a group, and the
        # group index (for the constant ROMs) is counted a stage later from registered flags
        # (_first_stage), so nothing but the address counter hangs on ``issue``.
        d.late_nf = late = p.onehot_select and p.pipeline + p.rom_registers >= 1
        # Counters are at least 1 bit wide even when they only ever hold 0 (no zero-width wires).
        d.sf_ctr = sf_ctr = None if late else Signal(range(max(2, p.sf)), name="sf_ctr")
        d.nf_ctr = nf_ctr = None if late else Signal(range(max(2, p.nf)), name="nf_ctr")
        addr = Signal(range(max(2, p.cycles)), name="addr")
        frame_ready = Mux(d.rd_sel, full[1], full[0]) if nbuf == 2 else full[0] if nbuf == 1 else self.i.valid
        # "addr is the frame's last word" as a flag, not a comparator: it decides i.ready.
        if p.cycles == 1:
            last_beat = Const(1)
        else:
            last_beat = Signal(name="last_beat")
        d.last_beat = last_beat
        # Credits: vectors whose last word is issued and that the consumer has not taken yet.
        slots = p.slots
        d.pending = pending = Signal(range(slots + 1), name="pending")
        d.credit = credit = Signal(name="credit")
        m.d.comb += credit.eq(pending < slots)
        d.issue = issue = Signal(name="issue")
        m.d.comb += issue.eq(frame_ready & (~last_beat | credit))
        if nbuf == 1:
            # = ~full | refill, written from flip-flops (refill = full & last_beat & credit)
            m.d.comb += self.i.ready.eq(~full[0] | (last_beat & credit))
        # "the last word of a group" and "the last group" as flags too: the counters' enables and
        # next values are then one LUT (and a carry chain) from flip-flops.
        # One-hot copy of the word index: bit k is 1 while word k is issued (see _select_word).
        d.word_hot = word_hot = Signal(p.sf, init=1, name="word_hot") if p.onehot_select and p.sf > 1 else None
        if late:
            d.last_sf = last_sf = word_hot[-1] if word_hot is not None else Const(1)
            d.first_word = word_hot[0] if word_hot is not None else Const(1)
        else:
            d.last_sf = last_sf = Const(1) if p.sf == 1 else Signal(name="last_sf")
            d.first_word = sf_ctr == 0
            last_nf = Const(1) if p.nf == 1 else Signal(name="last_nf")
        if p.cycles > 1:
            with m.If(issue):
                m.d.sync += last_beat.eq(~last_beat & (addr == p.cycles - 2))
                if p.sf > 1 and not late:
                    m.d.sync += last_sf.eq(~last_sf & (sf_ctr == p.sf - 2))
                if p.nf > 1 and not late:
                    with m.If(last_sf):
                        m.d.sync += last_nf.eq(~last_nf & (nf_ctr == p.nf - 2))
        with m.If(issue):
            if word_hot is not None:
                m.d.sync += word_hot.eq(word_hot.rotate_left(1))
            m.d.sync += addr.eq(Mux(last_beat, 0, addr + 1))
            if not late:
                m.d.sync += sf_ctr.eq(Mux(last_sf, 0, sf_ctr + 1))
                with m.If(last_sf):
                    m.d.sync += nf_ctr.eq(Mux(last_nf, 0, nf_ctr + 1))
            with m.If(last_beat):
                if nbuf == 2:
                    for k in range(2):
                        with m.If(d.rd_sel == k):
                            m.d.sync += full[k].eq(0)
                    m.d.sync += d.rd_sel.eq(~d.rd_sel)
                else:
                    m.d.comb += d.refill.eq(1)
                    if nbuf == 1:
                        with m.If(~(self.i.valid & self.i.ready)):     # else refilled in this same cycle
                            m.d.sync += full[0].eq(0)
        m.submodules.weights = wrom = Memory(shape=unsigned(p.pe * p.simd * p.weight_precision), depth=max(2, p.cycles),
                                             init=self._rom_rows(p.weight_rows), attrs=self._rom_attrs(p.rom_style))
        d.w_rd = w_rd = wrom.read_port(domain="sync")
        m.d.comb += w_rd.addr.eq(addr)
        if nbuf == 0:
            d.cur_buf = Signal(d.buf_w, name="in_beat")     # the beat, zero-extended to whole SIMD words
            m.d.comb += d.cur_buf.eq(self.i.payload)
        elif nbuf == 2:
            # A named signal, not the Mux expression itself: Amaranth's domain lowering copies a shared
            # expression once per use, so each of the SF word slices would get its own copy of this
            # whole buf_w-bit multiplexer (CNV: 794k of the netlist's 949k cell output bits).
            d.cur_buf = Signal(d.buf_w, name="cur_buf")
            m.d.comb += d.cur_buf.eq(Mux(d.rd_sel, d.bufs[1], d.bufs[0]))
        else:
            d.cur_buf = d.bufs[0]

    def _first_stage(self, m: Module, d: _Datapath) -> None:
        """Stage 1: the ROM's data is here, beside registered copies of the issue stage's control and
        the SIMD word; ``rom_registers`` more stages register the ROM's output (the first one a block
        RAM's output register) and the rest beside it. Data registers are reset-less: only valid flags reset."""
        p = self._p
        first, last = Signal(name="s1_first", reset_less=True), Signal(name="s1_last", reset_less=True)
        valid, done = Signal(name="s1_valid"), Signal(name="s1_done")
        m.d.sync += [valid.eq(d.issue), first.eq(d.first_word), last.eq(d.last_sf),
                     done.eq(d.issue & d.last_beat)]
        if d.late_nf:
            # the group index of the word in stage 1, counted from stage 1's own flags
            nf1 = Signal(range(max(2, p.nf)), name="nf_s1")
            if p.nf > 1:
                last_nf1 = Signal(name="last_nf_s1")
                with m.If(valid & last):
                    m.d.sync += [nf1.eq(Mux(last_nf1, 0, nf1 + 1)), last_nf1.eq(~last_nf1 & (nf1 == p.nf - 2))]
            d.nf_pipe = [None, nf1]
        else:
            d.nf_pipe = [d.nf_ctr]
        # The SIMD word meets the ROM data 1 + rom_registers stages after the issue stage; those
        # registers sit inside the word select's tree (spread over its levels), so they cost no latency.
        x = self._select_word(m, d.cur_buf, d.sf_ctr, d.word_hot, d.word_w, 1 + p.rom_registers)
        w = d.w_rd.data
        for k in range(p.rom_registers):
            w = self._delay(m, w, 1, f"w_rd{k}")
            regs = (Signal(name=f"r{k}_valid"), Signal(name=f"r{k}_first", reset_less=True),
                    Signal(name=f"r{k}_last", reset_less=True), Signal(name=f"r{k}_done"))
            m.d.sync += [r.eq(v) for r, v in zip(regs, (valid, first, last, done))]
            valid, first, last, done = regs
        d.pe_w, d.pe_x = w, x
        d.pe_ctl = (valid, first, last, done)

    def _pipeline_control(self, m: Module, d: _Datapath) -> None:
        """The PE array's P stages: the control travels beside them, free-running."""
        ctl = [d.pe_ctl]
        for k in range(1, self._p.pipeline + 1):
            regs = (Signal(name=f"p{k}_valid"), Signal(name=f"p{k}_first", reset_less=True),
                    Signal(name=f"p{k}_last", reset_less=True), Signal(name=f"p{k}_done"))
            m.d.sync += [r.eq(v) for r, v in zip(regs, ctl[-1])]
            ctl.append(regs)
        d.c_valid, d.c_first, d.c_last, d.c_done = ctl[-1]

    def _constant_roms(self, m: Module, d: _Datapath) -> None:
        """Per-channel constant ROMs (−T, or L thresholds, or scale and offset), addressed by the
        neuron-fold index delayed so that their data meets the stage that uses it: the accumulator's
        start (−T) or the final accumulator (thresholds of L ≥ 2 levels, the affine head); with
        ``rom_registers`` their output is registered as often, and the index is read as much earlier."""
        p = self._p
        reg = p.rom_registers
        acc_stage = 1 + reg + p.pipeline          # the accumulator takes the PE array's partial sums
        d.fin_stage = acc_stage + 1               # the accumulator holds a group's final value
        need = acc_stage if (not p.scores and p.levels == 1) else d.fin_stage
        d.const_nf = self._nf_at(m, d, need - 1 - reg)
        d.chan_ports = {}
        for name, rows, width in (("thresholds", () if p.scores else p.threshold_rows,
                                   p.threshold_width * p.threshold_fields),
                                  ("scales", p.scale_rows, p.scale_width * p.pe),
                                  ("offsets", p.offset_rows, p.offset_width * p.pe)):
            if rows:
                m.submodules[name] = rom = Memory(shape=unsigned(width), depth=max(2, p.nf),
                                                  init=self._rom_rows(rows), attrs=self._rom_attrs(p.const_rom_style))
                port = rom.read_port(domain="sync")
                m.d.comb += port.addr.eq(d.const_nf)
                d.chan_ports[name] = self._delay(m, port.data, reg, f"{name}_rd")

    def _nf_at(self, m: Module, d: _Datapath, stage: int):
        """The neuron-fold index of the word in ``stage`` (0: the issue stage)."""
        assert d.nf_pipe[stage] is not None if stage < len(d.nf_pipe) else True, "no group index at the issue stage"
        while len(d.nf_pipe) <= stage:
            k = len(d.nf_pipe)
            nf = Signal(len(d.nf_pipe[-1]), name=f"nf_s{k}", reset_less=True)
            m.d.sync += nf.eq(d.nf_pipe[-1])
            d.nf_pipe.append(nf)
        return d.nf_pipe[stage]

    def _accumulate(self, m: Module, d: _Datapath) -> None:
        """The PE array and its accumulators: each starts at −T (thresholds) or 0 (scores, L ≥ 2
        thresholds) and adds while its word is valid; the group's final value is in the register the
        cycle after its last word (``fin_group``, ``fin_done``: the frame's last group)."""
        p = self._p
        tail = p.n_in - (p.sf - 1) * p.simd       # real lanes in the last SIMD word
        acc_w = p.acc_width
        codes = dict(codes=True, weight_precision=p.weight_precision) if p.codes else {}
        m.submodules.pe_array = lanes = PEArray(p.pe, p.simd, p.pixel_bits if p.codes else p.pe_pixel_bits, tail, acc_w,
                                                lut_inputs=p.lut_inputs, compressor=p.compressor,
                                                carry_adders=p.carry_adders, stages=p.pipeline,
                                                levels_per_stage=p.levels_per_stage, **codes)
        valid, first, last, _ = d.pe_ctl
        m.d.comb += [lanes.x.eq(d.pe_x), lanes.w.eq(d.pe_w), lanes.last_word.eq(last), lanes.en.eq(1)]
        # All PE accumulators live in one wide register: one signal update per cycle in simulation.
        acc_all = Signal(p.pe * acc_w, name="acc", reset_less=True)
        acc_next_all = Signal(p.pe * acc_w, name="acc_next")
        is_signed = p.acc_signed
        lane = lambda v, j: (v[j * acc_w:(j + 1) * acc_w].as_signed() if is_signed
                             else v[j * acc_w:(j + 1) * acc_w])
        partial = lambda j: (lanes.partial[j * acc_w:(j + 1) * acc_w].as_signed() if p.pe_pixel_bits or p.codes
                             else lanes.partial[j * acc_w:(j + 1) * acc_w])
        if p.scores or p.levels > 1:
            start = lambda j: 0
        else:
            t_data, ntw = d.chan_ports["thresholds"], p.threshold_width
            start = lambda j: t_data[j * ntw:(j + 1) * ntw].as_signed()
        m.d.comb += acc_next_all.eq(Cat(*(resize(Mux(d.c_first, start(j), lane(acc_all, j)) + partial(j),
                                                 acc_w, signed_value=is_signed) for j in range(p.pe))))
        with m.If(d.c_valid):
            m.d.sync += acc_all.eq(acc_next_all)
        d.fin_group, d.fin_done = Signal(name="fin_group"), Signal(name="fin_done")
        m.d.sync += [d.fin_group.eq(d.c_valid & d.c_last), d.fin_done.eq(d.c_done)]
        d.acc_all = acc_all
        d.acc = [lane(acc_all, j) for j in range(p.pe)]

    def _collect_and_output(self, m: Module, d: _Datapath) -> None:
        """Each finished group of PE results shifts into the result register; a frame's last group
        completes it, and the frame (with its class index, if the tournament is pipelined) goes into
        the output slots, which the credits keep from ever overflowing."""
        p = self._p
        group, done = d.fin_group, d.fin_done
        if p.scores:
            lane_vals = self._scores(m, d.acc, d.chan_ports)
            field_w = p.score_width
        elif p.search_stages:
            lane_vals, (group, done) = self._search(m, d)
            field_w = p.out_bits
        elif p.levels > 1:
            lane_vals = self._levels(m, d.acc, d.chan_ports["thresholds"])
            field_w = p.out_bits
        else:
            acc_w = p.acc_width
            lane_vals = [~d.acc_all[(j + 1) * acc_w - 1] for j in range(p.pe)]     # acc − T ≥ 0
            field_w = 1
        if p.compare_register:
            lane_vals = [self._delay(m, v, 1, f"lane{j}") for j, v in enumerate(lane_vals)]
            group, done = self._delay(m, group, 1, "cmp_group", False), self._delay(m, done, 1, "cmp_done", False)

        group_w = p.pe * field_w
        # Groups 0 .. NF−2 wait here; the last group goes straight on with them. Groups finish in
        # order, so the register shifts one group in at the top each time (after NF − 1 shifts group 0
        # is at the bottom): no group decoder, and its enable is a flip-flop.
        result = Signal(max(1, (p.nf - 1) * group_w), name="result", reset_less=True)
        if p.nf > 1:
            with m.If(group):
                m.d.sync += result.eq(Cat(result[group_w:], *lane_vals))
        frame = Cat(result[:(p.nf - 1) * group_w], *lane_vals) if p.nf > 1 else Cat(*lane_vals)
        vec_w = p.nf * group_w
        cls = None
        if p.scores and p.class_index and p.class_levels_per_stage:
            frame, done, cls = self._class_pipeline(m, frame, done)
        entry = Cat(frame, cls) if cls is not None else frame
        head = self._output_slots(m, d, entry, done)
        if p.scores:
            scores = [head[c * field_w:(c + 1) * field_w].as_signed() for c in range(p.n_out)]
            m.d.comb += [self.o.payload.scores[c].eq(scores[c]) for c in range(p.n_out)]
            if cls is not None:
                m.d.comb += self.o.payload.cls.eq(head[vec_w:])
            elif p.class_index:
                m.d.comb += self.o.payload.cls.eq(argmax_tree(m, scores))
        else:
            m.d.comb += self.o.payload.eq(head[:p.n_out * p.out_bits])

    def _class_pipeline(self, m: Module, frame, load):
        """The class tournament in ``class_stages`` register stages of ``class_levels_per_stage``
        compare-and-select levels each; the frame's scores travel beside it. Returns the delayed
        (frame, load) and the class index."""
        p = self._p
        sw, idx_w = p.score_width, p.class_width
        level = [(frame[c * sw:(c + 1) * sw].as_signed(), Const(c, idx_w)) for c in range(p.n_out)]
        depth = 0
        for s in range(p.class_stages):
            level, depth = _matches(level, p.class_levels_per_stage, m, depth)
            regs = []
            for k, (value, idx) in enumerate(level):
                rv = Signal(signed(sw), name=f"cls{s}_value{k}", reset_less=True)
                ri = Signal(idx_w, name=f"cls{s}_index{k}", reset_less=True)
                m.d.sync += [rv.eq(value), ri.eq(idx)]
                regs.append((rv, ri))
            level = regs
            frame = self._delay(m, frame, 1, f"cls{s}_frame")
            load = self._delay(m, load, 1, f"cls{s}_load", False)
        return frame, load, level[0][1]

    def _output_slots(self, m: Module, d: _Datapath, entry, load):
        """``slots`` output registers as a queue that shifts toward slot 0 (``o``); returns slot 0.
        A frame enters behind the last full slot; the credits (``pending``) guarantee one is free."""
        p = self._p
        q = p.slots
        slots = [Signal(len(entry), name="out_buf" if k == 0 else f"out_buf{k}", reset_less=True) for k in range(q)]
        full = [Signal(name="o_full" if k == 0 else f"o_full{k}") for k in range(q)]
        pop = Signal(name="taken")
        m.d.comb += [self.o.valid.eq(full[0]), pop.eq(full[0] & self.o.ready)]
        issued_last = d.issue & d.last_beat
        m.d.sync += d.pending.eq(d.pending + issued_last - pop)
        if q == 1:
            # The credit is taken back only once the previous frame has left: the slot is empty on load.
            with m.If(load):
                m.d.sync += slots[0].eq(entry)
            m.d.sync += full[0].eq((full[0] & ~pop) | load)
            return slots[0]
        for k in range(q):
            nxt = full[k + 1] if k + 1 < q else Const(0)
            prv = full[k - 1] if k else Const(1)
            with m.If(pop):
                if k + 1 < q:
                    with m.If(nxt):
                        m.d.sync += slots[k].eq(slots[k + 1])
                    with m.Elif(load & full[k]):
                        m.d.sync += slots[k].eq(entry)
                else:
                    with m.If(load & full[k]):
                        m.d.sync += slots[k].eq(entry)
                m.d.sync += full[k].eq(nxt | (load & full[k]))
            with m.Else():
                with m.If(load & ~full[k] & prv):
                    m.d.sync += slots[k].eq(entry)
                m.d.sync += full[k].eq(full[k] | (load & prv))
        return slots[0]

    def _select_word(self, m: Module, buf, index, hot, width: int, stages: int):
        """buf[index*width +: width], ``stages`` registers later: a multiplexer on ``index`` (lint-clean,
        unlike a variable shift), or with ``hot`` (one-hot index) an AND-OR tree. On 4-input LUTs the
        AND-OR is log4(2·SF) levels deep (a LUT takes two word bits and their two select bits; no index
        decoder), where the multiplexer was eight levels for SF = 64; its registers are spread over the
        OR levels (four LUT levels at SF = 64 were the UP5K's critical path at 58.6 MHz), the
        multiplexer's all follow it."""
        sf = self._p.sf
        words = [buf[k * width:(k + 1) * width] for k in range(sf)]
        if sf == 1 or hot is None:
            if sf == 1:
                picked = words[0]
            else:
                # Cover every index value (unreachable ones repeat word 0): a complete case statement.
                words += [words[0]] * ((1 << len(index)) - len(words))
                picked = Array(words)[index]
            return self._delay(m, picked, stages, "s1_x")
        terms = [Mux(hot[k], words[k], 0) for k in range(sf)]
        levels = (sf - 1).bit_length()
        cuts = {round(k * levels / stages) for k in range(1, stages)} - {0}
        regs, level = 0, 0
        while len(terms) > 1:
            terms = [terms[i] | terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
            level += 1
            if level in cuts:
                terms = [self._delay(m, Cat(t), 1, f"word_or{level}_{i}") for i, t in enumerate(terms)]
                regs += 1
        picked = Signal(width, name="word_picked")
        m.d.comb += picked.eq(terms[0])
        return self._delay(m, picked, stages - regs, "s1_x")

    def _scores(self, m: Module, acc: list, ports: dict) -> list:
        p = self._p
        out = []
        for j in range(p.pe):
            raw = 2 * acc[j] - p.n_in if p.xnor_lanes and not p.codes else acc[j]
            if p.scale_rows:
                raw = raw * ports["scales"][j * p.scale_width:(j + 1) * p.scale_width].as_signed()
            elif p.score_scale != 1:          # one scale for every class: a constant, no multiplier
                raw = raw * p.score_scale
            if p.offset_rows:
                raw = raw + ports["offsets"][j * p.offset_width:(j + 1) * p.offset_width].as_signed()
            out.append(resize(raw, p.score_width, signed_value=True))
        return out

    def _levels(self, m: Module, acc: list, t_data) -> list:
        """L ≥ 2 thresholds: q_j = Σ_k [A_j ≥ T_jk], a bank of L comparators per PE lane on the final
        accumulator value (in the stage where L = 1 takes the sign bit), out_bits per lane."""
        p = self._p
        n_levels, tw = p.levels, p.threshold_width
        out = []
        for j in range(p.pe):
            reached = Signal(n_levels, name=f"reached{j}")
            m.d.comb += reached.eq(Cat(*(acc[j] >= t_data[(j * n_levels + k) * tw:(j * n_levels + k + 1) * tw]
                                         .as_signed() for k in range(n_levels))))
            level = Signal(p.out_bits, name=f"level{j}")
            m.d.comb += level.eq(tree_sum([reached[k] for k in range(n_levels)], m, f"level{j}"))
            out.append(level)
        return out

    def _search(self, m: Module, d: _Datapath):
        """L ≥ 2 thresholds by a pipelined binary search (module docstring): stage 0 compares the final
        accumulator with the threshold of its lane, each further stage is a register that compares A
        with the threshold its prefix selects. Returns the lanes' codes q (B bits each) and the
        (group, done) flags of the final search stage."""
        p = self._p
        n_stages, tw, acc_w = p.search_stages, p.threshold_width, p.acc_width
        group, done = d.fin_group, d.fin_done
        nf = self._nf_at(m, d, d.fin_stage)
        acc = d.acc                                        # stage 0: the accumulators themselves
        prefixes = [None] * p.pe
        t_data = d.chan_ports["thresholds"]                # stage 0's thresholds, read to meet it
        stage_t = [t_data[j * tw:(j + 1) * tw].as_signed() for j in range(p.pe)]
        for t in range(n_stages):
            if t:
                regs = (Signal(name=f"q{t}_group"), Signal(name=f"q{t}_done"))
                nf_t = Signal(len(nf), name=f"q{t}_nf", reset_less=True)
                acc_t = [Signal(signed(acc_w), name=f"q{t}_acc{j}", reset_less=True) for j in range(p.pe)]
                pre_t = [Signal(t, name=f"q{t}_prefix{j}", reset_less=True) for j in range(p.pe)]
                m.d.sync += [r.eq(v) for r, v in zip(regs, (group, done))]
                m.d.sync += [nf_t.eq(nf)] + [a.eq(v) for a, v in zip(acc_t, acc)]
                m.d.sync += [r.eq(v) for r, v in zip(pre_t, prefixes)]
                (group, done), nf, acc = regs, nf_t, acc_t
            else:
                pre_t = [None] * p.pe
            next_t = []
            for j in range(p.pe):
                bit = Signal(name=f"q{t}_bit{j}")
                m.d.comb += bit.eq(acc[j] >= stage_t[j])
                prefixes[j] = Cat(bit, pre_t[j]) if t else bit     # q's bits so far, the newest lowest
                if t + 1 < n_stages:        # the next stage's threshold: row nf·2^(t+1) + prefix
                    rom = Memory(shape=unsigned(tw), depth=p.nf << (t + 1), init=list(p.search_rows[t][j]),
                                 attrs=self._rom_attrs(p.const_rom_style))
                    m.submodules[f"search{t + 1}_{j}"] = rom
                    port = rom.read_port(domain="sync")
                    m.d.comb += port.addr.eq(Cat(prefixes[j], nf))
                    next_t.append(port.data.as_signed())
            stage_t = next_t
        codes = []
        for j in range(p.pe):
            q = Signal(n_stages, name=f"level{j}")
            m.d.comb += q.eq(prefixes[j])
            codes.append(q)
        return codes, (group, done)
