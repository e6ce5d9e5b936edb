"""The gsplat backend's wiring, checked on CPU: gsplat's CUDA kernels swapped for torch stand-ins.

``rasterize(..., backend="gsplat")`` runs for real down to gsplat's kernels: aware3d's
``_render_gsplat`` (depth channels, output split) and ``rasterize_gsplat`` (dtype, options), then
gsplat's own Python ``rasterization`` and the wrappers ``fully_fused_projection``,
``isect_tiles``, ``isect_offset_encode`` and ``rasterize_to_pixels`` (argument checks, batch
dimensions, view matrices and intrinsics, per-camera colour layout, channel padding and
chunking, tile bookkeeping). Only what those wrappers hand to the CUDA extension is replaced:

* projection (``_FullyFusedProjection``): gsplat's torch reference ``_fully_fused_projection``,
  with the CUDA kernel's opacity-aware footprint added (the reference always uses 3.33 sigma);
* tile intersection and offsets (kernels ``intersect_tile``, ``intersect_offset``): gsplat's
  torch references ``_isect_tiles`` and ``_isect_offset_encode``;
* rasterize to pixels (``_RasterizeToPixels``): front-to-back compositing over the tile lists,
  written here because gsplat's reference needs the CUDA kernel ``rasterize_to_indices_3dgs`` and
  nerfacc. It follows ``RasterizeToPixels3DGSFwd.cu``; autograd gives the backward pass.

gsplat builds its CUDA extension the first time a kernel is used; on a machine without CUDA
that build fails and deletes its build folder. Here ``gsplat.cuda._backend`` is a stand-in
module whose ``_C`` raises on any use, and any kernel without a stand-in raises too, so touching
the real backend fails the test instead of compiling.

gsplat's kernels and aware3d's torch backend (``_splat_project.py``, ``_splat_raster.py``) follow
the same rules: alpha ``min(0.999, o exp(-q))``, fragments skipped for ``q < 0`` or
``alpha < 1/255``, a pixel stops before the fragment that would bring its transmittance to
``1e-4`` or below, Gaussians with ``o < 1/255`` culled. They differ only where no scene here
lands: gsplat carries the transmittance as a float32 product and the torch backend as a float64
sum of logs, so the stop can differ for a pixel whose transmittance comes within float32 rounding
of ``1e-4``; gsplat culls ``z < near_plane`` and ``z > far_plane``, the torch backend also
``z == near_plane`` and ``z == far_plane``. gsplat's alpha is ``1 - T``, the torch backend's the
sum of the weights: equal up to rounding.
"""

import math
import sys
import types
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import Tensor

from aware3d.cameras import Cameras
from aware3d.functional import _splat_gsplat, splat
from aware3d.functional.splat import SplatOutput, rasterize
from aware3d.gaussians import Gaussians
from splat_reference import random_cameras, random_gaussians

ALPHA_THRESHOLD = 1.0 / 255.0
WIDTH, HEIGHT = 24, 20


class _RealBackendTouched(AssertionError):
    """Raised instead of building or calling gsplat's CUDA extension."""


class _NoCudaExtension:
    """Stands in for ``gsplat.cuda._backend._C``: any kernel looked up on it raises."""

    def __getattr__(self, name: str) -> Any:
        raise _RealBackendTouched(f"gsplat's real CUDA backend was touched: _C.{name}")


def _no_cuda_object(name: str) -> Any:
    raise _RealBackendTouched(f"gsplat's real CUDA backend was touched: {name}")


class _LabelledCuda(Tensor):
    """A CPU tensor that reports CUDA, to pass ``rasterize_gsplat``'s device check.

    ``float()`` (the only other use ``rasterize_gsplat`` makes of ``means``) hands gsplat a plain
    alias, still in the autograd graph.
    """

    @property
    def device(self) -> torch.device:
        return torch.device("cuda")

    def float(self) -> Tensor:
        return self.as_subclass(Tensor)


# ----------------------------------------------------------------------------- kernel stand-ins


