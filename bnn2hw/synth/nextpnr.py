"""nextpnr place-and-route (iCE40, ECP5) and the parser of its log.

Benchmarks place a design *out of context*: no pin constraints (``--pcf-allow-unconstrained`` /
``--lpf-allow-unconstrained``), and a generated design whose stream ports are far wider than any
package (LFC's 784-bit input, for one) is wrapped first by ``synthesize(..., ooc_wrapper=True)``:
three pins (clock, serial in, serial out), the inputs driven from a shift register and the outputs
folded into a registered XOR tree (``yosys.ooc_wrapper_verilog``). The design's own paths are
unchanged and nothing of it is optimised away; the utilisation nextpnr reports includes the wrapper
(one flip-flop per input bit, ≈ ⅓ LUT and flip-flop per output bit), and Fmax is the design's
unless its paths are shorter than one LUT.

By default nextpnr is run with ``--timing-allow-fail``: a design that misses ``freq_mhz`` still
yields its Fmax, and ``PnrResult.passed`` says whether it met the target.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import ToolError
from .yosys import run_tool, tool_error_lines

__all__ = ["PnrResult", "CriticalPath", "place_and_route", "parse_nextpnr_log", "parse_timing_report",
           "PNR_FAMILIES", "PNR_OPTIONS", "PNR_SEEDS"]

PNR_FAMILIES = ("ice40", "ecp5")
#: Extra nextpnr options per family, chosen by measurement on bnn2hw's designs (docs/benchmarks.md,
#: "Timing closure (issue 17)"); board builds and the out-of-context runs both use them.
#: iCE40: a stronger timing weight in the analytic placer (nextpnr's defaults are 10 and 2): the digits
#: model's iCEBreaker build at 60 MHz asked reached 60.93 / 61.79 / 57.91 MHz over seeds 1-3 with it,
#: 53.56 / 59.79 / 53.57 with the defaults (routing was 75 % of the critical paths).
PNR_OPTIONS: dict[str, tuple[str, ...]] = {
    "ice40": ("--placer-heap-timingweight", "40", "--placer-heap-critexp", "6"), "ecp5": ()}
#: Placement seeds a board build tries, in order, until one meets the design clock (the first that does
#: is kept; with none, the build fails naming each seed's Fmax). On the UP5K at 60 MHz the seed moves
#: Fmax by +-4 MHz (docs/benchmarks.md), more than any one of the last register changes did.
PNR_SEEDS: dict[str, tuple[int, ...]] = {"ice40": (1, 2, 3, 4), "ecp5": (1, 2)}
#: nextpnr's generated suffixes of a cell name (packed LUTs, flip-flops, carries), cut to name a signal.
_CELL_SUFFIX = re.compile(r"_(?:TRELLIS_|SB_|LUT4|CCU2C|PFUMX|L6MUX21|MULT18X18D|DP16KD|DFF|ICESTORM|CARRY)")


def _signal_name(cell: str) -> str:
    name = _CELL_SUFFIX.split(cell, 1)[0]
    return name.replace("$glbnet$", "").strip("$") or cell


@dataclass(frozen=True)
class CriticalPath:
    """The slowest register-to-register path nextpnr reports (its ``--report`` JSON): where it starts and
    ends (the signals, from nextpnr's cell names), its delay, how much of it is routing, and its logic
    levels (cells entered through the fabric; a carry chain counts once)."""
    clock: str
    source: str
    sink: str
    delay_ns: float
    routing_ns: float
    logic_levels: int
    through: tuple[str, ...] = ()      # the signals it passes, in order (consecutive repeats merged)

    def describe(self) -> str:
        return (f"{self.source} → {self.sink}: {self.delay_ns:.2f} ns, {self.logic_levels} logic levels, "
                f"{self.routing_ns:.2f} ns of it routing")

    def to_json(self) -> dict:
        return {"clock": self.clock, "source": self.source, "sink": self.sink, "delay_ns": round(self.delay_ns, 2),
                "routing_ns": round(self.routing_ns, 2), "logic_levels": self.logic_levels,
                "through": list(self.through), "description": self.describe()}


def parse_timing_report(text: str) -> CriticalPath | None:
    """The critical path of the slowest clock from nextpnr's ``--report`` JSON (None if it has none)."""
    data = json.loads(text)
    fmax = data.get("fmax", {})
    paths = data.get("critical_paths", [])
    if not paths:
        return None
    slowest = min(fmax, key=lambda c: fmax[c]["achieved"]) if fmax else None
    same = [p for p in paths if slowest and p.get("from", "").endswith(slowest) and p.get("to", "").endswith(slowest)]
    chosen = max(same or paths, key=lambda p: sum(e["delay"] for e in p["path"]))
    elems = chosen["path"]
    if not elems:
        return None
    routing = sum(e["delay"] for e in elems if e["type"] == "routing")
    levels, through = 0, []
    for prev, e in zip([None] + elems, elems):
        if e["type"] == "logic" and (prev is None or prev["type"] != "routing" or prev["delay"] > 0):
            levels += 1
        if e["to"]["cell"].startswith("$nextpnr"):      # a cell nextpnr made (e.g. a carry-chain feed-in)
            continue
        name = _signal_name(e["to"]["cell"])
        if not through or through[-1] != name:
            through.append(name)
    first, last = elems[0], elems[-1]
    return CriticalPath(clock=slowest or "", source=_signal_name(first["from"]["cell"]),
                        sink=_signal_name(last["to"]["cell"]), delay_ns=sum(e["delay"] for e in elems),
                        routing_ns=routing, logic_levels=levels, through=tuple(through))

Progress = Callable[[str, float], None]

_FMAX = re.compile(r"^(?:Info|Warning|ERROR):\s+Max frequency for clock\s+'(.+?)':\s+([\d.]+)\s+MHz\s+"
                   r"\((PASS|FAIL) at\s+([\d.]+)\s+MHz\)", re.M)
_UTIL_ROW = re.compile(r"^Info:\s+([A-Za-z0-9_]+):\s+(\d+)\s*/\s*(\d+)\s+\d+%\s*$")


@dataclass(frozen=True)
class PnrResult:
    """What nextpnr reported.

    ``fmax_mhz``: clock → the final "Max frequency for clock" figure (after routing); ``target_mhz``:
    the frequency it was checked against; ``passed``: every clock met it (None: no clock was timed);
    ``utilisation``: resource (nextpnr's BEL type, e.g. ICESTORM_LC, TRELLIS_COMB) → (used, available),
    from the last "Device utilisation" table."""
    fmax_mhz: dict = field(default_factory=dict)
    target_mhz: float | None = None
    passed: bool | None = None
    utilisation: dict = field(default_factory=dict)
    family: str | None = None
    device: str | None = None
    package: str | None = None
    log_path: Path | None = None
    output_path: Path | None = None
    seconds: float | None = None
    critical_path: CriticalPath | None = None

    @property
    def fmax(self) -> float | None:
        """The slowest clock's Fmax in MHz (None if no clock was timed)."""
        return min(self.fmax_mhz.values()) if self.fmax_mhz else None

    def to_json(self) -> dict:
        return {"family": self.family, "device": self.device, "package": self.package,
                "fmax_mhz": self.fmax_mhz, "target_mhz": self.target_mhz, "passed": self.passed,
                "utilisation": {k: list(v) for k, v in self.utilisation.items()},
                "seconds": None if self.seconds is None else round(self.seconds, 1),
                "critical_path": self.critical_path.to_json() if self.critical_path else None}


def parse_nextpnr_log(text: str) -> PnrResult:
    """Fmax per clock, target, pass/fail and the utilisation table from a nextpnr log (``-l`` file).

    The "Max frequency" lines appear after placement and again after routing; the last line of each
    clock wins. ``ERROR:`` lines of a timing failure (nextpnr without ``--timing-allow-fail``) count too."""
    fmax, status, target = {}, {}, None
    for clock, mhz, verdict, at in _FMAX.findall(text):
        fmax[clock] = float(mhz)
        status[clock] = verdict == "PASS"
        target = float(at)
    util: dict = {}
    block: dict | None = None
    for line in text.splitlines():
        if re.match(r"^Info:\s+Device utilisation:", line):
            block = {}
            util = block                 # the last table wins
            continue
        if block is not None:
            row = _UTIL_ROW.match(line)
            if row:
                block[row[1]] = (int(row[2]), int(row[3]))
            elif line.strip() not in ("", "Info:"):
                block = None
    return PnrResult(fmax_mhz=fmax, target_mhz=target, passed=all(status.values()) if status else None,
                     utilisation=util)


def _device_args(family: str, device: str, package: str) -> list[str]:
    dev = device.lower().lstrip("-")
    if family == "ice40":
        dev = dev.removeprefix("ice40").removeprefix("-")
        return [f"--{dev}", "--package", package]
    if family == "ecp5":
        dev = dev.removeprefix("lfe5u").removeprefix("-").removesuffix("f")
        return [f"--{dev}", "--package", package.upper()]
    raise ValueError(f"nextpnr runs for {', '.join(PNR_FAMILIES)}, not {family!r}")


def place_and_route(json_path: str | Path, family: str, device: str, package: str, workdir: str | Path, *,
                    freq_mhz: float, pcf_or_lpf: str | Path | None = None, progress: Progress | None = None,
                    top: str | None = None, seed: int = 1, timing_allow_fail: bool = True,
                    write_output: bool = False, timeout: float | None = None,
                    options: tuple[str, ...] | None = None) -> PnrResult:
    """Place and route a Yosys JSON netlist with nextpnr-``family`` in ``workdir``.

    ``device``/``package``: e.g. ``"up5k", "sg48"`` (iCE40) or ``"85k", "CABGA381"`` (ECP5 LFE5U-85F;
    ``"um5g-85k"`` etc. also work). ``pcf_or_lpf``: pin constraints (copied into ``workdir`` if
    elsewhere); without one every pin is placed freely (out of context). ``top``: the netlist's top
    module (default: the one the JSON marks). ``write_output``: also write the ``.asc`` (iCE40) or
    ``.config`` (ECP5) file for icepack / ecppack. ``options``: extra nextpnr options (default:
    :data:`PNR_OPTIONS`). Writes ``pnr_<family>.log`` and ``pnr_<family>_timing.json`` (nextpnr's
    report, whose critical path becomes ``PnrResult.critical_path``). Raises
    :class:`~bnn2hw.errors.ToolError` with nextpnr's ERROR lines when it fails (a missed clock target
    is not a failure unless ``timing_allow_fail=False``)."""
    json_path, workdir = Path(json_path).resolve(), Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if json_path.parent != workdir:
        (workdir / json_path.name).write_bytes(json_path.read_bytes())
    log = workdir / f"pnr_{family}.log"
    report = workdir / f"pnr_{family}_timing.json"
    log.unlink(missing_ok=True)
    report.unlink(missing_ok=True)
    args = _device_args(family, device, package) + ["--json", json_path.name, "--freq", f"{freq_mhz:g}",
                                                    "--seed", str(seed), "-l", log.name, "--report", report.name]
    args += list(PNR_OPTIONS[family] if options is None else options)
    if top:
        args += ["--top", top]
    if timing_allow_fail:
        args.append("--timing-allow-fail")
    if pcf_or_lpf is not None:
        constraints = Path(pcf_or_lpf).resolve()
        if constraints.parent != workdir:
            (workdir / constraints.name).write_bytes(constraints.read_bytes())
        args += ["--pcf" if family == "ice40" else "--lpf", constraints.name]
    args.append("--pcf-allow-unconstrained" if family == "ice40" else "--lpf-allow-unconstrained")
    output = None
    if write_output:
        output = workdir / (json_path.stem + (".asc" if family == "ice40" else ".config"))
        args += ["--asc" if family == "ice40" else "--textcfg", output.name]
    t0 = time.perf_counter()
    run_tool(f"nextpnr-{family}", args, workdir, log, f"nextpnr-{family} of {json_path.name}", timeout)
    seconds = time.perf_counter() - t0
    if progress:
        progress(f"nextpnr-{family}", seconds)
    text = log.read_text(errors="replace") if log.is_file() else ""
    parsed = parse_nextpnr_log(text)
    if not parsed.utilisation:
        raise ToolError(f"nextpnr-{family} of {json_path.name} reported no device utilisation",
                        tool_error_lines(text), str(log))
    critical = parse_timing_report(report.read_text()) if report.is_file() else None
    return PnrResult(fmax_mhz=parsed.fmax_mhz, target_mhz=parsed.target_mhz, passed=parsed.passed,
                     utilisation=parsed.utilisation, family=family, device=device, package=package,
                     log_path=log, output_path=output, seconds=seconds, critical_path=critical)
