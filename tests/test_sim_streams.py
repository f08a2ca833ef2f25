"""The stream test kit itself: the Amaranth producer and consumer (bnn2hw/sim/streams.py) on Amaranth's
own FIFO keep every beat, honour their gap and ready patterns and record the cycle of every
handshake; the stall rule both simulators share is pinned; the cocotb kit's scoreboard and watchdog
(bnn2hw/sim/cocotb_streams.py) report what they should. The cocotb driver and monitor run in
rtl_tests/test_stream_kit_rtl.py, against this kit, cycle for cycle."""

from __future__ import annotations

import itertools
import random

import pytest
from amaranth.lib.fifo import SyncFIFOBuffered

from bnn2hw.sim.cocotb_streams import Scoreboard, Watchdog
from bnn2hw.sim.patterns import BACKPRESSURE_READY, gap_choices, network_stalls
from bnn2hw.sim.streams import StreamConsumer, StreamProducer, simulate_streams

GAPS = (0, 2, 0, 0, 5, 1)
READY = (1, 0, 1, 1, 0, 0, 1, 0)


def fifo_run(beats, *, gaps=None, ready=None, depth=3):
    fifo = SyncFIFOBuffered(width=8, depth=depth)
    producer = StreamProducer(fifo.w_stream, beats, gaps=gaps)
    consumer = StreamConsumer(fifo.r_stream, len(beats), ready=ready, max_cycles=10_000)
    simulate_streams(fifo, producers=[producer], consumers=[consumer])
    return producer, consumer


def test_beats_pass_in_order_under_the_given_gaps_and_back_pressure():
    beats = [random.Random(0).randrange(256) for _ in range(40)]
    producer, consumer = fifo_run(beats, gaps=itertools.cycle(GAPS), ready=itertools.cycle(READY))
    assert consumer.payloads == beats
    # each beat is offered exactly its gap after the previous handshake (the first after cycle 0)
    gaps = list(itertools.islice(itertools.cycle(GAPS), len(beats)))
    assert [b - a - 1 for a, b in zip([-1] + producer.taken, producer.offered)] == gaps
    assert all(t >= o for o, t in zip(producer.offered, producer.taken))
    # outputs are taken only in cycles where the consumer was ready, each after its input went in
    assert all(READY[c % len(READY)] for c in consumer.cycles)
    assert all(out > taken for taken, out in zip(producer.taken, consumer.cycles))
    assert consumer.cycles == sorted(set(consumer.cycles))


def test_free_running_fifo_moves_one_beat_per_cycle():
    beats = list(range(20))
    producer, consumer = fifo_run(beats)
    assert producer.offered == producer.taken == list(range(20))
    latency = consumer.cycles[0] - producer.taken[0]
    assert consumer.cycles == [t + latency for t in producer.taken] and latency >= 1


def test_a_full_fifo_holds_the_producer_with_its_payload():
    """Back-pressure that fills the FIFO: the producer waits with valid high (offered < taken)."""
    beats = list(range(100, 112))
    producer, consumer = fifo_run(beats, ready=itertools.chain([0] * 30, itertools.repeat(1)), depth=2)
    assert consumer.payloads == beats
    assert any(t > o for o, t in zip(producer.offered, producer.taken))
    assert consumer.cycles[0] >= 30


def test_consumer_watches_a_fixed_number_of_cycles_or_times_out():
    fifo = SyncFIFOBuffered(width=8, depth=2)
    watch = StreamConsumer(fifo.r_stream, max_cycles=25)
    simulate_streams(fifo, consumers=[watch])
    assert watch.payloads == [] and watch.cycle == 25
    empty = SyncFIFOBuffered(width=8, depth=2)
    stuck = StreamConsumer(empty.r_stream, 1, max_cycles=20)
    with pytest.raises(TimeoutError, match="took 0 of 1 beats in 20 cycles"):
        simulate_streams(empty, consumers=[stuck])
    with pytest.raises(ValueError, match="a beat count, a cycle limit"):
        StreamConsumer(fifo.r_stream)


def test_silence_after_the_last_expected_beat_is_checked():
    fifo = SyncFIFOBuffered(width=8, depth=4)
    producer = StreamProducer(fifo.w_stream, [1, 2, 3])
    consumer = StreamConsumer(fifo.r_stream, 2, max_cycles=100)

    async def consume(ctx):
        await consumer.run(ctx)
        await consumer.expect_silence(ctx, 10)

    with pytest.raises(AssertionError, match="a beat beyond the 2 expected ones, 1 cycle after"):
        simulate_streams(fifo, producers=[producer], testbenches=[consume])


def test_network_stall_rule_is_pinned():
    """Recorded runs depend on these draws (the same in the Amaranth harness and the cocotb bench):
    gaps from Random(seed) over gap_choices, ready from Random(seed + 1) at BACKPRESSURE_READY."""
    assert gap_choices(1) == (0, 0, 1, 2, 5) and gap_choices(64) == (0,) * 12 + (1, 3)
    assert BACKPRESSURE_READY == 0.6
    for seed, beats in ((5, 1), (11, 36)):
        gaps, ready = network_stalls(seed, beats, input_gaps=True, backpressure=True)
        rng_in, rng_out = random.Random(seed), random.Random(seed + 1)
        assert list(itertools.islice(gaps, 50)) == [rng_in.choice(gap_choices(beats)) for _ in range(50)]
        assert list(itertools.islice(ready, 50)) == [int(rng_out.random() < 0.6) for _ in range(50)]
    assert network_stalls(0, 1, input_gaps=False, backpressure=False) == (None, None)


def test_scoreboard_reports_mismatches_missing_and_extra_beats():
    board = Scoreboard([1, 2, 3], name="word", format=hex)
    for k, beat in enumerate([1, 2, 3]):
        board(beat, 10 + k)
    board.check()
    assert board.matched == 3 and board.errors == 0

    board = Scoreboard([1, 2, 3, 4], name="word", format=hex)
    board(1, 5)
    board(7, 6)
    board(3, 9)
    with pytest.raises(AssertionError) as info:
        board.check()
    assert "word 1 at cycle 6: expected 0x2, got 0x7" in str(info.value)
    assert "1 expected words never came" in str(info.value)

    board = Scoreboard(name="frame", transform=lambda w: w & 0xF)
    board.expect(0x3)
    board(0x13, 1)
    board(0x24, 2)
    assert board.matched == 1
    with pytest.raises(AssertionError, match="frame 1 at cycle 2 was not expected: 4"):
        board.check()


def test_watchdog_fails_only_after_its_limit():
    dog = Watchdog(10, lambda: "3/4 in")
    dog.handshake(5)
    dog.check(15)
    with pytest.raises(AssertionError, match=r"no stream handshake for 10 cycles \(3/4 in\): the design is stuck"):
        dog.check(16)
