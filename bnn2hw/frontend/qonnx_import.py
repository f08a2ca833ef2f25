"""QONNX (Brevitas' and FINN's format) → IR, with the same up-front support check as for torch models.

A QONNX graph is read with ``onnx`` (a protobuf: nothing in the file is ever executed; qonnx's executor
runs custom ops by name from its own package) and cleaned with qonnx's own ``cleanup_model`` (shape
inference, constant folding, readable names). It is then read as a chain, in stream order:

    input → [Reshape/Flatten] → [Mul/Add/Sub/Div by constants] → [input quantizer]
          → ( MatMul | Gemm | Conv  on quantized weights
              → [MaxPool] → elementwise nodes (Add, Sub, Mul, Div, BatchNormalization, Relu)
              → quantizer (Quant, BipolarQuant, or FINN's MultiThreshold) → [MaxPool] → [Reshape/Flatten] )*
          → MatMul | Gemm → elementwise nodes → output

(a Transpose of activations, as FINN's NHWC conversions insert, is named as not supported: it reorders
the data; a transposed weight is folded into its quantizer by the cleanup.)

* **Input.** The hardware takes unsigned ``bits``-bit integers p; the user gives their meaning as the
  graph's float input, x = p · ``scale`` (the zoo's MNIST models: 8 bits, scale 1/255). The nodes up to
  the input quantizer are run by qonnx on every value of p, and the resulting codes become an
  :class:`~bnn2hw.ir.InputThreshold` (a binarised input is a threshold on p). Without a quantizer the
  first layer reads p itself (x = p · scale, nothing else in between).
* **Weights** are the quantizer's output on its initializer, split into integer codes and a positive
  per-output-channel scale (BipolarQuant: ±1; Quant: narrow-range k-bit integers, or k+1 bits for a
  full-range one that uses its lowest code).
* **Activations.** The elementwise nodes between a layer's product and its quantizer are kept as an
  ONNX sub-graph, run by qonnx's executor (float32, as the whole graph runs): the fold finds each
  channel's thresholds on it exactly as on torch's BatchNorm (passes/fold_batchnorm.py). The head's
  nodes after its last product likewise give the graph's outputs from the integer scores.

Exactness: the fold evaluates each sub-graph on the exact real value of the layer's product. qonnx
computes that product in float32; the two agree when every activation and weight scale is a power of
two (true of the zoo's and FINN's BNN models, whose scales are 1), because the sums are then exact.
``bnn2hw compile`` also runs the graph and the golden model side by side on seeded inputs and refuses
a graph whose classes differ (docs/qonnx.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.change_batchsize import ChangeBatchSize
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.general import GiveUniqueParameterTensors, RemoveStaticGraphInputs, RemoveUnusedTensors
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

from ..errors import ModelFileError, UnsupportedModelError
from ..ir import (SIGN_GRID, Activation, Conv, Dense, Graph, Grid, InputSpec, InputThreshold, MaxPool, OutputMap,
                  Window, validate)

__all__ = ["QonnxModel", "load_qonnx", "import_qonnx", "parse_input_scale", "QUANTIZERS", "SUPPORTED_QONNX"]

QUANTIZERS = ("Quant", "BipolarQuant", "MultiThreshold")
_ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "BatchNormalization", "Relu")
_LAYOUT = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")    # shape only; a Transpose reorders data
_COMPUTE = ("MatMul", "Gemm", "Conv")
SUPPORTED_QONNX = ("input → [Mul/Add/Sub/Div] → [Quant|BipolarQuant] → (MatMul|Gemm|Conv on Quant/BipolarQuant "
                   "weights → [MaxPool] → [Add/Sub/Mul/Div/BatchNormalization/Relu] → Quant|BipolarQuant|"
                   "MultiThreshold → [MaxPool] → [Reshape/Flatten])* → MatMul|Gemm → [Add/Sub/Mul/Div/"
                   "BatchNormalization]")
_MAX_INPUT_BITS = 16


def parse_input_scale(text: str | float | Fraction) -> Fraction:
    """``--input-scale``: "1/255", "0.5" or a number → a positive Fraction (x = p · scale)."""
    try:
        value = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        value = None
    if value is None or value <= 0:
        raise ModelFileError(f"--input-scale must be a positive number or fraction such as 1/255, not '{text}'")
    return value


def _fail(problems, hint: str = "bnn2hw imports " + SUPPORTED_QONNX):
    raise UnsupportedModelError(problems, hint=hint)


@dataclass(eq=False)
class QonnxModel:
    """A loaded, cleaned QONNX graph and the integer input mapping x = p · ``input_scale``."""
    path: Path
    model: ModelWrapper
    input_bits: int
    input_scale: Fraction
    metadata: dict = field(default_factory=dict)
    _batched: dict = field(default_factory=dict, repr=False)

    @property
    def input_name(self) -> str:
        return self.model.graph.input[0].name

    @property
    def output_name(self) -> str:
        return self.model.graph.output[0].name

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape (the graph's input without its batch dimension)."""
        return tuple(self.model.get_tensor_shape(self.input_name)[1:])

    def node_index(self, node) -> int:
        return list(self.model.graph.node).index(node)

    def forward(self, pixels) -> np.ndarray:
        """The graph's outputs (n, classes) for integer pixels (n, *input_shape), by qonnx's executor."""
        x = np.asarray(pixels, dtype=np.float64).reshape((-1,) + self.input_shape)
        x = (x * float(self.input_scale)).astype(np.float32)
        out = []
        for start in range(0, len(x), 1024):
            chunk = x[start:start + 1024]
            model = self._batched.get(len(chunk))
            if model is None:
                model = self.model.transform(ChangeBatchSize(len(chunk))).transform(InferShapes())
                self._batched[len(chunk)] = model
            out.append(execute_onnx(model, {self.input_name: chunk})[self.output_name].reshape(len(chunk), -1))
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 0))


