"""One entry point for every simulator: run a compiled model's RTL on inputs, compare with golden."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import golden
from .amaranth_sim import SimResult, measured_timing, run_network
from .tools import SIMULATORS, find_simulator

__all__ = ["SIMULATORS", "RunReport", "simulate_compiled"]


@dataclass(frozen=True)
class RunReport:
    simulator: str
    result: SimResult
    golden: golden.GoldenResult
    mismatches: int                       # frames whose scores or class differ from golden
    cycles_per_frame: int | None          # measured in a free-running run (None with stalls or 1 frame)
    latency_cycles: int | None


def _slowest(est) -> int:
    return max(est.cycles_per_frame, est.latency_cycles or 0)


def simulate_compiled(compiled, x: np.ndarray, simulator: str = "verilator", *, build_dir: str | Path | None = None,
                      stress: bool = False, seed: int = 0) -> RunReport:
    """Run ``compiled`` (see compiler.compile_model) on integer inputs ``x`` in ``simulator``.

    ``stress`` adds random input gaps and output back-pressure (then no timing is measured).
    """
    find_simulator(simulator)      # fail early, with install advice, before generating anything
    x = golden.check_inputs(compiled.graph, x)
    expected = golden.run(compiled.graph, x)
    stream = golden.channel_last(compiled.graph, x)     # the order the input stream carries pixels in
    network = compiled.network()
    if simulator == "amaranth":
        result = run_network(network, stream, compiled.pixel_bits, input_gaps=stress, backpressure=stress, seed=seed)
    else:
        from ..codegen.export import export_verilog
        from .cocotb_runner import run_rtl
        last = network.head
        with tempfile.TemporaryDirectory(prefix="bnn2hw-sim-") as scratch:
            work = Path(build_dir) if build_dir is not None else Path(scratch)
            verilog = export_verilog(network, work / "verilog", compiled.pixel_bits)
            result = run_rtl(verilog, stream, compiled.pixel_bits, last.n_out, last.score_width, last.class_width,
                             simulator=simulator, build_dir=work / f"sim_{simulator}",
                             input_gaps=stress, backpressure=stress, seed=seed,
                             max_idle_cycles=4 * _slowest(compiled.estimate) + 100_000,
                             beats_per_frame=network.input_beats)
    mismatches = int(np.sum(np.any(result.scores != expected.scores, axis=1) | (result.classes != expected.classes)))
    cpf = lat = None
    if not stress and len(x) >= 2:
        cpf, lat = measured_timing(result)
    elif not stress:
        lat = result.out_cycles[0] - result.in_cycles[0]
    return RunReport(simulator=simulator, result=result, golden=expected, mismatches=mismatches,
                     cycles_per_frame=cpf, latency_cycles=lat)
