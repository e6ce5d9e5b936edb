"""``TriplaneRenderer``: tri-planes volume-rendered over the unit-occupancy background."""

from typing import NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._validation import (
    check_bool,
    check_choice,
    check_number,
    check_positive_int,
    check_positive_number,
    check_scene_cameras,
    check_shape,
    require_tensor,
)
from aware3d.cameras import Cameras
from aware3d.functional.compositing import VolumeSamples, composite_volume
from aware3d.functional.sampling import SAMPLE_SPACES, ray_box_intersection
from aware3d.functional.triplane import PROJECTIONS, sample_triplane
from aware3d.functional.volume import (
    EG3D_DENSITY_OFFSET,
    EG3D_NUM_COARSE,
    EG3D_NUM_FINE,
    RaySamples,
    midpoint_volume_samples,
    sample_coarse_fine,
)

__all__ = ["EG3D_RAY_END", "EG3D_RAY_START", "TriplaneRenderer", "VolumeRender"]

#: EG3D's and BallGAN's FFHQ/AFHQ ray bounds (``ray_start``, ``ray_end``; cameras at radius 2.7).
EG3D_RAY_START = 2.25
EG3D_RAY_END = 3.3


class VolumeRender(NamedTuple):
    """What :class:`TriplaneRenderer` returns: the image and everything the losses need.

    Attributes:
        image: composite ``sum_i w_i f_i + T_bg f_bg`` ``[B, C, H, W, F]``.
        depth: camera-space ``z`` of the expected depth, the background's where it shows,
            ``[B, C, H, W, 1]``.
        opacity: foreground opacity ``1 - T_bg`` ``[B, C, H, W, 1]``.
        bg_transmittance: ``T_bg`` ``[B, C, H, W, 1]`` (for the separation loss).
        background: the background's features ``[B, C, H, W, F]`` alone (``None`` without one).
        intervals: the rendered intervals ``(sigmas, features, t_edges)`` per pixel
            (``[B, C, H, W, S - 1]`` ...), with ``weights``'s bins (for the distortion loss:
            ``distortion_loss(weights, intervals.t_edges)``).
        weights: interval weights ``w_i`` ``[B, C, H, W, S - 1]``.
        fine: the importance samples ``(t, raw_densities, features)`` per pixel (for
            :func:`~aware3d.functional.ballgan_density_loss`).
    """

    image: Float[Tensor, "B C H W F"]
    depth: Float[Tensor, "B C H W 1"]
    opacity: Float[Tensor, "B C H W 1"]
    bg_transmittance: Float[Tensor, "B C H W 1"]
    background: Float[Tensor, "B C H W F"] | None
    intervals: VolumeSamples
    weights: Float[Tensor, "B C H W S"]
    fine: RaySamples


