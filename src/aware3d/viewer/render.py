"""The viewer's frames: a generator rendered from one camera with the viewer's settings.

:class:`ViewSettings` holds everything a frame depends on (latent, truncation, conditioning,
camera, resolution, what to show, the Gaussian levels); :class:`ViewRenderer` turns settings into
a uint8 image. It knows nothing of the browser, so the tests and ``aware3d view --benchmark`` use
it directly, and the frame the page shows is exactly the array it returns.

What can be shown (:data:`VIEWS`):

* ``composite``: the generator's images (for the default settings, exactly what
  ``aware3d render`` writes for the same latent and camera);
* ``foreground``: the foreground alone over black (Gaussians: the selected levels splatted;
  volumes: ``sum_i w_i f_i``);
* ``background``: the background alone (the sphere, or GSGAN's background Gaussians);
* ``opacity``: the foreground's accumulated opacity as grey;
* ``depth``: the foreground's depth as grey (near white, background black;
  :func:`~aware3d.viz.depth_to_grey`);
* ``raw`` (volumes): the neural rendering before super-resolution.

For Gaussian generators, ``levels`` picks ``"all"`` levels, levels ``"up to"`` ``level``, or
``"only"`` ``level``; ``shrink`` < 1 multiplies every scale (the paper's figures of the
hierarchy's structure).
"""

import dataclasses
import math
import time
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aware3d.cameras import (
    FFHQ_FOCAL,
    FFHQ_LOOKAT,
    FFHQ_RADIUS,
    Cameras,
    intrinsics_from_fov,
    sample_look_at_poses,
)
from aware3d.viewer.model import LoadedModel, frontal_label
from aware3d.viz.figures import to_uint8
from aware3d.viz.render import depth_to_grey

__all__ = [
    "FFHQ_FOV",
    "LEVEL_MODES",
    "VIEWS",
    "ViewRenderer",
    "ViewSettings",
    "eg3d_pose",
    "measure_fps",
    "yaw_pitch_of",
]

#: FFHQ's true horizontal field of view in degrees (normalised focal 4.2647).
FFHQ_FOV = math.degrees(2 * math.atan(0.5 / FFHQ_FOCAL))
#: What a frame can show.
VIEWS = ("composite", "foreground", "background", "opacity", "depth", "raw")
#: How the Gaussian levels are chosen.
LEVEL_MODES = ("all", "up to", "only")


def eg3d_pose(
    yaw: float,
    pitch: float,
    radius: float = FFHQ_RADIUS,
    lookat: tuple[float, float, float] = FFHQ_LOOKAT,
) -> Tensor:
    """The camera-to-world matrix ``[4, 4]`` (float64) of EG3D's look-at sampler.

    ``yaw`` and ``pitch`` are degrees from the frontal view: EG3D's horizontal angle
    ``h = pi/2 + yaw`` (positive: the camera moves to the subject's left, +x) and vertical angle
    ``v = pi/2 - pitch`` (positive: the camera rises).
    """
    h = math.pi / 2 + math.radians(yaw)
    v = math.pi / 2 - math.radians(pitch)
    return sample_look_at_poses(h, v, lookat, radius=radius, dtype=torch.float64)[0]


def yaw_pitch_of(
    cam2world: Tensor | np.ndarray, lookat: tuple[float, float, float] = FFHQ_LOOKAT
) -> tuple[float, float, float]:
    """``(yaw, pitch, radius)`` of a camera centre in :func:`eg3d_pose`'s angles (degrees).

    Exact for EG3D's look-at cameras; for others, the angles of the camera's centre.
    """
    del lookat  # EG3D's cameras sit on a sphere about the origin, whatever they look at
    centre = np.asarray(cam2world, dtype=np.float64)[:3, 3]
    radius = float(np.linalg.norm(centre))
    if radius == 0:
        return 0.0, 0.0, 0.0
    x, y, z = centre / radius
    phi = math.acos(max(-1.0, min(1.0, y)))  # EG3D: y = r cos(phi), phi = arccos(1 - 2 v / pi)
    v = math.pi * (1 - math.cos(phi)) / 2
    theta = math.pi - math.atan2(z, x)  # x = r sin(phi) cos(pi - h), z = r sin(phi) sin(pi - h)
    yaw = math.degrees(theta - math.pi / 2)
    yaw = (yaw + 180) % 360 - 180
    return yaw, math.degrees(math.pi / 2 - v), radius


