"""``bnn2hw train``: train a binary MLP with StoMPP or the STE baseline and write a model file that
``bnn2hw compile`` takes as it is. Options map one to one onto :class:`bnn2hw.train.TrainConfig` and
:class:`bnn2hw.train.BinarizationConfig` (docs/training.md)."""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..data import REGISTRY, load_training_data
from ..errors import Bnn2hwError, TrainingConfigError
from .console import err, out

__all__ = ["train_cmd", "parse_hidden", "parse_bits", "Job", "run_job"]

MAX_BITS = 8  # bnn2hw.nn.MAX_BITS, repeated so that `bnn2hw --help` need not import torch


def parse_hidden(text: str, option: str = "--hidden") -> tuple[int, ...]:
    try:
        widths = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        widths = ()
    if not widths or any(w < 1 for w in widths):
        raise TrainingConfigError(f"{option} must be comma-separated positive layer widths such as 256,256, "
                                  f"not '{text}'")
    return widths


def parse_bits(text, option: str) -> int | tuple[int, ...]:
    """``--act-bits``/``--weight-bits``: one width for every layer ("2") or one per layer ("2,2,1")."""
    text = str(text)
    try:
        bits = tuple(int(t) for t in text.split(","))
    except ValueError:
        bits = ()
    if not bits or any(not 1 <= b <= MAX_BITS for b in bits):
        raise TrainingConfigError(f"{option} must be a number of bits from 1 to {MAX_BITS}, or a comma-separated "
                                  f"list of them with one per layer such as 2,2,1, not '{text}'")
    return bits[0] if len(bits) == 1 else bits


