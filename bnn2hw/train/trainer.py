"""Training binary MLPs with StoMPP or the STE baseline under one matched recipe (spec §3, §4).

The recipe is identical for every method: architecture and initialisation, BatchNorm after every
hidden layer and none after the last (so the eval-mode outputs are the integer class scores the
hardware computes), Adam with a cosine learning-rate schedule, cross-entropy on the scores times a
constant, the same epochs, batches and seeds. Only the binarization rule differs (``method``).

A run is deterministic for a given seed and thread count (default one thread; every op used is
deterministic on the CPU): every random draw (initialisation, shuffling, masks) comes from generators
seeded by ``seed``. The result is a
:class:`bnn2hw.io.BinaryNet` in deploy form (every mask hard, BatchNorm statistics recalibrated on the
training set), ready for ``bnn2hw.save`` and ``bnn2hw compile``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data import TrainingData
from ..errors import TrainingConfigError
from ..io import BinaryNet
from ..nn import MAX_BITS, BinaryAct, BinaryConv2d, BinaryLinear, InputQuant, QuantAct, ResidualBlock
from .binarizer import BinarizationConfig, Binarizer, check_latent_free, find_units
from .distributed import World, average_gradients, current_world, shard, shard_loss, synced_batch_norm
from .quantize import MULTILEVEL_SURROGATES
from .schedule import FreezeSchedule
from .bop import Bop

__all__ = ["TrainConfig", "TrainResult", "train", "build_mlp", "build_cnn", "image_chw", "recalibrate_batchnorm", "deploy_accuracy",
           "OPTIMIZERS", "NETS", "activation", "per_layer_bits", "shortcut_quant", "check_residual", "default_lr",
           "DEFAULT_LR", "RESIDUALS"]

OPTIMIZERS = ("adam", "sgd", "bop", "kbop")
DTYPES = ("float32", "float64")
RESIDUALS = ("none", "real")
"""Named residual kinds; a number of bits 2..MAX_BITS is the third: a shortcut on that QuantAct grid."""
DEFAULT_LR = {"ste": 0.03, "stompp": 0.1, "stompp+sg": 0.1}
"""Adam's learning rate when none is given, per method (docs/training.md says how each was chosen)."""


def default_lr(method: str) -> float:
    return DEFAULT_LR.get(method, 0.03)


def check_residual(value) -> str | int:
    """``none``, ``real`` or a number of bits 2..MAX_BITS (also as text); a TrainingConfigError otherwise."""
    if isinstance(value, str) and value in RESIDUALS:
        return value
    bits = value
    if isinstance(value, str):
        try:
            bits = int(value)
        except ValueError:
            bits = None
    if isinstance(bits, int) and not isinstance(bits, bool) and 2 <= bits <= MAX_BITS:
        return bits
    raise TrainingConfigError(f"the residual kind (--residual) must be none, real (a real-valued Bi-Real shortcut) "
                              f"or a number of bits from 2 to {MAX_BITS} (a shortcut quantized to that grid), not "
                              f"{value!r}")


def shortcut_quant(bits: int) -> QuantAct:
    """The grid of a quantized shortcut: ``QuantAct(bits, mode="signed", scale=2**-(bits-2))``, the
    2**bits dyadic levels j/2**(bits-2) in [-2, 2) (a residual stream needs more range than a sign's input)."""
    return QuantAct(bits, mode="signed", scale=2.0 ** -(bits - 2))
LR_SCHEDULES = ("cosine", "constant")
NETS = ("bnn", "bwn")


def _bits_ok(b) -> bool:
    return isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= MAX_BITS


def _check_bits_setting(name: str, option: str, value) -> int | tuple[int, ...]:
    """An int, or a non-empty list/tuple of ints, each 1..MAX_BITS (a list becomes a tuple)."""
    if isinstance(value, (list, tuple)):
        if value and all(_bits_ok(b) for b in value):
            return tuple(value)
    elif _bits_ok(value):
        return value
    raise TrainingConfigError(f"the {name} ({option}) must be a whole number of bits from 1 to {MAX_BITS} or a list "
                              f"of them, one per layer, not {list(value) if isinstance(value, tuple) else value!r}")


def _as_tuple(value) -> tuple[int, ...]:
    return value if isinstance(value, tuple) else (value,)


