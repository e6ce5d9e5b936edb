"""Every argument of every public entry point, mutated: a clear error or a valid result.

For each entry point a valid call is built; then each argument in turn is replaced by wrong
values (wrong types, integer or other float dtypes, a dimension dropped or added, a wrong size,
an empty batch, NaN, infinity, negative or zero numbers, bools for numbers or strings for bools,
meta tensors). The call must either work (empty batches and negative features are valid input)
or raise ``ValueError``, ``TypeError``, ``IndexError`` or ``MemoryError`` whose message names an
argument in backticks - never an error from deep inside torch. The checks run as users see them:
with jaxtyping's checker off.
"""

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch

Call = tuple[Callable[..., Any], Callable[[], tuple[list, dict]]]


def _cameras(batch=2, count=2):
    from aware3d import Cameras, intrinsics_from_fov, orbit

    return Cameras(
        orbit(count)[None].expand(batch, count, 4, 4).contiguous(),
        intrinsics_from_fov(13.4).expand(batch, count, 3, 3).contiguous(),
    )


def _gaussians(batch=2, count=32):
    from aware3d import Gaussians

    quats = torch.zeros(batch, count, 4)
    quats[..., 0] = 1
    return Gaussians(
        torch.randn(batch, count, 3, generator=torch.Generator().manual_seed(0)) * 0.1,
        quats,
        torch.full((batch, count, 3), 0.05),
        torch.full((batch, count), 0.5),
        torch.rand(batch, count, 3, generator=torch.Generator().manual_seed(1)),
        torch.arange(count) % 3,
    )


