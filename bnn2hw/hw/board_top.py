"""The board top: a network behind a UART, speaking the frame protocol of docs/board_protocol.md.

```
 rx ─► UARTReceiver ─► deserialiser ─► assembly register ─► Network ─► reply sender ─► UARTTransmitter ─► tx
        (8N1)          header/info     = one input beat    (its last unit   shift register        (8N1)
                       decoding            ▲                holds a result)  ▲ (reply or descriptor)
                                           └─ frames outstanding ──► info ───┘   leds ◄─ class of the reply
```

* **Deserialiser.** Between frames it takes ``0xB1`` (a frame follows), ``0xB0`` (info request) and
  ignores every other byte. In a frame each byte's low ``pixel_bits`` bits shift into the assembly
  register (element 0 ends at the LSB); a full register is the network's input beat. Bytes wait in a
  receive FIFO of one beat (plus slack) while the network's first unit has not taken the beat, so
  that unit may take up to a frame time on the line to do so (a single-buffered unit takes it when
  it has finished the vector before).
* **Reply sender.** Finds the class of the result the network's last unit holds, one score per cycle
  (a score every two cycles: registered, compared, taken; lowest index on ties, as the network's argmax), then takes the result into a
  shift register (``0xB2``, class, scores sign-extended to whole bytes, little-endian, class 0 first) and sets ``leds`` to its
  class; the network's ``o.ready`` follows one cycle later, from a flip-flop. An info request notes how many frames received before it are still unanswered and is
  answered (the descriptor, a constant) as soon as those replies have started, ahead of any later
  frame's: replies always come in request order. A second info request while one is pending is
  merged with it.
* **Throughput.** The UART bounds it: a frame every (pixel bytes + 1)·10·divisor cycles, a reply every
  reply bytes·10·divisor cycles. As long as the network's initiation interval is below the first, no
  byte is dropped with frames back to back. Replies queue in the network itself: the reply being
  sent, the last unit's output register and the finished frame behind it hold ``REPLY_QUEUE_FRAMES`` frames, so
  a host that keeps at most that many frames unanswered never makes the receiver drop a byte.
* **Latency.** The reply's start bit begins the network's latency + :func:`bridge_latency_cycles`
  (2·classes + 9 or 10) cycles after the receiver samples the frame's last stop bit (receiver 2–3, FIFO 2,
  byte stage 1, deserialiser 1, class scan 2·classes − 1, sender 2, transmitter 1), when the transmitter is free; the RTL tests
  measure it.
* **Resources.** The network (without its own class index: the class scan above replaces it, which
  saves 198 LUT4s on the iCE40 and 288 on the ECP5 for the digits model), a receive FIFO (elements
  per beat + 8 bytes, block RAM where the synthesiser puts it), elements per beat · pixel_bits
  flip-flops of assembly register,
  8 × max(reply, descriptor) bytes of shift register, the two UARTs (about 60 flip-flops) and a few
  counters; on the iCE40 about 600 LUTs and 450 flip-flops besides the network for the digits model.
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from ..errors import BoardError
from ..frame_codec import FRAME_HEADER, INFO_REQUEST, REPLY_HEADER, Descriptor
from .conv import ConvParams
from .network import Network
from .uart import MIN_DIVISOR, UARTReceiver, UARTTransmitter, check_divisor

__all__ = ["BoardTop", "BOARD_TOP_NAME", "bridge_latency_cycles", "MAX_BAUD_ERROR"]

BOARD_TOP_NAME = "bnn2hw_board_top"
def bridge_latency_cycles(classes: int) -> tuple[int, int]:
    """Cycles the bridge adds to the network's latency, from the stop-bit sample of a frame's last byte
    to the reply's start bit: receiver, FIFO, byte stage, deserialiser, the class scan, sender,
    transmitter (the range: the receiver's synchroniser phase); the class scan takes two cycles a class."""
    return 9 + 2 * classes, 10 + 2 * classes
#: Largest relative difference between the baud rate asked for and clock / divisor.
MAX_BAUD_ERROR = 0.02


class BoardTop(wiring.Component):
    """Members: ``rx`` (UART line in), ``tx`` (UART line out, idle high), ``leds`` (class of the last
    reply, binary, LSB on ``leds[0]``; 0 until the first), ``overrun`` (sticky: the receiver dropped a
    byte). ``stages``: the network's stage parameters (``Compiled.stages``); ``divisor``: clock cycles
    per UART bit (:meth:`divisor_for`). See the module docstring for latency, throughput, resources."""

    def __init__(self, stages, *, divisor: int, n_leds: int = 8):
        self.divisor = check_divisor(divisor, self)
        if isinstance(n_leds, bool) or not isinstance(n_leds, int) or n_leds < 1:
            self._MustUse__silence = True
            raise BoardError(f"n_leds must be a positive number of LED pins, not {n_leds!r}")
        # The board top finds the class itself (a scan over the registered scores, one class per
        # cycle), so the network's own class index, a combinational tournament, is not built.
        stages = list(stages)
        stages[-1] = dataclasses.replace(stages[-1], class_index=False)
        self.network = Network(stages)
        first, head = self.network.stages[0], self.network.head
        pixel_bits = self.network.pixel_bits
        self.elements_per_beat = len(self.network.i.payload) // pixel_bits
        self.beats_per_frame = self.network.input_beats
        if head.n_out > 255:
            self._MustUse__silence = True
            raise BoardError(f"the network has {head.n_out} classes, but a reply's class byte and the descriptor "
                             "carry at most 255; a board top needs a model with fewer classes")
        channels = first.window.channels if isinstance(first, ConvParams) else 0
        self.descriptor = Descriptor(pixel_bytes=self.elements_per_beat * self.beats_per_frame,
                                     pixel_bits=pixel_bits, classes=head.n_out, score_bits=head.score_width,
                                     channels=channels)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "leds": Out(n_leds),
            "overrun": Out(1),
        })

    @staticmethod
    def divisor_for(clock_hz: float, baud: int) -> int:
        """Clock cycles per bit for ``baud`` at ``clock_hz``: the nearest integer, at least 4, within 2 %."""
        if not clock_hz > 0 or not baud > 0:
            raise BoardError(f"clock ({clock_hz!r} Hz) and baud rate ({baud!r}) must be positive")
        divisor = max(1, round(clock_hz / baud))
        if divisor < MIN_DIVISOR:
            raise BoardError(f"a {clock_hz / 1e6:g} MHz clock gives only {clock_hz / baud:.2f} cycles per bit at "
                             f"{baud} baud, and the UART needs at least {MIN_DIVISOR}; choose a baud rate of at "
                             f"most {int(clock_hz // MIN_DIVISOR)}")
        error = abs(clock_hz / divisor - baud) / baud
        if error > MAX_BAUD_ERROR:
            raise BoardError(f"a {clock_hz / 1e6:g} MHz clock cannot make {baud} baud: the nearest divisor "
                             f"{divisor} gives {clock_hz / divisor:.0f} baud, {error:.1%} off (at most "
                             f"{MAX_BAUD_ERROR:.0%}); choose a baud rate that divides the clock more evenly")
        return divisor

    @property
    def rx_fifo_depth(self) -> int:
        """Bytes of the receive FIFO: one input beat and its header, plus a little slack."""
        return self.elements_per_beat + 8

    def elaborate(self, platform):
        m = Module()
        net = self.network
        head = net.head
        pb, per_beat, beats = net.pixel_bits, self.elements_per_beat, self.beats_per_frame
        m.submodules.network = net
        m.submodules.receiver = receiver = UARTReceiver(self.divisor)
        m.submodules.transmitter = transmitter = UARTTransmitter(self.divisor)
        m.d.comb += [receiver.rx.eq(self.rx), self.tx.eq(transmitter.tx), self.overrun.eq(receiver.overrun)]

        # Deserialiser: bytes → input beats.
        receiving = Signal()
        element = Signal(range(max(2, per_beat)))
        beat = Signal(range(max(2, beats)))
        assembly = Signal(per_beat * pb, reset_less=True)
        assembly_full = Signal()
        info_pending = Signal()
        frame_received = Signal()          # the last byte of a frame is taken this cycle
        # A frame's worth of bytes can wait in a (block RAM) FIFO while the assembly register waits for
        # the network, so the network's first unit may take up to a frame time to accept a beat.
        m.submodules.rx_fifo = rx_fifo = SyncFIFOBuffered(width=8, depth=self.rx_fifo_depth)
        m.d.comb += [rx_fifo.w_data.eq(receiver.o.payload), rx_fifo.w_en.eq(receiver.o.valid),
                     receiver.o.ready.eq(rx_fifo.w_rdy)]
        # The byte stage: the FIFO's byte and what it is, registered, so that the FIFO's block RAM read
        # meets no decoding in the same cycle (the iCE40 build's critical path was RAM → header and
        # info-request compares → the info bookkeeping's enables).
        byte = Signal(8, reset_less=True)
        byte_valid = Signal()
        is_header, is_info = Signal(reset_less=True), Signal(reset_less=True)
        take = Signal()
        # The FIFO is read only into an empty byte register (one byte per two cycles, where the line
        # brings one per ten bit times): its read enable is a flip-flop, not the deserialiser's decision.
        m.d.comb += [take.eq(byte_valid & (~receiving | ~assembly_full)),
                     rx_fifo.r_en.eq(~byte_valid)]
        with m.If(rx_fifo.r_en & rx_fifo.r_rdy):
            m.d.sync += [byte.eq(rx_fifo.r_data), byte_valid.eq(1), is_header.eq(rx_fifo.r_data == FRAME_HEADER),
                         is_info.eq(rx_fifo.r_data == INFO_REQUEST)]
        with m.Elif(take):
            m.d.sync += byte_valid.eq(0)
        last_element = (element == per_beat - 1) if per_beat > 1 else Const(1)
        last_beat = (beat == beats - 1) if beats > 1 else Const(1)
        with m.If(take):
            with m.If(~receiving):
                with m.If(is_header):
                    m.d.sync += receiving.eq(1)     # 0xB0: info_request below; other bytes are ignored
            with m.Else():
                m.d.sync += assembly.eq(Cat(assembly[pb:], byte[:pb]) if per_beat > 1 else byte[:pb])
                with m.If(last_element):
                    m.d.sync += [element.eq(0), assembly_full.eq(1)]
                    with m.If(last_beat):
                        m.d.sync += [beat.eq(0), receiving.eq(0)]
                        m.d.comb += frame_received.eq(1)
                    with m.Else():
                        m.d.sync += beat.eq(beat + 1)
                with m.Else():
                    m.d.sync += element.eq(element + 1)
        # The assembly register is the network's input beat; the network takes it within a cycle or
        # two (its first unit double-buffers), far sooner than the next byte arrives.
        with m.If(assembly_full & net.i.ready):      # bytes are only taken while the register is free
            m.d.sync += assembly_full.eq(0)
        m.d.comb += [net.i.payload.eq(assembly), net.i.valid.eq(assembly_full)]

        # Reply sender: one shift register for frame replies and the descriptor.
        desc = self.descriptor
        desc_bytes = desc.to_bytes()
        longest = max(desc.reply_length, len(desc_bytes))
        # Data registers beside a valid flag are reset-less: no reset meets their enables.
        shift = Signal(8 * longest, reset_less=True)
        bytes_left = Signal(range(longest + 1), reset_less=True)
        # ``bytes_left == 0`` kept as a flag: the network's o.ready (below) heads the ready chain that
        # runs back through every unit, so it is made from flip-flops with one LUT.
        sender_idle = Signal(init=1)
        # The choice of what to send (descriptor or reply) is registered, and the shift register loads
        # the cycle after it: the choice no longer selects the input of all its bits in the same cycle
        # (the UP5K's critical path at 54 MHz, 13 ns of it routing).
        load_info, load_reply = Signal(), Signal()
        sending = Signal()                 # the shift register holds bytes to send: the transmitter's valid
        m.d.sync += [load_info.eq(0), load_reply.eq(0)]
        m.d.comb += [transmitter.i.payload.eq(shift[:8]), transmitter.i.valid.eq(sending)]
        with m.If(load_info | load_reply):
            m.d.sync += sending.eq(1)
        with m.If(transmitter.i.valid & transmitter.i.ready):
            m.d.sync += [shift.eq(shift[8:]), bytes_left.eq(bytes_left - 1)]
            with m.If(bytes_left == 1):
                m.d.sync += [sending.eq(0), sender_idle.eq(1)]

        # The network's last unit holds its result until the sender takes it: that is the reply queue's
        # slot (no FIFO), and the units before it hold the frames behind it.
        result = net.o.payload
        # The class is found again here, one score per cycle, while the network holds its result: the
        # network's own combinational argmax over all scores is too long a path for a board clock.
        n_cls = head.n_out
        scan = Signal(range(max(2, n_cls)), reset_less=True)   # next score to compare
        best = Signal(signed(head.score_width), reset_less=True)
        best_idx = Signal(range(max(2, n_cls)), reset_less=True)
        scanning = Signal()                        # a scan of the held result is under way
        class_found = Signal()                     # the scan is complete: best_idx is the argmax
        # Every value of ``scan`` has an entry (unreachable ones repeat score 0): a complete case statement.
        scores_array = Array([result.scores[c] for c in range(n_cls)]
                             + [result.scores[0]] * ((1 << len(scan)) - n_cls))
        # Three stages, one class every two cycles: the score at ``scan`` is registered (a classes-to-1
        # multiplexer), compared with the best so far (the comparison registered), then taken. Neither the
        # multiplexer nor the comparator's carry chain is in series with the other or with the update
        # (compare-and-update in one cycle was the UP5K's critical path at 55.8 MHz).
        cand = Signal(signed(head.score_width), reset_less=True)
        cand_idx = Signal(range(max(2, n_cls)), reset_less=True)
        cand_valid, cand_last = Signal(), Signal(reset_less=True)
        phase = Signal(reset_less=True)            # a candidate is loaded every other cycle
        greater = Signal(reset_less=True)
        cmp_valid, cmp_last = Signal(), Signal(reset_less=True)
        cmp_value = Signal(signed(head.score_width), reset_less=True)
        cmp_idx = Signal(range(max(2, n_cls)), reset_less=True)
        m.d.sync += [cand_valid.eq(0), cmp_valid.eq(cand_valid)]
        # The network's result is taken (o.ready) the cycle after its reply starts, from a flip-flop:
        # o.ready heads every unit's stall logic, which fans out to all of the head unit's registers.
        # The result is held through that cycle, so the reply (loaded when it starts) is the same.
        taking = Signal()
        reply_starts = Signal()
        m.d.sync += taking.eq(reply_starts)
        m.d.comb += net.o.ready.eq(taking)
        # "Nothing of a scan or reply is under way" (no scan, candidate, comparison, found class or take)
        # as a flip-flop, computed from the cycle before: exactly the same condition, since each of those
        # flags is set only from another of them or from a scan's start, and a take follows a found
        # class. A scan then starts on the network's o.valid and one flip-flop (the five flags in series
        # with o.valid into the scan's enables was the UP5K's critical path at 55.9 MHz, 13.5 ns routing).
        scan_start = Signal()
        scan_ok = Signal(init=1)
        m.d.comb += scan_start.eq(net.o.valid & scan_ok)
        m.d.sync += scan_ok.eq(~scan_start & ~scanning & ~class_found & ~cand_valid & ~cmp_valid)
        with m.If(scan_start):
            m.d.sync += [best.eq(result.scores[0]), best_idx.eq(0), scan.eq(1), scanning.eq(1), phase.eq(1)]
            if n_cls == 1:
                m.d.sync += [scanning.eq(0), class_found.eq(1)]
        with m.Elif(scanning):
            m.d.sync += phase.eq(~phase)
            with m.If(phase):
                m.d.sync += [cand.eq(scores_array[scan]), cand_idx.eq(scan), cand_valid.eq(1),
                             cand_last.eq(scan == n_cls - 1)]
                with m.If(scan == n_cls - 1):
                    m.d.sync += scanning.eq(0)
                with m.Else():
                    m.d.sync += scan.eq(scan + 1)
        with m.If(cand_valid):
            m.d.sync += [greater.eq(cand > best), cmp_value.eq(cand), cmp_idx.eq(cand_idx), cmp_last.eq(cand_last)]
        with m.If(cmp_valid):
            with m.If(greater):                    # strictly greater: the lowest index wins a tie
                m.d.sync += [best.eq(cmp_value), best_idx.eq(cmp_idx)]
            with m.If(cmp_last):
                m.d.sync += class_found.eq(1)
        cls_byte = Signal(8)
        m.d.comb += cls_byte.eq(best_idx)
        score_fields = []
        for c in range(head.n_out):
            field = Signal(signed(8 * desc.score_bytes), name=f"reply_score{c}")
            m.d.comb += field.eq(result.scores[c])
            score_fields.append(field)
        reply = Cat(Const(REPLY_HEADER, 8), cls_byte, *score_fields)

        outstanding = Signal(16)           # frames received whose reply has not been loaded
        # outstanding − 1 (mod 2^16), counted beside it: the copy below then selects one of two registers
        # (one LUT) instead of subtracting (outstanding → replies_first through a 16-bit carry chain was
        # the UP5K's critical path at 59.99 MHz, 60 asked).
        outstanding_m1 = Signal(16, init=(1 << 16) - 1)
        replies_first = Signal(16, reset_less=True)   # replies still due before the pending info reply
        none_first = Signal()              # replies_first == 0, registered (see below)
        copy = Signal()                    # the cycle after an info request is noted: replies_first is set
        hold = Signal(2)                   # the two cycles after it: the sender chooses nothing
        info_request = Signal()
        leds = Signal(len(self.leds))
        # Both events are registered before they reach the 16-bit counters: a cycle later than the byte
        # that causes them, invisible at one byte per 10 bit times, and the decoding is not in series
        # with the counters' carry chains. (One byte is taken per cycle, so they never coincide.)
        frame_done = Signal()
        m.d.sync += [info_request.eq(take & ~receiving & is_info), frame_done.eq(frame_received),
                     copy.eq(0), hold.eq(hold >> 1)]
        m.d.comb += self.leds.eq(leds)
        with m.If(sender_idle & (hold == 0)):
            with m.If(info_pending & none_first):
                m.d.sync += [load_info.eq(1), sender_idle.eq(0), info_pending.eq(0)]
            with m.Elif(class_found):
                m.d.comb += reply_starts.eq(1)
                m.d.sync += [load_reply.eq(1), sender_idle.eq(0), leds.eq(best_idx), class_found.eq(0)]
        # The result and its class are still held in the load cycle: the network's o.ready (``taking``)
        # is this cycle, and a new scan starts only after it.
        with m.If(load_info):
            m.d.sync += [shift.eq(int.from_bytes(desc_bytes, "little")), bytes_left.eq(len(desc_bytes))]
        with m.If(load_reply):
            m.d.sync += [shift.eq(reply), bytes_left.eq(desc.reply_length)]
        # An info request is answered once the replies of the frames received before it have started.
        # Every decision here reads flip-flops only: replies are counted when they load (load_reply);
        # a request noted in cycle t sets replies_first in t + 1 to outstanding − load_reply (the frames
        # received before it whose reply has not loaded; the byte after the request is not yet counted),
        # and none_first = (replies_first == 0) is registered, exact from t + 3; the sender chooses
        # nothing in t + 1 and t + 2. After a reply is chosen it is busy for a whole reply, so the
        # flag's one cycle of lag never lets a later frame's reply overtake the info reply.
        with m.If(frame_done & ~load_reply):
            m.d.sync += [outstanding.eq(outstanding + 1), outstanding_m1.eq(outstanding)]
        with m.Elif(load_reply & ~frame_done):
            m.d.sync += [outstanding.eq(outstanding_m1), outstanding_m1.eq(outstanding_m1 - 1)]
        m.d.sync += none_first.eq(replies_first == 0)
        with m.If(copy):
            m.d.sync += [replies_first.eq(Mux(load_reply, outstanding_m1, outstanding)), none_first.eq(0)]
        with m.Elif(load_reply):
            m.d.sync += replies_first.eq(replies_first - 1)
        with m.If(info_request & ~info_pending):     # a request while one is pending is merged with it
            m.d.sync += [info_pending.eq(1), none_first.eq(0), copy.eq(1), hold.eq(0b11)]
        return m
