"""No silent wrong results: NaN, empty inputs, out-of-range values, dtypes, memory, meta tensors.

Each test is one case that used to give a silent wrong result or a crash deep inside torch.
"""

import math
import os
import subprocess
import sys

import pytest
import torch

import aware3d
from aware3d import Cameras, Gaussians, intrinsics_from_fov, orbit


def cameras(batch=1, count=2, dtype=torch.float32):
    return Cameras(
        orbit(count, dtype=dtype)[None].expand(batch, count, 4, 4).contiguous(),
        intrinsics_from_fov(13.4, dtype=dtype).expand(batch, count, 3, 3).contiguous(),
    )


def gaussians(batch=1, count=64, dtype=torch.float32, sigma=0.05):
    g = torch.Generator().manual_seed(0)
    quats = torch.zeros(batch, count, 4, dtype=dtype)
    quats[..., 0] = 1
    return Gaussians(
        (torch.randn(batch, count, 3, generator=g) * 0.15).to(dtype),
        quats,
        torch.full((batch, count, 3), sigma, dtype=dtype),
        torch.full((batch, count), 0.7, dtype=dtype),
        torch.rand(batch, count, 3, generator=g).to(dtype),
    )


# ---------------------------------------------------------------------- NaN never hides


def test_nan_in_ws_is_refused_and_visible_when_checks_are_off():
    decoder = aware3d.nn.small_decoder(16, num_levels=2)
    ws = torch.randn(1, decoder.num_ws, 16)
    ws[0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="`ws` must be finite"):
        decoder(ws)
    with aware3d.value_checks(False):
        image = aware3d.rasterize(decoder(ws), cameras(), 16, 16).features
    assert torch.isnan(image).all()  # before: every Gaussian NaN, culled, a blank finite image


def test_a_nan_gaussian_poisons_only_its_scene():
    g = gaussians(batch=2)
    means = g.means.clone()
    means[1, 5, 0] = math.nan
    with pytest.raises(ValueError, match="`means` must be finite"):
        Gaussians(means, g.quats, g.scales, g.opacities, g.features)
    with aware3d.value_checks(False):
        bad = Gaussians(means, g.quats, g.scales, g.opacities, g.features)
        out = aware3d.rasterize(bad, cameras(batch=2), 16, 16, depth_moments=True)
    assert torch.isfinite(out.features[0]).all() and torch.isfinite(out.alpha[0]).all()
    for image in (out.features[1], out.alpha[1], out.depth[1], out.moment2[1]):
        assert torch.isnan(image).all()


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda nan: aware3d.rasterize(gaussians(), cameras(), 8, 8, backgrounds=nan((1, 2, 3))),
         "backgrounds"),
        (lambda nan: aware3d.composite_splat(nan((4, 3)), torch.full((4, 1), 0.5),
                                             torch.rand(4, 3)), "features"),
        (lambda nan: aware3d.composite_splat(torch.rand(4, 3), torch.full((4, 1), 0.5),
                                             nan((4, 3))), "bg_features"),
        (lambda nan: aware3d.separation_loss(nan((4,))), "bg_transmittance"),
        (lambda nan: aware3d.splat_distortion_loss(nan((4, 1)), torch.ones(4, 1),
                                                   torch.ones(4, 1)), "alpha"),
        (lambda nan: aware3d.distortion_loss(nan((2, 3)), torch.rand(2, 4).sort(-1).values),
         "weights"),
        (lambda nan: aware3d.nn.MappingNetwork(4, 8, 2, num_layers=1)(nan((2, 4))), "z"),
        (lambda nan: aware3d.nn.SphericalBackground(8).panorama(nan((1, 8)), 8, 4), "w"),
    ],
)  # fmt: skip
def test_nan_inputs_are_refused_where_they_enter(call, name):
    def nan(shape):
        return torch.full(shape, math.nan)

    with pytest.raises(ValueError, match=f"`{name}` must be finite"):
        call(nan)


def test_psi_must_be_a_finite_number():
    mapping = aware3d.nn.MappingNetwork(4, 8, 2, num_layers=1)
    with pytest.raises(ValueError, match="`psi` must be a finite number"):
        mapping(torch.randn(2, 4), psi=math.nan)


def test_w_avg_is_never_updated_from_a_bad_batch():
    mapping = aware3d.nn.MappingNetwork(4, 8, 2, num_layers=1).train()
    mapping(torch.randn(16, 4))
    before = mapping.w_avg.clone()
    assert torch.isfinite(before).all() and before.abs().sum() > 0
    with aware3d.value_checks(False):
        mapping(torch.full((2, 4), math.nan))  # a NaN batch
    mapping(torch.zeros(0, 4))  # an empty batch
    assert torch.equal(mapping.w_avg, before)
    mapping(torch.randn(16, 4))  # a good batch still updates it
    assert not torch.equal(mapping.w_avg, before) and torch.isfinite(mapping.w_avg).all()


# ---------------------------------------------------------------------- empty inputs