def _write_json(path: Path, data: dict) -> None:
    """Atomic: readers (and a crash) see the previous complete log or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


#: Every data set of the registry with its description.
_DATASET_HELP = ("Data set: " + "; ".join(f"{d.name}: {d.description}" for d in REGISTRY.values())
                 + ". Files are read from --data-dir (nothing is downloaded).")


@click.command("train")
@click.option("--dataset", default="digits", show_default=True, help=_DATASET_HELP)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Directory holding the IDX files (MNIST, Fashion-MNIST) or CIFAR-10 binary batches.")
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the digits train/test split.")
@click.option("--hidden", default="256,256", show_default=True, help="Hidden layer widths, comma-separated.")
@click.option("--conv", default="", show_default=False,
              help="Convolution channels, comma-separated (e.g. 16,32): 3x3 blocks (pad value -1), each followed "
                   "by BatchNorm, sign and a 2x2 max-pool, before the --hidden dense layers. Empty: an MLP.")
@click.option("--residual", default="none", show_default=True,
              help="none (plain network), real (a Bi-Real real-valued shortcut around every layer that keeps the "
                   "width) or a number of bits 2..8 (those shortcuts quantized to that many bits). Trains; not "
                   "compilable yet.")
@click.option("--net", default="bnn", show_default=True,
              help="bnn (binary weights and activations) or bwn (binary weights only; not compilable).")
@click.option("--act-bits", type=str, default=1, show_default=True,
              help="Bits of the hidden activations: 1 = sign (BinaryAct); 2..8 = QuantAct on the signed dyadic "
                   "grid j/2^(bits-1), j = -2^(bits-1) .. 2^(bits-1)-1 (2^bits levels in [-1, 1)). One number for "
                   "all, or one per activation, comma-separated (convolutions first), e.g. 2,2,1.")
@click.option("--weight-bits", type=str, default=1, show_default=True,
              help="Bits of the weights: 1 = ±1, 2 = ternary {-1, 0, 1}, k = integers -M..M, M = 2^(k-1)-1. One "
                   "number for all, or one per weight layer including the output layer, comma-separated. Multi-bit "
                   "layers use the clipped STE as their only surrogate; Bop and KBOP need 1-bit weights.")
@click.option("--method", default="stompp", show_default=True,
              help="stompp (STE-free), stompp+sg (surrogate on frozen entries only) or ste (BinaryConnect baseline).")
@click.option("--surrogate", default="ste_clip", show_default=True,
              help="Surrogate gradient of stompp+sg and ste: ste, ste_clip, approxsign, swishsign, ede (multi-bit "
                   "layers: ste_clip only).")
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--unit-steps", type=int, default=0, show_default=True,
              help="Optimizer steps per unit window; the run's length follows from it and --epochs is ignored "
                   "(0: the run is --epochs long).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--optimizer", default="adam", show_default=True,
              help="adam, sgd (momentum 0.9), bop or kbop (latent-free: binary weights flip; Adam for the rest).")
@click.option("--lr", type=float, default=None,
              help="Learning rate of Adam/SGD. Default: the method's own (ste 0.03, stompp and stompp+sg 0.1; see "
                   "docs/training.md), each chosen on a validation split.")
@click.option("--lr-schedule", default="cosine", show_default=True, help="cosine or constant.")
@click.option("--logit-scale", type=float, default=0.0, show_default=True,
              help="Scores are multiplied by this inside the loss; 0 = 4/sqrt(width of the last hidden layer).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of initialisation, shuffling and masks.")
@click.option("--order", default="forward", show_default=True, help="Unit order: forward, reverse or random.")
@click.option("--scope", default="layerwise", show_default=True,
              help="layerwise (one window per unit) or global (all units share the window).")
@click.option("--spacing", default="uniform", show_default=True,
              help="Window lengths: uniform, or cubic (FreezeOut-style: first units quick, last ones slow).")
@click.option("--ramp", default="linear", show_default=True, help="Frozen-fraction ramp: linear or cosine.")
@click.option("--window-start", type=float, default=0.3, show_default=True,
              help="Training progress (0..1) at which freezing starts (before it, the clipped network learns).")
@click.option("--window-end", type=float, default=1.0, show_default=True,
              help="Training progress (0..1) by which every unit is frozen.")
@click.option("--overlap", type=float, default=0.0, show_default=True, help="Overlap of consecutive windows, [0, 1).")
@click.option("--priority", default="error", show_default=True,
              help="Which entries freeze first: uniform (random) or error (latents near ±1 first).")
@click.option("--granularity", default="element", show_default=True,
              help="Weight-mask unit: element or out_channel.")
@click.option("--activation-masks", default="per_batch", show_default=True,
              help="persistent (one mask per unit) or per_batch (resampled every step).")
@click.option("--pairing", default="input", show_default=True,
              help="Activation a unit freezes with its weights: input or output.")
@click.option("--refresh-epochs", type=float, default=1.0, show_default=True,
              help="Soft-refresh period in epochs (0: never).")
@click.option("--refresh-fraction", type=float, default=0.1, show_default=True,
              help="Fraction of frozen entries released at each refresh.")
@click.option("--refresh-mode", default="swap", show_default=True, help="swap, resample or activations.")
@click.option("--bop-gamma", type=float, default=1e-3, show_default=True)
@click.option("--bop-tau", type=float, default=1e-6, show_default=True)
@click.option("--kbop-lr", type=float, default=0.5, show_default=True,
              help="KBOP rigidity learning rate λ in (0, 1]; threshold μ + (1/λ - 1)σ.")
@click.option("--kbop-beta", type=float, default=0.9, show_default=True)
@click.option("--no-recalibrate", is_flag=True, help="Keep BatchNorm statistics from training (not recommended).")
@click.option("--threads", type=int, default=1, show_default=True,
              help="CPU threads per process (results are deterministic for a given seed and thread count).")
@click.option("--processes", type=int, default=1, show_default=True,
              help="Training processes on this machine (DistributedDataParallel over gloo; --batch-size stays the "
                   "global batch). Under torchrun leave it at 1: torchrun sets the processes.")
@click.option("--dtype", default="float32", show_default=True,
              help="Training precision: float32 or float64 (slower; see docs/training.md).")
@click.option("--validation", type=float, default=0.0, show_default=True,
              help="Hold out this fraction of the training samples (stratified) and report accuracy on them instead "
                   "of the test split, e.g. to choose a learning rate (0: off).")
@click.option("--out", "out_file", type=click.Path(path_type=Path), required=True, help="Model file to write.")
@click.option("--log", "log_file", type=click.Path(path_type=Path), default=None,
              help="JSON training log (default: next to --out, <name>.train.json).")
@click.option("--force", is_flag=True, help="Replace --out (and the log) if they exist.")
def train_cmd(dataset, data_dir, split_seed, hidden, conv, residual, net, act_bits, weight_bits, method, surrogate,
              epochs, unit_steps, batch_size, optimizer, lr, lr_schedule, logit_scale, seed, order, scope, spacing, ramp,
              window_start, window_end, overlap, priority, granularity, activation_masks, pairing, refresh_epochs,
              refresh_fraction, refresh_mode, bop_gamma, bop_tau, kbop_lr, kbop_beta, no_recalibrate, threads,
              processes, dtype, validation, out_file, log_file, force):
    """Train a binary (or multi-bit) MLP or CNN; writes MODEL.pt for `bnn2hw compile` and a JSON log per epoch."""
    # On use, so that `bnn2hw --help` need not load torch; neither imports the command line.
    from ..train import BinarizationConfig, TrainConfig
    from ..train.distributed import torchrun_world_size

    binarization = BinarizationConfig(
        method=method, surrogate=surrogate, start=window_start, end=window_end, overlap=overlap, ramp=ramp,
        order=order, scope=scope, spacing=spacing, priority=priority, granularity=granularity,
        refresh_fraction=refresh_fraction, refresh_mode=refresh_mode, activation_masks=activation_masks,
        pairing=pairing)
    config = TrainConfig(hidden=parse_hidden(hidden), net=net, binarization=binarization, epochs=epochs,
                         batch_size=batch_size, optimizer=optimizer, lr=lr, lr_schedule=lr_schedule,
                         logit_scale=logit_scale, refresh_epochs=refresh_epochs, bop_gamma=bop_gamma,
                         bop_tau=bop_tau, kbop_lr=kbop_lr, kbop_beta=kbop_beta, seed=seed,
                         recalibrate=not no_recalibrate, threads=threads,
                         act_bits=parse_bits(act_bits, "--act-bits"),
                         weight_bits=parse_bits(weight_bits, "--weight-bits"), residual=residual,
                         unit_steps=unit_steps, dtype=dtype)
    if processes < 1:
        raise TrainingConfigError(f"the number of processes (--processes) must be at least 1, not {processes}")
    if processes > 1 and torchrun_world_size() > 0:
        raise TrainingConfigError(f"torchrun already started {torchrun_world_size()} processes; leave --processes "
                                  "at 1 under torchrun (its --nproc-per-node sets the count)")
    if not 0.0 <= validation < 1.0:
        raise TrainingConfigError(f"the validation fraction (--validation) must be 0 (off) or between 0 and 1, "
                                  f"not {validation}")
    log_file = log_file or out_file.with_name(out_file.stem + ".train.json")
    for path, what in ((out_file, "--out"), (log_file, "--log")):
        if path.exists() and not force:
            raise Bnn2hwError(f"'{path}' already exists; pass --force to replace it or choose another {what}")
        if path.exists() and path.is_dir():
            raise Bnn2hwError(f"{what} '{path}' is a directory; give a file name")
    for path in {out_file.parent, log_file.parent}:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise Bnn2hwError(f"cannot create the output directory '{path}' ({e.strerror}); choose another --out")

    channels = parse_hidden(conv, "--conv") if conv else ()
    command = "bnn2hw train " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else ""
    job = Job(config=config, dataset=dataset, data_dir=data_dir, split_seed=split_seed, validation=validation,
              channels=channels, out_file=out_file, log_file=log_file, command=command)
    _check_job(job)
    if processes > 1:
        from ..train.distributed import spawn_local

        spawn_local(processes, run_job, job)
    else:
        if torchrun_world_size() > 1:
            from ..train.distributed import init_from_environment, leave

            init_from_environment()
            try:
                run_job(job)
            finally:
                leave()
        else:
            run_job(job)


@dataclass(frozen=True)
class Job:
    """What one training process needs (a module-level, picklable value, for --processes)."""

    config: object
    dataset: str
    data_dir: Path | None
    split_seed: int
    validation: float
    channels: tuple[int, ...]
    out_file: Path
    log_file: Path
    command: str


def _data(job: Job):
    data = load_training_data(job.dataset, job.data_dir, job.split_seed)
    if job.validation:
        from ..data import validation_split

        data = validation_split(data, job.validation, job.config.seed)
    return data


def _check_job(job: Job) -> None:
    """Every error a user can cause, raised here in the launching process (before any worker starts)."""
    from ..train import build_cnn
    from ..train.trainer import per_layer_bits

    config = job.config
    data = _data(job)
    n_acts = len(job.channels) + len(config.hidden)
    per_layer_bits(config.act_bits, n_acts, "activation bits", "--act-bits", "hidden activations")
    per_layer_bits(config.weight_bits, n_acts + 1, "weight bits", "--weight-bits",
                   "weight layers (the output layer included)")
    if job.channels:
        build_cnn(data, job.channels, config.hidden, config.net, act_bits=config.act_bits,
                  weight_bits=config.weight_bits, residual=config.residual)


def run_job(job: Job) -> None:
    """Train as ``job`` says; the main process (rank 0) writes the model, the log and the output lines."""
    import torch

    from ..io import save
    from ..train import build_cnn, train
    from ..train.distributed import current_world
    from ..train.trainer import per_layer_bits

    config, channels, out_file, log_file = job.config, job.channels, job.out_file, job.log_file
    main = current_world().is_main
    data = _data(job)
    n_acts = len(channels) + len(config.hidden)
    layer_act_bits = list(per_layer_bits(config.act_bits, n_acts, "activation bits", "--act-bits",
                                         "hidden activations"))
    layer_weight_bits = list(per_layer_bits(config.weight_bits, n_acts + 1, "weight bits", "--weight-bits",
                                            "weight layers (the output layer included)"))
    net, method, epochs, seed = config.net, config.binarization.method, config.epochs, config.seed
    model = (build_cnn(data, channels, config.hidden, net, act_bits=config.act_bits, weight_bits=config.weight_bits,
                       residual=config.residual) if channels else None)
    precision = ("" if set(layer_act_bits) | set(layer_weight_bits) <= {1} else
                 f", weight bits {','.join(map(str, layer_weight_bits))}, activation bits "
                 f"{','.join(map(str, layer_act_bits))}")
    shape_text = (f"CNN {'x'.join(map(str, model.input_shape))}-conv{'-'.join(map(str, channels))}-"
                  if channels else f"MLP {data.input_shape[0]}-")
    residual = "" if config.residual == "none" else f", residual {config.residual}"
    world = current_world()
    processes = "" if world.size == 1 else f", {world.size} processes"
    split = "validation" if job.validation else "test"
    length = f"{config.unit_steps} steps per unit" if config.unit_steps else f"{epochs} epochs"
    if main:
        err.print(f"[bold]training[/bold] {config.net.upper()} {shape_text}"
                  f"{'-'.join(map(str, config.hidden))}-{data.num_classes}{residual} on {data.name} "
                  f"({len(data.y_train)} train / {len(data.y_test)} {split}), method {method}, {config.optimizer} "
                  f"lr {config.learning_rate:g}, {length}, seed {seed}{precision}{processes}")
    log = {"format": "bnn2hw-train-log", "version": 1, "command": job.command, "dataset": data.name,
           "data": data.description, "act_bits": layer_act_bits, "weight_bits": layer_weight_bits,
           "processes": world.size, "config": config.to_dict(), "epochs": []}

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not main) as bar:
        task = bar.add_task("epoch 1", total=None)

        def on_step(step, total):
            bar.update(task, completed=step, total=total)

        def on_epoch(entry):
            log["epochs"].append(entry)
            _write_json(log_file, log)
            frozen = " ".join(f"{f['target']:.2f}" for f in entry["frozen"])
            bar.console.print(f"  epoch {entry['epoch']:3d}  loss {entry['loss']:.4f}  train-state acc "
                              f"{entry['train_accuracy']:.4f}  deploy {split} acc {entry['deploy_test_accuracy']:.4f}"
                              f"  frozen [{frozen}]", highlight=False)
            bar.update(task, description=f"epoch {entry['epoch'] + 1}")

        result = train(data, config, on_step=on_step if main else None, on_epoch=on_epoch if main else None,
                       model=model)
    if not main:
        return

    metadata = {
        "name": out_file.stem,
        "dataset": data.description,
        "split_seed": job.split_seed,
        "validation_fraction": job.validation,
        "input_format": (f"{data.input_shape[0]} integer pixels as {data.input_bits}-bit unsigned "
                         f"(image {'x'.join(map(str, data.image_shape))}, flattened)" if model is None else
                         f"{'x'.join(map(str, model.input_shape))} (C, H, W) integer pixels as {data.input_bits}-bit "
                         "unsigned"),
        "method": method,
        "net": net,
        "hidden": list(config.hidden),
        "conv": list(channels),
        "residual": config.residual,
        "processes": world.size,
        "act_bits": layer_act_bits,
        "weight_bits": layer_weight_bits,
        "epochs": epochs,
        "batch_size": config.batch_size,
        "seed": seed,
        "train_config": config.to_dict(),
        "test_samples": len(data.y_test),
        "test_correct": result.test_correct,
        "test_accuracy": result.test_accuracy,
        "train_accuracy": result.train_accuracy,
        "accuracy_note": "deploy mode (every binarization hard), eval mode, float64, argmax (first maximum wins)",
        "notes": result.notes,
        "trained_with": job.command,
        "torch_version": str(torch.__version__),
    }
    save(result.model, out_file, input_shape=tuple(result.model.input_shape), metadata=metadata)
    log.update(final={"test_accuracy": result.test_accuracy, "test_correct": result.test_correct,
                      "test_samples": len(data.y_test), "train_accuracy": result.train_accuracy,
                      "seconds": result.seconds, "notes": result.notes})
    _write_json(log_file, log)
    for note in result.notes:
        err.print(f"[yellow]note:[/yellow] {note}")
    if config.residual != "none":
        err.print("[yellow]note:[/yellow] residual blocks train, but `bnn2hw compile` cannot build them yet; train "
                  "without --residual for hardware")
    if net == "bwn":
        err.print("[yellow]note:[/yellow] binary-weight-only models keep real activations, so `bnn2hw compile` "
                  "cannot build them; train with --net bnn for hardware")
    err.print(f"wrote {out_file} and {log_file} ({result.seconds:.1f} s)")
    out.print(f"deploy {split} accuracy: {100 * result.test_accuracy:.2f}% ({result.test_correct}/{len(data.y_test)}) "
              f"on the {job.dataset} {split} split")
