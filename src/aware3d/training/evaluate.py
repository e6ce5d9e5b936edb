"""Image quality of a generator against its data set: sliced Wasserstein distance, FID and KID.

The sliced Wasserstein distance (:func:`~aware3d.training.sliced_wasserstein_distance`) needs no
weights and is always computed. FID and KID use the standard Inception
(:mod:`aware3d.training.inception`) when its weights are found locally; nothing is downloaded,
and without them the two are skipped with a message. The first ``metric_images`` items of the
data set are the real set; the fakes are rendered by the EMA generator from fixed latents and
the same items' cameras, so successive evaluations of a run are comparable.
"""

import os
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from aware3d.cameras import Cameras
from aware3d.data.eg3d import EG3DItem
from aware3d.models.protocol import check_generator
from aware3d.training.data import dataset_labels, resize_images
from aware3d.training.inception import (
    InceptionFeatures,
    fid_kid,
    find_inception_weights,
    inception_features,
    load_inception,
)
from aware3d.training.metrics import sliced_wasserstein_distance

__all__ = ["Evaluator", "sample_images"]

_METRIC_SEED = 12345


class Evaluator:
    """Evaluates generators of one run against the same real images.

    Args:
        dataset: the run's data set.
        resolution: the size real images are resized to and fakes rendered at.
        images: images per set (at most the data set's size).
        device: where the generator runs.
        inception_weights: an explicit weights file, or ``None`` to look in the usual places.
        announce: print whether FID/KID will be computed.
    """

    def __init__(
        self,
        dataset: Dataset[EG3DItem],
        *,
        resolution: int,
        images: int,
        device: torch.device | str = "cpu",
        inception_weights: str | os.PathLike[str] | None = None,
        announce: bool = True,
    ) -> None:
        self.dataset = dataset
        self.resolution = resolution
        self.device = torch.device(device)
        self.count = min(images, len(dataset))  # type: ignore[arg-type]
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
            self._real = resize_images(torch.stack(images), self.resolution)
        return self._real

    @torch.no_grad()
    def fake_images(self, generator: nn.Module) -> Tensor:
        """The generator's images of the fixed latents from the real set's cameras."""
        z = torch.randn(self.count, check_generator(generator).latent_dim,
                        generator=torch.Generator().manual_seed(_METRIC_SEED))  # fmt: skip
        images = sample_images(generator, z.to(self.device), self.labels.to(self.device),
                               self.resolution)  # fmt: skip
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


@torch.no_grad()
def sample_images(
    generator: nn.Module, z: Tensor, labels: Tensor, resolution: int, chunk: int = 16
) -> Tensor:
    """Images ``[N, H, W, 3]`` of ``z [N, latent_dim]`` seen from ``labels [N, 25]``, in chunks.

    Each sample is conditioned on its own camera (the generator's default).
    """
    images = []
    for start in range(0, z.shape[0], chunk):
        part = slice(start, start + chunk)
        cameras = Cameras.from_eg3d_labels(labels[part, None])
        images.append(generator(z[part], cameras, resolution, resolution).images[:, 0])
    return torch.cat(images)
