"""HierarchicalGaussianDecoder / FlatGaussianDecoder: shapes, hierarchy constraints, presets."""

import itertools
import math

import hypothesis.strategies as st
import jaxtyping
import pytest
import torch
from hypothesis import given, settings

import aware3d
from aware3d.functional import quaternion_to_matrix
from aware3d.functional.hierarchy import GaussianHierarchy, parent_indices
from aware3d.gaussians import Gaussians
from aware3d.nn.decoder import (
    GSGAN_EFFECTIVE_FOCAL,
    GSGAN_WORLD_SCALE,
    FlatGaussianDecoder,
    HierarchicalGaussianDecoder,
    gsgan_decoder_256,
    gsgan_decoder_512,
    small_decoder,
)
from test_hierarchy import check_children


def tiny_decoder(cls=HierarchicalGaussianDecoder, **kwargs):
    torch.manual_seed(0)
    config = {
        "w_dim": 16,
        "num_levels": 3,
        "num_initial": 8,
        "children": 4,
        "widths": (32, 16, 16),
        "head_dim": 8,
        "resolution": 32,
    }
    if kwargs.get("blocks", "gsgan") == "gsgan":
        config |= {"depths": (2, 1, 1), "knn": 4, "grid_size": 16, "styled_levels": 1}
    open_gates = kwargs.pop("open_gates", True)
    config.update(kwargs)
    decoder = cls(**config)
    if open_gates:
        open_decoder_gates(decoder)
    return decoder


def open_decoder_gates(decoder):
    """Random values for GSGAN's residual gates, which start at zero (the blocks start as the
    identity, so an untrained decoder ignores ``ws``); as after some training."""
    with torch.no_grad():
        for name, parameter in decoder.named_parameters():
            if (".gate" in name and name.endswith("weight")) or name.endswith(".scale"):
                parameter.copy_(torch.randn_like(parameter) * 0.5)
    return decoder


#: Options that change the hierarchy's rules: both networks, GSGAN's rotation accumulation, SH0
#: colour, the final clamp, a level-0 cap above the box and a rho that stops above a pixel.
VARIANTS = {
    "gsgan": {},
    "window": {"blocks": "window"},
    "gsgan-released-rules": {
        "accumulate_rotations": True, "color_activation": "sh0", "clamp_positions": True,
        "camera_conditioning": True,
    },
    "window-knn": {"blocks": "window", "knn": 3, "accumulate_rotations": True},
    "coarse-rho": {"rho": 1.5, "level0_max_scale": 0.9, "box_half_extent": 0.3},
    "four-levels-styled-1": {"num_levels": 4, "widths": (32, 16, 16, 8), "depths": (1, 1, 1, 1)},
}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant64(request):
    return tiny_decoder(**VARIANTS[request.param]).double()


