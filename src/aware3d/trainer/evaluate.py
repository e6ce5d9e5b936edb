"""Image quality of a generator against its data set: sliced Wasserstein distance, FID and KID.

The sliced Wasserstein distance (:func:`~aware3d.training.sliced_wasserstein_distance`) needs no
weights and is always computed. FID and KID use the standard Inception
(:mod:`aware3d.trainer.inception`) when its weights are found locally; nothing is downloaded,
and without them the two are skipped with a message. The first ``metric_images`` items of the
data set are the real set; the fakes are rendered by the EMA generator from fixed latents and
the same items' cameras, so successive evaluations of a run are comparable.
"""

import os
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from aware3d.data.eg3d import EG3DItem
from aware3d.demo.models import latent_dim
from aware3d.trainer.data import dataset_labels, resize_images
from aware3d.trainer.distributed import DistributedContext
from aware3d.trainer.inception import (
    InceptionFeatures,
    fid_kid,
    find_inception_weights,
    inception_features,
    load_inception,
)
from aware3d.trainer.models import sample_images
from aware3d.trainer.recipes import TrainConfig
from aware3d.training import sliced_wasserstein_distance

__all__ = ["Evaluator"]

_METRIC_SEED = 12345


class Evaluator:
    """Evaluates generators of one run against the same real images.

    Args:
        dataset: the run's data set.
        config: the recipe (``resolution``, ``metric_images``).
        ctx: the process's context (the metrics run where it is called, on rank 0).
        inception_weights: an explicit weights file, or ``None`` to look in the usual places.
        announce: print whether FID/KID will be computed.
    """

    def __init__(
        self,
        dataset: Dataset[EG3DItem],
        config: TrainConfig,
        ctx: DistributedContext,
        inception_weights: str | os.PathLike[str] | None = None,
        *,
        announce: bool = True,
    ) -> None:
        self.dataset = dataset
        self.config = config
        self.device = ctx.device
        self.count = min(config.metric_images, len(dataset))  # type: ignore[arg-type]
        self.labels = dataset_labels(dataset)[: self.count]
        self.weights: Path | None = find_inception_weights(inception_weights)
        self.inception: InceptionFeatures | None = None
        self._real: Tensor | None = None
        self._real_features: Tensor | None = None
        if announce:
            if self.weights is None:
                print("FID/KID skipped: no Inception weights found (pass --inception-weights or "
                      "set AWARE3D_INCEPTION_WEIGHTS); the sliced Wasserstein distance is kept",
                      flush=True)  # fmt: skip
            else:
                print(f"FID/KID with the Inception weights {self.weights}", flush=True)

    def real_images(self) -> Tensor:
        """The real set ``[N, H, W, 3]`` in [-1, 1] (loaded once)."""
        if self._real is None:
            images = [self.dataset[i].image for i in range(self.count)]
            self._real = resize_images(torch.stack(images), self.config.resolution)
        return self._real

    @torch.no_grad()
    def fake_images(self, generator: nn.Module) -> Tensor:
        """The generator's images of the fixed latents from the real set's cameras."""
        z = torch.randn(self.count, latent_dim(generator),
                        generator=torch.Generator().manual_seed(_METRIC_SEED))  # fmt: skip
        images = sample_images(generator, z.to(self.device), self.labels.to(self.device),
                               self.config.resolution)  # fmt: skip
        return images.cpu()

    def __call__(self, generator: nn.Module) -> dict[str, float]:
        """``{"swd": ..., "fid": ..., "kid_mean": ..., "kid_std": ...}`` (FID/KID when possible)."""
        real = self.real_images()
        fake = self.fake_images(generator)
        swd = sliced_wasserstein_distance((real.clamp(-1, 1) + 1) / 2, (fake.clamp(-1, 1) + 1) / 2,
                                          min_size=16)  # fmt: skip
        metrics = {"swd": swd.mean}
        if self.weights is not None and self.count >= 2:
            if self.inception is None:
                self.inception = load_inception(self.weights).to(self.device)
            if self._real_features is None:
                self._real_features = inception_features(self.inception, real.to(self.device))
            fake_features = inception_features(self.inception, fake.to(self.device))
            scores = fid_kid(self._real_features, fake_features)
            metrics.update(fid=scores.fid, kid_mean=scores.kid_mean, kid_std=scores.kid_std)
        return metrics
