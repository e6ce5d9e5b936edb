"""Tests of ``rasterize``: torch backend vs the brute-force oracle, gradients, batching, edges."""

import subprocess
import sys
import textwrap

import jaxtyping
import pytest
import torch

from splat_reference import random_cameras, random_gaussians, reference_rasterize


def _render(gaussians, cameras, width, height, **kwargs):
    from aware3d.functional.splat import rasterize

    return rasterize(gaussians, cameras, width, height, **kwargs)


def _reference(gaussians, cameras, width, height, backgrounds=None, **kwargs):
    return reference_rasterize(
        gaussians.means,
        gaussians.quats,
        gaussians.scales,
        gaussians.opacities,
        gaussians.features,
        cameras.viewmats(),
        cameras.Ks(width, height),
        width,
        height,
        backgrounds,
        **kwargs,
    )


def _with(gaussians, **changes):
    from aware3d.gaussians import Gaussians

    fields = {
        "means": gaussians.means,
        "quats": gaussians.quats,
        "scales": gaussians.scales,
        "opacities": gaussians.opacities,
        "features": gaussians.features,
    }
    fields.update(changes)
    return Gaussians(**fields)


# ----------------------------------------------------------------------------- forward vs oracle


@pytest.mark.parametrize("channels", [1, 3, 32])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_backend_matches_brute_force(channels, dtype, generator):
    cameras = random_cameras(2, 3, generator, dtype)
    gaussians = random_gaussians(2, 48, channels, generator, dtype, far=10)
    backgrounds = torch.rand(2, 3, channels, generator=generator, dtype=dtype)
    width, height = 37, 21  # not multiples of the 16-pixel tile
    out = _render(
        gaussians,
        cameras,
        width,
        height,
        backgrounds=backgrounds,
        depth_moments=True,
        backend="torch",
    )
    ref = _reference(gaussians, cameras, width, height, backgrounds)
    assert out.features.shape == (2, 3, height, width, channels)
    for name in ("alpha", "depth", "moment1", "moment2"):
        assert getattr(out, name).shape == (2, 3, height, width, 1)
    assert float(ref[1].amax()) > 0.9, "scene should have opaque overlaps"
    assert float((ref[1] == 0).float().mean()) > 0.05, "scene should have empty pixels"
    # Two code paths: tiles, blocks and a segmented log-space transmittance against per-Gaussian
    # compositing. Each alpha = o exp(-q) carries a few eps of the terms of q = d^T Sigma^-1 d / 2
    # (which can exceed q when the footprint is elongated), and up to 48 transmittance factors
    # compound per pixel: ~100 eps at worst for values <= 1. float32: allow 5e-5 (420 eps);
    # measured at most 21 eps (30 scenes x 3 channel counts x 3 numerics configurations), and
    # no fragment of this scene is within 1e-3 (relative) of the 1/255 alpha cut-off, so rounding
    # cannot flip one. float64: measured at most 80 eps (2e-14); allow 1e-10. A cut-off, order
    # or transmittance bug is off by at least alpha T >= T / 255.
    tol = 5e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(out.features, ref[0], atol=tol, rtol=0)
    torch.testing.assert_close(out.alpha, ref[1], atol=tol, rtol=0)
    for got, want in zip((out.depth, out.moment1, out.moment2), ref[2:], strict=True):
        torch.testing.assert_close(got, want, atol=tol * float(want.abs().amax()), rtol=0)


