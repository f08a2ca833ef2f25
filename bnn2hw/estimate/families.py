"""The registry of FPGA families and devices: one table for everything that differs between them.

A :class:`Family` names its LUT size, the hardware target its boards build with (bnn2hw/plan/target.py),
its block-RAM and DSP cells with Yosys' mul2dsp limits, and what one block RAM or DSP counts as in
LUTs when foldings are compared (the LUT/block ratio of a typical part: iCE40 UP5K 5,280/30 and 5,280/8,
ECP5-85F 83,640/208 and /156, XC7Z020 53,200/140 and /220). :data:`DEFAULT_FAMILY` is the family of a
resource estimate when no board or family is given (LUT6, as FINN's published numbers).

Device capacities (:data:`DEVICES`) are the vendors' data-sheet numbers; nextpnr's "Device
utilisation" table shows the same available counts for the Lattice parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Bnn2hwError
from ..plan import ECP5, ICE40_UP5K, ICE40_UP5K_COMPACT, XILINX_7, HardwareTarget

__all__ = ["Family", "FAMILIES", "FAMILY_NAMES", "DEFAULT_FAMILY", "family", "LUT_SIZE", "Device", "DEVICES",
           "DEVICES_BY_KEY", "device_capacity", "capacity_from"]


@dataclass(frozen=True)
class Family:
    name: str
    lut_size: int                 # LUT inputs
    target: HardwareTarget        # how the family's boards shape the units
    bram_cell: str                # the block-RAM cell fit messages name
    dsp_cell: str                 # the DSP cell Yosys maps multipliers to
    dsp_max_a: int                # mul2dsp limits: widest A and B operands,
    dsp_max_b: int
    dsp_min_width: int            # narrowest A and B,
    dsp_min_product: int          # narrowest product Y
    bram_lut_equivalent: float    # LUTs one block RAM counts as when foldings are compared
    dsp_lut_equivalent: float     # LUTs one DSP counts as (a pixel layer's PEs each take one)
    compact: HardwareTarget | None = None   # the units for clocks up to compact_max_mhz (None: one target)
    compact_max_mhz: float = 0.0

    def target_at(self, clock_mhz: float) -> HardwareTarget:
        """The units' shape for a design clocked at ``clock_mhz``: the compact target up to
        ``compact_max_mhz``, where its fewer registers have met timing in every measured build, else
        the pipelined :attr:`target`."""
        if self.compact is not None and clock_mhz <= self.compact_max_mhz:
            return self.compact
        return self.target


FAMILIES: dict[str, Family] = {f.name: f for f in (
    # compact up to 36 MHz: its UP5K board builds reached 47.6 MHz (digits MLP) and 45.8 MHz (W2A2)
    Family("ice40", 4, ICE40_UP5K, "SB_RAM40_4K", "SB_MAC16", 16, 16, 2, 11, 176.0, 660.0,
           compact=ICE40_UP5K_COMPACT, compact_max_mhz=36.0),
    Family("ecp5", 4, ECP5, "DP16KD", "MULT18X18D", 18, 18, 2, 0, 402.0, 536.0),
    Family("xilinx", 6, XILINX_7, "RAMB36", "DSP48E1", 25, 18, 2, 9, 380.0, 242.0),
)}
FAMILY_NAMES = tuple(FAMILIES)
DEFAULT_FAMILY = "xilinx"
#: LUT inputs of each family (iCE40 and ECP5: LUT4; Xilinx 7-series: LUT6).
LUT_SIZE = {name: f.lut_size for name, f in FAMILIES.items()}


def family(name: str) -> Family:
    """The family called ``name`` ("ice40", "ecp5", "xilinx"), or an error naming the ones there are."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise Bnn2hwError(f"unknown FPGA family {name!r}; choose one of {', '.join(FAMILIES)}") from None


