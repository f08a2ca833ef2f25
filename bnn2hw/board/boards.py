"""The boards ``bnn2hw compile --board NAME`` builds for: amaranth-boards platforms and their facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import Bnn2hwError

__all__ = ["Board", "BOARDS", "get_board"]


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    family: str                 # "ice40" or "ecp5": selects synthesis, place and route, packer
    device: str                 # the FPGA part, as in the device table of bnn2hw/estimate/families.py
    clock_mhz: float            # the board oscillator that feeds the design (or its PLL)
    n_leds: int                 # user LEDs that show the last class, in binary
    bitstream: str              # file name suffix amaranth-boards' flow writes: "bin" or "bit"
    _platform: Callable[[], object]
    # Binary lanes (PE × SIMD) of the default folding on this board. On the UP5K a logic cell holds
    # one LUT4 and one flip-flop, and the registers of the stream take about as many cells as the
    # logic, so its default is a quarter of the generic 256.
    lane_budget: int = 256
    # Tool options of the board's builds beyond bnn2hw's defaults for its family (None: those defaults,
    # bnn2hw.synth.yosys.SYNTH_OPTIONS and bnn2hw.synth.nextpnr.PNR_OPTIONS; docs/boards.md).
    synth_options: str | None = None
    pnr_options: tuple[str, ...] | None = None
    pnr_seeds: tuple[int, ...] | None = None      # None: bnn2hw.synth.nextpnr.PNR_SEEDS of the family

    def platform(self):
        """A fresh amaranth-boards platform object for this board."""
        return self._platform()


def _icebreaker():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    return ICEBreakerPlatform()


def _ulx3s(size: str):
    def make():
        from amaranth_boards import ulx3s
        base = getattr(ulx3s, f"ULX3S_{size}F_Platform")

        class Platform(base):
            # amaranth-boards asks for the programmer (openFPGALoader) even when only building;
            # building needs just the synthesis, place-and-route and packing tools.
            @property
            def required_tools(self):
                return [tool for tool in super().required_tools if tool != "openFPGALoader"]

        Platform.__name__ = base.__name__
        return Platform()
    return make


BOARDS = {
    "icebreaker": Board("icebreaker", "1BitSquared iCEBreaker (Lattice iCE40 UP5K)", "ice40", "iCE40UP5K", 12.0,
                        2, "bin", _icebreaker, lane_budget=64),
    **{f"ulx3s-{size.lower()}f": Board(f"ulx3s-{size.lower()}f", f"Radiona ULX3S (Lattice ECP5 LFE5U-{size}F)",
                                       "ecp5", f"LFE5U-{size}F", 25.0, 8, "bit", _ulx3s(size))
       for size in ("12", "25", "45", "85")},
}


def get_board(name: str) -> Board:
    """The board called ``name``, or an error that lists the boards there are."""
    try:
        return BOARDS[name.lower()]
    except KeyError:
        raise Bnn2hwError(f"unknown board {name!r}; bnn2hw builds for {', '.join(BOARDS)}") from None
