"""The board top (UART ↔ network) as exported Verilog, in Icarus Verilog (and Verilator for the shipped
model) through cocotb, driven bit by bit over its rx pin: every reply (class and all scores) equals the
golden model, torch gives the same classes, the LEDs show each reply's class, info requests are
answered in order with the model's descriptor, frames sent back to back, after idle gaps, after
garbage bytes and with pixel values equal to the header bytes all work, and the host's bit time may be
2 % off. The Verilog is lint-clean; a design that stops answering fails with a clear message."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bnn2hw import golden, save
from bnn2hw.board.boards import BOARDS
from bnn2hw.codegen.export import export_board_verilog
from bnn2hw.flow import Compiled, compile_model
from bnn2hw.data import load_digits_split
from bnn2hw.errors import SimulationError
from bnn2hw.frame_codec import DESCRIPTOR_LENGTH, FRAME_HEADER, INFO_REQUEST, Descriptor, stream_order
from bnn2hw.estimate import estimate_cycles
from bnn2hw.hw.board_top import BoardTop, bridge_latency_cycles
from bnn2hw.plan import plan_network
from bnn2hw.sim.board_runner import run_board_top_rtl
from bnn2hw.testing import (build_random_conv_model, build_random_model, build_random_multibit_conv_model,
                            multibit_inputs, random_inputs, random_spec)

ROOT = Path(__file__).resolve().parents[1]
N_LEDS = 3          # fewer than the class bits of the digits model: the LEDs show the low bits


@dataclass(frozen=True)
class BoardCase:
    compiled: Compiled
    top: BoardTop
    verilog: Path
    x: np.ndarray           # inputs in the model's order
    divisor: int
    rx_skew: float


def _board_case(directory: Path, model_path: Path, x: np.ndarray, divisor: int, rx_skew: float,
                board: str | None = None) -> BoardCase:
    """``board``: compile as ``--board`` does (the board's folding and the family's unit shapes)."""
    compiled = compile_model(model_path, board=BOARDS[board] if board else None)
    top = BoardTop(compiled.stages, divisor=divisor, n_leds=N_LEDS)
    return BoardCase(compiled, top, export_board_verilog(top, directory), x, divisor, rx_skew)


@pytest.fixture(scope="module")
def digits_case(tmp_path_factory) -> BoardCase:
    """The shipped MLP as the iCEBreaker build makes it, 24 test digits, divisor 4 (the minimum), the
    host's bits 2 % long."""
    return _board_case(tmp_path_factory.mktemp("digits"), ROOT / "models" / "digits_mlp.pt",
                       load_digits_split().x_test[:24], divisor=4, rx_skew=0.02, board="icebreaker")


@pytest.fixture(scope="module")
def conv_case(tmp_path_factory) -> BoardCase:
    """A random conv model with 3 input channels (3×6×6, 3-bit pixels, 7 classes) as the ULX3S build makes
    it, divisor 5, bits 2 % short."""
    directory = tmp_path_factory.mktemp("conv")
    model, shape = build_random_conv_model(3)
    save(model, directory / "conv.pt", input_shape=shape)
    x = np.random.default_rng(3).integers(0, 1 << model[0].bits, size=(24,) + shape)
    return _board_case(directory, directory / "conv.pt", x, divisor=5, rx_skew=-0.02, board="ulx3s-85f")


@pytest.fixture(scope="module")
def w2a2_case(tmp_path_factory) -> BoardCase:
    """The shipped W2A2 MLP (2-bit activations, ternary weights) as the iCEBreaker build makes it. Its
    initiation interval (4,096 cycles) is longer than a 64-byte frame at divisor 4 (2,560 cycles): at
    the board's 104 cycles per bit nothing waits, and divisor 8 keeps the UART the slower side here."""
    return _board_case(tmp_path_factory.mktemp("w2a2"), ROOT / "models" / "digits_w2a2.pt",
                       load_digits_split().x_test[24:48], divisor=8, rx_skew=0.01, board="icebreaker")


@pytest.fixture(scope="module")
def multibit_conv_case(tmp_path_factory) -> BoardCase:
    """A random multi-bit conv model (4-bit pixels, 2- and 3-bit codes, min- and max-pools of codes,
    4-bit and ternary weights) as the ULX3S build makes it, divisor 5."""
    directory = tmp_path_factory.mktemp("multibit_conv")
    model, shape = build_random_multibit_conv_model(16)
    save(model, directory / "conv.pt", input_shape=shape)
    x = multibit_inputs(model, shape, 16, n=24)
    return _board_case(directory, directory / "conv.pt", x, divisor=5, rx_skew=-0.01, board="ulx3s-85f")


@pytest.fixture(scope="module")
def pixel8_case(tmp_path_factory) -> BoardCase:
    """A random dense model with 8-bit pixels (17-257-5), inputs full of 0xB0 and 0xB1 pixels, divisor 6."""
    directory = tmp_path_factory.mktemp("pixel8")
    spec = random_spec(65)
    save(build_random_model(spec), directory / "dense.pt", input_shape=(spec.widths[0],))
    x = random_inputs(spec, n=24, seed=65)
    x[::2, ::3] = FRAME_HEADER
    x[1::2, 1::4] = INFO_REQUEST
    return _board_case(directory, directory / "dense.pt", x, divisor=6, rx_skew=0.0)