def load_qonnx(path: str | Path, input_bits: int = 8, input_scale: Fraction | str = Fraction(1, 255)) -> QonnxModel:
    """Read and clean a QONNX file; each problem is one :class:`ModelFileError` sentence."""
    path = Path(path)
    scale = parse_input_scale(input_scale)
    if not isinstance(input_bits, int) or not 1 <= input_bits <= _MAX_INPUT_BITS:
        raise ModelFileError(f"--input-bits must be an integer from 1 to {_MAX_INPUT_BITS}, not {input_bits!r}")
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:   # protobuf raises DecodeError and others for a truncated or foreign file
        raise ModelFileError(f"'{path}' is not a readable ONNX file ({type(e).__name__}: {e}); it may be truncated "
                             "or not ONNX at all; export it again (Brevitas: export_qonnx)") from None
    if not proto.graph.node:
        raise ModelFileError(f"'{path}' is not a readable ONNX model: its graph has no nodes; export it again "
                             "(Brevitas: export_qonnx)")
    missing = sorted({entry.value for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
                      for entry in t.external_data if entry.key == "location"
                      and not (path.parent / entry.value).is_file()})
    if missing:
        raise ModelFileError(f"'{path}' keeps its weights in external data files that are missing: "
                             f"{', '.join(missing)} (expected beside it in {path.parent}); copy them there")
    try:
        onnx.load_external_data_for_model(proto, str(path.parent))
    except Exception as e:
        raise ModelFileError(f"the external data of '{path}' cannot be read ({e}); copy the complete files "
                             "beside it") from None
    ops = {n.op_type for n in proto.graph.node}
    if not ops & set(QUANTIZERS):
        raise ModelFileError(f"'{path}' is a plain ONNX model, not QONNX: it has no Quant, BipolarQuant or "
                             "MultiThreshold node, so its quantization is not explicit; export it with Brevitas' "
                             "export_qonnx (or take the model FINN's streamlining wrote)")
    inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise ModelFileError(f"'{path}' has {len(inputs)} inputs and {len(proto.graph.output)} outputs; bnn2hw "
                             "compiles a graph with one input (the image) and one output (the class scores)")
    try:
        model = _cleanup(ModelWrapper(proto))
    except Exception as e:
        raise ModelFileError(f"qonnx could not read the graph of '{path}' ({type(e).__name__}: {e}); check that "
                             "it is a valid QONNX export (shapes, opset)") from None
    shape = model.get_tensor_shape(model.graph.input[0].name)
    if not shape or any(not isinstance(d, int) or d < 1 for d in shape):
        raise ModelFileError(f"'{path}' does not give its input a fixed shape ({shape}); export it with a "
                             "concrete input shape such as (1, 1, 28, 28)")
    meta = {"name": path.stem, "source": "qonnx", "file": path.name,
            "input_format": f"{'x'.join(map(str, shape[1:]))} unsigned {input_bits}-bit integers p, x = p·{scale}"}
    return QonnxModel(path=path, model=model, input_bits=input_bits, input_scale=scale, metadata=meta)


