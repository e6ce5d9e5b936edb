"""Precision under ``torch.autocast(bfloat16)`` and with half-precision inputs (issue #21).

The policy (``docs/pages/conventions.md``, "Precision"): networks run their matrix products in
autocast's dtype and return their parameters' dtype; geometry (cameras, rays, the hierarchy's
positions and scales, ray-sphere exits) and rendering (``rasterize``, ``composite_*``) compute
in float32 at least with autocast off. Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` the
library's generators therefore give float32 outputs close to their float32 outputs.

Tolerances: bfloat16 keeps 8 significant bits, so every rounding of a matrix product's inputs
costs up to ``2^-9 ~ 2e-3`` relative error. A generator chains several such products (mapping,
trunk, heads, background MLP), so outputs of magnitude ~1 move by about 1e-2 (1-2% of their
largest value, measured in each test); the bounds allow 2-4 times that: 0.05 on images of
magnitude ~1, 0.1 on features of magnitude ~3. Where autocast must not touch a computation at
all the bound is float32's round-off (1e-6), or exact equality.
"""

import math

import pytest
import torch

import aware3d
from aware3d import Cameras, intrinsics_from_fov, orbit, sample_gaussian_poses, sample_look_at_poses
from aware3d.functional import (
    composite_splat,
    composite_volume,
    midpoint_volume_samples,
    sample_coarse_fine,
    volume_weights,
)
from aware3d.models import ballgan_small, gsgan_small
from aware3d.nn import (
    GaussianBackground,
    SphericalBackground,
    SuperResolution,
    TriplaneDecoder,
    small_decoder,
    small_triplane,
)
from aware3d.training.ema import make_ema, update_ema

BF16 = torch.bfloat16


def autocast():
    return torch.autocast("cpu", dtype=BF16)


def cameras(batch: int = 2, views: int = 1, dtype: torch.dtype = torch.float32) -> Cameras:
    poses = sample_look_at_poses(
        math.pi / 2, math.pi / 2, (0.0, 0.0, 0.2), 0.3, 0.15, n=batch * views,
        generator=torch.Generator().manual_seed(3), dtype=dtype,
    )  # fmt: skip
    intrinsics = intrinsics_from_fov(18.0, dtype=dtype).expand(batch, views, 3, 3)
    return Cameras(poses.reshape(batch, views, 4, 4), intrinsics)


def assert_one_dtype(gaussians: aware3d.Gaussians, dtype: torch.dtype) -> None:
    fields = ("means", "quats", "scales", "opacities", "features")
    assert {name: getattr(gaussians, name).dtype for name in fields} == dict.fromkeys(fields, dtype)


# ---------------------------------------------------------------------- generators


@pytest.mark.parametrize("background", ["sphere", "gaussians"])
def test_gsgan_small_runs_under_autocast_close_to_float32(background):
    generator = gsgan_small(32, num_levels=2, resolution=16, background=background).eval()
    z, views = torch.randn(2, 32), cameras()
    with torch.no_grad():
        reference = generator(z, views, 16, 16)
        with autocast():
            out = generator(z, views, 16, 16)
    assert out.images.dtype == torch.float32
    assert out.composite.bg_transmittance.dtype == torch.float32
    assert_one_dtype(out.gaussians, torch.float32)
    assert torch.isfinite(out.images).all()
    # measured 2.1e-2 (sphere) and 1.1e-2 (gaussians) on images up to 1.1: bfloat16 products in
    # the mapping, decoder and background; geometry and rendering are float32
    torch.testing.assert_close(out.images, reference.images, atol=0.05, rtol=0)