def check_decoder_hierarchy(decoder, hierarchy):
    """Every constraint of a hierarchical decoder's output, at every level (level 0 included)."""
    unit = not decoder.accumulate_rotations
    args = {"rho": decoder.rho, "pixel_size": decoder.pixel_size, "unit": unit}
    tol = 1e-9
    # level-0 anchors: children of the root box, in the box, sigma at most the level-0 cap
    anchor0 = hierarchy.anchors[0]
    assert (anchor0.position.abs() <= decoder.box_half_extent * (1 + tol)).all()
    assert (anchor0.log_scale <= math.log(decoder.level0_max_scale) + tol).all()
    assert (anchor0.log_scale >= decoder.min_log_scale - tol).all()
    # level-0 Gaussians: one child per level-0 anchor, in its box, never larger (no shrink)
    check_children(anchor0, hierarchy.nodes[0], **{**args, "rho": 1.0})
    for level in range(1, decoder.num_levels):
        check_children(hierarchy.anchors[level - 1], hierarchy.nodes[level], **args)
        if level < len(hierarchy.anchors):
            check_children(hierarchy.anchors[level - 1], hierarchy.anchors[level], **args)
    # caps per level (in pixels: level_max_scales / pixel_size), scales monotone along every path
    for level, cap in enumerate(decoder.level_max_scales):
        for nodes in (hierarchy.nodes[level], *hierarchy.anchors[level : level + 1]):
            assert (nodes.log_scale.exp() <= cap * (1 + 1e-9)).all()
    assert all(a >= b for a, b in zip(decoder.level_max_scales, decoder.level_max_scales[1:]))
    g = hierarchy.gaussians
    Gaussians(g.means, g.quats, g.scales, g.opacities, g.features, g.levels)  # full validation
    assert torch.allclose(g.quats.norm(dim=-1), torch.ones((), dtype=g.quats.dtype))
    assert ((g.opacities >= 0) & (g.opacities <= 1)).all()
    if decoder.color_activation == "sh0":
        assert (g.features >= 0).all()
    if decoder.clamp_positions:
        assert (g.means.abs() <= decoder.box_half_extent).all()
    else:
        torch.testing.assert_close(
            g.means, torch.cat([n.position for n in hierarchy.nodes], dim=1), rtol=0, atol=0
        )


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), w_scale=st.sampled_from([0.0, 1.0, 10.0, 1e3]))
@pytest.mark.slow
def test_decoder_output_satisfies_hierarchy_constraints(variant64, seed, w_scale):
    decoder = variant64
    gen = torch.Generator().manual_seed(seed)
    ws = torch.randn(2, decoder.num_ws, decoder.w_dim, generator=gen, dtype=torch.float64)
    ws = (ws * w_scale).requires_grad_(True)
    camera = None
    if decoder.camera_conditioning:
        camera = torch.nn.functional.normalize(
            torch.randn(2, 3, generator=gen, dtype=torch.float64), dim=-1
        )
    hierarchy = decoder.forward_hierarchy(ws, camera)
    check_decoder_hierarchy(decoder, hierarchy)
    g = hierarchy.gaussians
    loss = g.means.sum() + g.scales.sum() + g.opacities.sum() + g.features.sum() + g.quats.sum()
    loss.backward()
    assert ws.grad is not None
    assert torch.isfinite(ws.grad).all()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_level0_gaussian_lies_in_its_own_anchors_box(name):
    """GSGAN's rule at level 0 (the fix of issue 10): 100% inside the anchor's one-sigma box."""
    decoder = tiny_decoder(**VARIANTS[name])
    camera = torch.tensor([[0.0, 0.0, -1.0]] * 3) if decoder.camera_conditioning else None
    hierarchy = decoder.forward_hierarchy(torch.randn(3, decoder.num_ws, 16), camera)
    anchor, gaussian = hierarchy.anchors[0], hierarchy.nodes[0]
    frame = quaternion_to_matrix(anchor.rotation)
    local = torch.einsum("bnji,bnj->bni", frame, gaussian.position - anchor.position)
    inside = (local.abs() <= anchor.log_scale.exp() * (1 + 1e-5)).all(dim=-1)
    assert inside.all()
    torch.testing.assert_close(hierarchy.parents[0], torch.arange(decoder.num_initial))


def test_level_sizes_parents_and_levels():
    decoder = tiny_decoder()
    ws = torch.randn(3, decoder.num_ws, decoder.w_dim)
    hierarchy = decoder.forward_hierarchy(ws)
    assert isinstance(hierarchy, GaussianHierarchy)
    sizes = [8, 32, 128]
    assert list(decoder.level_sizes) == sizes
    assert decoder.num_gaussians == sum(sizes)
    assert [a.num_nodes for a in hierarchy.anchors] == sizes[:-1]  # none for the last level
    for level, size in enumerate(sizes):
        assert hierarchy.nodes[level].position.shape == (3, size, 3)
        expected = torch.arange(size) if level == 0 else parent_indices(sizes[level - 1], 4)
        torch.testing.assert_close(hierarchy.parents[level], expected)
    g = hierarchy.gaussians
    assert g.means.shape == (3, sum(sizes), 3)
    assert g.features.shape == (3, sum(sizes), 3)
    assert g.levels is not None
    assert g.levels.dtype == torch.int64
    assert torch.bincount(g.levels).tolist() == sizes
    assert hierarchy.root.position.shape == (3, 1, 3)
    one_level = tiny_decoder(num_levels=1, widths=(32,), depths=(1,))
    assert [a.num_nodes for a in one_level.forward_hierarchy(ws[:, :2]).anchors] == [8]


@pytest.mark.parametrize("blocks", ["gsgan", "window"])
def test_children_stay_near_their_parents_and_shrink(blocks):
    decoder = tiny_decoder(blocks=blocks)
    hierarchy = decoder.forward_hierarchy(torch.randn(1, decoder.num_ws, decoder.w_dim))
    sigma = [n.log_scale.exp().amax(-1).mean().item() for n in hierarchy.nodes]
    assert sigma[0] > sigma[1] > sigma[2]
    assert (hierarchy.nodes[0].position.abs() <= 2 * decoder.box_half_extent).all()


