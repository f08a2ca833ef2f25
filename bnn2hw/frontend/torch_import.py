"""torch ``nn.Sequential`` → IR, after a support check that names every unsupported layer at once.

Supported shape (docs/model_format.md):
``InputQuant → (BinaryConv2d → [MaxPool2d] → [BatchNorm2d] → BinaryAct → [MaxPool2d])* → [Flatten]
→ (BinaryLinear → [BatchNorm1d] → BinaryAct)* → BinaryLinear → [BatchNorm1d]`` (one MaxPool2d per block).
Convolution weights and the first dense layer after them are reordered to channel-last (H, W, C) windows
and features, the order the hardware streams pixels in.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import UnsupportedModelError
from ..golden.conv import pad_code
from ..io import UnsupportedModule
from ..ir import SIGN_GRID, BatchNorm, Conv, Dense, Graph, Grid, InputSpec, MaxPool, Quant, Sign, Window, validate
from ..nn import BinaryAct, BinaryConv2d, BinaryLinear, InputQuant, QuantAct, quantize_weight

__all__ = ["import_model", "SUPPORTED_SHAPE"]

SUPPORTED_SHAPE = ("InputQuant → (BinaryConv2d → [MaxPool2d] → [BatchNorm2d] → BinaryAct|QuantAct → [MaxPool2d])* "
                   "→ [Flatten] → (BinaryLinear → [BatchNorm1d] → BinaryAct|QuantAct)* → BinaryLinear → [BatchNorm1d]")

_HINTS = {
    "Linear": "use bnn2hw.nn.BinaryLinear",
    "ReLU": "use bnn2hw.nn.BinaryAct",
    "Hardtanh": "use bnn2hw.nn.BinaryAct",
    "Tanh": "use bnn2hw.nn.BinaryAct",
    "Sigmoid": "use bnn2hw.nn.BinaryAct",
    "Dropout": "remove it before saving (it does nothing in eval mode)",
    "Conv2d": "use bnn2hw.nn.BinaryConv2d (binary weights, pad value -1 by default)",
    "ResidualBlock": "residual blocks train (bnn2hw train --residual) but cannot be compiled yet; "
                     "train without --residual for hardware",
}


def _describe(module: nn.Module) -> tuple[str, str]:
    if isinstance(module, UnsupportedModule):
        short = module.class_name.rsplit(".", 1)[-1]
        return short, f"{short} ({module.class_name})"
    short = type(module).__name__
    return short, short


def _unsupported(position: int, module: nn.Module) -> tuple[int, str]:
    short, text = _describe(module)
    hint = _HINTS.get(short, f"supported layers are {SUPPORTED_SHAPE}")
    return position, f"{text} is not supported ({hint})"


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, InputQuant):
        return "quant"
    if isinstance(module, BinaryLinear):
        return "dense"
    if isinstance(module, BinaryConv2d):
        return "conv"
    if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d):
        return "bn"
    if type(module) is nn.MaxPool2d:
        return "pool"
    if isinstance(module, (BinaryAct, QuantAct)):
        return "act"
    if type(module) is nn.Flatten:
        return "flatten"
    return None


def import_model(model: nn.Module, input_shape) -> Graph:
    """Translate ``model`` into an IR graph; raise :class:`UnsupportedModelError` listing all problems."""
    if not isinstance(model, nn.Sequential):
        raise UnsupportedModelError([(None, f"the model is a {type(model).__name__}, not an nn.Sequential")],
                                    hint=f"build it as nn.Sequential({SUPPORTED_SHAPE})")
    modules = list(model)
    problems: list[tuple[int | None, str]] = []
    kinds = [_kind(m) for m in modules]
    for pos, (m, k) in enumerate(zip(modules, kinds)):
        if k is None:
            problems.append(_unsupported(pos, m))
    if problems:
        raise UnsupportedModelError(problems, hint=f"bnn2hw compiles {SUPPORTED_SHAPE}")

    input_shape = tuple(int(d) for d in input_shape)
    if not kinds or kinds[0] != "quant":
        problems.append((0, "the first layer must be bnn2hw.nn.InputQuant(bits), which states the pixel width"))
    bits = modules[0].bits if kinds and kinds[0] == "quant" else 8
    nodes: list = []
    width = int(np.prod(input_shape)) if input_shape else 0
    image = None           # (H, W, C) while the data is still an image (convolutional part)
    if len(input_shape) == 3 and "conv" in kinds:
        image = (input_shape[1], input_shape[2], input_shape[0])
    chw_flatten = None     # (C, H, W) of the image a Flatten turned into features, for the next dense layer
    state = "start"        # what the next module may be, as a small grammar
    layer_count = 0
    block_pooled = False
    act_grid = SIGN_GRID   # the grid of the activation feeding the next layer
    read_all = False
    for pos, (m, k) in enumerate(zip(modules, kinds)):
        if k == "quant":
            if pos != 0:
                problems.append((pos, "InputQuant may only be the first layer"))
            continue
        if k == "flatten":
            if (m.start_dim, m.end_dim) != (1, -1):
                problems.append((pos, f"Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) is not supported "
                                      "(use nn.Flatten() with its defaults)"))
            elif image is not None and state in ("after_act", "after_pool_act"):
                h, w, c = image
                chw_flatten, image, width = (c, h, w), None, h * w * c
                state = "start"    # the dense part begins as if the features were the input
            elif state != "start" or layer_count:
                problems.append((pos, "Flatten is only supported at the start or after a convolution block"))
            continue
        if k == "conv":
            if image is None:
                problems.append((pos, "BinaryConv2d needs an image: the model input shape must be (C, H, W) and no "
                                      "Flatten or BinaryLinear may come before it"))
                break
            if state not in ("start", "after_act", "after_pool_act"):
                problems.append((pos, "BinaryConv2d follows another layer without a BinaryAct between them"))
            h, w, c = image
            if m.in_channels != c:
                problems.append((pos, f"BinaryConv2d expects {m.in_channels} channels but receives {c}"))
            if tuple(m.dilation) != (1, 1) or m.groups != 1:
                problems.append((pos, f"BinaryConv2d with dilation={tuple(m.dilation)} groups={m.groups} is not "
                                      "supported (use dilation 1 and groups 1)"))
            first = layer_count == 0
            for what, value, lo, hi in (("kernel_size", m.kernel_size, 1, 7), ("stride", m.stride, 1, 4),
                                        ("padding", m.padding, 0, 3)):
                if not all(lo <= v <= hi for v in value):
                    problems.append((pos, f"BinaryConv2d {what}={tuple(value)} is outside what the sliding-window "
                                          f"unit builds ({lo}..{hi} per axis); retrain within that range"))
            if any(problem[0] == pos for problem in problems):
                break
            if m.pad_value == 0.0 and any(m.padding) and (first or act_grid.is_sign):
                problems.append((pos, "BinaryConv2d pads with 0, which one bit cannot represent exactly; retrain "
                                      "with pad_value=-1 (the default) or +1, or with padding=0"))
            code = _pad_code(m.pad_value, first, bits, act_grid)
            if code is None and not any(m.padding):
                code = 0          # nothing is padded: the code is never used
            if code is None:
                levels = ", ".join(f"{v:g}" for v in act_grid.values()[:8]) + (", …" if act_grid.levels > 8 else "")
                problems.append((pos, f"BinaryConv2d pads with {m.pad_value:g}, which is not a level of the "
                                      f"activation before it ({levels}); retrain with pad_value set to one of "
                                      "them (-1, +1 or 0), or with padding=0"))
                break
            window = Window((h, w, c), tuple(m.kernel_size), tuple(m.stride), tuple(m.padding), code)
            oh, ow = window.out_hw
            if oh < 1 or ow < 1:
                problems.append((pos, f"BinaryConv2d kernel {tuple(m.kernel_size)} does not fit the {h}×{w} image "
                                      f"padded by {tuple(m.padding)}"))
                break
            with torch.no_grad():
                wt = _codes(m).permute(0, 2, 3, 1).reshape(m.out_channels, -1)
                b = None if m.bias is None else m.bias.detach().double().numpy()
            nodes.append(Conv(name=f"conv{layer_count}", position=pos, weight=wt.numpy().astype(np.int8), bias=b,
                              weight_precision=m.weight_bits, scale=_scale(m), window=window))
            layer_count += 1
            image, width = (oh, ow, m.out_channels), oh * ow * m.out_channels
            state, block_pooled = "after_conv", False
            continue
        if k == "pool":
            if image is None or state not in ("after_conv", "after_bn", "after_act"):
                problems.append((pos, "MaxPool2d must follow a BinaryConv2d, its BatchNorm2d or its BinaryAct"))
                continue
            if block_pooled:
                problems.append((pos, "only one MaxPool2d per convolution block is supported"))
            ks, st = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
            if _pair(m.padding) != (0, 0) or _pair(m.dilation) != (1, 1) or m.ceil_mode:
                problems.append((pos, "MaxPool2d with padding, dilation or ceil_mode is not supported (use "
                                      "nn.MaxPool2d(kernel_size, stride))"))
            if ks[0] != ks[1] or st[0] != st[1] or not (1 <= ks[0] <= 4 and 1 <= st[0] <= 4):
                problems.append((pos, f"MaxPool2d(kernel_size={ks}, stride={st}) is not supported; the max-pool "
                                      "unit takes square windows and strides of 1..4"))
            pool = MaxPool(name=f"pool{layer_count - 1}", position=pos, in_shape=image, kernel=ks, stride=st,
                           before_bn=state == "after_conv")
            oh, ow = pool.out_hw
            if oh < 1 or ow < 1:
                problems.append((pos, f"MaxPool2d window {ks} does not fit the {image[0]}×{image[1]} image"))
                break
            nodes.append(pool)
            image, width = (oh, ow, image[2]), oh * ow * image[2]
            block_pooled = True
            state = "after_pool_act" if state == "after_act" else state
            continue
        if k == "dense":
            if image is not None:
                problems.append((pos, "BinaryLinear after a convolution needs an nn.Flatten() before it"))
                break
            if state in ("after_dense", "after_bn", "after_conv"):
                problems.append((pos, "BinaryLinear follows another linear layer without a BinaryAct between them"))
            if m.in_features != width:
                problems.append((pos, f"BinaryLinear expects {m.in_features} inputs but receives {width}"))
            with torch.no_grad():
                w = _codes(m)
                if chw_flatten is not None and m.in_features == width:  # torch flattens (C, H, W); we stream HWC
                    w = w.reshape(m.out_features, *chw_flatten).permute(0, 2, 3, 1).reshape(m.out_features, -1)
                w = w.numpy().astype(np.int8)
                b = None if m.bias is None else m.bias.detach().double().numpy()
            chw_flatten = None
            nodes.append(Dense(name=f"dense{layer_count}", position=pos, weight=w, bias=b,
                               weight_precision=m.weight_bits, scale=_scale(m)))
            layer_count += 1
            width = m.out_features
            state = "after_dense"
        elif k == "bn":
            conv_part = image is not None
            expected = nn.BatchNorm2d if conv_part else nn.BatchNorm1d
            if type(m) is not expected:
                what = "an image" if conv_part else "a feature vector"
                problems.append((pos, f"{type(m).__name__} cannot normalize {what} here; use nn.{expected.__name__}"))
            elif state != ("after_conv" if conv_part else "after_dense"):
                follows = "a BinaryConv2d (or its MaxPool2d)" if conv_part else "a BinaryLinear"
                problems.append((pos, f"{type(m).__name__} must directly follow {follows}"))
            channels = image[2] if conv_part else width
            if m.num_features != channels:
                problems.append((pos, f"{type(m).__name__} has {m.num_features} channels but receives {channels}"))
            if not m.track_running_stats or m.running_mean is None:
                problems.append((pos, f"{type(m).__name__} has no running statistics (track_running_stats=False); "
                                      "retrain with track_running_stats=True"))
                continue
            with torch.no_grad():
                gamma = m.weight.detach().double().numpy() if m.affine else np.ones(m.num_features)
                beta = m.bias.detach().double().numpy() if m.affine else np.zeros(m.num_features)
                nodes.append(BatchNorm(name=f"bn{layer_count - 1}", position=pos, gamma=gamma, beta=beta,
                                       mean=m.running_mean.detach().double().numpy(),
                                       var=m.running_var.detach().double().numpy(), eps=float(m.eps)))
            state = "after_bn"
        elif k == "act":
            if state not in ("after_dense", "after_bn", "after_conv"):
                problems.append((pos, "BinaryAct must follow a BinaryLinear or BinaryConv2d (optionally with its "
                                      "BatchNorm)"))
            if isinstance(m, QuantAct) and Grid(*m.grid) != SIGN_GRID:
                nodes.append(Quant(name=f"quant{layer_count - 1}", position=pos, grid=Grid(*m.grid), bits=m.bits,
                                   mode=m.mode, scale=m.scale, narrow=m.narrow))
                act_grid = nodes[-1].grid
            else:     # QuantAct(1) on the symmetric grid with scale 1 is the hard sign, exactly BinaryAct
                nodes.append(Sign(name=f"sign{layer_count - 1}", position=pos))
                act_grid = SIGN_GRID
            state = "after_act"
    else:
        read_all = True        # no problem stopped the walk early: the last module read is the last one
    if layer_count == 0 and not problems:
        problems.append((None, "the model has no BinaryLinear layer"))
    elif image is not None and not problems:
        problems.append((len(modules) - 1, "the network ends in a convolution block; add nn.Flatten() and a "
                                            "BinaryLinear that gives class scores"))
    elif state in ("after_act", "after_pool_act") and read_all:
        last = next(type(m).__name__ for m in reversed(modules) if isinstance(m, (BinaryAct, QuantAct)))
        problems.append((len(modules) - 1, f"the last layer is a {last}, but the network must end with a "
                                            "BinaryLinear (optionally with BatchNorm1d) that gives class scores"))
    if problems:
        raise UnsupportedModelError(problems, hint=f"bnn2hw compiles {SUPPORTED_SHAPE}")
    return validate(Graph(input=InputSpec(shape=input_shape, bits=bits), nodes=tuple(nodes)))


def _codes(m) -> torch.Tensor:
    """The layer's integer weight codes in float64 (±1 for binary layers)."""
    return quantize_weight(m.weight.detach().double(), m.weight_bits)


def _scale(m) -> np.ndarray | None:
    scale = m.channel_scale()
    return None if scale is None else scale.detach().double().numpy()


def _pad_code(pad_value: float, first: bool, bits: int, act_grid: Grid) -> int | None:
    """The input code a padded tap holds: a pixel or bit code for the first layer and after a sign,
    else the code of the level equal to ``pad_value`` (None if no level is)."""
    if first or act_grid.is_sign:
        return pad_code(pad_value, first, bits) if pad_value != 0.0 else 0
    return act_grid.code_of(pad_value)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value), int(value))
