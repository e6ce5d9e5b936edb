"""EG3D's super-resolution modules and the dual-discriminator input."""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from aware3d.nn import SuperResolution, eg3d_superresolution
from aware3d.training import CameraConditionedDiscriminator, dual_discriminator_input

D64 = torch.float64


def count(module):
    return sum(p.numel() for p in module.parameters())


def tiny(**kwargs):
    options = dict(
        in_channels=5, input_resolution=8, output_resolution=16, w_dim=6, block_channels=(4, 3)
    )
    options.update(kwargs)
    return SuperResolution(**options)


# ---------------------------------------------------------------------- EG3D's configurations

# (output resolution, dc) -> (input resolution, [(block resolution, upsample, channels)], params)
# The parameter counts equal those of EG3D's SuperresolutionHybrid2X/4X/8X/8XDC modules
# (training/superresolution.py, channels=32, w_dim=512), counted on instances of them.
EG3D_CONFIGURATIONS = {
    (128, True): (64, [(64, False, 128), (128, True, 64)], 574_954),
    (256, True): (128, [(128, False, 128), (256, True, 64)], 574_954),
    (512, False): (128, [(256, True, 128), (512, True, 64)], 574_954),
    (512, True): (128, [(256, True, 256), (512, True, 128)], 1_649_578),
}


@pytest.mark.parametrize(("resolution", "dc"), list(EG3D_CONFIGURATIONS))
def test_eg3d_configurations(resolution, dc):
    module = eg3d_superresolution(resolution, dc=dc)
    input_resolution, blocks, parameters = EG3D_CONFIGURATIONS[resolution, dc]
    assert module.input_resolution == input_resolution
    assert module.output_resolution == resolution
    got = [(b.resolution, b.upsample, b.out_channels) for b in module.blocks]
    assert got == blocks
    assert [b.in_channels for b in module.blocks] == [32, blocks[0][2]]
    assert all(b.num_ws == 3 and b.w_dim == 512 for b in module.blocks)
    assert count(module) == parameters


def test_eg3d_2x_forward_at_batch_1():
    module = eg3d_superresolution(128)
    image = module(torch.randn(1, 32, 32, 32), torch.randn(1, 14, 512))
    assert image.shape == (1, 3, 128, 128)


# ---------------------------------------------------------------------- behaviour


@pytest.mark.parametrize(
    ("input_resolution", "output_resolution", "upsampling"),
    [(8, 8, [False, False]), (8, 16, [False, True]), (8, 32, [True, True]), (4, 16, [True, True])],
)
@pytest.mark.parametrize("size", [4, 8, 12])
def test_shapes(input_resolution, output_resolution, upsampling, size):
    module = tiny(input_resolution=input_resolution, output_resolution=output_resolution)
    assert [b.upsample for b in module.blocks] == upsampling
    image = module(torch.randn(2, 5, size, size), torch.randn(2, 3, 6))
    assert image.shape == (2, 3, output_resolution, output_resolution)


@pytest.mark.parametrize("antialias", [True, False])
def test_matches_blocks_with_the_last_w(antialias):
    module = tiny(antialias=antialias).double()
    for name, parameter in module.named_parameters():
        if name.endswith("noise_strength"):
            parameter.data.fill_(0.4)
    features = torch.randn(2, 5, 4, 6, dtype=D64)  # any size: resized to 8 x 8
    ws = torch.randn(2, 4, 6, dtype=D64)
    resized = F.interpolate(
        features, size=(8, 8), mode="bilinear", align_corners=False, antialias=antialias
    )
    last = ws[:, -1:].expand(-1, 3, -1)
    x, image = module.blocks[0](resized, resized[:, :3], last, noise_mode="const")
    _, image = module.blocks[1](x, image, last, noise_mode="const")
    torch.testing.assert_close(module(features, ws, noise_mode="const"), image)
    other = ws.clone()
    other[:, :-1] = torch.randn(2, 3, 6, dtype=D64)  # only the last w matters
    torch.testing.assert_close(module(features, other, noise_mode="const"), image)


def test_input_at_input_resolution_is_not_resized():
    module = tiny(input_resolution=8, output_resolution=16).double()
    features = torch.randn(1, 5, 8, 8, dtype=D64)
    ws = torch.randn(1, 1, 6, dtype=D64)
    x, image = module.blocks[0](features, features[:, :3], ws.expand(-1, 3, -1), noise_mode="none")
    _, image = module.blocks[1](x, image, ws.expand(-1, 3, -1), noise_mode="none")
    torch.testing.assert_close(module(features, ws), image)


