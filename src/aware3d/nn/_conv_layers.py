"""StyleGAN2's 2D convolution layers, in plain PyTorch: FIR resampling and modulated convolutions.

These are the layers of EG3D's tri-plane backbone and super-resolution networks (and so of
BallGAN's). Images and feature maps here are **NCHW** (``[B, C, H, W]``), the layout of 2D
convolutions; the library's rendered images are channels-last ``[B, C, H, W, F]`` and are
converted at the boundary of the model that feeds them to these networks.

Written from the formulas of StyleGAN2 (Karras et al., CVPR 2020) and the facts of EG3D's released
networks (architecture, constants, initialisation). Omitted on purpose: custom CUDA kernels (the
FIR filter is a padded ``conv2d``), fp16 execution and the ``conv_clamp`` that only guards fp16.
Import these names from :mod:`aware3d.nn.layers` or :mod:`aware3d.nn`.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._checked import checked
from aware3d._validation import (
    check_bool,
    check_choice,
    check_module_device,
    check_module_dtype,
    check_nonnegative_int,
    check_positive_int,
    check_positive_number,
    check_shape,
)
from aware3d.nn._activations import scaled_leaky_relu
from aware3d.nn._linear_layers import EqualizedLinear

__all__ = [
    "NOISE_MODES",
    "STYLEGAN2_FIR",
    "ModulatedConv2d",
    "SynthesisBlock",
    "SynthesisLayer",
    "ToRGBLayer",
    "fir_taps",
    "modulated_conv2d",
    "upfirdn2d",
    "upsample2d",
]

#: StyleGAN2's resampling filter: the separable binomial ``[1, 3, 3, 1]`` (normalised before use).
STYLEGAN2_FIR = (1.0, 3.0, 3.0, 1.0)

#: Noise modes of :class:`SynthesisLayer`: fresh noise, the layer's fixed noise, or no noise.
NOISE_MODES = ("random", "const", "none")


# ---------------------------------------------------------------------- FIR resampling


def fir_taps(
    taps: Sequence[float] = STYLEGAN2_FIR,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Float[Tensor, " K"]:
    """The 1D taps of a separable FIR filter, normalised to sum to 1.

    The 2D filter is the outer product ``f[a, b] = t[a] t[b]``, so it also sums to 1 and keeps a
    constant image constant. For StyleGAN2's ``[1, 3, 3, 1]`` this is ``[1, 3, 3, 1] / 8``.

    Args:
        taps: filter taps (at least one, with a non-zero sum).
        dtype: dtype of the result (default: torch's default).
        device: device of the result.

    Raises:
        ValueError: for no taps, non-finite taps or taps summing to 0.
    """
    values = [float(tap) for tap in taps]
    total = sum(values)
    if not values or not all(math.isfinite(v) for v in values) or total == 0:
        raise ValueError(f"`taps` must be finite numbers with a non-zero sum, got {taps!r}")
    return torch.tensor([v / total for v in values], dtype=dtype, device=device)


def _padding4(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` from one int, ``(x, y)`` or four ints."""
    message = f"`padding` must be an int, (x, y) or (left, right, top, bottom), got {padding!r}"
    if isinstance(padding, bool):
        raise ValueError(message)
    if isinstance(padding, int):
        return padding, padding, padding, padding
    values: list[int] = list(padding) if isinstance(padding, Sequence) else []
    if len(values) not in (2, 4) or not all(
        isinstance(p, int) and not isinstance(p, bool) for p in values
    ):
        raise ValueError(message)
    if len(values) == 2:
        return values[0], values[0], values[1], values[1]
    return values[0], values[1], values[2], values[3]


@checked
def upfirdn2d(
    x: Float[Tensor, "B C H W"],
    taps: Float[Tensor, " K"],
    *,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    gain: float = 1.0,
) -> Float[Tensor, "B C H2 W2"]:
    """Upsamples, pads, filters with a separable FIR filter and downsamples every channel.

    In order, for every channel of every image:

    1. upsample by ``up``: insert ``up - 1`` zeros after every pixel (``H -> up H``);
    2. pad with zeros (negative padding crops);
    3. convolve (a true convolution, not a correlation) with the 2D filter
       ``f[a, b] = gain * t[a] t[b]`` (``t`` = ``taps``), keeping only outputs whose footprint lies
       inside the padded image;
    4. downsample by ``down``: keep every ``down``-th pixel, starting with the first.

    The output height is ``(up H + top + bottom - K + 1) // down`` rounded up (width alike). This is
    StyleGAN2's ``upfirdn2d`` for separable filters, in plain PyTorch (two 1D convolutions).

    Args:
        x: images ``[B, C, H, W]``.
        taps: 1D taps ``[K]`` of the separable filter (e.g. :func:`fir_taps`); used as given.
        up: upsampling factor (>= 1).
        down: downsampling factor (>= 1).
        padding: ``p``, ``(x, y)`` or ``(left, right, top, bottom)``, in upsampled pixels.
        gain: overall factor of the 2D filter (``up ** 2`` keeps the mean of an upsampled image).

    Returns:
        ``[B, C, H2, W2]``.

    Raises:
        ValueError: for bad factors or padding, or padding that leaves no output pixel.
    """
    check_positive_int("up", up)
    check_positive_int("down", down)
    gain = check_positive_number("gain", gain)
    left, right, top, bottom = _padding4(padding)
    batch, channels, height, width = x.shape
    size = taps.shape[0]
    padded_h = height * up + top + bottom
    padded_w = width * up + left + right
    if padded_h < size or padded_w < size:
        raise ValueError(
            f"`padding` {padding!r} leaves a {padded_h}x{padded_w} image, smaller than the "
            f"{size}-tap filter"
        )
    y = x.reshape(batch * channels, 1, height, width)
    if up > 1:
        y = F.pad(y[:, :, :, None, :, None], (0, up - 1, 0, 0, 0, up - 1))
        y = y.reshape(batch * channels, 1, height * up, width * up)
    y = F.pad(y, (max(left, 0), max(right, 0), max(top, 0), max(bottom, 0)))
    y = y[
        :,
        :,
        max(-top, 0) : y.shape[2] - max(-bottom, 0),
        max(-left, 0) : y.shape[3] - max(-right, 0),
    ]
    kernel = taps.to(x.dtype).flip(0) * math.sqrt(gain)  # flipped: conv2d correlates
    y = F.conv2d(y, kernel.reshape(1, 1, 1, size))
    y = F.conv2d(y, kernel.reshape(1, 1, size, 1))
    y = y[:, :, ::down, ::down]
    return y.reshape(batch, channels, y.shape[2], y.shape[3])


@checked
def upsample2d(
    x: Float[Tensor, "B C H W"], taps: Float[Tensor, " K"] | None = None
) -> Float[Tensor, "B C H2 W2"]:
    """Doubles the resolution with StyleGAN2's filtered upsampling.

    Zero insertion, then the FIR filter with gain 4 (so the mean is kept), padded so that
    ``[H, W] -> [2H, 2W]``: with ``K`` taps, ``(K + 1) // 2`` zeros before and ``(K - 2) // 2``
    after. The default filter is :func:`fir_taps` of ``[1, 3, 3, 1]``.

    Args:
        x: images ``[B, C, H, W]``.
        taps: 1D filter taps (default ``[1, 3, 3, 1] / 8``).

    Returns:
        ``[B, C, 2H, 2W]``.
    """
    if taps is None:
        taps = fir_taps(dtype=x.dtype, device=x.device)
    size = taps.shape[0]
    before, after = (size + 1) // 2, (size - 2) // 2
    return upfirdn2d(x, taps, up=2, padding=(before, after, before, after), gain=4.0)


# ---------------------------------------------------------------------- modulated convolution


@checked
def modulated_conv2d(
    x: Float[Tensor, "B I H W"],
    weight: Float[Tensor, "O I k k"],
    styles: Float[Tensor, "B I"],
    *,
    demodulate: bool = True,
    upsample: bool = False,
    taps: Float[Tensor, " K"] | None = None,
) -> Float[Tensor, "B O H2 W2"]:
    """StyleGAN2's modulated convolution, as one grouped convolution over the batch.

    Per sample ``b``, ``W'_boi.. = W_oi.. s_bi`` and, with demodulation,
    ``W''_bo = W'_bo / sqrt(sum_{i,a,c} W'_boiac^2 + 1e-8)``. Without upsampling the result is
    ``conv2d(x_b, W''_b)`` with ``k // 2`` zero padding (same size). With ``upsample=True`` it is
    StyleGAN2's transposed convolution with stride 2 (a true convolution of the zero-inserted
    input with ``W''_b``, ``[H, W] -> [2H + k - 2, 2W + k - 2]``) followed by the FIR filter
    (gain 4; ``(K + 1) // 2 + k // 2 - (k - 1)`` zeros before and
    ``(K - 2) // 2 + k // 2 - (k - 2)`` after, 1 and 1 for ``k = 3`` and ``K = 4``):
    ``[H, W] -> [2H, 2W]``.

    The batch is folded into the channels (``groups = B``) so every sample gets its own weights
    in a single call; the tests compare it with a loop over per-sample weights.

    Args:
        x: inputs ``[B, I, H, W]``.
        weight: shared weights ``[O, I, k, k]`` (odd ``k``), with any gain already applied.
        styles: per-sample input scales ``[B, I]``.
        demodulate: normalise each output channel's per-sample weights.
        upsample: double the resolution (transposed convolution + FIR filter).
        taps: FIR taps for upsampling (default ``[1, 3, 3, 1] / 8``).

    Returns:
        ``[B, O, H, W]``, or ``[B, O, 2H, 2W]`` when upsampling.
    """
    check_bool("demodulate", demodulate)
    check_bool("upsample", upsample)
    out_channels, in_channels, kernel, _ = weight.shape
    if kernel % 2 == 0:
        raise ValueError(f"`weight` must have an odd kernel size, got {kernel}")
    batch, _, height, width = x.shape
    scale = 2 if upsample else 1
    if batch == 0:
        return x.new_zeros(0, out_channels, height * scale, width * scale)
    w = weight[None] * styles[:, None, :, None, None]  # [B, O, I, k, k]
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
    folded = x.reshape(1, batch * in_channels, height, width)
    if not upsample:
        y = F.conv2d(
            folded,
            w.reshape(batch * out_channels, in_channels, kernel, kernel),
            padding=kernel // 2,
            groups=batch,
        )
        return y.reshape(batch, out_channels, height, width)
    # conv_transpose2d wants [groups * in, out, k, k]; it convolves the zero-inserted input.
    y = F.conv_transpose2d(
        folded,
        w.transpose(1, 2).reshape(batch * in_channels, out_channels, kernel, kernel),
        stride=2,
        groups=batch,
    )  # [1, B * O, 2H + k - 2, 2W + k - 2]
    if taps is None:
        taps = fir_taps(dtype=x.dtype, device=x.device)
    size = taps.shape[0]
    before = (size + 1) // 2 + kernel // 2 - (kernel - 1)
    after = (size - 2) // 2 + kernel // 2 - (kernel - 2)
    y = upfirdn2d(y, taps, padding=(before, after, before, after), gain=4.0)
    return y.reshape(batch, out_channels, 2 * height, 2 * width)


def _check_conv_clamp(conv_clamp: object) -> float | None:
    if conv_clamp is None:
        return None
    return check_positive_number("conv_clamp", conv_clamp)


def _clamp(x: Tensor, conv_clamp: float | None) -> Tensor:
    return x if conv_clamp is None else x.clamp(-conv_clamp, conv_clamp)


def _check_noise_mode(noise_mode: object, generator: object) -> None:
    check_choice("noise_mode", noise_mode, NOISE_MODES)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator or None, got {generator!r}")


class ModulatedConv2d(nn.Module):
    """A 2D convolution modulated by a style code ``w`` (StyleGAN2).

    ``s = A(w)`` with ``A`` an :class:`~aware3d.nn.EqualizedLinear` whose bias starts at 1 (so
    styles start near 1), then :func:`modulated_conv2d` with the stored weights
    ``W ~ N(0, 1)``. Without demodulation the styles are scaled by the equalized-learning-rate
    gain ``1 / sqrt(I k^2)`` (as in StyleGAN2's toRGB); with demodulation any such gain cancels and
    is not applied. No bias and no activation here (see :class:`SynthesisLayer`).

    Args:
        in_channels: ``I``.
        out_channels: ``O``.
        w_dim: width of ``w``.
        kernel_size: odd kernel size ``k``.
        demodulate: weight demodulation.
        upsample: double the resolution (transposed convolution + ``[1, 3, 3, 1]`` filter).
    """

    taps: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 3,
        *,
        demodulate: bool = True,
        upsample: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.w_dim = check_positive_int("w_dim", w_dim)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd, got {kernel_size}")
        self.demodulate = check_bool("demodulate", demodulate)
        self.upsample = check_bool("upsample", upsample)
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        self.register_buffer("taps", fir_taps(), persistent=False)

    @checked
    def forward(
        self, x: Float[Tensor, "B I H W"], w: Float[Tensor, "B D"]
    ) -> Float[Tensor, "B O H2 W2"]:
        """Convolves ``x`` with weights modulated by ``w``.

        Args:
            x: ``[B, in_channels, H, W]``.
            w: ``[B, w_dim]``.

        Returns:
            ``[B, out_channels, H, W]`` (``2H, 2W`` when upsampling).

        Raises:
            ValueError: for misshapen inputs or a dtype or device other than the layer's.
        """
        check_shape("x", x, ("B", self.in_channels, "H", "W"))
        check_shape("w", w, (x.shape[0], self.w_dim))
        check_module_dtype("x", x, self)
        check_module_device("x", x, self)
        styles = self.affine(w)
        if not self.demodulate:
            styles = styles * self.weight_gain
        return modulated_conv2d(
            x,
            self.weight,
            styles,
            demodulate=self.demodulate,
            upsample=self.upsample,
            taps=self.taps.to(x.dtype),
        )

    def extra_repr(self) -> str:
        """Layer sizes and options for ``repr``."""
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"w_dim={self.w_dim}, kernel_size={self.kernel_size}, "
            f"demodulate={self.demodulate}, upsample={self.upsample}"
        )


