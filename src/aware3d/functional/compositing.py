"""Compositing a foreground over a background whose occupancy is fixed at 1 (BallGAN).

Volumetric foreground, samples ``i = 1..S`` on bins ``t_0 <= ... <= t_S``:

* ``tau_i = sigma_i delta_i`` (optical depth, ``delta_i = t_i - t_{i-1}``),
  ``alpha_i = 1 - exp(-tau_i)``;
* ``log T_i = sum_{j<i} log(1 - alpha_j) = -sum_{j<i} tau_j`` (an exclusive cumulative sum in log
  space: no ``+1e-10`` hacks, no cumulative product of values near 0 or 1);
* ``w_i = T_i alpha_i``, ``T_bg = exp(-sum_i tau_i)``, so ``sum_i w_i + T_bg = 1``;
* ``image = sum_i w_i f_i + T_bg f_bg``.

Splatted foreground (premultiplied colour ``C_fg`` and accumulated opacity ``A`` from a
rasterizer): ``T_bg = 1 - A`` and ``image = C_fg + (1 - A) f_bg``. The colour is already
alpha-weighted; it is never multiplied by ``A`` again.

Both forms return a :class:`CompositeResult`. Images are channels-last; per-pixel scalars keep a
trailing axis of size 1 (``[..., 1]``), like the rasterizer's ``alpha`` and ``depth``.

Precision, as :func:`~aware3d.rasterize`: float64 inputs compute in float64, any other float
dtype in float32 (a bfloat16 transmittance ``exp(-sum tau)`` is off by up to 0.4%), with
``torch.autocast`` turned off inside. The outputs have that dtype. Inside ``torch.autocast`` the
inputs may mix float dtypes (a network's bfloat16 features beside float32 distances); outside it
they must share one.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._precision import autocast_enabled, autocast_off
from aware3d._validation import (
    check_values,
    finite_checks,
    range_check,
    sorted_check,
    value_checks_enabled,
)

__all__ = [
    "CompositeResult",
    "VolumeSamples",
    "VolumeWeights",
    "composite_splat",
    "composite_volume",
    "volume_weights",
]


class VolumeWeights(NamedTuple):
    """Rendering weights of volumetric samples (see :func:`volume_weights`).

    Attributes:
        weights: ``w_i = T_i alpha_i``, ``[..., S]``.
        alphas: ``alpha_i = 1 - exp(-sigma_i delta_i)``, ``[..., S]``.
        bg_transmittance: ``T_bg = prod_i (1 - alpha_i)``, the light left for the background,
            ``[...]``.
    """

    weights: Float[Tensor, "*batch S"]
    alphas: Float[Tensor, "*batch S"]
    bg_transmittance: Float[Tensor, "*batch"]


class VolumeSamples(NamedTuple):
    """A volumetric foreground: densities and features at samples on sorted bins.

    Attributes:
        sigmas: densities ``sigma_i >= 0``, ``[..., S]``.
        features: features ``f_i``, ``[..., S, F]``.
        t_edges: bin edges ``t_0 <= ... <= t_S`` along each ray, ``[..., S + 1]``.
    """

    sigmas: Float[Tensor, "*batch S"]
    features: Float[Tensor, "*batch S F"]
    t_edges: Float[Tensor, "*batch S+1"]


class CompositeResult(NamedTuple):
    """The composite of a foreground over the unit-occupancy background.

    Attributes:
        image: ``phi = foreground + T_bg f_bg``, ``[..., F]``.
        opacity: foreground opacity ``1 - T_bg``, ``[..., 1]``.
        bg_transmittance: ``T_bg``, the background's share of each ray, ``[..., 1]``.
        depth: expected depth with the background's depth where it shows,
            ``sum_i w_i d_i + T_bg d_bg``, ``[..., 1]``; the background term is 0 if no background
            depth was given; ``None`` for a splatted foreground given without depth.
        weights: per-sample weights ``w_i`` ``[..., S]`` (volumetric form), else ``None``.
    """

    image: Float[Tensor, "*batch F"]
    opacity: Float[Tensor, "*batch 1"]
    bg_transmittance: Float[Tensor, "*batch 1"]
    depth: Float[Tensor, "*batch 1"] | None
    weights: Float[Tensor, "*batch S"] | None


# ---------------------------------------------------------------------- dtypes


def _compute_dtype(**tensors: Tensor | None) -> torch.dtype:
    """float64 if any input is, else float32; refuses mixed dtypes outside ``torch.autocast``.

    The inputs were checked to be floating-point tensors on one device.
    """
    present = [(name, value) for name, value in tensors.items() if value is not None]
    first_name, first = present[0]
    if not autocast_enabled(first.device):
        for name, value in present[1:]:
            if value.dtype != first.dtype:
                raise ValueError(
                    f"`{name}` has dtype {value.dtype} but `{first_name}` has {first.dtype}; "
                    "convert them to one dtype (mixed dtypes are accepted under torch.autocast)"
                )
    is_double = any(value.dtype == torch.float64 for _, value in present)
    return torch.float64 if is_double else torch.float32


# ---------------------------------------------------------------------- value checks


def _volume_checks(sigmas: Tensor, t_edges: Tensor) -> list:
    return [
        *finite_checks(sigmas=sigmas, t_edges=t_edges),
        range_check("sigmas", sigmas, 0.0, None, what="densities; activate raw outputs first"),
        sorted_check("t_edges", t_edges),
    ]


# ---------------------------------------------------------------------- volumetric


def _volume_weights(sigmas: Tensor, t_edges: Tensor) -> VolumeWeights:
    tau = sigmas * t_edges.diff(dim=-1)
    if tau.shape[-1] == 0:  # no samples: all the light reaches the background
        return VolumeWeights(
            tau, tau, torch.ones(tau.shape[:-1], dtype=tau.dtype, device=tau.device)
        )
    # exclusive cumulative optical depth: -log T_i = sum_{j<i} tau_j
    total = torch.cumsum(tau, dim=-1)
    exclusive = F.pad(total[..., :-1], (1, 0))
    alphas = -torch.expm1(-tau)
    weights = torch.exp(-exclusive) * alphas
    return VolumeWeights(weights, alphas, torch.exp(-total[..., -1]))


@checked(same_dtype=False)
def volume_weights(
    sigmas: Float[Tensor, "*batch S"], t_edges: Float[Tensor, "*batch S+1"]
) -> VolumeWeights:
    """Volume-rendering weights in log space, with the background's transmittance.

    ``alpha_i = 1 - exp(-sigma_i delta_i)`` (computed as ``-expm1(-sigma_i delta_i)``),
    ``T_i = exp(sum_{j<i} log(1 - alpha_j)) = exp(-sum_{j<i} sigma_j delta_j)``,
    ``w_i = T_i alpha_i`` and ``T_bg = exp(-sum_i sigma_i delta_i)``. Then
    ``sum_i w_i + T_bg = 1`` to float precision: the background always receives the light the
    foreground lets through (unit background occupancy).

    Args:
        sigmas: densities ``[..., S]``, non-negative.
        t_edges: sorted bin edges ``[..., S + 1]``; ``delta_i = t_i - t_{i-1}``.

    Returns:
        :class:`VolumeWeights` ``(weights [..., S], alphas [..., S], bg_transmittance [...])``.

    ``S = 0`` (no samples) gives empty weights and ``T_bg = 1``. Computed in float32 (float64
    for float64 inputs) with ``torch.autocast`` off, like :func:`composite_volume`.

    Raises:
        ValueError: for mismatched shapes or (outside ``torch.autocast``) dtypes, and (value
            checks, one host synchronisation) non-finite values, negative densities or unsorted
            edges.
        TypeError: for arguments that are not floating-point tensors.
    """
    dtype = _compute_dtype(sigmas=sigmas, t_edges=t_edges)
    if value_checks_enabled():
        check_values(_volume_checks(sigmas, t_edges))
    with autocast_off(sigmas.device):
        return _volume_weights(sigmas.to(dtype), t_edges.to(dtype))


@checked(same_dtype=False)
def composite_volume(
    sigmas: Float[Tensor, "*batch S"],
    features: Float[Tensor, "*batch S F"],
    t_edges: Float[Tensor, "*batch S+1"],
    bg_features: Float[Tensor, "*batch F"],
    bg_depth: Float[Tensor, "*batch 1"] | None = None,
) -> CompositeResult:
    """Composites volumetric samples over a background with occupancy 1.

    ``image = sum_i w_i f_i + T_bg f_bg`` with the weights of :func:`volume_weights`;
    ``depth = sum_i w_i m_i + T_bg d_bg`` with bin midpoints ``m_i = (t_{i-1} + t_i) / 2`` (the
    units of ``t_edges``, i.e. distance along the ray for unit directions).

    Args:
        sigmas: densities ``[..., S]``, non-negative.
        features: per-sample features ``[..., S, F]``.
        t_edges: sorted bin edges ``[..., S + 1]``.
        bg_features: background features ``f_bg`` ``[..., F]`` (e.g. from
            :class:`~aware3d.nn.SphericalBackground`).
        bg_depth: the background's depth ``d_bg`` ``[..., 1]`` in the units of ``t_edges`` (e.g.
            :func:`~aware3d.functional.ray_sphere_exit`); 0 if ``None``.

    Returns:
        :class:`CompositeResult` with ``weights [..., S]``, in float32 (float64 for float64
        inputs; see the module's precision note). With ``S = 0`` the image is the background.

    Raises:
        ValueError: for mismatched shapes, devices or (outside ``torch.autocast``) dtypes, and
            (value checks, one host synchronisation) non-finite values, negative densities or
            unsorted edges.
        TypeError: for arguments that are not floating-point tensors.
    """
    dtype = _compute_dtype(
        sigmas=sigmas, features=features, t_edges=t_edges, bg_features=bg_features,
        bg_depth=bg_depth,
    )  # fmt: skip
    if value_checks_enabled():
        check_values(
            _volume_checks(sigmas, t_edges)
            + finite_checks(features=features, bg_features=bg_features, bg_depth=bg_depth)
        )
    with autocast_off(sigmas.device):
        sigmas, features, t_edges = sigmas.to(dtype), features.to(dtype), t_edges.to(dtype)
        weights, _, t_bg = _volume_weights(sigmas, t_edges)
        t_bg = t_bg[..., None]
        image = torch.einsum("...s,...sf->...f", weights, features) + t_bg * bg_features.to(dtype)
        midpoints = 0.5 * (t_edges[..., 1:] + t_edges[..., :-1])
        depth = (weights * midpoints).sum(-1, keepdim=True)
        if bg_depth is not None:
            depth = depth + t_bg * bg_depth.to(dtype)
    return CompositeResult(image, 1.0 - t_bg, t_bg, depth, weights)


# ---------------------------------------------------------------------- splatted


@checked(same_dtype=False)
def composite_splat(
    features: Float[Tensor, "*batch F"],
    alpha: Float[Tensor, "*batch 1"],
    bg_features: Float[Tensor, "*batch F"],
    depth: Float[Tensor, "*batch 1"] | None = None,
    bg_depth: Float[Tensor, "*batch 1"] | None = None,
) -> CompositeResult:
    """Composites a splatted (premultiplied) foreground over a background with occupancy 1.

    ``T_bg = 1 - A``, ``image = C_fg + (1 - A) f_bg`` and
    ``depth = A d_fg + (1 - A) d_bg``, where ``d_fg`` is the rasterizer's expected foreground
    depth ``M1 / A`` (so ``A d_fg = M1``).

    Args:
        features: premultiplied foreground colour ``C_fg`` ``[..., F]`` (a rasterizer's output
            without background; never multiply it by ``alpha`` again).
        alpha: accumulated foreground opacity ``A`` in [0, 1], ``[..., 1]``.
        bg_features: background features ``f_bg`` ``[..., F]``.
        depth: expected foreground depth ``d_fg`` ``[..., 1]`` (0 where ``A = 0``), or ``None``.
        bg_depth: the background's depth ``d_bg`` ``[..., 1]`` (camera z of the sphere, see
            :meth:`~aware3d.nn.SphericalBackground.render_depth`); 0 if ``None``.

    Returns:
        :class:`CompositeResult` with ``weights=None``; ``depth`` is ``None`` if ``depth`` is.
        In float32 (float64 for float64 inputs; see the module's precision note).

    Raises:
        ValueError: for mismatched shapes, devices or (outside ``torch.autocast``) dtypes, and
            (value checks, one host synchronisation) non-finite values or ``alpha`` outside
            [0, 1].
        TypeError: for arguments that are not floating-point tensors.
    """
    dtype = _compute_dtype(
        features=features, alpha=alpha, bg_features=bg_features, depth=depth, bg_depth=bg_depth
    )
    if value_checks_enabled():
        finite = finite_checks(
            alpha=alpha, features=features, bg_features=bg_features, depth=depth, bg_depth=bg_depth
        )
        check_values([*finite, range_check("alpha", alpha, 0.0, 1.0, what="accumulated opacity")])
    with autocast_off(alpha.device):
        alpha = alpha.to(dtype)
        t_bg = 1.0 - alpha
        image = features.to(dtype) + t_bg * bg_features.to(dtype)
        out_depth = None
        if depth is not None:
            out_depth = alpha * depth.to(dtype)
            if bg_depth is not None:
                out_depth = out_depth + t_bg * bg_depth.to(dtype)
    return CompositeResult(image, alpha, t_bg, out_depth, None)
