"""`bnn2hw train`: the log, the final line, determinism, the model compiling as written, bad input; and
the issue's acceptance runs (STE baseline at 6×64, StoMPP at 3×256 bit-exact through the RTL)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import bnn2hw
from bnn2hw.cli import cli
from bnn2hw.train import BinarizationConfig, TrainConfig, load_training_data, train

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_train_writes_a_compilable_model_a_log_and_a_final_accuracy_line(tmp_path):
    model = tmp_path / "m.pt"
    result = invoke("train", "--hidden", "24,16", "--epochs", "3", "--batch-size", "64", "--seed", "1",
                    "--out", model)
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"deploy test accuracy: ([\d.]+)% \((\d+)/360\) on the digits test split", last)
    assert match, last

    log = json.loads((tmp_path / "m.train.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2, 3]
    for entry in log["epochs"]:
        assert {"loss", "train_accuracy", "deploy_test_accuracy", "frozen"} <= set(entry)
        assert len(entry["frozen"]) == 3 and all(0 <= f["target"] <= 1 for f in entry["frozen"])
    assert log["final"]["test_correct"] == int(match.group(2))

    net = bnn2hw.load(model)  # what the file holds is what the line reports, in deploy (eval) mode
    data = load_training_data("digits")
    with torch.no_grad():
        pred = net.double().eval()(torch.from_numpy(data.x_test).double()).argmax(1).numpy()
    assert int((pred == data.y_test).sum()) == int(match.group(2))

    np.save(tmp_path / "x.npy", data.x_test)
    result = invoke("predict", model, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npz")
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.load(tmp_path / "y.npz")["classes"], pred)  # golden == torch on the whole split


def test_same_seed_same_model(tmp_path):
    args = ["train", "--hidden", "16", "--epochs", "2", "--batch-size", "64", "--method", "stompp+sg"]
    for name in ("a", "b"):
        assert invoke(*args, "--out", tmp_path / f"{name}.pt").exit_code == 0
    a, b = bnn2hw.load(tmp_path / "a.pt"), bnn2hw.load(tmp_path / "b.pt")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name


@pytest.mark.parametrize("args, words", [
    (["--method", "sgd"], "unknown method 'sgd'"),
    (["--dataset", "imagenet"], "unknown data set 'imagenet'"),
    (["--dataset", "mnist"], "--data-dir"),
    (["--dataset", "fashion-mnist", "--data-dir", "{tmp}"], "train-images-idx3-ubyte"),
    (["--dataset", "cifar10", "--data-dir", "{tmp}/nowhere"], "does not exist"),
    (["--window-start", "0.8", "--window-end", "0.4"], "start < end"),
    (["--overlap", "1.5"], "overlap"),
    (["--refresh-fraction", "2"], "refresh fraction"),
    (["--epochs", "0"], "epochs"),
    (["--hidden", "64,x"], "--hidden"),
    (["--surrogate", "tanh"], "unknown surrogate"),
    (["--optimizer", "lion"], "unknown optimizer"),
    (["--order", "sideways"], "unknown order"),
    # issue 14's options
    (["--dataset", "mnist2d"], "unknown data set 'mnist2d'"),
    (["--residual", "real,4"], "--residual) must be none, real"),
    (["--unit-steps", "-3"], "steps per unit must be 0"),
    (["--window-start", "0.9", "--window-end", "0.9"], "start < end"),
    (["--window-end", "1.5"], "start < end"),
    (["--overlap", "1"], "overlap"),
    (["--processes", "-1"], "--processes) must be at least 1"),
    (["--validation", "1"], "--validation) must be 0"),
    (["--dtype", "float16"], "unknown training precision"),
    (["--lr", "0"], "learning rate must be positive"),
    # multi-bit options (issue 15), on a model with two hidden layers
    (["--hidden", "8,8", "--epochs", "1", "--act-bits", "0"], "--act-bits must be a number of bits from 1 to 8"),
    (["--hidden", "8,8", "--epochs", "1", "--act-bits", "two"], "--act-bits must be"),
    (["--hidden", "8,8", "--epochs", "1", "--weight-bits", "9"], "--weight-bits must be"),
    (["--hidden", "8,8", "--epochs", "1", "--weight-bits", "2,,2"], "--weight-bits must be"),
    (["--hidden", "8,8", "--epochs", "1", "--act-bits", "2,2,2"], "list has 3 entries, but the model has 2 hidden activations"),
    (["--hidden", "8,8", "--epochs", "1", "--weight-bits", "2,2"], "the model has 3 weight layers"),
    (["--hidden", "8,8", "--epochs", "1", "--optimizer", "kbop", "--weight-bits", "2"], "--optimizer kbop flips ±1 weights"),
    (["--hidden", "8,8", "--epochs", "1", "--method", "ste", "--surrogate", "approxsign", "--act-bits", "2"], "approxsign surrogate is a derivative"),
    (["--hidden", "8,8", "--epochs", "1", "--net", "bwn", "--act-bits", "2"], "--net bwn keeps real activations"),
])
def test_bad_input_is_one_sentence_and_a_nonzero_exit(tmp_path, args, words):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = invoke("train", *args, "--out", tmp_path / "m.pt")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "m.train.json").exists()


def test_existing_output_is_kept_unless_forced(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"precious")
    result = invoke("train", "--hidden", "8", "--epochs", "1", "--out", model)
    assert result.exit_code == 1 and "--force" in result.stderr
    assert model.read_bytes() == b"precious"
    result = invoke("train", "--hidden", "8", "--epochs", "1", "--batch-size", "128", "--out", model, "--force")
    assert result.exit_code == 0, result.output
    assert bnn2hw.load(model) is not None


def test_binary_weight_only_model_says_it_cannot_be_compiled(tmp_path):
    result = invoke("train", "--net", "bwn", "--hidden", "8", "--epochs", "1", "--batch-size", "128",
                    "--out", tmp_path / "w.pt")
    assert result.exit_code == 0, result.output
    assert "cannot build them" in result.stderr
    result = invoke("compile", tmp_path / "w.pt", "--out", tmp_path / "b")
    assert result.exit_code == 1 and "Hardtanh" in result.stderr


#: STE tuned on its own (docs/training.md, "Acceptance runs"): Adam lr 0.05, batch 64, cosine.
STE_BASELINE = dict(binarization=BinarizationConfig(method="ste"), epochs=30, lr=0.05, batch_size=64)


def test_ste_baseline_is_honest_at_six_layers_of_64():
    """Acceptance: BinaryConnect-style STE, 6 hidden layers of 64, 30 epochs: at least 94 % deploy accuracy,
    as the mean over four seeds. One seed moves by about a point between CPUs (float32 reductions
    differ), which a single-seed test at the bound cannot absorb."""
    data = load_training_data("digits")
    accuracies = [train(data, TrainConfig(hidden=(64,) * 6, seed=seed, **STE_BASELINE)).test_accuracy
                  for seed in range(4)]
    assert np.mean(accuracies) >= 0.94, accuracies


def test_stompp_default_recipe_reaches_85_percent_at_eight_layers_of_64():
    """Acceptance (issue 14): `bnn2hw train --dataset digits --hidden 64,64,64,64,64,64,64,64 --method stompp
    --epochs 30 --seed 0` with the default recipe (the CLI's defaults are the library's, tested below)."""
    data = load_training_data("digits")
    result = train(data, TrainConfig(hidden=(64,) * 8, epochs=30, seed=0,
                                     binarization=BinarizationConfig(method="stompp")))
    assert result.test_accuracy >= 0.85, result.test_accuracy


@pytest.mark.slow       # about 5 minutes of training on 2 cores: a third of the default run's budget
@pytest.mark.rtl("verilator")
def test_stompp_three_layers_of_256_is_accurate_and_bit_exact_in_rtl(tmp_path):
    """Acceptance: `bnn2hw train` StoMPP 3×256 reaches 96 % and the RTL gives exactly torch's predictions.

    Seed 0 measured 97.22 % where the model was developed and 96.39 % on a later machine of the same kind
    (float rounding in training differs between CPUs; seeds 1 and 2 gave 96.11 % and 96.94 %,
    docs/training.md), so the floor is the lowest of those runs, not one machine's seed-0 figure."""
    model = tmp_path / "stompp.pt"
    result = invoke("train", "--dataset", "digits", "--hidden", "256,256,256", "--method", "stompp",
                    "--epochs", "30", "--seed", "0", "--out", model)
    assert result.exit_code == 0, result.output
    accuracy = float(re.search(r"deploy test accuracy: ([\d.]+)%", result.stdout).group(1))
    assert accuracy >= 96.0
    data = load_training_data("digits")
    np.save(tmp_path / "x.npy", data.x_test)
    np.save(tmp_path / "y.npy", data.y_test)
    result = invoke("simulate", model, "--inputs", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
                    "--simulator", "verilator", "--out", tmp_path / "y.npz")
    assert result.exit_code == 0, result.output
    assert "360 frames, 0 mismatches" in result.stdout
    hardware, pytorch = re.search(r"accuracy: hardware ([\d.]+)%, PyTorch ([\d.]+)%", result.stdout).groups()
    assert hardware == pytorch == f"{accuracy:.2f}"