def _bits_text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def per_layer_bits(value: int | tuple[int, ...], count: int, name: str, option: str, what: str) -> tuple[int, ...]:
    """``value`` (one width for every layer, or one per layer) as ``count`` widths; a list of the wrong
    length is a TrainingConfigError that says how many the model has (``what``: the layers counted)."""
    value = _check_bits_setting(name, option, value)
    if isinstance(value, int):
        return (value,) * count
    if len(value) != count:
        raise TrainingConfigError(f"the {name} ({option}) list has {len(value)} entries, but the model has {count} "
                                  f"{what}; give one number per layer or a single number for all of them")
    return value


def activation(bits: int) -> nn.Module:
    """The hidden activation of ``bits`` bits: BinaryAct (the hard sign) for 1, else
    ``QuantAct(bits, mode="signed", scale=2**-(bits-1))``: the 2**bits dyadic levels k/2**(bits-1),
    k = -2**(bits-1) .. 2**(bits-1) - 1, in [-1, 1) (exact in float64, docs/training.md)."""
    return BinaryAct() if bits == 1 else QuantAct(bits, mode="signed", scale=2.0 ** -(bits - 1))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (the data set is passed separately)."""

    hidden: tuple[int, ...] = (256, 256)
    net: str = "bnn"
    binarization: BinarizationConfig = BinarizationConfig()
    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float | None = None
    """Learning rate of Adam/SGD (for Bop/KBOP: of the non-binary parameters); None: the method's
    default (:data:`DEFAULT_LR`)."""
    lr_schedule: str = "cosine"
    """``cosine`` (annealed to 0 over the run) or ``constant``."""
    logit_scale: float = 0.0
    """The integer class scores are multiplied by this inside the loss; 0 means 4 / sqrt(last fan-in)."""
    refresh_epochs: float = 1.0
    """Soft-refresh period in epochs (spec default R = 1 epoch); overrides binarization.refresh_every."""
    bop_gamma: float = 1e-3
    bop_tau: float = 1e-6
    kbop_lr: float = 0.5
    kbop_beta: float = 0.9
    seed: int = 0
    recalibrate: bool = True
    threads: int = 1
    act_bits: int | tuple[int, ...] = 1
    """Bits of every hidden activation (or one per hidden activation): 1 = BinaryAct, k >= 2 = QuantAct
    on the signed dyadic grid (:func:`activation`). Used when ``train`` builds the MLP."""
    weight_bits: int | tuple[int, ...] = 1
    """Bits of every layer's weights (or one per BinaryLinear/BinaryConv2d, the head included): 1 = ±1,
    2 = ternary, k = -M..M. Used when ``train`` builds the MLP."""
    residual: str | int = "none"
    """``none`` (a plain MLP), ``real`` (Bi-Real shortcuts around every layer that keeps the width) or
    a number of bits (those shortcuts quantized to :func:`shortcut_quant`). Used when ``train`` builds the MLP."""
    dtype: str = "float32"
    """Training precision: float32, or float64 (slower; rounding then stays far below Adam's epsilon, which
    is what makes a multi-process run match a single-process one to many digits)."""
    unit_steps: int = 0
    """Optimizer steps per unit window; the run then lasts as long as that takes (``epochs`` is
    ignored): windows fill ``end - start`` of it. 0: the run is ``epochs`` long."""

    def __post_init__(self):
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise TrainingConfigError(f"hidden widths must be positive integers, not {list(self.hidden)}")
        if self.net not in NETS:
            raise TrainingConfigError(f"unknown net {self.net!r}; choose bnn (binary weights and activations) "
                                      "or bwn (binary weights only)")
        if not isinstance(self.unit_steps, int) or isinstance(self.unit_steps, bool):
            raise TrainingConfigError(f"the steps per unit (--unit-steps) must be a whole number, not {self.unit_steps!r}")
        object.__setattr__(self, "residual", check_residual(self.residual))
        if isinstance(self.residual, int) and self.net != "bnn":
            raise TrainingConfigError(f"--net {self.net} keeps real activations; a quantized shortcut (--residual "
                                      f"{self.residual}) needs --net bnn, or use --residual real")
        if self.dtype not in DTYPES:
            raise TrainingConfigError(f"unknown training precision {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise TrainingConfigError(f"unknown learning-rate schedule {self.lr_schedule!r}; choose one of "
                                      f"{', '.join(LR_SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise TrainingConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        checks = [("epochs", self.epochs >= 1, "at least 1"), ("batch size", self.batch_size >= 2, "at least 2"),
                  ("learning rate", self.lr is None or self.lr > 0, "positive"), ("logit scale", self.logit_scale >= 0, "0 or positive"),
                  ("refresh period", self.refresh_epochs >= 0, "0 (never) or positive epochs"),
                  ("Bop gamma", 0 < self.bop_gamma <= 1, "in (0, 1]"), ("Bop tau", self.bop_tau >= 0, "0 or more"),
                  ("KBOP learning rate", 0 < self.kbop_lr <= 1, "in (0, 1]"),
                  ("KBOP beta", 0 <= self.kbop_beta < 1, "in [0, 1)"), ("threads", self.threads >= 1, "at least 1"),
                  ("steps per unit", self.unit_steps >= 0, "0 (use --epochs) or a positive number of steps")]
        for name, ok, need in checks:
            if not ok:
                value = {"epochs": self.epochs, "batch size": self.batch_size, "learning rate": self.lr,
                         "logit scale": self.logit_scale, "refresh period": self.refresh_epochs,
                         "Bop gamma": self.bop_gamma, "Bop tau": self.bop_tau, "KBOP learning rate": self.kbop_lr,
                         "KBOP beta": self.kbop_beta, "threads": self.threads,
                         "steps per unit": self.unit_steps}[name]
                raise TrainingConfigError(f"the {name} must be {need}, not {value}")
        object.__setattr__(self, "act_bits", _check_bits_setting("activation bits", "--act-bits", self.act_bits))
        object.__setattr__(self, "weight_bits", _check_bits_setting("weight bits", "--weight-bits", self.weight_bits))
        if self.net != "bnn" and set(_as_tuple(self.act_bits)) != {1}:
            raise TrainingConfigError(f"--net {self.net} keeps real activations, so the activation bits (--act-bits) "
                                      "must stay 1; use --net bnn for quantized activations")
        multibit_weights = set(_as_tuple(self.weight_bits)) != {1}
        multibit_acts = set(_as_tuple(self.act_bits)) != {1}
        if self.optimizer in ("bop", "kbop") and multibit_weights:
            raise TrainingConfigError(f"--optimizer {self.optimizer} flips ±1 weights and cannot train multi-bit "
                                      f"weights (--weight-bits {_bits_text(self.weight_bits)}); use --optimizer adam "
                                      "or sgd, or --weight-bits 1")
        b = self.binarization
        surrogate_used = b.method != "stompp"
        if surrogate_used and b.surrogate not in MULTILEVEL_SURROGATES and (
                multibit_acts or (multibit_weights and self.optimizer not in ("bop", "kbop"))):
            raise TrainingConfigError(f"the {b.surrogate} surrogate is a derivative of sign and applies to 1-bit "
                                      f"layers only (--act-bits {_bits_text(self.act_bits)}, --weight-bits "
                                      f"{_bits_text(self.weight_bits)}); use --surrogate ste_clip (the clipped "
                                      "straight-through estimator) with multi-bit layers")

    @property
    def learning_rate(self) -> float:
        """``lr``, or the method's default (:data:`DEFAULT_LR`) where ``lr`` is None. Resolved on use, so
        that ``dataclasses.replace(config, binarization=...)`` gives the new method its own rate."""
        return default_lr(self.binarization.method) if self.lr is None else self.lr

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "learning_rate": self.learning_rate}


@dataclass
class TrainResult:
    model: BinaryNet
    history: list[dict]
    test_accuracy: float
    test_correct: int
    train_accuracy: float
    seconds: float
    notes: list[str]


def _layer_bits(net: str, act_bits, weight_bits, n_acts: int, n_layers: int):
    acts = per_layer_bits(act_bits, n_acts, "activation bits", "--act-bits", "hidden activations")
    weights = per_layer_bits(weight_bits, n_layers, "weight bits", "--weight-bits",
                             "weight layers (the output layer included)")
    if net != "bnn" and any(b != 1 for b in acts):
        raise TrainingConfigError(f"--net {net} keeps real activations, so the activation bits (--act-bits) must "
                                  "stay 1; use --net bnn for quantized activations")
    return acts, weights


def _dense_layers(width: int, hidden: tuple[int, ...], act, weights, residual, shortcut, first_has_act: bool):
    """Hidden dense layers of a plain (``residual="none"``: BinaryLinear → BN → act) or residual
    (act → BinaryLinear → BN, with a shortcut where the width stays) network; returns (layers, width)."""
    layers: list[nn.Module] = []
    for i, n in enumerate(hidden):
        linear, bn = BinaryLinear(width, n, weight_bits=next(weights)), nn.BatchNorm1d(n)
        if residual == "none":
            layers += [linear, bn, act()]
        else:
            body = [linear, bn] if i == 0 and not first_has_act else [act(), linear, bn]
            layers += [ResidualBlock(*body, shortcut=shortcut())] if n == width and len(body) == 3 else body
        width = n
    return layers, width


def _shortcut_factory(residual):
    return (lambda: shortcut_quant(residual)) if isinstance(residual, int) else (lambda: None)


def build_mlp(data: TrainingData, hidden: tuple[int, ...], net: str = "bnn", act_bits: int | tuple[int, ...] = 1,
              weight_bits: int | tuple[int, ...] = 1, residual: str | int = "none") -> BinaryNet:
    """InputQuant → (BinaryLinear → BatchNorm1d → BinaryAct)* → BinaryLinear, no biases, no head BN.

    ``net="bwn"`` keeps activations real (hard-tanh), for the binary-weight-only ablation; such a
    model trains and evaluates but is not compilable (the hardware needs binary activations).
    ``act_bits`` (one per hidden activation, or one for all) replaces BinaryAct by :func:`activation`
    where it is 2 or more; ``weight_bits`` (one per BinaryLinear, the head included, or one for all)
    sets each layer's ``weight_bits``.

    ``residual="real"`` or a number of bits builds the residual MLP instead: InputQuant → BinaryLinear
    → BatchNorm1d → (ResidualBlock(BinaryAct → BinaryLinear → BatchNorm1d))* → BinaryAct → BinaryLinear,
    each block with a real-valued shortcut (Bi-Real) or one on :func:`shortcut_quant`'s grid; a layer that
    changes the width has no shortcut. Same layers and activations as the plain MLP, reordered."""
    residual = check_residual(residual)
    acts, weights = _layer_bits(net, act_bits, weight_bits, len(hidden), len(hidden) + 1)
    acts, weights = iter(acts), iter(weights)
    act = (lambda: activation(next(acts))) if net == "bnn" else (lambda: nn.Hardtanh())
    dense, width = _dense_layers(data.input_shape[0], tuple(hidden), act, weights, residual,
                                 _shortcut_factory(residual), first_has_act=False)
    head = [] if residual == "none" else [act()]
    layers = [InputQuant(data.input_bits), *dense, *head, BinaryLinear(width, data.num_classes,
                                                                       weight_bits=next(weights))]
    return BinaryNet(*layers, input_shape=data.input_shape)


def image_chw(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(C, H, W) of a data set's image shape: (W,) is one channel of one row, (H, W) one channel, (C, H, W) stays."""
    if len(image_shape) == 1:
        return (1, 1, *image_shape)
    return (1, *image_shape) if len(image_shape) == 2 else tuple(image_shape)


