"""Analytic resource estimate of a folded graph: LUTs, flip-flops, block RAM and DSPs per unit and in total.

The estimate follows what the generated hardware builds (hw/mvu.py, hw/pe_array.py, hw/sliding_window.py,
hw/maxpool.py, hw/collect.py) for the family's hardware target (hw/target.py: popcount shape, pipeline
stages, input buffers, ROM styles; ``target="generic"`` for the untargeted shape) and how Yosys maps
it (``bnn2hw.synth``: synth_ice40 -dsp, synth_ecp5, synth_xilinx -family xc7; LUTs counted as
``synth.Resources.luts`` counts them: ECP5 CCU2C = 2 and DPR16X4 = 6 LUT4s, Xilinx LUT RAM in LUT6 sites).

* **Flip-flops** are counted register by register: an MVU's input buffers (``input_buffers`` × n_in·bits),
  the issue-stage word register (SIMD·bits) and, with ``onehot_select``, the SF-bit word ring, PE accumulators, the result ((NF − 1)·PE bits or scores)
  and output registers, the PE array's pipeline registers (``pipeline``; inside the trees the sums of
  the cut level), counters; a window unit's kh·kw window register and counters; the Flatten collector's
  two frame registers; the data register of every ROM that becomes logic and of every LUT-RAM line buffer.
* **Memories** are placed the way Yosys' ``memory_libmap`` places them (:func:`map_memory`): a
  ``rom_style`` the target sets ("block" at or above ``bram_min_bits``, else "logic") decides, and
  without one every block-RAM geometry of the family is tried (iCE40 SB_RAM40_4K 256×16 … 2048×2;
  ECP5 DP16KD 1024×18 … 16384×1 and PDPW16KD 512×36; Xilinx RAMB18 / RAMB36 1024×18 … 32768×1 and
  512×36 / 512×72) at the library file's ``cost`` per block plus ½ per extra read-multiplexer bit,
  against soft logic at 1/16 per ROM bit (1 per RAM bit); the cheapest wins. ROMs never go into LUT
  RAM (the Yosys libraries mark it ``prune_rom``); the line buffers of window units, which are
  written, may (ECP5 TRELLIS_DPR16X4, Xilinx RAM32M/RAM64M). Columns that are constant over a ROM's
  rows (padding, the sign bits of −T) are removed first, as Yosys' ``opt_mem`` does, and a ROM read
  at one address only (NF·SF = 1; NF = 1 for thresholds) is a constant. Blocks: ``ceil(mult_a·W /
  width)`` for the chosen geometry (depth, width), mult_a = ``ceil(D / depth)``; that is
  ``ceil(W / width_at_depth(D))`` when one block is deep enough.
* **LUTs** are ``Σ coefficient·feature`` over a few features per unit (:func:`lut_features`):
  XNOR-popcount lanes PE·SIMD, pixel lane bits PE·SIMD·bits, lanes with constant weights, the word
  multiplexer in front of the PE array (buffers·SF inputs per word bit), accumulator bits per PE
  (threshold layers start at −T: no comparator), output-register bits, the
  class-score argmax chain, ROMs that became logic (per column ceil(D / 2^k) LUTs, plus the 2:1
  multiplexers a LUT4 family without wide-function muxes needs), window multiplexers, pool gates and
  a constant per unit; plus the LUTs of LUT-RAM cells, counted exactly. The coefficients are one
  table per family (:data:`COST_MODELS`), fitted by ``python bench/calibrate_resources.py --fit``
  (one factor per :data:`FEATURE_GROUPS` group, so that nine Yosys runs per family determine them).
* **DSPs** hold Yosys' multiplications that pass mul2dsp's size limits (both operands ≥ 2 bits;
  product ≥ 11 bits on iCE40, ≥ 9 on Xilinx): a pixel layer's D·(2C − V) with D = 2^bits − 1, one per
  PE (none for 1-bit pixels), and the raw × scale of a class-score layer with an affine head, one per
  PE; binary layers use none. ``UnitEstimate.dsp_note`` names them; on the iCE40 UP5K (8 SB_MAC16) a
  pixel layer with more than 8 PEs whose products reach 11 bits does not fit.

**Measured error** (bench/calibrate_resources.py --fit; YoWASP Yosys 0.70; the hardware of
2026-12-02, after the class tournament and the result shift register, with its hw/target.py shapes;
9 calibration designs per family: the digits MLP with three foldings, a fully unrolled MLP, an
odd-sized one, an 8-bit affine-head one, the digits CNN with two foldings and a random CNN). Block
RAMs and DSPs: exact on all 36 runs. LUTs, in the fit: mean 1.3 / 4.4 / 4.8 %, worst 3.0 / 7.2 /
14.3 % (iCE40 / ECP5 / Xilinx); each design predicted by a fit without it (leave-one-out): mean
3.5 / 12.7 / 11.0 %, worst 9 / 39 / 34 %; on 3 designs the fit never saw (the digits MLP and CNN
folded by passes/autofold.py, another random CNN): worst 7.0 / 31 / 16 % (the worst: the MLP at
PE = 64, SIMD = 2, whose 64 pixel PEs ECP5 builds with DSPs and fewer LUTs than modelled).
Flip-flops: −22 … +24 % (the model is high except on the fully unrolled design on iCE40, the only
one with constant weights) (:data:`CALIBRATION`). The model is for choosing foldings and
checking fit, not for sign-off: place and route reports the truth, and a hardware change needs a
re-calibration (one command, above).

Device capacities (:data:`DEVICES`) are the vendors' data-sheet numbers; nextpnr's "Device
utilisation" table shows the same available counts for the Lattice parts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..ir import PIXELS, Graph, MaxPoolBits, ScoresDense, ThresholdConv, accumulator_range
from .pack import folds, signed_width

__all__ = ["FAMILIES", "LUT_SIZE", "COST_MODELS", "CALIBRATION", "DEVICES", "Device", "device_capacity",
           "RamKind", "RAM_KINDS", "MemoryEstimate", "UnitEstimate", "ResourceEstimate", "map_memory",
           "estimate_resources", "lut_features", "layer_luts", "layer_unit", "fit_lut_coefficients", "capacity_from", "FEATURE_GROUPS"]

FAMILIES = ("ice40", "ecp5", "xilinx")

#: LUT inputs of each family (iCE40 and ECP5: LUT4; Xilinx 7-series: LUT6).
LUT_SIZE = {"ice40": 4, "ecp5": 4, "xilinx": 6}


# ---- memory primitives, as Yosys' memory_libmap sees them (share/<family>/brams*.txt, lutrams*.txt) ----

@dataclass(frozen=True)
class RamKind:
    """One memory primitive: its (depth, width) geometries, the memory_libmap ``cost`` per cell, the
    write-enable granularity ``byte`` (0: the whole word), whether it may hold a ROM, the block-RAM
    tiles (``blocks``) and LUT sites (``luts``) one cell counts as, and the geometries its write port
    allows (``write_shapes``; None: any)."""
    cell: str
    shapes: tuple[tuple[int, int], ...]
    cost: float
    byte: int = 0
    rom: bool = True
    blocks: float = 1.0
    luts: int = 0
    widthscale: float = 0.0
    write_shapes: tuple[tuple[int, int], ...] | None = None


def _aspects(abits: int, widths) -> tuple[tuple[int, int], ...]:
    return tuple((1 << (abits - i), w) for i, w in enumerate(widths))


_ICE40_SHAPES = _aspects(11, (2, 4, 8, 16))                   # 2048×2 … 256×16
_DP16KD_SHAPES = _aspects(14, (1, 2, 4, 9, 18))               # 16384×1 … 1024×18
_RAMB18_SHAPES = _aspects(14, (1, 2, 4, 9, 18))
_RAMB36_SHAPES = _aspects(15, (1, 2, 4, 9, 18, 36))

RAM_KINDS = {
    "ice40": (
        RamKind("SB_RAM40_4K", _ICE40_SHAPES, 64, byte=1, write_shapes=((256, 16),)),      # HAS_BE 1
        RamKind("SB_RAM40_4K", _ICE40_SHAPES, 64, byte=0, write_shapes=_ICE40_SHAPES[:3]),  # HAS_BE 0
    ),
    "ecp5": (
        RamKind("DP16KD", _DP16KD_SHAPES, 128, byte=9),
        RamKind("PDPW16KD", ((512, 36),), 128, byte=9),
        RamKind("TRELLIS_DPR16X4", ((16, 4),), 4, rom=False, blocks=0, luts=6),
    ),
    "xilinx": (
        RamKind("RAMB18E1", _RAMB18_SHAPES, 129, byte=9, blocks=0.5),
        RamKind("RAMB18E1", ((512, 36),), 129, byte=9, blocks=0.5),      # simple dual port
        RamKind("RAMB36E1", _RAMB36_SHAPES, 257, byte=9),
        RamKind("RAMB36E1", ((512, 72),), 257, byte=9),                   # simple dual port
        RamKind("RAM32M", ((32, 6),), 8, rom=False, blocks=0, luts=4, widthscale=7),
        RamKind("RAM64M", ((64, 3),), 8, rom=False, blocks=0, luts=4, widthscale=7),
    ),
}

#: memory_libmap's defaults: soft-logic cost per ROM bit and per RAM bit; read mux / write demux
#: cost per bit; emulation cost of the one (non-shared) read port.
_LOGIC_COST_ROM, _LOGIC_COST_RAM, _FACTOR_MUX, _EMU_READ_PORT = 1 / 16, 1.0, 0.5, 2.0


@dataclass(frozen=True)
class MemoryEstimate:
    """One memory as mapped: ``cell`` (a primitive, "logic", or "constant"), how many, and what it costs."""
    name: str
    width: int             # bits per row that are not constant over the rows
    depth: int
    cell: str
    cells: int = 0
    blocks: float = 0.0    # block-RAM tiles
    lut_sites: int = 0     # LUTs of LUT-RAM cells
    logic_luts: float = 0.0  # the rom_logic / ram_logic feature, before the family coefficient
    ffs: int = 0

    @property
    def bits(self) -> int:
        return self.width * self.depth

    @property
    def in_block_ram(self) -> bool:
        return self.blocks > 0


def _padded_width(width: int, lanes: int, lane_bits: int, byte: int, unit: int, rom: bool) -> int:
    """Bits of a row after Yosys pads every write lane to the primitive's write-enable granularity
    (``byte``, or the whole ``unit`` word without byte enables); a ROM is not padded."""
    if rom:
        return width
    eb = byte if 0 < byte <= unit else unit
    return lanes * (-(-lane_bits // eb) * eb)


def _logic_rom_luts(depth: int, family: str) -> float:
    """LUTs of one arbitrary function of the address of a ``depth``-row ROM column."""
    k = LUT_SIZE[family]
    leaves = -(-depth // (1 << k))
    if family == "ice40":                   # no wide-function multiplexers: a LUT4 per 2:1 mux
        return 2 * leaves - 1
    return leaves + max(0, -(-leaves // 4) - 1)   # ECP5 PFUMX/L6MUX21, Xilinx MUXF7/MUXF8 per 4 leaves


def map_memory(name: str, width: int, depth: int, family: str, lanes: int = 0, lane_bits: int = 0,
               style: str = "") -> MemoryEstimate:
    """Where Yosys puts a memory of ``depth`` rows × ``width`` bits (non-constant columns) with one
    synchronous read port: a ROM (``lanes`` = 0), or a RAM with one write port of ``lanes`` lanes of
    ``lane_bits`` bits. Emulates memory_libmap's cost comparison (see the module docstring);
    ``style`` is the memory's ``rom_style`` attribute: "block" forces block RAM, "logic" (and, for a
    ROM, "distributed", which the libraries refuse for ROMs) soft logic, "" lets the costs decide."""
    if width <= 0:
        return MemoryEstimate(name, 0, depth, "constant")
    rom = lanes == 0
    bits = width * depth
    best_cost = int(bits * (_LOGIC_COST_ROM if rom else _LOGIC_COST_RAM))     # Yosys truncates it too
    if style == "block":
        best_cost = math.inf
    best = None
    for kind in RAM_KINDS[family] if style not in ("logic", "distributed") or not rom else ():
        if (rom and not kind.rom) or (style == "block" and not kind.blocks):
            continue
        shapes = kind.shapes if rom or kind.write_shapes is None else kind.write_shapes
        for d, w in shapes:
            padded = _padded_width(width, lanes, lane_bits, kind.byte, w, rom)
            mult_a = -(-depth // d)
            repl = -(-(mult_a * padded) // w)
            cost = (kind.cost - kind.widthscale) * repl + kind.widthscale * mult_a * width / w
            cost += _FACTOR_MUX * (mult_a - 1) * width
            if not rom and mult_a != 1:
                cost += _FACTOR_MUX * mult_a * lanes
            cost += _EMU_READ_PORT
            if cost < best_cost:
                best_cost, best = cost, (kind, repl)
    if best is None:
        if rom:
            return MemoryEstimate(name, width, depth, "logic", logic_luts=width * _logic_rom_luts(depth, family),
                                  ffs=width)
        # a written memory in flip-flops: a depth:1 read multiplexer per bit and a write decoder per row
        return MemoryEstimate(name, width, depth, "logic", logic_luts=width * (depth - 1) + depth * max(1, lanes),
                              ffs=bits + width)
    kind, repl = best
    # LUT RAM reads asynchronously: Yosys adds the read port's data register in flip-flops
    return MemoryEstimate(name, width, depth, kind.cell, cells=repl, blocks=repl * kind.blocks,
                          lut_sites=repl * kind.luts, ffs=width if kind.luts else 0)


# ---- the cost model ----

#: LUTs per unit of each feature of lut_features(), per family. Refit with
#: ``python bench/calibrate_resources.py --fit`` after a hardware change and paste its output here.
COST_MODELS: dict[str, dict[str, float]] = {
    "ice40": {"const_lanes": 1.865, "popcount_lanes": 3.331, "pixel_lane_bits": 1.903, "select_mux": 0.51,
        "acc_bits": 0.68, "pixel_combine_bits": 1.02, "score_bits": 0.511, "argmax_bits": 0.68,
        "out_bits": 0.51, "rom_logic": 1.325, "mvu_control": 58.817, "window_mux": 0.51,
        "window_control": 88.226, "ram_logic": 1.325, "pool_inputs": 0.204, "collect_control": 14.704,
        "mul_bits": 0.341},
    "ecp5": {"const_lanes": 1.379, "popcount_lanes": 3.231, "pixel_lane_bits": 2.154, "select_mux": 0.376,
        "acc_bits": 1.868, "pixel_combine_bits": 2.801, "score_bits": 1.4, "argmax_bits": 1.868,
        "out_bits": 0.628, "rom_logic": 1.196, "mvu_control": 61.704, "window_mux": 0.376,
        "window_control": 92.556, "ram_logic": 1.196, "pool_inputs": 0.252, "collect_control": 15.426,
        "mul_bits": 0.934},
    "xilinx": {"const_lanes": 0.865, "popcount_lanes": 2.262, "pixel_lane_bits": 1.358, "select_mux": 0.253,
        "acc_bits": 0.607, "pixel_combine_bits": 1.012, "score_bits": 0.506, "argmax_bits": 0.607,
        "out_bits": 0.434, "rom_logic": 1.187, "mvu_control": 39.377, "window_mux": 0.253,
        "window_control": 52.503, "ram_logic": 0.474, "pool_inputs": 0.181, "collect_control": 10.501,
        "mul_bits": 0.303},
}

#: How well COST_MODELS matched Yosys when last calibrated (bench/calibrate_resources.py --fit; relative
#: LUT error |model − Yosys| / Yosys): on the 9 calibration designs in the fit and leave-one-out, and
#: on 3 held-out designs; ``lut_error_max`` (the worse of fit and held-out) is what fit_check quotes.
#: Block RAMs and DSPs were exact on all 36 runs, flip-flops within −22 … +24 %.
CALIBRATION: dict[str, dict] = {
    "ice40": {"designs": 9, "lut_error_fit_mean": 0.013, "lut_error_fit_max": 0.03,
              "lut_error_loo_mean": 0.035, "lut_error_loo_max": 0.092, "holdout_designs": 3,
              "lut_error_holdout_mean": 0.042, "lut_error_holdout_max": 0.07, "lut_error_max": 0.07},
    "ecp5": {"designs": 9, "lut_error_fit_mean": 0.044, "lut_error_fit_max": 0.072,
             "lut_error_loo_mean": 0.127, "lut_error_loo_max": 0.391, "holdout_designs": 3,
             "lut_error_holdout_mean": 0.141, "lut_error_holdout_max": 0.31, "lut_error_max": 0.31},
    "xilinx": {"designs": 9, "lut_error_fit_mean": 0.048, "lut_error_fit_max": 0.143,
               "lut_error_loo_mean": 0.11, "lut_error_loo_max": 0.337, "holdout_designs": 3,
               "lut_error_holdout_mean": 0.097, "lut_error_holdout_max": 0.163, "lut_error_max": 0.163},
}

#: DSP primitive per family and Yosys' mul2dsp limits (synth_ice40 -dsp, synth_ecp5, synth_xilinx):
#: (cell, widest A, widest B, narrowest A and B, narrowest product Y).
_DSP = {"ice40": ("SB_MAC16", 16, 16, 2, 11), "ecp5": ("MULT18X18D", 18, 18, 2, 0),
        "xilinx": ("DSP48E1", 25, 18, 2, 9)}


def _dsp_per_multiplier(a: int, b: int, y: int, family: str) -> int:
    """DSP cells Yosys uses for one a × b-bit multiplication with a y-bit product (0: LUTs)."""
    _, amax, bmax, wmin, ymin = _DSP[family]
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


# ---- per-unit models ----

def _bits(n: int) -> int:
    """Width of an Amaranth Signal(range(max(2, n)))."""
    return (max(2, n) - 1).bit_length()


@dataclass(frozen=True)
class _MVU:
    """What the hardware of one layer looks like (the numbers codegen.layer_params and hw/mvu.py
    compute, without packing the ROMs)."""
    name: str
    n_in: int
    n_out: int
    pe: int
    simd: int
    pixel_bits: int
    acc_w: int
    tw: int = 0                # threshold width; the ROM holds −T in tw + 1 bits per PE
    scores: bool = False
    score_w: int = 0
    raw_w: int = 0
    scale_w: int = 0
    offset_w: int = 0

    nf = property(lambda self: folds(self.n_out, self.pe))
    sf = property(lambda self: folds(self.n_in, self.simd))
    lane = property(lambda self: self.pixel_bits or 1)


def _signed_bits(lo: int, hi: int) -> int:
    return 1 + max((-lo - 1).bit_length() if lo < 0 else 0, hi.bit_length() if hi > 0 else 0)


def _xnor_pixels(node) -> bool:
    """1-bit pixels take the XNOR-popcount datapath, as binary inputs do (hw/mvu.py)."""
    return node.input_kind == PIXELS and node.in_bits == 1


def _hw_thresholds(node) -> np.ndarray:
    """The thresholds the hardware compares with: T, or for 1-bit pixels the popcount threshold
    ⌈(T + N)/2⌉ (2p − N ≥ T ⇔ p ≥ ⌈(T + N)/2⌉)."""
    from ..hw.mvu import popcount_threshold     # the hardware's own rule
    t = node.thresholds.astype(np.int64)
    return popcount_threshold(t, node.in_features) if _xnor_pixels(node) else t


def _mvu_shape(node, pe: int, simd: int) -> _MVU:
    xnor_pixels = _xnor_pixels(node)
    pixel = node.input_kind == PIXELS and not xnor_pixels
    lo, hi = accumulator_range(node.input_kind, node.in_features, node.in_bits) if pixel else (0, node.in_features)
    common = dict(name=node.name, n_in=node.in_features, n_out=node.out_features, pe=pe, simd=simd,
                  pixel_bits=node.in_bits if pixel else 0)
    if isinstance(node, ScoresDense):
        from ..codegen.elaborate import score_range     # the hardware's own definition (lazy: no cycle)
        acc_w = max(lo.bit_length(), hi.bit_length()) + 2 if pixel else hi.bit_length()
        raw_lo = lo if pixel else -hi
        extra = {}
        if node.has_affine:
            extra = dict(raw_w=signed_width(raw_lo, hi),
                         scale_w=signed_width(int(node.scale.min()), int(node.scale.max())),
                         offset_w=signed_width(int(node.offset.min()), int(node.offset.max())))
        return _MVU(**common, acc_w=acc_w, scores=True, score_w=signed_width(*score_range(node)), **extra)
    thresholds = _hw_thresholds(node)
    t_lo, t_hi = int(thresholds.min()), int(thresholds.max())
    # hw/mvu.py: the accumulator starts at −T, so it spans acc range + (−T) range, signed
    acc_w = _signed_bits(min(lo, 0) + min(-t_hi, 0), max(hi, 0) + max(-t_lo, 0))
    return _MVU(**common, acc_w=acc_w, tw=signed_width(min(t_lo, 0), max(t_hi, 1)))


def _nonconstant_columns(rows: np.ndarray) -> int:
    """Columns of a (rows, width) 0/1 ROM image that are not the same in every row."""
    return int(np.count_nonzero(rows.min(axis=0) != rows.max(axis=0)))


def _weight_width(node, m: _MVU) -> int:
    """Non-constant columns of the weight ROM (passes/pack.weight_rom layout). A ROM of 16 rows or more
    is taken to have none constant (random-looking weights); smaller ones are checked exactly."""
    rows = m.nf * m.sf
    if rows == 1:
        return 0                                   # read at address 0 only: a constant
    if rows >= 16:
        return m.pe * m.simd
    padded = np.ones((m.nf * m.pe, m.sf * m.simd), dtype=np.uint8)
    padded[:m.n_out, :m.n_in] = node.weight_bits
    image = padded.reshape(m.nf, m.pe, m.sf, m.simd).transpose(0, 2, 1, 3).reshape(rows, m.pe * m.simd)
    return _nonconstant_columns(image)


def _field_width(values, m: _MVU, width: int) -> int:
    """Non-constant bit columns of a per-channel constant ROM (passes/pack.channel_rom: pad value 0)."""
    if m.nf == 1:
        return 0
    padded = np.zeros(m.nf * m.pe, dtype=np.int64)
    padded[:len(values)] = np.asarray(values, dtype=np.int64)
    fields = padded.reshape(m.nf, m.pe) & ((1 << width) - 1)
    bits = (fields[:, :, None] >> np.arange(width)) & 1                 # (nf, pe, width)
    return _nonconstant_columns(bits.reshape(m.nf, -1))


def _target(family: str, target=None):
    """The hardware target (hw/target.py) the design is built with: ``target`` (a HardwareTarget or its
    name, "generic" for the untargeted shape) or, by default, the family's own."""
    try:
        from ..hw.target import target_for
    except ImportError:          # pragma: no cover - a tree without hardware targets
        return None
    return target_for(target if target is not None else family)


