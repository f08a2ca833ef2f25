"""Run an exported ``bnn2hw_top.v`` in Icarus Verilog or Verilator through cocotb.

The bench (:mod:`bnn2hw.sim.cocotb_bench`) runs in the simulator's embedded Python; inputs and
parameters reach it as files in ``build_dir`` and its results come back as an ``.npz`` file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from ..errors import SimulationError
from .amaranth_sim import SimResult
from .cocotb_bench import PARAMS_ENV
from .cocotb_streams import stream_port_names
from .tools import find_simulator

__all__ = ["run_rtl", "run_cocotb"]

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_LOG_TAIL = 15
# cocotb makes every internal signal of a Verilator model public, which keeps Verilator from optimising
# them away and makes the C++ about 4x larger and slower to compile; the bench needs only the ports.
#
# Icarus: Yosys writes Verilog-2005 and starts every `always @*` block at time 0 through a `reg … = 0`
# declaration, which Verilog-2005 runs as an assignment at time 0. cocotb compiles with -g2012, where
# declaration initializers run before any process and so wake no block: a block whose inputs never
# change then keeps its X (seen: a window unit's row counter stuck at X, the design hanging after two
# frames). A later -g flag wins, so -g2005 restores the semantics the file was written for.
_BUILD_ARGS = {"verilator": ["--no-public-flat-rw", "--public-depth", "1"], "icarus": ["-g2005"]}


@contextlib.contextmanager
def _environment(changes: dict[str, str]):
    """Apply ``changes`` to ``os.environ`` and make this package importable from the simulator's
    Python (cocotb passes ``sys.path`` on as its PYTHONPATH); undo both afterwards."""
    saved = {key: os.environ.get(key) for key in changes}
    saved_path = list(sys.path)
    os.environ.update(changes)
    sys.path.insert(0, _PACKAGE_ROOT)
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _log_tail(log: Path) -> str:
    """The lines of a tool log that explain a failure: errors and (fatal) Verilator warnings if any,
    else its last lines."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    errors = [ln for ln in lines if ("error" in ln.lower() or ln.startswith("%Warning") or "FAIL" in ln)
              and not ln.strip().startswith(("raise ", "File ", "Traceback"))]
    return "\n".join((errors or lines)[-_LOG_TAIL:]).strip() or "(the tool printed nothing)"


def _failure_messages(results_xml: Path) -> list[str]:
    if not results_xml.is_file():
        return []
    root = ElementTree.parse(results_xml).getroot()
    return [node.get("message", "").strip() for node in root.iter() if node.tag in ("failure", "error")]


def _unoptimized_make(env: dict[str, str]) -> dict[str, str]:
    """Verilator's C++ at -O0: about 35 % less build time, for short simulations (the tests)."""
    flags = env.get("MAKEFLAGS", os.environ.get("MAKEFLAGS", ""))
    return {**env, "MAKEFLAGS": f"{flags}{'' if '--' in flags.split() else ' --'} OPT_FAST=-O0 OPT_SLOW=-O0 "
                                "OPT_GLOBAL=-O0"}


