"""The resource model against Yosys itself (synth tier): for the shipped models as each family's boards
build them, the estimate is within the model's recorded calibration error of Yosys' LUT count, and its
block RAMs and DSPs are Yosys' exactly (bnn2hw/estimate/cost_model.py's CALIBRATION)."""

import pytest

from bnn2hw.codegen import build_network
from bnn2hw.codegen.export import export_verilog
from bnn2hw.estimate import CALIBRATION, estimate_resources, family
from bnn2hw.flow import compile_model
from bnn2hw.plan import plan_network
from bnn2hw.synth import synthesize

from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.synth("yosys")
@pytest.mark.parametrize("model,fam", [("digits_mlp.pt", "ice40"), ("digits_mlp.pt", "xilinx"),
                                       ("digits_cnn.pt", "ecp5"), ("digits_w2a2.pt", "xilinx")])
def test_the_estimate_matches_yosys_within_its_calibration(model, fam, tmp_path):
    graph = compile_model(MODELS / model).graph
    plan = plan_network(graph, family(fam).target)
    est = estimate_resources(plan, fam)
    verilog = export_verilog(build_network(plan), tmp_path / "verilog", graph.input.bits)
    got = synthesize(verilog, fam, tmp_path / "synth").resources
    error = abs(est.luts - got.luts) / got.luts
    assert error <= CALIBRATION[fam]["lut_error_max"], (est.luts, got.luts)
    assert est.bram_blocks == got.bram and est.dsp == got.dsp, (est.bram_blocks, got.bram, est.dsp, got.dsp)
