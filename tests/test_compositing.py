"""Volume weights, unit-occupancy compositing (volumetric and splatted), CompositeRenderer."""

from typing import NamedTuple

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st


def random_samples(
    seed: int, batch=(4,), S: int = 8, F: int = 3, log_sigma=(-3.0, 3.0), dtype=torch.float64
):
    g = torch.Generator().manual_seed(seed)
    lo, hi = log_sigma
    sigmas = torch.exp(torch.rand(*batch, S, generator=g, dtype=torch.float64) * (hi - lo) + lo)
    widths = torch.rand(*batch, S, generator=g, dtype=torch.float64) * 0.2
    edges = torch.cat([torch.zeros(*batch, 1, dtype=torch.float64), torch.cumsum(widths, -1)], -1)
    edges = edges + 1.0
    features = torch.rand(*batch, S, F, generator=g, dtype=torch.float64)
    bg = torch.rand(*batch, F, generator=g, dtype=torch.float64)
    return sigmas.to(dtype), features.to(dtype), edges.to(dtype), bg.to(dtype)


def naive_weights(sigmas, edges):
    """Textbook cumulative product, float64."""
    alpha = 1 - torch.exp(-sigmas.double() * edges.double().diff(dim=-1))
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1 - alpha], -1), -1)
    return trans[..., :-1] * alpha, trans[..., -1]