def test_cli_defaults_are_the_library_defaults():
    """The option defaults are literals (so `bnn2hw --help` does not import torch); keep them in step."""
    from bnn2hw.cli.train import train_cmd
    defaults = {p.name: p.default for p in train_cmd.params}
    config, binarization = TrainConfig(), BinarizationConfig()
    renamed = {"window_start": "start", "window_end": "end"}
    checked = 0
    assert defaults["lr"] is None is config.lr   # None: the method's own rate (tests/test_train_recipe.py)
    for name, value in defaults.items():
        field = renamed.get(name, name)
        for obj in (config, binarization):
            if hasattr(obj, field) and field not in ("hidden", "lr"):
                assert getattr(obj, field) == value, name
                checked += 1
    assert checked >= 25


@pytest.mark.rtl("verilator")
def test_conv_digits_model_trains_compiles_and_simulates_from_the_cli(tmp_path):
    """Acceptance (issue 4): a conv BNN on digits from `bnn2hw train --conv`, compiled and run through
    Verilator on the whole test split: 0 mismatches, hardware accuracy = PyTorch accuracy."""
    model = tmp_path / "cnn.pt"
    result = invoke("train", "--dataset", "digits", "--conv", "8,16", "--hidden", "32", "--lr", "0.1",
                    "--epochs", "4", "--seed", "0", "--out", model)
    assert result.exit_code == 0, result.output
    accuracy = float(re.search(r"deploy test accuracy: ([\d.]+)%", result.stdout).group(1))
    assert bnn2hw.load(model).input_shape == (1, 8, 8)
    result = invoke("compile", model, "--out", tmp_path / "build")
    assert result.exit_code == 0, result.output
    assert "conv0 (conv ×64)" in result.stdout and "pool0" in result.stdout
    data = load_training_data("digits")
    np.save(tmp_path / "x.npy", data.x_test.reshape(-1, 1, 8, 8))
    np.save(tmp_path / "y.npy", data.y_test)
    result = invoke("simulate", model, "--inputs", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
                    "--simulator", "verilator")
    assert result.exit_code == 0, result.output
    assert "360 frames, 0 mismatches" in result.stdout
    measured, estimate = re.search(r"(\d+) cycles/frame measured \(estimate (\d+)\)", result.stdout).groups()
    assert measured == estimate
    hardware, pytorch = re.search(r"accuracy: hardware ([\d.]+)%, PyTorch ([\d.]+)%", result.stdout).groups()
    assert hardware == pytorch == f"{accuracy:.2f}"
