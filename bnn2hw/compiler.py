"""The compile flow as plain functions: model file → folded graph → hardware → output directory.

The CLI is a thin layer over these; each step reports its name and duration through ``progress``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__, golden
from .codegen import constant_widths, layer_params, stage_bounds, stage_params
from .codegen.export import export_verilog
from .errors import Bnn2hwError, FitError, FoldingError, InputDataError
from .frontend import import_model
from .hw import MVUParams, Network
from .hw.target import target_for
from .io import load
from .ir import Graph, accumulator_range
from .passes.folding import DEFAULT_LANE_BUDGET
from .passes import NetworkEstimate, apply_folding, estimate, fold_batchnorm, load_folding_file

__all__ = ["Compiled", "compile_model", "fold_model", "write_output_dir", "load_inputs", "DEFAULT_CLOCK_MHZ", "Progress"]

DEFAULT_CLOCK_MHZ = 100.0
#: FPGA family of the resource estimate when no board or family is given (LUT6, as FINN's numbers).
DEFAULT_FAMILY = "xilinx"
_MARKER = "bnn2hw-output"

Progress = Callable[[str, float], None]


def _quiet(step: str, seconds: float) -> None:
    pass


@dataclass(frozen=True)
class Compiled:
    """Everything a compile produces in memory."""
    model_path: str
    graph: Graph                     # folded, with PE/SIMD per layer
    params: tuple[MVUParams, ...]    # one per compute layer, in graph order
    stages: tuple                    # the hardware stages (codegen.stage_params), MVUs included
    estimate: NetworkEstimate
    torch_model: object              # the loaded BinaryNet, for reference runs
    folding_note: dict | None = None  # how the folding was chosen (target, budget, re-fold), for folding.json
    resources: object = None         # passes.resources estimate for ``family``, when one was asked for

    @property
    def pixel_bits(self) -> int:
        return self.graph.input.bits

    def network(self) -> Network:
        return Network(list(self.stages))


class _Steps:
    def __init__(self, progress: Progress):
        self._progress = progress

    def run(self, name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        self._progress(name, time.perf_counter() - t0)
        return result


def fold_model(model_path: str | Path, *, calibration=None, progress: Progress = _quiet):
    """Load, check and fold a model: (the torch model, the folded graph the golden model runs)."""
    steps = _Steps(progress)
    model = steps.run("load model", load, model_path)
    graph = steps.run("check layers and import", import_model, model, model.input_shape)
    if calibration is not None:
        calibration = golden.check_inputs(graph, calibration)
    graph = steps.run("fold BatchNorm into thresholds (exhaustive check)", fold_batchnorm, graph, calibration)
    return model, graph


def compile_model(model_path: str | Path, *, folding_file: str | Path | None = None, calibration=None,
                  clock_mhz: float = DEFAULT_CLOCK_MHZ, progress: Progress = _quiet, target_fps: float | None = None,
                  max_luts: int | None = None, board=None, family: str | None = None) -> Compiled:
    """Load, check, fold and estimate a model; no files are written.

    The folding is the default (passes/folding.py), a folding file, the cheapest that reaches
    ``target_fps`` at ``clock_mhz``, or the fastest within ``max_luts`` (passes/autofold.py); only one
    of these may be asked for. With a ``board`` the design must fit it: the default folding is
    re-folded to fit if it does not, a requested one stops here with a FitError.
    """
    from .passes import autofold, resources
    chosen = [name for name, v in (("--folding", folding_file), ("--target-fps", target_fps),
                                   ("--max-luts", max_luts)) if v is not None]
    if len(chosen) > 1:
        raise FoldingError(f"{' and '.join(chosen)} both choose the folding; give only one of them")
    family = family or (board.family if board is not None else None)
    steps = _Steps(progress)
    model, graph = fold_model(model_path, calibration=calibration, progress=progress)
    note = None
    if folding_file is not None:
        overrides = load_folding_file(folding_file)
    elif target_fps is not None:
        fold = steps.run("choose folding for the target frame rate", autofold.fold_for_fps, graph, target_fps,
                         clock_mhz, family)
        overrides = _as_overrides(fold)
        note = {"target_fps": target_fps, "clock_mhz": clock_mhz}
    elif max_luts is not None:
        fold = steps.run("choose folding for the LUT budget", autofold.fold_for_budget, graph, max_luts,
                         family or "xilinx")
        overrides = _as_overrides(fold)
        note = {"max_luts": max_luts, "family": family or "xilinx"}
    else:
        overrides = None
    budget = board.lane_budget if board is not None else DEFAULT_LANE_BUDGET
    graph = steps.run("choose folding (PE, SIMD)", apply_folding, graph, overrides, budget)
    if board is not None:
        from .board.build import capacity_for_network
        capacity = capacity_for_network(board, graph)
        try:
            warnings = autofold.fit_check(graph, board.family, capacity, device=board.device)
        except FitError:
            if chosen:
                raise
            fold = steps.run(f"re-fold to fit the {board.device}", autofold.refold_to_fit, graph, board.family,
                             capacity, device=board.device)
            graph = apply_folding(graph, _as_overrides(fold))
            warnings = autofold.fit_check(graph, board.family, capacity, device=board.device)
            note = {"refolded": f"the default folding does not fit the {board.device}; re-folded to the fastest "
                                "folding that does by the resource estimate (folding.json)"}
        if warnings:
            note = {**(note or {}), "fit_warnings": warnings}
    # Units are shaped for the board's family (hw/target.py); without a board, the generic shape.
    target = target_for(board.family) if board is not None else None
    params = tuple(layer_params(graph, target))
    stages = tuple(stage_params(graph, list(params)))
    est = estimate(graph, clock_mhz, constant_widths(list(params), graph), stage_bounds(graph, list(stages)),
                   unit_cycles=params[0].pipeline_cycles)
    res = resources.estimate_resources(graph, family or DEFAULT_FAMILY, class_index=board is None)
    return Compiled(model_path=str(model_path), graph=graph, params=params, stages=stages, estimate=est,
                    torch_model=model, folding_note=note, resources=res)


def _as_overrides(fold: dict) -> dict:
    return {name: {"pe": f.pe, "simd": f.simd} for name, f in fold.items()}


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


def report_dict(compiled: Compiled) -> dict:
    est = compiled.estimate
    layers = []
    for node, layer, p in zip(compiled.graph.compute_nodes, est.layers, compiled.params):
        entry = {
            "name": layer.name, "kind": layer.kind, "in_features": layer.in_features,
            "out_features": layer.out_features, "input": layer.input, "pe": layer.pe, "simd": layer.simd,
            "neuron_folds": layer.neuron_folds, "synapse_folds": layer.synapse_folds,
            "positions": layer.positions, "cycles_per_frame": layer.cycles_per_frame,
            "weight_bits": layer.weight_bits,
            "weight_rom_bits": layer.weight_rom_bits,
        }
        if layer.kind in ("threshold", "conv"):
            entry.update(threshold_bits=layer.constant_bits, threshold_width=p.threshold_width,
                         flipped_channels=int(node.flipped.sum()),
                         constant_channels=int(_constant_channels(node)),
                         tie_corrections=node.tie_corrections)
        else:
            entry.update(score_bits=p.score_width, affine=node.has_affine, affine_bits=layer.constant_bits,
                         frac_bits=node.frac_bits)
        if compiled.resources is not None:
            entry["resources"] = _unit_resources(compiled.resources, layer.name, f"{layer.name} window")
        layers.append(entry)
    extra = {}
    if compiled.resources is not None:
        res = compiled.resources
        extra["resources"] = {**res.totals_json(), "bram": res.bram_blocks,
                              "stream_units": {label: _unit_resources(res, label)
                                               for label, _ in est.stream_units if not label.endswith(" window")},
                              "dsp_layers": [u.name for u in res.units if u.dsp]}
    return {
        "generator": _MARKER, "bnn2hw_version": __version__, "model": compiled.model_path,
        "input": {"shape": list(compiled.graph.input.shape), "bits": compiled.graph.input.bits},
        "classes": compiled.graph.num_classes,
        "network": {"cycles_per_frame": est.cycles_per_frame, "latency_cycles": est.latency_cycles,
                    "clock_mhz": est.clock_mhz, "frames_per_second": est.frames_per_second,
                    "bottleneck": est.bottleneck, "stream_units": [list(s) for s in est.stream_units],
                    "weight_bits": sum(l.weight_bits for l in est.layers),
                    "threshold_bits": sum(l.constant_bits for l in est.layers)},
        "layers": layers,
        **extra,
    }


def _unit_resources(res, *names: str) -> dict:
    """Estimated LUTs, FFs, block RAMs and DSPs of the units ``names`` together (those that exist)."""
    units = [u for u in res.units if u.name in names]
    return {"luts": round(sum(u.luts for u in units)), "ffs": sum(u.ffs for u in units),
            "bram": sum(u.bram_blocks for u in units), "dsp": sum(u.dsp for u in units)}


def _constant_channels(node) -> int:
    """Channels whose threshold lies outside the accumulator range (γ = 0, or saturated)."""
    lo, hi = accumulator_range(node.input_kind, node.in_features, node.in_bits)
    return int(np.sum((node.thresholds <= lo) | (node.thresholds > hi)))


def folding_dict(graph: Graph) -> dict:
    return {name: {"pe": f.pe, "simd": f.simd} for name, f in graph.folding}


def folding_file_dict(graph: Graph, note: dict | None = None) -> dict:
    """folding.json: the layers' PE and SIMD (what ``--folding`` reads back), and how they were chosen."""
    if not note:
        return folding_dict(graph)
    return {"_comment": "PE and SIMD per layer; edit and pass back with --folding", **note,
            "layers": folding_dict(graph)}


