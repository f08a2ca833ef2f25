"""The build flow: one typed configuration, the plan its estimate describes, and an output directory that
is written whole or not at all — with one sentence for every reason it cannot be written."""

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import bnn2hw
from bnn2hw.board.boards import get_board
from bnn2hw.cli import cli
from bnn2hw.codegen.cache import CACHE_ENV
from bnn2hw.codegen.export import export_verilog
from bnn2hw.codegen import build_network
from bnn2hw.errors import FoldingError
from bnn2hw.estimate import estimate_resources, family
from bnn2hw.flow import BuildConfig, DefaultFolding, FoldingFile, MaxLuts, TargetFps, build, compile_model
from bnn2hw.flow import output as output_module
from bnn2hw.hw.pe_array import pipeline_stages
from bnn2hw.plan import GENERIC, plan_network
from bnn2hw.testing import build_random_model, random_inputs, random_spec


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    spec = random_spec(5)
    bnn2hw.save(build_random_model(spec), d / "m.pt", (spec.widths[0],))
    return d / "m.pt", random_inputs(spec, n=4, seed=3)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error_line(result) -> str:
    assert result.exit_code != 0
    text = result.stderr or result.output
    assert "Traceback" not in text and "Traceback" not in result.output
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    return errors[0]


def test_the_folding_source_is_one_choice():
    assert BuildConfig.folding_from() == DefaultFolding()
    assert BuildConfig.folding_from(folding_file="f.json") == FoldingFile(Path("f.json"))
    assert BuildConfig.folding_from(target_fps=1e5) == TargetFps(1e5)
    assert BuildConfig.folding_from(max_luts=900) == MaxLuts(900)
    with pytest.raises(FoldingError, match="--target-fps and --max-luts both choose the folding"):
        BuildConfig.folding_from(target_fps=1e5, max_luts=900)


def test_a_boardless_report_states_its_target_and_describes_the_verilog_written(small_model, tmp_path, monkeypatch):
    model, x = small_model
    state = build(BuildConfig(model=model, out_dir=tmp_path / "out", inputs=x))
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report == state.report                     # the report in memory, which the CLI prints, is the file
    assert report["estimate"]["target"] == report["resources"]["target"] == GENERIC.name
    assert report["estimate"]["family"] == report["resources"]["family"] == "xilinx"
    # the estimate is the generic plan's, and the generic plan's hardware is what verilog/ holds
    plan = plan_network(state.graph, report["estimate"]["target"])
    assert report["resources"]["luts"] == estimate_resources(plan, "xilinx").luts
    # converted afresh, not read back from the export cache that the build just filled
    monkeypatch.setenv(CACHE_ENV, "off")
    again = export_verilog(build_network(plan), tmp_path / "again", state.graph.input.bits)
    assert again.read_bytes() == (tmp_path / "out" / "verilog" / "bnn2hw_top.v").read_bytes()
    # and not the xilinx-7 board target's, which is another design
    board_plan = plan_network(state.graph, family("xilinx").target)
    assert estimate_resources(board_plan, "xilinx").ffs != report["resources"]["ffs"]


@pytest.mark.parametrize("clock_mhz", [None, 60.0])
def test_a_board_compile_estimates_the_network_inside_its_board_top(small_model, clock_mhz):
    model, _ = small_model
    board = get_board("icebreaker")
    compiled = compile_model(model, board=board, clock_mhz=clock_mhz)
    clock = board.clock_mhz if clock_mhz is None else clock_mhz
    # the units are shaped for the clock: compact at the board's 12 MHz, pipelined at 60 MHz (issue 17)
    target = family("ice40").target_at(clock)
    assert target is (family("ice40").compact if clock_mhz is None else family("ice40").target)
    assert compiled.plan.target == target and compiled.board == "icebreaker"
    assert compiled.stages[-1].class_index is True          # verilog/'s network is complete
    inside = plan_network(compiled.graph, target, class_index=False)   # the board top's
    assert compiled.resources.luts == estimate_resources(inside, "ice40").luts < \
        estimate_resources(compiled.plan, "ice40").luts
    assert compiled.resources.ffs == estimate_resources(inside, "ice40").ffs
    assert compiled.resources.family == "ice40" and compiled.estimate.clock_mhz == clock
    if target.levels_per_stage:      # a register every levels_per_stage tree levels
        assert all(p.levels_per_stage == target.levels_per_stage and
                   p.pipeline == pipeline_stages(p.tree_levels, target.levels_per_stage) for p in compiled.params)
    else:                            # the target's fixed stage count, spread over the trees
        assert all(p.pipeline == target.pipeline and not p.levels_per_stage for p in compiled.params)


