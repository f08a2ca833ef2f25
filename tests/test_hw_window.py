"""Sliding-window and max-pool units in Amaranth's simulator against their numpy references."""

import os
import random
import subprocess

import numpy as np
import pytest
import torch
from amaranth.back import verilog

from bnn2hw.golden.packing import pack_fields, unpack_fields
from bnn2hw.hw.maxpool import MaxPoolParams, MaxPoolUnit, reference_maxpool
from bnn2hw.hw.sliding_window import SlidingWindowUnit, WindowParams, reference_windows
from bnn2hw.sim.streams import StreamConsumer, StreamProducer, random_gaps, random_ready, simulate_streams


def run_stream(dut, words, n_out, *, gaps=False, backpressure=False, seed=0, tail=12):
    """Drive ``words`` into ``dut.i`` and collect ``n_out`` payloads from ``dut.o``; then watch ``tail``
    more cycles, in which nothing may come out. Returns (payloads, input cycles, output cycles)."""
    producer = StreamProducer(dut.i, words, gaps=random_gaps(random.Random(seed), (0, 0, 0, 1, 3)) if gaps else None)
    consumer = StreamConsumer(dut.o, n_out, ready=random_ready(random.Random(seed + 1), 0.5) if backpressure else None,
                              max_cycles=50_000)

    async def consume(ctx):
        await consumer.run(ctx)
        await consumer.expect_silence(ctx, tail)

    simulate_streams(dut, producers=[producer], testbenches=[consume])
    return [int(p) for p in consumer.payloads], producer.taken, consumer.cycles


def random_window_params(seed):
    rng = random.Random(seed)
    while True:
        h, w = rng.randint(1, 9), rng.randint(1, 9)
        kernel, padding = (rng.randint(1, 7), rng.randint(1, 7)), (rng.randint(0, 3), rng.randint(0, 3))
        stride = rng.choice(((1, 1), (2, 2), (1, 2), (2, 1)))
        if kernel[0] <= h + 2 * padding[0] and kernel[1] <= w + 2 * padding[1]:
            break
    eb = rng.choice((1, 8))
    return WindowParams(h, w, rng.randint(1, 9), eb, kernel, stride, padding, pad_value=rng.randrange(1 << eb))


CORNERS = [
    WindowParams(3, 4, 2, 8, kernel=(5, 6), padding=(1, 1), pad_value=0),      # kernel = padded image
    WindowParams(4, 5, 3, 1, kernel=1),                                           # 1×1 kernel
    WindowParams(3, 3, 2, 1, kernel=2, stride=2),                                 # one window fits
    WindowParams(5, 6, 1, 8, kernel=1, stride=(4, 3), pad_value=7),               # skipped rows and columns
    WindowParams(1, 7, 4, 1, kernel=(1, 3), padding=(0, 1), pad_value=1),         # single row
    WindowParams(1, 6, 2, 8, kernel=3, padding=1, pad_value=128),                 # single row, pad rows around
    WindowParams(6, 1, 3, 1, kernel=(3, 1), stride=2, padding=(1, 0)),            # single column
    WindowParams(3, 1, 1, 8, kernel=(2, 7), padding=(0, 3), pad_value=255),       # single column, pad columns
    WindowParams(1, 1, 5, 1, kernel=3, padding=1),                                # 1×1 image
    WindowParams(2, 3, 2, 1, kernel=1, padding=(3, 2), pad_value=1),              # windows wholly in padding
    WindowParams(9, 9, 9, 8, kernel=7, padding=3, pad_value=0),                   # largest kernel, pixels
    WindowParams(6, 5, 3, 1, kernel=3, stride=(1, 2), padding=1, extra_rows=2),   # deeper line buffer
]


