"""KBOP (spec §5.2, a reconstruction): binary weights stay ±1, the flip set matches the rule recomputed from the
optimizer's state, the LR sets the rigidity, LR schedulers drive it, it learns a binary linear model, and bad
settings are refused. Expected values come from the optimizer's own state or plain torch ops, never constants."""

import copy
import math
from itertools import pairwise

import pytest
import torch

from bnn2hw.train.kbop import KBop, binarize_, bnn_init_scale, default_rigidity


def random_binary(shape, g, dtype=torch.float64):
    return torch.nn.Parameter(torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0).to(dtype))


def reference_threshold(v, kappa):
    """θ = μ + κ·σ over the tensor, σ the population std, written out with plain torch ops."""
    a = v.abs().double()
    mu = a.sum() / a.numel()
    sigma = torch.sqrt(((a - mu) ** 2).sum() / a.numel())
    return mu + kappa * sigma


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_weights_stay_exactly_plus_minus_one(dtype):
    g = torch.Generator().manual_seed(0)
    w = random_binary((9, 4, 3, 3), g, dtype)
    opt = KBop([w], lr=1.0, beta=0.5)              # the least rigid setting: many flips
    total_flips = 0
    for _ in range(50):
        w.grad = torch.randn(w.shape, generator=g).to(dtype)
        opt.step()
        total_flips += int(opt.state[w]["flips"])
        assert bool(((w == 1) | (w == -1)).all())
    assert total_flips > 0


def test_binarize_maps_zero_to_plus_one():
    w = torch.nn.Parameter(torch.tensor([-0.0, 0.0, -1e-30, 2.0, -3.0]))
    binarize_(w)
    assert torch.equal(w.detach(), torch.tensor([1.0, 1.0, -1.0, 1.0, -1.0]))


@pytest.mark.parametrize("shape", [(7,), (5, 3), (4, 3, 3, 3)])
@pytest.mark.parametrize("lr", [0.3, 0.6, 1.0])
def test_flip_set_is_the_rule_recomputed_from_the_state(shape, lr):
    g = torch.Generator().manual_seed(len(shape) * 10 + int(lr * 10))
    w = random_binary(shape, g)
    opt = KBop([w], lr=lr, beta=0.7)
    for _ in range(8):
        w0 = w.detach().clone()
        w.grad = torch.randn(shape, generator=g, dtype=torch.float64)
        opt.step()
        v = opt.state[w]["v"]
        theta = reference_threshold(v, 1 / lr - 1)
        assert torch.allclose(opt.state[w]["threshold"], theta, rtol=1e-12, atol=0)
        expected = (w0 * v > 0) & (v.abs() > theta)
        flipped = w.detach() != w0
        assert torch.equal(flipped, expected)
        assert torch.equal(w.detach()[flipped], -w0[flipped])
        assert int(opt.state[w]["flips"]) == int(flipped.sum())
        assert not bool((flipped & (w0 * v <= 0)).any())


def test_entries_with_w_times_v_at_most_zero_never_flip_even_below_any_threshold():
    g = torch.Generator().manual_seed(5)
    w = random_binary((200,), g)
    opt = KBop([w], lr=1.0, beta=0.0, rigidity=lambda lr: -1e6)   # θ far below 0: only the sign test decides
    for _ in range(10):
        w0 = w.detach().clone()
        grad = torch.randn(200, generator=g, dtype=torch.float64)
        grad[:20] = 0.0                                                # w·v = 0 exactly: the strict test keeps w
        w.grad = grad
        opt.step()
        v = opt.state[w]["v"]
        assert torch.equal(w.detach() != w0, w0 * v > 0)
        assert torch.equal(w.detach()[:20], w0[:20])


def test_smaller_lr_never_flips_more_on_identical_state():
    g = torch.Generator().manual_seed(6)
    w_init = random_binary((64, 16), g).detach()
    v_init = torch.randn(64, 16, generator=g, dtype=torch.float64)
    grad = torch.randn(64, 16, generator=g, dtype=torch.float64)
    lrs = [0.05, 0.2, 0.4, 0.6, 0.8, 1.0]
    flipped = []
    for lr in lrs:
        w = torch.nn.Parameter(w_init.clone())
        opt = KBop([w], lr=lr, beta=0.9)
        opt.state[w]["v"] = v_init.clone()
        w.grad = grad.clone()
        opt.step()
        flipped.append(w.detach() != w_init)
    for rigid, loose in pairwise(flipped):
        assert not bool((rigid & ~loose).any())                        # a subset, so never more entries
    assert int(flipped[-1].sum()) > int(flipped[0].sum())


def test_custom_rigidity_is_called_with_the_lr_and_sets_the_threshold():
    calls = []

    def rigidity(lr):
        calls.append(lr)
        return 2.0 * lr

    g = torch.Generator().manual_seed(7)
    w = random_binary((30, 5), g)
    opt = KBop([w], lr=0.25, rigidity=rigidity)
    w.grad = torch.randn(30, 5, generator=g, dtype=torch.float64)
    opt.step()
    assert calls == [0.25]
    assert torch.allclose(opt.state[w]["threshold"], reference_threshold(opt.state[w]["v"], rigidity(0.25)))