def _run_and_check(case: BoardCase, simulator: str, build_dir: Path):
    c, top = case.compiled, case.top
    desc = top.descriptor
    assert desc == Descriptor.of(c)
    frames = stream_order(case.x, desc)
    np.testing.assert_array_equal(frames, golden.channel_last(c.graph, golden.check_inputs(c.graph, case.x)))
    run = run_board_top_rtl(case.verilog, frames, desc, divisor=case.divisor, simulator=simulator,
                            build_dir=build_dir, rx_skew=case.rx_skew, quick_build=True, seed=case.divisor)
    expected = golden.run(c.graph, case.x)
    np.testing.assert_array_equal(run.scores, expected.scores)
    np.testing.assert_array_equal(run.classes, expected.classes)
    np.testing.assert_array_equal(run.classes, c.reference(case.x).argmax(axis=1))     # torch, eval, float64
    mask = (1 << N_LEDS) - 1
    np.testing.assert_array_equal(run.leds_at_reply, run.classes & mask)
    assert run.final_leds == run.classes[-1] & mask
    assert run.descriptors == (desc,) * 3 and not run.overrun
    schedule = run.schedule
    assert schedule.back_to_back_frames >= 12 and schedule.garbage_bytes >= 3
    assert schedule.requests.count("frame") == len(case.x) >= 24
    # the transmitter sends the bytes of a reply back to back, exactly 10 bit times apart
    for start in run.reply_cycles:
        k = int(np.searchsorted(run.tx_cycles, start))
        assert np.all(np.diff(run.tx_cycles[k:k + desc.reply_length]) == 10 * case.divisor)
    return run


@pytest.mark.parametrize("simulator", ["icarus"], indirect=True)
def test_digits_mlp_board_top_over_uart(digits_case, simulator, tmp_path):
    run = _run_and_check(digits_case, simulator, tmp_path / simulator)
    # latency: the network's own + the bridge's from the receiver's stop-bit sample of the frame's last
    # byte, 9.5 nominal bit times after that byte's start edge
    d = digits_case.divisor
    last_start = run.frame_end_cycles - 10 * d * (1 + digits_case.rx_skew)
    # the network inside the board top has no class index (the bridge scans the scores): its latency is
    # the estimate of that plan (the pipelined class tournament's stages are not in it)
    c = digits_case.compiled
    inside = estimate_cycles(plan_network(c.graph, c.plan.target, class_index=False), c.estimate.clock_mhz)
    overhead = np.round(run.reply_cycles - (last_start + 9.5 * d)) - inside.latency_cycles
    assert set(overhead.tolist()) <= set(bridge_latency_cycles(digits_case.compiled.graph.num_classes))


@pytest.mark.parametrize("simulator", ["icarus"], indirect=True)
def test_conv_board_top_over_uart_sends_channel_last_pixels(conv_case, simulator, tmp_path):
    assert conv_case.top.descriptor.channels == 3 and conv_case.top.beats_per_frame == 36
    _run_and_check(conv_case, simulator, tmp_path / simulator)


@pytest.mark.parametrize("simulator", ["icarus"], indirect=True)
def test_multibit_board_tops_over_uart(w2a2_case, multibit_conv_case, simulator, tmp_path):
    """Multi-bit layers (issue 15) inside the board top: the W2A2 digits MLP and a conv model whose
    stream carries codes through windows and pools."""
    _run_and_check(w2a2_case, simulator, tmp_path / "w2a2")
    _run_and_check(multibit_conv_case, simulator, tmp_path / "conv")


@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)], indirect=True)
def test_header_valued_pixels_are_pixels_inside_a_frame(pixel8_case, simulator, tmp_path):
    run = _run_and_check(pixel8_case, simulator, tmp_path / simulator)
    # Replies here are as long as frames and the network is slow enough that the frame sent right after
    # the mid-session info request is complete before the replies queued ahead of that request are
    # sent: the info reply must still come before that frame's reply (checked in _run_and_check).
    after = run.schedule.back_to_back_frames
    assert run.info_cycles[1] > run.frame_end_cycles[after] and run.info_cycles[1] < run.reply_cycles[after]


@pytest.mark.parametrize("simulator", ["verilator"], indirect=True)
def test_board_top_verilog_is_lint_clean(digits_case, conv_case, simulator):
    from bnn2hw.sim.tools import find_simulator
    env = {**os.environ, **find_simulator("verilator")}
    for case in (digits_case, conv_case):
        proc = subprocess.run(["verilator", "--lint-only", str(case.verilog)], capture_output=True, text=True, env=env)
        assert proc.returncode == 0 and "%Warning" not in proc.stderr and "%Error" not in proc.stderr, proc.stderr


_SILENT_TOP = """module bnn2hw_board_top(input clk, input rst, input rx, output tx, output [2:0] leds, output overrun);
  assign tx = 1'b1;
  assign leds = 3'b0;
  assign overrun = 1'b0;
endmodule
"""


@pytest.mark.parametrize("simulator", ["icarus"], indirect=True)
def test_a_board_that_never_answers_fails_with_a_clear_message(pixel8_case, simulator, tmp_path):
    source = tmp_path / "silent.v"
    source.write_text(_SILENT_TOP)
    desc = pixel8_case.top.descriptor
    frames = stream_order(pixel8_case.x[:2], desc)
    expected = 3 * DESCRIPTOR_LENGTH + 2 * desc.reply_length      # info, frame, info, frame, info
    with pytest.raises(SimulationError, match=rf"sent 0 of the {expected} reply bytes and then nothing for 500 cycles"):
        run_board_top_rtl(source, frames, desc, divisor=4, simulator=simulator,
                          build_dir=tmp_path / "build", max_idle_cycles=500)
