"""Issue 14's recipe and data pieces: MNIST-1D from the registry (generated offline, 8-bit samples,
the global random generators left alone), the validation split, runs sized by steps per unit, and one
sentence for every bad option."""

import dataclasses
import random

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bnn2hw.cli import cli
from bnn2hw.data import REGISTRY, load_training_data, validation_split
from bnn2hw.errors import DatasetError, TrainingConfigError
from bnn2hw.train import BinarizationConfig, TrainConfig, build_mlp, find_units, train
from bnn2hw.train.trainer import DEFAULT_LR, default_lr


def test_mnist1d_is_generated_offline_as_8_bit_samples_and_leaves_global_generators_alone():
    np.random.seed(123)
    random.seed(7)
    expect_np, expect_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(7)
    data = load_training_data("mnist1d")
    assert (np.random.rand(), random.random()) == (expect_np, expect_py)
    assert data.x_train.shape == (4000, 40) and data.x_test.shape == (1000, 40)
    assert data.x_train.dtype == np.int64 and data.x_train.min() >= 0 and data.x_train.max() <= 255
    assert data.input_bits == 8 and data.num_classes == 10 and data.image_shape == (40,)
    assert sorted(np.unique(data.y_train)) == list(range(10))
    again = load_training_data("mnist1d")
    assert np.array_equal(again.x_train, data.x_train) and np.array_equal(again.y_test, data.y_test)
    assert "mnist1d" in REGISTRY and not REGISTRY["mnist1d"].local_files


def test_validation_split_is_carved_from_the_training_samples_only():
    data = load_training_data("digits")
    split = validation_split(data, 0.2, seed=0)
    assert len(split.y_train) + len(split.y_test) == len(data.y_train)
    rows = {tuple(r) for r in data.x_train.tolist()}
    assert all(tuple(r) in rows for r in split.x_test.tolist())          # nothing from the test split
    assert np.bincount(split.y_test).min() >= 0.18 * np.bincount(data.y_train).min()   # stratified
    assert np.array_equal(validation_split(data, 0.2, seed=0).x_test, split.x_test)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(DatasetError, match="validation fraction"):
            validation_split(data, bad)


def test_steps_per_unit_size_the_run_by_its_depth():
    data = load_training_data("digits")
    small = data.__class__(**{**data.__dict__, "x_train": data.x_train[:256], "y_train": data.y_train[:256]})
    for hidden, start in (((8,), 0.0), ((8, 8, 8), 0.5)):
        config = TrainConfig(hidden=hidden, unit_steps=6, batch_size=64,
                             binarization=BinarizationConfig(start=start, end=1.0))
        steps = []
        train(small, config, on_step=lambda step, total: steps.append((step, total)))
        units = len(hidden) + 1
        expected = int(np.ceil(6 * units / (1.0 - start)))
        assert steps[-1] == (expected, expected)
    model = build_mlp(data, (8, 8, 8))
    assert len(find_units(model)) == 4


def test_each_method_has_its_default_learning_rate():
    for method, lr in DEFAULT_LR.items():
        config = TrainConfig(binarization=BinarizationConfig(method=method))
        assert config.learning_rate == lr == default_lr(method) == config.to_dict()["learning_rate"]
    assert TrainConfig(lr=0.5).learning_rate == 0.5
    # Resolved on use: another method by dataclasses.replace gets its own rate, a given rate stays.
    stompp = TrainConfig(binarization=BinarizationConfig(method="stompp"))
    assert dataclasses.replace(stompp, binarization=BinarizationConfig(method="ste")).learning_rate == DEFAULT_LR["ste"]
    assert dataclasses.replace(TrainConfig(lr=0.2), binarization=BinarizationConfig(method="ste")).learning_rate == 0.2


def test_validation_option_reports_on_held_out_training_samples(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--hidden", "16", "--epochs", "1", "--batch-size", "64",
                                      "--validation", "0.25", "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("on the digits validation split")
    assert "/360)" in result.stdout   # 25 % of 1437 training samples, stratified: 360 of them


def test_mnist1d_trains_from_the_cli(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--dataset", "mnist1d", "--hidden", "32", "--epochs", "1",
                                      "--batch-size", "128", "--out", str(tmp_path / "m.pt")])
    assert result.exit_code == 0, result.output
    assert "(4000 train / 1000 test)" in result.stderr and "/1000)" in result.stdout
