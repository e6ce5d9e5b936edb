"""Image-quality metric that needs no downloaded weights: multi-scale sliced Wasserstein distance.

Follows the idea of Karras et al. (PGGAN, 2018): compare the distributions of local 7x7 patches of
real and generated images at each level of a Laplacian pyramid with the sliced Wasserstein
distance (average over random 1D projections of the 1D Wasserstein-1 distance between the sorted
projections). Lower is better; 0 for identical distributions.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._validation import (
    check_finite,
    check_nonnegative_int,
    check_positive_int,
    check_shape,
)


class SlicedWasserstein(NamedTuple):
    """Result of :func:`sliced_wasserstein_distance`.

    Attributes:
        per_level: distance at each pyramid level, finest first (x 1e3, as PGGAN reports).
        mean: the average over levels.
    """

    per_level: list[float]
    mean: float


def _laplacian_pyramid(images: Tensor, min_size: int) -> list[Tensor]:
    levels = []
    current = images
    while current.shape[-1] >= 2 * min_size:
        down = F.avg_pool2d(current, 2)
        up = F.interpolate(down, scale_factor=2, mode="bilinear", align_corners=False)
        levels.append(current - up)
        current = down
    levels.append(current)
    return levels


def _patches(level: Tensor, count: int, size: int, generator: torch.Generator) -> Tensor:
    n, c, h, w = level.shape
    ys = torch.randint(0, h - size + 1, (n, count), generator=generator)
    xs = torch.randint(0, w - size + 1, (n, count), generator=generator)
    offsets = torch.arange(size)
    rows = (ys[..., None] + offsets)[..., :, None].expand(n, count, size, size)
    cols = (xs[..., None] + offsets)[..., None, :].expand(n, count, size, size)
    batch = torch.arange(n)[:, None, None, None].expand_as(rows)
    patches = level.permute(0, 2, 3, 1)[batch, rows, cols]  # [n, count, size, size, c]
    return patches.reshape(n * count, size * size * c)


def _swd(a: Tensor, b: Tensor, projections: int, generator: torch.Generator) -> float:
    directions = torch.randn(a.shape[1], projections, generator=generator, dtype=a.dtype)
    directions = directions / directions.norm(dim=0, keepdim=True)
    pa = torch.sort(a @ directions, dim=0).values
    pb = torch.sort(b @ directions, dim=0).values
    return float((pa - pb).abs().mean())


@torch.no_grad()
@checked
def sliced_wasserstein_distance(
    real: Float[Tensor, "N H W 3"],
    fake: Float[Tensor, "N H W 3"],
    *,
    patches_per_image: int = 128,
    patch_size: int = 7,
    num_projections: int = 512,
    min_size: int = 16,
    seed: int = 0,
) -> SlicedWasserstein:
    """Multi-scale sliced Wasserstein distance between two equally sized sets of images.

    Patch descriptors of both sets are normalised per channel with the real set's statistics at
    each level; the same random patches and projections are drawn for a given ``seed``.

    Args:
        real: real images, channels-last, ``[N, H, W, 3]``.
        fake: generated images, same shape.
        patches_per_image: random patches drawn per image and level.
        patch_size: side of the square patches.
        num_projections: random directions of the sliced distance.
        min_size: the coarsest pyramid level's size.
        seed: seed of the patch positions and projections.

    Returns:
        :class:`SlicedWasserstein` with the per-level and mean distances (x 1e3).

    Raises:
        ValueError: for sets of different or empty shapes, images smaller than a patch or
            ``min_size``, and (value checks) non-finite pixels.
    """
    check_shape("fake", fake, tuple(real.shape))
    if real.shape[0] == 0:
        raise ValueError("`real` and `fake` must hold at least one image each, got N = 0")
    check_positive_int("patches_per_image", patches_per_image)
    check_positive_int("num_projections", num_projections)
    check_positive_int("patch_size", patch_size)
    check_positive_int("min_size", min_size)
    check_nonnegative_int("seed", seed)
    check_finite(real=real, fake=fake)
    if min(real.shape[1:3]) < max(patch_size, min_size):
        raise ValueError(
            f"images of {tuple(real.shape[1:3])} pixels are smaller than `patch_size` "
            f"({patch_size}) or `min_size` ({min_size})"
        )
    generator = torch.Generator().manual_seed(seed)
    to_levels = lambda x: _laplacian_pyramid(  # noqa: E731
        rearrange(x.detach().float().cpu(), "n h w c -> n c h w"), min_size
    )
    per_level = []
    for real_level, fake_level in zip(to_levels(real), to_levels(fake), strict=True):
        state = generator.get_state()
        a = _patches(real_level, patches_per_image, patch_size, generator)
        generator.set_state(state)
        b = _patches(fake_level, patches_per_image, patch_size, generator)
        mean = a.reshape(-1, 3).mean(0).repeat(patch_size * patch_size)
        std = a.reshape(-1, 3).std(0).repeat(patch_size * patch_size) + 1e-8
        per_level.append(1e3 * _swd((a - mean) / std, (b - mean) / std, num_projections, generator))
    return SlicedWasserstein(per_level, sum(per_level) / len(per_level))
