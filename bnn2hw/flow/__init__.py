"""One build flow: a typed configuration (bnn2hw.flow.config), named steps over a state
(bnn2hw.flow.steps), run in order here. The CLI, the benchmarks and the tests all go through it.

* :func:`compile_model` — the compile steps only (in memory): a :class:`Compiled`;
* :func:`build` — compile, then write the output directory (Verilog, verification pair,
  folding.json, and with a board the simulation and bitstream), then the reports, all or nothing;
  the returned state holds the report in memory (``state.report``);
* :func:`fold_model` — load, check and fold (the golden model's graph, without a folding).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from ..errors import InputDataError
from .config import (DEFAULT_CLOCK_MHZ, BuildConfig, DefaultFolding, FoldingFile, FoldingSource, MaxLuts,
                     TargetFps)
from .output import MARKER, output_errors
from .steps import (BOARD_FIT_STEPS, BOARD_STEPS, COMPILE_STEPS, OUTPUT_STEPS, PLAN_STEPS, REPORT_STEPS,
                    BuildState, Compiled, Progress)

__all__ = ["BuildConfig", "BuildState", "Compiled", "DefaultFolding", "FoldingFile", "FoldingSource", "MaxLuts",
           "TargetFps", "DEFAULT_CLOCK_MHZ", "MARKER", "Progress", "build", "compile_model", "fold_model",
           "load_inputs", "run_steps", "steps_for"]


def run_steps(state: BuildState, steps) -> BuildState:
    """Run (label, step) pairs on ``state`` in order, reporting each labelled one with its duration."""
    for label, step in steps:
        t0 = time.perf_counter()
        step(state)
        if label is not None:
            state.progress(label, time.perf_counter() - t0)
    return state


def steps_for(config: BuildConfig, *, write: bool) -> tuple:
    """The steps of ``config``'s build: compile (and the board fit), plan, then with ``write`` the output."""
    steps = COMPILE_STEPS + (BOARD_FIT_STEPS if config.board is not None else ()) + PLAN_STEPS
    if write:
        steps += OUTPUT_STEPS + (BOARD_STEPS if config.board is not None else ()) + REPORT_STEPS
    return steps


def compile_model(model_path: str | Path, *, folding_file: str | Path | None = None, calibration=None,
                  clock_mhz: float | None = None, progress: Progress | None = None, target_fps: float | None = None,
                  max_luts: int | None = None, board=None, family: str | None = None, input_bits: int | None = None,
                  input_scale=None) -> Compiled:
    """Load, check, fold, plan and estimate a model (.pt, or QONNX .onnx with its input mapping); no
    files are written. Only one of ``folding_file``, ``target_fps`` and ``max_luts`` may choose the
    folding (default: passes/folding.py's). With a ``board`` the design must fit it (a default folding
    is re-folded to fit)."""
    config = BuildConfig(model=Path(model_path), board=board, clock_mhz=clock_mhz, family=family, calibration=calibration,
                         folding=BuildConfig.folding_from(folding_file, target_fps, max_luts), input_bits=input_bits,
                         input_scale=input_scale)
    state = BuildState(config, **({"progress": progress} if progress else {}))
    return run_steps(state, steps_for(config, write=False)).compiled


def build(config: BuildConfig, progress: Progress | None = None, on_step=None) -> BuildState:
    """Compile ``config.model`` and write ``config.out_dir`` all or nothing; the state holds the report."""
    state = BuildState(config, on_step=on_step, **({"progress": progress} if progress else {}))
    try:
        with output_errors(config.out_dir):
            return run_steps(state, steps_for(config, write=True))
    finally:
        if state.staging is not None and state.staging.exists():
            shutil.rmtree(state.staging, ignore_errors=True)


def fold_model(model_path: str | Path, *, calibration=None, progress: Progress | None = None,
               input_bits: int | None = None, input_scale=None):
    """Load, check and fold a model: (the torch model or QONNX graph, the folded graph the golden model runs)."""
    config = BuildConfig(model=Path(model_path), calibration=calibration, input_bits=input_bits,
                         input_scale=input_scale)
    state = BuildState(config, **({"progress": progress} if progress else {}))
    run_steps(state, COMPILE_STEPS[:3])
    return state.torch_model if state.qonnx_model is None else state.qonnx_model, state.graph


def load_inputs(path: str | Path) -> np.ndarray:
    """Read an X.npy of integer pixels with one clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"input file '{path}' does not exist; give a .npy file of shape (n, *input_shape)")
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise InputDataError(f"input file '{path}' is not a numpy .npy file; save the inputs with numpy.save")
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise InputDataError(f"input file '{path}' holds Python objects, which are never loaded ({e}); "
                             "save a plain integer array with numpy.save") from None
    except Exception as e:   # numpy raises several types for a file that is not .npy
        raise InputDataError(f"input file '{path}' is not a numpy .npy file ({e}); "
                             "save the inputs with numpy.save") from None
    if not isinstance(x, np.ndarray):
        raise InputDataError(f"input file '{path}' does not hold one array; save it with numpy.save")
    return x
