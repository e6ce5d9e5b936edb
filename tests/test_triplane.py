"""EG3D's tri-plane backbone and OSG decoder: configurations, style routing, released constants."""

import math
import time

import pytest
import torch
import torch.nn.functional as F

from aware3d.functional import sample_triplane
from aware3d.nn import (
    SynthesisBlock,
    TriplaneDecoder,
    TriplaneDecoderOutput,
    TriplaneGenerator,
    eg3d_triplane_256,
    small_triplane,
)

D64 = torch.float64


def count(module):
    return sum(p.numel() for p in module.parameters())


def synthesis_parameter_count(w_dim, resolution, image_channels, channel_base, channel_max):
    """Parameters of a StyleGAN2 "skip" synthesis network, from the layer sizes alone.

    A 3x3 synthesis layer I -> O: affine (w_dim x I + I), weight O x I x 9, bias O, noise
    strength 1.
    A toRGB I -> C: affine (w_dim x I + I), weight C x I, bias C. The 4x4 block has the constant
    (O x 4 x 4), one layer and a toRGB; every other block two layers and a toRGB.
    """

    def layer(i, o):
        return w_dim * i + i + 9 * o * i + o + 1

    def torgb(i):
        return w_dim * i + i + image_channels * i + image_channels

    total, previous = 0, 0
    res = 4
    while res <= resolution:
        channels = min(channel_base // res, channel_max)
        if previous == 0:
            total += channels * 16 + layer(channels, channels)
        else:
            total += layer(previous, channels) + layer(channels, channels)
        total += torgb(channels)
        previous = channels
        res *= 2
    return total


# ---------------------------------------------------------------------- generator


def test_eg3d_256_configuration_and_parameter_count():
    generator = eg3d_triplane_256()
    assert generator.num_ws == 14
    assert generator.block_resolutions == (4, 8, 16, 32, 64, 128, 256)
    channels = [block.out_channels for block in generator.blocks]
    assert channels == [512, 512, 512, 512, 512, 256, 128]
    assert {block.torgb.conv.out_channels for block in generator.blocks} == {96}
    # Pinned: 28,207,533 is also the parameter count of EG3D's `backbone.synthesis` (its
    # SynthesisNetwork(w_dim=512, img_resolution=256, img_channels=96, channel_base=32768,
    # channel_max=512)); the count below re-derives it from the layer sizes.
    assert count(generator) == 28_207_533
    assert synthesis_parameter_count(512, 256, 96, 32768, 512) == 28_207_533


def test_small_preset_is_small_and_fast():
    generator = small_triplane()
    assert count(generator) == 94_471
    assert count(generator) == synthesis_parameter_count(64, 32, 48, 1024, 32)
    assert generator.num_ws == 8
    ws = torch.randn(2, generator.num_ws, 64)
    generator(ws)  # warm-up
    start = time.perf_counter()
    planes = generator(ws)
    # tens of milliseconds on an idle core; generous here for the shape checker and shared CPUs
    assert time.perf_counter() - start < 3.0
    assert planes.shape == (2, 3, 16, 32, 32)


@pytest.mark.parametrize("resolution", [4, 8, 16, 32])
def test_shapes_and_num_ws(resolution):
    generator = TriplaneGenerator(8, resolution, 3, channel_base=64, channel_max=8)
    assert generator.num_ws == 2 * int(math.log2(resolution)) - 2
    planes = generator(torch.randn(2, generator.num_ws, 8))
    assert planes.shape == (2, 3, 3, resolution, resolution)
    assert generator(torch.randn(0, generator.num_ws, 8)).shape == (0, 3, 3, resolution, resolution)


def test_style_routing_and_plane_layout():
    # Which w goes where, written out for 4 -> 16: block 4 reads ws[0] (conv) and ws[1] (toRGB),
    # block 8 reads ws[1], ws[2] (convs) and ws[3] (toRGB), block 16 ws[3], ws[4] and ws[5].
    generator = TriplaneGenerator(6, 16, 2, channel_base=64, channel_max=8)
    assert generator.num_ws == 6
    ws = torch.randn(2, 6, 6)
    x, image = None, None
    for block, indices in zip(generator.blocks, ([0, 1], [1, 2, 3], [3, 4, 5]), strict=True):
        x, image = block(x, image, ws[:, indices], noise_mode="const")
    planes = generator(ws, noise_mode="const")
    assert image is not None and image.shape == (2, 6, 16, 16)
    for p in range(3):
        for f in range(2):
            torch.testing.assert_close(planes[:, p, f], image[:, 2 * p + f])


def test_noise_modes():
    generator = TriplaneGenerator(8, 8, 2, channel_base=64, channel_max=8)
    ws = torch.randn(2, generator.num_ws, 8)
    # all noise strengths start at 0: every mode gives the same planes
    base = generator(ws, noise_mode="none")
    torch.testing.assert_close(generator(ws), base)
    for name, parameter in generator.named_parameters():
        if name.endswith("noise_strength"):
            parameter.data.fill_(0.5)
    torch.testing.assert_close(generator(ws, noise_mode="none"), base)
    const = generator(ws, noise_mode="const")
    torch.testing.assert_close(generator(ws, noise_mode="const"), const)
    assert not torch.allclose(const, base)
    a = generator(ws, generator=torch.Generator().manual_seed(0))
    b = generator(ws, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, const)


def test_gradcheck_float64():
    generator = TriplaneGenerator(3, 8, 1, channel_base=16, channel_max=2).double()
    ws = torch.randn(1, generator.num_ws, 3, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda w: generator(w, noise_mode="const"), (ws,), fast_mode=True
    )


@pytest.mark.usefixtures("without_shape_checker")
def test_bad_input():
    generator = small_triplane()
    with pytest.raises(ValueError, match=r"`ws` must have shape \[B, 8, 64\], got \[2, 7, 64\]"):
        generator(torch.randn(2, 7, 64))
    with pytest.raises(ValueError, match=r"`ws` must have shape \[B, 8, 64\], got \[2, 8, 32\]"):
        generator(torch.randn(2, 8, 32))
    with pytest.raises(ValueError, match="`noise_mode` must be one of"):
        generator(torch.randn(2, 8, 64), noise_mode="off")
    with pytest.raises(ValueError, match="`ws` must be finite"):
        generator(torch.full((2, 8, 64), float("nan")))
    with pytest.raises(ValueError, match="`ws` has dtype torch.float64"):
        generator(torch.randn(2, 8, 64, dtype=D64))
    with pytest.raises(ValueError, match="`resolution` must be a power of two >= 4, got 48"):
        TriplaneGenerator(8, 48)
    with pytest.raises(ValueError, match="`channel_base`"):
        TriplaneGenerator(8, 64, channel_base=32)
    with pytest.raises(ValueError, match="`ws` must have shape"):
        SynthesisBlock(0, 4, 8, 4)(None, None, torch.randn(2, 3, 8))


# ---------------------------------------------------------------------- decoder


def test_decoder_released_constants():
    # EG3D's `training/triplane.py` OSGDecoder: mean over the three planes, FullyConnectedLayer
    # 32 -> 64, Softplus, FullyConnectedLayer 64 -> 1 + 32; sigma = x[..., 0] (no activation),
    # rgb = sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001 (Mip-NeRF's sigmoid clamping).
    decoder = TriplaneDecoder().double()
    assert decoder.hidden == 64
    assert count(decoder) == 32 * 64 + 64 + 64 * 33 + 33 == 4257
    with torch.no_grad():
        for parameter in decoder.parameters():
            parameter.normal_()
    features = torch.randn(2, 3, 5, 32, dtype=D64)
    x = features.mean(dim=1)
    h = F.softplus(x @ decoder.hidden_layer.weight.T / math.sqrt(32) + decoder.hidden_layer.bias)
    weight = torch.cat([decoder.density_head.weight, decoder.feature_head.weight]) / 8
    bias = torch.cat([decoder.density_head.bias, decoder.feature_head.bias])
    out = h @ weight.T + bias
    result = decoder(features)
    assert isinstance(result, TriplaneDecoderOutput)
    torch.testing.assert_close(result.densities, out[..., 0])
    torch.testing.assert_close(result.features, torch.sigmoid(out[..., 1:]) * 1.002 - 0.001)
    assert result.features.min() > -0.001 and result.features.max() < 1.001


def test_decoder_zero_init_density_and_options():
    ballgan = TriplaneDecoder(zero_init_density=True)
    eg3d = TriplaneDecoder()
    assert count(ballgan) == count(eg3d)  # BallGAN splits the last layer: same parameters
    features = torch.randn(2, 3, 7, 32)
    torch.testing.assert_close(ballgan(features).densities, torch.zeros(2, 7))
    assert eg3d(features).densities.abs().max() > 0
    small = TriplaneDecoder(16, 8, hidden=12, lr_multiplier=0.5)
    out = small(torch.randn(1, 3, 4, 16))
    assert out.densities.shape == (1, 4) and out.features.shape == (1, 4, 8)
    assert small(torch.randn(0, 3, 4, 16)).features.shape == (0, 4, 8)


def test_generator_sampler_decoder_chain():
    generator = small_triplane(plane_channels=8)
    decoder = TriplaneDecoder(8, 8)
    planes = generator(torch.randn(2, generator.num_ws, 64))
    points = torch.rand(2, 100, 3) - 0.5
    out = decoder(sample_triplane(planes, points))
    assert out.densities.shape == (2, 100) and out.features.shape == (2, 100, 8)


def test_decoder_gradcheck_float64():
    decoder = TriplaneDecoder(4, 3, hidden=5).double()
    features = torch.randn(1, 3, 4, 4, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: tuple(decoder(f)), (features,), fast_mode=True)


@pytest.mark.usefixtures("without_shape_checker")
def test_decoder_bad_input():
    decoder = TriplaneDecoder()
    with pytest.raises(ValueError, match=r"`features` must have shape \[B, 3, N, F\], got \[2, 2"):
        decoder(torch.randn(2, 2, 5, 32))
    with pytest.raises(ValueError, match=r"`features` must have shape \[B, 3, N, 32\]"):
        decoder(torch.randn(2, 3, 5, 16))
    with pytest.raises(ValueError, match="`hidden` must be an integer >= 1"):
        TriplaneDecoder(hidden=0)
    with pytest.raises(TypeError, match="`zero_init_density` must be a bool"):
        TriplaneDecoder(zero_init_density=1)  # pyright: ignore[reportArgumentType]
