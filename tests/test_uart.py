"""The UART blocks in Amaranth's simulator: the receiver decodes random bytes back to back and after
gaps at divisors 4..8 with the host's bit time ±2 % off and edges at random phases, ignores glitches,
flags framing errors and overruns without hanging; the transmitter sends exactly one byte per
10·divisor cycles; the two talk to each other; divisor_for picks the boards' divisors."""

from __future__ import annotations

import itertools
import random

import pytest
from amaranth.hdl import Module

from bnn2hw.errors import BoardError
from bnn2hw.hw.board_top import BoardTop
from bnn2hw.hw.uart import UARTReceiver, UARTTransmitter
from bnn2hw.sim.streams import StreamConsumer, StreamProducer, simulate_streams

PERIOD = 1e-8        # 100 MHz simulation clock


def _line_events(data: list[int], bit_time: float, gaps: list[float], stop_bits: list[int] | None = None):
    """(duration, level) pieces of an 8N1 line carrying ``data``, ``gaps[k]`` idle seconds before byte k."""
    events = []
    for k, value in enumerate(data):
        if gaps[k]:
            events.append((gaps[k], 1))
        stop = 1 if stop_bits is None else stop_bits[k]
        events += [(bit_time, level) for level in [0] + [(value >> b) & 1 for b in range(8)] + [stop]]
    return events


def receive(divisor: int, events, *, ready_after: int = 0, extra_cycles: int = 200):
    """Drive ``events`` into a receiver; return (bytes taken, overrun, framing_error). The consumer is
    ready from cycle ``ready_after`` on."""
    dut = UARTReceiver(divisor)
    flags = {}
    total = sum(t for t, _ in events)
    consumer = StreamConsumer(dut.o, ready=(int(cycle >= ready_after) for cycle in itertools.count()),
                              max_cycles=int(total / PERIOD) + 7 + extra_cycles)

    async def line(ctx):
        ctx.set(dut.rx, 1)
        await ctx.delay(7 * PERIOD + 0.37 * PERIOD)      # start between clock edges
        for duration, level in events:
            ctx.set(dut.rx, level)
            await ctx.delay(duration)
        ctx.set(dut.rx, 1)

    async def consume(ctx):
        await consumer.run(ctx)
        flags["overrun"], flags["framing_error"] = ctx.get(dut.overrun), ctx.get(dut.framing_error)

    simulate_streams(dut, testbenches=[consume], background=[line], period=PERIOD)
    return consumer.payloads, flags["overrun"], flags["framing_error"]


@pytest.mark.parametrize("divisor", [4, 5, 8])
@pytest.mark.parametrize("skew", [-0.02, 0.0, 0.02])
def test_receiver_decodes_bytes_back_to_back_and_after_gaps_with_skewed_bit_time(divisor, skew):
    rng = random.Random(divisor * 100 + int(skew * 1000))
    data = [rng.randrange(256) for _ in range(24)] + [0x00, 0xFF, 0x55, 0xAA]
    bit = divisor * PERIOD * (1 + skew)
    # runs of back-to-back bytes, then gaps of random length and sub-cycle phase
    gaps = [0.0 if k % 8 < 5 else rng.uniform(0.1, 15) * PERIOD for k in range(len(data))]
    got, overrun, framing = receive(divisor, _line_events(data, bit, gaps))
    assert got == data and not overrun and not framing


def test_receiver_ignores_a_glitch_shorter_than_half_a_bit():
    divisor = 8
    events = [(2.2 * PERIOD, 0), (30 * PERIOD, 1)] + _line_events([0x3C], divisor * PERIOD, [0])
    got, overrun, framing = receive(divisor, events)
    assert got == [0x3C] and not overrun and not framing


def test_framing_error_drops_the_byte_and_the_receiver_recovers():
    divisor = 6
    events = _line_events([0x12, 0x34], divisor * PERIOD, [0, 0], stop_bits=[0, 1])
    events = events[:10] + [(5 * divisor * PERIOD, 0)] + [(3 * divisor * PERIOD, 1)] + events[10:]
    got, overrun, framing = receive(divisor, events)
    assert got == [0x34] and framing and not overrun


