"""Random QONNX graphs for tests, built with onnx's helper API the way Brevitas and FINN export them.

Each graph is a chain: an input stage (Mul/Sub preprocessing and a BipolarQuant or Quant input
quantizer, or the plain input), then layers of MatMul/Gemm (or Conv, MaxPool and a Flatten) on
BipolarQuant or Quant weights (1–4 bits, per-tensor or per-channel power-of-two scales), each followed
by an optional bias Add, a normalisation (BatchNormalization with γ of both signs and 0, or the
Sub/Mul/Div form that Brevitas exports for a per-tensor BatchNorm) and an activation quantizer
(BipolarQuant, Quant signed or unsigned, narrow or not, or FINN's MultiThreshold); the head is a
MatMul with nothing, a per-tensor Sub/Div/Mul/Add or a per-class BatchNormalization after it.

Scales are powers of two, so qonnx's float32 execution is exact and the graphs are an independent
oracle for bnn2hw's QONNX import (tests/test_qonnx.py). Some normalisations plant exact ties: a mean
equal to a reachable product, and a power-of-two multiplier that puts products on rounding boundaries.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["random_qonnx_graph", "qonnx_inputs"]

_QDOMAIN = "qonnx.custom_op.general"


class _Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng, self.nodes, self.inits, self.count = rng, [], [], 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, value, base: str = "c") -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], domain: str = "", **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), domain=domain, **attrs))
        return out

    def po2(self, low: int, high: int) -> float:
        return float(2.0 ** -int(self.rng.integers(low, high + 1)))

    # -- quantizers ------------------------------------------------------------------------------------------
    def activation(self, x: str, channels: int, spatial: bool) -> str:
        kind = self.rng.choice(["bipolar", "signed", "unsigned", "multithreshold"], p=[0.3, 0.3, 0.2, 0.2])
        if kind == "bipolar":            # a scalar scale, or a (1,)-shaped one as torch.onnx writes it
            return self.node("BipolarQuant", [x, self.const(1.0 if self.rng.random() < 0.5 else [1.0])],
                             domain=_QDOMAIN)
        if kind == "multithreshold":
            levels = int(self.rng.integers(2, 8))
            t = np.sort(self.rng.normal(0.0, 1.5, size=(channels, levels - 1)), axis=1)
            ties = self.rng.random(channels) < 0.5       # on the quarter grid that Sub/Mul outputs reach exactly
            t[ties] = np.sort(np.round(t[ties] * 4) / 4, axis=1)
            scale = self.po2(0, 2)
            bias = -scale * int(self.rng.integers(0, levels))
            return self.node("MultiThreshold", [x, self.const(t.astype(np.float32))], domain=_QDOMAIN,
                             out_dtype="INT8", out_scale=scale, out_bias=bias)
        bits = int(self.rng.integers(2, 5))
        narrow = bool(self.rng.random() < 0.5)
        return self.node("Quant", [x, self.const(self.po2(0, 3)), self.const(0.0), self.const(float(bits))],
                         domain=_QDOMAIN, signed=int(kind == "signed"), narrow=int(narrow and kind == "signed"),
                         rounding_mode="ROUND")

    def weights(self, shape: tuple[int, ...], out_axis: int) -> str:
        w = self.rng.uniform(-1.0, 1.0, size=shape)
        if self.rng.random() < 0.5:
            scale = np.asarray(self.po2(0, 2))
        else:                                              # one power-of-two scale per output channel
            s_shape = [1] * len(shape)
            s_shape[out_axis] = shape[out_axis]
            scale = 2.0 ** -self.rng.integers(0, 3, size=s_shape).astype(np.float64)
        if self.rng.random() < 0.4:
            return self.node("BipolarQuant", [self.const(w), self.const(scale)], domain=_QDOMAIN)
        bits = int(self.rng.choice([2, 3, 4]))
        m = (1 << (bits - 1)) - 1
        return self.node("Quant", [self.const(w * m * scale), self.const(scale), self.const(0.0),
                                   self.const(float(bits))], domain=_QDOMAIN, signed=1, narrow=1, rounding_mode="ROUND")

    # -- normalisations --------------------------------------------------------------------------------------
    def normalise(self, y: str, channels: int, fan_in: int, spatial: bool) -> str:
        shape = (1, channels, 1, 1) if spatial else (1, channels)
        rng = self.rng
        if rng.random() < 0.5:
            gamma = rng.uniform(-1.5, 1.5, channels)
            gamma[rng.random(channels) < 0.1] = 0.0
            return self.node("BatchNormalization", [y, self.const(gamma), self.const(rng.uniform(-1, 1, channels)),
                                                    self.const(rng.normal(0, np.sqrt(fan_in) / 2, channels)),
                                                    self.const(rng.uniform(0.5, 2.0, channels) * fan_in / 4)],
                             epsilon=1e-5)
        # Brevitas' per-channel Sub/Mul form with exact ties: integer means, power-of-two multipliers
        mean = np.rint(rng.normal(0, np.sqrt(fan_in) / 2, channels))
        mult = rng.choice([-1, 1], channels) * 2.0 ** -rng.integers(1, 4, channels)
        mult[rng.random(channels) < 0.1] = 0.0
        y = self.node("Sub", [y, self.const(mean.reshape(shape))])
        return self.node("Mul", [y, self.const(mult.reshape(shape))])


def random_qonnx_graph(seed: int, conv: bool = False) -> tuple[onnx.ModelProto, tuple[int, ...], str]:
    """A random QONNX graph (module docstring), its input shape without the batch dimension, and the
    input scale of its 8-bit pixels: x = p/255 before an input quantizer, p/256 (exact in float32) for a
    graph whose first layer reads x itself."""
    rng = np.random.default_rng(seed + 16_000_003)
    b = _Builder(rng)
    shape = (int(rng.integers(1, 4)), int(rng.integers(5, 9)), int(rng.integers(5, 9))) if conv else \
        (int(rng.integers(4, 40)),)
    x = "global_in"
    stage = rng.choice(["bipolar", "quant", "plain"], p=[0.35, 0.45, 0.2])
    if stage != "plain":
        x = b.node("Mul", [x, b.const(2.0)])
        x = b.node("Sub", [x, b.const(1.0)])
        x = b.activation(x, 1, False) if stage == "quant" else b.node("BipolarQuant", [x, b.const(1.0)], domain=_QDOMAIN)
    image = shape if conv else None
    width = int(np.prod(shape))
    if conv:
        for _ in range(int(rng.integers(1, 3))):
            c, h, w = image
            out = int(rng.integers(2, 9))
            k = int(rng.integers(1, min(3, h, w) + 1))
            x = b.node("Conv", [x, b.weights((out, c, k, k), 0)], kernel_shape=[k, k], strides=[1, 1],
                       pads=[0, 0, 0, 0])
            image = (out, h - k + 1, w - k + 1)
            x = b.normalise(x, out, c * k * k, True)
            x = b.activation(x, out, True)
            if min(image[1:]) >= 2 and rng.random() < 0.6:
                x = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
                image = (out, image[1] // 2, image[2] // 2)
        x = b.node("Flatten", [x], axis=1)
        width = int(np.prod(image))
    for _ in range(int(rng.integers(1, 4))):
        out = int(rng.integers(3, 41))
        if rng.random() < 0.3:
            x = b.node("Gemm", [x, b.weights((out, width), 0)], transB=1)
        else:
            x = b.node("MatMul", [x, b.weights((width, out), 1)])
        if rng.random() < 0.3:
            x = b.node("Add", [x, b.const(rng.uniform(-2, 2, (1, out)))])
        x = b.normalise(x, out, width, False)
        x = b.activation(x, out, False)
        width = out
    classes = int(rng.integers(2, 11))
    x = b.node("MatMul", [x, b.weights((width, classes), 1)])
    head = rng.choice(["none", "tensor", "class"])
    if head == "tensor":           # TFC's head: a per-tensor BatchNorm as Sub, Div, Mul, Add
        x = b.node("Sub", [x, b.const([rng.uniform(-1, 1)])])
        x = b.node("Div", [x, b.const([rng.uniform(1, 20)])])
        x = b.node("Mul", [x, b.const([rng.uniform(0.2, 2)])])
        x = b.node("Add", [x, b.const([rng.uniform(-2, 2)])])
    elif head == "class":
        x = b.node("BatchNormalization", [x, b.const(rng.uniform(0.2, 2, classes)), b.const(rng.uniform(-1, 1, classes)),
                                          b.const(rng.normal(0, 2, classes)), b.const(rng.uniform(0.5, 4, classes))],
                   epsilon=1e-5)
    b.nodes[-1].output[0] = "global_out"
    graph = helper.make_graph(b.nodes, f"random_qonnx_{seed}",
                              [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, (1,) + shape)],
                              [helper.make_tensor_value_info("global_out", TensorProto.FLOAT, (1, classes))],
                              initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(_QDOMAIN, 1)])
    return model, shape, "1/256" if stage == "plain" else "1/255"


def qonnx_inputs(shape: tuple[int, ...], seed: int, n: int = 256) -> np.ndarray:
    """Random 8-bit pixels (n, *shape) for a graph of :func:`random_qonnx_graph`."""
    return np.random.default_rng(seed + 77).integers(0, 256, size=(n,) + tuple(shape))
