"""BallGAN's regularisers: separation, Mip-NeRF 360 distortion, BallGAN's released density loss.

BallGAN's released foreground density loss (:func:`ballgan_density_loss`) is not the Mip-NeRF 360
distortion loss; see its docstring and the losses page.

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
sums): each ray's first edge, then its weighted mean midpoint, in the dense form, each ray's first
bin start in the packed form.
Sums run in float32 or better (fp16/bf16 inputs are upcast; the result is returned in the
accumulation dtype).

Splat form: a rasterizer that renders features can render the per-pixel moments
``A = sum w``, ``M1 = sum w z``, ``M2 = sum w z^2`` of the Gaussians' camera depths ``z``; then
``sum_{i,j} w_i w_j (z_i - z_j)^2 = 2 (A M2 - M1^2)``.
"""

import math
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from aware3d._checked import checked
from aware3d._validation import (
    check_choice,
    check_nonnegative_int,
    check_number,
    check_values,
    finite_check,
    finite_checks,
    format_shape,
    range_check,
    sorted_check,
    value_checks_enabled,
)
from aware3d.functional._scan import segmented_cumsum

__all__ = [
    "Reduction",
    "Space",
    "ballgan_density_loss",
    "ballgan_regularizer_ramp",
    "distortion_loss",
    "distortion_loss_packed",
    "separation_loss",
    "splat_distortion_loss",
]

Reduction = Literal["mean", "sum", "none"]
Space = Literal["metric", "linear", "inverse", "mipnerf360"]

REDUCTIONS = ("mean", "sum", "none")
SPACES = ("metric", "linear", "inverse", "mipnerf360")

#: Mip-NeRF 360's near and far distances (multinerf ``configs/360.gin``: ``Config.near = 0.2``,
#: ``Config.far = 1e6``, ``Model.raydist_fn = @jnp.reciprocal``).
MIPNERF360_NEAR = 0.2
MIPNERF360_FAR = 1e6


def check_reduction(reduction: object) -> None:
    """Raises ``ValueError`` unless ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``."""
    check_choice("reduction", reduction, REDUCTIONS)


def _reduce(loss: Tensor, reduction: str, what: str, name: str) -> Tensor:
    """Reduces per-entry losses; the mean of nothing is an error, the sum of nothing is 0."""
    if reduction == "mean":
        if loss.numel() == 0:
            raise ValueError(
                f'`{name}` holds zero {what}: reduction="mean" over nothing is undefined; pass '
                'at least one, or use reduction="sum" (0 for none) or "none"'
            )
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---------------------------------------------------------------------- separation


@checked
def separation_loss(
    bg_transmittance: Float[Tensor, "*batch"], reduction: Reduction = "mean"
) -> Float[Tensor, "*reduced"]:
    """BallGAN's separation loss ``min(T_bg, 1 - T_bg)`` per ray.

    It pushes every ray to see either only the foreground (``T_bg = 0``) or only the background
    (``T_bg = 1``). Each per-ray value lies in ``[0, 0.5]``.

    Args:
        bg_transmittance: background transmittance ``T_bg`` in [0, 1], any shape (e.g.
            ``[B, C, H, W, 1]`` or :attr:`CompositeResult.bg_transmittance`).
        reduction: ``"mean"`` over all entries, ``"sum"``, or ``"none"`` (same shape as input).

    Returns:
        A scalar, or the per-entry loss for ``reduction="none"``. An empty input gives 0 for
        ``"sum"`` and an empty tensor for ``"none"``.

    Raises:
        ValueError: for an unknown reduction, ``"mean"`` of an empty input, and (value checks)
            values that are not finite or outside [0, 1].
        TypeError: if ``bg_transmittance`` is not a floating-point tensor.
    """
    check_reduction(reduction)
    if value_checks_enabled():
        check_values(
            [
                finite_check("bg_transmittance", bg_transmittance),
                range_check("bg_transmittance", bg_transmittance, 0.0, 1.0),
            ]
        )
    loss = torch.minimum(bg_transmittance, 1.0 - bg_transmittance)
    return _reduce(loss, reduction, "rays", "bg_transmittance")


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