def test_behind_camera_and_off_screen_gaussians_are_culled(generator):
    cameras = random_cameras(1, 1, generator)
    gaussians = random_gaussians(1, 6, 3, generator)
    c2w = cameras.cam2world[0, 0]
    forward, right, centre = c2w[:3, 2], c2w[:3, 0], c2w[:3, 3]
    means = torch.stack(
        [
            centre - 1.0 * forward,  # behind the camera
            centre + 0.005 * forward,  # in front, but nearer than near_plane
            centre + 2.7 * forward + 50.0 * right,  # far off screen
            centre + 1e12 * forward,  # beyond far_plane
            centre + 2.7 * forward,  # visible
            centre + 2.7 * forward,  # coincident with the previous one
        ]
    )[None]
    gaussians = _with(gaussians, means=means)
    out = _render(gaussians, cameras, 32, 32, depth_moments=True, backend="torch")
    ref = _reference(gaussians, cameras, 32, 32)
    torch.testing.assert_close(out.features, ref[0], atol=1e-10, rtol=0)
    only_visible = _with(
        gaussians, opacities=gaussians.opacities * torch.tensor([0, 0, 0, 0, 1, 1.0])
    )
    torch.testing.assert_close(
        _render(only_visible, cameras, 32, 32, backend="torch").features, out.features
    )


# ----------------------------------------------------------------------------- gradients

# One float64 scene rendered with other chunk or block layouts. The torch backend takes each
# log transmittance as the difference of two values of one cumulative sum of log(1 - alpha)
# over a whole chunk of pairs (every tile in the chunk), so T carries a few ulps of that
# chunk-wide sum, which changes with the layout: up to ~4500 in these scenes, i.e. relative
# errors up to ~2e-12. Measured over 12 scenes: images off by at most 2e-12 (values up to 40),
# gradients by 7e-11 (values up to 2400). These tolerances leave about 100x over that and lie
# ~1e8 below any compositing error.
LAYOUT_IMAGE_TOL = {"atol": 1e-10, "rtol": 1e-10}
LAYOUT_GRAD_TOL = {"atol": 1e-10, "rtol": 1e-8}


def _loss_weights(out, generator):
    return [torch.rand(t.shape, generator=generator, dtype=t.dtype) for t in out if t is not None]


def _weighted(out, weights):
    tensors = [t for t in out if t is not None]
    return torch.stack([(t * w).sum() for t, w in zip(tensors, weights, strict=True)]).sum()


def test_gradients_match_brute_force(generator):
    cameras = random_cameras(2, 2, generator)
    gaussians = random_gaussians(2, 40, 3, generator, far=6)
    backgrounds = torch.rand(2, 2, 3, generator=generator, dtype=torch.float64)
    leaves = [
        t.clone().requires_grad_()
        for t in (
            gaussians.means,
            gaussians.quats,
            gaussians.scales,
            gaussians.opacities,
            gaussians.features,
            backgrounds,
        )
    ]
    from aware3d.gaussians import Gaussians

    g = Gaussians(*leaves[:5])
    out = _render(g, cameras, 35, 20, backgrounds=leaves[5], depth_moments=True, backend="torch")
    weights = _loss_weights(out, generator)
    got = torch.autograd.grad(_weighted(out, weights), leaves)
    ref = _reference(g, cameras, 35, 20, leaves[5])
    want = torch.autograd.grad(_weighted(ref, weights), leaves)
    for a, b in zip(got, want, strict=True):
        assert float(b.norm()) > 0
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


def test_gradcheck_every_input(generator):
    from aware3d.functional.splat import rasterize
    from aware3d.gaussians import Gaussians

    cameras = random_cameras(1, 2, generator, focal=0.6)
    base = random_gaussians(1, 4, 2, generator, scale=(0.15, 0.3), spread=0.5)
    backgrounds = torch.rand(1, 2, 2, generator=generator, dtype=torch.float64)
    inputs = tuple(
        t.clone().requires_grad_()
        for t in (
            base.means,
            base.quats,
            base.scales,
            base.opacities * 0.8,
            base.features,
            backgrounds,
        )
    )

    def fn(means, quats, scales, opacities, features, bg):
        out = rasterize(
            Gaussians(means, quats, scales, opacities, features),
            cameras,
            20,
            12,
            backgrounds=bg,
            depth_moments=True,
            backend="torch",
        )
        return tuple(t for t in out if t is not None)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_tiles_split_across_chunks_give_the_same_result(generator, monkeypatch):
    from aware3d.functional import _splat_raster

    cameras = random_cameras(2, 2, generator)
    gaussians = random_gaussians(2, 50, 3, generator)
    leaves = [t.clone().requires_grad_() for t in (gaussians.means, gaussians.opacities)]
    g = _with(gaussians, means=leaves[0], opacities=leaves[1])

    def run():
        out = _render(g, cameras, 40, 24, depth_moments=True, backend="torch")
        weights = _loss_weights(out, torch.Generator().manual_seed(5))
        return out, torch.autograd.grad(_weighted(out, weights), leaves)

    big_out, big_grads = run()
    monkeypatch.setattr(_splat_raster, "_CHUNK_ELEMENTS", 16 * 6 * 61)  # 61 pairs per chunk
    small_out, small_grads = run()
    for a, b in zip(small_out, big_out, strict=True):
        torch.testing.assert_close(a, b, **LAYOUT_IMAGE_TOL)
    for a, b in zip(small_grads, big_grads, strict=True):
        torch.testing.assert_close(a, b, **LAYOUT_GRAD_TOL)


