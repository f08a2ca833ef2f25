"""ECP5 block RAM output registers: move the flip-flops that register a DP16KD's read data into the
block RAM (``REGMODE = OUTREG``), on the Yosys JSON netlist, before nextpnr.

Yosys 0.70 maps every ECP5 block RAM with ``REGMODE_A/B = "NOREG"`` (share/lattice/brams_map.v), and
a NOREG DP16KD's data appears 5.6 ns after the clock in nextpnr's timing model of the -6 speed grade:
most of a 150 MHz cycle before any logic. bnn2hw registers every ROM's read data
(``HardwareTarget.rom_registers``); this pass finds, per read port, flip-flops that take the port's
data bits and nothing else and folds them into the RAM's own output register, the way Lattice's
tools do. A port is converted only if every one of its used data bits feeds exactly one such
flip-flop, all on the RAM port's clock, with one clock enable between them and no set or reset; the
flip-flop's output net then comes from the RAM pin, and the flip-flops are removed. Behaviour is
unchanged: OUTREG is one more register on the read data, clocked by the port clock and enabled by
the output clock enable (OCE).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["absorb_output_registers"]

#: Read ports per RAM cell: (data pin prefixes, clock, output clock enable, REGMODE parameters). A
#: DP16KD of DATA_WIDTH_A 36 is a 36-bit pseudo-dual-port RAM (how Yosys maps a wide ROM): its read
#: data DOA and DOB are both in the CLKB domain, OCEB enables them and both REGMODEs must agree
#: (nextpnr's pack.cc, bitstream.cc).
_PORTS = {"DP16KD": ((("DOA",), "CLKA", "OCEA", ("REGMODE_A",)), (("DOB",), "CLKB", "OCEB", ("REGMODE_B",))),
          "DP16KD_PDP": ((("DOA", "DOB"), "CLKB", "OCEB", ("REGMODE_A", "REGMODE_B")),),
          "PDPW16KD": ((("DO",), "CLKR", "OCER", ("REGMODE",)),)}


def _param_int(value) -> int:
    value = str(value).strip()
    return int(value, 2) if value and set(value) <= {"0", "1"} and len(value) > 8 else int(value or 0)


def _ports(cell: dict) -> tuple:
    if cell["type"] == "DP16KD" and _param_int(cell["parameters"].get("DATA_WIDTH_A", "18")) == 36:
        return _PORTS["DP16KD_PDP"]
    return _PORTS[cell["type"]]


def _bit_sinks(module: dict) -> dict:
    """Net bit → [(cell name, port)] of every cell input it drives; output ports count as sinks too."""
    sinks: dict = {}
    for name, cell in module["cells"].items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            if dirs.get(port, "input") == "output":
                continue
            for b in bits:
                if isinstance(b, int):
                    sinks.setdefault(b, []).append((name, port))
    for pname, port in module.get("ports", {}).items():
        if port["direction"] != "input":
            for b in port["bits"]:
                if isinstance(b, int):
                    sinks.setdefault(b, []).append(("$port", pname))
    return sinks


def _plain_ff(cell: dict) -> bool:
    """A TRELLIS_FF without set/reset: positive clock, LSR unused or tied off."""
    p, c = cell["parameters"], cell["connections"]
    if cell["type"] != "TRELLIS_FF" or p.get("CLKMUX", "CLK").strip() != "CLK":
        return False
    no_reset = c.get("LSR", ["0"]) in (["0"], ["x"]) or p.get("LSRMUX", "LSR").strip() == "0"
    return no_reset and c.get("M", ["0"]) in (["0"], ["x"])


def _enable(cell: dict):
    """The flip-flop's clock enable: "1" (always), or the CE net bit (inverted CE is not handled: None)."""
    mux = cell["parameters"].get("CEMUX", "1").strip()
    if mux == "1":
        return "1"
    if mux == "CE":
        return cell["connections"].get("CE", ["1"])[0]
    return None


def _absorb_port(module: dict, ram_name: str, port: tuple, sinks: dict) -> int:
    cells = module["cells"]
    ram = cells[ram_name]
    prefixes, clock, oce, regmodes = port
    params, conns = ram["parameters"], ram["connections"]
    if any(params.get(r, "NOREG").strip() != "NOREG" for r in regmodes):
        return 0
    pins = [p for p in conns for pre in prefixes if p.startswith(pre) and p[len(pre):].isdigit()]
    plan, enable = [], None
    for pin in pins:
        (bit,) = conns[pin]
        users = sinks.get(bit, []) if isinstance(bit, int) else []
        if not users:
            continue                                  # an unused data bit
        if len(users) != 1 or users[0][1] != "DI":
            return 0
        ff_name = users[0][0]
        ff = cells.get(ff_name)
        if ff is None or not _plain_ff(ff) or ff["connections"]["CLK"] != conns[clock]:
            return 0
        en = _enable(ff)
        if en is None or (enable is not None and en != enable):
            return 0
        enable = en
        plan.append((pin, ff_name))
    if not plan:
        return 0
    for pin, ff_name in plan:
        conns[pin] = list(cells[ff_name]["connections"]["Q"])
        del cells[ff_name]
    for r in regmodes:
        params[r] = "OUTREG"
    conns[oce] = [enable]
    return len(plan)


def absorb_output_registers(netlist_path: str | Path) -> int:
    """Rewrite the Yosys JSON netlist at ``netlist_path`` in place (module docstring); return the
    number of flip-flops that became block-RAM output registers."""
    path = Path(netlist_path)
    design = json.loads(path.read_text())
    moved = 0
    for module in design["modules"].values():
        if module.get("attributes", {}).get("blackbox") or "cells" not in module:
            continue
        rams = [name for name, cell in module["cells"].items() if cell["type"] in _PORTS]
        if not rams:
            continue
        sinks = _bit_sinks(module)
        for name in rams:
            for port in _ports(module["cells"][name]):
                moved += _absorb_port(module, name, port, sinks)
    if moved:
        path.write_text(json.dumps(design))
    return moved
