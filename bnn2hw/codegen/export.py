"""Verilog export of a network, with a JSON description of its ports and payload bit layout, and of a
board top (the network behind its UART)."""

from __future__ import annotations

import json
from pathlib import Path

from amaranth.back import verilog

from ..hw import Network
from ..hw.board_top import BOARD_TOP_NAME, BoardTop
from . import cache

__all__ = ["TOP_NAME", "export_verilog", "network_verilog", "export_board_verilog", "interface_description", "port_name"]

TOP_NAME = "bnn2hw_top"

# Yosys' write_verilog leans on Verilog's implicit operand extension (``x == 1'h1`` for a 3-bit x,
# ``a - 4'hf`` for a 7-bit a). That is the intended meaning, and the RTL tests prove it bit-exact, so
# only Verilator's width-style lint is switched off, for this file alone; every other lint stays on.
_LINT_HEADER = ("/* bnn2hw: generated from Amaranth; implicit operand extension is intended here. */\n"
                "/* verilator lint_off WIDTH */\n")
_LINT_FOOTER = "/* verilator lint_on WIDTH */\n"


def port_name(*path: str) -> str:
    """Verilog port name of a signature member, e.g. ``port_name("i", "valid") == "i__valid"``."""
    return "__".join(path)


def interface_description(network: Network, pixel_bits: int) -> dict:
    """Ports and payload layout of the exported top, as plain data (written as top.json)."""
    last = network.head
    width = len(network.i.payload)
    elements = width // pixel_bits
    if network.input_beats == 1:
        layout = "pixel k (unsigned) in bits [k*element_bits, (k+1)*element_bits); one frame per beat"
    else:
        layout = (f"one image pixel per beat, {network.input_beats} beats per frame in raster order (row by row); "
                  "channel c (unsigned) in bits [c*element_bits, (c+1)*element_bits)")
    return {
        "top": TOP_NAME,
        "clock": "clk", "reset": "rst (synchronous, active high)",
        "input": {"valid": port_name("i", "valid"), "ready": port_name("i", "ready"),
                  "payload": port_name("i", "payload"), "width": width, "elements": elements,
                  "element_bits": pixel_bits, "beats_per_frame": network.input_beats, "layout": layout},
        "output": {"valid": port_name("o", "valid"), "ready": port_name("o", "ready"),
                   "payload": port_name("o", "payload"),
                   "width": last.n_out * last.score_width + last.class_width,
                   "classes": last.n_out, "score_bits": last.score_width, "class_bits": last.class_width,
                   "layout": "score c (signed) in bits [c*score_bits, (c+1)*score_bits), then the class "
                             "index (argmax, lowest index on ties) in the top class_bits bits"},
    }


def network_verilog(network: Network) -> str:
    """The Verilog text of ``network`` as module ``bnn2hw_top``, from the content-addressed cache
    (codegen/cache.py) when the same stages were exported before by the same generator and tools."""
    key = cache.design_key(network.stages, TOP_NAME, emit_src=False)
    text = cache.lookup(key)
    if text is None:
        text = verilog.convert(network, name=TOP_NAME, emit_src=False)
        cache.store(key, text)
    else:
        # Its Verilog is written, so it is used: the flag Amaranth's Fragment.get sets when it elaborates
        # one (else an UnusedElaboratable warning is printed when the unelaborated network is collected).
        network._MustUse__used = True
    return text


def export_verilog(network: Network, directory: str | Path, pixel_bits: int) -> Path:
    """Write ``directory/bnn2hw_top.v`` and ``directory/bnn2hw_top.json``; return the Verilog path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    text = network_verilog(network)
    path = directory / f"{TOP_NAME}.v"
    path.write_text(_LINT_HEADER + text + _LINT_FOOTER)
    (directory / f"{TOP_NAME}.json").write_text(json.dumps(interface_description(network, pixel_bits), indent=2) + "\n")
    return path


def export_board_verilog(top: BoardTop, directory: str | Path) -> Path:
    """Write ``directory/bnn2hw_board_top.v`` (lint header as for bnn2hw_top.v); return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{BOARD_TOP_NAME}.v"
    path.write_text(_LINT_HEADER + verilog.convert(top, name=BOARD_TOP_NAME, emit_src=False) + _LINT_FOOTER)
    return path