def test_block_size_does_not_change_images_or_gradients(generator, monkeypatch):
    # The torch backend cuts footprint boxes into 4x4 blocks; gsplat's 16x16 tiles give the same
    # result because every pixel outside the footprint box has alpha < 1/255.
    from aware3d.functional import splat

    cameras = random_cameras(2, 2, generator)
    gaussians = random_gaussians(2, 40, 3, generator, far=5)
    leaves = [t.clone().requires_grad_() for t in (gaussians.means, gaussians.scales)]
    g = _with(gaussians, means=leaves[0], scales=leaves[1])

    def run():
        out = _render(g, cameras, 37, 29, depth_moments=True, backend="torch")
        weights = _loss_weights(out, torch.Generator().manual_seed(3))
        return out, torch.autograd.grad(_weighted(out, weights), leaves)

    results = {}
    for tile in (16, 4, 1):
        monkeypatch.setattr(splat, "TILE_SIZE", tile)
        results[tile] = run()
    for tile in (4, 1):
        for a, b in zip(results[tile][0], results[16][0], strict=True):
            torch.testing.assert_close(a, b, **LAYOUT_IMAGE_TOL)
        for a, b in zip(results[tile][1], results[16][1], strict=True):
            torch.testing.assert_close(a, b, **LAYOUT_GRAD_TOL)


def test_autograd_saves_no_tensor_per_pair_and_pixel(generator, monkeypatch):
    from aware3d.functional import splat

    cameras = random_cameras(1, 2, generator, torch.float32)
    gaussians = random_gaussians(1, 400, 3, generator, torch.float32, scale=(0.05, 0.2))
    means = gaussians.means.clone().requires_grad_()
    saved: list[int] = []
    pairs: list[int] = []
    intersect = splat.intersect_tiles

    def recording_intersect(*args):
        result = intersect(*args)
        pairs.append(result.tile_ids.numel())
        return result

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t.numel())
        return t

    monkeypatch.setattr(splat, "intersect_tiles", recording_intersect)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = _render(_with(gaussians, means=means), cameras, 64, 64, backend="torch")
    assert float(out.alpha.detach().mean()) > 0.5
    fragments = pairs[0] * splat.TILE_SIZE**2  # (pair, block pixel) evaluations
    pixels = 2 * 64 * 64
    assert fragments > 20 * pixels
    # Everything autograd keeps (projection, pair list, per-pixel state) is O(pairs + pixels + N).
    assert sum(saved) < 4 * pairs[0] + 40 * pixels + 200 * 400
    assert sum(saved) < fragments / 2


