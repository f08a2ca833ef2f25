"""The zoo's QONNX TFC models (models/qonnx/) as exported Verilog, in Icarus Verilog and Verilator through
cocotb: 256 inputs (random pixel images and scikit-learn's digits at 28×28) under random input gaps and
output back-pressure give the golden model's scores, 0 mismatches, and qonnx's executor's classes
(issue 16); free running, the cycles per frame and the latency are the estimate's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import zoom
from sklearn.datasets import load_digits

from bnn2hw import golden
from bnn2hw.codegen import build_network
from bnn2hw.codegen.export import export_verilog
from bnn2hw.estimate import estimate_cycles
from bnn2hw.frontend import import_qonnx, load_qonnx
from bnn2hw.passes import apply_folding, fold_batchnorm
from bnn2hw.plan import plan_network
from bnn2hw.sim.amaranth_sim import measured_timing
from bnn2hw.sim.cocotb_runner import run_rtl

ZOO = Path(__file__).resolve().parents[1] / "models" / "qonnx"
#: Each simulator runs one model in the default tier (about 80 s each on one core); all four with -m slow.
SLOW_CASES = {("icarus", "TFC_1W2A"), ("verilator", "TFC_1W1A")}


def inputs(n_random: int = 128, n_digits: int = 128) -> np.ndarray:
    d = load_digits()
    images = np.stack([zoom(im / 16.0, 2.5, order=1) for im in d.images[:n_digits]])
    digits = np.zeros((n_digits, 1, 28, 28), dtype=np.int64)
    digits[:, 0, 4:24, 4:24] = np.clip(np.rint(images * 255), 0, 255)
    return np.concatenate([np.random.default_rng(0).integers(0, 256, size=(n_random, 1, 28, 28)), digits])


@pytest.mark.parametrize("name", ["TFC_1W1A", "TFC_1W2A"])
def test_zoo_tfc_rtl_equals_golden_and_qonnx(simulator, tmp_path, name):
    qm = load_qonnx(ZOO / f"{name}.onnx")
    graph = apply_folding(fold_batchnorm(import_qonnx(qm)), None)
    network = build_network(graph)
    verilog = export_verilog(network, tmp_path / "rtl", graph.input.bits)
    x = inputs()
    expected = golden.run(graph, x)
    head = network.head
    result = run_rtl(verilog, x.reshape(len(x), -1), graph.input.bits, head.n_out, head.score_width, head.class_width,
                     simulator=simulator, build_dir=tmp_path / simulator, quick_build=True, input_gaps=True,
                     backpressure=True, seed=16, expected=expected)
    assert len(result.scores) == 256
    np.testing.assert_array_equal(result.scores, expected.scores)
    np.testing.assert_array_equal(result.classes, qm.forward(x).argmax(axis=1))
    free = run_rtl(verilog, x[:6].reshape(6, -1), graph.input.bits, head.n_out, head.score_width, head.class_width,
                   simulator=simulator, build_dir=tmp_path / simulator, quick_build=True)
    est = estimate_cycles(plan_network(graph), 100.0)
    assert measured_timing(free) == (est.cycles_per_frame, est.latency_cycles)
