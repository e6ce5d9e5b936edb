"""``CompositeRenderer``: a foreground over a unit-occupancy background."""

from typing import Any

from torch import Tensor, nn

from aware3d.cameras import Cameras
from aware3d.functional.compositing import (
    CompositeResult,
    VolumeSamples,
    composite_splat,
    composite_volume,
)

__all__ = ["CompositeRenderer"]


def _is_splat(foreground: Any) -> bool:
    return all(hasattr(foreground, name) for name in ("features", "alpha", "depth"))


class CompositeRenderer(nn.Module):
    """Composites a foreground over a background whose occupancy is fixed at 1 (BallGAN).

    The foreground is either

    * volumetric: a :class:`~aware3d.functional.VolumeSamples` (or a ``(sigmas, features,
      t_edges)`` tuple) with ``sigmas [..., S]``, ``features [..., S, F]``,
      ``t_edges [..., S + 1]``; or
    * splatted: anything with ``.features [B, C, H, W, F]`` (premultiplied, rendered without
      background), ``.alpha [B, C, H, W, 1]`` and ``.depth [B, C, H, W, 1]`` (or ``None``), such as
      the ``SplatOutput`` of :func:`~aware3d.functional.rasterize`.

    The background is either given as features (``background=[..., F]``, optionally with
    ``background_depth=[..., 1]``), or rendered by the module passed at construction (e.g. a
    :class:`~aware3d.nn.SphericalBackground`) from style codes ``w`` and ``cameras`` (splatted
    foreground) or ``origins``/``dirs`` (volumetric foreground). A rendered background supplies its
    depth too: camera ``z`` for splats, distance along the ray for volumetric samples.

    Args:
        background: optional background module, called as ``background(origins, dirs, w)`` and,
            for splats, ``background.render(cameras, W, H, w)``. If it has
            ``features_and_distance`` / ``render_with_depth`` (as ``SphericalBackground`` does),
            those are used so the background's depth enters the composite.

    Returns (from ``forward``):
        :class:`~aware3d.functional.CompositeResult`.
    """

    def __init__(self, background: nn.Module | None = None) -> None:
        super().__init__()
        self.background = background

    def _background_for_splat(
        self, features: Tensor, w: Tensor | None, cameras: Cameras | None
    ) -> tuple[Tensor, Tensor | None]:
        if self.background is None or w is None or cameras is None:
            raise ValueError(
                "pass `background` features, or construct CompositeRenderer with a background "
                "module and pass `w` and `cameras`"
            )
        height, width = features.shape[-3], features.shape[-2]
        module: Any = self.background
        if hasattr(module, "render_with_depth"):
            return module.render_with_depth(cameras, width, height, w)
        return module.render(cameras, width, height, w), None

    def _background_for_rays(
        self, w: Tensor | None, origins: Tensor | None, dirs: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        if self.background is None or w is None or origins is None or dirs is None:
            raise ValueError(
                "pass `background` features, or construct CompositeRenderer with a background "
                "module and pass `w`, `origins` and `dirs`"
            )
        module: Any = self.background
        if hasattr(module, "features_and_distance"):
            features, t_bg = module.features_and_distance(origins, dirs, w)
            return features, t_bg[..., None]
        return self.background(origins, dirs, w), None

    def forward(
        self,
        foreground: Any,
        background: Tensor | None = None,
        *,
        background_depth: Tensor | None = None,
        w: Tensor | None = None,
        cameras: Cameras | None = None,
        origins: Tensor | None = None,
        dirs: Tensor | None = None,
    ) -> CompositeResult:
        """Composites ``foreground`` over the background.

        Args:
            foreground: ``VolumeSamples`` / ``(sigmas, features, t_edges)``, or a splat output.
            background: background features ``[..., F]`` (per ray or per pixel); rendered by the
                background module if ``None``.
            background_depth: the background's depth ``[..., 1]`` when ``background`` is given.
            w: background style codes ``[B, D]`` (only to render the background).
            cameras: ``Cameras [B, C]`` (only to render the background behind splats).
            origins: ray origins ``[B, ..., 3]`` (only to render the background behind samples).
            dirs: ray directions ``[B, ..., 3]`` (same).

        Returns:
            :class:`~aware3d.functional.CompositeResult`.
        """
        if _is_splat(foreground):
            bg, bg_depth = background, background_depth
            if bg is None:
                bg, bg_depth = self._background_for_splat(foreground.features, w, cameras)
            return composite_splat(
                foreground.features, foreground.alpha, bg, foreground.depth, bg_depth
            )
        if not isinstance(foreground, tuple) or len(foreground) != 3:
            raise TypeError(
                "`foreground` must be VolumeSamples / a (sigmas, features, t_edges) tuple, or a "
                f"splat output with .features, .alpha and .depth; got {type(foreground).__name__}"
            )
        sigmas, features, t_edges = VolumeSamples(*foreground)
        bg, bg_depth = background, background_depth
        if bg is None:
            bg, bg_depth = self._background_for_rays(w, origins, dirs)
        return composite_volume(sigmas, features, t_edges, bg, bg_depth)
