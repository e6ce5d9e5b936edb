"""EG3D's volume sampling: samples to intervals, and the coarse + fine (importance) scheme.

EG3D (and BallGAN, built on it) evaluates its field at sample *points* ``t_1 < ... < t_S`` and
renders the ``S - 1`` intervals between them: an interval's raw density and features are the
means of its two end samples, the density goes through ``softplus(x - 1)`` (EG3D's
``MipRayMarcher2``: the offset "makes things initialize better"), and the interval's edges are
the two samples. :func:`midpoint_volume_samples` builds that :class:`VolumeSamples`, which
:func:`~aware3d.functional.composite_volume` renders with unit background occupancy.

Precision: sample positions have the rays' dtype. Under ``torch.autocast`` the field (a network)
runs in autocast's dtype and its outputs are cast to the rays' dtype; everything else (weights,
importance sampling) runs with autocast off.
"""

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._precision import autocast_enabled, autocast_off
from aware3d._validation import check_number, check_positive_int, check_shape
from aware3d.functional.compositing import VolumeSamples, _volume_weights
from aware3d.functional.sampling import sample_importance_eg3d, sample_stratified

__all__ = [
    "EG3D_DENSITY_OFFSET",
    "EG3D_NUM_COARSE",
    "EG3D_NUM_FINE",
    "CoarseFineSamples",
    "RaySamples",
    "midpoint_volume_samples",
    "sample_coarse_fine",
]

#: ``softplus(x - 1)``: EG3D's density activation at interval midpoints (``clamp_mode="softplus"``).
EG3D_DENSITY_OFFSET = 1.0
#: Coarse and importance samples per ray in EG3D's and BallGAN's FFHQ/AFHQ configurations
#: (``depth_resolution=48``, ``depth_resolution_importance=48``).
EG3D_NUM_COARSE = 48
EG3D_NUM_FINE = 48

#: A field maps points ``[B, N, 3]`` to ``(raw densities [B, N], features [B, N, F])``.
Field = Callable[[Tensor], tuple[Tensor, Tensor]]


class RaySamples(NamedTuple):
    """A field evaluated at sample points along rays.

    Attributes:
        t: sample distances ``[..., S]``.
        raw_densities: the field's raw (pre-activation) densities ``[..., S]``.
        features: the field's features ``[..., S, F]``.
    """

    # Plain ``Tensor``s: sample sets of different sizes (coarse, fine, merged) travel together.
    t: Tensor
    raw_densities: Tensor
    features: Tensor


class CoarseFineSamples(NamedTuple):
    """The result of :func:`sample_coarse_fine`.

    Attributes:
        merged: coarse and fine samples together, sorted by ``t`` (``S_c + S_f`` per ray).
        fine: the importance samples alone (what BallGAN's density loss reads).
        coarse_weights: the coarse pass's interval weights ``[..., S_c - 1]`` (detached).
    """

    merged: RaySamples
    fine: RaySamples
    coarse_weights: Tensor


@checked
def midpoint_volume_samples(
    t: Float[Tensor, "*rays P"],
    raw_densities: Float[Tensor, "*rays P"],
    features: Float[Tensor, "*rays P F"],
    *,
    density_offset: float = EG3D_DENSITY_OFFSET,
) -> VolumeSamples:
    """The ``P - 1`` intervals between consecutive samples, as EG3D's ray marcher renders them.

    ``sigma_i = softplus((x_i + x_{i+1}) / 2 - offset)``, ``f_i = (f_i + f_{i+1}) / 2`` and the
    interval edges are the samples themselves (``t_edges = t``).

    Args:
        t: sorted sample distances ``[..., P]``, ``P >= 1``.
        raw_densities: raw densities at the samples ``[..., P]``.
        features: features at the samples ``[..., P, F]``.
        density_offset: the softplus offset (EG3D: 1).

    Returns:
        :class:`~aware3d.functional.VolumeSamples` with ``S = P - 1`` intervals.
    """
    offset = check_number("density_offset", density_offset)
    mid_raw = 0.5 * (raw_densities[..., 1:] + raw_densities[..., :-1])
    mid_features = 0.5 * (features[..., 1:, :] + features[..., :-1, :])
    return VolumeSamples(F.softplus(mid_raw - offset), mid_features, t)


def _evaluate(field: Field, origins: Tensor, dirs: Tensor, t: Tensor) -> RaySamples:
    """Evaluates ``field`` at ``o + t d``; origins/dirs ``[B, R, 3]``, ``t`` ``[B, R, S]``."""
    batch, rays, count = t.shape
    points = origins[..., None, :] + t[..., None] * dirs[..., None, :]
    raw, features = field(points.reshape(batch, rays * count, 3))
    check_shape("field's densities", raw, (batch, rays * count))
    check_shape("field's features", features, (batch, rays * count, None))
    if autocast_enabled(t.device):  # a network's bfloat16 outputs beside float32 distances
        raw, features = raw.to(t.dtype), features.to(t.dtype)
    return RaySamples(t, raw.reshape(batch, rays, count), features.reshape(batch, rays, count, -1))


