"""Visualisation helpers: levels, anchors, shrunken scales, descendants, rendering per level."""

import importlib.util

import pytest
import torch

from aware3d.nn.decoder import FlatGaussianDecoder, HierarchicalGaussianDecoder
from aware3d.viz.hierarchy import (
    LEVEL_PALETTE,
    anchors_as_gaussians,
    color_by_level,
    descendants,
    render_levels,
    select_levels,
    shrink_scales,
)

CONFIG = {
    "w_dim": 16,
    "num_levels": 3,
    "num_initial": 4,
    "children": 2,
    "widths": (16, 16, 16),
    "head_dim": 8,
    "resolution": 32,
}


@pytest.fixture(scope="module")
def hierarchy():
    torch.manual_seed(0)
    decoder = HierarchicalGaussianDecoder(**CONFIG)
    with torch.no_grad():
        return decoder.forward_hierarchy(torch.randn(2, decoder.num_ws, decoder.w_dim))


def test_select_levels(hierarchy):
    coarse = select_levels(hierarchy, [0, 1])
    assert coarse.num_gaussians == 4 + 8
    assert select_levels(hierarchy.gaussians, 2).num_gaussians == 16


def test_anchors_as_gaussians(hierarchy):
    anchors = anchors_as_gaussians(hierarchy)
    assert anchors.num_gaussians == 4 + 8  # levels 0 and 1: the last level has no anchors
    assert anchors.levels is not None
    torch.testing.assert_close(anchors.means[:, :4], hierarchy.anchors[0].position)
    some = anchors_as_gaussians(hierarchy, levels=1, opacity=0.3)
    assert some.num_gaussians == 8
    assert torch.all(some.opacities == 0.3)
    with pytest.raises(ValueError, match="opacity"):
        anchors_as_gaussians(hierarchy, opacity=2.0)
    with pytest.raises(ValueError, match="out of range"):
        anchors_as_gaussians(hierarchy, levels=2)


def test_flat_hierarchy_has_no_anchors():
    torch.manual_seed(0)
    flat = FlatGaussianDecoder(**CONFIG)
    with torch.no_grad():
        h = flat.forward_hierarchy(torch.randn(1, flat.num_ws, flat.w_dim))
    with pytest.raises(ValueError, match="no anchors"):
        anchors_as_gaussians(h)


def test_shrink_scales(hierarchy):
    small = shrink_scales(hierarchy, 0.1)
    torch.testing.assert_close(small.scales, hierarchy.gaussians.scales * 0.1)
    torch.testing.assert_close(small.means, hierarchy.gaussians.means)
    with pytest.raises(ValueError, match="factor"):
        shrink_scales(hierarchy, 0.0)


def test_descendants_of_one_token(hierarchy):
    part = descendants(hierarchy, token=1)
    assert part.num_gaussians == 1 + 2 + 4
    assert part.levels is not None
    assert part.levels.tolist() == [0, 1, 1, 2, 2, 2, 2]
    torch.testing.assert_close(part.means[:, 0], hierarchy.nodes[0].position[:, 1])
    torch.testing.assert_close(part.means[:, 1:3], hierarchy.nodes[1].position[:, 2:4])
    torch.testing.assert_close(part.means[:, 3:], hierarchy.nodes[2].position[:, 4:8])
    assert descendants(hierarchy, token=1, anchors=True).num_gaussians == 1 + 2
    with pytest.raises(ValueError, match="token"):
        descendants(hierarchy, token=4)


def test_color_by_level(hierarchy):
    colored = color_by_level(hierarchy)
    assert colored.features.shape == hierarchy.gaussians.features.shape
    torch.testing.assert_close(colored.features[0, 0], torch.tensor(LEVEL_PALETTE[0]))
    torch.testing.assert_close(colored.features[1, -1], torch.tensor(LEVEL_PALETTE[2]))


@pytest.mark.skipif(
    importlib.util.find_spec("aware3d.functional.splat") is None,
    reason="aware3d.functional.splat (the rasterizer) is not in this checkout yet",
)
def test_render_levels(hierarchy):
    from aware3d.cameras import FFHQ_FOCAL, Cameras, look_at

    cam2world = look_at(torch.tensor([[[0.0, 0.0, 2.7]]]), [0.0, 0.0, 0.0])
    intrinsics = torch.tensor([[FFHQ_FOCAL, 0, 0.5], [0, FFHQ_FOCAL, 0.5], [0, 0, 1.0]])
    cameras = Cameras(cam2world.expand(2, 1, 4, 4), intrinsics.expand(2, 1, 3, 3))
    colored = color_by_level(hierarchy)
    images = render_levels(colored, cameras, 16, 16)
    assert len(images) == 3
    assert images[0].shape == (2, 1, 16, 16, 3)
    assert all(torch.isfinite(image).all() for image in images)
    assert images[-1].abs().sum() > 0
    alone = render_levels(colored, cameras, 16, 16, cumulative=False)
    torch.testing.assert_close(alone[0], images[0])
