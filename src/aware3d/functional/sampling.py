"""Where to sample along rays: near/far bounds, stratified and inverse-CDF importance samples.

These produce the sample distances ``t`` that a volumetric foreground (e.g. a tri-plane,
:func:`~aware3d.functional.sample_triplane`) is evaluated at, before
:func:`~aware3d.functional.composite_volume` turns densities into weights.
"""

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._validation import (
    check_bool,
    check_choice,
    check_positive_int,
    check_positive_number,
    check_values,
    finite_checks,
    range_check,
    sorted_check,
    value_checks_enabled,
)

__all__ = [
    "EG3D_IMPORTANCE_PAD",
    "EG3D_PDF_EPS",
    "SAMPLE_SPACES",
    "ray_box_intersection",
    "sample_importance_eg3d",
    "sample_pdf",
    "sample_stratified",
    "smooth_weights_eg3d",
]

SAMPLE_SPACES = ("linear", "disparity")
#: Added to the smoothed coarse weights before importance sampling (EG3D's
#: ``ImportanceRenderer.sample_importance``: ``weights + 0.01``), so every bin keeps some samples.
EG3D_IMPORTANCE_PAD = 0.01
#: Added to the weights inside EG3D's ``sample_pdf`` (``eps=1e-5``).
EG3D_PDF_EPS = 1e-5


def _rand(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, dtype=like.dtype, device=like.device, generator=generator)


@checked
def sample_stratified(
    near: Float[Tensor, "*rays"],
    far: Float[Tensor, "*rays"],
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    space: str = "linear",
    deterministic: bool = False,
) -> Float[Tensor, "*rays S"]:
    """Stratified sample distances along each ray, EG3D's released rule.

    With ``Delta = 1 / (S - 1)`` and ``u_i ~ U[0, 1)`` (``u_i = 0`` when ``deterministic``),
    ``x_i = (i + u_i) Delta`` for ``i = 0..S-1``, and

    * ``space="linear"``: ``t_i = near + x_i (far - near)``;
    * ``space="disparity"``: linear in inverse depth, ``t_i = 1 / ((1 - x_i) / near + x_i / far)``.

    Without jitter the samples are ``linspace(near, far, S)`` (or its disparity counterpart).
    With jitter each sample moves forward by up to one spacing, so the last one can lie up to
    ``(far - near) / (S - 1)`` beyond ``far``, as in EG3D's ``sample_stratified``; the samples
    stay sorted. ``S = 1`` gives ``near`` (plus jitter over ``far - near``).

    Args:
        near: start of each ray's interval ``[...]``, > 0 for ``space="disparity"``.
        far: end of each ray's interval ``[...]``, ``>= near``.
        num_samples: ``S`` >= 1.
        generator: random generator for the jitter (reproducible sampling).
        space: ``"linear"`` or ``"disparity"``.
        deterministic: no jitter.

    Returns:
        Sorted distances ``[..., S]``.

    Raises:
        ValueError: for mismatched shapes, an unknown ``space``, and (value checks) non-finite
            bounds, ``far < near`` or a non-positive ``near`` in disparity space.
    """
    check_positive_int("num_samples", num_samples)
    check_choice("space", space, SAMPLE_SPACES)
    check_bool("deterministic", deterministic)
    if value_checks_enabled():
        checks = [
            *finite_checks(near=near, far=far),
            ((far >= near).all(), lambda: "`far` must be >= `near` on every ray"),
        ]
        if space == "disparity":
            checks.append(range_check("near", near, 1e-30, None, what='space="disparity"'))
        check_values(checks)
    steps = torch.arange(num_samples, dtype=near.dtype, device=near.device)
    x = steps.expand(*near.shape, num_samples)
    if not deterministic:
        x = x + _rand(tuple(x.shape), near, generator)
    x = x / max(num_samples - 1, 1)
    near, far = near[..., None], far[..., None]
    if space == "linear":
        return torch.lerp(near, far, x)
    return torch.reciprocal(torch.lerp(torch.reciprocal(near), torch.reciprocal(far), x))


def _pdf_checks(bins: Tensor, weights: Tensor) -> list:
    return [
        *finite_checks(bins=bins, weights=weights),
        range_check("weights", weights, 0.0, None, what="a density over the bins"),
        sorted_check("bins", bins),
    ]


