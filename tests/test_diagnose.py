"""bnn2hw diagnose: firing rates of the hardware and of PyTorch, checked against PyTorch and scipy themselves."""

import copy
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy.stats import wasserstein_distance

import bnn2hw
from bnn2hw import diagnose
from bnn2hw.cli import cli
from bnn2hw.flow import compile_model
from bnn2hw.data import load_training_data
from bnn2hw.errors import Bnn2hwError, InputDataError
from bnn2hw.ir import ThresholdDense
from bnn2hw.nn import BinaryAct

MODEL = Path(__file__).resolve().parents[1] / "models" / "digits_mlp.pt"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # batches of 32 gain nothing from threads, and on busy cores OpenMP's waiting slows them 100x
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def compiled():
    return compile_model(MODEL)


@pytest.fixture(scope="module")
def x_test():
    return load_training_data("digits").x_test


def torch_rates(model, x, batches, train):
    """Per-channel fraction of +1 outputs of every BinaryAct, from a float64 copy of ``model``."""
    m = copy.deepcopy(model).double().train(train)
    outputs = {}
    for k, act in enumerate(a for a in m if isinstance(a, BinaryAct)):
        act.register_forward_hook(lambda mod, inp, out, k=k: outputs.setdefault(k, []).append(out.clone()))
    with torch.no_grad():
        for a, b in batches:
            m(torch.tensor(x[a:b], dtype=torch.float64))
    return [(torch.cat(outputs[k]) == 1).sum(0).numpy() / len(x) for k in sorted(outputs)]


def hidden_names(compiled):
    return [n.name for n in compiled.graph.nodes if isinstance(n, ThresholdDense)]


def test_eval_reference_is_exactly_the_hardware(compiled, x_test):
    result = diagnose.firing_rate_report(compiled, x_test, reference="eval")
    assert [layer.name for layer in result.layers] == hidden_names(compiled)
    for layer in result.layers:
        assert layer.emd == 0.0
        assert np.array_equal(layer.reference_rates, layer.hardware_rates)
        assert layer.max_channel_diff == 0.0


def test_hardware_rates_equal_torch_eval_mode(compiled, x_test):
    result = diagnose.firing_rate_report(compiled, x_test, batch_size=32)
    expected = torch_rates(compiled.torch_model, x_test, [(0, len(x_test))], train=False)
    assert len(result.layers) == len(expected)
    for layer, rates in zip(result.layers, expected):
        assert layer.channels == len(rates)
        np.testing.assert_array_equal(layer.hardware_rates, rates)


def test_train_reference_and_emd(compiled, x_test):
    x = x_test[:353]        # 11 batches of 32 and one sample over: it joins the last batch
    result = diagnose.firing_rate_report(compiled, x, batch_size=32, reference="train")
    batches = [(32 * i, 32 * (i + 1)) for i in range(10)] + [(320, 353)]
    assert result.batches == tuple(b - a for a, b in batches)
    expected = torch_rates(compiled.torch_model, x, batches, train=True)
    for layer, rates in zip(result.layers, expected, strict=True):
        np.testing.assert_array_equal(layer.reference_rates, rates)
        assert layer.emd == wasserstein_distance(layer.reference_rates, layer.hardware_rates)
        assert layer.reference_mean == float(np.mean(rates))
    # batch statistics are not the running statistics: some layer must differ, or the test shows nothing
    assert any(layer.max_channel_diff > 0 for layer in result.layers)


def test_running_statistics_untouched(compiled, x_test):
    before = copy.deepcopy(compiled.torch_model.state_dict())
    diagnose.firing_rate_report(compiled, x_test, batch_size=16, reference="train")
    after = compiled.torch_model.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert before[key].dtype == after[key].dtype and torch.equal(before[key], after[key]), key
    fresh = bnn2hw.load(MODEL).state_dict()
    assert all(torch.equal(fresh[k], after[k]) for k in fresh)
    assert not compiled.torch_model.training


