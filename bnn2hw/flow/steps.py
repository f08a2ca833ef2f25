"""The build's steps: named plain functions over one :class:`BuildState`, run in order by bnn2hw.flow.

Compile steps (in memory): load the model, import and check its layers, fold BatchNorm into
thresholds, choose the folding, fit it to the board, plan the hardware, estimate. Output steps (into a
staging directory that is moved into place at the end): Verilog, the verification pair, folding.json,
the board's simulation and bitstream, the reports, the commit.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import golden
from ..board.build import build_board, capacity_for_network
from ..codegen.export import export_verilog
from ..errors import FitError, FoldingError, ModelFileError, SimulationError
from ..estimate import (NetworkEstimate, ResourceEstimate, estimate_cycles, estimate_resources, family, fit_check,
                        fold_for_budget, fold_for_fps, refold_to_fit)
from ..frontend import QonnxModel, import_model, import_qonnx, load_qonnx
from ..hw import Network
from ..hw.board_top import BoardTop
from ..io import load
from ..ir import Dense, Graph, InputThreshold
from ..passes import apply_folding, fold_batchnorm, load_folding_file
from ..plan import HardwareTarget, NetworkPlan, plan_network
from ..reference import torch_forward
from ..report import board_section, folding_file_dict, report_dict, write_chart, write_markdown
from ..sim.run import simulate_compiled
from .config import BuildConfig, DefaultFolding, FoldingFile, MaxLuts, TargetFps
from .output import commit_output, prepare_output, staging_directory

__all__ = ["Compiled", "BuildState", "Progress", "COMPILE_STEPS", "OUTPUT_STEPS", "BOARD_STEPS", "MEASURE_FRAMES",
           "VERIFICATION_FRAMES"]

Progress = Callable[[str, float], None]
#: Verification frames run through the Amaranth simulation of a board build to measure cycles and latency.
MEASURE_FRAMES = 4
#: Seeded random frames of the verification pair when no --inputs are given.
VERIFICATION_FRAMES = 16
#: Seeded random frames a QONNX graph and its golden model must agree on at compile time (docs/qonnx.md).
QONNX_CHECK_FRAMES = 256


@dataclass(frozen=True)
class Compiled:
    """Everything a compile produces in memory: the folded graph, its hardware plan and its estimates."""
    model_path: str
    graph: Graph                     # folded, with PE/SIMD per layer
    plan: NetworkPlan                # the hardware, as written
    estimate: NetworkEstimate
    torch_model: object              # the loaded BinaryNet, for reference runs
    resources: ResourceEstimate      # of the plan's hardware, for ``family``
    family: str
    folding_note: dict | None = None  # how the folding was chosen (target, budget, re-fold), for folding.json
    board: str | None = None         # the board built for: then ``resources`` is the network inside its top
    qonnx_model: QonnxModel | None = None   # the source graph of a QONNX compile (then torch_model is None)

    @property
    def reference_name(self) -> str:
        """What the hardware is compared with: "PyTorch", or "QONNX" (qonnx's executor)."""
        return "QONNX" if self.qonnx_model is not None else "PyTorch"

    def reference(self, x) -> np.ndarray:
        """The source model's float outputs (n, classes) for integer pixels ``x``: torch (eval, float64)
        or the QONNX graph in qonnx's executor."""
        x = np.asarray(x).reshape((len(x),) + tuple(self.graph.input.shape))
        if self.qonnx_model is not None:
            return self.qonnx_model.forward(x)
        return torch_forward(self.torch_model, x)

    @property
    def params(self) -> tuple:
        """The compute layers' unit parameters (hw.MVUParams), in graph order."""
        return tuple(layer.mvu for layer in self.plan.layers)

    @property
    def stages(self) -> tuple:
        """The hardware stages' parameters in stream order."""
        return self.plan.stages

    @property
    def pixel_bits(self) -> int:
        return self.graph.input.bits

    def network(self) -> Network:
        return Network(list(self.plan.stages))


@dataclass
class BuildState:
    """What the steps read and write, in the order they fill it."""
    config: BuildConfig
    progress: Progress = lambda step, seconds: None
    on_step: Callable[[str], None] | None = None       # a board build's running step (a spinner)
    torch_model: object = None
    qonnx_model: QonnxModel | None = None
    graph: Graph | None = None
    calibration: np.ndarray | None = None
    overrides: dict | None = None                      # PE/SIMD per layer asked for (file or automatic)
    folding_note: dict | None = None
    plan: NetworkPlan | None = None
    estimate: NetworkEstimate | None = None
    resources: ResourceEstimate | None = None
    staging: Path | None = None
    verification_inputs: np.ndarray | None = None
    report: dict = field(default_factory=dict)
    written: Path | None = None
    notes: list = field(default_factory=list)          # what the user should know about this compile

    @property
    def compiled(self) -> Compiled:
        return Compiled(model_path=str(self.config.model), graph=self.graph, plan=self.plan, estimate=self.estimate,
                        torch_model=self.torch_model, resources=self.resources, family=self.config.estimate_family,
                        folding_note=self.folding_note,
                        board=self.config.board.name if self.config.board is not None else None,
                        qonnx_model=self.qonnx_model)

    def note(self, **entries) -> None:
        self.folding_note = {**(self.folding_note or {}), **entries}


# ---- compile ----

def load_model(state: BuildState) -> None:
    """A bnn2hw model file (.pt), or a QONNX graph (.onnx) with its integer input mapping."""
    cfg = state.config
    if Path(cfg.model).suffix.lower() == ".onnx":
        state.qonnx_model = load_qonnx(cfg.model, 8 if cfg.input_bits is None else cfg.input_bits,
                                       "1/255" if cfg.input_scale is None else cfg.input_scale)
        return
    if cfg.input_bits is not None or cfg.input_scale is not None:
        raise ModelFileError(f"--input-bits and --input-scale describe a QONNX model's input; '{cfg.model}' is a "
                             "bnn2hw model file, whose InputQuant states its own input; leave them out")
    state.torch_model = load(cfg.model)


def import_layers(state: BuildState) -> None:
    if state.qonnx_model is not None:
        state.graph = import_qonnx(state.qonnx_model)
    else:
        model = state.torch_model
        state.graph = import_model(model, model.input_shape)
    if state.config.calibration is not None:
        state.calibration = golden.check_inputs(state.graph, state.config.calibration)


def fold_thresholds(state: BuildState) -> None:
    raw = state.graph
    state.graph = fold_batchnorm(raw, state.calibration)
    if state.qonnx_model is not None:
        check_against_qonnx(state.graph, state.qonnx_model, state.calibration)
        inexact = inexact_scales(raw)
        if inexact:
            state.notes.append(
                f"the graph's scales {', '.join(f'{v:g}' for v in inexact)} are not powers of two: the hardware is "
                "exact with the graph's real-number arithmetic, which qonnx's float32 sums round; they agreed on "
                f"all {QONNX_CHECK_FRAMES} checked inputs, but may differ on others at a rounding tie "
                "(docs/qonnx.md); power-of-two scales make the two equal on every input")


def inexact_scales(graph: Graph) -> list[float]:
    """The activation and weight scales of an imported graph that are not powers of two (its float32
    matrix products then round)."""
    values = set()
    for node in graph.nodes:
        grid = getattr(node, "grid", None)
        if grid is not None and not isinstance(node, InputThreshold):
            values.add(grid.scale / grid.divisor)
        scale = getattr(node, "scale", None)
        if isinstance(node, Dense) and scale is not None:
            values |= {float(v) for v in np.unique(scale)}
    return sorted(v for v in values if v > 0 and not float(np.log2(v)).is_integer())


def check_against_qonnx(graph: Graph, qm: QonnxModel, calibration=None) -> None:
    """The folded graph's classes equal the QONNX graph's in qonnx's executor on QONNX_CHECK_FRAMES
    seeded random inputs (and the calibration inputs); FoldingError naming the first difference."""
    x = np.random.default_rng(0).integers(0, 1 << graph.input.bits, size=(QONNX_CHECK_FRAMES,) + graph.input.shape)
    if calibration is not None:
        x = np.concatenate([np.asarray(calibration).reshape((len(calibration),) + graph.input.shape), x])
    ours, theirs = golden.run(graph, x).classes, qm.forward(x).argmax(axis=1)
    bad = np.flatnonzero(ours != theirs)
    if len(bad):
        raise FoldingError(f"the compiled model disagrees with qonnx's executor on {len(bad)} of {len(x)} inputs "
                           f"(first: input {bad[0]}, class {ours[bad[0]]} against {theirs[bad[0]]}); its scales are "
                           "probably not powers of two, so the graph's float32 sums round: re-export it with "
                           "power-of-two scales (Brevitas: restrict_scaling_type=POWER_OF_TWO)")


def _as_overrides(fold: dict) -> dict:
    return {name: {"pe": f.pe, "simd": f.simd} for name, f in fold.items()}


def _fold_target(cfg: BuildConfig) -> HardwareTarget | None:
    """The units' shape the automatic folding costs: the board's (at its clock) when the estimate is
    the board family's, else the estimate family's own (None)."""
    return cfg.target if cfg.board is not None and cfg.estimate_family == cfg.board.family else None


def choose_folding(state: BuildState) -> None:
    """PE and SIMD per layer from the configuration's one folding source."""
    cfg, source = state.config, state.config.folding
    if isinstance(source, FoldingFile):
        state.overrides = load_folding_file(source.path)
    elif isinstance(source, TargetFps):
        fold = fold_for_fps(state.graph, source.fps, cfg.design_clock_mhz, cfg.estimate_family, _fold_target(cfg))
        state.overrides = _as_overrides(fold)
        state.note(target_fps=source.fps, clock_mhz=cfg.design_clock_mhz)
    elif isinstance(source, MaxLuts):
        state.overrides = _as_overrides(fold_for_budget(state.graph, source.luts, cfg.estimate_family, _fold_target(cfg)))
        state.note(max_luts=source.luts, family=cfg.estimate_family)
    state.graph = apply_folding(state.graph, state.overrides, cfg.lane_budget)


def _board_plan(state: BuildState) -> NetworkPlan:
    """The plan a board build writes: the board family's target, no class index (the board top scans)."""
    return plan_network(state.graph, state.config.target, class_index=False)


def fit_board(state: BuildState) -> None:
    """On a board, the design must fit: a default folding that does not is re-folded to the fastest
    that does (by the estimate); a folding that was asked for stops here with the FitError. Where the
    clock chose the family's pipelined units and a lower one would choose its compact units, the
    error says so."""
    try:
        _fit_board(state)
    except FitError as e:
        cfg = state.config
        fam = family(cfg.board.family)
        if fam.compact is None or cfg.target is fam.compact:
            raise
        raise FitError(f"{e}; or ask for --clock-mhz {fam.compact_max_mhz:g} or less, where the units are "
                       f"built without most pipeline registers ({fam.compact.name}, docs/boards.md)",
                       e.resource, e.need, e.capacity) from None


def _fit_board(state: BuildState) -> None:
    board = state.config.board
    capacity = capacity_for_network(board, state.graph)
    try:
        warnings = fit_check(_board_plan(state), board.family, capacity, device=board.device)
    except FitError:
        if not isinstance(state.config.folding, DefaultFolding):
            raise
        t0 = time.perf_counter()
        fold = refold_to_fit(state.graph, board.family, capacity, device=board.device, class_index=False,
                             hw_target=state.config.target)
        state.progress(f"re-fold to fit the {board.device}", time.perf_counter() - t0)
        state.graph = apply_folding(state.graph, _as_overrides(fold))
        warnings = fit_check(_board_plan(state), board.family, capacity, device=board.device)
        state.folding_note = {"refolded": f"the default folding does not fit the {board.device}; re-folded to the "
                                          "fastest folding that does by the resource estimate (folding.json)"}
    if warnings:
        state.note(fit_warnings=warnings)


def plan_hardware(state: BuildState) -> None:
    """The one hardware plan everything after this step reads: the network of verilog/ (with a board,
    shaped by the board family's target; its board top leaves out the class index). The resource
    estimate describes the network as it is built: without a board the generic one of verilog/, with
    one the network inside the board top."""
    cfg = state.config
    state.plan = plan_network(state.graph, cfg.target)
    state.estimate = estimate_cycles(state.plan, cfg.design_clock_mhz)
    state.resources = estimate_resources(_board_plan(state) if cfg.board is not None else state.plan,
                                         cfg.estimate_family)
    if cfg.board is not None:
        # a frame's bytes on the UART line (header + one byte per pixel) against the network's interval
        divisor = BoardTop.divisor_for(cfg.design_clock_mhz * 1e6, cfg.baud)
        line_cycles = (state.graph.input.size + 1) * 10 * divisor
        if state.estimate.cycles_per_frame > line_cycles:
            state.notes.append(
                f"at {cfg.baud} baud a frame takes {line_cycles:,} cycles on the UART line but the network needs "
                f"{state.estimate.cycles_per_frame:,}: a host that sends frames back to back overruns the "
                "receiver (docs/board_protocol.md); send at most 3 frames ahead of their replies (bnn2hw run "
                "does), lower the baud rate, or fold the network for more frames per second (--target-fps)")


# ---- output ----

def stage_output(state: BuildState) -> None:
    prepare_output(state.config.out_dir)
    state.staging = staging_directory(state.config.out_dir)


def write_verilog(state: BuildState) -> None:
    export_verilog(state.compiled.network(), state.staging / "verilog", state.graph.input.bits)


def write_verification(state: BuildState) -> None:
    """The golden model's scores for the verification inputs (given, or seeded random frames)."""
    graph = state.graph
    x = state.config.inputs
    if x is None:
        x = np.random.default_rng(0).integers(0, graph.input.max_value + 1,
                                              size=(VERIFICATION_FRAMES,) + graph.input.shape)
    x = golden.check_inputs(graph, x)
    state.verification_inputs = x
    result = golden.run(graph, x)
    directory = state.staging / "verification"
    directory.mkdir()
    np.save(directory / "input.npy", x.reshape((len(x),) + graph.input.shape))
    np.save(directory / "expected_output.npy", result.scores)
    (state.staging / "folding.json").write_text(json.dumps(folding_file_dict(graph, state.folding_note), indent=2)
                                                + "\n")
    state.report = report_dict(state.compiled)
    if state.notes:
        state.report["notes"] = list(state.notes)


def simulate_board_frames(state: BuildState) -> None:
    """Cycles per frame and latency measured in Amaranth's simulator on free-running verification
    frames, checked bit-exact against the golden model, scores and classes. It is the network of
    verilog/, with its class index; inside the board top the class comes from the top's own scan
    (rtl_tests/test_board_top_rtl.py checks that), and nothing else differs, timing included."""
    x = state.verification_inputs[:MEASURE_FRAMES]
    if len(x) < 2:
        x = np.concatenate([x, x])
    run = simulate_compiled(state.compiled, x, "amaranth")
    if run.mismatches:
        raise SimulationError(f"the Amaranth simulation disagrees with the golden model on {run.mismatches} of "
                              f"{len(x)} frames; this is a bnn2hw bug, please report it with the model file")
    state.report["simulation"] = {"simulator": "amaranth", "frames": len(x), "mismatches": 0,
                                  "cycles_per_frame": run.cycles_per_frame, "latency_cycles": run.latency_cycles}


def build_bitstream(state: BuildState) -> None:
    """Yosys, nextpnr and the packer on the board top around the planned network, into board/."""
    cfg = state.config
    build = build_board(state.plan.stages, cfg.board, state.staging / "board", clock_mhz=cfg.clock_mhz,
                        baud=cfg.baud, progress=state.progress, on_step=state.on_step, failed_logs=cfg.failed_logs)
    names = [s.name for s in state.plan.stage_plans]
    state.report["board"] = board_section(build, names, state.staging,
                                          state.report["simulation"]["cycles_per_frame"])


def write_reports(state: BuildState) -> None:
    state.report["chart"] = "report.png"
    write_chart(state.report, state.staging / "report.png")
    write_markdown(state.report, state.staging / "report.md")
    (state.staging / "report.json").write_text(json.dumps(state.report, indent=2) + "\n")


def commit(state: BuildState) -> None:
    commit_output(state.staging, state.config.out_dir)
    state.written, state.staging = state.config.out_dir, None


#: (progress label, step) in order; a label of None reports nothing (the step is instant or reports itself).
COMPILE_STEPS = (("load model", load_model), ("check layers and import", import_layers),
                 ("fold BatchNorm into thresholds (exhaustive check)", fold_thresholds),
                 ("choose folding (PE, SIMD)", choose_folding))
BOARD_FIT_STEPS = (("check the design fits the board", fit_board),)
PLAN_STEPS = (("plan the hardware and estimate it", plan_hardware),)
OUTPUT_STEPS = ((None, stage_output), ("generate Verilog", write_verilog),
                ("run golden model on verification inputs", write_verification))
BOARD_STEPS = (("simulation of the verification frames (Amaranth)", simulate_board_frames),
               (None, build_bitstream))
REPORT_STEPS = (("write report.md and report.png", write_reports), (None, commit))
