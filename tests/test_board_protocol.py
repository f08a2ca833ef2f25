"""The host side of the board protocol against a Python model of the board (the golden model behind the
protocol's state machine): run_frames returns the golden scores for dense and convolutional designs
(channel-last order), keeps the requested number of frames in flight, recovers a board left in the
middle of a frame, and reports a silent board, another design, a short reply, a corrupted header or
score, and bad inputs, each with one clear sentence. ``bnn2hw run`` does the same over a
socket:// port served by the board model."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bnn2hw import golden
from bnn2hw.plan import plan_network
from bnn2hw.errors import BoardError, InputDataError
from bnn2hw.frame_codec import (DESCRIPTOR_LENGTH, FRAME_HEADER, INFO_REQUEST, REPLY_HEADER, Descriptor, describe,
                                decode_reply, encode_frame, parse_descriptor, reply_length, stream_order)
from bnn2hw.frontend import import_model
from bnn2hw.host import read_descriptor, run_frames
from bnn2hw.io import load
from bnn2hw.passes import apply_folding, fold_batchnorm
from bnn2hw.testing import build_random_conv_model

ROOT = Path(__file__).resolve().parents[1]


class BoardModel:
    """The board's byte-level behaviour (hw/board_top.py) in Python, with the golden model as the network.
    Writes are answered at once, so replies queue exactly as far as the host lets them.
    ``faults``: "silent_after:K" (no reply from frame K on), "short:K" (reply K loses its last 2 bytes),
    "header:K" (reply K's header byte is wrong), "score:K" (a score byte of reply K is flipped)."""

    def __init__(self, graph, descriptor: Descriptor, *, faults: tuple[str, ...] = (), pending_pixels: int = 0):
        self.graph, self.descriptor = graph, descriptor
        self.faults = dict(f.split(":") for f in faults)
        self.timeout = 0.0
        self.out = bytearray()
        self.read_pos = 0
        self.reply_ends: list[int] = []          # out offset after each frame reply
        self.frames = 0
        self.max_in_flight = 0
        self.frame: list[int] | None = [0] * pending_pixels if pending_pixels else None
        self.written = 0

    def _reply(self, frame: list[int]) -> bytes:
        d = self.descriptor
        stream = np.array(frame, dtype=np.int64)
        if d.channels:              # stream (H·W, C) → the model's (C, H, W)
            stream = stream.reshape(-1, d.channels).T.reshape(self.graph.input.shape)
        result = golden.run(self.graph, stream.reshape((1,) + tuple(self.graph.input.shape)))
        mask = (1 << (8 * d.score_bytes)) - 1
        data = bytes([REPLY_HEADER, int(result.classes[0])]) + b"".join(
            (int(s) & mask).to_bytes(d.score_bytes, "little") for s in result.scores[0])
        k = self.frames
        if self.faults.get("header") == str(k):
            data = b"\x42" + data[1:]
        if self.faults.get("score") == str(k):
            data = data[:2] + bytes([data[2] ^ 0x40]) + data[3:]
        if self.faults.get("short") == str(k):
            data = data[:-2]
        if "silent_after" in self.faults and k >= int(self.faults["silent_after"]):
            data = b""
        return data

    def write(self, data: bytes) -> int:
        for byte in bytes(data):
            if self.frame is not None:
                self.frame.append(byte & ((1 << self.descriptor.pixel_bits) - 1))
                if len(self.frame) == self.descriptor.pixel_bytes:
                    self.out += self._reply(self.frame)
                    self.frames += 1
                    self.reply_ends.append(len(self.out))
                    self.frame = None
            elif byte == FRAME_HEADER:
                self.frame = []
                answered = sum(end <= self.read_pos for end in self.reply_ends)
                self.max_in_flight = max(self.max_in_flight, self.frames + 1 - answered)
            elif byte == INFO_REQUEST:
                self.out += self.descriptor.to_bytes()
        self.written += len(data)
        return len(data)

    def read(self, n: int = 1) -> bytes:
        data = bytes(self.out[self.read_pos:self.read_pos + n])
        self.read_pos += len(data)
        return data


def _descriptor(graph) -> Descriptor:
    head = plan_network(apply_folding(graph)).head
    return Descriptor(pixel_bytes=graph.input.size, pixel_bits=graph.input.bits, classes=graph.num_classes,
                      score_bits=head.score_width, channels=graph.input.shape[0] if graph.has_convolutions else 0)


@pytest.fixture(scope="module")
def digits():
    model = load(ROOT / "models" / "digits_mlp.pt")
    graph = fold_batchnorm(import_model(model, model.input_shape))
    x = np.random.default_rng(0).integers(0, 17, size=(20, 64))
    return graph, _descriptor(graph), x


@pytest.fixture(scope="module")
def conv():
    model, shape = build_random_conv_model(3)
    graph = fold_batchnorm(import_model(model, shape))
    x = np.random.default_rng(3).integers(0, 1 << model[0].bits, size=(9,) + shape)
    return graph, _descriptor(graph), x


@pytest.mark.parametrize("window", [1, 2, 3])
def test_run_frames_returns_the_golden_scores_with_frames_in_flight(digits, window):
    graph, desc, x = digits
    board = BoardModel(graph, desc)
    scores, classes = run_frames(board, x, descriptor_expected=desc, timeout=0.2, window=window)
    expected = golden.run(graph, x)
    np.testing.assert_array_equal(scores, expected.scores)
    np.testing.assert_array_equal(classes, expected.classes)
    assert board.max_in_flight == window and board.frames == len(x)


def test_conv_inputs_go_channel_last_and_come_back_golden(conv):
    graph, desc, x = conv
    assert desc.channels == 3
    np.testing.assert_array_equal(stream_order(x, desc), golden.channel_last(graph, golden.check_inputs(graph, x)))
    for inputs in (x, x.reshape(len(x), -1)):        # (n, C, H, W) or flattened in the model's order
        scores, classes = run_frames(BoardModel(graph, desc), inputs, timeout=0.2)
        np.testing.assert_array_equal(scores, golden.run(graph, x).scores)


def test_a_board_left_in_the_middle_of_a_frame_is_flushed_back_into_step(digits):
    graph, desc, x = digits
    board = BoardModel(graph, desc, pending_pixels=23)
    board.out += b"\xb2\x07stale bytes of an unread reply"
    scores, _ = run_frames(board, x[:3], descriptor_expected=desc, timeout=0.1)
    np.testing.assert_array_equal(scores, golden.run(graph, x[:3]).scores)
    assert board.frames == 4            # the half frame, completed by the flush, and the three


@pytest.mark.parametrize("fault,message", [
    ("silent_after:2", r"^the board sent no reply to frame 2 within 0.1 s; check that it is still powered"),
    ("short:1", r"^the board sent 20 of the 22 bytes of the reply to frame 1 within 0.1 s: a short reply"),
    ("header:3", r"^the reply to frame 3 starts with 0x42, not 0xB2: the link lost or corrupted bytes"),
    ("score:0", r"^the reply to frame 0 is inconsistent \(class \d, scores .*\): the link corrupted bytes"),
])
def test_board_faults_raise_one_clear_sentence(digits, fault, message):
    graph, desc, x = digits
    with pytest.raises(BoardError, match=message) as info:
        run_frames(BoardModel(graph, desc, faults=(fault,)), x[:5], timeout=0.1, window=1)
    assert "\n" not in str(info.value)


def test_another_design_is_refused_before_any_frame_is_sent(digits, conv):
    graph, desc, x = digits
    board = BoardModel(conv[0], conv[1])
    with pytest.raises(BoardError, match=r"^the board runs another design \(108 pixel bytes of 3 bits as 3-channel "
                                         r"pixels, 7 classes of \d+-bit scores\), but these inputs are for 64 pixel "
                                         r"bytes of 5 bits as a flat vector, 10 classes"):
        run_frames(board, x, descriptor_expected=desc, timeout=0.1)
    assert board.frames == 0


def test_a_silent_port_says_no_board_answered(digits):
    class Silent:
        timeout = 0.0

        def __init__(self):
            self.written = 0

        def write(self, data):
            self.written += len(data)

        def read(self, n=1):
            return b""
    port = Silent()
    with pytest.raises(BoardError, match=r"^no board answered the info request within 0.05 s, also after 4352 "
                                         r"flush bytes; check that the FPGA is programmed"):
        read_descriptor(port, timeout=0.05)
    assert port.written == 3 + 4352


def test_descriptor_round_trip_and_malformed_descriptors(digits):
    _, desc, _ = digits
    data = desc.to_bytes()
    assert len(data) == DESCRIPTOR_LENGTH and data == describe(64, 5, 10, desc.score_bits)
    assert parse_descriptor(data) == desc
    with pytest.raises(BoardError, match="protocol version 2, this bnn2hw version 1"):
        parse_descriptor(data[:4] + b"\x02" + data[5:])
    with pytest.raises(BoardError, match="not connected to a bnn2hw board top"):
        parse_descriptor(b"\xb3XYZ" + data[4:])
    with pytest.raises(BoardError, match="has 5 of its 14 bytes"):
        parse_descriptor(data[:5])
    assert desc.reply_length == reply_length(10, desc.score_bits) == 2 + 10 * desc.score_bytes


def test_encode_and_decode_against_the_board_model(digits):
    graph, desc, x = digits
    board = BoardModel(graph, desc)
    board.write(encode_frame(x[0], desc.pixel_bits))
    cls, scores = decode_reply(board.read(desc.reply_length), desc.classes, desc.score_bits)
    expected = golden.run(graph, x[:1])
    assert cls == expected.classes[0] and np.array_equal(scores, expected.scores[0])
    with pytest.raises(BoardError, match="has 21 bytes, not 22"):
        decode_reply(board.out[:21], desc.classes, desc.score_bits)


def test_inputs_that_do_not_fit_the_board(digits, conv):
    _, desc, x = digits
    with pytest.raises(InputDataError, match=r"takes frames of 64 pixels"):
        stream_order(x[:, :60], desc)
    with pytest.raises(InputDataError, match=r"range over 0..32, but the board takes 5-bit pixels 0..31"):
        stream_order(np.concatenate([x, [[0] * 63 + [32]]]), desc)
    with pytest.raises(InputDataError, match="takes 5-bit pixels"):
        encode_frame(np.full(64, 40), desc.pixel_bits)
    _, cdesc, cx = conv
    with pytest.raises(InputDataError, match="inputs have 1 channels"):
        stream_order(cx.reshape(len(cx), 1, 3 * 6, 6), cdesc)


# ---- the command, over a socket:// port served by the board model ----

class _SocketBoard(threading.Thread):
    """Serves one connection on 127.0.0.1 with a BoardModel."""

    def __init__(self, board: BoardModel):
        super().__init__(daemon=True)
        self.board = board
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"

    def run(self):
        conn, _ = self.listener.accept()
        with conn:
            while data := conn.recv(4096):
                self.board.write(data)
                reply = self.board.read(len(self.board.out))
                if reply:
                    conn.sendall(reply)
        self.listener.close()


def test_run_command_over_a_socket_port(digits, tmp_path):
    from bnn2hw.cli.run import run_cmd
    graph, desc, x = digits
    expected = golden.run(graph, x)
    np.save(tmp_path / "X.npy", x)
    labels = expected.classes.copy()
    labels[:5] = (labels[:5] + 1) % 10
    np.save(tmp_path / "y.npy", labels)
    server = _SocketBoard(BoardModel(graph, desc))
    server.start()
    result = CliRunner().invoke(run_cmd, ["--port", server.url, "--inputs", str(tmp_path / "X.npy"),
                                          "--out", str(tmp_path / "Y.npz"), "--labels", str(tmp_path / "y.npy"),
                                          "--timeout", "1"])
    server.join(timeout=5)
    assert result.exit_code == 0, result.output
    counts = np.bincount(expected.classes, minlength=10).tolist()
    assert f"board: 20 frames; class counts {counts}" in result.output
    assert "accuracy: board 75.00% on 20 labelled inputs" in result.output
    with np.load(tmp_path / "Y.npz") as y:
        np.testing.assert_array_equal(y["scores"], expected.scores)
        np.testing.assert_array_equal(y["classes"], expected.classes)


def test_run_command_refuses_inputs_of_another_shape(digits, tmp_path):
    from bnn2hw.cli.run import run_cmd
    graph, desc, x = digits
    np.save(tmp_path / "X.npy", x[:, :63])
    server = _SocketBoard(BoardModel(graph, desc))
    server.start()
    result = CliRunner().invoke(run_cmd, ["--port", server.url, "--inputs", str(tmp_path / "X.npy"), "--timeout", "1"])
    server.join(timeout=5)
    assert isinstance(result.exception, InputDataError)
    assert "X.npy does not fit the board: inputs have shape (20, 63)" in str(result.exception)


def test_run_command_names_a_port_that_cannot_be_opened(tmp_path):
    from bnn2hw.cli.run import run_cmd
    np.save(tmp_path / "X.npy", np.zeros((1, 64), dtype=np.int64))
    result = CliRunner().invoke(run_cmd, ["--port", str(tmp_path / "ttyUSB9"), "--inputs", str(tmp_path / "X.npy")])
    assert isinstance(result.exception, BoardError)
    assert str(result.exception).startswith(f"cannot open serial port '{tmp_path / 'ttyUSB9'}'")


def test_board_schedule_of_the_rtl_bench(digits):
    """The session the cocotb bench sends: what the RTL tests rely on, and that the board model answers
    it with the golden replies in request order."""
    from bnn2hw.sim.board_runner import GARBAGE_BYTES, board_schedule
    graph, desc, x = digits
    s = board_schedule(x, desc.pixel_bits, 4, seed=1)
    assert s.requests.count("frame") == len(x) and s.requests.count("info") == 3 and s.back_to_back_frames == 10
    assert not set(GARBAGE_BYTES) & {FRAME_HEADER, INFO_REQUEST}
    first_frame = s.frame_last_byte[0] - desc.pixel_bytes
    assert np.all(s.rx[first_frame:s.frame_last_byte[9] + 3, 0] == 0)    # frames 0..9, the info request, frame 10
    assert np.any(s.rx[s.frame_last_byte[10] + 1:, 0] > 0)
    board = BoardModel(graph, desc)
    board.write(bytes(int(b) for b in s.rx[:, 1]))
    expected = golden.run(graph, x)
    pos = 0
    for kind in s.requests:
        length = DESCRIPTOR_LENGTH if kind == "info" else desc.reply_length
        chunk = board.read(length)
        if kind == "info":
            assert parse_descriptor(chunk) == desc
        else:
            cls, scores = decode_reply(chunk, desc.classes, desc.score_bits)
            assert cls == expected.classes[pos] and np.array_equal(scores, expected.scores[pos])
            pos += 1
    assert pos == len(x) and board.read(1) == b""
    assert np.all(board_schedule(x, desc.pixel_bits, 4, gaps=False).rx[:, 0] == 0)