@given(
    seed=st.integers(0, 2**31 - 1),
    S=st.integers(1, 64),
    log_sigma=st.tuples(st.floats(-20.0, 5.0), st.floats(0.0, 12.0)),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_weights_and_background_transmittance_sum_to_one(seed, S, log_sigma, dtype):
    from aware3d.functional.compositing import volume_weights

    lo, span = log_sigma
    sigmas, _, edges, _ = random_samples(
        seed, batch=(5,), S=S, log_sigma=(lo, lo + span), dtype=dtype
    )
    weights, alphas, t_bg = volume_weights(sigmas, edges)
    assert weights.shape == alphas.shape == sigmas.shape
    assert t_bg.shape == sigmas.shape[:-1]
    assert bool((weights >= 0).all())
    assert bool(((t_bg >= 0) & (t_bg <= 1)).all())
    assert bool(((alphas >= 0) & (alphas <= 1)).all())
    # w_i = T_i alpha_i telescopes to 1 - T_bg; in float32 the sum of S <= 64 weights (partial
    # sums <= 1) rounds by up to S/2 eps if every rounding went one way, ~sqrt(S) eps in practice,
    # plus an eps or two per weight from exp/expm1. Measured: at most 2 eps over 8000 random rays
    # (2 CPU capabilities). float32: 4e-6 (34 eps); float64: 1e-12 (4500 eps).
    tol = 1e-12 if dtype == torch.float64 else 4e-6
    torch.testing.assert_close(weights.sum(-1) + t_bg, torch.ones_like(t_bg), rtol=0, atol=tol)


def test_weights_match_textbook_cumprod():
    from aware3d.functional.compositing import volume_weights

    sigmas, _, edges, _ = random_samples(0, batch=(3, 2), S=17)
    weights, _, t_bg = volume_weights(sigmas, edges)
    ref_w, ref_t = naive_weights(sigmas, edges)
    torch.testing.assert_close(weights, ref_w)
    torch.testing.assert_close(t_bg, ref_t)


@given(seed=st.integers(0, 2**31 - 1), S=st.integers(1, 32))
def test_zero_density_shows_exactly_the_background(seed, S):
    from aware3d.functional.compositing import composite_volume

    _, features, edges, bg = random_samples(seed, S=S, dtype=torch.float32)
    sigmas = torch.zeros(edges.shape[:-1] + (S,))
    depth_bg = torch.full(bg.shape[:-1] + (1,), 3.0)
    out = composite_volume(sigmas, features, edges, bg, depth_bg)
    assert torch.equal(out.image, bg)
    assert torch.equal(out.bg_transmittance, torch.ones_like(depth_bg))
    assert torch.equal(out.opacity, torch.zeros_like(depth_bg))
    assert out.depth is not None
    assert torch.equal(out.depth, depth_bg)
    assert out.weights is not None
    assert torch.equal(out.weights, torch.zeros_like(sigmas))


@given(seed=st.integers(0, 2**31 - 1), S=st.integers(1, 32))
def test_opaque_foreground_hides_the_background(seed, S):
    from aware3d.functional.compositing import composite_volume

    sigmas, features, edges, bg = random_samples(seed, S=S, dtype=torch.float32)
    edges = edges + torch.arange(S + 1) * 0.1  # every bin at least 0.1 wide
    sigmas = torch.full_like(sigmas, 1e4)
    a = composite_volume(sigmas, features, edges, bg)
    b = composite_volume(sigmas, features, edges, bg + 100.0)
    assert torch.equal(a.bg_transmittance, torch.zeros_like(a.bg_transmittance))
    assert torch.equal(a.image, b.image)
    torch.testing.assert_close(a.image, features[..., 0, :])  # the first sample takes it all
    torch.testing.assert_close(a.opacity, torch.ones_like(a.opacity))


def test_composite_volume_formula_and_depth():
    from aware3d.functional.compositing import composite_volume

    sigmas, features, edges, bg = random_samples(3, batch=(2, 3), S=6, F=5)
    d_bg = torch.rand(2, 3, 1, dtype=torch.float64) + 3
    out = composite_volume(sigmas, features, edges, bg, d_bg)
    w, t = naive_weights(sigmas, edges)
    torch.testing.assert_close(out.image, (w[..., None] * features).sum(-2) + t[..., None] * bg)
    mid = 0.5 * (edges[..., 1:] + edges[..., :-1])
    torch.testing.assert_close(out.depth, (w * mid).sum(-1, keepdim=True) + t[..., None] * d_bg)
    torch.testing.assert_close(out.opacity + out.bg_transmittance, torch.ones_like(d_bg))
    no_bg_depth = composite_volume(sigmas, features, edges, bg)
    assert no_bg_depth.depth is not None
    torch.testing.assert_close(no_bg_depth.depth, (w * mid).sum(-1, keepdim=True))


@pytest.mark.slow
def test_volume_gradcheck():
    from aware3d.functional.compositing import composite_volume, volume_weights

    sigmas, features, edges, bg = random_samples(1, batch=(2,), S=4, F=2)
    d_bg = torch.rand(2, 1, dtype=torch.float64)
    inputs = [x.clone().requires_grad_() for x in (sigmas, features, edges, bg, d_bg)]
    assert torch.autograd.gradcheck(lambda s, t: volume_weights(s, t)[0], (inputs[0], inputs[2]))
    assert torch.autograd.gradcheck(lambda s, t: volume_weights(s, t)[2], (inputs[0], inputs[2]))

    def fn(*args):
        out = composite_volume(*args)
        assert out.depth is not None
        return out.image, out.depth, out.bg_transmittance

    assert torch.autograd.gradcheck(fn, tuple(inputs))


@pytest.mark.usefixtures("without_shape_checker")
def test_volume_bad_input():
    from aware3d.functional.compositing import composite_volume, volume_weights

    sigmas, features, edges, bg = random_samples(2, S=5)
    with pytest.raises(ValueError, match=r"`sigmas` must be >= 0 \(densities"):
        volume_weights(-sigmas, edges)
    with pytest.raises(ValueError, match="`t_edges` must be sorted"):
        volume_weights(sigmas, edges.flip(-1))
    with pytest.raises(ValueError, match="`sigmas` must be finite"):
        volume_weights(sigmas * float("inf"), edges)
    with pytest.raises(
        ValueError,
        match=r"`t_edges` must have shape \[\*batch, S\+1\] = \[4, 6\] "
        r"\(\*batch, S from `sigmas`\)",
    ):
        volume_weights(sigmas, edges[..., :-1])
    with pytest.raises(
        ValueError, match=r"`bg_features` must have shape \[\*batch, F\] = \[4, 3\]"
    ):
        composite_volume(sigmas, features, edges, bg[:1])
    with pytest.raises(ValueError, match=r"`bg_features` must have shape .* got \[4, 2\]"):
        composite_volume(sigmas, features, edges, bg[..., :2])
    with pytest.raises(ValueError, match="`features` must have shape"):
        composite_volume(sigmas, features[..., :3, :], edges, bg)
    with pytest.raises(ValueError, match=r"`bg_depth` must have shape \[\*batch, 1\] = \[4, 1\]"):
        composite_volume(sigmas, features, edges, bg, bg[..., :1, None])
    with pytest.raises(ValueError, match="`bg_features` has dtype torch.float32"):
        composite_volume(sigmas, features, edges, bg.float())
    with pytest.raises(TypeError, match="`sigmas` must be a floating-point tensor"):
        composite_volume(sigmas.long(), features, edges, bg)


# ---------------------------------------------------------------------- splat form


@given(seed=st.integers(0, 2**31 - 1))
def test_splat_composite_properties(seed):
    from aware3d.functional.compositing import composite_splat

    g = torch.Generator().manual_seed(seed)
    alpha = torch.rand(2, 3, 4, 5, 1, generator=g)
    colour = torch.rand(2, 3, 4, 5, 3, generator=g) * alpha  # premultiplied
    bg = torch.rand(2, 3, 4, 5, 3, generator=g)
    depth = torch.rand(2, 3, 4, 5, 1, generator=g) + 1
    bg_depth = torch.full_like(depth, 4.0)
    out = composite_splat(colour, alpha, bg, depth, bg_depth)
    torch.testing.assert_close(out.image, colour + (1 - alpha) * bg)
    torch.testing.assert_close(out.opacity + out.bg_transmittance, torch.ones_like(alpha))
    assert out.depth is not None
    torch.testing.assert_close(out.depth, alpha * depth + (1 - alpha) * bg_depth)
    assert out.weights is None
    empty = composite_splat(torch.zeros_like(colour), torch.zeros_like(alpha), bg)
    assert torch.equal(empty.image, bg)
    assert empty.depth is None
    opaque = composite_splat(colour, torch.ones_like(alpha), bg)
    assert torch.equal(opaque.image, colour)


def test_splat_gradcheck_and_bad_input():
    from aware3d.functional.compositing import composite_splat

    g = torch.Generator().manual_seed(0)
    args = [
        torch.rand(2, 3, 3, generator=g, dtype=torch.float64),
        torch.rand(2, 3, 1, generator=g, dtype=torch.float64) * 0.9,
        torch.rand(2, 3, 3, generator=g, dtype=torch.float64),
        torch.rand(2, 3, 1, generator=g, dtype=torch.float64),
        torch.rand(2, 3, 1, generator=g, dtype=torch.float64),
    ]
    args = [a.requires_grad_() for a in args]

    def fn(*xs):
        out = composite_splat(*xs)
        assert out.depth is not None
        return out.image, out.depth

    assert torch.autograd.gradcheck(fn, tuple(args))
    c, a, bg = (x.detach() for x in args[:3])
    with pytest.raises(ValueError, match=r"`alpha` must lie in \[0, 1\]"):
        composite_splat(c, a + 1, bg)
    with pytest.raises(ValueError, match="`alpha` must have shape"):
        composite_splat(c, a[:1], bg)
    with pytest.raises(ValueError, match=r"`bg_features` must have shape \[\*batch, F\]"):
        composite_splat(c, a, bg[..., :2])
    with pytest.raises(ValueError, match="`bg_features` must be finite"):
        composite_splat(c, a, bg * float("nan"))


# ---------------------------------------------------------------------- CompositeRenderer


class FakeSplat(NamedTuple):
    """The fields of the rasterizer's ``SplatOutput`` that compositing reads."""

    features: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor


def _cameras(B: int, C: int):
    from aware3d.cameras import Cameras, intrinsics_from_fov, orbit

    poses = orbit(B * C, radius=1.5).reshape(B, C, 4, 4)
    return Cameras(poses, intrinsics_from_fov(30.0).expand(B, C, 3, 3))


def test_renderer_volumetric_with_features_and_with_module():
    from aware3d.functional.compositing import VolumeSamples, composite_volume
    from aware3d.nn.background import SphericalBackground
    from aware3d.nn.compositing import CompositeRenderer

    sigmas, features, edges, bg = random_samples(0, batch=(2, 7), S=5, dtype=torch.float32)
    renderer = CompositeRenderer()
    expected = composite_volume(sigmas, features, edges, bg)
    got = renderer(VolumeSamples(sigmas, features, edges), bg)
    torch.testing.assert_close(got.image, expected.image)
    got_tuple = renderer((sigmas, features, edges), bg)
    torch.testing.assert_close(got_tuple.image, expected.image)

    torch.manual_seed(0)
    background = SphericalBackground(w_dim=8, feature_dim=3, hidden=16, num_layers=2)
    renderer = CompositeRenderer(background)
    g = torch.Generator().manual_seed(1)
    origins = torch.randn(2, 7, 3, generator=g) * 0.2
    dirs = torch.nn.functional.normalize(torch.randn(2, 7, 3, generator=g), dim=-1)
    w = torch.randn(2, 8, generator=g)
    out = renderer(VolumeSamples(sigmas, features, edges), w=w, origins=origins, dirs=dirs)
    bg_feat, t_bg = background.features_and_distance(origins, dirs, w)
    ref = composite_volume(sigmas, features, edges, bg_feat, t_bg[..., None])
    torch.testing.assert_close(out.image, ref.image)
    torch.testing.assert_close(out.depth, ref.depth)
    with pytest.raises(ValueError, match="origins"):
        renderer(VolumeSamples(sigmas, features, edges), w=w)
    with pytest.raises(TypeError, match="foreground"):
        renderer(sigmas, bg)


def test_renderer_splat_with_background_module():
    from aware3d.functional.compositing import composite_splat
    from aware3d.nn.background import SphericalBackground
    from aware3d.nn.compositing import CompositeRenderer

    torch.manual_seed(0)
    B, C, H, W = 2, 2, 4, 5
    background = SphericalBackground(w_dim=8, hidden=16, num_layers=2)
    renderer = CompositeRenderer(background)
    cameras = _cameras(B, C)
    g = torch.Generator().manual_seed(2)
    alpha = torch.rand(B, C, H, W, 1, generator=g)
    alpha[..., 0, 0, :] = 0.0
    fg = FakeSplat(torch.rand(B, C, H, W, 3, generator=g) * alpha, alpha, torch.rand(B, C, H, W, 1))
    w = torch.randn(B, 8, generator=g)
    out = renderer(fg, w=w, cameras=cameras)
    bg = background.render(cameras, W, H, w)
    bg_depth = background.render_depth(cameras, W, H)
    ref = composite_splat(fg.features, fg.alpha, bg, fg.depth, bg_depth)
    torch.testing.assert_close(out.image, ref.image)
    assert out.depth is not None
    torch.testing.assert_close(out.depth, ref.depth)
    # where the foreground is empty, the depth is the sphere's camera-space depth
    torch.testing.assert_close(out.depth[..., 0, 0, :], bg_depth[..., 0, 0, :])
    with_features = renderer(fg, bg)
    torch.testing.assert_close(with_features.image, ref.image)
    with pytest.raises(ValueError, match="cameras"):
        renderer(fg, w=w)
