"""Separation and distortion losses against O(S^2) oracles, properties, gradients, bad input."""

import math
from typing import NamedTuple

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

# ---------------------------------------------------------------------- oracles


def pairwise_distortion(weights: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Mip-NeRF 360's double sum, O(S^2), float64, per ray."""
    w = weights.double()
    t = edges.double()
    m = 0.5 * (t[..., 1:] + t[..., :-1])
    delta = t[..., 1:] - t[..., :-1]
    pair = (w[..., :, None] * w[..., None, :] * (m[..., :, None] - m[..., None, :]).abs()).sum(
        (-1, -2)
    )
    return pair + (w.square() * delta).sum(-1) / 3.0


def random_rays(seed: int, batch=(4,), S: int = 8, dtype=torch.float64, offset=0.0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    widths = torch.rand(*batch, S, generator=g, dtype=torch.float64) + 0.01
    start = torch.rand(*batch, 1, generator=g, dtype=torch.float64) + 0.5
    edges = torch.cat([start, start + torch.cumsum(widths, -1)], -1) * scale + offset
    weights = torch.rand(*batch, S, generator=g, dtype=torch.float64)
    weights = weights / weights.sum(-1, keepdim=True) * torch.rand(*batch, 1, generator=g).double()
    return weights.to(dtype), edges.to(dtype)


# ---------------------------------------------------------------------- distortion: dense


@pytest.mark.parametrize("S", [1, 2, 5, 33])
@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_distortion_matches_pairwise_oracle(S, batch):
    from aware3d.functional.losses import distortion_loss

    weights, edges = random_rays(S, batch=batch, S=S)
    out = distortion_loss(weights, edges, reduction="none")
    assert out.shape == batch
    torch.testing.assert_close(out, pairwise_distortion(weights, edges), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        distortion_loss(weights, edges), pairwise_distortion(weights, edges).mean()
    )
    torch.testing.assert_close(
        distortion_loss(weights, edges, reduction="sum"), pairwise_distortion(weights, edges).sum()
    )


def test_distortion_spaces_match_oracle_on_mapped_edges():
    from aware3d.functional.losses import distortion_loss

    weights, edges = random_rays(3, batch=(5,), S=9)
    near, far = 0.2, 40.0
    linear = (edges - near) / (far - near)
    torch.testing.assert_close(
        distortion_loss(weights, edges, space="linear", near=near, far=far, reduction="none"),
        pairwise_distortion(weights, linear),
    )
    inverse = (1 / edges - 1 / near) / (1 / far - 1 / near)
    torch.testing.assert_close(
        distortion_loss(weights, edges, space="inverse", near=near, far=far, reduction="none"),
        pairwise_distortion(weights, inverse),
    )
    # defaults: each ray's own first and last edge; far=inf gives s = 1 - near / t
    first, last = edges[..., :1], edges[..., -1:]
    torch.testing.assert_close(
        distortion_loss(weights, edges, space="linear", reduction="none"),
        pairwise_distortion(weights, (edges - first) / (last - first)),
    )
    torch.testing.assert_close(
        distortion_loss(weights, edges, space="inverse", near=near, far=float("inf")),
        pairwise_distortion(weights, 1 - near / edges).mean(),
    )
    # per-ray tensors for near/far
    near_t = torch.full((5,), near, dtype=torch.float64)
    far_t = torch.full((5,), far, dtype=torch.float64)
    torch.testing.assert_close(
        distortion_loss(weights, edges, space="linear", near=near_t, far=far_t, reduction="none"),
        pairwise_distortion(weights, linear),
    )


@given(
    seed=st.integers(0, 2**31 - 1),
    S=st.integers(1, 24),
    shift=st.floats(-100.0, 100.0),
    scale=st.floats(1e-2, 1e2),
)
@pytest.mark.slow
def test_distortion_properties(seed, S, shift, scale):
    from aware3d.functional.losses import distortion_loss

    weights, edges = random_rays(seed, batch=(3,), S=S)
    base = distortion_loss(weights, edges, reduction="none")
    assert bool((base >= 0).all())
    torch.testing.assert_close(base, pairwise_distortion(weights, edges), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        distortion_loss(weights, edges + shift, reduction="none"), base, rtol=1e-9, atol=1e-9
    )
    torch.testing.assert_close(
        distortion_loss(weights, edges * scale, reduction="none"),
        base * scale,
        rtol=1e-9,
        atol=1e-12,
    )


@given(seed=st.integers(0, 2**31 - 1), S=st.integers(1, 64))
def test_distortion_float32_nonnegative_and_accurate(seed, S):
    from aware3d.functional.losses import distortion_loss

    weights, edges = random_rays(seed, batch=(8,), S=S, dtype=torch.float32, offset=1000.0)
    out = distortion_loss(weights, edges, reduction="none")
    assert out.dtype == torch.float32
    # the per-ray offset keeps float32 accurate far from the origin
    torch.testing.assert_close(
        out.double(), pairwise_distortion(weights, edges), rtol=1e-4, atol=1e-6
    )
    assert bool((out >= -1e-6).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_distortion_half_inputs_accumulate_in_float32(dtype):
    from aware3d.functional.losses import distortion_loss

    weights, edges = random_rays(0, batch=(16,), S=96, dtype=dtype)
    out = distortion_loss(weights, edges, reduction="none")
    assert out.dtype == torch.float32
    torch.testing.assert_close(
        out.double(), pairwise_distortion(weights, edges), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("space", ["metric", "linear", "inverse"])
def test_distortion_gradcheck_weights_and_edges(space):
    from aware3d.functional.losses import distortion_loss

    weights, edges = random_rays(5, batch=(2,), S=4)
    weights.requires_grad_()
    edges.requires_grad_()
    kwargs = {} if space == "metric" else {"near": 0.3, "far": 9.0}

    def fn(w, t):
        return distortion_loss(w, t, space=space, reduction="none", **kwargs)

    assert torch.autograd.gradcheck(fn, (weights, edges))
    assert torch.autograd.gradgradcheck(fn, (weights, edges))


def test_distortion_gradients_match_oracle():
    from aware3d.functional.losses import distortion_loss

    weights, edges = random_rays(6, batch=(3,), S=7)
    w1, t1 = weights.clone().requires_grad_(), edges.clone().requires_grad_()
    w2, t2 = weights.clone().requires_grad_(), edges.clone().requires_grad_()
    distortion_loss(w1, t1).backward()
    pairwise_distortion(w2, t2).mean().backward()
    assert w1.grad is not None
    assert t1.grad is not None
    torch.testing.assert_close(w1.grad, w2.grad)
    torch.testing.assert_close(t1.grad, t2.grad)


@pytest.mark.usefixtures("without_shape_checker")
def test_distortion_bad_input():
    from aware3d.functional.losses import distortion_loss

    weights, edges = random_rays(0, batch=(2,), S=4)
    with pytest.raises(ValueError, match="`t_edges` must be sorted"):
        distortion_loss(weights, edges.flip(-1))
    with pytest.raises(
        ValueError,
        match=r"`t_edges` must have shape \[\*batch, S\+1\] = \[2, 5\] "
        r"\(\*batch, S from `weights`\), got \[2, 4\]",
    ):
        distortion_loss(weights, edges[..., :-1])
    with pytest.raises(ValueError, match=r"`t_edges` must have shape .* got \[1, 5\]"):
        distortion_loss(weights, edges[:1])
    with pytest.raises(ValueError, match="`weights` must be finite"):
        distortion_loss(weights * float("nan"), edges)
    with pytest.raises(ValueError, match="`near` must be a finite number"):
        distortion_loss(weights, edges, space="linear", near=float("nan"))
    with pytest.raises(ValueError, match=r"`near` must be a number or have one value per ray"):
        distortion_loss(weights, edges, space="linear", near=torch.zeros(3))
    with pytest.raises(ValueError, match="`weights` must be >= 0"):
        distortion_loss(-weights, edges)
    with pytest.raises(ValueError, match="finite"):
        distortion_loss(weights * float("nan"), edges)
    with pytest.raises(ValueError, match="space"):
        distortion_loss(weights, edges, space="log")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="reduction"):
        distortion_loss(weights, edges, reduction="max")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="only used"):
        distortion_loss(weights, edges, near=0.1)
    with pytest.raises(ValueError, match="greater than"):
        distortion_loss(weights, edges, space="linear", near=5.0, far=1.0)
    with pytest.raises(ValueError, match="positive"):
        distortion_loss(weights, edges - 10.0, space="inverse")


# ---------------------------------------------------------------------- distortion: packed


def _pack(weights, edges, counts):
    ws, starts, ends, ids = [], [], [], []
    for ray, n in enumerate(counts):
        ws.append(weights[ray, :n])
        starts.append(edges[ray, :n])
        ends.append(edges[ray, 1 : n + 1])
        ids.append(torch.full((n,), ray, dtype=torch.long))
    return torch.cat(ws), torch.cat(starts), torch.cat(ends), torch.cat(ids)


@given(seed=st.integers(0, 2**31 - 1), space=st.sampled_from(["metric", "linear", "inverse"]))
@pytest.mark.slow
def test_packed_agrees_with_dense(seed, space):
    from aware3d.functional.losses import distortion_loss, distortion_loss_packed

    g = torch.Generator().manual_seed(seed)
    R, S = 6, 10
    weights, edges = random_rays(seed, batch=(R,), S=S)
    counts = torch.randint(0, S + 1, (R,), generator=g).tolist()
    packed = _pack(weights, edges, counts)
    kwargs = {} if space == "metric" else {"near": 0.25, "far": 30.0}
    out = distortion_loss_packed(*packed, R, space=space, reduction="none", **kwargs)
    assert out.shape == (R,)
    for ray, n in enumerate(counts):
        if n == 0:
            assert float(out[ray]) == 0.0
            continue
        dense = distortion_loss(
            weights[ray, :n], edges[ray, : n + 1], space=space, reduction="none", **kwargs
        )
        torch.testing.assert_close(out[ray], dense, rtol=1e-10, atol=1e-12)


def test_packed_full_rays_equal_dense_with_default_near_far():
    from aware3d.functional.losses import distortion_loss, distortion_loss_packed

    weights, edges = random_rays(2, batch=(5,), S=6)
    packed = _pack(weights, edges, [6] * 5)
    for space in ("metric", "linear", "inverse"):
        torch.testing.assert_close(
            distortion_loss_packed(*packed, 5, space=space),
            distortion_loss(weights, edges, space=space),
        )


def test_packed_gradcheck_and_bad_input():
    from aware3d.functional.losses import distortion_loss_packed

    weights, edges = random_rays(4, batch=(3,), S=3)
    w, t0, t1, ids = _pack(weights, edges, [3, 1, 2])
    t1 = t0 + 0.9 * (t1 - t0)  # gaps between bins, so finite differences keep them disjoint
    w.requires_grad_()
    t0.requires_grad_()
    t1.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b, c: distortion_loss_packed(a, b, c, ids, 3, reduction="none"), (w, t0, t1)
    )
    w, t0, t1 = w.detach(), t0.detach(), t1.detach()
    with pytest.raises(ValueError, match="non-decreasing"):
        distortion_loss_packed(w, t0, t1, ids.flip(0), 3)
    with pytest.raises(ValueError, match="num_rays"):
        distortion_loss_packed(w, t0, t1, ids, 2)
    with pytest.raises(ValueError, match="overlapping"):
        distortion_loss_packed(w, t0.flip(0), t1.flip(0), ids, 3)
    with pytest.raises(ValueError, match="t_ends"):
        distortion_loss_packed(w, t1, t0, ids, 3)
    with pytest.raises(ValueError, match="`weights` must be >= 0"):
        distortion_loss_packed(-w, t0, t1, ids, 3)
    with pytest.raises(ValueError, match=r"`t_starts` must have shape \[N\] = \[\d+\]"):
        distortion_loss_packed(w, t0[:-1], t1, ids, 3)
    with pytest.raises(TypeError, match="`ray_indices` must be an integer tensor"):
        distortion_loss_packed(w, t0, t1, ids.double(), 3)  # pyright: ignore[reportArgumentType]


# ---------------------------------------------------------------------- distortion: splat form


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 12), scale=st.floats(0.1, 10.0))
def test_splat_form_equals_pairwise_sum(seed, n, scale):
    from aware3d.functional.losses import splat_distortion_loss

    g = torch.Generator().manual_seed(seed)
    w = torch.rand(3, 4, n, generator=g, dtype=torch.float64) / n
    z = (torch.rand(3, 4, n, generator=g, dtype=torch.float64) + 1.0) * scale
    alpha = w.sum(-1, keepdim=True)
    m1 = (w * z).sum(-1, keepdim=True)
    m2 = (w * z * z).sum(-1, keepdim=True)
    pairwise = (w[..., :, None] * w[..., None, :] * (z[..., :, None] - z[..., None, :]) ** 2).sum(
        (-1, -2)
    )
    out = splat_distortion_loss(alpha, m1, m2, reduction="none")
    assert out.shape == (3, 4, 1)
    torch.testing.assert_close(out[..., 0], pairwise, rtol=1e-9, atol=1e-12 * scale**2)
    assert bool((out >= 0).all())


