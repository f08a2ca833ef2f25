"""Convolutional networks in hardware (Amaranth's simulator): torch (eval, float64) == golden == simulation
on 30 random conv models × 32 inputs, with random input gaps and output back-pressure on a third of them;
free-running cycles per frame equal the estimate; the collect unit streams frames back to back."""

import numpy as np
import pytest

from bnn2hw import golden
from bnn2hw.codegen import build_network
from bnn2hw.estimate import estimate_cycles
from bnn2hw.plan import plan_network
from bnn2hw.frontend import import_model
from bnn2hw.hw import CollectParams, CollectUnit, ConvParams, MaxPoolParams
from bnn2hw.golden.packing import pack_fields
from bnn2hw.passes import apply_folding, fold_batchnorm
from bnn2hw.reference import torch_forward
from bnn2hw.sim.amaranth_sim import measured_timing, run_network
from bnn2hw.testing import build_random_conv_model

from test_hw_window import run_stream

LANES = 1024    # a wide default folding keeps the simulations short; test_conv_timing varies it


def compiled_conv(seed: int, lanes: int = LANES, n: int = 32):
    model, shape = build_random_conv_model(seed)
    x = np.random.default_rng(seed).integers(0, 1 << model[0].bits, size=(n,) + shape)
    graph = apply_folding(fold_batchnorm(import_model(model, shape)), lane_budget=lanes)
    return model, x, graph


@pytest.mark.parametrize("seed", range(30))
def test_random_conv_model_hardware_equals_golden_and_torch(seed):
    model, x, graph = compiled_conv(seed)
    expected = golden.run(graph, x)
    reference = torch_forward(model, x)
    np.testing.assert_array_equal(expected.scores, reference)
    stress = seed % 3 == 1
    result = run_network(build_network(graph), golden.channel_last(graph, x), model[0].bits,
                         input_gaps=stress, backpressure=stress, seed=seed)
    np.testing.assert_array_equal(result.scores, expected.scores)
    np.testing.assert_array_equal(result.classes, expected.classes)
    assert len(result.out_cycles) == len(x)


def test_random_conv_models_use_every_stage_kind():
    kinds = set()
    for seed in range(30):
        _, _, graph = compiled_conv(seed, n=1)
        for stage in plan_network(graph).stages:
            kinds.add(type(stage).__name__)
            if isinstance(stage, ConvParams):
                kinds.add("pixel conv" if stage.window.elem_bits > 1 else "binary conv")
                kinds.add(f"stride {stage.window.stride[0]}")
                kinds.add("padded" if any(stage.window.padding) else "unpadded")
            if isinstance(stage, MaxPoolParams):
                kinds.add("AND pool" if any(stage.and_mask) else "OR pool")
    assert kinds >= {"ConvParams", "MaxPoolParams", "CollectParams", "MVUParams", "pixel conv", "binary conv",
                     "stride 1", "stride 2", "padded", "unpadded", "AND pool", "OR pool"}


@pytest.mark.parametrize("seed,lanes", [(0, 256), (2, 256), (10, 256), (13, 256), (9, 128), (12, 512), (21, 256)])
def test_conv_free_running_cycles_equal_the_estimate(seed, lanes):
    _, x, graph = compiled_conv(seed, lanes, n=6)
    est = estimate_cycles(plan_network(graph), 100.0)
    result = run_network(build_network(graph), golden.channel_last(graph, x), graph.input.bits)
    np.testing.assert_array_equal(result.scores, golden.run(graph, x).scores)
    assert measured_timing(result)[0] == est.cycles_per_frame


@pytest.mark.parametrize("pixels,bits", [(1, 5), (7, 3), (16, 1)])
def test_collect_unit_streams_frames_back_to_back_under_stalls(pixels, bits):
    rng = np.random.default_rng(pixels)
    frames = rng.integers(0, 1 << bits, size=(5, pixels))
    words = [int(v) for v in frames.reshape(-1)]
    expected = [pack_fields(f, bits) for f in frames]
    outs, _, _ = run_stream(CollectUnit(CollectParams(pixels, bits)), words, len(expected), gaps=True,
                            backpressure=True, seed=pixels)
    assert outs == expected
    outs, in_cycles, out_cycles = run_stream(CollectUnit(CollectParams(pixels, bits)), words, len(expected))
    assert outs == expected and in_cycles == list(range(in_cycles[0], in_cycles[0] + len(words)))
    assert out_cycles == [in_cycles[(k + 1) * pixels - 1] + 1 for k in range(len(frames))]
