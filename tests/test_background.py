"""SphericalBackground: shapes, seam-free continuity, cameras, gradients, no side effects."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st


def _background(dtype=torch.float32, **kwargs):
    from aware3d.nn.background import SphericalBackground

    torch.manual_seed(0)
    defaults = {"w_dim": 8, "feature_dim": 4, "hidden": 32, "num_layers": 2}
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
    assert bg.panorama(w, 9, 7).shape == (2, 7, 9, 4)
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
@pytest.mark.slow
def test_continuous_across_the_angle_seam(lat, axis, sign):
    """Where an atan2 azimuth about any axis wraps (+-pi), the features do not jump.

    (BallGAN's own seam, at +z, is tested with both encodings further down.)
    """
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
        pano = bg.panorama(w, 2048, 16)
    gap = (pano[:, :, 0] - pano[:, :, -1]).abs().max()
    step = (pano[:, :, 1:] - pano[:, :, :-1]).abs().amax()
    # the wrap-around step is an ordinary neighbour step, not a seam
    assert float(gap) <= 2 * float(step) + 1e-12


def test_panorama_layout():
    from aware3d.nn.background import SphericalBackground

    dirs = SphericalBackground.panorama_directions(4, 3, dtype=torch.float64)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(3, 4, dtype=torch.float64))
    assert float(dirs[0, 0, 1]) > 0.5  # top row looks up (+y)
    assert float(dirs[-1, 0, 1]) < -0.5
    middle = SphericalBackground.panorama_directions(2, 1, dtype=torch.float64)
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


@pytest.mark.slow
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
    with pytest.raises(ValueError, match="w_dim"):
        SphericalBackground(0)
    bg = _background()
    with pytest.raises((ValueError, TypeError)):
        bg(torch.zeros(1, 2, 3), torch.ones(1, 2, 3), torch.zeros(1, 7))


# ---------------------------------------------------------------------- BallGAN's released options


def _seam_pair(lat: float, eps: float = 1e-6) -> torch.Tensor:
    """Two unit directions at latitude ``lat``, just either side of the half-plane x = 0, z > 0."""
    c, y = math.cos(lat), math.sin(lat)
    return torch.tensor([[[eps * c, y, c], [-eps * c, y, c]]], dtype=torch.float64) / math.hypot(
        math.hypot(eps * c, y), c
    )


@pytest.mark.parametrize("lat", [-1.2, -0.4, 0.0, 0.3, 1.1])
def test_angles_encoding_jumps_across_plus_z_and_direction_encoding_does_not(lat):
    """BallGAN's phi = atan2(x, z) in [0, 2 pi) wraps at +z; unit-direction features do not."""
    w = torch.randn(1, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    dirs = _seam_pair(lat)
    origins = torch.zeros_like(dirs)
    with torch.no_grad():
        angles = _background(torch.float64, encoding="angles", num_freqs=4)(origins, dirs, w)
        smooth = _background(torch.float64, num_freqs=4)(origins, dirs, w)
    assert float((angles[0, 0] - angles[0, 1]).abs().max()) > 1e-2
    assert float((smooth[0, 0] - smooth[0, 1]).abs().max()) < 1e-4
    # the opposite half-plane (x = 0, z < 0, phi = pi) is no seam for either encoding
    back = dirs * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    with torch.no_grad():
        angles_back = _background(torch.float64, encoding="angles", num_freqs=4)(origins, back, w)
    assert float((angles_back[0, 0] - angles_back[0, 1]).abs().max()) < 1e-4


def test_angles_encoding_seam_shows_in_the_panorama_behind_the_centre_column():
    """The panorama's wrap column looks along +z, where the angles encoding has its seam."""
    w = torch.randn(1, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        angles = _background(torch.float64, encoding="angles", num_freqs=4).panorama(w, 4096, 6)
        smooth = _background(torch.float64, num_freqs=4).panorama(w, 4096, 6)
    for pano, is_seam in ((angles, True), (smooth, False)):
        near_wrap = torch.cat([pano[:, :, -9:], pano[:, :, :9]], dim=2)
        steps = (near_wrap[:, :, 1:] - near_wrap[:, :, :-1]).abs()
        local = torch.cat([steps[:, :, :8], steps[:, :, 9:]], dim=2).amax()  # ordinary steps
        gap = steps[:, :, 8].amax()  # across the wrap, from lon = +pi back to -pi
        assert (float(gap) > 4 * float(local)) is is_seam


def test_angles_encoding_matches_released_features_and_sigmoid_output():
    from aware3d.functional.encoding import sphere_angle_features

    bg = _background(torch.float64, encoding="angles", num_freqs=3, output_activation="sigmoid")
    linear = _background(torch.float64, encoding="angles", num_freqs=3)
    linear.load_state_dict(bg.state_dict())
    assert bg.layers[0].in_features == 12  # 2 angles x 2 (sin, cos) x 3 octaves, no raw input
    g = torch.Generator().manual_seed(5)
    dirs = torch.nn.functional.normalize(torch.randn(2, 6, 3, generator=g).double(), dim=-1)
    w = torch.randn(2, 8, generator=g, dtype=torch.float64)
    origins = 0.3 * torch.randn(2, 6, 3, generator=g, dtype=torch.float64)
    out = bg(origins, dirs, w)
    torch.testing.assert_close(out, torch.sigmoid(linear(origins, dirs, w)) * 1.002 - 0.001)
    assert bool(((out > -0.001) & (out < 1.001)).all())
    # the network sees sphere_angle_features of the exit point
    t = bg.features_and_distance(origins, dirs, w)[1]
    x = sphere_angle_features(origins + t[..., None] * dirs, 3)
    for layer in bg.layers:
        x = layer(x, w)
    torch.testing.assert_close(out, torch.sigmoid(bg.output(x, w)) * 1.002 - 0.001)


@pytest.mark.slow
def test_angles_encoding_renders_and_gradchecks():
    bg = _background(encoding="angles", num_freqs=3)
    w = torch.randn(2, 8)
    cameras = _cameras(2, 3)
    image, depth = bg.render_with_depth(cameras, 6, 5, w)
    assert image.shape == (2, 3, 5, 6, 4)
    torch.testing.assert_close(image, bg.render(cameras, 6, 5, w))
    torch.testing.assert_close(depth, bg.render_depth(cameras, 6, 5))
    assert bg.panorama(w, 8, 4).shape == (2, 4, 8, 4)
    small = _background(
        torch.float64,
        hidden=8,
        num_layers=1,
        num_freqs=2,
        feature_dim=2,
        encoding="angles",
        output_activation="sigmoid",
    )
    g = torch.Generator().manual_seed(6)
    origins = (torch.randn(2, 3, 3, generator=g, dtype=torch.float64) * 0.3).requires_grad_()
    dirs = torch.randn(2, 3, 3, generator=g, dtype=torch.float64).requires_grad_()
    style = torch.randn(2, 8, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda o, d, s: small(o, d, s), (origins, dirs, style))


def test_per_layer_styles():
    bg = _background(torch.float64, num_layers=3)
    assert bg.num_ws == 4
    g = torch.Generator().manual_seed(7)
    w = torch.randn(2, 8, generator=g, dtype=torch.float64)
    dirs = torch.nn.functional.normalize(torch.randn(2, 5, 3, generator=g).double(), dim=-1)
    origins = torch.zeros_like(dirs)
    broadcast = w[:, None].expand(2, bg.num_ws, 8)
    torch.testing.assert_close(bg(origins, dirs, broadcast), bg(origins, dirs, w))
    mixed = broadcast.clone()
    mixed[:, -1] = torch.randn(2, 8, generator=g, dtype=torch.float64)
    # only the output layer's style differs: same hidden features, different output
    expected = bg.output(_hidden(bg, dirs, w), mixed[:, -1])
    torch.testing.assert_close(bg(origins, dirs, mixed), expected)
    cameras = _cameras(2, 1, dtype=torch.float64)
    torch.testing.assert_close(bg.render(cameras, 3, 3, broadcast), bg.render(cameras, 3, 3, w))
    torch.testing.assert_close(bg.panorama(broadcast, 4, 2), bg.panorama(w, 4, 2))


def _hidden(bg, units, w):
    from aware3d.functional.encoding import fourier_features

    x = fourier_features(units, bg.num_freqs)
    for layer in bg.layers:
        x = layer(x, w)
    return x


@pytest.mark.usefixtures("without_shape_checker")
def test_bad_encoding_activation_and_per_layer_styles():
    from aware3d.nn.background import SphericalBackground

    with pytest.raises(ValueError, match="encoding"):
        SphericalBackground(8, encoding="polar")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="output_activation"):
        SphericalBackground(8, output_activation="tanh")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="num_freqs"):
        SphericalBackground(8, num_freqs=0, encoding="angles")
    bg = _background(num_layers=2)
    o = torch.zeros(1, 2, 3)
    d = torch.ones(1, 2, 3)
    with pytest.raises(ValueError, match=r"`w` must have shape \[B, 3, 8\]"):
        bg(o, d, torch.zeros(1, 4, 8))
    with pytest.raises(ValueError, match=r"num_ws = num_layers \+ 1"):
        bg(o, d, torch.zeros(1, 3, 8, 1))


def test_ballgan_presets():
    from aware3d.nn import MappingNetwork, ballgan_background, ballgan_background_mapping

    bg = ballgan_background()
    assert (bg.w_dim, bg.feature_dim, bg.radius) == (512, 32, 3.0)
    assert (bg.hidden, bg.num_layers, bg.num_freqs, bg.num_ws) == (64, 4, 10, 5)
    assert (bg.encoding, bg.output_activation) == ("angles", "sigmoid")
    assert bg.layers[0].in_features == 40
    assert "encoding='angles'" in repr(bg)
    mapping = ballgan_background_mapping()
    assert isinstance(mapping, MappingNetwork)
    assert (mapping.z_dim, mapping.w_dim, mapping.num_ws, mapping.c_dim) == (512, 512, 5, 0)
    assert mapping.num_layers == 8
    assert all(layer.lr_multiplier == 0.01 for layer in mapping.layers)
    ws = mapping(torch.randn(2, 512))
    dirs = torch.nn.functional.normalize(torch.randn(2, 4, 3), dim=-1)
    out = bg(torch.zeros_like(dirs), dirs, ws)
    assert out.shape == (2, 4, 32)