def test_splat_form_gradcheck_clamp_and_bad_input():
    from aware3d.functional.losses import splat_distortion_loss

    g = torch.Generator().manual_seed(0)
    w = torch.rand(5, 3, generator=g, dtype=torch.float64) / 3  # sum w <= 1: a valid alpha
    z = torch.rand(5, 3, generator=g, dtype=torch.float64) + 1
    moments = [(w * z**k).sum(-1, keepdim=True).requires_grad_() for k in range(3)]
    assert torch.autograd.gradcheck(lambda a, b, c: splat_distortion_loss(a, b, c), moments)
    # a single Gaussian per pixel has zero variance: round-off negatives are clamped to 0
    a = torch.full((7, 1), 0.3)
    zz = torch.linspace(1, 50, 7)[:, None]
    out = splat_distortion_loss(a, a * zz, a * zz * zz, reduction="none")
    assert bool((out >= 0).all())
    assert float(out.max()) < 1e-3
    half = splat_distortion_loss(
        moments[0].detach().half(), moments[1].detach().half(), moments[2].detach().half()
    )
    assert half.dtype == torch.float32


@pytest.mark.usefixtures("without_shape_checker")
def test_splat_form_bad_input():
    from aware3d.functional.losses import splat_distortion_loss

    a = torch.full((7, 1), 0.3)
    with pytest.raises(ValueError, match=r"`moment1` must have shape \[\*batch, 1\] = \[7, 1\]"):
        splat_distortion_loss(a, a[:3], a)
    with pytest.raises(ValueError, match="`reduction` must be one of"):
        splat_distortion_loss(a, a, a, reduction="avg")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match=r"`alpha` must lie in \[0, 1\]"):
        splat_distortion_loss(a * 5, a, a)  # BallGAN-style misuse returned 46 before
    with pytest.raises(ValueError, match="`moment2` must be >= 0"):
        splat_distortion_loss(a, a, -a)


