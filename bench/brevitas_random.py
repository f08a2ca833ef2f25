"""Random Brevitas BNNs, exported by Brevitas itself, through bnn2hw: golden model against qonnx's executor.

    python bench/brevitas_random.py --brevitas-python build/finn-env/bin/python [--models 24] [--inputs 1000]
                                    [--json docs/brevitas_random.json]

Brevitas 0.13.0 cannot be installed beside bnn2hw's torch 2.13.0 (it needs setuptools < 70, torch
2.13.0 needs ≥ 77.0.3), so the models are built and exported in another environment (the one of
bench/finn_streamline_compare.py, where finn-plus brings brevitas and torch 2.12.1). There, for each seed,
Brevitas' own BNN-PYNQ networks are made with random sizes and precisions: `FC` (FINN's TFC/SFC/LFC family:
W1/W2 weights, A1/A2/A3 activations, 1- or 2-bit input quantizer, TensorNorm head) and a small CNN of
QuantConv2d / BatchNorm2d / QuantIdentity / MaxPool2d blocks with the same quantizers; their weights are
uniform in [−1, 1] and their BatchNorm statistics random with γ of both signs and some exactly 0; then
`brevitas.export.export_qonnx` writes the file.

Here each file is compiled by bnn2hw (8-bit pixels, x = p/255) and run on random images beside qonnx's
executor: the classes must agree on every input of every model `bnn2hw compile` accepts. Brevitas'
A3 quantizer has scale 1/3, not a power of two, so qonnx's float32 sums round; the compile-time check
(256 seeded inputs) must refuse those models, and the golden model's mismatches on them are reported too.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bnn2hw import golden  # noqa: E402
from bnn2hw.errors import FoldingError  # noqa: E402
from bnn2hw.flow.steps import check_against_qonnx  # noqa: E402
from bnn2hw.frontend import import_qonnx, load_qonnx  # noqa: E402
from bnn2hw.ir import Activation  # noqa: E402
from bnn2hw.passes import fold_batchnorm  # noqa: E402

EXPORT = r'''
import sys, json, warnings
warnings.filterwarnings("ignore")
import numpy as np, torch
from torch import nn
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.export import export_qonnx
from brevitas_examples.bnn_pynq.models.FC import FC
from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
from brevitas_examples.bnn_pynq.models.tensor_norm import TensorNorm

class SmallCNN(nn.Module):
    def __init__(self, wb, ab, ib, channels, pools, dense, h):
        super().__init__()
        layers = [QuantIdentity(act_quant=CommonActQuant, bit_width=ib)]
        c = 1
        for out, pool in zip(channels, pools):
            layers += [QuantConv2d(c, out, 3, bias=False, weight_bit_width=wb, weight_quant=CommonWeightQuant),
                       nn.BatchNorm2d(out), QuantIdentity(act_quant=CommonActQuant, bit_width=ab)]
            h -= 2
            if pool:
                layers.append(nn.MaxPool2d(2)); h //= 2
            c = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            QuantLinear(c * h * h, dense, bias=False, weight_bit_width=wb, weight_quant=CommonWeightQuant),
            nn.BatchNorm1d(dense), QuantIdentity(act_quant=CommonActQuant, bit_width=ab),
            QuantLinear(dense, 10, bias=False, weight_bit_width=wb, weight_quant=CommonWeightQuant), TensorNorm())
    def forward(self, x):
        x = 2.0 * x - torch.tensor([1.0], device=x.device)
        return self.head(torch.flatten(self.features(x), 1))

out_dir, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
records = []
for seed in seeds:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    wb, ab, ib = int(rng.choice([1, 2])), int(rng.choice([1, 2, 3])), int(rng.choice([1, 2]))
    if seed % 3 == 2:
        h = int(rng.integers(8, 13))
        channels = [int(rng.integers(2, 9)) for _ in range(int(rng.integers(1, 3)))]
        pools = [bool(rng.random() < 0.5) for _ in channels]
        size = h
        for p in pools:
            size = (size - 2) // (2 if p else 1)
        if size < 1:
            pools = [False] * len(channels)
        model, shape, kind = SmallCNN(wb, ab, ib, channels, pools, int(rng.integers(8, 33)), h), (1, 1, h, h), "cnn"
    else:
        side = int(rng.integers(5, 12))
        hidden = [int(rng.integers(8, 65)) for _ in range(int(rng.integers(1, 4)))]
        model = FC(num_classes=10, weight_bit_width=wb, act_bit_width=ab, in_bit_width=ib, in_channels=1,
                   out_features=hidden, in_features=(side, side))
        shape, kind = (1, 1, side, side), "fc"
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            g = torch.empty(n).uniform_(-1.5, 1.5)
            g[torch.rand(n) < 0.1] = 0.0
            m.weight.data, m.bias.data = g, torch.empty(n).uniform_(-1, 1)
            m.running_mean.data = torch.randn(n) * 3
            m.running_var.data = torch.empty(n).uniform_(2, 20)
    model.eval()
    path = f"{out_dir}/brevitas_{seed}.onnx"
    export_qonnx(model, torch.rand(*shape), path)
    records.append({"seed": seed, "file": path, "kind": kind, "weight_bits": wb, "act_bits": ab, "input_bits": ib})
print(json.dumps(records))
'''


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brevitas-python", type=Path, required=True)
    ap.add_argument("--models", type=int, default=24)
    ap.add_argument("--inputs", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bnn2hw-brevitas-") as work:
        script = Path(work) / "export.py"
        script.write_text(EXPORT)
        proc = subprocess.run([str(args.brevitas_python), str(script), work, ",".join(map(str, range(args.models)))],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"Brevitas export failed:\n{proc.stderr[-3000:]}")
        models = json.loads(proc.stdout.strip().splitlines()[-1])
        total = 0
        for rec in models:
            t0 = time.perf_counter()
            qm = load_qonnx(rec["file"])
            raw = import_qonnx(qm)
            graph = fold_batchnorm(raw)
            scales = sorted({a.grid.scale / a.grid.divisor for a in raw.nodes if isinstance(a, Activation)})
            dyadic = all(float(np.log2(v)).is_integer() for v in scales)
            try:                                     # what `bnn2hw compile` does after folding
                check_against_qonnx(graph, qm)
                refused = None
            except FoldingError as e:
                refused = str(e)
            x = np.random.default_rng(rec["seed"]).integers(0, 256, size=(args.inputs,) + qm.input_shape)
            ours, theirs = golden.run(graph, x).classes, qm.forward(x).argmax(axis=1)
            rec.update(inputs=args.inputs, mismatches=int(np.sum(ours != theirs)), activation_scales=scales,
                       power_of_two_scales=dyadic, compile_refuses=refused is not None,
                       layers=sum(1 for n in graph.nodes if hasattr(n, "weight_bits")),
                       seconds=round(time.perf_counter() - t0, 1))
            rec.pop("file")
            if refused is None:
                total += rec["mismatches"]
            print(f"seed {rec['seed']:2d} {rec['kind']:3s} W{rec['weight_bits']}A{rec['act_bits']} in {rec['input_bits']} "
                  f"bits, {rec['layers']} layers, activation scales {[round(v, 4) for v in scales]}: "
                  f"{rec['mismatches']} of {args.inputs} differ"
                  + ("; `bnn2hw compile` refuses it" if refused else "") + f" ({rec['seconds']} s)")
    accepted = [m for m in models if not m["compile_refuses"]]
    print(f"{len(models)} Brevitas-exported models: {len(accepted)} compile, {total} mismatches among them; "
          f"{len(models) - len(accepted)} refused by the compile-time check")
    if args.json:
        args.json.write_text(json.dumps({"brevitas": "0.13.0", "models": models, "mismatches_accepted": total},
                                        indent=2) + "\n")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
