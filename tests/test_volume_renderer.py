"""Volume rendering of analytic density fields against closed forms, and ``TriplaneRenderer``."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from aware3d import Cameras, look_at
from aware3d.functional import (
    composite_volume,
    midpoint_volume_samples,
    sample_coarse_fine,
)
from aware3d.nn import EqualizedLinear, SphericalBackground, TriplaneDecoder, TriplaneRenderer

OUTSIDE_RAW = -40.0  # softplus(-41) ~ 1.6e-18: no density


def raw_for_density(sigma: float) -> float:
    """The raw value whose ``softplus(raw - 1)`` is ``sigma``."""
    return 1.0 + math.log(math.expm1(sigma))


def constant_field(sigma: float, inside):
    def field(points):
        raw = torch.where(inside(points), raw_for_density(sigma), OUTSIDE_RAW)
        return raw.to(points.dtype), points.new_ones(*points.shape[:-1], 1)

    return field


def downward_rays(offsets_x, dtype=torch.float64):
    count = len(offsets_x)
    origins = torch.zeros(1, count, 3, dtype=dtype)
    origins[0, :, 0] = torch.as_tensor(offsets_x, dtype=dtype)
    origins[0, :, 2] = 2.7
    dirs = torch.zeros(1, count, 3, dtype=dtype)
    dirs[..., 2] = -1.0
    near = torch.full((1, count), 2.25, dtype=dtype)
    return origins, dirs, near, torch.full_like(near, 3.3)


def render(field, origins, dirs, near, far, **kwargs):
    samples = sample_coarse_fine(field, origins, dirs, near, far, **kwargs)
    intervals = midpoint_volume_samples(*samples.merged)
    background = torch.zeros(*near.shape, 1, dtype=near.dtype)
    return composite_volume(*intervals, background), intervals


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constant_density_slab_transmittance(seed):
    sigma, half = 6.0, 0.2
    origins, dirs, near, far = downward_rays([0.0, 0.1, -0.3])
    field = constant_field(sigma, lambda p: p[..., 2].abs() < half)
    result, intervals = render(
        field, origins, dirs, near, far, generator=torch.Generator().manual_seed(seed)
    )
    widths = intervals.t_edges.diff(dim=-1)
    optical_depth = -torch.log(result.bg_transmittance[..., 0])
    # only the two intervals that straddle the slab's faces can be wrong, each by <= sigma width
    bound = 2 * sigma * widths.amax(-1)
    assert ((optical_depth - sigma * 2 * half).abs() <= bound).all()
    torch.testing.assert_close(
        result.weights.sum(-1) + result.bg_transmittance[..., 0],
        torch.ones(1, 3, dtype=torch.float64),
    )


def test_constant_density_sphere_follows_the_chord_length():
    sigma, radius = 4.0, 0.4
    offsets = [0.0, 0.1, 0.2, 0.3, 0.39, 0.45]
    origins, dirs, near, far = downward_rays(offsets)
    field = constant_field(sigma, lambda p: p.square().sum(-1) < radius**2)
    result, intervals = render(field, origins, dirs, near, far, deterministic=True)
    chord = torch.tensor(
        [2 * math.sqrt(max(radius**2 - b**2, 0.0)) for b in offsets], dtype=torch.float64
    )
    optical_depth = -torch.log(result.bg_transmittance[0, :, 0])
    bound = 2 * sigma * intervals.t_edges.diff(dim=-1).amax(-1)[0]
    assert ((optical_depth - sigma * chord).abs() <= bound).all()
    assert optical_depth[-1] < 1e-12  # the ray that misses the sphere sees no density


def test_slab_depth_matches_the_closed_form():
    # constant density on [a, b], background at d_bg:
    # E[t] = a (1 - e^{-sL}) + 1/s - e^{-sL} (L + 1/s) + e^{-sL} d_bg, L = b - a
    sigma, a, b, d_bg = 5.0, 2.5, 2.9, 3.4
    t = torch.linspace(a, b, 801, dtype=torch.float64)
    raw = torch.full_like(t, raw_for_density(sigma))
    intervals = midpoint_volume_samples(t, raw, torch.ones(801, 1, dtype=torch.float64))
    result = composite_volume(
        *intervals, torch.zeros(1, dtype=torch.float64), torch.tensor([d_bg], dtype=torch.float64)
    )
    length = b - a
    decay = math.exp(-sigma * length)
    expected = a * (1 - decay) + 1 / sigma - decay * (length + 1 / sigma) + decay * d_bg
    assert result.depth is not None
    assert abs(result.depth.item() - expected) < 1e-6
    assert abs(result.bg_transmittance.item() - decay) < 1e-12


# ---------------------------------------------------------------------- TriplaneRenderer


class MeanDecoder(nn.Module):
    """A tiny tri-plane decoder for tests: mean over planes, one equalized layer."""

    def __init__(self, plane_channels: int, features: int) -> None:
        super().__init__()
        self.linear = EqualizedLinear(plane_channels, 1 + features)

    def forward(self, sampled):
        x = self.linear(sampled.mean(1))
        return x[..., 0], torch.sigmoid(x[..., 1:])


class EmptyDecoder(MeanDecoder):
    def forward(self, sampled):
        raw, features = super().forward(sampled)
        return torch.full_like(raw, -1e4), features


def cameras(batch=2, views=2, dtype=torch.float32):
    eyes = torch.tensor([[0.0, 0.0, 2.7], [0.8, 0.3, 2.5]], dtype=dtype)[:views]
    cam2world = look_at(eyes, torch.tensor([0.0, 0.0, 0.2], dtype=dtype))
    intrinsics = torch.tensor([[4.2647, 0, 0.5], [0, 4.2647, 0.5], [0, 0, 1]], dtype=dtype)
    return Cameras(cam2world.expand(batch, views, 4, 4), intrinsics.expand(batch, views, 3, 3))


def test_renderer_outputs_and_gradients():
    torch.manual_seed(0)
    background = SphericalBackground(w_dim=8, feature_dim=5, hidden=16, num_layers=2)
    renderer = TriplaneRenderer(MeanDecoder(4, 5), background, num_coarse=8, num_fine=8)
    planes = torch.randn(2, 3, 4, 16, 16, requires_grad=True)
    w = torch.randn(2, 8)
    out = renderer(planes, cameras(), 6, 5, w, generator=torch.Generator().manual_seed(0))
    assert out.image.shape == (2, 2, 5, 6, 5)
    assert out.depth.shape == out.opacity.shape == out.bg_transmittance.shape == (2, 2, 5, 6, 1)
    assert out.weights.shape == (2, 2, 5, 6, 15)
    assert out.intervals.t_edges.shape == (2, 2, 5, 6, 16)
    assert out.fine.t.shape == out.fine.raw_densities.shape == (2, 2, 5, 6, 8)
    torch.testing.assert_close(
        out.weights.sum(-1, keepdim=True) + out.bg_transmittance, torch.ones(2, 2, 5, 6, 1)
    )
    assert (out.intervals.t_edges.diff(dim=-1) >= 0).all()
    (out.image.square().mean() + out.depth.mean()).backward()
    grads = [planes.grad] + [p.grad for p in renderer.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert planes.grad is not None and planes.grad.abs().sum() > 0


def test_empty_foreground_shows_the_background_and_its_depth():
    torch.manual_seed(1)
    background = SphericalBackground(w_dim=8, feature_dim=3, hidden=16, num_layers=2)
    renderer = TriplaneRenderer(EmptyDecoder(4, 3), background, num_coarse=6, num_fine=4)
    cams, w = cameras(), torch.randn(2, 8)
    out = renderer(torch.randn(2, 3, 4, 8, 8), cams, 7, 5, w)
    bg, bg_depth = background.render_with_depth(cams, 7, 5, w)
    torch.testing.assert_close(out.image, bg)
    torch.testing.assert_close(out.depth, bg_depth, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.bg_transmittance, torch.ones_like(out.bg_transmittance))


def test_box_bounds_rays_missing_the_box_see_only_the_background():
    torch.manual_seed(2)
    background = SphericalBackground(w_dim=8, feature_dim=3, hidden=16, num_layers=2)
    renderer = TriplaneRenderer(
        MeanDecoder(4, 3), background, ray_start=None, ray_end=None, num_coarse=6, num_fine=4
    )
    # a wide field of view: the corner pixels miss the unit box
    cams = cameras(batch=1, views=1)
    wide = torch.tensor([[1.2, 0.0, 0.5], [0.0, 1.2, 0.5], [0.0, 0.0, 1.0]])
    cams = Cameras(cams.cam2world, wide.expand(1, 1, 3, 3))
    planes = torch.randn(1, 3, 4, 8, 8) * 3
    out = renderer(planes, cams, 9, 9, torch.randn(1, 8), deterministic=True)
    assert out.bg_transmittance[0, 0, 0, 0, 0] == 1.0
    assert out.bg_transmittance[0, 0, 4, 4, 0] < 1.0


def test_renderer_is_reproducible_and_rejects_bad_input(without_shape_checker):
    renderer = TriplaneRenderer(MeanDecoder(4, 3), None, num_coarse=6, num_fine=4)
    planes, cams = torch.randn(2, 3, 4, 8, 8), cameras()
    first = renderer(planes, cams, 4, 4, generator=torch.Generator().manual_seed(5)).image
    second = renderer(planes, cams, 4, 4, generator=torch.Generator().manual_seed(5)).image
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    with pytest.raises(ValueError, match="cameras"):
        renderer(planes[:1], cams, 4, 4)
    with pytest.raises(ValueError, match="planes"):
        renderer(planes[:, :2], cams, 4, 4)
    with pytest.raises(ValueError, match="ray_start"):
        TriplaneRenderer(MeanDecoder(4, 3), ray_start=None, ray_end=3.0)
    with pytest.raises(ValueError, match="ray_end"):
        TriplaneRenderer(MeanDecoder(4, 3), ray_start=3.0, ray_end=2.0)
    with pytest.raises(ValueError, match="num_coarse"):
        TriplaneRenderer(MeanDecoder(4, 3), num_coarse=3)
    with pytest.raises(ValueError, match="background"):
        TriplaneRenderer(TriplaneDecoder(4, 5), SphericalBackground(w_dim=8, feature_dim=3))
    background = SphericalBackground(w_dim=8, feature_dim=3)
    with pytest.raises(ValueError, match="w_background"):
        TriplaneRenderer(MeanDecoder(4, 3), background, num_coarse=6, num_fine=4)(
            planes, cams, 4, 4
        )


def test_softplus_offset_matches_released_ray_marcher():
    # EG3D MipRayMarcher2: densities_mid = softplus(mean of the two samples' raw values - 1)
    t = torch.tensor([[2.3, 2.6, 2.65, 3.0]])
    raw = torch.tensor([[0.5, -0.2, 3.0, 1.0]])
    sigmas = midpoint_volume_samples(t, raw, torch.zeros(1, 4, 1)).sigmas
    torch.testing.assert_close(sigmas, F.softplus((raw[:, 1:] + raw[:, :-1]) / 2 - 1))
