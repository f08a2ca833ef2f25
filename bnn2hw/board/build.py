"""Board builds: the compiled network inside the UART board top, through Yosys, nextpnr and the
bitstream packer, with amaranth-boards' pin and clock constraints.

The tools are the YoWASP builds from PyPI unless the user's environment names others (``YOSYS``,
``NEXTPNR_ICE40``, ``NEXTPNR_ECP5``, ``ICEPACK``, ``ECPPACK``; see bnn2hw.synth.tools). Everything the
tools report is read back from their own logs: ``top.stat`` (Yosys ``stat`` of the netlist that is
placed, synthesised with its hierarchy kept so that every layer is counted on its own) and ``top.tim``
(nextpnr: utilisation, Fmax).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import io

from ..errors import FitError, Bnn2hwError, ToolError
from ..estimate.families import device_capacity
from ..synth.ecp5_bram import absorb_output_registers
from ..synth.nextpnr import PNR_OPTIONS, PNR_SEEDS, PnrResult, parse_nextpnr_log, parse_timing_report
from ..synth.tools import tool_environment
from ..synth.yosys import SYNTH_OPTIONS, Resources, parse_stat, stat_module_names, synth_commands, tool_error_lines
from .boards import Board
from .pll import PLLClockDomain, PLLSettings, pll_settings

__all__ = ["BoardBuild", "BoardDesign", "build_board", "yosys_overrides", "DEFAULT_BAUD", "NAME"]

#: Serial rate of the board top: every USB-UART bridge on the supported boards runs it.
DEFAULT_BAUD = 115_200
#: Base name of every file of the build (amaranth-boards' ``name``).
NAME = "top"
#: nextpnr's timing report (``--report``): the critical path of report.md comes from it.
REPORT = f"{NAME}_timing.json"

#: Build steps, each with the file that shows it has finished (the next tool's output or log).
_STEPS = ("synthesis (yosys)", "place and route (nextpnr)", "bitstream (pack)")


@dataclass(frozen=True)
class BoardBuild:
    """What a board build produced and what the tools reported about it."""
    board: Board
    directory: Path
    bitstream: Path
    clock_mhz: float                  # the design clock (board oscillator, or the PLL's achieved output)
    pll: PLLSettings | None
    baud: int
    synthesis: Resources              # the whole placed design (Yosys stat)
    modules: dict                     # hierarchical module name → Resources (hierarchy-preserving run)
    pnr: PnrResult
    seconds: dict                     # step → seconds
    synth_options: str = ""           # the synthesis options beyond the family's command (SYNTH_OPTIONS)
    pnr_options: tuple = ()           # the nextpnr options beyond the device's (PNR_OPTIONS), with --seed
    seeds_missed: tuple = ()          # (seed, Fmax MHz) of the seeds tried before the kept one (PNR_SEEDS)


class BoardDesign(Elaboratable):
    """The board-level top: clock (board oscillator or PLL), the UART pins and the LEDs around
    :class:`bnn2hw.hw.board_top.BoardTop`."""

    def __init__(self, stages, board: Board, clock_mhz: float, pll: PLLSettings | None, baud: int):
        from ..hw.board_top import BoardTop
        self._board, self._pll = board, pll
        last = stages[-1]
        self.n_leds = min(board.n_leds, last.class_width)
        self.top = BoardTop(list(stages), divisor=BoardTop.divisor_for(clock_mhz * 1e6, baud), n_leds=self.n_leds)

    def elaborate(self, platform):
        m = Module()
        if self._pll is not None:
            # SB_PLL40_PAD takes the raw pad; EHXPLLL a buffered input.
            clk = platform.request(platform.default_clk, dir="-")
            if self._board.family == "ice40":
                clk_in = clk.io
            else:
                m.submodules.clk_buf = clk_buf = io.Buffer("i", clk)
                clk_in = clk_buf.i
            m.domains.sync = ClockDomain("sync")
            m.submodules.clocking = PLLClockDomain(self._pll, clk_in)
        m.submodules.board_top = top = self.top
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [top.rx.eq(rx.i), tx.o.eq(top.tx)]
        for k in range(self.n_leds):
            m.submodules[f"led{k}"] = led = io.Buffer("o", platform.request("led", k, dir="-"))
            m.d.comb += led.o.eq(top.leds[k])
        return m


#: What the board top adds to the network (UARTs, receive FIFO, reply shift register, class scan,
#: LEDs, clock reset), from Yosys' per-module counts of the digits model's board builds (board_top
#: and its submodules less the network: iCE40 720 LUTs / 665 FFs; ECP5 1,063 LUTs, report.md's
#: "UART bridge" line), plus one flip-flop per bit of the network's input beat for the assembly.
BRIDGE_OVERHEAD = {"ice40": {"luts": 720, "ffs": 665}, "ecp5": {"luts": 1063, "ffs": 665}}


def capacity_for_network(board: Board, graph) -> dict:
    """The board's capacity less what the board top around the network needs (for the fit check)."""
    cap = dict(device_capacity(board.device))
    # the bridge assembles one input beat: a pixel's channels for a convolutional network, else the
    # whole frame (an imported dense graph may still give its input as an image shape)
    beat_bits = graph.input.bits * (graph.input.shape[0] if graph.has_convolutions else int(np.prod(graph.input.shape)))
    over = BRIDGE_OVERHEAD[board.family]
    cap["luts"] -= over["luts"]
    cap["ffs"] -= over["ffs"] + beat_bits
    if "cells" in cap:
        cap["cells"] -= over["luts"] + over["ffs"] + beat_bits
    cap["name"] = f"{cap.get('name', board.device)} (less the board top's UART bridge)"
    for key in ("cells", "ffs"):
        if key in cap and cap[key] <= 0:
            raise FitError(f"the {board.name} cannot hold this model's board top: its UART bridge assembles an input "
                           f"beat of {beat_bits:,} bits ({graph.input.size if not graph.has_convolutions else graph.input.shape[0]} "
                           f"pixels of {graph.input.bits} bits) in flip-flops, which leaves the {board.device} no "
                           f"{'logic cells' if key == 'cells' else 'flip-flops'} for the network; use a board with more "
                           "logic (e.g. ulx3s-85f) or fewer input pixels", key, -cap[key], 0)
    return cap