@checked
def sample_pdf(
    bins: Float[Tensor, "*rays E"],
    weights: Float[Tensor, "*rays S"],
    num_samples: int,
    *,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "*rays n"]:
    """Inverse-CDF sampling of the piecewise-constant density ``weights`` over ``bins``.

    The density is constant inside each bin ``[b_{k-1}, b_k]``, with mass
    ``p_k = w_k / sum_j w_j`` (uniform when all weights are 0). Its CDF is piecewise linear
    through ``(b_k, c_k)``, ``c_0 = 0``, ``c_k = p_1 + ... + p_k``, ``c_S = 1``. A level ``u``
    in the bin ``c_{k-1} <= u < c_k`` maps to
    ``t = b_{k-1} + (u - c_{k-1}) / (c_k - c_{k-1}) (b_k - b_{k-1})``, the exact inverse of the
    CDF. ``deterministic=True`` uses ``u = linspace(0, 1, n)`` (so the first and last samples are
    ``b_0`` and ``b_S``); otherwise ``n`` sorted uniform levels, so the output is sorted either way.

    Gradients flow to ``bins`` and ``weights`` through the interpolation (NeRF-style renderers
    usually detach the samples).

    Args:
        bins: sorted bin edges ``[..., S + 1]``.
        weights: non-negative bin weights ``[..., S]`` (need not be normalised).
        num_samples: ``n`` >= 1.
        deterministic: evenly spaced levels instead of random ones.
        generator: random generator for the levels.

    Returns:
        Sorted samples ``[..., n]`` in ``[b_0, b_S]``.

    Raises:
        ValueError: for mismatched shapes, ``S = 0``, and (value checks) non-finite values,
            negative weights or unsorted bins.
    """
    check_positive_int("num_samples", num_samples)
    check_bool("deterministic", deterministic)
    if weights.shape[-1] == 0:
        raise ValueError("`weights` must have at least one bin, got shape with S = 0")
    if bins.shape[-1] != weights.shape[-1] + 1:
        raise ValueError(
            f"`bins` must have S + 1 = {weights.shape[-1] + 1} edges for S = "
            f"{weights.shape[-1]} weights, got {bins.shape[-1]}"
        )
    if value_checks_enabled():
        check_values(_pdf_checks(bins, weights))
    num_bins = weights.shape[-1]
    total = weights.sum(-1, keepdim=True)
    uniform = torch.full_like(weights, 1.0 / num_bins)
    pdf = torch.where(total > 0, weights / torch.where(total > 0, total, 1.0), uniform)
    cdf = F.pad(torch.cumsum(pdf, dim=-1)[..., :-1], (1, 0))
    cdf = torch.cat([cdf, torch.ones_like(cdf[..., :1])], dim=-1)  # c_S = 1 exactly
    shape = (*weights.shape[:-1], num_samples)
    if deterministic:
        levels = torch.linspace(0.0, 1.0, num_samples, dtype=bins.dtype, device=bins.device)
        levels = levels.expand(shape).contiguous()
    else:
        levels = torch.sort(_rand(shape, bins, generator), dim=-1).values
    above = torch.searchsorted(cdf.detach().contiguous(), levels, right=True)
    above = above.clamp(1, num_bins)
    below = above - 1
    cdf_lo, cdf_hi = cdf.gather(-1, below), cdf.gather(-1, above)
    bin_lo, bin_hi = bins.gather(-1, below), bins.gather(-1, above)
    span = cdf_hi - cdf_lo
    fraction = torch.where(span > 0, (levels - cdf_lo) / torch.where(span > 0, span, 1.0), 0.0)
    return bin_lo + fraction.clamp(0.0, 1.0) * (bin_hi - bin_lo)


@checked
def smooth_weights_eg3d(weights: Float[Tensor, "*rays S"]) -> Float[Tensor, "*rays S"]:
    """EG3D's smoothing of the coarse weights before importance sampling.

    A max filter over neighbour pairs, then a mean over neighbour pairs, then a floor:
    ``m_j = max(w_{j-1}, w_j)`` for ``j = 0..S`` (the ends see one weight),
    ``a_j = (m_j + m_{j+1}) / 2`` and the result ``a_j + 0.01``
    (``max_pool1d(2, 1, padding=1)``, ``avg_pool1d(2, 1)`` and ``+ 0.01`` in EG3D's
    ``ImportanceRenderer.sample_importance``). It widens peaks to their neighbours, so thin
    surfaces found by one coarse interval get fine samples on both sides.

    Args:
        weights: coarse rendering weights ``[..., S]``.

    Returns:
        Smoothed, floored weights ``[..., S]``.
    """
    padded = F.pad(weights, (1, 1), value=float("-inf"))
    maxed = torch.maximum(padded[..., :-1], padded[..., 1:])  # [..., S + 1]
    return 0.5 * (maxed[..., :-1] + maxed[..., 1:]) + EG3D_IMPORTANCE_PAD


