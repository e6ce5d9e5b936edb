"""Figures of generators and hierarchies: grids, turntables, decompositions, level renders.

* :mod:`aware3d.viz.figures`: image grids, sample grids, turntable GIFs, the foreground /
  background decomposition, level renders of the demo's hierarchy, loss curves.
* :mod:`aware3d.viz.hierarchy`: views of a decoded Gaussian hierarchy (levels, anchors, shrunken
  scales, descendants, colours by level) as :class:`~aware3d.Gaussians` or images.
* :mod:`aware3d.viz.render`: what ``aware3d render`` writes for any generator (grid, turntable,
  depth, PLY).
"""

from aware3d.viz.figures import (
    decomposition_columns,
    grid,
    save_decomposition,
    save_levels,
    save_loss_curves,
    save_samples,
    save_turntable,
    to_uint8,
)
from aware3d.viz.hierarchy import (
    LEVEL_PALETTE,
    anchors_as_gaussians,
    color_by_level,
    descendants,
    render_levels,
    select_levels,
    shrink_scales,
)
from aware3d.viz.render import depth_to_grey, render_outputs

__all__ = [
    "LEVEL_PALETTE",
    "anchors_as_gaussians",
    "color_by_level",
    "decomposition_columns",
    "depth_to_grey",
    "descendants",
    "grid",
    "render_levels",
    "render_outputs",
    "save_decomposition",
    "save_levels",
    "save_loss_curves",
    "save_samples",
    "save_turntable",
    "select_levels",
    "shrink_scales",
    "to_uint8",
]