def _cleanup(model: ModelWrapper) -> ModelWrapper:
    """qonnx's cleanup (shape inference, constant folding: Brevitas' dynamic Reshape becomes a constant
    one, transposes folded into weight quantizers), keeping the nodes' own names for messages; nodes
    without a (unique) name get "<op type>_<index>"."""
    for node in model.graph.node:
        if node.op_type in ("Quant", "BipolarQuant", "Trunc"):     # as qonnx's cleanup_model: its op domain
            node.domain = "qonnx.custom_op.general"
    for t in (InferShapes(), GiveUniqueParameterTensors(), FoldConstants(exclude_op_types=list(QUANTIZERS)),
              FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs(), InferShapes()):
        model = model.transform(t)
    seen: set[str] = set()
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{index}"
        seen.add(node.name)
    return model


# -- running parts of the graph ------------------------------------------------------------------------------------

def _initializers(model: ModelWrapper, nodes) -> list:
    names = {i for n in nodes for i in n.input}
    return [t for t in model.graph.initializer if t.name in names]


class _SubGraph:
    """Some of the graph's nodes as a model of their own, run by qonnx's executor on float32 inputs."""

    def __init__(self, model: ModelWrapper, nodes, inp: str, out: str):
        self._model, self._nodes, self._inp, self._out = model, list(nodes), inp, out
        self._cache: dict = {}
        opset = model.model.opset_import
        graph = helper.make_graph(self._nodes, "part", [helper.make_tensor_value_info(inp, onnx.TensorProto.FLOAT,
                                                                                   None)],
                                  [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None)],
                                  initializer=_initializers(model, self._nodes))
        self._proto = helper.make_model(graph, opset_imports=list(opset))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        model = self._cache.get(x.shape)
        if model is None:
            proto = onnx.ModelProto()
            proto.CopyFrom(self._proto)
            model = ModelWrapper(proto)
            model.set_tensor_shape(self._inp, list(x.shape))
            model = model.transform(InferShapes())
            self._cache[x.shape] = model
        return execute_onnx(model, {self._inp: x})[self._out]


class _ChannelReference:
    """The reference of an :class:`~bnn2hw.ir.Activation` or :class:`~bnn2hw.ir.OutputMap`: real values
    (M, C′) of channels ``channels`` → the sub-graph's codes (or outputs), the other channels at 0."""

    def __init__(self, part: _SubGraph, channels: int, spatial: bool, grid: Grid | None):
        self.part, self.channels, self.spatial, self.grid = part, channels, spatial, grid

    def __call__(self, values: np.ndarray, channels: slice) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        full = np.zeros((values.shape[0], self.channels))
        full[:, channels] = values
        x = full.reshape(full.shape + ((1, 1) if self.spatial else ()))
        y = np.asarray(self.part(x), dtype=np.float64).reshape(full.shape)[:, channels]
        if self.grid is None:
            return y
        return _codes_of(y, self.grid)


def _codes_of(values: np.ndarray, grid: Grid) -> np.ndarray:
    """The grid's codes of quantizer outputs (values on the grid, up to float32 rounding)."""
    q = np.rint(values * grid.divisor / grid.scale - grid.offset) / grid.step
    return np.clip(np.rint(q), 0, grid.levels - 1).astype(np.int64)


# -- reading the chain ---------------------------------------------------------------------------------------------

