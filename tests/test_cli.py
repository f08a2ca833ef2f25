"""The command line: the main paths work, and every bad input gets one line and a non-zero exit."""

import json
import os
import pickle
import re

import numpy as np
import pytest
from click.testing import CliRunner
from torch import nn

import bnn2hw
from bnn2hw.cli import cli
from bnn2hw.nn import BinaryAct, BinaryLinear, InputQuant
from bnn2hw.testing import build_random_model, random_inputs, random_spec


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    spec = random_spec(2)
    bnn2hw.save(build_random_model(spec), d / "m.pt", (spec.widths[0],))
    np.save(d / "x.npy", random_inputs(spec, n=5, seed=1))
    return d / "m.pt", d / "x.npy", spec


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, pattern):
    assert result.exit_code != 0
    text = result.stderr if result.stderr else result.output
    assert "Traceback" not in text and "Traceback" not in result.output
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and pattern in errors[0], text


def test_compile_writes_everything(small_model, tmp_path):
    model, _, spec = small_model
    out = tmp_path / "out"
    result = run("compile", model, "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert [l["name"] for l in report["layers"]] == [f"dense{i}" for i in range(len(spec.widths) - 1)]
    assert report["network"]["cycles_per_frame"] == max(l["cycles_per_frame"] for l in report["layers"])
    assert (out / "verilog" / "bnn2hw_top.v").is_file() and (out / "verilog" / "bnn2hw_top.json").is_file()
    x = np.load(out / "verification" / "input.npy")
    expected = np.load(out / "verification" / "expected_output.npy")
    assert x.shape[1:] == (spec.widths[0],) and expected.shape == (len(x), spec.widths[-1])
    # the written folding file is accepted back as an override and changes nothing
    again = run("compile", model, "--out", out, "--folding", out / "folding.json")
    assert again.exit_code == 0, again.output
    assert json.loads((out / "report.json").read_text())["layers"] == report["layers"]


def test_predict_matches_verification_pair(small_model, tmp_path):
    model, x_path, _ = small_model
    out = tmp_path / "y.npz"
    result = run("predict", model, "--inputs", x_path, "--out", out)
    assert result.exit_code == 0, result.output
    y = np.load(out)
    assert y["scores"].shape[0] == 5 and np.array_equal(y["classes"], y["scores"].argmax(1))


def test_simulate_amaranth_reports_zero_mismatches(small_model, tmp_path):
    model, x_path, _ = small_model
    result = run("simulate", model, "--inputs", x_path, "--simulator", "amaranth", "--out", tmp_path / "y.npz")
    assert result.exit_code == 0, result.output
    assert "0 mismatches" in result.output
    measured, estimated = re.search(r"(\d+) cycles/frame measured \(estimate (\d+)\)", result.output).groups()
    assert measured == estimated


def test_missing_model_file(tmp_path):
    assert_one_line_error(run("compile", tmp_path / "none.pt", "--out", tmp_path / "o"), "does not exist")
    assert not (tmp_path / "o").exists()


def test_not_a_model(tmp_path):
    (tmp_path / "m.pt").write_text("not a model")
    assert_one_line_error(run("compile", tmp_path / "m.pt", "--out", tmp_path / "o"), "not a bnn2hw model file")
    assert not (tmp_path / "o").exists()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_model_file",))


def test_pickle_code_is_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("m.pt", "wb") as f:
        pickle.dump(_Evil(), f)
    assert_one_line_error(run("compile", "m.pt", "--out", "o"), "never runs code")
    assert not (tmp_path / "pwned_by_model_file").exists() and not (tmp_path / "o").exists()


def test_unsupported_layers_all_named(tmp_path):
    model = nn.Sequential(InputQuant(4), nn.Linear(6, 6), BinaryAct(), BinaryLinear(6, 6), nn.ReLU(), BinaryLinear(6, 2))
    bnn2hw.save(model, tmp_path / "m.pt", (6,))
    result = run("compile", tmp_path / "m.pt", "--out", tmp_path / "o")
    assert_one_line_error(result, "layer 1: Linear")
    assert "layer 4: ReLU" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("bad,message", [
    (lambda spec: np.zeros((3, spec.widths[0] + 1), dtype=np.int64), "shape"),
    (lambda spec: np.zeros((3, spec.widths[0]), dtype=np.complex64), "dtype"),
    (lambda spec: np.full((3, spec.widths[0]), 2 ** spec.input_bits), "range"),
    (lambda spec: np.full((3, spec.widths[0]), 0.5), "non-integer"),
    (lambda spec: np.array([{"a": 1}], dtype=object), "Python objects"),
])
def test_bad_inputs(small_model, tmp_path, bad, message):
    model, _, spec = small_model
    np.save(tmp_path / "x.npy", bad(spec), allow_pickle=True)
    assert_one_line_error(run("predict", model, "--inputs", tmp_path / "x.npy"), message)


def test_inputs_not_npy(small_model, tmp_path):
    model, _, _ = small_model
    (tmp_path / "x.npy").write_text("1,2,3")
    assert_one_line_error(run("predict", model, "--inputs", tmp_path / "x.npy"), "not a numpy .npy file")


def test_unknown_simulator(small_model):
    model, x, _ = small_model
    result = run("simulate", model, "--inputs", x, "--simulator", "modelsim")
    assert result.exit_code == 2 and "verilator" in result.output and "Traceback" not in result.output


def test_missing_simulator_says_how_to_install(small_model, monkeypatch, tmp_path):
    model, x, _ = small_model
    monkeypatch.setenv("PATH", str(tmp_path))          # nothing on PATH: no iverilog
    assert_one_line_error(run("simulate", model, "--inputs", x, "--simulator", "icarus"), "apt-get install iverilog")


def test_bad_folding_file_leaves_no_output(small_model, tmp_path):
    model, _, _ = small_model
    (tmp_path / "f.json").write_text('{"dense9": {"pe": 2}}')
    assert_one_line_error(run("compile", model, "--out", tmp_path / "o", "--folding", tmp_path / "f.json"), "dense9")
    (tmp_path / "f.json").write_text('{"dense0": {"pe": 0}}')
    assert_one_line_error(run("compile", model, "--out", tmp_path / "o", "--folding", tmp_path / "f.json"),
                          "positive integer")
    assert not (tmp_path / "o").exists()


def test_foreign_output_directory_is_not_clobbered(small_model, tmp_path):
    model, _, _ = small_model
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "precious.txt").write_text("keep me")
    assert_one_line_error(run("compile", model, "--out", tmp_path / "o"), "not written by bnn2hw")
    assert (tmp_path / "o" / "precious.txt").read_text() == "keep me"


def test_predict_trace_writes_every_layer(small_model, tmp_path):
    model, x_path, spec = small_model
    assert_one_line_error(run("predict", model, "--inputs", x_path, "--trace"), "--trace needs --out")
    result = run("predict", model, "--inputs", x_path, "--out", tmp_path / "y.npz", "--trace")
    assert result.exit_code == 0, result.output
    y = np.load(tmp_path / "y.npz")
    layers = len(spec.widths) - 1
    assert sorted(k for k in y.files if k.endswith("_out")) == sorted(f"dense{i}_out" for i in range(layers))
    # each layer's output is the next layer's input: its width is the next layer's fan-in
    for i, width in enumerate(spec.widths[1:]):
        assert y[f"dense{i}_acc"].shape == (5, width) and y[f"dense{i}_out"].shape == (5, width)
    assert np.array_equal(y[f"dense{layers - 1}_out"], y["scores"])
