"""Yosys synthesis for Xilinx 7-series, iCE40 and ECP5, and the parser of its ``stat`` report.

:func:`synthesize` runs ``read_verilog; synth_<family>; stat`` in ``workdir`` and returns the cell
counts as :class:`Resources`. What each field counts, per family (``Resources`` docstring has the
exact cell lists):

* **xilinx** (``synth_xilinx -family xc7 -flatten -noiopad``, a core without I/O buffers, as a
  Vivado out-of-context run): ``luts`` = LUT1…LUT6 cells + LUT-as-memory in LUT6 sites
  (RAM32M/RAM64M = 4, RAM32X1D/RAM64X1D/RAM128X1S = 2, RAM128X1D/RAM256X1S = 4, RAM32X1S/RAM64X1S/
  SRL16E/SRLC32E = 1). That is what Vivado's utilisation report calls *Slice LUTs* ("LUT as Logic"
  + "LUT as Memory"), e.g. BNN-PYNQ's LFC W1A1: 28,360 Slice LUTs of which 3,001 LUT as memory. One
  difference remains: Vivado packs two LUT5s with shared inputs into one LUT6 site (O5/O6) and
  counts the site once; Yosys reports each LUT cell, so its count is an upper bound of Vivado's
  (typically a few per cent). ``bram`` is in RAMB36 tiles (RAMB18 = ½), Vivado's "Block RAM Tile".
  ``carry`` = CARRY4 cells (Vivado counts them apart from LUTs too). ``dsp`` = DSP48E1.
* **ice40** (``synth_ice40 [-dsp]``): ``luts`` = SB_LUT4. An SB_CARRY sits in the logic cell of
  the LUT that computes the sum bit, so it takes no LUT of its own and is counted in ``carry``
  only. ``bram`` = SB_RAM40_4K (4 kbit), ``dsp`` = SB_MAC16, ``lutram`` = 0 (iCE40 has none).
* **ecp5** (``synth_ecp5``): ``luts`` = LUT4 + 2 per CCU2C (each carry cell is two LUT4s with
  their carry logic) + 6 per TRELLIS_DPR16X4 (16×4 distributed RAM: 4 LUT4s of storage + 2 of the
  RAMW write-port slice). That is how Lattice's map report counts "LUT4s" ("ripple logic: 2 per
  CCU2", "distributed RAM: 6 per 16X4 RAM"). ``lutram`` is the DPR16X4 part (6 each), ``carry`` =
  CCU2C cells, ``bram`` = DP16KD (18 kbit), ``dsp`` = MULT18X18D.

``ffs`` counts every flip-flop cell of the family (FD*, SB_DFF*, TRELLIS_FF). ``cells`` keeps the raw
counts by cell type, so nothing is lost in the summary.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import ToolError
from .ecp5_bram import absorb_output_registers
from .tools import find_tool

__all__ = ["FAMILIES", "Resources", "SynthResult", "synthesize", "parse_stat", "stat_module_names",
           "tool_error_lines", "OOC_TOP", "ooc_wrapper_verilog", "synth_commands", "SYNTH_OPTIONS"]

FAMILIES = ("xilinx", "ice40", "ecp5")

#: Xilinx LUT-as-memory primitives → LUT6 sites each occupies (7-series/UltraScale libraries).
XILINX_LUTRAM = {"RAM32X1S": 1, "RAM64X1S": 1, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1S": 2, "RAM128X1D": 4,
                 "RAM256X1S": 4, "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM512X1S": 8,
                 "SRL16E": 1, "SRLC16E": 1, "SRLC32E": 1}
#: ECP5 LUT4 sites per TRELLIS_DPR16X4 (Lattice's "6 per 16X4 RAM") and per CCU2C.
ECP5_DPR_LUTS = 6
ECP5_CCU2_LUTS = 2

_DSP = {"xilinx": ("DSP48E1", "DSP48E2"), "ice40": ("SB_MAC16",), "ecp5": ("MULT18X18D", "ALU54B")}

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class Resources:
    """Cell counts of one synthesised module; see the module docstring for what each field means
    per family. ``cells``: raw counts by cell type (Yosys' own names, ``$scopeinfo`` dropped)."""
    family: str
    luts: int
    ffs: int
    carry: int
    bram: float
    lutram: int
    dsp: int
    cells: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"family": self.family, "luts": self.luts, "ffs": self.ffs, "carry": self.carry, "bram": self.bram,
                "lutram": self.lutram, "dsp": self.dsp, "cells": dict(sorted(self.cells.items()))}


