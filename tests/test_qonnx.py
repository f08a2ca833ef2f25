"""QONNX import (issue 16): bnn2hw's golden model and hardware against qonnx's own executor.

qonnx (1.0.0, from PyPI) executes QONNX graphs in Python; no one in this project wrote it, so it is an
independent oracle. The zoo's Brevitas-trained TFC_1W1A and TFC_1W2A (models/qonnx/) and random QONNX
graphs built with onnx's helper API (bnn2hw.testing_qonnx: 1–4-bit weights, BatchNorm with γ of both
signs and 0, exact ties, every quantizer form) must give the executor's classes, its outputs up to one
strictly increasing map of the scores, and every hidden layer's quantized values, on every input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from qonnx.core.onnx_exec import execute_onnx
from qonnx.transformation.change_batchsize import ChangeBatchSize
from qonnx.transformation.infer_shapes import InferShapes
from scipy.ndimage import zoom
from sklearn.datasets import load_digits

from bnn2hw import golden
from bnn2hw.codegen import build_network
from bnn2hw.frontend import import_qonnx, load_qonnx
from bnn2hw.ir import Activation, ThresholdDense
from bnn2hw.passes import apply_folding, fold_batchnorm
from bnn2hw.sim.amaranth_sim import run_network
from bnn2hw.testing import random_folding
from bnn2hw.testing_qonnx import qonnx_inputs, random_qonnx_graph

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "models" / "qonnx"
DENSE_SEEDS = range(30)
CONV_SEEDS = range(10)


def digits28(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits as MNIST-like 28×28 8-bit images (scaled to 20×20, centred)."""
    d = load_digits()
    images = np.stack([zoom(im / 16.0, 2.5, order=1) for im in d.images[:n]])
    x = np.zeros((n, 1, 28, 28), dtype=np.int64)
    x[:, 0, 4:24, 4:24] = np.clip(np.rint(images * 255), 0, 255)
    return x, d.target[:n]


def assert_scores_order_like_outputs(scores: np.ndarray, outputs: np.ndarray) -> None:
    """The graph's outputs are one strictly increasing function of bnn2hw's integer scores, the same
    for every class and input: equal scores give equal outputs, larger scores larger outputs."""
    s, o = scores.reshape(-1).astype(np.float64), outputs.reshape(-1)
    order = np.argsort(s, kind="stable")
    s, o = s[order], o[order]
    same = s[1:] == s[:-1]
    assert np.all(o[1:][same] == o[:-1][same]), "equal scores, different outputs"
    assert np.all(o[1:][~same] > o[:-1][~same]), "the outputs do not grow with the scores"


def assert_hidden_values_equal(qm, raw_graph, graph, x: np.ndarray) -> None:
    """Every hidden layer's quantized values: the golden model's codes on their grid == the values of
    the graph's own quantizer node in qonnx's executor (channel-last order for images)."""
    model = qm.model.transform(ChangeBatchSize(len(x))).transform(InferShapes())
    ctx = execute_onnx(model, {qm.input_name: (x * float(qm.input_scale)).astype(np.float32)},
                       return_full_exec_context=True)
    trace = {t.name: t.output for t in golden.run(graph, x, trace=True).trace}
    acts = [n for n in raw_graph.nodes if isinstance(n, Activation)]
    layers = [n for n in graph.nodes if isinstance(n, ThresholdDense)]
    assert len(acts) == len(layers)
    for act, layer in zip(acts, layers):
        tensor = qm.model.get_node_from_name(act.source.split(", ")[-1]).output[0]
        want = np.asarray(ctx[tensor], dtype=np.float32)
        if want.ndim == 4:
            want = want.transpose(0, 2, 3, 1)
        got = act.grid.values().astype(np.float32)[trace[layer.name].reshape(len(x), -1)]
        assert np.array_equal(got, want.reshape(len(x), -1)), f"{layer.name} ({act.source}) differs from qonnx"


# -- the zoo's TFC models --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["TFC_1W1A", "TFC_1W2A"])
def zoo(request):
    qm = load_qonnx(ZOO / f"{request.param}.onnx")
    raw = import_qonnx(qm)
    return request.param, qm, raw, fold_batchnorm(raw)


def test_zoo_model_equals_the_executor_on_10000_random_inputs_and_on_digits(zoo):
    name, qm, raw, graph = zoo
    x = np.random.default_rng(16).integers(0, 256, size=(10_000, 1, 28, 28))
    digits, _ = digits28()
    for inputs in (x, digits):
        result, reference = golden.run(graph, inputs), qm.forward(inputs)
        assert np.array_equal(result.classes, reference.argmax(axis=1))
        assert_scores_order_like_outputs(result.scores, reference)
    assert_hidden_values_equal(qm, raw, graph, x[:512])
    assert_hidden_values_equal(qm, raw, graph, digits)


