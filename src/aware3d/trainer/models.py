"""The networks a recipe names.

:func:`build_generator` and :func:`build_discriminator` make a recipe's networks;
:func:`~aware3d.demo.models.generate` (shared with the demo) runs any of them, also through
its ``DistributedDataParallel`` wrapper, with the latent layout of
:func:`~aware3d.demo.models.latent_dim`.
"""

import torch
from torch import Tensor, nn

from aware3d.cameras import Cameras
from aware3d.demo.models import build_generator as build_demo_generator
from aware3d.demo.models import generate
from aware3d.models import (
    ballgan_ffhq256,
    ballgan_small,
    gsgan_ffhq256,
    gsgan_ffhq512,
    gsgan_small,
)
from aware3d.trainer.recipes import DemoRecipe, TrainConfig
from aware3d.training import CameraConditionedDiscriminator

__all__ = ["build_discriminator", "build_generator", "is_conditioned", "sample_images"]


def build_generator(config: TrainConfig) -> nn.Module:
    """The generator ``config.model`` (call under a fixed seed: its weights are drawn here)."""
    if config.model == "demo":
        if not isinstance(config, DemoRecipe):
            raise ValueError("`model='demo'` is built by the demo recipe only")
        return build_demo_generator(
            config.demo_model, z_dim=config.z_dim, w_dim=config.w_dim,
            resolution=config.resolution, decoder_levels=config.decoder_levels,
            decoder_blocks=config.decoder_blocks, initial_radius=config.initial_radius,
            background_freqs=config.background_freqs,
        )  # fmt: skip
    if config.model == "gsgan-small":
        return gsgan_small(64, resolution=config.resolution)
    if config.model == "ballgan-small":
        return ballgan_small(64, resolution=config.resolution,
                             neural_resolution=config.resolution // 2)  # fmt: skip
    if config.model == "gsgan-ffhq256":
        return gsgan_ffhq256()
    if config.model == "gsgan-ffhq512":
        return gsgan_ffhq512()
    if config.model == "ballgan-ffhq256":
        return ballgan_ffhq256()
    raise ValueError(f"unknown model {config.model!r}")


def build_discriminator(config: TrainConfig, image_channels: int) -> CameraConditionedDiscriminator:
    """The recipe's discriminator for ``image_channels`` (3, or 6 for a dual discriminator)."""
    return CameraConditionedDiscriminator(
        config.resolution, image_channels, channel_base=config.d_channel_base,
        channel_max=config.d_channel_max, embed_dim=config.d_embed_dim,
        camera_conditioned=config.d_camera_conditioned,
        contrastive_dim=config.d_contrastive_dim or None, mbstd_group_size=config.mbstd_group,
    )  # fmt: skip


def is_conditioned(generator: nn.Module) -> bool:
    """Whether the generator's mapping network takes a camera label."""
    return bool(getattr(getattr(generator, "mapping", None), "c_dim", 0))


@torch.no_grad()
def sample_images(
    generator: nn.Module, z: Tensor, labels: Tensor, resolution: int, chunk: int = 16
) -> Tensor:
    """Images ``[N, H, W, 3]`` of ``z [N, latent_dim]`` seen from ``labels [N, 25]``, in chunks."""
    images = []
    for start in range(0, z.shape[0], chunk):
        part = slice(start, start + chunk)
        cameras = Cameras.from_eg3d_labels(labels[part, None])
        images.append(generate(generator, z[part], cameras, resolution).images[:, 0])
    return torch.cat(images)
