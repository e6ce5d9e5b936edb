"""StyleGAN2 layers against explicit per-sample-weight oracles."""

import math

import pytest
import torch
import torch.nn.functional as F

from aware3d.nn import EqualizedLinear, ModulatedLinear


def modulated_oracle(layer: ModulatedLinear, x, w):
    styles = layer.affine(w)
    weight = layer.weight * layer.weight_gain
    per_sample = weight[None] * styles[:, None, :]  # [B, out, in]
    if layer.demodulate:
        per_sample = per_sample * torch.rsqrt(per_sample.square().sum(-1, keepdim=True) + 1e-8)
    y = torch.einsum("bni,boi->bno", x, per_sample) + layer.bias
    return F.leaky_relu(y, 0.2) * math.sqrt(2) if layer.leaky_relu else y


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_linear_matches_per_sample_weights(demodulate):
    torch.manual_seed(0)
    layer = ModulatedLinear(16, 8, 32, demodulate=demodulate, leaky_relu=demodulate)
    x, w = torch.randn(3, 50, 16), torch.randn(3, 32)
    torch.testing.assert_close(layer(x, w), modulated_oracle(layer, x, w), atol=1e-5, rtol=1e-5)


def test_modulated_linear_accepts_any_point_shape():
    layer = ModulatedLinear(4, 5, 6)
    w = torch.randn(2, 6)
    assert layer(torch.randn(2, 4), w).shape == (2, 5)
    assert layer(torch.randn(2, 3, 7, 4), w).shape == (2, 3, 7, 5)


def test_demodulation_keeps_unit_variance():
    torch.manual_seed(1)
    layer = ModulatedLinear(256, 256, 64, leaky_relu=False)
    y = layer(torch.randn(4, 2048, 256), torch.randn(4, 64) * 5)
    assert y.std().item() == pytest.approx(1.0, rel=0.1)


def test_equalized_linear_runtime_scale():
    layer = EqualizedLinear(64, 32, lr_multiplier=0.01, bias_init=1.0)
    x = torch.randn(10, 64)
    expected = x @ (layer.weight * 0.01 / 8).T + layer.bias * 0.01
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(layer.bias * 0.01, torch.ones(32))


def test_gradcheck_float64():
    torch.manual_seed(2)
    layer = ModulatedLinear(3, 2, 4).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x, w))
    dense = EqualizedLinear(3, 2, leaky_relu=True).double()
    assert torch.autograd.gradcheck(dense, (x,))


@pytest.mark.usefixtures("without_shape_checker")
def test_bad_input():
    layer = ModulatedLinear(4, 5, 6)
    with pytest.raises(ValueError, match=r"`w` must have shape \[2, 6\], got \[2, 5\]"):
        layer(torch.randn(2, 4), torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"`w` must have shape \[B, w_dim\] \(B from `x`\)"):
        layer(torch.randn(3, 4), torch.randn(2, 6))
    with pytest.raises(ValueError, match=r"`x` must have shape \[\.\.\., 4\], got \[2, 3\]"):
        layer(torch.randn(2, 3), torch.randn(2, 6))
    with pytest.raises(ValueError, match="`x` has dtype torch.float64 but ModulatedLinear's"):
        layer(torch.randn(2, 4).double(), torch.randn(2, 6).double())
    assert layer(torch.randn(0, 4), torch.randn(0, 6)).shape == (0, 5)  # an empty batch is fine
    with pytest.raises(ValueError, match="`in_features` must be an integer >= 1"):
        EqualizedLinear(0, 3)