def _write_reports(report: dict, directory: Path) -> None:
    from .report import write_chart, write_markdown
    write_chart(report, directory / "report.png")
    write_markdown(report, directory / "report.md")


def _prepare_target(out_dir: Path) -> None:
    if out_dir.exists():
        report = out_dir / "report.json"
        ours = False
        if report.is_file():
            try:
                ours = json.loads(report.read_text()).get("generator") == _MARKER
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                ours = False
        if not ours:
            raise Bnn2hwError(f"output directory '{out_dir}' exists and was not written by bnn2hw; "
                              "choose another --out or remove it yourself")


def write_output_dir(compiled: Compiled, out_dir: str | Path, verification_inputs: np.ndarray,
                     progress: Progress = _quiet, extra: Callable[[Path, dict], None] | None = None,
                     folding_note: dict | None = None) -> Path:
    """Write verilog/, report.json, folding.json and verification/ into ``out_dir``, all or nothing.

    Everything is built in a temporary sibling directory and moved into place at the end, so a failure
    leaves no half-written output; an existing directory is only replaced if bnn2hw wrote it.
    ``extra(directory, report)`` runs last, in the temporary directory, and may add files and report
    entries (the board build does); ``folding_note`` is stored beside the layers in folding.json.
    """
    out_dir = Path(out_dir)
    _prepare_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    steps = _Steps(progress)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        network = compiled.network()
        steps.run("generate Verilog", export_verilog, network, tmp / "verilog", compiled.pixel_bits)
        x = golden.check_inputs(compiled.graph, verification_inputs)
        result = steps.run("run golden model on verification inputs", golden.run, compiled.graph, x)
        (tmp / "verification").mkdir()
        np.save(tmp / "verification" / "input.npy", x.reshape((len(x),) + compiled.graph.input.shape))
        np.save(tmp / "verification" / "expected_output.npy", result.scores)
        (tmp / "folding.json").write_text(json.dumps(folding_file_dict(compiled.graph, folding_note), indent=2)
                                          + "\n")
        report = report_dict(compiled)
        if extra is not None:
            extra(tmp, report)
        report["chart"] = "report.png"
        steps.run("write report.md and report.png", _write_reports, report, tmp)
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
