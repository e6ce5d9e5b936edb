"""StyleGAN2's 2D layers against explicit references: FIR resampling, modulated conv, blocks."""

import math

import pytest
import torch
import torch.nn.functional as F

from aware3d.nn import (
    ModulatedConv2d,
    SynthesisBlock,
    SynthesisLayer,
    ToRGBLayer,
    fir_taps,
    modulated_conv2d,
    upfirdn2d,
    upsample2d,
)
from aware3d.nn.layers import NOISE_MODES, STYLEGAN2_FIR

D64 = torch.float64


# ---------------------------------------------------------------------- references


def upfirdn2d_loop(x, taps, up=1, down=1, padding=(0, 0, 0, 0), gain=1.0):
    """upfirdn2d by its definition, one output pixel at a time (zero insertion, pad, convolve)."""
    left, right, top, bottom = padding
    batch, channels, height, width = x.shape
    up_h, up_w = height * up, width * up
    z = torch.zeros(batch, channels, up_h, up_w, dtype=x.dtype)
    z[:, :, ::up, ::up] = x
    full_h, full_w = up_h + top + bottom, up_w + left + right
    padded = torch.zeros(batch, channels, full_h, full_w, dtype=x.dtype)
    for i in range(full_h):
        for j in range(full_w):
            si, sj = i - top, j - left  # index into the upsampled image
            if 0 <= si < up_h and 0 <= sj < up_w:
                padded[:, :, i, j] = z[:, :, si, sj]
    size = len(taps)
    f2 = gain * torch.outer(taps, taps)
    out_h, out_w = full_h - size + 1, full_w - size + 1
    y = torch.zeros(batch, channels, out_h, out_w, dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            acc = torch.zeros(batch, channels, dtype=x.dtype)
            for a in range(size):
                for b in range(size):
                    # true convolution: the filter is flipped against the window
                    acc = acc + padded[:, :, i + a, j + b] * f2[size - 1 - a, size - 1 - b]
            y[:, :, i, j] = acc
    return y[:, :, ::down, ::down]


def per_sample_modconv(x, weight, styles, demodulate=True, upsample=False):
    """Modulated convolution with explicit per-sample weights, one sample at a time."""
    outs = []
    for b in range(x.shape[0]):
        w = weight * styles[b][None, :, None, None]
        if demodulate:
            w = w / torch.sqrt(w.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        xb = x[b : b + 1]
        k = weight.shape[-1]
        if not upsample:
            outs.append(F.conv2d(xb, w, padding=k // 2))
            continue
        # transposed conv = zero insertion + full true convolution (last row/column is zero)
        h, wd = xb.shape[2:]
        z = torch.zeros(1, xb.shape[1], 2 * h, 2 * wd, dtype=x.dtype)
        z[:, :, ::2, ::2] = xb
        y = F.conv2d(z, w.flip(2, 3), padding=k - 1)[:, :, :-1, :-1]
        # then the 4-tap filter, padded back to 2H: 1 + 1 for k = 3, 2 + 2 for k = 1
        before, after = 2 + k // 2 - (k - 1), 1 + k // 2 - (k - 2)
        taps = fir_taps(dtype=x.dtype)
        outs.append(upfirdn2d_loop(y, taps, padding=(before, after, before, after), gain=4.0))
    return torch.cat(outs)


# ---------------------------------------------------------------------- FIR resampling


def test_fir_taps_are_normalised_binomial():
    torch.testing.assert_close(fir_taps(), torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8)
    assert STYLEGAN2_FIR == (1.0, 3.0, 3.0, 1.0)
    assert fir_taps([2.0, 2.0], dtype=D64).dtype == D64
    with pytest.raises(ValueError, match="`taps`"):
        fir_taps([1.0, -1.0])


@pytest.mark.parametrize(
    ("up", "down", "padding", "taps"),
    [
        (1, 1, (1, 2, 2, 1), (1, 3, 3, 1)),
        (2, 1, (2, 1, 2, 1), (1, 3, 3, 1)),
        (1, 2, (1, 1, 1, 1), (1, 3, 3, 1)),
        (2, 2, (0, 3, 1, 2), (1, 2, 1)),
        (3, 1, (-1, 2, 0, 0), (1, 3, 3, 1)),  # negative padding crops
        (1, 1, (0, 0, 0, 0), (0.2, 0.5, 0.3)),  # asymmetric taps: convolution, not correlation
    ],
)
def test_upfirdn2d_matches_loop(up, down, padding, taps):
    x = torch.randn(2, 3, 5, 6, dtype=D64)
    t = torch.tensor(taps, dtype=D64)
    expected = upfirdn2d_loop(x, t, up, down, padding, gain=1.7)
    actual = upfirdn2d(x, t, up=up, down=down, padding=padding, gain=1.7)
    torch.testing.assert_close(actual, expected)


def test_upsample2d_doubles_and_keeps_constants():
    x = torch.randn(2, 3, 5, 7, dtype=D64)
    y = upsample2d(x)
    assert y.shape == (2, 3, 10, 14)
    taps = fir_taps(dtype=D64)
    torch.testing.assert_close(y, upfirdn2d_loop(x, taps, 2, 1, (2, 1, 2, 1), gain=4.0))
    ones = upsample2d(torch.ones(1, 1, 6, 6, dtype=D64))
    torch.testing.assert_close(ones[..., 2:-2, 2:-2], torch.ones(1, 1, 8, 8, dtype=D64))


# ---------------------------------------------------------------------- modulated convolution


@pytest.mark.parametrize("upsample", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("kernel", [1, 3])
def test_modulated_conv2d_matches_per_sample_weights(upsample, demodulate, kernel):
    x = torch.randn(3, 4, 5, 5, dtype=D64)
    weight = torch.randn(6, 4, kernel, kernel, dtype=D64)
    styles = torch.randn(3, 4, dtype=D64) + 1
    fast = modulated_conv2d(x, weight, styles, demodulate=demodulate, upsample=upsample)
    expected = per_sample_modconv(x, weight, styles, demodulate, upsample)
    assert fast.shape == (3, 6, 10 if upsample else 5, 10 if upsample else 5)
    torch.testing.assert_close(fast, expected)


def test_modulated_conv2d_empty_batch():
    y = modulated_conv2d(torch.randn(0, 2, 4, 4), torch.randn(3, 2, 3, 3), torch.randn(0, 2))
    assert y.shape == (0, 3, 4, 4)
    y = modulated_conv2d(
        torch.randn(0, 2, 4, 4), torch.randn(3, 2, 3, 3), torch.randn(0, 2), upsample=True
    )
    assert y.shape == (0, 3, 8, 8)


def test_modulated_conv_module_styles_and_gains():
    conv = ModulatedConv2d(8, 4, 16, upsample=True).double()
    assert conv.affine.bias is not None
    torch.testing.assert_close(conv.affine.bias, torch.ones(8, dtype=D64))  # styles start at 1
    x, w = torch.randn(2, 8, 4, 4, dtype=D64), torch.randn(2, 16, dtype=D64)
    expected = per_sample_modconv(x, conv.weight, conv.affine(w), True, True)
    torch.testing.assert_close(conv(x, w), expected)
    # toRGB: 1x1, no demodulation, styles scaled by 1 / sqrt(in * k * k), plus a bias
    torgb = ToRGBLayer(8, 3, 16).double()
    with torch.no_grad():
        torgb.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    styles = torgb.conv.affine(w) / math.sqrt(8)
    expected = per_sample_modconv(x, torgb.conv.weight, styles, demodulate=False)
    torch.testing.assert_close(torgb(x, w), expected + torgb.bias[:, None, None])


def test_demodulated_output_has_unit_variance():
    conv = ModulatedConv2d(128, 128, 32)
    y = conv(torch.randn(4, 128, 16, 16), torch.randn(4, 32) * 3)
    assert y.std().item() == pytest.approx(1.0, rel=0.1)


# ---------------------------------------------------------------------- synthesis layer


def test_synthesis_layer_formula_and_init():
    layer = SynthesisLayer(4, 5, 8, resolution=8, upsample=True).double()
    assert layer.noise_strength.item() == 0.0 and layer.noise_const.shape == (8, 8)
    assert not any(name == "noise_const" for name, _ in layer.named_parameters())
    with torch.no_grad():
        layer.noise_strength.fill_(0.5)
        layer.bias.copy_(torch.linspace(-1, 1, 5))
    x, w = torch.randn(2, 4, 4, 4, dtype=D64), torch.randn(2, 8, dtype=D64)
    conv = per_sample_modconv(x, layer.conv.weight, layer.conv.affine(w), True, True)
    pre = conv + 0.5 * layer.noise_const + layer.bias[:, None, None]
    expected = F.leaky_relu(pre, 0.2) * math.sqrt(2)
    torch.testing.assert_close(layer(x, w, noise_mode="const"), expected)


def test_noise_modes():
    layer = SynthesisLayer(3, 3, 4, resolution=6)
    x, w = torch.randn(2, 3, 6, 6), torch.randn(2, 4)
    # strength starts at 0: every mode gives the same output
    none = layer(x, w, noise_mode="none")
    for mode in NOISE_MODES:
        torch.testing.assert_close(layer(x, w, noise_mode=mode), none)
    with torch.no_grad():
        layer.noise_strength.fill_(1.0)
    torch.testing.assert_close(layer(x, w, noise_mode="const"), layer(x, w, noise_mode="const"))
    torch.testing.assert_close(layer(x, w, noise_mode="none"), none)  # "none" = strength 0
    a = layer(x, w, generator=torch.Generator().manual_seed(3))
    b = layer(x, w, generator=torch.Generator().manual_seed(3))
    c = layer(x, w, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c) and not torch.allclose(a, none)
    # the noise is per pixel, shared by the channels
    difference = layer(x, w, noise_mode="const") - none
    without = SynthesisLayer(3, 3, 4, resolution=6, use_noise=False)
    assert not hasattr(without, "noise_strength")
    torch.testing.assert_close(without(x, w), without(x, w, noise_mode="random"))
    assert difference.shape == (2, 3, 6, 6)


def test_noise_is_shared_by_channels():
    layer = SynthesisLayer(3, 4, 4, resolution=6)
    with torch.no_grad():
        layer.noise_strength.fill_(100.0)  # noise dominates: the leaky ReLU keeps its sign
    x, w = torch.zeros(1, 3, 6, 6), torch.randn(1, 4)
    y = layer(x, w, noise_mode="const")
    expected = F.leaky_relu(100.0 * layer.noise_const, 0.2) * math.sqrt(2)
    torch.testing.assert_close(y, expected.expand(1, 4, 6, 6))


# ---------------------------------------------------------------------- synthesis block


def test_first_block_from_constant():
    block = SynthesisBlock(0, 6, 8, resolution=4, image_channels=3)
    assert block.num_conv == 1 and block.num_ws == 2 and block.const.shape == (6, 4, 4)
    ws = torch.randn(2, 2, 8)
    x, image = block(None, None, ws, noise_mode="const")
    expected_x = block.conv1(block.const[None].expand(2, -1, -1, -1), ws[:, 0], noise_mode="const")
    torch.testing.assert_close(x, expected_x)
    torch.testing.assert_close(image, block.torgb(expected_x, ws[:, 1]))


@pytest.mark.parametrize("upsample", [True, False])
def test_block_skip_path(upsample):
    block = SynthesisBlock(4, 5, 8, resolution=8, image_channels=3, upsample=upsample).double()
    assert block.num_conv == 2 and block.num_ws == 3
    r = 4 if upsample else 8
    assert block.in_resolution == r
    x = torch.randn(2, 4, r, r, dtype=D64)
    image = torch.randn(2, 3, r, r, dtype=D64)
    ws = torch.randn(2, 3, 8, dtype=D64)
    out_x, out_image = block(x, image, ws, noise_mode="none")
    expected_x = block.conv1(block.conv0(x, ws[:, 0], noise_mode="none"), ws[:, 1])
    skip = (
        upfirdn2d_loop(image, fir_taps(dtype=D64), 2, 1, (2, 1, 2, 1), 4.0) if upsample else image
    )
    assert out_x.shape == (2, 5, 8, 8) and out_image.shape == (2, 3, 8, 8)
    torch.testing.assert_close(out_x, expected_x)
    torch.testing.assert_close(out_image, skip + block.torgb(expected_x, ws[:, 2]))


# ---------------------------------------------------------------------- gradients


def gradcheck(function, *inputs):
    # fast mode (random projections of the Jacobian) keeps these well under a second each
    return torch.autograd.gradcheck(function, inputs, fast_mode=True)


@pytest.mark.slow
def test_gradcheck_float64():
    torch.manual_seed(1)
    x = torch.randn(1, 2, 3, 3, dtype=D64, requires_grad=True)
    taps = fir_taps(dtype=D64)
    assert gradcheck(lambda t: upfirdn2d(t, taps, up=2, padding=1, down=2), x)
    assert gradcheck(upsample2d, x)
    weight = torch.randn(2, 2, 3, 3, dtype=D64, requires_grad=True)
    styles = torch.randn(2, 2, dtype=D64, requires_grad=True)
    x2 = torch.randn(2, 2, 3, 3, dtype=D64, requires_grad=True)
    for upsample in (False, True):
        for demodulate in (False, True):
            assert gradcheck(
                lambda a, b, c, u=upsample, d=demodulate: modulated_conv2d(
                    a, b, c, upsample=u, demodulate=d
                ),
                x2,
                weight,
                styles,
            )
    layer = SynthesisLayer(2, 2, 3, resolution=6, upsample=True).double()
    with torch.no_grad():
        layer.noise_strength.fill_(0.3)
    w = torch.randn(2, 3, dtype=D64, requires_grad=True)
    assert gradcheck(lambda a, b: layer(a, b, noise_mode="const"), x2, w)
    torgb = ToRGBLayer(2, 1, 3).double()
    assert gradcheck(torgb, x2, w)
    block = SynthesisBlock(2, 2, 3, resolution=6, image_channels=1).double()
    image = torch.randn(2, 1, 3, 3, dtype=D64, requires_grad=True)
    ws = torch.randn(2, 3, 3, dtype=D64, requires_grad=True)
    assert gradcheck(lambda a, b, c: block(a, b, c, noise_mode="const"), x2, image, ws)


# ---------------------------------------------------------------------- bad input


@pytest.mark.usefixtures("without_shape_checker")
def test_bad_input():
    block = SynthesisBlock(4, 5, 8, resolution=8)
    x, image = torch.randn(2, 4, 4, 4), torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"`ws` must have shape \[B, 3, 8\], got \[2, 2, 8\]"):
        block(x, image, torch.randn(2, 2, 8))
    with pytest.raises(ValueError, match=r"`x` must have shape \[2, 4, 4, 4\], got \[2, 3, 4, 4\]"):
        block(torch.randn(2, 3, 4, 4), image, torch.randn(2, 3, 8))
    with pytest.raises(
        ValueError, match=r"`image` must have shape .*\[2, 3, 4, 4\].*got \[2, 3, 8, 8\]"
    ):
        block(x, torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="`x` .* is required"):
        block(None, image, torch.randn(2, 3, 8))
    first = SynthesisBlock(0, 4, 8, resolution=4)
    with pytest.raises(ValueError, match="`x` must be None for the first block"):
        first(torch.randn(2, 4, 4, 4), None, torch.randn(2, 2, 8))
    with pytest.raises(ValueError, match="`noise_mode` must be one of"):
        block(x, image, torch.randn(2, 3, 8), noise_mode="fixed")
    with pytest.raises(TypeError, match="`generator` must be a torch.Generator"):
        block(x, image, torch.randn(2, 3, 8), generator=0)
    layer = SynthesisLayer(4, 5, 8, resolution=8)
    with pytest.raises(ValueError, match=r"`x` must have shape \[B, 4, 8, 8\], got \[2, 4, 4, 4\]"):
        layer(x, torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"`w` must have shape \[2, 8\], got \[2, 7\]"):
        layer(torch.randn(2, 4, 8, 8), torch.randn(2, 7))
    with pytest.raises(ValueError, match="`x` has dtype torch.float64"):
        layer(torch.randn(2, 4, 8, 8).double(), torch.randn(2, 8).double())
    with pytest.raises(ValueError, match="`kernel_size` must be odd"):
        ModulatedConv2d(4, 4, 8, kernel_size=2)
    with pytest.raises(ValueError, match="`in_channels` must be an integer >= 1"):
        ModulatedConv2d(0, 4, 8)
    with pytest.raises(ValueError, match="`padding`"):
        upfirdn2d(torch.randn(1, 1, 2, 2), fir_taps(), padding=-1)
    with pytest.raises(ValueError, match="`up` must be an integer >= 1"):
        upfirdn2d(torch.randn(1, 1, 4, 4), fir_taps(), up=0)
