"""Residual binary networks (issue 14): the block's arithmetic, the MLP and CNN the trainer builds, how
the Binarizer schedules a quantized shortcut, saving and loading, the compiler's refusal with a hint,
and the `--residual` option."""

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import bnn2hw
from bnn2hw.cli import cli
from bnn2hw.errors import TrainingConfigError, UnsupportedModelError
from bnn2hw.frontend import import_model
from bnn2hw.nn import BinaryAct, BinaryConv2d, BinaryLinear, QuantAct, ResidualBlock
from bnn2hw.train import (BinarizationConfig, Binarizer, TrainConfig, build_cnn, build_mlp, find_units,
                          load_training_data, train)
from bnn2hw.train.trainer import shortcut_quant


@pytest.fixture(scope="module")
def digits():
    return load_training_data("digits")


def test_block_adds_its_input_or_the_input_on_the_shortcut_grid():
    torch.manual_seed(0)
    body = [BinaryAct(), BinaryLinear(6, 6), nn.BatchNorm1d(6)]
    x = torch.randn(5, 6) * 2
    real = ResidualBlock(*body).eval()
    assert torch.equal(real(x), real.body(x) + x)
    quant = shortcut_quant(3)
    block = ResidualBlock(*body, shortcut=quant).eval()
    s = quant.hard(x)
    assert torch.equal(block(x), block.body(s) + s)
    assert set(s.unique().tolist()) <= set(quant.level_values(torch.float32).tolist())
    assert quant.value_range == (-2.0, 1.5)    # 3 bits: j/2, j = -4..3


def test_block_rejects_an_empty_body_and_a_shortcut_that_is_no_quantizer():
    with pytest.raises(ValueError, match="at least one layer"):
        ResidualBlock()
    with pytest.raises(ValueError, match="QuantAct"):
        ResidualBlock(BinaryAct(), shortcut=nn.ReLU())


def test_residual_mlp_has_the_plain_mlps_layers_with_shortcuts_where_the_width_stays(digits):
    plain = build_mlp(digits, (32, 32, 16, 16))
    model = build_mlp(digits, (32, 32, 16, 16), residual=4)
    count = lambda m, kind: sum(isinstance(x, kind) for x in m.modules())
    for kind in (BinaryLinear, BinaryAct, nn.BatchNorm1d):
        assert count(model, kind) == count(plain, kind), kind
    blocks = [m for m in model if isinstance(m, ResidualBlock)]
    assert len(blocks) == 2  # 32→32 and 16→16; 64→32 and 32→16 change the width
    assert all(b.shortcut is not None and b.shortcut.bits == 4 for b in blocks)
    assert all(b.shortcut is None for b in build_mlp(digits, (32, 32), residual="real").modules()
               if isinstance(b, ResidualBlock))
    assert model(torch.from_numpy(digits.x_test[:3]).float()).shape == (3, 10)