def test_gsgan_small_trains_under_autocast():
    generator = gsgan_small(32, num_levels=2, resolution=16)
    with autocast():
        out = generator(torch.randn(2, 32), cameras(), 16, 16)
        loss = out.images.square().mean() + sum(generator.regularizers(out).values())
    loss.backward()
    grads = [p.grad for p in generator.parameters() if p.grad is not None]
    assert loss.dtype == torch.float32 and grads
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_ballgan_small_runs_under_autocast_close_to_float32():
    generator = ballgan_small(
        32, resolution=16, neural_resolution=8, features=8, num_coarse=6, num_fine=6
    ).eval()
    z, views = torch.randn(2, generator.latent_dim), cameras()
    with torch.no_grad():
        reference = generator(z, views, 16, 16)
        with autocast():
            out = generator(z, views, 16, 16)
    assert out.images.dtype == out.images_raw.dtype == torch.float32
    assert out.composite.bg_transmittance.dtype == out.planes.dtype == torch.float32
    assert torch.isfinite(out.images).all()
    # measured 3.0e-2 on images up to 3.6 and 7.8e-3 on raw images up to 0.7: bfloat16
    # products in the mappings, background MLP and tri-plane decoder (the StyleGAN2 convolutions
    # run in float32 with autocast off, fed the bfloat16-rounded styles)
    torch.testing.assert_close(out.images, reference.images, atol=0.1, rtol=0)
    torch.testing.assert_close(out.images_raw, reference.images_raw, atol=0.05, rtol=0)


def test_spherical_background_runs_under_autocast():
    background = SphericalBackground(16, feature_dim=3, hidden=16, num_layers=2, num_freqs=2)
    views, w = cameras(), torch.randn(2, 16)
    reference = background.render_with_depth(views, 8, 8, w)
    rays = views.pixel_rays(8, 8)
    for style in (w, w.to(BF16)):  # float32 inputs, or a mapping's bfloat16 output
        with autocast():
            features, depth = background.render_with_depth(views, 8, 8, style)
            direct = background(rays.origins, rays.directions, style)
            panorama = background.panorama(style, 8, 4)
        assert features.dtype == depth.dtype == direct.dtype == panorama.dtype == torch.float32
        # the depth is geometry (float32, autocast off): exact; the features went through three
        # layers of bfloat16 products: measured 3.5e-2 on features up to 2.5 (1.4%)
        assert torch.equal(depth, reference[1])
        torch.testing.assert_close(features, reference[0], atol=0.1, rtol=0)
        torch.testing.assert_close(direct, features)


def test_gaussian_background_returns_one_dtype_under_autocast():
    background = GaussianBackground(16, num_points=32, children=2, hidden=16)
    w = torch.randn(2, 16)
    reference = background(w)
    for style in (w, w.to(BF16)):
        with autocast():
            out = background(style)
        assert_one_dtype(out, torch.float32)
        # points on the sphere are geometry: float32 to its rounding (measured 2.4e-7)
        radii = torch.linalg.vector_norm(out.means, dim=-1)
        torch.testing.assert_close(radii, torch.full_like(radii, 3.0), atol=1e-5, rtol=0)
        # five modulated layers in bfloat16: measured 2.4e-2 on features up to 3.4 (0.7%)
        torch.testing.assert_close(out.features, reference.features, atol=0.1, rtol=0)


@pytest.mark.parametrize(
    ("blocks", "camera"), [("gsgan", False), ("gsgan", True), ("window", False)]
)
def test_decoder_returns_gaussians_of_one_dtype_under_autocast(blocks, camera):
    decoder = small_decoder(16, num_levels=2, blocks=blocks, camera_conditioning=camera)
    ws = torch.randn(2, decoder.num_ws, 16)
    forward = torch.nn.functional.normalize(torch.randn(2, 3), dim=-1) if camera else None
    reference = decoder(ws, forward)
    for dtype in (torch.float32, BF16):  # float32 codes, or a mapping's bfloat16 output
        with autocast():
            out = decoder(ws.to(dtype), None if forward is None else forward.to(dtype))
        assert_one_dtype(out, torch.float32)
        assert torch.isfinite(out.means).all()
        # positions follow from bfloat16 raw values through float32 geometry: measured 5.6e-4
        # ("gsgan") and 6.3e-3 ("window") in a box of half extent 0.59
        torch.testing.assert_close(out.means, reference.means, atol=0.02, rtol=0)