@dataclasses.dataclass
class ViewSettings:
    """Everything one frame depends on.

    Attributes:
        seed: the latent's seed (:func:`~aware3d.viewer.model.seed_latent`), unless ``latent``.
        latent: an explicit latent ``[1, latent_dim]`` (an inverted image's), or ``None``.
        psi: truncation (1 for none).
        conditioning: ``"frontal"`` (EG3D's samples: the frontal FFHQ camera, so the scene does
            not change as the camera moves) or ``"view"`` (the camera rendered from, as in
            training and ``aware3d render``).
        cam2world: the camera, ``[4, 4]`` OpenCV camera-to-world (float64).
        fov: true horizontal field of view in degrees.
        resolution: image size (volumes: their super-resolution's, always).
        neural_resolution: volumes' volume-rendering resolution (``None``: the generator's).
        view: one of :data:`VIEWS`.
        levels: one of :data:`LEVEL_MODES` (Gaussian generators).
        level: the level of ``"up to"`` and ``"only"``.
        shrink: scale factor of every Gaussian, in (0, 1].
    """

    seed: int = 0
    latent: Tensor | None = None
    psi: float = 1.0
    conditioning: Literal["frontal", "view"] = "frontal"
    cam2world: Tensor = dataclasses.field(default_factory=lambda: eg3d_pose(0.0, 0.0))
    fov: float = FFHQ_FOV
    resolution: int = 128
    neural_resolution: int | None = None
    view: str = "composite"
    levels: str = "all"
    level: int = 0
    shrink: float = 1.0

    def replace(self, **changes: Any) -> "ViewSettings":
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