def test_residual_cnn_keeps_the_image_in_blocks_and_pools_at_transitions(digits):
    model = build_cnn(digits, (8, 8, 16), (), residual="real")
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["InputQuant", "BinaryConv2d", "BatchNorm2d", "MaxPool2d", "ResidualBlock", "BinaryAct",
                     "BinaryConv2d", "BatchNorm2d", "MaxPool2d", "Flatten", "BinaryAct", "BinaryLinear"]
    assert model(torch.from_numpy(digits.x_test[:2]).float().reshape(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("bad", ["1", "9", "skip", 0, True])
def test_a_bad_residual_kind_is_one_sentence(digits, bad):
    with pytest.raises(TrainingConfigError, match=r"--residual\) must be none, real .* not"):
        TrainConfig(residual=bad)
    with pytest.raises(TrainingConfigError, match="--residual"):
        build_mlp(digits, (8, 8), residual=bad)


def test_quantized_shortcut_needs_binary_activations():
    with pytest.raises(TrainingConfigError, match="needs --net bnn"):
        TrainConfig(net="bwn", residual=4)
    assert TrainConfig(net="bwn", residual="real").residual == "real"


def test_the_quantized_shortcut_freezes_with_the_unit_of_its_block(digits):
    torch.manual_seed(0)
    model = build_mlp(digits, (16, 16, 16), residual=3)
    units = find_units(model)
    blocks = [m for m in model if isinstance(m, ResidualBlock)]
    assert [u.shortcut for u in units] == [None, blocks[0].shortcut, blocks[1].shortcut, None]
    assert all(isinstance(u.act, BinaryAct) for u in units[1:])   # the sign inside each block stays the act
    binarizer = Binarizer(model, BinarizationConfig(activation_masks="persistent"), 100, torch.Generator().manual_seed(0))
    x = torch.from_numpy(digits.x_train[:8]).float()
    for step in (0, 40, 60, 99):
        binarizer.update(step)
        model.train()
        model(x)
        for row, unit in zip(binarizer.frozen_fractions(), binarizer.units):
            if unit.shortcut is not None:
                assert abs(row["shortcut"] - row["target"]) <= 1 / unit.shortcut_mask.numel() + 1e-9
    # In stompp mode a frozen shortcut entry is the grid value and passes no gradient.
    unit = binarizer.units[1]
    unit.shortcut_mask = torch.ones_like(unit.shortcut_mask)
    h = torch.randn(4, 16, requires_grad=True)
    out = unit.shortcut(h)
    assert torch.equal(out, unit.shortcut.hard(h))
    out.sum().backward()
    assert torch.count_nonzero(h.grad) == 0
    binarizer.detach()
    assert "quantizer" not in vars(unit.shortcut)


def test_residual_models_save_and_load_with_their_outputs(tmp_path, digits):
    torch.manual_seed(1)
    for residual in ("real", 4):
        model = build_mlp(digits, (16, 16, 16), residual=residual)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.running_mean.uniform_(-1, 1)
                    m.running_var.uniform_(0.5, 2)
        model.eval()
        bnn2hw.save(model, tmp_path / "r.pt", input_shape=(64,))
        loaded = bnn2hw.load(tmp_path / "r.pt")   # weights_only=True inside
        x = torch.from_numpy(digits.x_test[:20]).float()
        assert torch.equal(loaded(x), model(x))
        assert [type(m).__name__ for m in loaded.modules()] == [type(m).__name__ for m in model.modules()]
    conv = build_cnn(digits, (4, 4), (), residual=2).eval()
    bnn2hw.save(conv, tmp_path / "c.pt", input_shape=(1, 8, 8))
    x = torch.from_numpy(digits.x_test[:4]).float().reshape(4, 1, 8, 8)
    assert torch.equal(bnn2hw.load(tmp_path / "c.pt")(x), conv(x))


def test_the_compiler_names_residual_blocks_with_a_hint(digits):
    model = build_mlp(digits, (16, 16), residual="real").eval()
    with pytest.raises(UnsupportedModelError, match=r"layer 3: ResidualBlock is not supported \(residual blocks "
                                                    r"train .* cannot be compiled yet; train without --residual"):
        import_model(model, (64,))


def test_residual_training_learns_with_every_method(digits):
    for method, residual in (("stompp", "real"), ("ste", 4), ("stompp+sg", 3)):
        config = TrainConfig(hidden=(24, 24, 24), epochs=3, batch_size=64, residual=residual,
                             binarization=BinarizationConfig(method=method))
        result = train(digits, config)
        assert result.test_accuracy > 0.3, (method, residual, result.test_accuracy)   # chance is 0.1
        assert any(isinstance(m, ResidualBlock) for m in result.model)


def test_train_residual_from_the_cli(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--hidden", "16,16", "--epochs", "1", "--batch-size", "128",
                                 "--residual", "4", "--out", str(tmp_path / "r.pt")])
    assert result.exit_code == 0, result.output
    assert "cannot build them yet" in result.stderr
    assert bnn2hw.load(tmp_path / "r.pt").metadata["residual"] == 4
    result = runner.invoke(cli, ["train", "--residual", "1", "--out", str(tmp_path / "x.pt")])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "--residual" in result.stderr
    assert not (tmp_path / "x.pt").exists()