def yosys_overrides(board: Board) -> dict:
    """Yosys options: keep the hierarchy (nextpnr places hierarchical netlists), so the per-layer
    report and the placed design are the same netlist, and write ``stat`` to a file; iCE40 UP5K
    multipliers (an affine score layer) go into its SB_MAC16 DSPs."""
    return {"synth_opts": "-noflatten" + (" -dsp" if board.device.startswith("iCE40UP") else ""),
            "script_after_synth": f"tee -q -o {NAME}.stat stat"}


def synthesis_script(board: Board) -> str:
    """The Yosys script of a board build (it replaces Amaranth's ``top.ys``): the RTLIL Amaranth wrote,
    :func:`bnn2hw.synth.yosys.synth_commands` with the hierarchy kept and the board's options, the
    ``stat`` report, the netlist."""
    commands = synth_commands(board.family, NAME, flatten=False, dsp=board.device.startswith("iCE40UP"),
                              options=board.synth_options)
    return "\n".join([f"read_rtlil {NAME}.il", *commands, f"tee -q -o {NAME}.stat stat", f"write_json {NAME}.json"]) + "\n"


def _tool_lines(script: str) -> dict:
    """The synthesis, place-and-route and pack command lines of Amaranth's build script."""
    found = {}
    for line in script.splitlines():
        for key, var in (("yosys", '"$YOSYS"'), ("pnr", '"$NEXTPNR_'), ("pack", ('"$ICEPACK"', '"$ECPPACK"'))):
            if line.startswith(var):
                found[key] = line
    missing = {"yosys", "pnr", "pack"} - set(found)
    if missing:
        raise ToolError(f"Amaranth's build script has no {', '.join(sorted(missing))} step", [script[-500:]])
    return found


