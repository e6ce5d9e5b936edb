"""The discriminator of EG3D, GSGAN and BallGAN as released, parameter for parameter.

:class:`DualDiscriminator` is the network of EG3D's ``training/dual_discriminator.py``
(``DualDiscriminator``, which BallGAN uses unchanged apart from its ``disc_c_noise``), of its
single-image variant ``SingleDiscriminator`` and of GSGAN's ``SingleDiscriminator`` with its
camera-contrastive branch, built on StyleGAN2's residual discriminator
(``training/networks_stylegan2.py``). Its parameters have the released names and shapes
(``b512.conv0.weight``, ``mapping.fc3.bias``, ``b4.out.weight``, ...), so a released ``D`` loads
into it with :func:`~aware3d.training.released_discriminator.convert_released_discriminator`
and training continues from it under :func:`~aware3d.training.fit`.

Written from the formulas of StyleGAN2 (Karras et al., CVPR 2020), EG3D (Chan et al., CVPR 2022)
and the facts of the released networks; none of their code is used. Measured against the released
networks built from the authors' sources (random weights and biases, pickled as their training
loops do, converted, float64 with the released float32 casts redirected): the largest logit
difference relative to the largest logit is 1.1e-14 for EG3D's ``DualDiscriminator`` at FFHQ-512
(31.4 M parameters) and 2.9e-15 for GSGAN's at 512 (its contrastive embeddings 5.5e-15); 1e-7 to
2e-6 in float32. ``tests/test_released_discriminator.py`` repeats the check on a small EG3D
network from a fixture.

**The network.** For an input of ``F`` channels at ``R x R`` (``R`` a power of two):

* blocks ``b{R}``, ``b{R/2}``, ..., ``b8``, each halving the resolution, with
  ``channels(r) = min(channel_base // r, channel_max)``. The first block starts with ``fromrgb``
  (1x1 convolution ``F -> channels(R)``, scaled leaky ReLU). A ``"resnet"`` block computes
  ``skip(x) * sqrt(1/2) + conv1(conv0(x)) * sqrt(1/2)``, with ``conv0`` a 3x3 convolution,
  ``conv1`` a 3x3 convolution that halves the resolution, and ``skip`` a bias-free 1x1 convolution
  that halves it (an ``"orig"`` block has no skip and no ``sqrt(1/2)``). Halving is StyleGAN2's:
  the FIR filter ``t t^T`` (``t = [1, 3, 3, 1] / 8``) then every second pixel. For ``conv1`` the
  input is zero-padded by 2 and filtered, then convolved with stride 2 (no further padding); for
  ``skip`` it is padded by 1, filtered and subsampled, then convolved.
* every convolution has equalized learning rate (weights ``N(0, 1)`` times
  ``1 / sqrt(fan_in)`` at run time), adds its bias, applies ``sqrt(2) * leaky_relu(., 0.2)``
  times the call's gain and clamps the result to ``+-conv_clamp * gain`` (the released networks
  clamp in float32 too, not only under fp16; ``skip`` is linear and never clamped);
* the epilogue ``b4``: minibatch standard deviation (``mbstd_num_channels`` extra feature maps
  from groups of ``mbstd_group_size`` samples, sample ``i`` in group ``i mod (B / G)``), a 3x3
  convolution, a fully connected layer on the flattened ``[C, 4, 4]`` map (leaky ReLU) and
  ``out`` (linear) to ``cmap_dim`` numbers, or to the logit without conditioning;
* the conditioning: the label is embedded (``mapping.embed``, linear), normalised to unit second
  moment and mapped by ``mapping_layers`` fully connected layers (learning-rate multiplier 0.01,
  leaky ReLU) to ``cmap``; the logit is ``<out, cmap> / sqrt(cmap_dim)``.

**EG3D's dual input.** The released ``DualDiscriminator`` takes the final image and the raw
(neural-rendered) image, resizes the raw image to the final image's size (bilinear, antialiased)
and concatenates them to ``2 * image_channels`` channels. aware3d's generators already hand the
discriminator that pair (``discriminator_images`` / ``real_discriminator_images`` of the
generator protocol, made with :func:`~aware3d.nn.dual_discriminator_input`), so
:meth:`DualDiscriminator.forward` takes the concatenated images; :meth:`forward_pair` takes the two
images separately and does the resize itself.

**Layout.** ``forward`` follows :func:`~aware3d.training.fit`'s convention,
``(images [B, H, W, F], labels [B, c_dim]) -> logits [B]``: images are channels-last, as the
library renders them, and are rearranged to NCHW (``einops``: ``"b h w f -> b f h w"``) at the
start, so the convolution weights keep the released ``[out, in, k, k]`` layout; the released
``[B, 1]`` logits are returned as ``[B]``.

**Differences from the released code, by design.**

* ``disc_c_noise`` (EG3D's and BallGAN's pose-conditioning noise,
  ``c + randn * std_batch(c) * disc_c_noise``) is drawn in training mode only (the released code
  draws it in every call) and out of place (the released code adds it to the caller's label
  tensor in place, so a label tensor scored twice is noised twice).
* fp16 (``num_fp16_res``) and channels-last memory formats are not used: the network runs in its
  parameters' dtype.
* the blur EG3D puts on the images early in training lives in its loss, not in ``D``; aware3d's
  is :func:`~aware3d.training.discriminator_blur`, applied by :func:`~aware3d.training.gan_step`.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._checked import checked
from aware3d._validation import (
    check_bool,
    check_choice,
    check_module_device,
    check_module_dtype,
    check_nonnegative_int,
    check_nonnegative_number,
    check_positive_int,
    check_shape,
    check_values,
    finite_checks,
    value_checks_enabled,
)
from aware3d.nn._activations import LEAKY_GAIN, LEAKY_SLOPE
from aware3d.nn._conv_layers import STYLEGAN2_FIR, fir_taps, upfirdn2d
from aware3d.nn._linear_layers import EqualizedLinear
from aware3d.nn.superresolution import dual_discriminator_input
from aware3d.training.discriminator import ContrastiveOutput

__all__ = ["ARCHITECTURES", "DualDiscriminator"]

#: Block architectures :class:`DualDiscriminator` builds (StyleGAN2's ``"skip"`` is not built).
ARCHITECTURES = ("resnet", "orig")


def _normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    """``x / sqrt(mean(x^2) + eps)`` over the features (StyleGAN2's label normalisation)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class _Conv(nn.Module):
    """StyleGAN2's discriminator convolution: equalized lr, FIR down-sampling, bias, act, clamp."""

    weight: Tensor
    bias: Tensor | None
    taps: Tensor

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        leaky_relu: bool = True,
        down: bool = False,
        taps: Sequence[float] = STYLEGAN2_FIR,
        conv_clamp: float | None = None,
        trainable: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_size
        self.leaky_relu, self.down, self.conv_clamp = leaky_relu, down, conv_clamp
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size**2)
        weight = torch.randn(out_channels, in_channels, kernel_size, kernel_size)
        bias_value = torch.zeros(out_channels) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias_value) if bias_value is not None else None
        else:  # a frozen layer (``freeze_layers``): its tensors are buffers, as released
            self.register_buffer("weight", weight)
            if bias_value is not None:
                self.register_buffer("bias", bias_value)
            else:
                self.bias = None
        self.register_buffer("taps", fir_taps(taps), persistent=False)

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = self.weight * self.weight_gain
        taps = self.taps.to(x.dtype)
        size = taps.shape[0]
        if not self.down:
            y = F.conv2d(x, w, padding=self.kernel_size // 2)
        elif self.kernel_size == 1:  # filter and subsample first, then the 1x1 convolution
            before, after = (size - 1) // 2, (size - 2) // 2
            y = upfirdn2d(x, taps, down=2, padding=(before, after, before, after))
            y = F.conv2d(y, w)
        else:  # filter with the convolution's padding, then a strided convolution
            pad = self.kernel_size // 2
            before, after = pad + (size - 1) // 2, pad + (size - 2) // 2
            y = upfirdn2d(x, taps, padding=(before, after, before, after))
            y = F.conv2d(y, w, stride=2)
        if self.bias is not None:
            y = y + self.bias.reshape(1, -1, 1, 1)
        act_gain = (LEAKY_GAIN if self.leaky_relu else 1.0) * gain
        if self.leaky_relu:
            y = F.leaky_relu(y, LEAKY_SLOPE)
        if act_gain != 1:
            y = y * act_gain
        if self.conv_clamp is not None:
            limit = self.conv_clamp * gain
            y = y.clamp(-limit, limit)
        return y

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"kernel_size={self.kernel_size}, down={self.down}, conv_clamp={self.conv_clamp}"
        )


