"""The gsplat backend (private; see :func:`aware3d.rasterize`).

gsplat is imported here, lazily, and only ever called with CUDA tensors: on a machine without a
CUDA build of torch gsplat tries to compile its extension, fails and deletes its build folder.
"""

from typing import Any

import torch
from torch import Tensor

_LOAD_ERROR = (
    "the gsplat backend could not be loaded ({reason}); install a gsplat build that matches "
    'this torch/CUDA, or pass backend="torch" to use aware3d\'s own rasterizer'
)


def _load_gsplat() -> Any:
    """Imports gsplat and its CUDA extension, or raises ``RuntimeError`` naming backend torch."""
    try:
        import gsplat
        from gsplat.cuda._backend import _C  # pyright: ignore[reportAttributeAccessIssue]
    except Exception as error:  # import or build failure of an optional dependency
        raise RuntimeError(_LOAD_ERROR.format(reason=f"{type(error).__name__}: {error}")) from error
    if _C is None:
        raise RuntimeError(_LOAD_ERROR.format(reason="its CUDA extension did not build or load"))
    return gsplat


def gsplat_available() -> bool:
    """Whether the gsplat backend loads (imports gsplat; call only when CUDA is available)."""
    if not torch.cuda.is_available():
        return False
    try:
        _load_gsplat()
    except RuntimeError:
        return False
    return True


def rasterize_gsplat(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float,
    far_plane: float,
    eps2d: float,
) -> tuple[Tensor, Tensor]:
    """Calls ``gsplat.rasterization`` (float32, autocast off, ``packed=False``).

    Args:
        means: ``[B, N, 3]``.
        quats: ``[B, N, 4]`` wxyz.
        scales: ``[B, N, 3]``.
        opacities: ``[B, N]``.
        colors: per-camera features ``[B, C, N, F]``.
        viewmats: world-to-camera ``[B, C, 4, 4]``.
        Ks: pixel intrinsics ``[B, C, 3, 3]``.
        width: image width.
        height: image height.
        near_plane: near culling depth.
        far_plane: far culling depth.
        eps2d: 2D dilation.

    Returns:
        Premultiplied features ``[B, C, H, W, F]`` and alpha ``[B, C, H, W, 1]`` in float32.
    """
    if means.device.type != "cuda":
        raise ValueError(
            f'backend="gsplat" needs CUDA tensors, got tensors on {means.device}; '
            'use backend="torch"'
        )
    gsplat = _load_gsplat()
    with torch.autocast(device_type="cuda", enabled=False):
        render, alpha, _ = gsplat.rasterization(
            means.float(),
            quats.float(),
            scales.float(),
            opacities.float(),
            colors.float(),
            viewmats.float(),
            Ks.float(),
            width,
            height,
            near_plane=near_plane,
            far_plane=far_plane,
            eps2d=eps2d,
            packed=False,
            tile_size=16,
            render_mode="RGB",
            rasterize_mode="classic",
        )
    return render, alpha
