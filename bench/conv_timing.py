"""Measured vs estimated cycles per frame of the 30 random conv models (Amaranth's simulator).

    python bench/conv_timing.py [--lanes 256] [--decoupling-rows 1] [--seeds 0-29]

Each model (bnn2hw.testing.build_random_conv_model) is compiled with the default folding at ``--lanes``
binary lanes and run free-running on 6 frames; the measured interval between outputs is set beside
the estimate (bnn2hw/estimate/cycles.py). ``--decoupling-rows`` overrides the spare line-buffer rows of every
window and pool unit (bnn2hw.plan.DECOUPLING_ROWS) to show what they buy. Prints one row per
model and the number of models whose measurement differs from the estimate.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bnn2hw import golden  # noqa: E402
from bnn2hw.estimate import estimate_cycles  # noqa: E402
from bnn2hw.plan import plan_network  # noqa: E402
from bnn2hw.plan import DECOUPLING_ROWS  # noqa: E402
from bnn2hw.frontend import import_model  # noqa: E402
from bnn2hw.hw import ConvParams, MaxPoolParams, Network  # noqa: E402
from bnn2hw.passes import apply_folding, fold_batchnorm  # noqa: E402
from bnn2hw.sim.amaranth_sim import measured_timing, run_network  # noqa: E402
from bnn2hw.testing import build_random_conv_model  # noqa: E402


def with_rows(stage, rows: int):
    if isinstance(stage, ConvParams):
        return ConvParams(dataclasses.replace(stage.window, extra_rows=rows), stage.mvu)
    if isinstance(stage, MaxPoolParams):
        return dataclasses.replace(stage, extra_rows=rows)
    return stage


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, default=256)
    ap.add_argument("--decoupling-rows", type=int, default=DECOUPLING_ROWS)
    ap.add_argument("--seeds", default="0-29", help="a range like 0-29 or a list like 3,10,13")
    args = ap.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = range(int(lo), int(hi) + 1) if hi else [int(s) for s in args.seeds.split(",")]
    differ = 0
    print(f"| seed | estimate | measured | bottleneck |  (lanes {args.lanes}, decoupling rows {args.decoupling_rows})")
    for seed in seeds:
        model, shape = build_random_conv_model(seed)
        x = np.random.default_rng(seed).integers(0, 1 << model[0].bits, size=(6,) + shape)
        graph = apply_folding(fold_batchnorm(import_model(model, shape)), lane_budget=args.lanes)
        plan = plan_network(graph)
        stages, est = plan.stages, estimate_cycles(plan, 100.0)
        result = run_network(Network([with_rows(s, args.decoupling_rows) for s in stages]),
                             golden.channel_last(graph, x), graph.input.bits)
        if not np.array_equal(result.scores, golden.run(graph, x).scores):
            print(f"seed {seed}: hardware scores differ from the golden model")
            return 1
        measured = measured_timing(result)[0]
        differ += measured != est.cycles_per_frame
        print(f"| {seed} | {est.cycles_per_frame} | {measured} | {est.bottleneck} |", flush=True)
    print(f"{differ} of {len(seeds)} models measured a different cycles per frame than estimated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