def test_batched_equals_loop_over_scenes(generator):
    from aware3d.gaussians import Gaussians

    cameras = random_cameras(3, 2, generator)
    gaussians = random_gaussians(3, 30, 3, generator, far=4)
    backgrounds = torch.rand(3, 2, 3, generator=generator, dtype=torch.float64)
    tensors = (
        gaussians.means,
        gaussians.quats,
        gaussians.scales,
        gaussians.opacities,
        gaussians.features,
        backgrounds,
    )
    leaves = [t.clone().requires_grad_() for t in tensors]
    out = _render(Gaussians(*leaves[:5]), cameras, 30, 20, backgrounds=leaves[5], backend="torch")
    weights = _loss_weights(out, generator)
    grads = torch.autograd.grad(_weighted(out, weights), leaves)
    for b in range(3):
        scene = [t[b : b + 1].clone().requires_grad_() for t in tensors]
        one = _render(
            Gaussians(*scene[:5]), cameras[b : b + 1], 30, 20, backgrounds=scene[5], backend="torch"
        )
        for got, want in zip(one, out, strict=True):
            if want is not None:
                torch.testing.assert_close(got, want[b : b + 1], atol=1e-12, rtol=0)
        one_weights = [w[b : b + 1] for w in weights]
        one_grads = torch.autograd.grad(_weighted(one, one_weights), scene)
        for got, want in zip(one_grads, grads, strict=True):
            torch.testing.assert_close(got, want[b : b + 1], atol=1e-12, rtol=1e-10)


# ----------------------------------------------------------------------------- degenerate input


def _finite_everything(gaussians, cameras, width=24, height=20, backgrounds=None):
    leaves = [
        t.clone().requires_grad_()
        for t in (
            gaussians.means,
            gaussians.quats,
            gaussians.scales,
            gaussians.opacities,
            gaussians.features,
        )
    ]
    from aware3d.gaussians import Gaussians

    out = _render(
        Gaussians(*leaves),
        cameras,
        width,
        height,
        backgrounds=backgrounds,
        depth_moments=True,
        backend="torch",
    )
    loss = torch.stack([t.sum() for t in out if t is not None]).sum()
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    for t in out:
        assert t is None or bool(torch.isfinite(t).all())
    for g in grads:
        assert g is None or bool(torch.isfinite(g).all())
    return out, grads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_inputs_give_finite_outputs_and_gradients(dtype, generator):
    cameras = random_cameras(1, 2, generator, dtype)
    base = random_gaussians(1, 8, 3, generator, dtype)
    cases = {
        "zero_opacity": _with(base, opacities=torch.zeros_like(base.opacities)),
        "tiny_scales": _with(base, scales=torch.full_like(base.scales, 1e-8)),
        "huge_scales": _with(base, scales=torch.full_like(base.scales, 1e3)),
        "flat": _with(base, scales=base.scales * torch.tensor([1.0, 1.0, 1e-9], dtype=dtype)),
        "coincident": _with(base, means=base.means[:, :1].expand_as(base.means).clone()),
        "behind": _with(base, means=cameras.centers[:, :1] - 0.5 * base.means.abs() - 0.01),
        "at_camera": _with(base, means=cameras.centers[:, :1].expand_as(base.means).clone()),
        "off_screen": _with(base, means=base.means + 100.0),
        "opaque": _with(base, opacities=torch.ones_like(base.opacities)),
    }
    for name, gaussians in cases.items():
        out, _ = _finite_everything(gaussians, cameras)
        assert bool((out.alpha >= 0).all() and (out.alpha <= 1 + 1e-6).all()), name


def test_zero_opacity_shows_the_background(generator):
    cameras = random_cameras(2, 2, generator)
    gaussians = random_gaussians(2, 10, 3, generator)
    gaussians = _with(gaussians, opacities=torch.zeros_like(gaussians.opacities))
    backgrounds = torch.rand(2, 2, 3, generator=generator, dtype=torch.float64)
    out, _ = _finite_everything(gaussians, cameras, backgrounds=backgrounds)
    torch.testing.assert_close(out.features, backgrounds[:, :, None, None].expand_as(out.features))
    assert bool((out.alpha == 0).all() and (out.depth == 0).all())


def test_unnormalised_quaternions_mean_their_normalised_rotation(generator):
    cameras = random_cameras(1, 2, generator)
    gaussians = random_gaussians(1, 20, 3, generator)
    unit = gaussians.quats / gaussians.quats.norm(dim=-1, keepdim=True)
    factors = torch.logspace(-3, 3, 20, dtype=torch.float64)[None, :, None]
    a = _render(_with(gaussians, quats=unit), cameras, 24, 24, backend="torch")
    b = _render(_with(gaussians, quats=unit * factors), cameras, 24, 24, backend="torch")
    torch.testing.assert_close(a.features, b.features, atol=1e-12, rtol=0)


