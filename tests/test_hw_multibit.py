"""Multi-bit precision in hardware: integer-code MVUs (weight precision 1..8, 1..8-bit input codes),
multi-threshold outputs (L comparators per channel, or a pipelined binary search) and scores heads, and max-pooling of codes.

Every unit runs in Amaranth's simulator under random input gaps and back-pressure; each output beat
is compared with an independent numpy computation: A = x @ w.T, q = (A[..., None] >= T).sum(-1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest

from bnn2hw.golden.packing import pack_fields, unpack_fields
from bnn2hw.hw import MatrixVectorUnit, MVUParams
from bnn2hw.hw.maxpool import MaxPoolParams, MaxPoolUnit, reference_maxpool
from bnn2hw.ir.arith import folds, signed_width
from bnn2hw.plan.rom import channel_fields, channel_rom, search_roms, search_thresholds, weight_code_rom, weight_rom
from bnn2hw.sim.streams import StreamConsumer, StreamProducer, random_gaps, random_ready, simulate_streams


@dataclass(frozen=True)
class Case:
    n_in: int
    n_out: int
    pe: int
    simd: int
    pixel_bits: int
    weight_precision: int = 1
    levels: int = 1
    scores: bool = False
    affine: bool = False
    pipeline: int = 0
    input_buffers: int = 2
    datapath: str = "codes"          # "codes", or the existing "xnor" / "pixel" datapaths (1-bit weights)
    spare_bits: int = 0              # extra accumulator / threshold bits beyond the exact widths
    onehot_select: bool = False
    search: bool = False             # L ≥ 2 by the pipelined binary search instead of the comparator bank
    common_scale: int = 0            # affine head: one constant scale for every class (no scale ROM)


CASES = [
    Case(13, 7, 3, 4, 4, weight_precision=2, levels=3),
    Case(9, 5, 2, 4, 8, weight_precision=8, levels=1, pipeline=2, input_buffers=1),
    Case(10, 6, 4, 3, 1, weight_precision=1, levels=2, input_buffers=0),
    Case(7, 3, 2, 2, 2, weight_precision=4, levels=15, pipeline=2, spare_bits=1),
    Case(3, 2, 1, 2, 2, weight_precision=2, levels=255, input_buffers=1),
    Case(11, 4, 4, 5, 4, weight_precision=1, levels=1, pipeline=2, input_buffers=0, onehot_select=True),
    Case(16, 9, 3, 16, 2, weight_precision=8, levels=3, pipeline=2),
    Case(5, 2, 1, 1, 8, weight_precision=2, levels=2, pipeline=2, input_buffers=0),
    Case(14, 6, 6, 4, 1, weight_precision=4, levels=3, pipeline=3, spare_bits=1),
    Case(12, 5, 2, 5, 4, weight_precision=2, scores=True),
    Case(8, 4, 3, 3, 8, weight_precision=4, scores=True, affine=True, pipeline=2, input_buffers=1),
    Case(6, 3, 3, 6, 1, weight_precision=1, scores=True, affine=True, input_buffers=0),
    Case(10, 7, 4, 3, 2, weight_precision=8, scores=True, pipeline=2, input_buffers=0),
    Case(13, 5, 2, 4, 0, levels=3, pipeline=2, datapath="xnor"),
    Case(9, 4, 3, 4, 4, levels=2, input_buffers=1, datapath="pixel"),
    # the binary search: full (L = 2^B − 1) and padded (narrow grids: L = 2^B − 2, and L = 2) sets,
    # with every input-buffer count, pipelines, one neuron fold and one cycle per vector
    Case(3, 2, 1, 2, 2, weight_precision=2, levels=255, input_buffers=1, search=True),
    Case(13, 7, 3, 4, 4, weight_precision=2, levels=3, search=True),
    Case(7, 3, 2, 2, 2, weight_precision=4, levels=14, pipeline=2, input_buffers=0, search=True),
    Case(10, 6, 4, 3, 1, weight_precision=1, levels=2, input_buffers=0, search=True),
    Case(9, 5, 5, 9, 8, weight_precision=8, levels=62, pipeline=1, input_buffers=0, search=True),
    Case(14, 6, 6, 4, 1, weight_precision=4, levels=31, pipeline=3, spare_bits=1, search=True),
    Case(13, 5, 2, 4, 0, levels=7, pipeline=2, datapath="xnor", search=True),
    # heads whose classes share one scale: offsets only (scale 1) and a constant scale (−3)
    Case(12, 5, 2, 5, 2, weight_precision=2, scores=True, affine=True, common_scale=1),
    Case(8, 4, 3, 3, 4, weight_precision=4, scores=True, affine=True, common_scale=-3, pipeline=2, input_buffers=0),
]


def random_weights(rng, case: Case) -> np.ndarray:
    if case.weight_precision == 1:
        return rng.choice(np.array([-1, 1]), size=(case.n_out, case.n_in))
    half = 1 << (case.weight_precision - 1)
    w = rng.integers(-half, half, size=(case.n_out, case.n_in))
    w[0, : min(2, case.n_in)] = [-half, half - 1][: min(2, case.n_in)]      # both range ends
    return w


def random_inputs(rng, case: Case, n: int) -> np.ndarray:
    top = (1 << max(1, case.pixel_bits)) - 1
    x = rng.integers(0, top + 1, size=(n, case.n_in))
    x[0], x[1] = 0, top                  # all-zero and all-max vectors
    return x


def reference_acc(case: Case, w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The datapath's accumulator A (n, n_out), computed independently of the hardware."""
    if case.datapath == "codes":
        return x @ w.T
    if case.datapath == "xnor":                      # popcount(XNOR(w, x)) of bits
        return (x[:, None, :] == (w > 0)[None, :, :]).sum(-1)
    d = (1 << case.pixel_bits) - 1                   # Σ ±(2x − D)
    return (2 * x - d) @ w.T


