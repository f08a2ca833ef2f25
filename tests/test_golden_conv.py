"""The golden model's convolution arithmetic (issue 4 groundwork) against torch in float64: padding with
-1 / +1 (bits and first-layer pixels), strides, non-square kernels, BatchNorm with γ of both signs and
zero, and max-pooling after the sign (OR) or before the BatchNorm (OR, or AND where γ < 0)."""

import numpy as np
import pytest
import torch
from torch import nn

from bnn2hw.golden.conv import conv_accumulators, pad_code, pool_bits, windows
from bnn2hw.ir import BITS, PIXELS, BatchNorm, Dense
from bnn2hw.nn import BinaryConv2d, InputQuant, hard_sign
from bnn2hw.passes.fold_batchnorm import _fold_threshold


def random_case(seed):
    rng = np.random.default_rng(seed)
    case = dict(pixels=bool(rng.integers(2)), bits=int(rng.choice([1, 4, 8])), c_in=int(rng.integers(1, 7)),
                c_out=int(rng.integers(1, 9)), h=int(rng.integers(3, 10)), w=int(rng.integers(3, 10)),
                stride=int(rng.integers(1, 3)), pad=(int(rng.integers(0, 4)), int(rng.integers(0, 4))),
                pad_value=float(rng.choice([-1.0, 1.0])), bias=bool(rng.integers(2)),
                pool=str(rng.choice(["none", "before_bn", "after_sign"])), pool_k=int(rng.integers(1, 4)))
    case["kernel"] = (int(rng.integers(1, min(7, case["h"] + 2 * case["pad"][0]) + 1)),
                      int(rng.integers(1, min(7, case["w"] + 2 * case["pad"][1]) + 1)))
    return case, rng


def torch_block(case, rng):
    torch.manual_seed(int(rng.integers(1 << 30)))
    conv = BinaryConv2d(case["c_in"], case["c_out"], case["kernel"], stride=case["stride"], padding=case["pad"],
                        pad_value=case["pad_value"], bias=case["bias"])
    bn = nn.BatchNorm2d(case["c_out"])
    with torch.no_grad():
        conv.weight[..., 0, 0] = 0.0  # sign(0) = +1 somewhere in every filter
        gamma = torch.from_numpy(rng.normal(size=case["c_out"]))
        gamma[rng.random(case["c_out"]) < 0.2] = 0.0
        bn.weight.copy_(gamma)
        bn.bias.copy_(torch.from_numpy(rng.normal(size=case["c_out"])))
        bn.running_mean.copy_(torch.from_numpy(rng.normal(scale=2.0, size=case["c_out"])))
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.2, 4.0, size=case["c_out"])))
    return conv.double().eval(), bn.double().eval()


def out_bits_torch(case, conv, bn, x):
    """torch: conv → [pool] → BN → sign → [pool], as bits (n, H, W, C)."""
    pool = nn.MaxPool2d(case["pool_k"])
    with torch.no_grad():
        y = conv(x)
        if case["pool"] == "before_bn":
            y = pool(y)
        y = hard_sign(bn(y))
        if case["pool"] == "after_sign":
            y = pool(y)
    return (y > 0).permute(0, 2, 3, 1).numpy().astype(np.uint8)


@pytest.mark.parametrize("seed", range(40))
def test_golden_convolution_equals_torch(seed):
    case, rng = random_case(seed)
    conv, bn = torch_block(case, rng)
    n = 6
    if case["pixels"]:
        raw = rng.integers(0, 1 << case["bits"], size=(n, case["c_in"], case["h"], case["w"]))
        x = InputQuant(case["bits"])(torch.from_numpy(raw).double())
        codes, kind = raw.transpose(0, 2, 3, 1), PIXELS
    else:
        x = hard_sign(torch.from_numpy(rng.normal(size=(n, case["c_in"], case["h"], case["w"]))))
        codes, kind = (x > 0).numpy().astype(np.uint8).transpose(0, 2, 3, 1), BITS
    oh = (case["h"] + 2 * case["pad"][0] - case["kernel"][0]) // case["stride"] + 1
    ow = (case["w"] + 2 * case["pad"][1] - case["kernel"][1]) // case["stride"] + 1
    if case["pool"] != "none" and min(oh, ow) < case["pool_k"]:
        case["pool"] = "none"
    expected = out_bits_torch(case, conv, bn, x)

    weight = hard_sign(conv.weight.detach()).permute(0, 2, 3, 1).reshape(case["c_out"], -1).numpy()
    dense = Dense("conv0", 1, weight.astype(np.int8), None if conv.bias is None else conv.bias.detach().numpy())
    bn_node = BatchNorm("bn0", 2, *(t.detach().numpy() for t in (bn.weight, bn.bias, bn.running_mean,
                                                                  bn.running_var)), bn.eps)
    folded = _fold_threshold(dense, bn_node, kind, case["bits"])
    code = pad_code(case["pad_value"], case["pixels"], case["bits"])
    win = windows(codes, case["kernel"], (case["stride"],) * 2, case["pad"], code)
    acc = conv_accumulators(folded, win, case["bits"])
    bits = (acc >= folded.thresholds[None, None, :]).astype(np.uint8).reshape(n, oh, ow, case["c_out"])
    if case["pool"] != "none":
        and_mask = folded.flipped if case["pool"] == "before_bn" else np.zeros(case["c_out"], bool)
        bits = pool_bits(bits, (case["pool_k"],) * 2, (case["pool_k"],) * 2, and_mask)
    assert bits.shape == expected.shape
    assert np.array_equal(bits, expected), f"{case}: {np.argwhere(bits != expected)[:5]}"


def test_window_order_matches_torch_weight_layout():
    """windows × permuted weights equals torch's convolution of ±1 values, position by position."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2, size=(2, 5, 6, 3)).astype(np.uint8)
    w = np.where(rng.random((4, 3, 3, 2)) < 0.5, -1.0, 1.0)
    win = windows(x, (3, 2), (2, 1), (1, 1), 0)
    ours = (2.0 * win - 1) @ w.transpose(0, 2, 3, 1).reshape(4, -1).T
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(torch.from_numpy(2.0 * x - 1).permute(0, 3, 1, 2),
                                                             (1, 1, 1, 1), value=-1.0), torch.from_numpy(w),
                                     stride=(2, 1))
    assert np.array_equal(ours, ref.permute(0, 2, 3, 1).reshape(2, -1, 4).numpy())


def test_zero_padding_has_no_exact_code():
    with pytest.raises(ValueError, match="only -1 and \\+1"):
        pad_code(0.0, False, 1)