def _watch(directory: Path, board: Board, finished: threading.Event, on_step, progress, seconds: dict) -> None:
    """Report each step as the file that ends it appears: nextpnr's log (synthesis is done), the
    text bitstream nextpnr writes at its end (placement is done), then the end of the script."""
    markers = [directory / f"{NAME}.tim", directory / f"{NAME}.{'asc' if board.family == 'ice40' else 'config'}",
               None]
    t0 = time.perf_counter()
    for step, marker in zip(_STEPS, markers):
        if on_step:
            on_step(step)
        while not finished.is_set() and not (marker is not None and marker.is_file()):
            time.sleep(0.2)
        if marker is not None and not marker.is_file():
            return                      # the script ended (failed) during this step
        now = time.perf_counter()
        seconds[step] = round(now - t0, 1)
        progress(step, now - t0)
        t0 = now


def _failure(directory: Path, board: Board, stderr: str, keep: Path, missed: tuple = ()) -> ToolError:
    """The failed step and the tool's own error lines from its log; the build folder is copied to
    ``keep`` so the full logs survive the (all-or-nothing) output directory."""
    pnr_log = directory / f"{NAME}.tim"
    pnr_text = pnr_log.read_text(errors="replace") if pnr_log.is_file() else ""
    headline, extra = None, []
    if not pnr_log.is_file():
        step, log = "synthesis (yosys)", directory / f"{NAME}.rpt"
    elif tool_error_lines(pnr_text) or not (directory / f"{NAME}.{'asc' if board.family == 'ice40' else 'config'}").is_file():
        step, log = f"place and route (nextpnr-{board.family})", pnr_log
        timing = parse_nextpnr_log(pnr_text)
        if timing.passed is False:
            headline = (f"the {board.name} design misses timing: nextpnr-{board.family} reaches {timing.fmax:.1f} MHz, "
                        f"below the {timing.target_mhz:g} MHz design clock; ask for a lower --clock-mhz")
            report = directory / REPORT
            critical = parse_timing_report(report.read_text()) if report.is_file() else None
            if critical is not None:
                extra.append(f"critical path: {critical.describe()}")
            if missed:
                extra.append("placement seeds tried before the last: " +
                             ", ".join(f"{seed}: {mhz:.2f} MHz" for seed, mhz in missed))
    else:
        step, log = f"bitstream packing ({'icepack' if board.family == 'ice40' else 'ecppack'})", None
    text = log.read_text(errors="replace") if log is not None and log.is_file() else ""
    lines = tool_error_lines(text) or tool_error_lines(stderr) or (text or stderr).strip().splitlines()[-8:]
    lines = lines + extra
    if keep.exists():
        shutil.rmtree(keep)
    shutil.copytree(directory, keep)
    return ToolError(headline or f"{step} for {board.name} failed", lines or ["(the tool wrote no error lines)"],
                     str(keep / log.name) if log is not None else str(keep))


