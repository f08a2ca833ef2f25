"""The board frame protocol's bytes (docs/board_protocol.md): what a host sends to a
:class:`bnn2hw.hw.board_top.BoardTop` and what it answers, encoded and decoded. Pure Python and numpy;
no Amaranth and no serial port, so both sides use it: the board top (hw/) takes its byte constants
and descriptor from here, the serial host runner (:mod:`bnn2hw.host`) its codec.

Host → board: ``0xB1`` + one byte per pixel element in stream order (a frame), or ``0xB0`` (info
request); any other byte while the board is between frames is ignored. Board → host: per frame
``0xB2``, the class byte, then every score little-endian two's complement in ⌈score_bits/8⌉ bytes;
per info request ``0xB3`` + the 13-byte descriptor (:class:`Descriptor`). Replies come in request order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import BoardError, InputDataError

__all__ = ["FRAME_HEADER", "INFO_REQUEST", "REPLY_HEADER", "INFO_HEADER", "MAGIC", "PROTOCOL_VERSION",
           "DESCRIPTOR_LENGTH", "DESCRIPTOR_SIGNATURE", "DEFAULT_BAUD", "REPLY_QUEUE_FRAMES", "Descriptor",
           "describe", "parse_descriptor", "reply_length", "encode_frame", "decode_reply", "stream_order"]

FRAME_HEADER = 0xB1
INFO_REQUEST = 0xB0
REPLY_HEADER = 0xB2
INFO_HEADER = 0xB3
MAGIC = b"B2H"
PROTOCOL_VERSION = 1
#: Bytes of an info reply: 0xB3, "B2H", version, pixel bytes (u32), pixel bits, classes, score bits,
#: input channels (u16).
DESCRIPTOR_LENGTH = 14
#: 115200 baud: within 0.2 % at 12 MHz (iCEBreaker, divisor 104) and 25 MHz (ULX3S, 217); both boards'
#: USB UARTs (FT2232H, FT231X) run it.
DEFAULT_BAUD = 115_200
#: Replies a BoardTop queues (the reply being sent, the network's last output register, and the
#: finished frame its last unit holds behind that register). A host that keeps at most this many
#: frames unanswered never makes the board drop a byte, whatever the reply and frame lengths.
REPLY_QUEUE_FRAMES = 3
#: The first bytes of every info reply: 0xB3, "B2H", version.
DESCRIPTOR_SIGNATURE = bytes([INFO_HEADER]) + MAGIC + bytes([PROTOCOL_VERSION])


@dataclass(frozen=True)
class Descriptor:
    """What a board design takes and answers. ``channels`` = 0: frames are sent in the model's flat
    input order (dense designs); C ≥ 1: as H·W pixels of C channels, raster order (convolutional)."""
    pixel_bytes: int
    pixel_bits: int
    classes: int
    score_bits: int
    channels: int = 0

    def __post_init__(self):
        limits = {"pixel_bytes": (1, 2 ** 32 - 1), "pixel_bits": (1, 8), "classes": (1, 255),
                  "score_bits": (1, 255), "channels": (0, 2 ** 16 - 1)}
        for name, (lo, hi) in limits.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
                raise BoardError(f"descriptor field {name} = {value!r} is outside {lo}..{hi}, which the frame "
                                 "protocol cannot carry; use a design within these limits")
        if self.channels and self.pixel_bytes % self.channels:
            raise BoardError(f"descriptor says {self.pixel_bytes} pixel bytes of {self.channels} channels, which "
                             "is not a whole number of pixels; the design and its descriptor disagree")

    @property
    def score_bytes(self) -> int:
        return -(-self.score_bits // 8)

    @property
    def reply_length(self) -> int:
        return reply_length(self.classes, self.score_bits)

    def to_bytes(self) -> bytes:
        return describe(self.pixel_bytes, self.pixel_bits, self.classes, self.score_bits, self.channels)

    def summary(self) -> str:
        layout = f"{self.channels}-channel pixels" if self.channels else "a flat vector"
        return (f"{self.pixel_bytes} pixel bytes of {self.pixel_bits} bits as {layout}, {self.classes} classes "
                f"of {self.score_bits}-bit scores")

    @classmethod
    def of(cls, compiled) -> "Descriptor":
        """The descriptor of a :class:`bnn2hw.flow.Compiled` (duck-typed: graph and params)."""
        graph = compiled.graph
        return cls(pixel_bytes=int(graph.input.size), pixel_bits=int(graph.input.bits),
                   classes=int(graph.num_classes), score_bits=int(compiled.params[-1].score_width),
                   channels=int(graph.input.shape[0]) if graph.has_convolutions else 0)


def describe(pixel_bytes: int, pixel_bits: int, classes: int, score_bits: int, channels: int = 0) -> bytes:
    """The info reply a design sends: 0xB3, "B2H", version, then the fields (multi-byte ones little-endian)."""
    Descriptor(pixel_bytes, pixel_bits, classes, score_bits, channels)        # range checks
    return (DESCRIPTOR_SIGNATURE + int(pixel_bytes).to_bytes(4, "little") + bytes([pixel_bits, classes, score_bits])
            + int(channels).to_bytes(2, "little"))


def parse_descriptor(data: bytes) -> Descriptor:
    """Inverse of :func:`describe`; :class:`BoardError` for anything that is not a version-1 descriptor."""
    data = bytes(data)
    if len(data) < DESCRIPTOR_LENGTH:
        raise BoardError(f"the info reply has {len(data)} of its {DESCRIPTOR_LENGTH} bytes; the link lost bytes "
                         "or the baud rate is wrong")
    if data[0] != INFO_HEADER or data[1:4] != MAGIC:
        raise BoardError(f"the info reply starts with {data[:4].hex(' ')}, not b3 {MAGIC.hex(' ')}: the port is not "
                         "connected to a bnn2hw board top; check the port and the baud rate")
    if data[4] != PROTOCOL_VERSION:
        raise BoardError(f"the board speaks frame protocol version {data[4]}, this bnn2hw version "
                         f"{PROTOCOL_VERSION}; rebuild the bitstream with this bnn2hw")
    return Descriptor(pixel_bytes=int.from_bytes(data[5:9], "little"), pixel_bits=data[9], classes=data[10],
                      score_bits=data[11], channels=int.from_bytes(data[12:14], "little"))


def reply_length(n_classes: int, score_bits: int) -> int:
    """Bytes of one frame reply: header, class, then ⌈score_bits/8⌉ bytes per class."""
    return 2 + n_classes * -(-score_bits // 8)


def encode_frame(pixels_1d, pixel_bits: int) -> bytes:
    """One frame request: 0xB1 + the pixels (integers 0..2**pixel_bits-1, already in stream order)."""
    pixels = np.asarray(pixels_1d)
    if pixels.ndim != 1 or pixels.size == 0 or pixels.dtype.kind not in "iu":
        raise InputDataError(f"a frame must be a non-empty 1-D integer array, not {pixels.dtype} of shape "
                             f"{pixels.shape}; flatten it into stream order first")
    top = (1 << pixel_bits) - 1
    if pixels.min() < 0 or pixels.max() > top:
        raise InputDataError(f"frame pixels range over {pixels.min()}..{pixels.max()}, but the board takes "
                             f"{pixel_bits}-bit pixels 0..{top}; rescale them into that range")
    return bytes([FRAME_HEADER]) + pixels.astype(np.uint8).tobytes()


def decode_reply(data: bytes, n_classes: int, score_bits: int, *, frame: int | None = None) -> tuple[int, np.ndarray]:
    """One frame reply → (class, scores int64 (n_classes,)); :class:`BoardError` if it is malformed."""
    data = bytes(data)
    what = "the reply" if frame is None else f"the reply to frame {frame}"
    length = reply_length(n_classes, score_bits)
    if len(data) != length:
        raise BoardError(f"{what} has {len(data)} bytes, not {length}; the link lost bytes or the board runs "
                         "another design")
    if data[0] != REPLY_HEADER:
        raise BoardError(f"{what} starts with 0x{data[0]:02X}, not 0x{REPLY_HEADER:02X}: the link lost or corrupted "
                         "bytes; check the baud rate and the cable, then run again")
    width = -(-score_bits // 8)
    raw = np.frombuffer(data[2:], dtype=np.uint8).reshape(n_classes, width).astype(np.int64)
    unsigned = (raw << (8 * np.arange(width, dtype=np.int64))).sum(axis=1)
    scores = np.where(unsigned >= 1 << (8 * width - 1), unsigned - (1 << (8 * width)), unsigned)
    cls = data[1]
    lo, hi = -(1 << (score_bits - 1)), (1 << (score_bits - 1)) - 1
    if cls >= n_classes or scores.min() < lo or scores.max() > hi or cls != int(np.argmax(scores)):
        raise BoardError(f"{what} is inconsistent (class {cls}, scores {scores.tolist()} of {score_bits} bits): "
                         "the link corrupted bytes; check the baud rate and the cable, then run again")
    return int(cls), scores


def stream_order(inputs, descriptor: Descriptor) -> np.ndarray:
    """Inputs in the model's order, (n, *input_shape) or (n, pixels), → (n, pixel_bytes) int64 in the order
    the board takes them (channel-last raster order for convolutional designs), range-checked."""
    x = np.asarray(inputs)
    d = descriptor
    if x.dtype.kind not in "iuf" or x.dtype == np.bool_:
        raise InputDataError(f"inputs have dtype {x.dtype}, but the board takes integer pixels; save them as an "
                             "integer numpy array")
    if x.ndim == 1 and x.size == d.pixel_bytes:
        x = x[None]
    if x.ndim < 2 or x.shape[0] == 0 or int(np.prod(x.shape[1:])) != d.pixel_bytes:
        raise InputDataError(f"inputs have shape {x.shape}, but the board takes frames of {d.pixel_bytes} pixels "
                             f"(n, {d.pixel_bytes}) or (n, *input_shape); give inputs of the model the board runs")
    if d.channels and x.ndim > 2 and x.shape[1] != d.channels:
        raise InputDataError(f"inputs have {x.shape[1]} channels (shape {x.shape}), but the board takes "
                             f"{d.channels}; give them in the model's (n, C, H, W) order")
    flat = x.reshape(len(x), -1)
    if flat.dtype.kind == "f":
        if not np.all(np.isfinite(flat)) or np.any(flat != np.round(flat)):
            raise InputDataError("inputs hold non-integer values, but the board takes integer pixels; round or "
                                 "quantise them first")
    top = (1 << d.pixel_bits) - 1
    if flat.min() < 0 or flat.max() > top:
        raise InputDataError(f"inputs range over {flat.min():g}..{flat.max():g}, but the board takes "
                             f"{d.pixel_bits}-bit pixels 0..{top}; rescale them into that range")
    flat = flat.astype(np.int64)
    if d.channels:
        flat = np.ascontiguousarray(flat.reshape(len(flat), d.channels, -1).transpose(0, 2, 1)).reshape(len(flat), -1)
    return flat
