"""Fixtures of the RTL tests: simulators (skipped at collection when not installed, by the root
conftest.py) and compiled random models."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np
import pytest
from torch import nn

from bnn2hw.codegen import build_network
from bnn2hw.plan import plan_network
from bnn2hw.codegen.export import export_verilog
from bnn2hw.frontend import import_model
from bnn2hw.ir import Graph
from bnn2hw.passes import apply_folding, fold_batchnorm
from bnn2hw.sim.amaranth_sim import SimResult
from bnn2hw.sim.cocotb_runner import run_rtl
from bnn2hw.testing import RandomModelSpec, build_random_model, random_folding, random_inputs, random_spec

RTL_SIMULATORS = ("icarus", "verilator")


@pytest.fixture(params=RTL_SIMULATORS)
def simulator(request) -> str:
    """Each external simulator in turn; the root conftest.py skips, at collection, a test whose
    simulator is not installed."""
    return request.param


@dataclass(frozen=True)
class CompiledModel:
    spec: RandomModelSpec
    model: nn.Module
    x: np.ndarray
    graph: Graph
    verilog: Path

    def simulate(self, simulator: str, build_dir: Path, **kwargs) -> SimResult:
        head = plan_network(self.graph).head
        return run_rtl(self.verilog, self.x, self.spec.input_bits, head.n_out, head.score_width, head.class_width,
                       simulator=simulator, build_dir=build_dir, quick_build=True, **kwargs)


@pytest.fixture
def compile_model(tmp_path):
    """Factory: random model ``seed`` → folded graph, inputs and exported Verilog under ``tmp_path``.

    ``folding`` is "random" (bnn2hw.testing.random_folding) or "default" (the compiler's own choice).
    """
    def compile_(seed: int, folding: str = "random", n: int = 32) -> CompiledModel:
        spec = random_spec(seed)
        model = build_random_model(spec)
        x = random_inputs(spec, n=n, seed=seed)
        g0 = fold_batchnorm(import_model(model, (spec.widths[0],)), calibration=x)
        graph = apply_folding(g0, random_folding(g0, seed)) if folding == "random" else apply_folding(g0)
        verilog = export_verilog(build_network(graph), tmp_path / "rtl", spec.input_bits)
        return CompiledModel(spec, model, x, graph, verilog)
    return compile_


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Verilator compiles C++ for every model (about 25 s each on 2 cores): in the default tier it runs
    only on the seeds a test module lists in ``VERILATOR_DEFAULT_SEEDS``, the others move to the slow
    tier (``make test-slow``). Icarus runs every seed in every tier. A module may also list
    (simulator, name) pairs in ``SLOW_CASES`` for the slow tier."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        slow = getattr(item.module, "SLOW_CASES", ())          # (simulator, name) pairs a module puts in the slow tier
        if callspec is not None and (callspec.params.get("simulator"), callspec.params.get("name")) in slow:
            item.add_marker(pytest.mark.slow)
            continue
        keep = getattr(item.module, "VERILATOR_DEFAULT_SEEDS", None)
        if (callspec is None or keep is None or callspec.params.get("simulator") != "verilator"
                or "seed" not in callspec.params):
            continue
        if callspec.params["seed"] not in keep:
            item.add_marker(pytest.mark.slow)