class SynthesisLayer(nn.Module):
    """StyleGAN2's synthesis layer: modulated 3x3 convolution, noise, bias, leaky ReLU.

    ``y = sqrt(2) * leaky_relu(conv_w(x) + g * n + b, 0.2)``: ``conv_w`` a demodulated
    :class:`ModulatedConv2d` (optionally upsampling 2x), ``n`` per-pixel noise ``[B, 1, R, R]``
    shared by the channels, ``g`` a learned scalar strength initialised to 0, ``b`` a bias
    initialised to 0. With ``conv_clamp = c`` the result is clamped to ``[-c, c]`` (StyleGAN2's
    ``conv_clamp``, which the released super-resolution networks set to 256 whenever they are
    configured for fp16, and which then applies in float32 too); ``None`` (default) clamps nothing.

    Noise modes: ``"random"`` draws fresh ``N(0, 1)`` noise (from ``generator`` if given, for
    reproducibility), ``"const"`` uses the layer's fixed noise ``noise_const`` (a buffer drawn at
    construction, the same for every sample), ``"none"`` adds nothing (the same as strength 0).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        w_dim: width of ``w``.
        resolution: ``R``, the output resolution (the input is ``R / 2`` when upsampling).
        kernel_size: odd kernel size.
        upsample: double the resolution.
        use_noise: have the noise input (strength and constant noise).
        conv_clamp: clamp the output to ``[-conv_clamp, conv_clamp]`` (``None``: no clamp).
    """

    noise_const: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        *,
        upsample: bool = False,
        use_noise: bool = True,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution = check_positive_int("resolution", resolution)
        self.conv_clamp = _check_conv_clamp(conv_clamp)
        check_bool("upsample", upsample)
        if upsample and resolution % 2:
            raise ValueError(f"`resolution` must be even when upsampling, got {resolution}")
        self.use_noise = check_bool("use_noise", use_noise)
        self.conv = ModulatedConv2d(
            in_channels, out_channels, w_dim, kernel_size, upsample=upsample
        )
        self.in_resolution = resolution // 2 if upsample else resolution
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    @checked
    def forward(
        self,
        x: Float[Tensor, "B I h w"],
        w: Float[Tensor, "B D"],
        *,
        noise_mode: str = "random",
        generator: torch.Generator | None = None,
    ) -> Float[Tensor, "B O H W"]:
        """Applies the layer.

        Args:
            x: ``[B, in_channels, r, r]`` with ``r = resolution`` (``resolution / 2`` when
                upsampling).
            w: ``[B, w_dim]``.
            noise_mode: ``"random"``, ``"const"`` or ``"none"``.
            generator: random generator for ``"random"`` noise, on the inputs' device type.

        Returns:
            ``[B, out_channels, resolution, resolution]``.

        Raises:
            ValueError: for misshapen inputs, an unknown noise mode, or a dtype or device other
                than the layer's.
            TypeError: for a generator that is not a ``torch.Generator``.
        """
        _check_noise_mode(noise_mode, generator)
        r = self.in_resolution
        check_shape("x", x, ("B", self.conv.in_channels, r, r))
        y = self.conv(x, w)
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                if generator is not None and generator.device.type != x.device.type:
                    raise ValueError(
                        f"`generator` is on {generator.device} but `x` is on {x.device}"
                    )
                noise = torch.randn(
                    y.shape[0],
                    1,
                    self.resolution,
                    self.resolution,
                    generator=generator,
                    dtype=y.dtype,
                    device=y.device,
                )
            else:
                noise = self.noise_const.to(y.dtype)
            y = y + noise * self.noise_strength
        return _clamp(scaled_leaky_relu(y + self.bias[:, None, None]), self.conv_clamp)

    def extra_repr(self) -> str:
        """Resolution and noise option for ``repr``."""
        clamp = "" if self.conv_clamp is None else f", conv_clamp={self.conv_clamp}"
        return f"resolution={self.resolution}, use_noise={self.use_noise}{clamp}"


