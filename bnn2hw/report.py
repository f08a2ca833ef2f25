"""Build reports: report.json's board section, report.md and a PNG chart, estimate next to measured.

Measured numbers come only from the tools' own output (Yosys ``stat``, nextpnr's log) and from the
simulation of the verification frames; estimates come from bnn2hw.estimate, which reads the plan.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from . import __version__
from .ir import accumulator_range

__all__ = ["report_dict", "folding_dict", "folding_file_dict", "board_section", "stage_rows", "write_markdown",
           "write_chart", "GENERATOR"]

#: report.json's "generator", by which bnn2hw recognises an output directory it wrote.
GENERATOR = "bnn2hw-output"


def report_dict(compiled) -> dict:
    """report.json's contents for a :class:`bnn2hw.flow.Compiled`: every number read from its plan and
    estimates. ``estimate`` says which hardware target and FPGA family the estimate is for: the
    design that was written."""
    est, plan, board = compiled.estimate, compiled.plan, compiled.board
    layers = []
    for layer, cycles in zip(plan.layers, est.layers):
        node = layer.node
        entry = {
            "name": cycles.name, "kind": cycles.kind, "in_features": cycles.in_features,
            "out_features": cycles.out_features, "input": cycles.input, "pe": cycles.pe, "simd": cycles.simd,
            "neuron_folds": cycles.neuron_folds, "synapse_folds": cycles.synapse_folds,
            "positions": cycles.positions, "cycles_per_frame": cycles.cycles_per_frame,
            "weight_bits": cycles.weight_bits, "weight_rom_bits": cycles.weight_rom_bits,
        }
        if layer.scores:
            entry.update(score_bits=layer.score_width, affine=layer.has_affine, affine_bits=cycles.constant_bits,
                         frac_bits=node.frac_bits)
        else:
            entry.update(threshold_bits=cycles.constant_bits, threshold_width=layer.threshold_width,
                         flipped_channels=int(node.flipped.sum()), constant_channels=_constant_channels(node),
                         tie_corrections=node.tie_corrections)
        entry["resources"] = _unit_resources(compiled.resources, layer.name, f"{layer.name} window")
        layers.append(entry)
    res = compiled.resources
    return {
        "generator": GENERATOR, "bnn2hw_version": __version__, "model": compiled.model_path,
        "input": {"shape": list(compiled.graph.input.shape), "bits": compiled.graph.input.bits},
        "classes": compiled.graph.num_classes,
        "estimate": {"target": plan.target.name, "family": res.family,
                     "describes": "the network written to verilog/" if not board else
                     "the network inside the board top: verilog/'s network less its class index, which the "
                     "board top replaces with its own class scan"},
        "network": {"cycles_per_frame": est.cycles_per_frame, "latency_cycles": est.latency_cycles,
                    "clock_mhz": est.clock_mhz, "frames_per_second": est.frames_per_second,
                    "bottleneck": est.bottleneck, "stream_units": [list(s) for s in est.stream_units],
                    "weight_bits": sum(l.weight_bits for l in est.layers),
                    "threshold_bits": sum(l.constant_bits for l in est.layers)},
        "layers": layers,
        "resources": {**res.totals_json(), "target": plan.target.name, "bram": res.bram_blocks,
                      "stream_units": {label: _unit_resources(res, label)
                                       for label, _ in est.stream_units if not label.endswith(" window")},
                      "dsp_layers": [u.name for u in res.units if u.dsp]},
    }


def _unit_resources(res, *names: str) -> dict:
    """Estimated LUTs, FFs, block RAMs and DSPs of the units ``names`` together (those that exist)."""
    units = [u for u in res.units if u.name in names]
    return {"luts": round(sum(u.luts for u in units)), "ffs": sum(u.ffs for u in units),
            "bram": sum(u.bram_blocks for u in units), "dsp": sum(u.dsp for u in units)}


def _constant_channels(node) -> int:
    """Channels whose threshold lies outside the accumulator range (γ = 0, or saturated)."""
    lo, hi = accumulator_range(node.input_kind, node.in_features, node.in_bits, node.weight_precision)
    t = node.threshold_matrix
    return int(np.sum(np.all((t <= lo) | (t > hi), axis=1)))


def folding_dict(graph) -> dict:
    return {name: {"pe": f.pe, "simd": f.simd} for name, f in graph.folding}


def folding_file_dict(graph, note: dict | None = None) -> dict:
    """folding.json: the layers' PE and SIMD (what ``--folding`` reads back), and how they were chosen."""
    if not note:
        return folding_dict(graph)
    return {"_comment": "PE and SIMD per layer; edit and pass back with --folding", **note,
            "layers": folding_dict(graph)}