def _merge(a: tuple[Tensor, Tensor, Tensor], b: tuple[Tensor, Tensor, Tensor]) -> RaySamples:
    """Concatenates two sample sets and sorts them by distance (EG3D's ``unify_samples``)."""
    a, b = RaySamples(*a), RaySamples(*b)
    t = torch.cat([a.t, b.t], dim=-1)
    order = torch.argsort(t, dim=-1, stable=True)
    raw = torch.cat([a.raw_densities, b.raw_densities], dim=-1).gather(-1, order)
    features = torch.cat([a.features, b.features], dim=-2)
    index = order[..., None].expand(*order.shape, features.shape[-1])
    return RaySamples(t.gather(-1, order), raw, features.gather(-2, index))


def sample_coarse_fine(
    field: Field,
    origins: Float[Tensor, "B *rays 3"],
    dirs: Float[Tensor, "B *rays 3"],
    near: Float[Tensor, "B *rays"],  # noqa: F821
    far: Float[Tensor, "B *rays"],  # noqa: F821
    *,
    num_coarse: int = EG3D_NUM_COARSE,
    num_fine: int = EG3D_NUM_FINE,
    space: str = "linear",
    density_offset: float = EG3D_DENSITY_OFFSET,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> CoarseFineSamples:
    """EG3D's two-pass sampling: stratified coarse samples, then importance samples, merged.

    1. ``S_c`` stratified samples in ``[near, far]`` (:func:`sample_stratified`), field evaluated;
    2. the coarse intervals' weights (midpoint densities through ``softplus(x - offset)``,
       :func:`midpoint_volume_samples`) pick ``S_f`` importance samples
       (:func:`sample_importance_eg3d`: EG3D's max/avg-pool smoothing, ``+0.01``, inverse CDF),
       field evaluated again;
    3. both sets are concatenated and sorted by distance (EG3D's ``unify_samples``).

    The sample positions carry no gradient (as in EG3D); densities and features do. Render the
    result with ``composite_volume(*midpoint_volume_samples(*merged), ...)``.

    Args:
        field: ``points [B, N, 3] -> (raw densities [B, N], features [B, N, F])``, e.g. a
            tri-plane sampled with :func:`~aware3d.functional.sample_triplane` and decoded.
        origins: ray origins ``[B, ..., 3]``.
        dirs: ray directions ``[B, ..., 3]`` (unit: ``t`` is then a distance).
        near: where sampling starts on each ray ``[B, ...]`` (EG3D FFHQ: 2.25).
        far: where it ends ``[B, ...]`` (EG3D FFHQ: 3.3).
        num_coarse: ``S_c`` >= 4 (EG3D: 48).
        num_fine: ``S_f`` >= 1 (EG3D: 48).
        space: coarse spacing, ``"linear"`` (EG3D's FFHQ default) or ``"disparity"``.
        density_offset: the softplus offset of the coarse pass's weights (EG3D: 1).
        deterministic: no jitter and evenly spaced CDF levels (for tests and figures).
        generator: random generator for both passes.

    Returns:
        :class:`CoarseFineSamples` with rays shaped like ``near``.
    """
    check_positive_int("num_fine", num_fine)
    if num_coarse < 4:
        raise ValueError(f"`num_coarse` must be >= 4, got {num_coarse!r}")
    check_shape("origins", origins, (None, 3), batch=True)
    check_shape("dirs", dirs, tuple(origins.shape))
    for name, value in (("near", near), ("far", far)):
        if tuple(value.shape) != tuple(origins.shape[:-1]):
            raise ValueError(
                f"`{name}` must have one value per ray, shape {list(origins.shape[:-1])}, "
                f"got {list(value.shape)}"
            )
    ray_shape = tuple(near.shape)
    batch = ray_shape[0]
    flat_o, flat_d = origins.reshape(batch, -1, 3), dirs.reshape(batch, -1, 3)
    flat_near, flat_far = near.reshape(batch, -1), far.reshape(batch, -1)
    options = {"deterministic": deterministic, "generator": generator}
    with autocast_off(origins.device):
        t_coarse = sample_stratified(flat_near, flat_far, num_coarse, space=space, **options)
    coarse = _evaluate(field, flat_o, flat_d, t_coarse)
    with autocast_off(origins.device):
        intervals = midpoint_volume_samples(*coarse, density_offset=density_offset)
        weights = _volume_weights(intervals.sigmas.detach(), intervals.t_edges).weights
        t_fine = sample_importance_eg3d(t_coarse, weights, num_fine, **options)
    fine = _evaluate(field, flat_o, flat_d, t_fine)
    merged = _merge(coarse, fine)

    def unflatten(samples: RaySamples) -> RaySamples:
        count = samples.t.shape[-1]
        return RaySamples(
            samples.t.reshape(*ray_shape, count),
            samples.raw_densities.reshape(*ray_shape, count),
            samples.features.reshape(*ray_shape, count, -1),
        )

    return CoarseFineSamples(
        unflatten(merged), unflatten(fine), weights.reshape(*ray_shape, num_coarse - 1)
    )
