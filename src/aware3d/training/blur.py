"""The blur EG3D (and GSGAN, BallGAN) put on every image its discriminator sees early in training.

At the start the discriminator sees blurred real and fake images, so it judges coarse structure
before detail; the blur fades out linearly. With ``sigma`` the current strength the filter is
``f(x) = 2 ** (-(x / sigma)^2)`` for integer ``x`` in ``[-r, r]``, ``r = floor(3 sigma)``,
normalised to sum 1 and applied separably (rows, then columns) with zero padding, as EG3D's
``run_D``. EG3D starts at ``sigma = 10`` and fades over 200 kimg at batch 32.
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._validation import check_nonnegative_number

__all__ = ["blur_kernel", "blur_sigma", "discriminator_blur"]


def blur_sigma(images_seen: float, initial: float, fade_images: float) -> float:
    """``sigma(n) = initial * max(1 - n / fade_images, 0)`` (0 when ``fade_images`` is 0).

    Args:
        images_seen: ``n``, images shown to the discriminator so far.
        initial: the starting ``sigma`` in pixels (EG3D: 10).
        fade_images: length of the fade in images (EG3D: 200k at batch 32).
    """
    images_seen = check_nonnegative_number("images_seen", images_seen)
    initial = check_nonnegative_number("initial", initial)
    fade_images = check_nonnegative_number("fade_images", fade_images)
    if fade_images == 0:
        return 0.0
    return initial * max(1.0 - images_seen / fade_images, 0.0)


def blur_kernel(sigma: float) -> Tensor:
    """The normalised 1D filter ``2 ** (-(x / sigma)^2)``, ``x`` in ``[-floor(3 sigma), ...]``.

    Returns ``[1.]`` (the identity) for ``sigma < 1/3``.
    """
    sigma = check_nonnegative_number("sigma", sigma)
    radius = math.floor(sigma * 3)
    if radius <= 0:
        return torch.ones(1)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    f = torch.exp2(-(x / sigma).square())
    return (f / f.sum()).float()


@checked
def discriminator_blur(images: Float[Tensor, "B H W C"], sigma: float) -> Float[Tensor, "B H W C"]:
    """Blurs channels-last images with :func:`blur_kernel` (separable, zero padding).

    Differentiable; ``images`` itself is returned when the kernel is the identity.

    Args:
        images: ``[B, H, W, C]``.
        sigma: the blur's strength in pixels (>= 0).

    Returns:
        ``[B, H, W, C]``, same dtype and device.
    """
    kernel = blur_kernel(sigma)
    if kernel.numel() == 1:
        return images
    radius = kernel.numel() // 2
    channels = images.shape[-1]
    weight = kernel.to(images.device, images.dtype)
    x = rearrange(images, "b h w c -> b c h w")
    x = F.conv2d(
        F.pad(x, (radius, radius, 0, 0)), weight.view(1, 1, 1, -1).repeat(channels, 1, 1, 1),
        groups=channels,
    )  # fmt: skip
    x = F.conv2d(
        F.pad(x, (0, 0, radius, radius)), weight.view(1, 1, -1, 1).repeat(channels, 1, 1, 1),
        groups=channels,
    )  # fmt: skip
    return rearrange(x, "b c h w -> b h w c")