def test_an_out_that_is_a_symbolic_link_is_refused_and_nothing_moves(small_model, tmp_path):
    model, _ = small_model
    real = tmp_path / "real"
    real.mkdir()
    (real / "keep.txt").write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(real)
    line = one_error_line(run("compile", model, "--out", link))
    assert "is a symbolic link" in line and "--out" in line
    assert link.is_symlink() and (real / "keep.txt").read_text() == "mine" and os.listdir(real) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


@pytest.mark.parametrize("code,reason", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_an_unwritable_place_is_one_sentence_and_leaves_nothing(small_model, tmp_path, monkeypatch, code, reason):
    model, _ = small_model

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(tmp_path))
    monkeypatch.setattr(output_module.tempfile, "mkdtemp", refuse)
    line = one_error_line(run("compile", model, "--out", tmp_path / "out"))
    assert "cannot write the output directory" in line and reason in line and "--out" in line
    assert list(tmp_path.iterdir()) == []


def test_a_parent_without_write_permission_is_refused_before_any_work(small_model, tmp_path, monkeypatch):
    model, _ = small_model
    real_access = os.access
    monkeypatch.setattr(output_module.os, "access",
                        lambda path, mode: Path(path) != tmp_path and real_access(path, mode))
    line = one_error_line(run("compile", model, "--out", tmp_path / "out"))
    assert "permission denied" in line
    assert list(tmp_path.iterdir()) == []


def test_a_failed_replacement_keeps_the_previous_output(small_model, tmp_path, monkeypatch):
    model, x = small_model
    out = tmp_path / "out"
    build(BuildConfig(model=model, out_dir=out, inputs=x))
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_replace = os.replace

    def replace(src, dst):
        """The move of the new staging directory into place fails; moving the old output aside works."""
        staged = os.path.dirname(src) == str(tmp_path) and os.path.basename(src).startswith(".out.")
        if staged and not os.path.basename(src).startswith(".out.old."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_replace(src, dst)
    monkeypatch.setattr(output_module.os, "replace", replace)
    line = one_error_line(run("compile", model, "--out", out))
    assert "the disk is full" in line
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]      # no staging or backup left behind


def test_the_cli_prints_the_report_it_wrote(small_model, tmp_path):
    model, _ = small_model
    result = run("compile", model, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    res, net = report["resources"], report["network"]
    assert f"about {res['luts']:,} LUTs" in result.output and "generic hardware, xilinx cost model" in result.output
    assert f"{net['cycles_per_frame']} cycles/frame" in result.output


def test_verification_inputs_default_to_seeded_frames(small_model, tmp_path):
    model, _ = small_model
    a = build(BuildConfig(model=model, out_dir=tmp_path / "a"))
    b = build(BuildConfig(model=model, out_dir=tmp_path / "b"))
    xa = np.load(tmp_path / "a" / "verification" / "input.npy")
    assert len(xa) == 16 and np.array_equal(xa, np.load(tmp_path / "b" / "verification" / "input.npy"))
    assert a.report["network"] == b.report["network"]


def test_a_board_build_simulates_its_network_bit_exact_before_the_tools_run(small_model, tmp_path):
    """Every step of a board build but the bitstream itself (which needs Yosys and nextpnr: slow tier)."""
    from bnn2hw.flow import BuildState, run_steps, steps_for
    from bnn2hw.flow.steps import build_bitstream
    model, x = small_model
    config = BuildConfig(model=model, board=get_board("icebreaker"), out_dir=tmp_path / "out", inputs=x)
    state = BuildState(config)
    try:
        run_steps(state, [s for s in steps_for(config, write=True) if s[1] is not build_bitstream][:-2])
        sim = state.report["simulation"]
        assert sim["mismatches"] == 0 and sim["cycles_per_frame"] == state.estimate.cycles_per_frame
        assert sim["latency_cycles"] == state.estimate.latency_cycles
    finally:
        if state.staging is not None:
            import shutil
            shutil.rmtree(state.staging)


def test_a_board_whose_network_is_slower_than_its_uart_gets_a_note():
    """The W2A2 digits model on the iCEBreaker needs 4,096 cycles a frame; at 3 Mbaud (4 cycles a bit)
    a 64-pixel frame takes 2,600 cycles on the line, so frames sent back to back would overrun."""
    from bnn2hw.flow import BuildConfig, BuildState, run_steps, steps_for
    for baud, noted in ((3_000_000, True), (115_200, False)):
        config = BuildConfig(model=Path(__file__).resolve().parents[1] / "models" / "digits_w2a2.pt",
                             board=get_board("icebreaker"), baud=baud)
        state = run_steps(BuildState(config), steps_for(config, write=False))
        assert any("overruns the receiver" in n for n in state.notes) == noted, state.notes
