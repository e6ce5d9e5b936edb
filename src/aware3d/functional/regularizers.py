"""GSGAN's regularisers of the level-0 anchors: the k-NN distance and the centre distance.

GSGAN (Hyun et al., NeurIPS 2024) adds two terms to the generator loss, computed on the
positions ``a_i`` of the ``N`` level-0 anchors of every scene (world space, after the decoder's
bounding ``tanh``) at every generator step:

* k-NN distance: ``L_knn = 1/(3 k) sum_{j in kNN(i)} ||a_i - a_j||^2`` per anchor (squared
  Euclidean distances to its ``k`` nearest other anchors, averaged over the neighbours and the 3
  coordinates), weight 10 in the released configurations with ``k = 64`` of 256 anchors. It
  pulls the anchors together, so that no anchor drifts away from the object alone.
* centre distance: ``L_centre = 1/3 ||(1/N) sum_i a_i||^2`` per scene (the anchors' centroid
  kept at the origin), weight 1 for FFHQ and 10 for AFHQ.
"""

import math

import torch
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._validation import (
    check_memory,
    check_positive_int,
    check_values,
    finite_check,
    value_checks_enabled,
)
from aware3d.functional.losses import Reduction, _accumulation_dtype, _reduce, check_reduction

__all__ = ["centre_distance_loss", "knn_distance_loss"]


@checked
def knn_distance_loss(
    points: Float[Tensor, "B N 3"], k: int = 64, *, reduction: Reduction = "mean"
) -> Float[Tensor, "*reduced"]:
    """GSGAN's k-NN regulariser: mean squared distance of every point to its ``k`` nearest.

    ``L_i = 1/(3 k) sum_{j in kNN(i)} ||p_i - p_j||^2`` for every point ``p_i`` of a scene, its
    ``k`` nearest neighbours taken among the scene's other points (the point itself is never its
    own neighbour; duplicates of it are). The neighbours are chosen without gradient; the
    gradient flows through the selected squared distances (as through a sort), so it is finite
    for coincident points. Memory is ``O(B N^2)`` for the distance matrix. Computed in float32
    or better (float16/bfloat16 points give a float32 loss).

    Args:
        points: ``[B, N, 3]`` positions, e.g. the level-0 anchors
            ``hierarchy.anchors[0].position`` of a
            :class:`~aware3d.functional.GaussianHierarchy`.
        k: neighbours per point, ``1 <= k <= N - 1`` (GSGAN: 64 of 256 anchors).
        reduction: ``"mean"`` over all points of all scenes, ``"sum"``, or ``"none"``
            (``[B, N]``).

    Returns:
        A scalar, or ``[B, N]`` per-point losses for ``reduction="none"``.

    Raises:
        ValueError: for ``k`` outside ``[1, N - 1]``, an unknown reduction, ``"mean"`` over zero
            scenes, and (value checks) non-finite points.
        TypeError: for a ``points`` that is not a floating-point tensor, or a ``k`` that is not
            an int.
        MemoryError: if the ``[B, N, N]`` distance matrix cannot fit.
    """
    check_positive_int("k", k)
    check_reduction(reduction)
    batch, count = points.shape[0], points.shape[1]
    if k > count - 1:
        raise ValueError(
            f"`k` must be at most N - 1 = {count - 1} (the other points of a scene), got {k}"
        )
    if value_checks_enabled():
        check_values([finite_check("points", points)])
    points = points.to(_accumulation_dtype(points.dtype))
    check_memory(
        "knn_distance_loss's distance matrix", 2.0 * batch * count * count * points.element_size(),
        points.device, hint="pass fewer points or scenes per call",
    )  # fmt: skip
    with torch.no_grad():
        distances = torch.cdist(points, points).square_()
        distances.diagonal(dim1=-2, dim2=-1).fill_(math.inf)
        neighbours = distances.topk(k, dim=-1, largest=False, sorted=False).indices  # [B, N, k]
    gathered = torch.gather(
        points[:, None, :, :].expand(batch, count, count, 3),
        2,
        neighbours[..., None].expand(batch, count, k, 3),
    )
    loss = (points[:, :, None, :] - gathered).square().mean(dim=(-1, -2))
    return _reduce(loss, reduction, "scenes", "points")


@checked
def centre_distance_loss(
    points: Float[Tensor, "B N 3"], *, reduction: Reduction = "mean"
) -> Float[Tensor, "*reduced"]:
    """GSGAN's centre regulariser: squared distance of each scene's centroid from the origin.

    ``L_b = 1/3 ||(1/N) sum_i p_{b,i}||^2`` (the squared norm averaged over the 3 coordinates).
    To keep the points around another centre ``c``, pass ``points - c``. Computed in float32 or
    better.

    Args:
        points: ``[B, N, 3]`` positions, e.g. the level-0 anchors
            ``hierarchy.anchors[0].position``.
        reduction: ``"mean"`` over the scenes, ``"sum"``, or ``"none"`` (``[B]``).

    Returns:
        A scalar, or ``[B]`` per-scene losses for ``reduction="none"``.

    Raises:
        ValueError: for zero points per scene, an unknown reduction, ``"mean"`` over zero scenes,
            and (value checks) non-finite points.
        TypeError: for a ``points`` that is not a floating-point tensor.
    """
    check_reduction(reduction)
    if points.shape[1] == 0:
        raise ValueError("`points` holds zero points per scene: their centroid is undefined")
    if value_checks_enabled():
        check_values([finite_check("points", points)])
    points = points.to(_accumulation_dtype(points.dtype))
    loss = points.mean(dim=1).square().mean(dim=-1)
    return _reduce(loss, reduction, "scenes", "points")
