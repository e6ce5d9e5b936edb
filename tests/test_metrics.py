"""Sliced Wasserstein distance: zero for identical sets, grows with the difference."""

import pytest
import torch

from aware3d.training import sliced_wasserstein_distance


def smooth_images(n, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 8, 8, generator=g)
    images = torch.nn.functional.interpolate(base, size=32, mode="bilinear", align_corners=False)
    return (images.permute(0, 2, 3, 1) + shift).clamp(0, 1)


def test_identical_sets_have_zero_distance():
    images = smooth_images(16, 0)
    result = sliced_wasserstein_distance(images, images.clone())
    assert result.mean == pytest.approx(0.0, abs=1e-6)
    assert len(result.per_level) == 2  # 32 and 16 pixels


@pytest.mark.slow
def test_distance_grows_with_the_difference_and_is_deterministic():
    real = smooth_images(32, 0)
    same_distribution = smooth_images(32, 1)
    shifted = smooth_images(32, 1, shift=0.3)
    noise = torch.rand(32, 32, 32, 3, generator=torch.Generator().manual_seed(2))
    near = sliced_wasserstein_distance(real, same_distribution).mean
    far = sliced_wasserstein_distance(real, shifted).mean
    farthest = sliced_wasserstein_distance(real, noise).mean
    assert near < far
    assert near < farthest
    assert sliced_wasserstein_distance(real, shifted).mean == far


@pytest.mark.usefixtures("without_shape_checker")
def test_bad_input():
    with pytest.raises(
        ValueError, match=r"`fake` must have shape \[N, H, W, 3\] = \[4, 32, 32, 3\]"
    ):
        sliced_wasserstein_distance(torch.rand(4, 32, 32, 3), torch.rand(3, 32, 32, 3))
    with pytest.raises(ValueError, match="smaller than"):
        sliced_wasserstein_distance(torch.rand(4, 8, 8, 3), torch.rand(4, 8, 8, 3))
