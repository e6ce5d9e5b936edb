"""EG3D's super-resolution networks: rendered feature image + raw RGB -> final RGB image."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._checked import checked
from aware3d._precision import autocast_off
from aware3d._validation import (
    check_bool,
    check_choice,
    check_module_device,
    check_module_dtype,
    check_positive_int,
    check_shape,
    check_values,
    finite_checks,
    value_checks_enabled,
)
from aware3d.nn.layers import NOISE_MODES, SynthesisBlock

__all__ = ["SuperResolution", "dual_discriminator_input", "eg3d_superresolution"]


class SuperResolution(nn.Module):
    """EG3D's "hybrid" super-resolution: StyleGAN2 synthesis blocks on the rendered feature image.

    The volume renderer's feature image ``[B, C, h, w]`` (NCHW; its first ``image_channels``
    channels are the raw RGB image) is resized to ``input_resolution`` if it has another size
    (bilinear, ``align_corners=False``, antialiased by default), then runs through
    :class:`~aware3d.nn.SynthesisBlock` s: the features are the blocks' input ``x`` and the raw
    RGB is the incoming skip image, so every block adds its toRGB output to it. The last
    ``log2(output_resolution / input_resolution)`` blocks upsample 2x; the ones before keep the
    resolution (EG3D's ``SynthesisBlockNoUp``). Every layer of every block is modulated by the
    **last** style vector ``ws[:, -1]`` (EG3D repeats it). The output is the last skip image,
    ``[B, image_channels, output_resolution, output_resolution]``, with no activation.

    EG3D's configurations (``eg3d_superresolution`` builds them; EG3D's and BallGAN's training
    scripts pick them by the dataset resolution):

    | EG3D module | output | input | blocks (resolution: channels) | parameters |
    |---|---|---|---|---|
    | ``SuperresolutionHybrid2X`` | 128 | 64 | 64 (no upsampling): 128, 128: 64 | 574,954 |
    | ``SuperresolutionHybrid4X`` | 256 | 128 | 128 (no upsampling): 128, 256: 64 | 574,954 |
    | ``SuperresolutionHybrid8X`` | 512 | 128 | 256: 128, 512: 64 | 574,954 |
    | ``SuperresolutionHybrid8XDC`` | 512 | 128 | 256: 256, 512: 128 | 1,649,578 |

    The factor in a name is relative to EG3D's 64x64 neural rendering (64 -> 128 by resizing, then
    the blocks). EG3D resizes when the size differs (2X, 8X, 8XDC) or only when smaller (4X, whose
    first block then refuses larger inputs); here any other size is resized. The released code's
    fp16 blocks and ``conv_clamp`` (256 under fp16) are omitted. The network runs in its
    parameters' dtype with ``torch.autocast`` turned off inside (the modulated convolutions take
    one dtype); under autocast the inputs may have any float dtype.

    Args:
        in_channels: channels of the feature image (EG3D: 32).
        input_resolution: resolution the feature image is resized to.
        output_resolution: resolution of the result, ``input_resolution * 2^k`` with ``k`` at
            most the number of blocks.
        w_dim: width of the style vectors (EG3D: 512).
        block_channels: feature channels of each block (EG3D: ``(128, 64)``; 8XDC: ``(256, 128)``).
        image_channels: channels of the raw and the final image (3).
        use_noise: give the synthesis layers noise inputs (EG3D: yes, but its training default is
            ``noise_mode="none"``).
        antialias: antialiased resizing of the input (EG3D's ``sr_antialias``: true).
        conv_clamp: clamp every layer's output to ``[-conv_clamp, conv_clamp]`` (``None``, the
            default: no clamp). EG3D's and BallGAN's training scripts build the super-resolution
            for fp16 (``sr_num_fp16_res = 4``), which sets 256; the clamp then applies in float32
            too, so converted released models use 256.
    """

    def __init__(
        self,
        in_channels: int = 32,
        input_resolution: int = 128,
        output_resolution: int = 256,
        w_dim: int = 512,
        *,
        block_channels: Sequence[int] = (128, 64),
        image_channels: int = 3,
        use_noise: bool = True,
        antialias: bool = True,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.input_resolution = check_positive_int("input_resolution", input_resolution)
        self.output_resolution = check_positive_int("output_resolution", output_resolution)
        self.w_dim = check_positive_int("w_dim", w_dim)
        self.image_channels = check_positive_int("image_channels", image_channels)
        if image_channels > in_channels:
            raise ValueError(
                f"`in_channels` ({in_channels}) must include the {image_channels} raw image "
                f"channels (`image_channels`)"
            )
        check_bool("use_noise", use_noise)
        self.antialias = check_bool("antialias", antialias)
        channels = tuple(block_channels)
        if not channels:
            raise ValueError("`block_channels` must name at least one block")
        for i, count in enumerate(channels):
            check_positive_int(f"block_channels[{i}]", count)
        factor = output_resolution // input_resolution
        if output_resolution % input_resolution or factor & (factor - 1):
            raise ValueError(
                f"`output_resolution` must be `input_resolution` ({input_resolution}) times a "
                f"power of two, got {output_resolution}"
            )
        upsampling = factor.bit_length() - 1
        if upsampling > len(channels):
            raise ValueError(
                f"{len(channels)} blocks (`block_channels`) can upsample at most "
                f"{2 ** len(channels)}x, but `output_resolution / input_resolution` = {factor}"
            )
        blocks = []
        resolution = input_resolution
        previous = in_channels
        for i, count in enumerate(channels):
            upsample = i >= len(channels) - upsampling
            resolution = resolution * 2 if upsample else resolution
            blocks.append(
                SynthesisBlock(
                    previous,
                    count,
                    w_dim,
                    resolution,
                    image_channels,
                    upsample=upsample,
                    use_noise=use_noise,
                    conv_clamp=conv_clamp,
                )
            )
            previous = count
        self.blocks = nn.ModuleList(blocks)
        self.block_channels = channels
        self.conv_clamp = blocks[0].conv_clamp

    @checked(same_dtype=False)
    def forward(
        self,
        features: Float[Tensor, "B C h w"],
        ws: Float[Tensor, "B K D"],
        *,
        noise_mode: str = "none",
        generator: torch.Generator | None = None,
    ) -> Float[Tensor, "B Cimg H W"]:
        """Upsamples a rendered feature image to the final image.

        Args:
            features: ``[B, in_channels, h, w]``, NCHW, the raw image in its first
                ``image_channels`` channels (any size; resized to ``input_resolution``).
            ws: style vectors ``[B, K, w_dim]`` (any ``K >= 1``); only the last is used.
            noise_mode: ``"none"`` (EG3D's and BallGAN's training default), ``"random"`` or
                ``"const"``.
            generator: random generator for ``"random"`` noise.

        Returns:
            The image ``[B, image_channels, output_resolution, output_resolution]``.

        Raises:
            ValueError: for misshapen inputs, an unknown noise mode, a dtype (outside
                ``torch.autocast``) or device other than the network's, and (value checks)
                non-finite inputs.
        """
        check_shape("features", features, ("B", self.in_channels, "h", "w"))
        check_shape("ws", ws, (features.shape[0], "K", self.w_dim))
        if ws.shape[1] == 0:
            raise ValueError("`ws` must hold at least one style vector, got [B, 0, D]")
        check_module_dtype("features", features, self)
        check_module_dtype("ws", ws, self)
        check_module_device("features", features, self)
        check_choice("noise_mode", noise_mode, NOISE_MODES)
        if value_checks_enabled():
            check_values(finite_checks(features=features, ws=ws))
        dtype = next(self.parameters()).dtype
        features, ws = features.to(dtype), ws.to(dtype)
        with autocast_off(features.device):
            size = (self.input_resolution, self.input_resolution)
            if tuple(features.shape[2:]) != size:
                features = F.interpolate(
                    features, size=size, mode="bilinear", align_corners=False,
                    antialias=self.antialias,
                )  # fmt: skip
            x = features
            image = features[:, : self.image_channels]
            block_ws = ws[:, -1:].expand(-1, 3, -1)  # every block reads 3: its layers and toRGB
            for block in self.blocks:
                x, image = block(x, image, block_ws, noise_mode=noise_mode, generator=generator)
        return image

    def extra_repr(self) -> str:
        """Configuration for ``repr``."""
        return (
            f"in_channels={self.in_channels}, input_resolution={self.input_resolution}, "
            f"output_resolution={self.output_resolution}, w_dim={self.w_dim}, "
            f"block_channels={self.block_channels}, antialias={self.antialias}"
            + ("" if self.conv_clamp is None else f", conv_clamp={self.conv_clamp}")
        )


def eg3d_superresolution(
    output_resolution: int = 256, *, dc: bool = True, in_channels: int = 32, w_dim: int = 512
) -> SuperResolution:
    """EG3D's super-resolution module for an output resolution, as its training script picks it.

    128: ``SuperresolutionHybrid2X`` (64 -> 128); 256: ``SuperresolutionHybrid4X`` (128 -> 256);
    512: ``SuperresolutionHybrid8XDC`` (128 -> 512, 256 and 128 channels), or with ``dc=False``
    ``SuperresolutionHybrid8X`` (128 and 64 channels). BallGAN's script makes the same choice
    (its FFHQ model is trained on 512 x 512 images: 8XDC). See :class:`SuperResolution` for the
    table.

    Args:
        output_resolution: 128, 256 or 512.
        dc: at 512, EG3D's "DC" variant with twice the channels (EG3D's choice); ignored below.
        in_channels: channels of the rendered feature image (EG3D: 32).
        w_dim: style width (EG3D: 512).

    Raises:
        ValueError: for another output resolution.
    """
    check_choice("output_resolution", output_resolution, (128, 256, 512))
    check_bool("dc", dc)
    input_resolution = 64 if output_resolution == 128 else 128
    channels = (256, 128) if output_resolution == 512 and dc else (128, 64)
    return SuperResolution(
        in_channels, input_resolution, output_resolution, w_dim, block_channels=channels
    )


@checked
def dual_discriminator_input(
    image: Float[Tensor, "B C H W"], image_raw: Float[Tensor, "B C h w"]
) -> Float[Tensor, "B C2 H W"]:
    """EG3D's dual-discriminator input: the final image and the raw image resized to its size.

    ``cat([image, resize(image_raw, (H, W))], dim=1)``, the resize bilinear
    (``align_corners=False``) and antialiased (EG3D's ``filter_mode='antialiased'``, its
    default), so the discriminator sees both the super-resolved image and the neural rendering
    it came from, and can penalise inconsistency between them. For real images EG3D makes
    ``image_raw`` by resizing the real image down to the neural rendering resolution in the same
    way (``F.interpolate(image, size=(64, 64), mode="bilinear", antialias=True)``).

    Images are NCHW here; :class:`~aware3d.training.CameraConditionedDiscriminator` takes
    channels-last images, so build it with ``image_channels=2 * C`` (6) and pass
    ``einops.rearrange(x, "b c h w -> b h w c")``.

    Args:
        image: final images ``[B, C, H, W]``.
        image_raw: raw (neural-rendered) images ``[B, C, h, w]``, usually smaller.

    Returns:
        ``[B, 2C, H, W]``: the final image's channels, then the resized raw image's.

    Raises:
        ValueError: for misshapen or mismatched inputs, and (value checks) non-finite values.
    """
    check_shape("image", image, ("B", "C", "H", "W"))
    check_shape("image_raw", image_raw, (image.shape[0], image.shape[1], "h", "w"))
    if value_checks_enabled():
        check_values(finite_checks(image=image, image_raw=image_raw))
    size = (image.shape[2], image.shape[3])
    if tuple(image_raw.shape[2:]) != size:
        image_raw = F.interpolate(
            image_raw, size=size, mode="bilinear", align_corners=False, antialias=True
        )
    return torch.cat([image, image_raw], dim=1)
