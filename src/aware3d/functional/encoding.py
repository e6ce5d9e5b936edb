"""Fourier features of points, used on unit directions for the spherical background.

Encoding the unit vector ``u = p / R`` itself (three smooth coordinates) is continuous on the
whole sphere. Encoding its angles ``(theta, phi)`` instead, as BallGAN's released code does
(:func:`sphere_angle_features`), is not: its azimuth ``phi = atan2(x, z)`` runs over
``[0, 2 pi)`` and wraps from ``2 pi`` to 0 across the half-plane ``x = 0, z > 0`` (the ``+z``
direction), and it is undefined at the poles ``+-y``. With BallGAN's scaling (angles divided by
``2 pi``, octaves ``2^k pi``) the channels of octave ``k >= 1`` are ``2 pi``-periodic in ``phi``,
so exactly one channel jumps at the seam, ``cos(phi / 2)`` (from -1 to 1), and ``sin(phi / 2)``
has a kink there; near a pole every ``phi`` channel takes all its values.
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
from aware3d.functional.sphere import sphere_angles

__all__ = ["fourier_feature_dim", "fourier_features", "sphere_angle_features"]

#: BallGAN's divisor of the angles before encoding (``downscale_p_by = 2 pi`` in its train.py).
BALLGAN_ANGLE_SCALE = 2 * math.pi


def fourier_feature_dim(in_dim: int, num_freqs: int, *, include_input: bool = True) -> int:
    """Width of :func:`fourier_features`: ``in_dim * (2 num_freqs + include_input)``."""
    check_positive_int("in_dim", in_dim)
    check_nonnegative_int("num_freqs", num_freqs)
    check_bool("include_input", include_input)
    return in_dim * (2 * num_freqs + int(include_input))


@checked
def fourier_features(
    x: Float[Tensor, "*batch P"],
    num_freqs: int,
    *,
    include_input: bool = True,
    interleave: bool = False,
) -> Float[Tensor, "*batch E"]:
    """NeRF-style Fourier features ``[x, sin(2^k pi x), cos(2^k pi x)]`` for ``k < num_freqs``.

    The output is ``[x, sin(pi x f_0), ..., sin(pi x f_{K-1}), cos(...)]`` with ``f_k = 2^k``,
    each block ``P`` wide (``P = 3`` for directions): ``E = P (2 K + include_input)`` channels.
    With ``interleave=True`` the sines and cosines alternate octave by octave,
    ``[x, sin(pi x f_0), cos(pi x f_0), sin(pi x f_1), cos(pi x f_1), ...]`` (the layout of
    pi-GAN's, GIRAFFE's and BallGAN's ``positional_encoding``; the same channels, permuted, which
    matters only for the layout of the next layer's weights).
    Every channel is a smooth function of ``x``, so features of unit directions are seam-free.

    Args:
        x: points ``[..., P]``; for directions, unit vectors (``P = 3``).
        num_freqs: number of octaves ``K`` >= 0.
        include_input: prepend ``x`` itself.
        interleave: alternate sines and cosines per octave instead of all sines, then all cosines.

    Returns:
        ``[..., E]`` features, same dtype as ``x``.
    """
    check_nonnegative_int("num_freqs", num_freqs)
    check_bool("include_input", include_input)
    check_bool("interleave", interleave)
    freqs = math.pi * torch.exp2(torch.arange(num_freqs, dtype=x.dtype, device=x.device))
    angles = x[..., None, :] * freqs[:, None]  # [..., K, P]
    parts = [x] if include_input else []
    if interleave:  # [..., K, 2, P]: octave-major, sines then cosines within an octave
        parts.append(torch.stack([torch.sin(angles), torch.cos(angles)], dim=-2).flatten(-3))
    else:
        angles = angles.flatten(-2)  # [..., K * P], octave-major
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=-1)


@checked
def sphere_angle_features(
    points: Float[Tensor, "*batch 3"], num_freqs: int = 10
) -> Float[Tensor, "*batch E"]:
    """BallGAN's released encoding of a point on the background sphere, from its angles.

    With ``(theta, phi)`` from :func:`~aware3d.functional.sphere_angles` (``phi`` in
    ``[0, 2 pi)``, seam at ``+z``) and ``a = (theta, phi) / (2 pi)``, the features are, octave
    after octave for ``k < K``,
    ``[sin(2^k pi a_theta), sin(2^k pi a_phi), cos(2^k pi a_theta), cos(2^k pi a_phi)]``:
    ``E = 4 K`` channels (40 for BallGAN's ``K = 10``), without the raw angles. This is
    ``positional_encoding(p / downscale_p_by, n_freq_posenc, "normal", use_pos=False)`` with the
    values of BallGAN's train.py (``downscale_p_by = 2 pi``, ``n_freq_posenc = 10``) in the same
    channel order, so released first-layer weights line up.

    It is discontinuous across the half-plane ``x = 0, z > 0`` (only the ``cos(phi / 2)`` channel
    jumps, by 2; see the module docstring) and at the poles. Prefer
    :func:`fourier_features` of the unit direction unless you need BallGAN's behaviour.

    Args:
        points: points ``[..., 3]`` on the sphere (or unit directions), not on the ``y`` axis for
            gradients.
        num_freqs: number of octaves ``K`` >= 0.

    Returns:
        ``[..., 4 K]`` features, same dtype as ``points``.
    """
    check_nonnegative_int("num_freqs", num_freqs)
    angles = sphere_angles(points) / BALLGAN_ANGLE_SCALE
    return fourier_features(angles, num_freqs, include_input=False, interleave=True)
