"""Per-unit resource counts of a planned network: LUT features, flip-flops, memories and DSPs.

Each function reads one unit of a :class:`~bnn2hw.plan.NetworkPlan` (a LayerPlan for a matrix-vector
unit, a StreamUnitPlan for a window, pool or collector) and counts what its hardware builds
(hw/mvu.py, hw/pe_array.py, hw/sliding_window.py, hw/maxpool.py, hw/collect.py) as Yosys maps it.

* **Flip-flops** are counted register by register: an MVU's input buffers (``input_buffers`` × n_in·bits),
  the issue-stage word register (SIMD·bits) and, with ``onehot_select``, the SF-bit word ring, PE
  accumulators, the result ((NF − 1)·PE bits or scores) and the output slots (``out_slots`` frames,
  each with its full flag, and the credit counter), the PE array's pipeline
  registers (``pipeline``; inside the trees the sums of the cut level), counters; a window unit's
  kh·kw window register and counters; the Flatten collector's two frame registers; the data register
  of every ROM that becomes logic and of every LUT-RAM line buffer.
* **Memories**: :func:`bnn2hw.estimate.memory.map_memory` for each ROM and line buffer, after the
  columns that are constant over a ROM's rows (padding, the sign bits of −T) are removed, as Yosys'
  ``opt_mem`` does; a ROM read at one address only (NF·SF = 1; NF = 1 for constants) is a constant.
* **LUTs**: the features of bnn2hw/estimate/cost_model.py, weighted by the family's coefficients.
* **DSPs** hold the multiplications the plan lists (``LayerPlan.multipliers``) that pass Yosys'
  mul2dsp size limits (both operands ≥ 2 bits; product ≥ 11 bits on iCE40, ≥ 9 on Xilinx): the
  raw × scale of a class-score layer with a scale per class, one per PE. A pixel layer's
  D·(2C − V) is shifts and adds (``LayerPlan.pixel_multiplier`` is False), binary layers multiply
  nothing. ``UnitEstimate.dsp_note`` names them; on the iCE40 UP5K (8 SB_MAC16) such a head with
  more than 8 PEs does not fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..plan import LayerPlan, StreamUnitPlan
from ..plan.rom import nonconstant_columns
from .cost_model import COST_MODELS
from .families import FAMILIES, LUT_SIZE
from .memory import MemoryEstimate, map_memory

__all__ = ["UnitEstimate", "ResourceEstimate", "mvu_unit", "stream_unit"]


def _dsp_per_multiplier(a: int, b: int, y: int, family: str) -> int:
    """DSP cells Yosys uses for one a × b-bit multiplication with a y-bit product (0: LUTs)."""
    f = FAMILIES[family]
    amax, bmax, wmin, ymin = f.dsp_max_a, f.dsp_max_b, f.dsp_min_width, f.dsp_min_product
    if min(a, b) < wmin or y < ymin:
        return 0
    a, b = max(a, b), min(a, b)
    return -(-a // amax) * -(-b // bmax) if b <= bmax else -(-a // bmax) * -(-b // bmax)


@dataclass(frozen=True)
class UnitEstimate:
    """One stream unit: an MVU (named as its layer), a window unit ("conv0 window"), a pool, "flatten"."""
    name: str
    kind: str                          # "mvu", "window", "pool", "collect"
    luts: float
    ffs: int
    bram_blocks: float
    bram_bits: int
    dsp: int
    lutram_luts: int
    features: dict = field(default_factory=dict)
    memories: tuple[MemoryEstimate, ...] = ()
    dsp_note: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["luts"] = round(self.luts)
        d["memories"] = [{**asdict(m), "bits": m.bits} for m in self.memories]
        return d


@dataclass(frozen=True)
class ResourceEstimate:
    family: str
    units: tuple[UnitEstimate, ...]

    @property
    def lut_size(self) -> int:
        return LUT_SIZE[self.family]

    luts = property(lambda self: round(sum(u.luts for u in self.units)))
    ffs = property(lambda self: sum(u.ffs for u in self.units))
    bram_blocks = property(lambda self: sum(u.bram_blocks for u in self.units))
    bram_bits = property(lambda self: sum(u.bram_bits for u in self.units))
    dsp = property(lambda self: sum(u.dsp for u in self.units))
    lutram_luts = property(lambda self: sum(u.lutram_luts for u in self.units))

    def unit(self, name: str) -> UnitEstimate:
        for u in self.units:
            if u.name == name:
                return u
        raise KeyError(f"no unit {name!r}; units are {', '.join(u.name for u in self.units)}")

    def totals_json(self) -> dict:
        return {"family": self.family, "lut_size": self.lut_size, "luts": self.luts, "ffs": self.ffs,
                "bram_blocks": self.bram_blocks, "bram_bits": self.bram_bits, "dsp": self.dsp,
                "lutram_luts": self.lutram_luts}

    def to_json(self) -> dict:
        return {**self.totals_json(), "units": [u.to_json() for u in self.units],
                "dsp_layers": [u.name for u in self.units if u.dsp]}




def _bits(n: int) -> int:
    """Width of an Amaranth Signal(range(max(2, n)))."""
    return (max(2, n) - 1).bit_length()


def _weight_width(layer: LayerPlan) -> int:
    """Non-constant columns of the weight ROM. A ROM of 16 rows or more is taken to have none constant
    (random-looking weights: no image is packed, which keeps costing candidate foldings fast); smaller
    ones are checked exactly."""
    rows = layer.cycles
    if rows == 1:
        return 0                                   # read at address 0 only: a constant
    width = layer.lanes * layer.weight_precision
    if rows >= 16:
        return width
    if layer.weight_precision > 1 or layer.codes:  # the ROM's rows of k-bit fields, as bits
        image = (np.array(layer.weight_rows, dtype=object)[:, None] >> np.arange(width)) & 1
        return nonconstant_columns(image.astype(np.uint8))
    return nonconstant_columns(layer.weight_image())


def _field_width(fields: np.ndarray, width: int) -> int:
    """Non-constant bit columns of a per-channel constant ROM of (NF, PE) fields of ``width`` bits."""
    if fields.shape[0] == 1:
        return 0
    bits = ((fields & ((1 << width) - 1))[:, :, None] >> np.arange(width)) & 1       # (nf, pe, width)
    return nonconstant_columns(bits.reshape(fields.shape[0], -1))


def _pipeline_ffs(layer: LayerPlan) -> int:
    """Flip-flops of the PE array's pipeline (hw/pe_array.py) and of the control that travels beside it."""
    target = layer.target
    stages = layer.pipeline
    if not stages:
        return 0
    cuts, out_regs = layer.pipeline_cuts
    pe, simd, acc_w, px = layer.pe, layer.simd, layer.acc_width, layer.pe_pixel_bits
    # per stage: valid, first, last and done beside the PE array, and the neuron-fold index (hw/mvu.py)
    ffs = out_regs * pe * acc_w + stages * (4 + _bits(layer.nf))
    # constant weights (one ROM row): equal sums of different PEs are one register, c_ones is constant
    copies = min(pe, 3) if layer.cycles == 1 else pe
    for level in cuts:           # registers inside the trees: the sums at that level
        terms = -(-simd // (1 << level))
        if layer.cycles == 1:
            ffs += copies * terms * (layer.lane_bits + level)
            continue
        if px:                   # p_sum and c_ones per PE, q_sum and n_valid once
            ffs += pe * terms * (px + level + 1 + level) + terms * (px + level) + _bits(simd + 1)
        elif target.carry_adders:
            ffs += pe * terms * (level + 1)
        else:                    # compressor level 1: two bits per group of 3 (LUT6) or 2 (LUT4) lanes
            per = 3 if target.lut_inputs >= 6 else 2
            ffs += pe * (2 * simd // per + (simd % per > 0)) if level == 1 else pe * terms * (level + 1)
    return ffs


def mvu_unit(layer: LayerPlan, family: str) -> UnitEstimate:
    """A compute layer's matrix-vector unit as its plan builds it."""
    lane, word_w, in_bits = layer.lane_bits, layer.word_bits, layer.in_bits
    px, acc_w, nbuf = layer.pe_pixel_bits, layer.acc_width, layer.input_buffers
    f = dict.fromkeys(COST_MODELS[family], 0.0)
    lanes = layer.lanes
    planes = layer.weight_precision
    if layer.cycles == 1:
        # one weight row: the weights are constants, the XNORs vanish and equal sums are shared
        f["const_lanes"] = lanes * lane * planes
        if px or layer.codes:
            f["pixel_combine_bits"] = layer.pe * acc_w * (planes if layer.codes else 1)
    elif layer.codes:
        # one masked sum of the lane codes per weight bit-plane, combined with shifts (hw/pe_array.py);
        # ±1 weights: 2·P − Q with the shared Q. Not yet calibrated against Yosys (docs/benchmarks.md).
        f["pixel_lane_bits"] = lanes * lane * planes + (word_w if planes == 1 else 0)
        f["pixel_combine_bits"] = layer.pe * acc_w * planes
    elif px:
        f["pixel_lane_bits"] = lanes * px + word_w                   # PE p_sum trees + the shared q_sum
        f["popcount_lanes"] = lanes                                  # c_ones
        f["pixel_combine_bits"] = layer.pe * acc_w                   # 4P − 2Q − D(2C − V) per PE
    else:
        f["popcount_lanes"] = lanes
    f["select_mux"] = max(0, max(1, nbuf) * in_bits - word_w)        # buffers (or the beat) × SF words → one word
    f["acc_bits"] = layer.pe * acc_w                                 # accumulate (from −T or 0)
    search = layer.search_stages
    if layer.multi_threshold:          # L comparators per PE (a bank) or B (a binary search), counted like adders
        f["acc_bits"] += layer.pe * (search or layer.levels) * max(acc_w, layer.threshold_width)
    field_w = layer.out_field_bits
    f["out_bits"] = layer.n_out * field_w                            # result / output register loads
    # The output slots (hw/mvu.py _output_slots): Q = layer.out_slots registers of one frame (and its
    # class index from a pipelined tournament), a queue that shifts toward slot 0; every slot but the
    # last picks the next slot or the new frame, a 2:1 multiplexer per bit (the hold is the enable).
    slots = layer.out_slots
    entry_w = layer.n_out * field_w + (layer.class_width if layer.scores and layer.class_index
                                       and layer.class_levels_per_stage else 0)
    f["out_slot_bits"] = (slots - 1) * entry_w
    f["mvu_control"] = 1
    memories = [map_memory(f"{layer.name} weights", _weight_width(layer), max(2, layer.cycles), family,
                           style=layer.rom_style)]
    if layer.scores:
        score_w = layer.score_width
        f["score_bits"] = layer.pe * score_w
        if layer.class_index:   # the class tournament (a board top has its own scan instead)
            f["argmax_bits"] = (layer.n_out - 1) * (score_w + layer.class_width)
        if layer.has_affine:
            f["score_bits"] += layer.pe * score_w                    # + offset
    for what, (fields, width) in layer.constant_fields().items():
        memories.append(map_memory(f"{layer.name} {what}", _field_width(fields, width), max(2, layer.nf), family,
                                   style=layer.const_rom_style))
    for t in range(1, search):        # a binary search's stage ROMs: one per PE, NF·2^t rows of one field
        memories += [map_memory(f"{layer.name} search stage {t}", layer.threshold_width, layer.nf << t, family,
                                style=layer.const_rom_style)] * layer.pe
    dsp, notes = 0, []
    for mul in layer.multipliers:      # the plan's multiplications: DSP cells, or LUTs below mul2dsp's limits
        a, b = mul.a_bits, mul.b_bits
        per = _dsp_per_multiplier(a, b, mul.product_bits, family)
        if per:
            dsp += mul.count * per
            notes.append(f"{mul.count} × {mul.what} ({a} × {b} bits) in {mul.count * per} "
                         f"{FAMILIES[family].dsp_cell}")
        else:
            f["mul_bits"] += mul.count * a * b
    note = f"{layer.name}: " + "; ".join(notes) if notes else ""
    f["rom_logic"] = sum(mem.logic_luts for mem in memories)
    ring = layer.sf if layer.target.onehot_select and layer.sf > 1 else 0      # one-hot word select
    ffs = (nbuf * in_bits + 4 + 2 * (_bits(layer.sf) + _bits(layer.nf)) + _bits(layer.cycles) + 3 + word_w + ring
           + layer.pe * acc_w + (layer.nf - 1) * layer.pe * field_w + slots * (entry_w + 1) + _bits(slots + 1)
           + sum(mem.ffs for mem in memories) + _pipeline_ffs(layer)
           + search * (layer.pe * (acc_w + search) + 3 + _bits(layer.nf))     # binary-search stages
           + _register_stage_ffs(layer, memories, field_w, entry_w))
    return _unit(layer.name, "mvu", f, family, ffs, memories, dsp, note)


def _register_stage_ffs(layer: LayerPlan, memories, field_w: int, entry_w: int) -> int:
    """Flip-flops of the target's register stages outside the PE trees (hw/mvu.py): ``rom_registers``
    copies of every ROM's read data with the SIMD word and four control flags beside them, the
    comparator (or affine score) register, and the pipelined class tournament's stages, each carrying
    the frame, its flag and the candidates left."""
    regs = layer.target.rom_registers
    ffs = regs * (layer.word_bits + 4 + sum(mem.width for mem in memories))
    if layer.compare_register:
        ffs += layer.pe * (layer.score_width if layer.scores else field_w) + 2
    left = layer.n_out
    for _ in range(layer.class_stages):
        for _ in range(layer.class_levels_per_stage):
            left = -(-left // 2)
        ffs += entry_w - (layer.class_width if left == 1 else 0) + 1 + left * (layer.score_width + layer.class_width)
    return ffs


def _unit(name, kind, f, family, ffs, memories, dsp=0, note="") -> UnitEstimate:
    coeffs = COST_MODELS[family]
    lutram = sum(mem.lut_sites for mem in memories)
    luts = sum(coeffs[k] * v for k, v in f.items()) + lutram
    return UnitEstimate(name=name, kind=kind, luts=luts, ffs=int(ffs),
                        bram_blocks=sum(mem.blocks for mem in memories),
                        bram_bits=sum(mem.bits for mem in memories if mem.in_block_ram), dsp=dsp,
                        lutram_luts=lutram, features={k: v for k, v in f.items() if v}, memories=tuple(memories),
                        dsp_note=note)


def stream_unit(unit: StreamUnitPlan, family: str) -> UnitEstimate:
    """A sliding window (hw/sliding_window.py), a pool built on one (hw/maxpool.py) or the collector."""
    f = dict.fromkeys(COST_MODELS[family], 0.0)
    if unit.kind == "threshold":
        # p ≥ T for a constant T depends only on p's bits from T's lowest set bit up: about one LUT per
        # LUT-width of them (one wire for a power of two such as 128), per element; then the register
        t = unit.params
        def significant(v: int) -> int:
            return t.in_bits - ((v & -v).bit_length() - 1) if 0 < v < (1 << t.in_bits) else 0
        f["const_lanes"] = t.elements * sum(-(-significant(v) // LUT_SIZE[family]) for v in t.thresholds
                                            if significant(v) > 1)
        f["out_bits"] = t.out_payload_bits
        return _unit(unit.label, "threshold", f, family, t.out_payload_bits + 1, [])
    if unit.kind == "collect":
        c = unit.params
        f["collect_control"] = 1
        return _unit(unit.label, "collect", f, family, 2 * c.pixels * c.pixel_bits + _bits(c.pixels) + 1, [])
    wp = unit.window
    (kh, kw), P, R, W = wp.kernel, wp.pixel_bits, wp.slots, wp.width
    f["window_mux"] = kh * P * R
    f["window_control"] = 1
    if unit.kind == "pool":
        f["pool_inputs"] = unit.params.channels * kh * kw
    line = map_memory(f"{unit.label} line buffer", R * P, max(2, W), family, lanes=R, lane_bits=P)
    if line.cell == "logic":
        f["ram_logic"] = line.logic_luts
    ffs = (kw * kh * P + _bits(W) + _bits(R) * (2 + kh) + (R + 2).bit_length() + _bits(wp.out_height)
           + _bits(wp.scan_width) + _bits(wp.stride[1]) + (wp.height + 6).bit_length() + 4 + kh + line.ffs)
    return _unit(unit.label, unit.kind, f, family, ffs, [line])
