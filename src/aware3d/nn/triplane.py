"""EG3D's tri-plane backbone (a StyleGAN2 synthesis network) and its small feature decoder."""

from typing import NamedTuple

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
    check_positive_number,
    check_shape,
    check_values,
    finite_checks,
    value_checks_enabled,
)
from aware3d.nn.layers import NOISE_MODES, EqualizedLinear, SynthesisBlock

__all__ = [
    "FEATURE_SIGMOID_EPS",
    "TriplaneDecoder",
    "TriplaneDecoderOutput",
    "TriplaneGenerator",
    "eg3d_triplane_256",
    "small_triplane",
]

#: EG3D's sigmoid clamp of the decoded features (from Mip-NeRF): ``sigmoid(x) (1 + 2e) - e``.
FEATURE_SIGMOID_EPS = 0.001


class TriplaneGenerator(nn.Module):
    """EG3D's tri-plane backbone: a StyleGAN2 synthesis network whose image is three feature planes.

    Blocks from 4x4 up to ``resolution`` (:class:`~aware3d.nn.SynthesisBlock`, "skip"
    architecture): the 4x4 block starts from a learned constant, every other block upsamples 2x.
    Block ``r`` has ``min(channel_base // r, channel_max)`` channels, and the toRGB layers write
    ``3 * plane_channels`` channels, summed over the resolutions through the upsampled skip
    image. That image ``[B, 3F, R, R]`` is read as three planes,
    ``planes[:, p, f] = image[:, p F + f]`` (EG3D's ``view(B, 3, 32, R, R)``), in the order that
    :func:`~aware3d.functional.sample_triplane` expects.

    Style vectors: one per synthesis layer plus the last block's toRGB, ``num_ws = 2 log2(R) - 2``
    (14 at 256). Block ``i`` reads ``ws[:, j : j + num_conv_i + 1]`` and the next block starts at
    ``j + num_conv_i``, so each toRGB shares its ``w`` with the next block's first layer.

    Images inside are NCHW. fp16 execution and ``conv_clamp`` of the released code are omitted.
    The network runs in its parameters' dtype with ``torch.autocast`` turned off inside (the
    modulated convolutions take one dtype); under autocast ``ws`` may have any float dtype.

    Args:
        w_dim: ``D``, width of the style vectors.
        resolution: plane resolution ``R``, a power of two >= 4.
        plane_channels: ``F``, channels of each plane (EG3D: 32).
        channel_base: channels are ``min(channel_base // r, channel_max)`` at resolution ``r``.
        channel_max: the most channels of any block.
        use_noise: give the synthesis layers noise inputs (EG3D: yes).
        conv_clamp: clamp every layer's output to ``[-conv_clamp, conv_clamp]`` (StyleGAN2's
            ``conv_clamp``; ``None``, EG3D's and BallGAN's backbone default: no clamp).
    """

    def __init__(
        self,
        w_dim: int = 512,
        resolution: int = 256,
        plane_channels: int = 32,
        *,
        channel_base: int = 32768,
        channel_max: int = 512,
        use_noise: bool = True,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.w_dim = check_positive_int("w_dim", w_dim)
        check_positive_int("resolution", resolution)
        if resolution < 4 or resolution & (resolution - 1):
            raise ValueError(f"`resolution` must be a power of two >= 4, got {resolution}")
        self.resolution = resolution
        self.plane_channels = check_positive_int("plane_channels", plane_channels)
        self.channel_base = check_positive_int("channel_base", channel_base)
        self.channel_max = check_positive_int("channel_max", channel_max)
        check_bool("use_noise", use_noise)
        resolutions = [2**i for i in range(2, resolution.bit_length())]

        def channels(res: int) -> int:
            count = min(channel_base // res, channel_max)
            if count < 1:
                raise ValueError(
                    f"`channel_base` {channel_base} gives no channels at resolution {res}; "
                    f"make it at least {res}"
                )
            return count

        blocks = []
        previous = 0
        for res in resolutions:
            blocks.append(
                SynthesisBlock(
                    previous,
                    channels(res),
                    w_dim,
                    res,
                    3 * plane_channels,
                    use_noise=use_noise,
                    conv_clamp=conv_clamp,
                )
            )
            previous = channels(res)
        self.blocks = nn.ModuleList(blocks)
        self.block_resolutions = tuple(resolutions)
        self.num_ws = sum(block.num_conv for block in blocks) + 1
        starts = [0]
        for block in blocks[:-1]:
            starts.append(starts[-1] + block.num_conv)
        #: ``(first index, count)`` of the style vectors each block reads.
        self.block_ws: tuple[tuple[int, int], ...] = tuple(
            (start, block.num_ws) for start, block in zip(starts, blocks, strict=True)
        )

    @checked
    def forward(
        self,
        ws: Float[Tensor, "B K D"],
        *,
        noise_mode: str = "random",
        generator: torch.Generator | None = None,
    ) -> Float[Tensor, "B 3 F H W"]:
        """Synthesises tri-planes from style vectors.

        Args:
            ws: ``[B, num_ws, w_dim]``.
            noise_mode: ``"random"`` (EG3D's default), ``"const"`` (the layers' fixed noise) or
                ``"none"``.
            generator: random generator for ``"random"`` noise, for reproducible samples.

        Returns:
            planes ``[B, 3, plane_channels, resolution, resolution]``.

        Raises:
            ValueError: for ``ws`` of another shape than ``[B, num_ws, w_dim]``, an unknown noise
                mode, a dtype (outside ``torch.autocast``) or device other than the network's,
                and (value checks) non-finite ``ws``.
        """
        check_shape("ws", ws, ("B", self.num_ws, self.w_dim))
        check_module_dtype("ws", ws, self)
        check_module_device("ws", ws, self)
        check_choice("noise_mode", noise_mode, NOISE_MODES)
        if value_checks_enabled():
            check_values(finite_checks(ws=ws))
        ws = ws.to(next(self.parameters()).dtype)
        x = image = None
        with autocast_off(ws.device):
            for block, (start, size) in zip(self.blocks, self.block_ws, strict=True):
                block_ws = ws[:, start : start + size]
                x, image = block(x, image, block_ws, noise_mode=noise_mode, generator=generator)
        assert image is not None
        return image.reshape(ws.shape[0], 3, self.plane_channels, *image.shape[2:])

    def extra_repr(self) -> str:
        """Configuration for ``repr``."""
        return (
            f"w_dim={self.w_dim}, resolution={self.resolution}, "
            f"plane_channels={self.plane_channels}, channel_base={self.channel_base}, "
            f"channel_max={self.channel_max}, num_ws={self.num_ws}"
        )


def eg3d_triplane_256(*, w_dim: int = 512, plane_channels: int = 32) -> TriplaneGenerator:
    """EG3D's (and BallGAN's) FFHQ tri-plane backbone: 3 x 32 channels at 256 x 256.

    ``channel_base = 32768``, ``channel_max = 512``: 512 channels from 4x4 to 64x64, 256 at 128,
    128 at 256; 14 style vectors of width 512; 28,207,533 parameters (the same count as EG3D's
    ``backbone.synthesis``), plus one fixed-noise buffer per synthesis layer.

    Args:
        w_dim: style width.
        plane_channels: channels per plane.
    """
    return TriplaneGenerator(w_dim, 256, plane_channels, channel_base=32768, channel_max=512)


def small_triplane(
    w_dim: int = 64,
    *,
    resolution: int = 32,
    plane_channels: int = 16,
    channel_base: int = 1024,
    channel_max: int = 32,
) -> TriplaneGenerator:
    """A tri-plane backbone small enough for a CPU: 3 x 16 channels at 32 x 32 by default.

    32 channels per block (``min(1024 // r, 32)``), style width 64, 8 style vectors, 94,471
    parameters; a forward pass at batch 2 takes a few tens of milliseconds on a CPU core.

    Args:
        w_dim: style width.
        resolution: plane resolution (a power of two >= 4).
        plane_channels: channels per plane.
        channel_base: channels are ``min(channel_base // r, channel_max)`` at resolution ``r``.
        channel_max: the most channels of any block.
    """
    return TriplaneGenerator(
        w_dim,
        resolution,
        plane_channels,
        channel_base=channel_base,
        channel_max=channel_max,
    )


class TriplaneDecoderOutput(NamedTuple):
    """What :class:`TriplaneDecoder` returns.

    Attributes:
        densities: raw densities ``[B, N]`` (no activation: EG3D's renderer applies
            ``softplus(x - 1)``).
        features: features ``[B, N, F_out]`` in ``(-0.001, 1.001)``; the first three are the
            colour.
    """

    densities: Float[Tensor, "B N"]
    features: Float[Tensor, "B N Fout"]


class TriplaneDecoder(nn.Module):
    """EG3D's OSG decoder: tri-plane samples -> raw density and features.

    ``x = mean_p(f_p)`` over the three planes' sampled features, ``h = softplus(A x + a)``
    (``hidden = 64``), ``o = B h + b`` (``1 + out_features`` outputs), both layers
    :class:`~aware3d.nn.EqualizedLinear` with learning-rate multiplier ``lr_multiplier``; the
    density is ``o_0`` as is, the features ``sigmoid(o_{1:}) * (1 + 2 * 0.001) - 0.001``
    (Mip-NeRF's widened sigmoid). The decoder sees no view direction.

    The last layer is stored as two heads (density: 1 output, features: ``out_features``), which
    has the same parameters and initial distribution as EG3D's single layer. With
    ``zero_init_density=True`` the density head starts at zero weight and bias, as in BallGAN's
    released decoder (every point starts with raw density 0); the default is EG3D's random
    initialisation.

    Under ``torch.autocast`` the layers run in autocast's dtype, the input may have any float
    dtype, and the outputs have the parameters' dtype.

    Args:
        in_features: ``F`` of the planes (EG3D: 32).
        out_features: decoded feature channels (EG3D: 32; the first three are the raw RGB).
        hidden: hidden width (EG3D: 64).
        lr_multiplier: learning-rate multiplier of both layers (EG3D's ``decoder_lr_mul``, 1).
        zero_init_density: BallGAN's zero-initialised density head.
    """

    def __init__(
        self,
        in_features: int = 32,
        out_features: int = 32,
        hidden: int = 64,
        *,
        lr_multiplier: float = 1.0,
        zero_init_density: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self.hidden = check_positive_int("hidden", hidden)
        self.lr_multiplier = check_positive_number("lr_multiplier", lr_multiplier)
        self.zero_init_density = check_bool("zero_init_density", zero_init_density)
        self.hidden_layer = EqualizedLinear(in_features, hidden, lr_multiplier=lr_multiplier)
        self.density_head = EqualizedLinear(hidden, 1, lr_multiplier=lr_multiplier)
        self.feature_head = EqualizedLinear(hidden, out_features, lr_multiplier=lr_multiplier)
        if zero_init_density:
            nn.init.zeros_(self.density_head.weight)
            assert self.density_head.bias is not None
            nn.init.zeros_(self.density_head.bias)

    @checked
    def forward(self, features: Float[Tensor, "B 3 N F"]) -> TriplaneDecoderOutput:
        """Decodes the features sampled from the three planes at ``N`` points.

        Args:
            features: ``[B, 3, N, in_features]``, as :func:`~aware3d.functional.sample_triplane`
                returns them.

        Returns:
            :class:`TriplaneDecoderOutput`: densities ``[B, N]`` and features
            ``[B, N, out_features]``.

        Raises:
            ValueError: for misshapen features or a dtype (outside ``torch.autocast``) or device
                other than the decoder's.
        """
        check_shape("features", features, ("B", 3, "N", self.in_features))
        check_module_dtype("features", features, self)
        check_module_device("features", features, self)
        dtype = self.feature_head.weight.dtype
        h = F.softplus(self.hidden_layer(features.to(dtype).mean(dim=1)))
        densities = self.density_head(h)[..., 0].to(dtype)
        decoded = torch.sigmoid(self.feature_head(h).to(dtype))
        decoded = decoded * (1 + 2 * FEATURE_SIGMOID_EPS) - FEATURE_SIGMOID_EPS
        return TriplaneDecoderOutput(densities, decoded)

    def extra_repr(self) -> str:
        """Configuration for ``repr``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"hidden={self.hidden}, lr_multiplier={self.lr_multiplier}, "
            f"zero_init_density={self.zero_init_density}"
        )
