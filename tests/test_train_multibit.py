"""Multi-bit training (issue 15): QuantAct activations and 2+-bit weights under every method (stompp,
stompp+sg, ste), the per-layer bit options of the builders, TrainConfig and `bnn2hw train`, and the
errors for what has no multi-bit form (sign surrogates, Bop/KBOP)."""

import json
import re

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import bnn2hw
from bnn2hw.cli import cli
from bnn2hw.errors import TrainingConfigError
from bnn2hw.nn import BinaryAct, BinaryConv2d, BinaryLinear, QuantAct, clip_weight, quantize_weight, weight_code_max
from bnn2hw.train import (BinarizationConfig, Binarizer, TrainConfig, act_levels, build_cnn, build_mlp, find_units,
                          grow_mask, load_training_data, multilevel_q, stompp_q, train, weight_levels)

METHODS = ("stompp", "stompp+sg", "ste")


@pytest.fixture(scope="module")
def digits():
    return load_training_data("digits")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


ACTS = [QuantAct(2, "signed", 0.5), QuantAct(3, "signed", 0.25, narrow=True), QuantAct(2, "unsigned", 0.5),
        QuantAct(2), QuantAct(1, "unsigned")]


@pytest.mark.parametrize("act", ACTS, ids=lambda a: a.extra_repr())
@pytest.mark.parametrize("mode", METHODS)
def test_activation_paths_and_gradients(act, mode):
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(64, 7, generator=g) * 1.2).double()
    x[0, :4] = torch.tensor(act.value_range + act.value_range, dtype=x.dtype)  # the range's ends: inclusive
    x.requires_grad_()
    frozen = torch.rand(64, 7, generator=g) < 0.5
    up = torch.randn(64, 7, generator=g).double()
    out = multilevel_q(x, frozen, mode, act_levels(act))
    (out * up).sum().backward()
    hard, clip = act.hard(x), act.clip(x.detach())
    lo, hi = act.value_range
    inside = ((x >= lo) & (x <= hi)).detach()
    if mode == "ste":
        assert torch.equal(out, hard)
        assert torch.equal(x.grad, up * inside)
        return
    assert torch.equal(out, torch.where(frozen, hard, clip))
    expect = up * inside if mode == "stompp+sg" else torch.where(frozen, 0.0, up * inside)
    assert torch.equal(x.grad, expect)
    assert (x.grad[frozen & inside] != 0).all() == (mode == "stompp+sg")


@pytest.mark.parametrize("bits", [2, 3, 5])
@pytest.mark.parametrize("mode", METHODS)
def test_weight_paths_and_gradients_are_in_code_units(bits, mode):
    g = torch.Generator().manual_seed(bits)
    w = (torch.rand(9, 11, generator=g) * 2.6 - 1.3).double()
    w[0, :2] = torch.tensor([-1.0, 1.0], dtype=w.dtype)
    w.requires_grad_()
    frozen = torch.rand(9, 11, generator=g) < 0.4
    up = torch.randn(9, 11, generator=g).double()
    out = multilevel_q(w, frozen, mode, weight_levels(bits))
    (out * up).sum().backward()
    m = weight_code_max(bits)
    inside = ((w >= -1) & (w <= 1)).detach()
    codes = quantize_weight(w.detach(), bits)
    if mode == "ste":
        assert torch.equal(out, codes)
    else:
        assert torch.equal(out, torch.where(frozen, codes, clip_weight(w.detach(), bits)))
    ste = up * m * inside  # d clip_weight / dw = M inside [-1, 1]
    assert torch.equal(w.grad, torch.where(frozen, 0.0, ste) if mode == "stompp" else ste)


def test_units_take_quantact_and_multibit_layers(digits):
    model = build_cnn(digits, (4,), (8,), act_bits=(2, 3), weight_bits=(2, 1, 3))
    units = find_units(model)
    assert [type(u.layer) for u in units] == [BinaryConv2d, BinaryLinear, BinaryLinear]
    assert [u.layer.weight_bits for u in units] == [2, 1, 3]
    assert units[0].act is None and [u.act.bits for u in units[1:]] == [2, 3]
    assert all(isinstance(u.act, QuantAct) for u in units[1:])
    out = find_units(model, "output")
    assert [None if u.act is None else u.act.bits for u in out] == [2, 3, None]


