"""cocotb test bench of an exported ``bnn2hw_top``, run by :func:`bnn2hw.sim.cocotb_runner.run_rtl`.

It mirrors :func:`bnn2hw.sim.amaranth_sim.run_network` with the cocotb stream kit
(:mod:`bnn2hw.sim.cocotb_streams`): a driver sends the input beats (optionally with random idle
cycles before them), a monitor takes outputs (optionally with random back-pressure), both record the
cycle of every handshake, and a watchdog fails a run that stops making progress. With expected
outputs a scoreboard checks every output frame as it comes. Cycle k is the k-th rising edge after
reset; a handshake "at cycle k" means valid and ready were both high at that edge. Inputs, parameters,
port names and results travel through the files named in the JSON file at ``$BNN2HW_COCOTB_PARAMS``.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from bnn2hw.golden.packing import pack_fields, unpack_fields
from bnn2hw.sim.cocotb_streams import Scoreboard, StreamDriver, StreamMonitor, StreamPorts, Watchdog
from bnn2hw.sim.patterns import network_stalls

PARAMS_ENV = "BNN2HW_COCOTB_PARAMS"


def _decode(payload: int, p: dict) -> tuple[tuple[int, ...], int]:
    """An output beat → (class scores, class index)."""
    n, width = p["n_classes"], p["score_width"]
    scores = unpack_fields(payload, n, width, signed=True)
    return tuple(scores), payload >> (n * width) & ((1 << p["class_width"]) - 1)


def _format(decoded: tuple[tuple[int, ...], int]) -> str:
    scores, cls = decoded
    return f"class {cls}, scores {list(scores)}"


@cocotb.test()
async def stream_frames(dut):
    """Stream every input frame through the design and record outputs and handshake cycles; with
    expected outputs, check them in order as they come."""
    with open(os.environ[PARAMS_ENV]) as f:
        p = json.load(f)
    inputs = np.load(p["inputs"])
    n, beats = p["n"], p["beats_per_frame"]
    words = [pack_fields(beat, p["pixel_bits"]) for row in inputs for beat in row.reshape(beats, -1)]
    gaps, ready = network_stalls(p["seed"], beats, input_gaps=p["input_gaps"], backpressure=p["backpressure"])
    i_ports, o_ports = StreamPorts.of(dut, p["ports"]["i"]), StreamPorts.of(dut, p["ports"]["o"])

    scoreboard = None
    if p.get("expected"):
        with np.load(p["expected"]) as e:
            expected = [(tuple(int(v) for v in s), int(c)) for s, c in zip(e["scores"], e["classes"])]
        scoreboard = Scoreboard(expected, name="output frame", transform=lambda w: _decode(w, p), format=_format)

    def progress() -> str:
        accepted = -(-len(driver.taken) // beats)      # frames whose first beat was taken
        return f"accepted {accepted}/{n} inputs, delivered {len(monitor.payloads)}/{n} outputs"

    watchdog = Watchdog(p["max_idle_cycles"], progress)
    driver = StreamDriver(dut.clk, i_ports, gaps=gaps, watchdog=watchdog)
    monitor = StreamMonitor(dut.clk, o_ports, ready=ready, watchdog=watchdog, callback=scoreboard)

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    i_ports.valid.value = 0
    i_ports.payload.value = 0
    o_ports.ready.value = 0
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0

    cocotb.start_soon(driver.send(words))
    await monitor.receive(n)
    outputs = [_decode(word, p) for word in monitor.payloads]
    # latency counts from the offer (see amaranth_sim.run_network)
    np.savez(p["results"], scores=np.array([s for s, _ in outputs], dtype=np.int64).reshape(n, p["n_classes"]),
             classes=np.array([c for _, c in outputs], dtype=np.int64),
             in_cycles=np.array(driver.offered[::beats], dtype=np.int64),
             out_cycles=np.array(monitor.cycles, dtype=np.int64))
    if scoreboard is not None:
        scoreboard.check()
