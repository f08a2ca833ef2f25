"""The spec's §8 checklist for the training primitives (items 1–3): sign(0), the clipped path's
gradient window, StoMPP at f = 0 and f = 1, frozen latents under an optimizer, mask fractions,
soft refresh, and the Bop rule against Larq's expression."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from bnn2hw.nn import hard_sign
from bnn2hw.train import Bop, FreezeSchedule, FrozenLatentGuard, clip_identity, grow_mask, soft_refresh, stompp_q
from bnn2hw.train.quantize import SURROGATES, surrogate_sign


def test_hard_sign_of_zero_is_plus_one():
    assert torch.equal(hard_sign(torch.tensor([-0.0, 0.0, -1e-30, 2.0])), torch.tensor([1.0, 1.0, -1.0, 1.0]))


def test_clip_identity_gradient_window_is_inclusive():
    x = torch.tensor([-1.0, -0.5, 0.0, 1.0, 1.5], requires_grad=True)
    clip_identity(x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0]))


def tiny_net(w1, w2, x, frozen_value, mode):
    """Two binarized layers: weights and the hidden activation go through stompp_q with all masks = value."""
    m1 = torch.full_like(w1, frozen_value, dtype=torch.bool)
    m2 = torch.full_like(w2, frozen_value, dtype=torch.bool)
    h = F.linear(x, stompp_q(w1, m1, mode))
    h = stompp_q(h, torch.full_like(h, frozen_value, dtype=torch.bool), mode)
    return F.linear(h, stompp_q(w2, m2, mode))


def make_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    w1 = (torch.rand(6, 5, generator=g) * 2.4 - 1.2).requires_grad_()
    w2 = (torch.rand(3, 6, generator=g) * 2.4 - 1.2).requires_grad_()
    x = torch.rand(4, 5, generator=g) * 2 - 1
    return w1, w2, x


def test_f_zero_is_the_clipped_network():
    w1, w2, x = make_params()
    out = tiny_net(w1, w2, x, False, "stompp")
    ref = F.linear(F.linear(x, w1.clamp(-1, 1)).clamp(-1, 1), w2.clamp(-1, 1))
    assert torch.allclose(out, ref)


@pytest.mark.parametrize("mode", ["stompp", "stompp+sg"])
def test_f_one_is_the_deploy_network(mode):
    w1, w2, x = make_params()
    out = tiny_net(w1, w2, x, True, mode)
    deploy = F.linear(hard_sign(F.linear(x, hard_sign(w1))), hard_sign(w2))
    assert torch.equal(out, deploy)


def test_f_one_stompp_gives_binary_latents_zero_gradient_and_sg_does_not():
    probe = torch.randn(4, 3, generator=torch.Generator().manual_seed(9))    # a loss without symmetries
    w1, w2, x = make_params()
    (tiny_net(w1, w2, x, True, "stompp") * probe).sum().backward()
    assert w1.grad is None or torch.count_nonzero(w1.grad) == 0
    assert w2.grad is None or torch.count_nonzero(w2.grad) == 0
    w1, w2, x = make_params()
    (tiny_net(w1, w2, x, True, "stompp+sg") * probe).sum().backward()
    inside = w2.detach().abs() <= 1                # ste_clip passes gradient where |w| <= 1
    assert torch.count_nonzero(w2.grad[inside]) > 0 and torch.count_nonzero(w2.grad[~inside]) == 0


def test_ste_baseline_ignores_masks_and_uses_the_surrogate():
    w1, w2, x = make_params()
    out = tiny_net(w1, w2, x, False, "ste")
    assert torch.equal(out, F.linear(hard_sign(F.linear(x, hard_sign(w1))), hard_sign(w2)))
    out.sum().backward()
    assert torch.count_nonzero(w1.grad) > 0


@pytest.mark.parametrize("name", SURROGATES)
def test_surrogates_keep_the_exact_forward(name):
    x = torch.linspace(-2, 2, 41, requires_grad=True)
    y = surrogate_sign(x, name, progress=0.5)
    assert torch.equal(y, hard_sign(x.detach()))
    y.sum().backward()
    assert torch.all(torch.isfinite(x.grad)) and torch.count_nonzero(x.grad) > 0


def test_frozen_latents_do_not_move_under_adam_with_weight_decay():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.rand(8, 8) * 2 - 1)
    mask = torch.rand(8, 8) < 0.5
    opt = torch.optim.AdamW([w], lr=0.1, weight_decay=0.5)
    before = w.detach().clone()
    for _ in range(5):
        opt.zero_grad()
        (stompp_q(w, mask, "stompp") * torch.randn(8, 8)).sum().backward()
        with FrozenLatentGuard([(w, mask)]):
            opt.step()
    assert torch.equal(w.detach()[mask], before[mask])
    assert not torch.equal(w.detach()[~mask], before[~mask])


@pytest.mark.parametrize("granularity", ["element", "out_channel"])
@pytest.mark.parametrize("priority", ["uniform", "error"])
def test_mask_fraction_follows_the_schedule_within_one_unit(granularity, priority):
    sched = FreezeSchedule(3, ramp="cosine")
    g = torch.Generator().manual_seed(1)
    latent = torch.rand(37, 11) * 2 - 1
    mask = torch.zeros(37, 11, dtype=torch.bool)
    units = 37 * 11 if granularity == "element" else 37
    for step in range(101):
        u = step / 100
        f = sched.fraction(1, u)
        new = grow_mask(mask, f, g, latent=latent, priority=priority, granularity=granularity)
        assert torch.all(new >= mask)                              # growth never unfreezes
        frozen_units = int(new.sum()) if granularity == "element" else int(new[:, 0].sum())
        assert abs(frozen_units - f * units) <= 1
        mask = new
    assert bool(mask.all())


def test_error_priority_freezes_saturated_latents_first():
    g = torch.Generator().manual_seed(2)
    latent = torch.cat([torch.full((500,), 0.999), torch.zeros(500)])
    mask = grow_mask(torch.zeros(1000, dtype=torch.bool), 0.1, g, latent=latent, priority="error")
    assert int(mask[:500].sum()) > 90


@pytest.mark.parametrize("rho", [0.0, 0.1, 0.5, 1.0])
def test_soft_refresh_keeps_the_count_and_moves_entries(rho):
    g = torch.Generator().manual_seed(3)
    mask = torch.zeros(20, 20, dtype=torch.bool)
    mask = grow_mask(mask, 0.3, g)
    refreshed = soft_refresh(mask, rho, g)
    assert int(refreshed.sum()) == int(mask.sum())
    assert int((refreshed & ~mask).sum()) == min(round(rho * int(mask.sum())), int((~mask).sum()))


def test_schedule_windows_tile_and_orders():
    sched = FreezeSchedule(4, start=0.0, end=0.8, overlap=0.0)
    windows = [v for k in range(4) for v in sched.window(k)]
    assert windows == pytest.approx([0.0, 0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8])
    assert sched.fraction(0, 0.2) == 1.0 and sched.fraction(1, 0.1) == 0.0
    rev = FreezeSchedule(4, start=0.0, end=0.8, order="reverse")
    assert rev.window(3) == pytest.approx((0.0, 0.2))
    glob = FreezeSchedule(4, scope="global", end=0.5)
    assert all(glob.window(k) == (0.0, 0.5) for k in range(4))
    over = FreezeSchedule(3, start=0.0, end=1.0, overlap=0.5)
    assert over.window(2)[1] == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(start=0.9, end=0.5), "start < end"), (dict(overlap=1.0), "overlap"),
    (dict(order="sideways"), "unknown order"), (dict(ramp="cubic"), "unknown ramp"),
])
def test_impossible_schedules_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FreezeSchedule(3, **kwargs)


def larq_bop_step(w, m, g, gamma, tau):
    """Larq's expression, transcribed: var_t = sign(-sign(var*m_t - threshold) * var), with sign(0) = +1."""
    m_t = (1 - gamma) * m + gamma * g
    inner = -np.sign(w * m_t - tau) * w
    return np.where(inner >= 0, 1.0, -1.0), m_t


