"""Train the shipped default model: a binary MLP for scikit-learn's 8x8 digits.

    python examples/train_digits_mlp.py                      # writes models/digits_mlp.pt
    python examples/train_digits_mlp.py --epochs 1 --out /tmp/m.pt

The model is

    InputQuant(5) -> BinaryLinear(64, h1) -> BatchNorm1d(h1) -> BinaryAct
                  -> BinaryLinear(h1, h2) -> BatchNorm1d(h2) -> BinaryAct
                  -> BinaryLinear(h2, 10)

with no bias anywhere and no BatchNorm after the last layer, so its eval-mode outputs are the
integer class scores the hardware computes. Training: Adam with a cosine learning-rate schedule,
cross-entropy on the scores times a constant (inside the loss only, the model is unchanged), the
clipped straight-through estimator built into bnn2hw.nn, latent weights clipped to [-1, 1] after
every step, and finally the BatchNorm running statistics recomputed over the whole training set.
The run is deterministic for a given --seed (single CPU thread, deterministic torch algorithms).
The test split of bnn2hw.data.load_digits_split(--split-seed) is used only for reporting.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

import bnn2hw  # noqa: E402
from bnn2hw.data import (DIGITS_INPUT_BITS, DIGITS_INPUT_SHAPE, DIGITS_NUM_CLASSES,  # noqa: E402
                         DIGITS_SPLIT_DESCRIPTION, load_digits_split)
from bnn2hw.nn import BinaryAct, BinaryLinear, InputQuant  # noqa: E402


def build_model(hidden: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = [InputQuant(DIGITS_INPUT_BITS)]
    width = DIGITS_INPUT_SHAPE[0]
    for h in hidden:
        layers += [BinaryLinear(width, h), nn.BatchNorm1d(h), BinaryAct()]
        width = h
    layers.append(BinaryLinear(width, DIGITS_NUM_CLASSES))
    return nn.Sequential(*layers)


def weight_bits(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model if isinstance(m, BinaryLinear))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was_training = model.training
    model.eval()
    pred = model(x).argmax(dim=1)
    model.train(was_training)
    return (pred == y).double().mean().item()


def _clip_latent_weights(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model:
            if isinstance(m, BinaryLinear):
                m.weight.clamp_(-1.0, 1.0)


@torch.no_grad()
def _recalibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to the exact statistics over ``x`` (the training set).

    During training the running averages trail the moving weights; recomputing them once from the
    final weights makes eval mode match the trained network and makes the result less noisy.
    """
    bns = [m for m in model if isinstance(m, nn.BatchNorm1d)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one full batch gives its exact mean and variance
    model.train()
    model(x)
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
    model.eval()


def train(args: argparse.Namespace, log=print) -> nn.Sequential:
    """Train a model as described by the command-line ``args``; returns it in eval mode (float32)."""
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    split = load_digits_split(seed=args.split_seed)
    x_train = torch.from_numpy(split.x_train).float()
    y_train = torch.from_numpy(split.y_train)
    x_test = torch.from_numpy(split.x_test).float()
    y_test = torch.from_numpy(split.y_test)

    model = build_model(args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = math.ceil(len(x_train) / args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch)

    log(f"digits: {len(x_train)} train / {len(x_test)} test samples; hidden {args.hidden}; "
        f"{weight_bits(model)} weight bits; {args.epochs} epochs")
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        total_loss = 0.0
        correct = 0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            xb, yb = x_train[idx], y_train[idx]
            out = model(xb)
            loss = F.cross_entropy(out * args.logit_scale, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            _clip_latent_weights(model)
            total_loss += loss.item() * len(idx)
            correct += (out.argmax(dim=1) == yb).sum().item()
        log(f"epoch {epoch:3d}  loss {total_loss / len(x_train):.4f}  "
            f"train acc {correct / len(x_train):.4f}  test acc {accuracy(model, x_test, y_test):.4f}")
    _recalibrate_batchnorm(model, x_train)
    return model.eval()


def _parse_hidden(text: str) -> list[int]:
    try:
        widths = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden must be comma-separated integers, not {text!r}") from None
    if not widths or any(not 1 <= w <= 256 for w in widths):
        raise argparse.ArgumentTypeError(f"--hidden widths must be 1..256, not {text!r}")
    return widths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=_parse_hidden, default=_parse_hidden("128,128"),
                   help="hidden layer widths, comma-separated (default: 128,128)")
    p.add_argument("--epochs", type=int, default=60, help="training epochs (default: 60)")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation and shuffling (default: 0)")
    p.add_argument("--split-seed", type=int, default=0,
                   help="seed of the train/test split, bnn2hw.data.load_digits_split (default: 0)")
    p.add_argument("--batch-size", type=int, default=32, help="minibatch size (default: 32)")
    p.add_argument("--lr", type=float, default=0.03, help="peak Adam learning rate (default: 0.03)")
    p.add_argument("--logit-scale", type=float, default=0.05,
                   help="constant the integer scores are multiplied by inside the loss (default: 0.05)")
    p.add_argument("--out", type=Path, default=REPO / "models" / "digits_mlp.pt",
                   help="where to write the model (default: models/digits_mlp.pt)")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be at least 1")

    start = time.perf_counter()
    model = train(args, log=lambda line: print(line, flush=True))
    seconds = time.perf_counter() - start
    split = load_digits_split(seed=args.split_seed)
    x_train = torch.from_numpy(split.x_train).float()
    y_train = torch.from_numpy(split.y_train)
    x_test = torch.from_numpy(split.x_test).float()
    y_test = torch.from_numpy(split.y_test)

    model = model.double().eval()
    test_acc = accuracy(model, x_test.double(), y_test)
    train_acc = accuracy(model, x_train.double(), y_train)
    print(f"trained in {seconds:.1f} s; eval-mode (float64) accuracy: train {train_acc:.4f}, "
          f"test {test_acc:.4f} ({round(test_acc * len(x_test))}/{len(x_test)})")

    options = [("hidden", ",".join(map(str, args.hidden))), ("epochs", args.epochs), ("seed", args.seed),
               ("split-seed", args.split_seed), ("batch-size", args.batch_size), ("lr", args.lr),
               ("logit-scale", args.logit_scale)]
    metadata = {
        "name": "digits_mlp",
        "dataset": "sklearn.datasets.load_digits (8x8 handwritten digits, 1797 samples, 10 classes)",
        "split": f"{DIGITS_SPLIT_DESCRIPTION}, seed={args.split_seed}: "
                 f"{len(x_train)} train / {len(x_test)} test samples",
        "split_seed": args.split_seed,
        "input_format": "64 integer pixels 0..16 (8x8 image, row-major) as 5-bit unsigned",
        "seed": args.seed,
        "hidden": list(args.hidden),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "logit_scale": args.logit_scale,
        "weight_bits": weight_bits(model),
        "test_samples": len(x_test),
        "test_correct": int(round(test_acc * len(x_test))),
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "accuracy_note": "eval mode, float64, argmax of the integer class scores (first maximum wins)",
        "trained_with": "python examples/train_digits_mlp.py " + " ".join(f"--{k} {v}" for k, v in options),
        "torch_version": str(torch.__version__),  # TorchVersion would not load with weights_only=True
    }
    bnn2hw.save(model.float().eval(), args.out, input_shape=DIGITS_INPUT_SHAPE, metadata=metadata)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
