"""Convolutional models in the golden model (issue 4): torch (eval, float64) == golden on 30 random
models × 32 inputs, class scores included; the unsupported conv variants are named with a hint."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import bnn2hw
from bnn2hw import golden
from bnn2hw.cli import cli
from bnn2hw.errors import UnsupportedModelError
from bnn2hw.frontend import import_model
from bnn2hw.nn import BinaryAct, BinaryConv2d, BinaryLinear, InputQuant
from bnn2hw.passes import fold_batchnorm
from bnn2hw.reference import torch_forward
from bnn2hw.testing import build_random_conv_model


@pytest.mark.parametrize("seed", range(30))
def test_random_conv_model_golden_equals_torch(seed):
    model, shape = build_random_conv_model(seed)
    bits = model[0].bits
    x = np.random.default_rng(seed).integers(0, 1 << bits, size=(32,) + shape)
    graph = fold_batchnorm(import_model(model, shape))
    assert graph.has_convolutions
    result = golden.run(graph, x)
    expected = torch_forward(model, x)
    assert np.array_equal(result.scores, expected.astype(np.int64)) and np.array_equal(expected, np.round(expected))
    assert np.array_equal(result.classes, expected.argmax(1))


def test_random_models_cover_the_interesting_cases():
    seen = set()
    for seed in range(30):
        model, _ = build_random_conv_model(seed)
        mods = list(model)
        for i, m in enumerate(mods):
            if isinstance(m, nn.MaxPool2d):
                seen.add("pool_before_bn" if isinstance(mods[i + 1], nn.BatchNorm2d) else
                         "pool_after_act" if isinstance(mods[i - 1], BinaryAct) else "pool_before_act")
            if isinstance(m, BinaryConv2d):
                seen.add(f"pad{m.pad_value:+g}" if any(m.padding) else "nopad")
                seen.add("stride2" if m.stride[0] == 2 else "stride1")
                seen.add("nonsquare" if m.kernel_size[0] != m.kernel_size[1] else "square")
            if isinstance(m, nn.BatchNorm2d):
                seen |= {"gamma<0"} if (m.weight < 0).any() else set()
                seen |= {"gamma=0"} if (m.weight == 0).any() else set()
    assert seen >= {"pool_before_bn", "pool_after_act", "pool_before_act", "pad-1", "pad+1", "nopad", "stride1",
                    "stride2", "nonsquare", "square", "gamma<0", "gamma=0"}


def small_conv(**conv_kwargs):
    torch.manual_seed(0)
    return nn.Sequential(InputQuant(5), BinaryConv2d(1, 4, 3, **conv_kwargs), nn.BatchNorm2d(4), BinaryAct(),
                         nn.Flatten(), BinaryLinear(4 * 8 * 8 if conv_kwargs.get("padding") else 4 * 6 * 6, 10)).eval()


@pytest.mark.parametrize("change, words", [
    (lambda m: setattr(m[1], "pad_value", 0.0), "pads with 0, which one bit cannot represent exactly; retrain"),
    (lambda m: setattr(m[1], "dilation", (2, 2)), "dilation=(2, 2)"),
    (lambda m: setattr(m[1], "groups", 2), "groups=2"),
    (lambda m: m.__setitem__(1, BinaryConv2d(1, 4, 9, padding=4)), "kernel_size=(9, 9) is outside"),
    (lambda m: m.insert(4, nn.MaxPool2d((2, 3))), "square windows"),
    (lambda m: m.insert(1, nn.ZeroPad2d((1, 0, 1, 0))), "ZeroPad2d"),
    (lambda m: m.__setitem__(3, nn.ReLU()), "ReLU is not supported (use bnn2hw.nn.BinaryAct)"),
])
def test_unsupported_conv_variants_are_named_with_position_and_hint(change, words):
    model = small_conv(padding=1)
    change(model)
    with pytest.raises(UnsupportedModelError) as e:
        import_model(model, (1, 8, 8))
    assert words in str(e.value) and "layer " in str(e.value)


def test_predict_compile_and_simulate_run_a_conv_model(tmp_path):
    model = small_conv(padding=1)
    bnn2hw.save(model, tmp_path / "c.pt", input_shape=(1, 8, 8))
    x = np.random.default_rng(0).integers(0, 32, size=(20, 1, 8, 8))
    np.save(tmp_path / "x.npy", x)
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "c.pt"), "--inputs", str(tmp_path / "x.npy"),
                                      "--out", str(tmp_path / "y.npz")])
    assert result.exit_code == 0, result.output
    assert np.array_equal(np.load(tmp_path / "y.npz")["classes"], torch_forward(model, x).argmax(1))
    result = CliRunner().invoke(cli, ["compile", str(tmp_path / "c.pt"), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert [layer["kind"] for layer in report["layers"]] == ["conv", "scores"]
    assert report["layers"][0]["positions"] == 64
    interface = json.loads((tmp_path / "b" / "verilog" / "bnn2hw_top.json").read_text())
    assert interface["input"]["beats_per_frame"] == 64 and interface["input"]["width"] == 5
    result = CliRunner().invoke(cli, ["simulate", str(tmp_path / "c.pt"), "--inputs", str(tmp_path / "x.npy"),
                                      "--simulator", "amaranth", "--out", str(tmp_path / "z.npz")])
    assert result.exit_code == 0, result.output
    assert "0 mismatches" in result.output
    assert np.array_equal(np.load(tmp_path / "z.npz")["scores"], torch_forward(model, x))
