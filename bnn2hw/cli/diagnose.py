"""``bnn2hw diagnose``: firing rates of every hidden layer, PyTorch reference against hardware."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.table import Table

from ..data import DATASETS, load_training_data
from ..errors import Bnn2hwError
from .console import err, model_argument, out, progress

__all__ = ["diagnose_cmd"]


@click.command("diagnose")
@model_argument
@click.option("--dataset", type=click.Choice(DATASETS), default="digits", show_default=True,
              help="Data set whose samples are run (ignored with --inputs).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Directory of the data set's files (every data set except digits).")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="Which split of the data set to run.")
@click.option("--split-seed", type=int, default=None,
              help="Seed of the digits train/test split (default: the model's metadata, else 0).")
@click.option("--inputs", "inputs", type=click.Path(path_type=Path), default=None,
              help="X.npy of integer pixels to run instead of the data set.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Batch size of the train-mode reference (default: the model's training batch size from "
                   "its metadata, else 64).")
@click.option("--reference", type=click.Choice(["train", "eval"]), default="train", show_default=True,
              help="train: BatchNorm batch statistics, as while training; "
                   "eval: running statistics (self-check, EMD 0).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output directory for diagnose.json and diagnose.png (default: build/<model name>-diagnose).")
def diagnose_cmd(model, dataset, data_dir, split, split_seed, inputs, batch_size, reference, out_dir):
    """Compare per-channel firing rates of every hidden layer: PyTorch (train or eval mode) against hardware.

    Reports the Earth Mover's Distance between the two sets of per-channel rates per layer.
    """
    # On use, so that `bnn2hw --help` need not load torch and Amaranth; neither imports the CLI.
    from ..flow import compile_model, load_inputs
    from ..diagnose import firing_rate_report, write_diagnosis

    if model.suffix.lower() == ".onnx":
        raise Bnn2hwError(f"diagnose compares a PyTorch model's training-time firing rates with the hardware; "
                          f"'{model}' is a QONNX graph, which has no training mode; use `bnn2hw predict --trace` "
                          "for its per-layer outputs")
    out_dir = out_dir or Path("build") / f"{model.stem}-diagnose"
    x = load_inputs(inputs) if inputs is not None else None
    err.print(f"[bold]diagnosing[/bold] {model}")
    compiled = compile_model(model, progress=progress)
    metadata = getattr(compiled.torch_model, "metadata", {}) or {}
    if x is not None:
        source = f"{inputs}"
    else:
        if split_seed is None:
            saved = metadata.get("split_seed")
            split_seed = saved if isinstance(saved, int) and not isinstance(saved, bool) else 0
        t0 = time.perf_counter()
        data = load_training_data(dataset, data_dir, split_seed)
        x = data.x_train if split == "train" else data.x_test
        progress(f"load {dataset} {split} split ({len(x)} samples)", time.perf_counter() - t0)
        source = f"{dataset} {split} split" + (f", split seed {split_seed}" if dataset == "digits" else "")
    if batch_size is None:
        trained = metadata.get("batch_size")
        if isinstance(trained, int) and not isinstance(trained, bool) and trained >= 1:
            batch_size = trained
            if reference == "train":
                err.print(f"batch size {batch_size}: the model's training batch size (from its metadata; "
                          "--batch-size overrides it)")
        else:
            batch_size = 64
    diagnosis = firing_rate_report(compiled, x, batch_size, reference, data=source, progress=progress)
    t0 = time.perf_counter()
    json_path, png_path = write_diagnosis(diagnosis, out_dir)
    progress("write diagnose.json and diagnose.png", time.perf_counter() - t0)

    ref_name = "training-time" if reference == "train" else "PyTorch eval"
    table = Table(title=f"firing rates: {diagnosis.reference_label} vs hardware, {diagnosis.samples} samples "
                        f"({source})", title_justify="left")
    for col in ("layer", "channels", f"mean rate {ref_name}", "mean rate hardware", "EMD"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for layer in diagnosis.layers:
        table.add_row(layer.name, str(layer.channels), f"{layer.reference_mean:.4f}", f"{layer.hardware_mean:.4f}",
                      _emd_text(layer.emd))
    out.print(table)
    differ = [layer.name for layer in diagnosis.layers if layer.max_channel_diff > 0]
    if reference == "eval":
        if differ:   # bit-exactness is broken: a bug in bnn2hw, not in the model
            out.print(f"self-check FAILED: eval mode and hardware fire differently in {', '.join(differ)}")
        else:
            out.print("self-check passed: eval mode and hardware fire identically in every channel")
    out.print(f"wrote {json_path}, {png_path}")
    if reference == "eval" and differ:
        sys.exit(1)


def _emd_text(emd: float) -> str:
    """Six decimals, but an exact 0 as "0" and a tiny nonzero EMD never rounded to look like 0."""
    if emd == 0:
        return "0"
    return f"{emd:.6f}" if emd >= 1e-5 else f"{emd:.2e}"
