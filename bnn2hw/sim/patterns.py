"""Idle-gap and back-pressure patterns of the stream test kit, shared by both simulators.

Amaranth's simulator (:mod:`bnn2hw.sim.streams`) and cocotb (:mod:`bnn2hw.sim.cocotb_streams`) draw
the same patterns from the same seeds, so that a run under stalls gives the same handshakes, cycle
for cycle, in both. A pattern is an iterable of integers: for a producer, the idle cycles before each
beat; for a consumer, ``ready`` (0 or 1) in each cycle. ``None`` means no gaps, or always ready.
This module imports nothing but the standard library: the cocotb bench imports it inside the
simulator.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

__all__ = ["BACKPRESSURE_READY", "gap_choices", "random_gaps", "random_ready", "network_stalls"]

#: Probability of ``ready`` in a cycle under the networks' random back-pressure.
BACKPRESSURE_READY = 0.6


def gap_choices(beats_per_frame: int) -> tuple[int, ...]:
    """Idle cycles drawn before each input beat of a network under ``input_gaps``: short gaps between
    one-beat frames; rare ones between the pixels of a many-beat frame."""
    return (0, 0, 1, 2, 5) if beats_per_frame == 1 else (0,) * 12 + (1, 3)


def random_gaps(rng: random.Random, choices: Sequence[int]) -> Iterator[int]:
    """Idle cycles before each beat, drawn from ``choices`` with ``rng``, one draw per beat as it is sent."""
    while True:
        yield rng.choice(choices)


def random_ready(rng: random.Random, probability: float) -> Iterator[int]:
    """``ready`` in each cycle: 1 with ``probability``, one draw of ``rng`` per cycle."""
    while True:
        yield int(rng.random() < probability)


def network_stalls(seed: int, beats_per_frame: int, *, input_gaps: bool,
                   backpressure: bool) -> tuple[Iterator[int] | None, Iterator[int] | None]:
    """(input gaps, output ready) of a network run: the input side draws from ``Random(seed)``, the output
    side from ``Random(seed + 1)``; ``None`` where that stall is off."""
    gaps = random_gaps(random.Random(seed), gap_choices(beats_per_frame)) if input_gaps else None
    ready = random_ready(random.Random(seed + 1), BACKPRESSURE_READY) if backpressure else None
    return gaps, ready