def test_lr_scheduler_drives_the_threshold():
    g = torch.Generator().manual_seed(8)
    w = random_binary((50, 10), g)
    grad = torch.randn(50, 10, generator=g, dtype=torch.float64)
    opt = KBop([w], lr=1.0, beta=0.0)              # β = 0 and a fixed gradient: v, μ and σ stay the same
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    lrs, thetas = [], []
    for _ in range(5):
        lr = opt.param_groups[0]["lr"]
        w.grad = grad.clone()
        opt.step()
        lrs.append(lr)
        thetas.append(float(opt.state[w]["threshold"]))
        if lr > 0:
            assert thetas[-1] == pytest.approx(float(reference_threshold(grad, 1 / lr - 1)), rel=1e-12)
        sched.step()
    assert all(a > b for a, b in pairwise(lrs)) and lrs[-1] == pytest.approx(0.0, abs=1e-15)
    assert all(a < b for a, b in pairwise(thetas))
    opt.param_groups[0]["lr"] = 0.0                # the end of a cosine to eta_min = 0: κ = ∞, θ = ∞, no flips
    w0 = w.detach().clone()
    w.grad = grad.clone()
    opt.step()
    assert float(opt.state[w]["threshold"]) == math.inf and torch.equal(w.detach(), w0)


def test_a_tensor_with_equal_magnitudes_never_flips():
    w = torch.nn.Parameter(torch.tensor([1.0]))
    opt = KBop([w], lr=1.0, beta=0.0)              # σ = 0, so θ = μ = |v| and |v| > θ is false
    for _ in range(5):
        w.grad = torch.tensor([3.0])               # w·v > 0: the gradient asks for a flip every step
        opt.step()
    assert torch.equal(w.detach(), torch.tensor([1.0]))


def test_default_rigidity_is_one_over_lr_minus_one():
    for lr in [1.0, 0.5, 0.1, 1e-3]:
        assert default_rigidity(lr) == pytest.approx(1 / lr - 1)
    assert default_rigidity(0.0) == math.inf
    with pytest.raises(ValueError, match="1.5"):
        default_rigidity(1.5)


def test_it_learns_the_signs_of_a_binary_linear_model():
    g = torch.Generator().manual_seed(0)
    n, m = 64, 256
    X = torch.randn(m, n, generator=g)
    w_star = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    y = X @ w_star
    w = torch.nn.Parameter(torch.randn(n, generator=g))
    binarize_(w)
    opt = KBop([w])                                # the defaults
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((X @ w - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    final = ((X @ w - y) ** 2).mean().item()
    recovered = (w.detach() == w_star).float().mean().item()
    assert recovered >= 0.95
    assert final < 0.1 * losses[0]


def test_state_dict_round_trip_gives_the_same_next_step():
    g = torch.Generator().manual_seed(9)
    w1 = random_binary((20, 3), g)
    opt1 = KBop([w1], lr=0.7, beta=0.8)
    for _ in range(3):
        w1.grad = torch.randn(20, 3, generator=g, dtype=torch.float64)
        opt1.step()
    w2 = torch.nn.Parameter(w1.detach().clone())
    opt2 = KBop([w2], lr=0.7, beta=0.8)
    opt2.load_state_dict(copy.deepcopy(opt1.state_dict()))   # state_dict() shares v
    grad = torch.randn(20, 3, generator=g, dtype=torch.float64)
    w1.grad, w2.grad = grad.clone(), grad.clone()
    opt1.step()
    opt2.step()
    assert torch.equal(w1, w2)


@pytest.mark.parametrize("kwargs,message", [
    (dict(lr=0.0), "lr.*0.0"), (dict(lr=-0.1), "lr.*-0.1"), (dict(lr=1.5), "lr.*1.5"), (dict(lr=math.nan), "lr.*nan"),
    (dict(beta=1.0), "beta.*1.0"), (dict(beta=-0.2), "beta.*-0.2"),
])
def test_bad_hyper_parameters_are_refused(kwargs, message):
    w = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(ValueError, match=message):
        KBop([w], **kwargs)


def test_bad_param_group_rigidity_and_kappa_are_refused():
    opt = KBop([torch.nn.Parameter(torch.ones(3))])
    with pytest.raises(ValueError, match="beta.*1.5"):
        opt.add_param_group(dict(params=[torch.nn.Parameter(torch.ones(2))], beta=1.5))
    with pytest.raises(TypeError, match="rigidity"):
        KBop([torch.nn.Parameter(torch.ones(3))], rigidity=2.0)
    w = torch.nn.Parameter(torch.ones(3))
    opt = KBop([w], rigidity=lambda lr: math.nan)
    w.grad = torch.ones(3)
    with pytest.raises(ValueError, match="nan"):
        opt.step()


@pytest.mark.parametrize("values,shown", [([1.0, 0.5, -1.0], "0.5"), ([1.0, -1.0, 0.0], "0.0")])
def test_non_binary_parameters_are_refused_with_how_to_initialise(values, shown):
    w = torch.nn.Parameter(torch.tensor(values))
    opt = KBop([w])
    w.grad = torch.ones(3)
    with pytest.raises(ValueError, match=rf"{shown}.*binarize_"):
        opt.step()
    assert torch.equal(w.detach(), torch.tensor(values))          # refused before anything moved


@pytest.mark.parametrize("fan_in", [1, 2, 3, 27, 576, 4608])
def test_bnn_init_scale_is_kaiming_for_binary_weights(fan_in):
    assert bnn_init_scale(fan_in) == pytest.approx(math.sqrt(2 / fan_in), rel=1e-15)


@pytest.mark.parametrize("fan_in", [0, -3])
def test_bnn_init_scale_refuses_fan_in_below_one(fan_in):
    with pytest.raises(ValueError, match=str(fan_in)):
        bnn_init_scale(fan_in)
