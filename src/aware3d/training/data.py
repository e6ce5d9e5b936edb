"""Training data: the data set, each process's share of it, and a position that survives resume.

Real images come from a :class:`~torch.utils.data.DataLoader` over the data set with a
:class:`~torch.utils.data.DistributedSampler` (shuffled per epoch with the run's seed; each of
the ``W`` processes takes every ``W``-th index of the permutation). The position in the epoch is
counted in batches, so a resumed run asks the sampler for the same epoch's permutation and skips
the batches already used, without loading them.
"""

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from aware3d.cameras import Cameras
from aware3d.data.eg3d import EG3DBatch, EG3DDataset, EG3DItem

__all__ = ["DataPosition", "RealBatches", "data_identity", "dataset_labels", "resize_images"]


def dataset_labels(dataset: Dataset[EG3DItem]) -> Tensor:
    """Every item's EG3D label ``[N, 25]`` without decoding an image (mirrored for x-flips)."""
    labels = getattr(dataset, "labels", None)
    if not isinstance(labels, Tensor):
        raise TypeError(f"{type(dataset).__name__} has no `labels` tensor")
    count = len(dataset)  # type: ignore[arg-type]
    if labels.shape[0] == count:
        return labels
    if isinstance(dataset, EG3DDataset) and dataset.xflip and 2 * labels.shape[0] == count:
        mirrored = Cameras.from_eg3d_labels(labels).mirrored().to_eg3d_labels()
        return torch.cat([labels, mirrored.reshape(-1, 25)])
    raise ValueError(f"{type(dataset).__name__} has {labels.shape[0]} labels for {count} items")


def data_identity(dataset: Dataset[EG3DItem], resolution: int) -> dict[str, Any]:
    """What identifies a run's data, for the check on resume (JSON-ready).

    ``kind`` (the class), ``path`` (a file data set's resolved path, else ``None``), ``items``,
    ``resolution`` (what the run trains at) and ``fingerprint``: the SHA-256 of every item's label
    (float32 bytes, in order) and, where the data set has them, its file names, so an edited or
    reordered ``dataset.json`` is recognised wherever the data set lives.
    """
    digest = hashlib.sha256(
        dataset_labels(dataset).to(torch.float32).contiguous().numpy().tobytes()
    )
    for name in getattr(dataset, "names", None) or []:
        digest.update(str(name).encode("utf-8") + b"\0")
    path = getattr(dataset, "path", None)
    return {
        "kind": type(dataset).__name__,
        "path": None if path is None else str(Path(path).resolve()),
        "items": len(dataset),  # type: ignore[arg-type]
        "resolution": resolution,
        "fingerprint": digest.hexdigest(),
    }


class DataPosition(NamedTuple):
    """Where a process is in the data: the epoch and the batches of it already used."""

    epoch: int
    batch: int


class _ListSampler(Sampler[int]):
    def __init__(self, indices: list[int]) -> None:
        self.indices = indices

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def resize_images(images: Tensor, resolution: int) -> Tensor:
    """``[B, H, W, 3]`` resized to ``resolution`` (area averaging down, bilinear up)."""
    if images.shape[1] == resolution and images.shape[2] == resolution:
        return images
    x = rearrange(images, "b h w c -> b c h w")
    mode = "area" if images.shape[1] > resolution else "bilinear"
    x = F.interpolate(x, size=(resolution, resolution), mode=mode)
    return rearrange(x, "b c h w -> b h w c")


class RealBatches:
    """This process's batches of real images and labels, epoch after epoch, resumable.

    Args:
        dataset: the data set (items of :class:`~aware3d.data.EG3DItem`).
        batch: batch per process.
        resolution: the size images are resized to.
        rank: this process's rank.
        world_size: the number of processes.
        seed: the shuffling seed (the same on every process).
        workers: data-loader worker processes.
        position: where to start.

    Raises:
        ValueError: if the data set has fewer items than one batch on every process.
    """

    def __init__(
        self,
        dataset: Dataset[EG3DItem],
        *,
        batch: int,
        resolution: int,
        rank: int,
        world_size: int,
        seed: int,
        workers: int,
        position: DataPosition | None = None,
    ) -> None:
        self.dataset = dataset
        self.batch = batch
        self.resolution = resolution
        self.workers = workers
        self.seed = seed
        self.rank = rank
        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batches_per_epoch = len(self.sampler) // batch
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"the data set has {len(dataset)} items: too few for a batch of {batch} on each "  # type: ignore[arg-type]
                f"of {world_size} processes"
            )
        self.position = position or DataPosition(0, 0)
        self._iterator: Iterator[EG3DBatch] | None = None

    def _start_epoch(self) -> None:
        epoch, skip = self.position
        self.sampler.set_epoch(epoch)
        indices = list(self.sampler)[skip * self.batch : self.batches_per_epoch * self.batch]
        # The loader's own generator (a function of seed, rank, epoch and position) seeds its
        # workers; without it, making an iterator draws from torch's global stream, which a
        # resumed run would then draw at another step than the run it continues.
        seeds = torch.Generator().manual_seed(
            self.seed * 1_000_003 + 7_919 * self.rank + 104_729 * epoch + skip
        )
        loader = DataLoader(
            self.dataset, batch_size=self.batch, sampler=_ListSampler(indices), drop_last=True,
            num_workers=self.workers, collate_fn=EG3DDataset.collate,
            persistent_workers=False, generator=seeds,
        )  # fmt: skip
        self._iterator = iter(loader)

    def next(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The next batch: images ``[b, H, W, 3]`` in [-1, 1] and labels ``[b, 25]``."""
        if self.position.batch >= self.batches_per_epoch:
            self.position = DataPosition(self.position.epoch + 1, 0)
            self._iterator = None
        if self._iterator is None:
            self._start_epoch()
        assert self._iterator is not None
        batch = next(self._iterator)
        self.position = DataPosition(self.position.epoch, self.position.batch + 1)
        images = resize_images(batch.images[:, 0], self.resolution)
        return images.to(device, non_blocking=True), batch.labels.to(device, non_blocking=True)
