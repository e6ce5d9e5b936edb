"""Segmented prefix sums: cumulative sums along dim 0 that restart at every segment (private).

One primitive for the rasterizer (front-to-back transmittance per tile, forward and backward)
and the packed distortion loss (per-ray prefix sums). Segments are runs of consecutive entries;
``anchor[k]`` is the index of the element where entry ``k``'s segment starts in the direction of
the scan: its first element for a forward scan, its last for a reverse scan. The sums come from
one global cumulative sum minus its value at the anchor, so they are exact up to the global
sum's rounding; accumulate in float64 where segments sit late in a long array.
"""

import torch
from torch import Tensor


def segmented_cumsum(
    values: Tensor, anchor: Tensor, *, reverse: bool = False, exclusive: bool = False
) -> Tensor:
    """Per-segment cumulative sums of ``values`` along dim 0.

    ``inclusive[k] = sum of values[j]`` over the ``j`` of ``k``'s segment from the anchor up to
    and including ``k`` (forward: ``anchor[k] <= j <= k``; reverse: ``k <= j <= anchor[k]``);
    ``exclusive[k] = inclusive[k] - values[k]``.

    Args:
        values: ``[P, ...]`` values, summed along dim 0.
        anchor: ``[P]`` int64, the index of the first element of each entry's segment in the
            direction of the scan.
        reverse: sum from the end of each segment instead of its start (suffix sums).
        exclusive: leave each entry's own value out.

    Returns:
        ``[P, ...]`` sums in the dtype of ``values``.
    """
    if reverse:
        total = torch.flip(torch.cumsum(torch.flip(values, (0,)), 0), (0,))
    else:
        total = torch.cumsum(values, 0)
    inclusive = total - total[anchor] + values[anchor]
    return inclusive - values if exclusive else inclusive
