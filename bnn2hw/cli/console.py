"""What every ``bnn2hw`` command shares: the two rich consoles (``err`` for progress, notes and errors
on stderr; ``out`` for results on stdout), the progress printer of pipeline steps, the .npz writer and
the MODEL argument and --folding option of the commands that compile a model."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from rich.console import Console

__all__ = ["err", "out", "progress", "save_npz", "model_argument", "folding_option", "qonnx_input_options"]

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def progress(step: str, seconds: float) -> None:
    """One finished step and its time, dimmed on stderr (the ``progress`` callback of the compiler)."""
    err.print(f"[dim]  ✓ {step} ({seconds:.1f} s)[/dim]")


def save_npz(path: Path, **arrays) -> None:
    """Write ``arrays`` to ``path`` atomically (a reader sees the old file or the whole new one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


model_argument = click.argument("model", type=click.Path(path_type=Path))
folding_option = click.option("--folding", "folding", type=click.Path(path_type=Path), default=None,
                              help='JSON folding file overriding PE/SIMD per layer: {"dense0": {"pe": 4, "simd": 16}}.')


def qonnx_input_options(command):
    """--input-bits and --input-scale: what the integer pixels p of a QONNX model (.onnx) mean to its
    graph, x = p · scale (docs/qonnx.md)."""
    command = click.option("--input-scale", "input_scale", default=None, metavar="S",
                           help="QONNX models: the graph's float input is x = p · S for integer pixels p "
                                "(default 1/255: 8-bit pixels in [0, 1], as the zoo's MNIST models).")(command)
    return click.option("--input-bits", "input_bits", type=int, default=None, metavar="N",
                        help="QONNX models: the hardware's input pixels are unsigned N-bit integers (default 8).")(command)
