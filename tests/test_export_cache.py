"""The content-addressed cache of exported Verilog (bnn2hw/codegen/cache.py): a hit returns exactly
what a fresh conversion writes, and anything that changes the Verilog (weights, thresholds, folding,
the generator's source, the tools) is a miss."""

from __future__ import annotations

import numpy as np
import pytest

from bnn2hw.codegen import build_network, cache
from bnn2hw.codegen import export
from bnn2hw.codegen.export import export_verilog
from bnn2hw.frontend import import_model
from bnn2hw.passes import apply_folding, fold_batchnorm
from bnn2hw.testing import build_random_model, random_spec


def _graph(seed=3):
    spec = random_spec(seed)
    spec = type(spec)(seed=seed, input_bits=2, widths=(12, 8, 4), head_bn=False, biases=False)
    return spec, apply_folding(fold_batchnorm(import_model(build_random_model(spec), (12,))),
                               {"dense0": {"pe": 2, "simd": 3}, "dense1": {"pe": 1, "simd": 4}})


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """A fresh cache folder, and the list of conversions Amaranth is asked for."""
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    calls = []
    convert = export.verilog.convert

    def counting(*a, **k):
        calls.append(a[0])
        return convert(*a, **k)
    monkeypatch.setattr(export.verilog, "convert", counting)
    return calls


def _fresh(network, tmp_path, bits, monkeypatch) -> bytes:
    with monkeypatch.context() as m:
        m.setenv(cache.CACHE_ENV, "off")
        return export_verilog(network, tmp_path / "fresh", bits).read_bytes()


def test_a_second_export_of_the_same_plan_is_a_hit_equal_to_a_fresh_conversion(counted, tmp_path, monkeypatch):
    spec, graph = _graph()
    first = export_verilog(build_network(graph), tmp_path / "a", spec.input_bits).read_bytes()
    assert len(counted) == 1 and len(list((tmp_path / "cache").glob("*.v"))) == 1
    second = export_verilog(build_network(graph), tmp_path / "b", spec.input_bits).read_bytes()
    assert len(counted) == 1                       # served from the cache
    assert first == second == _fresh(build_network(graph), tmp_path, spec.input_bits, monkeypatch)
    assert (tmp_path / "b" / "bnn2hw_top.json").read_text() == (tmp_path / "a" / "bnn2hw_top.json").read_text()


def _with_weight_flipped(graph):
    node = graph.compute_nodes[0]
    bits = np.array(node.weight_bits)
    bits[0, 0] ^= 1
    return graph.replace(nodes=tuple(type(n)(**{**n.__dict__, "weight_bits": bits}) if n is node else n
                                     for n in graph.nodes))


def test_a_changed_model_or_folding_misses(counted, tmp_path, monkeypatch):
    spec, graph = _graph()
    base = export_verilog(build_network(graph), tmp_path / "a", spec.input_bits).read_bytes()
    flipped = _with_weight_flipped(graph)
    one_bit = export_verilog(build_network(flipped), tmp_path / "b", spec.input_bits).read_bytes()
    assert len(counted) == 2 and one_bit != base
    refolded = apply_folding(graph, {"dense0": {"pe": 4, "simd": 3}, "dense1": {"pe": 1, "simd": 4}})
    other = export_verilog(build_network(refolded), tmp_path / "c", spec.input_bits).read_bytes()
    assert len(counted) == 3 and other != base
    assert one_bit == _fresh(build_network(flipped), tmp_path, spec.input_bits, monkeypatch)


def test_a_generator_source_change_or_damaged_entry_misses(counted, tmp_path, monkeypatch):
    spec, graph = _graph()
    export_verilog(build_network(graph), tmp_path / "a", spec.input_bits)
    with monkeypatch.context() as m:
        m.setattr(cache, "source_digest", lambda: "another generator")
        export_verilog(build_network(graph), tmp_path / "b", spec.input_bits)
    assert len(counted) == 2
    for entry in (tmp_path / "cache").glob("*.v"):       # a damaged entry fails its checksum
        entry.write_bytes(entry.read_bytes()[:-10])
    again = export_verilog(build_network(graph), tmp_path / "c", spec.input_bits).read_bytes()
    assert len(counted) == 3 and again == (tmp_path / "a" / "bnn2hw_top.v").read_bytes()


def test_the_cache_can_be_turned_off(counted, tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, "off")
    spec, graph = _graph()
    for d in ("a", "b"):
        export_verilog(build_network(graph), tmp_path / d, spec.input_bits)
    assert len(counted) == 2 and not (tmp_path / "cache").exists()
