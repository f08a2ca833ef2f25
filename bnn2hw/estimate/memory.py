"""Where Yosys puts a memory: block RAM, LUT RAM, soft logic or a constant (memory_libmap's costs).

Memories are placed the way Yosys' ``memory_libmap`` places them (:func:`map_memory`): a ``rom_style``
the target sets ("block" at or above ``bram_min_bits``, else "logic") decides, and without one every
block-RAM geometry of the family is tried (iCE40 SB_RAM40_4K 256×16 … 2048×2; ECP5 DP16KD 1024×18 …
16384×1 and PDPW16KD 512×36; Xilinx RAMB18 / RAMB36 1024×18 … 32768×1 and 512×36 / 512×72) at the
library file's ``cost`` per block plus ½ per extra read-multiplexer bit, against soft logic at 1/16
per ROM bit (1 per RAM bit); the cheapest wins. ROMs never go into LUT RAM (the Yosys libraries mark
it ``prune_rom``); the line buffers of window units, which are written, may (ECP5 TRELLIS_DPR16X4,
Xilinx RAM32M/RAM64M). Blocks: ``ceil(mult_a·W / width)`` for the chosen geometry (depth, width),
mult_a = ``ceil(D / depth)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .families import LUT_SIZE

__all__ = ["RamKind", "RAM_KINDS", "MemoryEstimate", "map_memory"]


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