@dataclass(frozen=True)
class SynthResult:
    """``resources``: the design module ``top`` (without the out-of-context wrapper, if one was added);
    ``total``: everything synthesised (equal to ``resources`` without a wrapper); ``json_path``: the
    netlist for nextpnr (``write_json=True``), whose top module is ``json_top``."""
    family: str
    top: str
    resources: Resources
    total: Resources
    log_path: Path
    stat_path: Path
    json_path: Path | None
    json_top: str
    seconds: float
    bram_output_registers: int = 0     # ECP5: flip-flops moved into block RAM output registers (ecp5_bram.py)


def _resources(cells: dict, family: str) -> Resources:
    cells = {k: v for k, v in cells.items() if not k.startswith("$scopeinfo")}
    count = lambda pred: sum(v for k, v in cells.items() if pred(k))
    if family == "xilinx":
        logic = count(lambda k: re.fullmatch(r"LUT[1-6]", k) is not None)
        lutram = sum(XILINX_LUTRAM[k] * v for k, v in cells.items() if k in XILINX_LUTRAM)
        ffs = count(lambda k: re.fullmatch(r"FD[CPRSE]E?|FD[CPRS]|LD[CP]E?", k) is not None)
        carry = count(lambda k: k in ("CARRY4", "CARRY8"))
        bram = cells.get("RAMB36E1", 0) + cells.get("RAMB36E2", 0) + 0.5 * (cells.get("RAMB18E1", 0)
                                                                            + cells.get("RAMB18E2", 0))
        return Resources(family, logic + lutram, ffs, carry, bram, lutram, count(lambda k: k in _DSP[family]), cells)
    if family == "ice40":
        return Resources(family, cells.get("SB_LUT4", 0), count(lambda k: k.startswith("SB_DFF")),
                         cells.get("SB_CARRY", 0), cells.get("SB_RAM40_4K", 0),
                         0, count(lambda k: k in _DSP[family]), cells)
    if family == "ecp5":
        dpr = cells.get("TRELLIS_DPR16X4", 0)
        carry = cells.get("CCU2C", 0)
        luts = cells.get("LUT4", 0) + ECP5_CCU2_LUTS * carry + ECP5_DPR_LUTS * dpr
        return Resources(family, luts, count(lambda k: k in ("TRELLIS_FF",) or k.startswith("FD1")), carry,
                         cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0), ECP5_DPR_LUTS * dpr,
                         count(lambda k: k in _DSP[family]), cells)
    raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")


