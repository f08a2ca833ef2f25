"""Hardware targets: how the generated units are shaped for one FPGA family.

A :class:`HardwareTarget` changes structure, never function: every target computes exactly what the
golden model computes (tests/test_pe_targets.py), with the same initiation interval K = NF·SF. It
sets, per matrix-vector unit:

* ``lut_inputs`` / ``compressor`` / ``carry_adders`` — the popcount tree (hw/pe_array.py): LUT6
  compressors for Xilinx, LUT4 full-adder trees for ECP5, carry-chain adder trees for iCE40, and
  (the generic default) ``lut_inputs``-bit lookup pieces + an adder tree;
* ``pipeline`` — register stages in the PE array. Each adds one cycle of latency per layer
  (``MVUParams.latency_cycles`` = K + 2 + pipeline) and none to the initiation interval;
* ``input_buffers`` — 2 (the next input vector loads while one computes), 1 (the producer's output
  register holds the next one) or 0 (the unit reads its SIMD words straight from the input beat,
  which its producer holds until the last word is issued). All three keep the initiation interval;
  fewer buffers save ``n_in`` × bits flip-flops each, and 0 also saves one cycle of latency per unit;
* ``onehot_select`` — the SIMD word in front of the PE array is picked by a one-hot ring of SF
  flip-flops (an AND-OR tree, log4(2·SF) LUT4 levels) instead of a multiplexer on the word counter
  (its decoder and mux tree were eight LUT4 levels at SF = 64). For LUT4 families;
* ``bram_min_bits`` — ROMs of at least this many bits (or of more than ``logic_rom_max_rows`` rows)
  get ``rom_style = "block"`` (block RAM), smaller ones ``small_rom_style`` ("logic"; Yosys maps no ROM to Xilinx LUT RAM);
  ``None`` leaves the choice to synthesis (Yosys maps ROMs of up to ~16 kbit to logic on Xilinx);
* ``comparator_levels`` — a multi-bit output with up to this many thresholds per channel (15: up to
  4-bit activations, FINN's W1A2/W2A2 have 2 or 3) is decided by a bank of parallel comparators;
  more (5- to 8-bit activations) by a pipelined binary search of ⌈log2(L + 1)⌉ stages (hw/mvu.py).
  The bank costs L comparators per PE and PE·L threshold fields per ROM row (PE·255 for 8 bits,
  wider than any block RAM row); the search costs one comparator, one register stage and one small
  ROM per stage and PE. 15 is the same for every family: at 4 bits the bank's 15 comparators and
  the search's 4 stages (comparators, registers, per-PE ROMs of NF·2^t rows) are of one size.

The hardware plan (bnn2hw.plan.plan_network(graph, target)) applies it; ``None`` (the default) is
:data:`GENERIC`, the behaviour bnn2hw always had. Which target each FPGA family builds with is the
family registry's (bnn2hw.estimate.families).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HardwareTarget", "GENERIC", "XILINX_7", "ICE40_UP5K", "ICE40_UP5K_COMPACT", "ECP5", "TARGETS",
           "target_for"]


@dataclass(frozen=True)
class HardwareTarget:
    name: str = "generic"
    lut_inputs: int = 6
    compressor: bool = False
    carry_adders: bool = False
    pipeline: int = 0
    bram_min_bits: int | None = None
    small_rom_style: str = "logic"
    input_buffers: int = 2
    logic_rom_max_rows: int | None = None
    onehot_select: bool = False
    comparator_levels: int = 15
    levels_per_stage: int = 0
    rom_registers: int = 0
    compare_register: bool = False
    class_levels_per_stage: int = 0
    chain_buffers: int | None = None

    @property
    def chained_input_buffers(self) -> int:
        """Input buffers of a matrix-vector unit fed by another one (``chain_buffers``, else
        ``input_buffers``)."""
        return self.input_buffers if self.chain_buffers is None else self.chain_buffers

    def __post_init__(self):
        if self.lut_inputs not in (4, 5, 6):
            raise ValueError(f"lut_inputs must be 4, 5 or 6, not {self.lut_inputs!r}")
        if not isinstance(self.pipeline, int) or not 0 <= self.pipeline <= 8:
            raise ValueError(f"pipeline must be 0..8, not {self.pipeline!r}")
        # Yosys 0.70 maps no ROM (a memory without write port) to Xilinx LUT RAM ("ROM mapping
        # disabled"; rom_style="distributed" is an error), and a small ROM in logic is as small.
        if not isinstance(self.comparator_levels, int) or self.comparator_levels < 1:
            raise ValueError(f"comparator_levels must be a positive integer, not {self.comparator_levels!r}")
        if self.small_rom_style not in ("logic", ""):
            raise ValueError(f"small_rom_style must be 'logic' or '', not {self.small_rom_style!r}")
        for name in ("levels_per_stage", "class_levels_per_stage"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 16:
                raise ValueError(f"{name} must be an integer in 0..16, not {value!r}")
        if self.chain_buffers not in (None, 0, 1, 2) or self.input_buffers not in (0, 1, 2):
            raise ValueError(f"input_buffers and chain_buffers must be 0, 1 or 2, not {self.input_buffers!r} and "
                             f"{self.chain_buffers!r}")

    def rom_style(self, bits: int, rows: int = 0) -> str:
        """``MVUParams.rom_style`` for a ROM of ``bits`` bits in ``rows`` rows."""
        if self.bram_min_bits is None:
            return ""
        deep = self.logic_rom_max_rows is not None and rows > self.logic_rom_max_rows
        return "block" if bits >= self.bram_min_bits or deep else self.small_rom_style



#: What bnn2hw generated before targets existed; the default everywhere.
GENERIC = HardwareTarget()
#: Xilinx 7-series (LUT6, CARRY4, RAMB18/36, LUT RAM). Two stages: one register after the XNOR level,
#: which keeps abc9 from restructuring across it (fewer LUTs), and one before the accumulator.
#: No input buffer in the first unit; one in every chained unit: a unit that read its SIMD words
#: from its producer's held output would need the producer to keep a second output slot (its credits,
#: hw/mvu.output_slots), a 2:1 multiplexer per bit: FINN's LFC measured 18,890 LUTs that way and
#: 15,802 with the buffer (a flip-flop with an enable, which a Xilinx slice has free beside its LUTs).
XILINX_7 = HardwareTarget("xilinx-7", lut_inputs=6, compressor=True, pipeline=2, bram_min_bits=4096,
                          input_buffers=0, chain_buffers=1)
#: Lattice iCE40 UP5K (LUT4 + SB_CARRY, 30 × 4-kbit SB_RAM40_4K, no LUT RAM). On a 5,280-cell part
#: the buffer flip-flops (which pack with no LUT) cost as many cells as the logic of the layers.
#: A ROM of more than 64 rows goes to block RAM however small: in LUT4 logic its address decoder and
#: read multiplexer are seven or more levels deep (the digits model's 640-row score-layer ROM was the
#: critical path at 36 MHz). Three pipeline stages: the third cuts the carry-adder trees in the
#: middle (at SIMD 16 the rest of the tree after level 1 was the critical path at 40 MHz), for a few
#: flip-flops per PE and one cycle of latency per unit.
ICE40_UP5K = HardwareTarget("ice40-up5k", lut_inputs=4, carry_adders=True, bram_min_bits=2048,
                            input_buffers=1, logic_rom_max_rows=64, onehot_select=True, levels_per_stage=1,
                            rom_registers=1, compare_register=True, class_levels_per_stage=1, chain_buffers=1)
#: The UP5K's units for clocks up to ``Family.compact_max_mhz`` (36 MHz; the board's 12 MHz oscillator
#: by default): three PE stages spread over the trees, no input buffer in the first unit, one in every
#: chained unit (without it a producer needs a second output slot, a 2:1 multiplexer per bit), and no
#: ROM, comparator or class-tournament registers. The pipelined target's registers fill a 5,280-cell
#: part: the W2A2 digits MLP's network measures 3,769 flip-flops with them, 2,351 without
#: (docs/benchmarks.md), and its board build no longer places.
ICE40_UP5K_COMPACT = HardwareTarget("ice40-up5k-compact", lut_inputs=4, carry_adders=True, pipeline=3,
                                    bram_min_bits=2048, input_buffers=0, chain_buffers=1, logic_rom_max_rows=64,
                                    onehot_select=True)
#: Lattice ECP5 (LUT4, CCU2C carry, 18-kbit DP16KD, DPR16X4 LUT RAM).
ECP5 = HardwareTarget("ecp5", lut_inputs=4, compressor=True, bram_min_bits=4096, small_rom_style="logic",
                      input_buffers=0, onehot_select=True, levels_per_stage=2, rom_registers=2,
                      compare_register=True, class_levels_per_stage=1, chain_buffers=1)

TARGETS = {t.name: t for t in (GENERIC, XILINX_7, ICE40_UP5K, ICE40_UP5K_COMPACT, ECP5)}


def target_for(name: str | HardwareTarget | None) -> HardwareTarget:
    """A target by name ("xilinx-7", "ice40-up5k", "ecp5", "generic"); a HardwareTarget is returned as
    it is and None gives :data:`GENERIC`. (A family's target: ``bnn2hw.estimate.family(name).target``.)"""
    if name is None:
        return GENERIC
    if isinstance(name, HardwareTarget):
        return name
    found = TARGETS.get(name)
    if found is None:
        raise ValueError(f"unknown hardware target {name!r}; choose one of {', '.join(sorted(TARGETS))}")
    return found
