"""Quaternions in ``wxyz`` order: normalisation and rotation matrices (one implementation).

Used by the hierarchy (:func:`aware3d.functional.densify`) and by the rasterizer's projection.
"""

import torch
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked

#: Below this largest absolute component a quaternion counts as zero (its direction is undefined).
QUATERNION_EPS = 1e-6


@checked
def normalize_quaternion(
    q: Float[Tensor, "*batch 4"], fallback: Float[Tensor, "*batch 4"] | None = None
) -> Float[Tensor, "*batch 4"]:
    """Unit quaternions ``q / |q|``, overflow-safe, with a fallback where ``q`` is (nearly) zero.

    ``q`` is first divided by its largest absolute component, so components near the dtype's
    maximum do not overflow when squared. Where that component is below :data:`QUATERNION_EPS`
    the result is ``fallback`` (default: the identity ``(1, 0, 0, 0)``); values and gradients stay
    finite everywhere. For any other ``q`` the value and gradient are those of ``q / |q|``.

    Args:
        q: quaternions, ``[..., 4]``.
        fallback: unit quaternions used where ``q`` is zero, ``[..., 4]``.

    Returns:
        Unit quaternions, ``[..., 4]``.
    """
    largest = q.abs().amax(dim=-1, keepdim=True)
    ok = largest > QUATERNION_EPS
    scaled = q / largest.clamp_min(QUATERNION_EPS)
    # |scaled| >= 1 wherever `ok`; the clamp only guards the branch `where` discards
    unit = scaled / torch.linalg.vector_norm(scaled, dim=-1, keepdim=True).clamp_min(1e-3)
    if fallback is None:
        fallback = torch.zeros_like(q)
        fallback[..., 0] = 1.0
    return torch.where(ok, unit, fallback)


@checked
def quaternion_to_matrix(q: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 3 3"]:
    """Rotation matrices of ``wxyz`` quaternions (normalised first; zero gives the identity).

    Args:
        q: quaternions, ``[..., 4]``.

    Returns:
        ``R(q)``, ``[..., 3, 3]``; ``R @ v`` rotates ``v`` from the quaternion's frame to the
        world.
    """
    return unit_quaternion_to_matrix(normalize_quaternion(q))


def unit_quaternion_to_matrix(q: Tensor) -> Tensor:
    """:func:`quaternion_to_matrix` of quaternions already normalised (no checks)."""
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))
