"""torch (eval, float64) == golden == Amaranth simulation, on random models and random inputs.

Thirty models drawn by bnn2hw.testing (1–4 hidden layers, widths 3..300 with primes, 1/4/8-bit inputs,
BatchNorm with γ of both signs and zero, heads with and without BatchNorm, optional biases), 64 inputs
each, simulated with random input gaps and output back-pressure.
"""

import numpy as np
import pytest

from bnn2hw import golden
from bnn2hw.codegen import build_network
from bnn2hw.estimate import estimate_cycles
from bnn2hw.plan import plan_network
from bnn2hw.frontend import import_model
from bnn2hw.passes import apply_folding, fold_batchnorm
from bnn2hw.reference import torch_forward
from bnn2hw.sim.amaranth_sim import measured_timing, run_network
from bnn2hw.testing import build_random_model, random_folding, random_inputs, random_spec

MODEL_SEEDS = range(30)


def compile_random(seed, folding="random"):
    spec = random_spec(seed)
    model = build_random_model(spec)
    graph = fold_batchnorm(import_model(model, (spec.widths[0],)))
    overrides = random_folding(graph, seed) if folding == "random" else None
    return spec, model, apply_folding(graph, overrides)


def test_the_drawn_models_cover_the_space():
    specs = [random_spec(s) for s in MODEL_SEEDS]
    assert {s.input_bits for s in specs} == {1, 4, 8}
    assert {len(s.widths) - 2 for s in specs} == {1, 2, 3, 4}
    assert {s.head_bn for s in specs} == {True, False}
    widths = [w for s in specs for w in s.widths[:-1]]
    assert min(widths) <= 10 and max(widths) >= 280
    assert any(w in (3, 5, 7, 11, 13, 17, 31, 37, 61, 67, 97, 101, 127, 131, 199, 211, 251, 257, 293) for w in widths)


@pytest.mark.parametrize("seed", MODEL_SEEDS)
def test_torch_golden_amaranth_agree(seed):
    spec, model, graph = compile_random(seed)
    x = random_inputs(spec, n=64, seed=seed)
    reference = torch_forward(model, x)
    expected = golden.run(graph, x)
    assert np.array_equal(expected.classes, reference.argmax(axis=1)), spec.describe()
    if not spec.head_bn and not spec.biases:
        # A plain head: the integer scores are torch's outputs themselves.
        assert np.array_equal(expected.scores.astype(np.float64), reference), spec.describe()
    result = run_network(build_network(graph), x, spec.input_bits, input_gaps=True, backpressure=True, seed=seed)
    assert np.array_equal(result.scores, expected.scores), spec.describe()
    assert np.array_equal(result.classes, expected.classes), spec.describe()


@pytest.mark.parametrize("seed,folding", [(2, "random"), (6, "random"), (9, "default"), (14, "default"),
                                          (17, "random"), (20, "default")])
def test_measured_cycles_equal_estimate(seed, folding):
    spec, model, graph = compile_random(seed, folding)
    x = random_inputs(spec, n=6, seed=seed + 99)
    result = run_network(build_network(graph), x, spec.input_bits)
    est = estimate_cycles(plan_network(graph), 100.0)
    assert measured_timing(result) == (est.cycles_per_frame, est.latency_cycles), spec.describe()
    assert np.array_equal(result.scores, golden.run(graph, x).scores)
