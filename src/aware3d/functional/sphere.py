"""Where a ray leaves the background sphere, and BallGAN's angles of a point on it.

A ray ``o + t d`` from a point strictly inside the sphere ``|x| = R`` crosses it exactly once for
``t > 0``: the far root of ``a t^2 + 2 b t + c = 0`` with ``a = |d|^2``, ``b = o . d`` and
``c = |o|^2 - R^2 < 0``. The discriminant ``b^2 - a c`` is then at least ``b^2``, so the root is
always real and positive. A camera on or outside the sphere has no such exit and is rejected with
a ``ValueError`` naming the farthest origin.

BallGAN's released code (``get_background_points_ours`` in
``training/volumetric_rendering/renderer.py``) tests something else: it takes each ray's point
``p`` closest to the centre and raises an ``Exception`` where ``|p|^2 >= R``, comparing the
squared distance with ``R`` instead of ``R^2``. For ``R = 3`` that refuses every ray that misses
the sphere, but also rays from cameras inside it that pass farther than ``sqrt(3)`` from the
centre, while a camera *outside* the sphere whose rays all pass within ``sqrt(R)`` of the centre
is accepted and gets the far root (behind the camera, ``t < 0``, for a ray pointing away).

:func:`sphere_angles` gives BallGAN's ``(theta, phi)`` of a point, with the azimuth's seam at
``+z``.
"""

import math

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

__all__ = ["ray_sphere_exit", "sphere_angles"]


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


@checked
def sphere_angles(points: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 2"]:
    """BallGAN's spherical angles ``(theta, phi)`` of points, world up ``+y``.

    ``theta = arccos(y / |p|)`` in ``[0, pi]`` (0 at ``+y``, ``pi`` at ``-y``) and
    ``phi = atan2(x, z)`` moved to ``[0, 2 pi)`` by adding ``2 pi`` where it is negative
    (0 at ``+z``, ``pi / 2`` at ``+x``, ``pi`` at ``-z``, ``3 pi / 2`` at ``-x``): the convention
    of ``cartesian_to_spherical_ours`` in BallGAN's released renderer, which divides ``y`` by the
    sphere radius (the same thing for points on the sphere). ``theta`` is evaluated as
    ``atan2(hypot(x, z), y)``, equal to ``arccos(y / |p|)`` and accurate near the poles, where
    ``arccos`` of a rounded ratio loses precision or leaves its domain.

    ``phi`` is discontinuous across the half-plane ``x = 0, z > 0`` (the ``+z`` direction, which
    EG3D's frontal camera looks away from): it approaches ``2 pi`` from the ``x < 0`` side and is
    0 on the ``x >= 0`` side. On the ``y`` axis (the poles) ``phi`` is undefined (this returns 0
    there) and neither angle is differentiable.

    Args:
        points: points ``[..., 3]``, not at the origin (e.g. exit points on the sphere, or unit
            directions).

    Returns:
        ``[..., 2]``: ``theta`` then ``phi``, in radians, same dtype as ``points``.
    """
    x, y, z = points.unbind(-1)
    theta = torch.atan2(torch.hypot(x, z), y)
    phi = torch.atan2(x, z)
    phi = torch.where(phi < 0, phi + 2 * math.pi, phi)
    return torch.stack([theta, phi], dim=-1)
