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

from aware3d._checked import checked
from aware3d._validation import (
    check_positive_number,
    check_values,
    finite_checks,
    value_checks_enabled,
)

__all__ = ["ray_sphere_exit"]


def _value_checks(origins: Tensor, dirs: Tensor, radius: float) -> list:
    sq_norm = origins.double().square().sum(-1)

    def outside() -> str:
        worst = float(sq_norm.max().sqrt())
        return (
            f"every ray origin in `origins` (a camera) must lie strictly inside the background "
            f"sphere of radius {radius:g}, but the farthest is at distance {worst:.6g} from the "
            "centre; move the cameras inside or enlarge `radius`"
        )

    return [
        *finite_checks(origins=origins, dirs=dirs),
        ((sq_norm < radius * radius).all(), outside),
        ((dirs.square().sum(-1) > 0).all(), lambda: "`dirs` must be non-zero vectors"),
    ]


@checked
def ray_sphere_exit(
    origins: Float[Tensor, "*batch 3"],
    dirs: Float[Tensor, "*batch 3"],
    radius: float,
) -> Float[Tensor, "*batch"]:
    """Distance along each ray to where it leaves the sphere ``|x| = radius`` centred at 0.

    The far root of ``|o + t d|^2 = R^2``:
    ``t = (-b + sqrt(b^2 - a c)) / a`` with ``a = |d|^2``, ``b = o . d``, ``c = |o|^2 - R^2``.
    For unit ``d`` this is ``t_bg = -b + sqrt(b^2 - (|o|^2 - R^2))``. Where ``b > 0``
    the algebraically equal ``t = -c / (b + sqrt(b^2 - a c))`` is used, which avoids cancellation;
    both forms have denominators bounded away from zero for origins strictly inside, so values and
    gradients are finite everywhere (no clamps, no epsilons). The exit point is ``o + t d``.

    Args:
        origins: ray origins ``[..., 3]``, strictly inside the sphere.
        dirs: ray directions ``[..., 3]`` (unit in the library's rays, but any non-zero length
            works: ``t`` is then in units of ``|d|``).
        radius: sphere radius ``R`` > 0.

    Returns:
        ``t`` ``[...]``, positive, with ``|o + t d| = R``.

    Raises:
        ValueError: if shapes, dtypes or devices differ, and (value checks, one host
            synchronisation, see :func:`aware3d.value_checks`) if an origin lies on or outside
            the sphere, a value is not finite or a direction is zero.
        TypeError: for arguments that are not floating-point tensors.
    """
    radius = check_positive_number("radius", radius)
    if value_checks_enabled():
        check_values(_value_checks(origins, dirs, radius))
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
