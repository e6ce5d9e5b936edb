"""Where a ray leaves the background sphere (BallGAN's sphere of radius ``R`` around the scene).

A ray ``o + t d`` from a point strictly inside the sphere ``|x| = R`` crosses it exactly once for
``t > 0``: the far root of ``a t^2 + 2 b t + c = 0`` with ``a = |d|^2``, ``b = o . d`` and
``c = |o|^2 - R^2 < 0``. The discriminant ``b^2 - a c`` is then at least ``b^2``, so the root is
always real and positive. A camera on or outside the sphere has no such exit and is rejected with
a ``ValueError`` (BallGAN's released code guards the square root instead and returns garbage).
"""

import torch
from jaxtyping import Float
from torch import Tensor

from aware3d._validation import (
    check_positive_number,
    check_same_device,
    check_shape,
    format_shape,
    require_tensor,
)

__all__ = ["ray_sphere_exit"]


def _validate(origins: Tensor, dirs: Tensor, radius: float) -> None:
    """Shape checks (no sync) plus one host synchronisation for all value checks."""
    require_tensor("origins", origins)
    require_tensor("dirs", dirs)
    check_shape("origins", origins, (3,), batch=True)
    check_shape("dirs", dirs, (3,), batch=True)
    if origins.shape != dirs.shape:
        raise ValueError(
            f"`origins` and `dirs` must have the same shape [..., 3], got "
            f"{format_shape(origins.shape)} and {format_shape(dirs.shape)}"
        )
    check_same_device([("origins", origins), ("dirs", dirs)])
    if torch.compiler.is_compiling() or origins.numel() == 0:
        return
    sq_norm = origins.double().square().sum(-1)
    dir_norm = dirs.double().square().sum(-1)
    flags = torch.stack(
        [
            torch.isfinite(origins).all(),
            torch.isfinite(dirs).all(),
            (sq_norm < radius * radius).all(),
            (dir_norm > 0).all(),
        ]
    ).tolist()  # the one host synchronisation
    finite_o, finite_d, inside, nonzero = flags
    if not finite_o:
        raise ValueError("`origins` must be finite, but some entries are NaN or infinite")
    if not finite_d:
        raise ValueError("`dirs` must be finite, but some entries are NaN or infinite")
    if not inside:
        worst = float(sq_norm.max().sqrt())
        raise ValueError(
            f"every ray origin (camera) must lie strictly inside the background sphere of radius "
            f"{radius:g}, but the farthest origin is at distance {worst:.6g} from the centre; "
            "move the cameras inside or enlarge `radius`"
        )
    if not nonzero:
        raise ValueError("`dirs` must be non-zero vectors")


def ray_sphere_exit(
    origins: Float[Tensor, "*batch 3"],
    dirs: Float[Tensor, "*batch 3"],
    radius: float,
    *,
    validate: bool = True,
) -> Float[Tensor, "*batch"]:
    """Distance along each ray to where it leaves the sphere ``|x| = radius`` centred at 0.

    The far root of ``|o + t d|^2 = R^2``:
    ``t = (-b + sqrt(b^2 - a c)) / a`` with ``a = |d|^2``, ``b = o . d``, ``c = |o|^2 - R^2``.
    For unit ``d`` this is DESIGN.md's ``t_bg = -b + sqrt(b^2 - (|o|^2 - R^2))``. Where ``b > 0``
    the algebraically equal ``t = -c / (b + sqrt(b^2 - a c))`` is used, which avoids cancellation;
    both forms have denominators bounded away from zero for origins strictly inside, so values and
    gradients are finite everywhere (no clamps, no epsilons). The exit point is ``o + t d``.

    Args:
        origins: ray origins ``[..., 3]``, strictly inside the sphere.
        dirs: ray directions ``[..., 3]`` (unit in the library's rays, but any non-zero length
            works: ``t`` is then in units of ``|d|``).
        radius: sphere radius ``R`` > 0.
        validate: run the input checks (one host synchronisation). Pass ``False`` only for rays
            that were already validated.

    Returns:
        ``t`` ``[...]``, positive, with ``|o + t d| = R``.

    Raises:
        ValueError: if an origin lies on or outside the sphere, shapes differ, a value is not
            finite, or a direction is zero.
    """
    radius = check_positive_number("radius", radius)
    if validate:
        _validate(origins, dirs, radius)
    a = dirs.square().sum(-1)
    b = (origins * dirs).sum(-1)
    c = origins.square().sum(-1) - radius * radius
    root = torch.sqrt(b.square() - a * c)
    positive = b > 0
    # Each branch gets a denominator that is safe where it is *not* selected, so the unselected
    # branch of `where` never produces inf/NaN gradients.
    t_far = (root - b) / a
    t_near_form = -c / torch.where(positive, b + root, torch.ones_like(b))
    return torch.where(positive, t_near_form, t_far)