def _resources_json(res) -> dict:
    return {"luts": res.luts, "ffs": res.ffs, "bram": res.bram, "dsp": res.dsp, "carry": res.carry,
            "lutram": res.lutram}


def board_section(build, names: list[str], directory: Path, cycles_per_frame: int) -> dict:
    """report.json's "board" object for a :class:`bnn2hw.board.build.BoardBuild` written under ``directory``;
    ``names``: a label per hardware stage (the plan's stage names)."""
    rel = lambda p: str(Path(p).relative_to(directory))
    layer_modules = {}
    for module in build.modules:
        match = re.search(r"\.network\.layer(\d+)$", module)
        if match and int(match[1]) < len(names):
            layer_modules[names[int(match[1])]] = _subtree(build.modules, module)
    network = next((m for m in build.modules if m.endswith(".network")), None)
    top = next((m for m in build.modules if m.endswith(".board_top")), None)
    pnr = build.pnr
    fmax = pnr.fmax
    return {
        "name": build.board.name, "description": build.board.description, "family": build.board.family,
        "device": build.board.device, "clock_mhz": build.clock_mhz,
        "pll": None if build.pll is None else {"input_mhz": build.pll.input_mhz, "output_mhz": build.pll.achieved_mhz,
                                               "parameters": dict(build.pll.parameters)},
        "baud": build.baud,
        "bitstream": rel(build.bitstream),
        "logs": {"synthesis": rel(build.directory / "top.rpt"), "place_and_route": rel(build.directory / "top.tim")},
        "synthesis": _resources_json(build.synthesis) | {"cells": dict(sorted(build.synthesis.cells.items()))},
        "layers": layer_modules,
        # Hierarchy-preserving synthesis: the network alone, and the UART bridge (board top minus network).
        "network": None if network is None else _subtree(build.modules, network),
        "bridge_luts": None if (top is None or network is None) else
        _subtree(build.modules, top)["luts"] - _subtree(build.modules, network)["luts"],
        "place_and_route": {"utilisation": {k: list(v) for k, v in pnr.utilisation.items()},
                            "fmax_mhz": fmax, "target_mhz": pnr.target_mhz, "timing_passed": pnr.passed,
                            "critical_path": pnr.critical_path.to_json() if pnr.critical_path else None,
                            "options": {"yosys": build.synth_options, "nextpnr": list(build.pnr_options),
                                        "seeds_missed": [list(x) for x in build.seeds_missed]}},
        "frames_per_second": build.clock_mhz * 1e6 / cycles_per_frame,
        "seconds": build.seconds,
    }


def _subtree(modules: dict, root: str) -> dict:
    """Resources of module ``root`` and every module below it (stat lists each module's own cells)."""
    parts = [res for name, res in modules.items() if name == root or name.startswith(root + ".")]
    return {key: sum(getattr(r, key) for r in parts) for key in ("luts", "ffs", "bram", "dsp", "carry", "lutram")}


