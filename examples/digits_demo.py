"""The quick-start job: compile the shipped digits model and run the whole test split in RTL.

Prints PyTorch's accuracy next to the hardware's, the number of frames where the RTL and the golden
model disagree (must be 0), and the measured cycles per frame next to the estimate.

    python examples/digits_demo.py [--model models/digits_mlp.pt] [--simulator verilator] [--out build/digits_mlp]

The same steps on the command line:

    bnn2hw compile models/digits_mlp.pt --out build/digits_mlp
    bnn2hw simulate models/digits_mlp.pt --inputs X.npy --labels y.npy --simulator verilator
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bnn2hw.flow import BuildConfig, build  # noqa: E402
from bnn2hw.data import load_digits_split  # noqa: E402
from bnn2hw.errors import Bnn2hwError  # noqa: E402
from bnn2hw.reference import torch_forward  # noqa: E402
from bnn2hw.sim.run import simulate_compiled  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "digits_mlp.pt")
    ap.add_argument("--simulator", default="verilator", choices=["verilator", "icarus", "amaranth"])
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "digits_mlp")
    args = ap.parse_args()

    split = load_digits_split()
    x, y = split.x_test, split.y_test
    step = lambda text: print(f"• {text}", flush=True)

    step(f"compiling {args.model.relative_to(ROOT) if args.model.is_relative_to(ROOT) else args.model}")
    state = build(BuildConfig(model=args.model, out_dir=args.out, inputs=x, calibration=split.x_train))
    compiled, net = state.compiled, state.report["network"]
    step(f"wrote {args.out} ({len(compiled.params)} layers, {net['weight_bits']} weight bits, "
         f"{net['threshold_bits']} threshold bits)")

    step(f"simulating the {len(x)} test images in {args.simulator}")
    t0 = time.perf_counter()
    run = simulate_compiled(compiled, x, args.simulator)
    seconds = time.perf_counter() - t0

    torch_classes = torch_forward(compiled.torch_model, x).argmax(axis=1)
    print()
    print(f"  PyTorch (eval, float64) accuracy : {np.mean(torch_classes == y):.2%}")
    print(f"  hardware ({args.simulator} RTL) accuracy : {np.mean(run.result.classes == y):.2%}")
    print(f"  RTL vs golden model mismatches   : {run.mismatches} of {len(x)} frames")
    print(f"  RTL vs PyTorch class mismatches  : {int(np.sum(run.result.classes != torch_classes))}")
    print(f"  cycles per frame                 : {run.cycles_per_frame} measured, "
          f"{compiled.estimate.cycles_per_frame} estimated")
    print(f"  latency                          : {run.latency_cycles} cycles measured, "
          f"{compiled.estimate.latency_cycles} estimated")
    print(f"  throughput at {compiled.estimate.clock_mhz:g} MHz            : "
          f"{compiled.estimate.frames_per_second:,.0f} frames/s  (simulation took {seconds:.1f} s)")
    ok = run.mismatches == 0 and np.array_equal(run.result.classes, torch_classes)
    print("\nOK: hardware is bit-exact with the model" if ok else "\nFAILED: hardware and model disagree")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Bnn2hwError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