def test_bop_matches_larq_except_at_the_tie():
    rng = np.random.default_rng(4)
    w0 = np.where(rng.random(4000) < 0.5, -1.0, 1.0)
    g = rng.normal(size=4000)
    m0 = rng.normal(size=4000) * 1e-3
    gamma, tau = 1e-2, 1e-3
    w = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = Bop([w], gamma=gamma, tau=tau)
    opt.state[w]["m"] = torch.from_numpy(m0.copy())
    w.grad = torch.from_numpy(g.copy())
    opt.step()
    expected, m_t = larq_bop_step(w0, m0, g, gamma, tau)
    not_tie = w0 * m_t != tau
    assert np.array_equal(w.detach().numpy()[not_tie], expected[not_tie])
    assert set(np.unique(w.detach().numpy())) <= {-1.0, 1.0}


def test_bop_tie_keeps_the_weight():
    w = torch.nn.Parameter(torch.tensor([-1.0, 1.0]))
    opt = Bop([w], gamma=1.0, tau=0.5)
    w.grad = torch.tensor([-0.5, 0.5])             # m = g, so w·m = 0.5 = τ exactly for both
    opt.step()
    assert torch.equal(w.detach(), torch.tensor([-1.0, 1.0]))


def test_cubic_spacing_windows_tile_the_range_and_grow():
    s = FreezeSchedule(5, start=0.1, end=0.9, spacing="cubic")
    windows = [s.window(k) for k in range(5)]
    assert windows[0][0] == pytest.approx(0.1) and windows[-1][1] == pytest.approx(0.9)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(windows, windows[1:]))
    lengths = [e - b for b, e in windows]
    assert lengths == sorted(lengths) and lengths[0] < lengths[-1]
    for k, (b, e) in enumerate(windows):
        assert s.fraction(k, b) == 0.0 and s.fraction(k, e) == 1.0
        assert s.fraction(k, (b + e) / 2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="overlap 0"):
        FreezeSchedule(3, overlap=0.2, spacing="cubic")