def _entries() -> dict[str, Call]:
    import aware3d
    from aware3d import Cameras, Gaussians, intrinsics_from_fov, nn, orbit
    from aware3d import functional as fn
    from aware3d import training as tr
    from aware3d.viz import hierarchy as views

    torch.manual_seed(0)
    decoder = nn.small_decoder(16, num_levels=2)
    camera_decoder = nn.small_decoder(16, num_levels=2, camera_conditioning=True)
    mapping = nn.MappingNetwork(8, 16, decoder.num_ws, num_layers=2)
    background = nn.SphericalBackground(16, num_layers=1, hidden=16, num_freqs=2)
    disc = tr.CameraConditionedDiscriminator(16, channel_max=16, embed_dim=16)
    contrastive_disc = tr.CameraConditionedDiscriminator(16, channel_max=16, contrastive_dim=8)
    hierarchy = decoder.forward_hierarchy(torch.randn(2, decoder.num_ws, 16))
    splat = fn.rasterize(_gaussians(), _cameras(), 8, 8, depth_moments=True)
    rays = _cameras().pixel_rays(4, 4)
    samples = 5
    sigmas = torch.rand(3, samples)
    edges = torch.linspace(1, 3, samples + 1).expand(3, samples + 1).contiguous()
    images = torch.randn(2, 4, 4, 3, requires_grad=True)
    r1_logits = (images * 2).sum((1, 2, 3))
    triplane_decoder = nn.TriplaneDecoder(4, 3, hidden=8)
    renderer = nn.TriplaneRenderer(triplane_decoder, background, num_coarse=4, num_fine=4)
    triplane = nn.small_triplane(16, resolution=8, plane_channels=4, channel_max=8)
    superresolution = nn.SuperResolution(8, 8, 16, 16, block_channels=(8,))

    def call(function, *args, **kwargs) -> Call:
        return function, lambda: (list(args), dict(kwargs))

    return {
        "Cameras": call(Cameras, orbit(2)[None], intrinsics_from_fov(13.0).expand(1, 2, 3, 3)),
        "Cameras.from_eg3d_labels": call(Cameras.from_eg3d_labels, _cameras().to_eg3d_labels()),
        "Cameras.pixel_rays": call(_cameras().pixel_rays, 4, 4),
        "Cameras.to": call(_cameras().to, torch.float64),
        "Cameras.reshape": call(_cameras().reshape, 4),
        "look_at": call(aware3d.look_at, torch.tensor([[0.0, 0, 2.7]]), (0.0, 0, 0),
                        up=(0, 1.0, 0)),
        "orbit": call(orbit, 4, radius=2.7, vertical=1.5, horizontal_amplitude=0.3,
                      vertical_amplitude=0.1, dtype=torch.float32, lookat=(0, 0, 0.2)),
        "sample_look_at_poses": call(aware3d.sample_look_at_poses, 1.57, 1.57, (0, 0, 0.2), 0.3,
                                     0.1, 2.7, 4, dtype=torch.float32),
        "sample_gaussian_poses": call(aware3d.sample_gaussian_poses, 1.57, 1.57, 0.3, 0.1, 2.7, 4,
                                      dtype=torch.float32),
        "intrinsics_from_fov": call(intrinsics_from_fov, 13.4, 1.0, dtype=torch.float32),
        "eg3d_fov_to_intrinsics": call(aware3d.eg3d_fov_to_intrinsics, 18.837, dtype=torch.float32),
        "fov_from_intrinsics": call(aware3d.fov_from_intrinsics, intrinsics_from_fov(13.0)),
        "Gaussians": call(Gaussians, torch.zeros(1, 4, 3),
                          torch.tensor([1.0, 0, 0, 0]).expand(1, 4, 4).contiguous(),
                          torch.ones(1, 4, 3), torch.full((1, 4), 0.5), torch.rand(1, 4, 3),
                          levels=torch.zeros(4, dtype=torch.long)),
        "Gaussians.select": call(_gaussians().select, levels=[0, 1]),
        "Gaussians.scaled": call(_gaussians().scaled, 0.5),
        "Gaussians.to": call(_gaussians().to, torch.float64),
        "Gaussians.cat": call(Gaussians.cat, [_gaussians(), _gaussians()]),
        "rasterize": call(fn.rasterize, _gaussians(), _cameras(), 8, 8,
                          backgrounds=torch.rand(2, 2, 3), near_plane=0.01, far_plane=100.0,
                          eps2d=0.3, depth_moments=True, backend="torch"),
        "volume_weights": call(fn.volume_weights, sigmas, edges),
        "composite_volume": call(fn.composite_volume, sigmas, torch.rand(3, samples, 3), edges,
                                 torch.rand(3, 3), bg_depth=torch.ones(3, 1)),
        "composite_splat": call(fn.composite_splat, splat.features, splat.alpha,
                                torch.rand(2, 2, 8, 8, 3), depth=splat.depth,
                                bg_depth=torch.ones(2, 2, 8, 8, 1)),
        "separation_loss": call(fn.separation_loss, torch.rand(3, 4), reduction="mean"),
        "distortion_loss": call(fn.distortion_loss, torch.rand(3, samples) / samples, edges,
                                space="linear", near=0.5, far=4.0, reduction="mean"),
        "distortion_loss_packed": call(fn.distortion_loss_packed, torch.rand(6) / 3,
                                       torch.tensor([1.0, 2, 3, 1, 2, 3]),
                                       torch.tensor([2.0, 3, 4, 2, 3, 4]),
                                       torch.tensor([0, 0, 0, 1, 1, 1]), 2, reduction="mean"),
        "splat_distortion_loss": call(fn.splat_distortion_loss, splat.alpha, splat.moment1,
                                      splat.moment2, reduction="mean"),
        "knn_distance_loss": call(fn.knn_distance_loss, torch.rand(2, 6, 3), 3, reduction="mean"),
        "centre_distance_loss": call(fn.centre_distance_loss, torch.rand(2, 6, 3),
                                     reduction="mean"),
        "ray_sphere_exit": call(fn.ray_sphere_exit, rays.origins, rays.directions, 3.0),
        "fourier_features": call(fn.fourier_features, torch.rand(5, 3), 4, include_input=True),
        "densify": call(fn.densify, hierarchy.anchors[0], hierarchy.nodes[1], rho=2.0,
                        pixel_size=0.01, min_log_scale=-8.0),
        "nodes_to_gaussians": call(fn.nodes_to_gaussians, hierarchy.nodes[0]),
        "normalize_quaternion": call(fn.normalize_quaternion, torch.rand(5, 4)),
        "level_sizes": call(fn.level_sizes, 32, 4, 3),
        "descendant_mask": call(fn.descendant_mask, 4, 2, 3, 1),
        "HierarchicalGaussianDecoder": call(nn.HierarchicalGaussianDecoder, 16, 2, num_initial=8,
                                            widths=(16, 16), head_dim=8, depths=(1, 1), knn=3,
                                            grid_size=8, rho=2.0, resolution=32,
                                            level0_max_scale=0.1, box_half_extent=0.5,
                                            camera_conditioning=True, color_activation="sh0"),
        "HierarchicalGaussianDecoder(window)": call(
            nn.HierarchicalGaussianDecoder, 16, 2, num_initial=8, widths=(16, 16), head_dim=8,
            blocks="window", attention_window=4, rho=2.0, resolution=32, initial_radius=0.2),
        "decoder.forward": call(decoder.forward, torch.randn(2, decoder.num_ws, 16)),
        "camera decoder.forward": call(camera_decoder.forward,
                                       torch.randn(2, camera_decoder.num_ws, 16),
                                       torch.tensor([[0.0, 0.0, -1.0], [0.6, 0.0, -0.8]])),
        "MappingNetwork": call(nn.MappingNetwork, 8, 16, 3, c_dim=0, num_layers=2,
                               lr_multiplier=0.01, w_avg_beta=0.99),
        "mapping.forward": call(mapping.forward, torch.randn(3, 8), psi=0.7, cutoff=2,
                                update_w_avg=False),
        "SphericalBackground": call(nn.SphericalBackground, 16, feature_dim=3, radius=3.0,
                                    hidden=16, num_layers=1, num_freqs=2),
        "background.forward": call(background.forward, rays.origins, rays.directions,
                                   torch.randn(2, 16)),
        "background.render": call(background.render, _cameras(), 4, 4, torch.randn(2, 16)),
        "background.panorama": call(background.panorama, torch.randn(2, 16), 4, 8),
        "DistortionLoss": call(nn.DistortionLoss().forward, torch.rand(3, samples) / samples,
                               edges),
        "ModulatedLinear.forward": call(nn.ModulatedLinear(4, 5, 6).forward, torch.randn(2, 4),
                                        torch.randn(2, 6)),
        "EqualizedLinear": call(nn.EqualizedLinear, 4, 5, bias=True, bias_init=0.0,
                                lr_multiplier=1.0, leaky_relu=False),
        "EqualizedConv2d": call(tr.EqualizedConv2d, 3, 4, 3),
        "CameraConditionedDiscriminator": call(tr.CameraConditionedDiscriminator, 16,
                                               image_channels=3, channel_base=256,
                                               channel_max=16, embed_dim=16),
        "discriminator.forward": call(disc.forward, torch.randn(2, 16, 16, 3), torch.randn(2, 25)),
        "CameraConditionedDiscriminator(contrastive)": call(
            tr.CameraConditionedDiscriminator, 16, channel_base=256, channel_max=16,
            embed_dim=16, camera_conditioned=False, contrastive_dim=8),
        "discriminator.forward_contrastive": call(contrastive_disc.forward_contrastive,
                                                  torch.randn(2, 16, 16, 3), torch.randn(2, 25)),
        "camera_contrastive_loss": call(tr.camera_contrastive_loss, torch.randn(4, 8),
                                        torch.randn(4, 8), temperature=0.1),
        "GaussianBackground": call(nn.GaussianBackground, 16, 3, num_points=8, children=2,
                                   radius=3.0, hidden=8, scale_cap=-2.0, split_threshold=0.05,
                                   min_log_scale=-10.0),
        "GaussianBackground.forward": call(nn.GaussianBackground(16, num_points=8, hidden=8),
                                           torch.randn(2, 16)),
        "generator_loss": call(tr.generator_loss, torch.randn(4)),
        "discriminator_loss": call(tr.discriminator_loss, torch.randn(4), torch.randn(4)),
        "r1_penalty": call(tr.r1_penalty, r1_logits, images),
        "lazy_r1_weight": call(tr.lazy_r1_weight, 4, 1.0, 4),
        "ema_beta": call(tr.ema_beta, 8, 500.0),
        "sliced_wasserstein_distance": call(tr.sliced_wasserstein_distance,
                                            torch.rand(4, 16, 16, 3), torch.rand(4, 16, 16, 3),
                                            patches_per_image=8, num_projections=16),
        "sample_triplane": call(fn.sample_triplane, torch.rand(2, 3, 4, 8, 8),
                                torch.rand(2, 5, 3) - 0.5, box_size=1.0, projection="eg3d"),
        "sample_stratified": call(fn.sample_stratified, torch.full((3,), 2.25),
                                  torch.full((3,), 3.3), 6, space="linear", deterministic=False),
        "sample_pdf": call(fn.sample_pdf, edges, sigmas, 7, deterministic=True),
        "sample_importance_eg3d": call(fn.sample_importance_eg3d, edges, sigmas, 4,
                                       deterministic=True),
        "smooth_weights_eg3d": call(fn.smooth_weights_eg3d, sigmas),
        "midpoint_volume_samples": call(fn.midpoint_volume_samples, edges,
                                        torch.randn(3, samples + 1),
                                        torch.rand(3, samples + 1, 2), density_offset=1.0),
        "ray_box_intersection": call(fn.ray_box_intersection, rays.origins, rays.directions, 0.5),
        "ballgan_density_loss": call(fn.ballgan_density_loss, torch.randn(3, samples), edges[:, 1:],
                                     reduction="mean"),
        "TriplaneRenderer": call(nn.TriplaneRenderer, triplane_decoder, background,
                                 box_size=1.0, ray_start=2.25, ray_end=3.3, num_coarse=4,
                                 num_fine=4, projection="eg3d", space="linear",
                                 density_offset=1.0),
        "renderer.forward": call(renderer.forward, torch.randn(2, 3, 4, 8, 8), _cameras(), 4, 4,
                                 torch.randn(2, 16), deterministic=True),
        "TriplaneDecoder.forward": call(triplane_decoder.forward, torch.randn(2, 3, 5, 4)),
        "TriplaneGenerator.forward": call(triplane.forward,
                                          torch.randn(2, triplane.num_ws, 16), noise_mode="const"),
        "SuperResolution.forward": call(superresolution.forward, torch.randn(2, 8, 8, 8),
                                        torch.randn(2, 3, 16)),
        "select_levels": call(views.select_levels, hierarchy, [0]),
        "anchors_as_gaussians": call(views.anchors_as_gaussians, hierarchy, levels=[0],
                                     opacity=0.5),
        "descendants": call(views.descendants, hierarchy, 1, anchors=False),
        "render_levels": call(views.render_levels, hierarchy, _cameras(), 8, 8,
                              backgrounds=torch.rand(2, 2, 3)),
    }  # fmt: skip


