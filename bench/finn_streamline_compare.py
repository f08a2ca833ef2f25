"""bnn2hw's thresholds against FINN's streamlining, layer by layer, on the same QONNX file.

    python bench/finn_streamline_compare.py --finn-python build/finn-env/bin/python \\
        [--models models/qonnx/TFC_1W1A.onnx,models/qonnx/TFC_1W2A.onnx] [--json docs/finn_streamline.json] \\
        [--markdown docs/qonnx.md]

FINN (finn-plus 1.6.1) pins brevitas 0.13.0 and its own numpy/onnx, so it lives in an environment of its
own, never in bnn2hw's install:

    python3 -m venv build/finn-env
    build/finn-env/bin/pip install finn-plus==1.6.1      # brings brevitas 0.13.0 and its own torch

In that environment this script runs FINN's own steps on the file: qonnx's cleanup, ConvertQONNXtoFINN,
the tidy-up and streamlining of FINN's `step_streamline` (Streamline, ConvertBipolarMatMulToXnorPopcount,
Streamline, AbsorbScalarMulAddIntoTopK) and RoundAndClipThresholds (thresholds rounded up to integers on
integer inputs). The streamlined graph is saved and read back here with onnx alone.

Each of FINN's MultiThreshold nodes is then compared with bnn2hw's layer at the same place, as functions
of the same integer: the pixel p (the input quantizer; FINN thresholds x = p·scale), the popcount p
(FINN's XnorPopcountMatMul) or the dot product s of the layer's ±1/integer weights with its input values
(FINN's MatMul). For every reachable value both rules are evaluated; a channel is

* **identical** — the same thresholds, value for value, in FINN's units;
* **equivalent** — the same output on every reachable value, different numbers only where no input lands
  (between values of one parity, or beyond the range, where FINN clips to its data type and bnn2hw to the
  accumulator's range + 1);
* **different** — some reachable value gets another output: every such value is listed with the graph's
  own output there (qonnx's executor on the original QONNX nodes), which says who is right.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bnn2hw.frontend import import_qonnx, load_qonnx  # noqa: E402
from bnn2hw.ir import Activation, InputThreshold, ThresholdDense  # noqa: E402
from bnn2hw.passes import fold_batchnorm  # noqa: E402

FINN_STEPS = r'''
import sys, warnings
warnings.filterwarnings("ignore")
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model
from qonnx.transformation.infer_shapes import InferShapes
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.general import GiveReadableTensorNames, RemoveStaticGraphInputs, RemoveUnusedTensors
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_data_layouts import InferDataLayouts
from qonnx.transformation.bipolar_to_xnor import ConvertBipolarMatMulToXnorPopcount
from finn.transformation.qonnx.convert_qonnx_to_finn import ConvertQONNXtoFINN
from finn.transformation.qonnx.give_unique_node_names_recursive import GiveUniqueNodeNamesRecursive
from finn.transformation.streamline import Streamline
from finn.transformation.streamline.round_thresholds import RoundAndClipThresholds
import finn.transformation.streamline.absorb as absorb
import importlib.metadata as md
m = cleanup_model(ModelWrapper(sys.argv[1]))
m = m.transform(ConvertQONNXtoFINN())
for t in (InferShapes(), FoldConstants(), GiveUniqueNodeNamesRecursive(), GiveReadableTensorNames(), InferDataTypes(),
          RemoveStaticGraphInputs()):
    m = m.transform(t)
m = m.transform(absorb.AbsorbScalarBiasIntoMultiThreshold())
m = m.transform(Streamline())
m = m.transform(ConvertBipolarMatMulToXnorPopcount())
m = m.transform(Streamline())
m = m.transform(absorb.AbsorbScalarMulAddIntoTopK())
m = m.transform(InferDataLayouts())
m = m.transform(RemoveUnusedTensors())
m = m.transform(RoundAndClipThresholds())
m.save(sys.argv[2])
print("finn-plus", md.version("finn-plus"), "brevitas", md.version("brevitas"), "qonnx", md.version("qonnx"))
'''


def run_finn(finn_python: Path, model: Path, out: Path) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(FINN_STEPS)
    proc = subprocess.run([str(finn_python), f.name, str(model), str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"FINN's streamlining failed on {model}:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def finn_layers(path: Path) -> list[dict]:
    """FINN's MultiThreshold nodes in order, each with the product node before it (if any)."""
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    layers = []
    for node in model.graph.node:
        if node.op_type != "MultiThreshold":
            continue
        prev = producer.get(node.input[0])
        weight = inits.get(prev.input[1]) if prev is not None and prev.op_type in ("MatMul", "XnorPopcountMatMul") else None
        layers.append({"name": node.name, "thresholds": inits[node.input[1]].astype(np.float64),
                       "product": prev.op_type if weight is not None else None,
                       "weight": None if weight is None else weight.astype(np.float64),
                       "out_bias": float(_attr(node, "out_bias", 0.0))})
    return layers