def test_empty_inputs_have_defined_results():
    empty = torch.zeros(0)
    # a sum over nothing is 0, "none" is empty, a mean over nothing is an error naming the input
    assert aware3d.separation_loss(empty, reduction="sum").item() == 0.0
    assert aware3d.separation_loss(empty, reduction="none").shape == (0,)
    with pytest.raises(ValueError, match="`bg_transmittance` holds zero rays"):
        aware3d.separation_loss(empty)
    no_rays_w, no_rays_t = torch.zeros(0, 4), torch.zeros(0, 5)
    assert aware3d.distortion_loss(no_rays_w, no_rays_t, reduction="sum").item() == 0.0
    with pytest.raises(ValueError, match="`weights` holds zero rays"):
        aware3d.distortion_loss(no_rays_w, no_rays_t)
    no_pixels = torch.zeros(0, 1)
    with pytest.raises(ValueError, match="`alpha` holds zero pixels"):
        aware3d.splat_distortion_loss(no_pixels, no_pixels, no_pixels)
    packed = aware3d.functional.distortion_loss_packed
    assert packed(empty, empty, empty, torch.zeros(0, dtype=torch.long), 3, reduction="sum") == 0
    with pytest.raises(ValueError, match="`num_rays` holds zero rays"):
        packed(empty, empty, empty, torch.zeros(0, dtype=torch.long), 0)
    from aware3d.training import discriminator_loss, generator_loss, sliced_wasserstein_distance

    with pytest.raises(ValueError, match="`fake_logits` is empty"):
        generator_loss(empty)
    with pytest.raises(ValueError, match="`real_logits` is empty"):
        discriminator_loss(empty, torch.ones(2))
    with pytest.raises(ValueError, match="at least one image"):
        sliced_wasserstein_distance(torch.zeros(0, 16, 16, 3), torch.zeros(0, 16, 16, 3))


def test_no_samples_means_the_background_takes_all_the_light():
    weights = aware3d.volume_weights(torch.zeros(3, 0), torch.ones(3, 1))
    assert weights.weights.shape == (3, 0)
    assert torch.equal(weights.bg_transmittance, torch.ones(3))
    background = torch.rand(3, 2)
    out = aware3d.composite_volume(
        torch.zeros(3, 0), torch.zeros(3, 0, 2), torch.ones(3, 1), background
    )
    assert torch.equal(out.image, background)


def test_empty_batches_through_modules():
    from aware3d.training import CameraConditionedDiscriminator

    layer = aware3d.nn.ModulatedLinear(4, 5, 6)
    assert layer(torch.zeros(0, 4), torch.zeros(0, 6)).shape == (0, 5)
    disc = CameraConditionedDiscriminator(16, channel_max=16)
    assert disc(torch.zeros(0, 16, 16, 3), torch.zeros(0, 25)).shape == (0,)


# ---------------------------------------------------------------------- out-of-range values


def test_out_of_range_values_are_refused():
    with pytest.raises(ValueError, match=r"`bg_transmittance` must lie in \[0, 1\]"):
        aware3d.separation_loss(torch.tensor([7.0]))  # returned -6
    a = torch.full((4, 1), 5.0)
    with pytest.raises(ValueError, match=r"`alpha` must lie in \[0, 1\]"):
        aware3d.splat_distortion_loss(a, a, a)  # returned 46
    out = aware3d.rasterize(gaussians(), cameras(), 8, 8, depth_moments=True)
    with pytest.raises(ValueError, match='space="metric"'):
        aware3d.DistortionLoss(space="linear", near=0.1, far=10.0)(out)  # ignored `space`


@pytest.mark.usefixtures("without_shape_checker")
def test_bools_are_not_strings_or_numbers(tmp_path):
    from aware3d.data import EG3DDataset, SyntheticScenes

    path = SyntheticScenes(num_scenes=1, views_per_scene=1, resolution=16).export_eg3d(
        tmp_path / "d"
    )
    with pytest.raises(TypeError, match="`xflip` must be a bool"):
        EG3DDataset(path, xflip="no")  # pyright: ignore[reportArgumentType]
    with pytest.raises(TypeError, match="`scene` must be an integer"):
        gaussians().save_ply(tmp_path / "x.ply", scene=True)


# ---------------------------------------------------------------------- dtypes


def test_integer_dtypes_are_refused():
    with pytest.raises(TypeError, match="`dtype` must be a floating-point torch.dtype"):
        intrinsics_from_fov(13.37, dtype=torch.int64)  # focal 4 and principal point 0
    with pytest.raises(TypeError, match="`dtype` must be a floating-point torch.dtype"):
        orbit(8, dtype=torch.int64)  # angles cut to integers
    with pytest.raises(TypeError, match="`dtype` must be a floating-point torch.dtype"):
        cameras().to(torch.int32)  # principal point 0
    with pytest.raises(TypeError, match="`dtype` must be a floating-point torch.dtype"):
        gaussians().to(torch.int64)


