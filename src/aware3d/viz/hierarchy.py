"""Visualisation helpers for a decoded hierarchy: levels, anchors, shrunken scales, descendants.

All helpers return :class:`~aware3d.gaussians.Gaussians` (or images, for :func:`render_levels`),
so any renderer can show them. Typical use::

    hierarchy = decoder.forward_hierarchy(ws)
    coarse = select_levels(hierarchy, [0, 1])            # the first two levels only
    skeleton = shrink_scales(anchors_as_gaussians(hierarchy), 0.2)
    one_part = color_by_level(descendants(hierarchy, token=7))
"""

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from aware3d._validation import (
    check_bool,
    check_number,
    check_positive_number,
    check_shape,
    require_tensor,
)
from aware3d.cameras import Cameras
from aware3d.functional.hierarchy import (
    GaussianHierarchy,
    HierarchyNodes,
    descendant_mask,
    nodes_to_gaussians,
)
from aware3d.gaussians import Gaussians

__all__ = [
    "LEVEL_PALETTE",
    "anchors_as_gaussians",
    "color_by_level",
    "descendants",
    "render_levels",
    "select_levels",
    "shrink_scales",
]

#: RGB colours in [0, 1] given to levels 0, 1, 2, ... by :func:`color_by_level` (cycled).
LEVEL_PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.894, 0.102, 0.110),
    (0.216, 0.494, 0.722),
    (0.302, 0.686, 0.290),
    (0.596, 0.306, 0.639),
    (1.000, 0.498, 0.000),
    (1.000, 1.000, 0.200),
    (0.651, 0.337, 0.157),
)


def _gaussians_of(source: "Gaussians | GaussianHierarchy") -> Gaussians:
    if isinstance(source, GaussianHierarchy):
        return source.gaussians
    if isinstance(source, Gaussians):
        return source
    raise TypeError(
        f"`source` must be Gaussians or a GaussianHierarchy, got {type(source).__name__}"
    )


def _level_list(levels: object, count: int) -> list[int]:
    """``levels`` (an int or a sequence of ints) as a non-empty list of levels in ``[0, count)``."""
    wanted = [levels] if isinstance(levels, int) else levels
    if not isinstance(wanted, list | tuple | range) or not all(
        isinstance(level, int) and not isinstance(level, bool) for level in wanted
    ):
        raise TypeError(f"`levels` must be an integer or a sequence of integers, got {levels!r}")
    if len(wanted) == 0:
        raise ValueError("`levels` must name at least one level")
    for level in wanted:
        if not 0 <= level < count:
            raise ValueError(f"`levels` holds level {level}, out of range [0, {count})")
    return list(wanted)


def select_levels(
    source: "Gaussians | GaussianHierarchy", levels: int | Sequence[int]
) -> Gaussians:
    """The rendered Gaussians of the given levels.

    Args:
        source: Gaussians with ``levels``, or a decoder's hierarchy.
        levels: a level or levels to keep.

    Returns:
        The selected Gaussians (with their ``levels``).
    """
    return _gaussians_of(source).select(levels=levels)


def anchors_as_gaussians(
    hierarchy: GaussianHierarchy,
    levels: int | Sequence[int] | None = None,
    *,
    opacity: float | None = None,
) -> Gaussians:
    """The anchors (the hidden parents of each next level) as Gaussians that can be rendered.

    Args:
        hierarchy: a decoder's hierarchy.
        levels: levels whose anchors to keep (default: all).
        opacity: if given, every anchor gets this opacity in [0, 1] (anchors' own opacities are
            never trained to look right, since anchors are not rendered).

    Returns:
        Gaussians of the anchors with ``levels``.

    Raises:
        ValueError: if the hierarchy has no anchors (a flat decoder) or ``opacity`` is outside
            [0, 1].
    """
    if not isinstance(hierarchy, GaussianHierarchy):
        raise TypeError(f"`hierarchy` must be a GaussianHierarchy, got {type(hierarchy).__name__}")
    if not hierarchy.anchors:
        raise ValueError("this hierarchy has no anchors (it comes from a flat decoder)")
    count = len(hierarchy.anchors)
    wanted = list(range(count)) if levels is None else _level_list(levels, count)
    if opacity is not None:
        opacity = check_number("opacity", opacity)
        if not 0.0 <= opacity <= 1.0:
            raise ValueError(f"`opacity` must lie in [0, 1], got {opacity!r}")
    parts = [hierarchy.anchors[level] for level in wanted]
    device = hierarchy.gaussians.device
    level_ids = torch.cat(
        [
            torch.full((part.num_nodes,), level, dtype=torch.int64, device=device)
            for level, part in zip(wanted, parts, strict=True)
        ]
    )
    merged = HierarchyNodes(
        *(torch.cat([getattr(p, f) for p in parts], dim=1) for f in HierarchyNodes._fields)
    )
    gaussians = nodes_to_gaussians(merged, level_ids)
    if opacity is not None:
        gaussians.opacities = torch.full_like(gaussians.opacities, float(opacity))
    return gaussians