def test_empty_and_single_pixel_images(generator):
    cameras = random_cameras(1, 1, generator)
    gaussians = random_gaussians(1, 5, 2, generator)
    out = _render(gaussians, cameras, 1, 1, backend="torch")
    assert out.features.shape == (1, 1, 1, 1, 2)
    nothing = _with(gaussians, means=gaussians.means + 1e3)
    out, grads = _finite_everything(nothing, cameras)
    assert bool((out.alpha == 0).all())
    assert all(g is None or float(g.abs().sum()) == 0 for g in grads)


def test_depth_is_the_expected_camera_depth_of_a_single_gaussian(generator):
    cameras = random_cameras(1, 1, generator)
    gaussians = random_gaussians(1, 1, 1, generator)
    c2w = cameras.cam2world[0, 0]
    gaussians = _with(gaussians, means=(c2w[:3, 3] + 2.0 * c2w[:3, 2])[None, None])
    out = _render(gaussians, cameras, 16, 16, depth_moments=True, backend="torch")
    covered = out.alpha > 0
    assert out.moment2 is not None
    torch.testing.assert_close(out.depth[covered], torch.full_like(out.depth[covered], 2.0))
    torch.testing.assert_close(out.moment2[covered], 4.0 * out.alpha[covered])


# ----------------------------------------------------------------------------- bad input


@pytest.mark.usefixtures("without_shape_checker")
def test_bad_input_raises_value_errors_naming_the_argument(generator):
    cameras = random_cameras(2, 2, generator)
    gaussians = random_gaussians(2, 5, 3, generator)
    cases = [
        ("cameras", {"cameras": cameras.reshape(4)}),
        ("cameras", {"cameras": random_cameras(3, 2, generator)}),
        ("width", {"width": 0}),
        ("height", {"height": -3}),
        ("backgrounds", {"backgrounds": torch.zeros(2, 2, 4, dtype=torch.float64)}),
        ("backgrounds", {"backgrounds": torch.zeros(3, 2, 3, dtype=torch.float64)}),
        ("near_plane", {"near_plane": -1.0}),
        ("far_plane", {"far_plane": 0.0}),
        ("eps2d", {"eps2d": float("nan")}),
        ("backend", {"backend": "cuda"}),
        ("gsplat", {"backend": "gsplat"}),
    ]
    for name, change in cases:
        kwargs = {"cameras": cameras, "width": 16, "height": 16, **change}
        with pytest.raises(ValueError, match=name):
            _render(gaussians, **kwargs)


def test_checker_rejects_wrong_background_rank(generator):
    cameras = random_cameras(1, 1, generator)
    gaussians = random_gaussians(1, 3, 3, generator)
    with pytest.raises(jaxtyping.TypeCheckError):
        _render(gaussians, cameras, 8, 8, backgrounds=torch.zeros(1, 3, dtype=torch.float64))


