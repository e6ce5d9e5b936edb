"""Compositing and the splat distortion loss fed by the real rasterizer (torch backend)."""

import pytest
import torch


def _splat(depth_moments: bool):
    try:
        from aware3d.functional.splat import rasterize
    except ImportError:  # the splat renderer lands separately
        pytest.skip("aware3d.functional.splat is not available")
    from aware3d.cameras import Cameras, intrinsics_from_fov, look_at
    from aware3d.gaussians import Gaussians

    g = torch.Generator().manual_seed(0)
    N = 32
    gaussians = Gaussians(
        torch.randn(1, N, 3, generator=g) * 0.3,
        torch.nn.functional.normalize(torch.randn(1, N, 4, generator=g), dim=-1),
        torch.rand(1, N, 3, generator=g) * 0.1 + 0.05,
        torch.rand(1, N, generator=g) * 0.8 + 0.1,
        torch.rand(1, N, 3, generator=g),
    )
    origin = torch.tensor([[0.0, 0.0, 2.5]])
    cameras = Cameras(
        look_at(origin, torch.zeros(1, 3))[None], intrinsics_from_fov(40.0)[None, None]
    )
    out = rasterize(gaussians, cameras, 16, 16, depth_moments=depth_moments, backend="torch")
    return out, gaussians, cameras, rasterize


def test_composite_matches_rasterizer_background():
    from aware3d.nn.compositing import CompositeRenderer

    out, gaussians, cameras, rasterize = _splat(depth_moments=False)
    bg = torch.tensor([0.2, 0.5, 0.9])
    with_bg = rasterize(gaussians, cameras, 16, 16, backgrounds=bg.expand(1, 1, 3), backend="torch")
    composite = CompositeRenderer()(out, bg.expand_as(out.features))
    torch.testing.assert_close(composite.image, with_bg.features, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(composite.bg_transmittance, 1 - out.alpha)
    assert float(out.alpha.max()) > 0.1  # the scene is actually visible


def test_splat_distortion_from_rendered_moments():
    from aware3d.functional.losses import splat_distortion_loss
    from aware3d.nn.losses import DistortionLoss

    out, *_ = _splat(depth_moments=True)
    assert out.moment1 is not None
    assert out.moment2 is not None
    per_pixel = splat_distortion_loss(out.alpha, out.moment1, out.moment2, reduction="none")
    assert per_pixel.shape == out.alpha.shape
    assert bool((per_pixel >= 0).all())
    assert float(per_pixel.max()) > 0  # overlapping Gaussians at different depths
    torch.testing.assert_close(DistortionLoss()(out), per_pixel.mean())
