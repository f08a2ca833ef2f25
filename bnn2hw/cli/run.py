"""``bnn2hw run``: run X.npy on a programmed board over its serial port (docs/board_protocol.md) and
write the board's scores and classes, as ``bnn2hw predict`` writes the golden model's."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import serial
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import Bnn2hwError, BoardError, InputDataError
from ..frame_codec import DEFAULT_BAUD, stream_order
from ..host import read_descriptor, run_frames
from .console import err, out, save_npz

__all__ = ["run_cmd", "open_port"]

#: The port's own read timeout: short, so that run_frames' deadlines decide what is too late.
_POLL_S = 0.05


def open_port(url: str, baud: int):
    """A pyserial port for a device name (/dev/ttyUSB1, COM3) or URL (socket://host:port, loop://)."""
    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=_POLL_S, write_timeout=None)
    except (serial.SerialException, ValueError, OSError) as e:
        raise BoardError(f"cannot open serial port '{url}' ({e}); check the device name (ls /dev/ttyUSB* "
                         "/dev/ttyACM*) or URL and that no other program holds the port") from None


def _load_labels(path: Path, n: int) -> np.ndarray:
    from ..flow import load_inputs     # on use: it imports torch and Amaranth
    y = np.asarray(load_inputs(path)).reshape(-1)
    if len(y) != n:
        raise Bnn2hwError(f"--labels holds {len(y)} labels for {n} inputs; give one label per input")
    return y


@click.command("run")
@click.option("--port", required=True,
              help="Serial port of the board (/dev/ttyUSB1, COM3) or a pyserial URL (socket://host:port).")
@click.option("--inputs", "inputs", type=click.Path(path_type=Path), required=True, help="X.npy of integer pixels.")
@click.option("--baud", type=int, default=DEFAULT_BAUD, show_default=True,
              help="Baud rate the bitstream was built for.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None,
              help="Write the board's scores and classes to Y.npz.")
@click.option("--labels", type=click.Path(path_type=Path), default=None,
              help="y.npy of true classes: print the board's accuracy.")
@click.option("--timeout", type=float, default=2.0, show_default=True,
              help="Seconds to wait for the board's descriptor and for each reply.")
def run_cmd(port, inputs, baud, out_file, labels, timeout):
    """Run every input of X.npy on the board at PORT and report its classes."""
    from ..flow import load_inputs     # on use: it imports torch and Amaranth

    if not timeout > 0:
        raise Bnn2hwError(f"--timeout must be a positive number of seconds, not {timeout}")
    x = load_inputs(inputs)
    y = _load_labels(labels, len(x)) if labels is not None else None
    with open_port(port, baud) as link:
        descriptor = read_descriptor(link, timeout=timeout)
        err.print(f"[dim]  ✓ board at {port}: {descriptor.summary()}[/dim]")
        try:
            stream_order(x, descriptor)
        except InputDataError as e:
            raise InputDataError(f"{inputs} does not fit the board: {e}") from None
        columns = (TextColumn("frames"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("frames", total=len(x))
            scores, classes = run_frames(link, x, descriptor_expected=descriptor, timeout=timeout,
                                         progress=lambda done, total: bar.update(task, completed=done))
    if out_file is not None:
        save_npz(out_file, scores=scores, classes=classes)
    counts = np.bincount(classes, minlength=descriptor.classes)
    out.print(f"board: {len(classes)} frames; class counts {counts.tolist()}"
              + (f"; wrote {out_file}" if out_file is not None else ""))
    if y is not None:
        out.print(f"accuracy: board {np.mean(classes == y):.2%} on {len(y)} labelled inputs")
