"""MappingNetwork: shapes, conditioning, truncation and the tracked w_avg."""

import jaxtyping
import pytest
import torch

from aware3d.nn.mapping import MappingNetwork


def make(**kwargs):
    torch.manual_seed(0)
    config = {"z_dim": 16, "w_dim": 8, "num_ws": 5, "num_layers": 3}
    config.update(kwargs)
    return MappingNetwork(**config)


def test_shapes_and_broadcast():
    mapping = make()
    ws = mapping(torch.randn(4, 16))
    assert ws.shape == (4, 5, 8)
    torch.testing.assert_close(ws[:, 0], ws[:, 4])


def test_default_has_eight_layers_and_small_lr():
    mapping = MappingNetwork(16, 8, 3)
    assert len(mapping.layers) == 8
    assert all(layer.lr_multiplier == 0.01 for layer in mapping.layers)


def test_z_is_normalised_to_unit_second_moment():
    mapping = make().eval()
    z = torch.randn(3, 16)
    w = mapping(z)
    # z * 7 rounds, and so does its normalisation, by an ulp or two; three layers (k <= 16, gain
    # sqrt(2)) pass that on and add their own rounding, about sqrt(k) = 4 float32 eps each of the
    # activations, whose size the largest output measures: ~50 eps if every error added up.
    # Allow 100 eps of it. Measured: at most 6.6 eps (300 seeds, 4 numerics configurations); a
    # missing normalisation changes w by O(1).
    atol = 100 * torch.finfo(torch.float32).eps * w.abs().max().item()
    torch.testing.assert_close(mapping(z * 7.0), w, rtol=0, atol=atol)


def test_camera_label_conditioning():
    mapping = make(c_dim=25).eval()
    z = torch.randn(2, 16)
    c = torch.randn(2, 25)
    assert mapping(z, c).shape == (2, 5, 8)
    assert not torch.allclose(mapping(z, c), mapping(z, c.flip(0)))
    with pytest.raises(ValueError, match="`c`"):
        mapping(z)
    with pytest.raises(ValueError, match="c_dim = 0"):
        make()(z, c)


def test_w_avg_tracks_in_training_mode_only():
    mapping = make(w_avg_beta=0.5)
    z = torch.randn(4, 16)
    assert mapping.w_avg.abs().sum() == 0
    mapping.eval()
    mapping(z)
    assert mapping.w_avg.abs().sum() == 0  # eval mode: no side effect
    mapping.train()
    ws = mapping(z)
    torch.testing.assert_close(mapping.w_avg, 0.5 * ws[:, 0].detach().mean(0))
    snapshot = mapping.w_avg.clone()
    mapping(z, update_w_avg=False)
    torch.testing.assert_close(mapping.w_avg, snapshot)


def test_truncation():
    mapping = make()
    mapping(torch.randn(64, 16))  # training mode: sets a non-zero w_avg
    mapping.eval()
    z = torch.randn(3, 16)
    full = mapping(z)
    torch.testing.assert_close(mapping(z, psi=1.0), full)
    zero = mapping(z, psi=0.0)
    torch.testing.assert_close(zero, mapping.w_avg.expand_as(zero))
    half = mapping(z, psi=0.5, cutoff=2)
    torch.testing.assert_close(half[:, :2], 0.5 * (full[:, :2] + mapping.w_avg))
    torch.testing.assert_close(half[:, 2:], full[:, 2:])


def test_gradients_and_determinism():
    a, b = make(), make()
    z = torch.randn(2, 16, requires_grad=True)
    ws = a(z)
    torch.testing.assert_close(ws, b(z))
    ws.sum().backward()
    assert z.grad is not None
    assert torch.isfinite(z.grad).all()


def test_bad_inputs_are_refused():
    mapping = make()
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="z"):
        mapping(torch.randn(2, 15))
    with pytest.raises((ValueError, jaxtyping.TypeCheckError)):
        mapping(torch.randn(16))
    with pytest.raises(ValueError, match="cutoff"):
        mapping(torch.randn(2, 16), psi=0.5, cutoff=-1)
    with pytest.raises(ValueError, match="c_dim"):
        MappingNetwork(16, 8, 5, c_dim=-1)
    with pytest.raises(ValueError, match="num_ws"):
        MappingNetwork(16, 8, 0)
