"""Training on several processes (`torchrun`): which rows of each global batch a rank trains on, the process
group, batch norm synchronised across ranks, and the few collectives the loop needs besides
DistributedDataParallel's gradient all-reduce.

The rule for randomness (docs/training.md, "Several GPUs and machines"): every rank seeds the same streams
from the seed (the data order from `seed`, the noise from `seed + 1`), draws the numbers of the whole global
batch and keeps its own rows: of each global batch of B = W b rows, rank r of W trains on rows
[r b, (r + 1) b). So rank r's images and noise are a function of the seed and its rank, no two ranks share a
row, and the numbers drawn do not depend on the world size: W processes compute what one process computes at
the same global batch, up to floating-point rounding, and a checkpoint resumes at any world size.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from common.errors import UserError

T = TypeVar("T")
# Rank 0 evaluates alone at the end of an epoch while the others wait in the next collective: the shipped
# manifests record P0 evaluations of 15-81 minutes on 2 CPU cores, beyond torch's default timeouts (10 minutes
# for NCCL, 30 for gloo).
COLLECTIVE_TIMEOUT = timedelta(hours=3)


class DistributedError(UserError):
    """A launch that cannot work (world size, GPUs per node); one line, from rank 0."""


def _environment_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"{name}={value!r} is not an integer (torchrun sets it)") from None


class World:
    """This process's place among the training processes: rank `rank` of `size` (torchrun's RANK and
    WORLD_SIZE), `local_rank` of `local_size` on its node. Size 1 (no torchrun, or one process) is the
    single-process run: no process group, no collective, every method a no-op or a plain call."""

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int = 0, local_size: int = 1):
        self.rank, self.size, self.local_rank, self.local_size = rank, size, local_rank, local_size
        self.control: dist.ProcessGroup | None = None  # gloo, for the loop's small CPU-side agreements

    @classmethod
    def from_environment(cls) -> World:
        size = _environment_int("WORLD_SIZE", 1)
        return cls(
            _environment_int("RANK", 0),
            size,
            _environment_int("LOCAL_RANK", 0),
            _environment_int("LOCAL_WORLD_SIZE", size),
        )

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise DistributedError(
                f"batch_size {batch_size} is the global batch and must split evenly across the {self.size} "
                f"processes (give a multiple of {self.size}, or another --nproc-per-node)"
            )

    # ------------------------------------------------------------------ the process group
    def join(self, device: torch.device) -> torch.device:
        """Join the process group (NCCL on CUDA, gloo on the CPU); returns this rank's device."""
        if not self.distributed:
            return device
        if device.type == "cuda":
            if self.local_size > torch.cuda.device_count():
                raise DistributedError(
                    f"{self.local_size} processes on this node but {torch.cuda.device_count()} CUDA device(s): "
                    "give --nproc-per-node at most the number of GPUs, or --device cpu (gloo)"
                )
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
            # With NCCL a CPU-side question (stop now? did rank 0 fail?) would cost a GPU sync: gloo answers it.
            self.control = dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT) if backend == "nccl" else None
        return device

    def leave(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    # ------------------------------------------------------------------ which rows a rank trains on
    def rows(self, global_rows: torch.Tensor, steps: int = 1) -> torch.Tensor:
        """This rank's rows of `steps` consecutive global batches (their first dimension), step after step."""
        if not self.distributed:
            return global_rows
        return global_rows.unflatten(0, (steps, self.size, -1))[:, self.rank].flatten(0, 1)

    def draw(self, sample: Callable[[int], torch.Tensor], local_rows: int, steps: int = 1) -> torch.Tensor:
        """This rank's rows of `sample(n)` drawn for the whole global batch (n = local_rows x world size)."""
        return self.rows(sample(local_rows * self.size), steps)

    # ------------------------------------------------------------------ agreements
    def any_signal(self, signal: int | None) -> int | None:
        """The stop signal any rank received (every rank must stop at the same block boundary)."""
        if not self.distributed:
            return signal
        flag = torch.tensor([signal or 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.control)
        return int(flag) or None

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean over ranks, in place (a rank's running sums of per-batch means -> the global batch's)."""
        if self.distributed:
            dist.all_reduce(tensor)
            tensor /= self.size
        return tensor

    def sum(self, value: float) -> float:
        if not self.distributed:
            return value
        total = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(total, group=self.control)
        return float(total)

    def on_main(self, work: Callable[[], T]) -> T | None:
        """`work()` on rank 0 alone (files, evaluation); every rank learns whether it failed."""
        if not self.distributed:
            return work()
        result, error = None, None
        if self.is_main:
            try:
                result = work()
            except Exception as caught:
                error = caught
        self._settle(error)
        return result

    def together(self, work: Callable[[], T]) -> T | None:
        """`work()` on every rank, each node's local rank 0 first (a download into the node's MNIST folder
        happens once); a failure on any rank is reported by rank 0."""
        if not self.distributed:
            return work()
        result = None
        for leaders_turn in (True, False):
            error = None
            if (self.local_rank == 0) == leaders_turn:
                try:
                    result = work()
                except Exception as caught:
                    error = caught
            self._settle(error)
        return result

    def _settle(self, error: Exception | None) -> None:
        """If any rank failed, rank 0 raises (its own exception, else the first failed rank's message) and the
        others exit quietly with the same status: one report per failure, not one per process."""
        outcome = None if error is None else (isinstance(error, UserError), str(error))
        outcomes: list = [None] * self.size
        dist.all_gather_object(outcomes, outcome, group=self.control)
        failures = [(rank, failed) for rank, failed in enumerate(outcomes) if failed is not None]
        if not failures:
            return
        rank, (user_error, message) = failures[0]
        if not self.is_main:
            raise SystemExit(2 if user_error else 1)
        if error is not None:
            raise error
        raise (UserError if user_error else RuntimeError)(f"rank {rank}: {message}")

    def check_identical(self, tensors: dict[str, torch.Tensor]) -> None:
        """Every rank holds the same state (weights, EMA, optimizer, RNG): what rank 0 checkpoints is the run's.
        A difference is a bug in the distributed loop, not a user error."""
        if not self.distributed:
            return
        names = sorted(tensors)  # not the dict's order: a loaded checkpoint's order differs between processes
        fingerprint = torch.stack([tensors[name].detach().double().sum().cpu() for name in names])
        fingerprints = [torch.empty_like(fingerprint) for _ in range(self.size)]
        dist.all_gather(fingerprints, fingerprint, group=self.control)
        for rank, other in enumerate(fingerprints):
            differ = [names[i] for i in (other != fingerprints[0]).nonzero().flatten().tolist()]
            if differ:
                raise RuntimeError(f"rank {rank}'s training state differs from rank 0's: {', '.join(differ[:5])}")


# ---------------------------------------------------------------------- batch norm across ranks
class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) as a differentiable op: the gradient of a sum over ranks is the sum of the ranks'
    gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        return total


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm with the global batch's statistics in training, on the CPU. torch's SyncBatchNorm is CUDA-only
    (its statistics kernels have no CPU version, and DDP refuses it in a CPU module), so the per-channel sums of
    x and x^2 (float64) are all-reduced here. In eval mode it is plain batch norm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        pass  # checked by the BatchNorm1d/2d it replaces: the shapes never change

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(input)
        self.num_batches_tracked.add_(1)
        channels = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        count = input.numel() // input.shape[1] * dist.get_world_size()  # every rank has as many rows
        x = input.double()
        sums = _SumOverRanks.apply(torch.cat([x.sum(channels), x.pow(2).sum(channels)]))
        mean, mean_square = (sums / count).chunk(2)
        variance = mean_square - mean.pow(2)
        with torch.no_grad():
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            unbiased = variance * count / (count - 1)
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
        scale = torch.rsqrt(variance + self.eps).to(input.dtype) * self.weight
        return (input - mean.to(input.dtype).view(shape)) * scale.view(shape) + self.bias.view(shape)


def synchronise_batch_norm(module: nn.Module, world: World, device: torch.device) -> nn.Module:
    """`module` with every batch norm computing its statistics over the global batch (all ranks' rows)."""
    if not world.distributed:
        return module
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.__class__ = CpuSyncBatchNorm  # the same parameters and buffers; only the forward differs
    return module
