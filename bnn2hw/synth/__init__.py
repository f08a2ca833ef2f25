"""Running the open FPGA tools (Yosys, nextpnr) on generated Verilog and parsing what they report.

* :mod:`.tools` — where each tool is (environment variable, YoWASP beside Python, PATH);
* :mod:`.yosys` — :func:`synthesize` (synth_xilinx / synth_ice40 / synth_ecp5) and :func:`parse_stat`;
* :mod:`.nextpnr` — :func:`place_and_route` (nextpnr-ice40 / nextpnr-ecp5) and :func:`parse_nextpnr_log`.

Tool failures raise :class:`bnn2hw.errors.ToolError` quoting the tool's own error lines.
"""
from .nextpnr import PnrResult, parse_nextpnr_log, place_and_route
from .tools import find_tool, tool_environment
from .yosys import FAMILIES, OOC_TOP, Resources, SynthResult, ooc_wrapper_verilog, parse_stat, synthesize

__all__ = ["FAMILIES", "OOC_TOP", "PnrResult", "Resources", "SynthResult", "find_tool", "ooc_wrapper_verilog",
           "parse_nextpnr_log", "parse_stat", "place_and_route", "synthesize", "tool_environment"]
