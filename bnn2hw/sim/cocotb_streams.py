"""Stream test kit for cocotb: a driver, a monitor and a scoreboard for valid/ready streams of an
exported design, with the same idle-gap and back-pressure patterns (:mod:`bnn2hw.sim.patterns`) as
the Amaranth kit (:mod:`bnn2hw.sim.streams`).

Ports are addressed by their exported Verilog names (:func:`bnn2hw.codegen.export.port_name`, e.g.
``i__valid``). The launcher, outside the simulator, names them with :func:`stream_port_names` and
hands the names to the bench; the bench, inside the simulator, turns them into handles with
:meth:`StreamPorts.of`. (Importing the export module inside the simulator would import torch, which
slows every simulator start by seconds.)

Cycles: cycle k is the k-th rising edge of ``clock`` after the helper starts; a handshake "at cycle
k" means ``valid`` and ``ready`` were both high at that edge. A driver and a monitor started in the
same time step (``cocotb.start_soon`` one after the other) count the same cycles, and count them as
the Amaranth kit does. Each cycle a helper writes its outputs right after the rising edge, reads the
settled values in the read-only phase, and then waits for the next edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from cocotb.triggers import ReadOnly, RisingEdge

from .patterns import BACKPRESSURE_READY, gap_choices, network_stalls, random_gaps, random_ready

__all__ = ["StreamPorts", "stream_port_names", "StreamDriver", "StreamMonitor", "Scoreboard", "Watchdog",
           "BACKPRESSURE_READY", "gap_choices", "network_stalls", "random_gaps", "random_ready"]


def stream_port_names(member: str) -> dict[str, str]:
    """The exported Verilog port names of stream ``member`` (``"i"`` or ``"o"`` of a component):
    ``{"valid": "i__valid", "ready": "i__ready", "payload": "i__payload"}``. For launchers, outside
    the simulator (this imports the compiler)."""
    from ..codegen.export import port_name
    return {field: port_name(member, field) for field in ("valid", "ready", "payload")}


class StreamPorts(NamedTuple):
    """The three signal handles of one stream of a cocotb ``dut``."""
    valid: Any
    ready: Any
    payload: Any

    @classmethod
    def of(cls, dut, names: Mapping[str, str]) -> StreamPorts:
        """Handles of the ports ``names`` (``{"valid": ..., "ready": ..., "payload": ...}``, as
        :func:`stream_port_names` gives them) of ``dut``."""
        missing = [names[f] for f in cls._fields if not hasattr(dut, names[f])]
        if missing:
            raise AttributeError(f"{dut._name} has no port {', '.join(missing)}")
        return cls(*(getattr(dut, names[f]) for f in cls._fields))


class Watchdog:
    """Fails a run in which no handshake happens on any stream it watches for ``limit`` cycles.

    Drivers and monitors report each handshake (:meth:`handshake`); a monitor calls :meth:`check`
    every cycle. ``describe()`` adds the run's progress to the failure message.
    """

    def __init__(self, limit: int, describe: Callable[[], str] | None = None):
        self.limit = limit
        self.last = 0
        self._describe = describe

    def handshake(self, cycle: int) -> None:
        self.last = max(self.last, cycle)

    def check(self, cycle: int) -> None:
        if cycle - self.last > self.limit:
            detail = f" ({self._describe()})" if self._describe else ""
            raise AssertionError(f"no stream handshake for {self.limit} cycles{detail}: the design is stuck")


class StreamDriver:
    """Drives ``beats`` (integers) into a stream's ``valid``/``payload``, in order, keeping the stream
    rules: ``valid`` rises without waiting for ``ready`` and the payload holds until the handshake.

    Before each beat it idles (``valid`` low) for the next value of ``gaps`` cycles. ``offered[k]`` is
    the cycle in which beat k was first offered, ``taken[k]`` the cycle of its handshake.
    """

    def __init__(self, clock, ports: StreamPorts, *, gaps: Iterable[int] | None = None,
                 watchdog: Watchdog | None = None):
        self.clock = clock
        self.ports = ports
        self._gaps = None if gaps is None else iter(gaps)
        self._watchdog = watchdog
        self.offered: list[int] = []
        self.taken: list[int] = []
        self.cycle = 0

    async def send(self, beats: Iterable[int]) -> None:
        valid, ready, payload = self.ports.valid, self.ports.ready, self.ports.payload
        for beat in beats:
            for _ in range(0 if self._gaps is None else next(self._gaps)):
                valid.value = 0
                await RisingEdge(self.clock)
                self.cycle += 1
            payload.value = beat
            valid.value = 1
            self.offered.append(self.cycle)
            while True:
                await ReadOnly()
                fire = int(ready.value)
                await RisingEdge(self.clock)
                if fire:
                    break
                self.cycle += 1
            self.taken.append(self.cycle)
            if self._watchdog is not None:
                self._watchdog.handshake(self.cycle)
            self.cycle += 1
        valid.value = 0


class StreamMonitor:
    """Takes beats from a stream: drives its ``ready`` from the ``ready`` pattern (1 in every cycle when
    it is ``None``), or with ``drive_ready=False`` only watches the handshakes of another consumer.

    ``payloads[k]`` is beat k (an integer), ``cycles[k]`` the cycle of its handshake; ``callback(payload,
    cycle)`` is called on every handshake (a :class:`Scoreboard`, say). With a ``watchdog`` the monitor
    checks it every cycle.
    """

    def __init__(self, clock, ports: StreamPorts, *, ready: Iterable[int] | None = None, drive_ready: bool = True,
                 watchdog: Watchdog | None = None, callback: Callable[[int, int], None] | None = None):
        if ready is not None and not drive_ready:
            raise ValueError("a monitor that does not drive ready takes no ready pattern")
        self.clock = clock
        self.ports = ports
        self._ready = None if ready is None else iter(ready)
        self._drive = drive_ready
        self._watchdog = watchdog
        self._callback = callback
        self.payloads: list[int] = []
        self.cycles: list[int] = []
        self.cycle = 0

    async def receive(self, count: int) -> list[int]:
        """Take ``count`` beats; return all beats taken so far."""
        valid, ready, payload = self.ports.valid, self.ports.ready, self.ports.payload
        goal = len(self.payloads) + count
        while len(self.payloads) < goal:
            if self._drive:
                accept = 1 if self._ready is None else next(self._ready)
                ready.value = accept
            await ReadOnly()
            if not self._drive:
                accept = int(ready.value)
            if accept and int(valid.value):
                beat = int(payload.value)
                self.payloads.append(beat)
                self.cycles.append(self.cycle)
                if self._watchdog is not None:
                    self._watchdog.handshake(self.cycle)
                if self._callback is not None:
                    self._callback(beat, self.cycle)
            if self._watchdog is not None:
                self._watchdog.check(self.cycle)
            await RisingEdge(self.clock)
            self.cycle += 1
        if self._drive:
            ready.value = 0
        return self.payloads


class Scoreboard:
    """In-order checker: every beat a monitor delivers (``scoreboard(beat, cycle)``) must equal the
    next expected one. :meth:`check` raises :class:`AssertionError` naming the first mismatches, and any
    missing or extra beats; ``transform`` maps a raw beat to the form ``expected`` holds (decoded
    fields, say) and ``format`` renders those for the message.
    """

    def __init__(self, expected: Iterable = (), *, name: str = "beat", transform: Callable[[int], Any] | None = None,
                 format: Callable[[Any], str] = repr, max_reported: int = 5):
        self.name = name
        self._expected = list(expected)
        self._transform = transform
        self._format = format
        self._max = max_reported
        self.received = 0
        self.matched = 0
        self.mismatches: list[str] = []

    def expect(self, *beats) -> None:
        self._expected.extend(beats)

    def __call__(self, beat: int, cycle: int) -> None:
        got = beat if self._transform is None else self._transform(beat)
        k = self.received
        self.received += 1
        if k >= len(self._expected):
            self.mismatches.append(f"{self.name} {k} at cycle {cycle} was not expected: {self._format(got)}")
        elif got == self._expected[k]:
            self.matched += 1
        else:
            self.mismatches.append(f"{self.name} {k} at cycle {cycle}: expected {self._format(self._expected[k])}, "
                                   f"got {self._format(got)}")

    @property
    def errors(self) -> int:
        return len(self.mismatches) + max(0, len(self._expected) - self.received)

    def check(self) -> None:
        if not self.errors:
            return
        missing = len(self._expected) - self.received
        lines = self.mismatches[:self._max]
        if len(self.mismatches) > self._max:
            lines.append(f"... and {len(self.mismatches) - self._max} more")
        if missing > 0:
            lines.append(f"{missing} expected {self.name}s never came")
        raise AssertionError(f"{len(self.mismatches)} of {self.received} {self.name}s differ from the expected ones"
                             + ("" if self.mismatches else f" ({missing} missing)") + ":\n" + "\n".join(lines))
