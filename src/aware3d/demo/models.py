"""The generators ``aware3d demo --model`` can train, behind one small calling convention.

``demo`` is the demo's own :class:`~aware3d.demo.generator.Generator3D` (the window network);
``gsgan`` and ``ballgan`` are :func:`~aware3d.models.gsgan_small` and
:func:`~aware3d.models.ballgan_small`, the CPU-sized versions of the library's assemblies of
GSGAN's and BallGAN's generators. Each generator exposes ``foreground_loss(out)`` (the splat
distortion loss, or BallGAN's density loss), ``discriminator_images(out)`` and
``image_channels`` (3, or 6 for BallGAN's dual discriminator).
"""

from typing import Any

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from aware3d.cameras import Cameras
from aware3d.demo.generator import Generator3D
from aware3d.models import BallGANGenerator, GSGANGenerator, ballgan_small, gsgan_small
from aware3d.nn.decoder import small_decoder
from aware3d.nn.superresolution import dual_discriminator_input

__all__ = [
    "MODELS",
    "DemoGenerator",
    "ImageRenderer",
    "build_generator",
    "generate",
    "latent_dim",
    "real_discriminator_images",
]

#: The names ``--model`` accepts.
MODELS = ("demo", "gsgan", "ballgan")

DemoGenerator = Generator3D | GSGANGenerator | BallGANGenerator


def build_generator(
    model: str,
    *,
    z_dim: int,
    w_dim: int,
    resolution: int,
    decoder_levels: int,
    decoder_blocks: str,
    initial_radius: float,
    background_freqs: int,
) -> DemoGenerator:
    """The generator named ``model`` at the demo's size (call under a fixed seed)."""
    if model == "gsgan":
        return gsgan_small(w_dim, num_levels=decoder_levels, resolution=resolution)
    if model == "ballgan":
        return ballgan_small(w_dim, resolution=resolution, neural_resolution=resolution // 2)
    window = {"initial_radius": initial_radius} if decoder_blocks == "window" else {}
    decoder = small_decoder(
        w_dim, num_levels=decoder_levels, resolution=resolution, blocks=decoder_blocks, **window
    )
    return Generator3D(z_dim, w_dim, decoder, background_freqs=background_freqs)


def latent_dim(generator: nn.Module) -> int:
    """Width of the latents the demo draws (BallGAN's foreground and background together)."""
    if isinstance(generator, BallGANGenerator):
        return generator.z_dim + generator.z_background_dim
    return int(getattr(generator, "z_dim"))  # noqa: B009


def generate(
    generator: nn.Module,
    z: Tensor,
    cameras: Cameras,
    resolution: int,
    *,
    c: Tensor | None = None,
    module: nn.Module | None = None,
) -> Any:
    """Renders ``z [B, latent_dim]`` from ``cameras [B, C]`` at ``resolution`` (square).

    Args:
        generator: the generator, or the ``DistributedDataParallel`` wrapping it.
        z: latents (for BallGAN, the foreground then the background latent).
        cameras: ``Cameras [B, C]``.
        resolution: output size.
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


def real_discriminator_images(generator: nn.Module, real: Tensor) -> Tensor:
    """Real images ``[B, H, W, 3]`` as the discriminator sees them for ``generator``.

    For BallGAN's dual discriminator the real image is paired with itself resized down to the
    neural-rendering resolution and back up (antialiased bilinear, EG3D's ``filtered_resizing``),
    as EG3D's training loop pairs real images: ``[B, H, W, 6]``.
    """
    if not isinstance(generator, BallGANGenerator):
        return real
    low = generator.neural_resolution
    x = rearrange(real, "b h w f -> b f h w")
    raw = F.interpolate(x, size=(low, low), mode="bilinear", align_corners=False, antialias=True)
    return rearrange(dual_discriminator_input(x, raw), "b f h w -> b h w f")


class ImageRenderer:
    """``(z, cameras, width, height) -> output with .images`` for any demo generator (figures)."""

    def __init__(self, generator: nn.Module) -> None:
        self.generator = generator

    def __call__(self, z: Tensor, cameras: Cameras, width: int, height: int) -> Any:
        """Renders at ``width`` (square images)."""
        del height
        return generate(self.generator, z, cameras, width)
