"""8N1 UART receiver and transmitter with stream interfaces; ``divisor`` = clock cycles per bit (≥ 4).

A byte on the line: start bit (0), data bits 0..7 (LSB first), stop bit (1), each ``divisor`` cycles
long; the line idles at 1. ``divisor_for`` (hw/board_top.py) picks the divisor of a clock and baud rate.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..errors import BoardError

__all__ = ["UARTReceiver", "UARTTransmitter", "MIN_DIVISOR", "check_divisor"]

#: Fewest clock cycles per bit: the receiver samples each bit within one cycle of its middle, after a
#: two-flop synchroniser, so 4 leaves a margin of at least one cycle on both sides at 0 % baud error.
MIN_DIVISOR = 4


def check_divisor(divisor, owner=None) -> int:
    """``divisor`` if it is a valid number of cycles per bit; else :class:`BoardError` (``owner``: the
    component being built, which is then not reported as unused)."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        if owner is not None:
            owner._MustUse__silence = True
        raise BoardError(f"UART divisor must be an integer number of clock cycles per bit >= {MIN_DIVISOR}, not "
                         f"{divisor!r}; compute it with BoardTop.divisor_for(clock_hz, baud)")
    return divisor


class UARTReceiver(wiring.Component):
    """8N1 receiver. Members: ``rx`` (the line, asynchronous), ``o`` (stream of received bytes),
    ``overrun`` (sticky: a byte completed while the previous one was still not taken; the new byte is
    dropped) and ``framing_error`` (sticky: a stop bit read 0; the byte is dropped and the receiver waits
    for the line to go high before it looks for the next start bit).

    ``rx`` passes a two-flop synchroniser; a start bit is the line seen low while idle, checked again
    ⌊divisor/2⌋ cycles later (a shorter pulse is ignored), then each bit is sampled every ``divisor``
    cycles, so samples fall up to one cycle after the bit middles: tolerates a sender up to
    (⌊divisor/2⌋ − 1)/(10·divisor) too fast (2.5 % at divisor 4, 3.75 % at 8) and over 5 % too slow.
    Latency: ``o.valid`` rises 2–3 cycles after the middle of the stop bit (synchroniser, sample).
    Throughput: one byte per 10 bit times, back to back (it re-arms in the middle of the stop bit).
    ``o`` holds a byte until taken: the consumer has a whole byte time to take it.
    Resources: about 35 flip-flops (8-bit shift register, 8-bit output register, counters, flags).
    """

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor, self)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "overrun": Out(1),
            "framing_error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        rx_meta = Signal(init=1)
        rx_line = Signal(init=1)          # the synchronised line
        m.d.sync += [rx_meta.eq(self.rx), rx_line.eq(rx_meta)]

        # The bit timer counts down to −1: its sign bit is "the time is up" (no comparator on the path).
        timer = Signal(signed(max(2, d.bit_length() + 1)))
        expired = timer[-1]
        bit_index = Signal(range(10))     # 0: start bit, 1..8: data bits, 9: stop bit
        shift = Signal(8)
        data = Signal(8)
        valid = Signal()
        overrun = Signal()
        framing_error = Signal()
        byte_done = Signal()
        m.d.comb += [self.o.payload.eq(data), self.o.valid.eq(valid), self.overrun.eq(overrun),
                     self.framing_error.eq(framing_error)]

        # Plain flags rather than m.FSM(): a 3-state FSM leaves one 2-bit code unused, which Verilator
        # reports as an incomplete case.
        receiving = Signal()
        wait_for_idle = Signal()          # after a framing error: until the line is high again
        with m.If(wait_for_idle):
            with m.If(rx_line):
                m.d.sync += wait_for_idle.eq(0)
        with m.Elif(~receiving):
            with m.If(~rx_line):
                m.d.sync += [timer.eq(d // 2 - 2), bit_index.eq(0), receiving.eq(1)]
        with m.Elif(~expired):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [timer.eq(d - 2), bit_index.eq(bit_index + 1)]
            with m.If(bit_index == 0):
                with m.If(rx_line):
                    m.d.sync += receiving.eq(0)       # a glitch, not a start bit
            with m.Elif(bit_index != 9):
                m.d.sync += shift.eq(Cat(shift[1:], rx_line))
            with m.Elif(rx_line):
                m.d.comb += byte_done.eq(1)
                m.d.sync += receiving.eq(0)
            with m.Else():
                m.d.sync += [framing_error.eq(1), receiving.eq(0), wait_for_idle.eq(1)]

        with m.If(self.o.ready):
            m.d.sync += valid.eq(0)
        # A dropped byte sets the sticky flag a cycle later, from a flip-flop: the consumer's ready (a
        # FIFO's level compare) then meets no enable but valid's (the UP5K board build's critical path
        # ran from the receive FIFO's level through w_rdy into this flag's enable, 7 ns of it routing).
        dropped = Signal()
        m.d.sync += dropped.eq(byte_done & valid & ~self.o.ready)
        with m.If(dropped):
            m.d.sync += overrun.eq(1)
        with m.If(byte_done & ~(valid & ~self.o.ready)):
            m.d.sync += [data.eq(shift), valid.eq(1)]
        return m


class UARTTransmitter(wiring.Component):
    """8N1 transmitter. Members: ``i`` (stream of bytes to send) and ``tx`` (the line, idle high, driven
    from a flip-flop).

    Latency: the start bit is on ``tx`` from the clock edge that takes the byte. Throughput: exactly one
    byte per 10·divisor cycles when bytes are offered continuously (``i.ready`` is high in the last
    cycle of each stop bit, so the next start bit follows it directly). Resources: about 20 flip-flops.
    """

    def __init__(self, divisor: int):
        self.divisor = check_divisor(divisor, self)
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        line = Signal(init=1)
        shift = Signal(9, reset_less=True)     # data bits, then the stop bit
        bits_left = Signal(range(10))
        # The bit timer counts down to −1: its sign bit is "the bit time is up" (no comparator).
        timer = Signal(signed(max(2, d.bit_length() + 1)), reset_less=True)
        expired = timer[-1]
        busy = Signal()
        # busy & (the bit time ends next cycle) & bits_left == 0 (the stop bit's last cycle), registered
        # one cycle ahead (divisor ≥ 2: no load lands on timer == 0): i.ready is one LUT of flip-flops.
        last_cycle = Signal()
        m.d.sync += last_cycle.eq(busy & (timer == 0) & (bits_left == 0))
        m.d.comb += [self.tx.eq(line), self.i.ready.eq(~busy | last_cycle)]

        with m.If(busy):
            with m.If(~expired):
                m.d.sync += timer.eq(timer - 1)
            with m.Else():
                m.d.sync += timer.eq(d - 2)
                with m.If(bits_left != 0):
                    m.d.sync += [line.eq(shift[0]), shift.eq(shift[1:]), bits_left.eq(bits_left - 1)]
                with m.Else():
                    m.d.sync += busy.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [line.eq(0), shift.eq(Cat(self.i.payload, 1)), bits_left.eq(9), timer.eq(d - 2),
                         busy.eq(1)]
        return m
