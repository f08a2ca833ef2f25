"""The recipe sweep behind StoMPP's defaults (docs/training.md, "Recipe"): named variants of the
training recipe, each trained on several seeds and scored on a validation split carved from the
training samples (never the test split).

    python bench/stompp_recipe.py --dataset digits --depth 8 --seeds 3 --variants base,lr0.1,lr0.1-end1
    python bench/stompp_recipe.py --list

Each finished run is appended to the JSON file at once (``--json``, default docs/stompp_recipe.json,
which holds the runs behind docs/training.md), so an interrupted sweep keeps what it measured; a run
already in the file is not repeated.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bnn2hw.train import BinarizationConfig, TrainConfig, load_training_data, train  # noqa: E402
from bnn2hw.data import validation_split  # noqa: E402

#: name → (TrainConfig fields, BinarizationConfig fields), every schedule field spelled out (the defaults
#: changed with this sweep). "base" is the recipe before issue 14.
VARIANTS = {
    "base": (dict(lr=0.03), dict(start=0.0, end=0.9)),
    "lr0.03-end1": (dict(lr=0.03), dict(start=0.0, end=1.0)),
    "lr0.05-end1": (dict(lr=0.05), dict(start=0.0, end=1.0)),
    "lr0.1": (dict(lr=0.1), dict(start=0.0, end=0.9)),
    "lr0.1-end1": (dict(lr=0.1), dict(start=0.0, end=1.0)),
    "lr0.3-end1": (dict(lr=0.3), dict(start=0.0, end=1.0)),
    "lr0.05": (dict(lr=0.05), dict(start=0.0, end=0.9)),
    "lr0.03-end1-start0.3": (dict(lr=0.03), dict(start=0.3, end=1.0)),
    "lr0.05-start0.3": (dict(lr=0.05), dict(start=0.3, end=0.9)),
    "lr0.05-end1-start0.3": (dict(lr=0.05), dict(start=0.3, end=1.0)),
    "lr0.2": (dict(lr=0.2), dict(start=0.0, end=0.9)),
    "lr0.1-start0.3": (dict(lr=0.1), dict(start=0.3, end=0.9)),
    "lr0.1-end1-start0.3-overlap0.5": (dict(lr=0.1), dict(start=0.3, end=1.0, overlap=0.5)),
    "lr0.1-end1-output": (dict(lr=0.1), dict(start=0.0, end=1.0, pairing="output")),
    "lr0.1-end1-overlap0.5": (dict(lr=0.1), dict(start=0.0, end=1.0, overlap=0.5)),
    "lr0.1-end1-overlap0.5-output": (dict(lr=0.1), dict(start=0.0, end=1.0, overlap=0.5, pairing="output")),
    "lr0.1-end1-start0.3": (dict(lr=0.1), dict(start=0.3, end=1.0)),
    "lr0.1-end1-start0.3-output": (dict(lr=0.1), dict(start=0.3, end=1.0, pairing="output")),
    "lr0.1-end1-start0.2": (dict(lr=0.1), dict(start=0.2, end=1.0)),
    "lr0.1-end1-cosine": (dict(lr=0.1), dict(start=0.0, end=1.0, ramp="cosine")),
    "lr0.1-end1-units100": (dict(lr=0.1, unit_steps=100), dict(start=0.0, end=1.0)),
    "lr0.1-end1-start0.3-units100": (dict(lr=0.1, unit_steps=100), dict(start=0.3, end=1.0)),
}


def run(dataset: str, depth: int, width: int, method: str, residual, variant: str, seed: int, epochs: int) -> dict:
    fields, schedule = VARIANTS[variant]
    data = validation_split(load_training_data(dataset))
    config = TrainConfig(hidden=(width,) * depth, epochs=epochs, seed=seed, threads=1, residual=residual,
                         binarization=BinarizationConfig(method=method, **schedule), **fields)
    result = train(data, config)
    return {"dataset": dataset, "depth": depth, "width": width, "method": method, "residual": residual,
            "variant": variant, "seed": seed, "epochs": len(result.history),
            "validation_accuracy": result.test_accuracy, "train_accuracy": result.train_accuracy,
            "seconds": result.seconds}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--method", default="stompp")
    p.add_argument("--residual", default="none")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--json", type=Path, default=REPO / "docs" / "stompp_recipe.json")
    p.add_argument("--list", action="store_true")
    args = p.parse_args(argv)
    if args.list:
        for name, (fields, schedule) in VARIANTS.items():
            print(f"{name:32s} {fields} {schedule}")
        return 0
    residual = int(args.residual) if args.residual.isdigit() else args.residual
    saved = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    runs = saved["runs"]
    for variant in args.variants.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            key = dict(dataset=args.dataset, depth=args.depth, width=args.width, method=args.method,
                       residual=residual, variant=variant, seed=seed, epochs=args.epochs)
            if any(all(r.get(k) == v for k, v in key.items()) for r in runs):
                continue
            r = run(args.dataset, args.depth, args.width, args.method, residual, variant, seed, args.epochs)
            runs.append(r)
            args.json.write_text(json.dumps({**saved, "runs": runs}, indent=1) + "\n")
            print(f"{args.dataset} depth {args.depth} {args.method} {residual} {variant:32s} seed {seed}: "
                  f"val {100 * r['validation_accuracy']:.2f}  train {100 * r['train_accuracy']:.2f}  "
                  f"({r['seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
