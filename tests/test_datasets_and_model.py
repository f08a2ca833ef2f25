"""The digits split, the shipped default model models/digits_mlp.pt, and its training script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bnn2hw
from bnn2hw.data import DIGITS_INPUT_BITS, DIGITS_INPUT_SHAPE, DigitsSplit, load_digits_split
from bnn2hw.nn import BinaryLinear, InputQuant

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "digits_mlp.pt"


def _accuracy_f64(model, x: np.ndarray, y: np.ndarray) -> float:
    model = model.double().eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(x).double()).argmax(dim=1).numpy()
    return float((pred == y).mean())


def test_split_is_deterministic_stratified_and_in_range():
    a, b = load_digits_split(), load_digits_split(seed=0)
    assert isinstance(a, DigitsSplit)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        va, vb = getattr(a, name), getattr(b, name)
        assert va.dtype == np.int64, name
        np.testing.assert_array_equal(va, vb, err_msg=name)
    assert a.x_train.shape == (1437, 64) and a.x_test.shape == (360, 64)
    assert a.y_train.shape == (1437,) and a.y_test.shape == (360,)
    for x in (a.x_train, a.x_test):
        assert x.min() == 0 and x.max() == 16
        assert x.max() <= (1 << DIGITS_INPUT_BITS) - 1
    assert DIGITS_INPUT_SHAPE == (64,)
    # Stratified: every class is 20% of its samples (+-1) in the test split.
    counts_test = np.bincount(a.y_test, minlength=10)
    counts_all = counts_test + np.bincount(a.y_train, minlength=10)
    assert np.all(np.abs(counts_test - 0.2 * counts_all) <= 1)
    # The split is a partition of the whole data set (1797 samples), with no sample in both halves.
    from sklearn.datasets import load_digits
    digits = load_digits()
    assert len(a.y_train) + len(a.y_test) == len(digits.target) == 1797
    all_rows = np.concatenate([a.x_train, a.x_test])
    assert sorted(map(bytes, all_rows)) == sorted(map(bytes, digits.data.astype(np.int64)))
    # Another seed gives another split.
    c = load_digits_split(seed=1)
    assert not np.array_equal(a.x_test, c.x_test)


def test_shipped_model_loads_and_matches_its_recorded_accuracy():
    model = bnn2hw.load(MODEL)
    assert model.input_shape == (64,)
    assert isinstance(model[0], InputQuant) and model[0].bits == DIGITS_INPUT_BITS
    last = model[-1]
    assert isinstance(last, BinaryLinear) and last.bias is None and last.out_features == 10
    assert all(m.bias is None for m in model if isinstance(m, BinaryLinear))
    meta = model.metadata
    split = load_digits_split(seed=meta["split_seed"])
    acc = _accuracy_f64(model, split.x_test, split.y_test)
    assert meta["test_accuracy"] == pytest.approx(acc, abs=1e-12)
    assert meta["test_correct"] == round(acc * len(split.y_test))
    assert acc >= 0.95
    assert meta["weight_bits"] == sum(m.weight.numel() for m in model if isinstance(m, BinaryLinear))


def test_shipped_model_scores_are_integers():
    model = bnn2hw.load(MODEL).double()
    x = torch.from_numpy(load_digits_split().x_test[:50]).double()
    with torch.no_grad():
        scores = model(x)
    assert torch.equal(scores, scores.round())


def test_training_script_runs_one_epoch(tmp_path):
    out = tmp_path / "m.pt"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "examples/train_digits_mlp.py", "--epochs", "1", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "epoch   1" in proc.stdout
    model = bnn2hw.load(out)
    assert model.input_shape == (64,)
    assert model.metadata["epochs"] == 1 and model.metadata["hidden"] == [128, 128]
    split = load_digits_split(seed=0)
    assert model.metadata["test_accuracy"] == pytest.approx(_accuracy_f64(model, split.x_test, split.y_test), abs=1e-12)
