"""The typed configuration of one build: the model, one folding source, the board, clock and family.

The folding source is one choice (:class:`DefaultFolding`, :class:`FoldingFile`, :class:`TargetFps`,
:class:`MaxLuts`); :meth:`BuildConfig.from_options` turns the CLI's options into one and refuses two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..board.boards import Board
from ..errors import FoldingError
from ..estimate import DEFAULT_FAMILY, family
from ..passes import DEFAULT_LANE_BUDGET
from ..plan import GENERIC, HardwareTarget

__all__ = ["DefaultFolding", "FoldingFile", "TargetFps", "MaxLuts", "FoldingSource", "BuildConfig",
           "DEFAULT_CLOCK_MHZ"]

#: Design clock of the estimate when no board (and no --clock-mhz) is given.
DEFAULT_CLOCK_MHZ = 100.0


@dataclass(frozen=True)
class DefaultFolding:
    """passes/folding.py's balancing within the lane budget (the board's, or the generic one); on a
    board a default folding that does not fit is re-folded to the fastest that does."""


@dataclass(frozen=True)
class FoldingFile:
    """PE and SIMD per layer from a JSON folding file (docs/cli.md)."""
    path: Path


@dataclass(frozen=True)
class TargetFps:
    """The cheapest folding that reaches ``fps`` frames/s at the design clock."""
    fps: float


@dataclass(frozen=True)
class MaxLuts:
    """The fastest folding whose estimated LUTs stay within ``luts``."""
    luts: int


FoldingSource = DefaultFolding | FoldingFile | TargetFps | MaxLuts


@dataclass(frozen=True)
class BuildConfig:
    """What to build. ``out_dir`` None: compile in memory only (no files). ``inputs``: integer pixels
    of the verification pair (None: 16 seeded random frames); ``calibration``: integer pixels the
    last layer's fixed-point scale is validated on (None: none; the CLI passes --inputs as both)."""
    model: Path
    folding: FoldingSource = DefaultFolding()
    board: Board | None = None
    clock_mhz: float | None = None        # None: the board's oscillator, else DEFAULT_CLOCK_MHZ
    family: str | None = None             # of the resource estimate; None: the board's, else DEFAULT_FAMILY
    out_dir: Path | None = None
    baud: int = 115_200
    inputs: np.ndarray | None = field(default=None, compare=False, repr=False)
    calibration: np.ndarray | None = field(default=None, compare=False, repr=False)
    failed_logs: Path | None = None       # where a failed board build's logs are kept
    input_bits: int | None = None         # a QONNX model's integer input width (None: 8)
    input_scale: object = None            # its meaning x = p · scale (a Fraction or "1/255"; None: 1/255)

    @staticmethod
    def folding_from(folding_file=None, target_fps=None, max_luts=None) -> FoldingSource:
        """One folding source from the CLI's three options; FoldingError if more than one is given."""
        chosen = [(name, v) for name, v in (("--folding", folding_file), ("--target-fps", target_fps),
                                            ("--max-luts", max_luts)) if v is not None]
        if len(chosen) > 1:
            raise FoldingError(f"{' and '.join(n for n, _ in chosen)} both choose the folding; give only one of them")
        if folding_file is not None:
            return FoldingFile(Path(folding_file))
        if target_fps is not None:
            return TargetFps(float(target_fps))
        if max_luts is not None:
            return MaxLuts(int(max_luts))
        return DefaultFolding()

    @property
    def design_clock_mhz(self) -> float:
        if self.clock_mhz is not None:
            return self.clock_mhz
        return self.board.clock_mhz if self.board is not None else DEFAULT_CLOCK_MHZ

    @property
    def estimate_family(self) -> str:
        """The family whose cost model the estimate (and the automatic folding) uses."""
        return self.family or (self.board.family if self.board is not None else DEFAULT_FAMILY)

    @property
    def target(self) -> HardwareTarget:
        """The hardware target the units are shaped for: the board family's at the design clock
        (Family.target_at), else generic."""
        if self.board is None:
            return GENERIC
        return family(self.board.family).target_at(self.design_clock_mhz)

    @property
    def lane_budget(self) -> int:
        return self.board.lane_budget if self.board is not None else DEFAULT_LANE_BUDGET
