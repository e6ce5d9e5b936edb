"""GSGAN's anchor regularisers: against brute force, gradients, degenerate and bad inputs."""

import pytest
import torch

from aware3d.functional import centre_distance_loss, knn_distance_loss
from aware3d.nn import CentreDistanceLoss, KNNDistanceLoss, small_decoder


def _knn_brute_force(points, k):
    """Every pair's squared distance, sorted; drop each point's own zero (position 0 of the row
    after pushing the diagonal to the end), keep the k smallest, average over k and 3 axes."""
    batch, count, _ = points.shape
    out = torch.empty(batch, count, dtype=points.dtype)
    for b in range(batch):
        for i in range(count):
            others = [((points[b, i] - points[b, j]) ** 2).sum() for j in range(count) if j != i]
            out[b, i] = torch.stack(others).sort().values[:k].sum() / (3 * k)
    return out


@pytest.mark.parametrize("k", [1, 3, 7])
def test_knn_matches_brute_force(k):
    points = torch.randn(2, 8, 3, dtype=torch.float64)
    ours = knn_distance_loss(points, k, reduction="none")
    torch.testing.assert_close(ours, _knn_brute_force(points, k), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(knn_distance_loss(points, k), ours.mean())
    torch.testing.assert_close(knn_distance_loss(points, k, reduction="sum"), ours.sum())


def test_knn_gradcheck_float64():
    points = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda p: knn_distance_loss(p, 2), (points,))


def test_knn_of_coincident_points_is_zero_with_finite_gradient():
    points = torch.zeros(1, 5, 3, requires_grad=True)
    loss = knn_distance_loss(points, 4)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(points.grad).all()


def test_knn_pulls_an_outlier_back():
    points = torch.cat([torch.randn(1, 15, 3) * 0.1, torch.tensor([[[3.0, 0.0, 0.0]]])], dim=1)
    points.requires_grad_()
    knn_distance_loss(points, 4).backward()
    assert points.grad[0, -1, 0] > 0  # descending the gradient moves it towards the others


def test_centre_distance_formula_and_gradient():
    points = torch.randn(3, 10, 3, dtype=torch.float64, requires_grad=True)
    expected = (points.mean(1) ** 2).sum(-1) / 3
    torch.testing.assert_close(centre_distance_loss(points, reduction="none"), expected)
    torch.testing.assert_close(centre_distance_loss(points), expected.mean())
    assert torch.autograd.gradcheck(centre_distance_loss, (points,))
    shifted = points.detach() - points.detach().mean(1, keepdim=True)
    assert centre_distance_loss(shifted) < 1e-20


@pytest.mark.parametrize("k", [0, 8, 100])
def test_knn_k_out_of_range_is_an_error_naming_k(k):
    with pytest.raises(ValueError, match="`k`"):
        knn_distance_loss(torch.randn(1, 8, 3), k)


def test_knn_k_must_be_an_int(without_shape_checker):
    with pytest.raises((TypeError, ValueError), match="`k`"):
        knn_distance_loss(torch.randn(1, 8, 3), 2.5)  # pyright: ignore[reportArgumentType]


@pytest.mark.parametrize("loss", [lambda p: knn_distance_loss(p, 2), centre_distance_loss])
def test_nan_points_are_an_error(loss):
    points = torch.randn(1, 8, 3)
    points[0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="`points` must be finite"):
        loss(points)


@pytest.mark.parametrize("loss", [lambda p: knn_distance_loss(p, 2), centre_distance_loss])
def test_wrong_shapes_name_points(loss, without_shape_checker):
    with pytest.raises((TypeError, ValueError), match="points"):
        loss(torch.randn(8, 3))
    with pytest.raises((TypeError, ValueError), match="points"):
        loss(torch.randn(1, 8, 2))


def test_empty_batches():
    for loss in (lambda p, **kw: knn_distance_loss(p, 2, **kw), centre_distance_loss):
        empty = torch.zeros(0, 8, 3)
        assert loss(empty, reduction="sum").item() == 0.0
        with pytest.raises(ValueError, match="zero scenes"):
            loss(empty)
    with pytest.raises(ValueError, match="zero points"):
        centre_distance_loss(torch.zeros(2, 0, 3))


def test_modules_take_a_hierarchy_and_use_the_level0_anchors():
    decoder = small_decoder(16, num_levels=2)
    hierarchy = decoder.forward_hierarchy(torch.randn(2, decoder.num_ws, 16))
    anchors = hierarchy.anchors[0].position
    knn = KNNDistanceLoss(k=4)
    torch.testing.assert_close(knn(hierarchy), knn_distance_loss(anchors, 4))
    torch.testing.assert_close(knn(anchors), knn_distance_loss(anchors, 4))
    centre = CentreDistanceLoss(reduction="none")
    torch.testing.assert_close(centre(hierarchy), centre_distance_loss(anchors, reduction="none"))
    assert "k=4" in repr(knn)


def test_modules_check_their_arguments(without_shape_checker):
    with pytest.raises(ValueError, match="`k`"):
        KNNDistanceLoss(k=0)
    with pytest.raises(ValueError, match="reduction"):
        CentreDistanceLoss(reduction="max")  # pyright: ignore[reportArgumentType]
