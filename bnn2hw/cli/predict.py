"""``bnn2hw predict``: the bit-exact golden model on X.npy, optionally with every layer's trace."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from .. import golden
from ..errors import Bnn2hwError
from .console import model_argument, out, progress, qonnx_input_options, save_npz

__all__ = ["predict_cmd"]


@click.command("predict")
@model_argument
@click.option("--inputs", "inputs", type=click.Path(path_type=Path), required=True, help="X.npy of integer pixels.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None, help="Write scores and classes to Y.npz.")
@click.option("--trace", is_flag=True,
              help="Also write every layer's accumulators and outputs to Y.npz (<layer>_acc, <layer>_out).")
@qonnx_input_options
def predict_cmd(model, inputs, out_file, trace, input_bits, input_scale):
    """Run the bit-exact golden model on X.npy."""
    from ..flow import fold_model, load_inputs     # on use: it imports torch and Amaranth
    if trace and out_file is None:
        raise Bnn2hwError("--trace needs --out Y.npz to write the per-layer arrays to")
    x = load_inputs(inputs)
    _, graph = fold_model(model, progress=progress, input_bits=input_bits, input_scale=input_scale)
    result = golden.run(graph, x, trace=trace)
    if out_file is not None:
        layers = {f"{t.name}_{kind}": arr for t in result.trace for kind, arr in (("acc", t.acc), ("out", t.output))}
        save_npz(out_file, scores=result.scores, classes=result.classes, **layers)
    counts = np.bincount(result.classes, minlength=graph.num_classes)
    out.print(f"predicted {len(result.classes)} inputs; class counts {counts.tolist()}"
              + (f"; wrote {out_file}" if out_file else ""))