def acc_bounds(case: Case, w: np.ndarray) -> tuple[int, int]:
    """Every value a partial sum of A can take lies in these bounds (subsets of each row's lanes)."""
    if case.datapath == "xnor":
        return 0, case.n_in
    if case.datapath == "pixel":
        d = (1 << case.pixel_bits) - 1
        return -case.n_in * d, case.n_in * d
    top = (1 << case.pixel_bits) - 1
    lo = int((np.minimum(w, 0).sum(1) * top).min())
    hi = int((np.maximum(w, 0).sum(1) * top).max())
    return lo, hi


def random_thresholds(rng, case: Case, acc: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """(n_out, L) ascending thresholds: drawn from the values A takes (so the outputs vary), with range
    ends (never / always reached) and duplicates mixed in."""
    L = case.levels
    t = np.empty((case.n_out, L), dtype=np.int64)
    for c in range(case.n_out):
        pool = np.concatenate([acc[:, c], acc[:, c] + 1, [lo, lo - 1, hi, hi + 1]])
        t[c] = np.sort(rng.choice(pool, size=L))
    t[0, 0] = lo - 1                                  # always reached
    t[-1, -1] = hi + 1                                # never reached
    if L >= 2:
        t[0, 1] = t[0, 0]                             # a duplicate pair at the range end
        t[0] = np.sort(t[0])
    if L >= 3:
        t[-1, 1] = t[-1, 0]                           # and one inside the range
    return t


def build(case: Case, seed: int, n: int = 10, x: np.ndarray | None = None):
    """(params, inputs, expected output fields per beat) of one random case (random inputs unless ``x``)."""
    rng = np.random.default_rng(seed)
    w = random_weights(rng, case)
    x = random_inputs(rng, case, n) if x is None else x
    acc = reference_acc(case, w, x)
    lo, hi = acc_bounds(case, w)
    assert lo <= acc.min() and acc.max() <= hi
    if case.datapath == "codes":
        weight_rows = weight_code_rom(w, case.pe, case.simd, case.weight_precision)
    else:
        weight_rows = weight_rom((w > 0).astype(np.uint8), case.pe, case.simd)
    common = dict(n_in=case.n_in, n_out=case.n_out, pe=case.pe, simd=case.simd, pixel_bits=case.pixel_bits,
                  weight_rows=tuple(weight_rows), pipeline=case.pipeline, input_buffers=case.input_buffers,
                  codes=case.datapath == "codes", weight_precision=case.weight_precision,
                  onehot_select=case.onehot_select)
    if case.scores:
        if case.affine:
            scale = rng.integers(-3, 4, size=case.n_out)
            offset = rng.integers(-20, 21, size=case.n_out)
            if case.common_scale:
                scale = np.full(case.n_out, case.common_scale)
        else:
            scale, offset = np.ones(case.n_out, np.int64), np.zeros(case.n_out, np.int64)
        expected = acc * scale + offset
        bound = int(np.abs(scale).max()) * max(-lo, hi) + int(np.abs(offset).max())
        score_width = signed_width(-bound, bound)
        affine = {}
        if case.common_scale:
            ow = signed_width(offset.min(), offset.max())
            affine = dict(score_scale=case.common_scale, offset_rows=tuple(channel_rom(offset, case.pe, ow)),
                          offset_width=ow)
        elif case.affine:
            sw, ow = signed_width(scale.min(), scale.max()), signed_width(offset.min(), offset.max())
            affine = dict(scale_rows=tuple(channel_rom(scale, case.pe, sw)), scale_width=sw,
                          offset_rows=tuple(channel_rom(offset, case.pe, ow)), offset_width=ow)
        params = MVUParams(**common, scores=True, acc_width=signed_width(lo, hi) + case.spare_bits,
                           score_width=score_width, **affine)
        return params, x, expected
    t = random_thresholds(rng, case, acc, lo, hi)
    expected = (acc[:, :, None] >= t[None, :, :]).sum(-1)
    if case.search:                                   # never reached: hi + 1 (plan/rom.py)
        fields = np.stack([channel_fields(t[:, k], case.pe) for k in range(case.levels)], axis=-1)
        padded = search_thresholds(fields, hi + 1)
        tw = signed_width(int(padded.min()), int(padded.max())) + case.spare_bits
        first, stages = search_roms(fields, tw, hi + 1)
        params = MVUParams(**common, acc_width=signed_width(lo, hi) + case.spare_bits, threshold_rows=first,
                           threshold_width=tw, levels=case.levels, search_stages=case.levels.bit_length(),
                           search_rows=stages)
        return params, x, expected
    if case.levels == 1:
        rom_values = -t[:, 0]                         # the accumulator's start value −T
        acc_lo, acc_hi = lo + int(rom_values.min()), hi + int(rom_values.max())
        acc_lo, acc_hi = min(acc_lo, int(rom_values.min())), max(acc_hi, int(rom_values.max()))
    else:
        rom_values = t.reshape(-1)                    # channel-major: channel j's k-th in field j·L + k
        acc_lo, acc_hi = lo, hi
    tw = signed_width(rom_values.min(), rom_values.max()) + case.spare_bits
    params = MVUParams(**common, acc_width=signed_width(acc_lo, acc_hi) + case.spare_bits,
                       threshold_rows=tuple(channel_rom(rom_values, case.pe * case.levels, tw)), threshold_width=tw,
                       levels=case.levels)
    return params, x, expected


def simulate(params: MVUParams, x: np.ndarray, seed: int, stalls: bool = True):
    dut = MatrixVectorUnit(params)
    words = [pack_fields(row.tolist(), params.lane_bits) for row in x]
    producer = StreamProducer(dut.i, words, gaps=random_gaps(random.Random(seed), (0, 0, 1, 4)) if stalls else None)
    consumer = StreamConsumer(dut.o, len(words), ready=random_ready(random.Random(seed + 1), 0.5) if stalls else None,
                              max_cycles=(params.latency_cycles + params.cycles + 10) * len(words) * 4 + 100)
    simulate_streams(dut, producers=[producer], consumers=[consumer])
    return producer, consumer


@pytest.mark.parametrize("index", range(len(CASES)))
def test_multibit_units_match_numpy_under_stalls(index):
    case = CASES[index]
    params, x, expected = build(case, seed=1000 + index)
    _, consumer = simulate(params, x, seed=index)
    assert len(consumer.payloads) == len(x)
    for k, beat in enumerate(consumer.payloads):
        if case.scores:
            scores = [int(beat.scores[c]) for c in range(case.n_out)]
            assert scores == expected[k].tolist(), (case, k)
            assert int(beat.cls) == int(np.argmax(expected[k])), (case, k)
        else:
            assert len(consumer.stream.payload) == params.out_payload_bits == case.n_out * params.out_bits
            assert unpack_fields(int(beat), case.n_out, params.out_bits) == expected[k].tolist(), (case, k)


@pytest.mark.parametrize("index", [0, 3, 8, 10, 16, 17, 19])
def test_multibit_units_keep_latency_and_interval(index):
    """Free-running: first output latency_cycles after the first input; then one vector per K cycles."""
    params, x, expected = build(CASES[index], seed=2000 + index, n=5)
    producer, consumer = simulate(params, x, seed=index, stalls=False)
    assert consumer.cycles[0] - producer.offered[0] == params.latency_cycles
    assert np.diff(consumer.cycles).tolist() == [params.cycles] * (len(x) - 1)


def test_multibit_sizes():
    params, _, _ = build(CASES[0], seed=1)
    assert params.out_bits == 2 and params.out_payload_bits == 7 * 2
    assert params.weight_rom_bits == params.cycles * params.pe * params.simd * 2
    assert params.const_rom_bits == params.nf * params.pe * params.threshold_width * 3
    assert params.acc_signed
    assert MVUParams(**{**BASE, "levels": 255}).out_bits == 8
    assert MVUParams(**{**BASE, "levels": 4}).out_bits == 3


def test_weight_code_rom_layout():
    rng = np.random.default_rng(3)
    for bits in (1, 2, 3, 8):
        half = 1 << (bits - 1)
        w = rng.choice([-1, 1], size=(7, 10)) if bits == 1 else rng.integers(-half, half, size=(7, 10))
        pe, simd = 3, 4
        rows = weight_code_rom(w, pe, simd, bits)
        sf = folds(10, simd)
        assert len(rows) == folds(7, pe) * sf
        for r, row in enumerate(rows):
            fields = unpack_fields(row, pe * simd, bits, signed=bits > 1)
            n, s = divmod(r, sf)
            for j in range(pe):
                for k in range(simd):
                    o, i = n * pe + j, s * simd + k
                    want = (int(w[o, i] > 0) if bits == 1 else int(w[o, i])) if o < 7 and i < 10 else 0
                    assert fields[j * simd + k] == want
    with pytest.raises(ValueError, match="2-bit weights must lie in -2..1"):
        weight_code_rom(np.array([[2]]), 1, 1, 2)
    with pytest.raises(ValueError, match="1-bit weights must be -1 or"):
        weight_code_rom(np.array([[0]]), 1, 1, 1)


BASE = dict(n_in=4, n_out=2, pe=2, simd=2, pixel_bits=2, weight_rows=(0, 0), acc_width=6,
            threshold_rows=(0,), threshold_width=4, codes=True)


@pytest.mark.parametrize("change,message", [
    ({"codes": True, "pixel_bits": 0}, "codes=True needs pixel_bits"),
    ({"codes": False, "weight_precision": 2}, "needs codes=True"),
    ({"weight_precision": 9}, "weight_precision must be an integer in 1..8"),
    ({"levels": 0}, "levels must be an integer in 1..255"),
    ({"levels": 256}, "levels must be an integer in 1..255"),
    ({"levels": 2, "scores": True, "score_width": 8, "threshold_rows": ()}, "scores head has no thresholds"),
    ({"codes": 1}, "codes must be True or False"),
    ({"levels": 3, "search_stages": 1}, "search_stages must be 0"),
    ({"levels": 1, "search_stages": 1}, "search_stages must be 0"),
    ({"levels": 3, "search_stages": 2, "search_rows": ()}, "search_rows must hold"),
    ({"levels": 3, "search_stages": 2, "search_rows": (((0,), (0, 0)),)}, "search_rows must hold"),
])
def test_multibit_parameters_are_checked(change, message):
    MVUParams(**BASE)
    with pytest.raises(ValueError, match=message):
        MVUParams(**{**BASE, **change})


def numpy_pool(x: np.ndarray, k: int, s: int, and_mask) -> np.ndarray:
    """Max (min where and_mask) over k × k windows, stride s, written out with loops."""
    n, h, w, c = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.zeros((n, oh, ow, c), dtype=np.int64)
    for f in range(n):
        for oy in range(oh):
            for ox in range(ow):
                win = x[f, oy * s:oy * s + k, ox * s:ox * s + k, :].reshape(-1, c)
                for ch in range(c):
                    out[f, oy, ox, ch] = win[:, ch].min() if and_mask[ch] else win[:, ch].max()
    return out


@pytest.mark.parametrize("elem_bits,h,w,k,s", [(2, 5, 6, 2, 2), (3, 6, 5, 3, 1), (1, 4, 4, 2, 2)])
def test_codes_maxpool_matches_numpy_under_stalls(elem_bits, h, w, k, s):
    channels, frames = 3, 3
    and_mask = (True, False, True)
    p = MaxPoolParams(h, w, channels, k, s, and_mask, elem_bits=elem_bits)
    assert p.in_payload_bits == p.out_payload_bits == channels * elem_bits
    rng = np.random.default_rng(elem_bits)
    x = rng.integers(0, 1 << elem_bits, size=(frames, h, w, channels))
    x[0, :k, :k, :] = (1 << elem_bits) - 1                 # range ends in one window
    x[0, :k, 0, :] = 0
    expected = numpy_pool(x, k, s, and_mask)
    assert np.array_equal(reference_maxpool(x, k, s, and_mask), expected)
    dut = MaxPoolUnit(p)
    words = [pack_fields(px.tolist(), elem_bits) for px in x.reshape(-1, channels)]
    producer = StreamProducer(dut.i, words, gaps=random_gaps(random.Random(elem_bits), (0, 0, 0, 1, 3)))
    consumer = StreamConsumer(dut.o, expected[..., 0].size, ready=random_ready(random.Random(elem_bits + 1), 0.5),
                              max_cycles=20 * len(words) + 100)
    simulate_streams(dut, producers=[producer], consumers=[consumer])
    got = [unpack_fields(int(v), channels, elem_bits) for v in consumer.payloads]
    assert got == expected.reshape(-1, channels).tolist()


def test_maxpool_elem_bits_are_checked():
    for bad in (0, 9):
        with pytest.raises(ValueError, match="elem_bits must be an integer in 1..8"):
            MaxPoolParams(4, 4, 2, elem_bits=bad)


def test_codes_pool_collect_and_mvu_chain():
    """A 2-bit-code max pool, the flatten (CollectUnit) and a codes MVU, wired in one module: channel
    fields keep their order from pool to MVU lanes (element (y, x, c) is lane (y·W + x)·C + c)."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    from bnn2hw.hw import CollectParams, CollectUnit

    eb, h, w, c = 2, 4, 4, 2
    pool = MaxPoolParams(h, w, c, 2, 2, (False, True), elem_bits=eb)
    collect = CollectParams(pool.out_height * pool.out_width, c * eb)
    case = Case(collect.pixels * c, 5, 2, 3, eb, weight_precision=2, levels=3, input_buffers=1)
    rng = np.random.default_rng(11)
    x = rng.integers(0, 1 << eb, size=(4, h, w, c))
    pooled = numpy_pool(x, 2, 2, pool.and_mask).reshape(len(x), -1)      # (frame, (y·W + x)·C + c)
    params, _, expected = build(case, seed=12, x=pooled)

    m = Module()
    m.submodules.pool = pool_u = MaxPoolUnit(pool)
    m.submodules.collect = coll_u = CollectUnit(collect)
    m.submodules.mvu = mvu_u = MatrixVectorUnit(params)
    wiring.connect(m, pool_u.o, coll_u.i)
    wiring.connect(m, coll_u.o, mvu_u.i)
    words = [pack_fields(px.tolist(), eb) for px in x.reshape(-1, c)]
    producer = StreamProducer(pool_u.i, words, gaps=random_gaps(random.Random(3), (0, 0, 2)))
    consumer = StreamConsumer(mvu_u.o, len(x), ready=random_ready(random.Random(4), 0.6), max_cycles=2000)
    simulate_streams(m, producers=[producer], consumers=[consumer])
    got = [unpack_fields(int(v), case.n_out, params.out_bits) for v in consumer.payloads]
    assert got == expected.tolist()
