"""IR operations: frozen dataclasses with explicit shapes and integer (or float64) parameters.

Two stages of the same network share this module:

* as imported from torch: :class:`Dense`, :class:`BatchNorm`, :class:`Sign` (real-valued parameters);
* after ``fold_batchnorm``: :class:`ThresholdDense` and :class:`ScoresDense` (integers only).

Binary values are stored as bits, bit 1 = +1 and bit 0 = -1 (docs/integer_math.md).
Arrays are made read-only on construction so that a frozen node really is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["InputSpec", "Dense", "BatchNorm", "Sign", "ThresholdDense", "ScoresDense", "Folding",
           "PIXELS", "BITS", "accumulator_range", "Window", "Conv", "MaxPool", "ThresholdConv", "MaxPoolBits"]

PIXELS = "pixels"   # input is unsigned multi-bit pixels, mapped to odd integers q = 2x - (2**bits - 1)
BITS = "bits"       # input is a vector of binary activations


def _frozen_array(a, dtype) -> np.ndarray:
    a = np.array(a, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


def accumulator_range(input_kind: str, n_in: int, in_bits: int) -> tuple[int, int]:
    """(lowest, highest) accumulator of a layer: popcount 0..N for bits, Σ ±q in ±N·(2**bits - 1) for pixels."""
    if input_kind == BITS:
        return 0, n_in
    d = (1 << in_bits) - 1
    return -n_in * d, n_in * d


@dataclass(frozen=True)
class InputSpec:
    """The network input: ``shape`` (without batch) of unsigned ``bits``-bit integer pixels."""
    shape: tuple[int, ...]
    bits: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def max_value(self) -> int:
        return (1 << self.bits) - 1


@dataclass(frozen=True)
class Dense:
    """A binary fully connected layer as trained: ``weight`` holds ±1 (out, in), ``bias`` float64 or None."""
    name: str
    position: int                  # index of the torch module, for messages
    weight: np.ndarray
    bias: np.ndarray | None

    def __post_init__(self):
        object.__setattr__(self, "weight", _frozen_array(self.weight, np.int8))
        if self.bias is not None:
            object.__setattr__(self, "bias", _frozen_array(self.bias, np.float64))

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True)
class BatchNorm:
    """Eval-mode BatchNorm parameters, float64 copies of the module's own (exact) values."""
    name: str
    position: int
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float

    def __post_init__(self):
        for f in ("gamma", "beta", "mean", "var"):
            object.__setattr__(self, f, _frozen_array(getattr(self, f), np.float64))


@dataclass(frozen=True)
class Sign:
    """Hard sign activation, sign(0) = +1."""
    name: str
    position: int


@dataclass(frozen=True)
class ThresholdDense:
    """Dense layer followed by a per-channel threshold: output bit c = [acc_c >= thresholds[c]].

    ``weight_bits`` (out, in) are the hardware weight bits, already flipped for channels whose
    BatchNorm scale is negative (``flipped``). ``input_kind`` is :data:`BITS` (acc = popcount of
    XNOR(weights, input), in 0..in) or :data:`PIXELS` (acc = signed sum of ±q, q = 2x - (2**in_bits - 1)).
    Constant channels use threshold ``acc_min`` (always 1) or ``acc_max + 1`` (never 1).
    """
    name: str
    position: int
    input_kind: str
    in_bits: int
    weight_bits: np.ndarray
    thresholds: np.ndarray
    flipped: np.ndarray
    tie_corrections: int = 0

    def __post_init__(self):
        object.__setattr__(self, "weight_bits", _frozen_array(self.weight_bits, np.uint8))
        object.__setattr__(self, "thresholds", _frozen_array(self.thresholds, np.int64))
        object.__setattr__(self, "flipped", _frozen_array(self.flipped, bool))

    in_features = property(lambda self: int(self.weight_bits.shape[1]))
    out_features = property(lambda self: int(self.weight_bits.shape[0]))


@dataclass(frozen=True)
class ScoresDense:
    """Last dense layer: integer class scores and their argmax (ties go to the lowest index).

    raw_c is s_c = 2·popcount - in (:data:`BITS`) or the signed pixel sum (:data:`PIXELS`). Without an
    affine, score_c = raw_c, which equals torch's output for a bias-free, BatchNorm-free head (for a
    pixel input it equals torch's output times 2**in_bits - 1). With one (last-layer BatchNorm or bias),
    score_c = scale_c · raw_c + offset_c, a fixed-point image of torch's per-class affine with
    ``frac_bits`` fraction bits whose argmax was validated against torch at compile time.
    """
    name: str
    position: int
    input_kind: str
    in_bits: int
    weight_bits: np.ndarray
    scale: np.ndarray | None = None
    offset: np.ndarray | None = None
    frac_bits: int = 0

    def __post_init__(self):
        object.__setattr__(self, "weight_bits", _frozen_array(self.weight_bits, np.uint8))
        if self.scale is not None:
            object.__setattr__(self, "scale", _frozen_array(self.scale, np.int64))
            object.__setattr__(self, "offset", _frozen_array(self.offset, np.int64))

    in_features = property(lambda self: int(self.weight_bits.shape[1]))
    out_features = property(lambda self: int(self.weight_bits.shape[0]))

    @property
    def has_affine(self) -> bool:
        return self.scale is not None


@dataclass(frozen=True)
class Folding:
    """Parallelism of one layer: ``pe`` output channels and ``simd`` inputs per cycle."""
    pe: int
    simd: int


# -- convolutions (issue 4: golden model only so far) -----------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """Sliding-window geometry over a channel-last image ``in_shape`` = (H, W, C).

    A window is flattened in (ky, kx, c) order, c fastest; padded taps hold ``pad_code`` (a bit, or a raw
    pixel on the first layer); output positions come in raster order (bnn2hw/golden/conv.py).
    """
    in_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    pad_code: int

    @property
    def out_hw(self) -> tuple[int, int]:
        (h, w, _), (kh, kw), (sh, sw), (ph, pw) = self.in_shape, self.kernel, self.stride, self.padding
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    @property
    def features(self) -> int:
        return self.kernel[0] * self.kernel[1] * self.in_shape[2]


@dataclass(frozen=True)
class Conv(Dense):
    """A binary convolution as trained: ``weight`` ±1 of shape (out, kh·kw·C) in window order."""
    window: Window = None


@dataclass(frozen=True)
class MaxPool:
    """Max-pooling (no padding) of a channel-last image ``in_shape``; ``before_bn`` if it sits between a
    convolution and its BatchNorm (then channels with γ < 0 pool with AND, spec §7.4)."""
    name: str
    position: int
    in_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    before_bn: bool

    @property
    def out_hw(self) -> tuple[int, int]:
        (h, w, _), (kh, kw), (sh, sw) = self.in_shape, self.kernel, self.stride
        return (h - kh) // sh + 1, (w - kw) // sw + 1


@dataclass(frozen=True)
class ThresholdConv(ThresholdDense):
    """A ``ThresholdDense`` applied to every window of ``window``: output (out_h, out_w, out) bits."""
    window: Window = None


@dataclass(frozen=True)
class MaxPoolBits:
    """Max-pooling of output bits: OR per window, AND for channels in ``and_mask``."""
    name: str
    position: int
    in_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    and_mask: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "and_mask", _frozen_array(self.and_mask, bool))

    @property
    def out_hw(self) -> tuple[int, int]:
        (h, w, _), (kh, kw), (sh, sw) = self.in_shape, self.kernel, self.stride
        return (h - kh) // sh + 1, (w - kw) // sw + 1
