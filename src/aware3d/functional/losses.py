"""BallGAN's regularisers: the separation loss and the Mip-NeRF 360 distortion loss.

Distortion loss (Mip-NeRF 360, Barron et al. 2022) for weights ``w_i`` on sorted bins with
midpoints ``m_i`` and widths ``delta_i`` (in a chosen distance space ``s``):

``L = sum_{i,j} w_i w_j |m_i - m_j| + (1/3) sum_i w_i^2 delta_i``.

Because the bins are sorted, ``sum_{i,j} w_i w_j |m_i - m_j| = 2 sum_i w_i (m_i A_i - B_i)`` with
exclusive prefix sums ``A_i = sum_{j<i} w_j`` and ``B_i = sum_{j<i} w_j m_j``: O(S) time and
memory instead of the O(S^2) double sum. The dense form folds ``B`` away
(``sum_i w_i B_i = sum_j w_j m_j (W - A_j - w_j)``, ``W = sum_j w_j``) and evaluates
``2 sum_i w_i m_i (2 C_i - w_i - W)`` with the single inclusive prefix sum ``C_i = A_i + w_i``;
the packed form uses ``A`` and ``B`` as segment sums. A per-ray offset is subtracted from the
distances first (the loss is shift invariant; small offsets avoid cancellation in the signed
sums): the weighted mean midpoint in the dense form, each ray's first bin start in the packed form.
Sums run in float32 or better (fp16/bf16 inputs are upcast; the result is returned in the
accumulation dtype).

Splat form: a rasterizer that renders features can render the per-pixel moments
``A = sum w``, ``M1 = sum w z``, ``M2 = sum w z^2`` of the Gaussians' camera depths ``z``; then
``sum_{i,j} w_i w_j (z_i - z_j)^2 = 2 (A M2 - M1^2)``.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from aware3d._validation import (
    check_same_device,
    check_samples_and_edges,
    check_shape,
    format_shape,
    require_tensor,
)

__all__ = [
    "Reduction",
    "Space",
    "distortion_loss",
    "distortion_loss_packed",
    "separation_loss",
    "splat_distortion_loss",
]

Reduction = Literal["mean", "sum", "none"]
Space = Literal["metric", "linear", "inverse"]

_REDUCTIONS = ("mean", "sum", "none")
_SPACES = ("metric", "linear", "inverse")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"`reduction` must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------------- separation


def separation_loss(
    bg_transmittance: Float[Tensor, "*batch"], reduction: Reduction = "mean"
) -> Float[Tensor, "*reduced"]:
    """BallGAN's separation loss ``min(T_bg, 1 - T_bg)`` per ray.

    It pushes every ray to see either only the foreground (``T_bg = 0``) or only the background
    (``T_bg = 1``). Each per-ray value lies in ``[0, 0.5]`` for ``T_bg`` in ``[0, 1]``.

    Args:
        bg_transmittance: background transmittance ``T_bg`` of any shape (e.g. ``[B, C, H, W, 1]``
            or :attr:`CompositeResult.bg_transmittance`).
        reduction: ``"mean"`` over all entries, ``"sum"``, or ``"none"`` (same shape as input).

    Returns:
        A scalar, or the per-entry loss for ``reduction="none"``.
    """
    require_tensor("bg_transmittance", bg_transmittance)
    _check_reduction(reduction)
    loss = torch.minimum(bg_transmittance, 1.0 - bg_transmittance)
    return _reduce(loss, reduction)


# ---------------------------------------------------------------------- distortion (dense)


def _to_space(
    t: Tensor,
    space: str,
    near: float | Tensor | None,
    far: float | Tensor | None,
    first: Tensor,
    last: Tensor,
) -> Tensor:
    """Maps distances ``t`` to the chosen space; ``first``/``last`` are the defaults for near/far.

    ``near``/``far`` (float or tensor) broadcast against ``first`` (one value per ray).
    """
    if space == "metric":
        return t
    n = first if near is None else torch.as_tensor(near, dtype=t.dtype, device=t.device)
    f = last if far is None else torch.as_tensor(far, dtype=t.dtype, device=t.device)
    if n.ndim:
        n = n[..., None]
    if f.ndim:
        f = f[..., None]
    if space == "linear":
        return (t - n) / (f - n)
    # inverse: s = (g(t) - g(near)) / (g(far) - g(near)), g(x) = 1 / x
    g_n = torch.reciprocal(n)
    return (torch.reciprocal(t) - g_n) / (torch.reciprocal(f) - g_n)


def _check_space(
    space: str, near: float | Tensor | None, far: float | Tensor | None
) -> tuple[Tensor | None, Tensor | None]:
    if space not in _SPACES:
        raise ValueError(f"`space` must be one of {_SPACES}, got {space!r}")
    if space == "metric":
        if near is not None or far is not None:
            raise ValueError('`near` and `far` are only used with space="linear" or "inverse"')
        return None, None
    checked = []
    for value in (near, far):
        if value is None:
            checked.append(None)
            continue
        tensor = value if isinstance(value, Tensor) else torch.as_tensor(float(value))
        checked.append(tensor)
    return checked[0], checked[1]


def _check_distortion_values(
    weights: Tensor,
    t_edges: Tensor,
    space: str,
    near: Tensor | None,
    far: Tensor | None,
    starts_name: str = "t_edges",
) -> None:
    """One host synchronisation for every value check of the distortion loss."""
    if torch.compiler.is_compiling() or weights.numel() == 0:
        return
    widths = t_edges.diff(dim=-1)
    checks = [
        torch.isfinite(weights).all(),
        (weights >= 0).all(),
        torch.isfinite(t_edges).all(),
        (widths >= 0).all(),
    ]
    first = t_edges[..., 0]
    last = t_edges[..., -1]
    lo = first if near is None else near.to(first.device, first.dtype)
    hi = last if far is None else far.to(first.device, first.dtype)
    if space != "metric":
        checks.append(((hi - lo) > 0).all())
    if space == "inverse":
        checks.append((t_edges.amin() > 0) & (lo > 0).all())
    flags = torch.stack(checks).tolist()
    names = [
        "`weights` must be finite, but some entries are NaN or infinite",
        "`weights` must be non-negative (rendering weights)",
        f"`{starts_name}` must be finite, but some entries are NaN or infinite",
        f"`{starts_name}` must be sorted (non-decreasing) along each ray",
        "`far` must be greater than `near` on every ray",
        'space="inverse" needs positive distances: `near` and every edge must be > 0',
    ]
    for ok, message in zip(flags, names, strict=False):
        if not ok:
            if "sorted" in message:
                message += f" (smallest bin width {float(widths.min()):.6g})"
            raise ValueError(message)


def _dense_distortion(weights: Tensor, s: Tensor) -> Tensor:
    """Per-ray O(S) distortion loss of ``weights [..., S]`` on edges ``s [..., S + 1]``.

    With inclusive prefix sums ``C_i = A_i + w_i`` and ``W = C_S``,
    ``sum_{i,j} w_i w_j |m_i - m_j| = 2 sum_i w_i (m_i A_i - B_i)
    = 2 sum_i w_i m_i (2 C_i - w_i - W)`` (the ``B`` prefix sum rewritten through
    ``sum_i w_i B_i = sum_j w_j m_j (W - C_j)``), so one prefix sum suffices.
    """
    midpoints = 0.5 * (s[..., 1:] + s[..., :-1])
    widths = s[..., 1:] - s[..., :-1]
    inclusive = torch.cumsum(weights, dim=-1)
    total = inclusive[..., -1:]
    # per-ray offset: the weighted mean midpoint (detached: the loss is shift invariant), so
    # the midpoints are small where the weight is and the signed sum below keeps its precision
    with torch.no_grad():
        safe_total = torch.where(total > 0, total, torch.ones_like(total))
        offset = (weights * midpoints).sum(-1, keepdim=True) / safe_total
    centred = midpoints - offset
    inter = 2.0 * (weights * centred * (2.0 * inclusive - weights - total)).sum(-1)
    intra = (weights.square() * widths).sum(-1) / 3.0
    return inter + intra


def distortion_loss(
    weights: Float[Tensor, "*batch S"],
    t_edges: Float[Tensor, "*batch S+1"],
    *,
    space: Space = "metric",
    near: float | Tensor | None = None,
    far: float | Tensor | None = None,
    reduction: Reduction = "mean",
) -> Float[Tensor, "*reduced"]:
    """Mip-NeRF 360's distortion loss, exact, in O(S) per ray.

    ``L = sum_{i,j} w_i w_j |m_i - m_j| + (1/3) sum_i w_i^2 delta_i``
    ``  = 2 sum_i w_i (m_i A_i - B_i) + (1/3) sum_i w_i^2 delta_i``
    with ``A_i = sum_{j<i} w_j``, ``B_i = sum_{j<i} w_j m_j``; midpoints ``m_i`` and widths
    ``delta_i`` are taken in the chosen space:

    * ``"metric"``: ``s = t`` (``near``/``far`` not used);
    * ``"linear"``: ``s = (t - near) / (far - near)``;
    * ``"inverse"``: Mip-NeRF 360's normalisation ``s = (g(t) - g(near)) / (g(far) - g(near))``
      with ``g(x) = 1 / x`` (needs ``t > 0``; ``far`` may be ``inf``).

    ``near``/``far`` default to each ray's first and last edge; pass floats, or tensors of shape
    ``[...]`` (one per ray). Each ray's weighted mean midpoint is subtracted before the prefix
    sum (one inclusive prefix sum per ray, see the module docstring); sums run in float32 or
    better (fp16/bf16 inputs are upcast and the result stays float32).
    Differentiable w.r.t. ``weights`` and ``t_edges``.

    Args:
        weights: rendering weights ``w_i >= 0`` ``[..., S]`` (e.g. from :func:`volume_weights`).
        t_edges: sorted bin edges ``[..., S + 1]``.
        space: distance space, ``"metric"``, ``"linear"`` or ``"inverse"``.
        near: near distance for ``"linear"``/``"inverse"``.
        far: far distance for ``"linear"``/``"inverse"``.
        reduction: ``"mean"`` over rays, ``"sum"``, or ``"none"`` (``[...]``).

    Returns:
        A scalar, or ``[...]`` per-ray losses for ``reduction="none"``.

    Raises:
        ValueError: for mismatched shapes, unsorted or non-finite edges, negative weights, an
            unknown space or reduction, ``far <= near``, or non-positive distances in inverse
            space (one host synchronisation for all value checks).
    """
    check_samples_and_edges("weights", weights, t_edges)
    _check_reduction(reduction)
    near_t, far_t = _check_space(space, near, far)
    _check_distortion_values(weights, t_edges, space, near_t, far_t)
    dtype = _accumulation_dtype(torch.promote_types(weights.dtype, t_edges.dtype))
    w = weights.to(dtype)
    t = t_edges.to(dtype)
    s = _to_space(t, space, near_t, far_t, t[..., 0], t[..., -1])
    return _reduce(_dense_distortion(w, s), reduction)


# ---------------------------------------------------------------------- distortion (packed)


def distortion_loss_packed(
    weights: Float[Tensor, "N"],  # noqa: F821
    t_starts: Float[Tensor, "N"],  # noqa: F821
    t_ends: Float[Tensor, "N"],  # noqa: F821
    ray_indices: Int[Tensor, "N"],  # noqa: F821
    num_rays: int,
    *,
    space: Space = "metric",
    near: float | Tensor | None = None,
    far: float | Tensor | None = None,
    reduction: Reduction = "mean",
) -> Float[Tensor, "*reduced"]:
    """:func:`distortion_loss` for ragged rays stored as one packed list of samples.

    Samples are packed ray after ray (``ray_indices`` non-decreasing, as nerfacc packs them) and
    sorted along each ray; sample ``k`` covers ``[t_starts[k], t_ends[k]]``, bins of a ray do not
    overlap. The per-ray exclusive prefix sums are segment sums of one global cumulative sum,
    accumulated in float64 so that rays late in a long packed list keep full precision; per-ray
    offsets (each ray's first start) are subtracted first. A ray with no samples has loss 0.

    ``near``/``far`` for ``"linear"``/``"inverse"`` default to each ray's first start and last
    end; tensors are ``[num_rays]``.

    Args:
        weights: ``[N]`` rendering weights ``>= 0``.
        t_starts: ``[N]`` bin starts.
        t_ends: ``[N]`` bin ends, ``>= t_starts``.
        ray_indices: ``[N]`` integer ray id of every sample, non-decreasing, in ``[0, num_rays)``.
        num_rays: number of rays ``R``.
        space: distance space, see :func:`distortion_loss`.
        near: near distance (float or ``[R]``).
        far: far distance (float or ``[R]``).
        reduction: ``"mean"`` over the ``R`` rays, ``"sum"``, or ``"none"`` (``[R]``).

    Returns:
        A scalar, or ``[R]`` per-ray losses for ``reduction="none"``.
    """
    for name, value in (("weights", weights), ("t_starts", t_starts), ("t_ends", t_ends)):
        require_tensor(name, value)
        check_shape(name, value, ("N",))
    if not isinstance(ray_indices, Tensor) or ray_indices.is_floating_point():
        raise TypeError("`ray_indices` must be an integer tensor")
    check_shape("ray_indices", ray_indices, ("N",))
    n = weights.shape[0]
    for name, value in (("t_starts", t_starts), ("t_ends", t_ends), ("ray_indices", ray_indices)):
        if value.shape[0] != n:
            raise ValueError(
                f"`{name}` must have shape [{n}] to match `weights`, got "
                f"{format_shape(value.shape)}"
            )
    if isinstance(num_rays, bool) or not isinstance(num_rays, int) or num_rays < 0:
        raise ValueError(f"`num_rays` must be an integer >= 0, got {num_rays!r}")
    check_same_device(
        [
            ("weights", weights),
            ("t_starts", t_starts),
            ("t_ends", t_ends),
            ("ray_indices", ray_indices),
        ]
    )
    _check_reduction(reduction)
    near_t, far_t = _check_space(space, near, far)
    device = weights.device
    if not torch.compiler.is_compiling() and n:
        same = ray_indices[1:] == ray_indices[:-1]
        flags = torch.stack(
            [
                torch.isfinite(weights).all(),
                (weights >= 0).all(),
                (torch.isfinite(t_starts) & torch.isfinite(t_ends)).all(),
                (t_ends >= t_starts).all(),
                (ray_indices.diff() >= 0).all(),
                (ray_indices.min() >= 0) & (ray_indices.max() < num_rays),
                (~same | (t_starts[1:] >= t_ends[:-1])).all(),
                (t_starts.amin() > 0) if space == "inverse" else torch.ones((), dtype=torch.bool),
            ]
        ).tolist()
        messages = [
            "`weights` must be finite",
            "`weights` must be non-negative (rendering weights)",
            "`t_starts` and `t_ends` must be finite",
            "`t_ends` must be >= `t_starts`",
            "`ray_indices` must be non-decreasing (samples packed ray after ray)",
            f"`ray_indices` must lie in [0, num_rays) = [0, {num_rays})",
            "bins must be sorted and non-overlapping along each ray "
            "(t_starts[k + 1] >= t_ends[k] within a ray)",
            'space="inverse" needs positive distances',
        ]
        for ok, message in zip(flags, messages, strict=True):
            if not ok:
                raise ValueError(message)
    dtype = _accumulation_dtype(torch.promote_types(weights.dtype, t_starts.dtype))
    idx = ray_indices.long()
    counts = torch.bincount(idx, minlength=num_rays)
    first_index = torch.cumsum(counts, 0) - counts  # index of each ray's first sample
    has = counts > 0
    safe_first = torch.where(has, first_index, torch.zeros_like(first_index)).clamp_max(
        max(n - 1, 0)
    )
    w = weights.to(dtype)
    t0 = t_starts.to(dtype)
    t1 = t_ends.to(dtype)
    if n == 0:
        loss = torch.zeros(num_rays, dtype=dtype, device=device)
        return _reduce(loss, reduction)
    if space != "metric":
        last_index = (first_index + counts - 1).clamp(0, n - 1)
        first = t0[safe_first]
        last = t1[last_index]
        n_ray = first if near_t is None else near_t.to(device, dtype).expand(num_rays)
        f_ray = last if far_t is None else far_t.to(device, dtype).expand(num_rays)
        if not torch.compiler.is_compiling():
            ok = bool((~has | (f_ray - n_ray > 0)).all())
            if not ok:
                raise ValueError("`far` must be greater than `near` on every ray")
        stacked = torch.stack([t0, t1], dim=-1)
        s = _to_space(stacked, space, n_ray[idx], f_ray[idx], first, last)
        t0, t1 = s[..., 0], s[..., 1]
    offset = t0[safe_first][idx].detach()
    t0 = t0 - offset
    t1 = t1 - offset
    midpoints = 0.5 * (t0 + t1)
    widths = t1 - t0
    acc = torch.float64 if device.type != "mps" else dtype
    wd = w.to(acc)
    incl_w = torch.cumsum(wd, 0)
    incl_wm = torch.cumsum(wd * midpoints.to(acc), 0)
    start = first_index[idx]
    # exclusive within the ray: (inclusive at k-1) - (inclusive before the ray's first sample)
    prev_w = F.pad(incl_w, (1, 0))
    prev_wm = F.pad(incl_wm, (1, 0))
    positions = torch.arange(n, device=device)
    excl_w = (prev_w[positions] - prev_w[start]).to(dtype)
    excl_wm = (prev_wm[positions] - prev_wm[start]).to(dtype)
    per_sample = 2.0 * w * (midpoints * excl_w - excl_wm) + w.square() * widths / 3.0
    loss = torch.zeros(num_rays, dtype=dtype, device=device).index_add(0, idx, per_sample)
    return _reduce(loss, reduction)


# ---------------------------------------------------------------------- distortion (splat)


def splat_distortion_loss(
    alpha: Float[Tensor, "*batch 1"],
    moment1: Float[Tensor, "*batch 1"],
    moment2: Float[Tensor, "*batch 1"],
    reduction: Reduction = "mean",
) -> Float[Tensor, "*reduced"]:
    """Distortion loss of splatted Gaussians from rendered depth moments.

    With ``A = sum_i w_i``, ``M1 = sum_i w_i z_i``, ``M2 = sum_i w_i z_i^2`` per pixel (``z`` the
    Gaussians' camera depths, ``w_i`` their blending weights):
    ``L = sum_{i,j} w_i w_j (z_i - z_j)^2 = 2 (A M2 - M1^2)``, which is ``2 A^2 Var(z)`` and
    never negative in exact arithmetic (Cauchy-Schwarz). Computed in float32 or better; values
    that round-off makes negative are clamped to 0 (with zero gradient there), and only those.
    This is the squared-distance analogue of the volumetric loss's pair term; it has no
    intra-interval term since splats are points along the ray. Feed it from
    ``rasterize(..., depth_moments=True)``.

    Args:
        alpha: accumulated opacity ``A`` ``[..., 1]``.
        moment1: ``M1 = sum w z`` ``[..., 1]``.
        moment2: ``M2 = sum w z^2`` ``[..., 1]``.
        reduction: ``"mean"`` over pixels, ``"sum"``, or ``"none"`` (``[..., 1]``).

    Returns:
        A scalar, or ``[..., 1]`` per-pixel losses for ``reduction="none"``.
    """
    for name, value in (("alpha", alpha), ("moment1", moment1), ("moment2", moment2)):
        require_tensor(name, value)
        check_shape(name, value, (1,), batch=True)
    for name, value in (("moment1", moment1), ("moment2", moment2)):
        if value.shape != alpha.shape:
            raise ValueError(
                f"`{name}` must have the shape of `alpha` {format_shape(alpha.shape)}, "
                f"got {format_shape(value.shape)}"
            )
    check_same_device([("alpha", alpha), ("moment1", moment1), ("moment2", moment2)])
    _check_reduction(reduction)
    dtype = _accumulation_dtype(
        torch.promote_types(torch.promote_types(alpha.dtype, moment1.dtype), moment2.dtype)
    )
    a, m1, m2 = alpha.to(dtype), moment1.to(dtype), moment2.to(dtype)
    loss = 2.0 * torch.clamp_min(a * m2 - m1.square(), 0.0)
    return _reduce(loss, reduction)
