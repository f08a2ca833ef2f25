"""Bit-exact numpy arithmetic of binary convolutions (issue 4 groundwork): sliding windows with an
explicit pad code, per-position XNOR-popcount (or ±pixel) accumulators, and max-pooling on output bits.

Images are channel-last, (n, H, W, C), because that is the order the hardware streams them in: one
pixel with all its channels per beat, pixels in raster order. A window is flattened in (ky, kx, c)
order with c fastest, so a torch weight (out, C, kh, kw) becomes ``weight.permute(0, 2, 3, 1)``
reshaped to (out, kh·kw·C), and a convolution is a dense layer applied at every output position.

Padding (docs/integer_math.md, spec §7.6): a pad value of -1 is a 0 bit, +1 a 1 bit; on the first
layer the pad value in normalized pixel space maps to the raw pixel 0 (-1) or 2**bits - 1 (+1).
Max-pooling of sign outputs is a per-channel OR; pooling before a BatchNorm with γ < 0 is an AND of
the output bits (spec §7.4), selected by ``and_mask``.
"""

from __future__ import annotations

import numpy as np

from .accumulate import layer_accumulators, xnor_popcount
from .packing import pack_bits

__all__ = ["windows", "conv_accumulators", "packed_conv_accumulators", "pool_bits", "pad_code", "output_size"]


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def pad_code(pad_value: float, input_is_pixels: bool, in_bits: int) -> int:
    """The integer code the hardware inserts for a padded tap: a bit (0 ↔ -1, 1 ↔ +1) or a raw pixel."""
    if pad_value not in (-1.0, 1.0):
        raise ValueError(f"pad value {pad_value} has no exact code; only -1 and +1 pads are bit-exact")
    if input_is_pixels:
        return 0 if pad_value < 0 else (1 << in_bits) - 1
    return 0 if pad_value < 0 else 1


def windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
            code: int) -> np.ndarray:
    """(n, H, W, C) codes → (n, out_h · out_w, kh · kw · C) windows, positions in raster order."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    padded = np.full((n, h + 2 * ph, w + 2 * pw, c), code, dtype=x.dtype)
    padded[:, ph:ph + h, pw:pw + w, :] = x
    view = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))  # (n, H', W', C, kh, kw)
    view = view[:, ::sh, ::sw]
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    view = view[:, :oh, :ow]
    return np.ascontiguousarray(view.transpose(0, 1, 2, 4, 5, 3)).reshape(n, oh * ow, kh * kw * c)


def conv_accumulators(node, win: np.ndarray, in_bits: int) -> np.ndarray:
    """Accumulators (n, positions, out) of a dense-like ``node`` (weight_bits (out, kh·kw·C), input_kind)
    applied to every window."""
    n, positions, k = win.shape
    acc = layer_accumulators(node, win.reshape(n * positions, k), in_bits)
    return acc.reshape(n, positions, -1)


def packed_conv_accumulators(node, x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                             padding: tuple[int, int], code: int):
    """popcount(XNOR) accumulators of a bits-input ``node`` on (n, H, W, C) 0/1 images, equal to
    ``conv_accumulators(node, windows(x, …), …)``, in blocks of samples: yields (start, acc) with acc
    (samples, positions, out) int64.

    Each pixel's C channels are packed into words once, and a window is the concatenation of its taps'
    words (the weights packed the same way, tap by tap), so no window is ever held bit by bit. The words
    of a tap hold zeros beyond channel C in the image, the pad pixels and the weights alike, so the XOR
    counts exactly the kh·kw·C real bits."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    wc = -(-c // 64)
    pad_word = pack_bits(np.full(c, code, dtype=np.uint8))                       # (wc,)
    padded = np.empty((n, h + 2 * ph, w + 2 * pw, wc), dtype=np.uint64)
    padded[...] = pad_word
    padded[:, ph:ph + h, pw:pw + w, :] = pack_bits(x)
    weights = pack_bits(np.asarray(node.weight_bits).reshape(node.out_features, kh * kw, c))
    weights = np.ascontiguousarray(weights.reshape(node.out_features, kh * kw * wc))
    oh, ow = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    view = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))[:, ::sh, ::sw][:, :oh, :ow]
    per_block = max(1, (1 << 16) // (oh * ow))              # samples per block: ~64k windows
    for s in range(0, n, per_block):
        block = view[s:s + per_block]                                            # (b, oh, ow, wc, kh, kw)
        words = np.ascontiguousarray(block.transpose(0, 1, 2, 4, 5, 3)).reshape(-1, kh * kw * wc)
        yield s, xnor_popcount(words, weights, node.in_features).reshape(len(block), oh * ow, -1)


def pool_bits(bits: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], and_mask) -> np.ndarray:
    """Max-pool (n, H, W, C) output bits or codes without padding: OR (max) per window, AND (min)
    where ``and_mask``."""
    view = np.lib.stride_tricks.sliding_window_view(bits, kernel, axis=(1, 2))[:, ::stride[0], ::stride[1]]
    h, w = bits.shape[1:3]
    view = view[:, :output_size(h, kernel[0], stride[0], 0), :output_size(w, kernel[1], stride[1], 0)]
    any_ = view.max(axis=(-2, -1))
    all_ = view.min(axis=(-2, -1))
    return np.where(np.asarray(and_mask, dtype=bool)[None, None, None, :], all_, any_).astype(bits.dtype)