def test_half_precision_renders_like_float32():
    # before: a sigma = 0.5 px Gaussian rendered alpha 0.80 instead of 0.70 in float16
    reference = aware3d.rasterize(gaussians(), cameras(), 32, 32)
    for dtype in (torch.float16, torch.bfloat16):
        half = aware3d.rasterize(gaussians().to(dtype), cameras(), 32, 32)
        assert half.alpha.dtype == torch.float32
        # inputs rounded to 8 or 11 bits, then rendered in float32: differences of the inputs'
        # rounding only (bfloat16: 2^-8 relative), never of half-precision blending
        tolerance = 2e-2 if dtype == torch.bfloat16 else 3e-3
        torch.testing.assert_close(half.alpha, reference.alpha, atol=tolerance, rtol=0)


def test_autocast_does_not_lower_the_rendering_precision():
    reference = aware3d.rasterize(gaussians(), cameras(), 32, 32, depth_moments=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = aware3d.rasterize(gaussians(), cameras(), 32, 32, depth_moments=True)
    assert out.features.dtype == torch.float32
    # the same float32 computation: only summation order may differ
    torch.testing.assert_close(out.features, reference.features, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.moment2, reference.moment2, atol=1e-5, rtol=1e-5)


def test_float64_is_kept():
    out = aware3d.rasterize(gaussians(dtype=torch.float64), cameras(dtype=torch.float64), 8, 8)
    assert out.features.dtype == torch.float64


def test_module_dtype_mismatches_are_refused_at_the_boundary():
    decoder = aware3d.nn.small_decoder(16, num_levels=2)
    with pytest.raises(ValueError, match="`ws` has dtype torch.float64 but"):
        decoder(torch.randn(1, decoder.num_ws, 16, dtype=torch.float64))
    mapping = aware3d.nn.MappingNetwork(4, 8, 2, num_layers=1)
    with pytest.raises(ValueError, match="`z` has dtype torch.float16 but"):
        mapping(torch.randn(2, 4).half())
    background = aware3d.nn.SphericalBackground(8)
    with pytest.raises(ValueError, match="`w` has dtype torch.float64 but"):
        background.render(cameras(), 4, 4, torch.randn(1, 8, dtype=torch.float64))


# ---------------------------------------------------------------------- sizes that cannot fit


@pytest.mark.slow
def test_impossible_sizes_are_refused_with_the_estimate_and_the_limit():
    with pytest.raises(MemoryError, match=r"needs about .* GiB but only .* GiB is available"):
        aware3d.rasterize(gaussians(), cameras(), 100_000, 100_000)  # ~1.3 TB of images
    with pytest.raises(MemoryError, match=r"178,956,960 Gaussians .* needs about"):
        aware3d.nn.small_decoder(16, num_levels=12)


def test_the_limit_is_the_memory_available(monkeypatch):
    from aware3d import _validation

    monkeypatch.setattr(_validation, "_available_bytes", lambda device: 300 * 2**20)
    aware3d.rasterize(gaussians(), cameras(), 64, 64)  # small: far below any limit
    with pytest.raises(MemoryError, match=r"0.293 GiB is available on cpu"):
        aware3d.rasterize(gaussians(), cameras(count=8), 2048, 2048)


# ---------------------------------------------------------------------- meta tensors


def test_meta_tensors_infer_shapes_or_are_refused():
    sigmas = torch.zeros(4, 6, device="meta")
    out = aware3d.composite_volume(
        sigmas, torch.zeros(4, 6, 3, device="meta"), torch.zeros(4, 7, device="meta"),
        torch.zeros(4, 3, device="meta"),
    )  # fmt: skip
    assert out.image.shape == (4, 3) and out.image.device.type == "meta"
    decoder = aware3d.nn.small_decoder(16, num_levels=2).to("meta")
    assert decoder(torch.zeros(2, decoder.num_ws, 16, device="meta")).means.shape == (2, 160, 3)
    with pytest.raises(ValueError, match="`gaussians` are meta tensors"):
        aware3d.rasterize(gaussians().to("meta"), cameras().to("meta"), 8, 8)


@pytest.mark.slow
def test_the_environment_switch_turns_value_checks_off():
    code = "import aware3d; print(aware3d.value_checks_enabled())"
    for value, expected in (("0", "False"), ("off", "False"), ("1", "True")):
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "AWARE3D_VALUE_CHECKS": value},
        )
        assert result.stdout.strip() == expected


@pytest.mark.usefixtures("without_shape_checker")
def test_value_checks_switch_nests_and_restores():
    assert aware3d.value_checks_enabled()
    with aware3d.value_checks(False):
        assert not aware3d.value_checks_enabled()
        with aware3d.value_checks(True):
            assert aware3d.value_checks_enabled()
        assert not aware3d.value_checks_enabled()
    assert aware3d.value_checks_enabled()
    aware3d.set_value_checks(False)
    try:
        assert not aware3d.value_checks_enabled()
        with pytest.raises(TypeError, match="`enabled` must be a bool"):
            aware3d.set_value_checks("no")  # pyright: ignore[reportArgumentType]
    finally:
        aware3d.set_value_checks(True)
