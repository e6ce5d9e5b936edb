"""A small camera-conditioned residual discriminator for 32 to 256 pixels (StyleGAN2-like)."""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._checked import checked
from aware3d._validation import (
    check_bool,
    check_module_device,
    check_module_dtype,
    check_positive_int,
    check_shape,
    check_values,
    finite_checks,
    value_checks_enabled,
)
from aware3d.nn._activations import scaled_leaky_relu
from aware3d.nn.layers import EqualizedLinear
from aware3d.nn.superresolution import dual_discriminator_input

__all__ = [
    "CameraConditionedDiscriminator",
    "ContrastiveOutput",
    "EqualizedConv2d",
    "dual_discriminator_input",
]


class EqualizedConv2d(nn.Module):
    """2D convolution with equalized learning rate (weights times ``1/sqrt(fan_in)`` at run time).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size; padding keeps the size.
        bias: whether to add a bias.
        leaky_relu: apply StyleGAN2's ``sqrt(2) * leaky_relu(., 0.2)``.
        downsample: halve the resolution (2x2 average pool after the convolution).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        leaky_relu: bool = True,
        downsample: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(
                f"`kernel_size` must be odd (padding keeps the size), got {kernel_size}"
            )
        check_bool("bias", bias)
        check_bool("leaky_relu", leaky_relu)
        check_bool("downsample", downsample)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.padding = kernel_size // 2
        self.leaky_relu = leaky_relu
        self.downsample = downsample

    @checked
    def forward(self, x: Float[Tensor, "B Cin H W"]) -> Float[Tensor, "B Cout H2 W2"]:
        """Convolves (then pools when downsampling) and applies the activation."""
        check_shape("x", x, ("B", self.weight.shape[1], "H", "W"))
        y = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        if self.downsample:
            y = F.avg_pool2d(y, 2)
        return scaled_leaky_relu(y) if self.leaky_relu else y


class _ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3)
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, downsample=True)
        self.skip = EqualizedConv2d(
            in_channels, out_channels, 1, bias=False, leaky_relu=False, downsample=True
        )

    def forward(self, x: Tensor) -> Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) * math.sqrt(0.5)


class ContrastiveOutput(NamedTuple):
    """What :meth:`CameraConditionedDiscriminator.forward_contrastive` returns.

    Attributes:
        logits: the discriminator's logits ``[B]``, as its ``forward`` returns them.
        image_embeddings: the pose branch's embeddings of the images ``[B, E]``.
        camera_embeddings: the camera head's embeddings of the labels ``[B, E]``.
    """

    logits: Float[Tensor, " B"]
    image_embeddings: Float[Tensor, "B E"]
    camera_embeddings: Float[Tensor, "B E"]


class CameraConditionedDiscriminator(nn.Module):
    """Residual discriminator conditioned on the camera by projection (as in EG3D).

    ``D(x, c) = <phi(x), psi(c)> / sqrt(dim)``: image features ``phi(x)`` from residual blocks that
    halve the resolution down to 4x4 (with a minibatch standard-deviation channel), and a camera
    embedding ``psi(c)`` from an MLP on the 25-number EG3D label. Set ``camera_conditioned=False``
    for an unconditional discriminator.

    With ``contrastive_dim`` set it also has GSGAN's camera-contrastive branch: a residual block
    parallel to the last one (on the same 8x8 feature map, to 4x4), flattened and mapped by two
    fully connected layers (leaky ReLU between) to a ``contrastive_dim`` embedding of the image,
    and a camera head (25 -> hidden -> ``contrastive_dim``) embedding the raw label, for
    :func:`~aware3d.training.camera_contrastive_loss` (read them with :meth:`forward_contrastive`).
    GSGAN uses ``contrastive_dim=64`` with ``camera_conditioned=False``: the camera reaches its
    discriminator only through this branch.

    Args:
        resolution: input size, a power of two in [16, 512] (the demo uses 32 to 64).
        image_channels: channels of the input images.
        channel_base: channels are ``min(channel_base // res, channel_max)`` at resolution ``res``.
        channel_max: the most channels of any block.
        embed_dim: width of the projection.
        camera_conditioned: use the camera label.
        contrastive_dim: width of the camera-contrastive embeddings, or ``None`` for no branch.
        mbstd_group_size: minibatch standard-deviation group size (StyleGAN2's 4; the groups are
            interleaved, sample ``i`` with ``i + k * B / G``, as StyleGAN2's; 1 makes every
            sample's score independent of the rest of the batch).
    """

    def __init__(
        self,
        resolution: int,
        image_channels: int = 3,
        *,
        channel_base: int = 4096,
        channel_max: int = 256,
        embed_dim: int = 128,
        camera_conditioned: bool = True,
        contrastive_dim: int | None = None,
        mbstd_group_size: int = 4,
    ) -> None:
        super().__init__()
        check_positive_int("resolution", resolution)
        if resolution < 16 or resolution > 512 or resolution & (resolution - 1):
            raise ValueError(f"`resolution` must be a power of two in [16, 512], got {resolution}")
        check_positive_int("image_channels", image_channels)
        check_positive_int("channel_base", channel_base)
        check_positive_int("channel_max", channel_max)
        check_positive_int("embed_dim", embed_dim)
        check_bool("camera_conditioned", camera_conditioned)
        if contrastive_dim is not None:
            check_positive_int("contrastive_dim", contrastive_dim)
        self.mbstd_group_size = check_positive_int("mbstd_group_size", mbstd_group_size)
        self.resolution = resolution
        self.image_channels = image_channels
        self.camera_conditioned = camera_conditioned

        def channels(res: int) -> int:
            return max(16, min(channel_base // res, channel_max))

        self.from_rgb = EqualizedConv2d(image_channels, channels(resolution), 1)
        blocks = []
        res = resolution
        while res > 4:
            blocks.append(_ResidualBlock(channels(res), channels(res // 2)))
            res //= 2
        self.blocks = nn.ModuleList(blocks)
        final = channels(4)
        self.final_conv = EqualizedConv2d(final + 1, final, 3)
        self.final_fc = EqualizedLinear(final * 16, final, leaky_relu=True)
        self.out = EqualizedLinear(final, embed_dim if camera_conditioned else 1)
        self.embed_dim = embed_dim
        if camera_conditioned:
            self.camera_mlp = nn.Sequential(
                EqualizedLinear(25, embed_dim, leaky_relu=True),
                EqualizedLinear(embed_dim, embed_dim, leaky_relu=True),
                EqualizedLinear(embed_dim, embed_dim),
            )
        self.contrastive_dim = contrastive_dim
        if contrastive_dim is not None:
            self.pose_block = _ResidualBlock(channels(8), final)
            self.pose_head = nn.Sequential(
                EqualizedLinear(final * 16, final, leaky_relu=True),
                EqualizedLinear(final, contrastive_dim),
            )
            self.contrastive_camera_head = nn.Sequential(
                EqualizedLinear(25, final, leaky_relu=True),
                EqualizedLinear(final, contrastive_dim),
            )

    @checked
    def forward(
        self, images: Float[Tensor, "B H W Cimg"], labels: Float[Tensor, "B 25"] | None = None
    ) -> Float[Tensor, " B"]:
        """Scores images (channels-last, the renderer's layout) given their camera labels.

        Args:
            images: ``[B, H, W, C]`` with ``H = W = resolution``.
            labels: EG3D camera labels ``[B, 25]`` (required when camera-conditioned).

        Returns:
            Logits ``[B]`` (empty for ``B = 0``).

        Raises:
            ValueError: for misshapen inputs, missing labels, a dtype or device other than the
                discriminator's, and (value checks) non-finite inputs.
        """
        self._check_inputs(images, labels, self.camera_conditioned)
        if images.shape[0] == 0:
            return images.new_zeros(0)
        return self._score(self._features_at_8(images), labels)

    @checked
    def forward_contrastive(
        self, images: Float[Tensor, "B H W Cimg"], labels: Float[Tensor, "B 25"]
    ) -> ContrastiveOutput:
        """Logits and the camera-contrastive embeddings, from one pass through the blocks.

        Args:
            images: ``[B, H, W, C]`` with ``H = W = resolution``.
            labels: EG3D camera labels ``[B, 25]`` (the cameras the images were rendered from,
                or the real images' own).

        Returns:
            :class:`ContrastiveOutput`: logits ``[B]`` equal to :meth:`forward`'s, image and
            camera embeddings ``[B, contrastive_dim]`` (not normalised).

        Raises:
            ValueError: if the discriminator has no contrastive branch, and as :meth:`forward`.
        """
        if self.contrastive_dim is None:
            raise ValueError(
                "this discriminator has no camera-contrastive branch: build it with "
                "`contrastive_dim=...` (GSGAN: 64)"
            )
        self._check_inputs(images, labels, True)
        if images.shape[0] == 0:
            empty = images.new_zeros(0, self.contrastive_dim)
            return ContrastiveOutput(images.new_zeros(0), empty, empty.clone())
        x8 = self._features_at_8(images)
        image_embeddings = self.pose_head(self.pose_block(x8).flatten(1))
        return ContrastiveOutput(
            self._score(x8, labels), image_embeddings, self.contrastive_camera_head(labels)
        )

    def _check_inputs(self, images: Tensor, labels: Tensor | None, need_labels: bool) -> None:
        check_shape("images", images, ("B", self.resolution, self.resolution, self.image_channels))
        check_module_dtype("images", images, self)
        check_module_device("images", images, self)
        if need_labels and labels is None:
            raise ValueError("`labels` are required by a camera-conditioned discriminator")
        if value_checks_enabled():
            check_values(finite_checks(images=images, labels=labels))

    def _features_at_8(self, images: Tensor) -> Tensor:
        """The feature map that enters the last block (8x8)."""
        x = self.from_rgb(rearrange(images, "b h w c -> b c h w"))
        for block in self.blocks[:-1]:
            x = block(x)
        return x

    def _score(self, x8: Tensor, labels: Tensor | None) -> Tensor:
        """Logits from the 8x8 feature map: the last block, minibatch std, head, projection."""
        x = self.blocks[-1](x8)
        x = torch.cat([x, _minibatch_std(x, self.mbstd_group_size)], dim=1)
        y = self.out(self.final_fc(self.final_conv(x).flatten(1)))
        if not self.camera_conditioned or labels is None:
            return y[:, 0]
        embedding = self.camera_mlp(labels)
        embedding = embedding * torch.rsqrt(embedding.square().mean(1, keepdim=True) + 1e-8)
        return (y * embedding).sum(1) / math.sqrt(self.embed_dim)


def _minibatch_std(x: Tensor, group_size: int = 4) -> Tensor:
    """StyleGAN's minibatch standard deviation as one extra feature map ``[B, 1, H, W]``."""
    batch = x.shape[0]
    group = min(group_size, batch)
    while batch % group:
        group -= 1
    y = x.reshape(group, batch // group, *x.shape[1:])
    std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))
    return std.repeat(group)[:, None, None, None].expand(batch, 1, *x.shape[2:])
