"""Firing-rate diagnostic: per hidden layer, the fraction of +1 outputs per channel in the PyTorch model
against the bit-exact hardware (golden) model, compared with the Earth Mover's Distance.

The reference is the PyTorch model in train mode (BatchNorm normalises with the statistics of each
batch, as while training) or in eval mode (running statistics: what the thresholds are folded from).
Hardware and eval mode are bit-exact, so ``reference="eval"`` gives EMD 0 in every layer: the
diagnostic's self-check. See docs/diagnose.md.
"""

from __future__ import annotations

import copy
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, golden
from .flow import Compiled, Progress, compile_model
from .errors import Bnn2hwError, InputDataError
from .ir import ThresholdDense

__all__ = ["LayerRates", "Diagnosis", "firing_rate_report", "write_diagnosis", "diagnosis_dict", "plot_diagnosis",
           "train_batches", "REFERENCES"]

REFERENCES = ("train", "eval")
_GENERATOR = "bnn2hw-diagnose"
_EVAL_CHUNK = 4096      # samples per block where batching does not change the result


def _quiet(step: str, seconds: float) -> None:
    pass


@dataclass(frozen=True)
class LayerRates:
    """One hidden layer: per-channel firing rates of the reference and of the hardware, and their EMD."""
    name: str                        # the golden model's layer name (dense0, dense1, ...)
    channels: int
    reference_rates: np.ndarray      # (channels,) float64, fraction of samples with output +1
    hardware_rates: np.ndarray
    emd: float                       # wasserstein_distance(reference_rates, hardware_rates)

    @property
    def reference_mean(self) -> float:
        return float(self.reference_rates.mean())

    @property
    def hardware_mean(self) -> float:
        return float(self.hardware_rates.mean())

    @property
    def max_channel_diff(self) -> float:
        """Largest |reference - hardware| of one channel (the EMD ignores which channel is which)."""
        return float(np.max(np.abs(self.reference_rates - self.hardware_rates)))


@dataclass(frozen=True)
class Diagnosis:
    model: str
    reference: str                   # "train" or "eval"
    batch_size: int
    samples: int
    layers: tuple[LayerRates, ...]
    data: str = ""                   # where the inputs came from, for the report
    batches: tuple[int, ...] = field(default=())   # train reference: the batch sizes used, in order

    @property
    def reference_label(self) -> str:
        if self.reference == "eval":
            return "PyTorch eval mode"
        return f"training-time (PyTorch train mode, batches of {self.batch_size})"