def test_bad_inputs_and_sizes(compiled, x_test):
    with pytest.raises(InputDataError, match="shape"):
        diagnose.firing_rate_report(compiled, x_test[:, :63])
    with pytest.raises(InputDataError, match="range"):
        diagnose.firing_rate_report(compiled, x_test + 100)
    with pytest.raises(InputDataError, match="at least 2 samples"):
        diagnose.firing_rate_report(compiled, x_test[:1])
    with pytest.raises(Bnn2hwError, match="batch size 1"):
        diagnose.firing_rate_report(compiled, x_test, batch_size=1)
    one = diagnose.firing_rate_report(compiled, x_test[:1], reference="eval")
    assert all(layer.emd == 0.0 for layer in one.layers)


def test_write_is_all_or_nothing(compiled, x_test, tmp_path, monkeypatch):
    result = diagnose.firing_rate_report(compiled, x_test[:40], batch_size=8)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(Bnn2hwError, match="is a file"):
        diagnose.write_diagnosis(result, blocker)

    def broken(d):
        raise RuntimeError("plot failed")
    monkeypatch.setattr(diagnose, "plot_diagnosis", broken)
    with pytest.raises(RuntimeError):
        diagnose.write_diagnosis(result, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, pattern):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and pattern in errors[0], result.stderr
    assert lines[-1] == errors[0]


def test_cli_writes_json_and_png(compiled, tmp_path):
    out = tmp_path / "diag"
    result = invoke("diagnose", MODEL, "--out", out)
    assert result.exit_code == 0, result.output
    trained_batch = bnn2hw.load(MODEL).metadata["batch_size"]
    assert f"batch size {trained_batch}" in result.stderr
    report = json.loads((out / "diagnose.json").read_text())
    assert [layer["name"] for layer in report["layers"]] == hidden_names(compiled)
    assert report["reference"] == "train" and report["batch_size"] == trained_batch
    assert report["samples"] == len(load_training_data("digits").x_test)
    for layer in report["layers"]:
        assert math.isfinite(layer["emd"])
        assert layer["emd"] == wasserstein_distance(layer["reference_rates"], layer["hardware_rates"])
        assert len(layer["reference_rates"]) == len(layer["hardware_rates"]) == layer["channels"]
        assert layer["name"] in result.stdout
    png = (out / "diagnose.png").read_bytes()
    assert len(png) > 0 and png.startswith(PNG_SIGNATURE)
    assert str(out / "diagnose.png") in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["diagnose.json", "diagnose.png"]


def test_cli_inputs_and_eval_reference(tmp_path):
    x = load_training_data("digits").x_train[:50]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "diag"
    result = invoke("diagnose", MODEL, "--inputs", tmp_path / "x.npy", "--reference", "eval", "--out", out)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "diagnose.json").read_text())
    assert report["samples"] == len(x)
    assert all(layer["emd"] == 0.0 for layer in report["layers"])
    assert "self-check passed" in result.stdout


def test_cli_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)            # the default --out would land here
    np.save(tmp_path / "bad.npy", np.zeros((5, 63), dtype=np.int64))
    out = tmp_path / "diag"
    result = invoke("diagnose", MODEL, "--inputs", tmp_path / "bad.npy", "--out", out)
    assert_one_line_error(result, "shape")
    assert not out.exists()
    result = invoke("diagnose", MODEL, "--inputs", tmp_path / "bad.npy")
    assert_one_line_error(result, "shape")
    assert not (tmp_path / "build").exists()

    result = invoke("diagnose", MODEL, "--dataset", "imagenet", "--out", out)
    assert result.exit_code != 0 and "imagenet" in result.output
    assert not out.exists()

    result = invoke("diagnose", tmp_path / "missing.pt", "--out", out)
    assert_one_line_error(result, "does not exist")
    assert not out.exists()


def test_cli_eval_self_check_failure_exits_1(tmp_path, monkeypatch):
    real = diagnose.firing_rate_report

    def broken_hardware(*args, **kwargs):
        result = real(*args, **kwargs)
        first = result.layers[0]
        flipped = dataclasses.replace(first, hardware_rates=1.0 - first.hardware_rates)
        return dataclasses.replace(result, layers=(flipped,) + result.layers[1:])
    monkeypatch.setattr(diagnose, "firing_rate_report", broken_hardware)
    x = load_training_data("digits").x_test[:20]
    np.save(tmp_path / "x.npy", x)
    result = invoke("diagnose", MODEL, "--inputs", tmp_path / "x.npy", "--reference", "eval", "--out", tmp_path / "d")
    assert result.exit_code == 1 and "self-check FAILED" in result.stdout, result.output
