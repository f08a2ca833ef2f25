"""The hardware plan of one compute layer: every number its matrix-vector unit is built from, derived once.

A :class:`LayerPlan` is made from a folded IR node (ThresholdDense, ThresholdConv or ScoresDense), its
folding (PE, SIMD) and the hardware target. It owns the rules that turn the layer's integers into
hardware: the folds NF and SF, the lane widths, the accumulator width, the thresholds in the
accumulator's units (−T, a popcount threshold ⌈(T + N)/2⌉ for 1-bit pixels), the score, scale and
offset widths, the ROM images and their styles, the cycles, and the latency. The hardware
(:attr:`LayerPlan.mvu`, an :class:`~bnn2hw.hw.MVUParams`), the cycle and resource estimates, the
automatic folding, the fit check and the reports all read these; none of them derives one again.

ROM images are computed on first use only, so that the automatic folding can cost thousands of
candidate plans without packing a ROM.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..hw.mvu import MVUParams, UnitShape, class_stages, extra_cycles, output_slots
from ..hw.pe_array import cut_levels, pipeline_stages, tree_levels
from ..ir import CODES, PIXELS, ScoresDense, ThresholdConv, accumulator_range
from ..ir.arith import layer_cycles, popcount_threshold, positions, signed_width
from .rom import (channel_fields, channel_rom, search_roms, search_thresholds, weight_code_rom, weight_image,
                  weight_rom)
from .target import HardwareTarget

__all__ = ["LayerPlan", "Multiplier"]


@dataclass(frozen=True)
class Multiplier:
    """``count`` multiplications of ``a_bits`` × ``b_bits`` bits with a ``product_bits``-bit product that
    a unit's hardware builds (synthesis may put each in DSP cells): what the resource estimate counts."""
    count: int
    a_bits: int
    b_bits: int
    product_bits: int
    what: str