def run_cocotb(verilog_path, top: str, test_module: str, *, simulator: str, build_dir: Path, env: dict[str, str],
               extra_env: dict[str, str], results: Path) -> None:
    """Build ``verilog_path`` (top module ``top``) in ``simulator`` and run the cocotb bench ``test_module``
    in ``build_dir``; the bench writes ``results``. Raises :class:`SimulationError` with the tool's own
    lines if the build fails, or the bench's failure messages if it fails or writes no results."""
    from cocotb_tools.runner import get_runner

    results_xml, build_log, test_log = build_dir / "results.xml", build_dir / "build.log", build_dir / "test.log"
    for stale in (results, results_xml):
        stale.unlink(missing_ok=True)
    with _environment(env):
        runner = get_runner(simulator)
        runner.log.disabled = True      # its messages duplicate the SimulationError raised below
        try:
            runner.build(sources=[Path(verilog_path).resolve()], hdl_toplevel=top, build_dir=build_dir,
                         timescale=("1ns", "1ps"), always=True, log_file=build_log,
                         build_args=_BUILD_ARGS.get(simulator, []))
        except (RuntimeError, SystemExit):
            raise SimulationError(f"{simulator} could not compile {verilog_path}:\n{_log_tail(build_log)}") from None
        try:
            runner.test(hdl_toplevel=top, test_module=test_module, build_dir=build_dir, test_dir=build_dir,
                        results_xml=str(results_xml), log_file=test_log,
                        # cocotb would otherwise rewrite every imported module (numpy, torch) for
                        # pytest-style assertion messages: a several times slower simulator start
                        extra_env={**extra_env, "COCOTB_REWRITE_ASSERTION_FILES": ""})
        except (RuntimeError, SystemExit):
            pass    # judged below from the results files and the log
    failures = [m for m in _failure_messages(results_xml) if m]
    if failures or not results.is_file():
        detail = "\n".join(failures) if failures else _log_tail(test_log)
        raise SimulationError(f"the {simulator} simulation of {verilog_path} failed:\n{detail}")


def run_rtl(verilog_path, inputs, pixel_bits: int, n_classes: int, score_width: int, class_width: int, *,
            simulator: str, build_dir, input_gaps: bool = False, backpressure: bool = False, seed: int = 0,
            top: str = "bnn2hw_top", max_idle_cycles: int = 1_000_000, beats_per_frame: int = 1,
            quick_build: bool = False, expected=None) -> SimResult:
    """Simulate the Verilog top on ``inputs`` (n, features) integer pixels in stream order with
    ``simulator`` ("icarus" or "verilator"), each frame sent as ``beats_per_frame`` beats (one pixel each
    for a convolutional network); return outputs and handshake cycles like :func:`run_network`.

    ``quick_build`` compiles Verilator's model without C++ optimisation (faster to build, slower to run).
    ``build_dir`` must not be shared between concurrent calls. The run fails with
    :class:`SimulationError` if no handshake happens for ``max_idle_cycles`` cycles, and, given
    ``expected`` outputs (anything with ``scores`` (n, classes) and ``classes`` (n,), such as
    :func:`bnn2hw.golden.run`'s result), if an output frame differs from them (the bench's scoreboard
    checks each as it comes and names the first that differ, with their cycles).
    """
    env = find_simulator(simulator)
    if quick_build and simulator == "verilator":
        env = _unoptimized_make(env)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    inputs = np.asarray(inputs, dtype=np.int64).reshape(len(inputs), -1)
    files = {name: build_dir / f"bench_{name}"
             for name in ("inputs.npy", "expected.npz", "results.npz", "params.json")}
    np.save(files["inputs.npy"], inputs)
    files["expected.npz"].unlink(missing_ok=True)
    if expected is not None:
        np.savez(files["expected.npz"], scores=np.asarray(expected.scores, dtype=np.int64),
                 classes=np.asarray(expected.classes, dtype=np.int64))
    files["params.json"].write_text(json.dumps({
        "inputs": str(files["inputs.npy"]), "results": str(files["results.npz"]), "n": len(inputs),
        "expected": str(files["expected.npz"]) if expected is not None else None,
        "ports": {member: stream_port_names(member) for member in ("i", "o")},
        "pixel_bits": pixel_bits, "n_classes": n_classes, "score_width": score_width,
        "class_width": class_width, "input_gaps": input_gaps, "backpressure": backpressure, "seed": seed,
        "max_idle_cycles": max_idle_cycles, "beats_per_frame": beats_per_frame}))

    run_cocotb(verilog_path, top, "bnn2hw.sim.cocotb_bench", simulator=simulator, build_dir=build_dir, env=env,
               extra_env={PARAMS_ENV: str(files["params.json"])}, results=files["results.npz"])
    with np.load(files["results.npz"]) as r:
        return SimResult(scores=r["scores"], classes=r["classes"], in_cycles=tuple(int(c) for c in r["in_cycles"]),
                         out_cycles=tuple(int(c) for c in r["out_cycles"]))
