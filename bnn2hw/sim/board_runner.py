"""Run an exported ``bnn2hw_board_top.v`` in Icarus Verilog or Verilator through cocotb, speaking the
frame protocol over its UART pins (bench: :mod:`bnn2hw.sim.cocotb_uart_bench`).

:func:`board_schedule` lays out a session: garbage bytes and an info request, frames back to back
(each start bit right after the previous stop bit), frames with idle gaps and garbage before their
headers, an info request right after the back-to-back run and directly followed by the next frame
(the board must answer it after the queued replies and before that frame's) and one at the end.
:func:`run_board_top_rtl` runs it and parses the replies with the frame codec of
:mod:`bnn2hw.frame_codec`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BoardError, SimulationError
from ..frame_codec import (DESCRIPTOR_LENGTH, INFO_REQUEST, Descriptor, decode_reply, encode_frame,
                           parse_descriptor)
from ..hw.board_top import BOARD_TOP_NAME
from .cocotb_runner import _unoptimized_make, run_cocotb
from .cocotb_uart_bench import BOARD_PARAMS_ENV
from .tools import find_simulator

__all__ = ["BoardSchedule", "BoardRun", "board_schedule", "run_board_top_rtl", "GARBAGE_BYTES"]

#: Bytes a board ignores between frames (anything but 0xB0 and 0xB1), used as line noise.
GARBAGE_BYTES = (0x00, 0xFF, 0x55, 0xB2, 0xB3, 0xAF, 0x0B)


@dataclass(frozen=True)
class BoardSchedule:
    rx: np.ndarray                  # (k, 2) int64: idle cycles before the byte, the byte
    requests: tuple[str, ...]       # "frame" or "info", in the order they are sent
    frame_last_byte: tuple[int, ...]  # index into rx of each frame's last byte
    back_to_back_frames: int        # frames whose bytes (header included) follow each other without a gap
    garbage_bytes: int


@dataclass(frozen=True)
class BoardRun:
    scores: np.ndarray              # (n, classes) int64, from the frame replies
    classes: np.ndarray             # (n,) int64
    descriptors: tuple[Descriptor, ...]  # one per info request
    leds_at_reply: np.ndarray       # (n,) leds while each frame reply's first byte was sent
    final_leds: int
    overrun: bool
    reply_cycles: np.ndarray        # (n,) cycle of each frame reply's start bit
    info_cycles: np.ndarray         # cycle of each info reply's start bit
    frame_end_cycles: np.ndarray    # (n,) cycle at which each frame's last stop bit ended on rx
    tx_cycles: np.ndarray           # start-bit cycle of every byte sent by the board
    schedule: BoardSchedule


def board_schedule(frames, pixel_bits: int, divisor: int, *, back_to_back: bool = True, gaps: bool = True,
                   seed: int = 0) -> BoardSchedule:
    """The rx bytes of a session over ``frames`` ((n, pixel bytes), stream order). ``back_to_back``: the
    first half of the frames (all if not ``gaps``) with no idle time at all; ``gaps``: the others after
    idle gaps (up to 1.5 byte times, and within frames now and then) and, for a third of them, 1–3
    garbage bytes before the header."""
    frames = np.asarray(frames, dtype=np.int64)
    rng = random.Random(seed)
    rx: list[tuple[int, int]] = []
    requests: list[str] = []
    last_byte: list[int] = []
    garbage = 0
    byte_cycles = 10 * divisor

    def idle() -> int:
        return rng.choice((1, 3, divisor, byte_cycles, 3 * byte_cycles // 2)) if gaps else 0

    for value in GARBAGE_BYTES[:3]:
        rx.append((idle(), value))
        garbage += 1
    rx.append((idle(), INFO_REQUEST))
    requests.append("info")
    n = len(frames)
    together = (n + 1) // 2 if gaps else n
    if not back_to_back:
        together = 0
    for k, frame in enumerate(frames):
        spaced = k > together       # the frame right after the mid-session info request follows it directly
        if spaced and rng.random() < 1 / 3:
            for _ in range(rng.randint(1, 3)):
                rx.append((idle(), rng.choice(GARBAGE_BYTES)))
                garbage += 1
        for j, value in enumerate(encode_frame(frame, pixel_bits)):
            gap = idle() if spaced and (j == 0 or rng.random() < 0.1) else 0
            rx.append((gap, value))
        last_byte.append(len(rx) - 1)
        requests.append("frame")
        if k == together - 1 and together < n:
            rx.append((0, INFO_REQUEST))       # while the back-to-back frames' replies are still queued
            requests.append("info")
    rx.append((idle(), INFO_REQUEST))
    requests.append("info")
    return BoardSchedule(rx=np.array(rx, dtype=np.int64).reshape(-1, 2), requests=tuple(requests),
                         frame_last_byte=tuple(last_byte), back_to_back_frames=together, garbage_bytes=garbage)


def _parse(tx: np.ndarray, tx_cycles: np.ndarray, tx_leds: np.ndarray, schedule: BoardSchedule,
           descriptor: Descriptor):
    data = bytes(int(b) for b in tx)
    pos, descriptors, scores, classes, leds, starts, info_starts = 0, [], [], [], [], [], []
    for k, kind in enumerate(schedule.requests):
        length = DESCRIPTOR_LENGTH if kind == "info" else descriptor.reply_length
        if pos + length > len(data):
            raise BoardError(f"the board sent {len(data)} bytes, fewer than the {len(schedule.requests)} requests "
                             f"need (request {k}, {kind}, is incomplete)")
        chunk = data[pos:pos + length]
        if kind == "info":
            descriptors.append(parse_descriptor(chunk))
            info_starts.append(int(tx_cycles[pos]))
        else:
            cls, s = decode_reply(chunk, descriptor.classes, descriptor.score_bits, frame=len(classes))
            classes.append(cls)
            scores.append(s)
            leds.append(int(tx_leds[pos]))
            starts.append(int(tx_cycles[pos]))
        pos += length
    if pos != len(data):
        raise BoardError(f"the board sent {len(data) - pos} bytes more than its {len(schedule.requests)} requests "
                         f"ask for: {data[pos:pos + 16].hex(' ')}")
    return descriptors, scores, classes, leds, starts, info_starts


def run_board_top_rtl(verilog_path, frames, descriptor: Descriptor, *, divisor: int, simulator: str, build_dir,
                      back_to_back: bool = True, gaps: bool = True, seed: int = 0, rx_skew: float = 0.0,
                      quick_build: bool = False, max_idle_cycles: int = 200_000) -> BoardRun:
    """Simulate the board top on ``frames`` ((n, pixel bytes) integer pixels in stream order) over its UART
    with ``simulator`` ("icarus" or "verilator"); see :func:`board_schedule` for the session.

    ``rx_skew`` lengthens (> 0) or shortens the host's bit time relative to ``divisor`` cycles.
    ``build_dir`` must not be shared between concurrent calls. The run fails with
    :class:`SimulationError` if the board stops sending for ``max_idle_cycles`` cycles after the last
    rx byte, or if its replies are malformed, missing or more than requested.
    """
    env = find_simulator(simulator)
    if quick_build and simulator == "verilator":
        env = _unoptimized_make(env)
    schedule = board_schedule(frames, descriptor.pixel_bits, divisor, back_to_back=back_to_back, gaps=gaps, seed=seed)
    expected = sum(DESCRIPTOR_LENGTH if r == "info" else descriptor.reply_length for r in schedule.requests)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    files = {name: build_dir / f"board_{name}" for name in ("schedule.npy", "results.npz", "params.json")}
    np.save(files["schedule.npy"], schedule.rx)
    files["params.json"].write_text(json.dumps({
        "schedule": str(files["schedule.npy"]), "results": str(files["results.npz"]), "divisor": divisor,
        "rx_skew": rx_skew, "expected_bytes": expected, "max_idle_cycles": max_idle_cycles,
        "settle_cycles": 4 * 10 * divisor * max(DESCRIPTOR_LENGTH, descriptor.reply_length)}))

    run_cocotb(verilog_path, BOARD_TOP_NAME, "bnn2hw.sim.cocotb_uart_bench", simulator=simulator,
               build_dir=build_dir, env=env, extra_env={BOARD_PARAMS_ENV: str(files["params.json"])},
               results=files["results.npz"])
    with np.load(files["results.npz"]) as r:
        tx, tx_cycles, tx_leds = r["tx_bytes"], r["tx_cycles"], r["tx_leds"]
        rx_end = r["rx_end_cycles"]
        final_leds, overrun = int(r["final_leds"]), bool(r["overrun"])
    try:
        descriptors, scores, classes, leds, starts, info_starts = _parse(tx, tx_cycles, tx_leds, schedule, descriptor)
    except BoardError as e:
        raise SimulationError(f"the {simulator} simulation of {verilog_path}: {e}") from None
    return BoardRun(scores=np.array(scores, dtype=np.int64).reshape(len(scores), descriptor.classes),
                    classes=np.array(classes, dtype=np.int64), descriptors=tuple(descriptors),
                    leds_at_reply=np.array(leds, dtype=np.int64), final_leds=final_leds, overrun=overrun,
                    reply_cycles=np.array(starts, dtype=np.int64), info_cycles=np.array(info_starts, dtype=np.int64),
                    frame_end_cycles=np.array([rx_end[i] for i in schedule.frame_last_byte]),
                    tx_cycles=np.asarray(tx_cycles, dtype=np.int64), schedule=schedule)