def stream_windows(p, frames, seed, **kwargs):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 1 << p.elem_bits, size=(frames, p.height, p.width, p.channels))
    words = [pack_fields(pixel, p.elem_bits) for pixel in x.reshape(-1, p.channels)]
    windows = reference_windows(x, p).reshape(-1, p.window_bits // p.elem_bits)
    expected = [pack_fields(win, p.elem_bits) for win in windows]
    outs, in_cycles, out_cycles = run_stream(SlidingWindowUnit(p), words, len(expected), seed=seed, **kwargs)
    return outs, expected, in_cycles, out_cycles


@pytest.mark.parametrize("params", [random_window_params(s) for s in range(24)] + CORNERS, ids=repr)
def test_windows_are_bit_exact_under_stalls(params):
    outs, expected, _, _ = stream_windows(params, frames=3 if params.height * params.width <= 30 else 2,
                                          seed=params.height + 7 * params.width, gaps=True, backpressure=True)
    assert outs == expected


@pytest.mark.parametrize("params", [
    WindowParams(6, 7, 2, 1, kernel=3, padding=1),            # scan-bound: oh·(W + 2) > H·W
    WindowParams(7, 6, 1, 8, kernel=(3, 2), stride=2),        # input-bound
    WindowParams(4, 4, 2, 1, kernel=(4, 3), stride=(2, 1), padding=(2, 1)),  # needs more than lookahead_rows
], ids=repr)
def test_free_running_rate_and_latency_are_as_documented(params):
    p = params
    assert p.cycles_per_frame == max(p.height * p.width, p.out_height * p.scan_width)
    assert p.slots >= p.lookahead_rows
    frames = 4
    _, expected, in_cycles, out_cycles = stream_windows(p, frames=frames, seed=1)
    per_frame = len(expected) // frames
    ends = [out_cycles[(f + 1) * per_frame - 1] for f in range(frames)]
    assert {b - a for a, b in zip(ends[1:], ends[2:])} == {p.cycles_per_frame}
    # First window: its rows complete, then 1 cycle, kw columns read, and 2 pipeline cycles.
    _, hi, _ = p.row_spans()[0]
    assert out_cycles[0] - in_cycles[hi * p.width - 1] == p.kernel[1] + 2


def test_window_order_is_torch_conv_weight_order():
    """windows · W.permute(0, 2, 3, 1).reshape(out, -1)ᵀ equals torch's convolution of the padded image."""
    p = WindowParams(5, 6, 3, 8, kernel=(3, 2), stride=(2, 1), padding=(1, 2), pad_value=9)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(2, 5, 6, 3))
    w = torch.from_numpy(rng.standard_normal((4, 3, 3, 2)))
    padded = torch.nn.functional.pad(torch.from_numpy(x).permute(0, 3, 1, 2).double(), (2, 2, 1, 1), value=9)
    conv = torch.nn.functional.conv2d(padded, w, stride=(2, 1))                       # (2, 4, oh, ow)
    windows = torch.from_numpy(reference_windows(x, p)).double()                        # (2, oh·ow, kh·kw·C)
    ours = windows @ w.permute(0, 2, 3, 1).reshape(4, -1).T                             # (2, oh·ow, 4)
    assert torch.allclose(ours, conv.flatten(2).transpose(1, 2))


def random_pool_params(seed):
    rng = random.Random(100 + seed)
    k, s = rng.randint(1, 4), rng.randint(1, 4)
    h, w, c = rng.randint(k, 9), rng.randint(k, 9), rng.randint(1, 9)
    return MaxPoolParams(h, w, c, k, s, tuple(rng.random() < 0.5 for _ in range(c)))


@pytest.mark.parametrize("params", [random_pool_params(s) for s in range(8)]
                         + [MaxPoolParams(4, 4, 3, 2, 2, (True, False, True)), MaxPoolParams(1, 5, 2, 1, 3)], ids=repr)
def test_maxpool_is_bit_exact_under_stalls(params):
    p = params
    rng = np.random.default_rng(p.height * p.width)
    bits = rng.integers(0, 2, size=(3, p.height, p.width, p.channels))
    words = [pack_fields(pixel, 1) for pixel in bits.reshape(-1, p.channels)]
    pooled = reference_maxpool(bits, p.kernel, p.stride, p.and_mask).reshape(-1, p.channels)
    expected = [pack_fields(px, 1) for px in pooled]
    outs, _, _ = run_stream(MaxPoolUnit(p), words, len(expected), gaps=True, backpressure=True, seed=p.channels)
    assert outs == expected