# ---------------------------------------------------------------------- separation


@given(
    t=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=32),
)
def test_separation_in_range(t):
    from aware3d.functional.losses import separation_loss

    t_bg = torch.tensor(t, dtype=torch.float64)[:, None]
    per_ray = separation_loss(t_bg, reduction="none")
    assert per_ray.shape == t_bg.shape
    assert bool(((per_ray >= 0) & (per_ray <= 0.5)).all())
    torch.testing.assert_close(per_ray, torch.minimum(t_bg, 1 - t_bg))
    assert 0.0 <= float(separation_loss(t_bg)) <= 0.5


def test_separation_values_gradcheck_and_reduction():
    from aware3d.functional.losses import separation_loss

    t_bg = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0])
    torch.testing.assert_close(
        separation_loss(t_bg, reduction="none"), torch.tensor([0.0, 0.1, 0.5, 0.1, 0.0])
    )
    torch.testing.assert_close(separation_loss(t_bg, reduction="sum"), torch.tensor(0.7))
    x = torch.tensor([0.05, 0.3, 0.7, 0.95], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: separation_loss(v), (x,))


@pytest.mark.usefixtures("without_shape_checker")
def test_separation_bad_input():
    from aware3d.functional.losses import separation_loss

    with pytest.raises(ValueError, match="`reduction` must be one of"):
        separation_loss(torch.tensor([0.5]), reduction="median")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match=r"`bg_transmittance` must lie in \[0, 1\]"):
        separation_loss(torch.tensor([7.0]))  # returned -6 before