class ToRGBLayer(nn.Module):
    """StyleGAN2's toRGB: a 1x1 modulated convolution without demodulation, plus a bias.

    ``y = conv_w(x) + b``, the styles scaled by ``1 / sqrt(in_channels * k^2)``; no activation;
    clamped to ``[-conv_clamp, conv_clamp]`` when ``conv_clamp`` is set.

    Args:
        in_channels: feature channels.
        out_channels: image channels.
        w_dim: width of ``w``.
        kernel_size: odd kernel size (1 in StyleGAN2).
        conv_clamp: clamp of the output (``None``: no clamp).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 1,
        *,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.conv_clamp = _check_conv_clamp(conv_clamp)
        self.conv = ModulatedConv2d(in_channels, out_channels, w_dim, kernel_size, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    @checked
    def forward(
        self, x: Float[Tensor, "B I H W"], w: Float[Tensor, "B D"]
    ) -> Float[Tensor, "B O H W"]:
        """Maps features ``[B, in_channels, H, W]`` to an image ``[B, out_channels, H, W]``."""
        return _clamp(self.conv(x, w) + self.bias[:, None, None], self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of StyleGAN2's "skip" synthesis network.

    First block (``in_channels=0``): a learned constant ``[out_channels, R, R]`` (``N(0, 1)``),
    one :class:`SynthesisLayer`, toRGB. Other blocks: two synthesis layers, the first one
    upsampling 2x (unless ``upsample=False``, EG3D's super-resolution "NoUp" block that keeps the
    resolution), then toRGB; the incoming skip image is upsampled with :func:`upsample2d` (kept
    as is without upsampling) and the toRGB output is added to it.

    **Styles.** The block reads ``num_ws = num_conv + 1`` style vectors, in order: one per
    synthesis layer, then toRGB's. In a full network the blocks overlap by one: a block's toRGB
    shares its ``w`` with the next block's first layer, so a network of blocks reads
    ``sum(num_conv) + 1`` vectors (14 for EG3D's 4 -> 256 backbone).

    Args:
        in_channels: input feature channels, 0 for the first block.
        out_channels: feature channels of the block.
        w_dim: width of ``w``.
        resolution: ``R``, the block's output resolution.
        image_channels: channels of the skip image.
        upsample: double the resolution (ignored by the first block, which has no input).
        use_noise: give the synthesis layers noise inputs.
        conv_clamp: clamp of every layer's output, toRGB's included (``None``: no clamp; the
            released super-resolution networks: 256).
    """

    const: Tensor
    taps: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        image_channels: int = 3,
        *,
        upsample: bool = True,
        use_noise: bool = True,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_nonnegative_int("in_channels", in_channels)
        self.conv_clamp = _check_conv_clamp(conv_clamp)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.w_dim = check_positive_int("w_dim", w_dim)
        self.resolution = check_positive_int("resolution", resolution)
        self.image_channels = check_positive_int("image_channels", image_channels)
        check_bool("upsample", upsample)
        self.upsample = upsample and in_channels > 0
        if self.upsample and resolution % 2:
            raise ValueError(f"`resolution` must be even when upsampling, got {resolution}")
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim,
                resolution,
                upsample=self.upsample,
                use_noise=use_noise,
                conv_clamp=conv_clamp,
            )
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, use_noise=use_noise,
            conv_clamp=conv_clamp,
        )  # fmt: skip
        self.torgb = ToRGBLayer(out_channels, image_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_ws = self.num_conv + 1
        self.register_buffer("taps", fir_taps(), persistent=False)

    @property
    def in_resolution(self) -> int:
        """Resolution of the incoming features and skip image."""
        return self.resolution // 2 if self.upsample else self.resolution

    @checked
    def forward(
        self,
        x: Float[Tensor, "B I h w"] | None,
        image: Float[Tensor, "B C h w"] | None,
        ws: Float[Tensor, "B K D"],
        *,
        noise_mode: str = "random",
        generator: torch.Generator | None = None,
    ) -> tuple[Float[Tensor, "B O H W"], Float[Tensor, "B C H W"]]:
        """Runs the block.

        Args:
            x: features ``[B, in_channels, r, r]`` (``r`` = :attr:`in_resolution`); ``None`` for
                the first block.
            image: skip image ``[B, image_channels, r, r]`` or ``None`` (first block).
            ws: ``[B, num_ws, w_dim]``.
            noise_mode: ``"random"``, ``"const"`` or ``"none"``.
            generator: random generator for ``"random"`` noise.

        Returns:
            ``(features [B, out_channels, R, R], image [B, image_channels, R, R])``.

        Raises:
            ValueError: for misshapen inputs (``ws`` with another count than ``num_ws``, wrong
                channels or resolution), an input ``x`` to the first block or none to another.
        """
        _check_noise_mode(noise_mode, generator)
        check_shape("ws", ws, ("B", self.num_ws, self.w_dim))
        check_module_dtype("ws", ws, self)
        check_module_device("ws", ws, self)
        batch = ws.shape[0]
        r = self.in_resolution
        if self.conv0 is None:
            if x is not None:
                raise ValueError("`x` must be None for the first block (it starts from `const`)")
            start = self.const[None].expand(batch, -1, -1, -1)
            out = self.conv1(start, ws[:, 0], noise_mode=noise_mode, generator=generator)
        else:
            if x is None:
                raise ValueError(f"`x` [B, {self.in_channels}, {r}, {r}] is required")
            check_shape("x", x, (batch, self.in_channels, r, r))
            out = self.conv0(x, ws[:, 0], noise_mode=noise_mode, generator=generator)
            out = self.conv1(out, ws[:, 1], noise_mode=noise_mode, generator=generator)
        rgb = self.torgb(out, ws[:, -1])
        if image is None:
            return out, rgb
        check_shape("image", image, (batch, self.image_channels, r, r))
        if self.upsample:
            image = upsample2d(image, self.taps.to(image.dtype))
        return out, image + rgb

    def extra_repr(self) -> str:
        """Block sizes for ``repr``."""
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"resolution={self.resolution}, upsample={self.upsample}, num_ws={self.num_ws}"
        )
