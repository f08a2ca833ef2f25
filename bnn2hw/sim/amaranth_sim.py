"""Run a compiled network in Amaranth's built-in simulator (no external tools).

A producer drives one frame per input beat, optionally with random idle cycles between frames; a
consumer takes outputs, optionally deasserting ``ready`` at random (back-pressure). Both record the
cycle of every handshake so that throughput and latency are measured, not assumed.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from ..golden.packing import pack_fields
from ..hw import Network
from .cocotb_bench import gap_choices

__all__ = ["SimResult", "run_network", "frame_word", "frame_beats", "measured_timing"]


@dataclass(frozen=True)
class SimResult:
    scores: np.ndarray            # (n, classes) int64
    classes: np.ndarray           # (n,) int64
    in_cycles: tuple[int, ...]    # cycle each frame's first beat is first offered (valid)
    out_cycles: tuple[int, ...]   # cycle of each output handshake


def frame_word(pixels, bits: int) -> int:
    """One input beat (flat integer pixels) → the input payload, element 0 at the LSB."""
    return pack_fields(pixels, bits)


def frame_beats(frame, bits: int, beats: int) -> list[int]:
    """One input frame (flat, in stream order: (H, W, C) for convolutional networks) → its ``beats``
    input payloads (the whole frame, or one pixel of every channel, per beat)."""
    frame = np.asarray(frame).reshape(beats, -1)
    return [pack_fields(beat, bits) for beat in frame]


def measured_timing(result: SimResult) -> tuple[int, int]:
    """(cycles per frame, latency) from a free-running run: all output intervals must agree."""
    out = result.out_cycles
    if len(out) < 2:
        raise ValueError("need at least two frames to measure cycles per frame")
    intervals = {b - a for a, b in zip(out, out[1:])}
    if len(intervals) != 1:
        raise AssertionError(f"output intervals vary ({sorted(intervals)}): the pipeline is not in steady state")
    return intervals.pop(), out[0] - result.in_cycles[0]


def run_network(network: Network, inputs: np.ndarray, pixel_bits: int, *, input_gaps: bool = False,
                backpressure: bool = False, seed: int = 0, max_cycles: int | None = None,
                vcd: str | None = None) -> SimResult:
    """Simulate ``network`` on ``inputs`` (n, features) integer pixels in stream order (channel-last for
    convolutional networks); return outputs and handshake cycles. ``input_gaps`` idles before beats."""
    inputs = np.asarray(inputs, dtype=np.int64).reshape(len(inputs), -1)
    n = len(inputs)
    frames = [frame_beats(row, pixel_bits, network.input_beats) for row in inputs]
    rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
    n_classes = len(network.o.payload.scores)
    in_cycles, out_cycles, scores, classes = [], [], [], []
    limit = max_cycles or 10_000_000

    # A free-running counter beside the network time-stamps handshakes deterministically: its value
    # is sampled just before the clock edge at which the handshake happens.
    top = Module()
    top.submodules.network = network
    cycle = Signal(40)
    top.d.sync += cycle.eq(cycle + 1)
    # Amaranth's simulator writes wide constants (ROM rows of PE·SIMD bits) as decimal literals.
    sys.set_int_max_str_digits(0)
    sim = Simulator(top)
    sim.add_clock(1e-8)

    async def producer(ctx):
        for beats in frames:
            for k, word in enumerate(beats):
                if input_gaps:
                    for _ in range(rng_in.choice(gap_choices(len(beats)))):
                        await ctx.tick()
                ctx.set(network.i.payload, word)
                ctx.set(network.i.valid, 1)
                offered = None
                while True:
                    _, _, ready, now = await ctx.tick().sample(network.i.ready, cycle)
                    offered = now if offered is None else offered
                    if ready:
                        break
                # Latency counts from the offer: a unit without input buffer takes the beat only
                # when it has issued the beat's last word.
                if k == 0:
                    in_cycles.append(offered)
                ctx.set(network.i.valid, 0)

    async def consumer(ctx):
        while len(scores) < n:
            ready = 1 if not backpressure else int(rng_out.random() < 0.6)
            ctx.set(network.o.ready, ready)
            _, _, valid, payload, now = await ctx.tick().sample(network.o.valid, network.o.payload, cycle)
            if valid and ready:
                out_cycles.append(now)
                scores.append([int(payload.scores[c]) for c in range(n_classes)])
                classes.append(int(payload.cls))
            if now > limit:
                raise TimeoutError(f"simulation ran {limit} cycles without finishing {n} frames")

    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return SimResult(scores=np.array(scores, dtype=np.int64), classes=np.array(classes, dtype=np.int64),
                     in_cycles=tuple(in_cycles), out_cycles=tuple(out_cycles))