# ---------------------------------------------------------------------- modules


class FakeSplat(NamedTuple):
    features: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    moment1: torch.Tensor | None
    moment2: torch.Tensor | None


def test_modules_equal_functions():
    from aware3d.functional.compositing import composite_splat
    from aware3d.functional.losses import (
        Space,
        distortion_loss,
        distortion_loss_packed,
        separation_loss,
        splat_distortion_loss,
    )
    from aware3d.nn.losses import DistortionLoss, SeparationLoss

    weights, edges = random_rays(1, batch=(4,), S=5)
    spaces: list[tuple[Space, dict]] = [("metric", {}), ("inverse", {"near": 0.2, "far": 20.0})]
    for space, kw in spaces:
        module = DistortionLoss(space, reduction="sum", **kw)
        torch.testing.assert_close(
            module(weights, edges),
            distortion_loss(weights, edges, space=space, reduction="sum", **kw),
        )
        w, t0, t1, ids = _pack(weights, edges, [5, 2, 0, 3])
        torch.testing.assert_close(
            module(w, torch.stack([t0, t1], -1), ray_indices=ids, num_rays=4),
            distortion_loss_packed(w, t0, t1, ids, 4, space=space, reduction="sum", **kw),
        )
    loss = DistortionLoss()
    w, t0, t1, ids = _pack(weights, edges, [5, 2, 1, 3])
    torch.testing.assert_close(
        loss(w, torch.stack([t0, t1], -1), ray_indices=ids),
        distortion_loss_packed(w, t0, t1, ids, 4),
    )
    a = torch.rand(2, 1, 3, 3, 1)
    m1 = a * 2.0
    m2 = a * 5.0
    out = FakeSplat(torch.rand(2, 1, 3, 3, 3), a, m1 / a, m1, m2)
    expected = splat_distortion_loss(a, m1, m2)
    torch.testing.assert_close(loss(out), expected)
    torch.testing.assert_close(loss.splat(out), expected)
    torch.testing.assert_close(loss.splat(a, m1, m2), expected)
    with pytest.raises(ValueError, match="depth_moments"):
        loss.splat(out._replace(moment1=None))
    with pytest.raises(ValueError, match="t_edges"):
        loss(weights)
    with pytest.raises((ValueError, TypeError)):
        DistortionLoss("log")  # pyright: ignore[reportArgumentType]

    sep = SeparationLoss()
    composite = composite_splat(out.features, a, torch.rand(2, 1, 3, 3, 3))
    torch.testing.assert_close(sep(composite), separation_loss(1 - a))
    torch.testing.assert_close(sep(1 - a), separation_loss(1 - a))
    assert "reduction" in repr(sep)
    assert "space" in repr(loss)


