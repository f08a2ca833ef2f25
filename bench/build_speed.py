"""Build speed of CNV W1A1 at FINN's folding (issue 17): the fold step and the Verilog export, timed.

    python bench/build_speed.py [--compare /path/to/other/checkout] [--repeat 1] [--json out.json]

Times, in one process per checkout: ``compile_model`` (load, fold with its exhaustive threshold
check and the head's check on 2048+ golden-model images, plan, estimate), the golden model alone on
those images, and the Verilog export with the export cache off, then a cached export (a second
export of the same plan). With ``--compare`` the same measurement runs on another checkout's
bnn2hw (e.g. main before the change) in a subprocess, one after the other under the same load, and
the ratios are printed. ``os.cpu_count()`` and the load average are recorded with the numbers.
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

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]


def measure(root: Path, repeat: int) -> dict:
    """Time the steps with ``root``'s bnn2hw (imported here, in this process)."""
    sys.path[:0] = [str(root), str(root / "examples")]
    import numpy as np
    import bnn2hw
    from bnn2hw import golden
    from bnn2hw.codegen.export import export_verilog
    from bnn2hw.flow import compile_model
    from cnv_w1a1 import INPUT_SHAPE, random_cnv
    assert Path(bnn2hw.__file__).resolve().is_relative_to(root.resolve()), bnn2hw.__file__
    seconds: dict = {}
    with tempfile.TemporaryDirectory(prefix="bnn2hw-speed-") as scratch:
        scratch = Path(scratch)
        os.environ["BNN2HW_CACHE_DIR"] = "off"
        model = scratch / "cnv_w1a1.pt"
        bnn2hw.save(random_cnv(0), model, input_shape=INPUT_SHAPE)
        folding = ROOT / "models" / "cnv_w1a1_folding.json"
        for r in range(repeat):
            t0 = time.perf_counter()
            compiled = compile_model(model, folding_file=folding)
            seconds.setdefault("compile", []).append(time.perf_counter() - t0)
            x = np.random.default_rng(0).integers(0, 256, size=(2048,) + INPUT_SHAPE)
            t0 = time.perf_counter()
            golden.run(compiled.graph, x)
            seconds.setdefault("golden_2048", []).append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            verilog = export_verilog(compiled.network(), scratch / f"v{r}", compiled.pixel_bits)
            seconds.setdefault("export", []).append(time.perf_counter() - t0)
        record = {"verilog_bytes": verilog.stat().st_size}
        os.environ["BNN2HW_CACHE_DIR"] = str(scratch / "cache")
        try:
            from bnn2hw.codegen import cache  # noqa: F401  (absent before the cache existed)
        except ImportError:
            pass
        else:
            export_verilog(compiled.network(), scratch / "fill", compiled.pixel_bits)
            t0 = time.perf_counter()
            export_verilog(compiled.network(), scratch / "hit", compiled.pixel_bits)
            seconds["export_cached"] = [time.perf_counter() - t0]
            assert (scratch / "hit" / verilog.name).read_bytes() == verilog.read_bytes()
    record["seconds"] = {k: round(min(v), 2) for k, v in seconds.items()}
    return record


def run_in(root: Path, repeat: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([sys.executable, str(HERE), "--_measure", str(root), "--repeat", str(repeat), "--json", f.name],
                       check=True)
        return json.loads(Path(f.name).read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", type=Path, help="another checkout to measure the same way (e.g. main)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per step; the fastest is kept")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--_measure", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._measure is not None:
        args.json.write_text(json.dumps(measure(args._measure, args.repeat)))
        return 0
    runs = {}
    for name, root in (("before", args.compare), ("after", ROOT)):
        if root is None:
            continue
        load = os.getloadavg()[0]
        runs[name] = {"root": str(root), "load_before": round(load, 2), **run_in(root, args.repeat)}
        print(f"{name} ({root}, load {load:.1f}): {runs[name]['seconds']}", flush=True)
    record = {"model": "FINN CNV W1A1, random weights (seed 0), models/cnv_w1a1_folding.json",
              "cpu_count": os.cpu_count(), "runs": runs}
    if "before" in runs:
        b, a = runs["before"]["seconds"], runs["after"]["seconds"]
        record["speedup"] = {k: round(b[k] / a[k], 2) for k in b if k in a and a[k] > 0}
        print("speed-up (before / after):", record["speedup"])
    if args.json:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
