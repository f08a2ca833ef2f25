"""FINN's CNV W1A1 topology (BNN-PYNQ / finn-examples, CIFAR-10 sized) as a bnn2hw model file.

    python examples/cnv_w1a1.py --out build/cnv_w1a1.pt
    bnn2hw compile build/cnv_w1a1.pt --folding models/cnv_w1a1_folding.json --out build/cnv_w1a1

32×32×3 8-bit pixels → conv3×3 64, 64, pool 2, 128, 128, pool 2, 256, 256 (no padding, as FINN's
`CNV.py`) → FC 256→512→512→10. The first convolution multiplies 8-bit pixels by binary weights; every
later layer is XNOR-popcount. FINN's published W1A1 folding (PE, SIMD per layer) is
``models/cnv_w1a1_folding.json``.

FINN's W1A2 and W2A2 variants (2-bit activations on Brevitas' narrow signed grid {−1, 0, +1}, and
ternary weights for W2A2): ``--act-bits 2`` and ``--weight-bits 2``; BNN-PYNQ builds W1A2 with the W1A1
folding and W2A2 with ``models/cnv_w2a2_folding.json`` (docs/benchmarks.md).

No CIFAR-10 data can be downloaded here, so the weights are random (seeded) and each BatchNorm's
statistics are set from the layer's own accumulators on random images, which puts every threshold
inside its popcount range: the model is for hardware size, speed and bit-exactness, not accuracy.
Train the same topology on CIFAR-10 files you have with `bnn2hw.train.train(..., model=cnv_w1a1())`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bnn2hw  # noqa: E402
from bnn2hw.io import BinaryNet  # noqa: E402
from bnn2hw.nn import BinaryAct, BinaryConv2d, BinaryLinear, InputQuant, QuantAct  # noqa: E402
from bnn2hw.train import recalibrate_batchnorm  # noqa: E402

#: (output channels, max-pool after the block), FINN's CNV_OUT_CH_POOL.
CONV_BLOCKS = ((64, False), (64, True), (128, False), (128, True), (256, False), (256, False))
FC_FEATURES = (512, 512)
INPUT_SHAPE = (3, 32, 32)


def activation(act_bits: int) -> nn.Module:
    """A hidden activation of FINN's CNV/TFC/LFC at ``act_bits``: the sign, or Brevitas' signed
    narrow-range grid (2 bits: {−1, 0, +1}, the A2 of FINN's W1A2 and W2A2 networks)."""
    return BinaryAct() if act_bits == 1 else QuantAct(act_bits, "signed", narrow=True)


def cnv_w1a1(num_classes: int = 10, weight_bits: int = 1, act_bits: int = 1) -> BinaryNet:
    """The untrained CNV network: BinaryConv2d → BatchNorm2d → activation [→ MaxPool2d], FINN's order;
    W1A1 by default, FINN's W1A2 / W2A2 with ``weight_bits`` / ``act_bits`` = 2 (every layer)."""
    layers: list[nn.Module] = [InputQuant(8)]
    channels = INPUT_SHAPE[0]
    for out, pool in CONV_BLOCKS:
        layers += [BinaryConv2d(channels, out, 3, weight_bits=weight_bits), nn.BatchNorm2d(out), activation(act_bits)]
        if pool:
            layers.append(nn.MaxPool2d(2))
        channels = out
    layers.append(nn.Flatten())
    width = channels     # 1×1 after the last convolution
    for features in FC_FEATURES:
        layers += [BinaryLinear(width, features, weight_bits=weight_bits), nn.BatchNorm1d(features),
                   activation(act_bits)]
        width = features
    layers.append(BinaryLinear(width, num_classes, weight_bits=weight_bits))
    return BinaryNet(*layers, input_shape=INPUT_SHAPE)


def random_cnv(seed: int = 0, calibration_images: int = 256, weight_bits: int = 1, act_bits: int = 1) -> BinaryNet:
    """CNV with seeded random weights and BatchNorm statistics measured on random 8-bit images."""
    torch.manual_seed(seed)
    model = cnv_w1a1(weight_bits=weight_bits, act_bits=act_bits)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.uniform_(-1.0, 1.0)   # γ of both signs: flipped channels and AND-free OR pools
                m.bias.uniform_(-0.5, 0.5)
    images = torch.randint(0, 256, (calibration_images,) + INPUT_SHAPE).float()
    recalibrate_batchnorm(model, images)
    return model.eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "cnv_w1a1.pt")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weight-bits", type=int, choices=(1, 2), default=1, help="2: FINN's W2A2 (ternary weights)")
    ap.add_argument("--act-bits", type=int, choices=(1, 2), default=1, help="2: FINN's W1A2 / W2A2 activations")
    args = ap.parse_args()
    model = random_cnv(args.seed, weight_bits=args.weight_bits, act_bits=args.act_bits)
    name = f"cnv_w{args.weight_bits}a{args.act_bits}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bnn2hw.save(model, args.out, input_shape=INPUT_SHAPE,
                metadata={"name": name, "topology": f"FINN CNV {name[4:].upper()}", "weights": f"random, seed {args.seed}",
                          "input_format": "3x32x32 (C, H, W) integer pixels as 8-bit unsigned"})
    print(f"wrote {args.out}: FINN CNV {name[4:].upper()} topology, random weights (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