def _strip(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def _stat_json_modules(data: dict) -> dict[str, dict]:
    names = {_strip(k) for k in data.get("modules", {})}
    cells = lambda v: {_strip(t): n for t, n in v.get("num_cells_by_type", {}).items() if _strip(t) not in names}
    mods = {_strip(k): cells(v) for k, v in data.get("modules", {}).items()}
    if "design" in data:
        mods["__design__"] = cells(data["design"])     # submodule instances are not cells
    return mods


_SECTION = re.compile(r"^=== (.+?) ===\s*$")
_NEW_ROW = re.compile(r"^(\s*)(\d+|-)(\s+)(\S.*?)\s*$")          # "      610 cells" / "        1   BUFG"


def _stat_text_modules(text: str) -> dict[str, dict]:
    """Cells by type per module section of a text ``stat`` report; the design total under ``__design__``.

    The layout of Yosys ≥ 0.50: counts first, cell types indented below the ``cells`` row. (Older
    Yosys wrote ``Number of cells:`` tables; use ``stat -json`` with those.)"""
    mods: dict[str, dict] = {}
    name, cells, col = None, None, None
    for line in text.splitlines():
        sec = _SECTION.match(line)
        if sec:
            name = "__design__" if sec[1] == "design hierarchy" else sec[1]
            mods[name] = cells = {}
            col = None
            continue
        if cells is None:
            continue
        row = _NEW_ROW.match(line)
        if row and row[4] == "cells":
            col = len(row[1]) + len(row[2]) + len(row[3])     # column where the word "cells" starts
            cells.clear()                                     # hierarchy: the last block is the total
            continue
        if isinstance(col, int):
            if row and row[2] != "-" and len(row[1]) + len(row[2]) + len(row[3]) > col:
                cells[row[4]] = int(row[2])
            else:
                col = None
    return mods


def _stat_modules(text: str) -> dict[str, dict]:
    stripped = text.lstrip()
    return _stat_json_modules(json.loads(stripped)) if stripped.startswith("{") else _stat_text_modules(text)


def stat_module_names(text: str) -> list[str]:
    """The modules a Yosys ``stat`` report (text or ``stat -json``) counts cells of, in report order;
    the design total is not one of them. Each is a valid ``module`` of :func:`parse_stat`."""
    return [name for name in _stat_modules(text) if name != "__design__"]


def parse_stat(text: str, family: str, module: str | None = None) -> Resources:
    """Resources of ``module`` (default: the whole design) from Yosys ``stat`` output: the text report
    or ``stat -json``. A design with a hierarchy is totalled from its ``design
    hierarchy`` section. Raises ``ValueError`` if the text holds no cell counts of that module."""
    mods = _stat_modules(text)
    if module is None:
        if "__design__" in mods and mods["__design__"]:
            cells = mods["__design__"]
        elif len([m for m in mods if m != "__design__"]) == 1:
            cells = next(v for k, v in mods.items() if k != "__design__")
        else:
            raise ValueError("the stat report has no design total and several modules; name the module")
    elif module in mods:
        cells = mods[module]
    else:
        raise ValueError(f"the stat report has no module {module!r} (it has {', '.join(sorted(mods)) or 'none'})")
    return _resources(cells, family)


def tool_error_lines(text: str, limit: int = 20) -> list[str]:
    """The tool's own error lines: each ``ERROR:`` line (Yosys, nextpnr) with the lines it continues on."""
    lines, out = text.splitlines(), []
    for k, line in enumerate(lines):
        if re.match(r"^\s*(?:[^\s:]+:\d+:\s*)?(ERROR|Error)\b", line):     # "ERROR: …", "file.v:2: ERROR: …"
            out.append(line.rstrip())
            for follow in lines[k + 1:k + 4]:       # continuation lines are indented
                if follow.startswith((" ", "\t")) and follow.strip():
                    out.append(follow.rstrip())
                else:
                    break
    return out[:limit]


def run_tool(name: str, args: list[str], cwd: Path, log: Path, step: str,
             timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run tool ``name`` in ``cwd`` (relative paths only: YoWASP sees nothing else); raise
    :class:`ToolError` with its error lines if it fails."""
    command = [find_tool(name)] + args
    try:
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"{step}: {name} ran longer than {timeout:.0f} s and was stopped", log=str(log)) from None
    if proc.returncode != 0:
        text = log.read_text(errors="replace") if log.is_file() else ""
        lines = tool_error_lines(text) or tool_error_lines(proc.stderr) or tool_error_lines(proc.stdout)
        if not lines:
            tail = (text or proc.stderr or proc.stdout).strip().splitlines()[-5:]
            lines = tail or [f"exit status {proc.returncode}, no output"]
        raise ToolError(f"{step}: {name} failed (exit status {proc.returncode})", lines,
                        str(log) if log.is_file() else None)
    return proc


#: Top module of the out-of-context wrapper written by :func:`ooc_wrapper_verilog`.
OOC_TOP = "bnn2hw_ooc"

_PORT = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s*)?(\\?\S+?)\s*;", re.M)


_RTLIL_PORT = re.compile(r"^\s*wire\s+(?:width\s+(\d+)\s+)?(input|output|inout)\s+(\d+)\s+\\?(\S+)\s*$", re.M)


def design_ports(verilog: str, top: str) -> list[tuple[str, str, int]]:
    """(direction, name, width) of ``top``'s ports in Verilog written by Yosys (``write_verilog``), or in
    RTLIL (Amaranth's ``rtlil.convert``), in port order."""
    match = re.search(rf"^module\s+\\{re.escape(top)}\s*$.*?^end\s*$", verilog, re.M | re.S)
    if match is not None:                      # RTLIL
        ports = sorted((int(k), d, n, int(w) if w else 1) for w, d, k, n in _RTLIL_PORT.findall(match[0]))
        return [(d, n, w) for _, d, n, w in ports]
    match = re.search(rf"^module\s+\\?{re.escape(top)}\s*\(.*?^endmodule", verilog, re.M | re.S)
    if match is None:
        raise ValueError(f"no module {top!r} in the Verilog")
    return [(d, n, abs(int(hi) - int(lo)) + 1 if hi else 1) for d, hi, lo, n in _PORT.findall(match[0])]


def ooc_wrapper_verilog(verilog: str, top: str = "bnn2hw_top", clock: str = "clk", xor_fanin: int = 4) -> str:
    """A wrapper module :data:`OOC_TOP` with three pins (``clock``, ``ser_in``, ``ser_out``) around ``top``,
    for place-and-route of a design whose ports outnumber any package's pins.

    Every input port of ``top`` but the clock is driven from one shift register fed by ``ser_in`` (one
    flip-flop per input bit, no LUTs); every output bit goes into a registered XOR tree of fan-in
    ``xor_fanin`` with one register level per tree level, ending on ``ser_out``. So no output is
    constant or unobserved (nothing is optimised away), all of ``top``'s paths stay register to
    register, and the wrapper's own paths are one LUT deep, far shorter than the design's. The wrapper
    costs Σ input bits + ≈ Σ output bits·(1/(fan-in − 1)) flip-flops and as many LUTs as the XOR tree
    has nodes; place-and-route utilisation includes it, synthesis resources are reported without it."""
    ports = design_ports(verilog, top)
    ins = [(n, w) for d, n, w in ports if d == "input" and n != clock]
    outs = [(n, w) for d, n, w in ports if d == "output"]
    n_in = sum(w for _, w in ins)
    lines = [f"module {OOC_TOP}(input wire {clock}, input wire ser_in, output wire ser_out);"]
    conns = [f".{clock}({clock})"]
    if n_in:
        lines += [f"  reg [{n_in - 1}:0] shift_in = 0;",
                  f"  always @(posedge {clock}) shift_in <= {{shift_in, ser_in}};" if n_in > 1 else
                  f"  always @(posedge {clock}) shift_in <= ser_in;"]
    pos = 0
    for name, w in ins:
        conns.append(f".{name}(shift_in[{pos + w - 1}:{pos}])")
        pos += w
    n_out = sum(w for _, w in outs)
    lines.append(f"  wire [{max(n_out, 1) - 1}:0] level0;")
    pos = 0
    for name, w in outs:
        conns.append(f".{name}(level0[{pos + w - 1}:{pos}])")
        pos += w
    if not n_out:
        lines.append("  assign level0 = 1'b0;")
    width, level = max(n_out, 1), 0
    while True:
        nxt = -(-width // xor_fanin)
        lines.append(f"  reg [{nxt - 1}:0] level{level + 1} = 0;")
        terms = []
        for k in range(nxt):
            lo, hi = k * xor_fanin, min(width, (k + 1) * xor_fanin) - 1
            terms.append(f"      level{level + 1}[{k}] <= ^level{level}[{hi}:{lo}];")
        lines += [f"  always @(posedge {clock}) begin"] + terms + ["  end"]
        width, level = nxt, level + 1
        if width == 1:
            break
    lines.append(f"  assign ser_out = level{level}[0];")
    lines.append(f"  {top} design_i ({', '.join(conns)});")
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


#: Extra options of each family's synthesis command (after the defaults of :func:`synth_commands`),
#: chosen by measurement on bnn2hw's designs: docs/benchmarks.md, "Timing closure (issue 17)".
SYNTH_OPTIONS = {"xilinx": "", "ice40": "", "ecp5": ""}


def synth_commands(family: str, top: str, *, flatten: bool = True, dsp: bool = True,
                   options: str | None = None) -> list[str]:
    """Yosys commands that synthesise ``top`` for ``family``: synth_xilinx (``-family xc7 -flatten
    -noiopad``), synth_ice40 (``-dsp`` with ``dsp``) or synth_ecp5 (``-nodsp`` without), ``-noflatten``
    to keep the hierarchy, plus ``options`` (default: :data:`SYNTH_OPTIONS`).

    iCE40 and ECP5 run in two halves with ``opt_clean -purge`` before LUT mapping: Yosys 0.70's abc9
    failed an internal assertion (``GetSize(conn.first) == GetSize(conn.second)``, reintegrating a
    module) on the ULX3S board top at 150 MHz; removing the unused named wires first avoids it, and
    changes no logic."""
    opts = SYNTH_OPTIONS[family] if options is None else options
    if family == "xilinx":
        return [f"synth_xilinx -family xc7 {'-flatten' if flatten else ''} -noiopad {opts} -top {top}"]
    if family == "ice40":
        base = f"synth_ice40 {'' if flatten else '-noflatten'} {'-dsp' if dsp else ''} {opts} -top {top}"
    elif family == "ecp5":
        base = f"synth_ecp5 {'' if flatten else '-noflatten'} {'' if dsp else '-nodsp'} {opts} -top {top}"
    else:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    base = " ".join(base.split())
    return [f"{base} -run :map_luts", "opt_clean -purge", f"{base} -run map_luts:"]


def synthesize(verilog_path: str | Path, family: str, workdir: str | Path, *, top: str = "bnn2hw_top",
               write_json: bool = False, progress: Progress | None = None, ooc_wrapper: bool = False,
               dsp: bool = True, timeout: float | None = None, options: str | None = None) -> SynthResult:
    """Synthesise ``verilog_path`` for ``family`` ("xilinx": xc7, "ice40", "ecp5") with Yosys in ``workdir``.

    ``verilog_path`` is Verilog, or RTLIL if it ends in ``.il`` (Amaranth's ``rtlil.convert``: Yosys then
    skips parsing Verilog, which was half of CNV's 37-minute synth_ecp5). Files written in ``workdir``
    (the input is copied there if it is elsewhere; YoWASP sees only that folder): ``synth_<family>.log``,
    ``stat_<family>.txt`` and ``stat_<family>.json``, and with ``write_json`` the netlist
    ``<top>_<family>.json`` for nextpnr; on ECP5 its block RAMs then take the flip-flops on their read
    data as output registers (:func:`bnn2hw.synth.ecp5_bram.absorb_output_registers`; ``stat`` counts
    them as flip-flops). The commands are :func:`synth_commands` (``options``: its default per family).

    ``ooc_wrapper``: synthesise :func:`ooc_wrapper_verilog` around ``top`` (for place-and-route of a
    design with more ports than pins); ``top`` is kept as its own module (``keep_hierarchy``), so
    ``resources`` are exactly the design's and ``total`` adds the wrapper. ``dsp``: map multipliers to
    DSP blocks (ice40: ``-dsp``, for the UP5K; ecp5: off gives ``-nodsp``). ``progress(step, seconds)``
    is called once, after Yosys finishes. Raises :class:`~bnn2hw.errors.ToolError` with Yosys' ERROR
    lines if it fails."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    verilog_path, workdir = Path(verilog_path).resolve(), Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    local = workdir / verilog_path.name
    if local != verilog_path:
        shutil.copyfile(verilog_path, local)
    log, stat_txt, stat_json = (workdir / f"synth_{family}.log", workdir / f"stat_{family}.txt",
                                workdir / f"stat_{family}.json")
    for stale in (log, stat_txt, stat_json):
        stale.unlink(missing_ok=True)
    rtlil = local.suffix == ".il"
    script = [f"read_rtlil {local.name}" if rtlil else f"read_verilog {local.name}"]
    synth_top = top
    if ooc_wrapper:
        wrapper = workdir / f"{OOC_TOP}.v"
        wrapper.write_text(ooc_wrapper_verilog(local.read_text(errors="replace"), top))
        script += [f"read_verilog {wrapper.name}", f"setattr -mod -set keep_hierarchy 1 {top}"]
        synth_top = OOC_TOP
    script += synth_commands(family, synth_top, dsp=dsp, options=options)
    script += [f"tee -q -o {stat_json.name} stat -json", f"tee -q -o {stat_txt.name} stat"]
    json_path = None
    if write_json:
        json_path = workdir / f"{top}_{family}.json"
        script.append(f"write_json {json_path.name}")
    t0 = time.perf_counter()
    run_tool("yosys", ["-q", "-l", log.name, "-p", "; ".join(script)], workdir, log,
             f"Yosys synth_{family} of {verilog_path.name}", timeout)
    seconds = time.perf_counter() - t0
    if progress:
        progress(f"yosys synth_{family}", seconds)
    if not stat_json.is_file():
        raise ToolError(f"Yosys synth_{family} of {verilog_path.name} wrote no statistics",
                        tool_error_lines(log.read_text(errors="replace")) if log.is_file() else [], str(log))
    stat = stat_json.read_text()
    total = parse_stat(stat, family)
    resources = parse_stat(stat, family, module=top) if ooc_wrapper else total
    absorbed = absorb_output_registers(json_path) if json_path is not None and family == "ecp5" else 0
    return SynthResult(family, top, resources, total, log, stat_txt, json_path, synth_top, seconds, absorbed)
