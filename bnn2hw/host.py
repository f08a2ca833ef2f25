"""The serial host runner of the board frame protocol (docs/board_protocol.md): brings a board behind
a pyserial-like port to a known state, reads its descriptor and runs frames on it, several in flight.
The bytes themselves are :mod:`bnn2hw.frame_codec`'s. Pure Python and numpy; no Amaranth.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .errors import BoardError
from .frame_codec import (DESCRIPTOR_LENGTH, DESCRIPTOR_SIGNATURE, INFO_REQUEST, REPLY_QUEUE_FRAMES, Descriptor,
                          decode_reply, encode_frame, parse_descriptor, stream_order)

__all__ = ["read_descriptor", "run_frames", "FLUSH_BATCHES"]


class _Reader:
    """Reads exact byte counts from a pyserial-like port under a deadline."""

    def __init__(self, port):
        self.port = port

    def read(self, n: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        got = bytearray()
        while len(got) < n:
            chunk = self.port.read(n - len(got))
            if chunk:
                got += chunk
            elif time.monotonic() >= deadline:
                break
            elif getattr(self.port, "timeout", None) == 0:
                time.sleep(0.001)
        return bytes(got)

    def find_descriptor(self, timeout: float) -> Descriptor | None:
        """Skip stale bytes until a descriptor arrives (None if none within ``timeout``)."""
        deadline = time.monotonic() + timeout
        seen = bytearray()
        while True:
            start = seen.find(DESCRIPTOR_SIGNATURE)
            if start >= 0 and len(seen) >= start + DESCRIPTOR_LENGTH:
                try:
                    return parse_descriptor(seen[start:start + DESCRIPTOR_LENGTH])
                except BoardError:
                    del seen[:start + 1]        # the signature bytes were part of a stale score
                    continue
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            need = DESCRIPTOR_LENGTH - (len(seen) - start) if start >= 0 else 1
            seen += self.read(max(1, need), min(left, 0.05))


#: Zero bytes sent, one batch after another, to complete a frame an interrupted host left half sent.
FLUSH_BATCHES = (256, 4096)


def read_descriptor(port, *, timeout: float = 2.0, flush_bytes: int = 0) -> Descriptor:
    """Bring the board to a known state and return its descriptor.

    Sends an info request. If no descriptor comes back within ``timeout`` (the board may be waiting for
    the rest of a frame an interrupted run left half sent), sends :data:`FLUSH_BATCHES` zero bytes (and
    ``flush_bytes`` if more), each batch followed by another info request: zeros complete a partial
    frame (its reply is skipped) and are ignored between frames. Replies come in request order, so
    once the descriptor is read no stale byte is left on the line."""
    reader = _Reader(port)
    port.write(bytes([INFO_REQUEST]))
    found = reader.find_descriptor(timeout)
    batches = FLUSH_BATCHES + ((flush_bytes,) if flush_bytes > max(FLUSH_BATCHES) else ())
    flushed = 0
    for batch in batches:
        if found is not None:
            break
        port.write(bytes(batch) + bytes([INFO_REQUEST]))
        flushed += batch
        found = reader.find_descriptor(timeout)
    if found is None:
        raise BoardError(f"no board answered the info request within {timeout:g} s, also after {flushed} flush "
                         "bytes; check that the FPGA is programmed with a bnn2hw board top, the port and the baud "
                         "rate, or reset the board")
    return found


def _check_descriptor(found: Descriptor, expected: Descriptor | None) -> None:
    if expected is not None and found != expected:
        raise BoardError(f"the board runs another design ({found.summary()}), but these inputs are for "
                         f"{expected.summary()}; program the FPGA with this model's bitstream")


def run_frames(port, inputs, *, descriptor_expected: Descriptor | None = None, timeout: float = 2.0,
               window: int = 2, progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run every input frame on the board behind ``port`` (any object with pyserial's ``read``/``write``);
    return scores (n, classes) int64 and classes (n,) int64.

    ``inputs`` are in the model's order ((n, *input_shape) or flattened); they are checked against the
    board's descriptor (:func:`read_descriptor`), and against ``descriptor_expected`` if given. Up to
    ``window`` frames (1..REPLY_QUEUE_FRAMES) are sent ahead of their replies. A reply that does not
    complete within ``timeout`` seconds of being due raises :class:`BoardError`; so do malformed replies.
    ``progress(done, total)`` is called after every reply.
    """
    if not 1 <= window <= REPLY_QUEUE_FRAMES:
        raise BoardError(f"window = {window} frames in flight, but a board queues at most {REPLY_QUEUE_FRAMES} "
                         f"replies; choose 1..{REPLY_QUEUE_FRAMES}")
    saved_timeout = getattr(port, "timeout", None)
    if hasattr(port, "timeout") and (saved_timeout is None or saved_timeout > 0.05):
        port.timeout = 0.05          # short reads; the deadlines below decide what is too late
    try:
        found = read_descriptor(port, timeout=timeout,
                                flush_bytes=descriptor_expected.pixel_bytes if descriptor_expected else 0)
        _check_descriptor(found, descriptor_expected)
        frames = stream_order(inputs, found)
        n, length = len(frames), found.reply_length
        scores = np.zeros((n, found.classes), dtype=np.int64)
        classes = np.zeros(n, dtype=np.int64)
        reader, sent = _Reader(port), 0
        for k in range(n):
            while sent < n and sent < k + window:
                port.write(encode_frame(frames[sent], found.pixel_bits))
                sent += 1
            data = reader.read(length, timeout)
            if not data:
                raise BoardError(f"the board sent no reply to frame {k} within {timeout:g} s; check that it is "
                                 "still powered and programmed, or raise the timeout")
            if len(data) < length:
                raise BoardError(f"the board sent {len(data)} of the {length} bytes of the reply to frame {k} "
                                 f"within {timeout:g} s: a short reply; the link lost bytes, check the baud rate")
            classes[k], scores[k] = decode_reply(data, found.classes, found.score_bits, frame=k)
            if progress is not None:
                progress(k + 1, n)
        return scores, classes
    finally:
        if hasattr(port, "timeout"):
            port.timeout = saved_timeout
