"""Clock synthesis: a PLL that makes the design clock from the board's oscillator.

The divider settings come from Project IceStorm's ``icepll`` (iCE40) and Project Trellis' ``ecppll``
(ECP5), run from their PyPI (YoWASP) builds; the PLL is then instantiated directly from Amaranth.
Resources: one SB_PLL40_PAD or EHXPLLL. The design is held in reset until the PLL reports lock.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal

from ..errors import ToolError
from ..synth.tools import find_tool

__all__ = ["PLLSettings", "pll_settings", "PLLClockDomain"]


@dataclass(frozen=True)
class PLLSettings:
    family: str                       # "ice40" or "ecp5"
    input_mhz: float
    requested_mhz: float
    achieved_mhz: float
    parameters: tuple[tuple[str, object], ...]    # primitive parameters, in order
    attributes: tuple[tuple[str, str], ...] = ()  # ECP5 only: the loop-filter attributes ecppll chose


def _run(tool: str, args: list[str], directory: Path) -> str:
    path = find_tool(tool)
    result = subprocess.run([path, *args], cwd=directory, capture_output=True, text=True)
    if result.returncode != 0:
        raise ToolError(f"{tool} could not make a PLL setting ({' '.join(args)}):\n"
                        + (result.stderr or result.stdout).strip())
    return (directory / "pll.v").read_text()


def pll_settings(family: str, input_mhz: float, output_mhz: float) -> PLLSettings:
    """PLL dividers for ``output_mhz`` from ``input_mhz``, as the vendor-independent tool computes them."""
    with tempfile.TemporaryDirectory(prefix="bnn2hw-pll-") as tmp:
        tmp = Path(tmp)
        if family == "ice40":
            text = _run("icepll", ["-i", f"{input_mhz:g}", "-o", f"{output_mhz:g}", "-p", "-m", "-q",
                                   "-f", "pll.v"], tmp)
            achieved = float(re.search(r"Achieved output frequency:\s*([\d.]+)", text)[1])
            params = [("FEEDBACK_PATH", "SIMPLE")]
            for name in ("DIVR", "DIVF", "DIVQ", "FILTER_RANGE"):
                bits = re.search(rf"\.{name}\((\d+)'b([01]+)\)", text)
                params.append((name, int(bits[2], 2)))
            return PLLSettings(family, input_mhz, output_mhz, achieved, tuple(params))
        if family == "ecp5":
            text = _run("ecppll", ["-i", f"{input_mhz:g}", "-o", f"{output_mhz:g}", "-f", "pll.v"], tmp)
            achieved = float(re.search(r'FREQUENCY_PIN_CLKOP="([\d.]+)"', text)[1])
            params = [("PLLRST_ENA", "DISABLED"), ("INTFB_WAKE", "DISABLED"), ("STDBY_ENABLE", "DISABLED"),
                      ("DPHASE_SOURCE", "DISABLED"), ("OUTDIVIDER_MUXA", "DIVA"), ("CLKOP_ENABLE", "ENABLED"),
                      ("FEEDBK_PATH", "CLKOP")]
            for name in ("CLKI_DIV", "CLKOP_DIV", "CLKOP_CPHASE", "CLKOP_FPHASE", "CLKFB_DIV"):
                params.append((name, int(re.search(rf"\.{name}\((\d+)\)", text)[1])))
            attrs = [("FREQUENCY_PIN_CLKI", f"{input_mhz:g}"), ("FREQUENCY_PIN_CLKOP", f"{achieved:g}")]
            attrs += re.findall(r'\(\*\s*(ICP_CURRENT|LPF_RESISTOR|MFG_ENABLE_FILTEROPAMP|MFG_GMCREF_SEL)="(\d+)"',
                                text)
            return PLLSettings(family, input_mhz, output_mhz, achieved, tuple(params), tuple(attrs))
    raise ValueError(f"no PLL for FPGA family {family!r}")


class PLLClockDomain(Elaboratable):
    """Drives clock domain ``sync`` (the parent defines it, above every module that uses it) from a
    PLL fed by the board oscillator ``clk_in``.

    ``sync`` is held in reset until the PLL has been locked for ``RESET_DELAY_US`` (iCE40 block RAMs
    read as zero for about 3 µs after configuration; Amaranth's own power-on reset waits 15 µs too).
    iCE40: SB_PLL40_PAD, which must sit on the oscillator's PLL-capable pad, as it does on the
    iCEBreaker; ECP5: EHXPLLL.
    """

    RESET_DELAY_US = 15

    def __init__(self, settings: PLLSettings, clk_in):
        self._settings = settings
        self._clk_in = clk_in       # iCE40: the oscillator's pad (an IO port); ECP5: its input buffer

    def elaborate(self, platform):
        s = self._settings
        m = Module()
        locked, clk_out = Signal(), Signal()
        params = {f"p_{k}": v for k, v in s.parameters}
        if s.family == "ice40":
            m.submodules.pll = Instance("SB_PLL40_PAD", **params, i_PACKAGEPIN=self._clk_in,
                                        i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=clk_out, o_LOCK=locked)
        else:
            attrs = {f"a_{k}": v for k, v in s.attributes}
            m.submodules.pll = Instance("EHXPLLL", **params, **attrs, i_CLKI=self._clk_in, i_CLKFB=clk_out,
                                        i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1,
                                        i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                                        o_CLKOP=clk_out, o_LOCK=locked)
        m.d.comb += ClockSignal("sync").eq(clk_out)
        if platform is not None:        # nextpnr then checks timing against the PLL's output
            platform.add_clock_constraint(clk_out, s.achieved_mhz * 1e6)
        # The delay counter runs in a reset-less domain on the same clock and restarts on loss of lock.
        m.domains.pll_por = ClockDomain("pll_por", reset_less=True)
        m.d.comb += ClockSignal("pll_por").eq(ClockSignal("sync"))
        delay = max(1, int(self.RESET_DELAY_US * s.achieved_mhz))
        count = Signal(range(delay + 1))
        with m.If(~locked):
            m.d.pll_por += count.eq(0)
        with m.Elif(count != delay):
            m.d.pll_por += count.eq(count + 1)
        # A flip-flop, not the comparator itself: the reset reaches every register with an enable. Its
        # initial value is 0 (out of reset for the first cycle after configuration, when every register
        # holds its initial value anyway): an iCE40 flip-flop starts at 0, and an initial 1 costs an
        # inverter LUT between the flip-flop and the reset's whole fanout. On iCE40 the reset then takes
        # a global buffer (SB_GB): as a plain net its fanout routing was 7 ns of the UP5K's critical path.
        in_reset = Signal()
        m.d.pll_por += in_reset.eq(~locked | (count != delay))
        if s.family == "ice40":
            rst = Signal()
            m.submodules.reset_buffer = Instance("SB_GB", i_USER_SIGNAL_TO_GLOBAL_BUFFER=in_reset,
                                                 o_GLOBAL_BUFFER_OUTPUT=rst)
            m.d.comb += ResetSignal("sync").eq(rst)
        else:
            m.d.comb += ResetSignal("sync").eq(in_reset)
        return m
