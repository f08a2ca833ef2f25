"""Multi-bit networks (issue 15) as exported Verilog, in Icarus Verilog and Verilator through cocotb:
bit-exact with the golden model and with torch (eval, float64) under random input gaps and output
back-pressure; free-running cycles per frame and latency equal the estimate.

Eight of the random models of tests/test_multibit_bitexact.py, chosen to cover between them: 1-, 4- and
8-bit inputs; ternary, 4-bit and ±1 weights on the codes datapath; 2-, 3-, 4- and 8-bit outputs (both
the comparator bank and the pipelined binary search, full and narrow grids); max-pools of codes, with
max and (before a BatchNorm with γ < 0) min; dense and convolutional heads.
"""

from __future__ import annotations

import numpy as np
import pytest

from bnn2hw import golden
from bnn2hw.codegen import build_network
from bnn2hw.codegen.export import export_verilog
from bnn2hw.estimate import estimate_cycles
from bnn2hw.frontend import import_model
from bnn2hw.ir import MaxPoolBits
from bnn2hw.passes import apply_folding, fold_batchnorm
from bnn2hw.plan import plan_network
from bnn2hw.reference import torch_forward
from bnn2hw.sim.amaranth_sim import measured_timing
from bnn2hw.sim.cocotb_runner import run_rtl
from bnn2hw.testing import build_random_multibit_conv_model, build_random_multibit_model, multibit_inputs, random_folding

MODELS = [("dense", 2), ("dense", 7), ("dense", 37), ("dense", 39),
          ("conv", 16), ("conv", 17), ("conv", 23), ("conv", 29)]
#: Verilator's default-tier models (rtl_tests/conftest.py moves the others to the slow tier): a dense
#: model with two 8-bit binary searches, and a conv model with a search and min-pools of codes.
VERILATOR_DEFAULT_SEEDS = (2, 17)


def compile_multibit(kind: str, seed: int, directory, folding: str = "random"):
    build = build_random_multibit_model if kind == "dense" else build_random_multibit_conv_model
    model, shape = build(seed)
    x = multibit_inputs(model, shape, seed, n=32 if kind == "dense" else 12)
    graph = fold_batchnorm(import_model(model, shape))
    graph = apply_folding(graph, random_folding(graph, seed, max_cycles=32, max_lanes=256) if folding == "random"
                          else None)
    network = build_network(graph)
    return model, x, graph, network, export_verilog(network, directory, graph.input.bits)


def simulate(network, graph, verilog, x, simulator, build_dir, **kwargs):
    head = network.head
    return run_rtl(verilog, golden.channel_last(graph, golden.check_inputs(graph, x)), graph.input.bits, head.n_out,
                   head.score_width, head.class_width, simulator=simulator, build_dir=build_dir,
                   beats_per_frame=network.input_beats, quick_build=True, **kwargs)


def test_the_chosen_models_cover_the_multibit_cases():
    seen = set()
    for kind, seed in MODELS:
        build = build_random_multibit_model if kind == "dense" else build_random_multibit_conv_model
        model, shape = build(seed)
        graph = fold_batchnorm(import_model(model, shape))
        graph = apply_folding(graph, random_folding(graph, seed, max_cycles=32, max_lanes=256))
        seen.add(f"input{graph.input.bits}")
        for layer in plan_network(graph).layers:
            if layer.codes:
                seen.add(f"weights{layer.weight_precision}")
            if layer.multi_threshold:
                seen.add("search" if layer.search_stages else "bank")
                seen.add(f"out{layer.node.out_bits}")
        for node in graph.nodes:
            if isinstance(node, MaxPoolBits) and node.bits > 1:
                seen.add("min-pool" if node.and_mask.any() else "max-pool")
    assert seen >= {"input1", "input4", "input8", "weights1", "weights2", "weights4", "bank", "search",
                    "out2", "out3", "out4", "out8", "max-pool", "min-pool"}, seen


@pytest.mark.parametrize("kind,seed", MODELS, ids=[f"{k}{s}" for k, s in MODELS])
def test_multibit_rtl_bit_exact_under_gaps_and_backpressure(simulator, tmp_path, kind, seed):
    model, x, graph, network, verilog = compile_multibit(kind, seed, tmp_path / "rtl")
    expected = golden.run(graph, x)
    result = simulate(network, graph, verilog, x, simulator, tmp_path / simulator, input_gaps=True,
                      backpressure=True, seed=seed, expected=expected)   # checked frame by frame in the bench
    np.testing.assert_array_equal(result.scores, expected.scores)
    np.testing.assert_array_equal(result.classes, expected.classes)
    np.testing.assert_array_equal(result.classes, torch_forward(model, x).argmax(axis=1))
    assert len(result.in_cycles) == len(result.out_cycles) == len(x)


def test_multibit_rtl_timing_matches_estimate(simulator, tmp_path):
    """Free running, the compiler's own folding: a dense model with a binary search, whose latency
    the estimate states exactly (cycles per frame and latency, both measured in the RTL)."""
    _, x, graph, network, verilog = compile_multibit("dense", 27, tmp_path / "rtl", folding="default")
    result = simulate(network, graph, verilog, x[:8], simulator, tmp_path / simulator)
    np.testing.assert_array_equal(result.scores, golden.run(graph, x[:8]).scores)
    est = estimate_cycles(plan_network(graph), 100.0)
    assert measured_timing(result) == (est.cycles_per_frame, est.latency_cycles)