def _footprint(
    torch_impl: Any,
    radii: Tensor,
    means2d: Tensor,
    means: Tensor,
    covars: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    opacities: Tensor,
    width: int,
    height: int,
    eps2d: float,
) -> Tensor:
    """The CUDA kernel's radii: culls ``o < 1/255``, ``min(3.33, sqrt(2 log(255 o)))`` sigma."""
    with torch.no_grad():
        means_c, covars_c = torch_impl._world_to_cam(means, covars, viewmats)
        _, covars2d = torch_impl._persp_proj(means_c, covars_c, Ks, width, height)
        variances = torch.diagonal(covars2d, dim1=-2, dim2=-1) + eps2d  # [..., C, N, 2]
        opac = opacities[..., None, :].expand(variances.shape[:-1])
        extend = torch.sqrt(2.0 * torch.log(opac.clamp(min=ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        radius = torch.ceil(extend.clamp(max=3.33)[..., None] * torch.sqrt(variances))
        low, high = means2d - radius, means2d + radius
        inside = (high[..., 0] > 0) & (low[..., 0] < width) & (high[..., 1] > 0)
        inside &= low[..., 1] < height
        keep = (radii > 0).all(dim=-1) & (opac >= ALPHA_THRESHOLD) & inside
        return torch.where(keep[..., None], radius, 0.0).int()


def _projection_stand_in(torch_impl: Any, calls: Counter) -> Any:
    """``_FullyFusedProjection`` on gsplat's torch reference (autograd for the backward)."""

    def apply(
        means: Tensor,
        covars: Tensor | None,
        quats: Tensor,
        scales: Tensor,
        viewmats: Tensor,
        Ks: Tensor,
        width: int,
        height: int,
        eps2d: float,
        near_plane: float,
        far_plane: float,
        radius_clip: float,
        calc_compensations: bool,
        camera_model: str = "pinhole",
        opacities: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, None]:
        if (
            covars is not None
            or radius_clip != 0.0
            or calc_compensations
            or camera_model != "pinhole"
            or opacities is None
        ):
            raise NotImplementedError("an option aware3d does not use")
        calls["projection"] += 1
        covars3d, _ = torch_impl._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
        radii, means2d, depths, conics, _ = torch_impl._fully_fused_projection(
            means, covars3d, viewmats, Ks, width, height, eps2d, near_plane, far_plane
        )
        radii = _footprint(
            torch_impl,
            radii,
            means2d,
            means,
            covars3d,
            viewmats,
            Ks,
            opacities,
            width,
            height,
            eps2d,
        )
        return radii, means2d, depths, conics, None

    return types.SimpleNamespace(apply=apply)


def _kernel_lookup(torch_impl: Any, calls: Counter) -> Any:
    """``_make_lazy_cuda_func``: the two intersection kernels, nothing else."""

    def intersect_tile(
        means2d: Tensor,
        radii: Tensor,
        depths: Tensor,
        image_ids: Tensor | None,
        gaussian_ids: Tensor | None,
        images: int,
        tile_size: int,
        tile_width: int,
        tile_height: int,
        sort: bool,
        segmented: bool,  # only the sort algorithm; the result is the same
    ) -> tuple[Tensor, Tensor, Tensor]:
        if image_ids is not None or gaussian_ids is not None or not sort:
            raise NotImplementedError("packed or unsorted intersections")
        assert images == math.prod(means2d.shape[:-2])
        calls["intersect_tile"] += 1
        return torch_impl._isect_tiles(
            means2d, radii, depths, tile_size, tile_width, tile_height, sort=True
        )

    def intersect_offset(
        isect_ids: Tensor, images: int, tile_width: int, tile_height: int
    ) -> Tensor:
        calls["intersect_offset"] += 1
        return torch_impl._isect_offset_encode(isect_ids, images, tile_width, tile_height)

    kernels = {"intersect_tile": intersect_tile, "intersect_offset": intersect_offset}

    def lookup(name: str) -> Any:
        if name not in kernels:
            raise _RealBackendTouched(f"gsplat's real CUDA backend was touched: {name}")
        return kernels[name]

    return lookup


def _composite_tile(
    calls: Counter,
    ids: list[int],
    pixels: Tensor,
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
) -> tuple[Tensor, Tensor]:
    """Front to back over one tile's depth-sorted Gaussians ``ids``, for ``pixels [P, 2]``."""
    transmittance = torch.ones(pixels.shape[0], dtype=colors.dtype)
    done = torch.zeros(pixels.shape[0], dtype=torch.bool)
    out = torch.zeros(pixels.shape[0], colors.shape[-1], dtype=colors.dtype)
    for g in ids:
        dx, dy = (means2d[g] - pixels).unbind(-1)
        a, b, c = conics[g].unbind(-1)
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp(opacities[g] * torch.exp(-sigma), max=0.999)
        use = ~done & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        next_t = transmittance * (1.0 - alpha)
        stop = use & (next_t <= 1e-4)  # exclusive: this fragment is not drawn
        use &= ~stop
        done |= stop
        calls["stopped_pixels"] += int(stop.sum())
        out = out + torch.where(use, alpha * transmittance, 0.0)[:, None] * colors[g]
        transmittance = torch.where(use, next_t, transmittance)
    return out, 1.0 - transmittance


def _rasterize_stand_in(calls: Counter) -> Any:
    """``_RasterizeToPixels``: compositing per tile over gsplat's intersection lists."""

    def apply(
        means2d: Tensor,
        conics: Tensor,
        colors: Tensor,
        opacities: Tensor,
        backgrounds: Tensor | None,
        masks: Tensor | None,
        width: int,
        height: int,
        tile_size: int,
        isect_offsets: Tensor,
        flatten_ids: Tensor,
        absgrad: bool,
    ) -> tuple[Tensor, Tensor]:
        if means2d.dim() == 2 or backgrounds is not None or masks is not None or absgrad:
            raise NotImplementedError("packed, backgrounds, masks or absgrad")
        calls["rasterize_to_pixels"] += 1
        image_dims, count, channels = means2d.shape[:-2], means2d.shape[-2], colors.shape[-1]
        images = math.prod(image_dims)
        tiles_y, tiles_x = isect_offsets.shape[-2:]
        assert isect_offsets.shape == (*image_dims, tiles_y, tiles_x)
        starts = isect_offsets.flatten().tolist()
        ends = [*starts[1:], flatten_ids.numel()]
        ids = flatten_ids.tolist()  # into [images * count]
        flat = [
            t.reshape(images * count, -1) for t in (means2d, conics, colors, opacities[..., None])
        ]
        render = torch.zeros(images, height, width, channels, dtype=colors.dtype)
        alphas = torch.zeros(images, height, width, 1, dtype=colors.dtype)
        for tile, (start, end) in enumerate(zip(starts, ends, strict=True)):
            image, ty, tx = tile // (tiles_y * tiles_x), tile // tiles_x % tiles_y, tile % tiles_x
            y0, y1 = ty * tile_size, min((ty + 1) * tile_size, height)
            x0, x1 = tx * tile_size, min((tx + 1) * tile_size, width)
            grid_y, grid_x = torch.meshgrid(
                torch.arange(y0, y1), torch.arange(x0, x1), indexing="ij"
            )
            pixels = torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2).to(colors.dtype) + 0.5
            assert all(g // count == image for g in ids[start:end])
            out, alpha = _composite_tile(calls, ids[start:end], pixels, *flat[:3], flat[3][:, 0])
            render[image, y0:y1, x0:x1] = out.reshape(y1 - y0, x1 - x0, channels)
            alphas[image, y0:y1, x0:x1] = alpha.reshape(y1 - y0, x1 - x0, 1)
        return (
            render.reshape(*image_dims, height, width, channels),
            alphas.reshape(*image_dims, height, width, 1),
        )

    return types.SimpleNamespace(apply=apply)


# ----------------------------------------------------------------------------- fixture


@pytest.fixture
def gsplat_on_cpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Counter]]:
    """Imports gsplat with its CUDA kernels replaced; lets ``backend="gsplat"`` run on CPU.

    Yields gsplat and a counter of the calls that reached each stand-in. Afterwards every gsplat
    module this fixture imported is dropped from ``sys.modules`` again.
    """
    before = {name for name in sys.modules if name == "gsplat" or name.startswith("gsplat.")}
    backend = types.ModuleType("gsplat.cuda._backend")
    backend._C = _NoCudaExtension()
    monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", backend)
    try:
        gsplat = pytest.importorskip("gsplat")
        from gsplat.cuda import _torch_impl, _wrapper

        calls: Counter = Counter()
        monkeypatch.setattr(_wrapper, "_make_lazy_cuda_func", _kernel_lookup(_torch_impl, calls))
        monkeypatch.setattr(_wrapper, "_make_lazy_cuda_obj", _no_cuda_object)
        monkeypatch.setattr(
            _wrapper, "_FullyFusedProjection", _projection_stand_in(_torch_impl, calls)
        )
        monkeypatch.setattr(_wrapper, "_RasterizeToPixels", _rasterize_stand_in(calls))

        validate = splat._validate

        def validate_but_device(*args: object) -> None:
            *others, backend_name = args
            validate(*others, "torch" if backend_name == "gsplat" else backend_name)

        monkeypatch.setattr(splat, "_validate", validate_but_device)
        rasterize_gsplat = _splat_gsplat.rasterize_gsplat

        def rasterize_gsplat_on_cpu(means: Tensor, *args: Any) -> tuple[Tensor, Tensor]:
            calls["rasterize_gsplat"] += 1
            return rasterize_gsplat(means.as_subclass(_LabelledCuda), *args)

        monkeypatch.setattr(_splat_gsplat, "rasterize_gsplat", rasterize_gsplat_on_cpu)
        yield gsplat, calls
    finally:
        for name in [n for n in sys.modules if n == "gsplat" or n.startswith("gsplat.")]:
            if name not in before:
                del sys.modules[name]


# ----------------------------------------------------------------------------- tests


def _scene(channels: int, seed: int) -> tuple[Gaussians, Cameras]:
    generator = torch.Generator().manual_seed(seed)
    cameras = random_cameras(2, 2, generator, torch.float32, focal=1.0)
    gaussians = random_gaussians(2, 20, channels, generator, torch.float32, far=5)
    # A few large, nearly opaque Gaussians: alpha clamped at 0.999, pixels that stop early.
    means, scales = gaussians.means.clone(), gaussians.scales.clone()
    opacities = gaussians.opacities.clone()
    means[:, 5:9] *= 0.3
    scales[:, 5:9] = scales[:, 5:9] * 2.0 + 0.1
    opacities[:, 5:9] = 0.9995
    gaussians = Gaussians(means, gaussians.quats, scales, opacities, gaussians.features)
    return gaussians, cameras


def _culled_by_position(gaussians: Gaussians, cameras: Cameras) -> tuple[int, int]:
    """How many (camera, Gaussian) centres are behind the camera, and in front but off screen."""
    viewmats, Ks = cameras.viewmats(), cameras.Ks(WIDTH, HEIGHT)
    centres = torch.einsum("bcij,bnj->bcni", viewmats[..., :3, :3], gaussians.means)
    centres = centres + viewmats[:, :, None, :3, 3]
    pixels = torch.einsum("bcij,bcnj->bcni", Ks, centres)
    z = centres[..., 2]
    u, v = pixels[..., 0] / z, pixels[..., 1] / z
    off_screen = (z > 0.01) & ((u < 0) | (u > WIDTH) | (v < 0) | (v > HEIGHT))
    return int((z <= 0.01).sum()), int(off_screen.sum())


def _render(
    gaussians: Gaussians,
    cameras: Cameras,
    backend: str,
    depth_moments: bool,
    backgrounds: Tensor | None,
    weights: list[Tensor] | None = None,
) -> tuple[SplatOutput, list[Tensor], list[Tensor]]:
    """Outputs, the gradients of a random weighting of them, and those weights."""
    leaves = [
        t.clone().requires_grad_()
        for t in (
            gaussians.means,
            gaussians.quats,
            gaussians.scales,
            gaussians.opacities,
            gaussians.features,
        )
    ]
    inputs = list(leaves)
    if backgrounds is not None:
        backgrounds = backgrounds.clone().requires_grad_()
        inputs.append(backgrounds)
    out = rasterize(
        Gaussians(*leaves),
        cameras,
        WIDTH,
        HEIGHT,
        backgrounds=backgrounds,
        depth_moments=depth_moments,
        backend=backend,
    )
    tensors = [t for t in out if t is not None]
    if weights is None:
        generator = torch.Generator().manual_seed(7)
        weights = [torch.rand(t.shape, generator=generator) for t in tensors]
    loss = sum((t * w).sum() for t, w in zip(tensors, weights, strict=True))
    grads = list(torch.autograd.grad(loss, inputs))
    return out, grads, weights


@pytest.mark.parametrize(
    ("channels", "depth_moments", "with_backgrounds"),
    [
        (3, False, True),  # 4 channels into gsplat
        (5, True, False),  # 7, padded by gsplat to 8
        (40, True, False),  # 42, split by gsplat into chunks of 32 and 10 (padded to 16)
    ],
)
def test_gsplat_path_matches_torch_backend(
    gsplat_on_cpu: tuple[Any, Counter], channels: int, depth_moments: bool, with_backgrounds: bool
) -> None:
    _, calls = gsplat_on_cpu
    gaussians, cameras = _scene(channels, seed=channels)
    behind, off_screen = _culled_by_position(gaussians, cameras)
    assert behind > 0 and off_screen > 0
    backgrounds = (
        torch.rand(2, 2, channels, generator=torch.Generator().manual_seed(1))
        if with_backgrounds
        else None
    )
    out_g, grads_g, weights = _render(gaussians, cameras, "gsplat", depth_moments, backgrounds)
    expected = {"rasterize_gsplat": 1, "projection": 1, "intersect_tile": 1, "intersect_offset": 1}
    assert {k: calls[k] for k in expected} == expected
    assert calls["rasterize_to_pixels"] == (1 if channels + 1 + depth_moments <= 32 else 2)
    out_t, grads_t, _ = _render(gaussians, cameras, "torch", depth_moments, backgrounds, weights)

    assert calls["stopped_pixels"] > 0  # some pixels reach the transmittance stop
    assert float(out_t.alpha.detach().max()) > 0.999
    assert float((out_t.alpha.detach() == 0).float().mean()) > 0.05
    for name, a, b in zip(SplatOutput._fields, out_g, out_t, strict=True):
        if b is None:
            assert a is None, name
            continue
        assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape, name
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0, msg=lambda m, name=name: f"{name}: {m}")
    names = ["means", "quats", "scales", "opacities", "features", "backgrounds"]
    for name, a, b in zip(names, grads_g, grads_t, strict=False):
        relative = float((a - b).norm() / b.norm().clamp(min=1e-12))
        assert float(b.norm()) > 0 and relative < 1e-3, f"{name}: relative L2 {relative:.3g}"


def test_real_cuda_backend_is_never_touched(gsplat_on_cpu: tuple[Any, Counter]) -> None:
    gsplat, _ = gsplat_on_cpu
    gaussians, cameras = _scene(3, seed=0)
    args = (
        gaussians.means,
        gaussians.quats,
        gaussians.scales,
        gaussians.opacities,
        gaussians.features,
        cameras.viewmats(),
        cameras.Ks(WIDTH, HEIGHT),
        WIDTH,
        HEIGHT,
    )
    with pytest.raises(_RealBackendTouched):  # packed projection has no stand-in
        gsplat.rasterization(*args, packed=True)
    from gsplat.cuda._backend import _C

    with pytest.raises(_RealBackendTouched):
        _C.projection_ewa_3dgs_fused_fwd  # noqa: B018
