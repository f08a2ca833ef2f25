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

__all__ = ["InputSpec", "Dense", "BatchNorm", "Sign", "Quant", "ThresholdDense", "ScoresDense", "Folding",
           "PIXELS", "BITS", "CODES", "Grid", "SIGN_GRID", "pixel_grid", "accumulator_range", "Window", "Conv",
           "MaxPool", "ThresholdConv", "MaxPoolBits", "InputThreshold", "Activation", "OutputMap"]

PIXELS = "pixels"   # input is unsigned multi-bit pixels, mapped to odd integers q = 2x - (2**bits - 1)
BITS = "bits"       # input is a vector of binary activations
CODES = "codes"     # input is unsigned integer codes (a multi-bit activation or a pixel), weights signed
                    # integers: the accumulator is A = Σ w·x exactly (docs/integer_math.md, multi-bit layers)


@dataclass(frozen=True)
class Grid:
    """The real values of an activation's integer codes q = 0 .. levels - 1:
    value(q) = (offset + step·q) · scale / divisor, evaluated in that order in float64 (as
    bnn2hw.nn.QuantAct computes its levels)."""
    offset: int
    step: int
    scale: float
    divisor: float
    levels: int

    @property
    def bits(self) -> int:
        """Bits of a code (0 .. levels - 1)."""
        return max(1, (self.levels - 1).bit_length())

    @property
    def max_code(self) -> int:
        return self.levels - 1

    def values(self) -> np.ndarray:
        q = np.arange(self.levels, dtype=np.float64)
        return (self.offset + self.step * q) * self.scale / self.divisor

    def code_of(self, value: float) -> int | None:
        """The code whose value is exactly ``value``, or None if no level equals it."""
        hits = np.flatnonzero(self.values() == float(value))
        return int(hits[0]) if len(hits) else None

    @property
    def is_sign(self) -> bool:
        """The ±1 grid of a binary activation: code 0 = -1, code 1 = +1."""
        return self == SIGN_GRID


SIGN_GRID = Grid(-1, 2, 1.0, 1.0, 2)


def pixel_grid(bits: int) -> Grid:
    """InputQuant's grid: pixel x has value (2x - D)/D, D = 2**bits - 1."""
    d = (1 << bits) - 1
    return Grid(-d, 2, 1.0, float(d), d + 1)