def test_zoo_model_input_quantizer_becomes_thresholds_on_the_pixels(zoo):
    """The graph's 2x − 1 and its input quantizer on x = p/255, as thresholds on p, checked by qonnx on
    every one of the 256 pixel values (the first layer's input, through the executor)."""
    name, qm, raw, graph = zoo
    threshold = graph.input_threshold
    assert threshold is not None
    assert qm.model.get_node_from_name(threshold.source.split(", ")[-1]).op_type in ("Quant", "BipolarQuant")
    p = np.arange(256)
    x = np.broadcast_to(p[:, None, None, None], (256, 1, 28, 28))
    model = qm.model.transform(ChangeBatchSize(256)).transform(InferShapes())
    ctx = execute_onnx(model, {qm.input_name: (x * float(qm.input_scale)).astype(np.float32)},
                       return_full_exec_context=True)
    quant = qm.model.get_node_from_name(threshold.source.split(", ")[-1]).output[0]
    codes = (p[:, None] >= threshold.thresholds).sum(axis=1)
    assert np.array_equal(threshold.grid.values().astype(np.float32)[codes], ctx[quant].reshape(256, -1)[:, 0])


def test_zoo_model_hardware_equals_golden_under_gaps_and_backpressure(zoo):
    name, qm, raw, graph = zoo
    graph = apply_folding(graph, None)
    x = digits28(12)[0]
    expected = golden.run(graph, x)
    result = run_network(build_network(graph), x.reshape(len(x), -1), graph.input.bits, input_gaps=True,
                         backpressure=True, seed=3)
    assert np.array_equal(result.scores, expected.scores)


# -- random QONNX graphs ---------------------------------------------------------------------------------------------

def load_random(seed: int, conv: bool, tmp_path):
    model, shape, scale = random_qonnx_graph(seed, conv=conv)
    path = tmp_path / "random.onnx"
    onnx.save(model, path)
    qm = load_qonnx(path, input_scale=scale)
    raw = import_qonnx(qm)
    return qm, raw, fold_batchnorm(raw), shape


@pytest.mark.parametrize("conv,seed", [(False, s) for s in DENSE_SEEDS] + [(True, s) for s in CONV_SEEDS])
def test_random_qonnx_graph_equals_the_executor(conv, seed, tmp_path):
    qm, raw, graph, shape = load_random(seed, conv, tmp_path)
    x = qonnx_inputs(shape, seed)
    result, reference = golden.run(graph, x), qm.forward(x)
    assert np.array_equal(result.classes, reference.argmax(axis=1))
    assert_hidden_values_equal(qm, raw, graph, x)


def test_the_random_graphs_cover_the_cases(tmp_path):
    seen = set()
    for conv, seeds in ((False, DENSE_SEEDS), (True, CONV_SEEDS)):
        for seed in seeds:
            model, _, scale = random_qonnx_graph(seed, conv=conv)
            ops = [n.op_type for n in model.graph.node]
            seen |= set(ops)
            for n in model.graph.node:
                if n.op_type == "BatchNormalization":
                    gamma = onnx.numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == n.input[1]))
                    seen |= {"gamma<0"} if (gamma < 0).any() else set()
                    seen |= {"gamma=0"} if (gamma == 0).any() else set()
            seen.add(f"input {scale}")
    assert seen >= {"Quant", "BipolarQuant", "MultiThreshold", "MatMul", "Gemm", "Conv", "MaxPool", "Flatten",
                    "BatchNormalization", "Sub", "Mul", "Div", "Add", "gamma<0", "gamma=0", "input 1/256",
                    "input 1/255"}


@pytest.mark.parametrize("conv,seed", [(False, 1), (False, 6), (True, 0), (True, 8)])
def test_random_qonnx_graph_hardware_equals_golden(conv, seed, tmp_path):
    qm, raw, graph, shape = load_random(seed, conv, tmp_path)
    graph = apply_folding(graph, random_folding(graph, seed, max_cycles=32, max_lanes=256))
    x = qonnx_inputs(shape, seed, n=6 if conv else 24)
    expected = golden.run(graph, x)
    stream = golden.channel_last(graph, golden.check_inputs(graph, x))
    result = run_network(build_network(graph), stream, graph.input.bits, input_gaps=True, backpressure=True, seed=seed)
    assert np.array_equal(result.scores, expected.scores)
