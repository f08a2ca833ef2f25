"""cocotb test bench of an exported ``bnn2hw_top``, run by :func:`bnn2hw.sim.cocotb_runner.run_rtl`.

It mirrors :func:`bnn2hw.sim.amaranth_sim.run_network`: a producer drives one frame per input beat
(optionally with random idle cycles between frames), a consumer takes outputs (optionally with random
back-pressure), and both record the cycle of every handshake. Cycle k is the k-th rising edge after
reset; a handshake "at cycle k" means valid and ready were both high at that edge. Inputs, parameters
and results travel through the files named in the JSON file at ``$BNN2HW_COCOTB_PARAMS``.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from bnn2hw.golden.packing import pack_fields, unpack_fields

PARAMS_ENV = "BNN2HW_COCOTB_PARAMS"


class _Progress:
    """Cycle of the last handshake on either side, shared by producer and consumer."""

    def __init__(self, limit: int):
        self.limit = limit
        self.last = 0
        self.accepted = 0

    def check(self, cycle: int, delivered: int, total: int) -> None:
        if cycle - self.last > self.limit:
            raise AssertionError(f"no stream handshake for {self.limit} cycles (accepted {self.accepted}/{total} "
                                 f"inputs, delivered {delivered}/{total} outputs): the design is stuck")


def gap_choices(beats_per_frame: int) -> tuple[int, ...]:
    """Idle cycles drawn before each input beat under ``input_gaps`` (the Amaranth harness draws the same)."""
    return (0, 0, 1, 2, 5) if beats_per_frame == 1 else (0,) * 12 + (1, 3)


async def _producer(dut, frames, gaps: bool, rng: random.Random, progress: _Progress, in_cycles: list) -> None:
    cycle = 0
    for beats in frames:
        choices = gap_choices(len(beats))
        for k, word in enumerate(beats):
            for _ in range(rng.choice(choices) if gaps else 0):
                dut.i__valid.value = 0
                await RisingEdge(dut.clk)
                cycle += 1
            dut.i__payload.value = word
            dut.i__valid.value = 1
            if k == 0:                  # latency counts from the offer (see amaranth_sim.run_network)
                in_cycles.append(cycle)
            while True:
                await ReadOnly()
                fire = int(dut.i__ready.value)
                await RisingEdge(dut.clk)
                if fire:
                    break
                cycle += 1
            progress.accepted += k == 0
            progress.last = cycle
            cycle += 1
    dut.i__valid.value = 0


async def _consumer(dut, p: dict, rng: random.Random, progress: _Progress) -> tuple[list, list, list]:
    n, classes = p["n"], p["n_classes"]
    scores, cls, out_cycles = [], [], []
    cycle = 0
    while len(out_cycles) < n:
        ready = int(rng.random() < 0.6) if p["backpressure"] else 1
        dut.o__ready.value = ready
        await ReadOnly()
        if ready and int(dut.o__valid.value):
            payload = int(dut.o__payload.value)
            scores.append(unpack_fields(payload, classes, p["score_width"], signed=True))
            cls.append(payload >> (classes * p["score_width"]) & ((1 << p["class_width"]) - 1))
            out_cycles.append(cycle)
            progress.last = cycle
        progress.check(cycle, len(out_cycles), n)
        await RisingEdge(dut.clk)
        cycle += 1
    dut.o__ready.value = 0
    return scores, cls, out_cycles


@cocotb.test()
async def stream_frames(dut):
    """Stream every input frame through the design and record outputs and handshake cycles."""
    with open(os.environ[PARAMS_ENV]) as f:
        p = json.load(f)
    inputs = np.load(p["inputs"])
    beats = p["beats_per_frame"]
    frames = [[pack_fields(beat, p["pixel_bits"]) for beat in row.reshape(beats, -1)] for row in inputs]
    progress = _Progress(p["max_idle_cycles"])
    in_cycles: list[int] = []

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i__valid.value = 0
    dut.i__payload.value = 0
    dut.o__ready.value = 0
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0

    cocotb.start_soon(_producer(dut, frames, p["input_gaps"], random.Random(p["seed"]), progress, in_cycles))
    consumer = cocotb.start_soon(_consumer(dut, p, random.Random(p["seed"] + 1), progress))
    scores, cls, out_cycles = await consumer
    np.savez(p["results"], scores=np.array(scores, dtype=np.int64).reshape(len(scores), p["n_classes"]),
             classes=np.array(cls, dtype=np.int64), in_cycles=np.array(in_cycles, dtype=np.int64),
             out_cycles=np.array(out_cycles, dtype=np.int64))