def test_scale_schedule_reaches_one_pixel_at_the_finest_level():
    decoder = tiny_decoder(num_levels=4, widths=(32, 16, 16, 8), depths=(1, 1, 1, 1))
    caps_px = [cap / decoder.pixel_size for cap in decoder.level_max_scales]
    assert caps_px[-1] == pytest.approx(1.0)
    assert decoder.rho == pytest.approx(caps_px[0] ** (1 / 3))
    for coarse, fine in itertools.pairwise(caps_px):
        assert coarse / fine == pytest.approx(decoder.rho)
    # GSGAN's level-0 cap 1 / sqrt(N0) of its [-1, 1] box, converted to our world
    assert decoder.level0_max_scale == pytest.approx(GSGAN_WORLD_SCALE / math.sqrt(8))
    assert decoder.box_half_extent == pytest.approx(GSGAN_WORLD_SCALE)
    # separate knobs: the box does not move the cap, an explicit rho is kept
    wide = tiny_decoder(box_half_extent=1.0)
    assert wide.level0_max_scale == decoder.level0_max_scale
    assert tiny_decoder(rho=3.0).rho == 3.0
    # a cap below a pixel never shrinks
    tiny = tiny_decoder(level0_max_scale=1e-3)
    assert tiny.rho == 1.0
    assert tiny.level_max_scales == (1e-3,) * 3


def test_gsgan_world_conversion():
    # GSGAN passes 12.96 to tan as radians: tan(6.48) = 0.1994, focal 2.508, 0.588 of EG3D's
    assert pytest.approx(2.5076, abs=1e-4) == GSGAN_EFFECTIVE_FOCAL
    assert pytest.approx(2.5076 / 4.2647, abs=1e-4) == GSGAN_WORLD_SCALE
    decoder = gsgan_decoder_256()
    caps_px = [cap / decoder.pixel_size for cap in decoder.level_max_scales]
    assert caps_px == pytest.approx([14.86, 7.57, 3.85, 1.96, 1.0], abs=0.01)
    # GSGAN's own constants in pixels of its camera: 1/16 of the box at 256 px
    released_px = [(1 / 16) / 2**level * GSGAN_EFFECTIVE_FOCAL * 256 / 2.7 for level in range(5)]
    assert released_px == pytest.approx([14.86, 7.43, 3.71, 1.86, 0.93], abs=0.01)
    assert caps_px[0] == pytest.approx(released_px[0])


def test_forward_equals_hierarchy_gaussians_and_has_no_side_effects():
    decoder = tiny_decoder()
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    attributes = dict(vars(decoder))
    ws = torch.randn(2, decoder.num_ws, decoder.w_dim)
    first = decoder(ws)
    second = decoder.forward_hierarchy(ws).gaussians
    torch.testing.assert_close(first.means, second.means)
    torch.testing.assert_close(first.features, second.features)
    for key, value in decoder.state_dict().items():
        torch.testing.assert_close(value, before[key])
    assert dict(vars(decoder)).keys() == attributes.keys()