def test_segmented_cumsum_matches_a_loop_over_segments():
    from aware3d.functional._scan import segmented_cumsum

    values = torch.randn(9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    segments = [range(0, 3), range(3, 4), range(4, 9)]
    start = torch.tensor([s.start for s in segments for _ in s])
    end = torch.tensor([s.stop - 1 for s in segments for _ in s])
    forward, backward = torch.zeros_like(values), torch.zeros_like(values)
    for segment in segments:
        for k in segment:
            forward[k] = values[segment.start : k + 1].sum(0)
            backward[k] = values[k : segment.stop].sum(0)
    torch.testing.assert_close(segmented_cumsum(values, start), forward)
    torch.testing.assert_close(segmented_cumsum(values, end, reverse=True), backward)
    torch.testing.assert_close(segmented_cumsum(values, start, exclusive=True), forward - values)


def test_fused_distortion_gradients_equal_autograd_through_the_formula():
    from aware3d.functional.losses import _dense_distortion, _dense_distortion_reference

    weights, edges = random_rays(7, batch=(3, 4), S=9)
    weights = weights.detach().requires_grad_()
    edges = edges.detach().requires_grad_()
    fused = _dense_distortion(weights, edges)
    reference = _dense_distortion_reference(weights, edges)
    torch.testing.assert_close(fused, reference, rtol=1e-12, atol=1e-14)
    upstream = torch.rand_like(fused)
    got = torch.autograd.grad(fused, (weights, edges), upstream)
    want = torch.autograd.grad(reference, (weights, edges), upstream, retain_graph=True)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    only_weights = torch.autograd.grad(_dense_distortion(weights, edges.detach()).sum(), weights)[0]
    torch.testing.assert_close(only_weights, torch.autograd.grad(reference.sum(), weights)[0])


# ---------------------------------------------------------------------- Mip-NeRF 360's own space


def test_mipnerf360_space_is_inverse_with_its_near_and_far():
    from aware3d.functional.losses import (
        MIPNERF360_FAR,
        MIPNERF360_NEAR,
        distortion_loss,
        distortion_loss_packed,
    )
    from aware3d.nn.losses import DistortionLoss

    assert (MIPNERF360_NEAR, MIPNERF360_FAR) == (0.2, 1e6)
    weights, edges = random_rays(8, batch=(6,), S=7)
    inverse = distortion_loss(weights, edges, space="inverse", near=0.2, far=1e6, reduction="none")
    mip = distortion_loss(weights, edges, space="mipnerf360", reduction="none")
    torch.testing.assert_close(mip, inverse)
    s = (1 / edges - 1 / 0.2) / (1 / 1e6 - 1 / 0.2)  # the oracle on mapped edges
    torch.testing.assert_close(mip, pairwise_distortion(weights, s))
    # near / far can still be overridden
    torch.testing.assert_close(
        distortion_loss(weights, edges, space="mipnerf360", near=0.1, far=math.inf),
        distortion_loss(weights, edges, space="inverse", near=0.1, far=math.inf),
    )
    w, t0, t1, ids = _pack(weights, edges, [7, 3, 0, 5, 7, 1])
    torch.testing.assert_close(
        distortion_loss_packed(w, t0, t1, ids, 6, space="mipnerf360"),
        distortion_loss_packed(w, t0, t1, ids, 6, space="inverse", near=0.2, far=1e6),
    )
    module = DistortionLoss("mipnerf360")
    torch.testing.assert_close(module(weights, edges), mip.mean())
    assert "mipnerf360" in repr(module)


@pytest.mark.usefixtures("without_shape_checker")
def test_mipnerf360_space_bad_input():
    from aware3d.functional.losses import distortion_loss

    weights, edges = random_rays(9, batch=(2,), S=3)
    with pytest.raises(ValueError, match="mipnerf360"):
        distortion_loss(weights, edges, near=0.2)
    with pytest.raises(ValueError, match="positive distances"):
        distortion_loss(weights, edges - 2.0, space="mipnerf360")
    with pytest.raises(ValueError, match="far"):
        distortion_loss(weights, edges, space="mipnerf360", near=2.0, far=1.0)


# ---------------------------------------------------------------------- BallGAN's density loss


def released_density_loss(raw: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """BallGAN's get_fg_reg as the definition, O(S^2), float64, per ray."""
    sig = torch.sigmoid(raw.double())
    t = t.double()
    g = torch.reciprocal
    near, far = t.amin(-1, keepdim=True), t.amax(-1, keepdim=True)
    s = (g(t) - g(near)) / (g(far) - g(near))
    table = sig[..., :, None] * sig[..., None, :] * (s[..., :, None] - s[..., None, :]).abs()
    pair = torch.triu(table, diagonal=1).sum((-1, -2))
    dt = t[..., 1:] - t[..., :-1]
    dt = torch.cat([dt, dt[..., -1:]], -1)
    return pair + (sig * dt).sum(-1) / 3.0


def importance_like(seed: int, batch=(4,), S: int = 8, dtype=torch.float64):
    """Unsorted distances in [2.25, 3.3] and raw densities of either sign."""
    g = torch.Generator().manual_seed(seed)
    t = 2.25 + 1.05 * torch.rand(*batch, S, generator=g, dtype=torch.float64)
    raw = 4.0 * torch.randn(*batch, S, generator=g, dtype=torch.float64)
    return raw.to(dtype), t.to(dtype)


@pytest.mark.parametrize("S", [2, 3, 17, 48])
@pytest.mark.parametrize("batch", [(), (3,), (2, 5)])
def test_ballgan_density_loss_matches_released_definition(S, batch):
    from aware3d.functional.losses import ballgan_density_loss

    raw, t = importance_like(S, batch=batch, S=S)
    out = ballgan_density_loss(raw, t, reduction="none")
    assert out.shape == batch and out.dtype == torch.float64
    reference = released_density_loss(raw, t)
    torch.testing.assert_close(out, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ballgan_density_loss(raw, t), reference.mean())
    torch.testing.assert_close(ballgan_density_loss(raw, t, reduction="sum"), reference.sum())


def test_ballgan_density_loss_ties_order_and_sign():
    from aware3d.functional.losses import ballgan_density_loss

    raw, t = importance_like(1, batch=(6,), S=12)
    t[:, 3] = t[:, 7]  # tied distances add nothing to the pair term
    torch.testing.assert_close(
        ballgan_density_loss(raw, t, reduction="none"), released_density_loss(raw, t)
    )
    # the pair term ignores the order; the unary term uses it (given order, no sorting)
    order = torch.argsort(t, -1)
    sorted_loss = ballgan_density_loss(raw.gather(-1, order), t.gather(-1, order), reduction="none")
    sig = torch.sigmoid(raw)
    dt = torch.cat([t.diff(dim=-1), t.diff(dim=-1)[:, -1:]], -1)
    sorted_t = t.gather(-1, order)
    sorted_dt = torch.cat([sorted_t.diff(dim=-1), sorted_t.diff(dim=-1)[:, -1:]], -1)
    unary = (sig * dt).sum(-1) / 3
    unary_sorted = (sig.gather(-1, order) * sorted_dt).sum(-1) / 3
    torch.testing.assert_close(
        ballgan_density_loss(raw, t, reduction="none") - unary, sorted_loss - unary_sorted
    )
    # with unsorted samples dt has either sign, and so can the loss
    t_down = torch.tensor([[3.3, 3.0, 2.7, 2.4]], dtype=torch.float64)
    raw_down = torch.tensor([[-8.0, -8.0, -8.0, 8.0]], dtype=torch.float64)
    assert float(ballgan_density_loss(raw_down, t_down)) < 0


def test_ballgan_density_loss_float32_and_half_inputs():
    from aware3d.functional.losses import ballgan_density_loss

    raw, t = importance_like(2, batch=(64,), S=96)
    reference = released_density_loss(raw, t)
    out32 = ballgan_density_loss(raw.float(), t.float(), reduction="none")
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), reference, rtol=2e-5, atol=1e-4)
    out16 = ballgan_density_loss(raw.half(), t.half(), reduction="none")
    assert out16.dtype == torch.float32  # accumulated in float32, not fp16 as released
    torch.testing.assert_close(
        out16.double(), released_density_loss(raw.half(), t.half()), rtol=1e-4, atol=1e-3
    )