@checked
def sample_importance_eg3d(
    t_coarse: Float[Tensor, "*rays S"],
    weights: Float[Tensor, "*rays S-1"],
    num_samples: int,
    *,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "*rays n"]:
    """EG3D's importance samples from the coarse pass, exactly as released (no gradient).

    EG3D's ray marcher turns ``S`` coarse samples into ``S - 1`` intervals, so its ``weights``
    have ``S - 1`` entries. They are smoothed (:func:`smooth_weights_eg3d`), the two end entries
    are dropped (NeRF's ``weights[1:-1]``), ``1e-5`` is added, and the remaining ``S - 3`` weights
    are sampled (:func:`sample_pdf`) over the bins whose edges are the first ``S - 2`` midpoints
    of the coarse samples. NeRF's version had ``S`` weights for ``S - 1`` midpoints; EG3D's loss of
    one weight leaves the last midpoint unused, so its importance samples never go past the
    second-to-last coarse midpoint. Reproduced because trained models saw those samples.

    Args:
        t_coarse: sorted coarse sample distances ``[..., S]``, ``S >= 4``.
        weights: the coarse intervals' rendering weights ``[..., S - 1]``.
        num_samples: ``n`` importance samples (EG3D: 48).
        deterministic: evenly spaced CDF levels instead of random ones.
        generator: random generator for the levels.

    Returns:
        Sorted importance samples ``[..., n]`` (detached).

    Raises:
        ValueError: for ``S < 4`` or mismatched shapes.
    """
    if t_coarse.shape[-1] < 4:
        raise ValueError(f"`t_coarse` needs at least 4 samples per ray, got {t_coarse.shape[-1]}")
    with torch.no_grad():
        smoothed = smooth_weights_eg3d(weights)[..., 1:-1] + EG3D_PDF_EPS
        midpoints = 0.5 * (t_coarse[..., 1:] + t_coarse[..., :-1])
        bins = midpoints[..., : smoothed.shape[-1] + 1]
        return sample_pdf(
            bins, smoothed, num_samples, deterministic=deterministic, generator=generator
        )


@checked
def ray_box_intersection(
    origins: Float[Tensor, "*rays 3"],
    dirs: Float[Tensor, "*rays 3"],
    half_extent: float,
) -> tuple[Float[Tensor, "*rays"], Float[Tensor, "*rays"], Float[Tensor, "*rays"]]:
    """Where each ray enters and leaves the cube ``[-h, h]^3`` (the tri-plane's box).

    Slab method: per axis, ``t = (+-h - o_a) / d_a``; ``near`` is the largest entry and ``far``
    the smallest exit over the three axes, ``near`` clamped at 0 (a ray from inside starts at its
    origin). Axes with ``d_a = 0`` contribute no bound if ``|o_a| <= h`` and a miss otherwise.
    A ray that misses the box gets ``near = far`` (the distance of its closest approach to the
    box centre, clamped at 0), so samples placed between them have zero width and contribute
    nothing: the background shows. (EG3D's ``ray_start="auto"`` instead gives missing rays the
    hitting rays' extreme bounds, which moves samples across the scene.)

    Args:
        origins: ray origins ``[..., 3]``.
        dirs: ray directions ``[..., 3]``.
        half_extent: ``h`` > 0 (EG3D: ``box_warp / 2``).

    Returns:
        ``(near [...], far [...], hit [...])``, ``hit`` as 1.0 / 0.0 in the rays' dtype.
    """
    half_extent = check_positive_number("half_extent", half_extent)
    parallel = dirs == 0
    safe = torch.where(parallel, torch.ones_like(dirs), dirs)
    t_a = (-half_extent - origins) / safe
    t_b = (half_extent - origins) / safe
    inside = origins.abs() <= half_extent
    inf = torch.full_like(t_a, float("inf"))
    lo = torch.where(parallel, torch.where(inside, -inf, inf), torch.minimum(t_a, t_b))
    hi = torch.where(parallel, torch.where(inside, inf, -inf), torch.maximum(t_a, t_b))
    near = lo.amax(-1).clamp_min(0.0)
    far = hi.amin(-1)
    hit = far > near
    closest = (-(origins * dirs).sum(-1) / dirs.square().sum(-1)).clamp_min(0.0)
    near = torch.where(hit, near, closest)
    far = torch.where(hit, far, closest)
    return near, far, hit.to(origins.dtype)
