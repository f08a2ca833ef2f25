"""``bnn2hw compile``: MODEL.pt to Verilog, report.json/.md and a verification input/output pair; with
--board, also to a bitstream with its synthesis and place-and-route logs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
from rich.table import Table

from ..board.boards import BOARDS, get_board
from .console import err, folding_option, model_argument, out, progress, qonnx_input_options

__all__ = ["compile_cmd"]


def _layer_table(report: dict) -> Table:
    table = Table(title="layers", title_justify="left")
    for col in ("layer", "in→out", "input", "PE", "SIMD", "cycles", "weights", "consts"):
        table.add_column(col, justify="left" if col in ("layer", "input") else "right", no_wrap=col in ("layer", "input"))
    for layer in report["layers"]:
        const = layer.get("threshold_bits", layer.get("affine_bits", 0))
        kind = ("pixels" if "pixels" in layer["input"] else "bits" if layer["input"] == "bits"
                else "codes " + layer["input"].replace("-bit codes, ", "b×").replace("-bit weights", "b"))
        suffix = {"scores": " (scores)", "conv": f" (conv ×{layer['positions']})"}.get(layer["kind"], "")
        table.add_row(layer["name"] + suffix, f"{layer['in_features']}→{layer['out_features']}", kind,
                      str(layer["pe"]), str(layer["simd"]), str(layer["cycles_per_frame"]), str(layer["weight_bits"]),
                      str(const))
    for label, cycles in report["network"].get("stream_units", []):
        table.add_row(label, "", "", "", "", str(cycles), "", "")
    return table


@click.command("compile")
@model_argument
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output directory (default: build/<model name>, or build/<model name>-<board>).")
@click.option("--board", default=None, metavar="NAME",
              help="Also build a bitstream for this board: " + ", ".join(BOARDS) + ".")
@folding_option
@click.option("--target-fps", type=float, default=None,
              help="Choose PE/SIMD per layer for at least this many frames/s at the clock (fewest resources).")
@click.option("--max-luts", type=int, default=None,
              help="Choose the fastest PE/SIMD per layer whose estimated LUTs fit in N.")
@click.option("--clock-mhz", type=float, default=None,
              help="Design clock: 100 MHz for the estimate without --board; with --board the board's "
                   "oscillator, and any other value adds a PLL.")
@click.option("--family", type=click.Choice(["ice40", "ecp5", "xilinx"]), default=None,
              help="FPGA family of the resource estimate (default: the board's, else xilinx).")
@click.option("--baud", type=int, default=115_200, show_default=True, help="UART rate of the board top.")
@click.option("--inputs", "inputs", type=click.Path(path_type=Path), default=None,
              help="X.npy for verification/ and last-layer calibration (default: 16 seeded random frames).")
@qonnx_input_options
def compile_cmd(model, out_dir, board, folding, target_fps, max_luts, clock_mhz, family, baud, inputs, input_bits,
                input_scale):
    """Compile MODEL.pt (or a QONNX MODEL.onnx) to Verilog, report.json/.md and a verification
    input/output pair; with --board, also to a bitstream with its synthesis and place-and-route logs."""
    # The build flow is imported on use, only so that `bnn2hw --help` need not load torch and
    # Amaranth; it does not import the command line.
    from ..flow import BuildConfig, build, load_inputs
    board_obj = get_board(board) if board is not None else None
    out_dir = out_dir or Path("build") / (model.stem + (f"-{board_obj.name}" if board_obj else ""))
    x = load_inputs(inputs) if inputs is not None else None
    config = BuildConfig(model=model, folding=BuildConfig.folding_from(folding, target_fps, max_luts),
                         board=board_obj, clock_mhz=clock_mhz, family=family, out_dir=out_dir, baud=baud,
                         inputs=x, calibration=x, input_bits=input_bits, input_scale=input_scale,
                         failed_logs=Path(tempfile.gettempdir()) / f"bnn2hw-{model.stem}-{board_obj.name}-failed"
                         if board_obj else None)
    err.print(f"[bold]compiling[/bold] {model}" + (f" for {board_obj.description}" if board_obj else ""))
    status = None
    on_step = None
    if board_obj is not None:
        if err.is_terminal:      # a spinner with the running step; plain lines in logs and pipes
            status = err.status("", spinner="dots")
            status.start()
            on_step = lambda step: status.update(f"{step} …")
        else:
            on_step = lambda step: err.print(f"[dim]  … {step}[/dim]")
    try:
        state = build(config, progress=progress, on_step=on_step)
    finally:
        if status is not None:
            status.stop()
    note = state.folding_note or {}
    for line in ([note["refolded"]] if "refolded" in note else []) + note.get("fit_warnings", []) + state.notes:
        err.print(f"[yellow]note:[/yellow] {line}")
    report = state.report
    out.print(_layer_table(report))
    net, est = report["network"], report["estimate"]
    out.print(f"network: {net['cycles_per_frame']} cycles/frame (bottleneck {net['bottleneck']}), "
              + (f"latency {net['latency_cycles']} cycles, " if net["latency_cycles"] is not None else
                 "latency measured by `bnn2hw simulate`, ")
              + f"{net['frames_per_second']:,.0f} frames/s at "
              f"{net['clock_mhz']:g} MHz")
    res = report["resources"]
    out.print(f"estimate ({est['target']} hardware, {est['family']} cost model): about {res['luts']:,} LUTs, "
              f"{res['ffs']:,} flip-flops, {res['bram_blocks']:g} block RAMs, {res['dsp']} DSPs")
    if report.get("board"):
        out.print(_board_summary(report))
        out.print(f"wrote {out_dir}/{report['board']['bitstream']}, {out_dir}/report.md, {out_dir}/report.png, "
                  f"{out_dir}/report.json, {out_dir}/folding.json, {out_dir}/verilog/, {out_dir}/verification/")
    else:
        out.print(f"wrote {out_dir}/verilog/bnn2hw_top.v, {out_dir}/report.json, {out_dir}/report.md, "
                  f"{out_dir}/folding.json, {out_dir}/verification/")


def _board_summary(report: dict) -> str:
    b, sim = report["board"], report["simulation"]
    pnr, syn = b["place_and_route"], b["synthesis"]
    util = pnr["utilisation"]
    cells = {"ice40": ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP"),
             "ecp5": ("TRELLIS_COMB", "DP16KD", "MULT18X18D")}[b["family"]]
    used = ", ".join(f"{name} {util[name][0]:,}/{util[name][1]:,}" for name in cells if name in util)
    timing = "meets" if pnr["timing_passed"] else "MISSES"
    return (f"{b['name']}: {syn['luts']:,} LUTs, {syn['ffs']:,} FFs, {syn['bram']:g} block RAMs (Yosys); "
            f"{used} (nextpnr); Fmax {pnr['fmax_mhz']:.1f} MHz, {timing} {pnr['target_mhz']:g} MHz; "
            f"measured {sim['cycles_per_frame']} cycles/frame, latency {sim['latency_cycles']} cycles → "
            f"{b['frames_per_second']:,.0f} frames/s at {b['clock_mhz']:g} MHz")