class ViewRenderer:
    """Renders :class:`ViewSettings` of one generator to uint8 images ``[H, W, 3]``.

    The latent of a seed is cached (the last few), everything else is rendered anew: a frame is
    a pure function of its settings.
    """

    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        self.generator: Any = model.generator
        self._latents: dict[int, Tensor] = {}

    # ------------------------------------------------------------------ what the model offers

    @property
    def views(self) -> tuple[str, ...]:
        """The views this generator can show."""
        if self.model.family == "gaussians":
            return VIEWS[:5]
        if self.model.family == "volume":
            return VIEWS
        return ("composite", "opacity", "depth")

    @property
    def num_levels(self) -> int:
        """Levels of a Gaussian generator's hierarchy (1 for anything else)."""
        decoder = getattr(self.generator, "decoder", None)
        sizes = getattr(decoder, "level_sizes", None)
        return len(sizes) if sizes else 1

    @property
    def sphere_radius(self) -> float | None:
        """Radius of the background sphere cameras must stay inside, if there is one."""
        from aware3d.nn.background import SphericalBackground

        for owner in (self.generator, getattr(self.generator, "renderer", None)):
            background = getattr(owner, "background", None)
            if isinstance(background, SphericalBackground):
                return float(background.radius)
        return None

    # ------------------------------------------------------------------ inputs

    def latent(self, settings: ViewSettings) -> Tensor:
        """The latent of ``settings`` (its ``latent``, or its seed's)."""
        from aware3d.viewer.model import seed_latent

        if settings.latent is not None:
            return settings.latent.to(device=self.model.device, dtype=self.model.dtype)
        if settings.seed not in self._latents:
            if len(self._latents) > 64:
                self._latents.clear()
            self._latents[settings.seed] = seed_latent(self.model, settings.seed)
        return self._latents[settings.seed]

    def resolution(self, settings: ViewSettings) -> int:
        """The image size of a frame (a volume generator renders its own size only)."""
        return self.model.resolution if self.model.fixed_resolution else settings.resolution

    def cameras(self, settings: ViewSettings) -> Cameras:
        """``Cameras [1, 1]`` of the settings."""
        dtype, device = self.model.dtype, self.model.device
        intrinsics = intrinsics_from_fov(settings.fov, dtype=torch.float64)
        pose = torch.as_tensor(settings.cam2world, dtype=torch.float64)
        return Cameras(pose[None, None].to(device, dtype), intrinsics[None, None].to(device, dtype))

    def label(self, settings: ViewSettings, cameras: Cameras) -> Tensor | None:
        """The conditioning label ``[1, 25]`` (``None``: the generator's default, the view)."""
        if settings.conditioning == "view":
            return None
        return frontal_label().to(device=self.model.device, dtype=self.model.dtype)

    # ------------------------------------------------------------------ rendering

    @torch.no_grad()
    def render(self, settings: ViewSettings) -> np.ndarray:
        """The frame ``[H, W, 3]`` uint8 of ``settings``."""
        if settings.view not in self.views:
            raise ValueError(f"this generator shows {self.views}, not {settings.view!r}")
        if settings.levels not in LEVEL_MODES:
            raise ValueError(f"`levels` must be one of {LEVEL_MODES}, got {settings.levels!r}")
        if not 0 < settings.shrink <= 1:
            raise ValueError(f"`shrink` must lie in (0, 1], got {settings.shrink}")
        cameras = self.cameras(settings)
        z = self.latent(settings)
        c = self.label(settings, cameras)
        size = self.resolution(settings)
        if self.model.family == "gaussians":
            return self._gaussians(settings, z, cameras, c, size)
        if self.model.family == "volume":
            return self._volume(settings, z, cameras, c, size)
        return self._other(settings, z, cameras, c, size)

    def _other(
        self, s: ViewSettings, z: Tensor, cameras: Cameras, c: Tensor | None, size: int
    ) -> np.ndarray:
        out = self.generator(z, cameras, size, size, c=c, psi=s.psi)
        if s.view == "composite":
            return to_uint8(out.images[0, 0])
        composite = getattr(out, "composite", None)
        if composite is None:
            raise ValueError(f"{type(self.generator).__name__} has no opacity or depth to show")
        return _opacity_or_depth(s.view, composite.opacity[0, 0], composite.depth[0, 0], size)

    def _volume(
        self, s: ViewSettings, z: Tensor, cameras: Cameras, c: Tensor | None, size: int
    ) -> np.ndarray:
        out = self.generator(
            z, cameras, size, size, c=c, psi=s.psi, neural_resolution=s.neural_resolution
        )
        render = out.render
        if s.view == "composite":
            return to_uint8(out.images[0, 0])
        if s.view in ("opacity", "depth"):
            return _opacity_or_depth(s.view, render.opacity[0, 0], render.depth[0, 0], size)
        if s.view == "raw":
            picture = out.images_raw[0, 0]
        elif s.view == "background":
            if render.background is None:  # EG3D: black
                picture = -torch.ones_like(out.images_raw[0, 0])
            else:
                picture = render.background[0, 0, ..., :3] * 2 - 1
        else:  # foreground over black: sum_i w_i f_i
            foreground = render.image
            if render.background is not None:
                foreground = foreground - render.bg_transmittance * render.background
            picture = foreground[0, 0, ..., :3] * 2 - 1
        return to_uint8(_resize(picture, size))

    def _selected(self, s: ViewSettings, gaussians: Any) -> Any:
        if s.levels != "all" and gaussians.levels is not None:
            level = min(max(int(s.level), 0), self.num_levels - 1)
            wanted = list(range(level + 1)) if s.levels == "up to" else [level]
            gaussians = gaussians.select(levels=wanted)
        return gaussians.scaled(s.shrink) if s.shrink != 1 else gaussians

    def _gaussians(
        self, s: ViewSettings, z: Tensor, cameras: Cameras, c: Tensor | None, size: int
    ) -> np.ndarray:
        from aware3d.functional.splat import rasterize
        from aware3d.gaussians import Gaussians
        from aware3d.nn.background_gaussians import GaussianBackground

        gen = self.generator
        out = gen(z, cameras, size, size, c=c, psi=s.psi)
        whole = s.levels == "all" and s.shrink == 1
        if whole and s.view == "composite":
            return to_uint8(out.images[0, 0])
        if (
            whole
            and s.view in ("opacity", "depth")
            and not isinstance(gen.background, GaussianBackground)
        ):
            return _opacity_or_depth(s.view, out.splat.alpha[0, 0], out.splat.depth[0, 0], size)
        render_cameras = getattr(gen, "rasterized_cameras", lambda cams: cams)(cameras)
        foreground = self._selected(s, out.gaussians)
        splat = rasterize(foreground, render_cameras, size, size)
        if s.view in ("opacity", "depth"):
            return _opacity_or_depth(s.view, splat.alpha[0, 0], splat.depth[0, 0], size)
        black = gen.colour_range[0]
        if s.view == "foreground":
            colours = splat.features + (1 - splat.alpha) * black
            return to_uint8(gen.colours_to_image(colours)[0, 0])
        ws = out.ws[:, -1]
        if isinstance(gen.background, GaussianBackground):
            raw = gen.background(ws)
            behind = Gaussians._trusted(
                raw.means,
                raw.quats,
                raw.scales,
                raw.opacities,
                gen.decoder.activate_colours(raw.features),
                raw.levels,
            )
            scene = (
                behind
                if s.view == "background"
                else Gaussians.cat([foreground.without_levels(), behind])
            )
            both = rasterize(scene, render_cameras, size, size)
            colours = both.features + (1 - both.alpha) * black
        else:
            background = gen.background.render(render_cameras, size, size, ws)
            if s.view == "background":
                colours = background
            else:
                colours = splat.features + (1 - splat.alpha) * background
        return to_uint8(gen.colours_to_image(colours)[0, 0])

    def gaussians(self, settings: ViewSettings) -> Any:
        """The foreground Gaussians of the settings (selected levels, shrunken), one scene.

        For client-side splats; ``None`` for a generator without Gaussians. Colours are mapped
        to [0, 1] (the generator's black to white) and clamped.
        """
        if self.model.family != "gaussians":
            return None
        from aware3d.gaussians import Gaussians

        cameras = self.cameras(settings)
        with torch.no_grad():
            out = self.generator(
                self.latent(settings),
                cameras,
                16,
                16,
                c=self.label(settings, cameras),
                psi=settings.psi,
            )
        g = self._selected(settings, out.gaussians)
        low, high = self.generator.colour_range
        rgb = ((g.features - low) / (high - low)).clamp(0, 1)
        return Gaussians(g.means, g.quats, g.scales, g.opacities, rgb, g.levels)