def _pipeline_ffs(m: _MVU, target) -> int:
    """Flip-flops of the PE array's pipeline (hw/pe_array.py) and of the control that travels beside it."""
    stages = getattr(target, "pipeline", 0) if target is not None else 0
    if not stages:
        return 0
    try:
        from ..hw.pe_array import _compressor_levels, cut_levels, tree_depth
        tree = m.pixel_bits or getattr(target, "carry_adders", False)
        levels = tree_depth(m.simd) if tree else _compressor_levels(m.simd, target.lut_inputs)
        cuts, out_regs = cut_levels(stages, levels)
    except ImportError:          # pragma: no cover
        cuts, out_regs = set(), stages
    # per stage: valid, first, last and done beside the PE array, and the neuron-fold index (hw/mvu.py)
    ffs = out_regs * m.pe * m.acc_w + stages * (4 + _bits(m.nf))
    # constant weights (one ROM row): equal sums of different PEs are one register, c_ones is constant
    copies = min(m.pe, 3) if m.nf * m.sf == 1 else m.pe
    for level in cuts:           # registers inside the trees: the sums at that level
        terms = -(-m.simd // (1 << level))
        if m.nf * m.sf == 1:
            ffs += copies * terms * (m.lane + level)
            continue
        if m.pixel_bits:         # p_sum and c_ones per PE, q_sum and n_valid once
            ffs += m.pe * terms * (m.pixel_bits + level + 1 + level) + terms * (m.pixel_bits + level) \
                + _bits(m.simd + 1)
        elif getattr(target, "carry_adders", False):
            ffs += m.pe * terms * (level + 1)
        else:                    # compressor level 1: two bits per group of 3 (LUT6) or 2 (LUT4) lanes
            per = 3 if target.lut_inputs >= 6 else 2
            ffs += m.pe * (2 * m.simd // per + (m.simd % per > 0)) if level == 1 else m.pe * terms * (level + 1)
    return ffs


def _mvu_unit(node, m: _MVU, family: str, target=None, class_index: bool = True) -> UnitEstimate:
    word_w = m.simd * m.lane
    in_bits = m.n_in * m.lane
    f = dict.fromkeys(COST_MODELS[family], 0.0)
    lanes = m.pe * m.simd
    nbuf = getattr(target, "input_buffers", 2) if target is not None else 2
    if m.nf * m.sf == 1:
        # one weight row: the weights are constants, the XNORs vanish and equal sums are shared
        f["const_lanes"] = lanes * m.lane
        if m.pixel_bits:
            f["pixel_combine_bits"] = m.pe * m.acc_w
    elif m.pixel_bits:
        f["pixel_lane_bits"] = lanes * m.pixel_bits + word_w        # PE p_sum trees + the shared q_sum
        f["popcount_lanes"] = lanes                                  # c_ones
        f["pixel_combine_bits"] = m.pe * m.acc_w                     # 4P − 2Q − D(2C − V) per PE
    else:
        f["popcount_lanes"] = lanes
    f["select_mux"] = max(0, max(1, nbuf) * in_bits - word_w)        # buffers (or the beat) × SF words → one word
    f["acc_bits"] = m.pe * m.acc_w                                   # accumulate (from −T or 0)
    field_w = m.score_w if m.scores else 1
    f["out_bits"] = m.n_out * field_w                                # result / output register loads
    f["mvu_control"] = 1
    style = (lambda bits, rows: target.rom_style(bits, rows)) if target is not None else (lambda bits, rows: "")
    memories = [map_memory(f"{m.name} weights", _weight_width(node, m), max(2, m.nf * m.sf), family,
                           style=style(m.nf * m.sf * m.pe * m.simd, m.nf * m.sf))]
    multipliers = []            # (count, a bits, b bits, product bits, what)
    if m.pixel_bits >= 2:       # D·(2C − V) with the constant D = 2^bits − 1, one per PE
        a, b = m.pixel_bits + 1, m.simd.bit_length() + 2
        multipliers.append((m.pe, a, b, min(a + b, m.acc_w - 1),
                            f"the constant {(1 << m.pixel_bits) - 1} × (2·C − V) of the pixel sums"))
    if m.scores:
        f["score_bits"] = m.pe * m.score_w
        if class_index:         # the class tournament (MVUParams.class_index; a board top has its own scan)
            f["argmax_bits"] = (m.n_out - 1) * (m.score_w + max(1, (m.n_out - 1).bit_length()))
        if node.has_affine:
            f["score_bits"] += m.pe * m.score_w                      # + offset
            multipliers.append((m.pe, m.raw_w, m.scale_w, m.raw_w + m.scale_w, "raw score × scale of the affine head"))
            cstyle = style(m.nf * m.pe * max(m.scale_w, m.offset_w), m.nf)
            for what, values, width in (("scales", node.scale, m.scale_w), ("offsets", node.offset, m.offset_w)):
                memories.append(map_memory(f"{m.name} {what}", _field_width(values, m, width), max(2, m.nf), family,
                                           style=cstyle))
    else:
        ntw = m.tw + 1
        memories.append(map_memory(f"{m.name} thresholds", _field_width(-_hw_thresholds(node), m, ntw),
                                   max(2, m.nf), family, style=style(m.nf * m.pe * ntw, m.nf)))
    dsp, notes = 0, []
    for count, a, b, y, what in multipliers:
        per = _dsp_per_multiplier(a, b, y, family)
        if per:
            dsp += count * per
            notes.append(f"{count} × {what} ({a} × {b} bits) in {count * per} {_DSP[family][0]}")
        elif what.startswith("raw"):
            f["mul_bits"] += count * a * b
    note = f"{m.name}: " + "; ".join(notes) if notes else ""
    f["rom_logic"] = sum(mem.logic_luts for mem in memories)
    ring = m.sf if getattr(target, "onehot_select", False) and m.sf > 1 else 0      # one-hot word select
    ffs = (nbuf * in_bits + 4 + 2 * (_bits(m.sf) + _bits(m.nf)) + _bits(m.nf * m.sf) + 3 + word_w + ring
           + m.pe * m.acc_w + (m.nf - 1) * m.pe * field_w + m.n_out * field_w + 1
           + sum(mem.ffs for mem in memories) + _pipeline_ffs(m, target))
    return _unit(m.name, "mvu", f, family, ffs, memories, dsp, note)


def _unit(name, kind, f, family, ffs, memories, dsp=0, note="") -> UnitEstimate:
    coeffs = COST_MODELS[family]
    lutram = sum(mem.lut_sites for mem in memories)
    luts = sum(coeffs[k] * v for k, v in f.items()) + lutram
    return UnitEstimate(name=name, kind=kind, luts=luts, ffs=int(ffs),
                        bram_blocks=sum(mem.blocks for mem in memories),
                        bram_bits=sum(mem.bits for mem in memories if mem.in_block_ram), dsp=dsp,
                        lutram_luts=lutram, features={k: v for k, v in f.items() if v}, memories=tuple(memories),
                        dsp_note=note)


def _window_unit(name: str, kind: str, wp, family: str, pool_channels: int = 0) -> UnitEstimate:
    """A sliding-window unit (hw/sliding_window.py), or a pool built on one (hw/maxpool.py)."""
    (kh, kw), P, R, W = wp.kernel, wp.pixel_bits, wp.slots, wp.width
    f = dict.fromkeys(COST_MODELS[family], 0.0)
    f["window_mux"] = kh * P * R
    f["window_control"] = 1
    if pool_channels:
        f["pool_inputs"] = pool_channels * kh * kw
    line = map_memory(f"{name} line buffer", R * P, max(2, W), family, lanes=R, lane_bits=P)
    if line.cell == "logic":
        f["ram_logic"] = line.logic_luts
    ffs = (kw * kh * P + _bits(W) + _bits(R) * (2 + kh) + (R + 2).bit_length() + _bits(wp.out_height)
           + _bits(wp.scan_width) + _bits(wp.stride[1]) + (wp.height + 6).bit_length() + 4 + kh + line.ffs)
    return _unit(name, kind, f, family, ffs, [line])


def _collect_unit(pixels: int, pixel_bits: int, family: str) -> UnitEstimate:
    f = dict.fromkeys(COST_MODELS[family], 0.0)
    f["collect_control"] = 1
    return _unit("flatten", "collect", f, family, 2 * pixels * pixel_bits + _bits(pixels) + 1, [])


def _units(graph: Graph, family: str, folding: dict | None = None, target=None,
           class_index: bool = True) -> list[UnitEstimate]:
    from ..codegen.elaborate import DECOUPLING_ROWS, window_params
    from ..hw import MaxPoolParams
    if family not in COST_MODELS:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    target = _target(family, target)
    fold = lambda n: folding[n.name] if folding is not None else graph.folding_of(n.name)
    units, image = [], None
    for node in graph.nodes:
        if isinstance(node, ThresholdConv):
            units.append(_window_unit(f"{node.name} window", "window", window_params(node), family))
            f = fold(node)
            units.append(_mvu_unit(node, _mvu_shape(node, f.pe, f.simd), family, target))
            image = node.window.out_hw + (node.out_features,)
        elif isinstance(node, MaxPoolBits):
            (k, _), (s, _) = node.kernel, node.stride
            pool = MaxPoolParams(*node.in_shape, kernel=k, stride=s, extra_rows=DECOUPLING_ROWS)
            units.append(_window_unit(node.name, "pool", pool.window, family, pool_channels=node.in_shape[2]))
            image = node.out_hw + (node.in_shape[2],)
        elif hasattr(node, "weight_bits"):
            if image is not None:
                units.append(_collect_unit(image[0] * image[1], image[2], family))
                image = None
            f = fold(node)
            units.append(_mvu_unit(node, _mvu_shape(node, f.pe, f.simd), family, target, class_index))
    return units


def estimate_resources(graph: Graph, family: str, folding: dict | None = None, target=None,
                       class_index: bool = True) -> ResourceEstimate:
    """Resources of ``graph`` for ``family`` ("ice40", "ecp5", "xilinx"), with the graph's folding or,
    if given, ``folding`` (layer name → Folding). ``target``: the hardware target the design is built
    with (hw/target.py; default the family's own, "generic" for the untargeted shape).
    ``class_index=False``: the network inside a board top, whose score layer builds no class index."""
    return ResourceEstimate(family, tuple(_units(graph, family, folding, target, class_index)))


def layer_unit(node, pe: int, simd: int, family: str, target=None) -> UnitEstimate:
    """Estimate of one compute layer's MVU alone at (pe, simd) (used by passes/autofold.py)."""
    return _mvu_unit(node, _mvu_shape(node, pe, simd), family, _target(family, target))


def layer_luts(node, pe: int, simd: int, family: str, target=None) -> float:
    """Estimated LUTs of one compute layer's MVU alone at (pe, simd)."""
    return layer_unit(node, pe, simd, family, target).luts


def lut_features(graph: Graph, family: str, target=None) -> dict[str, float]:
    """Σ over the units of each LUT feature (before coefficients), plus ``lutram`` (exact LUT-RAM LUTs)."""
    total: dict[str, float] = {}
    for u in _units(graph, family, None, target):
        for k, v in u.features.items():
            total[k] = total.get(k, 0.0) + v
        total["lutram"] = total.get("lutram", 0.0) + u.lutram_luts
    return total


#: Features whose coefficients the calibration scales together (one factor per group), so that a few
#: Yosys runs determine the factors; the ratios inside a group stay as derived from the hardware.
FEATURE_GROUPS = {
    "lanes": ("popcount_lanes", "pixel_lane_bits"),
    "constant weights": ("const_lanes",),
    "arith": ("acc_bits", "pixel_combine_bits", "score_bits", "argmax_bits", "mul_bits"),
    "mux": ("select_mux", "window_mux", "out_bits", "pool_inputs"),
    "rom": ("rom_logic", "ram_logic"),
    "fixed": ("mvu_control", "window_control", "collect_control"),
}


def fit_lut_coefficients(features: list[dict], measured: list[float], prior: dict | None = None,
                         family: str | None = None, strength: float = 0.1) -> dict[str, float]:
    """LUT coefficients fitted to Yosys' counts: each :data:`FEATURE_GROUPS` group of ``prior``
    (default COST_MODELS[family]) is multiplied by one factor, chosen by least squares on the relative
    error over the designs with a ridge of ``strength`` toward 1 (a group no design exercises keeps
    its prior); factors are kept ≥ 0.05."""
    prior = dict(prior or COST_MODELS[family or "ice40"])
    groups = [(g, [k for k in keys if k in prior]) for g, keys in FEATURE_GROUPS.items()]
    X = np.array([[sum(prior[k] * f.get(k, 0.0) for k in keys) for _, keys in groups] for f in features])
    meas = np.array(measured, dtype=float)
    y = meas - np.array([f.get("lutram", 0.0) for f in features])
    w = 1.0 / np.maximum(1.0, meas)
    A, b = X * w[:, None], y * w
    reg = strength * np.ones(len(groups))
    scale = np.linalg.lstsq(np.vstack([A, np.diag(reg)]), np.concatenate([b, reg]), rcond=None)[0]
    scale = np.maximum(scale, 0.05)
    out = dict(prior)
    for (_, keys), f in zip(groups, scale):
        for k in keys:
            out[k] = float(prior[k] * f)
    return out


# ---- devices ----

@dataclass(frozen=True)
class Device:
    name: str
    family: str
    luts: int
    ffs: int
    bram_blocks: int
    bram_block_bits: int
    dsp: int
    description: str
    source: str

    @property
    def bram_bits(self) -> int:
        return self.bram_blocks * self.bram_block_bits

    def capacity(self) -> dict:
        cap = {"name": self.description, "device": self.name, "family": self.family, "luts": self.luts,
               "ffs": self.ffs, "bram_blocks": self.bram_blocks, "bram_bits": self.bram_bits, "dsp": self.dsp}
        if self.family == "ice40":
            # An iCE40 logic cell is one LUT4 and one flip-flop, and a flip-flop shares a cell only with
            # the LUT that feeds it: LUTs + FFs bounds the cells (the digits build: 4,745 against
            # nextpnr's 4,377 ICESTORM_LC), and it is the count that fills the device.
            cap["cells"] = self.luts
        return cap


_ECP5_DS = ("Lattice ECP5 and ECP5-5G Family Data Sheet FPGA-DS-02012, Table 1.1 (LUTs, 18 kbit sysMEM blocks, "
            "18×18 multipliers); nextpnr-ecp5 'Device utilisation' lists the same TRELLIS_COMB, DP16KD and "
            "MULT18X18D counts")

#: Capacities of the parts the boards use (bnn2hw/board/boards.py names them by ``Board.device``).
DEVICES: dict[str, Device] = {d.name: d for d in (
    Device("iCE40UP5K", "ice40", 5_280, 5_280, 30, 4_096, 8, "iCE40 UP5K",
           "Lattice iCE40 UltraPlus Family Data Sheet FPGA-DS-02008, Table 1.1: 5,280 LUT4s and flip-flops, "
           "120 kbit EBR in 30 SB_RAM40_4K blocks, 8 SB_MAC16 DSPs, 4 SPRAM blocks of 256 kbit (not used by bnn2hw)"),
    Device("LFE5U-12F", "ecp5", 12_000, 12_000, 32, 18_432, 28, "ECP5 LFE5U-12F",
           _ECP5_DS + "; the data sheet gives '12K' LUTs (the die is the 25F's, which nextpnr shows)"),
    Device("LFE5U-25F", "ecp5", 24_288, 24_288, 56, 18_432, 28, "ECP5 LFE5U-25F", _ECP5_DS),
    Device("LFE5U-45F", "ecp5", 43_848, 43_848, 108, 18_432, 72, "ECP5 LFE5U-45F", _ECP5_DS),
    Device("LFE5U-85F", "ecp5", 83_640, 83_640, 208, 18_432, 156, "ECP5 LFE5U-85F", _ECP5_DS),
    Device("xc7a35t", "xilinx", 20_800, 41_600, 50, 36_864, 90, "Artix-7 XC7A35T",
           "AMD 7 Series FPGAs Data Sheet: Overview DS180, Table 3 (LUT6, flip-flops, 36 kbit block RAMs, DSP48E1)"),
    Device("xc7z020", "xilinx", 53_200, 106_400, 140, 36_864, 220, "Zynq-7000 XC7Z020",
           "AMD Zynq-7000 SoC Data Sheet: Overview DS190, Table 1 (LUT6, flip-flops, 36 kbit block RAMs, DSP48E1)"),
)}
DEVICES_BY_KEY = {k.lower().replace("-", "").replace(" ", ""): d for k, d in DEVICES.items()}


def device_capacity(device: str) -> dict:
    """Capacity dict of a device name in :data:`DEVICES` (case, '-' and spaces ignored)."""
    d = DEVICES_BY_KEY.get(str(device).lower().replace("-", "").replace(" ", ""))
    if d is None:
        raise KeyError(f"no capacity known for device {device!r}; known: {', '.join(DEVICES)}")
    return d.capacity()


def capacity_from(capacity) -> dict:
    """A capacity dict from a dict (kept as is) or a device name."""
    if isinstance(capacity, str):
        return device_capacity(capacity)
    return dict(capacity)


BOARD_CAPACITY = {name: d.capacity() for name, d in DEVICES.items()}
__all__ += ["BOARD_CAPACITY", "DEVICES_BY_KEY"]