@pytest.mark.parametrize("mode", METHODS)
def test_binarizer_drives_multibit_layers(digits, mode):
    torch.manual_seed(0)
    model = build_mlp(digits, (12, 10), act_bits=2, weight_bits=(2, 3, 2))
    binarizer = Binarizer(model, BinarizationConfig(method=mode), 100, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(2)
    model.train()
    for unit in binarizer.units:
        layer = unit.layer
        if mode != "ste":
            unit.weight_mask = torch.rand(layer.weight.shape, generator=g) < 0.5
        w = layer.weight.detach()
        hard, clip = quantize_weight(w, layer.weight_bits), clip_weight(w, layer.weight_bits)
        expect = hard if mode == "ste" else torch.where(unit.weight_mask, hard, clip)
        assert torch.equal(layer.binary_weight(), expect)
        if unit.act is not None:
            x = torch.randn(5, layer.in_features, generator=g, requires_grad=True)
            if mode != "ste":
                unit.act_mask = torch.rand(layer.in_features, generator=g) < 0.5
            out = unit.act(x)
            hard = unit.act.hard(x)
            expect = hard if mode == "ste" else torch.where(unit.act_mask.expand_as(x), hard, unit.act.clip(x))
            assert torch.equal(out, expect)
    binarizer.detach()
    model.eval()
    act = model[3]
    x = torch.randn(4, 12)
    assert torch.equal(act(x), act.hard(x)) and "quantizer" not in vars(act)


def test_error_priority_for_multibit_weights_freezes_codes_near_a_level_first():
    latent = torch.cat([torch.tensor([0.0, 1.0, -1.0] * 100), torch.tensor([0.5, -0.5] * 350)])  # ternary
    mask = grow_mask(torch.zeros(1000, dtype=torch.bool), 0.2, torch.Generator().manual_seed(0), latent=latent,
                     priority="error", bits=2)
    assert int(mask.sum()) == 200 and int(mask[:300].sum()) >= 190


def test_quantact_one_bit_symmetric_is_the_sign_and_keeps_every_surrogate():
    """QuantAct(1) is BinaryAct's hard sign: the sign paths and their surrogates apply unchanged."""
    def grads(act):
        model = nn.Sequential(BinaryLinear(6, 5), act, BinaryLinear(5, 3))
        torch.manual_seed(0)
        for m in model:
            if isinstance(m, BinaryLinear):
                nn.init.uniform_(m.weight, -1, 1)
        binarizer = Binarizer(model, BinarizationConfig(method="ste", surrogate="approxsign"), 10,
                              torch.Generator().manual_seed(0))
        binarizer.update(0)
        model.train()
        x = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
        model(x).sum().backward()
        return [m.weight.grad for m in model if isinstance(m, BinaryLinear)]
    for a, b in zip(grads(BinaryAct()), grads(QuantAct(1))):
        assert torch.equal(a, b)


def test_sign_surrogates_and_latent_free_optimizers_refuse_multibit_layers(digits):
    model = build_mlp(digits, (8,), act_bits=2)
    for method in ("ste", "stompp+sg"):
        with pytest.raises(TrainingConfigError, match="ede surrogate is a derivative of sign.*QuantAct"):
            Binarizer(model, BinarizationConfig(method=method, surrogate="ede"), 10, torch.Generator())
    Binarizer(model, BinarizationConfig(method="stompp", surrogate="ede"), 10, torch.Generator())  # unused there
    model = build_mlp(digits, (8,), weight_bits=(1, 2))
    with pytest.raises(TrainingConfigError, match=r"Bop and KBOP flip ±1 weights .*layer 4: BinaryLinear with 2-bit"):
        Binarizer(model, BinarizationConfig(latent_free=True), 10, torch.Generator())
    with pytest.raises(TrainingConfigError, match="--optimizer bop flips ±1 weights"):
        TrainConfig(optimizer="bop", weight_bits=(1, 2))
    with pytest.raises(TrainingConfigError, match="swishsign surrogate"):
        TrainConfig(binarization=BinarizationConfig(method="ste", surrogate="swishsign"), act_bits=2)
    TrainConfig(optimizer="kbop", act_bits=2, binarization=BinarizationConfig(method="ste"))  # ste_clip: fine


@pytest.mark.parametrize("kwargs, words", [
    (dict(act_bits=0), "activation bits (--act-bits) must be a whole number of bits from 1 to 8"),
    (dict(weight_bits=9), "weight bits (--weight-bits) must be"),
    (dict(act_bits=True), "activation bits"),
    (dict(weight_bits=()), "weight bits"),
    (dict(act_bits=(2, 2.0)), "activation bits"),
    (dict(net="bwn", act_bits=2), "--net bwn keeps real activations"),
])
def test_train_config_checks_bit_widths(kwargs, words):
    with pytest.raises(TrainingConfigError, match=re.escape(words)):
        TrainConfig(**kwargs)


def test_builders_take_one_width_or_one_per_layer(digits):
    assert TrainConfig(act_bits=[2, 1]).act_bits == (2, 1)
    model = build_mlp(digits, (8, 8), act_bits=(2, 1), weight_bits=3)
    assert [m.weight_bits for m in model if isinstance(m, BinaryLinear)] == [3, 3, 3]
    assert isinstance(model[3], QuantAct) and isinstance(model[6], BinaryAct)
    q = model[3]
    assert (q.bits, q.mode, q.scale, q.narrow) == (2, "signed", 0.5, False)
    assert torch.equal(q.level_values(), torch.tensor([-1.0, -0.5, 0.0, 0.5], dtype=torch.float64))
    levels = build_mlp(digits, (8,), act_bits=4)[3].level_values()
    assert torch.equal(levels * 8, torch.arange(-8, 8, dtype=torch.float64))  # dyadic k/2^(bits-1)
    with pytest.raises(TrainingConfigError, match="list has 3 entries, but the model has 2 hidden activations"):
        build_mlp(digits, (8, 8), act_bits=(2, 2, 2))
    with pytest.raises(TrainingConfigError, match=r"has 2 entries, but the model has 3 weight layers \(the output"):
        build_mlp(digits, (8, 8), weight_bits=(2, 2))
    with pytest.raises(TrainingConfigError, match="has 3 weight layers"):
        build_cnn(digits, (4,), (8,), weight_bits=(2, 2))


@pytest.mark.parametrize("method", METHODS)
def test_tiny_multibit_model_trains_and_beats_chance_in_deploy_mode(digits, method):
    config = TrainConfig(hidden=(32,), epochs=3, batch_size=64, act_bits=2, weight_bits=2,
                         binarization=BinarizationConfig(method=method))
    result = train(digits, config)
    assert result.test_accuracy > 0.5, result.test_accuracy  # chance: 0.1
    model = result.model
    assert not model.training and all("quantizer" not in vars(m) for m in model.modules())
    x = torch.from_numpy(digits.x_test).double()
    deployed = model.double()
    with torch.no_grad():
        scores = deployed(x)
        hidden = x
        for m in list(deployed)[:4]:
            hidden = m(hidden)
    assert set(hidden.unique().tolist()) <= {-1.0, -0.5, 0.0, 0.5}
    assert torch.equal(scores * 2, torch.round(scores * 2))  # ternary weights times k/2 activations
    assert set(quantize_weight(deployed[4].weight, 2).unique().tolist()) <= {-1.0, 0.0, 1.0}
    correct = int((scores.argmax(1).numpy() == digits.y_test).sum())
    assert correct == result.test_correct


def test_kbop_learned_scale_still_works_with_multibit_activations(digits):
    config = TrainConfig(hidden=(16,), epochs=1, batch_size=128, optimizer="kbop", act_bits=2)
    result = train(digits, config)
    assert result.test_accuracy > 0.2 and any("learned score scale" in n for n in result.notes)


def test_cli_multibit_flags_end_to_end(tmp_path, digits):
    model = tmp_path / "m.pt"
    result = invoke("train", "--hidden", "16,12", "--act-bits", "2,1", "--weight-bits", "2,3,2", "--epochs", "2",
                    "--batch-size", "64", "--method", "stompp+sg", "--out", model)
    assert result.exit_code == 0, result.output
    assert "weight bits 2,3,2, activation bits 2,1" in result.stderr
    correct = int(re.search(r"\((\d+)/360\)", result.stdout).group(1))
    net = bnn2hw.load(model)
    assert [type(m).__name__ for m in net] == ["InputQuant", "BinaryLinear", "BatchNorm1d", "QuantAct", "BinaryLinear",
                                               "BatchNorm1d", "BinaryAct", "BinaryLinear"]
    q = net[3]
    assert (q.bits, q.mode, q.scale, q.narrow) == (2, "signed", 0.5, False)
    assert [m.weight_bits for m in net if isinstance(m, BinaryLinear)] == [2, 3, 2]
    meta = net.metadata
    assert meta["act_bits"] == [2, 1] and meta["weight_bits"] == [2, 3, 2]
    assert list(meta["train_config"]["act_bits"]) == [2, 1] and list(meta["train_config"]["weight_bits"]) == [2, 3, 2]
    log = json.loads((tmp_path / "m.train.json").read_text())
    assert log["act_bits"] == [2, 1] and log["weight_bits"] == [2, 3, 2]
    with torch.no_grad():
        pred = net.double().eval()(torch.from_numpy(digits.x_test).double()).argmax(1).numpy()
    assert int((pred == digits.y_test).sum()) == correct == meta["test_correct"]


def test_cli_multibit_cnn(tmp_path):
    model = tmp_path / "c.pt"
    result = invoke("train", "--conv", "4", "--hidden", "8", "--act-bits", "2", "--weight-bits", "2",
                    "--epochs", "1", "--batch-size", "128", "--lr", "0.1", "--out", model)
    assert result.exit_code == 0, result.output
    net = bnn2hw.load(model)
    assert isinstance(net[1], BinaryConv2d) and net[1].weight_bits == 2
    assert [m.bits for m in net if isinstance(m, QuantAct)] == [2, 2]
    assert net.metadata["act_bits"] == [2, 2] and net.metadata["weight_bits"] == [2, 2, 2]


def test_help_names_the_bit_flags():
    result = invoke("train", "--help")
    assert result.exit_code == 0
    assert "--act-bits" in result.stdout and "--weight-bits" in result.stdout and "ternary" in result.stdout
