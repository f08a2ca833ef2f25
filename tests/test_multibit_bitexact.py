"""Multi-bit layers (issue 15): torch (eval, float64) == golden == Amaranth simulation.

40 random dense and 30 random convolutional models (bnn2hw.testing) mix per-layer activation bits 1..4
and 8 (sign, signed, unsigned and symmetric grids), weight bits 1, 2 and 4 (some with a channel
scale) and adversarial BatchNorm: γ < 0, γ = 0, eps = 0 and exact ties planted at accumulator values
torch reaches on the test inputs. Every hidden activation is compared code for code, then the class;
the Amaranth simulation runs with random input gaps and output back-pressure and must give the
golden model's scores.
"""

import numpy as np
import pytest
import torch
from torch import nn

from bnn2hw import golden
from bnn2hw.codegen import build_network
from bnn2hw.estimate import estimate_cycles
from bnn2hw.frontend import import_model
from bnn2hw.ir import MaxPoolBits
from bnn2hw.nn import BinaryConv2d, BinaryLinear, QuantAct
from bnn2hw.passes import apply_folding, fold_batchnorm
from bnn2hw.plan import ECP5, ICE40_UP5K, XILINX_7, HardwareTarget, plan_network
from bnn2hw.reference import torch_forward
from bnn2hw.sim.amaranth_sim import measured_timing, run_network
from bnn2hw.testing import (build_random_multibit_conv_model, build_random_multibit_model, multibit_inputs,
                            random_folding, torch_activation_codes)

DENSE_SEEDS = range(40)
CONV_SEEDS = range(30)


def build(kind: str, seed: int):
    return build_random_multibit_model(seed) if kind == "dense" else build_random_multibit_conv_model(seed)


def golden_node_for(graph, position: int):
    """The folded node whose output an activation at ``position`` produces: a pool right after it, or
    the last node before it (its layer, or a pool between the layer and the activation)."""
    after = [n for n in graph.nodes if isinstance(n, MaxPoolBits) and n.position == position + 1]
    return after[0] if after else [n for n in graph.nodes if n.position < position][-1]


def check_against_torch(model, shape, graph, x):
    result = golden.run(graph, x, trace=True)
    outputs = {t.name: t.output for t in result.trace}
    for position, codes in torch_activation_codes(model, x).items():
        node = golden_node_for(graph, position)
        got = outputs[node.name].reshape(len(x), -1)
        assert np.array_equal(got, codes), f"{node.name}: {np.mean(got != codes):.1%} of the codes differ from torch"
    reference = torch_forward(model, x)
    assert np.array_equal(result.classes, reference.argmax(axis=1))
    return result


@pytest.mark.parametrize("kind,seed", [("dense", s) for s in DENSE_SEEDS] + [("conv", s) for s in CONV_SEEDS])
def test_torch_golden_amaranth_agree(kind, seed):
    model, shape = build(kind, seed)
    x = multibit_inputs(model, shape, seed)
    graph = fold_batchnorm(import_model(model, shape))
    graph = apply_folding(graph, random_folding(graph, seed, max_cycles=32, max_lanes=256))
    expected = check_against_torch(model, shape, graph, x)
    n_sim = 64 if kind == "dense" else 8
    stream = golden.channel_last(graph, golden.check_inputs(graph, x[:n_sim]))
    result = run_network(build_network(graph), stream, model[0].bits, input_gaps=True, backpressure=True, seed=seed)
    assert np.array_equal(result.scores, expected.scores[:n_sim])
    assert np.array_equal(result.classes, expected.classes[:n_sim])


def _tie_hits(model, shape, seed) -> int:
    """Samples × channels where a BatchNorm with eps = 0 sees exactly its running mean (a planted tie)."""
    x = torch.from_numpy(multibit_inputs(model, shape, seed).astype(np.float64))
    hits, modules = 0, list(model)
    for i, m in enumerate(modules):
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.eps == 0.0:
            with torch.no_grad():
                z = nn.Sequential(*modules[:i]).double()(x)
                mean = m.running_mean.double().view((1, -1) + (1,) * (z.ndim - 2))
                hits += int((z == mean).sum())
            model.float()
    return hits


