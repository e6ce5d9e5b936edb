"""GSGAN's background Gaussians: on the sphere, its initial scales, one pass with the foreground."""

import math

import pytest
import torch

import aware3d
from aware3d import Cameras, GaussianBackground, Gaussians, intrinsics_from_fov, orbit, rasterize


def _background(**kwargs):
    kwargs = {"num_points": 200, "hidden": 32, **kwargs}
    return GaussianBackground(16, **kwargs)


def test_every_gaussian_lies_on_the_sphere_with_valid_attributes():
    torch.manual_seed(0)
    background = _background(radius=3.0)
    g = background(torch.randn(3, 16))
    assert g.means.shape == (3, background.num_gaussians, 3) == (3, 1000, 3)
    torch.testing.assert_close(g.means.norm(dim=-1), torch.full((3, 1000), 3.0))
    torch.testing.assert_close(g.quats.norm(dim=-1), torch.ones(3, 1000))
    log_scales = g.scales.log()
    assert (log_scales[:, :200] <= -2.0).all()  # the parents' soft cap
    assert (log_scales >= -10.0 - 1e-5).all() and (log_scales <= 0).all()
    assert ((g.opacities > 0) & (g.opacities < 1)).all()


def test_initial_scales_are_gsgans():
    """Parents start at cap - ln 2 (soft cap of a zero head), children split by K^(1/3) and
    shrunk by another ln 2 (softplus of a zero delta)."""
    torch.manual_seed(0)
    g = _background(children=4)(torch.randn(2, 16))
    parent, child = g.scales[:, :200].log(), g.scales[:, 200:].log()
    assert abs(parent.mean().item() - (-2.0 - math.log(2))) < 0.02
    expected_child = -2.0 - math.log(2) - math.log(4) / 3 - math.log(2)
    assert abs(child.mean().item() - expected_child) < 0.05


def test_no_split_below_the_threshold():
    torch.manual_seed(0)
    g = _background(children=2, split_threshold=10.0)(torch.randn(1, 16))
    parent = g.scales[:, :200].log().repeat_interleave(2, dim=1)
    child = g.scales[:, 200:].log()
    assert (child <= parent + 1e-6).all()
    assert (child >= parent - math.log(2) - 0.1).float().mean() > 0.9  # near parent - ln 2 at init


def test_children_stay_near_their_parent():
    torch.manual_seed(0)
    background = _background(children=4)
    g = background(torch.randn(2, 16))
    parents, children = g.means[:, :200], g.means[:, 200:].reshape(2, 200, 4, 3)
    reach = math.sqrt(3) * g.scales[:, :200].amax(dim=-1)  # |R S tanh(d)| <= sqrt(3) max(s)
    distance = (children - parents[:, :, None]).norm(dim=-1)
    assert (distance <= reach[..., None] + 1e-5).all()


def test_points_start_behind_the_object():
    background = _background()
    assert (background.points[:, 2] <= 0).all()
    torch.testing.assert_close(background.points.norm(dim=-1), torch.full((200,), math.sqrt(3)))


def test_scenes_follow_their_own_style():
    torch.manual_seed(0)
    background = _background()
    w = torch.randn(2, 16)
    both = background(torch.cat([w, w[:1]]))
    torch.testing.assert_close(both.features[2], both.features[0])
    assert (both.features[1] - both.features[0]).abs().max() > 1e-3


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    background = _background()
    g = background(torch.randn(2, 16))
    (
        g.means.sum() + g.scales.sum() + g.quats.sum() + g.opacities.sum() + g.features.sum()
    ).backward()
    for name, parameter in background.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


def test_rendered_in_one_pass_with_the_foreground():
    torch.manual_seed(0)
    n = 64
    quats = torch.zeros(1, n, 4)
    quats[..., 0] = 1.0
    foreground = Gaussians(
        means=torch.randn(1, n, 3) * 0.05 + torch.tensor([0.0, 0.0, 0.2]),
        quats=quats,
        scales=torch.full((1, n, 3), 0.03),
        opacities=torch.full((1, n), 0.9),
        features=torch.rand(1, n, 3),
    )
    background = GaussianBackground(16, num_points=2000, hidden=32)
    with torch.no_grad():
        scene = Gaussians.cat([foreground, background(torch.randn(1, 16))])
    cameras = Cameras(orbit(1)[None], intrinsics_from_fov(18.0).expand(1, 1, 3, 3))
    alone = rasterize(foreground, cameras, 32, 32)
    together = rasterize(scene, cameras, 32, 32)
    assert (together.alpha >= alone.alpha - 1e-6).all()
    rows, columns = [0, 0, -1, -1], [0, -1, 0, -1]
    assert (alone.alpha[0, 0, rows, columns] < 1e-3).all()  # corners: no foreground there
    assert (together.alpha[0, 0, rows, columns] > 0.05).all()  # but background Gaussians
    assert torch.isfinite(together.features).all()


def test_empty_batch():
    g = _background()(torch.zeros(0, 16))
    assert g.means.shape == (0, 1000, 3)


def test_bad_inputs_name_the_argument(without_shape_checker):
    background = _background()
    with pytest.raises(ValueError, match="`w`"):
        background(torch.randn(2, 8))
    bad = torch.randn(2, 16)
    bad[1, 3] = float("nan")
    with pytest.raises(ValueError, match="`w` must be finite"):
        background(bad)
    with pytest.raises(ValueError, match="w"):
        background(torch.randn(2, 16, dtype=torch.float64))
    for kwargs, name in (({"children": 0}, "children"), ({"radius": -1.0}, "radius"),
                         ({"scale_cap": 1.0}, "scale_cap"), ({"num_points": 0}, "num_points"),
                         ({"min_log_scale": 0.0}, "min_log_scale")):  # fmt: skip
        with pytest.raises(ValueError, match=name):
            _background(**kwargs)


def test_modules_traverse_normally():
    """`children` is a constructor argument, not an attribute: nn.Module.children() still works."""
    background = _background()
    assert len(list(background.children())) > 0
    assert background.to(torch.float64).points.dtype == torch.float64
    assert "children=4" in repr(background)
    assert aware3d.nn.GaussianBackground is GaussianBackground


@pytest.mark.slow
def test_gradcheck_float64():
    torch.manual_seed(0)
    background = GaussianBackground(4, num_points=3, children=2, hidden=4).double()

    def everything(w):
        g = background(w)
        return g.means, g.scales, g.quats, g.opacities, g.features

    w = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(everything, (w,))


def test_parameter_count_matches_the_released_network():
    """GSGAN's background network: 1,121,692 parameters, of which its level-0 position head
    (66,051) is never used; its 2,000 points (6,000) live on its generator, here on the module."""
    count = sum(p.numel() for p in GaussianBackground(512).parameters())
    assert count == 1_121_692 - 66_051 + 6_000