@dataclass(frozen=True)
class Device:
    name: str
    family: str
    luts: int
    ffs: int
    bram_blocks: int
    bram_block_bits: int
    dsp: int
    description: str
    source: str

    @property
    def bram_bits(self) -> int:
        return self.bram_blocks * self.bram_block_bits

    def capacity(self) -> dict:
        cap = {"name": self.description, "device": self.name, "family": self.family, "luts": self.luts,
               "ffs": self.ffs, "bram_blocks": self.bram_blocks, "bram_bits": self.bram_bits, "dsp": self.dsp}
        if self.family == "ice40":
            # An iCE40 logic cell is one LUT4 and one flip-flop, and a flip-flop shares a cell only with
            # the LUT that feeds it: LUTs + FFs bounds the cells (the digits build: 4,745 against
            # nextpnr's 4,377 ICESTORM_LC), and it is the count that fills the device.
            cap["cells"] = self.luts
        return cap


_ECP5_DS = ("Lattice ECP5 and ECP5-5G Family Data Sheet FPGA-DS-02012, Table 1.1 (LUTs, 18 kbit sysMEM blocks, "
            "18×18 multipliers); nextpnr-ecp5 'Device utilisation' lists the same TRELLIS_COMB, DP16KD and "
            "MULT18X18D counts")

#: Capacities of the parts the boards use (bnn2hw/board/boards.py names them by ``Board.device``).
DEVICES: dict[str, Device] = {d.name: d for d in (
    Device("iCE40UP5K", "ice40", 5_280, 5_280, 30, 4_096, 8, "iCE40 UP5K",
           "Lattice iCE40 UltraPlus Family Data Sheet FPGA-DS-02008, Table 1.1: 5,280 LUT4s and flip-flops, "
           "120 kbit EBR in 30 SB_RAM40_4K blocks, 8 SB_MAC16 DSPs, 4 SPRAM blocks of 256 kbit (not used by bnn2hw)"),
    Device("LFE5U-12F", "ecp5", 12_000, 12_000, 32, 18_432, 28, "ECP5 LFE5U-12F",
           _ECP5_DS + "; the data sheet gives '12K' LUTs (the die is the 25F's, which nextpnr shows)"),
    Device("LFE5U-25F", "ecp5", 24_288, 24_288, 56, 18_432, 28, "ECP5 LFE5U-25F", _ECP5_DS),
    Device("LFE5U-45F", "ecp5", 43_848, 43_848, 108, 18_432, 72, "ECP5 LFE5U-45F", _ECP5_DS),
    Device("LFE5U-85F", "ecp5", 83_640, 83_640, 208, 18_432, 156, "ECP5 LFE5U-85F", _ECP5_DS),
    Device("xc7a35t", "xilinx", 20_800, 41_600, 50, 36_864, 90, "Artix-7 XC7A35T",
           "AMD 7 Series FPGAs Data Sheet: Overview DS180, Table 3 (LUT6, flip-flops, 36 kbit block RAMs, DSP48E1)"),
    Device("xc7z020", "xilinx", 53_200, 106_400, 140, 36_864, 220, "Zynq-7000 XC7Z020",
           "AMD Zynq-7000 SoC Data Sheet: Overview DS190, Table 1 (LUT6, flip-flops, 36 kbit block RAMs, DSP48E1)"),
)}
DEVICES_BY_KEY = {k.lower().replace("-", "").replace(" ", ""): d for k, d in DEVICES.items()}


def device_capacity(device: str) -> dict:
    """Capacity dict of a device name in :data:`DEVICES` (case, '-' and spaces ignored)."""
    d = DEVICES_BY_KEY.get(str(device).lower().replace("-", "").replace(" ", ""))
    if d is None:
        raise KeyError(f"no capacity known for device {device!r}; known: {', '.join(DEVICES)}")
    return d.capacity()


def capacity_from(capacity) -> dict:
    """A capacity dict from a dict (kept as is) or a device name."""
    if isinstance(capacity, str):
        return device_capacity(capacity)
    return dict(capacity)


