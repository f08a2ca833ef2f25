"""Run a compiled network in Amaranth's built-in simulator (no external tools).

The stream kit (:mod:`bnn2hw.sim.streams`) drives the input beats, optionally with random idle
cycles before them, and takes the outputs, optionally deasserting ``ready`` at random
(back-pressure). Both record the cycle of every handshake so that throughput and latency are
measured, not assumed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ..golden.packing import pack_fields
from ..hw import Network
from .patterns import network_stalls
from .streams import StreamConsumer, StreamProducer, simulate_streams

__all__ = ["SimResult", "run_network", "frame_word", "frame_beats", "measured_timing"]


@dataclass(frozen=True)
class SimResult:
    scores: np.ndarray            # (n, classes) int64
    classes: np.ndarray           # (n,) int64
    in_cycles: tuple[int, ...]    # cycle each frame's first beat is first offered (valid)
    out_cycles: tuple[int, ...]   # cycle of each output handshake


def frame_word(pixels, bits: int) -> int:
    """One input beat (flat integer pixels) → the input payload, element 0 at the LSB."""
    return pack_fields(pixels, bits)


def frame_beats(frame, bits: int, beats: int) -> list[int]:
    """One input frame (flat, in stream order: (H, W, C) for convolutional networks) → its ``beats``
    input payloads (the whole frame, or one pixel of every channel, per beat)."""
    frame = np.asarray(frame).reshape(beats, -1)
    return [pack_fields(beat, bits) for beat in frame]


def measured_timing(result: SimResult) -> tuple[int, int]:
    """(cycles per frame, latency) from a free-running run: all output intervals must agree."""
    out = result.out_cycles
    if len(out) < 2:
        raise ValueError("need at least two frames to measure cycles per frame")
    intervals = {b - a for a, b in zip(out, out[1:])}
    if len(intervals) != 1:
        raise AssertionError(f"output intervals vary ({sorted(intervals)}): the pipeline is not in steady state")
    return intervals.pop(), out[0] - result.in_cycles[0]


def run_network(network: Network, inputs: np.ndarray, pixel_bits: int, *, input_gaps: bool = False,
                backpressure: bool = False, seed: int = 0, max_cycles: int | None = None,
                vcd: str | None = None) -> SimResult:
    """Simulate ``network`` on ``inputs`` (n, features) integer pixels in stream order (channel-last for
    convolutional networks); return outputs and handshake cycles. ``input_gaps`` idles before beats,
    ``backpressure`` drops ``ready`` at random (:func:`bnn2hw.sim.patterns.network_stalls`, the same
    patterns as the cocotb bench draws for the same ``seed``)."""
    inputs = np.asarray(inputs, dtype=np.int64).reshape(len(inputs), -1)
    n, beats = len(inputs), network.input_beats
    words = [word for row in inputs for word in frame_beats(row, pixel_bits, beats)]
    gaps, ready = network_stalls(seed, beats, input_gaps=input_gaps, backpressure=backpressure)
    producer = StreamProducer(network.i, words, gaps=gaps)
    consumer = StreamConsumer(network.o, n, ready=ready, max_cycles=max_cycles or 10_000_000)
    # Amaranth's simulator writes wide constants (ROM rows of PE·SIMD bits) as decimal literals.
    sys.set_int_max_str_digits(0)
    simulate_streams(network, producers=[producer], consumers=[consumer], vcd=vcd)
    n_classes = len(network.o.payload.scores)
    scores = [[int(p.scores[c]) for c in range(n_classes)] for p in consumer.payloads]
    # Latency counts from the offer: a unit without input buffer takes the beat only when it has
    # issued the beat's last word.
    return SimResult(scores=np.array(scores, dtype=np.int64).reshape(n, n_classes),
                     classes=np.array([int(p.cls) for p in consumer.payloads], dtype=np.int64),
                     in_cycles=tuple(producer.offered[::beats]), out_cycles=tuple(consumer.cycles))
