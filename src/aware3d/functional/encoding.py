"""Fourier features of points, used on unit directions for the spherical background.

Encoding the unit vector ``u = p / R`` itself (three smooth coordinates) is continuous on the
whole sphere. Encoding its angles ``(theta, phi)`` instead, as BallGAN's released code does,
jumps where the azimuth wraps from ``+pi`` to ``-pi`` and is singular at the poles.
"""

import math

import torch
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._validation import (
    check_bool,
    check_nonnegative_int,
    check_positive_int,
)

__all__ = ["fourier_feature_dim", "fourier_features"]


def fourier_feature_dim(in_dim: int, num_freqs: int, *, include_input: bool = True) -> int:
    """Width of :func:`fourier_features`: ``in_dim * (2 num_freqs + include_input)``."""
    check_positive_int("in_dim", in_dim)
    check_nonnegative_int("num_freqs", num_freqs)
    check_bool("include_input", include_input)
    return in_dim * (2 * num_freqs + int(include_input))


@checked
def fourier_features(
    x: Float[Tensor, "*batch P"], num_freqs: int, *, include_input: bool = True
) -> Float[Tensor, "*batch E"]:
    """NeRF-style Fourier features ``[x, sin(2^k pi x), cos(2^k pi x)]`` for ``k < num_freqs``.

    The output is ``[x, sin(pi x f_0), ..., sin(pi x f_{K-1}), cos(...)]`` with ``f_k = 2^k``,
    each block ``P`` wide (``P = 3`` for directions): ``E = P (2 K + include_input)`` channels.
    Every channel is a smooth function of ``x``, so features of unit directions are seam-free.

    Args:
        x: points ``[..., P]``; for directions, unit vectors (``P = 3``).
        num_freqs: number of octaves ``K`` >= 0.
        include_input: prepend ``x`` itself.

    Returns:
        ``[..., E]`` features, same dtype as ``x``.
    """
    check_nonnegative_int("num_freqs", num_freqs)
    check_bool("include_input", include_input)
    freqs = math.pi * torch.exp2(torch.arange(num_freqs, dtype=x.dtype, device=x.device))
    angles = (x[..., None, :] * freqs[:, None]).flatten(-2)  # [..., K * P], octave-major
    parts = [x] if include_input else []
    parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=-1)