class _Block(nn.Module):
    """One resolution: (fromrgb), conv0, conv1 (halving), and the resnet skip."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        image_channels: int,
        *,
        architecture: str,
        taps: Sequence[float],
        conv_clamp: float | None,
        trainable: Sequence[bool],
    ) -> None:
        super().__init__()
        flags = iter(trainable)
        self.fromrgb = (
            _Conv(image_channels, tmp_channels, 1, conv_clamp=conv_clamp, trainable=next(flags))
            if in_channels == 0
            else None
        )
        self.conv0 = _Conv(
            tmp_channels, tmp_channels, 3, conv_clamp=conv_clamp, trainable=next(flags)
        )
        self.conv1 = _Conv(
            tmp_channels,
            out_channels,
            3,
            down=True,
            taps=taps,
            conv_clamp=conv_clamp,
            trainable=next(flags),
        )
        self.skip = (
            _Conv(
                tmp_channels,
                out_channels,
                1,
                bias=False,
                leaky_relu=False,
                down=True,
                taps=taps,
                trainable=next(flags),
            )
            if architecture == "resnet"
            else None
        )

    @staticmethod
    def num_layers(first: bool, architecture: str) -> int:
        """Layers counted by ``freeze_layers`` (fromrgb, conv0, conv1, skip)."""
        return 2 + int(first) + int(architecture == "resnet")

    def forward(self, x: Tensor | None, image: Tensor) -> Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(image)
        assert x is not None
        if self.skip is None:
            return self.conv1(self.conv0(x))
        half = math.sqrt(0.5)
        y = self.skip(x, gain=half)
        return y + self.conv1(self.conv0(x), gain=half)


class _Epilogue(nn.Module):
    """The 4x4 head: minibatch std, conv, fc, out (and the projection on ``cmap``)."""

    def __init__(
        self,
        channels: int,
        cmap_dim: int,
        *,
        mbstd_group_size: int | None,
        mbstd_num_channels: int,
        conv_clamp: float | None,
    ) -> None:
        super().__init__()
        self.mbstd_group_size = mbstd_group_size
        self.mbstd_num_channels = mbstd_num_channels
        self.cmap_dim = cmap_dim
        self.conv = _Conv(channels + mbstd_num_channels, channels, 3, conv_clamp=conv_clamp)
        self.fc = EqualizedLinear(channels * 16, channels, leaky_relu=True)
        self.out = EqualizedLinear(channels, cmap_dim if cmap_dim > 0 else 1)

    def minibatch_std(self, x: Tensor) -> Tensor:
        """StyleGAN2's minibatch standard deviation, appended as ``mbstd_num_channels`` maps."""
        batch, channels, height, width = x.shape
        group = batch if self.mbstd_group_size is None else min(self.mbstd_group_size, batch)
        maps = self.mbstd_num_channels
        y = x.reshape(group, -1, maps, channels // maps, height, width)
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # variance over each group
        y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))  # [B / G, maps]
        y = y.reshape(-1, maps, 1, 1).repeat(group, 1, height, width)
        return torch.cat([x, y], dim=1)

    def forward(self, x: Tensor, cmap: Tensor | None) -> Tensor:
        if self.mbstd_num_channels > 0:
            x = self.minibatch_std(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if cmap is None:
            return x[:, 0]
        return (x * cmap).sum(dim=1) * (1 / math.sqrt(self.cmap_dim))


class _LabelMapping(nn.Module):
    """StyleGAN2's mapping network without a latent: label -> ``cmap`` (no tracked average)."""

    def __init__(
        self,
        c_dim: int,
        cmap_dim: int,
        num_layers: int,
        embed_features: int,
        layer_features: int,
        lr_multiplier: float,
    ) -> None:
        super().__init__()
        self.embed = EqualizedLinear(c_dim, embed_features)
        widths = [embed_features] + [layer_features] * (num_layers - 1) + [cmap_dim]
        self.num_layers = num_layers
        for i in range(num_layers):
            self.add_module(
                f"fc{i}",
                EqualizedLinear(
                    widths[i], widths[i + 1], lr_multiplier=lr_multiplier, leaky_relu=True
                ),
            )

    def forward(self, c: Tensor) -> Tensor:
        x = _normalize_2nd_moment(self.embed(c))
        for i in range(self.num_layers):
            x = self.get_submodule(f"fc{i}")(x)
        return x


class DualDiscriminator(nn.Module):
    """EG3D's released discriminator (and GSGAN's, BallGAN's), channels-last, logits ``[B]``.

    See the module's documentation for the network and what differs from the released code.
    Parameter names and shapes are the released ones, so ``state_dict`` keys read
    ``b{res}.conv0.weight``, ``mapping.fc{i}.weight``, ``b4.out.bias``, ... The released
    constructor's arguments map as: ``img_resolution`` -> ``resolution``, ``img_channels`` ->
    ``image_channels`` (per image; the dual input has twice as many), ``block_kwargs`` ->
    ``freeze_layers`` / ``resample_filter``, ``mapping_kwargs`` -> ``mapping_*``,
    ``epilogue_kwargs`` -> ``mbstd_*``; GSGAN's discriminator is ``dual=False,
    conditioned=False, contrastive_dim=64``.

    Args:
        resolution: input size ``R``, a power of two >= 8.
        image_channels: channels of one image (3); the input has ``2 * image_channels`` with
            ``dual=True``.
        dual: EG3D's dual input (final image and resized raw image, concatenated).
        c_dim: width of the labels (25, the EG3D camera label); 0 for a network that reads none
            (its ``forward`` ignores any labels it is given).
        conditioned: condition the logit on the label by projection (GSGAN: False).
        channel_base: channels are ``min(channel_base // r, channel_max)`` at resolution ``r``.
        channel_max: the most channels of any layer.
        cmap_dim: width of the mapped label (default: the 4x4 channels).
        conv_clamp: clamp of the convolutions' outputs (released default 256), ``None`` for none.
        architecture: ``"resnet"`` (released) or ``"orig"`` (no skip connections).
        mbstd_group_size: minibatch-std group size (4), ``None`` for the whole batch. A batch
            larger than the group must be a multiple of it, as in the released layer.
        mbstd_num_channels: minibatch-std feature maps (1), 0 for none.
        mapping_layers: layers of the label mapping (8).
        mapping_embed_features: width of the label embedding (default ``cmap_dim``).
        mapping_layer_features: width of the hidden mapping layers (default ``cmap_dim``).
        mapping_lr_multiplier: learning-rate multiplier of the mapping layers (0.01).
        freeze_layers: the first this many block layers hold their tensors as buffers (Freeze-D).
        resample_filter: FIR taps of the down-sampling (``[1, 3, 3, 1]``).
        disc_c_noise: pose-conditioning noise in batch standard deviations (training mode only).
        contrastive_dim: GSGAN's camera-contrastive branch width (64), ``None`` for none.

    Attributes:
        config: the constructor's arguments, JSON-ready (``DualDiscriminator(**config)``
            rebuilds the network).

    Raises:
        ValueError: for arguments outside those ranges.
    """

    def __init__(
        self,
        resolution: int,
        image_channels: int = 3,
        *,
        dual: bool = True,
        c_dim: int = 25,
        conditioned: bool = True,
        channel_base: int = 32768,
        channel_max: int = 512,
        cmap_dim: int | None = None,
        conv_clamp: float | None = 256,
        architecture: str = "resnet",
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        mapping_layers: int = 8,
        mapping_embed_features: int | None = None,
        mapping_layer_features: int | None = None,
        mapping_lr_multiplier: float = 0.01,
        freeze_layers: int = 0,
        resample_filter: Sequence[float] = STYLEGAN2_FIR,
        disc_c_noise: float = 0.0,
        contrastive_dim: int | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("resolution", resolution)
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"`resolution` must be a power of two >= 8, got {resolution}")
        check_positive_int("image_channels", image_channels)
        check_bool("dual", dual)
        check_nonnegative_int("c_dim", c_dim)
        check_bool("conditioned", conditioned)
        if c_dim == 0 and (conditioned or contrastive_dim is not None):
            raise ValueError(
                "`c_dim` must be >= 1 for a conditioned discriminator or a contrastive branch"
            )
        check_positive_int("channel_base", channel_base)
        check_positive_int("channel_max", channel_max)
        if cmap_dim is not None:
            check_positive_int("cmap_dim", cmap_dim)
        if conv_clamp is not None:
            conv_clamp = check_nonnegative_number("conv_clamp", conv_clamp)
        check_choice("architecture", architecture, ARCHITECTURES)
        if mbstd_group_size is not None:
            check_positive_int("mbstd_group_size", mbstd_group_size)
        check_nonnegative_int("mbstd_num_channels", mbstd_num_channels)
        check_positive_int("mapping_layers", mapping_layers)
        for name, value in (
            ("mapping_embed_features", mapping_embed_features),
            ("mapping_layer_features", mapping_layer_features),
        ):
            if value is not None:
                check_positive_int(name, value)
        mapping_lr_multiplier = check_nonnegative_number(
            "mapping_lr_multiplier", mapping_lr_multiplier
        )
        if mapping_lr_multiplier == 0:
            raise ValueError("`mapping_lr_multiplier` must be > 0, got 0")
        check_nonnegative_int("freeze_layers", freeze_layers)
        taps = tuple(float(t) for t in resample_filter)
        fir_taps(taps)  # validates
        if len(taps) < 2:
            raise ValueError(f"`resample_filter` needs at least 2 taps, got {resample_filter!r}")
        disc_c_noise = check_nonnegative_number("disc_c_noise", disc_c_noise)
        if contrastive_dim is not None:
            check_positive_int("contrastive_dim", contrastive_dim)

        def channels(res: int) -> int:
            return min(channel_base // res, channel_max)

        block_resolutions = [resolution >> i for i in range(int(math.log2(resolution)) - 2)]
        if any(channels(r) < 1 for r in [*block_resolutions, 4]):
            raise ValueError(
                f"`channel_base` {channel_base} leaves no channels at resolution {resolution}: "
                "it must be at least the resolution"
            )
        if mbstd_num_channels > 0 and channels(4) % mbstd_num_channels:
            raise ValueError(
                f"`mbstd_num_channels` {mbstd_num_channels} must divide the 4x4 channels "
                f"{channels(4)}"
            )
        self.resolution = resolution
        self.image_channels = image_channels
        self.dual = dual
        self.in_channels = image_channels * (2 if dual else 1)
        self.c_dim = c_dim
        self.conditioned = conditioned
        self.cmap_dim = (channels(4) if cmap_dim is None else cmap_dim) if conditioned else 0
        self.disc_c_noise = disc_c_noise
        self.contrastive_dim = contrastive_dim
        self.block_resolutions = block_resolutions
        self.config = dict(
            resolution=resolution,
            image_channels=image_channels,
            dual=dual,
            c_dim=c_dim,
            conditioned=conditioned,
            channel_base=channel_base,
            channel_max=channel_max,
            cmap_dim=cmap_dim,
            conv_clamp=conv_clamp,
            architecture=architecture,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels,
            mapping_layers=mapping_layers,
            mapping_embed_features=mapping_embed_features,
            mapping_layer_features=mapping_layer_features,
            mapping_lr_multiplier=mapping_lr_multiplier,
            freeze_layers=freeze_layers,
            resample_filter=list(taps),
            disc_c_noise=disc_c_noise,
            contrastive_dim=contrastive_dim,
        )

        def block(res: int, first_layer: int) -> _Block:
            first = res == resolution
            count = _Block.num_layers(first, architecture)
            return _Block(
                0 if first else channels(res),
                channels(res),
                channels(res // 2),
                self.in_channels,
                architecture=architecture,
                taps=taps,
                conv_clamp=conv_clamp,
                trainable=[first_layer + i >= freeze_layers for i in range(count)],
            )

        layer = 0
        for res in block_resolutions:
            self.add_module(f"b{res}", block(res, layer))
            layer += _Block.num_layers(res == resolution, architecture)
            if res == 8 and contrastive_dim is not None:  # GSGAN: a parallel last block
                self.b8_pose = block(res, layer)
        if conditioned:
            self.mapping = _LabelMapping(
                c_dim,
                self.cmap_dim,
                mapping_layers,
                self.cmap_dim if mapping_embed_features is None else mapping_embed_features,
                self.cmap_dim if mapping_layer_features is None else mapping_layer_features,
                mapping_lr_multiplier,
            )
        self.b4 = _Epilogue(
            channels(4),
            self.cmap_dim,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels,
            conv_clamp=conv_clamp,
        )
        self.mbstd_group_size = mbstd_group_size
        if contrastive_dim is not None:
            final = channels(4)
            self.aux_branch_feat = nn.Sequential(
                EqualizedLinear(final * 16, final, leaky_relu=True),
                EqualizedLinear(final, contrastive_dim),
            )
            self.aux_branch_camera = nn.Sequential(
                EqualizedLinear(c_dim, final, leaky_relu=True),
                EqualizedLinear(final, contrastive_dim),
            )

    def extra_repr(self) -> str:
        """Resolution, channels and variant for ``repr``."""
        return (
            f"resolution={self.resolution}, in_channels={self.in_channels}, dual={self.dual}, "
            f"conditioned={self.conditioned}, cmap_dim={self.cmap_dim}, "
            f"contrastive_dim={self.contrastive_dim}"
        )

    @checked
    def forward(
        self,
        images: Float[Tensor, "B H W F"],
        labels: Float[Tensor, "B L"] | None = None,
        *,
        noise_generator: torch.Generator | None = None,
    ) -> Float[Tensor, " B"]:
        """Scores channels-last images given their labels.

        Args:
            images: ``[B, R, R, F]`` with ``F = 2 * image_channels`` (``dual``: the final image's
                channels, then the resized raw image's) or ``image_channels``.
            labels: ``[B, c_dim]`` (EG3D camera labels); required when ``conditioned``.
            noise_generator: the random stream of ``disc_c_noise`` (default: torch's global).

        Returns:
            Logits ``[B]`` (empty for ``B = 0``).

        Raises:
            ValueError: for misshapen images (naming ``images``, its expected and received
                shape), missing or misshapen labels, a batch the minibatch-std groups cannot
                split, a dtype or device other than the module's, and (value checks) non-finite
                inputs.
        """
        self._check_inputs(images, labels, self.conditioned)
        if images.shape[0] == 0:
            return images.new_zeros(0)
        x8, last = self._features_at_8(images)
        return self._score(x8, last, labels, noise_generator)

    @checked
    def forward_pair(
        self,
        image: Float[Tensor, "B H W C"],
        image_raw: Float[Tensor, "B h w C"],
        labels: Float[Tensor, "B L"] | None = None,
        *,
        noise_generator: torch.Generator | None = None,
    ) -> Float[Tensor, " B"]:
        """Scores the final and raw images given separately, as the released ``forward``.

        The raw image is resized to the final image's size (bilinear, antialiased, EG3D's
        ``filtered_resizing``) and the two are concatenated (the final image first).

        Args:
            image: final images ``[B, R, R, image_channels]``, channels-last.
            image_raw: raw images ``[B, h, w, image_channels]``, channels-last.
            labels: as :meth:`forward`.
            noise_generator: as :meth:`forward`.

        Raises:
            ValueError: for a single-image discriminator, and as :meth:`forward`.
        """
        if not self.dual:
            raise ValueError("forward_pair needs a dual discriminator (`dual=True`)")
        check_shape("image", image, ("B", self.resolution, self.resolution, self.image_channels))
        check_shape("image_raw", image_raw, (image.shape[0], "h", "w", self.image_channels))
        pair = dual_discriminator_input(
            rearrange(image, "b h w c -> b c h w"), rearrange(image_raw, "b h w c -> b c h w")
        )
        return self.forward(
            rearrange(pair, "b c h w -> b h w c"), labels, noise_generator=noise_generator
        )

    @checked
    def forward_contrastive(
        self, images: Float[Tensor, "B H W F"], labels: Float[Tensor, "B L"]
    ) -> ContrastiveOutput:
        """Logits and GSGAN's camera-contrastive embeddings, from one pass through the blocks.

        The image embedding is ``aux_branch_feat`` of the parallel block ``b8_pose``'s output
        (flattened), the camera embedding ``aux_branch_camera`` of the raw labels, as GSGAN's
        ``aux_out['feat_contrastive']`` and ``aux_out['c_contrastive']``.

        Args:
            images: as :meth:`forward`.
            labels: ``[B, c_dim]``.

        Returns:
            :class:`~aware3d.training.ContrastiveOutput` (logits ``[B]``, embeddings
            ``[B, contrastive_dim]``, not normalised).

        Raises:
            ValueError: if there is no contrastive branch, and as :meth:`forward`.
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
        x8, last = self._features_at_8(images)
        pose = self.b8_pose(x8, last)
        image_embeddings = self.aux_branch_feat(pose.flatten(1))
        camera_embeddings = self.aux_branch_camera(labels)
        return ContrastiveOutput(
            self._score(x8, last, labels, None), image_embeddings, camera_embeddings
        )

    def _check_inputs(self, images: Tensor, labels: Tensor | None, need_labels: bool) -> None:
        res = self.resolution
        check_shape("images", images, ("B", res, res, self.in_channels))
        check_module_dtype("images", images, self)
        check_module_device("images", images, self)
        batch = images.shape[0]
        if labels is None:
            if need_labels:
                raise ValueError(f"`labels` [B, {self.c_dim}] are required by this discriminator")
        elif self.c_dim > 0:  # an unconditional network (c_dim = 0) ignores any labels
            check_shape("labels", labels, (batch, self.c_dim))
            check_module_dtype("labels", labels, self)
            check_module_device("labels", labels, self)
        group = self.mbstd_group_size
        if self.b4.mbstd_num_channels > 0 and group is not None and batch > group and batch % group:
            raise ValueError(
                f"`images` has a batch of {batch}, which the minibatch standard deviation's groups "
                f"of {group} cannot split: use a multiple of {group} (or at most {group})"
            )
        if self.training and self.conditioned and self.disc_c_noise > 0 and batch == 1:
            raise ValueError(
                "`labels` must hold at least 2 rows when `disc_c_noise` > 0 in training mode "
                "(the noise is scaled by the batch's standard deviation)"
            )
        if value_checks_enabled():
            check_values(finite_checks(images=images, labels=labels))

    def _features_at_8(self, images: Tensor) -> tuple[Tensor | None, Tensor]:
        """The input of block ``b8`` (``None`` when it is the first block) and the NCHW image."""
        image = rearrange(images, "b h w f -> b f h w")
        x = None
        for res in self.block_resolutions[:-1]:
            x = self.get_submodule(f"b{res}")(x, image)
        return x, image

    def _score(
        self,
        x8: Tensor | None,
        image: Tensor,
        labels: Tensor | None,
        noise_generator: torch.Generator | None,
    ) -> Tensor:
        x = self.get_submodule("b8")(x8, image)
        cmap = None
        if self.conditioned:
            assert labels is not None
            c = labels
            if self.training and self.disc_c_noise > 0:
                noise = torch.randn(
                    c.shape, generator=noise_generator, dtype=c.dtype, device=c.device
                )
                c = c + noise * c.std(0) * self.disc_c_noise
            cmap = self.mapping(c)
        return self.b4(x, cmap)