def test_maxpool_reference_is_torch_max_and_min_of_plus_minus_one():
    rng = np.random.default_rng(2)
    bits = rng.integers(0, 2, size=(2, 7, 6, 4))
    mask = (False, True, True, False)
    pm = torch.from_numpy(2.0 * bits - 1).permute(0, 3, 1, 2)
    hi = torch.nn.functional.max_pool2d(pm, 3, 2)
    lo = -torch.nn.functional.max_pool2d(-pm, 3, 2)
    expected = torch.where(torch.tensor(mask).view(1, 4, 1, 1), lo, hi).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(2 * reference_maxpool(bits, 3, 2, mask).astype(int) - 1, expected)
    assert unpack_fields(pack_fields([1, 0, 1], 1), 3, 1) == [1, 0, 1]        # channel c at bit c


def test_maxpool_rate_is_one_pixel_per_cycle():
    p = MaxPoolParams(6, 8, 2, 2, 2, (False, True))
    assert p.window.slots == 4 and p.cycles_per_frame == 6 * 8
    bits = np.random.default_rng(3).integers(0, 2, size=(4, 6, 8, 2))
    words = [pack_fields(pixel, 1) for pixel in bits.reshape(-1, 2)]
    n = p.out_height * p.out_width
    _, in_cycles, out_cycles = run_stream(MaxPoolUnit(p), words, 4 * n)
    assert in_cycles == list(range(in_cycles[0], in_cycles[0] + len(words)))       # never a stall
    assert {out_cycles[(f + 1) * n - 1] - out_cycles[f * n - 1] for f in range(2, 4)} == {48}


@pytest.mark.parametrize("kwargs,message", [
    (dict(height=0), "height must be a positive integer, not 0"),
    (dict(channels=2.0), "channels must be a positive integer, not 2.0"),
    (dict(elem_bits=9), "elem_bits must be an integer in 1..8, not 9"),
    (dict(kernel=8), r"kernel must be an integer or a pair of integers in 1..7, not 8"),
    (dict(kernel=(3, 3, 3)), r"kernel must be an integer or a pair"),
    (dict(stride=0), r"stride must be an integer or a pair of integers in 1..4, not 0"),
    (dict(padding=(1, 4)), r"padding must be an integer or a pair of integers in 0..3, not \(1, 4\)"),
    (dict(elem_bits=1, pad_value=2), "pad_value must be an unsigned 1-bit code, not 2"),
    (dict(kernel=(3, 7)), "kernel 3×7 does not fit the padded 4×5 image"),
    (dict(extra_rows=-1), "extra_rows must be an integer in 0..64, not -1"),
])
def test_window_parameters_are_checked(kwargs, message):
    good = dict(height=4, width=5, channels=2, elem_bits=8, kernel=3)
    with pytest.raises(ValueError, match=message):
        WindowParams(**{**good, **kwargs})


@pytest.mark.parametrize("kwargs,message", [
    (dict(kernel=5), "kernel must be an integer in 1..4, not 5"),
    (dict(stride=0), "stride must be an integer in 1..4, not 0"),
    (dict(height=1), "pool kernel 2 does not fit the 1×5 image"),
    (dict(and_mask=(True,)), r"and_mask must hold 2 bools, not \(True,\)"),
    (dict(and_mask=(1, 0)), "and_mask must hold 2 bools"),
])
def test_maxpool_parameters_are_checked(kwargs, message):
    good = dict(height=4, width=5, channels=2, kernel=2, stride=2)
    with pytest.raises(ValueError, match=message):
        MaxPoolParams(**{**good, **kwargs})


@pytest.mark.rtl("verilator")
@pytest.mark.parametrize("unit", [
    SlidingWindowUnit(WindowParams(5, 6, 3, 8, kernel=(3, 2), stride=2, padding=(1, 2))),
    MaxPoolUnit(MaxPoolParams(6, 6, 3, 2, 2, (False, True, False))),
], ids=["window", "maxpool"])
def test_units_export_lint_clean_verilog(tmp_path, unit):
    text = verilog.convert(unit, name="top", emit_src=False)
    assert "module top" in text
    from bnn2hw.sim.tools import find_simulator
    env = find_simulator("verilator")
    path = tmp_path / "top.v"
    # Same lint header as bnn2hw/codegen/export.py: Yosys relies on implicit operand extension.
    path.write_text("/* verilator lint_off WIDTH */\n" + text + "/* verilator lint_on WIDTH */\n")
    proc = subprocess.run(["verilator", "--lint-only", str(path)], capture_output=True, text=True,
                          env={**os.environ, **env})
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr
