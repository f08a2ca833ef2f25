"""The spec's §8 checklist (item 2) on whole models driven by the Binarizer, the pitfalls P1–P3, and the
trainer's determinism, BatchNorm recalibration and latent-free paths. References are plain torch."""

import copy
import dataclasses
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from bnn2hw.nn import BinaryAct, BinaryLinear
from bnn2hw.train import (BinarizationConfig, Binarizer, FreezeSchedule, TrainConfig, build_mlp, load_training_data,
                          train)
from bnn2hw.train.trainer import _fold_scales


@pytest.fixture(scope="module")
def digits():
    return load_training_data("digits")


def make(digits, hidden=(12, 10), net="bnn", seed=0, total_steps=100, **binarization):
    torch.manual_seed(seed)
    model = build_mlp(digits, hidden, net)
    with torch.no_grad():  # non-trivial BatchNorm statistics and affine parameters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-3, 3)
                m.running_var.uniform_(0.5, 4)
                m.weight.uniform_(-1.5, 1.5)
                m.bias.uniform_(-1, 1)
    config = BinarizationConfig(**binarization)
    binarizer = Binarizer(model, config, total_steps, torch.Generator().manual_seed(seed))
    return model, binarizer


def batch(digits, n=16):
    return torch.from_numpy(digits.x_train[:n]).float(), torch.from_numpy(digits.y_train[:n])


def clipped_reference(model, x):
    """The same network with every binarization replaced by clamp(., -1, 1) (spec: f = 0)."""
    for m in model:
        if isinstance(m, BinaryLinear):
            x = F.linear(x, m.weight.clamp(-1, 1), m.bias)
        elif isinstance(m, BinaryAct):
            x = x.clamp(-1, 1)
        else:
            x = m(x)
    return x


def test_units_pair_each_layer_with_the_activation_before_it(digits):
    model, binarizer = make(digits, hidden=(12, 10, 8))
    layers = [m for m in model if isinstance(m, BinaryLinear)]
    acts = [m for m in model if isinstance(m, BinaryAct)]
    assert [u.layer for u in binarizer.units] == layers
    assert [u.act for u in binarizer.units] == [None] + acts
    model, binarizer = make(digits, hidden=(12, 10, 8), pairing="output")
    acts = [m for m in model if isinstance(m, BinaryAct)]
    assert [u.act for u in binarizer.units] == acts + [None]


def test_fraction_zero_is_the_clipped_network(digits):
    model, binarizer = make(digits)
    binarizer.update(0)
    x, _ = batch(digits)
    with binarizer.train_state():
        out = model(x)
    model.eval()
    assert torch.allclose(out, clipped_reference(model, x), atol=1e-5)


@pytest.mark.parametrize("method", ["stompp", "stompp+sg", "ste"])
def test_fraction_one_is_the_deploy_network(digits, method):
    model, binarizer = make(digits, method=method)
    binarizer.update(100)
    x, y = batch(digits)
    with binarizer.train_state():
        out = model(x)
        F.cross_entropy(out, y).backward()
    model.eval()
    with torch.no_grad():
        assert torch.equal(out, model(x))
    grads = [u.layer.weight.grad for u in binarizer.units]
    if method == "stompp":  # no STE anywhere: the step's true derivative is 0
        assert all(g is None or not g.any() for g in grads)
    else:
        assert all(g is not None and g.any() for g in grads)


def test_ste_method_is_hard_from_the_first_step(digits):
    model, binarizer = make(digits, method="ste")
    binarizer.update(0)
    x, _ = batch(digits)
    with binarizer.train_state(), torch.no_grad():
        out = model(x)
    model.eval()
    with torch.no_grad():
        assert torch.equal(out, model(x))


def test_stompp_gradients_flow_only_through_unfrozen_entries(digits):
    model, binarizer = make(digits, hidden=(40,), start=0.0, end=1.0)
    binarizer.update(25)  # unit 0 half frozen
    unit = binarizer.units[0]
    assert 0 < unit.weight_mask.float().mean() < 1
    x, y = batch(digits, 64)
    model.train()
    F.cross_entropy(model(x), y).backward()
    grad = unit.layer.weight.grad
    assert not grad[unit.weight_mask].any()
    assert grad[~unit.weight_mask].any()


@pytest.mark.parametrize("granularity", ["element", "out_channel"])
@pytest.mark.parametrize("order", ["forward", "reverse", "random"])
def test_mask_fractions_follow_the_schedule_and_refresh_keeps_counts(digits, granularity, order):
    model, binarizer = make(digits, hidden=(12, 10, 8), order=order, granularity=granularity, refresh_every=7,
                            refresh_fraction=0.5, priority="error")
    x, _ = batch(digits)
    model.train()
    previous, refresh_moved = None, False
    for step in range(0, 101):
        binarizer.update(step)
        model(x)  # creates the activation masks on the first forward
        for unit in binarizer.units:
            f = binarizer.fraction(unit)
            w = unit.weight_mask
            rows = w.shape[0]
            if granularity == "element":
                assert abs(int(w.sum()) - f * w.numel()) <= 1
            else:
                assert abs(int(w.all(dim=1).sum()) - f * rows) <= 1
                assert torch.equal(w.all(dim=1), w.any(dim=1))  # whole output channels
            if unit.act_mask is not None:
                assert abs(int(unit.act_mask.sum()) - f * unit.act_mask.numel()) <= 1
        if previous is not None:  # only refresh steps release frozen entries (growth never does)
            released = any(bool((previous[u.index] & ~u.weight_mask).any()) for u in binarizer.units)
            assert not released or step % 7 == 0
            refresh_moved |= released
        previous = {u.index: u.weight_mask.clone() for u in binarizer.units}
    assert refresh_moved
    first = [u.index for u in binarizer.units if binarizer.schedule.window(u.index)[0] == binarizer.schedule.start][0]
    assert first == {"forward": 0, "reverse": 3}.get(order, first)


def test_frozen_latents_do_not_move_under_adam_in_stompp_mode(digits):
    model, binarizer = make(digits, hidden=(30,), start=0.0, end=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=0.01)
    x, y = batch(digits, 64)
    model.train()
    moved_without_guard = False
    for step in range(40):
        binarizer.update(step)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        unit = binarizer.units[0]
        before = unit.layer.weight.detach().clone()
        # What Adam alone would do to the frozen entries (momentum from earlier steps, weight decay):
        shadow_model = copy.deepcopy(model)
        shadow = torch.optim.Adam(shadow_model.parameters(), lr=0.05, weight_decay=0.01)
        shadow.load_state_dict(copy.deepcopy(opt.state_dict()))
        for p, q in zip(model.parameters(), shadow_model.parameters()):
            q.grad = None if p.grad is None else p.grad.clone()
        shadow.step()
        moved_without_guard |= bool((shadow_model[1].weight.detach() != before)[unit.weight_mask].any())
        with binarizer.optimizer_step():
            opt.step()
        binarizer.clip_latents()
        after = unit.layer.weight.detach()
        assert torch.equal(after[unit.weight_mask], before[unit.weight_mask])
        assert after.abs().max() <= 1.0  # P1: latents stay clipped
    assert moved_without_guard  # the guard is what kept them


def test_frozen_latents_keep_learning_in_stompp_sg_mode(digits):
    model, binarizer = make(digits, hidden=(30,), method="stompp+sg", start=0.0, end=1.0)
    binarizer.update(50)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = batch(digits, 64)
    model.train()
    before = binarizer.units[0].layer.weight.detach().clone()
    F.cross_entropy(model(x), y).backward()
    with binarizer.optimizer_step():
        opt.step()
    mask = binarizer.units[0].weight_mask
    assert (binarizer.units[0].layer.weight.detach() != before)[mask].any()


def test_binary_weight_only_net_keeps_real_activations(digits):
    model, binarizer = make(digits, net="bwn", binarize_activations=False)
    assert not any(isinstance(m, BinaryAct) for m in model)
    assert all(u.act is None for u in binarizer.units)
    binarizer.update(100)
    assert all(row["activations"] is None and row["weights"] == 1.0 for row in binarizer.frozen_fractions())


def test_detach_restores_the_default_layers(digits):
    model, binarizer = make(digits)
    binarizer.detach()
    assert all(m.quantizer is None for m in model if isinstance(m, (BinaryLinear, BinaryAct)))


def test_no_torch_sign_in_the_package():
    """Pitfall P3: torch.sign(0) = 0, but every binary layer and the hardware use sign(0) = +1."""
    root = Path(__file__).resolve().parent.parent / "bnn2hw"
    offenders = [str(p) for p in root.rglob("*.py")
                 if re.search(r"torch\.sign\(|\.sign\(\)|torch\.sgn\(", p.read_text())]
    assert offenders == []


def small_config(**changes):
    base = TrainConfig(hidden=(16, 16), epochs=2, batch_size=64, seed=3)
    return dataclasses.replace(base, **changes)


def test_training_is_deterministic(digits):
    a = train(digits, small_config())
    b = train(digits, small_config())
    c = train(digits, small_config(seed=4))
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name
    assert [e["loss"] for e in a.history] == [e["loss"] for e in b.history]
    assert any(not torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), c.model.state_dict().values()))


def test_recalibrated_batchnorm_holds_the_deploy_statistics_of_the_training_set(digits):
    result = train(digits, small_config())
    model = result.model.double()
    x = torch.from_numpy(digits.x_train).double()
    inputs = {}
    hooks = [m.register_forward_hook(lambda mod, args, out: inputs.__setitem__(mod, args[0]))
             for m in model if isinstance(m, nn.BatchNorm1d)]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    assert inputs
    for bn, z in inputs.items():
        assert torch.allclose(bn.running_mean.double(), z.mean(0), atol=1e-5)
        assert torch.allclose(bn.running_var.double(), z.var(0, unbiased=True), rtol=1e-4, atol=1e-5)


def test_reported_accuracy_is_the_deploy_accuracy_of_the_returned_model(digits):
    result = train(digits, small_config(binarization=BinarizationConfig(method="stompp+sg")))
    model = result.model.double().eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(digits.x_test).double()).argmax(1)
    correct = int((pred == torch.from_numpy(digits.y_test)).sum())
    assert correct == result.test_correct
    assert result.test_accuracy == correct / len(digits.y_test)
    entry = result.history[-1]
    assert set(entry) >= {"epoch", "loss", "train_accuracy", "deploy_test_accuracy", "frozen"}
    # The schedule ends at the last step (end = 1.0): every unit but the last is frozen, and the last one
    # is where the last step's progress puts it (the deploy model freezes what is left).
    steps = 2 * len(range(0, len(digits.y_train), 64))
    last = FreezeSchedule(3, start=0.3, end=1.0).fraction(2, (steps - 1) / steps)
    assert [row["target"] for row in entry["frozen"]] == [1.0, 1.0, last] and 0.9 < last < 1.0


@pytest.mark.parametrize("optimizer", ["bop", "kbop"])
def test_latent_free_optimizers_keep_weights_binary(digits, optimizer):
    result = train(digits, small_config(optimizer=optimizer, bop_tau=0.0, bop_gamma=0.01))
    for m in result.model:
        if isinstance(m, BinaryLinear):
            assert torch.equal(m.weight.abs(), torch.ones_like(m.weight))


def test_kbop_scales_fold_into_batchnorm_without_changing_predictions(digits):
    torch.manual_seed(0)
    model = build_mlp(digits, (12, 10))
    binarizer = Binarizer(model, BinarizationConfig(method="ste"), 10, torch.Generator().manual_seed(0),
                          learned_scale=True)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-2, 2)
                m.running_var.uniform_(0.01, 0.2)
        for unit in binarizer.units:
            unit.scale.fill_(float(torch.empty(()).uniform_(-2.5, 0.5)))
    x = torch.from_numpy(digits.x_test).float()
    with binarizer.train_state(), torch.no_grad():
        scaled = model(x)
    binarizer.detach()
    notes = _fold_scales(model, binarizer)
    model.eval()
    with torch.no_grad():
        folded = model(x)
    assert len(notes) == 1 and "layer 7" in notes[0]  # the last layer's α only scales the scores
    alpha_last = float(binarizer.units[-1].scale.detach().exp())
    assert torch.allclose(folded * alpha_last, scaled, rtol=1e-4, atol=1e-4)
    assert torch.equal(folded.argmax(1), scaled.argmax(1))
