"""Tile rasterizer with a memory-bounded custom backward (private; see :func:`aware3d.rasterize`).

Pairs ``(tile, Gaussian)``, grouped by tile and depth-ordered inside a tile, are processed in
chunks of pairs; each pair is evaluated on the ``t x t`` pixels of its tile (``t`` is the
``tile_size`` argument: :data:`aware3d.functional.splat.TILE_SIZE`, 4, so 16 pixels). Within a
chunk the front-to-back transmittance is a segmented cumulative sum of ``log(1 - alpha)`` (in
float64), and a per-pixel state carries it from one chunk to the next, so a tile may span several
chunks. Autograd never sees the ``[pairs, t * t]`` tensors: the backward pass recomputes them
chunk by chunk, back to
front, carrying the log transmittance (starting from the saved final value) and the suffix sum
``S_i = sum_{j > i} w_j <g, c_j>``. Saved memory is the inputs, the pair list and one float64 per
pixel.

Per pixel, with fragments ``i`` in depth order, ``alpha_i = min(0.999, o_i exp(-q_i))``,
``q_i = 0.5 d^T Sigma_i^-1 d`` (``d = mean_i - pixel``), skipped if ``q_i < 0`` or
``alpha_i < 1/255``, and ``T_i = prod_{j < i} (1 - alpha_j)``, the pixel stops before the first
fragment with ``T_i (1 - alpha_i) <= 1e-4``, and the output is ``sum_i alpha_i T_i c_i``.
Gradients: ``dL/dc_i = sum_k w_ik g_k`` and
``dL/dalpha_i = T_i <g, c_i> - S_i / (1 - alpha_i)``.
"""

import math
from typing import Any

import torch
from torch import Tensor

from aware3d.functional._scan import segmented_cumsum
from aware3d.functional._splat_project import ALPHA_THRESHOLD
from aware3d.functional._splat_tiles import TilePairs

#: A pixel stops before the fragment that would bring its transmittance to this or below.
TRANSMITTANCE_MIN = 1e-4
ALPHA_MAX = 0.999
_LOG_T_MIN = math.log(TRANSMITTANCE_MIN)
#: Elements of the largest per-chunk ``[pairs, pixels per tile, F]`` temporary (CPU: cache sized).
_CHUNK_ELEMENTS = 1 << 19
#: The same on CUDA, where fewer, larger chunks pay off.
_CHUNK_ELEMENTS_CUDA = 1 << 24


