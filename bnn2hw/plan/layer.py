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

from ..hw.mvu import MVUParams, UnitShape, extra_cycles
from ..hw.pe_array import cut_levels, tree_levels
from ..ir import PIXELS, ScoresDense, ThresholdConv, accumulator_range
from ..ir.arith import layer_cycles, popcount_threshold, positions, signed_width
from .rom import channel_fields, channel_rom, weight_image, weight_rom
from .target import HardwareTarget

__all__ = ["LayerPlan"]


@dataclass(frozen=True, eq=False)
class LayerPlan(UnitShape):
    """One compute layer's unit. ``class_index``: a scores head also builds its class index (a board
    top has its own class scan instead)."""
    node: object
    pe: int
    simd: int
    target: HardwareTarget
    class_index: bool = True

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
    def pipeline_cycles(self) -> int:
        """Cycles the unit's latency adds to K (hw/mvu.py)."""
        return extra_cycles(self.target.input_buffers, self.target.pipeline)

    @property
    def latency_cycles(self) -> int:
        return self.cycles + self.pipeline_cycles

    # ---- lanes ----
    @property
    def pixel_bits(self) -> int:
        """Bits per input element on the stream: 0 for binary activations."""
        return self.node.in_bits if self.node.input_kind == PIXELS else 0

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
        if self.xnor_lanes:
            return 0, self.n_in
        return accumulator_range(PIXELS, self.n_in, self.pixel_bits)

    @cached_property
    def hw_thresholds(self) -> np.ndarray:
        """(NF, PE) thresholds in the accumulator's units, padded channels as T = 0: T, or with 1-bit
        pixels the popcount threshold (2p − N ≥ T ⇔ p ≥ ⌈(T + N)/2⌉)."""
        t = channel_fields(self.node.thresholds, self.pe)
        return popcount_threshold(t, self.n_in) if self.pixel_bits == 1 else t

    @cached_property
    def neg_threshold_range(self) -> tuple[int, int]:
        neg = -self.hw_thresholds
        return int(neg.min()), int(neg.max())

    @property
    def threshold_width(self) -> int:
        """Bits of a −T field of the threshold ROM (0 for a scores head)."""
        return 0 if self.scores else signed_width(*self.neg_threshold_range)

    @cached_property
    def acc_width(self) -> int:
        lo, hi = self.acc_range
        if self.scores:
            return max(lo.bit_length(), hi.bit_length()) + 2 if self.pe_pixel_bits else hi.bit_length()
        # the accumulator starts at −T: the output bit is acc ≥ 0, its sign
        neg_lo, neg_hi = self.neg_threshold_range
        return signed_width(min(lo, 0) + min(neg_lo, 0), max(hi, 0) + max(neg_hi, 0))

    @property
    def has_affine(self) -> bool:
        return self.scores and self.node.has_affine

    @property
    def raw_score_range(self) -> tuple[int, int]:
        """A class score before its affine: the signed pixel sum, or s = 2p − N (range ±N) for bits."""
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
        return signed_width(int(self.node.scale.min()), int(self.node.scale.max())) if self.has_affine else 0

    @property
    def offset_width(self) -> int:
        return signed_width(int(self.node.offset.min()), int(self.node.offset.max())) if self.has_affine else 0

    @property
    def out_field_bits(self) -> int:
        """Bits per output channel: a score, or one output bit."""
        return self.score_width if self.scores else 1

    # ---- ROMs ----
    @property
    def weight_rom_bits(self) -> int:
        return self.cycles * self.pe * self.simd

    @property
    def const_field_bits(self) -> int:
        """Bits per channel of the per-channel constant ROMs together (−T, or scale + offset)."""
        return self.threshold_width + self.scale_width + self.offset_width

    @property
    def const_rom_bits(self) -> int:
        return self.nf * self.pe * self.const_field_bits

    @property
    def rom_style(self) -> str:
        return self.target.rom_style(self.weight_rom_bits, self.cycles)

    @property
    def const_rom_style(self) -> str:
        """Style of the threshold ROM, or of the scale and offset ROMs (each as wide as the wider)."""
        width = self.threshold_width if not self.scores else max(self.scale_width, self.offset_width)
        return self.target.rom_style(self.nf * self.pe * width, self.nf if width else 0)

    def weight_image(self) -> np.ndarray:
        """The weight ROM as a (NF·SF, PE·SIMD) 0/1 array (bnn2hw/plan/rom.py's layout)."""
        return weight_image(self.node.weight_bits, self.pe, self.simd)

    @cached_property
    def weight_rows(self) -> tuple[int, ...]:
        return tuple(weight_rom(self.node.weight_bits, self.pe, self.simd))

    @cached_property
    def threshold_rows(self) -> tuple[int, ...]:
        if self.scores:
            return ()
        return tuple(channel_rom(-self.hw_thresholds.reshape(-1), self.pe, self.threshold_width))

    def constant_fields(self) -> dict[str, tuple[np.ndarray, int]]:
        """Each per-channel ROM's (NF, PE) fields and field width: "thresholds" (−T), or "scales" and
        "offsets"."""
        if not self.scores:
            return {"thresholds": (-self.hw_thresholds, self.threshold_width)}
        if not self.has_affine:
            return {}
        return {"scales": (channel_fields(self.node.scale, self.pe), self.scale_width),
                "offsets": (channel_fields(self.node.offset, self.pe), self.offset_width)}

    # ---- the target's shaping of the PE array ----
    @property
    def pipeline_cuts(self) -> tuple[frozenset[int], int]:
        """(tree levels with pipeline registers inside the PE trees, registers at the PE output)."""
        t = self.target
        levels = tree_levels(self.simd, self.pe_pixel_bits, t.lut_inputs, t.compressor and not t.carry_adders,
                             t.carry_adders)
        cuts, out_regs = cut_levels(t.pipeline, levels)
        return frozenset(cuts), out_regs

    @cached_property
    def mvu(self) -> MVUParams:
        """The unit's hardware parameters."""
        t = self.target
        extra = {}
        if self.scores:
            extra = dict(scores=True, score_width=self.score_width, class_index=self.class_index)
            if self.has_affine:
                extra.update(scale_rows=tuple(channel_rom(self.node.scale, self.pe, self.scale_width)),
                             scale_width=self.scale_width,
                             offset_rows=tuple(channel_rom(self.node.offset, self.pe, self.offset_width)),
                             offset_width=self.offset_width)
        else:
            extra = dict(threshold_rows=self.threshold_rows, threshold_width=self.threshold_width)
        return MVUParams(n_in=self.n_in, n_out=self.n_out, pe=self.pe, simd=self.simd, pixel_bits=self.pixel_bits,
                         weight_rows=self.weight_rows, acc_width=self.acc_width,
                         lut_inputs=t.lut_inputs, compressor=t.compressor, carry_adders=t.carry_adders,
                         pipeline=t.pipeline, input_buffers=t.input_buffers, onehot_select=t.onehot_select,
                         rom_style=self.rom_style, const_rom_style=self.const_rom_style, **extra)
