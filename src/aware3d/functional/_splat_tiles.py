"""Vectorised tile intersection (private; see :func:`aware3d.rasterize`).

Every (image, Gaussian) with a non-zero footprint is paired with each ``t x t`` tile its footprint
box ``[mean - radius, mean + radius]`` touches (gsplat's rule: tiles ``floor((m - r) / t)`` up to
``ceil((m + r) / t)``, clamped to the image). Pairs are grouped by tile, and inside a tile ordered
front to back by camera depth (ties by Gaussian index), with no Python loop over Gaussians or tiles.
"""

from typing import NamedTuple

import torch
from torch import Tensor

from aware3d._validation import check_memory

#: Peak bytes per Gaussian-tile pair while the pair list is built and sorted (int64 ids, the
#: owner, tile coordinates, the sort's values and permutation).
_BYTES_PER_PAIR = 96


class TilePairs(NamedTuple):
    """Gaussian-tile pairs sorted by (tile, depth).

    Attributes:
        tile_ids: global tile index ``image * TY * TX + ty * TX + tx``, ``[P]`` (int64, sorted).
        gauss_ids: flat Gaussian index ``image * N + n``, ``[P]`` (int64).
    """

    tile_ids: Tensor
    gauss_ids: Tensor


@torch.no_grad()
def intersect_tiles(
    means2d: Tensor, radii: Tensor, depths: Tensor, tile_size: int, tiles_x: int, tiles_y: int
) -> TilePairs:
    """Pairs every visible 2D Gaussian with the tiles it touches.

    Args:
        means2d: pixel centres ``[I, N, 2]``.
        radii: footprint half-widths ``[I, N, 2]``, 0 for culled Gaussians.
        depths: camera depth ``[I, N]`` (sort key).
        tile_size: tile edge in pixels.
        tiles_x: tiles across.
        tiles_y: tiles down.

    Returns:
        The pairs, grouped by tile and depth-ordered inside each tile.
    """
    count = depths.shape[1]
    device = means2d.device
    visible = (radii > 0).all(dim=-1)
    # Depth order inside each image first (stable: ties keep the Gaussian index order).
    key = torch.where(visible, depths, torch.full_like(depths, float("inf")))
    order = torch.sort(key, dim=-1, stable=True).indices  # [I, N]
    means_o = torch.gather(means2d, 1, order[..., None].expand(-1, -1, 2))
    radii_o = torch.gather(radii, 1, order[..., None].expand(-1, -1, 2))
    visible_o = torch.gather(visible, 1, order)

    tile_min = torch.floor((means_o - radii_o) / tile_size)
    tile_max = torch.ceil((means_o + radii_o) / tile_size)
    limits = torch.tensor([tiles_x, tiles_y], device=device, dtype=tile_min.dtype)
    tile_min = torch.minimum(torch.clamp(tile_min, min=0), limits).long()
    tile_max = torch.minimum(torch.clamp(tile_max, min=0), limits).long()
    span = (tile_max - tile_min).clamp(min=0)  # [I, N, 2]
    counts = (span[..., 0] * span[..., 1] * visible_o).flatten()  # [I * N]

    total = int(counts.sum())  # the one data-dependent size: how many pairs to build
    check_memory(
        f"the torch rasterizer's {total:,} Gaussian-tile pairs",
        total * _BYTES_PER_PAIR,
        device,
        hint="render smaller images, fewer cameras per call, or smaller Gaussians",
    )
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return TilePairs(empty, empty)
    owner = torch.repeat_interleave(
        torch.arange(counts.numel(), device=device), counts, output_size=total
    )
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(total, device=device) - starts[owner]
    box_w = span[..., 0].flatten()[owner]
    tx = tile_min[..., 0].flatten()[owner] + local % box_w
    ty = tile_min[..., 1].flatten()[owner] + local // box_w
    image = owner // count
    tile_ids = image * (tiles_x * tiles_y) + ty * tiles_x + tx
    gauss_ids = image * count + order.flatten()[owner]
    # Pairs were generated in (image, depth) order; a stable sort by tile keeps depth order.
    tile_ids, perm = torch.sort(tile_ids, stable=True)
    return TilePairs(tile_ids, gauss_ids[perm])