def test_noise_default_is_none():
    module = tiny()
    for name, parameter in module.named_parameters():
        if name.endswith("noise_strength"):
            parameter.data.fill_(1.0)
    features, ws = torch.randn(1, 5, 8, 8), torch.randn(1, 1, 6)
    torch.testing.assert_close(module(features, ws), module(features, ws, noise_mode="none"))
    assert not torch.allclose(module(features, ws), module(features, ws, noise_mode="const"))


def test_gradcheck_float64():
    module = tiny(
        in_channels=3, input_resolution=4, output_resolution=8, w_dim=2, block_channels=(2,)
    ).double()
    features = torch.randn(1, 3, 3, 3, dtype=D64, requires_grad=True)
    ws = torch.randn(1, 2, 2, dtype=D64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (features, ws), fast_mode=True)


@pytest.mark.usefixtures("without_shape_checker")
def test_bad_input():
    module = tiny()
    ws = torch.randn(2, 3, 6)
    with pytest.raises(ValueError, match=r"`features` must have shape \[B, 5, h, w\], got \[2, 4"):
        module(torch.randn(2, 4, 8, 8), ws)
    with pytest.raises(ValueError, match=r"`ws` must have shape \[2, K, 6\], got \[2, 3, 7\]"):
        module(torch.randn(2, 5, 8, 8), torch.randn(2, 3, 7))
    with pytest.raises(ValueError, match="`ws` must hold at least one style vector"):
        module(torch.randn(2, 5, 8, 8), torch.randn(2, 0, 6))
    with pytest.raises(ValueError, match="`noise_mode` must be one of"):
        module(torch.randn(2, 5, 8, 8), ws, noise_mode="random noise")
    with pytest.raises(ValueError, match="`features` must be finite"):
        module(torch.full((2, 5, 8, 8), float("inf")), ws)
    with pytest.raises(ValueError, match="`output_resolution` must be `input_resolution`"):
        tiny(output_resolution=24)
    with pytest.raises(ValueError, match="can upsample at most 4x"):
        tiny(output_resolution=64)
    with pytest.raises(ValueError, match="`in_channels` \\(2\\) must include"):
        tiny(in_channels=2)
    with pytest.raises(ValueError, match="`output_resolution` must be one of"):
        eg3d_superresolution(64)


# ---------------------------------------------------------------------- dual discriminator


def test_dual_discriminator_input():
    image = torch.randn(2, 3, 32, 32, dtype=D64)
    raw = torch.randn(2, 3, 8, 8, dtype=D64)
    pair = dual_discriminator_input(image, raw)
    assert pair.shape == (2, 6, 32, 32)
    torch.testing.assert_close(pair[:, :3], image)
    expected = F.interpolate(
        raw, size=(32, 32), mode="bilinear", align_corners=False, antialias=True
    )
    torch.testing.assert_close(pair[:, 3:], expected)
    same = dual_discriminator_input(image, image)
    torch.testing.assert_close(same, torch.cat([image, image], dim=1))
    assert torch.autograd.gradcheck(
        dual_discriminator_input,
        (image[:, :, :4, :4].clone().requires_grad_(), raw[:, :, :2, :2].clone().requires_grad_()),
        fast_mode=True,
    )


def test_dual_input_feeds_the_discriminator():
    discriminator = CameraConditionedDiscriminator(16, image_channels=6, channel_max=16)
    pair = dual_discriminator_input(torch.randn(2, 3, 16, 16), torch.randn(2, 3, 8, 8))
    logits = discriminator(rearrange(pair, "b c h w -> b h w c"), torch.randn(2, 25))
    assert logits.shape == (2,)


@pytest.mark.usefixtures("without_shape_checker")
def test_dual_input_bad_input():
    image = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"`image_raw` must have shape \[B, C, h, w\]"):
        dual_discriminator_input(image, torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"`image_raw` must have shape \[B, C, h, w\]"):
        dual_discriminator_input(image, torch.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match=r"`image` must have shape \[B, C, H, W\]"):
        dual_discriminator_input(torch.randn(3, 16, 16), torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="`image_raw` must be finite"):
        dual_discriminator_input(image, torch.full((2, 3, 8, 8), float("nan")))
