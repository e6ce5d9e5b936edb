"""Sampling tri-plane features at 3D points (EG3D's foreground representation).

A tri-plane is three axis-aligned feature planes ``[B, 3, F, H, W]`` spanning the cube
``[-box_size / 2, box_size / 2]^3``. A point is projected onto each plane, the plane is sampled
bilinearly there, and the decoder combines the three feature vectors (EG3D: their mean).
"""

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._validation import check_choice, check_positive_number

__all__ = ["PROJECTIONS", "TRIPLANE_AXES", "sample_triplane"]

#: The coordinate pairs each plane is indexed by, as ``(u, v)`` = (width axis, height axis).
#: ``"eg3d"`` is EG3D's released ``generate_planes``/``project_onto_planes``: its third plane is
#: read at ``(z, x)``, not ``(y, z)``, so ``y`` is seen by two planes and ``x`` by two as well,
#: but no plane varies along ``y`` and ``z`` together. Trained EG3D and BallGAN models depend on it.
TRIPLANE_AXES: dict[str, tuple[tuple[int, int], ...]] = {
    "eg3d": ((0, 1), (0, 2), (2, 0)),
    "orthogonal": ((0, 1), (0, 2), (1, 2)),
}
PROJECTIONS = tuple(TRIPLANE_AXES)


@checked
def sample_triplane(
    planes: Float[Tensor, "B 3 F H W"],
    points: Float[Tensor, "B N 3"],
    *,
    box_size: float = 1.0,
    projection: str = "eg3d",
) -> Float[Tensor, "B 3 N F"]:
    """Bilinearly samples each of the three planes at the projections of ``points``.

    A point ``p`` becomes normalised coordinates ``q = 2 p / box_size`` (the cube
    ``[-box_size / 2, box_size / 2]^3`` maps to ``[-1, 1]^3``). Plane ``k`` is read at
    ``(q[a_k], q[b_k])``: ``q[a_k]`` runs along the plane's width ``W`` (left to right) and
    ``q[b_k]`` along its height ``H`` (top to bottom), as :func:`torch.nn.functional.grid_sample`
    with ``align_corners=False`` (the cube's faces are the outer edges of the border texels) and
    zero padding (points outside the cube get zero features from the planes they leave).

    ``projection="eg3d"`` reproduces EG3D's released plane axes exactly: ``(x, y)``, ``(x, z)``
    and ``(z, x)`` -- the last is not ``(y, z)``, a quirk of EG3D's ``generate_planes`` that
    trained EG3D and BallGAN tri-planes depend on. ``projection="orthogonal"`` uses ``(x, y)``,
    ``(x, z)``, ``(y, z)``: every pair of axes once, for models trained from scratch.

    Args:
        planes: tri-plane features ``[B, 3, F, H, W]``.
        points: world points ``[B, N, 3]``.
        box_size: side length of the cube the planes span (EG3D's ``box_warp``; 1 on FFHQ).
        projection: ``"eg3d"`` (default, as released) or ``"orthogonal"``.

    Returns:
        Features ``[B, 3, N, F]``, one vector per plane and point.

    Raises:
        ValueError: for mismatched shapes, a non-positive ``box_size`` or an unknown
            ``projection``.
    """
    check_positive_number("box_size", box_size)
    check_choice("projection", projection, PROJECTIONS)
    batch, num_planes, channels, height, width = planes.shape
    coords = points * (2.0 / box_size)
    grid = torch.stack([coords[..., [a, b]] for a, b in TRIPLANE_AXES[projection]], dim=1)
    sampled = F.grid_sample(
        planes.reshape(batch * num_planes, channels, height, width),
        grid.reshape(batch * num_planes, 1, -1, 2),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )  # [B * 3, F, 1, N]
    return sampled.reshape(batch, num_planes, channels, -1).transpose(-1, -2)
