"""torch ``nn.Sequential`` → IR, after a support check that names every unsupported layer at once.

Supported shape (docs/model_format.md):
``InputQuant → [Flatten] → (BinaryLinear → [BatchNorm1d] → BinaryAct)* → BinaryLinear → [BatchNorm1d]``
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import UnsupportedModelError
from ..io import UnsupportedModule
from ..ir import BatchNorm, Dense, Graph, InputSpec, Sign, validate
from ..nn import BinaryAct, BinaryLinear, InputQuant, hard_sign

__all__ = ["import_model", "SUPPORTED_SHAPE"]

SUPPORTED_SHAPE = ("InputQuant → [Flatten] → (BinaryLinear → [BatchNorm1d] → BinaryAct)* "
                   "→ BinaryLinear → [BatchNorm1d]")

_HINTS = {
    "Linear": "use bnn2hw.nn.BinaryLinear",
    "ReLU": "use bnn2hw.nn.BinaryAct",
    "Hardtanh": "use bnn2hw.nn.BinaryAct",
    "Tanh": "use bnn2hw.nn.BinaryAct",
    "Sigmoid": "use bnn2hw.nn.BinaryAct",
    "Dropout": "remove it before saving (it does nothing in eval mode)",
    "Conv2d": "use bnn2hw.nn.BinaryConv2d to train; the compiler does not take convolutions yet",
}
_CONV_LAYERS = ("BinaryConv2d", "BatchNorm2d", "MaxPool2d")
_CONV_HINT = ("convolutional models train and save with bnn2hw, but this version compiles only dense models; "
              "the convolution path of the compiler is in progress")


def _describe(module: nn.Module) -> tuple[str, str]:
    if isinstance(module, UnsupportedModule):
        short = module.class_name.rsplit(".", 1)[-1]
        return short, f"{short} ({module.class_name})"
    short = type(module).__name__
    return short, short


def _unsupported(position: int, module: nn.Module) -> tuple[int, str]:
    short, text = _describe(module)
    hint = _CONV_HINT if short in _CONV_LAYERS else _HINTS.get(short, f"supported layers are {SUPPORTED_SHAPE}")
    return position, f"{text} is not supported ({hint})"


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, InputQuant):
        return "quant"
    if isinstance(module, BinaryLinear):
        return "dense"
    if type(module) is nn.BatchNorm1d:
        return "bn"
    if isinstance(module, BinaryAct):
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
    nodes: list = []
    width = int(np.prod(input_shape)) if input_shape else 0
    state = "start"     # what the next module may be, as a small grammar
    dense_count = 0
    for pos, (m, k) in enumerate(zip(modules, kinds)):
        if k == "quant":
            if pos != 0:
                problems.append((pos, "InputQuant may only be the first layer"))
            continue
        if k == "flatten":
            if dense_count or state != "start":
                problems.append((pos, "Flatten is only supported before the first BinaryLinear"))
            elif (m.start_dim, m.end_dim) != (1, -1):
                problems.append((pos, f"Flatten(start_dim={m.start_dim}, end_dim={m.end_dim}) is not supported "
                                      "(use nn.Flatten() with its defaults)"))
            continue
        if k == "dense":
            if state == "after_dense" or state == "after_bn":
                problems.append((pos, "BinaryLinear follows another linear layer without a BinaryAct between them"))
            if m.in_features != width:
                problems.append((pos, f"BinaryLinear expects {m.in_features} inputs but receives {width}"))
            with torch.no_grad():
                w = hard_sign(m.weight.detach().double()).numpy().astype(np.int8)
                b = None if m.bias is None else m.bias.detach().double().numpy()
            nodes.append(Dense(name=f"dense{dense_count}", position=pos, weight=w, bias=b))
            dense_count += 1
            width = m.out_features
            state = "after_dense"
        elif k == "bn":
            if state != "after_dense":
                problems.append((pos, "BatchNorm1d must directly follow a BinaryLinear"))
            if m.num_features != width:
                problems.append((pos, f"BatchNorm1d has {m.num_features} channels but receives {width}"))
            if not m.track_running_stats or m.running_mean is None:
                problems.append((pos, "BatchNorm1d has no running statistics (track_running_stats=False); "
                                      "retrain with track_running_stats=True"))
                continue
            with torch.no_grad():
                gamma = m.weight.detach().double().numpy() if m.affine else np.ones(m.num_features)
                beta = m.bias.detach().double().numpy() if m.affine else np.zeros(m.num_features)
                nodes.append(BatchNorm(name=f"bn{dense_count - 1}", position=pos, gamma=gamma, beta=beta,
                                       mean=m.running_mean.detach().double().numpy(),
                                       var=m.running_var.detach().double().numpy(), eps=float(m.eps)))
            state = "after_bn"
        elif k == "act":
            if state not in ("after_dense", "after_bn"):
                problems.append((pos, "BinaryAct must follow a BinaryLinear (optionally with BatchNorm1d)"))
            nodes.append(Sign(name=f"sign{dense_count - 1}", position=pos))
            state = "after_act"
    if dense_count == 0:
        problems.append((None, "the model has no BinaryLinear layer"))
    elif state == "after_act":
        problems.append((len(modules) - 1, "the last layer is a BinaryAct, but the network must end with a "
                                            "BinaryLinear (optionally with BatchNorm1d) that gives class scores"))
    if problems:
        raise UnsupportedModelError(problems, hint=f"bnn2hw compiles {SUPPORTED_SHAPE}")
    bits = modules[0].bits
    return validate(Graph(input=InputSpec(shape=input_shape, bits=bits), nodes=tuple(nodes)))