def shrink_scales(source: "Gaussians | GaussianHierarchy", factor: float = 0.25) -> Gaussians:
    """The Gaussians with every scale multiplied by ``factor``, to see positions and structure.

    Args:
        source: Gaussians or a decoder's hierarchy.
        factor: scale multiplier > 0.

    Returns:
        The shrunken Gaussians.
    """
    check_positive_number("factor", factor)
    return _gaussians_of(source).scaled(factor)


def descendants(hierarchy: GaussianHierarchy, token: int, *, anchors: bool = False) -> Gaussians:
    """The rendered Gaussians (or anchors) that descend from one level-0 token, every level.

    A level-``l`` node ``j`` descends from token ``j // K**l``.

    Args:
        hierarchy: a decoder's hierarchy (hierarchical, with ``K`` children per node).
        token: index of the level-0 token.
        anchors: return the anchors instead of the rendered Gaussians.

    Returns:
        Gaussians with ``levels``.
    """
    if not isinstance(hierarchy, GaussianHierarchy):
        raise TypeError(f"`hierarchy` must be a GaussianHierarchy, got {type(hierarchy).__name__}")
    check_bool("anchors", anchors)
    sizes = [nodes.num_nodes for nodes in hierarchy.nodes]
    num_initial = sizes[0]
    children = sizes[1] // sizes[0] if len(sizes) > 1 else 1
    levels = len(hierarchy.anchors) if anchors else len(sizes)
    if anchors and not levels:
        raise ValueError("this hierarchy has no anchors (it comes from a flat decoder)")
    mask = descendant_mask(num_initial, children, levels, token)
    source = anchors_as_gaussians(hierarchy) if anchors else hierarchy.gaussians
    return source.select(mask=mask.to(source.device))


def color_by_level(
    source: "Gaussians | GaussianHierarchy",
    palette: Sequence[Sequence[float]] = LEVEL_PALETTE,
) -> Gaussians:
    """The Gaussians with RGB features replaced by a colour per level (``F = 3``).

    Args:
        source: Gaussians with ``levels``, or a decoder's hierarchy.
        palette: colours, one per level, cycled when there are more levels.

    Returns:
        The recoloured Gaussians.
    """
    gaussians = _gaussians_of(source)
    if gaussians.levels is None:
        raise ValueError("these Gaussians have no `levels`")
    colors = torch.as_tensor(palette, dtype=gaussians.dtype, device=gaussians.device)
    check_shape("palette", colors, (None, 3))
    if colors.shape[0] == 0:
        raise ValueError("`palette` must hold at least one colour")
    per_gaussian = colors[gaussians.levels.to(colors.device) % colors.shape[0]]
    features = per_gaussian[None].expand(gaussians.batch_size, -1, -1)
    return Gaussians._trusted(
        gaussians.means,
        gaussians.quats,
        gaussians.scales,
        gaussians.opacities,
        features,
        gaussians.levels,
    )


def render_levels(
    source: "Gaussians | GaussianHierarchy",
    cameras: Cameras,
    width: int,
    height: int,
    *,
    cumulative: bool = True,
    backgrounds: Float[Tensor, "B C F"] | None = None,
) -> list[Tensor]:
    """Renders the hierarchy level by level with :func:`aware3d.functional.splat.rasterize`.

    Args:
        source: Gaussians with ``levels``, or a decoder's hierarchy.
        cameras: :class:`~aware3d.cameras.Cameras` of shape ``[B, C]``.
        width: image width.
        height: image height.
        cumulative: image ``l`` shows levels ``0..l`` (the coarse-to-fine build-up); otherwise
            level ``l`` alone.
        backgrounds: optional background features ``[B, C, F]`` passed to the rasterizer.

    Returns:
        One ``[B, C, H, W, F]`` image per level.
    """
    from aware3d.functional.splat import rasterize  # lazy: the rasterizer is optional here

    gaussians = _gaussians_of(source)
    if gaussians.levels is None:
        raise ValueError("these Gaussians have no `levels`")
    if backgrounds is not None:
        require_tensor("backgrounds", backgrounds)
    num_levels = int(gaussians.levels.max()) + 1 if gaussians.num_gaussians else 0
    images = []
    for level in range(num_levels):
        wanted = list(range(level + 1)) if cumulative else [level]
        output = rasterize(
            gaussians.select(levels=wanted), cameras, width, height, backgrounds=backgrounds
        )
        images.append(output.features)
    return images
