"""Tri-plane sampling, ray sampling (stratified, inverse CDF, EG3D's scheme), ray-box bounds.

References are written here: a per-point bilinear loop for the tri-plane, ``numpy.interp`` for the
inverse CDF, PyTorch's pooling layers for EG3D's smoothing, dense marching for the box bounds.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from aware3d.functional import (
    midpoint_volume_samples,
    ray_box_intersection,
    sample_importance_eg3d,
    sample_pdf,
    sample_stratified,
    sample_triplane,
    smooth_weights_eg3d,
)
from aware3d.functional.sampling import EG3D_IMPORTANCE_PAD, EG3D_PDF_EPS
from aware3d.functional.volume import EG3D_DENSITY_OFFSET, EG3D_NUM_COARSE, EG3D_NUM_FINE

# ---------------------------------------------------------------------- tri-plane


def bilinear_zero_padded(plane: torch.Tensor, u: float, v: float) -> torch.Tensor:
    """One bilinear lookup of ``plane [F, H, W]`` at normalised ``(u, v)``, align_corners=False."""
    _, height, width = plane.shape
    x = ((u + 1) * width - 1) / 2  # texel-centre coordinates
    y = ((v + 1) * height - 1) / 2
    x0, y0 = math.floor(x), math.floor(y)
    out = torch.zeros(plane.shape[0], dtype=plane.dtype)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - abs(x - xi)) * (1 - abs(y - yi))
            if 0 <= xi < width and 0 <= yi < height:
                out += weight * plane[:, yi, xi]
    return out


@pytest.mark.parametrize("projection", ["eg3d", "orthogonal"])
def test_sample_triplane_matches_a_per_point_loop(projection):
    torch.manual_seed(0)
    planes = torch.randn(2, 3, 4, 5, 7, dtype=torch.float64)
    points = (torch.rand(2, 9, 3, dtype=torch.float64) - 0.5) * 1.4  # some leave the box
    box = 1.3
    axes = {"eg3d": [(0, 1), (0, 2), (2, 0)], "orthogonal": [(0, 1), (0, 2), (1, 2)]}[projection]
    out = sample_triplane(planes, points, box_size=box, projection=projection)
    assert out.shape == (2, 3, 9, 4)
    for b in range(2):
        for k, (a, c) in enumerate(axes):
            for n in range(9):
                q = points[b, n] * 2 / box
                expected = bilinear_zero_padded(planes[b, k], float(q[a]), float(q[c]))
                torch.testing.assert_close(out[b, k, n], expected, rtol=1e-12, atol=1e-12)


def test_eg3d_projection_is_the_released_plane_matrices():
    # EG3D's generate_planes (training/volumetric_rendering/renderer.py): points are multiplied by
    # the inverse of each 3x3 "plane axes" matrix and the first two coordinates are kept.
    released_axes = torch.tensor(
        [
            [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
            [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
            [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
        ],
        dtype=torch.float64,
    )
    points = torch.randn(1, 6, 3, dtype=torch.float64) * 0.3
    projected = torch.einsum("nc,kcd->knd", points[0], torch.linalg.inv(released_axes))[..., :2]
    planes = torch.randn(1, 3, 2, 8, 8, dtype=torch.float64)
    expected = F.grid_sample(
        planes[0],
        projected[:, None] * 2,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )[:, :, 0].transpose(1, 2)
    torch.testing.assert_close(sample_triplane(planes, points)[0], expected)
    # the third plane is read at (z, x), not (y, z)
    torch.testing.assert_close(projected[2], points[0][:, [2, 0]])


def test_sample_triplane_gradcheck():
    torch.manual_seed(1)
    planes = torch.randn(1, 3, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    points = (torch.rand(1, 5, 3, dtype=torch.float64) - 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda p, x: sample_triplane(p, x), (planes, points))


def test_sample_triplane_rejects_bad_input(without_shape_checker):
    planes, points = torch.zeros(1, 3, 2, 4, 4), torch.zeros(1, 5, 3)
    with pytest.raises(ValueError, match="projection"):
        sample_triplane(planes, points, projection="yz")
    with pytest.raises(ValueError, match="box_size"):
        sample_triplane(planes, points, box_size=0.0)
    with pytest.raises(ValueError, match="planes"):
        sample_triplane(torch.zeros(1, 2, 2, 4, 4), points)
    with pytest.raises(ValueError, match="points"):
        sample_triplane(planes, torch.zeros(2, 5, 3))


# ---------------------------------------------------------------------- stratified


def test_stratified_deterministic_is_linspace_and_jitter_stays_in_its_stratum():
    near, far = (
        torch.full((3, 2), 2.25, dtype=torch.float64),
        torch.full((3, 2), 3.3, dtype=torch.float64),
    )
    grid = torch.linspace(2.25, 3.3, 48, dtype=torch.float64)
    torch.testing.assert_close(sample_stratified(near, far, 48, deterministic=True)[1, 1], grid)
    generator = torch.Generator().manual_seed(0)
    jittered = sample_stratified(near, far, 48, generator=generator)
    spacing = (3.3 - 2.25) / 47
    assert ((jittered - grid) >= 0).all() and ((jittered - grid) < spacing).all()
    assert (jittered.diff(dim=-1) >= 0).all()
    again = sample_stratified(near, far, 48, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(jittered, again, rtol=0, atol=0)


def test_stratified_disparity_is_linear_in_inverse_depth():
    near, far = (
        torch.tensor([1.0, 2.0], dtype=torch.float64),
        torch.tensor([4.0, 8.0], dtype=torch.float64),
    )
    t = sample_stratified(near, far, 5, space="disparity", deterministic=True)
    torch.testing.assert_close(t[:, 0], near)
    torch.testing.assert_close(t[:, -1], far)
    inverse = t.reciprocal().diff(dim=-1)
    torch.testing.assert_close(inverse, inverse[:, :1].expand_as(inverse))


def test_stratified_rejects_bad_input():
    one = torch.ones(2)
    with pytest.raises(ValueError, match="far"):
        sample_stratified(one, one * 0.5, 4)
    with pytest.raises(ValueError, match="near"):
        sample_stratified(one * 0, one, 4, space="disparity")
    with pytest.raises(ValueError, match="space"):
        sample_stratified(one, one * 2, 4, space="log")
    with pytest.raises(ValueError, match="num_samples"):
        sample_stratified(one, one * 2, 0)


# ---------------------------------------------------------------------- inverse CDF


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(2, 20), st.integers(0, 2**31 - 1))
def test_sample_pdf_deterministic_is_the_exact_inverse_cdf(num_bins, num_samples, seed):
    generator = torch.Generator().manual_seed(seed)
    bins = torch.cumsum(
        torch.rand(4, num_bins + 1, dtype=torch.float64, generator=generator) + 0.05, -1
    )
    weights = torch.rand(4, num_bins, dtype=torch.float64, generator=generator) + 1e-3
    samples = sample_pdf(bins, weights, num_samples, deterministic=True)
    levels = np.linspace(0, 1, num_samples)
    for ray in range(4):
        cdf = np.concatenate([[0.0], np.cumsum(weights[ray].numpy()) / weights[ray].sum().item()])
        expected = np.interp(levels, cdf, bins[ray].numpy())
        np.testing.assert_allclose(samples[ray].numpy(), expected, rtol=1e-12, atol=1e-12)


def test_sample_pdf_random_samples_follow_the_density_and_are_sorted():
    bins = torch.tensor([0.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    weights = torch.tensor([1.0, 0.0, 3.0], dtype=torch.float64)
    generator = torch.Generator().manual_seed(3)
    samples = sample_pdf(bins, weights, 20000, generator=generator)
    assert (samples.diff() >= 0).all()
    assert ((samples >= 0) & (samples <= 4)).all()
    assert ((samples > 1) & (samples < 2)).sum() == 0  # zero-weight bin is never sampled
    share = (samples < 1).double().mean().item()
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 20000)
    upper = samples[samples >= 2]  # uniform inside the bin [2, 4]
    assert abs(upper.mean().item() - 3.0) < 4 * (2 / math.sqrt(12)) / math.sqrt(len(upper))


def test_sample_pdf_zero_weights_sample_uniformly_and_endpoints_are_exact():
    bins = torch.tensor([[1.0, 2.0, 4.0]])
    samples = sample_pdf(bins, torch.zeros(1, 2), 5, deterministic=True)
    torch.testing.assert_close(samples, torch.tensor([[1.0, 1.5, 2.0, 3.0, 4.0]]))
    assert torch.isfinite(samples).all()


def test_sample_pdf_gradcheck():
    bins = torch.tensor([[0.0, 0.4, 1.1, 1.5]], dtype=torch.float64, requires_grad=True)
    weights = torch.tensor([[0.3, 0.9, 0.5]], dtype=torch.float64, requires_grad=True)
    # levels away from the CDF's knots, where the inverse is differentiable
    assert torch.autograd.gradcheck(
        lambda b, w: sample_pdf(b, w, 4, deterministic=True)[..., 1:-1], (bins, weights)
    )


def test_sample_pdf_rejects_bad_input(without_shape_checker):
    bins = torch.tensor([0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="weights"):
        sample_pdf(bins, torch.tensor([1.0, -1.0]), 3)
    with pytest.raises(ValueError, match="bins"):
        sample_pdf(torch.tensor([0.0, 2.0, 1.0]), torch.ones(2), 3)
    with pytest.raises(ValueError):
        sample_pdf(bins, torch.ones(3), 3)  # S + 1 edges for S weights
    with pytest.raises(ValueError, match="num_samples"):
        sample_pdf(bins, torch.ones(2), 0)


# ---------------------------------------------------------------------- EG3D's importance scheme


def test_released_constants():
    # EG3D training/volumetric_rendering/renderer.py and BallGAN train.py (cfg ffhq/afhq):
    # depth_resolution = depth_resolution_importance = 48, softplus(x - 1) in MipRayMarcher2,
    # weights + 0.01 after the pooling, eps = 1e-5 inside sample_pdf.
    assert (EG3D_NUM_COARSE, EG3D_NUM_FINE) == (48, 48)
    assert EG3D_DENSITY_OFFSET == 1.0
    assert (EG3D_IMPORTANCE_PAD, EG3D_PDF_EPS) == (0.01, 1e-5)


def test_smoothing_is_max_pool_then_avg_pool_plus_pad():
    weights = torch.rand(6, 47, dtype=torch.float64)
    pooled = F.max_pool1d(weights[:, None], 2, 1, padding=1)
    expected = F.avg_pool1d(pooled, 2, 1)[:, 0] + 0.01
    torch.testing.assert_close(smooth_weights_eg3d(weights), expected)


def test_importance_samples_follow_the_released_bins():
    torch.manual_seed(0)
    t = torch.sort(torch.rand(5, 48, dtype=torch.float64), dim=-1).values + 2.0
    weights = torch.rand(5, 47, dtype=torch.float64)
    samples = sample_importance_eg3d(t, weights, 48, deterministic=True)
    midpoints = 0.5 * (t[:, 1:] + t[:, :-1])
    expected = sample_pdf(
        midpoints[:, :46], smooth_weights_eg3d(weights)[:, 1:-1] + 1e-5, 48, deterministic=True
    )
    torch.testing.assert_close(samples, expected)
    torch.testing.assert_close(samples[:, 0], midpoints[:, 0])
    torch.testing.assert_close(samples[:, -1], midpoints[:, 45])  # the last midpoint is unused
    assert not samples.requires_grad


def test_importance_samples_concentrate_at_a_peak():
    t = torch.linspace(2.25, 3.3, 48).expand(2, 48)
    weights = torch.zeros(2, 47)
    weights[:, 20] = 1.0
    samples = sample_importance_eg3d(t, weights, 48, deterministic=True)
    peak = (t[0, 19].item(), t[0, 22].item())
    inside = ((samples > peak[0]) & (samples < peak[1])).double().mean().item()
    assert inside > 0.7


# ---------------------------------------------------------------------- midpoint intervals


def test_midpoint_intervals_as_released():
    t = torch.tensor([2.0, 2.5, 3.5])
    raw = torch.tensor([0.0, 2.0, 4.0])
    features = torch.tensor([[0.0], [1.0], [3.0]])
    sigmas, feats, edges = midpoint_volume_samples(t, raw, features)
    torch.testing.assert_close(sigmas, F.softplus(torch.tensor([1.0, 3.0]) - 1.0))
    torch.testing.assert_close(feats, torch.tensor([[0.5], [2.0]]))
    torch.testing.assert_close(edges, t)


def test_midpoint_intervals_gradcheck():
    t = torch.tensor([[1.0, 1.3, 2.0, 2.2]], dtype=torch.float64)
    raw = torch.randn(1, 4, dtype=torch.float64, requires_grad=True)
    features = torch.randn(1, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda r, f: midpoint_volume_samples(t, r, f)[:2], (raw, features)
    )


# ---------------------------------------------------------------------- ray-box bounds


def marched_bounds(origin, direction, half):
    t = np.linspace(0, 10, 200001)
    points = origin[None] + t[:, None] * direction[None]
    inside = (np.abs(points) <= half).all(-1)
    if not inside.any():
        return None
    return t[inside].min(), t[inside].max()


def test_ray_box_intersection_matches_marching():
    generator = torch.Generator().manual_seed(4)
    origins = torch.randn(40, 3, dtype=torch.float64, generator=generator) * 1.5
    dirs = torch.randn(40, 3, dtype=torch.float64, generator=generator)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    near, far, hit = ray_box_intersection(origins, dirs, 0.5)
    for i in range(40):
        bounds = marched_bounds(origins[i].numpy(), dirs[i].numpy(), 0.5)
        if bounds is None:
            assert hit[i] == 0 and near[i] == far[i]
        else:
            assert hit[i] == 1
            assert abs(near[i].item() - bounds[0]) < 1e-4
            assert abs(far[i].item() - bounds[1]) < 1e-4


def test_ray_box_intersection_axis_parallel_and_inside():
    origins = torch.tensor([[0.0, 0.0, 2.7], [0.7, 0.0, 2.7], [0.1, 0.2, 0.0]])
    dirs = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    near, far, hit = ray_box_intersection(origins, dirs, 0.5)
    torch.testing.assert_close(near, torch.tensor([2.2, 2.7, 0.0]))
    torch.testing.assert_close(far, torch.tensor([3.2, 2.7, 0.4]))
    torch.testing.assert_close(hit, torch.tensor([1.0, 0.0, 1.0]))
    assert torch.isfinite(near).all() and torch.isfinite(far).all()
