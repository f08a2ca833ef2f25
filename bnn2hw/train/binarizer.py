"""Progressive binarization of a model while it trains: which entries are hard, and how gradients
flow through them (spec §3.2, §4).

A *unit* is one binary layer (``BinaryLinear`` or ``BinaryConv2d``, any ``weight_bits``) together with
the activation (``BinaryAct`` or ``QuantAct``, any bits) that feeds it, if any: its latent weights and
its input activation are frozen (replaced by their hard, quantized value) on the unit's schedule.
The :class:`Binarizer` owns the masks, attaches a quantizer to every binarizing layer (``bnn2hw.nn``
layers consult it in training mode), grows the masks each step, soft-refreshes them, restores frozen
latents after the optimizer step (pitfall P2) and clips latents (P1).

Methods: ``stompp`` (frozen entries pass no gradient: no STE anywhere), ``stompp+sg`` (frozen entries
pass the surrogate) and ``ste`` (BinaryConnect-style baseline: every entry hard from the first step,
surrogate everywhere; no masks). ``net="bwn"`` binarizes weights only. ``latent_free=True`` is for
Bop/KBOP: the weights already hold ±1 and get their gradient at the binary point, so only the
activations follow the method.

Multi-bit entries (weights of 2+ bits, a ``QuantAct`` other than the hard sign) follow the same
methods on their own grid (:func:`bnn2hw.train.quantize.multilevel_q`): hard path = the layer's
quantized value, clipped path = the input clamped to the grid's range, and the clipped STE as their
only surrogate. 1-bit entries keep the sign paths and every surrogate.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import TrainingConfigError
from ..nn import BinaryAct, BinaryConv2d, BinaryLinear, QuantAct, ResidualBlock
from .masks import GRANULARITIES, PRIORITIES, FrozenLatentGuard, grow_mask, soft_refresh
from .quantize import (MODES, MULTILEVEL_SURROGATES, SURROGATES, act_levels, multilevel_q, stompp_q,
                       surrogate_sign, weight_levels)
from .schedule import FreezeSchedule

__all__ = ["BinarizationConfig", "Binarizer", "BinaryUnit", "find_units", "REFRESH_MODES", "ACTIVATION_MASKS",
           "is_sign", "check_latent_free"]

REFRESH_MODES = ("swap", "resample", "activations")
ACTIVATION_MASKS = ("persistent", "per_batch")
PAIRINGS = ("input", "output")
BINARY_LAYERS = (BinaryLinear, BinaryConv2d)
ACTIVATIONS = (BinaryAct, QuantAct)


def is_sign(module: nn.Module) -> bool:
    """Whether a unit's layer or activation quantizes to the hard sign ±1 (1-bit weights, BinaryAct,
    QuantAct(1) on the symmetric grid with scale 1), so that the sign paths and all surrogates apply."""
    if isinstance(module, BINARY_LAYERS):
        return module.weight_bits == 1
    if isinstance(module, QuantAct):
        return module.bits == 1 and module.mode == "symmetric" and module.scale == 1.0
    return isinstance(module, BinaryAct)


def _describe(module: nn.Module) -> str:
    if isinstance(module, BINARY_LAYERS):
        return f"{type(module).__name__} with {module.weight_bits}-bit weights"
    return f"QuantAct({module.extra_repr()})"


def check_latent_free(model: nn.Module) -> None:
    """Bop and KBOP flip ±1 weights: raise TrainingConfigError for a layer with 2-bit or wider weights."""
    for name, module in model.named_modules():
        if isinstance(module, BINARY_LAYERS) and module.weight_bits != 1:
            raise TrainingConfigError(
                f"Bop and KBOP flip ±1 weights and cannot train multi-bit weights (layer {name or 'model'}: "
                f"{_describe(module)}); use --optimizer adam or sgd, or 1-bit weights (--weight-bits 1)")


@dataclass(frozen=True)
class BinarizationConfig:
    """Every choice of spec §3.2–§3.4; defaults are the spec's (§3.4). Values are validated here."""

    method: str = "stompp"
    surrogate: str = "ste_clip"
    start: float = 0.3
    """Progress at which freezing starts. The spec's default is 0; 0.3 (the clipped network learns first)
    measured better on digits, most at depth 16 (docs/training.md)."""
    end: float = 1.0
    """Progress by which every unit is frozen. The spec's 0.9 leaves a tail in which pure StoMPP has no
    gradient at all; 1.0 trains to the last step (docs/training.md)."""
    overlap: float = 0.0
    ramp: str = "linear"
    order: str = "forward"
    scope: str = "layerwise"
    spacing: str = "uniform"
    priority: str = "error"
    """Which entries freeze first. The spec's default is uniform; error (latents near ±1 first) measured
    better on digits (docs/training.md)."""
    granularity: str = "element"
    refresh_every: int = 0
    """Steps between soft refreshes (0: never). The trainer sets one epoch by default."""
    refresh_fraction: float = 0.1
    refresh_mode: str = "swap"
    activation_masks: str = "per_batch"
    """The spec's default is one persistent mask per unit; per-batch resampling measured better on digits."""
    pairing: str = "input"
    """Which activation a layer's unit freezes: its input (spec §3.2) or its output. [RECON]"""
    binarize_activations: bool = True
    latent_free: bool = False

    def __post_init__(self):
        try:
            self._validate()
        except ValueError as e:
            raise TrainingConfigError(str(e)) from None

    def _validate(self):
        for name, value, allowed in (("method", self.method, MODES), ("surrogate", self.surrogate, SURROGATES),
                                     ("mask priority", self.priority, PRIORITIES),
                                     ("mask granularity", self.granularity, GRANULARITIES),
                                     ("refresh mode", self.refresh_mode, REFRESH_MODES),
                                     ("activation mask kind", self.activation_masks, ACTIVATION_MASKS),
                                     ("activation pairing", self.pairing, PAIRINGS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if not isinstance(self.refresh_every, int) or self.refresh_every < 0:
            raise ValueError(f"the refresh period must be a whole number of steps >= 0, not {self.refresh_every!r}")
        if not 0.0 <= self.refresh_fraction <= 1.0:
            raise ValueError(f"the refresh fraction must be in [0, 1], not {self.refresh_fraction}")
        FreezeSchedule(1, self.start, self.end, self.overlap, self.ramp, self.order, self.scope,
                       spacing=self.spacing)  # validates


@dataclass(eq=False)
class BinaryUnit:
    """One scheduled unit: a binary layer and the BinaryAct or QuantAct feeding it (either may be absent)."""

    index: int
    layer: BinaryLinear | BinaryConv2d | None
    act: BinaryAct | QuantAct | None
    weight_mask: torch.Tensor | None = None
    act_mask: torch.Tensor | None = None
    scale: nn.Parameter | None = field(default=None, repr=False)
    """log α of a learned per-layer weight scale (KBOP), or None."""
    shortcut: QuantAct | None = None
    """The quantized shortcut of the residual block this unit's layer opens, frozen with the unit."""
    shortcut_mask: torch.Tensor | None = None


def _shortcut_owners(model: nn.Module) -> dict[int, QuantAct]:
    """id(first binary layer of a ResidualBlock's body) → the block's quantized shortcut."""
    owners = {}
    for block in model.modules():
        if isinstance(block, ResidualBlock) and block.shortcut is not None:
            first = next((m for m in block.body.modules() if isinstance(m, BINARY_LAYERS)), None)
            if first is not None:
                owners[id(first)] = block.shortcut
    return owners


def find_units(model: nn.Module, pairing: str = "input") -> list[BinaryUnit]:
    """The model's units in forward order: each binary layer (any weight bits) with the activation
    (BinaryAct or QuantAct, any bits) just before it (``pairing="input"``, spec §3.2) or just after it
    (``"output"``). The quantized shortcut of a :class:`bnn2hw.nn.ResidualBlock` joins the unit of the
    block's first binary layer (``BinaryUnit.shortcut``): it freezes with that layer's weights."""
    owners = _shortcut_owners(model)
    shortcuts = {id(q) for q in owners.values()}
    modules = [m for m in model.modules() if id(m) not in shortcuts]
    if pairing == "output":
        units = []
        for module in modules:
            if isinstance(module, BINARY_LAYERS):
                units.append(BinaryUnit(len(units), module, None))
            elif isinstance(module, ACTIVATIONS):
                if units and units[-1].act is None:
                    units[-1].act = module
                else:
                    units.append(BinaryUnit(len(units), None, module))
    else:
        units, pending = [], None
        for module in modules:
            if isinstance(module, ACTIVATIONS):
                if pending is not None:  # two activations in a row: the first is a unit of its own
                    units.append(BinaryUnit(len(units), None, pending))
                pending = module
            elif isinstance(module, BINARY_LAYERS):
                units.append(BinaryUnit(len(units), module, pending))
                pending = None
        if pending is not None:
            units.append(BinaryUnit(len(units), None, pending))
    for unit in units:
        if unit.layer is not None:
            unit.shortcut = owners.get(id(unit.layer))
    return units


class Binarizer:
    """Drives the binarization of ``model`` over ``total_steps`` optimizer steps.

    Per step: ``update(step)`` before the forward pass; ``with optimizer_step(): opt.step()``; then
    ``clip_latents()``. ``detach()`` removes every quantizer (the model is then the deploy network in
    both modes). Masks are seeded by ``generator`` so a run is reproducible.
    """

    def __init__(self, model: nn.Module, config: BinarizationConfig, total_steps: int, generator: torch.Generator,
                 learned_scale: bool = False):
        if total_steps < 1:
            raise ValueError(f"training needs at least one step, not {total_steps}")
        self.model = model
        self.config = config
        self.total_steps = total_steps
        self.generator = generator
        self.progress = 0.0
        self.units = find_units(model, config.pairing)
        if not self.units:
            raise ValueError("the model has no binary layer (bnn2hw.nn.BinaryLinear) to train")
        self.schedule = FreezeSchedule(len(self.units), config.start, config.end, config.overlap, config.ramp,
                                       config.order, config.scope, spacing=config.spacing,
                                       seed=int(torch.randint(0, 2**31 - 1, (), generator=generator)))
        self.masked = config.method != "ste"
        if config.latent_free:
            check_latent_free(model)
        self._check_surrogate()
        for unit in self.units:
            if unit.layer is not None:
                if self.masked and not config.latent_free:
                    unit.weight_mask = torch.zeros_like(unit.layer.weight, dtype=torch.bool)
                if learned_scale:
                    fan_in = unit.layer.weight[0].numel()
                    unit.scale = nn.Parameter(torch.tensor(0.5 * torch.log(torch.tensor(2.0 / fan_in)).item()))
                unit.layer.quantizer = self._weight_quantizer(unit)
            if unit.act is not None and config.binarize_activations:
                unit.act.quantizer = self._act_quantizer(unit, "act")
            if unit.shortcut is not None and config.binarize_activations:
                unit.shortcut.quantizer = self._act_quantizer(unit, "shortcut")

    # -- quantizers ---------------------------------------------------------------------------------
    def _check_surrogate(self) -> None:
        """Multi-bit entries have only the clipped STE; say so where another surrogate would be used."""
        cfg = self.config
        if cfg.method == "stompp" or cfg.surrogate in MULTILEVEL_SURROGATES:
            return  # pure StoMPP uses no surrogate
        for unit in self.units:
            modules = [] if unit.layer is None or cfg.latent_free else [unit.layer]
            modules += [a for a in (unit.act, unit.shortcut) if a is not None and cfg.binarize_activations]
            for m in modules:
                if not is_sign(m):
                    raise TrainingConfigError(
                        f"the {cfg.surrogate} surrogate is a derivative of sign and applies to 1-bit layers only, "
                        f"but unit {unit.index} has a {_describe(m)}; use --surrogate ste_clip (the clipped "
                        "straight-through estimator) with multi-bit layers")

    def _weight_quantizer(self, unit: BinaryUnit):
        cfg = self.config
        levels = None if is_sign(unit.layer) else weight_levels(unit.layer.weight_bits)

        def quantize(w: torch.Tensor) -> torch.Tensor:
            if cfg.latent_free:
                q = surrogate_sign(w, "ste")  # ±1 weights: the gradient at the binary point
            elif levels is not None:
                q = multilevel_q(w, unit.weight_mask, cfg.method, levels)
            else:
                q = stompp_q(w, unit.weight_mask, cfg.method, cfg.surrogate, self.progress)
            return q * unit.scale.exp() if unit.scale is not None else q
        return quantize

    def _act_quantizer(self, unit: BinaryUnit, which: str):
        """The training quantizer of ``unit.act`` or ``unit.shortcut`` (``which``), whose mask is
        ``unit.act_mask`` or ``unit.shortcut_mask``."""
        cfg = self.config
        act = getattr(unit, which)
        mask_name = f"{which}_mask"
        levels = None if is_sign(act) else act_levels(act)

        def q(x, frozen, method):
            if levels is not None:
                return multilevel_q(x, frozen, method, levels)
            return stompp_q(x, frozen, method, cfg.surrogate, self.progress)

        def quantize(x: torch.Tensor) -> torch.Tensor:
            if not self.masked:
                return q(x, None, "ste")
            if getattr(unit, mask_name) is None:  # first forward: the activation's shape is known only now
                setattr(unit, mask_name, self._grown(torch.zeros(x.shape[1:], dtype=torch.bool), unit, None))
            return q(x, getattr(unit, mask_name).expand_as(x), cfg.method)
        return quantize

    # -- per-step work ------------------------------------------------------------------------------
    def fraction(self, unit: BinaryUnit) -> float:
        return self.schedule.fraction(unit.index, self.progress)

    def _grown(self, mask: torch.Tensor, unit: BinaryUnit, latent: torch.Tensor | None) -> torch.Tensor:
        is_weight = latent is not None
        return grow_mask(mask, self.fraction(unit), self.generator, latent=latent,
                         priority=self.config.priority if is_weight else "uniform",
                         granularity=self.config.granularity if is_weight else "element",
                         bits=unit.layer.weight_bits if is_weight else 1)

    def _refreshed(self, mask: torch.Tensor, is_weight: bool) -> torch.Tensor:
        cfg = self.config
        granularity = cfg.granularity if is_weight else "element"
        if cfg.refresh_mode == "swap":
            return soft_refresh(mask, cfg.refresh_fraction, self.generator, granularity)
        if cfg.refresh_mode == "activations":
            return mask if is_weight else soft_refresh(mask, cfg.refresh_fraction, self.generator, granularity)
        # "resample": keep each frozen entry with probability 1 - ρ; growing refills to the target count.
        keep = torch.rand(mask.shape, generator=self.generator) >= cfg.refresh_fraction
        return mask & keep if granularity == "element" else mask & keep.reshape(len(mask), -1)[:, :1].expand_as(mask)

    def update(self, step: int) -> None:
        """Set training progress to ``step / total_steps`` and bring every mask to its unit's fraction."""
        self.progress = min(max(step / self.total_steps, 0.0), 1.0)
        if not self.masked:
            return
        cfg = self.config
        refresh = cfg.refresh_every > 0 and step > 0 and step % cfg.refresh_every == 0
        for unit in self.units:
            f = self.fraction(unit)
            inside = 0.0 < f < 1.0
            if unit.weight_mask is not None and not (f == 1.0 and bool(unit.weight_mask.all())):
                mask = self._refreshed(unit.weight_mask, True) if refresh and inside else unit.weight_mask
                unit.weight_mask = self._grown(mask, unit, unit.layer.weight)
            for name in ("act_mask", "shortcut_mask"):
                act_mask = getattr(unit, name)
                if act_mask is None:
                    continue
                if cfg.activation_masks == "per_batch":
                    setattr(unit, name, self._grown(torch.zeros_like(act_mask), unit, None))
                elif not (f == 1.0 and bool(act_mask.all())):
                    mask = self._refreshed(act_mask, False) if refresh and inside else act_mask
                    setattr(unit, name, self._grown(mask, unit, None))

    @contextlib.contextmanager
    def optimizer_step(self):
        """Wrap ``optimizer.step()``: in ``stompp`` mode frozen latents are restored afterwards, so
        momentum, Adam moments or weight decay cannot flip a frozen sign (pitfall P2). In ``stompp+sg``
        frozen latents are meant to move (their surrogate gradient is nonzero)."""
        pairs = [(u.layer.weight, u.weight_mask) for u in self.units
                 if u.weight_mask is not None and self.config.method == "stompp"]
        with FrozenLatentGuard(pairs):
            yield

    @torch.no_grad()
    def clip_latents(self) -> None:
        """Keep latent weights in [-1, 1] (pitfall P1: outside it the clipped path's gradient is 0)."""
        if self.config.latent_free:
            return
        for unit in self.units:
            if unit.layer is not None:
                unit.layer.weight.clamp_(-1.0, 1.0)

    # -- reporting and evaluation ------------------------------------------------------------------
    def frozen_fractions(self) -> list[dict]:
        """Per unit: the schedule's target and the actual frozen fraction of weights and activations
        (1.0 where the method freezes everything, None where nothing is masked)."""
        rows = []
        for unit in self.units:
            def actual(mask, present):
                if not present:
                    return None
                if not self.masked:
                    return 1.0
                return None if mask is None else float(mask.float().mean())
            rows.append({
                "unit": unit.index,
                "target": self.fraction(unit) if self.masked else 1.0,
                "weights": actual(unit.weight_mask, unit.layer is not None and not self.config.latent_free),
                "activations": actual(unit.act_mask, unit.act is not None and self.config.binarize_activations),
            })
            if unit.shortcut is not None:
                rows[-1]["shortcut"] = actual(unit.shortcut_mask, self.config.binarize_activations)
        return rows

    def scale_parameters(self) -> list[nn.Parameter]:
        return [u.scale for u in self.units if u.scale is not None]

    @contextlib.contextmanager
    def train_state(self):
        """Evaluate with the current masks ("train-state" accuracy): binarizing layers in training mode,
        BatchNorm and everything else in eval mode."""
        was_training = self.model.training
        self.model.eval()
        binarizing = [m for u in self.units for m in (u.layer, u.act, u.shortcut) if m is not None]
        for m in binarizing:
            m.train()
        try:
            yield
        finally:
            self.model.train(was_training)

    def detach(self) -> None:
        """Remove every quantizer: the layers fall back to their hard values (deploy network)."""
        for unit in self.units:
            for m in (unit.layer, unit.act, unit.shortcut):
                if m is not None and "quantizer" in vars(m):
                    del m.quantizer
