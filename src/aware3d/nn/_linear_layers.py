"""StyleGAN2's linear layers with equalized learning rate: plain and style-modulated.

The base of the library's StyleGAN2 layers: the convolution layers
(:mod:`aware3d.nn._conv_layers`) use :class:`EqualizedLinear` as their style affine. Import these
names from :mod:`aware3d.nn.layers` or :mod:`aware3d.nn`.
"""

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._checked import checked
from aware3d._validation import (
    check_bool,
    check_module_device,
    check_module_dtype,
    check_number,
    check_positive_int,
    check_positive_number,
    check_shape,
)
from aware3d.nn._activations import scaled_leaky_relu

__all__ = ["EqualizedLinear", "ModulatedLinear"]


class EqualizedLinear(nn.Module):
    """Linear layer with StyleGAN's equalized learning rate.

    ``y = act(x @ (W * g)^T + b * lr_multiplier)`` with ``W ~ N(0, 1) / lr_multiplier`` stored and
    ``g = lr_multiplier / sqrt(in_features)`` applied at run time. ``leaky_relu=True`` uses
    StyleGAN2's ``sqrt(2) * leaky_relu(., 0.2)``.

    Args:
        in_features: input width.
        out_features: output width.
        bias: whether to add a bias.
        bias_init: initial bias value (1 for style affines, so styles start at 1).
        lr_multiplier: learning-rate multiplier (0.01 in StyleGAN2's mapping network).
        leaky_relu: apply the scaled leaky ReLU.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
        leaky_relu: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int("in_features", in_features)
        check_positive_int("out_features", out_features)
        check_positive_number("lr_multiplier", lr_multiplier)
        check_number("bias_init", bias_init)
        check_bool("bias", bias)
        check_bool("leaky_relu", leaky_relu)
        self.in_features = in_features
        self.out_features = out_features
        self.lr_multiplier = lr_multiplier
        self.leaky_relu = leaky_relu
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = (
            nn.Parameter(torch.full((out_features,), float(bias_init) / lr_multiplier))
            if bias
            else None
        )
        self.weight_gain = lr_multiplier / math.sqrt(in_features)

    @checked
    def forward(
        self, x: Float[Tensor, "*batch in_features"]
    ) -> Float[Tensor, "*batch out_features"]:
        """Applies the layer to the last dimension of ``x``.

        Raises:
            ValueError: if ``x``'s last dimension is not ``in_features`` or its dtype or device
                differs from the layer's.
        """
        check_shape("x", x, (self.in_features,), batch=True)
        check_module_dtype("x", x, self)
        check_module_device("x", x, self)
        bias = None if self.bias is None else self.bias * self.lr_multiplier
        y = F.linear(x, self.weight * self.weight_gain, bias)
        return scaled_leaky_relu(y) if self.leaky_relu else y

    def extra_repr(self) -> str:
        """Layer sizes and options for ``repr``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"lr_multiplier={self.lr_multiplier}, leaky_relu={self.leaky_relu}"
        )


class ModulatedLinear(nn.Module):
    """StyleGAN2's modulated layer for per-point features, with optional demodulation.

    For one sample with style ``s = A(w)`` (an :class:`EqualizedLinear` affine, bias 1):
    ``W'_oi = W_oi s_i g``; with demodulation ``W''_oi = W'_oi / sqrt(sum_i W'_oi^2 + 1e-8)``;
    ``y = act(x @ W''^T + b)``. Computed without forming per-sample weights:
    ``y = ((x * s) @ (W g)^T) * d`` with ``d_o = (sum_i (W_oi g)^2 s_i^2 + 1e-8)^-1/2``.

    Args:
        in_features: input width.
        out_features: output width.
        w_dim: width of the style code ``w``.
        demodulate: normalise each output unit's modulated weights (off for the output layer).
        leaky_relu: apply StyleGAN2's scaled leaky ReLU.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        w_dim: int,
        *,
        demodulate: bool = True,
        leaky_relu: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int("in_features", in_features)
        check_positive_int("out_features", out_features)
        check_positive_int("w_dim", w_dim)
        check_bool("demodulate", demodulate)
        check_bool("leaky_relu", leaky_relu)
        self.in_features = in_features
        self.out_features = out_features
        self.w_dim = w_dim
        self.demodulate = demodulate
        self.leaky_relu = leaky_relu
        self.affine = EqualizedLinear(w_dim, in_features, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_gain = 1.0 / math.sqrt(in_features)

    @checked
    def forward(
        self, x: Float[Tensor, "B *points in_features"], w: Float[Tensor, "B w_dim"]
    ) -> Float[Tensor, "B *points out_features"]:
        """Modulates by ``w`` (one style per sample) and applies the layer to ``x``.

        Args:
            x: inputs ``[B, ..., in_features]``.
            w: style codes ``[B, w_dim]``.

        Returns:
            ``[B, ..., out_features]`` (empty for ``B = 0``).

        Raises:
            ValueError: for mismatched shapes, or a dtype or device other than the layer's.
        """
        check_shape("x", x, (self.in_features,), batch=True)
        check_shape("w", w, (x.shape[0], self.w_dim))
        check_module_dtype("x", x, self)
        check_module_device("x", x, self)
        styles = self.affine(w)
        weight = self.weight * self.weight_gain
        view = (styles.shape[0],) + (1,) * (x.ndim - 2) + (styles.shape[-1],)
        y = F.linear(x * styles.reshape(view), weight)
        if self.demodulate:
            demod = torch.rsqrt(styles.square() @ weight.square().T + 1e-8)
            y = y * demod.reshape(*view[:-1], self.out_features)
        y = y + self.bias
        return scaled_leaky_relu(y) if self.leaky_relu else y

    def extra_repr(self) -> str:
        """Layer sizes and options for ``repr``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"w_dim={self.w_dim}, demodulate={self.demodulate}, "
            f"leaky_relu={self.leaky_relu}"
        )
