"""GAN losses, R1, EMA, the discriminator and safetensors checkpoints."""

import json

import pytest
import torch
import torch.nn.functional as F

from aware3d.training import (
    CameraConditionedDiscriminator,
    discriminator_loss,
    ema_beta,
    generator_loss,
    lazy_r1_weight,
    load_checkpoint,
    make_ema,
    r1_penalty,
    save_checkpoint,
    update_ema,
)


def test_logistic_losses_match_their_formulas():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0, 1.0])
    expected_d = F.softplus(fake).mean() + F.softplus(-real).mean()
    torch.testing.assert_close(discriminator_loss(real, fake), expected_d)
    torch.testing.assert_close(generator_loss(fake), F.softplus(-fake).mean())
    # non-saturating: the generator still gets gradient when D confidently rejects fakes
    fake = torch.tensor([-10.0], requires_grad=True)
    generator_loss(fake).backward()
    assert fake.grad.abs().item() > 0.99


def test_r1_penalty_equals_squared_input_gradient():
    x = torch.randn(3, 4, 4, 2, requires_grad=True)
    weights = torch.randn(4, 4, 2)
    logits = (x.square() * weights).sum(dim=(1, 2, 3))
    expected = (2 * x * weights).square().flatten(1).sum(1).mean()
    penalty = r1_penalty(logits, x)
    torch.testing.assert_close(penalty, expected)
    penalty.backward()  # differentiable (create_graph)
    assert x.grad is not None


def test_lazy_r1_schedule():
    assert lazy_r1_weight(0, 1.0, 16) == 8.0
    assert lazy_r1_weight(5, 1.0, 16) == 0.0
    with pytest.raises(ValueError, match="`interval`"):
        lazy_r1_weight(0, 1.0, 0)
    with pytest.raises(ValueError, match="`real_images` must require grad"):
        r1_penalty(torch.zeros(2), torch.zeros(2, 3))


def test_ema_tracks_parameters_and_copies_buffers():
    model = torch.nn.BatchNorm1d(3)
    ema = make_ema(model)
    assert not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.running_mean.fill_(5.0)
    update_ema(ema, model, beta=0.5)
    torch.testing.assert_close(ema.weight, torch.full((3,), 2.0))
    torch.testing.assert_close(ema.running_mean, torch.full((3,), 5.0))
    assert ema_beta(32, 10_000) == pytest.approx(0.5 ** (32 / 10_000))
    with pytest.raises(ValueError, match="`beta` must be in"):
        update_ema(ema, model, beta=1.0)


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.slow
def test_discriminator_shapes_and_gradients(resolution):
    torch.manual_seed(0)
    disc = CameraConditionedDiscriminator(resolution, channel_max=64)
    images = torch.randn(4, resolution, resolution, 3, requires_grad=True)
    labels = torch.randn(4, 25)
    logits = disc(images, labels)
    assert logits.shape == (4,)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    assert images.grad is not None
    assert all(p.grad is not None for p in disc.parameters())
    # the camera matters
    assert not torch.allclose(disc(images, labels), disc(images, labels.flip(0)))


def test_unconditional_discriminator_and_odd_batches():
    disc = CameraConditionedDiscriminator(16, camera_conditioned=False, channel_max=32)
    assert disc(torch.randn(3, 16, 16, 3)).shape == (3,)


@pytest.mark.usefixtures("without_shape_checker")
def test_discriminator_bad_input():
    with pytest.raises(ValueError, match="power of two"):
        CameraConditionedDiscriminator(48)
    disc = CameraConditionedDiscriminator(16, channel_max=32)
    with pytest.raises(ValueError, match=r"`images` must have shape \[B, 16, 16, 3\]"):
        disc(torch.randn(2, 3, 16, 16), torch.randn(2, 25))
    with pytest.raises(ValueError, match="`labels` are required"):
        disc(torch.randn(2, 16, 16, 3))
    with pytest.raises(ValueError, match=r"`labels` must have shape \[B, 25\] = \[2, 25\]"):
        disc(torch.randn(2, 16, 16, 3), torch.randn(2, 16))
    assert disc(torch.randn(0, 16, 16, 3), torch.randn(0, 25)).shape == (0,)  # empty: no crash
    with pytest.raises(ValueError, match="`images` must be finite"):
        disc(torch.full((2, 16, 16, 3), float("nan")), torch.randn(2, 25))


def test_checkpoint_round_trip_without_pickle(tmp_path):
    torch.manual_seed(0)
    disc = CameraConditionedDiscriminator(16, channel_max=32)
    other = torch.nn.Linear(3, 2)
    save_checkpoint(tmp_path / "ckpt", {"D": disc, "head": other}, {"step": 7, "lr": 0.002})
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["step"] == 7
    raw = (tmp_path / "ckpt" / "model.safetensors").read_bytes()
    assert b"pickle" not in raw[:200]
    torch.manual_seed(1)
    disc2 = CameraConditionedDiscriminator(16, channel_max=32)
    other2 = torch.nn.Linear(3, 2)
    config = load_checkpoint(tmp_path / "ckpt", {"D": disc2, "head": other2})
    assert config == {"lr": 0.002, "step": 7}
    for a, b in zip(disc.state_dict().values(), disc2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="does not match module 'head'"):
        load_checkpoint(tmp_path / "ckpt", {"head": torch.nn.Linear(4, 2, bias=False)})
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_checkpoint(tmp_path, {"head": other2})
