"""The networks a recipe names, and one calling convention for every generator.

:func:`build_generator` and :func:`build_discriminator` make a recipe's networks;
:func:`render` runs any of the library's generators (through its ``DistributedDataParallel``
wrapper while training) with the latent layout of :func:`latent_dim` (BallGAN's foreground and
background latents side by side).
"""

from typing import Any

import torch
from torch import Tensor, nn

from aware3d.cameras import Cameras
from aware3d.demo.models import build_generator as build_demo_generator
from aware3d.models import (
    BallGANGenerator,
    ballgan_ffhq256,
    ballgan_small,
    gsgan_ffhq256,
    gsgan_ffhq512,
    gsgan_small,
)
from aware3d.trainer.recipes import DemoRecipe, TrainConfig
from aware3d.training import CameraConditionedDiscriminator

__all__ = ["build_discriminator", "build_generator", "is_conditioned", "latent_dim", "render"]


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


def latent_dim(generator: nn.Module) -> int:
    """Width of the latents drawn for ``generator`` (BallGAN: foreground + background)."""
    if isinstance(generator, BallGANGenerator):
        return generator.z_dim + generator.z_background_dim
    return int(getattr(generator, "z_dim"))  # noqa: B009


def is_conditioned(generator: nn.Module) -> bool:
    """Whether the generator's mapping network takes a camera label."""
    return bool(getattr(getattr(generator, "mapping", None), "c_dim", 0))


def render(
    generator: nn.Module,
    z: Tensor,
    cameras: Cameras,
    resolution: int,
    *,
    c: Tensor | None = None,
    module: nn.Module | None = None,
) -> Any:
    """Renders ``z [B, latent_dim]`` from ``cameras [B, C]`` at ``resolution`` pixels.

    Args:
        generator: the generator, or the ``DistributedDataParallel`` wrapping it.
        z: latents (for BallGAN, the foreground then the background latent).
        cameras: ``Cameras [B, C]``.
        resolution: output size (square).
        c: conditioning labels ``[B, 25]`` (default: each scene's first camera).
        module: the generator itself when ``generator`` is its wrapper.
    """
    inner = generator if module is None else module
    if isinstance(inner, BallGANGenerator):
        return generator(
            z[:, : inner.z_dim], cameras, resolution, resolution, c=c,
            z_background=z[:, inner.z_dim :],
        )  # fmt: skip
    return generator(z, cameras, resolution, resolution, c=c)


@torch.no_grad()
def sample_images(
    generator: nn.Module, z: Tensor, labels: Tensor, resolution: int, chunk: int = 16
) -> Tensor:
    """Images ``[N, H, W, 3]`` of ``z [N, latent_dim]`` seen from ``labels [N, 25]``, in chunks."""
    images = []
    for start in range(0, z.shape[0], chunk):
        part = slice(start, start + chunk)
        cameras = Cameras.from_eg3d_labels(labels[part, None])
        images.append(render(generator, z[part], cameras, resolution).images[:, 0])
    return torch.cat(images)
