"""ray_sphere_exit and the Fourier features of directions."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


def _random_cameras(seed: int, radius: float, fraction: float, n: int = 3):
    from aware3d.cameras import Cameras, intrinsics_from_fov, look_at

    g = torch.Generator().manual_seed(seed)
    origins = _unit(torch.randn(n, 3, generator=g, dtype=torch.float64))
    origins = origins * radius * fraction * torch.rand(n, 1, generator=g, dtype=torch.float64)
    forward = _unit(torch.randn(n, 3, generator=g, dtype=torch.float64))
    forward[:, 1] = forward[:, 1].clamp(-0.8, 0.8)
    cam2world = look_at(origins, origins + forward)
    fov = 10.0 + 150.0 * float(torch.rand((), generator=g))
    intrinsics = intrinsics_from_fov(fov, dtype=torch.float64).expand(n, 3, 3)
    return Cameras(cam2world[None], intrinsics[None])


@given(
    seed=st.integers(0, 2**31 - 1),
    radius=st.floats(0.5, 50.0),
    fraction=st.floats(0.0, 0.999),
)
def test_every_ray_from_inside_exits_at_radius(seed, radius, fraction):
    from aware3d.functional import sphere

    cameras = _random_cameras(seed, radius, fraction)
    rays = cameras.pixel_rays(5, 4)
    t = sphere.ray_sphere_exit(rays.origins, rays.directions, radius)
    assert t.shape == rays.origins.shape[:-1]
    assert bool((t > 0).all())
    exit_points = rays.origins + t[..., None] * rays.directions
    torch.testing.assert_close(
        exit_points.norm(dim=-1), torch.full_like(t, radius), rtol=1e-12, atol=1e-12
    )


@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-3, 1e3))
def test_non_unit_directions_and_float32(seed, scale):
    from aware3d.functional.sphere import ray_sphere_exit

    g = torch.Generator().manual_seed(seed)
    origins = _unit(torch.randn(64, 3, generator=g)) * 2.99 * torch.rand(64, 1, generator=g)
    dirs = torch.randn(64, 3, generator=g) * scale
    t = ray_sphere_exit(origins, dirs, 3.0)
    assert t.dtype == torch.float32
    assert bool(torch.isfinite(t).all())
    torch.testing.assert_close(
        (origins + t[:, None] * dirs).norm(dim=-1), torch.full_like(t, 3.0), rtol=1e-5, atol=1e-5
    )


def test_matches_textbook_far_root_and_centre():
    from aware3d.functional.sphere import ray_sphere_exit

    g = torch.Generator().manual_seed(1)
    origins = _unit(torch.randn(100, 3, generator=g, dtype=torch.float64)) * 1.7
    dirs = _unit(torch.randn(100, 3, generator=g, dtype=torch.float64))
    b = (origins * dirs).sum(-1)
    expected = -b + torch.sqrt(b**2 - (origins.square().sum(-1) - 9.0))
    torch.testing.assert_close(ray_sphere_exit(origins, dirs, 3.0), expected)
    centre = torch.zeros(4, 3, dtype=torch.float64)
    torch.testing.assert_close(
        ray_sphere_exit(centre, dirs[:4], 3.0), torch.full((4,), 3.0).double()
    )


def test_gradcheck():
    from aware3d.functional.sphere import ray_sphere_exit

    g = torch.Generator().manual_seed(2)
    origins = (torch.randn(6, 3, generator=g, dtype=torch.float64) * 0.8).requires_grad_()
    dirs = torch.randn(6, 3, generator=g, dtype=torch.float64).requires_grad_()
    # rays pointing outwards (b > 0) and inwards (b < 0) use different branches
    assert torch.autograd.gradcheck(lambda o, d: ray_sphere_exit(o, d, 2.5), (origins, dirs))


def test_gradients_finite_near_the_surface():
    from aware3d.functional.sphere import ray_sphere_exit

    origins = torch.tensor([[2.9999, 0.0, 0.0], [-2.9999, 0.0, 0.0]], requires_grad=True)
    dirs = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], requires_grad=True)
    t = ray_sphere_exit(origins, dirs, 3.0)
    t.sum().backward()
    assert origins.grad is not None
    assert dirs.grad is not None
    assert bool(torch.isfinite(origins.grad).all())
    assert bool(torch.isfinite(dirs.grad).all())


@pytest.mark.parametrize("distance", [3.0, 3.0001, 10.0])
def test_camera_on_or_outside_sphere_is_value_error(distance):
    from aware3d.functional.sphere import ray_sphere_exit

    origins = torch.tensor([[0.0, 0.0, 0.0], [0.0, distance, 0.0]])
    dirs = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="inside the background sphere"):
        ray_sphere_exit(origins, dirs, 3.0)


def test_bad_inputs():
    from aware3d.functional.sphere import ray_sphere_exit

    o = torch.zeros(4, 3)
    d = torch.ones(4, 3)
    with pytest.raises(ValueError, match=r"`dirs` must have shape \[\*batch, 3\] = \[4, 3\]"):
        ray_sphere_exit(o, d[:3], 3.0)
    with pytest.raises(ValueError, match="non-zero"):
        ray_sphere_exit(o, torch.zeros(4, 3), 3.0)
    with pytest.raises(ValueError, match="finite"):
        ray_sphere_exit(o, torch.full((4, 3), math.nan), 3.0)
    with pytest.raises(ValueError, match="radius"):
        ray_sphere_exit(o, d, -1.0)
    with pytest.raises(TypeError):
        ray_sphere_exit(o.long(), d, 3.0)


def test_fourier_features_values_and_shape():
    from aware3d.functional.encoding import fourier_feature_dim, fourier_features

    x = torch.tensor([[0.25, -0.5, 1.0]], dtype=torch.float64)
    out = fourier_features(x, 2)
    assert out.shape == (1, fourier_feature_dim(3, 2)) == (1, 15)
    expected = torch.cat(
        [
            x,
            torch.sin(math.pi * x),
            torch.sin(2 * math.pi * x),
            torch.cos(math.pi * x),
            torch.cos(2 * math.pi * x),
        ],
        dim=-1,
    )
    torch.testing.assert_close(out, expected)
    assert fourier_features(x, 0).shape == (1, 3)
    assert fourier_features(x, 3, include_input=False).shape == (1, 18)
    with pytest.raises(ValueError, match="num_freqs"):
        fourier_features(x, -1)


def test_fourier_features_gradcheck():
    from aware3d.functional.encoding import fourier_features

    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: fourier_features(v, 3), (x,))


# ---------------------------------------------------------------------- BallGAN's angles


def _released_style_angles(p: torch.Tensor, radius: float) -> torch.Tensor:
    """BallGAN's convention, stated case by case: theta from y / R, phi from atan2(x, z)."""
    x, y, z = p.unbind(-1)
    theta = torch.arccos(y / radius)
    base = torch.atan2(x, z)
    phi = torch.where(x >= 0, base, base + 2 * math.pi)  # x < 0 lands in (pi, 2 pi)
    phi = torch.where((z == 0) & (x > 0), math.pi / 2, phi)
    phi = torch.where((z == 0) & (x < 0), 3 * math.pi / 2, phi)
    return torch.stack([theta, phi], -1)


