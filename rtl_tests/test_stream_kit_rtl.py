"""The cocotb stream kit (bnn2hw/sim/cocotb_streams.py) against the Amaranth one (bnn2hw/sim/streams.py):
the same component, exported and run in Icarus Verilog and Verilator, gives the same handshakes in the
same cycles for the same gap and ready patterns; the passive monitor sees the driver's handshakes; the
scoreboard fails the run naming the first wrong beat and its cycle."""

from __future__ import annotations

import json
import random

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from bnn2hw.errors import SimulationError
from bnn2hw.sim.cocotb_runner import run_cocotb
from bnn2hw.sim.cocotb_streams import stream_port_names
from bnn2hw.sim.streams import StreamConsumer, StreamProducer, random_gaps, random_ready, simulate_streams
from bnn2hw.sim.tools import find_simulator

from stream_kit_bench import PARAMS_ENV

GAP_CHOICES = (0, 0, 1, 3)
TOP = "kit_top"


class MaskedFifo(wiring.Component):
    """A 3-deep FIFO whose output is its input XOR 0x5A: a stream component with latency and back-pressure."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(8)), "o": Out(stream.Signature(8))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=8, depth=3)
        wiring.connect(m, wiring.flipped(self.i), fifo.w_stream)
        m.d.comb += [self.o.payload.eq(fifo.r_data ^ 0x5A), self.o.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.o.ready)]
        return m


def amaranth_run(beats, seed):
    dut = MaskedFifo()
    producer = StreamProducer(dut.i, beats, gaps=random_gaps(random.Random(seed), GAP_CHOICES))
    consumer = StreamConsumer(dut.o, len(beats), ready=random_ready(random.Random(seed + 1), 0.5), max_cycles=10_000)
    simulate_streams(dut, producers=[producer], consumers=[consumer])
    return producer, consumer


def cocotb_run(simulator, build_dir, beats, expected, seed):
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{TOP}.v"
    source.write_text(verilog.convert(MaskedFifo(), name=TOP, emit_src=False))
    params, results = build_dir / "kit_params.json", build_dir / "kit_results.json"
    params.write_text(json.dumps({
        "beats": beats, "expected": expected, "ports": {m: stream_port_names(m) for m in ("i", "o")},
        "gap_seed": seed, "gap_choices": GAP_CHOICES, "ready_seed": seed + 1, "ready_probability": 0.5,
        "results": str(results)}))
    run_cocotb(source, TOP, "stream_kit_bench", simulator=simulator, build_dir=build_dir,
               env=find_simulator(simulator), extra_env={PARAMS_ENV: str(params)}, results=results)
    return json.loads(results.read_text())


def test_cocotb_kit_gives_the_amaranth_kits_handshakes(simulator, tmp_path):
    seed = 7
    beats = [random.Random(seed).randrange(256) for _ in range(48)]
    expected = [b ^ 0x5A for b in beats]
    producer, consumer = amaranth_run(beats, seed)
    assert [int(p) for p in consumer.payloads] == expected
    rtl = cocotb_run(simulator, tmp_path / simulator, beats, expected, seed)
    assert rtl["outputs"] == expected and rtl["inputs"] == beats
    assert (rtl["offered"], rtl["taken"]) == (producer.offered, producer.taken)
    assert rtl["output_cycles"] == consumer.cycles
    assert rtl["input_cycles"] == rtl["taken"]
    assert any(t > o for o, t in zip(producer.offered, producer.taken))      # the FIFO did fill up


@pytest.mark.parametrize("simulator", ["icarus"], indirect=True)
def test_scoreboard_names_the_first_wrong_beat(simulator, tmp_path):
    beats = list(range(30))
    expected = [b ^ 0x5A for b in beats]
    _, consumer = amaranth_run(beats, 3)
    expected[4] ^= 1
    expected[9] ^= 0x80
    with pytest.raises(SimulationError) as info:
        cocotb_run(simulator, tmp_path, beats, expected, 3)
    message = str(info.value)
    assert "2 of 30 beats differ" in message
    assert f"beat 4 at cycle {consumer.cycles[4]}: expected {hex(expected[4])}, got {hex(4 ^ 0x5A)}" in message
