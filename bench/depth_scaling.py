"""Depth scaling of StoMPP against the STE baseline: binary MLPs of width 64 with 2 to 24 hidden layers,
plain and residual (Bi-Real real-valued shortcuts), on digits and MNIST-1D, every arm with its own
learning rate chosen on a validation split, 3 seeds each.

    python bench/depth_scaling.py --quick                 # digits, depths 2 and 3, 1 seed, 1 epoch (seconds)
    python bench/depth_scaling.py                         # the whole grid (hours on one core)
    python bench/depth_scaling.py --datasets mnist1d --arms ste,stompp,stompp+sg --epochs 20 \\
        --json docs/depth_scaling.json                    # one slice; runs already in the file are kept
    python bench/depth_scaling.py --from-json docs/depth_scaling.json    # redraw the table and plot

The fair protocol: for every (data set, family, arm, depth) the same search trains one seed for every
rate of ``--lrs`` on a validation split (20 % of the training samples, stratified; the test split is
never used) and keeps the rate with the best validation accuracy (the first of equals); with
``--search-depth N`` the rate found at depth N serves every depth. The depth runs then train on the whole training split and report deploy-mode test
accuracy (every binarization hard, BatchNorm recalibrated). Arms differ only in the binarization rule
and their rate; everything else is the tool's default recipe (docs/training.md).

Every finished run is written to the JSON file at once, so an interrupted sweep loses at most one run
and a rerun continues where it stopped. Writes ``<name>.md`` (tables), ``<name>.png`` and ``<name>.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

from bnn2hw.data import validation_split  # noqa: E402
from bnn2hw.train import BinarizationConfig, TrainConfig, load_training_data, train  # noqa: E402

WIDTH = 64
FULL_DEPTHS = (2, 4, 8, 16, 24)
QUICK_DEPTHS = (2, 3)
LRS = (0.01, 0.03, 0.1)
FAMILIES = {"plain": "none", "residual": "real", "residual-q4": 4}
"""family → ``TrainConfig.residual``: plain, Bi-Real real-valued shortcuts, or shortcuts on a 4-bit grid."""
DEFAULT_FAMILIES = ("plain", "residual")
#: arm → (net, BinarizationConfig fields). The spec's ablations (§3.2): order, scope, binary weights only.
ARMS = {
    "ste": ("bnn", dict(method="ste")),
    "stompp": ("bnn", dict()),
    "stompp+sg": ("bnn", dict(method="stompp+sg")),
    "reverse": ("bnn", dict(order="reverse")),
    "global": ("bnn", dict(scope="global")),
    "bwn": ("bwn", dict()),
}
VALIDATION_FRACTION = 0.2


def arm_config(arm: str, family: str, depth: int, seed: int, epochs: int, lr: float) -> TrainConfig:
    net, fields = ARMS[arm]
    return TrainConfig(hidden=(WIDTH,) * depth, net=net, binarization=BinarizationConfig(**fields), seed=seed,
                       epochs=epochs, lr=lr, threads=1, residual=FAMILIES[family])


@functools.lru_cache(maxsize=None)
def _data(dataset: str, validation: bool):
    data = load_training_data(dataset)
    return validation_split(data, VALIDATION_FRACTION, seed=0) if validation else data


def run_one(kind: str, dataset: str, family: str, arm: str, depth: int, seed: int, epochs: int, lr: float) -> dict:
    """``kind="search"``: train on 80 % of the training split, score on the other 20 %; ``"test"``: train
    on the whole training split, score on the test split."""
    result = train(_data(dataset, kind == "search"), arm_config(arm, family, depth, seed, epochs, lr))
    return {"kind": kind, "dataset": dataset, "family": family, "arm": arm, "depth": depth, "seed": seed,
            "epochs": epochs, "lr": lr, "accuracy": result.test_accuracy, "train_accuracy": result.train_accuracy,
            "seconds": result.seconds}


def _same(run: dict, **key) -> bool:
    return all(run.get(k) == v for k, v in key.items())


def chosen_lr(runs: list[dict], dataset: str, family: str, arm: str, depth: int) -> float | None:
    """The rate of the best validation accuracy at ``depth`` (first of equals, in the order searched), or None."""
    found = [r for r in runs if _same(r, kind="search", dataset=dataset, family=family, arm=arm, depth=depth)]
    if not found:
        return None
    best = max(r["accuracy"] for r in found)
    return next(r["lr"] for r in found if r["accuracy"] == best)


def sweep(args, runs: list[dict], save) -> None:
    def once(**job):
        key = {k: v for k, v in job.items() if k != "lr"} | ({"lr": job["lr"]} if job["kind"] == "search" else {})
        if any(_same(r, **key) for r in runs):
            return
        r = run_one(**job)
        runs.append(r)
        save()
        what = "validation" if r["kind"] == "search" else "test"
        print(f"[{len(runs):4d}] {r['dataset']:8s} {r['family']:8s} depth {r['depth']:2d} {r['arm']:10s} "
              f"seed {r['seed']} lr {r['lr']:<5g} {what} {100 * r['accuracy']:5.1f}%  train "
              f"{100 * r['train_accuracy']:5.1f}%  ({r['seconds']:.1f} s)", flush=True)

    for dataset in args.datasets:
        for family in args.families:
            for depth in args.depths:
                for arm in args.arms:
                    search_depth = args.search_depth or depth
                    for lr in args.lrs:
                        once(kind="search", dataset=dataset, family=family, arm=arm, depth=search_depth, seed=0,
                             epochs=args.epochs, lr=lr)
                    lr = chosen_lr(runs, dataset, family, arm, search_depth)
                    for seed in range(args.seeds):
                        once(kind="test", dataset=dataset, family=family, arm=arm, depth=depth, seed=seed,
                             epochs=args.epochs, lr=lr)


# -- reporting ----------------------------------------------------------------------------------------

def summarise(runs: list[dict]) -> dict:
    """(dataset, family, depth, arm) → (mean, std, n, lr, epochs) of the test runs."""
    table = {}
    keys = sorted({(r["dataset"], r["family"], r["depth"], r["arm"]) for r in runs if r["kind"] == "test"})
    for key in keys:
        found = [r for r in runs if r["kind"] == "test" and (r["dataset"], r["family"], r["depth"], r["arm"]) == key]
        acc = [r["accuracy"] for r in found]
        table[key] = (float(np.mean(acc)), float(np.std(acc)), len(acc), found[0]["lr"], found[0]["epochs"])
    return table


def _order(values, reference):
    return sorted(set(values), key=lambda v: list(reference).index(v) if v in reference else len(reference))


def markdown(runs: list[dict], meta: dict) -> str:
    table = summarise(runs)
    lines = ["# Depth scaling: StoMPP against the STE baseline (width 64, plain and residual)", "",
             f"Generated by `bench/depth_scaling.py` ({meta['machine']}, one thread per run); commands: "
             + "; ".join(f"`{c}`" for c in meta["commands"]) + f". {len(runs)} runs, "
             f"{sum(r['seconds'] for r in runs) / 3600:.1f} CPU-hours of training.", "",
             "Deploy-mode test accuracy in % (every binarization hard, BatchNorm recalibrated), mean ± std over "
             "seeds; chance = 10 %. *plain*: (BinaryLinear → BatchNorm → sign) per layer; *residual*: a Bi-Real "
             "real-valued shortcut around every 64→64 layer (`--residual real`); *residual-q4*: the same "
             "shortcuts on a 4-bit grid (`--residual 4`). Each arm's learning rate (in "
             "brackets) was chosen by the same search: one seed "
             + (f"at depth {meta['search_depth']}" if meta["search_depth"] else "at each depth")
             + f", rates {', '.join(map(str, meta['lrs']))}, on a validation split of 20 % "
             "of the training samples (never the test split). Everything else is the default recipe "
             "(docs/training.md). `bwn` = binary weights, real hard-tanh activations (not compilable). What "
             "the tables show, and why: [training.md, \"Depth scaling\"](training.md#depth-scaling-what-the-tables-show).",
             ""]
    datasets = _order([k[0] for k in table], ("digits", "mnist1d"))
    for dataset in datasets:
        for family in _order([k[1] for k in table if k[0] == dataset], FAMILIES):
            keys = [k for k in table if k[0] == dataset and k[1] == family]
            arms = _order([k[3] for k in keys], ARMS)
            depths = sorted({k[2] for k in keys})
            epochs = sorted({table[k][4] for k in keys})
            seeds = sorted({table[k][2] for k in keys})
            lines += [f"## {dataset}, {family} ({', '.join(map(str, epochs))} epochs, "
                      f"{'/'.join(map(str, seeds))} seeds)", ""]
            deltas = [a for a in ("stompp", "stompp+sg") if a in arms and "ste" in arms]
            lines.append("| hidden layers | " + " | ".join(arms) + "".join(f" | {a} − ste" for a in deltas) + " |")
            lines.append("|---:|" + "---:|" * (len(arms) + len(deltas)))
            for depth in depths:
                cells = []
                for arm in arms:
                    cell = table.get((dataset, family, depth, arm))
                    cells.append("" if cell is None else f"{100 * cell[0]:.1f} ± {100 * cell[1]:.1f} ({cell[3]:g})")
                diffs = []
                for a in deltas:
                    mine, ste = table.get((dataset, family, depth, a)), table.get((dataset, family, depth, "ste"))
                    diffs.append("" if mine is None or ste is None else f"{100 * (mine[0] - ste[0]):+.1f}")
                lines.append(f"| {depth} | " + " | ".join(cells) + "".join(f" | {d}" for d in diffs) + " |")
            lines.append("")
    lines += [f"![accuracy against depth]({meta['name']}.png)", ""]
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    table = summarise(runs)
    panels = [(d, f) for d in _order([k[0] for k in table], ("digits", "mnist1d"))
              for f in _order([k[1] for k in table if k[0] == d], FAMILIES)]
    fig = Figure(figsize=(5.5 * min(len(panels), 2), 4.2 * ((len(panels) + 1) // 2)), dpi=100)
    for i, (dataset, family) in enumerate(panels):
        ax = fig.add_subplot((len(panels) + 1) // 2, min(len(panels), 2), i + 1)
        keys = [k for k in table if k[0] == dataset and k[1] == family]
        for arm in _order([k[3] for k in keys], ARMS):
            pts = sorted((k[2], *table[k][:2]) for k in keys if k[3] == arm)
            d, mean, std = (np.array(v) for v in zip(*pts))
            style = "--" if arm in ("reverse", "global", "bwn") else "-"
            ax.errorbar(d, 100 * mean, yerr=100 * std, label=arm, linestyle=style, marker="o", capsize=3)
        ax.axhline(10, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(f"{dataset}, {family}")
        ax.set_xlabel(f"hidden layers (width {WIDTH})")
        ax.set_ylabel("deploy test accuracy (%)")
        ax.set_xticks(sorted({k[2] for k in keys}))
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    tmp.replace(path)


def write_outputs(out_dir: Path, name: str, runs: list[dict], meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(markdown(runs, {**meta, "name": name}))
    plot(runs, out_dir / f"{name}.png")
    print(f"wrote {out_dir / name}.md and .png")


def _list(kind):
    return lambda text: tuple(kind(t) for t in text.split(",") if t)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="digits, depths 2 and 3, 1 seed, 1 epoch, rates 0.03 and "
                                                        "0.1: checks the pipeline only")
    p.add_argument("--datasets", type=_list(str), default=None, help="default digits,mnist1d (quick: digits)")
    p.add_argument("--families", type=_list(str), default=DEFAULT_FAMILIES,
                   help=f"default {','.join(DEFAULT_FAMILIES)}; also residual-q4 (4-bit quantized shortcuts)")
    p.add_argument("--arms", type=_list(str), default=tuple(ARMS))
    p.add_argument("--depths", type=_list(int), default=None)
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3, quick 1)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 30, quick 1)")
    p.add_argument("--lrs", type=_list(float), default=None, help="rates the search tries (default 0.01,0.03,0.1)")
    p.add_argument("--search-depth", type=int, default=None,
                   help="search the rate at this depth only and use it at every depth (default: search at each depth)")
    p.add_argument("--out-dir", type=Path, default=REPO / "docs", help="where the .md/.png go (default docs/)")
    p.add_argument("--json", type=Path, default=None, help="the runs file (default <out-dir>/<name>.json)")
    p.add_argument("--from-json", type=Path, default=None, help="redraw the table and plot from a runs file")
    args = p.parse_args(argv)
    for name, values, known in (("family", args.families, FAMILIES), ("arm", args.arms, ARMS)):
        unknown = [v for v in values if v not in known]
        if unknown:
            p.error(f"unknown {name} {unknown[0]!r}; choose from {', '.join(known)}")
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        write_outputs(args.out_dir, args.from_json.stem, saved["runs"], saved["meta"])
        return 0
    args.datasets = args.datasets or (("digits",) if args.quick else ("digits", "mnist1d"))
    args.depths = args.depths or (QUICK_DEPTHS if args.quick else FULL_DEPTHS)
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.epochs = args.epochs or (1 if args.quick else 30)
    args.lrs = args.lrs or ((0.03, 0.1) if args.quick else LRS)
    name = "depth_scaling_quick" if args.quick else "depth_scaling"
    path = args.json or args.out_dir / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = json.loads(path.read_text()) if path.exists() else {"meta": {"commands": []}, "runs": []}
    runs, meta = saved["runs"], saved["meta"]
    command = "python bench/depth_scaling.py " + " ".join(argv)
    meta.update(machine=f"{platform.machine()}, {os.cpu_count()} CPUs", search_depth=args.search_depth,
                lrs=list(args.lrs), validation_fraction=VALIDATION_FRACTION, width=WIDTH,
                recipe=TrainConfig().to_dict(), arms={a: [n, f] for a, (n, f) in ARMS.items()})
    if command.strip() not in meta["commands"]:
        meta["commands"].append(command.strip())

    def save():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
        tmp.replace(path)

    start = time.perf_counter()
    sweep(args, runs, save)
    save()
    write_outputs(args.out_dir, name, runs, meta)
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
