"""Batched Gaussian splatting: ``B`` scenes x ``C`` cameras in one call.

Two backends share one set of semantics (``docs/pages/rasterize.md``): gsplat's CUDA kernels for
CUDA tensors, and the library's own vectorised, memory-bounded torch rasterizer on any device.
"""

import functools
import math
from typing import Literal, NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor

from aware3d._validation import (
    check_bool,
    check_choice,
    check_memory,
    check_nonnegative_number,
    check_scene_cameras,
    check_shape,
    check_values,
    finite_checks,
    require_tensor,
    value_checks_enabled,
)
from aware3d.cameras import Cameras
from aware3d.functional._splat_project import project
from aware3d.functional._splat_raster import rasterize_tiles
from aware3d.functional._splat_tiles import intersect_tiles
from aware3d.gaussians import Gaussians

#: Pixel block of the torch backend. gsplat uses 16x16 tiles; smaller blocks give the same image
#: (every pixel outside the footprint box would be skipped, ``alpha < 1/255``) with ~4x fewer
#: fragment evaluations on CPU.
TILE_SIZE = 4
#: Bytes per pixel and channel that a call holds at its peak, relative to one output image: the
#: tile-layout buffer, its un-tiled copy and the composited output (forward), their gradients.
_IMAGE_COPIES = 3
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
    width: object,
    height: object,
    backgrounds: object,
    near_plane: object,
    far_plane: object,
    eps2d: object,
    depth_moments: object,
    backend: object,
) -> None:
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"`gaussians` must be a Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras):
        raise TypeError(f"`cameras` must be a Cameras, got {type(cameras).__name__}")
    batch = gaussians.means.shape[0]
    check_scene_cameras(cameras.shape, batch, "the Gaussians' batch")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
    near = check_nonnegative_number("near_plane", near_plane)
    if isinstance(far_plane, bool) or not isinstance(far_plane, int | float):
        raise TypeError(f"`far_plane` must be a number, got {far_plane!r}")
    if not far_plane > near:  # may be inf
        raise ValueError(f"`far_plane` must be a number > near_plane = {near}, got {far_plane!r}")
    check_nonnegative_number("eps2d", eps2d)
    check_bool("depth_moments", depth_moments)
    check_choice("backend", backend, _BACKENDS)
    device = gaussians.device
    if cameras.device != device:
        raise ValueError(
            f"`cameras` is on {cameras.device} but `gaussians` is on {device}; move them to one "
            "device"
        )
    if backgrounds is not None:
        require_tensor("backgrounds", backgrounds)
        assert isinstance(backgrounds, Tensor)
        check_shape(
            "backgrounds", backgrounds, (batch, cameras.shape[1], gaussians.features.shape[-1])
        )
        if backgrounds.device != device:
            raise ValueError(
                f"`backgrounds` is on {backgrounds.device} but `gaussians` is on {device}"
            )
        if value_checks_enabled():
            check_values(finite_checks(backgrounds=backgrounds))
    if device.type == "meta":
        raise ValueError(
            "`gaussians` are meta tensors: rasterize needs their values (which Gaussians touch "
            "which pixels), so it cannot run on the meta device"
        )
    if backend == "gsplat" and device.type != "cuda":
        raise ValueError(
            f'`backend="gsplat"` needs CUDA tensors, got tensors on {device}; '
            'use backend="torch" (or "auto") on this device'
        )


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype rasterize computes and returns in: ``float64`` stays, anything else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_image_memory(
    images: int, width: int, height: int, channels: int, dtype: torch.dtype, device: torch.device
) -> None:
    pixels = images * math.ceil(height / TILE_SIZE) * math.ceil(width / TILE_SIZE) * TILE_SIZE**2
    itemsize = torch.empty((), dtype=dtype).element_size()
    needed = pixels * (_IMAGE_COPIES * channels * itemsize + 8)  # + float64 log-transmittance
    check_memory(
        f"rasterize of {images} images of {width}x{height} pixels with {channels} channels",
        needed,
        device,
        hint="render fewer or smaller images per call",
    )