def _resize(picture: Tensor, size: int) -> Tensor:
    """``[h, w, F]`` to ``[size, size, F]`` (nearest)."""
    if picture.shape[0] == size and picture.shape[1] == size:
        return picture
    moved = picture.permute(2, 0, 1)[None]
    return F.interpolate(moved, size=(size, size), mode="nearest")[0].permute(1, 2, 0)


def _opacity_or_depth(view: str, opacity: Tensor, depth: Tensor, size: int) -> np.ndarray:
    """``[h, w, 1]`` opacity and depth as the grey frame of ``view``, ``[size, size, 3]``."""
    opacity, depth = _resize(opacity, size), _resize(depth, size)
    if view == "opacity":
        grey = (opacity.clamp(0, 1) * 255).round().to(torch.uint8).cpu()
        return grey.expand(size, size, 3).numpy().copy()
    return depth_to_grey(depth[None, ..., 0], opacity[None, ..., 0])[0]


def measure_fps(
    renderer: ViewRenderer, settings: ViewSettings, frames: int = 20, warmup: int = 2
) -> dict[str, float]:
    """Frames per second of :meth:`ViewRenderer.render` along a camera swing.

    The camera moves every frame (yaw from -30 to 30 degrees), so nothing is reused between
    frames; ``warmup`` frames are rendered first and not timed.

    Returns:
        ``{"fps", "median_ms", "mean_ms", "frames", "resolution", "threads", "cpu_ms"}``;
        ``cpu_ms`` is the process's CPU time per frame (all threads), which other jobs on a busy
        machine do not inflate: a frame takes between ``cpu_ms / threads`` and ``cpu_ms`` of
        wall time on an idle machine.
    """
    import statistics

    if frames < 1 or warmup < 0:
        raise ValueError(f"`frames` must be >= 1 and `warmup` >= 0, got {frames} and {warmup}")
    _, pitch, radius = yaw_pitch_of(settings.cam2world)
    for _ in range(warmup):
        renderer.render(settings)
    times, frame, cpu = [], None, 0.0
    for i in range(frames):
        yaw = -30 + 60 * i / max(frames - 1, 1)
        frame_settings = settings.replace(cam2world=eg3d_pose(yaw, pitch, radius))
        start, cpu_start = time.perf_counter(), time.process_time()
        frame = renderer.render(frame_settings)
        times.append(time.perf_counter() - start)
        cpu += time.process_time() - cpu_start
    assert frame is not None
    mean = sum(times) / len(times)
    return {
        "fps": 1 / mean,
        "median_ms": 1000 * statistics.median(times),
        "mean_ms": 1000 * mean,
        "frames": float(frames),
        "resolution": float(frame.shape[0]),
        "threads": float(torch.get_num_threads()),
        "cpu_ms": 1000 * cpu / frames,
    }
