"""cocotb bench of an exported ``bnn2hw_board_top``, run by :func:`bnn2hw.sim.board_runner.run_board_top_rtl`.

A driver sends a byte schedule on ``rx`` bit by bit (8N1, ``divisor`` cycles per bit, optionally a
skewed bit time, transitions off the clock edges as from an unrelated clock); a listener decodes
``tx`` near the middle of each bit, exactly ``divisor`` cycles apart, and checks every stop bit. It
records each sent byte, the cycle its start bit began and ``leds`` at its stop bit, then waits a
while for extra bytes. Parameters, the schedule and the results travel through the files named in the
JSON file at ``$BNN2HW_BOARD_COCOTB_PARAMS``. Cycle k is the k-th rising edge after reset.
"""

from __future__ import annotations

import json
import os

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, FallingEdge, First, Timer

BOARD_PARAMS_ENV = "BNN2HW_BOARD_COCOTB_PARAMS"
CLOCK_PS = 10_000
_RX_PHASE_PS = 3_300        # rx edges fall between clock edges


class _Record:
    def __init__(self):
        self.reset_ps = 0
        self.driver_done = False
        self.rx_end_cycles: list[float] = []
        self.tx_bytes: list[int] = []
        self.tx_cycles: list[int] = []
        self.tx_leds: list[int] = []

    def cycle(self) -> float:
        return (get_sim_time("ps") - self.reset_ps) / CLOCK_PS


async def _drive(dut, schedule: np.ndarray, bit_ps: int, record: _Record) -> None:
    await Timer(_RX_PHASE_PS, unit="ps")
    for gap, value in schedule:
        if gap:
            dut.rx.value = 1
            await Timer(int(gap) * CLOCK_PS, unit="ps")
        for level in [0] + [(int(value) >> k) & 1 for k in range(8)] + [1]:
            dut.rx.value = level
            await Timer(bit_ps, unit="ps")
        record.rx_end_cycles.append(record.cycle())
    record.driver_done = True


async def _listen(dut, p: dict, record: _Record) -> None:
    d = p["divisor"]
    while True:
        done = record.driver_done and len(record.tx_bytes) >= p["expected_bytes"]
        limit = p["settle_cycles"] if done else p["max_idle_cycles"]
        timer = Timer(limit * CLOCK_PS, unit="ps")
        fired = await First(FallingEdge(dut.tx), timer)
        if fired is timer:
            if done:
                return
            if record.driver_done:
                raise AssertionError(f"the board sent {len(record.tx_bytes)} of the {p['expected_bytes']} reply bytes "
                                     f"and then nothing for {limit} cycles: the design is stuck")
            continue
        start = round(record.cycle())
        # sample between clock edges: ⌊d/2⌋ + ½ cycles into each bit (tx changes only at rising edges)
        await Timer((d // 2) * CLOCK_PS + CLOCK_PS // 2, unit="ps")
        if int(dut.tx.value) != 0:
            raise AssertionError(f"tx fell at cycle {start} but was high again {d // 2} cycles later: a glitch, "
                                 "not a start bit")
        value = 0
        for k in range(8):
            await Timer(d * CLOCK_PS, unit="ps")
            value |= int(dut.tx.value) << k
        await Timer(d * CLOCK_PS, unit="ps")
        if int(dut.tx.value) != 1:
            raise AssertionError(f"byte {len(record.tx_bytes)} on tx (start bit at cycle {start}) has a stop bit of 0")
        record.tx_bytes.append(value)
        record.tx_cycles.append(start)
        record.tx_leds.append(int(dut.leds.value))


@cocotb.test()
async def board_session(dut):
    """Send the byte schedule on rx and decode everything the board sends on tx."""
    with open(os.environ[BOARD_PARAMS_ENV]) as f:
        p = json.load(f)
    schedule = np.load(p["schedule"])
    record = _Record()
    bit_ps = round(p["divisor"] * CLOCK_PS * (1.0 + p["rx_skew"]))

    Clock(dut.clk, CLOCK_PS, unit="ps", impl="gpi").start()   # the C clock: no Python per cycle
    dut.rst.value = 1
    dut.rx.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    record.reset_ps = get_sim_time("ps")
    await ClockCycles(dut.clk, 4)          # the receiver's synchroniser sees the idle line

    listener = cocotb.start_soon(_listen(dut, p, record))
    cocotb.start_soon(_drive(dut, schedule, bit_ps, record))
    await listener
    np.savez(p["results"], tx_bytes=np.array(record.tx_bytes, dtype=np.int64),
             tx_cycles=np.array(record.tx_cycles, dtype=np.int64), tx_leds=np.array(record.tx_leds, dtype=np.int64),
             rx_end_cycles=np.array(record.rx_end_cycles, dtype=np.float64),
             final_leds=np.int64(int(dut.leds.value)), overrun=np.int64(int(dut.overrun.value)))