def test_triplane_and_superresolution_run_under_autocast():
    triplane = small_triplane(16, resolution=8, plane_channels=4, channel_max=8)
    decoder = TriplaneDecoder(4, 4, hidden=8)
    superresolution = SuperResolution(4, 8, 16, 16, block_channels=(8,))
    ws = torch.randn(2, triplane.num_ws, 16)
    reference = triplane(ws, noise_mode="const")
    with autocast():
        planes = triplane(ws.to(BF16), noise_mode="const")
        raw, features = decoder(planes[:, :, :, :2, :2].flatten(-2).transpose(-1, -2))
        image = superresolution(planes[:, 0], ws.to(BF16))
    assert planes.dtype == raw.dtype == features.dtype == image.dtype == torch.float32
    # the synthesis runs in float32 with autocast off; only `ws` was rounded to bfloat16:
    # measured 1.4e-2 on planes up to 5.9
    torch.testing.assert_close(planes, reference, atol=0.1, rtol=0)


# ---------------------------------------------------------------------- cameras


def test_pixel_rays_and_viewmats_are_untouched_by_autocast():
    views = cameras(2, 2)
    rays, viewmats = views.pixel_rays(8, 6), views.viewmats()
    with autocast():
        rays_autocast, viewmats_autocast = views.pixel_rays(8, 6), views.viewmats()
    assert rays_autocast.origins.dtype == rays_autocast.directions.dtype == torch.float32
    assert viewmats_autocast.dtype == torch.float32
    assert torch.equal(rays_autocast.directions, rays.directions)
    assert torch.equal(viewmats_autocast, viewmats)


@pytest.mark.parametrize("dtype", [torch.float16, BF16])
def test_cameras_from_half_precision_pose_samplers_are_accepted(dtype):
    intrinsics = intrinsics_from_fov(18.0, dtype=dtype).expand(64, 3, 3)
    seeded = torch.Generator().manual_seed
    poses = {
        "look_at": sample_look_at_poses(
            math.pi / 2, math.pi / 2, (0, 0, 0.2), 0.4, 0.3, n=64, generator=seeded(0), dtype=dtype
        ),
        "gaussian": sample_gaussian_poses(
            math.pi / 2, math.pi / 2, 0.4, 0.3, n=64, generator=seeded(0), dtype=dtype
        ),
        "orbit": orbit(64, dtype=dtype),
        "swing": orbit(64, horizontal_amplitude=0.5, vertical_amplitude=0.2, dtype=dtype),
    }
    for name, pose in poses.items():
        assert pose.dtype == dtype, name
        Cameras(pose, intrinsics)  # accepted: the rigidity tolerance follows the dtype
    # computed in float32 and rounded once: every entry within half an ulp of the float64 pose
    # (plus float32's round-off, 1e-6, where the exact entry is 0)
    for amplitude in (None, 0.5):
        pose = orbit(64, horizontal_amplitude=amplitude, dtype=dtype).double()
        reference = orbit(64, horizontal_amplitude=amplitude, dtype=torch.float64)
        half_ulp = torch.finfo(dtype).eps / 2
        torch.testing.assert_close(pose, reference, atol=1e-6, rtol=half_ulp * 1.01)


@pytest.mark.parametrize("dtype", [torch.float16, BF16])
def test_half_precision_cameras_still_refuse_non_rigid_poses(dtype):
    pose = orbit(4, dtype=dtype)
    intrinsics = intrinsics_from_fov(18.0, dtype=dtype).expand(4, 3, 3)
    stretched = pose.clone()
    stretched[:, :3, 0] *= 1.1  # a 10% stretch of the x axis is no rounding error
    with pytest.raises(ValueError, match="`cam2world` must hold rigid transforms"):
        Cameras(stretched, intrinsics)


# ---------------------------------------------------------------------- compositing


