"""``bnn2hw simulate``: the compiled RTL on every input of X.npy, compared with the golden model (and,
with --labels, hardware and PyTorch accuracy)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from ..errors import Bnn2hwError
from .console import err, folding_option, model_argument, out, progress, qonnx_input_options, save_npz

__all__ = ["simulate_cmd"]


@click.command("simulate")
@model_argument
@click.option("--inputs", "inputs", type=click.Path(path_type=Path), required=True, help="X.npy of integer pixels.")
@click.option("--simulator", type=click.Choice(["verilator", "icarus", "amaranth"]), default="verilator",
              show_default=True, help="RTL simulator.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None, help="Write scores and classes to Y.npz.")
@folding_option
@click.option("--labels", type=click.Path(path_type=Path), default=None,
              help="y.npy of true classes: print hardware and PyTorch (or QONNX) accuracy.")
@click.option("--stress", is_flag=True, help="Random input gaps and output back-pressure (no timing measured).")
@qonnx_input_options
def simulate_cmd(model, inputs, simulator, out_file, folding, labels, stress, input_bits, input_scale):
    """Run the compiled RTL on every input of X.npy and compare with the golden model."""
    # On use, so that `bnn2hw --help` need not load torch and Amaranth; none of them imports the CLI.
    from ..flow import compile_model, load_inputs
    from ..sim.run import simulate_compiled
    x = load_inputs(inputs)
    y = load_inputs(labels) if labels is not None else None
    compiled = compile_model(model, folding_file=folding, progress=progress, input_bits=input_bits,
                             input_scale=input_scale)
    err.print(f"[bold]simulating[/bold] {len(x)} frames in {simulator}")
    run = simulate_compiled(compiled, x, simulator, stress=stress)
    if out_file is not None:
        save_npz(out_file, scores=run.result.scores, classes=run.result.classes)
    line = f"{simulator}: {len(x)} frames, {run.mismatches} mismatches against the golden model"
    if run.cycles_per_frame is not None:
        est = compiled.estimate
        line += (f", {run.cycles_per_frame} cycles/frame measured (estimate {est.cycles_per_frame}), "
                 f"latency {run.latency_cycles} cycles"
                 + (f" (estimate {est.latency_cycles})" if est.latency_cycles is not None else ""))
    out.print(line)
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise Bnn2hwError(f"--labels holds {len(y)} labels for {len(x)} inputs; give one label per input")
        reference_classes = compiled.reference(x).argmax(1)
        out.print(f"accuracy: hardware {np.mean(run.result.classes == y):.2%}, "
                  f"{compiled.reference_name} {np.mean(reference_classes == y):.2%} on {len(y)} labelled inputs")
    if out_file is not None:
        out.print(f"wrote {out_file}")
    if run.mismatches:
        sys.exit(1)