def test_cpu_rendering_never_imports_gsplat():
    code = textwrap.dedent(
        """
        import sys
        import torch
        from aware3d.cameras import Cameras, look_at
        from aware3d.functional.splat import rasterize
        from aware3d.gaussians import Gaussians
        c2w = look_at(torch.tensor([[[0.0, 0.0, 3.0]]]), [0.0, 0.0, 0.0])
        intr = torch.tensor([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]]).expand(1, 1, 3, 3)
        g = Gaussians(torch.zeros(1, 2, 3), torch.ones(1, 2, 4), torch.ones(1, 2, 3) * 0.1,
                      torch.ones(1, 2) * 0.5, torch.ones(1, 2, 3))
        for backend in ("auto", "torch"):
            out = rasterize(g, Cameras(c2w, intr.clone()), 16, 16, backend=backend)
            assert float(out.alpha.max()) > 0
        assert "gsplat" not in sys.modules, sorted(m for m in sys.modules if "gsplat" in m)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


# ----------------------------------------------------------------------------- GPU (gsplat)


def _gpu_scene(batch, cams, count, channels, seed=0):
    generator = torch.Generator().manual_seed(seed)
    cameras = random_cameras(batch, cams, generator, torch.float32)
    gaussians = random_gaussians(batch, count, channels, generator, torch.float32, far=count // 8)
    return gaussians.to("cuda"), cameras.to("cuda")


def _grads(gaussians, cameras, backend, weights=None, backgrounds=None):
    from aware3d.gaussians import Gaussians

    leaves = [
        t.clone().requires_grad_()
        for t in (
            gaussians.means,
            gaussians.quats,
            gaussians.scales,
            gaussians.opacities,
            gaussians.features,
        )
    ]
    out = _render(
        Gaussians(*leaves),
        cameras,
        64,
        48,
        backgrounds=backgrounds,
        backend=backend,
        depth_moments=True,
    )
    if weights is None:
        weights = [torch.rand_like(t) for t in out if t is not None]
    grads = torch.autograd.grad(_weighted(out, weights), leaves)
    return out, grads, weights


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gsplat_matches_torch_backend():
    gaussians, cameras = _gpu_scene(2, 2, 256, 3)
    backgrounds = torch.rand(2, 2, 3, device="cuda")
    out_g, grads_g, weights = _grads(gaussians, cameras, "gsplat", backgrounds=backgrounds)
    out_t, grads_t, _ = _grads(gaussians, cameras, "torch", weights, backgrounds=backgrounds)
    torch.testing.assert_close(out_g.features, out_t.features, atol=1e-4, rtol=0)
    torch.testing.assert_close(out_g.alpha, out_t.alpha, atol=1e-4, rtol=0)
    for name, a, b in zip(
        ("means", "quats", "scales", "opacities", "features"), grads_g, grads_t, strict=True
    ):
        rel = float((a - b).norm() / b.norm().clamp(min=1e-12))
        assert rel < 1e-3, f"{name}: relative L2 {rel:.3g}"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gsplat_batched_equals_loop():
    gaussians, cameras = _gpu_scene(3, 2, 128, 4, seed=1)
    out, grads, weights = _grads(gaussians, cameras, "gsplat")
    for b in range(3):
        one, one_grads, _ = _grads(
            gaussians[b : b + 1], cameras[b : b + 1], "gsplat", [w[b : b + 1] for w in weights]
        )
        torch.testing.assert_close(one.features, out.features[b : b + 1], atol=1e-5, rtol=0)
        torch.testing.assert_close(one.alpha, out.alpha[b : b + 1], atol=1e-5, rtol=0)
        for a, g in zip(one_grads, grads, strict=True):
            rel = float((a - g[b : b + 1]).norm() / g[b : b + 1].norm().clamp(min=1e-12))
            assert rel < 1e-4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_backend_on_cuda_picks_gsplat_and_agrees():
    gaussians, cameras = _gpu_scene(1, 2, 64, 3, seed=2)
    auto = _render(gaussians, cameras, 32, 32, backend="auto")
    torch_out = _render(gaussians, cameras, 32, 32, backend="torch")
    torch.testing.assert_close(auto.features, torch_out.features, atol=1e-4, rtol=0)
    assert "gsplat" in sys.modules


def test_dense_brute_force_equals_the_loop_oracle(generator):
    from splat_reference import reference_rasterize_dense

    cameras = random_cameras(2, 2, generator)
    gaussians = random_gaussians(2, 30, 3, generator, far=4)
    args = (gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities)
    dense = reference_rasterize_dense(
        *args,
        gaussians.features,
        cameras.viewmats(),
        cameras.Ks(20, 18),
        20,
        18,
        pixel_chunk_elements=1000,
    )
    loop = _reference(gaussians, cameras, 20, 18)
    torch.testing.assert_close(dense[..., :3], loop[0], atol=1e-12, rtol=0)
    torch.testing.assert_close(dense[..., 3:], loop[1], atol=1e-12, rtol=0)
