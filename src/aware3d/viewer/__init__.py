"""Seeing a generator: the ``aware3d view`` web viewer and ``aware3d export``.

* :mod:`aware3d.viewer.model`: any checkpoint aware3d reads as a generator and its family
  (:func:`load_model`), the latent and camera of ``aware3d render --seed S``;
* :mod:`aware3d.viewer.render`: a frame of the viewer from its settings (:class:`ViewRenderer`,
  :class:`ViewSettings`), without any browser;
* :mod:`aware3d.viewer.export`: a scene as 3DGS PLY / ``.splat`` (Gaussians), a marching-cubes
  mesh (PLY / OBJ) and its density grid (volumes), and MP4 / GIF turntables (:func:`export_model`);
* :mod:`aware3d.viewer.app`: the viser app (:class:`~aware3d.viewer.app.ViewerApp`), imported
  only when a viewer starts: ``import aware3d.viewer`` loads neither viser nor the export
  packages (the ``view`` and ``export`` extras).
"""

from aware3d.viewer.export import FORMATS, ExportOptions, export_model, export_plan
from aware3d.viewer.model import (
    LoadedModel,
    UnknownCheckpointError,
    load_model,
    render_camera_label,
    seed_latent,
)
from aware3d.viewer.render import VIEWS, ViewRenderer, ViewSettings, eg3d_pose, measure_fps

__all__ = [
    "FORMATS",
    "VIEWS",
    "ExportOptions",
    "LoadedModel",
    "UnknownCheckpointError",
    "ViewRenderer",
    "ViewSettings",
    "eg3d_pose",
    "export_model",
    "export_plan",
    "load_model",
    "measure_fps",
    "render_camera_label",
    "seed_latent",
]