def test_determinism_for_a_fixed_seed():
    ws = torch.randn(2, tiny_decoder().num_ws, 16, generator=torch.Generator().manual_seed(1))
    a = tiny_decoder()(ws)
    b = tiny_decoder()(ws)
    for name in ("means", "quats", "scales", "opacities", "features"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


def test_batch_is_independent_per_scene():
    decoder = tiny_decoder()
    ws = torch.randn(3, decoder.num_ws, decoder.w_dim)
    together = decoder(ws)
    alone = decoder(ws[1:2])
    # A batch of three and a single scene go through matmuls of different shapes, which BLAS
    # blocks and so rounds differently (and differently again on another CPU or BLAS). Each
    # output comes out of about 25 matmuls in sequence (attention, MLPs, upsamplers, head;
    # k <= 64), each rounding by about sqrt(k) <= 8 float32 eps of the activations, whose size
    # the largest output measures: 200 eps if every error added up. Allow 300 eps of it
    # (3.6e-5 relative). Measured: at most 14 eps (50 decoders x 6 numerics configurations); a
    # mixed-up or leaking scene is off by O(1): the other scenes differ by > 10^4 x the tolerance.
    eps = torch.finfo(torch.float32).eps
    for name in ("means", "features"):
        batched, single = getattr(together, name), getattr(alone, name)
        atol = 300 * eps * single.abs().max().item()
        torch.testing.assert_close(batched[1:2], single, rtol=0, atol=atol)
        assert (batched[[0, 2]] - single).abs().max().item() > 100 * atol  # scenes differ


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.slow
def test_gradients_reach_every_parameter(name):
    decoder = tiny_decoder(**VARIANTS[name])
    camera = torch.tensor([[0.0, 0.6, -0.8]] * 2) if decoder.camera_conditioning else None
    g = decoder(torch.randn(2, decoder.num_ws, decoder.w_dim), camera)
    loss = g.means.square().sum() + g.features.sum() + g.scales.sum() + g.opacities.sum()
    (loss + (g.quats * torch.randn_like(g.quats)).sum()).backward()
    for name, parameter in decoder.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_bad_ws_shapes_are_refused():
    decoder = tiny_decoder()
    n, d = decoder.num_ws, decoder.w_dim
    # The jaxtyping checker sees some of these first in tests; a normal run raises ValueError.
    for bad in (torch.randn(n, d), torch.randn(2, n + 1, d), torch.randn(2, n, d + 1)):
        with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="ws"):
            decoder(bad)
    with pytest.raises(ValueError, match=r"`ws` must have shape \[B, "):
        decoder(torch.randn(2, n + 1, d))
    with pytest.raises(ValueError, match="B >= 1"):
        decoder(torch.randn(0, n, d))
    with pytest.raises((TypeError, jaxtyping.TypeCheckError)):
        decoder(torch.zeros(2, n, d, dtype=torch.int64))


def test_bad_constructor_arguments_are_refused():
    with pytest.raises(ValueError, match="widths"):
        tiny_decoder(widths=(32, 16))
    with pytest.raises(ValueError, match="attention_window"):
        tiny_decoder(attention_window=6)
    with pytest.raises(ValueError, match="rho"):
        tiny_decoder(rho=0.5)
    with pytest.raises(ValueError, match="num_levels"):
        tiny_decoder(num_levels=0)


def test_pixel_size_follows_the_camera_model():
    decoder = tiny_decoder(resolution=256)
    assert decoder.pixel_size == pytest.approx(2.7 / (4.2647 * 256))
    assert tiny_decoder(pixel_size=0.1).pixel_size == 0.1


@pytest.mark.parametrize("blocks", ["gsgan", "window"])
def test_flat_decoder_has_the_same_budget_and_no_parents(blocks):
    flat = tiny_decoder(FlatGaussianDecoder, blocks=blocks)
    hier = tiny_decoder(blocks=blocks)
    assert flat.num_gaussians == hier.num_gaussians
    assert flat.num_ws == hier.num_ws
    assert flat.level_max_scales == hier.level_max_scales
    hierarchy = flat.forward_hierarchy(torch.randn(2, flat.num_ws, flat.w_dim))
    assert hierarchy.anchors == ()
    assert all((p == 0).all() for p in hierarchy.parents)
    g = hierarchy.gaussians
    assert g.means.shape == (2, flat.num_gaussians, 3)
    assert (g.means.abs() <= flat.box_half_extent + 1e-6).all()
    caps = torch.tensor(flat.level_max_scales)[g.levels]
    assert (g.scales.amax(-1) <= caps * (1 + 1e-6)).all()  # the same per-level caps
    if blocks == "gsgan":  # no anchor heads: every parameter is used
        g.means.sum().backward()
        assert not any("anchor" in name for name, _ in flat.named_parameters())


def test_camera_conditioning_option():
    decoder = tiny_decoder(camera_conditioning=True)
    ws = torch.randn(2, decoder.num_ws, decoder.w_dim)
    front = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    side = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    a = decoder(ws, front)
    b = decoder(ws, side)
    torch.testing.assert_close(a.means, b.means)  # geometry does not depend on the camera
    assert not torch.allclose(a.features, b.features)  # colour does: costs 3D consistency
    with pytest.raises(ValueError, match="camera_forward"):
        decoder(ws)
    with pytest.raises(ValueError, match="camera_forward"):
        tiny_decoder()(ws, front)
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="camera_forward"):
        decoder(ws, front[:1])
    with pytest.raises(ValueError, match="blocks='gsgan'"):
        tiny_decoder(blocks="window", camera_conditioning=True)
    # the forward vector of EG3D cameras: the camera's +z axis, towards the scene
    poses = aware3d.sample_look_at_poses(math.pi / 2, math.pi / 2, (0, 0, 0), 2.7, 0, n=2)
    cameras = aware3d.Cameras(poses, aware3d.intrinsics_from_fov(13.37).expand(2, 3, 3))
    forward = cameras.forward_directions
    torch.testing.assert_close(forward, -cameras.centers / 2.7, atol=1e-6, rtol=0)
    decoder(ws, forward)


