"""Bit-exact numpy executor of a folded IR graph: the one oracle every other path is compared against.

Hidden layers run on bit-packed uint64 words with ``np.bitwise_count``; the first layer is an integer
sum of ±q (q = 2x - (2**bits - 1)); the last layer gives integer scores and their argmax.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputDataError
from ..ir import BITS, CODES, Graph, InputThreshold, MaxPoolBits, ScoresDense, ThresholdConv, ThresholdDense
from .accumulate import layer_accumulators
from .conv import conv_accumulators, packed_conv_accumulators, pool_bits, windows

__all__ = ["run", "check_inputs", "GoldenResult", "LayerTrace", "layer_accumulators", "node_outputs",
           "channel_last", "threshold_outputs", "node_in_bits"]


@dataclass(frozen=True)
class LayerTrace:
    """One layer's view of a batch: the accumulator (popcount or signed sum) and its output."""
    name: str
    acc: np.ndarray          # (n, out) int64: popcount p (bits input) or signed sum (pixel input)
    output: np.ndarray       # (n, out): bits 0/1 (threshold layers) or int64 scores (last layer)


@dataclass(frozen=True)
class GoldenResult:
    scores: np.ndarray       # (n, classes) int64
    classes: np.ndarray      # (n,) int64, argmax with ties to the lowest index
    trace: tuple[LayerTrace, ...] = field(default=())


def check_inputs(graph: Graph, x) -> np.ndarray:
    """Validate ``x`` against the model input and return it as int64 of shape (n, input size)."""
    x = np.asarray(x)
    shape = graph.input.shape
    if x.dtype.kind not in "iuf" or x.dtype == np.bool_:
        raise InputDataError(f"inputs have dtype {x.dtype}, but the model takes integer pixels; "
                             "save them as an integer (or integral float) numpy array")
    if x.ndim == len(shape):
        x = x[None]
    if len(shape) > 1 and x.ndim == 2 and x.shape[1] == graph.input.size:
        x = x.reshape((len(x),) + tuple(shape))      # already flattened, in the model's (C, H, W) order
    if tuple(x.shape[1:]) != tuple(shape):
        raise InputDataError(f"inputs have shape {tuple(x.shape)}, but the model takes (n, {', '.join(map(str, shape))})"
                             f"; reshape them to (n, {', '.join(map(str, shape))})")
    if x.shape[0] == 0:
        raise InputDataError("inputs hold no samples; give at least one")
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise InputDataError("inputs hold non-integer values, but the model takes integer pixels; "
                                 "round or quantise them first")
    lo, hi = 0, graph.input.max_value
    if x.size and (x.min() < lo or x.max() > hi):
        raise InputDataError(f"inputs range over {x.min():g}..{x.max():g}, but the model takes "
                             f"{graph.input.bits}-bit pixels in {lo}..{hi}; rescale them into that range")
    return x.reshape(x.shape[0], -1).astype(np.int64)


def raw_scores(node: ScoresDense, acc: np.ndarray) -> np.ndarray:
    """Signed pre-affine score: s = 2p - N for a bits input, the signed sum itself for pixels and codes."""
    return 2 * acc - node.in_features if node.input_kind == BITS else acc


def threshold_outputs(node: ThresholdDense, acc: np.ndarray) -> np.ndarray:
    """Output bits or codes of a threshold layer from its accumulators (..., out): the number of the
    channel's thresholds the accumulator reaches (one threshold: the output bit)."""
    t = node.threshold_matrix
    if t.shape[1] == 1:
        return (acc >= t[:, 0]).astype(np.uint8)
    return (acc[..., None] >= t).sum(axis=-1).astype(np.uint8)


def channel_last(graph: Graph, data: np.ndarray) -> np.ndarray:
    """Flat samples in the model's (C, H, W) order → flat (H, W, C) raster order, the order convolutional
    hardware streams pixels in; unchanged for models without convolutions."""
    if not graph.has_convolutions:
        return data
    c, h, w = graph.input.shape
    return np.ascontiguousarray(data.reshape(-1, c, h, w).transpose(0, 2, 3, 1)).reshape(len(data), -1)


def node_in_bits(node, pixel_bits: int) -> int:
    """Bits of the input elements a compute node reads: its own code width for codes, else the
    network's pixel width (which a bits layer ignores)."""
    return node.in_bits if node.input_kind == CODES else pixel_bits


def node_outputs(node, data: np.ndarray, in_bits: int, keep_acc: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """One folded node on a flat batch: (accumulators or None, outputs), both flat (n, …) in raster order.

    Convolutions run in blocks of samples; with ``keep_acc=False`` a threshold layer's accumulators are
    not kept (returned as None), which saves their int64 memory where only the outputs are wanted."""
    n = data.shape[0]
    if isinstance(node, InputThreshold):
        return None, (data[..., None] >= node.thresholds).sum(axis=-1).astype(np.uint8)
    if isinstance(node, MaxPoolBits):
        out = pool_bits(data.reshape((n,) + node.in_shape), node.kernel, node.stride, node.and_mask)
        return None, out.reshape(n, -1)
    if isinstance(node, ThresholdConv):
        win = node.window
        images = data.reshape((n,) + win.in_shape)
        if node.input_kind == BITS:
            blocks = packed_conv_accumulators(node, images, win.kernel, win.stride, win.padding, win.pad_code)
        else:
            step = max(1, (1 << 16) // max(1, data.shape[1] // win.in_shape[-1]))
            blocks = ((s, conv_accumulators(node, windows(images[s:s + step], win.kernel, win.stride, win.padding,
                                                          win.pad_code), node_in_bits(node, in_bits)))
                      for s in range(0, n, step))
        accs, outs = [], []
        for _, acc in blocks:
            outs.append(threshold_outputs(node, acc).reshape(len(acc), -1))
            if keep_acc:
                accs.append(acc.reshape(len(acc), -1))
        return (np.concatenate(accs) if keep_acc else None), np.concatenate(outs)
    acc = layer_accumulators(node, data, node_in_bits(node, in_bits))
    if isinstance(node, ThresholdDense):
        return (acc if keep_acc else None), threshold_outputs(node, acc)
    raw = raw_scores(node, acc)
    return acc, raw * node.scale[None, :] + node.offset[None, :] if node.has_affine else raw


def run(graph: Graph, x, trace: bool = False) -> GoldenResult:
    """Execute the folded graph on integer inputs ``x`` of shape (n, *input_shape).

    Convolutional layers trace their accumulators and outputs flattened in (H, W, C) raster order."""
    if not graph.is_folded:
        raise ValueError("the golden model runs folded graphs; run passes.fold_batchnorm first")
    data = channel_last(graph, check_inputs(graph, x))
    traces = []
    in_bits = graph.input.bits
    for node in graph.nodes:
        acc, data = node_outputs(node, data, in_bits, keep_acc=trace)
        if trace:
            traces.append(LayerTrace(node.name, data if acc is None else acc, data))
    scores = data.astype(np.int64)
    return GoldenResult(scores=scores, classes=np.argmax(scores, axis=1).astype(np.int64), trace=tuple(traces))
