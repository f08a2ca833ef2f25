"""Convolutional networks as exported Verilog, in Icarus Verilog and Verilator through cocotb: bit-exact
with the golden model and torch under random input gaps and output back-pressure, one pixel per input
beat; free-running cycles per frame equal the estimate; the handshakes match Amaranth's simulator."""

from __future__ import annotations

import numpy as np
import pytest

from bnn2hw import golden
from bnn2hw.codegen import build_network
from bnn2hw.estimate import estimate_cycles
from bnn2hw.plan import plan_network
from bnn2hw.codegen.export import export_verilog
from bnn2hw.frontend import import_model
from bnn2hw.hw import ConvParams, MaxPoolParams
from bnn2hw.passes import apply_folding, fold_batchnorm
from bnn2hw.reference import torch_forward
from bnn2hw.sim.amaranth_sim import measured_timing, run_network
from bnn2hw.sim.cocotb_runner import run_rtl
from bnn2hw.testing import build_random_conv_model

# Six random conv models whose simulations stay short; between them: 1- to 8-bit pixel first layers,
# one and two convolutions, strides 1 and 2, pads ±1, non-square kernels, OR and AND pools (seed 11: pooled
# before a BatchNorm with γ < 0), 1-3 dense layers.
SEEDS = (1, 3, 4, 6, 7, 11)
#: Verilator's default-tier seeds (conftest.py): 3-bit pixels, and 1-bit pixels with the AND pool; all six
#: run on Icarus, and on Verilator with -m slow.
VERILATOR_DEFAULT_SEEDS = (1, 11)


def compile_conv(seed: int, directory, n: int = 32, lanes: int = 1024):
    model, shape = build_random_conv_model(seed)
    x = np.random.default_rng(seed).integers(0, 1 << model[0].bits, size=(n,) + shape)
    graph = apply_folding(fold_batchnorm(import_model(model, shape)), lane_budget=lanes)
    network = build_network(graph)
    verilog = export_verilog(network, directory, graph.input.bits)
    return model, x, graph, network, verilog


def simulate(network, graph, verilog, x, simulator, build_dir, **kwargs):
    head = network.head
    return run_rtl(verilog, golden.channel_last(graph, x), graph.input.bits, head.n_out, head.score_width,
                   head.class_width, simulator=simulator, build_dir=build_dir, beats_per_frame=network.input_beats,
                   quick_build=True, **kwargs)


def test_the_chosen_models_cover_the_conv_cases(tmp_path):
    kinds = set()
    for seed in SEEDS:
        model, shape = build_random_conv_model(seed)
        graph = apply_folding(fold_batchnorm(import_model(model, shape)), lane_budget=1024)
        for stage in plan_network(graph).stages:
            if isinstance(stage, ConvParams):
                w = stage.window
                kinds |= {f"stride{w.stride[0]}", "pixels" if w.elem_bits > 1 else "bits"}
                kinds |= {"nonsquare"} if w.kernel[0] != w.kernel[1] else set()
                kinds |= {"padded"} if any(w.padding) else set()
            if isinstance(stage, MaxPoolParams):
                kinds.add("and-pool" if any(stage.and_mask) else "or-pool")
    assert kinds >= {"stride1", "stride2", "pixels", "bits", "nonsquare", "padded", "or-pool", "and-pool"}


@pytest.mark.parametrize("seed", SEEDS)
def test_conv_rtl_bit_exact_under_gaps_and_backpressure(simulator, tmp_path, seed):
    model, x, graph, network, verilog = compile_conv(seed, tmp_path / "rtl")
    expected = golden.run(graph, x)
    result = simulate(network, graph, verilog, x, simulator, tmp_path / simulator, input_gaps=True,
                      backpressure=True, seed=seed, expected=expected)   # checked in the bench as well
    np.testing.assert_array_equal(result.scores, expected.scores)
    np.testing.assert_array_equal(result.classes, expected.classes)
    np.testing.assert_array_equal(result.scores, torch_forward(model, x))
    assert len(result.in_cycles) == len(result.out_cycles) == len(x)


def test_conv_rtl_timing_and_handshakes_match_estimate_and_amaranth(simulator, tmp_path):
    """Free running: cycles per frame equal the estimate and every handshake happens in the same cycle
    as in Amaranth's simulator (stalled handshakes are compared cycle for cycle in test_network_rtl.py)."""
    _, x, graph, network, verilog = compile_conv(2, tmp_path / "rtl", n=6, lanes=256)
    rtl = simulate(network, graph, verilog, x, simulator, tmp_path / simulator)
    est = estimate_cycles(plan_network(graph), 100.0)
    assert measured_timing(rtl)[0] == est.cycles_per_frame
    model = run_network(build_network(graph), golden.channel_last(graph, x), graph.input.bits)
    assert (rtl.in_cycles, rtl.out_cycles) == (model.in_cycles, model.out_cycles)
    np.testing.assert_array_equal(rtl.scores, golden.run(graph, x).scores)