@dataclass(frozen=True, eq=False)
class LayerPlan(UnitShape):
    """One compute layer's unit. ``class_index``: a scores head also builds its class index (a board
    top has its own class scan instead)."""
    node: object
    pe: int
    simd: int
    target: HardwareTarget
    class_index: bool = True
    chained: bool = False                      # fed by another matrix-vector unit (target.chain_buffers)
    consumer: tuple[int, int | None] = (1, None)   # (cycles, input buffers) of the unit it feeds; None:
                                               # a stream unit or the network's output (output_slots())

    # ---- the layer and its folding ----
    @property
    def name(self) -> str:
        return self.node.name

    @property
    def kind(self) -> str:
        """"scores" (the last layer), "conv" or "threshold"."""
        if isinstance(self.node, ScoresDense):
            return "scores"
        return "conv" if isinstance(self.node, ThresholdConv) else "threshold"

    @property
    def scores(self) -> bool:
        return self.kind == "scores"

    n_in = property(lambda self: self.node.in_features)
    n_out = property(lambda self: self.node.out_features)

    @property
    def positions(self) -> int:
        return positions(self.node)

    @property
    def cycles_per_frame(self) -> int:
        return layer_cycles(self.node, self.pe, self.simd)

    @property
    def input_buffers(self) -> int:
        """The unit's input buffers: the target's, or its ``chain_buffers`` behind another unit."""
        return self.target.chained_input_buffers if self.chained else self.target.input_buffers

    @property
    def tree_levels(self) -> int:
        t = self.target
        return tree_levels(self.simd, self.pixel_bits if self.codes else self.pe_pixel_bits, t.lut_inputs,
                           t.compressor and not t.carry_adders, t.carry_adders, self.codes, self.weight_precision)

    @property
    def pipeline(self) -> int:
        """PE-array register stages: one every ``levels_per_stage`` tree levels, or the target's count."""
        every = self.target.levels_per_stage
        return pipeline_stages(self.tree_levels, every) if every else self.target.pipeline

    @property
    def compare_register(self) -> bool:
        """A register after the comparator bank or the affine score, where the target asks for one."""
        logic = (self.multi_threshold and not self.search_stages) or self.has_affine
        return self.target.compare_register and logic

    @property
    def class_levels_per_stage(self) -> int:
        return self.target.class_levels_per_stage if self.scores and self.class_index else 0

    @property
    def class_stages(self) -> int:
        return class_stages(self.n_out, self.class_levels_per_stage)

    @property
    def pipeline_cycles(self) -> int:
        """Cycles the unit's latency adds to K (hw/mvu.py)."""
        return extra_cycles(self.input_buffers, self.pipeline, self.search_stages, self.target.rom_registers,
                            self.compare_register, self.class_stages)

    @property
    def out_slots(self) -> int:
        """Output slots Q for the unit this one feeds (hw/mvu.output_slots)."""
        latency = extra_cycles(0, self.pipeline, self.search_stages, self.target.rom_registers,
                               self.compare_register, self.class_stages) + 1
        return output_slots(latency, self.cycles, *self.consumer)

    @property
    def latency_cycles(self) -> int:
        return self.cycles + self.pipeline_cycles

    # ---- lanes ----
    @property
    def pixel_bits(self) -> int:
        """Bits per input element on the stream: 0 for binary activations."""
        return self.node.in_bits if self.node.input_kind in (PIXELS, CODES) else 0

    @property
    def codes(self) -> bool:
        """The multi-bit datapath: A = Σ w·x over unsigned input codes and signed integer weights."""
        return self.node.input_kind == CODES

    @property
    def weight_precision(self) -> int:
        return self.node.weight_precision

    @property
    def levels(self) -> int:
        """Thresholds per output channel (1: one output bit; 0 for a scores head)."""
        return 0 if self.scores else self.node.levels

    @property
    def multi_threshold(self) -> bool:
        """Output codes of several bits: the accumulator starts at 0 and a comparator bank (or a binary
        search) counts the thresholds it reaches."""
        return self.levels > 1

    @property
    def search_stages(self) -> int:
        """Stages of the pipelined binary search over the thresholds (hw/mvu.py): out_bits where the
        layer has more thresholds per channel than the target builds as a comparator bank, else 0."""
        if not self.multi_threshold or self.levels <= self.target.comparator_levels:
            return 0
        return self.node.out_bits

    @property
    def threshold_count(self) -> int:
        """Thresholds the ROMs hold per channel: 1, L (comparator bank) or 2^B − 1 (binary search,
        the missing ones never reached)."""
        return (1 << self.search_stages) - 1 if self.search_stages else max(1, self.levels)

    @property
    def lanes(self) -> int:
        return self.pe * self.simd

    @property
    def word_bits(self) -> int:
        """Bits of one SIMD word in front of the PE array."""
        return self.simd * self.lane_bits

    @property
    def in_bits(self) -> int:
        """Bits of one input vector (the unit's input beat)."""
        return self.n_in * self.lane_bits

    # ---- accumulator, thresholds, scores ----
    @property
    def acc_range(self) -> tuple[int, int]:
        """What the PE array accumulates per channel: a popcount 0..N, or a signed pixel sum."""
        if self.codes:
            return accumulator_range(CODES, self.n_in, self.pixel_bits, self.weight_precision)
        if self.xnor_lanes:
            return 0, self.n_in
        return accumulator_range(PIXELS, self.n_in, self.pixel_bits)

    @cached_property
    def hw_thresholds(self) -> np.ndarray:
        """(NF, PE) thresholds in the accumulator's units, padded channels as T = 0: T, or with 1-bit
        pixels the popcount threshold (2p − N ≥ T ⇔ p ≥ ⌈(T + N)/2⌉). Multi-thresholds: (NF, PE, L)."""
        matrix = self.node.threshold_matrix
        t = np.stack([channel_fields(matrix[:, k], self.pe) for k in range(matrix.shape[1])], axis=-1)
        if self.pixel_bits == 1 and not self.codes:
            t = popcount_threshold(t, self.n_in)
        return t if self.multi_threshold else t[..., 0]

    @property
    def never_threshold(self) -> int:
        """A threshold no accumulator reaches: a binary search's padding (plan/rom.py)."""
        return self.acc_range[1] + 1

    @cached_property
    def neg_threshold_range(self) -> tuple[int, int]:
        """Range of the threshold ROM's fields: −T (one threshold), or T itself (several)."""
        if self.search_stages:
            fields = search_thresholds(self.hw_thresholds, self.never_threshold)
        else:
            fields = self.hw_thresholds if self.multi_threshold else -self.hw_thresholds
        return int(fields.min()), int(fields.max())

    @property
    def threshold_width(self) -> int:
        """Bits of a −T (or, multi-threshold, T) field of the threshold ROM (0 for a scores head)."""
        return 0 if self.scores else signed_width(*self.neg_threshold_range)

    @cached_property
    def acc_width(self) -> int:
        lo, hi = self.acc_range
        if self.codes and (self.scores or self.multi_threshold):
            return signed_width(lo, hi)
        if self.scores:
            return max(lo.bit_length(), hi.bit_length()) + 2 if self.pe_pixel_bits else hi.bit_length()
        if self.multi_threshold:      # starts at 0; the comparators take T at its own width
            return signed_width(min(lo, 0), max(hi, 0))
        # the accumulator starts at −T: the output bit is acc ≥ 0, its sign
        neg_lo, neg_hi = self.neg_threshold_range
        return signed_width(min(lo, 0) + min(neg_lo, 0), max(hi, 0) + max(neg_hi, 0))

    @property
    def has_affine(self) -> bool:
        return self.scores and self.node.has_affine

    @property
    def common_scale(self) -> int | None:
        """An affine head's scale when every class has the same one (the unit then multiplies by a
        constant, with no scale ROM and no multiplier), else None."""
        if not self.has_affine or np.any(self.node.scale != self.node.scale[0]):
            return None
        return int(self.node.scale[0])

    @property
    def raw_score_range(self) -> tuple[int, int]:
        """A class score before its affine: the signed pixel or codes sum, or s = 2p − N (range ±N) for bits."""
        if self.codes:
            return self.acc_range
        raw_lo, raw_hi = accumulator_range(self.node.input_kind, self.n_in, self.node.in_bits)
        return (raw_lo if self.node.input_kind == PIXELS else -raw_hi), raw_hi

    @property
    def raw_width(self) -> int:
        return signed_width(*self.raw_score_range)

    @cached_property
    def score_range(self) -> tuple[int, int]:
        """Range of a class score as the hardware computes it: raw, then scale·raw + offset when affine."""
        raw_lo, raw_hi = self.raw_score_range
        if not self.has_affine:
            return raw_lo, raw_hi
        scale, offset = self.node.scale.astype(object), self.node.offset.astype(object)
        ends = [s * r + o for s, o in zip(scale, offset) for r in (raw_lo, raw_hi)]
        return min(min(ends), raw_lo), max(max(ends), raw_hi)

    @property
    def score_width(self) -> int:
        return signed_width(*self.score_range) if self.scores else 0

    @property
    def scale_width(self) -> int:
        """Bits of a scale ROM field (0 without one: no affine, or one common scale)."""
        if not self.has_affine or self.common_scale is not None:
            return 0
        return signed_width(int(self.node.scale.min()), int(self.node.scale.max()))

    @property
    def offset_width(self) -> int:
        return signed_width(int(self.node.offset.min()), int(self.node.offset.max())) if self.has_affine else 0

    @property
    def out_field_bits(self) -> int:
        """Bits per output channel: a score, or one output bit or code."""
        return self.score_width if self.scores else self.node.out_bits

    # ---- multiplications ----
    @property
    def pixel_multiplier(self) -> bool:
        """Whether the pixel lanes' D·(2·C − V) (D = 2^bits − 1) is a multiplier. It is not: the PE
        array builds it as shifts and adds, (C << bits + 1) − (C << 1) and one of two constants D·V
        (hw/pe_array.py; as a product, Yosys put it in an ECP5 DSP, 3.9 ns of a 12.4 ns path)."""
        return False

    @property
    def multipliers(self) -> tuple[Multiplier, ...]:
        """The multiplications this unit's hardware builds: an affine head's raw score × its class's
        scale, one per PE (none with one common scale: a constant), and the pixel lanes' D·(2·C − V)
        where :attr:`pixel_multiplier` says it is one. Binary and codes lanes build none."""
        out = []
        px = self.pe_pixel_bits
        if self.pixel_multiplier and px >= 2 and not self.codes:
            a, b = px + 1, self.simd.bit_length() + 2
            out.append(Multiplier(self.pe, a, b, min(a + b, self.acc_width - 1),
                                  f"the constant {(1 << px) - 1} × (2·C − V) of the pixel sums"))
        if self.has_affine and self.common_scale is None:
            out.append(Multiplier(self.pe, self.raw_width, self.scale_width, self.raw_width + self.scale_width,
                                  "raw score × scale of the affine head"))
        return tuple(out)

    # ---- ROMs ----
    @property
    def weight_rom_bits(self) -> int:
        return self.cycles * self.pe * self.simd * self.weight_precision

    @property
    def const_field_bits(self) -> int:
        """Bits per channel of the per-channel constant ROMs together (−T or L thresholds, or scale + offset)."""
        return self.threshold_width * self.threshold_count + self.scale_width + self.offset_width

    @property
    def const_rom_bits(self) -> int:
        return self.nf * self.pe * self.const_field_bits

    @property
    def rom_style(self) -> str:
        return self.target.rom_style(self.weight_rom_bits, self.cycles)

    @property
    def const_rom_style(self) -> str:
        """Style of the threshold ROM, or of the scale and offset ROMs (each as wide as the wider); a
        binary search's ROMs all take the style of its largest (the last stage's, NF·2^(B−1) rows of
        one field per PE)."""
        if self.search_stages:
            rows = self.nf << (self.search_stages - 1)
            return self.target.rom_style(rows * self.threshold_width, rows)
        width = self.threshold_width * self.levels if not self.scores else max(self.scale_width, self.offset_width)
        return self.target.rom_style(self.nf * self.pe * width, self.nf if width else 0)

    def weight_image(self) -> np.ndarray:
        """The weight ROM as a (NF·SF, PE·SIMD) 0/1 array (bnn2hw/plan/rom.py's layout)."""
        return weight_image(self.node.weight_bits, self.pe, self.simd)

    @cached_property
    def weight_rows(self) -> tuple[int, ...]:
        if self.codes:
            return tuple(weight_code_rom(self.node.signed_weights, self.pe, self.simd, self.weight_precision))
        return tuple(weight_rom(self.node.weight_bits, self.pe, self.simd))

    @cached_property
    def threshold_rows(self) -> tuple[int, ...]:
        if self.scores:
            return ()
        if self.search_stages:       # the search's first stage: T_m, m = 2^(B−1), of every lane
            return self._search_roms[0]
        if self.multi_threshold:     # PE·L fields per row, channel-major: field j·L + k is T_k of lane j
            return tuple(channel_rom(self.hw_thresholds.reshape(-1), self.pe * self.levels, self.threshold_width))
        return tuple(channel_rom(-self.hw_thresholds.reshape(-1), self.pe, self.threshold_width))

    @cached_property
    def _search_roms(self):
        return search_roms(self.hw_thresholds, self.threshold_width, self.never_threshold)

    @property
    def search_rows(self) -> tuple[tuple[tuple[int, ...], ...], ...]:
        """A binary search's stage t = 1 .. B − 1 ROMs, one per lane (plan/rom.py)."""
        return self._search_roms[1]

    def constant_fields(self) -> dict[str, tuple[np.ndarray, int]]:
        """Each per-channel ROM's (NF, PE) fields and field width: "thresholds" (−T), or "scales" and
        "offsets". A binary search's stage ROMs are :attr:`search_rows`."""
        if self.search_stages:
            first = search_thresholds(self.hw_thresholds, self.never_threshold)[..., (1 << (self.search_stages - 1)) - 1]
            return {"thresholds": (first, self.threshold_width)}
        if self.multi_threshold:
            return {"thresholds": (self.hw_thresholds.reshape(self.nf, -1), self.threshold_width)}
        if not self.scores:
            return {"thresholds": (-self.hw_thresholds, self.threshold_width)}
        if not self.has_affine:
            return {}
        offsets = {"offsets": (channel_fields(self.node.offset, self.pe), self.offset_width)}
        if self.common_scale is not None:
            return offsets
        return {"scales": (channel_fields(self.node.scale, self.pe), self.scale_width), **offsets}

    # ---- the target's shaping of the PE array ----
    @property
    def pipeline_cuts(self) -> tuple[frozenset[int], int]:
        """(tree levels with pipeline registers inside the PE trees, registers at the PE output)."""
        cuts, out_regs = cut_levels(self.pipeline, self.tree_levels, self.target.levels_per_stage)
        return frozenset(cuts), out_regs

    @cached_property
    def mvu(self) -> MVUParams:
        """The unit's hardware parameters."""
        t = self.target
        extra = {}
        if self.scores:
            extra = dict(scores=True, score_width=self.score_width, class_index=self.class_index)
            if self.common_scale is not None:
                extra.update(score_scale=self.common_scale,
                             offset_rows=tuple(channel_rom(self.node.offset, self.pe, self.offset_width)),
                             offset_width=self.offset_width)
            elif self.has_affine:
                extra.update(scale_rows=tuple(channel_rom(self.node.scale, self.pe, self.scale_width)),
                             scale_width=self.scale_width,
                             offset_rows=tuple(channel_rom(self.node.offset, self.pe, self.offset_width)),
                             offset_width=self.offset_width)
        else:
            extra = dict(threshold_rows=self.threshold_rows, threshold_width=self.threshold_width)
            if self.multi_threshold:
                extra["levels"] = self.levels
            if self.search_stages:
                extra.update(search_stages=self.search_stages, search_rows=self.search_rows)
        if self.codes:
            extra.update(codes=True, weight_precision=self.weight_precision)
        return MVUParams(n_in=self.n_in, n_out=self.n_out, pe=self.pe, simd=self.simd, pixel_bits=self.pixel_bits,
                         weight_rows=self.weight_rows, acc_width=self.acc_width,
                         lut_inputs=t.lut_inputs, compressor=t.compressor, carry_adders=t.carry_adders,
                         pipeline=self.pipeline, levels_per_stage=t.levels_per_stage,
                         input_buffers=self.input_buffers, onehot_select=t.onehot_select,
                         rom_registers=t.rom_registers, compare_register=self.compare_register,
                         class_levels_per_stage=self.class_levels_per_stage, out_slots=self.out_slots,
                         rom_style=self.rom_style, const_rom_style=self.const_rom_style, **extra)
