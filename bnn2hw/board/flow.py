"""The ``--board`` part of ``bnn2hw compile``: simulate, build, measure and report, inside the
compiler's all-or-nothing output directory (a hook of :func:`bnn2hw.compiler.write_output_dir`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .. import golden
from ..errors import SimulationError
from ..report import board_section, stage_names
from .boards import Board
from .build import DEFAULT_BAUD, build_board

__all__ = ["simulate_for_report", "board_step", "MEASURE_FRAMES"]

#: Verification frames run through the Amaranth simulation to measure cycles per frame and latency.
MEASURE_FRAMES = 4


def simulate_for_report(compiled, x: np.ndarray) -> dict:
    """Cycles per frame and latency measured on free-running frames, checked bit-exact against golden."""
    from ..sim.run import simulate_compiled
    x = golden.check_inputs(compiled.graph, x)[:MEASURE_FRAMES]
    if len(x) < 2:
        x = np.concatenate([x, x])
    run = simulate_compiled(compiled, x, "amaranth")
    if run.mismatches:
        raise SimulationError(f"the Amaranth simulation disagrees with the golden model on {run.mismatches} of "
                              f"{len(x)} frames; this is a bnn2hw bug, please report it with the model file")
    return {"simulator": "amaranth", "frames": len(x), "mismatches": 0, "cycles_per_frame": run.cycles_per_frame,
            "latency_cycles": run.latency_cycles}


def board_step(compiled, board: Board, *, clock_mhz: float | None, baud: int = DEFAULT_BAUD,
               verification_inputs: np.ndarray, progress: Callable[[str, float], None],
               on_step: Callable[[str], None] | None = None, failed_logs: Path | None = None):
    """The hook: simulate the verification frames, build the bitstream into ``board/``, add the
    measurements to the report."""
    import time

    def step(directory: Path, report: dict) -> None:
        if on_step:
            on_step("simulation of the verification frames (Amaranth)")
        t0 = time.perf_counter()
        report["simulation"] = sim = simulate_for_report(compiled, verification_inputs)
        progress("simulation of the verification frames (Amaranth)", time.perf_counter() - t0)
        build = build_board(compiled.stages, board, directory / "board", clock_mhz=clock_mhz, baud=baud,
                            progress=progress, on_step=on_step, failed_logs=failed_logs)
        names = stage_names(compiled.graph, compiled.stages)
        report["board"] = board_section(build, names, directory, sim["cycles_per_frame"])
    return step