def test_gsgan_options_are_checked():
    with pytest.raises(ValueError, match="depths"):
        tiny_decoder(depths=(2, 2, 1))
    with pytest.raises(ValueError, match="initial_radius"):
        tiny_decoder(initial_radius=0.1)
    with pytest.raises(ValueError, match="attention_window"):
        tiny_decoder(attention_window=16)
    with pytest.raises(ValueError, match="styled_levels"):
        tiny_decoder(styled_levels=0)
    # the test suite's type checker sees a wrong Literal first; a normal run raises ValueError
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="blocks"):
        tiny_decoder(blocks="transformer")
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="color_activation"):
        tiny_decoder(color_activation="sigmoid")
    with pytest.raises(ValueError, match="level0_max_scale"):
        tiny_decoder(level0_max_scale=1e-5)
    with pytest.raises(ValueError, match="initial_opacity"):
        tiny_decoder(initial_opacity=1.0)


def test_gsgan_decoder_starts_as_released():
    """Zero gates (w ignored at first), opacity 0.1, level-0 anchors near the centre, SH0 colour."""
    decoder = tiny_decoder(open_gates=False, color_activation="sh0")
    ws = torch.randn(3, decoder.num_ws, decoder.w_dim)
    hierarchy = decoder.forward_hierarchy(ws)
    g = hierarchy.gaussians
    torch.testing.assert_close(g.means[0], g.means[1])  # every block starts as the identity
    assert torch.sigmoid(hierarchy.root.opacity_logit[0]).item() == pytest.approx(0.1)
    # level-0 anchors: tanh(0.1 * head) of the box, sigma about half the cap (ds ~ 0)
    anchor0 = hierarchy.anchors[0]
    assert anchor0.position.abs().max() < 0.5 * decoder.box_half_extent
    ratio = anchor0.log_scale.exp() / decoder.level0_max_scale
    assert ((ratio > 0.3) & (ratio < 0.7)).all()
    assert (g.features >= 0).all()
    assert g.features.mean().item() == pytest.approx(0.5, abs=0.25)


@pytest.mark.parametrize(
    ("factory", "count", "levels"),
    [
        (small_decoder, 2720, 4),
        (gsgan_decoder_256, 87_296, 5),
        pytest.param(gsgan_decoder_512, 349_440, 6, marks=pytest.mark.slow),
    ],
)
@pytest.mark.slow
def test_presets_shapes_and_levels(factory, count, levels):
    torch.manual_seed(0)
    decoder = factory()
    assert decoder.num_gaussians == count
    assert decoder.num_levels == levels
    batch = 2 if factory is small_decoder else 1
    camera = torch.tensor([[0.0, 0.0, -1.0]] * batch) if decoder.camera_conditioning else None
    with torch.no_grad():
        g = decoder(torch.randn(batch, decoder.num_ws, decoder.w_dim), camera)
    assert g.means.shape == (batch, count, 3)
    assert g.quats.shape == (batch, count, 4)
    assert g.features.shape == (batch, count, 3)
    assert g.levels is not None
    assert torch.bincount(g.levels).tolist() == [decoder.num_initial * 4**i for i in range(levels)]
    assert torch.isfinite(g.means).all()
    assert (g.scales > 0).all()
    assert ((g.opacities >= 0) & (g.opacities <= 1)).all()
    assert torch.allclose(g.quats.norm(dim=-1), torch.ones(()), atol=1e-5)
    assert (g.scales.log() >= decoder.min_log_scale - 1e-5).all()
    assert math.isclose(decoder.pixel_size, 2.7 / (4.2647 * decoder.resolution))


#: The released point generator (hse1032/GSGAN, commit 63ff93e, ``PointGenerator`` built with the
#: FFHQ scripts' options, counted as ``sum(p.numel() for p in module.parameters())``) has
#: 38,827,308 parameters at 256 px (``res_end=128``) and 39,095,016 at 512 px. 18,702 of them
#: never receive a gradient: ``camera_dep_affine`` (16,896, built but not called) and the anchor
#: heads of the last level (1,806; the last level has no anchors). The 256 learnable input points
#: (768) live on its ``GSGenerator``; here they belong to the decoder.
RELEASED_POINT_GENERATOR = {"gsgan_decoder_256": 38_827_308, "gsgan_decoder_512": 39_095_016}
RELEASED_UNUSED, INPUT_POINTS = 18_702, 256 * 3