def test_sphere_angles_axes_and_convention():
    from aware3d.functional.sphere import sphere_angles

    axes = torch.tensor(
        [[0, 0, 1], [1, 0, 0], [0, 0, -1], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=torch.float64
    )
    expected = torch.tensor(
        [
            [math.pi / 2, 0.0],
            [math.pi / 2, math.pi / 2],
            [math.pi / 2, math.pi],
            [math.pi / 2, 3 * math.pi / 2],
            [0.0, 0.0],
            [math.pi, 0.0],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(sphere_angles(axes), expected)
    torch.testing.assert_close(sphere_angles(3.0 * axes), expected)  # only the direction counts
    g = torch.Generator().manual_seed(0)
    points = 3.0 * _unit(torch.randn(500, 3, generator=g, dtype=torch.float64))
    angles = sphere_angles(points)
    torch.testing.assert_close(angles, _released_style_angles(points, 3.0))
    assert bool((angles[:, 1] >= 0).all() and (angles[:, 1] < 2 * math.pi).all())
    # the seam: phi jumps from ~2 pi to ~0 across x = 0 with z > 0, nowhere else
    either_side = torch.tensor([[-1e-9, 0.2, 1.0], [1e-9, 0.2, 1.0]], dtype=torch.float64)
    phi = sphere_angles(either_side)[:, 1]
    assert float(phi[0]) > 2 * math.pi - 1e-6 and float(phi[1]) < 1e-6
    behind = sphere_angles(either_side * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    assert float((behind[0, 1] - behind[1, 1]).abs()) < 1e-6


def test_sphere_angles_gradcheck_off_the_poles():
    from aware3d.functional.sphere import sphere_angles

    g = torch.Generator().manual_seed(1)
    points = torch.randn(6, 3, generator=g, dtype=torch.float64)
    points[:, 0] = points[:, 0].abs() + 0.2  # keep away from the seam and the poles
    assert torch.autograd.gradcheck(sphere_angles, (points.requires_grad_(),))


def test_fourier_features_interleaved_layout():
    from aware3d.functional.encoding import fourier_features

    x = torch.tensor([[0.25, -0.5]], dtype=torch.float64)
    out = fourier_features(x, 2, interleave=True)
    expected = torch.cat(
        [
            x,
            torch.sin(math.pi * x),
            torch.cos(math.pi * x),
            torch.sin(2 * math.pi * x),
            torch.cos(2 * math.pi * x),
        ],
        dim=-1,
    )
    torch.testing.assert_close(out, expected)
    blocked = fourier_features(x, 2)
    torch.testing.assert_close(out.sort(-1).values, blocked.sort(-1).values)  # same channels
    with pytest.raises((ValueError, TypeError), match="interleave"):
        fourier_features(x, 2, interleave=1)  # pyright: ignore[reportArgumentType]


def test_sphere_angle_features_match_the_released_encoding():
    """(theta, phi) / (2 pi), octave after octave [sin, sin, cos, cos], no raw input."""
    from aware3d.functional.encoding import sphere_angle_features

    g = torch.Generator().manual_seed(2)
    points = 3.0 * _unit(torch.randn(4, 7, 3, generator=g, dtype=torch.float64))
    a = _released_style_angles(points, 3.0) / (2 * math.pi)
    blocks = []
    for k in range(10):
        blocks += [torch.sin(2**k * math.pi * a), torch.cos(2**k * math.pi * a)]
    expected = torch.cat(blocks, -1)
    out = sphere_angle_features(points)
    assert out.shape == (4, 7, 40)
    torch.testing.assert_close(out, expected)
    # only cos(phi / 2) (channel 3) jumps across the seam at +z, by 2; sin(phi / 2) is continuous
    either_side = torch.tensor([[-1e-9, 0.3, 1.0], [1e-9, 0.3, 1.0]], dtype=torch.float64)
    feats = sphere_angle_features(either_side, 3)
    jump = (feats[0] - feats[1]).abs()
    assert float(jump[3]) == pytest.approx(2.0, abs=1e-6)
    assert float(torch.cat([jump[:3], jump[4:]]).max()) < 1e-6
    assert sphere_angle_features(points, 0).shape == (4, 7, 0)
