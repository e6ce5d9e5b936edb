"""Brute-force splatting oracle: every pixel against every Gaussian, depth sorted, same rules.

Independent of the library's rasterizer (no tiles, no footprint, no chunking): for each image the
Gaussians are sorted by camera depth and composited one at a time over all pixels, with autograd
doing the backward pass. The footprint/tile rule needs no counterpart here: outside the
``3.33``-sigma box every fragment has ``alpha < 1/255`` and is skipped anyway.

Also random test scenes (``random_cameras``, ``random_gaussians``) for the tests and benchmark.
"""

import math

import torch
from torch import Tensor

from aware3d.cameras import Cameras, look_at
from aware3d.gaussians import Gaussians


def _rotmat(quats: Tensor) -> Tensor:
    q = quats / quats.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y**2 + z**2), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x**2 + z**2), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x**2 + y**2)], -1),
        ],
        -2,
    )


def reference_project(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pixel means ``[B, C, N, 2]``, inverse 2D covariances ``[B, C, N, 2, 2]``, z, valid."""
    dtype = means.dtype
    rot = _rotmat(quats)
    cov3 = rot @ torch.diag_embed(scales**2) @ rot.transpose(-1, -2)  # [B, N, 3, 3]
    w_r = viewmats[:, :, None, :3, :3]  # [B, C, 1, 3, 3]
    w_t = viewmats[:, :, None, :3, 3]
    pc = (w_r @ means[:, None, :, :, None]).squeeze(-1) + w_t  # [B, C, N, 3]
    covc = w_r @ cov3[:, None] @ w_r.transpose(-1, -2)
    x, y, z = pc.unbind(-1)
    valid = (z > near_plane) & (z < far_plane)
    zs = torch.where(valid, z, torch.ones_like(z))
    fx, fy = Ks[:, :, None, 0, 0], Ks[:, :, None, 1, 1]
    cx, cy = Ks[:, :, None, 0, 2], Ks[:, :, None, 1, 2]
    limx_p = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    limx_n = cx / fx + 0.3 * (0.5 * width / fx)
    limy_p = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    limy_n = cy / fy + 0.3 * (0.5 * height / fy)
    tx = zs * torch.clamp(x / zs, -limx_n, limx_p)
    ty = zs * torch.clamp(y / zs, -limy_n, limy_p)
    zero = torch.zeros_like(zs)
    jac = torch.stack(
        [
            torch.stack([fx / zs, zero, -fx * tx / zs**2], -1),
            torch.stack([zero, fy / zs, -fy * ty / zs**2], -1),
        ],
        -2,
    )  # [B, C, N, 2, 3]
    cov2 = jac @ covc @ jac.transpose(-1, -2) + eps2d * torch.eye(2, dtype=dtype)
    det = cov2[..., 0, 0] * cov2[..., 1, 1] - cov2[..., 0, 1] * cov2[..., 1, 0]
    valid = valid & (det > 0)
    inv = torch.linalg.inv(torch.where(valid[..., None, None], cov2, torch.eye(2, dtype=dtype)))
    mu = torch.stack([fx * x / zs + cx, fy * y / zs + cy], -1)  # [B, C, N, 2]
    return mu, inv, z, valid


def _pixels(width: int, height: int, dtype: torch.dtype) -> Tensor:
    rows = torch.arange(height, dtype=dtype) + 0.5
    cols = torch.arange(width, dtype=dtype) + 0.5
    return torch.stack(torch.meshgrid(cols, rows, indexing="xy"), -1).reshape(-1, 2)  # [HW, 2]


def reference_rasterize(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    features: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    backgrounds: Tensor | None = None,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Returns features, alpha, depth, moment1, moment2, each ``[B, C, H, W, .]``.

    One Gaussian at a time (in depth order), all pixels of all images at once.
    """
    batch, count, channels = features.shape
    cams = viewmats.shape[1]
    dtype = means.dtype
    mu, inv, z, valid = reference_project(
        means, quats, scales, viewmats, Ks, width, height, near_plane, far_plane, eps2d
    )
    pix = _pixels(width, height, dtype)

    order = torch.sort(torch.where(valid, z, torch.full_like(z, float("inf"))), dim=-1, stable=True)
    idx = order.indices
    colors = torch.cat(
        [features[:, None].expand(batch, cams, count, channels), z[..., None], (z * z)[..., None]],
        -1,
    )
    opac = opacities[:, None].expand(batch, cams, count)
    trans = torch.ones(batch, cams, pix.shape[0], dtype=dtype)
    done = torch.zeros(batch, cams, pix.shape[0], dtype=torch.bool)
    acc = torch.zeros(batch, cams, pix.shape[0], channels + 2, dtype=dtype)
    alpha_acc = torch.zeros(batch, cams, pix.shape[0], dtype=dtype)
    for k in range(count):
        g = idx[..., k]  # [B, C]

        def take(t: Tensor, g: Tensor = g) -> Tensor:
            shape = (*g.shape, 1, *t.shape[3:])
            return torch.gather(t, 2, g.reshape(*g.shape, 1, *([1] * (t.dim() - 3))).expand(shape))[
                :, :, 0
            ]

        ok_g = take(valid)
        d = take(mu)[:, :, None, :] - pix  # [B, C, HW, 2]
        m = take(inv)
        q = 0.5 * torch.einsum("bcpi,bcij,bcpj->bcp", d, m, d)
        alpha = torch.clamp(take(opac)[..., None] * torch.exp(-q), max=0.999)
        ok = ok_g[..., None] & (q >= 0) & (alpha >= 1.0 / 255.0) & ~done
        next_t = trans * (1 - alpha)
        stop = ok & (next_t <= 1e-4)
        use = ok & ~stop
        weight = torch.where(use, alpha * trans, torch.zeros_like(alpha))
        acc = acc + weight[..., None] * take(colors)[:, :, None, :]
        alpha_acc = alpha_acc + weight
        trans = torch.where(use, next_t, trans)
        done = done | stop
    shape = (batch, cams, height, width)
    feats = acc[..., :channels].reshape(*shape, channels)
    alpha_img = alpha_acc.reshape(*shape, 1)
    m1 = acc[..., channels : channels + 1].reshape(*shape, 1)
    m2 = acc[..., channels + 1 :].reshape(*shape, 1)
    depth = torch.where(alpha_img > 0, m1 / alpha_img.clamp(min=1e-10), torch.zeros_like(m1))
    if backgrounds is not None:
        feats = feats + (1 - alpha_img) * backgrounds[:, :, None, None, :]
    return feats, alpha_img, depth, m1, m2


def reference_rasterize_dense(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    features: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    grad_features: Tensor | None = None,
    pixel_chunk_elements: int = 1 << 22,
) -> Tensor:
    """Brute force vectorised over Gaussians: a ``[I, N, pixels]`` matrix per pixel chunk.

    Every pixel is evaluated against every Gaussian (depth sorted; transmittance as an exclusive
    cumulative product). Returns premultiplied ``[features, alpha]``, ``[B, C, H, W, F + 1]``.
    With ``grad_features`` (same shape as the result), each pixel chunk is also back-propagated
    at once with that upstream gradient (into the leaves' ``.grad``), so forward+backward runs
    in bounded memory; the returned tensor is then detached.
    """
    batch, count, channels = features.shape
    cams = viewmats.shape[1]
    images = batch * cams
    mu, inv, z, valid = reference_project(means, quats, scales, viewmats, Ks, width, height)
    key = torch.where(valid, z, torch.full_like(z, float("inf")))
    order = torch.sort(key, dim=-1, stable=True).indices.reshape(images, count)

    def sort(t: Tensor) -> Tensor:
        t = t.reshape(images, count, -1)
        return torch.gather(t, 1, order[..., None].expand(-1, -1, t.shape[-1]))

    ones = torch.ones(batch, cams, count, 1, dtype=features.dtype)
    colors = torch.cat([features[:, None].expand(batch, cams, count, channels), ones], -1)
    mu_s, inv_s, colors_s = sort(mu), sort(inv), sort(colors)
    opac_s = sort(opacities[:, None].expand(batch, cams, count)).squeeze(-1)
    valid_s = sort(valid).squeeze(-1)
    pix = _pixels(width, height, means.dtype)
    step = max(1, pixel_chunk_elements // max(1, images * count))
    outs = []
    for begin in range(0, pix.shape[0], step):
        p = pix[begin : begin + step]
        d = mu_s[:, :, None, :] - p  # [I, N, P, 2]
        q = 0.5 * (
            inv_s[:, :, None, 0] * d[..., 0] ** 2
            + (inv_s[:, :, None, 1] + inv_s[:, :, None, 2]) * d[..., 0] * d[..., 1]
            + inv_s[:, :, None, 3] * d[..., 1] ** 2
        )
        alpha = torch.clamp(opac_s[..., None] * torch.exp(-q), max=0.999)
        ok = valid_s[..., None] & (q >= 0) & (alpha >= 1.0 / 255.0)
        alpha = torch.where(ok, alpha, torch.zeros_like(alpha))
        log1m = torch.log1p(-alpha.double())
        incl = torch.cumsum(log1m, 1)
        weight = torch.where(
            incl > math.log(1e-4), alpha * torch.exp(incl - log1m).to(alpha.dtype), 0
        )
        out = torch.einsum("inp,inf->ipf", weight, colors_s)
        if grad_features is not None:
            g = grad_features.reshape(images, -1, channels + 1)[:, begin : begin + step]
            out.backward(g, retain_graph=True)
            out = out.detach()
        outs.append(out)
    return torch.cat(outs, 1).reshape(batch, cams, height, width, channels + 1)


# ----------------------------------------------------------------------------- random scenes


def random_cameras(
    batch: int,
    cams: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    radius: float = 2.7,
    focal: float = 1.2,
) -> Cameras:
    """``[B, C]`` cameras on a sphere of ``radius`` looking near the origin."""
    theta = torch.rand(batch, cams, generator=generator, dtype=dtype) * 2 * math.pi
    phi = (torch.rand(batch, cams, generator=generator, dtype=dtype) - 0.5) * 1.2
    origins = radius * torch.stack(
        [torch.cos(phi) * torch.sin(theta), torch.sin(phi), torch.cos(phi) * torch.cos(theta)], -1
    )
    targets = 0.1 * torch.randn(batch, cams, 3, generator=generator, dtype=dtype)
    cam2world = look_at(origins, targets)
    cx = 0.5 + 0.05 * torch.randn(batch, cams, generator=generator, dtype=dtype)
    cy = 0.5 + 0.05 * torch.randn(batch, cams, generator=generator, dtype=dtype)
    intr = torch.zeros(batch, cams, 3, 3, dtype=dtype)
    intr[..., 0, 0] = focal
    intr[..., 1, 1] = focal * 1.1
    intr[..., 0, 2] = cx
    intr[..., 1, 2] = cy
    intr[..., 2, 2] = 1
    return Cameras(cam2world, intr)


def random_gaussians(
    batch: int,
    count: int,
    channels: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float64,
    spread: float = 1.0,
    scale: tuple[float, float] = (0.02, 0.2),
    far: int = 0,
) -> Gaussians:
    """Gaussians in a ball of radius ``spread``; ``far`` of them are pushed well outside.

    Pushed Gaussians land behind some cameras and off screen for others.
    """
    means = spread * (torch.rand(batch, count, 3, generator=generator, dtype=dtype) * 2 - 1)
    if far:
        means[:, :far] *= 4.0
    quats = torch.randn(batch, count, 4, generator=generator, dtype=dtype) * 1.7
    lo, hi = math.log(scale[0]), math.log(scale[1])
    scales = torch.exp(
        lo + (hi - lo) * torch.rand(batch, count, 3, generator=generator, dtype=dtype)
    )
    opacities = torch.rand(batch, count, generator=generator, dtype=dtype) * 0.98 + 0.02
    features = torch.rand(batch, count, channels, generator=generator, dtype=dtype)
    return Gaussians(means, quats, scales, opacities, features)