@dataclass
class _Walk:
    qm: QonnxModel
    problems: list = field(default_factory=list)

    @property
    def model(self) -> ModelWrapper:
        return self.qm.model

    def where(self, node) -> str:
        return f"'{node.name}' ({node.op_type})"

    def consumer(self, tensor: str):
        users = self.model.find_consumers(tensor) or []
        if len(users) > 1:
            self.problems.append((None, f"tensor '{tensor}' feeds {len(users)} nodes "
                                        f"({', '.join(self.where(u) for u in users)}); bnn2hw compiles a chain "
                                        "(residual branches are not supported yet)"))
            return None
        return users[0] if users else None

    def constant(self, name: str):
        value = self.model.get_initializer(name)
        return None if value is None else np.asarray(value)

    def constants_only(self, node, first: int = 1) -> bool:
        return all(self.constant(i) is not None for i in node.input[first:] if i)


def _attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _quantizer_grid(walk: _Walk, node) -> Grid | None:
    """The grid of a quantizer's output values; None (with a problem noted) where it has none."""
    if node.op_type == "BipolarQuant":
        scale = walk.constant(node.input[1])
        if scale is None or scale.size != 1 or float(scale.reshape(())) <= 0:
            walk.problems.append((walk.qm.node_index(node), f"{walk.where(node)} needs one positive constant "
                                  "scale per tensor for an activation"))
            return None
        return Grid(-1, 2, float(scale.reshape(())), 1.0, 2)
    if node.op_type == "Quant":
        scale, zero, bits = (walk.constant(node.input[k]) for k in (1, 2, 3))
        if any(v is None or v.size != 1 for v in (scale, zero, bits)):
            walk.problems.append((walk.qm.node_index(node), f"{walk.where(node)} needs constant per-tensor scale, "
                                  "zero point and bit width for an activation (per-channel activation scales are "
                                  "not supported)"))
            return None
        scale, zero, bits = float(scale.reshape(())), float(zero.reshape(())), float(bits.reshape(()))
        signed, narrow = bool(_attr(node, "signed", 1)), bool(_attr(node, "narrow", 0))
        mode = _attr(node, "rounding_mode", b"ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else str(mode)
        if scale <= 0 or zero != round(zero) or bits != round(bits) or not 1 <= bits <= 8 or mode != "ROUND":
            walk.problems.append((walk.qm.node_index(node), f"{walk.where(node)} quantizes to {bits:g} bits with "
                                  f"scale {scale:g}, zero point {zero:g} and rounding {mode}; bnn2hw takes 1–8 "
                                  "bits, a positive scale, an integer zero point and ROUND (half to even)"))
            return None
        b = int(bits)
        if b == 1 and signed:                      # qonnx runs 1-bit signed Quant as the sign
            return Grid(-1 - int(zero), 2, scale, 1.0, 2)
        lo = -(1 << (b - 1)) + (1 if narrow else 0) if signed else 0
        hi = (1 << (b - 1)) - 1 if signed else (1 << b) - 1 - (1 if narrow else 0)
        return Grid(lo - int(zero), 1, scale, 1.0, hi - lo + 1)
    # MultiThreshold: out = out_scale · count + out_bias, count = 0 .. thresholds per channel
    t = walk.constant(node.input[1])
    out_scale, out_bias = float(_attr(node, "out_scale", 1.0)), float(_attr(node, "out_bias", 0.0))
    if t is None or t.ndim != 2 or out_scale <= 0 or out_bias / out_scale != round(out_bias / out_scale):
        walk.problems.append((walk.qm.node_index(node), f"{walk.where(node)} needs constant (channels, steps) "
                              "thresholds, a positive out_scale and an out_bias that is a whole number of steps"))
        return None
    return Grid(int(round(out_bias / out_scale)), 1, out_scale, 1.0, t.shape[1] + 1)


def _weights(walk: _Walk, tensor: str, compute) -> tuple[np.ndarray, np.ndarray | None, int] | None:
    """(integer codes in the graph's layout, positive per-output-channel scale or None, weight bits) of
    a layer's quantized weights, or None with a problem noted."""
    model, where = walk.model, walk.where(compute)
    producer = model.find_producer(tensor)
    position = walk.qm.node_index(compute)
    if producer is None or producer.op_type not in ("Quant", "BipolarQuant"):
        walk.problems.append((position, f"{where} has weights that are not quantized ({'an initializer' if producer is None else producer.op_type}); "
                              "quantize them with Brevitas (QuantLinear/QuantConv2d, 1–8 bits)"))
        return None
    if walk.constant(producer.input[0]) is None or not walk.constants_only(producer):
        walk.problems.append((position, f"{where}: its weight quantizer {walk.where(producer)} does not read constants"))
        return None
    values = _SubGraph(model, [producer], producer.input[0], producer.output[0])(walk.constant(producer.input[0]))
    scale = walk.constant(producer.input[1]).astype(np.float64)
    out_axis = 0 if compute.op_type == "Conv" or (compute.op_type == "Gemm" and _attr(compute, "transB", 0)) else 1
    if scale.size > 1:                       # per output channel: broadcast along the output axis only
        shape = [1] * values.ndim
        shape[out_axis] = -1
        if scale.size != values.shape[out_axis]:
            walk.problems.append((position, f"{where}: its weight scale has {scale.size} values for "
                                  f"{values.shape[out_axis]} output channels"))
            return None
        scale = scale.reshape(shape)
    if np.any(scale <= 0):
        walk.problems.append((position, f"{where}: its weight quantizer has a scale that is not positive"))
        return None
    codes = np.rint(values.astype(np.float64) / scale).astype(np.int64)
    if not np.array_equal((codes * scale).astype(np.float32), values.astype(np.float32)):
        walk.problems.append((position, f"{where}: its quantized weights are not integers times the scale"))
        return None
    if producer.op_type == "BipolarQuant":
        bits = 1
    else:
        bits = int(walk.constant(producer.input[3]).reshape(()))
        if np.any(codes < -(1 << (bits - 1)) + 1) and bits < 8:    # a full-range code: one bit more (narrow range)
            bits += 1
        elif np.any(codes < -(1 << (bits - 1)) + 1) or bits > 8:
            walk.problems.append((position, f"{where}: {bits}-bit weights need more than bnn2hw's 8 bits"))
            return None
    per_channel = np.moveaxis(np.broadcast_to(scale, values.shape), out_axis, 0).reshape(values.shape[out_axis], -1)[:, 0]
    return np.moveaxis(codes, out_axis, 0), (None if np.all(per_channel == 1.0) else per_channel), bits


def _input_stage(walk: _Walk) -> tuple[str, InputThreshold | None, Grid] | None:
    """Read from the graph input to the first layer: (tensor the first layer reads, the input
    threshold or None, the grid the first layer reads)."""
    qm, model = walk.qm, walk.model
    tensor, chain = qm.input_name, []
    node = walk.consumer(tensor)
    while node is not None and (node.op_type in _LAYOUT + ("Add", "Sub", "Mul", "Div")):
        if node.op_type in ("Add", "Sub", "Mul", "Div") and not walk.constants_only(node):
            walk.problems.append((qm.node_index(node), f"{walk.where(node)} on the input needs a constant operand"))
            return None
        chain.append(node)
        tensor = node.output[0]
        node = walk.consumer(tensor)
    levels = 1 << qm.input_bits
    if node is not None and node.op_type in QUANTIZERS:
        grid = _quantizer_grid(walk, node)
        if grid is None:
            return None
        # every pixel value through the input's own elementwise nodes, at every position: sample i of
        # the batch holds p = i everywhere (the layout nodes only reshape, so they are left out)
        ops = [n for n in chain if n.op_type not in _LAYOUT] + [node]
        shape = model.get_tensor_shape(ops[0].input[0])
        p = np.broadcast_to(np.arange(levels, dtype=np.float64).reshape((-1,) + (1,) * (len(shape) - 1)),
                            (levels,) + tuple(shape[1:]))
        x = (p * float(qm.input_scale)).astype(np.float32)
        part = _SubGraph(model, ops, ops[0].input[0], node.output[0])
        codes = _codes_of(np.asarray(part(x), dtype=np.float64), grid).reshape(levels, -1)
        if not np.all(codes == codes[:, :1]):
            walk.problems.append((qm.node_index(node), f"the input quantizer {walk.where(node)} treats pixels at "
                                  "different positions differently; bnn2hw thresholds every pixel alike "
                                  "(per-tensor input scaling)"))
            return None
        table = codes[:, 0]
        if np.any(np.diff(table) < 0):
            walk.problems.append((qm.node_index(node), f"the input quantizer {walk.where(node)} does not grow with "
                                  "the pixel value (a negative input scale?); map the pixels so that larger p means "
                                  "larger x"))
            return None
        thresholds = np.array([int(np.argmax(table >= k)) if table[-1] >= k else levels
                               for k in range(1, grid.levels)], dtype=np.int64)
        source = ", ".join(n.name for n in chain + [node])
        return node.output[0], InputThreshold(name="input_quant", position=qm.node_index(node), thresholds=thresholds,
                                              grid=grid, source=source), grid
    if any(n.op_type not in _LAYOUT for n in chain):
        bad = next(n for n in chain if n.op_type not in _LAYOUT)
        walk.problems.append((qm.node_index(bad), f"the input goes through {walk.where(bad)} and no quantizer before "
                              "the first layer; bnn2hw needs an input quantizer (Quant, BipolarQuant) there, or the "
                              "plain mapping x = p·scale with nothing in between"))
        return None
    s = qm.input_scale
    if s.numerator != 1 or s.denominator & (s.denominator - 1):
        first = node if node is not None else chain[-1]
        walk.problems.append((qm.node_index(first), f"the first layer {walk.where(first)} reads the float input "
                              f"x = p·{s} directly, without an input quantizer: {s} is not a power of two, so the "
                              "graph's float32 products round and no integer hardware reproduces them exactly; "
                              "map the pixels with a power-of-two scale (e.g. --input-scale 1/256) or add an "
                              "input quantizer (Quant or BipolarQuant) to the graph"))
        return None
    return tensor, None, Grid(0, 1, float(s.numerator), float(s.denominator), levels)


def import_qonnx(qm: QonnxModel) -> Graph:
    """The IR of a loaded QONNX graph; every unsupported node is named (ONNX name, op type) at once."""
    walk = _Walk(qm)
    model = qm.model
    known = set(QUANTIZERS + _ELEMENTWISE + _LAYOUT + _COMPUTE + ("MaxPool",))
    unknown = [(qm.node_index(n), f"{walk.where(n)} is not supported") for n in model.graph.node
               if n.op_type not in known]
    if unknown:
        _fail(unknown)
    start = _input_stage(walk)
    if start is None:
        _fail(walk.problems)
    tensor, threshold, grid = start
    nodes = [threshold] if threshold is not None else []
    image = qm.input_shape if len(qm.input_shape) == 3 else None      # (C, H, W) while the stream is an image
    width = int(np.prod(qm.input_shape))
    chw_flatten = None
    layer_count = 0
    node = walk.consumer(tensor)
    while node is not None:
        while node is not None and node.op_type in _LAYOUT:           # flattening between layers
            out_shape = model.get_tensor_shape(node.output[0])
            if image is not None and len(out_shape) == 2:
                chw_flatten = image
                image = None
            node = walk.consumer(node.output[0])
        if node is None:
            break
        position = qm.node_index(node)
        if node.op_type not in _COMPUTE:
            walk.problems.append((position, f"{walk.where(node)} is not a MatMul, Gemm or Conv where bnn2hw expects "
                                  "the next layer"))
            break
        layer = _compute_layer(walk, node, grid, image, width, chw_flatten, layer_count)
        if layer is None:
            break
        nodes.append(layer)
        chw_flatten = None
        if isinstance(layer, Conv):
            oh, ow = layer.window.out_hw
            image = (layer.out_features, oh, ow)
            width = oh * ow * layer.out_features
        else:
            width, image = layer.out_features, None
        tail, end = _tail(walk, node.output[0], layer, image)
        if tail is None:
            break
        nodes += tail
        layer_count += 1
        if end is None:          # the graph's output: this was the head
            break
        act = next(n for n in tail if isinstance(n, Activation))
        grid = act.grid
        for pool in (n for n in tail if isinstance(n, MaxPool)):
            c, h, w = image
            image = (c,) + ((h - pool.kernel[0]) // pool.stride[0] + 1, (w - pool.kernel[1]) // pool.stride[1] + 1)
            width = int(np.prod(image))
        node = walk.consumer(end)
    if not walk.problems and (not nodes or not isinstance(nodes[-1], OutputMap)):
        walk.problems.append((None, "the graph does not end in a MatMul or Gemm that gives class scores"))
    if walk.problems:
        _fail(walk.problems)
    return validate(Graph(input=InputSpec(shape=qm.input_shape, bits=qm.input_bits,
                                          grid=None if threshold is not None else start[2]), nodes=tuple(nodes)))


def _compute_layer(walk: _Walk, node, grid: Grid, image, width: int, chw_flatten, index: int):
    """A Dense or Conv node for a MatMul, Gemm or Conv, or None with a problem noted."""
    qm, where, position = walk.qm, walk.where(node), walk.qm.node_index(node)
    weight_input = node.input[1]
    if node.op_type == "Gemm":
        if _attr(node, "transA", 0) or float(_attr(node, "alpha", 1.0)) != 1.0 or float(_attr(node, "beta", 1.0)) != 1.0:
            walk.problems.append((position, f"{where} uses transA, alpha or beta; export plain MatMul layers"))
            return None
        if len(node.input) > 2 and node.input[2]:
            walk.problems.append((position, f"{where} has a bias input; bnn2hw takes the bias as an Add after it "
                                  "(Brevitas exports it so)"))
            return None
    got = _weights(walk, weight_input, node)
    if got is None:
        return None
    codes, scale, bits = got
    if node.op_type == "Conv":
        if image is None:
            walk.problems.append((position, f"{where} reads a flat vector; a convolution needs an image"))
            return None
        if int(_attr(node, "group", 1)) != 1 or any(d != 1 for d in _attr(node, "dilations", [1, 1])):
            walk.problems.append((position, f"{where} uses groups or dilation, which bnn2hw does not support"))
            return None
        if len(node.input) > 2 and node.input[2]:
            walk.problems.append((position, f"{where} has a bias input; export the bias as an Add after it"))
            return None
        pads = list(_attr(node, "pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            walk.problems.append((position, f"{where} pads asymmetrically ({pads}); bnn2hw pads both sides alike"))
            return None
        c, h, w = image
        kh, kw = codes.shape[2:]
        if codes.shape[1] != c:
            walk.problems.append((position, f"{where} expects {codes.shape[1]} input channels but receives {c}"))
            return None
        pad_code = 0
        if any(pads):
            pad_code = grid.code_of(0.0)
            if pad_code is None:
                walk.problems.append((position, f"{where} pads with 0, which is not a level of the activation before "
                                      "it (1-bit activations are ±1); export it with padding 0"))
                return None
        window = Window((h, w, c), (kh, kw), tuple(_attr(node, "strides", [1, 1])), (pads[0], pads[1]), pad_code)
        oh, ow = window.out_hw
        if oh < 1 or ow < 1:
            walk.problems.append((position, f"{where}: its kernel does not fit the {h}×{w} image"))
            return None
        flat = codes.transpose(0, 2, 3, 1).reshape(codes.shape[0], -1)       # (ky, kx, c) order, as we stream
        return Conv(name=f"conv{index}", position=position, weight=flat.astype(np.int8), bias=None,
                    weight_precision=bits, scale=scale, window=window)
    if codes.ndim != 2 or codes.shape[1] != width:
        walk.problems.append((position, f"{where} expects {codes.shape[-1]} inputs but receives {width}"))
        return None
    if chw_flatten is not None:                   # torch/ONNX flatten (C, H, W); the stream is (H, W, C)
        codes = codes.reshape(codes.shape[0], *chw_flatten).transpose(0, 2, 3, 1).reshape(codes.shape[0], -1)
    return Dense(name=f"dense{index}", position=position, weight=codes.astype(np.int8), bias=None,
                 weight_precision=bits, scale=scale)


def _tail(walk: _Walk, tensor: str, layer, image) -> tuple[list | None, str | None]:
    """The nodes after a layer's product: ([MaxPool], Activation, [MaxPool]) up to the quantizer's
    output and the tensor the next layer reads, or ([OutputMap], None) at the graph's output."""
    qm, model = walk.qm, walk.model
    channels, spatial = layer.out_features, isinstance(layer, Conv)
    out = []
    elementwise, start = [], tensor
    node = walk.consumer(tensor)
    while node is not None:
        position = qm.node_index(node)
        if node.op_type == "MaxPool":
            pool = _pool(walk, node, image, quantized=bool(out))
            if pool is None:
                return None, None
            if out:                                       # after the quantizer: pool the codes
                out.append(pool)
                tensor = node.output[0]
                node = walk.consumer(tensor)
                continue
            if elementwise:
                walk.problems.append((position, f"{walk.where(node)} sits between {walk.where(elementwise[-1])} and "
                                      "the quantizer; pool right after the product or after the quantizer"))
                return None, None
            out.append(pool)                              # before BatchNorm (FINN's CNV order)
            start = node.output[0]
            image = (image[0],) + pool.out_hw
            node = walk.consumer(start)
            continue
        if out and isinstance(out[-1], (Activation, MaxPool)) and any(isinstance(n, Activation) for n in out):
            break                                          # the next layer's nodes
        if node.op_type in ("Add", "Sub", "Mul", "Div") or node.op_type == "BatchNormalization" or node.op_type == "Relu":
            if not walk.constants_only(node):
                walk.problems.append((position, f"{walk.where(node)} needs constant operands (a residual connection "
                                      "or a data-dependent scale is not supported yet)"))
                return None, None
            elementwise.append(node)
            tensor = node.output[0]
            node = walk.consumer(tensor)
            continue
        if node.op_type in QUANTIZERS:
            grid = _quantizer_grid(walk, node)
            if grid is None:
                return None, None
            part = _SubGraph(model, elementwise + [node], start, node.output[0])
            out.append(Activation(name=f"act{len(out)}_{node.name}", position=position, grid=grid,
                                  reference=_ChannelReference(part, channels, spatial, grid),
                                  source=", ".join(n.name for n in elementwise + [node])))
            tensor = node.output[0]
            node = walk.consumer(tensor)
            continue
        break
    if node is None:                                      # the graph's output: a head
        if any(isinstance(n, Activation) for n in out):
            walk.problems.append((None, "the graph ends with a quantizer; its last layer must give class scores "
                                  "(a MatMul or Gemm, optionally with BatchNormalization or Mul/Add after it)"))
            return None, None
        if spatial or out:
            walk.problems.append((None, "the graph ends in a convolution or a pool; add a Flatten and a MatMul that "
                                  "gives class scores"))
            return None, None
        part = _SubGraph(model, elementwise, start, qm.output_name) if elementwise else None
        reference = _ChannelReference(part, channels, False, None) if part else _Identity()
        return [OutputMap(name="output", position=len(model.graph.node) - 1, reference=reference,
                          source=", ".join(n.name for n in elementwise))], None
    if not any(isinstance(n, Activation) for n in out):
        walk.problems.append((qm.node_index(node), f"{walk.where(node)} follows {walk.where(elementwise[-1]) if elementwise else 'a layer'} "
                              "without a quantizer in between; every hidden layer must end in Quant, BipolarQuant or "
                              "MultiThreshold"))
        return None, None
    return out, tensor


class _Identity:
    """A head with no nodes after its product: the graph's outputs are the products themselves."""

    def __call__(self, values: np.ndarray, channels: slice) -> np.ndarray:
        return np.asarray(values, dtype=np.float64).astype(np.float32).astype(np.float64)


def _pool(walk: _Walk, node, image, quantized: bool):
    position, where = walk.qm.node_index(node), walk.where(node)
    if image is None:
        walk.problems.append((position, f"{where} pools a flat vector"))
        return None
    kernel = tuple(_attr(node, "kernel_shape", []))
    strides = tuple(_attr(node, "strides", kernel))
    pads = list(_attr(node, "pads", [0, 0, 0, 0]))
    if len(kernel) != 2 or any(pads) or int(_attr(node, "ceil_mode", 0)) or any(d != 1 for d in _attr(node, "dilations", [1, 1])):
        walk.problems.append((position, f"{where}: bnn2hw pools 2-d windows without padding, dilation or ceil_mode"))
        return None
    c, h, w = image
    return MaxPool(name=f"pool_{node.name}", position=position, in_shape=(h, w, c), kernel=kernel, stride=strides,
                   before_bn=not quantized)