@pytest.mark.slow
def test_ballgan_density_loss_gradients():
    from aware3d.functional.losses import ballgan_density_loss

    raw, t = importance_like(3, batch=(2, 3), S=6)
    raw.requires_grad_()
    t.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda r, d: ballgan_density_loss(r, d, reduction="none"), (raw, t)
    )
    assert torch.autograd.gradcheck(lambda r, d: ballgan_density_loss(r, d), (raw, t))
    ours = torch.autograd.grad(ballgan_density_loss(raw, t, reduction="sum"), (raw, t))
    oracle = torch.autograd.grad(released_density_loss(raw, t).sum(), (raw, t))
    for a, b in zip(ours, oracle, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.usefixtures("without_shape_checker")
def test_ballgan_density_loss_bad_input():
    from aware3d.functional.losses import ballgan_density_loss

    raw, t = importance_like(4, batch=(3,), S=5)
    with pytest.raises(ValueError, match="at least 2 samples"):
        ballgan_density_loss(raw[:, :1], t[:, :1])
    with pytest.raises(ValueError, match=r"`t` must have shape"):
        ballgan_density_loss(raw, t[:, :4])
    with pytest.raises(ValueError, match="> 0"):
        ballgan_density_loss(raw, t - 3.0)
    with pytest.raises(ValueError, match="constant along a ray"):
        ballgan_density_loss(raw, torch.full_like(t, 2.0))
    with pytest.raises(ValueError, match="finite"):
        ballgan_density_loss(torch.full_like(raw, math.nan), t)
    with pytest.raises(ValueError, match="reduction"):
        ballgan_density_loss(raw, t, reduction="max")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="raw_densities"):
        ballgan_density_loss(raw[:0], t[:0])
    assert float(ballgan_density_loss(raw[:0], t[:0], reduction="sum")) == 0.0
    with pytest.raises(TypeError):
        ballgan_density_loss(raw.long(), t)


def test_ballgan_density_module_and_ramp():
    from aware3d.functional.losses import ballgan_density_loss, ballgan_regularizer_ramp
    from aware3d.nn import BallGANDensityLoss

    raw, t = importance_like(5, batch=(2, 3), S=4)
    torch.testing.assert_close(BallGANDensityLoss()(raw, t), ballgan_density_loss(raw, t))
    torch.testing.assert_close(
        BallGANDensityLoss("none")(raw, t), ballgan_density_loss(raw, t, reduction="none")
    )
    assert "reduction='sum'" in repr(BallGANDensityLoss("sum"))
    with pytest.raises((ValueError, TypeError), match="reduction"):
        BallGANDensityLoss("max")  # pyright: ignore[reportArgumentType]

    assert ballgan_regularizer_ramp(0) == pytest.approx(0.05)
    assert ballgan_regularizer_ramp(5000) == pytest.approx(math.e / 20)
    assert ballgan_regularizer_ramp(14_999) == pytest.approx(math.exp(14_999 / 5000) / 20)
    assert ballgan_regularizer_ramp(15_000) == 1.0
    assert ballgan_regularizer_ramp(1e9) == 1.0
    with pytest.raises(ValueError, match="images_seen"):
        ballgan_regularizer_ramp(-1)
