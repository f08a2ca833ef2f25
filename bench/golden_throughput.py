"""Golden-model throughput next to torch's float forward on the same model and batch.

Both run in this process on the same inputs; the ratio is what matters (absolute numbers depend on
the machine). Usage: python bench/golden_throughput.py [MODEL.pt] [--batch N] [--repeats R] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from bnn2hw import golden
from bnn2hw.flow import compile_model

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default=str(ROOT / "models" / "digits_mlp.pt"))
    ap.add_argument("--batch", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()

    compiled = compile_model(args.model)
    graph, model = compiled.graph, compiled.torch_model
    rng = np.random.default_rng(0)
    x = rng.integers(0, graph.input.max_value + 1, size=(args.batch,) + graph.input.shape)
    xt32 = torch.from_numpy(x.astype(np.float32))
    xt64 = torch.from_numpy(x.astype(np.float64))
    model32 = copy.deepcopy(model).float().eval()
    model64 = copy.deepcopy(model).double().eval()

    def run_torch32():
        with torch.no_grad():
            model32(xt32)

    def run_torch64():
        with torch.no_grad():
            model64(xt64)

    def run_golden():
        golden.run(graph, x)

    run_golden(); run_torch32(); run_torch64()           # warm-up
    t_golden = best_of(run_golden, args.repeats)
    t32 = best_of(run_torch32, args.repeats)
    t64 = best_of(run_torch64, args.repeats)
    assert np.array_equal(golden.run(graph, x).classes,
                          model64(xt64).argmax(1).numpy()), "golden and torch disagree: not a fair benchmark"
    rows = {
        "model": str(args.model), "batch": args.batch, "torch_threads": torch.get_num_threads(),
        "golden_frames_per_s": args.batch / t_golden,
        "torch_float32_frames_per_s": args.batch / t32,
        "torch_float64_frames_per_s": args.batch / t64,
        "golden_over_torch_float32": t32 / t_golden,
        "golden_over_torch_float64": t64 / t_golden,
    }
    print(f"model {args.model}, batch {args.batch}, best of {args.repeats} (torch threads: {torch.get_num_threads()})")
    print(f"  golden (bit-packed numpy) : {rows['golden_frames_per_s']:>12,.0f} frames/s")
    print(f"  torch float32 forward     : {rows['torch_float32_frames_per_s']:>12,.0f} frames/s")
    print(f"  torch float64 forward     : {rows['torch_float64_frames_per_s']:>12,.0f} frames/s")
    print(f"  ratio golden / torch fp32 : {rows['golden_over_torch_float32']:.2f}x")
    print(f"  ratio golden / torch fp64 : {rows['golden_over_torch_float64']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