def counts(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """#{k : v ≥ t_k} per (value, channel): values (V,) or (V, C), thresholds (C, L)."""
    v = values if values.ndim == 2 else values[:, None]
    return (v[:, :, None] >= thresholds[None, :, :]).sum(axis=-1)


def classify(finn_t: np.ndarray, ours: np.ndarray, ours_t: np.ndarray, finn_codes: np.ndarray, values: np.ndarray):
    """(identical, equivalent, [(channel, differing values)]) of two code functions over ``values``."""
    identical = equivalent = 0
    different = []
    for c in range(finn_codes.shape[1]):
        bad = np.flatnonzero(finn_codes[:, c] != ours[:, c])
        if len(bad):
            different.append((c, values[bad]))
        elif np.array_equal(finn_t[c], ours_t[c]):
            identical += 1
        else:
            equivalent += 1
    return identical, equivalent, different


def our_thresholds_on(values: np.ndarray, codes: np.ndarray, levels: int) -> np.ndarray:
    """The first reachable value at which each channel's code reaches k (the threshold in those units),
    or the largest value + 1 where it never does."""
    out = np.empty((codes.shape[1], levels))
    for k in range(1, levels + 1):
        reached = codes >= k
        first = np.argmax(reached, axis=0)
        out[:, k - 1] = np.where(reached.any(axis=0), values[first], values[-1] + 1)
    return out


def compare_model(path: Path, finn_python: Path, work: Path) -> dict:
    streamlined = work / f"{path.stem}_finn.onnx"
    versions = run_finn(finn_python, path, streamlined)
    qm = load_qonnx(path)
    raw = import_qonnx(qm)
    graph = fold_batchnorm(raw)
    finn = finn_layers(streamlined)
    acts = [n for n in raw.nodes if isinstance(n, Activation)]
    ours = [n for n in graph.nodes if isinstance(n, ThresholdDense)]
    record = {"model": path.name, "finn": versions, "layers": []}
    rows = []
    for index, f in enumerate(finn):
        if index == 0 and isinstance(graph.nodes[0], InputThreshold):
            t = graph.nodes[0]
            p = np.arange(1 << qm.input_bits)
            x = (p * float(qm.input_scale)).astype(np.float32).astype(np.float64)
            finn_codes = counts(x, f["thresholds"])
            our_codes = (p[:, None] >= t.thresholds[None, :]).sum(axis=1)[:, None]
            # FINN thresholds x, so its thresholds in pixel units are the first p reaching each
            finn_p = our_thresholds_on(p, finn_codes, f["thresholds"].shape[1])
            ident, equiv, diff = classify(finn_p, our_codes, t.thresholds[None, :].astype(np.float64), finn_codes, p)
            rows.append({"layer": f"input quantizer ({t.source})", "finn": f["name"], "units": "pixel p",
                         "channels": 1, "identical": ident, "equivalent": equiv,
                         "different": [{"channel": c, "values": v.tolist()} for c, v in diff],
                         "finn_thresholds": f["thresholds"].tolist(), "bnn2hw_thresholds": t.thresholds.tolist()})
            continue
        layer = ours[index - (1 if isinstance(graph.nodes[0], InputThreshold) else 0)]
        n = layer.in_features
        sign = np.where(layer.flipped, -1, 1)
        original = layer.signed_weights * sign[:, None]          # the graph's weights (bnn2hw negates flipped rows)
        if f["product"] == "XnorPopcountMatMul":
            # FINN's popcount of XNOR(its weight bits, the input bits): p_F = #agreements, 0..N
            finn_w = f["weight"].T                                  # (out, in), 0/1
            agrees = (finn_w > 0) == (original > 0)
            same = agrees.all(axis=1)
            assert np.all(same | (~agrees).all(axis=1)), "FINN's weights are not ± the graph's"
            values = np.arange(n + 1)                               # FINN's popcount
            finn_codes = counts(values, f["thresholds"])
            # bnn2hw's popcount of the same input: p_B = p_F where both weight rows agree on sign, else N − p_F
            p_graph = np.where(same[None, :], values[:, None], n - values[:, None])
            p_ours = np.where(layer.flipped[None, :], n - p_graph, p_graph)
            our_codes = (p_ours[:, :, None] >= layer.threshold_matrix[None, :, :]).sum(-1)
            units = "popcount (FINN's weights)"
        else:
            # FINN's MatMul: s = Σ w_F · a with a the previous MultiThreshold's values (count + out_bias)
            finn_w = f["weight"].T
            same, negated = np.all(finn_w == original, axis=1), np.all(finn_w == -original, axis=1)
            assert np.all(same | negated), "FINN's weights are not ± the graph's"
            factor = np.where(same, 1, -1)
            grid = layer.in_grid
            lo = -int(np.abs(original).sum(axis=1).max()) * max(abs(grid.offset), abs(grid.offset + grid.step * (grid.levels - 1)))
            values = np.arange(lo, -lo + 1)
            finn_codes = counts(values, f["thresholds"])
            # bnn2hw's accumulator over codes: A = Σ w·q with a = (offset + step·q)·scale/divisor; for the
            # integer grids here (scale 1, step 1) s_graph = A + offset·W, and FINN's s_F = factor · s_graph
            s_graph = values[:, None] * factor[None, :]
            A = s_graph - grid.offset * original.sum(axis=1)[None, :]
            A_ours = np.where(layer.flipped[None, :], -A, A)
            our_codes = (A_ours[:, :, None] >= layer.threshold_matrix[None, :, :]).sum(-1)
            units = "dot product s (FINN's weights)"
        ours_t = our_thresholds_on(values, our_codes, f["thresholds"].shape[1])
        ident, equiv, diff = classify(f["thresholds"], our_codes, ours_t, finn_codes, values)
        act = acts[index - (1 if isinstance(graph.nodes[0], InputThreshold) else 0)]
        dense = next(d for d in raw.nodes if getattr(d, "name", None) == layer.name)
        sigma = np.ones(layer.out_features) if dense.scale is None else dense.scale
        different = []
        for c, v in diff:
            rows_at = np.searchsorted(values, v[:20])
            # the graph's own answer: the layer's real output at these values through its QONNX nodes
            if f["product"] == "XnorPopcountMatMul":
                real = (2.0 * p_graph[rows_at, c] - n) * sigma[c]
            else:
                real = s_graph[rows_at, c] * sigma[c] * layer.in_grid.scale / layer.in_grid.divisor
            graph_codes = act.reference(real[:, None], slice(c, c + 1))[:, 0]
            different.append({"channel": c, "values": v[:20].tolist(), "finn": finn_codes[rows_at, c].tolist(),
                              "bnn2hw": our_codes[rows_at, c].tolist(), "graph (qonnx executor)": graph_codes.tolist()})
        rows.append({"layer": layer.name, "finn": f["name"], "units": units, "channels": layer.out_features,
                     "identical": ident, "equivalent": equiv, "different": different})
    record["layers"] = rows
    return record


def markdown(doc: dict) -> str:
    lines = ["| model | bnn2hw layer | FINN node | compared on | channels | identical | equivalent | different |",
             "|---|---|---|---|---|---|---|---|"]
    for rec in doc["models"]:
        for r in rec["layers"]:
            diff = ", ".join(f"ch {d['channel']} at {d['values'][:4]} (FINN {d.get('finn', [])[:4]}, bnn2hw "
                             f"{d.get('bnn2hw', [])[:4]}, the graph {d.get('graph (qonnx executor)', [])[:4]})"
                             for d in r["different"]) or "0"
            lines.append(f"| {rec['model']} | {r['layer']} | {r['finn']} | {r['units']} | {r['channels']} | "
                         f"{r['identical']} | {r['equivalent']} | {diff} |")
    lines.append("")
    lines.append(f"FINN: {doc['models'][0]['finn']}; thresholds after RoundAndClipThresholds.")
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- finn_streamline table: begin (bench/finn_streamline_compare.py writes it) -->", \
    "<!-- finn_streamline table: end -->"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--finn-python", type=Path, required=True, help="python of the environment with finn-plus")
    ap.add_argument("--models", default="models/qonnx/TFC_1W1A.onnx,models/qonnx/TFC_1W2A.onnx")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None, help="write the table between this file's markers")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bnn2hw-finn-") as work:
        doc = {"models": [compare_model(ROOT / m if not Path(m).is_absolute() else Path(m), args.finn_python,
                                        Path(work)) for m in args.models.split(",")]}
    table = markdown(doc)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    if args.markdown:
        text = args.markdown.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            args.markdown.write_text(head + BEGIN + "\n" + table + END + rest.split(END, 1)[1])
        else:
            sys.exit(f"{args.markdown} has no {BEGIN} marker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