def _frozen_array(a, dtype) -> np.ndarray:
    a = np.array(a, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


def accumulator_range(input_kind: str, n_in: int, in_bits: int, weight_precision: int = 1) -> tuple[int, int]:
    """(lowest, highest) accumulator of a layer: popcount 0..N for bits, Σ ±q in ±N·(2**bits - 1) for
    pixels, and for codes Σ w·x within ±N·M·(2**bits - 1) (M the largest weight magnitude)."""
    if input_kind == BITS:
        return 0, n_in
    if input_kind == CODES:
        m = 1 if weight_precision == 1 else (1 << (weight_precision - 1)) - 1
        bound = n_in * m * ((1 << in_bits) - 1)
        return -bound, bound
    d = (1 << in_bits) - 1
    return -n_in * d, n_in * d


@dataclass(frozen=True)
class InputSpec:
    """The network input: ``shape`` (without batch) of unsigned ``bits``-bit integer pixels, whose real
    values are ``grid``'s (None: InputQuant's, :func:`pixel_grid`; an imported graph's plain input has
    its own, x = p·scale)."""
    shape: tuple[int, ...]
    bits: int
    grid: Grid | None = None

    @property
    def value_grid(self) -> Grid:
        return self.grid if self.grid is not None else pixel_grid(self.bits)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def max_value(self) -> int:
        return (1 << self.bits) - 1


@dataclass(frozen=True)
class Dense:
    """A fully connected layer as trained: ``weight`` holds its integer weight codes (out, in): ±1 for
    ``weight_precision`` 1, -M..M for k bits (M = 2**(k-1) - 1); ``scale`` the positive per-channel
    output scale (float64) or None; ``bias`` float64 or None. Real output: scale · (x @ weightᵀ) + bias."""
    name: str
    position: int                  # index of the torch module, for messages
    weight: np.ndarray
    bias: np.ndarray | None
    weight_precision: int = 1
    scale: np.ndarray | None = None

    def __post_init__(self):
        object.__setattr__(self, "weight", _frozen_array(self.weight, np.int8))
        for f in ("bias", "scale"):
            if getattr(self, f) is not None:
                object.__setattr__(self, f, _frozen_array(getattr(self, f), np.float64))

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
class Quant:
    """A multi-bit activation quantizer (bnn2hw.nn.QuantAct) other than the hard sign: ``grid`` maps its
    codes to values; ``bits``, ``mode``, ``scale`` and ``narrow`` rebuild the torch module that the
    fold uses as its reference."""
    name: str
    position: int
    grid: Grid
    bits: int
    mode: str
    scale: float
    narrow: bool


@dataclass(frozen=True, eq=False)
class InputThreshold:
    """An imported graph's input quantizer as an elementwise multi-threshold on the integer pixels p:
    code = #{k : p ≥ thresholds[k]}, the same ascending thresholds for every pixel; ``grid`` gives the
    codes' real values (what the first layer reads). ``source`` names the graph's nodes it replaces."""
    name: str
    position: int
    thresholds: np.ndarray
    grid: Grid
    source: str = ""

    def __post_init__(self):
        object.__setattr__(self, "thresholds", _frozen_array(self.thresholds, np.int64))

    @property
    def out_bits(self) -> int:
        return self.grid.bits


@dataclass(frozen=True, eq=False)
class Activation:
    """An imported layer's bias, normalisation and quantizer as one reference function: ``reference``
    (values (M, C) float64, channels slice) → codes (M, C) int64 of ``grid``, where values are the real
    outputs of the layer before it. For a QONNX graph it runs the graph's own nodes in qonnx's executor
    (bnn2hw/frontend/qonnx_import.py); the fold finds thresholds on it as on torch's BatchNorm."""
    name: str
    position: int
    grid: Grid
    reference: object
    source: str = ""


@dataclass(frozen=True, eq=False)
class OutputMap:
    """An imported head's elementwise nodes after its last matrix product: ``reference`` (values (M, C)
    float64, channels slice) → the graph's outputs (M, C), float."""
    name: str
    position: int
    reference: object
    source: str = ""


@dataclass(frozen=True)
class ThresholdDense:
    """Dense layer followed by a per-channel threshold: output bit c = [acc_c >= thresholds[c]].

    ``weight_bits`` (out, in) are the hardware weight bits, already flipped for channels whose
    BatchNorm scale is negative (``flipped``). ``input_kind`` is :data:`BITS` (acc = popcount of
    XNOR(weights, input), in 0..in) or :data:`PIXELS` (acc = signed sum of ±q, q = 2x - (2**in_bits - 1)).
    Constant channels use threshold ``acc_min`` (always 1) or ``acc_max + 1`` (never 1).

    Multi-bit layers (docs/integer_math.md): ``input_kind`` :data:`CODES` means the accumulator is
    A = Σ weights·x over the input codes x (``in_grid`` gives their values, ``in_bits`` their width)
    with the signed integer ``weights`` of ``weight_precision`` bits (already negated for flipped
    channels; ``weight_bits`` then holds ``weights > 0``, a shape carrier only). ``out_grid`` (None: the
    ±1 sign) is the output activation; ``thresholds`` is then (out, L), L = levels - 1, ascending per
    channel, and the output code is q_c = #{k : acc_c >= thresholds[c, k]}. A 1-D ``thresholds`` is
    the single threshold of a binary output.
    """
    name: str
    position: int
    input_kind: str
    in_bits: int
    weight_bits: np.ndarray
    thresholds: np.ndarray
    flipped: np.ndarray
    tie_corrections: int = 0
    weights: np.ndarray | None = None
    weight_precision: int = 1
    in_grid: Grid | None = None
    out_grid: Grid | None = None

    def __post_init__(self):
        object.__setattr__(self, "weight_bits", _frozen_array(self.weight_bits, np.uint8))
        object.__setattr__(self, "thresholds", _frozen_array(self.thresholds, np.int64))
        object.__setattr__(self, "flipped", _frozen_array(self.flipped, bool))
        if self.weights is not None:
            object.__setattr__(self, "weights", _frozen_array(self.weights, np.int64))

    in_features = property(lambda self: int(self.weight_bits.shape[1]))
    out_features = property(lambda self: int(self.weight_bits.shape[0]))

    @property
    def threshold_matrix(self) -> np.ndarray:
        """Thresholds as (out, L): one column for a binary output."""
        return self.thresholds if self.thresholds.ndim == 2 else self.thresholds[:, None]

    @property
    def levels(self) -> int:
        """Thresholds per channel, L (1 for a binary output)."""
        return int(self.threshold_matrix.shape[1])

    @property
    def out_bits(self) -> int:
        """Bits of one output code: 1 for a binary output."""
        return max(1, self.levels.bit_length())

    @property
    def signed_weights(self) -> np.ndarray:
        """The hardware's integer weights (out, in): ``weights``, or ±1 from ``weight_bits``."""
        return self.weights if self.weights is not None else self.weight_bits.astype(np.int64) * 2 - 1


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
    weights: np.ndarray | None = None        # CODES heads: signed integer weights (see ThresholdDense)
    weight_precision: int = 1
    in_grid: Grid | None = None

    def __post_init__(self):
        object.__setattr__(self, "weight_bits", _frozen_array(self.weight_bits, np.uint8))
        if self.scale is not None:
            object.__setattr__(self, "scale", _frozen_array(self.scale, np.int64))
            object.__setattr__(self, "offset", _frozen_array(self.offset, np.int64))
        if self.weights is not None:
            object.__setattr__(self, "weights", _frozen_array(self.weights, np.int64))

    signed_weights = ThresholdDense.signed_weights

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
    """Max-pooling of output bits (OR per window, AND for channels in ``and_mask``) or, with ``bits``
    > 1, of unsigned output codes (max per window, min for channels in ``and_mask``)."""
    name: str
    position: int
    in_shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    and_mask: np.ndarray
    bits: int = 1

    def __post_init__(self):
        object.__setattr__(self, "and_mask", _frozen_array(self.and_mask, bool))

    @property
    def out_hw(self) -> tuple[int, int]:
        (h, w, _), (kh, kw), (sh, sw) = self.in_shape, self.kernel, self.stride
        return (h - kh) // sh + 1, (w - kw) // sw + 1
