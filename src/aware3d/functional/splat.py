"""Batched Gaussian splatting: ``B`` scenes x ``C`` cameras in one call.

Two backends share one set of semantics (``docs/pages/rasterize.md``): gsplat's CUDA kernels for
CUDA tensors, and the library's own vectorised, memory-bounded torch rasterizer on any device.
"""

import functools
import math
from typing import NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor

from aware3d._validation import check_same_device, check_shape, format_shape, require_tensor
from aware3d.cameras import Cameras
from aware3d.functional._splat_project import project
from aware3d.functional._splat_raster import rasterize_tiles
from aware3d.functional._splat_tiles import intersect_tiles
from aware3d.gaussians import Gaussians

#: Pixel block of the torch backend. gsplat uses 16x16 tiles; smaller blocks give the same image
#: (every pixel outside the footprint box would be skipped, ``alpha < 1/255``) with ~4x fewer
#: fragment evaluations on CPU.
TILE_SIZE = 4
_BACKENDS = ("auto", "torch", "gsplat")
_DEPTH_EPS = 1e-10


class SplatOutput(NamedTuple):
    """What :func:`rasterize` returns; images are channels-last.

    Attributes:
        features: ``sum_i w_i f_i + (1 - alpha) * background``, ``[B, C, H, W, F]``
            (premultiplied by alpha; the background term only where ``backgrounds`` is given).
        alpha: accumulated opacity ``sum_i w_i``, ``[B, C, H, W, 1]``.
        depth: expected camera-space depth of the foreground ``moment1 / alpha``, 0 where alpha
            is 0, ``[B, C, H, W, 1]``.
        moment1: ``sum_i w_i z_i``, ``[B, C, H, W, 1]``, or ``None`` unless ``depth_moments``.
        moment2: ``sum_i w_i z_i^2``, ``[B, C, H, W, 1]``, or ``None`` unless ``depth_moments``.
    """

    features: Float[Tensor, "B C H W F"]
    alpha: Float[Tensor, "B C H W 1"]
    depth: Float[Tensor, "B C H W 1"]
    moment1: Float[Tensor, "B C H W 1"] | None
    moment2: Float[Tensor, "B C H W 1"] | None


@functools.cache
def _gsplat_loads() -> bool:
    from aware3d.functional._splat_gsplat import gsplat_available

    return gsplat_available()


