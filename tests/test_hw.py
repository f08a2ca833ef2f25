"""Hardware blocks in Amaranth's simulator against the golden model; ROM packing; Verilog lint."""

import subprocess

import numpy as np
import pytest

from bnn2hw import golden
from bnn2hw.codegen import build_network
from bnn2hw.codegen.export import export_verilog
from bnn2hw.errors import FoldingError
from bnn2hw.frontend import import_model
from bnn2hw.golden.packing import bits_to_int, int_to_bits, pack_bits, pack_fields, unpack_bits, unpack_fields
from bnn2hw.hw import MVUParams
from bnn2hw.passes import apply_folding, default_folding, fold_batchnorm
from bnn2hw.plan.rom import weight_rom
from bnn2hw.sim.amaranth_sim import run_network
from bnn2hw.testing import build_random_model, random_inputs, random_spec


def small_graph(n_in, hidden, n_out, bits, seed=0):
    spec = random_spec(seed)
    spec = type(spec)(seed=seed, input_bits=bits, widths=(n_in, hidden, n_out), head_bn=bool(seed % 2), biases=False)
    model = build_random_model(spec)
    return spec, model, fold_batchnorm(import_model(model, (n_in,)))


@pytest.mark.parametrize("fold0,fold1", [((1, 1), (1, 1)), ((5, 7), (3, 2)), ((11, 13), (4, 11)),
                                         ((2, 13), (1, 11)), ((11, 1), (4, 1))])
@pytest.mark.parametrize("bits", [1, 8])
def test_every_folding_is_bit_exact_under_stalls(fold0, fold1, bits):
    spec, _, graph = small_graph(13, 11, 4, bits, seed=bits + fold0[0])
    graph = apply_folding(graph, {"dense0": {"pe": fold0[0], "simd": fold0[1]},
                                  "dense1": {"pe": fold1[0], "simd": fold1[1]}})
    x = random_inputs(bits, 13, n=12, seed=3)
    result = run_network(build_network(graph), x, bits, input_gaps=True, backpressure=True, seed=5)
    expected = golden.run(graph, x)
    assert np.array_equal(result.scores, expected.scores) and np.array_equal(result.classes, expected.classes)


def test_weight_rom_layout_is_pe_interleaved_simd_innermost():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2, size=(7, 10)).astype(np.uint8)
    pe, simd = 3, 4
    rows = weight_rom(w, pe, simd)
    nf, sf = 3, 3
    assert len(rows) == nf * sf
    for r, row in enumerate(rows):
        bits = int_to_bits(row, pe * simd)
        n, s = divmod(r, sf)
        for j in range(pe):
            for k in range(simd):
                o, i = n * pe + j, s * simd + k
                expected = w[o, i] if o < 7 and i < 10 else 1      # padding: weight bit 1
                assert bits[j * simd + k] == expected


def test_packing_round_trips():
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, size=(5, 131)).astype(np.uint8)
    assert np.array_equal(unpack_bits(pack_bits(bits), 131), bits)
    assert np.array_equal(int_to_bits(bits_to_int(bits[0]), 131), bits[0])
    assert bits_to_int([1, 0, 0]) == 1 and bits_to_int([0, 0, 1]) == 4        # element 0 is the LSB
    values = [-3, 7, 0, -8]
    assert unpack_fields(pack_fields(values, 4), 4, 4, signed=True) == values


def test_component_parameters_are_checked():
    good = dict(n_in=4, n_out=2, pe=1, simd=2, pixel_bits=0, weight_rows=(0,) * 4, acc_width=4,
                threshold_rows=(0, 0), threshold_width=4)
    with pytest.raises(ValueError, match="pe must be a positive integer, not 0"):
        MVUParams(**{**good, "pe": 0})
    with pytest.raises(ValueError, match="weight ROM must have 4 rows, not 3"):
        MVUParams(**{**good, "weight_rows": (0,) * 3})


def test_default_folding_respects_the_budget_and_balances():
    _, _, graph = small_graph(64, 100, 10, 4)
    fold = default_folding(graph, lane_budget=128)
    cost = fold["dense0"].pe * fold["dense0"].simd * 4 + fold["dense1"].pe * fold["dense1"].simd
    assert cost <= 128
    assert default_folding(graph, lane_budget=10 ** 9) == {"dense0": type(fold["dense0"])(100, 64),
                                                           "dense1": type(fold["dense0"])(10, 100)}


def test_folding_overrides_are_validated():
    _, _, graph = small_graph(8, 6, 3, 1)
    with pytest.raises(FoldingError, match="at most 6"):
        apply_folding(graph, {"dense0": {"pe": 7}})
    with pytest.raises(FoldingError, match="unknown keys"):
        apply_folding(graph, {"dense0": {"pe": 1, "ram": "block"}})
    with pytest.raises(FoldingError, match="dense0, dense1"):
        apply_folding(graph, {"fc1": {"pe": 1}})


@pytest.mark.rtl("verilator")
@pytest.mark.parametrize("seed,folding", [(3, None), (34, "wide")])
def test_exported_verilog_is_lint_clean(tmp_path, seed, folding):
    """Default folding, and PE = layer width (one-row threshold ROMs) with SIMD = fan-in (one cycle)."""
    from bnn2hw.sim.tools import find_simulator
    env = find_simulator("verilator")
    spec = random_spec(seed)
    graph = fold_batchnorm(import_model(build_random_model(spec), (spec.widths[0],)))
    overrides = {n.name: {"pe": n.out_features, "simd": n.in_features} for n in graph.compute_nodes} if folding else None
    graph = apply_folding(graph, overrides)
    path = export_verilog(build_network(graph), tmp_path, spec.input_bits)
    import os
    full_env = {**os.environ, **env}
    proc = subprocess.run(["verilator", "--lint-only", str(path)], capture_output=True, text=True, env=full_env)
    assert proc.returncode == 0 and "%Warning" not in proc.stderr and "%Error" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 13, 16])
def test_argmax_tree_is_numpys_argmax_lowest_index_on_ties(n):
    """The scores head's class output: every class count shape of the tournament (odd levels too),
    values from a range of five so that most vectors have ties."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator
    from bnn2hw.hw.mvu import argmax_tree

    m = Module()
    values = [Signal(signed(4), name=f"v{i}") for i in range(n)]
    out = argmax_tree(m, values)
    vectors = np.random.default_rng(n).integers(-2, 3, size=(200, n))
    got = []

    async def bench(ctx):
        for vec in vectors:
            for s, v in zip(values, vec):
                ctx.set(s, int(v))
            got.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert got == np.argmax(vectors, axis=1).tolist()
