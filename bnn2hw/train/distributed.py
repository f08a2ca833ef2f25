"""Several training processes as one: PyTorch's DistributedDataParallel over gloo (CPU), launched by
``torchrun`` (several machines, or one) or by :func:`spawn_local` (one machine).

Every process holds the whole data set and draws the same shuffle and the same masks (the seeds are
shared); each takes every ``world``-th sample of a global batch, so the global batch stays
``batch_size`` whatever the number of processes. What makes the result that of one process with the
same global batch:

* the loss of a process is its samples' sum over the global batch's size, times the world size, so
  that DDP's gradient average is the mean over the global batch;
* BatchNorm normalises with the statistics of the global batch (:func:`synced_batch_norm`: two
  all-reduces per layer, autograd-aware; ``torch.nn.SyncBatchNorm`` refuses CPU tensors);
* parameters start equal (same seed; DDP broadcasts them from rank 0) and stay equal, because every
  process applies the same all-reduced gradient, so masks that rank latents agree too.

What differs is rounding: a sum split over processes adds in another order, so the parameters differ
from one process's in the last bits, and a latent within rounding of a sign flip can flip on one side
only (tests/test_train_distributed.py measures it).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

__all__ = ["World", "current_world", "synced_batch_norm", "spawn_local", "free_port", "init_from_environment",
           "torchrun_world_size"]


@dataclass(frozen=True)
class World:
    """This process's rank among ``size`` training processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_world() -> World:
    """The initialised process group's rank and size, or a world of one."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def torchrun_world_size() -> int:
    """WORLD_SIZE as torchrun sets it, or 0 outside torchrun."""
    try:
        return int(os.environ.get("WORLD_SIZE", "0"))
    except ValueError:
        return 0


def init_from_environment() -> World:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) over gloo."""
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return current_world()


class _SumOverProcesses(torch.autograd.Function):
    """Forward: the sum of ``x`` over all processes. Backward: the same sum of the gradient (every
    process's loss depends on every process's ``x`` through the sum)."""

    @staticmethod
    def forward(ctx, x):
        total = x.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad):
        total = grad.clone()
        dist.all_reduce(total)
        return total


def differentiable_all_reduce(x: torch.Tensor) -> torch.Tensor:
    return _SumOverProcesses.apply(x)


def leave() -> None:
    """Leave the process group :func:`init_from_environment` joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def _synced_forward(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    if not bn.training:
        return type(bn).forward(bn, x)
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype)
    total = differentiable_all_reduce(torch.cat([x.sum(dims), count]))
    n = total[-1].detach()
    mean = total[:-1] / n
    centred = x - mean.view(shape)
    var = differentiable_all_reduce((centred * centred).sum(dims)) / n
    y = centred / torch.sqrt(var + bn.eps).view(shape)
    if bn.affine:
        y = y * bn.weight.view(shape) + bn.bias.view(shape)
    if bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            bn.running_var.mul_(1 - momentum).add_(var.detach() * n / (n - 1), alpha=momentum)
    return y


@contextlib.contextmanager
def synced_batch_norm(model: nn.Module):
    """Inside: every BatchNorm of ``model`` normalises training batches with the statistics of the
    global batch (all processes). Outside (and in eval mode) they are ordinary BatchNorms."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.forward = functools.partial(_synced_forward, bn)
    try:
        yield
    finally:
        for bn in bns:
            del bn.forward


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _local_worker(rank: int, size: int, port: int, fn, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        fn(*args)
    finally:
        dist.destroy_process_group()


def spawn_local(processes: int, fn, *args) -> None:
    """Run ``fn(*args)`` in ``processes`` new processes on this machine, joined as one gloo process
    group on 127.0.0.1 (what ``torchrun --standalone --nproc-per-node N`` does). ``fn`` must be a
    module-level function; rank 0's side effects (files) are the result."""
    torch.multiprocessing.spawn(_local_worker, args=(processes, free_port(), fn, args), nprocs=processes, join=True)


def average_gradients(params, world: World) -> None:
    """All-reduce the gradients of parameters DDP does not own (KBOP's learned scales) to their mean."""
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world.size)


def shard(indices: torch.Tensor, world: World) -> torch.Tensor:
    """This process's share of a global batch: every ``world.size``-th index from its rank on."""
    return indices[world.rank::world.size]


def shard_loss(scores: torch.Tensor, labels: torch.Tensor, global_count: int, world: World) -> torch.Tensor:
    """The loss whose DDP-averaged gradient is that of the mean loss over the global batch."""
    return F.cross_entropy(scores, labels, reduction="sum") * (world.size / global_count)


__all__ += ["average_gradients", "shard", "shard_loss", "leave"]
