"""cocotb bench of rtl_tests/test_stream_kit_rtl.py: the cocotb stream kit (driver, a passive monitor on
the input, a ready-driving monitor and a scoreboard on the output) on an exported stream component.
Parameters and results travel through the JSON files named at ``$BNN2HW_STREAM_KIT_PARAMS``."""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from bnn2hw.sim.cocotb_streams import Scoreboard, StreamDriver, StreamMonitor, StreamPorts, Watchdog
from bnn2hw.sim.patterns import random_gaps, random_ready

PARAMS_ENV = "BNN2HW_STREAM_KIT_PARAMS"


@cocotb.test()
async def stream_kit(dut):
    with open(os.environ[PARAMS_ENV]) as f:
        p = json.load(f)
    beats = p["beats"]
    i_ports, o_ports = StreamPorts.of(dut, p["ports"]["i"]), StreamPorts.of(dut, p["ports"]["o"])
    scoreboard = Scoreboard(p["expected"], name="beat", format=hex)
    watchdog = Watchdog(1000)
    driver = StreamDriver(dut.clk, i_ports, gaps=random_gaps(random.Random(p["gap_seed"]), p["gap_choices"]),
                          watchdog=watchdog)
    inputs = StreamMonitor(dut.clk, i_ports, drive_ready=False)
    outputs = StreamMonitor(dut.clk, o_ports, ready=random_ready(random.Random(p["ready_seed"]), p["ready_probability"]),
                            watchdog=watchdog, callback=scoreboard)

    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    i_ports.valid.value = 0
    o_ports.ready.value = 0
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0

    cocotb.start_soon(driver.send(beats))
    cocotb.start_soon(inputs.receive(len(beats)))
    await outputs.receive(len(beats))
    with open(p["results"], "w") as f:
        json.dump({"offered": driver.offered, "taken": driver.taken, "inputs": inputs.payloads,
                   "input_cycles": inputs.cycles, "outputs": outputs.payloads, "output_cycles": outputs.cycles}, f)
    scoreboard.check()