def check_space(
    space: object, near: float | Tensor | None, far: float | Tensor | None
) -> tuple[Tensor | None, Tensor | None]:
    """Checks ``space`` and its ``near``/``far``; returns them as tensors (or ``None``).

    For ``space="mipnerf360"``, a ``near``/``far`` left as ``None`` becomes Mip-NeRF 360's
    (0.2 and 1e6); the space is then ``"inverse"`` (see :func:`_inverse_if_mipnerf360`).
    """
    check_choice("space", space, SPACES)
    if space == "metric":
        if near is not None or far is not None:
            raise ValueError(
                '`near` and `far` are only used with space="linear", "inverse" or "mipnerf360"'
            )
        return None, None
    if space == "mipnerf360":
        near = MIPNERF360_NEAR if near is None else near
        far = MIPNERF360_FAR if far is None else far
    checked_values: list[Tensor | None] = []
    for name, value in (("near", near), ("far", far)):
        if value is None or isinstance(value, Tensor):
            if isinstance(value, Tensor) and not value.is_floating_point():
                raise TypeError(f"`{name}` must be a number or a floating-point tensor")
            checked_values.append(value)
            continue
        if name == "far" and space in ("inverse", "mipnerf360") and value == math.inf:
            number = math.inf  # Mip-NeRF 360's unbounded far distance
        else:
            number = check_number(name, value)
        checked_values.append(torch.as_tensor(number, dtype=torch.float64))
    return checked_values[0], checked_values[1]


def _inverse_if_mipnerf360(space: Space) -> Space:
    """``"mipnerf360"`` is ``"inverse"`` with Mip-NeRF 360's near/far filled in by check_space."""
    return "inverse" if space == "mipnerf360" else space


def _check_near_far_shape(near: Tensor | None, far: Tensor | None, rays: tuple[int, ...]) -> None:
    for name, value in (("near", near), ("far", far)):
        if value is not None and value.ndim and tuple(value.shape) != rays:
            raise ValueError(
                f"`{name}` must be a number or have one value per ray, shape "
                f"{format_shape(rays)}, got {format_shape(value.shape)}"
            )


def _distortion_checks(
    weights: Tensor, t_edges: Tensor, space: str, near: Tensor | None, far: Tensor | None
) -> list:
    checks = [
        *finite_checks(weights=weights, t_edges=t_edges),
        range_check("weights", weights, 0.0, None, what="rendering weights"),
        sorted_check("t_edges", t_edges),
    ]
    if space == "metric" or t_edges.shape[-1] == 0:
        return checks
    lo = t_edges[..., 0] if near is None else near.to(t_edges.device, t_edges.dtype)
    hi = t_edges[..., -1] if far is None else far.to(t_edges.device, t_edges.dtype)
    checks.append(((hi - lo > 0).all(), lambda: "`far` must be greater than `near` on every ray"))
    if space == "inverse":
        checks.append(
            (
                (t_edges.amin() > 0) & (lo > 0).all(),
                lambda: (
                    'space="inverse" (or "mipnerf360") needs positive distances: `near` and '
                    "every edge > 0"
                ),
            )
        )
    return checks


