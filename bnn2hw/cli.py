"""The ``bnn2hw`` command: a thin layer over bnn2hw.compiler and bnn2hw.sim.run.

Every error a user can cause is a :class:`bnn2hw.errors.Bnn2hwError`; it is printed as one line on
stderr with exit code 1 (``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from . import __version__
from .board.boards import BOARDS
from .errors import Bnn2hwError

__all__ = ["main", "cli"]

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def _progress(step: str, seconds: float) -> None:
    err.print(f"[dim]  ✓ {step} ({seconds:.1f} s)[/dim]")


class _Bnn2hwGroup(click.Group):
    """Turns bnn2hw errors into one line and exit code 1, unless --debug was given."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Bnn2hwError as e:
            if ctx.meta.get("bnn2hw.debug"):
                raise
            err.print(f"[bold red]error:[/bold red] {e}", soft_wrap=True)
            sys.exit(1)


@click.group(cls=_Bnn2hwGroup)
@click.version_option(__version__, prog_name="bnn2hw")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.pass_context
def cli(ctx, debug):
    """bnn2hw: binary neural networks from PyTorch to bit-exact FPGA hardware."""
    ctx.meta["bnn2hw.debug"] = debug


_model_arg = click.argument("model", type=click.Path(path_type=Path))
_folding_opt = click.option("--folding", "folding", type=click.Path(path_type=Path), default=None,
                            help='JSON folding file overriding PE/SIMD per layer: {"dense0": {"pe": 4, "simd": 16}}.')


def _layer_table(report: dict) -> Table:
    table = Table(title="layers", title_justify="left")
    for col in ("layer", "in→out", "input", "PE", "SIMD", "cycles", "weights", "consts"):
        table.add_column(col, justify="left" if col in ("layer", "input") else "right", no_wrap=col == "layer")
    for layer in report["layers"]:
        const = layer.get("threshold_bits", layer.get("affine_bits", 0))
        kind = "pixels" if "pixels" in layer["input"] else "bits"
        suffix = {"scores": " (scores)", "conv": f" (conv ×{layer['positions']})"}.get(layer["kind"], "")
        table.add_row(layer["name"] + suffix, f"{layer['in_features']}→{layer['out_features']}", kind,
                      str(layer["pe"]), str(layer["simd"]), str(layer["cycles_per_frame"]), str(layer["weight_bits"]),
                      str(const))
    for label, cycles in report["network"].get("stream_units", []):
        table.add_row(label, "", "", "", "", str(cycles), "", "")
    return table


@cli.command("compile")
@_model_arg
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output directory (default: build/<model name>, or build/<model name>-<board>).")
@click.option("--board", default=None, metavar="NAME",
              help="Also build a bitstream for this board: " + ", ".join(BOARDS) + ".")
@_folding_opt
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
def compile_cmd(model, out_dir, board, folding, target_fps, max_luts, clock_mhz, family, baud, inputs):
    """Compile MODEL.pt to Verilog, report.json/.md and a verification input/output pair; with
    --board, also to a bitstream with its synthesis and place-and-route logs."""
    from .compiler import DEFAULT_CLOCK_MHZ, compile_model, load_inputs, write_output_dir
    board_obj = None
    if board is not None:
        from .board.boards import get_board
        board_obj = get_board(board)
    out_dir = out_dir or Path("build") / (model.stem + (f"-{board_obj.name}" if board_obj else ""))
    x = load_inputs(inputs) if inputs is not None else None
    clock = clock_mhz or (board_obj.clock_mhz if board_obj else DEFAULT_CLOCK_MHZ)
    err.print(f"[bold]compiling[/bold] {model}" + (f" for {board_obj.description}" if board_obj else ""))
    compiled = compile_model(model, folding_file=folding, calibration=x, clock_mhz=clock, progress=_progress,
                             target_fps=target_fps, max_luts=max_luts, board=board_obj,
                             family=family or (board_obj.family if board_obj else None))
    note = compiled.folding_note or {}
    for line in ([note["refolded"]] if "refolded" in note else []) + note.get("fit_warnings", []):
        err.print(f"[yellow]note:[/yellow] {line}")
    if x is None:
        rng = np.random.default_rng(0)
        x = rng.integers(0, compiled.graph.input.max_value + 1, size=(16,) + compiled.graph.input.shape)
    extra = None
    status = None
    if board_obj is not None:
        from .board.flow import board_step
        import tempfile
        failed = Path(tempfile.gettempdir()) / f"bnn2hw-{model.stem}-{board_obj.name}-failed"
        if err.is_terminal:      # a spinner with the running step; plain lines in logs and pipes
            status = err.status("", spinner="dots")
            status.start()
            on_step = lambda step: status.update(f"{step} …")
        else:
            on_step = lambda step: err.print(f"[dim]  … {step}[/dim]")
        extra = board_step(compiled, board_obj, clock_mhz=clock_mhz, baud=baud, verification_inputs=x,
                           progress=_progress, on_step=on_step, failed_logs=failed)
    try:
        write_output_dir(compiled, out_dir, x, progress=_progress, extra=extra, folding_note=compiled.folding_note)
    finally:
        if status is not None:
            status.stop()
    report = json.loads((out_dir / "report.json").read_text())
    out.print(_layer_table(report))
    net = report["network"]
    out.print(f"network: {net['cycles_per_frame']} cycles/frame (bottleneck {net['bottleneck']}), "
              + (f"latency {net['latency_cycles']} cycles, " if net["latency_cycles"] is not None else
                 "latency measured by `bnn2hw simulate`, ")
              + f"{net['frames_per_second']:,.0f} frames/s at "
              f"{net['clock_mhz']:g} MHz")
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


