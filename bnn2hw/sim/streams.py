"""Stream test kit for Amaranth's simulator: a producer and a consumer of ``stream.Signature`` interfaces.

Both are async testbenches (Amaranth 0.5: ``ctx.set``, ``ctx.get``, ``ctx.tick``) that keep the rules
of ``amaranth.lib.stream``: the producer raises ``valid`` without waiting for ``ready`` and holds its
payload until the handshake; the consumer may change ``ready`` in any cycle. Idle gaps and
back-pressure come from patterns (:mod:`bnn2hw.sim.patterns`, shared with the cocotb kit in
:mod:`bnn2hw.sim.cocotb_streams`), so the same seed gives the same handshakes in both simulators.

Cycles: cycle k is the k-th rising edge of the testbench's clock domain after the helper starts; a
handshake "at cycle k" means ``valid`` and ``ready`` were both high just before that edge. Helpers
added with :func:`simulate_streams` (or ``sim.add_testbench(helper.run)``) all start at time 0, so their
cycles agree.

Example::

    producer = StreamProducer(dut.i, words, gaps=random_gaps(random.Random(0), (0, 1, 3)))
    consumer = StreamConsumer(dut.o, len(expected), ready=random_ready(random.Random(1), 0.5))
    simulate_streams(dut, producers=[producer], consumers=[consumer])
    assert [int(p) for p in consumer.payloads] == expected
"""

from __future__ import annotations

from collections.abc import Iterable

from amaranth.sim import Simulator

from .patterns import BACKPRESSURE_READY, gap_choices, network_stalls, random_gaps, random_ready

__all__ = ["StreamProducer", "StreamConsumer", "simulate_streams",
           "BACKPRESSURE_READY", "gap_choices", "network_stalls", "random_gaps", "random_ready"]


class StreamProducer:
    """Drive ``beats`` into ``stream`` (a ``stream.Signature`` interface seen from its consumer's side,
    such as a component's ``i``), in order; :meth:`run` is the async testbench.

    Before each beat the producer idles (``valid`` low) for the next value of ``gaps`` cycles, then
    offers the beat until it is taken. ``offered[k]`` is the cycle in which beat k was first offered
    (``valid`` high), ``taken[k]`` the cycle of its handshake; ``cycle`` counts the clock edges seen.
    """

    def __init__(self, stream, beats: Iterable, *, gaps: Iterable[int] | None = None, domain: str = "sync"):
        self.stream = stream
        self._beats = beats
        self._gaps = None if gaps is None else iter(gaps)
        self._domain = domain
        self.offered: list[int] = []
        self.taken: list[int] = []
        self.cycle = 0

    async def run(self, ctx) -> None:
        stream = self.stream
        for beat in self._beats:
            for _ in range(0 if self._gaps is None else next(self._gaps)):
                ctx.set(stream.valid, 0)
                await ctx.tick(self._domain)
                self.cycle += 1
            ctx.set(stream.payload, beat)
            ctx.set(stream.valid, 1)
            self.offered.append(self.cycle)
            while True:
                _, _, ready = await ctx.tick(self._domain).sample(stream.ready)
                self.cycle += 1
                if ready:
                    break
            self.taken.append(self.cycle - 1)
        ctx.set(stream.valid, 0)


class StreamConsumer:
    """Take beats from ``stream`` (a ``stream.Signature`` interface seen from its producer's side, such
    as a component's ``o``); :meth:`run` is the async testbench.

    In every cycle ``ready`` is the next value of the ``ready`` pattern (1 when it is ``None``). The
    consumer stops after ``count`` beats; with ``max_cycles`` it fails with :class:`TimeoutError` if
    they have not come by then, and without ``count`` it simply watches that many cycles. ``payloads[k]``
    is beat k as sampled (an ``int``, or a ``data.Const`` for a shaped payload), ``cycles[k]`` the cycle
    of its handshake.
    """

    def __init__(self, stream, count: int | None = None, *, ready: Iterable[int] | None = None,
                 max_cycles: int | None = None, domain: str = "sync"):
        if count is None and max_cycles is None:
            raise ValueError("a consumer needs a beat count, a cycle limit, or both")
        self.stream = stream
        self.count = count
        self.max_cycles = max_cycles
        self._ready = None if ready is None else iter(ready)
        self._domain = domain
        self.payloads: list = []
        self.cycles: list[int] = []
        self.cycle = 0

    def _done(self) -> bool:
        if self.count is not None and len(self.payloads) >= self.count:
            return True
        if self.max_cycles is not None and self.cycle >= self.max_cycles:
            if self.count is None:
                return True
            raise TimeoutError(f"the consumer took {len(self.payloads)} of {self.count} beats in {self.max_cycles} "
                               "cycles: the design is stuck, or slower than the limit")
        return False

    async def run(self, ctx) -> None:
        stream = self.stream
        while not self._done():
            ready = 1 if self._ready is None else next(self._ready)
            ctx.set(stream.ready, ready)
            _, _, valid, payload = await ctx.tick(self._domain).sample(stream.valid, stream.payload)
            if valid and ready:
                self.payloads.append(payload)
                self.cycles.append(self.cycle)
            self.cycle += 1

    async def expect_silence(self, ctx, cycles: int) -> None:
        """With ``ready`` high, watch ``cycles`` more cycles in which no beat may come (nothing beyond
        the expected output)."""
        ctx.set(self.stream.ready, 1)
        for k in range(cycles):
            _, _, valid = await ctx.tick(self._domain).sample(self.stream.valid)
            self.cycle += 1
            if valid:
                raise AssertionError(f"a beat beyond the {len(self.payloads)} expected ones, {k + 1} "
                                     f"cycle{'s' if k else ''} after the consumer stopped")


def simulate_streams(dut, *, producers: Iterable = (), consumers: Iterable = (), testbenches: Iterable = (),
                     background: Iterable = (), period: float = 1e-8, vcd: str | None = None) -> None:
    """Simulate ``dut`` with a clock of ``period`` seconds until every consumer and every async testbench
    of ``testbenches`` has finished; producers and the testbenches of ``background`` run in the
    background. ``vcd``: write a waveform file."""
    sim = Simulator(dut)
    sim.add_clock(period)
    for bench in [*(producer.run for producer in producers), *background]:
        sim.add_testbench(bench, background=True)
    for bench in [*(consumer.run for consumer in consumers), *testbenches]:
        sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
