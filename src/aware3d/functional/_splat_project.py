"""EWA projection of 3D Gaussians into every camera (private; see :func:`aware3d.rasterize`).

Semantics follow gsplat 1.5.3's pinhole ``fully_fused_projection``: the covariance
``R S S^T R^T`` is moved to camera space and projected with the perspective Jacobian evaluated at
the mean clamped to 1.3x the field of view, ``eps2d`` is added to the diagonal of the 2D
covariance, and the footprint is ``ceil(k * sqrt(Sigma_xx))`` by ``ceil(k * sqrt(Sigma_yy))`` with
``k = min(3.33, sqrt(2 log(255 o)))`` (gsplat's opacity-aware bound: outside it every fragment has
``alpha < 1/255`` and would be skipped anyway, so it changes no pixel).
"""

from typing import NamedTuple

import torch
from torch import Tensor

from aware3d.functional._quaternion import normalize_quaternion, unit_quaternion_to_matrix

#: Fragments with a smaller alpha are skipped (gsplat's ``ALPHA_THRESHOLD``).
ALPHA_THRESHOLD = 1.0 / 255.0
#: Footprint half-width in standard deviations (gsplat 1.5.3).
FOOTPRINT_SIGMAS = 3.33


class Projection(NamedTuple):
    """Per-camera 2D Gaussians, ``I = B * C`` images.

    Attributes:
        means2d: pixel-space centres, ``[B, C, N, 2]`` (differentiable).
        conics: upper triangle of the inverse 2D covariance ``(a, b, c)``, ``[B, C, N, 3]``.
        depths: camera-space z, ``[B, C, N]`` (differentiable).
        radii: footprint half-widths in pixels (x, y), ``[B, C, N, 2]``, 0 where culled (no grad).
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor


def project(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float,
    near_plane: float,
    far_plane: float,
) -> Projection:
    """Projects ``[B, N]`` Gaussians into ``[B, C]`` cameras (world-to-camera, pixel intrinsics)."""
    rotation = unit_quaternion_to_matrix(normalize_quaternion(quats))  # [B, N, 3, 3]
    m = rotation * scales[..., None, :]  # R @ diag(s)
    covars = m @ m.transpose(-1, -2)  # [B, N, 3, 3]

    view_r = viewmats[..., :3, :3]  # [B, C, 3, 3]
    view_t = viewmats[..., :3, 3]  # [B, C, 3]
    means_c = torch.einsum("bcij,bnj->bcni", view_r, means) + view_t[:, :, None, :]
    covars_c = torch.einsum("bcij,bnjk,bclk->bcnil", view_r, covars, view_r)  # [B, C, N, 3, 3]

    x, y, z = means_c.unbind(-1)  # [B, C, N]
    in_depth = (z > near_plane) & (z < far_plane)
    z_safe = torch.where(in_depth, z, torch.ones_like(z))

    fx = Ks[..., 0, 0, None]
    fy = Ks[..., 1, 1, None]
    cx = Ks[..., 0, 2, None]
    cy = Ks[..., 1, 2, None]
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    u = x / z_safe
    v = y / z_safe
    tx = z_safe * torch.minimum(torch.maximum(u, -lim_x_neg), lim_x_pos)
    ty = z_safe * torch.minimum(torch.maximum(v, -lim_y_neg), lim_y_pos)

    # J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]]
    j00 = fx / z_safe
    j02 = -fx * tx / (z_safe * z_safe)
    j11 = fy / z_safe
    j12 = -fy * ty / (z_safe * z_safe)
    s = covars_c
    # rows of J @ Sigma: r0 = j00 * s[0] + j02 * s[2], r1 = j11 * s[1] + j12 * s[2]
    r0 = j00[..., None] * s[..., 0, :] + j02[..., None] * s[..., 2, :]
    r1 = j11[..., None] * s[..., 1, :] + j12[..., None] * s[..., 2, :]
    cov_a = j00 * r0[..., 0] + j02 * r0[..., 2] + eps2d
    cov_b = j11 * r0[..., 1] + j12 * r0[..., 2]
    cov_c = j11 * r1[..., 1] + j12 * r1[..., 2] + eps2d

    det = cov_a * cov_c - cov_b * cov_b
    valid = in_depth & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([cov_c / det_safe, -cov_b / det_safe, cov_a / det_safe], dim=-1)
    means2d = torch.stack([fx * u + cx, fy * v + cy], dim=-1)

    with torch.no_grad():
        opac = opacities[:, None, :].expand_as(z)
        valid = valid & (opac >= ALPHA_THRESHOLD)
        ratio = torch.clamp(opac / ALPHA_THRESHOLD, min=1.0)
        extend = torch.clamp(torch.sqrt(2.0 * torch.log(ratio)), max=FOOTPRINT_SIGMAS)
        radius_x = torch.ceil(extend * torch.sqrt(cov_a.clamp(min=0)))
        radius_y = torch.ceil(extend * torch.sqrt(cov_c.clamp(min=0)))
        valid = valid & (radius_x > 0) & (radius_y > 0)
        mx, my = means2d.unbind(-1)
        inside = (
            (mx + radius_x > 0)
            & (mx - radius_x < width)
            & (my + radius_y > 0)
            & (my - radius_y < height)
        )
        valid = valid & inside & torch.isfinite(radius_x) & torch.isfinite(radius_y)
        radii = torch.stack([radius_x, radius_y], dim=-1) * valid[..., None]
        radii = torch.nan_to_num(radii, nan=0.0)
    return Projection(means2d, conics, z, radii)
