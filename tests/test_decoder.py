"""HierarchicalGaussianDecoder / FlatGaussianDecoder: shapes, hierarchy constraints, presets."""

import math

import hypothesis.strategies as st
import jaxtyping
import pytest
import torch
from hypothesis import given, settings

from aware3d.functional.hierarchy import GaussianHierarchy, parent_indices
from aware3d.gaussians import Gaussians
from aware3d.nn.decoder import (
    FlatGaussianDecoder,
    HierarchicalGaussianDecoder,
    gsgan_256,
    gsgan_512,
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
    config.update(kwargs)
    return cls(**config)


@pytest.fixture(scope="module")
def tiny64():
    return tiny_decoder().double()


@settings(max_examples=8)
@given(seed=st.integers(0, 2**31 - 1), w_scale=st.sampled_from([0.0, 1.0, 10.0, 1e3]))
def test_decoder_output_satisfies_hierarchy_constraints(tiny64, seed, w_scale):
    decoder = tiny64
    gen = torch.Generator().manual_seed(seed)
    ws = torch.randn(2, decoder.num_ws, decoder.w_dim, generator=gen, dtype=torch.float64)
    ws = (ws * w_scale).requires_grad_(True)
    hierarchy = decoder.forward_hierarchy(ws)
    args = {"rho": decoder.rho, "pixel_size": decoder.pixel_size}
    parent = hierarchy.root
    for level in range(decoder.num_levels):
        check_children(parent, hierarchy.nodes[level], **args)
        check_children(parent, hierarchy.anchors[level], **args)
        parent = hierarchy.anchors[level]
    g = hierarchy.gaussians
    Gaussians(g.means, g.quats, g.scales, g.opacities, g.features, g.levels)  # full validation
    loss = g.means.sum() + g.scales.sum() + g.opacities.sum() + g.features.sum() + g.quats.sum()
    loss.backward()
    assert ws.grad is not None
    assert torch.isfinite(ws.grad).all()


def test_level_sizes_parents_and_levels():
    decoder = tiny_decoder()
    ws = torch.randn(3, decoder.num_ws, decoder.w_dim)
    hierarchy = decoder.forward_hierarchy(ws)
    assert isinstance(hierarchy, GaussianHierarchy)
    sizes = [8, 32, 128]
    assert list(decoder.level_sizes) == sizes
    assert decoder.num_gaussians == sum(sizes)
    for level, size in enumerate(sizes):
        assert hierarchy.nodes[level].position.shape == (3, size, 3)
        assert hierarchy.anchors[level].position.shape == (3, size, 3)
        expected = (
            torch.zeros(size, dtype=torch.int64)
            if level == 0
            else parent_indices(sizes[level - 1], 4)
        )
        torch.testing.assert_close(hierarchy.parents[level], expected)
    g = hierarchy.gaussians
    assert g.means.shape == (3, sum(sizes), 3)
    assert g.features.shape == (3, sum(sizes), 3)
    assert g.levels is not None
    assert g.levels.dtype == torch.int64
    assert torch.bincount(g.levels).tolist() == sizes
    assert hierarchy.root.position.shape == (3, 1, 3)


def test_children_stay_near_their_parents_and_shrink():
    decoder = tiny_decoder()
    hierarchy = decoder.forward_hierarchy(torch.randn(1, decoder.num_ws, decoder.w_dim))
    sigma = [n.log_scale.exp().amax(-1).mean().item() for n in hierarchy.nodes]
    assert sigma[0] > sigma[1] > sigma[2]
    # level 0 lies inside the foreground box
    assert (hierarchy.nodes[0].position.abs() <= decoder.box_half_extent).all()


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


def test_gradients_reach_every_parameter():
    decoder = tiny_decoder()
    g = decoder(torch.randn(2, decoder.num_ws, decoder.w_dim))
    (g.means.square().sum() + g.features.sum() + g.scales.sum() + g.opacities.sum()).backward()
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


def test_flat_decoder_has_the_same_budget_and_no_parents():
    flat = tiny_decoder(FlatGaussianDecoder)
    hier = tiny_decoder()
    assert flat.num_gaussians == hier.num_gaussians
    assert flat.num_ws == hier.num_ws
    hierarchy = flat.forward_hierarchy(torch.randn(2, flat.num_ws, flat.w_dim))
    assert hierarchy.anchors == ()
    assert all((p == 0).all() for p in hierarchy.parents)
    g = hierarchy.gaussians
    assert g.means.shape == (2, flat.num_gaussians, 3)
    assert (g.means.abs() <= flat.box_half_extent + 1e-6).all()
    assert (g.scales <= flat.box_half_extent / flat.rho + 1e-6).all()


def test_view_dependent_features_option():
    decoder = tiny_decoder(view_dependent_features=True)
    ws = torch.randn(2, decoder.num_ws, decoder.w_dim)
    centers = torch.tensor([[0.0, 0.0, 2.7], [2.7, 0.0, 0.0]])
    a = decoder(ws, centers)
    b = decoder(ws, centers.flip(-1))
    torch.testing.assert_close(a.means, b.means)  # geometry does not depend on the camera
    assert not torch.allclose(a.features, b.features)  # colour does: costs 3D consistency
    with pytest.raises(ValueError, match="camera_centers"):
        decoder(ws)
    with pytest.raises(ValueError, match="camera_centers"):
        tiny_decoder()(ws, centers)


@pytest.mark.parametrize(
    ("factory", "count", "levels"),
    [
        (small_decoder, 2720, 4),
        (gsgan_256, 87_296, 5),
        pytest.param(gsgan_512, 349_440, 6, marks=pytest.mark.slow),
    ],
)
def test_presets_shapes_and_levels(factory, count, levels):
    torch.manual_seed(0)
    decoder = factory()
    assert decoder.num_gaussians == count
    assert decoder.num_levels == levels
    batch = 2 if factory is small_decoder else 1
    with torch.no_grad():
        g = decoder(torch.randn(batch, decoder.num_ws, decoder.w_dim))
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
def test_knn_neighbour_attention_option(cls):
    decoder = tiny_decoder(cls, knn=3)
    assert decoder.num_ws == tiny_decoder(cls).num_ws + 2
    ws = torch.randn(2, decoder.num_ws, decoder.w_dim, requires_grad=True)
    hierarchy = decoder.forward_hierarchy(ws)
    assert hierarchy.gaussians.means.shape == (2, decoder.num_gaussians, 3)
    if cls is HierarchicalGaussianDecoder:
        parent = hierarchy.root
        for level in range(decoder.num_levels):
            check_children(
                parent, hierarchy.nodes[level], rho=decoder.rho, pixel_size=decoder.pixel_size
            )
            parent = hierarchy.anchors[level]
    hierarchy.gaussians.features.sum().backward()
    assert ws.grad is not None
    assert torch.isfinite(ws.grad).all()
    for name, parameter in decoder.named_parameters():
        if "neighbour" in name:
            assert parameter.grad is not None, name
    with pytest.raises(ValueError, match="knn"):
        tiny_decoder(knn=-1)


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