def _validate(
    gaussians: object,
    cameras: object,
    width: int,
    height: int,
    backgrounds: object,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    depth_moments: object,
    backend: object,
) -> None:
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"`gaussians` must be a Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras):
        raise TypeError(f"`cameras` must be a Cameras, got {type(cameras).__name__}")
    batch = gaussians.means.shape[0]
    if len(cameras.shape) != 2 or cameras.shape[0] != batch:
        raise ValueError(
            f"`cameras` must have shape [B, C] = [{batch}, C] to match the Gaussians' batch "
            f"B = {batch}, got {format_shape(tuple(cameras.shape))}"
        )
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
    if not (isinstance(near_plane, int | float) and math.isfinite(near_plane) and near_plane >= 0):
        raise ValueError(f"`near_plane` must be a finite number >= 0, got {near_plane!r}")
    if not (isinstance(far_plane, int | float) and far_plane > near_plane):
        raise ValueError(
            f"`far_plane` must be a number > near_plane = {near_plane}, got {far_plane!r}"
        )
    if not (isinstance(eps2d, int | float) and math.isfinite(eps2d) and eps2d >= 0):
        raise ValueError(f"`eps2d` must be a finite number >= 0, got {eps2d!r}")
    if not isinstance(depth_moments, bool):
        raise ValueError(f"`depth_moments` must be a bool, got {depth_moments!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"`backend` must be one of {_BACKENDS}, got {backend!r}")
    check_same_device([("gaussians.means", gaussians.means), ("cameras", cameras.cam2world)])
    if backgrounds is not None:
        require_tensor("backgrounds", backgrounds)
        assert isinstance(backgrounds, Tensor)
        check_shape(
            "backgrounds",
            backgrounds,
            (batch, cameras.shape[1], gaussians.features.shape[-1]),
        )
        check_same_device([("gaussians.means", gaussians.means), ("backgrounds", backgrounds)])
    if backend == "gsplat" and gaussians.means.device.type != "cuda":
        raise ValueError(
            f'`backend="gsplat"` needs CUDA tensors, got tensors on {gaussians.means.device}; '
            'use backend="torch" (or "auto") on this device'
        )


def _render_torch(
    gaussians: Gaussians,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    depth_moments: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Torch backend: premultiplied features, alpha, moment1, moment2 (``[B, C, H, W, .]``)."""
    means, quats, scales = gaussians.means, gaussians.quats, gaussians.scales
    opacities, features = gaussians.opacities, gaussians.features
    batch, count, channels = features.shape
    cams = viewmats.shape[1]
    images = batch * cams
    proj = project(
        means, quats, scales, opacities, viewmats, Ks, width, height, eps2d, near_plane, far_plane
    )
    z = proj.depths[..., None]  # [B, C, N, 1]
    extras = [torch.ones_like(z), z] + ([z * z] if depth_moments else [])
    colors = torch.cat([features[:, None].expand(batch, cams, count, channels), *extras], dim=-1)
    tiles_x = math.ceil(width / TILE_SIZE)
    tiles_y = math.ceil(height / TILE_SIZE)
    pairs = intersect_tiles(
        proj.means2d.detach().reshape(images, count, 2),
        proj.radii.reshape(images, count, 2),
        proj.depths.detach().reshape(images, count),
        TILE_SIZE,
        tiles_x,
        tiles_y,
    )
    image = rasterize_tiles(
        proj.means2d.reshape(images, count, 2),
        proj.conics.reshape(images, count, 3),
        opacities[:, None].expand(batch, cams, count).reshape(images, count),
        colors.reshape(images, count, colors.shape[-1]),
        pairs,
        width,
        height,
        TILE_SIZE,
    ).reshape(batch, cams, height, width, colors.shape[-1])
    moment2 = image[..., channels + 2 :] if depth_moments else None
    return (
        image[..., :channels],
        image[..., channels : channels + 1],
        image[..., channels + 1 : channels + 2],
        moment2,
    )


def _render_gsplat(
    gaussians: Gaussians,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float,
    far_plane: float,
    eps2d: float,
    depth_moments: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Gsplat backend; depth moments are rendered as extra feature channels."""
    from aware3d.functional._splat_gsplat import rasterize_gsplat

    features = gaussians.features
    batch, count, channels = features.shape
    cams = viewmats.shape[1]
    z = (
        torch.einsum("bcj,bnj->bcn", viewmats[..., 2, :3], gaussians.means)
        + viewmats[..., 2, 3, None]
    )[..., None]
    extras = [z] + ([z * z] if depth_moments else [])
    colors = torch.cat([features[:, None].expand(batch, cams, count, channels), *extras], dim=-1)
    render, alpha = rasterize_gsplat(
        gaussians.means,
        gaussians.quats,
        gaussians.scales,
        gaussians.opacities,
        colors,
        viewmats,
        Ks,
        width,
        height,
        near_plane,
        far_plane,
        eps2d,
    )
    render = render.to(features.dtype)
    alpha = alpha.to(features.dtype)
    moment2 = render[..., channels + 1 :] if depth_moments else None
    return render[..., :channels], alpha, render[..., channels : channels + 1], moment2


def rasterize(
    gaussians: Gaussians,
    cameras: Cameras,
    width: int,
    height: int,
    *,
    backgrounds: Float[Tensor, "B C F"] | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    depth_moments: bool = False,
    backend: str = "auto",
) -> SplatOutput:
    """Splats ``B`` scenes of Gaussians into each scene's ``C`` cameras.

    Every backend follows the same rules (gsplat 1.5.3, ``rasterize_mode="classic"``):

    * EWA projection ``Sigma_2D = J W Sigma W^T J^T + eps2d I`` with ``Sigma = R S S^T R^T``
      (quaternions are normalised here), the Jacobian ``J`` evaluated at the mean clamped to 1.3x
      the field of view; Gaussians with camera depth outside ``(near_plane, far_plane)`` are culled.
    * Footprint ``ceil(3.33 sqrt(Sigma_xx))`` by ``ceil(3.33 sqrt(Sigma_yy))`` pixels; the
      Gaussian is evaluated at the pixel centres ``(j + 0.5, i + 0.5)`` of the tiles its footprint
      box touches (gsplat: 16x16 tiles; the torch backend: 4x4 blocks, which gives the same image
      because every fragment outside the box has ``alpha < 1/255`` and is skipped).
    * Front to back in depth order: ``alpha_i = min(0.999, o_i exp(-q_i))`` with
      ``q_i = 0.5 d^T Sigma_2D^-1 d``; fragments with ``q_i < 0`` or ``alpha_i < 1/255`` are
      skipped; ``T_i = prod_{j<i} (1 - alpha_j)``, ``w_i = alpha_i T_i``, and a pixel stops before
      the fragment that would bring ``T`` to ``1e-4`` or below.

    Args:
        gaussians: ``B`` scenes of ``N`` Gaussians (``means [B, N, 3]``, ``quats [B, N, 4]``,
            ``scales [B, N, 3]``, ``opacities [B, N]``, ``features [B, N, F]``).
        cameras: ``Cameras`` of shape ``[B, C]``: scene ``b`` is seen by ``cameras[b]``.
        width: image width ``W`` in pixels.
        height: image height ``H`` in pixels.
        backgrounds: optional per-image background features ``[B, C, F]``, added as
            ``(1 - alpha) * background``.
        near_plane: Gaussians with camera depth ``z <= near_plane`` are culled.
        far_plane: Gaussians with camera depth ``z >= far_plane`` are culled.
        eps2d: dilation added to the diagonal of every 2D covariance, in pixels squared.
        depth_moments: also return ``moment1 = sum w z`` and ``moment2 = sum w z^2`` (for the
            splat form of the distortion loss, ``2 (alpha * moment2 - moment1^2)``).
        backend: ``"gsplat"`` (CUDA tensors only), ``"torch"`` (any device), or ``"auto"``:
            gsplat for CUDA tensors when it loads, torch otherwise.

    Returns:
        ``SplatOutput(features [B, C, H, W, F], alpha [B, C, H, W, 1], depth [B, C, H, W, 1],
        moment1, moment2)``; ``depth = moment1 / alpha`` where ``alpha > 0``, else 0.
        Differentiable w.r.t. means, quats, scales, opacities, features and backgrounds.

    Raises:
        ValueError: for a camera batch that is not ``[B, C]``, a non-positive size, a background
            of the wrong shape, bad planes or ``eps2d``, an unknown backend, or
            ``backend="gsplat"`` with non-CUDA tensors.
        TypeError: if ``gaussians`` or ``cameras`` has the wrong type.
        RuntimeError: if ``backend="gsplat"`` and gsplat cannot build or load (use
            ``backend="torch"``).
    """
    _validate(
        gaussians,
        cameras,
        width,
        height,
        backgrounds,
        near_plane,
        far_plane,
        eps2d,
        depth_moments,
        backend,
    )
    dtype = gaussians.means.dtype
    viewmats = cameras.viewmats().to(dtype)
    Ks = cameras.Ks(width, height).to(dtype)
    use_gsplat = backend == "gsplat" or (
        backend == "auto" and gaussians.means.device.type == "cuda" and _gsplat_loads()
    )
    render = _render_gsplat if use_gsplat else _render_torch
    features, alpha, moment1, moment2 = render(
        gaussians,
        viewmats,
        Ks,
        width,
        height,
        float(near_plane),
        float(far_plane),
        float(eps2d),
        depth_moments,
    )
    depth = torch.where(alpha > 0, moment1 / alpha.clamp(min=_DEPTH_EPS), torch.zeros_like(alpha))
    if backgrounds is not None:
        features = features + (1.0 - alpha) * backgrounds[:, :, None, None, :].to(features.dtype)
    return SplatOutput(
        features,
        alpha,
        depth,
        moment1 if depth_moments else None,
        moment2,
    )