def train_batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) batches; a last batch of one sample is folded into the one before it,
    since BatchNorm cannot take batch statistics of a single sample."""
    bounds = list(range(0, n, batch_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return list(zip(bounds[:-1], bounds[1:]))


def firing_rate_report(model: str | Path | Compiled, x, batch_size: int = 64, reference: str = "train", *,
                       data: str = "", progress: Progress = _quiet) -> Diagnosis:
    """Compare per-channel firing rates of every hidden layer between the PyTorch reference and hardware.

    ``model`` is a model file or a :class:`~bnn2hw.flow.Compiled`; ``x`` holds integer pixels of shape
    (n, *input_shape). The model itself is never changed (the reference runs on a float64 copy).
    """
    from scipy.stats import wasserstein_distance

    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, not {reference!r}")
    compiled = model if isinstance(model, Compiled) else compile_model(model)
    x = golden.check_inputs(compiled.graph, x)
    n = len(x)
    if reference == "train":
        if batch_size < 2:
            raise Bnn2hwError(f"batch size {batch_size} is too small for BatchNorm batch statistics; "
                              "use a batch size of at least 2, or the eval-mode reference")
        if n < 2:
            raise InputDataError("the train-mode reference needs at least 2 samples for BatchNorm batch statistics; "
                                 "give more inputs, or use the eval-mode reference")
        batches = train_batches(n, batch_size)
    else:
        batches = [(s, min(s + _EVAL_CHUNK, n)) for s in range(0, n, _EVAL_CHUNK)]

    t0 = time.perf_counter()
    ref_counts = _torch_counts(compiled, x, batches, train=reference == "train")
    progress("PyTorch reference" + (f", train mode, {len(batches)} batches" if reference == "train" else ", eval mode"),
             time.perf_counter() - t0)
    t0 = time.perf_counter()
    hw_names, hw_counts = _hardware_counts(compiled, x)
    progress("golden model (hardware)", time.perf_counter() - t0)

    if len(ref_counts) != len(hw_counts):
        raise Bnn2hwError(f"model '{compiled.model_path}' has {len(ref_counts)} BinaryAct layers but its hardware "
                          f"has {len(hw_counts)} hidden layers, so their firing rates cannot be paired; "
                          "check that every BinaryAct directly follows a BinaryLinear (or its BatchNorm1d)")
    layers = []
    for name, ref, hw in zip(hw_names, ref_counts, hw_counts):
        if ref.shape != hw.shape:
            raise Bnn2hwError(f"layer {name} of model '{compiled.model_path}' has {hw.shape[0]} channels in hardware "
                              f"but its BinaryAct gives {ref.shape[0]}; the model does not match its compiled graph")
        r, h = ref / n, hw / n
        layers.append(LayerRates(name, int(hw.shape[0]), r, h, float(wasserstein_distance(r, h))))
    if not layers:
        raise Bnn2hwError(f"model '{compiled.model_path}' has no hidden layers, so it has no firing rates to compare; "
                          "the diagnostic needs at least one BinaryAct")
    return Diagnosis(model=compiled.model_path, reference=reference, batch_size=int(batch_size), samples=n,
                     layers=tuple(layers), data=data,
                     batches=tuple(b - a for a, b in batches) if reference == "train" else ())


def _torch_counts(compiled: Compiled, x: np.ndarray, batches, train: bool) -> list[np.ndarray]:
    """Number of +1 outputs per channel of every BinaryAct, on a float64 copy of the model."""
    import torch

    from .nn import BinaryAct

    model = copy.deepcopy(compiled.torch_model).double()   # a copy: the running statistics stay as they are
    model.train(train)
    for m in model.modules():
        if getattr(m, "quantizer", None) is not None:    # training-time stochastic rules: measure the plain sign
            m.quantizer = None
    acts = [m for m in model.modules() if isinstance(m, BinaryAct)]
    counts = [None] * len(acts)

    def hook(k):
        def count(module, inputs, output):
            c = (output.reshape(output.shape[0], -1) == 1).sum(0).numpy().astype(np.int64)
            counts[k] = c if counts[k] is None else counts[k] + c
        return count

    handles = [m.register_forward_hook(hook(k)) for k, m in enumerate(acts)]
    shape = tuple(compiled.torch_model.input_shape)
    threads = torch.get_num_threads()
    if train:
        # Training-size batches gain nothing from intra-op threads, and on busy cores OpenMP's waiting
        # made the digits test split take 1.4-2 s instead of 0.02 s (2 shared cores).
        torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for a, b in batches:
                model(torch.from_numpy(x[a:b].astype(np.float64).reshape((b - a,) + shape)))
    finally:
        torch.set_num_threads(threads)
        for h in handles:
            h.remove()
    return counts


def _hardware_counts(compiled: Compiled, x: np.ndarray) -> tuple[list[str], list[np.ndarray]]:
    """Number of 1 bits per channel of every threshold layer in the golden model."""
    names = [n.name for n in compiled.graph.nodes if isinstance(n, ThresholdDense)]
    counts = [np.zeros(n.out_features, np.int64) for n in compiled.graph.nodes if isinstance(n, ThresholdDense)]
    for s in range(0, len(x), _EVAL_CHUNK):
        result = golden.run(compiled.graph, x[s:s + _EVAL_CHUNK], trace=True)
        by_name = {t.name: t.output for t in result.trace}
        for k, name in enumerate(names):
            counts[k] += by_name[name].sum(0, dtype=np.int64)
    return names, counts


def diagnosis_dict(diagnosis: Diagnosis) -> dict:
    """The JSON form of a diagnosis (what ``diagnose.json`` holds)."""
    return {
        "generator": _GENERATOR, "bnn2hw_version": __version__, "model": diagnosis.model,
        "data": diagnosis.data, "samples": diagnosis.samples, "reference": diagnosis.reference,
        "reference_label": diagnosis.reference_label, "batch_size": diagnosis.batch_size,
        "batch_count": len(diagnosis.batches), "last_batch_size": diagnosis.batches[-1] if diagnosis.batches else None,
        "rate": "fraction of samples whose output is +1 (hardware bit 1), per channel",
        "layers": [{
            "name": layer.name, "channels": layer.channels, "emd": layer.emd,
            "reference_mean_rate": layer.reference_mean, "hardware_mean_rate": layer.hardware_mean,
            "max_channel_diff": layer.max_channel_diff,
            "reference_rates": layer.reference_rates.tolist(), "hardware_rates": layer.hardware_rates.tolist(),
        } for layer in diagnosis.layers],
    }


def plot_diagnosis(diagnosis: Diagnosis):
    """A matplotlib Figure: per hidden layer the two firing-rate histograms, and a bar chart of EMD."""
    from matplotlib.figure import Figure

    layers = diagnosis.layers
    panels = len(layers) + 1
    cols = min(panels, 3)
    rows = -(-panels // cols)
    fig = Figure(figsize=(4.6 * cols, 3.8 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    bins = np.linspace(0.0, 1.0, 21)
    ref_label = "PyTorch eval mode" if diagnosis.reference == "eval" else "training-time (batch statistics)"
    for ax, layer in zip(axes, layers):
        ax.hist(layer.reference_rates, bins=bins, color="tab:blue", alpha=0.45, label=ref_label)
        ax.hist(layer.hardware_rates, bins=bins, histtype="step", color="tab:red", linewidth=2.0,
                label="hardware (golden model)")
        ax.set_title(f"{layer.name} ({layer.channels} channels): EMD {layer.emd:.4g}")
        ax.set_xlabel("firing rate (fraction of +1 outputs)")
        ax.set_ylabel("channels")
        ax.set_xlim(0.0, 1.0)
        tallest = max(np.histogram(r, bins)[0].max() for r in (layer.reference_rates, layer.hardware_rates))
        ax.set_ylim(0.0, tallest * 1.45 + 1)      # headroom so the legend covers no bar
        ax.legend(fontsize="small", loc="upper left")
    bar = axes[len(layers)]
    emds = [layer.emd for layer in layers]
    bars = bar.bar([layer.name for layer in layers], emds, color="tab:purple")
    bar.bar_label(bars, labels=[f"{e:.4g}" if e else "0 (identical)" for e in emds], padding=2)
    bar.set_ylim(0.0, max(emds) * 1.25 if max(emds) > 0 else 0.01)
    bar.set_title("EMD per hidden layer")
    bar.set_xlabel("layer")
    bar.set_ylabel("Earth Mover's Distance of firing rates")
    for ax in axes[panels:]:
        ax.set_visible(False)
    fig.suptitle(f"Firing rates, {diagnosis.reference_label} vs hardware: {Path(diagnosis.model).name}, "
                 f"{diagnosis.samples} samples" + (f" ({diagnosis.data})" if diagnosis.data else ""))
    return fig


def write_diagnosis(diagnosis: Diagnosis, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``diagnose.json`` and ``diagnose.png`` into ``out_dir`` (created if needed).

    Both are rendered in memory first and then moved into place, so an error leaves neither half-written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise Bnn2hwError(f"output path '{out_dir}' is a file, not a directory; choose another --out")
    text = json.dumps(diagnosis_dict(diagnosis), indent=2) + "\n"
    png = io.BytesIO()
    plot_diagnosis(diagnosis).savefig(png, format="png", dpi=110)
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {out_dir / "diagnose.json": text.encode(), out_dir / "diagnose.png": png.getvalue()}
    umask = os.umask(0)
    os.umask(umask)
    temps = {}
    try:
        for path, payload in targets.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=out_dir)
            temps[path] = tmp
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.chmod(tmp, 0o666 & ~umask)     # mkstemp's 0600 would surprise whoever shares the results
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out_dir / "diagnose.json", out_dir / "diagnose.png"