def _segments(tile_ids: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Start and end index of each pair's tile segment, and the start / end flags."""
    count = tile_ids.numel()
    first = torch.ones(count, dtype=torch.bool, device=tile_ids.device)
    first[1:] = tile_ids[1:] != tile_ids[:-1]
    last = torch.ones(count, dtype=torch.bool, device=tile_ids.device)
    last[:-1] = tile_ids[:-1] != tile_ids[1:]
    segment = torch.cumsum(first.long(), 0) - 1
    starts = torch.nonzero(first).squeeze(-1)
    ends = torch.nonzero(last).squeeze(-1)
    return starts[segment], ends[segment], first, last


class _Fragments:
    """Per (pair, tile pixel) quantities of one chunk, ``[P, tile_size**2]``."""

    def __init__(
        self,
        tile_ids: Tensor,
        gauss_ids: Tensor,
        means2d: Tensor,
        conics: Tensor,
        opacities: Tensor,
        tiles_x: int,
        tiles_y: int,
        tile_size: int,
    ) -> None:
        device, dtype = means2d.device, means2d.dtype
        local = torch.arange(tile_size * tile_size, device=device)
        lx = (local % tile_size).to(dtype) + 0.5
        ly = (local // tile_size).to(dtype) + 0.5
        in_image = tile_ids % (tiles_x * tiles_y)
        x0 = ((in_image % tiles_x) * tile_size).to(dtype)
        y0 = ((in_image // tiles_x) * tile_size).to(dtype)
        mean = means2d[gauss_ids]
        conic = conics[gauss_ids]
        self.conic = conic
        self.dx = mean[:, 0, None] - (x0[:, None] + lx)
        self.dy = mean[:, 1, None] - (y0[:, None] + ly)
        ca, cb, cc = conic[:, 0, None], conic[:, 1, None], conic[:, 2, None]
        self.q = 0.5 * (ca * self.dx * self.dx + cc * self.dy * self.dy) + cb * self.dx * self.dy
        self.raw = opacities[gauss_ids][:, None] * torch.exp(-self.q)
        alpha = torch.clamp(self.raw, max=ALPHA_MAX)
        self.ok = (self.q >= 0) & (alpha >= ALPHA_THRESHOLD)
        self.alpha = torch.where(self.ok, alpha, torch.zeros_like(alpha))
        self.log1m = torch.log1p(-self.alpha.double())


def _chunk_size(pixels: int, channels: int, device: torch.device) -> int:
    budget = _CHUNK_ELEMENTS_CUDA if device.type == "cuda" else _CHUNK_ELEMENTS
    return max(1, budget // (pixels * max(channels, 4)))


class RasterizeTiles(torch.autograd.Function):
    """Front-to-back compositing of tile pairs.

    The output is in tile layout, ``[I * TY * TX, tile_size**2, F]``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        means2d: Tensor,
        conics: Tensor,
        opacities: Tensor,
        colors: Tensor,
        tile_ids: Tensor,
        gauss_ids: Tensor,
        num_tiles: int,
        tiles_x: int,
        tiles_y: int,
        tile_size: int,
    ) -> Tensor:
        """Composites ``means2d [M, 2]``, ``conics [M, 3]``, ``opacities [M]``, ``colors [M, F]``.

        Returns premultiplied features in tile layout.
        """
        pixels = tile_size * tile_size
        channels = colors.shape[-1]
        out = torch.zeros(num_tiles, pixels, channels, dtype=colors.dtype, device=colors.device)
        log_t = torch.zeros(num_tiles, pixels, dtype=torch.float64, device=colors.device)
        total = tile_ids.numel()
        step = _chunk_size(pixels, channels, colors.device)
        for begin in range(0, total, step):
            tid = tile_ids[begin : begin + step]
            gid = gauss_ids[begin : begin + step]
            frag = _Fragments(tid, gid, means2d, conics, opacities, tiles_x, tiles_y, tile_size)
            start, _, _, last = _segments(tid)
            incl = segmented_cumsum(frag.log1m, start) + log_t[tid]
            excl = incl - frag.log1m
            keep = incl > _LOG_T_MIN
            weight = torch.where(keep, frag.alpha.double() * torch.exp(excl), 0.0).to(colors.dtype)
            out.index_add_(0, tid, weight[:, :, None] * colors[gid][:, None, :])
            log_t[tid[last]] = incl[last]
        ctx.save_for_backward(means2d, conics, opacities, colors, tile_ids, gauss_ids, log_t)
        ctx.grid = (tiles_x, tiles_y, tile_size)
        return out

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Any) -> Any:
        """Recomputes chunk by chunk, back to front."""
        (grad_out,) = grad_outputs
        means2d, conics, opacities, colors, tile_ids, gauss_ids, log_t_final = ctx.saved_tensors
        tiles_x, tiles_y, tile_size = ctx.grid
        grad_out = grad_out.contiguous()
        grad_means2d = torch.zeros_like(means2d)
        grad_conics = torch.zeros_like(conics)
        grad_opacities = torch.zeros_like(opacities)
        grad_colors = torch.zeros_like(colors)
        log_t = log_t_final.clone()
        suffix = torch.zeros_like(log_t)
        total = tile_ids.numel()
        step = _chunk_size(tile_size * tile_size, colors.shape[-1], colors.device)
        begins = list(range(0, total, step))
        for begin in reversed(begins):
            tid = tile_ids[begin : begin + step]
            gid = gauss_ids[begin : begin + step]
            frag = _Fragments(tid, gid, means2d, conics, opacities, tiles_x, tiles_y, tile_size)
            _, end, first, _ = _segments(tid)
            log1m = frag.log1m
            # sum over j >= i in this chunk's segment
            excl = log_t[tid] - segmented_cumsum(log1m, end, reverse=True)
            incl = excl + log1m
            keep = incl > _LOG_T_MIN
            transmittance = torch.exp(excl)
            alpha = frag.alpha.double()
            weight = torch.where(keep, alpha * transmittance, 0.0)
            grad_tile = grad_out[tid]  # [P, tile_size**2, F]
            colors_p = colors[gid]
            gc = torch.einsum("pkf,pf->pk", grad_tile, colors_p).double()
            v = weight * gc
            v_suffix = segmented_cumsum(v, end, reverse=True)  # j >= i in this chunk's segment
            after = suffix[tid] + v_suffix - v  # sum over j > i of the whole pixel
            grad_alpha = torch.where(keep, transmittance * gc - after / (1.0 - alpha), 0.0)
            suffix[tid[first]] += v_suffix[first]
            log_t[tid[first]] = excl[first]

            dtype = colors.dtype
            grad_colors.index_add_(0, gid, torch.einsum("pk,pkf->pf", weight.to(dtype), grad_tile))
            unclamped = frag.ok & (frag.raw <= ALPHA_MAX)
            grad_raw = torch.where(unclamped, grad_alpha.to(dtype), torch.zeros_like(frag.q))
            grad_opacities.index_add_(0, gid, (grad_raw * torch.exp(-frag.q)).sum(-1))
            grad_q = -grad_raw * frag.raw
            dx, dy = frag.dx, frag.dy
            g_conic = torch.stack(
                [
                    (0.5 * grad_q * dx * dx).sum(-1),
                    (grad_q * dx * dy).sum(-1),
                    (0.5 * grad_q * dy * dy).sum(-1),
                ],
                dim=-1,
            )
            grad_conics.index_add_(0, gid, g_conic)
            ca, cb, cc = frag.conic[:, 0, None], frag.conic[:, 1, None], frag.conic[:, 2, None]
            g_mean = torch.stack(
                [(grad_q * (ca * dx + cb * dy)).sum(-1), (grad_q * (cc * dy + cb * dx)).sum(-1)],
                dim=-1,
            )
            grad_means2d.index_add_(0, gid, g_mean)
        return (
            grad_means2d,
            grad_conics,
            grad_opacities,
            grad_colors,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def rasterize_tiles(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    pairs: TilePairs,
    width: int,
    height: int,
    tile_size: int,
) -> Tensor:
    """Composites ``[I, N]`` 2D Gaussians into ``[I, H, W, F]`` premultiplied images.

    Args:
        means2d: ``[I, N, 2]`` pixel centres.
        conics: ``[I, N, 3]`` inverse 2D covariances ``(a, b, c)``.
        opacities: ``[I, N]``.
        colors: ``[I, N, F]`` per-image features.
        pairs: tile pairs from :func:`intersect_tiles`.
        width: image width.
        height: image height.
        tile_size: tile edge in pixels.

    Returns:
        ``sum_i alpha_i T_i c_i`` per pixel, ``[I, H, W, F]``.
    """
    num_images, count, channels = colors.shape
    tiles_x = math.ceil(width / tile_size)
    tiles_y = math.ceil(height / tile_size)
    out = RasterizeTiles.apply(
        means2d.reshape(num_images * count, 2),
        conics.reshape(num_images * count, 3),
        opacities.reshape(num_images * count),
        colors.reshape(num_images * count, channels),
        pairs.tile_ids,
        pairs.gauss_ids,
        num_images * tiles_x * tiles_y,
        tiles_x,
        tiles_y,
        tile_size,
    )
    out = out.reshape(num_images, tiles_y, tiles_x, tile_size, tile_size, channels)
    out = out.permute(0, 1, 3, 2, 4, 5).reshape(
        num_images, tiles_y * tile_size, tiles_x * tile_size, channels
    )
    return out[:, :height, :width]