class TriplaneRenderer(nn.Module):
    """Renders tri-planes through a decoder with EG3D's sampling, over a background (BallGAN).

    For every pixel ray of every camera (:meth:`~aware3d.Cameras.pixel_rays`, unit directions):

    1. ``near``/``far`` are EG3D's fixed ``ray_start``/``ray_end`` or, with ``ray_start=None``,
       the ray's entry and exit of the tri-plane cube
       (:func:`~aware3d.functional.ray_box_intersection`; rays that miss it see only background);
    2. :func:`~aware3d.functional.sample_coarse_fine` places ``num_coarse`` stratified and
       ``num_fine`` importance samples, evaluating the field
       ``decoder(sample_triplane(planes, points))``;
    3. the merged samples become intervals with midpoint densities ``softplus(x - 1)``
       (:func:`~aware3d.functional.midpoint_volume_samples`) and are composited over the
       background with occupancy 1 (:func:`~aware3d.functional.composite_volume`):
       ``image = sum_i w_i f_i + T_bg f_bg``, ``sum_i w_i + T_bg = 1``.

    The background (e.g. :class:`~aware3d.nn.SphericalBackground`) is reached at its own
    distance (``features_and_distance``), which also gives the depth where it shows.

    Args:
        decoder: maps tri-plane samples ``[B, 3, N, F_plane]`` to ``(raw densities [B, N],
            features [B, N, F])`` (e.g. :class:`~aware3d.nn.TriplaneDecoder`).
        background: a module with ``features_and_distance(origins, dirs, w)`` returning
            ``(features [..., F], t_bg [...])``, or ``None`` (background features of 0).
        box_size: side of the cube the planes span (EG3D's ``box_warp``).
        ray_start: where sampling starts (EG3D FFHQ: 2.25), or ``None`` for the box entry.
        ray_end: where it ends (EG3D FFHQ: 3.3); ``None`` together with ``ray_start``.
        num_coarse: stratified samples per ray (EG3D: 48).
        num_fine: importance samples per ray (EG3D: 48).
        projection: tri-plane axes, ``"eg3d"`` (as released) or ``"orthogonal"``.
        space: coarse spacing, ``"linear"`` or ``"disparity"``.
        density_offset: the midpoint density activation ``softplus(x - offset)`` (EG3D: 1).
    """

    def __init__(
        self,
        decoder: nn.Module,
        background: nn.Module | None = None,
        *,
        box_size: float = 1.0,
        ray_start: float | None = EG3D_RAY_START,
        ray_end: float | None = EG3D_RAY_END,
        num_coarse: int = EG3D_NUM_COARSE,
        num_fine: int = EG3D_NUM_FINE,
        projection: str = "eg3d",
        space: str = "linear",
        density_offset: float = EG3D_DENSITY_OFFSET,
    ) -> None:
        super().__init__()
        decoded = getattr(decoder, "out_features", None)
        shown = getattr(background, "feature_dim", None)
        if isinstance(decoded, int) and isinstance(shown, int) and decoded != shown:
            raise ValueError(
                f"`decoder` makes {decoded} features but `background` makes {shown}; the "
                "composite needs the same number"
            )
        self.decoder = decoder
        self.background = background
        self.box_size = check_positive_number("box_size", box_size)
        if (ray_start is None) != (ray_end is None):
            raise ValueError("`ray_start` and `ray_end` must both be numbers or both be None")
        if ray_start is not None and ray_end is not None:
            check_positive_number("ray_start", ray_start)
            if not check_number("ray_end", ray_end) > ray_start:
                raise ValueError(f"`ray_end` must be > `ray_start`, got {ray_end} <= {ray_start}")
        self.ray_start, self.ray_end = ray_start, ray_end
        check_positive_int("num_fine", num_fine)
        if check_positive_int("num_coarse", num_coarse) < 4:
            raise ValueError(f"`num_coarse` must be >= 4, got {num_coarse}")
        self.num_coarse, self.num_fine = num_coarse, num_fine
        check_choice("projection", projection, PROJECTIONS)
        check_choice("space", space, SAMPLE_SPACES)
        self.projection, self.space = projection, space
        self.density_offset = check_number("density_offset", density_offset)

    def _bounds(self, origins: Tensor, dirs: Tensor) -> tuple[Tensor, Tensor]:
        if self.ray_start is None or self.ray_end is None:
            near, far, _ = ray_box_intersection(origins, dirs, self.box_size / 2)
            return near, far
        near = torch.full(origins.shape[:-1], self.ray_start, dtype=dirs.dtype, device=dirs.device)
        return near, torch.full_like(near, self.ray_end)

    def forward(
        self,
        planes: Float[Tensor, "B 3 P Hp Wp"],
        cameras: Cameras,
        width: int,
        height: int,
        w_background: Float[Tensor, "B ..."] | None = None,
        *,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
    ) -> VolumeRender:
        """Renders ``planes`` from ``cameras`` at ``height x width`` over the background.

        Args:
            planes: tri-planes ``[B, 3, P, Hp, Wp]``.
            cameras: ``Cameras [B, C]``.
            width: image width ``W``.
            height: image height ``H``.
            w_background: the background's style codes ``[B, D]`` or ``[B, num_ws, D]`` (needed
                with a background).
            deterministic: no jitter, evenly spaced importance levels.
            generator: random generator for the sampling.

        Returns:
            :class:`VolumeRender`.

        Raises:
            ValueError: for cameras not shaped ``[B, C]`` with the planes' ``B``, or a missing
                ``w_background``.
        """
        if not isinstance(cameras, Cameras):
            raise TypeError(f"`cameras` must be Cameras, got {type(cameras).__name__}")
        require_tensor("planes", planes)
        check_shape("planes", planes, ("B", 3, "P", "Hp", "Wp"))
        check_scene_cameras(cameras.shape, planes.shape[0], "from `planes`")
        check_bool("deterministic", deterministic)
        rays = cameras.pixel_rays(width, height)  # [B, C, H, W, 3]
        near, far = self._bounds(rays.origins, rays.directions)

        def field(points: Tensor) -> tuple[Tensor, Tensor]:
            sampled = sample_triplane(
                planes, points, box_size=self.box_size, projection=self.projection
            )
            raw, features = self.decoder(sampled)
            return raw, features

        samples = sample_coarse_fine(
            field,
            rays.origins,
            rays.directions,
            near,
            far,
            num_coarse=self.num_coarse,
            num_fine=self.num_fine,
            space=self.space,
            density_offset=self.density_offset,
            deterministic=deterministic,
            generator=generator,
        )
        intervals = midpoint_volume_samples(*samples.merged, density_offset=self.density_offset)
        background, bg_distance = self._background(rays.origins, rays.directions, w_background)
        shape = intervals.features.shape
        bg_features = (
            intervals.features.new_zeros(shape[:-2] + shape[-1:])
            if background is None
            else background
        )
        result = composite_volume(*intervals, bg_features, bg_distance)
        assert result.depth is not None
        assert result.weights is not None
        return VolumeRender(
            result.image,
            cameras.pixel_depths(result.depth, rays.directions),
            result.opacity,
            result.bg_transmittance,
            background,
            intervals,
            result.weights,
            samples.fine,
        )

    def _background(
        self, origins: Tensor, dirs: Tensor, w: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None]:
        if self.background is None:
            return None, None
        if w is None:
            raise ValueError("`w_background` is required when the renderer has a background")
        features, t_bg = self.background.features_and_distance(origins, dirs, w)  # pyright: ignore[reportCallIssue]
        return features, t_bg[..., None]

    def extra_repr(self) -> str:
        """The sampling configuration."""
        return (
            f"box_size={self.box_size}, ray_start={self.ray_start}, ray_end={self.ray_end}, "
            f"num_coarse={self.num_coarse}, num_fine={self.num_fine}, "
            f"projection={self.projection!r}, space={self.space!r}, "
            f"density_offset={self.density_offset}"
        )