def _distortion_terms(weights: Tensor, s: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Centred midpoints ``c``, widths ``delta`` and ``2 C - w - W`` of each ray's bins.

    The loss is shift invariant, so each ray's distances are first taken relative to its first
    edge (exact in floating point for edges within a factor 2 of it: bins keep their precision
    however far the ray runs from the origin), then its midpoints are centred on their weighted
    mean, so the signed sums are small where the weight is. Both offsets are constants
    (detached).
    """
    local = s - s[..., :1].detach()
    widths = local[..., 1:] - local[..., :-1]
    midpoints = torch.add(local[..., :-1], widths, alpha=0.5)
    inclusive = torch.cumsum(weights, dim=-1)
    total = inclusive[..., -1:]
    with torch.no_grad():
        safe_total = torch.where(total > 0, total, torch.ones_like(total))
        offset = torch.linalg.vecdot(weights, midpoints)[..., None] / safe_total
    return midpoints - offset, widths, 2.0 * inclusive - weights - total


def _dense_distortion_reference(weights: Tensor, s: Tensor) -> Tensor:
    """:func:`_dense_distortion` through autograd (the test oracle of the fused gradients)."""
    centred, widths, spread = _distortion_terms(weights, s)
    inter = 2.0 * (weights * centred * spread).sum(-1)
    return inter + (weights.square() * widths).sum(-1) / 3.0


class _DenseDistortion(torch.autograd.Function):
    """Per-ray O(S) distortion loss with analytic gradients (one prefix sum each way).

    ``L = 2 sum_i w_i c_i (2 C_i - w_i - W) + (1/3) sum_i w_i^2 delta_i`` with centred midpoints
    ``c_i``, inclusive prefix sums ``C_i`` and ``W = C_S``. With ``D_i = w_i c_i``,
    ``P_k = sum_{i<k} D_i`` and ``Q_k = sum_{i>k} D_i``:
    ``dL/dw_k = 2 (c_k (2 C_k - w_k - W) + Q_k - P_k) + (2/3) w_k delta_k``,
    ``dL/dm_k = 2 w_k (2 C_k - w_k - W)``, ``dL/ddelta_k = w_k^2 / 3``, and each edge collects
    ``dm/2 -+ ddelta`` from the bins it bounds. Both gradients are invariant to shifting a ray's
    midpoints, so the per-ray offset is a constant for every derivative order. A backward with
    ``create_graph=True`` recomputes the terms from the inputs, so second derivatives are exact.
    """

    @staticmethod
    def forward(ctx: Any, weights: Tensor, s: Tensor) -> Tensor:
        """Per-ray losses ``[...]`` of ``weights [..., S]`` on edges ``s [..., S + 1]``."""
        centred, widths, spread = _distortion_terms(weights, s)
        products = weights * centred
        ctx.save_for_backward(weights, s, centred, widths, spread, products)
        inter = torch.linalg.vecdot(products, spread)
        return inter.mul_(2.0).add_(torch.linalg.vecdot(weights * widths, weights), alpha=1 / 3)

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """Gradients w.r.t. the weights and the edges."""
        (grad,) = grad_outputs
        weights, s, centred, widths, spread, products = ctx.saved_tensors
        create_graph = torch.is_grad_enabled()
        if create_graph:  # recompute as differentiable functions
            centred, widths, spread = _distortion_terms(weights, s)
            products = weights * centred
        grad = grad[..., None]
        grad_weights = grad_edges = None
        if ctx.needs_input_grad[0]:
            # Q_k - P_k = D_total - 2 cumsum(D)_k + D_k
            cumulative = torch.cumsum(products, dim=-1)
            if create_graph:
                grad_weights = grad * (
                    2.0 * (centred * spread + cumulative[..., -1:] - 2.0 * cumulative + products)
                    + (2.0 / 3.0) * weights * widths
                )
            else:  # the same, in place on fresh buffers
                grad_weights = torch.addcmul(products, centred, spread)
                grad_weights.add_(cumulative, alpha=-2.0).add_(cumulative[..., -1:])
                grad_weights.addcmul_(weights, widths, value=1 / 3).mul_(grad * 2.0)
        if ctx.needs_input_grad[1]:
            half_midpoint = weights * spread  # dL/dm / 2
            width = weights.square() / 3.0  # dL/ddelta
            zero = torch.zeros_like(weights[..., :1])
            grad_edges = grad * (
                torch.cat([half_midpoint - width, zero], -1)
                + torch.cat([zero, half_midpoint + width], -1)
            )
        return grad_weights, grad_edges


def _dense_distortion(weights: Tensor, s: Tensor) -> Tensor:
    """Per-ray O(S) distortion loss of ``weights [..., S]`` on edges ``s [..., S + 1]``.

    With inclusive prefix sums ``C_i = A_i + w_i`` and ``W = C_S``,
    ``sum_{i,j} w_i w_j |m_i - m_j| = 2 sum_i w_i (m_i A_i - B_i)
    = 2 sum_i w_i m_i (2 C_i - w_i - W)`` (the ``B`` prefix sum rewritten through
    ``sum_i w_i B_i = sum_j w_j m_j (W - C_j)``), so one prefix sum suffices.
    """
    if weights.shape[-1] == 0:
        return (weights.sum(-1) + s.sum(-1)) * 0.0  # no bins: 0, still connected to the inputs
    return _DenseDistortion.apply(weights, s)  # pyright: ignore[reportReturnType]


@checked(same_dtype=False)
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
      with ``g(x) = 1 / x`` (needs ``t > 0``; ``far`` may be ``inf``);
    * ``"mipnerf360"``: ``"inverse"`` with Mip-NeRF 360's own ``near = 0.2`` and ``far = 1e6``
      (multinerf's ``configs/360.gin``) unless given: the loss exactly as Mip-NeRF 360 trains
      with it, ``s`` in ``[0, 1]`` over the whole scene rather than per ray.

    ``near``/``far`` default to each ray's first and last edge (``"linear"``, ``"inverse"``);
    pass floats, or tensors of shape ``[...]`` (one per ray). Each ray's first edge, then its
    weighted mean midpoint, is subtracted before the prefix sum (one inclusive prefix sum per
    ray, see the module docstring); sums run in float32 or better (fp16/bf16 inputs are upcast
    and the result stays float32).
    Differentiable w.r.t. ``weights`` and ``t_edges``.

    Args:
        weights: rendering weights ``w_i >= 0`` ``[..., S]`` (e.g. from :func:`volume_weights`).
        t_edges: sorted bin edges ``[..., S + 1]``.
        space: distance space, ``"metric"``, ``"linear"``, ``"inverse"`` or ``"mipnerf360"``.
        near: near distance for the normalised spaces.
        far: far distance for the normalised spaces.
        reduction: ``"mean"`` over rays, ``"sum"``, or ``"none"`` (``[...]``).

    Returns:
        A scalar, or ``[...]`` per-ray losses for ``reduction="none"``. A ray without samples
        (``S = 0``) has loss 0; zero rays give 0 for ``"sum"``.

    Raises:
        ValueError: for mismatched shapes or devices, an unknown space or reduction,
            ``"mean"`` over zero rays, and (value checks, one host synchronisation) unsorted or
            non-finite edges, negative weights, ``far <= near``, or non-positive distances in
            inverse space.
        TypeError: for arguments that are not floating-point tensors.
    """
    check_reduction(reduction)
    near_t, far_t = check_space(space, near, far)
    space = _inverse_if_mipnerf360(space)
    _check_near_far_shape(near_t, far_t, tuple(weights.shape[:-1]))
    if value_checks_enabled():
        check_values(_distortion_checks(weights, t_edges, space, near_t, far_t))
    dtype = _accumulation_dtype(torch.promote_types(weights.dtype, t_edges.dtype))
    w = weights.to(dtype)
    t = t_edges.to(dtype)
    s = _to_space(t, space, near_t, far_t, t[..., 0], t[..., -1])
    return _reduce(_dense_distortion(w, s), reduction, "rays", "weights")


# ---------------------------------------------------------------------- distortion (packed)


@checked(same_dtype=False)
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
    end (Mip-NeRF 360's 0.2 and 1e6 for ``"mipnerf360"``); tensors are ``[num_rays]``.

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
    check_nonnegative_int("num_rays", num_rays)
    check_reduction(reduction)
    near_t, far_t = check_space(space, near, far)
    space = _inverse_if_mipnerf360(space)
    _check_near_far_shape(near_t, far_t, (num_rays,))
    n = weights.shape[0]
    device = weights.device
    if value_checks_enabled() and n:
        same = ray_indices[1:] == ray_indices[:-1]
        check_values(
            [
                *finite_checks(weights=weights, t_starts=t_starts, t_ends=t_ends),
                range_check("weights", weights, 0.0, None, what="rendering weights"),
                ((t_ends >= t_starts).all(), lambda: "`t_ends` must be >= `t_starts`"),
                (
                    (ray_indices.diff() >= 0).all(),
                    lambda: "`ray_indices` must be non-decreasing (samples packed ray after ray)",
                ),
                (
                    (ray_indices.min() >= 0) & (ray_indices.max() < num_rays),
                    lambda: f"`ray_indices` must lie in [0, num_rays) = [0, {num_rays})",
                ),
                (
                    (~same | (t_starts[1:] >= t_ends[:-1])).all(),
                    lambda: (
                        "bins of `t_starts` and `t_ends` must be sorted and non-overlapping "
                        "along each ray (t_starts[k + 1] >= t_ends[k] within a ray)"
                    ),
                ),
                (
                    (t_starts.amin() > 0) | (space != "inverse"),
                    lambda: '`t_starts` must be > 0 for space="inverse" (or "mipnerf360")',
                ),
            ]
        )
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
        return _reduce(loss, reduction, "rays", "num_rays")
    if space != "metric":
        last_index = (first_index + counts - 1).clamp(0, n - 1)
        first = t0[safe_first]
        last = t1[last_index]
        n_ray = first if near_t is None else near_t.to(device, dtype).expand(num_rays)
        f_ray = last if far_t is None else far_t.to(device, dtype).expand(num_rays)
        if value_checks_enabled():
            check_values(
                [
                    (
                        (~has | (f_ray - n_ray > 0)).all(),
                        lambda: "`far` must be greater than `near` on every ray",
                    )
                ]
            )
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
    start = first_index[idx]
    # exclusive prefix sums within each ray: A_k = sum w_j, B_k = sum w_j m_j over its j < k
    excl_w = segmented_cumsum(wd, start, exclusive=True).to(dtype)
    excl_wm = segmented_cumsum(wd * midpoints.to(acc), start, exclusive=True).to(dtype)
    per_sample = 2.0 * w * (midpoints * excl_w - excl_wm) + w.square() * widths / 3.0
    loss = torch.zeros(num_rays, dtype=dtype, device=device).index_add(0, idx, per_sample)
    return _reduce(loss, reduction, "rays", "num_rays")


# ---------------------------------------------------------------------- distortion (splat)


@checked(same_dtype=False)
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
    check_reduction(reduction)
    if value_checks_enabled():
        check_values(
            [
                *finite_checks(alpha=alpha, moment1=moment1, moment2=moment2),
                range_check("alpha", alpha, 0.0, 1.0, what="accumulated opacity"),
                range_check("moment2", moment2, 0.0, None, what="sum of w z^2"),
            ]
        )
    dtype = _accumulation_dtype(
        torch.promote_types(torch.promote_types(alpha.dtype, moment1.dtype), moment2.dtype)
    )
    a, m1, m2 = alpha.to(dtype), moment1.to(dtype), moment2.to(dtype)
    loss = 2.0 * torch.clamp_min(a * m2 - m1.square(), 0.0)
    return _reduce(loss, reduction, "pixels", "alpha")


# ---------------------------------------------------------------------- BallGAN's density loss

#: BallGAN's ramp of its regularisers (``exp_wegiht_scheduler`` in training/loss.py):
#: ``exp(images_seen / 5000) / 20`` while ``images_seen < 15000``, then 1.
BALLGAN_RAMP_IMAGES = 5000.0
BALLGAN_RAMP_DIVISOR = 20.0
BALLGAN_RAMP_END = 15000.0


def ballgan_regularizer_ramp(images_seen: float) -> float:
    """BallGAN's weight ramp for its regularisers, a factor on their weights.

    ``r(n) = exp(n / 5000) / 20`` for ``n < 15000`` images seen, and 1 afterwards (BallGAN's
    ``exp_wegiht_scheduler`` and the ``cur_nimg < 15000`` tests in its training/loss.py). It rises
    from 0.05 at the start to ``exp(3) / 20 = 1.004`` just before 15,000 images (about 470
    steps at batch 32), then drops to 1. BallGAN applies it to the density loss when
    ``fg_density_reg_scheduler`` is set and to the separation loss when
    ``bg_density_reg_scheduler`` is set (both off by default); the separation loss can also wait
    for ``bg_transmittance_reg_start`` images (0 by default).

    Args:
        images_seen: training images shown so far (StyleGAN's ``cur_nimg``), ``>= 0``.

    Returns:
        The factor ``r(n)``.
    """
    n = check_number("images_seen", images_seen)
    if n < 0:
        raise ValueError(f"`images_seen` must be >= 0, got {images_seen!r}")
    if n < BALLGAN_RAMP_END:
        return math.exp(n / BALLGAN_RAMP_IMAGES) / BALLGAN_RAMP_DIVISOR
    return 1.0


def _ballgan_pair_term(sig: Tensor, s: Tensor) -> Tensor:
    """``sum_{i<j} sig_i sig_j |s_i - s_j|`` per ray in O(S log S).

    After sorting ``s`` (ties do not matter: they add 0), the half pair sum is
    ``sum_k w_k c_k (2 C_k - w_k - W)`` with the weights ``w`` in sorted order, their inclusive
    prefix sums ``C`` and total ``W``, and ``c`` the sorted ``s`` less its weighted mean (a
    detached constant: the sum is shift invariant, and centring keeps the signed terms small).
    """
    s_sorted, order = torch.sort(s, dim=-1)
    w = torch.gather(sig, -1, order)
    inclusive = torch.cumsum(w, dim=-1)
    total = inclusive[..., -1:]
    with torch.no_grad():  # sigmoid underflows to 0 for raw densities below about -100
        safe_total = torch.where(total > 0, total, torch.ones_like(total))
        offset = (w * s_sorted).sum(-1, keepdim=True) / safe_total
    return (w * (s_sorted - offset) * (2.0 * inclusive - w - total)).sum(-1)


@checked(same_dtype=False)
def ballgan_density_loss(
    raw_densities: Float[Tensor, "*batch S"],
    t: Float[Tensor, "*batch S"],
    *,
    reduction: Reduction = "mean",
) -> Float[Tensor, "*reduced"]:
    """BallGAN's released foreground density regulariser (``get_fg_reg`` in training/loss.py).

    Per ray, with ``sig_i = sigmoid(raw_densities_i)`` at the samples ``t_i`` *in the order
    given*, the samples mapped to ``s_i = (g(t_i) - g(t_min)) / (g(t_max) - g(t_min))``,
    ``g(x) = 1 / x``, by the ray's own smallest and largest ``t``, and ``dt_i = t_{i+1} - t_i``
    (metric, in the given order, with ``dt_S = dt_{S-1}``):

    ``L = sum_{i<j} sig_i sig_j |s_i - s_j| + (1/3) sum_i sig_i dt_i``.

    BallGAN feeds it the raw (pre-activation) densities of the importance ("fine") samples and
    their depths, which its sampler does not sort, so ``dt_i`` can be negative and so can the
    loss. It is *not* Mip-NeRF 360's distortion loss (:func:`distortion_loss`): no rendering
    weights, no bins, half the pair sum, ``sig dt`` instead of ``w^2 delta``, and its values are
    about three orders of magnitude larger on the same ray (see the losses page), so weights do
    not carry over between the two.

    The released code evaluates the pair term in float16 as an ``S x S`` table; here it is
    O(S log S) per ray (sort, then prefix sums) in float32 or better (fp16/bf16 inputs are upcast;
    the result is float32). Differentiable w.r.t. both inputs (BallGAN's depths carry no gradient;
    detach ``t`` for the same behaviour).

    Args:
        raw_densities: raw densities ``[..., S]`` before any activation, ``S >= 2``.
        t: sample distances ``[..., S]``, positive, not all equal on a ray (any order).
        reduction: ``"mean"`` over rays (BallGAN's mean over rays, then over the batch),
            ``"sum"``, or ``"none"`` (``[...]``).

    Returns:
        A scalar, or ``[...]`` per-ray losses for ``reduction="none"``.

    Raises:
        ValueError: for mismatched shapes or devices, fewer than 2 samples per ray, an unknown
            reduction, ``"mean"`` over zero rays, and (value checks, one host synchronisation)
            non-finite values, non-positive distances, or a ray whose distances are all equal.
        TypeError: for arguments that are not floating-point tensors.
    """
    check_reduction(reduction)
    if t.shape[-1] < 2:
        raise ValueError(
            f"`t` must hold at least 2 samples per ray (its last dimension), got shape "
            f"{format_shape(t.shape)}"
        )
    if value_checks_enabled():
        check_values(
            [
                *finite_checks(raw_densities=raw_densities, t=t),
                (
                    (t > 0).all(),
                    lambda: f"`t` must be > 0 (sample distances), got minimum {float(t.min()):.6g}",
                ),
                (
                    (t.amax(-1) > t.amin(-1)).all(),
                    lambda: "`t` must not be constant along a ray (s = 0/0 otherwise)",
                ),
            ]
        )
    dtype = _accumulation_dtype(torch.promote_types(raw_densities.dtype, t.dtype))
    sig = torch.sigmoid(raw_densities.to(dtype))
    t = t.to(dtype)
    g_near = torch.reciprocal(t.amin(-1, keepdim=True))
    g_far = torch.reciprocal(t.amax(-1, keepdim=True))
    s = (torch.reciprocal(t) - g_near) / (g_far - g_near)
    pair = _ballgan_pair_term(sig, s)
    dt = t[..., 1:] - t[..., :-1]
    dt = torch.cat([dt, dt[..., -1:]], dim=-1)
    loss = pair + (sig * dt).sum(-1) / 3.0
    return _reduce(loss, reduction, "rays", "raw_densities")