def volume_inputs(dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    sigmas = torch.rand(3, 64, 24, generator=generator) * 4
    features = torch.rand(3, 64, 24, 16, generator=generator)
    edges = torch.linspace(2.25, 3.3, 25).expand(3, 64, 25)
    background = torch.rand(3, 64, 16, generator=generator)
    return [x.to(dtype) for x in (sigmas, features, edges, background)]


def test_composite_volume_turns_autocast_off():
    inputs = volume_inputs()
    reference = composite_volume(*inputs)
    with autocast():
        out = composite_volume(*inputs)
        weights = volume_weights(inputs[0], inputs[2])
    assert out.image.dtype == out.weights.dtype == weights.weights.dtype == torch.float32
    # the same float32 computation: a bfloat16 einsum moved the image by 2e-3
    torch.testing.assert_close(out.image, reference.image, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(weights.weights, reference.weights, atol=1e-6, rtol=1e-6)


def test_compositing_accepts_mixed_dtypes_under_autocast_only():
    sigmas, features, edges, background = volume_inputs()
    reference = composite_volume(sigmas, features, edges, background)
    with autocast():  # e.g. features from a bfloat16 matrix product beside float32 distances
        out = composite_volume(sigmas, features.to(BF16), edges, background)
        splat = composite_splat(features[..., 0, :].to(BF16), sigmas[..., :1] / 4, background)
    assert out.image.dtype == splat.image.dtype == torch.float32
    torch.testing.assert_close(out.image, reference.image, atol=1e-2, rtol=0)
    with pytest.raises(ValueError, match="`features` has dtype torch.bfloat16"):
        composite_volume(sigmas, features.to(BF16), edges, background)


@pytest.mark.parametrize("dtype", [torch.float16, BF16])
def test_half_precision_volumes_composite_in_float32(dtype):
    half = volume_inputs(dtype)
    out = composite_volume(*half)
    reference = composite_volume(*(x.float() for x in half))
    assert out.image.dtype == torch.float32
    # the half-precision inputs, composited in float32: exactly the float32 composite
    torch.testing.assert_close(out.image, reference.image, atol=0, rtol=0)
    total = out.weights.sum(-1, keepdim=True) + out.bg_transmittance
    torch.testing.assert_close(total, torch.ones_like(total), atol=1e-6, rtol=0)


def test_volume_sampling_takes_a_fields_autocast_outputs():
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 5)  # under autocast its outputs are bfloat16

    def field(points):
        out = network(points)
        return out[..., 0], torch.sigmoid(out[..., 1:])

    rays = cameras().pixel_rays(4, 4)
    near = torch.full(rays.origins.shape[:-1], 2.25)
    options = {"num_coarse": 8, "num_fine": 8, "deterministic": True}
    reference = sample_coarse_fine(field, *rays, near, near + 1.05, **options)
    with autocast():
        samples = sample_coarse_fine(field, *rays, near, near + 1.05, **options)
        out = composite_volume(
            *midpoint_volume_samples(*samples.merged), torch.zeros(2, 1, 4, 4, 4)
        )
    assert samples.merged.features.dtype == samples.coarse_weights.dtype == torch.float32
    assert out.image.dtype == torch.float32
    # the fine samples follow the coarse weights of bfloat16 densities: measured 6.7e-5 in t
    # (on [2.25, 3.3])
    torch.testing.assert_close(samples.merged.t, reference.merged.t, atol=1e-3, rtol=0)


# ---------------------------------------------------------------------- EMA


def test_update_ema_of_a_bfloat16_model_into_a_float32_average():
    linear, norm = torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)
    model = torch.nn.Sequential(linear, norm)
    ema = make_ema(model)
    ema_linear, ema_norm = ema[0], ema[1]
    assert isinstance(ema_linear, torch.nn.Linear) and isinstance(ema_norm, torch.nn.BatchNorm1d)
    before = ema_linear.weight.clone()
    model.to(BF16)
    variance, ema_variance = norm.running_var, ema_norm.running_var
    assert variance is not None and ema_variance is not None
    variance.fill_(2.0)
    update_ema(ema, model, 0.75)
    assert ema_linear.weight.dtype == ema_variance.dtype == torch.float32
    # one float32 step towards the bfloat16 weights (exact up to float32 rounding)
    expected = 0.75 * before + 0.25 * linear.weight.float()
    torch.testing.assert_close(ema_linear.weight, expected, atol=1e-7, rtol=0)
    assert torch.equal(ema_variance, torch.full((4,), 2.0))  # buffers are copied
