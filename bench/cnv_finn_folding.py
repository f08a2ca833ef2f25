"""FINN's CNV W1A1 with FINN's folding through the whole bnn2hw path, measured.

    python bench/cnv_finn_folding.py [--frames 3] [--synth] [--json docs/cnv_w1a1.json]

Steps (each timed): build the topology with random weights (examples/cnv_w1a1.py), compile it with
models/cnv_w1a1_folding.json, lint the Verilog with Verilator, run ``--frames`` random images through
Verilator (bit-exact against the golden model; cycles per frame measured free-running and set beside
the estimate and FINN's 32,768), and with ``--synth`` synthesise it with Yosys ``synth_ecp5`` (YoWASP's
Yosys from PyPI) and record its cell counts. Writes one JSON record and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

import bnn2hw  # noqa: E402
from bnn2hw.flow import BuildConfig, FoldingFile, build, compile_model  # noqa: E402
from bnn2hw.sim.run import simulate_compiled  # noqa: E402
from bnn2hw.errors import ToolError  # noqa: E402
from bnn2hw.sim.tools import find_simulator  # noqa: E402
from bnn2hw.synth import synthesize  # noqa: E402
from cnv_w1a1 import INPUT_SHAPE, random_cnv  # noqa: E402

FOLDING = ROOT / "models" / "cnv_w1a1_folding.json"
FINN_CYCLES_PER_FRAME = 32_768      # max "Ext Latency" of BNN-PYNQ's cnvW1A1 config.h (L6/L7)


def lint(verilog: Path) -> dict:
    env = {**os.environ, **find_simulator("verilator")}
    proc = subprocess.run(["verilator", "--lint-only", str(verilog)], capture_output=True, text=True, env=env)
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith(("%Warning", "%Error"))]
    return {"returncode": proc.returncode, "warnings": len(warnings), "first": warnings[:5]}


def synth_ecp5(verilog: Path) -> dict:
    """Yosys synth_ecp5 as the board builds and the suites run it (bnn2hw.synth.synthesize: the tools
    from PyPI wherever they are installed, the family's commands); cell counts from its own `stat`."""
    try:
        result = synthesize(verilog, "ecp5", verilog.parent / "synth")
    except ToolError as e:
        return {"ok": False, "error": str(e)}
    log = result.log_path.read_text(errors="replace")
    return {"ok": True, "cells": {k: v for k, v in result.resources.cells.items()
                                  if k.isupper() or k.startswith(("LUT", "TRELLIS"))},
            "errors_in_log": sum("ERROR" in ln for ln in log.splitlines()), "seconds": round(result.seconds, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--synth", action="store_true", help="also run Yosys synth_ecp5 (tens of minutes)")
    ap.add_argument("--json", type=Path, default=None, help="write the record here")
    ap.add_argument("--work", type=Path, default=None, help="keep the build here (default: a temporary folder)")
    args = ap.parse_args()
    record: dict = {"topology": "FINN CNV W1A1, random weights (seed 0)", "folding": str(FOLDING.relative_to(ROOT))}
    with tempfile.TemporaryDirectory(prefix="bnn2hw-cnv-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        seconds = {}

        def timed(name, fn, *a, **k):
            t0 = time.perf_counter()
            result = fn(*a, **k)
            seconds[name] = round(time.perf_counter() - t0, 1)
            print(f"• {name}: {seconds[name]} s", flush=True)
            return result

        model_path = work / "cnv_w1a1.pt"
        timed("build model", lambda: bnn2hw.save(random_cnv(0), model_path, input_shape=INPUT_SHAPE))
        compiled = timed("compile (fold + exhaustive threshold check)", compile_model, model_path, folding_file=FOLDING)
        x = np.random.default_rng(1).integers(0, 256, size=(args.frames,) + INPUT_SHAPE)
        out = work / "build"
        timed("write Verilog and reports", build, BuildConfig(model=model_path, folding=FoldingFile(FOLDING),
                                                              out_dir=out, inputs=x))
        verilog = out / "verilog" / "bnn2hw_top.v"
        record["verilog_bytes"] = verilog.stat().st_size
        record["lint"] = timed("verilator --lint-only", lint, verilog)
        run = timed(f"Verilator: {args.frames} frames", simulate_compiled, compiled, x, "verilator",
                    build_dir=work / "sim")
        record["simulation"] = {"frames": args.frames, "mismatches": run.mismatches,
                                "cycles_per_frame_measured": run.cycles_per_frame,
                                "cycles_per_frame_estimate": compiled.estimate.cycles_per_frame,
                                "latency_cycles_measured": run.latency_cycles,
                                "finn_cycles_per_frame": FINN_CYCLES_PER_FRAME,
                                "bottleneck": compiled.estimate.bottleneck}
        record["layers"] = [{"name": l.name, "pe": l.pe, "simd": l.simd, "cycles_per_frame": l.cycles_per_frame}
                            for l in compiled.estimate.layers]
        record["stream_units"] = [list(s) for s in compiled.estimate.stream_units]
        if args.synth:
            record["synth_ecp5"] = timed("yosys synth_ecp5", synth_ecp5, verilog)
        record["seconds"] = seconds
    sim = record["simulation"]
    print(f"\nlint: {record['lint']['warnings']} warnings (exit {record['lint']['returncode']})")
    print(f"Verilator: {sim['frames']} frames, {sim['mismatches']} mismatches against the golden model")
    print(f"cycles/frame: measured {sim['cycles_per_frame_measured']}, estimate {sim['cycles_per_frame_estimate']}, "
          f"FINN {FINN_CYCLES_PER_FRAME} (ratio {sim['cycles_per_frame_measured'] / FINN_CYCLES_PER_FRAME:.3f}); "
          f"latency {sim['latency_cycles_measured']} cycles")
    if "synth_ecp5" in record:
        print(f"synth_ecp5: {record['synth_ecp5']}")
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    ok = sim["mismatches"] == 0 and record["lint"]["returncode"] == 0 and record["lint"]["warnings"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