def build_cnn(data: TrainingData, channels: tuple[int, ...], hidden: tuple[int, ...], net: str = "bnn",
              kernel: int = 3, act_bits: int | tuple[int, ...] = 1,
              weight_bits: int | tuple[int, ...] = 1, residual: str | int = "none") -> BinaryNet:
    """InputQuant → (BinaryConv2d k×k, padding k//2 with pad value −1 → BatchNorm2d → BinaryAct →
    MaxPool2d(2))* → Flatten → (BinaryLinear → BatchNorm1d → BinaryAct)* → BinaryLinear.

    FINN CNV's block order (pool after the activation); a block whose image is already smaller than
    2×2 skips the pool. ``act_bits`` (one per activation: the convolutions' then the dense layers')
    and ``weight_bits`` (one per BinaryConv2d/BinaryLinear, the head included) as in :func:`build_mlp`.

    ``residual="real"`` or a number of bits: a convolution that keeps the channel count is a
    ResidualBlock(BinaryAct → BinaryConv2d → BatchNorm2d) without pooling; one that changes it (and the
    first) is a transition, (BinaryAct →) BinaryConv2d → BatchNorm2d → MaxPool2d, without a shortcut;
    the dense part is :func:`build_mlp`'s residual MLP."""
    if not channels or any(not isinstance(c, int) or c < 1 for c in channels):
        raise TrainingConfigError(f"convolution channels must be positive integers, not {list(channels)}")
    residual = check_residual(residual)
    acts, weights = _layer_bits(net, act_bits, weight_bits, len(channels) + len(hidden),
                                len(channels) + len(hidden) + 1)
    acts, weights = iter(acts), iter(weights)
    act = (lambda: activation(next(acts))) if net == "bnn" else (lambda: nn.Hardtanh())
    shortcut = _shortcut_factory(residual)
    c, h, w = image_chw(data.image_shape)
    layers: list[nn.Module] = [InputQuant(data.input_bits)]
    for i, out in enumerate(channels):
        conv = BinaryConv2d(c, out, kernel, padding=kernel // 2, weight_bits=next(weights))
        h, w = h + 2 * (kernel // 2) - kernel + 1, w + 2 * (kernel // 2) - kernel + 1
        if residual == "none":
            layers += [conv, nn.BatchNorm2d(out), act()]
        elif i > 0 and out == c:
            layers.append(ResidualBlock(act(), conv, nn.BatchNorm2d(out), shortcut=shortcut()))
            c = out
            continue
        else:
            layers += ([] if i == 0 else [act()]) + [conv, nn.BatchNorm2d(out)]
        if min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c = out
    layers.append(nn.Flatten())
    dense, width = _dense_layers(c * h * w, tuple(hidden), act, weights, residual, shortcut,
                                 first_has_act=residual != "none")
    head = [] if residual == "none" else [act()]
    layers += [*dense, *head, BinaryLinear(width, data.num_classes, weight_bits=next(weights))]
    return BinaryNet(*layers, input_shape=image_chw(data.image_shape))


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, chunk: int = 8192) -> None:
    """Replace every BatchNorm's running statistics by the statistics of the deploy network over ``x``
    (spec §3.2: they drift while masks change). One chunk gives the exact mean and variance; more
    chunks are averaged. Call after the quantizers are removed."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    for i in range(0, len(x), chunk):
        part = x[i:i + chunk]
        if len(part) >= 2:
            model(part)
    for m, momentum in zip(bns, momenta):
        m.momentum = momentum
    model.eval()


@torch.no_grad()
def deploy_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """Eval-mode (deploy: every binarization hard) accuracy and number correct; argmax, first max wins."""
    was_training = model.training
    model.eval()
    pred = model(x).argmax(dim=1)
    model.train(was_training)
    correct = int((pred == y).sum())
    return correct / len(y), correct


def _optimizers(model: nn.Module, binarizer: Binarizer, config: TrainConfig, total_steps: int):
    """The optimizers and their LR schedulers: binary weights to Bop/KBOP when latent-free."""
    def annealed(opt, floor=0.0):
        if config.lr_schedule == "constant":
            return None
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps, eta_min=floor)

    binary = [u.layer.weight for u in binarizer.units if u.layer is not None]
    binary_ids = {id(p) for p in binary}
    others = [p for p in model.parameters() if id(p) not in binary_ids] + binarizer.scale_parameters()
    pairs = []
    if config.optimizer in ("adam", "sgd"):
        params = binary + others
        opt = (torch.optim.Adam(params, lr=config.learning_rate) if config.optimizer == "adam"
               else torch.optim.SGD(params, lr=config.learning_rate, momentum=0.9))
        pairs.append((opt, annealed(opt)))
    else:
        if config.optimizer == "bop":
            pairs.append((Bop(binary, gamma=config.bop_gamma, tau=config.bop_tau), None))
        else:
            from .kbop import KBop
            kbop = KBop([{"params": [p]} for p in binary], lr=config.kbop_lr, beta=config.kbop_beta)
            floor = config.kbop_lr * 1e-3  # rigidity 1/λ - 1 grows as λ anneals; keep λ > 0
            pairs.append((kbop, annealed(kbop, floor)))
        if others:
            adam = torch.optim.Adam(others, lr=config.learning_rate)
            pairs.append((adam, annealed(adam)))
    return pairs


def _fold_scales(model: nn.Module, binarizer: Binarizer) -> list[str]:
    """Fold KBOP's learned per-layer scales α > 0 into the model: z = α·(x·sign(W)) feeding a BatchNorm
    equals BatchNorm with mean μ/α, variance var/α² and eps/α² on x·sign(W). A last layer's α only
    scales the class scores, so it is dropped (the argmax is unchanged)."""
    notes = []
    for unit in binarizer.units:
        if unit.scale is None:
            continue
        alpha = float(unit.scale.detach().exp())
        container, pos = _position(model, unit.layer)
        follower = container[pos + 1] if pos + 1 < len(container) else None
        if isinstance(follower, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                follower.running_mean.div_(alpha)
                follower.running_var.div_(alpha * alpha)
            follower.eps = follower.eps / (alpha * alpha)
        else:
            notes.append(f"layer {pos}: the learned score scale α = {alpha:.4g} was dropped; class scores are "
                         "the integer popcount scores (the argmax is unchanged)")
    return notes


def _position(model: nn.Module, layer: nn.Module) -> tuple[list[nn.Module], int]:
    """The sequence (the model, or a residual block's body) that holds ``layer``, and its index there."""
    for container in model.modules():
        if isinstance(container, nn.Sequential):
            children = list(container)
            for i, m in enumerate(children):
                if m is layer:
                    return children, i
    raise ValueError("the layer is not in the model")


def _total_steps(model: nn.Module, config: TrainConfig, steps_per_epoch: int) -> int:
    """``epochs`` of steps, or (``unit_steps`` > 0) as many as give every unit window that many steps."""
    if config.unit_steps == 0:
        return steps_per_epoch * config.epochs
    b = config.binarization
    units = len(find_units(model, b.pairing))
    window = FreezeSchedule(max(units, 1), b.start, b.end, b.overlap, b.ramp, b.order, b.scope,
                            spacing=b.spacing).window_length
    if b.spacing == "cubic":
        window = (b.end - b.start) / max(units, 1)  # windows differ; their mean gets the steps
    return max(1, math.ceil(config.unit_steps / window - 1e-9))


def _step(forward: nn.Module, binarizer: Binarizer, pairs, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor,
          logit_scale: float, world: World) -> tuple[float, int, int]:
    """One optimizer step on the global batch ``idx``; returns the mean loss, the number correct and
    the number of samples of this process's share of it (all of it in a single process)."""
    local = shard(idx, world) if world.size > 1 else idx
    xb, yb = x[local], y[local]
    out = forward(xb)
    if world.size > 1:
        loss = shard_loss(out * logit_scale, yb, len(idx), world)
    else:
        loss = F.cross_entropy(out * logit_scale, yb)
    for opt, _ in pairs:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    if world.size > 1:
        average_gradients(binarizer.scale_parameters(), world)
    with binarizer.optimizer_step():
        for opt, _ in pairs:
            opt.step()
    for _, sched in pairs:
        if sched is not None:
            sched.step()
    binarizer.clip_latents()
    mean = loss.item() * len(idx) / (world.size * len(local)) if world.size > 1 else loss.item()
    return mean, int((out.argmax(dim=1) == yb).sum()), len(local)


def train(data: TrainingData, config: TrainConfig,
          on_step: Callable[[int, int], None] | None = None,
          on_epoch: Callable[[dict], None] | None = None, model: BinaryNet | None = None) -> TrainResult:
    """Train an MLP on ``data`` as ``config`` says; returns the deploy model (eval mode, float32).

    ``model`` replaces the MLP built from ``config.hidden`` (``config.net``, ``act_bits`` and
    ``weight_bits`` are then ignored: build it with them), e.g. a convolutional ``BinaryNet``; the
    samples are reshaped to its ``input_shape``.

    ``on_step(step, total)`` is called after every optimizer step, ``on_epoch(entry)`` after every epoch
    with the log entry: loss, train-state accuracy, deploy test accuracy, frozen fraction per unit.

    Inside an initialised process group (torchrun, or :func:`bnn2hw.train.distributed.spawn_local`) the
    processes train one model together with DistributedDataParallel; ``batch_size`` is the global batch
    (:mod:`bnn2hw.train.distributed`). Every process returns the same model.
    """
    start_time = time.perf_counter()
    world = current_world()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    shuffle_gen = torch.Generator().manual_seed(config.seed)
    mask_gen = torch.Generator().manual_seed(config.seed + 0x5EED)

    if model is None:
        model = build_mlp(data, tuple(config.hidden), config.net, config.act_bits, config.weight_bits,
                          config.residual)
    shape = tuple(model.input_shape)
    if int(np.prod(shape)) != data.input_shape[0]:
        raise TrainingConfigError(f"the model takes inputs of shape {shape}, but {data.name} samples have "
                                  f"{data.input_shape[0]} values; build the model for image shape {data.image_shape}")
    dtype = getattr(torch, config.dtype)
    model.to(dtype)
    x_train = torch.from_numpy(data.x_train.reshape((-1,) + shape)).to(dtype)
    y_train = torch.from_numpy(data.y_train)
    x_test = torch.from_numpy(data.x_test.reshape((-1,) + shape)).to(dtype)
    y_test = torch.from_numpy(data.y_test)

    latent_free = config.optimizer in ("bop", "kbop")
    if latent_free:
        check_latent_free(model)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (BinaryLinear, BinaryConv2d)):
                    m.weight.copy_(torch.where(m.weight >= 0, 1.0, -1.0))
    steps_per_epoch = sum(1 for i in range(0, len(x_train), config.batch_size)
                          if len(x_train) - i >= 2)
    total_steps = _total_steps(model, config, steps_per_epoch)
    epochs = math.ceil(total_steps / steps_per_epoch)
    bin_config = dataclasses.replace(config.binarization, binarize_activations=config.net == "bnn",
                                     latent_free=latent_free,
                                     refresh_every=max(1, round(config.refresh_epochs * steps_per_epoch))
                                     if config.refresh_epochs > 0 else 0)
    binarizer = Binarizer(model, bin_config, total_steps, mask_gen, learned_scale=config.optimizer == "kbop")
    pairs = _optimizers(model, binarizer, config, total_steps)
    head = [m for m in model.modules() if isinstance(m, (BinaryLinear,))][-1]
    head_fan_in = head.in_features
    logit_scale = config.logit_scale or 4.0 / math.sqrt(head_fan_in)
    forward = model
    if world.size > 1:
        forward = nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)

    history: list[dict] = []
    step = 0
    with synced_batch_norm(model) if world.size > 1 else contextlib.nullcontext():
        for epoch in range(1, epochs + 1):
            model.train()
            order = torch.randperm(len(x_train), generator=shuffle_gen)
            loss_sum, correct, seen = 0.0, 0, 0
            for i in range(0, len(order), config.batch_size):
                idx = order[i:i + config.batch_size]
                if len(idx) < 2:  # BatchNorm needs two samples
                    continue
                if step == total_steps:
                    break
                binarizer.update(step)
                loss, batch_correct, n = _step(forward, binarizer, pairs, x_train, y_train, idx, logit_scale, world)
                step += 1
                loss_sum += loss * n
                correct += batch_correct
                seen += n
                if on_step is not None:
                    on_step(step, total_steps)
            test_acc, _ = deploy_accuracy(model, x_test, y_test)
            entry = {"epoch": epoch, "loss": loss_sum / seen, "train_accuracy": correct / seen,
                     "deploy_test_accuracy": test_acc, "progress": step / total_steps,
                     "frozen": binarizer.frozen_fractions(), "lr": pairs[-1][0].param_groups[0]["lr"],
                     "seconds": time.perf_counter() - start_time}
            history.append(entry)
            if on_epoch is not None:
                on_epoch(entry)

    binarizer.detach()
    notes = _fold_scales(model, binarizer)
    if config.recalibrate:
        recalibrate_batchnorm(model, x_train)
    model.eval()
    deploy = model.double()
    test_acc, test_correct = deploy_accuracy(deploy, x_test.double(), y_test)
    train_acc, _ = deploy_accuracy(deploy, x_train.double(), y_train)
    model = model.float().eval()
    return TrainResult(model, history, test_acc, test_correct, train_acc, time.perf_counter() - start_time, notes)
