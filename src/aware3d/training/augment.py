"""Differentiable augmentation of real and generated images for the discriminator (DiffAugment).

A discriminator trained on few images memorises them and wins; augmenting *both* its real and its
fake inputs with the same random, differentiable transforms keeps it from overfitting while the
generator still gets gradients through the transforms (Zhao et al., "Differentiable Augmentation
for Data-Efficient GAN Training", NeurIPS 2020). The three transforms of that paper, on images in
[-1, 1], channels-last ``[B, H, W, C]`` (the renderer's layout):

* ``"color"``: ``x + b`` with brightness ``b ~ U(-0.5, 0.5)``; then saturation
  ``m_c + s (x - m_c)`` with ``s ~ U(0, 2)`` and ``m_c`` the pixel's mean over channels; then
  contrast ``m + k (x - m)`` with ``k ~ U(0.5, 1.5)`` and ``m`` the image's mean.
* ``"translation"``: shift by whole pixels, ``dx, dy`` uniform in ``[-r, r]`` with
  ``r = round(ratio * size)`` (``ratio = 1/8``), filling with zeros.
* ``"cutout"``: zero a square of side ``round(ratio * size)`` (``ratio = 1/2``) centred at a
  uniformly random pixel (it may be cut by the border).

Each image draws its own parameters. Transforms are applied in the order given.
"""

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked

__all__ = ["AUGMENTATIONS", "diff_augment"]

#: Transform names accepted by :func:`diff_augment`, in their default order.
AUGMENTATIONS = ("color", "translation", "cutout")
_TRANSLATION_RATIO = 0.125
_CUTOUT_RATIO = 0.5


def _uniform(
    batch: int, low: float, high: float, generator: torch.Generator | None, like: Tensor
) -> Tensor:
    device = generator.device if generator is not None else like.device
    values = torch.rand(batch, 1, 1, 1, generator=generator, device=device, dtype=like.dtype)
    return (low + (high - low) * values).to(like.device)


def _randint(
    batch: int, low: int, high: int, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """Integers uniform in ``[low, high]`` (both included), ``[B]``, on ``device``."""
    source = generator.device if generator is not None else device
    return torch.randint(low, high + 1, (batch,), generator=generator, device=source).to(device)


def _color(images: Tensor, generator: torch.Generator | None) -> Tensor:
    batch = images.shape[0]
    x = images + _uniform(batch, -0.5, 0.5, generator, images)
    mean = x.mean(dim=-1, keepdim=True)
    x = mean + (x - mean) * _uniform(batch, 0.0, 2.0, generator, images)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * _uniform(batch, 0.5, 1.5, generator, images)


def _translate(images: Tensor, generator: torch.Generator | None) -> Tensor:
    batch, height, width = images.shape[:3]
    reach_y = round(_TRANSLATION_RATIO * height)
    reach_x = round(_TRANSLATION_RATIO * width)
    dy = _randint(batch, -reach_y, reach_y, generator, images.device)
    dx = _randint(batch, -reach_x, reach_x, generator, images.device)
    # output pixel (i, j) reads input pixel (i - dy, j - dx), zero outside the image
    rows = torch.arange(height, device=images.device)[None, :] - dy[:, None]  # [B, H]
    cols = torch.arange(width, device=images.device)[None, :] - dx[:, None]  # [B, W]
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None]
    scene = torch.arange(batch, device=images.device)[:, None, None]
    gathered = images[
        scene, rows.clamp(0, height - 1)[:, :, None], cols.clamp(0, width - 1)[:, None]
    ]
    return gathered * inside[..., None].to(images.dtype)


def _cutout(images: Tensor, generator: torch.Generator | None) -> Tensor:
    batch, height, width = images.shape[:3]
    side_y = round(_CUTOUT_RATIO * height)
    side_x = round(_CUTOUT_RATIO * width)
    cy = _randint(batch, 0, height - 1, generator, images.device)
    cx = _randint(batch, 0, width - 1, generator, images.device)
    rows = torch.arange(height, device=images.device)[None, :]
    cols = torch.arange(width, device=images.device)[None, :]
    top, left = cy - side_y // 2, cx - side_x // 2
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side_y)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side_x)
    hole = in_rows[:, :, None] & in_cols[:, None, :]
    return images * (~hole)[..., None].to(images.dtype)


_TRANSFORMS = {"color": _color, "translation": _translate, "cutout": _cutout}


@checked
def diff_augment(
    images: Float[Tensor, "B H W C"],
    policy: Sequence[str] = AUGMENTATIONS,
    *,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "B H W C"]:
    """Applies DiffAugment's transforms to a batch of channels-last images in [-1, 1].

    Differentiable with respect to ``images``. Apply the same ``policy`` to every image the
    discriminator sees, real and fake, in its own update and in the generator's.

    Args:
        images: ``[B, H, W, C]`` images in [-1, 1].
        policy: transform names from :data:`AUGMENTATIONS`, applied in order; empty for none.
        generator: random generator of the per-image parameters (drawn on its device).

    Returns:
        The augmented images, ``[B, H, W, C]``, same dtype and device.

    Raises:
        ValueError: for an unknown transform name or images that are not ``[B, H, W, C]``.
        TypeError: for images that are not a floating-point tensor.
    """
    if isinstance(policy, str) or not isinstance(policy, Sequence):
        raise TypeError(
            f"`policy` must be a sequence of names from {AUGMENTATIONS}, got {policy!r}"
        )
    unknown = [name for name in policy if name not in _TRANSFORMS]
    if unknown:
        raise ValueError(f"`policy` has unknown transforms {unknown}; choose from {AUGMENTATIONS}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator, got {type(generator).__name__}")
    for name in policy:
        images = _TRANSFORMS[name](images, generator)
    return images