def _mutations(value: Any) -> list[tuple[str, Any]]:
    from aware3d import Cameras, Gaussians
    from aware3d.functional import HierarchyNodes

    if isinstance(value, bool):
        return [("'no'", "no"), ("0", 0), ("None", None)]
    if isinstance(value, int):
        return [("0", 0), ("-1", -1), ("1.5", 1.5), ("True", True), ("'2'", "2"), ("nan", math.nan)]
    if isinstance(value, float):
        return [("nan", math.nan), ("inf", math.inf), ("-1", -1.0), ("0", 0.0), ("True", True),
                ("'1'", "1")]  # fmt: skip
    if isinstance(value, str):
        return [("'bogus'", "bogus"), ("1", 1)]
    if isinstance(value, torch.dtype):
        return [("int64", torch.int64), ("'float'", "float")]
    if isinstance(value, torch.Tensor):
        out: list[tuple[str, Any]] = [
            ("list", value.detach().flatten()[:4].tolist()),
            ("None", None),
        ]
        if value.is_floating_point():
            plain = value.detach()
            out += [("long", plain.long()), ("half", plain.half()), ("double", plain.double()),
                    ("nan", plain.clone().fill_(math.nan)), ("inf", plain.clone().fill_(math.inf)),
                    ("negative", -plain - 1)]  # fmt: skip
        if value.ndim:
            out += [("dim dropped", value[0]), ("dim added", value[None]),
                    ("last size + 1", torch.cat([value, value[..., :1]], -1)),
                    ("empty batch", value[:0]), ("meta", value.detach().to("meta"))]  # fmt: skip
        return out
    if isinstance(value, Cameras):
        return [("one scene", value[:1]), ("tensor", value.cam2world), ("None", None),
                ("float64", value.to(torch.float64))]  # fmt: skip
    if isinstance(value, Gaussians):
        return [("one scene", value[:1]), ("tensor", value.means), ("None", None),
                ("float64", value.to(torch.float64))]  # fmt: skip
    if isinstance(value, HierarchyNodes):
        return [("None", None), ("tensor", value.position),
                ("NaN field", value._replace(position=value.position * math.nan)),
                ("field of the wrong shape", value._replace(position=value.position[..., :2])),
                ("integer field",
                 value._replace(opacity_logit=value.opacity_logit.long()))]  # fmt: skip
    if isinstance(value, tuple | list) and value and all(isinstance(v, int | float) for v in value):
        return [("too short", value[:-1]), ("NaN", type(value)([math.nan] * len(value))),
                ("a string", "abc"), ("empty", type(value)())]  # fmt: skip
    if isinstance(value, list):
        return [("empty", []), ("None", None)]
    return [("None", None), ("an int", 3)]


ENTRY_NAMES = list(_entries())


def _names_an_argument(error: BaseException) -> bool:
    return isinstance(error, ValueError | TypeError | IndexError | MemoryError) and bool(
        re.search(r"`[A-Za-z_][\w.\[\]']*`", str(error))
    )


@pytest.mark.usefixtures("without_shape_checker")
@pytest.mark.parametrize("name", ENTRY_NAMES)
def test_every_bad_argument_gets_a_clear_error(name):
    function, make = _entries()[name]
    args, kwargs = make()
    function(*args, **kwargs)  # the valid call works
    slots = [(index, None) for index in range(len(args))] + [(None, key) for key in kwargs]
    deep = []
    for index, key in slots:
        original = args[index] if index is not None else kwargs[key]
        for label, bad in _mutations(original):
            call_args, call_kwargs = make()
            if index is not None:
                call_args[index] = bad
            else:
                call_kwargs[key] = bad
            try:
                function(*call_args, **call_kwargs)
            except Exception as error:
                if not _names_an_argument(error):
                    where = f"argument {index}" if key is None else key
                    deep.append(f"{where} = {label}: {type(error).__name__}: {error}")
    assert not deep, f"{name}: errors that name no argument:\n" + "\n".join(deep)