def stage_rows(report: dict) -> list[dict]:
    """Per layer: estimated cycles, LUTs, FFs, block RAM next to the measured ones (None where absent)."""
    board = report.get("board") or {}
    measured = board.get("layers", {})
    rows = []
    for layer in report["layers"]:
        est = layer.get("resources", {})
        got = measured.get(layer["name"], {})
        rows.append({"name": layer["name"], "pe": layer["pe"], "simd": layer["simd"],
                     "cycles": layer["cycles_per_frame"],
                     "luts_est": est.get("luts"), "luts": got.get("luts"),
                     "ffs_est": est.get("ffs"), "ffs": got.get("ffs"),
                     "bram_est": est.get("bram"), "bram": got.get("bram")})
    # A window unit is part of its convolution's stage (both estimate and measurement count it there).
    units_est = (report.get("resources") or {}).get("stream_units", {})
    for label, cycles in report["network"].get("stream_units", []):
        est, got = units_est.get(label, {}), measured.get(label, {})
        rows.append({"name": label, "pe": None, "simd": None, "cycles": cycles, "luts_est": est.get("luts"),
                     "luts": got.get("luts"), "ffs_est": est.get("ffs"), "ffs": got.get("ffs"),
                     "bram_est": est.get("bram"), "bram": got.get("bram")})
    return rows


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def write_markdown(report: dict, path: Path) -> None:
    """report.md: the per-layer table and the whole-design figures, estimate next to measured."""
    net, board, sim = report["network"], report.get("board"), report.get("simulation")
    lines = [f"# bnn2hw build report: {Path(report['model']).name}", ""]
    if board:
        lines += [f"Board **{board['name']}** ({board['description']}), design clock {board['clock_mhz']:g} MHz"
                  + (f" from a PLL ({board['pll']['input_mhz']:g} MHz oscillator)" if board["pll"] else "")
                  + f", UART {board['baud']} baud. Bitstream `{board['bitstream']}`; logs `{board['logs']['synthesis']}`"
                  f" (Yosys), `{board['logs']['place_and_route']}` (nextpnr).", ""]
    lines += ["## Whole design", "", "| | estimate | measured | source of the measurement |", "|---|---|---|---|"]
    lines.append(f"| cycles per frame | {_fmt(net['cycles_per_frame'])} | "
                 f"{_fmt(sim and sim.get('cycles_per_frame'))} | {sim['simulator'] + ' simulation' if sim else '–'} |")
    lines.append(f"| latency (cycles) | {_fmt(net['latency_cycles'])} | {_fmt(sim and sim.get('latency_cycles'))} | "
                 f"{sim['simulator'] + ' simulation' if sim else '–'} |")
    if board:
        pnr, syn = board["place_and_route"], board["synthesis"]
        est = report.get("resources") or {}
        lines.append(f"| Fmax (MHz) | – | {_fmt(pnr['fmax_mhz'])} ({'meets' if pnr['timing_passed'] else 'misses'} "
                     f"{_fmt(pnr['target_mhz'])} MHz) | nextpnr |")
        fps = board["clock_mhz"] * 1e6 / net["cycles_per_frame"]
        lines.append(f"| frames/s at {board['clock_mhz']:g} MHz | {_fmt(fps)} | "
                     f"{_fmt(board['frames_per_second'] if sim and sim.get('cycles_per_frame') else None)} | "
                     "clock × measured cycles |")
        # The estimate covers the network only: it stands beside the network's own measured count, and
        # the whole board design (UART bridge, LEDs, clocking) gets a row of its own.
        network = board.get("network") or {}
        for key, label in (("luts", "LUTs"), ("ffs", "flip-flops"), ("bram", "block RAMs"), ("dsp", "DSPs")):
            lines.append(f"| {label}, network | {_fmt(est.get(key))} | {_fmt(network.get(key))} | "
                         "Yosys stat, network module |")
            lines.append(f"| {label}, whole board design | – | {_fmt(syn[key])} | Yosys stat |")
        critical = pnr.get("critical_path")
        if critical:
            lines += ["", f"Critical path (nextpnr, {critical['clock'] or 'the design clock'}): "
                          f"{critical['source']} → {critical['sink']}, {critical['delay_ns']:.2f} ns: "
                          f"{critical['logic_levels']} logic levels, {critical['routing_ns']:.2f} ns of it routing; "
                          "through " + " → ".join(f"`{n}`" for n in critical["through"]) + "."]
        options = pnr.get("options")
        if options:
            lines += ["", f"Tool options: Yosys `{options['yosys'] or '(defaults)'}`, nextpnr "
                          f"`{' '.join(options['nextpnr']) or '(defaults)'}` (docs/boards.md)"
                          + ("; placement seeds tried first: " + ", ".join(f"{s} ({mhz:.2f} MHz)" for s, mhz in
                                                                             options["seeds_missed"])
                             if options.get("seeds_missed") else "") + "."]
        lines += ["", "nextpnr's utilisation of the device (used / available):", ""]
        lines += [f"- {k}: {u:,} / {a:,}" for k, (u, a) in pnr["utilisation"].items() if u]
        if board.get("bridge_luts") is not None:
            lines += ["", f"The UART bridge, LED and clock logic take {board['bridge_luts']:,} LUTs of these "
                          "(Yosys, by module)."]
        lines += ["", "Tool run times: " + ", ".join(f"{k} {v:.1f} s" for k, v in board["seconds"].items())]
    lines += ["", "## Per layer", "",
              "Measured per-layer numbers are Yosys' counts of each layer's module in the placed netlist; "
              "cycles per layer are the estimate (the whole design's are measured above).", "",
              "| layer | PE | SIMD | cycles | LUTs est. | LUTs | FFs est. | FFs | BRAM est. | BRAM |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in stage_rows(report):
        lines.append("| " + " | ".join([r["name"], _fmt(r["pe"]), _fmt(r["simd"]), _fmt(r["cycles"]),
                                         _fmt(r["luts_est"]), _fmt(r["luts"]), _fmt(r["ffs_est"]), _fmt(r["ffs"]),
                                         _fmt(r["bram_est"]), _fmt(r["bram"])]) + " |")
    if report.get("chart"):
        lines += ["", f"![resources and cycles per layer]({report['chart']})"]
    Path(path).write_text("\n".join(lines) + "\n")


def write_chart(report: dict, path: Path) -> None:
    """A PNG of cycles, LUTs, FFs and block RAM per layer; estimates hatched beside measurements."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = stage_rows(report)
    names = [r["name"] for r in rows]
    x = np.arange(len(rows))
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    panels = [("cycles", None, "cycles per frame (estimate)"), ("luts", "luts_est", "LUTs"),
              ("ffs", "ffs_est", "flip-flops"), ("bram", "bram_est", "block RAMs")]
    for ax, (key, est_key, title) in zip(axes.flat, panels):
        if est_key is None:
            ax.bar(x, [r[key] for r in rows], color="#4c72b0")
            ax.axhline(report["network"]["cycles_per_frame"], color="#c44e52", linestyle="--",
                       label="initiation interval")
            cycles = [r[key] for r in rows if r[key]]
            if cycles and max(cycles) >= 20 * min(cycles):
                # log scale only where the layers differ by orders of magnitude (conv networks), and
                # from 1, so that a bar's height still reads as its size
                ax.set_yscale("log")
                ax.set_ylim(bottom=1)
            ax.legend(fontsize=8)
        else:
            zero = lambda v: 0 if v is None else v
            ax.bar(x - 0.2, [zero(r[est_key]) for r in rows], 0.4, label="estimate", color="#dddddd",
                   edgecolor="#555555", hatch="//")
            ax.bar(x + 0.2, [zero(r[key]) for r in rows], 0.4, label="measured (Yosys)", color="#4c72b0")
            ax.legend(fontsize=8)
        ax.set_title(title)
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    board = report.get("board")
    fig.suptitle(f"{Path(report['model']).name}" + (f" on {board['name']}" if board else ""))
    fig.savefig(path, dpi=110)
    plt.close(fig)