def test_the_drawn_models_cover_the_space():
    seen, ties = set(), 0
    for kind, seeds in (("dense", DENSE_SEEDS), ("conv", CONV_SEEDS)):
        for seed in seeds:
            model, shape = build(kind, seed)
            ties += _tie_hits(model, shape, seed)
            for m in model:
                if isinstance(m, QuantAct):
                    seen |= {f"act{m.bits}", f"grid {m.mode}"} | ({"narrow"} if m.narrow else set())
                if isinstance(m, (BinaryLinear, BinaryConv2d)):
                    seen |= {f"weight{m.weight_bits}"} | ({"scale"} if m.weight_scale is not None else set())
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    seen |= {"gamma<0"} if (m.weight < 0).any() else set()
                    seen |= {"gamma=0"} if (m.weight == 0).any() else set()
                    seen |= {"eps=0"} if m.eps == 0 else set()
                if isinstance(m, nn.MaxPool2d):
                    seen.add("pool")
    assert seen >= {"act1", "act2", "act3", "act4", "act8", "grid signed", "grid unsigned", "grid symmetric",
                    "narrow", "weight1", "weight2", "weight4", "scale", "gamma<0", "gamma=0", "eps=0", "pool"}
    assert ties >= 100, f"only {ties} exact ties were reached"


@pytest.mark.parametrize("kind,seed", [("dense", 3), ("dense", 11), ("conv", 4), ("conv", 9)])
def test_measured_cycles_equal_estimate(kind, seed):
    model, shape = build(kind, seed)
    x = multibit_inputs(model, shape, seed, n=4)
    graph = apply_folding(fold_batchnorm(import_model(model, shape)), None)
    result = run_network(build_network(graph), golden.channel_last(graph, golden.check_inputs(graph, x)),
                         model[0].bits)
    est = estimate_cycles(plan_network(graph), 100.0)
    cycles, latency = measured_timing(result)
    assert cycles == est.cycles_per_frame
    if est.latency_cycles is not None:
        assert latency == est.latency_cycles
    assert np.array_equal(result.scores, golden.run(graph, x).scores)


#: The board targets (pipelines, no input buffers, LUT4 and carry-chain trees) and two shapes that
#: decide every multi-bit output by the binary search (comparator_levels=1), with pipelines and one or
#: no input buffer.
TARGETS = {"xilinx-7": XILINX_7, "ice40-up5k": ICE40_UP5K, "ecp5": ECP5,
           "search-p2-nobuf": HardwareTarget("search-p2-nobuf", pipeline=2, input_buffers=0, comparator_levels=1),
           "search-carry-p3-1buf": HardwareTarget("search-carry-p3-1buf", lut_inputs=4, carry_adders=True, pipeline=3,
                                                  input_buffers=1, comparator_levels=1)}


@pytest.mark.parametrize("kind,seed", [("dense", 5), ("dense", 24), ("conv", 9)])
@pytest.mark.parametrize("name", list(TARGETS))
def test_multibit_models_are_bit_exact_on_every_target(name, kind, seed):
    """Targets change structure, never results: every multi-bit model runs on each under random gaps
    and back-pressure; free running, dense models' cycles per frame and latency equal the estimate."""
    model, shape = build(kind, seed)
    x = multibit_inputs(model, shape, seed, n=16 if kind == "dense" else 4)
    graph = apply_folding(fold_batchnorm(import_model(model, shape)), None)
    plan = plan_network(graph, TARGETS[name])
    if name.startswith("search"):
        assert any(layer.search_stages for layer in plan.layers)
    expected = golden.run(graph, x)
    stream = golden.channel_last(graph, golden.check_inputs(graph, x))
    result = run_network(build_network(plan), stream, model[0].bits, input_gaps=True, backpressure=True, seed=seed)
    assert np.array_equal(result.scores, expected.scores)
    if kind == "dense":
        free = run_network(build_network(plan), stream, model[0].bits)
        est = estimate_cycles(plan, 100.0)
        assert measured_timing(free) == (est.cycles_per_frame, est.latency_cycles)
