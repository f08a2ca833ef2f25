"""Saving and loading bnn2hw model files (format documented in docs/model_format.md).

A model file is a ``torch.save`` of one dict that holds only tensors and plain Python data, so it
loads with ``torch.load(weights_only=True)``: no pickled code is ever executed.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ModelFileError
from .nn import BinaryAct, BinaryConv2d, BinaryLinear, InputQuant, QuantAct, ResidualBlock

__all__ = ["save", "load", "BinaryNet", "UnsupportedModule", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "bnn2hw-model"
FORMAT_VERSION = 1


class BinaryNet(nn.Sequential):
    """A loaded model: an ``nn.Sequential`` that also knows its input shape and metadata."""

    def __init__(self, *layers: nn.Module, input_shape: tuple[int, ...], metadata: dict | None = None):
        super().__init__(*layers)
        self.input_shape = tuple(input_shape)
        self.metadata = dict(metadata or {})


class UnsupportedModule(nn.Module):
    """Stands in for a saved layer that bnn2hw cannot rebuild; the compiler names it with its position."""

    def __init__(self, class_name: str, description: str):
        super().__init__()
        self.class_name = class_name
        self.description = description

    def forward(self, x):
        raise RuntimeError(f"{self.class_name} was saved as an unsupported layer and cannot run")

    def extra_repr(self) -> str:
        return self.description


def _weight_spec(module) -> dict:
    """Weight precision keys, written only when not the 1-bit default (older files have none)."""
    spec = {}
    if module.weight_bits != 1:
        spec["weight_bits"] = module.weight_bits
    if module.weight_scale is not None:
        spec["scale"] = True
    return spec


def _layer_spec(module: nn.Module) -> dict:
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    if isinstance(module, InputQuant):
        return {"type": "InputQuant", "bits": module.bits}
    if isinstance(module, BinaryLinear):
        return {"type": "BinaryLinear", "in_features": module.in_features,
                "out_features": module.out_features, "bias": module.bias is not None, **_weight_spec(module),
                "state": state}
    if isinstance(module, BinaryConv2d):
        return {"type": "BinaryConv2d", "in_channels": module.in_channels, "out_channels": module.out_channels,
                "kernel_size": list(module.kernel_size), "stride": list(module.stride),
                "padding": list(module.padding), "pad_value": module.pad_value, "bias": module.bias is not None,
                **_weight_spec(module), "state": state}
    if isinstance(module, BinaryAct):
        return {"type": "BinaryAct"}
    if isinstance(module, QuantAct):
        return {"type": "QuantAct", "bits": module.bits, "mode": module.mode, "scale": module.scale,
                "narrow": module.narrow}
    if type(module) is nn.BatchNorm2d:
        return {"type": "BatchNorm2d", "num_features": module.num_features, "eps": float(module.eps),
                "momentum": module.momentum, "affine": module.affine,
                "track_running_stats": module.track_running_stats, "state": state}
    if type(module) is nn.MaxPool2d:
        return {"type": "MaxPool2d", "kernel_size": module.kernel_size, "stride": module.stride,
                "padding": module.padding, "dilation": module.dilation, "ceil_mode": module.ceil_mode}
    if type(module) is nn.BatchNorm1d:
        return {"type": "BatchNorm1d", "num_features": module.num_features, "eps": float(module.eps),
                "momentum": module.momentum, "affine": module.affine,
                "track_running_stats": module.track_running_stats, "state": state}
    if type(module) is nn.Flatten:
        return {"type": "Flatten", "start_dim": module.start_dim, "end_dim": module.end_dim}
    if isinstance(module, ResidualBlock):
        return {"type": "ResidualBlock",
                "shortcut": None if module.shortcut is None else _layer_spec(module.shortcut),
                "body": [_layer_spec(m) for m in module.body]}
    if isinstance(module, UnsupportedModule):
        return {"type": "unsupported", "class": module.class_name, "description": module.description}
    cls = type(module)
    return {"type": "unsupported", "class": f"{cls.__module__}.{cls.__qualname__}",
            "description": repr(module).replace("\n", " ")}


def save(model: nn.Module, path: str | os.PathLike, input_shape, metadata: dict | None = None) -> None:
    """Write ``model`` (an ``nn.Sequential``) to ``path`` in the bnn2hw model format.

    ``input_shape`` is the shape of one input sample without the batch dimension, e.g. ``(64,)``.
    Layers bnn2hw cannot compile are still saved (by class name) so that ``bnn2hw compile`` can
    name them all. The file is written atomically: an existing file is replaced only on success.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"bnn2hw.save expects a torch.nn.Sequential, not {type(model).__name__}")
    shape = tuple(int(d) for d in (input_shape if isinstance(input_shape, (tuple, list)) else (input_shape,)))
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive integers, not {input_shape!r}")
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "input_shape": list(shape),
        "layers": [_layer_spec(m) for m in model],
        "metadata": _plain(metadata or getattr(model, "metadata", {}) or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)             # mkstemp's 0600 would surprise whoever shares the model
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _plain(value):
    """Keep metadata to plain JSON-like data so the file stays loadable with weights_only=True."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None:
        return None
    for plain in (bool, int, float, str):     # subclasses (TorchVersion, numpy scalars) become plain types
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"model metadata must hold plain data (dict, list, str, number, bool), not {type(value).__name__}")


def _rebuild(spec: dict, position: int, path: Path) -> nn.Module:
    kind = spec.get("type")
    try:
        if kind == "InputQuant":
            return InputQuant(int(spec["bits"]))
        if kind == "BinaryLinear":
            m = BinaryLinear(int(spec["in_features"]), int(spec["out_features"]), bias=bool(spec["bias"]),
                             weight_bits=int(spec.get("weight_bits", 1)), scale=bool(spec.get("scale", False)))
        elif kind == "BinaryConv2d":
            m = BinaryConv2d(int(spec["in_channels"]), int(spec["out_channels"]), tuple(spec["kernel_size"]),
                             stride=tuple(spec["stride"]), padding=tuple(spec["padding"]),
                             pad_value=float(spec["pad_value"]), bias=bool(spec["bias"]),
                             weight_bits=int(spec.get("weight_bits", 1)), scale=bool(spec.get("scale", False)))
        elif kind == "BinaryAct":
            return BinaryAct()
        elif kind == "QuantAct":
            return QuantAct(int(spec["bits"]), mode=str(spec["mode"]), scale=float(spec["scale"]),
                            narrow=bool(spec["narrow"]))
        elif kind == "BatchNorm2d":
            m = nn.BatchNorm2d(int(spec["num_features"]), eps=float(spec["eps"]), momentum=spec["momentum"],
                               affine=bool(spec["affine"]), track_running_stats=bool(spec["track_running_stats"]))
        elif kind == "MaxPool2d":
            return nn.MaxPool2d(spec["kernel_size"], stride=spec["stride"], padding=spec["padding"],
                                dilation=spec["dilation"], ceil_mode=bool(spec["ceil_mode"]))
        elif kind == "BatchNorm1d":
            m = nn.BatchNorm1d(int(spec["num_features"]), eps=float(spec["eps"]), momentum=spec["momentum"],
                               affine=bool(spec["affine"]), track_running_stats=bool(spec["track_running_stats"]))
        elif kind == "Flatten":
            return nn.Flatten(int(spec["start_dim"]), int(spec["end_dim"]))
        elif kind == "ResidualBlock":
            shortcut = spec["shortcut"]
            if shortcut is not None and shortcut.get("type") != "QuantAct":
                raise ValueError(f"its shortcut is a {shortcut.get('type')!r}, not a QuantAct")
            return ResidualBlock(*[_rebuild(s, position, path) for s in spec["body"]],
                                 shortcut=None if shortcut is None else _rebuild(shortcut, position, path))
        elif kind == "unsupported":
            return UnsupportedModule(str(spec["class"]), str(spec.get("description", "")))
        else:
            raise ModelFileError(f"{path}: layer {position} has unknown type {kind!r}; "
                                 "the file may come from a newer bnn2hw, upgrade bnn2hw to read it")
        m.load_state_dict(spec["state"])
        return m
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: layer {position} ({kind}) is damaged ({e}); "
                             "save the model again with bnn2hw.save") from None


def load(path: str | os.PathLike) -> BinaryNet:
    """Read a model written by :func:`save`. The model is returned in eval mode.

    Raises :class:`ModelFileError` with one clear sentence for a missing file, a file that is not a
    bnn2hw model, or a file that holds Python objects (which is refused, never executed).
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file '{path}' does not exist; check the path")
    if path.is_dir():
        raise ModelFileError(f"'{path}' is a directory, not a model file; give the path of a .pt file")
    try:
        with warnings.catch_warnings():     # torch's pickle-protocol notes mean nothing to a user here
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(
            f"'{path}' is not a bnn2hw model file: torch.load(weights_only=True) refused it (it holds Python "
            "objects, or is no PyTorch file at all) and bnn2hw never runs code from a model file; "
            "save the model with bnn2hw.save(model, path, input_shape)"
        ) from None
    except Exception as e:     # torch raises many types (KeyError, RuntimeError, EOFError, …) for non-models
        raise ModelFileError(f"'{path}' is not a bnn2hw model file (torch could not read it: {e}); "
                             "save the model with bnn2hw.save(model, path, input_shape)") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise ModelFileError(f"'{path}' is a PyTorch file but not a bnn2hw model file; "
                             "save the model with bnn2hw.save(model, path, input_shape)")
    version = payload.get("version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"'{path}' has bnn2hw model format version {version!r}, but this bnn2hw reads "
                             f"version {FORMAT_VERSION}; use a matching bnn2hw release")
    try:
        layers = [_rebuild(spec, i, path) for i, spec in enumerate(payload["layers"])]
        model = BinaryNet(*layers, input_shape=tuple(int(d) for d in payload["input_shape"]),
                          metadata=payload.get("metadata") or {})
    except (KeyError, TypeError, AttributeError) as e:
        raise ModelFileError(f"'{path}' is a damaged bnn2hw model file (missing {e}); "
                             "save the model again with bnn2hw.save") from None
    return model.eval()