def test_overrun_keeps_the_first_byte_sets_the_flag_and_does_not_hang():
    divisor = 4
    data = [0xA1, 0xB2, 0xC3]
    events = _line_events(data, divisor * PERIOD, [0, 0, 0])
    got, overrun, framing = receive(divisor, events, ready_after=3 * 10 * divisor + 20)
    assert got == [0xA1] and overrun and not framing
    # the receiver still works afterwards: a consumer that takes every byte gets them all
    got, overrun, _ = receive(divisor, events + [(20 * PERIOD, 1)] + _line_events([0x5A], divisor * PERIOD, [0]))
    assert got == data + [0x5A] and not overrun


def transmit(divisor: int, data: list[int], offer_gaps: list[int]):
    """Offer ``data`` to a transmitter (idle ``offer_gaps[k]`` cycles before byte k); return the tx line
    sampled every cycle and the cycles at which each byte was taken."""
    dut = UARTTransmitter(divisor)
    line = []
    total = sum(offer_gaps) + (len(data) + 2) * 10 * divisor + 10
    producer = StreamProducer(dut.i, data, gaps=offer_gaps)

    async def monitor(ctx):
        for _ in range(total):
            _, _, tx = await ctx.tick().sample(dut.tx)
            line.append(tx)

    simulate_streams(dut, producers=[producer], testbenches=[monitor], period=PERIOD)
    return line, producer.taken


def _decode_line(line: list[int], divisor: int) -> list[int]:
    out, k = [], 0
    while k < len(line):
        if line[k] == 0:
            mid = k + divisor // 2
            bits = [line[mid + divisor * b] for b in range(10)]
            assert bits[0] == 0 and bits[9] == 1, f"bad frame at sample {k}"
            assert all(line[k + j] == 0 for j in range(divisor)), "start bit shorter than divisor cycles"
            out.append(sum(b << i for i, b in enumerate(bits[1:9])))
            k += 10 * divisor
        else:
            k += 1
    return out


@pytest.mark.parametrize("divisor", [4, 7])
def test_transmitter_sends_one_byte_per_ten_bit_times_back_to_back(divisor):
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(12)] + [0x00, 0xFF]
    line, taken = transmit(divisor, data, [0] * len(data))
    assert line[0] == 1 and line[-1] == 1          # idle high before and after
    assert _decode_line(line, divisor) == data
    assert {b - a for a, b in zip(taken, taken[1:])} == {10 * divisor}


def test_transmitter_idles_high_between_spaced_bytes():
    line, taken = transmit(5, [0x81, 0x7E], [3, 80])
    assert _decode_line(line, 5) == [0x81, 0x7E]
    assert taken[1] - taken[0] > 10 * 5


def test_transmitter_feeds_receiver_at_minimum_divisor():
    divisor = 4
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = list(range(0, 256, 7))
    producer = StreamProducer(tx.i, data)
    consumer = StreamConsumer(rx.o, max_cycles=(len(data) + 2) * 10 * divisor)
    simulate_streams(m, producers=[producer], consumers=[consumer], period=PERIOD)
    assert consumer.payloads == data


def test_divisor_for_the_boards_and_its_errors():
    assert BoardTop.divisor_for(12e6, 115_200) == 104        # iCEBreaker, 0.16 % off
    assert BoardTop.divisor_for(25e6, 115_200) == 217        # ULX3S
    assert BoardTop.divisor_for(12e6, 3_000_000) == 4
    with pytest.raises(BoardError, match=r"needs at least 4; choose a baud rate of at most 3000000"):
        BoardTop.divisor_for(12e6, 4_000_000)
    with pytest.raises(BoardError, match=r"8 gives 3125000 baud, 4.2% off"):
        BoardTop.divisor_for(25e6, 3_000_000)
    with pytest.raises(BoardError, match="divisor must be an integer"):
        UARTReceiver(3)
    with pytest.raises(BoardError, match="divisor must be an integer"):
        UARTTransmitter(4.0)
