"""SphericalBackground: shapes, seam-free continuity, cameras, gradients, no side effects."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st


def _background(dtype=torch.float32, **kwargs):
    from aware3d.nn.background import SphericalBackground

    torch.manual_seed(0)
    defaults = {"style_dim": 8, "feature_dim": 4, "hidden": 32, "num_layers": 2}
    defaults.update(kwargs)
    return SphericalBackground(**defaults).to(dtype)


def _cameras(B: int, C: int, radius: float = 2.7, dtype=torch.float32):
    from aware3d.cameras import Cameras, intrinsics_from_fov, orbit

    poses = orbit(B * C, radius=radius, dtype=dtype).reshape(B, C, 4, 4)
    return Cameras(poses, intrinsics_from_fov(20.0, dtype=dtype).expand(B, C, 3, 3))


def test_shapes_and_render_equals_forward_on_pixel_rays():
    bg = _background()
    w = torch.randn(2, 8)
    cameras = _cameras(2, 3)
    image = bg.render(cameras, 6, 5, w)
    assert image.shape == (2, 3, 5, 6, 4)
    rays = cameras.pixel_rays(6, 5)
    torch.testing.assert_close(image, bg(rays.origins, rays.directions, w))
    assert bg.panorama(w, 7, 9).shape == (2, 7, 9, 4)
    feats, depth = bg.render_with_depth(cameras, 6, 5, w)
    torch.testing.assert_close(feats, image)
    assert depth.shape == (2, 3, 5, 6, 1)
    assert bool((depth > 0).all())
    assert "radius=3.0" in repr(bg)


def test_features_depend_only_on_the_exit_point():
    bg = _background(torch.float64)
    w = torch.randn(1, 8, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    exit_dirs = torch.nn.functional.normalize(torch.randn(1, 10, 3, generator=g).double(), dim=-1)
    exits = exit_dirs * 3.0
    origins_a = torch.randn(1, 10, 3, generator=g).double() * 0.5
    origins_b = torch.randn(1, 10, 3, generator=g).double() * 0.5
    dirs_a = torch.nn.functional.normalize(exits - origins_a, dim=-1)
    dirs_b = torch.nn.functional.normalize(exits - origins_b, dim=-1)
    a = bg(origins_a, dirs_a, w)
    b = bg(origins_b, dirs_b, w)
    torch.testing.assert_close(a, b)
    centre = bg.panorama(w, 4, 4)  # from the centre, the panorama directions are exit directions
    dirs = bg.panorama_directions(4, 4, dtype=torch.float64)
    from_centre = bg(torch.zeros(1, 4, 4, 3, dtype=torch.float64), dirs[None], w)
    torch.testing.assert_close(centre, from_centre)


@given(
    lat=st.floats(-1.5, 1.5),
    axis=st.sampled_from(["x", "y", "z"]),
    sign=st.sampled_from([-1.0, 1.0]),
)
def test_continuous_across_the_angle_seam(lat, axis, sign):
    """Where atan2-based azimuths wrap from +pi to -pi, the features do not jump."""
    bg = _background(torch.float64, num_freqs=6)
    w = torch.randn(1, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eps = 1e-7
    out = []
    for lon in (math.pi - eps, -math.pi + eps):
        # a direction at azimuth lon about `axis`; lon = +-pi is where an angle encoding jumps
        a, b = math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon)
        c = math.sin(lat)
        vec = {"x": (c, a, b), "y": (a, c, b), "z": (a, b, c)}[axis]
        d = torch.tensor([[vec]], dtype=torch.float64) * sign
        out.append(bg(torch.zeros_like(d), d, w))
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=1e-3)


def test_panorama_wraps_around_continuously():
    bg = _background(torch.float64, num_freqs=4)
    w = torch.randn(1, 8, dtype=torch.float64)
    with torch.no_grad():
        pano = bg.panorama(w, 16, 2048)
    gap = (pano[:, :, 0] - pano[:, :, -1]).abs().max()
    step = (pano[:, :, 1:] - pano[:, :, :-1]).abs().amax()
    # the wrap-around step is an ordinary neighbour step, not a seam
    assert float(gap) <= 2 * float(step) + 1e-12


def test_panorama_layout():
    from aware3d.nn.background import SphericalBackground

    dirs = SphericalBackground.panorama_directions(3, 4, dtype=torch.float64)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(3, 4, dtype=torch.float64))
    assert float(dirs[0, 0, 1]) > 0.5  # top row looks up (+y)
    assert float(dirs[-1, 0, 1]) < -0.5
    middle = SphericalBackground.panorama_directions(1, 2, dtype=torch.float64)
    # the two columns at lon = -pi/2 and +pi/2 look along -x and +x
    torch.testing.assert_close(middle[0, 0], torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(middle[0, 1], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))


def test_render_depth_is_camera_z():
    from aware3d.cameras import Cameras, intrinsics_from_fov

    bg = _background()
    cameras = Cameras(torch.eye(4)[None, None], intrinsics_from_fov(60.0)[None, None])
    depth = bg.render_depth(cameras, 3, 3)
    torch.testing.assert_close(depth[0, 0, 1, 1, 0], torch.tensor(3.0))  # centre pixel, z = R
    rays = cameras.pixel_rays(3, 3)
    torch.testing.assert_close(depth[..., 0], 3.0 * rays.directions[..., 2])


def test_cameras_outside_the_sphere_are_rejected():
    bg = _background()
    w = torch.randn(1, 8)
    with pytest.raises(ValueError, match="inside the background sphere"):
        bg.render(_cameras(1, 2, radius=3.5), 4, 4, w)
    with pytest.raises(ValueError, match="B = 1"):
        bg.render(_cameras(2, 2), 4, 4, w)


def test_style_modulates_and_gradcheck():
    bg = _background(torch.float64, hidden=8, num_layers=1, num_freqs=2, feature_dim=2)
    g = torch.Generator().manual_seed(3)
    origins = (torch.randn(2, 3, 3, generator=g, dtype=torch.float64) * 0.3).requires_grad_()
    dirs = torch.randn(2, 3, 3, generator=g, dtype=torch.float64).requires_grad_()
    w = torch.randn(2, 8, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda o, d, s: bg(o, d, s), (origins, dirs, w))
    other = bg(origins, dirs, torch.randn(2, 8, dtype=torch.float64))
    assert not torch.allclose(other, bg(origins, dirs, w))
    assert bg.output.demodulate is False
    assert bg.output.leaky_relu is False
    assert all(layer.demodulate for layer in bg.layers)


def test_forward_has_no_side_effects():
    bg = _background()
    w = torch.randn(1, 8)
    o = torch.zeros(1, 5, 3)
    d = torch.nn.functional.normalize(torch.randn(1, 5, 3), dim=-1)
    before = {k: v.clone() for k, v in bg.state_dict().items()}
    attrs = set(vars(bg))
    first = bg(o, d, w)
    second = bg(o, d, w)
    assert torch.equal(first, second)
    assert set(vars(bg)) == attrs
    for k, v in bg.state_dict().items():
        assert torch.equal(v, before[k])


def test_bad_constructor_and_style():
    from aware3d.nn.background import SphericalBackground

    with pytest.raises(ValueError, match="radius"):
        SphericalBackground(8, radius=0.0)
    with pytest.raises(ValueError, match="style_dim"):
        SphericalBackground(0)
    bg = _background()
    with pytest.raises((ValueError, TypeError)):
        bg(torch.zeros(1, 2, 3), torch.ones(1, 2, 3), torch.zeros(1, 7))
