"""FINN's CNV W1A1 with FINN's folding (slow tier: `make test-slow`): golden == torch, Verilog lint-clean,
Yosys synth_ecp5 without errors, and 3 frames through Verilator bit-exact at the estimated cycles per
frame. bench/cnv_finn_folding.py runs the same steps and records the numbers in docs/benchmarks.md."""

import sys
from pathlib import Path

import numpy as np
import pytest

from bnn2hw import golden
from bnn2hw.flow import BuildConfig, FoldingFile, build, compile_model
from bnn2hw.reference import torch_forward
from bnn2hw.sim.run import simulate_compiled

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "bench"))

from cnv_w1a1 import INPUT_SHAPE, random_cnv  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cnv(tmp_path_factory):
    import bnn2hw
    work = tmp_path_factory.mktemp("cnv")
    bnn2hw.save(random_cnv(0), work / "cnv.pt", input_shape=INPUT_SHAPE)
    compiled = compile_model(work / "cnv.pt", folding_file=ROOT / "models" / "cnv_w1a1_folding.json")
    x = np.random.default_rng(1).integers(0, 256, size=(3,) + INPUT_SHAPE)
    build(BuildConfig(model=work / "cnv.pt", folding=FoldingFile(ROOT / "models" / "cnv_w1a1_folding.json"),
                      out_dir=work / "build", inputs=x))
    return compiled, x, work


def test_cnv_golden_equals_torch_and_folding_is_finns(cnv):
    compiled, x, _ = cnv
    np.testing.assert_array_equal(golden.run(compiled.graph, x).scores, torch_forward(compiled.torch_model, x))
    assert {n: (f.pe, f.simd) for n, f in compiled.graph.folding} == {
        "conv0": (16, 3), "conv1": (32, 32), "conv2": (16, 32), "conv3": (16, 32), "conv4": (4, 32),
        "conv5": (1, 32), "dense6": (1, 4), "dense7": (1, 8), "dense8": (4, 1)}


@pytest.mark.rtl("verilator")
@pytest.mark.synth("yosys")
def test_cnv_verilog_lints_clean_and_synthesises(cnv):
    from cnv_finn_folding import lint, synth_ecp5
    _, _, work = cnv
    verilog = work / "build" / "verilog" / "bnn2hw_top.v"
    result = lint(verilog)
    assert result["returncode"] == 0 and result["warnings"] == 0, result
    synth = synth_ecp5(verilog)
    assert synth["ok"] and synth["errors_in_log"] == 0, synth.get("error")
    assert synth["cells"].get("LUT4", 0) > 0


@pytest.mark.rtl("verilator")
def test_cnv_runs_bit_exact_in_verilator_at_the_estimated_rate(cnv, tmp_path):
    compiled, x, _ = cnv
    run = simulate_compiled(compiled, x, "verilator", build_dir=tmp_path)
    assert run.mismatches == 0
    np.testing.assert_array_equal(run.result.scores, torch_forward(compiled.torch_model, x))
    assert run.cycles_per_frame == compiled.estimate.cycles_per_frame == 32_768
