"""GSGAN's camera-contrastive branch: the loss, the discriminator option, and that it learns."""

import math

import pytest
import torch
import torch.nn.functional as F

from aware3d.training import CameraConditionedDiscriminator, camera_contrastive_loss


def _discriminator(**kwargs):
    return CameraConditionedDiscriminator(
        16, channel_base=256, channel_max=32, embed_dim=16, **kwargs
    )


def test_loss_is_infonce_from_images_to_cameras():
    u, v = torch.randn(5, 8, dtype=torch.float64), torch.randn(5, 8, dtype=torch.float64)
    similarity = (u / u.norm(dim=1, keepdim=True)) @ (v / v.norm(dim=1, keepdim=True)).T
    expected = -(similarity.diag() / 0.1 - torch.logsumexp(similarity / 0.1, dim=1)).mean()
    torch.testing.assert_close(camera_contrastive_loss(u, v), expected)
    torch.testing.assert_close(
        camera_contrastive_loss(u, v, temperature=0.5),
        F.cross_entropy(F.normalize(u) @ F.normalize(v).T / 0.5, torch.arange(5)),
    )


def test_loss_limits():
    same = torch.ones(6, 4)
    torch.testing.assert_close(camera_contrastive_loss(same, same), torch.tensor(math.log(6)))
    matched = torch.eye(6)
    # cosine 1 for the own camera, 0 for the 5 others: log(1 + 5 exp(-1 / 0.1))
    expected = torch.tensor(math.log1p(5 * math.exp(-10.0)))
    torch.testing.assert_close(camera_contrastive_loss(matched, matched * 3.0), expected)


def test_loss_gradcheck_float64():
    u = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    v = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(camera_contrastive_loss, (u, v))


def test_loss_bad_inputs(without_shape_checker):
    u = torch.randn(4, 3)
    with pytest.raises(ValueError, match="temperature"):
        camera_contrastive_loss(u, u, temperature=0.0)
    with pytest.raises(ValueError, match="image_embeddings"):
        camera_contrastive_loss(u[:0], u[:0])
    with pytest.raises(ValueError, match="camera_embeddings"):
        camera_contrastive_loss(u, torch.randn(4, 5))
    bad = u.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match="`camera_embeddings` must be finite"):
        camera_contrastive_loss(u, bad)


def test_forward_contrastive_shares_the_logits_of_forward():
    torch.manual_seed(0)
    for conditioned in (True, False):
        discriminator = _discriminator(camera_conditioned=conditioned, contrastive_dim=8)
        images, labels = torch.rand(4, 16, 16, 3), torch.rand(4, 25)
        out = discriminator.forward_contrastive(images, labels)
        expected = discriminator(images, labels if conditioned else None)
        torch.testing.assert_close(out.logits, expected, rtol=0, atol=0)
        assert out.image_embeddings.shape == out.camera_embeddings.shape == (4, 8)


def test_the_branch_is_optional_and_leaves_the_default_unchanged():
    torch.manual_seed(0)
    plain = _discriminator()
    torch.manual_seed(0)
    with_branch = _discriminator(contrastive_dim=8)
    assert set(plain.state_dict()) < set(with_branch.state_dict())
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(with_branch.state_dict()[name], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="contrastive_dim"):
        plain.forward_contrastive(torch.rand(2, 16, 16, 3), torch.rand(2, 25))
    with pytest.raises(ValueError, match="contrastive_dim"):
        _discriminator(contrastive_dim=0)


def test_empty_batch_gives_empty_outputs():
    out = _discriminator(contrastive_dim=8).forward_contrastive(
        torch.rand(0, 16, 16, 3), torch.rand(0, 25)
    )
    assert out.logits.shape == (0,) and out.image_embeddings.shape == (0, 8)


@pytest.mark.slow
def test_the_branch_learns_to_tell_cameras_apart():
    """Images whose content encodes their camera (a bright column at the camera's azimuth):
    a few steps of the loss take it well below chance (log B)."""
    torch.manual_seed(0)
    discriminator = _discriminator(contrastive_dim=8)
    optimiser = torch.optim.Adam(discriminator.parameters(), lr=0.01)
    batch = 8
    column = torch.arange(batch) * 2
    images = torch.zeros(batch, 16, 16, 3)
    images[torch.arange(batch), :, column] = 1.0
    labels = torch.randn(batch, 25)  # one distinct camera per column
    losses = []
    for _ in range(60):
        out = discriminator.forward_contrastive(images, labels)
        loss = camera_contrastive_loss(out.image_embeddings, out.camera_embeddings)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * math.log(batch) < losses[0]