@cli.command("predict")
@_model_arg
@click.option("--inputs", "inputs", type=click.Path(path_type=Path), required=True, help="X.npy of integer pixels.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None, help="Write scores and classes to Y.npz.")
@click.option("--trace", is_flag=True,
              help="Also write every layer's accumulators and outputs to Y.npz (<layer>_acc, <layer>_out).")
def predict_cmd(model, inputs, out_file, trace):
    """Run the bit-exact golden model on X.npy."""
    from . import golden
    from .compiler import fold_model, load_inputs
    if trace and out_file is None:
        raise Bnn2hwError("--trace needs --out Y.npz to write the per-layer arrays to")
    x = load_inputs(inputs)
    _, graph = fold_model(model, progress=_progress)
    result = golden.run(graph, x, trace=trace)
    if out_file is not None:
        layers = {f"{t.name}_{kind}": arr for t in result.trace for kind, arr in (("acc", t.acc), ("out", t.output))}
        _save_npz(out_file, scores=result.scores, classes=result.classes, **layers)
    counts = np.bincount(result.classes, minlength=graph.num_classes)
    out.print(f"predicted {len(result.classes)} inputs; class counts {counts.tolist()}"
              + (f"; wrote {out_file}" if out_file else ""))


@cli.command("simulate")
@_model_arg
@click.option("--inputs", "inputs", type=click.Path(path_type=Path), required=True, help="X.npy of integer pixels.")
@click.option("--simulator", type=click.Choice(["verilator", "icarus", "amaranth"]), default="verilator",
              show_default=True, help="RTL simulator.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None, help="Write scores and classes to Y.npz.")
@_folding_opt
@click.option("--labels", type=click.Path(path_type=Path), default=None,
              help="y.npy of true classes: print hardware and PyTorch accuracy.")
@click.option("--stress", is_flag=True, help="Random input gaps and output back-pressure (no timing measured).")
def simulate_cmd(model, inputs, simulator, out_file, folding, labels, stress):
    """Run the compiled RTL on every input of X.npy and compare with the golden model."""
    from .compiler import compile_model, load_inputs
    from .sim.run import simulate_compiled
    x = load_inputs(inputs)
    y = load_inputs(labels) if labels is not None else None
    compiled = compile_model(model, folding_file=folding, progress=_progress)
    err.print(f"[bold]simulating[/bold] {len(x)} frames in {simulator}")
    run = simulate_compiled(compiled, x, simulator, stress=stress)
    if out_file is not None:
        _save_npz(out_file, scores=run.result.scores, classes=run.result.classes)
    line = f"{simulator}: {len(x)} frames, {run.mismatches} mismatches against the golden model"
    if run.cycles_per_frame is not None:
        est = compiled.estimate
        line += (f", {run.cycles_per_frame} cycles/frame measured (estimate {est.cycles_per_frame}), "
                 f"latency {run.latency_cycles} cycles"
                 + (f" (estimate {est.latency_cycles})" if est.latency_cycles is not None else ""))
    out.print(line)
    if y is not None:
        from .testing import torch_forward
        y = np.asarray(y).reshape(-1)
        if len(y) != len(x):
            raise Bnn2hwError(f"--labels holds {len(y)} labels for {len(x)} inputs; give one label per input")
        torch_classes = torch_forward(compiled.torch_model, x.reshape((len(x),) + compiled.graph.input.shape)).argmax(1)
        out.print(f"accuracy: hardware {np.mean(run.result.classes == y):.2%}, "
                  f"PyTorch {np.mean(torch_classes == y):.2%} on {len(y)} labelled inputs")
    if out_file is not None:
        out.print(f"wrote {out_file}")
    if run.mismatches:
        sys.exit(1)


def _save_npz(path: Path, **arrays) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


# Commands on other topics live in their own modules; they import ``err``/``out`` from here.
from .cli_train import train_cmd  # noqa: E402
from .cli_diagnose import diagnose_cmd  # noqa: E402
from .cli_run import run_cmd  # noqa: E402

cli.add_command(train_cmd)
cli.add_command(diagnose_cmd)
cli.add_command(run_cmd)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