def build_board(stages, board: Board, directory: str | Path, *, clock_mhz: float | None = None,
                baud: int = DEFAULT_BAUD, progress: Callable[[str, float], None] = lambda s, t: None,
                on_step: Callable[[str], None] | None = None, failed_logs: str | Path | None = None) -> BoardBuild:
    """Build the bitstream of ``stages`` (``Compiled.stages``) for ``board`` in ``directory``.

    ``clock_mhz`` other than the board oscillator's adds a PLL. A tool failure raises
    :class:`ToolError` with the tool's error lines; the build folder is then copied to
    ``failed_logs`` (default: a sibling ``<directory>.failed``) so its logs survive.
    """
    directory = Path(directory)
    clock = board.clock_mhz if clock_mhz is None else float(clock_mhz)
    pll = None
    if abs(clock - board.clock_mhz) > 1e-6:
        pll = pll_settings(board.family, board.clock_mhz, clock)
        if abs(pll.achieved_mhz - clock) / clock > 0.01:
            raise Bnn2hwError(f"the {board.name} PLL cannot make {clock:g} MHz from its {board.clock_mhz:g} MHz "
                              f"oscillator (nearest: {pll.achieved_mhz:g} MHz); ask for --clock-mhz "
                              f"{pll.achieved_mhz:g}")
        clock = pll.achieved_mhz
    design = BoardDesign(stages, board, clock, pll, baud)
    platform = board.platform()
    env = {**os.environ, **{k: v for k, v in tool_environment().items() if not os.environ.get(k)}}
    plan = platform.prepare(design, name=NAME, **yosys_overrides(board))
    directory.mkdir(parents=True, exist_ok=True)
    plan.extract(directory)
    seconds: dict = {}
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(directory, board, done, on_step, progress, seconds), daemon=True)
    watcher.start()
    script = (directory / f"build_{NAME}.sh").read_text()
    lines = _tool_lines(script)
    defaults = "; ".join(line for line in script.splitlines() if line.startswith(": ${"))   # ': ${YOSYS:=yosys}'
    (directory / f"{NAME}.ys").write_text(synthesis_script(board))
    options = PNR_OPTIONS[board.family] if board.pnr_options is None else board.pnr_options
    synth_options = SYNTH_OPTIONS[board.family] if board.synth_options is None else board.synth_options
    seeds = PNR_SEEDS[board.family] if board.pnr_seeds is None else board.pnr_seeds
    pnr = " ".join([lines["pnr"], "--report", REPORT, *options])

    def step(line: str) -> None:
        subprocess.run(["sh", "-c", f"{defaults}; {line}" if defaults else line], cwd=directory, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    missed, seed = [], seeds[0]
    try:
        step(lines["yosys"])
        if board.family == "ecp5":          # between Yosys and nextpnr: ECP5 block RAM output registers
            absorb_output_registers(directory / f"{NAME}.json")
        for k, seed in enumerate(seeds):
            try:
                step(f"{pnr} --seed {seed}")
                break
            except subprocess.CalledProcessError:
                # nextpnr fails a missed clock (no --timing-allow-fail): try the next seed, if any
                tim = directory / f"{NAME}.tim"
                timing = parse_nextpnr_log(tim.read_text(errors="replace")) if tim.is_file() else None
                if timing is None or timing.passed is not False or k + 1 == len(seeds):
                    raise
                missed.append((seed, timing.fmax))
        step(lines["pack"])
    except subprocess.CalledProcessError as e:
        done.set()
        watcher.join()
        raise _failure(directory, board, e.stderr or "", Path(failed_logs) if failed_logs else
                       directory.with_name(directory.name + ".failed"), tuple(missed)) from None
    done.set()
    watcher.join()
    bitstream = directory / f"{NAME}.{board.bitstream}"
    stat = (directory / f"{NAME}.stat").read_text()
    synthesis = parse_stat(stat, board.family)
    modules = {name: parse_stat(stat, board.family, name) for name in stat_module_names(stat)}
    pnr = parse_nextpnr_log((directory / f"{NAME}.tim").read_text(errors="replace"))
    report = directory / REPORT
    if report.is_file():
        pnr = dataclasses.replace(pnr, critical_path=parse_timing_report(report.read_text()))
    return BoardBuild(board=board, directory=directory, bitstream=bitstream, clock_mhz=clock, pll=pll, baud=baud,
                      synthesis=synthesis, modules=modules, pnr=pnr, seconds=seconds,
                      synth_options=synth_options, pnr_options=(*options, "--seed", str(seed)),
                      seeds_missed=tuple(missed))
