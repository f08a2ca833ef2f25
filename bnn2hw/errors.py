"""Typed errors. Each carries one sentence that says what is wrong, where, and how to fix it.

The CLI prints ``str(error)`` and exits non-zero; nothing else is shown unless ``--debug`` is given.
"""

from __future__ import annotations

__all__ = [
    "Bnn2hwError", "ModelFileError", "UnsupportedModelError", "InputDataError", "FoldingError",
    "ToolNotFoundError", "ToolError", "SimulationError", "DatasetError", "TrainingConfigError",
]


class Bnn2hwError(Exception):
    """Base class of every error bnn2hw reports to a user."""


class ModelFileError(Bnn2hwError):
    """A model file is missing, unreadable, unsafe, or not written by ``bnn2hw.save``."""


class UnsupportedModelError(Bnn2hwError):
    """The model has layers or a layer order that bnn2hw cannot compile.

    ``problems`` lists every offending layer as ``(position, description)`` so all of them are named
    at once, not one per run.
    """

    def __init__(self, problems: list[tuple[int | None, str]], hint: str = ""):
        self.problems = list(problems)
        parts = [(f"layer {pos}: " if pos is not None else "") + text for pos, text in self.problems]
        message = "the model cannot be compiled: " + "; ".join(parts)
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class InputDataError(Bnn2hwError):
    """Input data has the wrong shape, dtype or value range for the model."""


class FoldingError(Bnn2hwError):
    """A folding (PE/SIMD per layer) request is malformed or impossible, or threshold folding failed."""


class ToolNotFoundError(Bnn2hwError):
    """An external tool (simulator, synthesiser) is not installed or not on PATH."""


class ToolError(Bnn2hwError):
    """An external tool (Yosys, nextpnr, a bitstream packer) ran and failed.

    The message names the tool and step and quotes the tool's own error lines; ``log`` is the path
    of its full log when one was written, ``lines`` the quoted lines."""

    def __init__(self, message: str, lines: list[str] | tuple[str, ...] = (), log: str | None = None):
        self.lines = tuple(lines)
        self.log = log
        if self.lines:
            message += ":\n" + "\n".join(f"  {line}" for line in self.lines)
        if log:
            message += f"\n(full log: {log})"
        super().__init__(message)


class SimulationError(Bnn2hwError):
    """A simulation run failed or produced no result."""


class DatasetError(Bnn2hwError):
    """A data set's files are missing or malformed, or the data set is unknown."""


class TrainingConfigError(Bnn2hwError, ValueError):
    """A training option is out of range or names something that does not exist."""


class BoardError(Bnn2hwError):
    """A board on a serial port did not answer as the frame protocol says (docs/board_protocol.md):
    no reply in time, a descriptor of another design, a wrong header byte, or a short reply; or a
    board top cannot be built as asked (UART divisor below 4, baud rate more than 2 % off)."""


__all__ += ["BoardError"]


class FitError(Bnn2hwError):
    """The design does not fit the device: ``resource`` (e.g. "luts", "bram_blocks"), the ``need`` of
    the design and the device's ``capacity``; the message says what to change."""

    def __init__(self, message: str, resource: str | None = None, need: float | None = None,
                 capacity: float | None = None):
        self.resource, self.need, self.capacity = resource, need, capacity
        super().__init__(message)


__all__ += ["FitError"]


class OutputError(Bnn2hwError):
    """The output directory cannot be written: a read-only file system, missing permission, a
    symbolic link, a full disk, or a directory bnn2hw did not write."""


__all__ += ["OutputError"]
