"""DiffAugment: differentiable transforms of real and fake images for the discriminator."""

import pytest
import torch

from aware3d.training.augment import AUGMENTATIONS, diff_augment


def images(batch=6, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, size, size, 3, generator=g) * 2 - 1


def test_no_policy_is_the_identity_and_shapes_are_kept():
    x = images()
    assert diff_augment(x, ()) is x
    for policy in [(name,) for name in AUGMENTATIONS] + [AUGMENTATIONS]:
        y = diff_augment(x, policy, generator=torch.Generator().manual_seed(1))
        assert y.shape == x.shape and y.dtype == x.dtype


@pytest.mark.slow
def test_seeded_and_differentiable():
    x = images().requires_grad_()
    a = diff_augment(x, generator=torch.Generator().manual_seed(3))
    b = diff_augment(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    a.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    double = images(batch=2, size=8).double().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: diff_augment(t, generator=torch.Generator().manual_seed(5)), (double,)
    )


def test_translation_shifts_by_whole_pixels_with_zero_fill():
    x = images(batch=8, size=16) + 3.0  # no zeros in the input
    y = diff_augment(x, ("translation",), generator=torch.Generator().manual_seed(2))
    reach = round(0.125 * 16)
    for image, shifted in zip(x, y):
        matches = []
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                expected = torch.zeros_like(image)
                rows, cols = slice(max(dy, 0), 16 + min(dy, 0)), slice(max(dx, 0), 16 + min(dx, 0))
                source = image[max(-dy, 0) : 16 - max(dy, 0), max(-dx, 0) : 16 - max(dx, 0)]
                expected[rows, cols] = source
                matches.append(torch.equal(expected, shifted))
        assert sum(matches) == 1


def test_cutout_zeroes_one_square_of_half_the_size():
    x = images(batch=8, size=16) + 3.0
    y = diff_augment(x, ("cutout",), generator=torch.Generator().manual_seed(4))
    for image, cut in zip(x, y):
        hole = (cut == 0).all(-1)
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        # a square of side 8, cut by the border at most
        assert 1 <= len(rows) <= 8 and 1 <= len(cols) <= 8
        assert hole.sum() == len(rows) * len(cols)
        assert torch.equal(cut[~hole], image[~hole])


def test_color_keeps_a_grey_image_grey():
    grey = torch.full((4, 8, 8, 3), 0.2)
    y = diff_augment(grey, ("color",), generator=torch.Generator().manual_seed(6))
    # brightness moves the value, saturation and contrast leave a flat grey image flat and grey
    assert torch.allclose(y, y[:, :1, :1, :1].expand_as(y), atol=1e-6)


@pytest.mark.usefixtures("without_shape_checker")
def test_bad_input():
    with pytest.raises(ValueError, match="`policy` has unknown transforms"):
        diff_augment(images(), ("blur",))
    with pytest.raises(TypeError, match="`policy` must be a sequence"):
        diff_augment(images(), "color")
    with pytest.raises(ValueError, match=r"`images` must have shape \[B, H, W, C\]"):
        diff_augment(torch.rand(16, 16, 3))
    with pytest.raises(TypeError, match="`images` must be a floating-point tensor"):
        diff_augment(torch.zeros(2, 8, 8, 3, dtype=torch.uint8))
