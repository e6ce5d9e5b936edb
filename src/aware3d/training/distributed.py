"""Processes of a training run: torchrun's environment, the process group and small collectives.

``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and
``MASTER_ADDR``/``MASTER_PORT``, as torchrun's rendezvous does on one node or several) starts one
process per device; :func:`init_distributed` joins them with ``gloo`` on CPU and ``nccl`` on
CUDA. Without those variables the run is a single process and no group is created.
"""

import inspect
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

__all__ = ["DistributedContext", "init_distributed"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the run.

    Attributes:
        rank: global rank (0 writes logs, metrics and checkpoints).
        world_size: number of processes.
        local_rank: rank on this node (selects the CUDA device).
        device: this process's device.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        """Whether a process group is in use (``world_size > 1``)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    def barrier(self) -> None:
        """Waits for every process (no-op for one)."""
        if self.distributed:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any process (one small all-reduce)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self._collective_device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item() > 0)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` over processes (``values`` itself for one)."""
        if not self.distributed:
            return values
        reduced = values.detach().to(self._collective_device).clone()
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return (reduced / self.world_size).to(values.device)

    def average_buffers(self, module: torch.nn.Module) -> None:
        """Replaces each floating-point buffer of ``module`` by its mean over processes.

        For running means updated in ``forward`` from each process's own share of the batch
        (the mapping network's ``w_avg``), the mean of the processes' updates equals the update
        from the whole batch, as in one process.
        """
        if not self.distributed:
            return
        for buffer in module.buffers():
            if buffer.is_floating_point():
                reduced = buffer.detach().to(self._collective_device)
                dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
                buffer.copy_(reduced / self.world_size)

    def gather_objects(self, value: Any) -> list[Any]:
        """Every process's ``value`` (picklable), in rank order, on every process."""
        if not self.distributed:
            return [value]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def wrap(self, module: torch.nn.Module, sync_buffers: bool) -> torch.nn.Module:
        """``module`` in ``DistributedDataParallel`` on this process's device.

        ``sync_buffers=False`` leaves the buffers to the loop (:meth:`average_buffers`).
        ``find_unused_parameters`` is on: BallGAN's super-resolution noise strengths are unused
        (EG3D renders it without noise) and so is GSGAN's contrastive branch at weight 0.
        """
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        options: dict[str, Any] = {"device_ids": device_ids, "find_unused_parameters": True}
        if not sync_buffers:  # newer torch renames the option (and still syncs at construction)
            accepted = inspect.signature(DistributedDataParallel.__init__).parameters
            name = (
                "forward_sync_buffers"
                if "forward_sync_buffers" in accepted
                else "broadcast_buffers"
            )
            options[name] = False
        return DistributedDataParallel(module, **options)

    @property
    def _collective_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {text!r}") from None


def init_distributed(device: str) -> DistributedContext:
    """Joins torchrun's process group (if launched by it) and picks this process's device.

    Args:
        device: ``"cpu"``, ``"cuda"`` (each process takes ``cuda:LOCAL_RANK``) or ``"cuda:N"``
            (single process only).

    Returns:
        The :class:`DistributedContext`.

    Raises:
        ValueError: for an explicit ``cuda:N`` with several processes, or malformed torchrun
            variables.
        RuntimeError: if CUDA is requested but not available.
    """
    world_size = _env_int("WORLD_SIZE") or 1
    rank = _env_int("RANK") or 0
    local_rank = _env_int("LOCAL_RANK") or 0
    requested = torch.device(device)
    if requested.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {device} requested but CUDA is not available")
        if world_size > 1 and requested.index is not None:
            raise ValueError(
                f"--device {device} names one GPU but torchrun started {world_size} processes; "
                "use --device cuda (each process takes cuda:LOCAL_RANK)"
            )
        index = local_rank if requested.index is None else requested.index
        chosen = torch.device("cuda", index)
        torch.cuda.set_device(chosen)
    else:
        chosen = requested
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, chosen)


def shutdown_distributed() -> None:
    """Leaves the process group, if one was created."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
