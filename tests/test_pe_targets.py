"""Every hardware target (bnn2hw/plan/target.py) is bit-exact with the golden model and keeps II = K.

The targets change the popcount tree (LUT6 compressors, LUT4 full adders, carry-chain adders), add
pipeline stages and pick ROM styles; none may change a result. Random models (dense and
convolutional, binary and pixel first layers) run in Amaranth's simulator with random input gaps
and back-pressure against the golden model; free-running runs measure the initiation interval and
the latency, which must equal max K and Σ MVUParams.latency_cycles.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from bnn2hw import golden
from bnn2hw.codegen import build_network
from bnn2hw.frontend import import_model
from bnn2hw.hw import Network
from bnn2hw.hw.pe_array import PEArray, cut_levels, pipeline_stages
from bnn2hw.passes import apply_folding, fold_batchnorm
from bnn2hw.plan import ECP5, GENERIC, ICE40_UP5K, XILINX_7, HardwareTarget, plan_network
from bnn2hw.sim.amaranth_sim import measured_timing, run_network
from bnn2hw.testing import build_random_conv_model, build_random_model, random_folding, random_inputs, random_spec

TARGETS = {
    "generic": GENERIC, "xilinx-7": XILINX_7, "ice40-up5k": ICE40_UP5K, "ecp5": ECP5,
    # shapes no preset uses, so every code path runs: LUT5 compressors, deep pipelines
    "lut5-p3": HardwareTarget("lut5-p3", lut_inputs=5, compressor=True, pipeline=3),
    "lookup4-p2": HardwareTarget("lookup4-p2", lut_inputs=4, pipeline=2, input_buffers=1),
    "carry-p4": HardwareTarget("carry-p4", carry_adders=True, pipeline=4, bram_min_bits=64),
    "lut4-p6": HardwareTarget("lut4-p6", lut_inputs=4, compressor=True, pipeline=6, bram_min_bits=1),
}
# Half the seeds run in the default tier, all of them with `make test-slow`.
DENSE_SEEDS = (101, 102, pytest.param(103, marks=pytest.mark.slow), pytest.param(104, marks=pytest.mark.slow))
CONV_SEEDS = (201, pytest.param(202, marks=pytest.mark.slow))


def dense_graph(seed):
    spec = random_spec(seed, max_width=160)
    model = build_random_model(spec)
    graph = fold_batchnorm(import_model(model, (spec.widths[0],)))
    return spec, apply_folding(graph, random_folding(graph, seed))


@pytest.mark.parametrize("seed", DENSE_SEEDS)
@pytest.mark.parametrize("name", list(TARGETS))
def test_dense_models_are_bit_exact_on_every_target(name, seed):
    spec, graph = dense_graph(seed)
    x = random_inputs(spec, n=16, seed=seed)
    expected = golden.run(graph, x)
    net = build_network(graph, target=TARGETS[name])
    result = run_network(net, x, spec.input_bits, input_gaps=True, backpressure=True, seed=seed)
    assert np.array_equal(result.scores, expected.scores), (name, spec.describe())
    assert np.array_equal(result.classes, expected.classes), (name, spec.describe())


@pytest.mark.parametrize("name", list(TARGETS))
def test_pipeline_adds_latency_not_interval(name):
    spec, graph = dense_graph(DENSE_SEEDS[0])
    target = TARGETS[name]
    params = [layer.mvu for layer in plan_network(graph, target).layers]
    every = target.levels_per_stage
    assert all(p.pipeline == (pipeline_stages(p.tree_levels, every) if every else target.pipeline) for p in params)
    x = random_inputs(spec, n=5, seed=7)
    result = run_network(Network(params), x, spec.input_bits)
    assert measured_timing(result) == (max(p.cycles for p in params), sum(p.latency_cycles for p in params))
    assert np.array_equal(result.scores, golden.run(graph, x).scores)


@pytest.mark.parametrize("seed", CONV_SEEDS)
@pytest.mark.parametrize("name", ["xilinx-7", "ice40-up5k", "ecp5", "lut5-p3"])
def test_conv_models_are_bit_exact_on_every_target(name, seed):
    model, shape = build_random_conv_model(seed)
    bits = model[0].bits
    graph = apply_folding(fold_batchnorm(import_model(model, shape)), lane_budget=128)
    x = np.random.default_rng(seed).integers(0, 1 << bits, size=(4,) + shape)
    expected = golden.run(graph, x)
    net = Network(list(plan_network(graph, TARGETS[name]).stages))
    result = run_network(net, golden.channel_last(graph, x), bits, input_gaps=True, backpressure=True, seed=seed)
    assert np.array_equal(result.scores, expected.scores), name


def simulate_pe_array(pe, simd, pixel_bits, stages, vectors, **shape):
    """Drive a PEArray with (x, w, last_word) per cycle; return ``partial`` fields ``stages`` cycles later."""
    tail = simd - 1 if simd > 1 else simd
    width = 16
    dut = PEArray(pe, simd, pixel_bits, tail, width, stages=stages, **shape)
    out = []

    rng = random.Random(pe * simd + stages)

    async def bench(ctx):
        for e in range(len(vectors) + stages):
            x, w, last = vectors[e] if e < len(vectors) else (0, 0, 0)
            ctx.set(dut.x, x)
            ctx.set(dut.w, w)
            ctx.set(dut.last_word, last)
            ctx.set(dut.en, 1)
            if e >= stages:
                out.append(ctx.get(dut.partial))      # the result of vectors[e - stages]
            await ctx.tick()
            if stages and e % 3 == 2:                 # a stall with other inputs: every register holds
                ctx.set(dut.en, 0)
                ctx.set(dut.x, rng.getrandbits(len(dut.x)))
                ctx.set(dut.w, rng.getrandbits(len(dut.w)))
                await ctx.tick()

    top = Module()                  # a sync domain even for a combinational array
    top.submodules.dut = dut
    toggle = Signal()
    top.d.sync += toggle.eq(~toggle)
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out, tail, width


def pe_reference(pe, simd, pixel_bits, tail, x, w, last):
    res = []
    for j in range(pe):
        wb = [(w >> (j * simd + k)) & 1 for k in range(simd)]
        if pixel_bits:
            d = (1 << pixel_bits) - 1
            px = [(x >> (k * pixel_bits)) & d for k in range(simd)]
            lanes = range(tail if last else simd)
            res.append(sum((2 * px[k] - d) * (1 if wb[k] else -1) for k in lanes))
        else:
            xb = [(x >> k) & 1 for k in range(simd)]
            res.append(sum(1 - (a ^ b) for a, b in zip(wb, xb)))
    return res


@pytest.mark.parametrize("shape", [dict(lut_inputs=6, compressor=True), dict(lut_inputs=5, compressor=True),
                                   dict(lut_inputs=4, compressor=True), dict(carry_adders=True),
                                   dict(lut_inputs=6), dict(lut_inputs=4)],
                         ids=["lut6", "lut5", "lut4", "carry", "lookup6", "lookup4"])
@pytest.mark.parametrize("simd", [1, 2, 3, 5, 7, 8, 13, 32, 64, 67])
def test_popcount_trees_count_exactly(shape, simd):
    rng = random.Random(simd)
    pe, stages = 2, simd % 4
    vectors = [(rng.getrandbits(simd), rng.getrandbits(pe * simd), 0) for _ in range(24)]
    vectors += [(0, (1 << pe * simd) - 1, 0), ((1 << simd) - 1, (1 << pe * simd) - 1, 0), (0, 0, 0)]
    out, tail, width = simulate_pe_array(pe, simd, 0, stages, vectors, **shape)
    for (x, w, last), got in zip(vectors, out):
        fields = [(got >> (j * width)) & 0xFFFF for j in range(pe)]
        assert fields == pe_reference(pe, simd, 0, tail, x, w, last)


@pytest.mark.parametrize("stages", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("simd", [1, 4, 9])
def test_pixel_array_pipelines_count_exactly(stages, simd):
    rng = random.Random(stages * 10 + simd)
    pe, bits = 3, 4
    tail = simd - 1 if simd > 1 else simd
    keep = (1 << (tail * bits)) - 1         # the MVU's buffer holds pixel 0 in the padded lanes of the last word
    vectors = []
    for _ in range(20):
        last = rng.getrandbits(1)
        x = rng.getrandbits(simd * bits)
        vectors.append((x & keep if last else x, rng.getrandbits(pe * simd), last))
    out, tail, width = simulate_pe_array(pe, simd, bits, stages, vectors)
    for (x, w, last), got in zip(vectors, out):
        fields = [(got >> (j * width)) & 0xFFFF for j in range(pe)]
        fields = [f - (1 << 16) if f >> 15 else f for f in fields]
        assert fields == pe_reference(pe, simd, bits, tail, x, w, last)


@pytest.mark.parametrize("levels", range(0, 9))
@pytest.mark.parametrize("stages", range(0, 9))
def test_cut_levels_place_every_stage(stages, levels):
    cuts, at_output = cut_levels(stages, levels)
    assert len(cuts) + at_output == stages
    assert all(1 <= c <= max(1, levels) for c in cuts)
    if stages >= 1:
        assert at_output >= 1            # the output register is always there
    if stages >= 2 and levels >= 2:
        assert 1 in cuts                 # the second stage goes after the XNOR level


@pytest.mark.parametrize("levels", range(0, 12))
@pytest.mark.parametrize("every", range(1, 5))
def test_levels_per_stage_bounds_every_stage(levels, every):
    stages = pipeline_stages(levels, every)
    cuts, at_output = cut_levels(stages, levels, every)
    assert at_output == 1 and len(cuts) == stages - 1
    bounds = [0, *sorted(cuts), max(levels, 1)]
    assert all(0 < b - a <= every for a, b in zip(bounds, bounds[1:]))     # no stage holds more than `every`


def test_targets_set_rom_styles_by_size():
    spec, graph = dense_graph(DENSE_SEEDS[1])
    for target in (XILINX_7, ICE40_UP5K, ECP5):
        for p in (layer.mvu for layer in plan_network(graph, target).layers):
            assert p.rom_style == ("block" if p.weight_rom_bits >= target.bram_min_bits else target.small_rom_style)
    assert all(l.mvu.rom_style == "" and l.mvu.pipeline == 0 for l in plan_network(graph).layers)
    with pytest.raises(ValueError):
        HardwareTarget(lut_inputs=3)
    with pytest.raises(ValueError):
        HardwareTarget(pipeline=-1)