@pytest.mark.parametrize(
    "name", ["gsgan_decoder_256", pytest.param("gsgan_decoder_512", marks=pytest.mark.slow)]
)
def test_preset_parameter_count_equals_the_released_point_generator(name):
    decoder = {"gsgan_decoder_256": gsgan_decoder_256, "gsgan_decoder_512": gsgan_decoder_512}[
        name
    ]()
    count = sum(p.numel() for p in decoder.parameters())
    assert count == RELEASED_POINT_GENERATOR[name] - RELEASED_UNUSED + INPUT_POINTS
    assert decoder.num_ws == 16  # 6 transformer blocks x 2 + levels 1-2 x 2 (+1 background: 17)
    # per part, as released: the coarse transformer, the point encoding, one level's EdgeConv
    trunk = decoder.trunk
    assert sum(p.numel() for p in trunk.transformer.parameters()) == 28_357_632
    assert sum(p.numel() for p in trunk.encoding.parameters()) == 394_240
    assert sum(p.numel() for p in trunk.edges[0].parameters()) == 1_838_336  # AdaEdgeBlock
    assert sum(p.numel() for p in trunk.edges[2].parameters()) == 263_296  # LocalEdgeBlock
    assert sum(p.numel() for p in trunk.mlps[0].parameters()) == 2_887_680  # AdaMLP
    assert sum(p.numel() for p in trunk.upsamplers[1].parameters()) == 656_640


def test_small_preset_trains_a_step_on_cpu():
    torch.manual_seed(0)
    decoder = small_decoder()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-3)
    ws = torch.randn(2, decoder.num_ws, decoder.w_dim)
    g = decoder(ws)
    loss = (g.means - 0.1).square().mean() + (g.features - 0.5).square().mean()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("cls", [HierarchicalGaussianDecoder, FlatGaussianDecoder])
@pytest.mark.slow
def test_knn_neighbour_attention_option(cls):
    decoder = tiny_decoder(cls, blocks="window", knn=3)
    assert decoder.num_ws == tiny_decoder(cls, blocks="window").num_ws + 2
    ws = torch.randn(2, decoder.num_ws, decoder.w_dim, requires_grad=True)
    hierarchy = decoder.forward_hierarchy(ws)
    assert hierarchy.gaussians.means.shape == (2, decoder.num_gaussians, 3)
    if cls is HierarchicalGaussianDecoder:
        check_decoder_hierarchy(decoder, hierarchy)
    hierarchy.gaussians.features.sum().backward()
    assert ws.grad is not None
    assert torch.isfinite(ws.grad).all()
    for name, parameter in decoder.named_parameters():
        if "neighbour" in name:
            assert parameter.grad is not None, name
    with pytest.raises(ValueError, match="knn"):
        tiny_decoder(blocks="window", knn=-1)


def test_knn_block_matches_a_loop_reference():
    from aware3d.nn._decoder_blocks import NeighbourAttentionBlock, knn_indices

    torch.manual_seed(0)
    block = NeighbourAttentionBlock(8, 4, 2)
    points = torch.randn(2, 5, 3)
    neighbours = knn_indices(points, 3, chunk=2)
    for b in range(2):
        for p in range(5):
            distances = (points[b] - points[b, p]).norm(dim=-1)
            assert set(neighbours[b, p].tolist()) == set(
                distances.topk(3, largest=False).indices.tolist()
            )
    x = torch.randn(2, 10, 8)
    w = torch.randn(2, 4)
    out = block(x, w, neighbours)
    h = block.norm(x, w)
    q = block.query(h)
    kv = block.key_value(h)
    for b in range(2):
        for j in range(10):
            keys = torch.cat([kv[b, 2 * n : 2 * n + 2] for n in neighbours[b, j // 2].tolist()])
            key, value = keys.chunk(2, dim=-1)
            heads = []
            for head in range(2):
                sl = slice(4 * head, 4 * head + 4)
                weights = torch.softmax(key[:, sl] @ q[b, j, sl] / 2.0, dim=0)
                heads.append(weights @ value[:, sl])
            expected = x[b, j] + block.proj(torch.cat(heads))
            torch.testing.assert_close(out[b, j], expected, rtol=1e-4, atol=1e-5)