def _nan_poison(gaussians: Gaussians, viewmats: Tensor, Ks: Tensor) -> Tensor:
    """``0`` per scene, or NaN if any of the scene's inputs is NaN or infinite, ``[B]``.

    Non-finite Gaussians are culled by the projection, so without this a NaN in the inputs (with
    value checks off) would give a blank, finite image; adding ``0 * sum(inputs)`` keeps it
    visible, costs one reduction and leaves the gradients unchanged.
    """
    per_scene = (
        gaussians.means.sum((1, 2))
        + gaussians.quats.sum((1, 2))
        + gaussians.scales.sum((1, 2))
        + gaussians.opacities.sum(1)
        + gaussians.features.sum((1, 2))
        + viewmats.sum((1, 2, 3))
        + Ks.sum((1, 2, 3))
    )
    return per_scene.detach() * 0.0


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
    backend: Literal["auto", "torch", "gsplat"] = "auto",
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
        cameras: ``Cameras`` of shape ``[B, C]``: scene ``b`` is seen by ``cameras[b]``. For one
            camera per scene use ``cameras[:, None]`` (``Cameras.from_eg3d_labels(labels)`` of
            labels ``[B, 25]`` is ``[B]``; ``from_eg3d_labels(labels[:, None])`` is ``[B, 1]``);
            a 1-D batch is refused with that hint rather than guessed.
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

    **Precision.** Both backends render in float32 at least: float16 and bfloat16 Gaussians are
    rendered in float32 (half precision misplaces alpha by several percent), float64 stays
    float64 on the torch backend (gsplat computes in float32 and casts back). ``torch.autocast``
    is turned off inside. The outputs have the rendering dtype: float64 for float64 Gaussians,
    float32 otherwise.

    **NaN.** ``Gaussians``, ``Cameras`` and ``backgrounds`` are checked for NaN where they are
    built or passed (unless value checks are off, see :func:`aware3d.value_checks`). With checks
    off, a non-finite input turns its whole scene's outputs into NaN rather than being culled
    into a blank image.

    Returns:
        ``SplatOutput(features [B, C, H, W, F], alpha [B, C, H, W, 1], depth [B, C, H, W, 1],
        moment1, moment2)``; ``depth = moment1 / alpha`` where ``alpha > 0``, else 0.
        Differentiable w.r.t. means, quats, scales, opacities, features and backgrounds.

    Raises:
        ValueError: for a camera batch that is not ``[B, C]`` (the message says how to reshape
            it), a non-positive size, a background of the wrong shape or with non-finite values,
            bad planes or ``eps2d``, an unknown backend, ``backend="gsplat"`` with non-CUDA
            tensors, or meta tensors.
        TypeError: for arguments of the wrong type.
        MemoryError: if the images (or the torch backend's Gaussian-tile pairs) would need more
            memory than the device has available; the message gives the estimate and the limit.
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
    dtype = compute_dtype(gaussians.dtype)
    device = gaussians.device
    channels = gaussians.feature_dim + (3 if depth_moments else 2)
    _check_image_memory(
        gaussians.batch_size * cameras.shape[1], width, height, channels, dtype, device
    )
    use_gsplat = backend == "gsplat" or (
        backend == "auto" and device.type == "cuda" and _gsplat_loads()
    )
    render = _render_gsplat if use_gsplat else _render_torch
    with torch.autocast(device_type=device.type, enabled=False):
        gaussians = gaussians if gaussians.dtype == dtype else gaussians.to(dtype)
        viewmats = cameras.viewmats().to(dtype)
        Ks = cameras.Ks(width, height).to(dtype)
        features, alpha, moment1, moment2 = render(
            gaussians,
            viewmats,
            Ks,
            width,
            height,
            float(near_plane),  # pyright: ignore[reportArgumentType]
            float(far_plane),  # pyright: ignore[reportArgumentType]
            float(eps2d),  # pyright: ignore[reportArgumentType]
            depth_moments,
        )
        depth = torch.where(
            alpha > 0, moment1 / alpha.clamp(min=_DEPTH_EPS), torch.zeros_like(alpha)
        )
        poison = _nan_poison(gaussians, viewmats, Ks)[:, None, None, None, None]
        features, alpha, depth = features + poison, alpha + poison, depth + poison
        moment1 = moment1 + poison
        moment2 = None if moment2 is None else moment2 + poison
        if backgrounds is not None:
            features = features + (1.0 - alpha) * backgrounds[:, :, None, None, :].to(dtype)
    return SplatOutput(
        features,
        alpha,
        depth,
        moment1 if depth_moments else None,
        moment2,
    )
