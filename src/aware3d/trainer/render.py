"""What ``aware3d render`` writes for a trained generator: grid, turntable, depth and a PLY.

:func:`render_outputs` works for every generator the library trains (the demo's
:class:`~aware3d.demo.generator.Generator3D`, :class:`~aware3d.models.GSGANGenerator`,
:class:`~aware3d.models.BallGANGenerator`):

* ``grid.png``: ``count`` samples, sample ``i`` seen from the camera of ``labels[i % N]``;
* ``turntable.gif``: the first four latents side by side, orbiting
  (:func:`~aware3d.demo.figures.save_turntable`, the field of view of ``labels[0]``);
* ``depth.png``: the first ``min(count, 8)`` samples (top row) above their composited depth
  (bottom row, grey; see :func:`depth_to_grey` for the normalisation);
* ``sample.ply``: the first latent's 3D content. Gaussian generators: its foreground Gaussians in
  the standard 3D Gaussian Splatting layout (:meth:`~aware3d.Gaussians.save_ply`), colours mapped
  from the images' [-1, 1] to [0, 1]. BallGAN: a coloured point cloud of its tri-plane foreground
  (see :func:`triplane_point_cloud`).

Renders are deterministic for a given seed: BallGAN is rendered without ray jitter and with the
tri-plane synthesis's constant noise (``noise_mode="const"``), as EG3D renders its figures; the
Gaussian generators draw no random numbers.
"""

import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from aware3d import _ply
from aware3d._validation import check_positive_int
from aware3d.cameras import Cameras, fov_from_intrinsics
from aware3d.demo.figures import grid, save_turntable, to_uint8
from aware3d.demo.models import generate, latent_dim
from aware3d.functional.triplane import sample_triplane
from aware3d.gaussians import Gaussians
from aware3d.models import BallGANGenerator, GSGANGenerator

__all__ = [
    "DEPTH_SAMPLES",
    "POINT_GRID",
    "POINT_OPACITY_THRESHOLD",
    "POINT_TOP_K",
    "TURNTABLE_SAMPLES",
    "depth_to_grey",
    "render_outputs",
    "triplane_point_cloud",
]

#: Samples shown in ``depth.png`` (at most).
DEPTH_SAMPLES = 8
#: Latents in the turntable (at most).
TURNTABLE_SAMPLES = 4
#: Cells per side of the grid on which BallGAN's density is queried for the point cloud.
POINT_GRID = 64
#: A grid cell is foreground when its opacity ``1 - exp(-sigma * cell size)`` exceeds this.
POINT_OPACITY_THRESHOLD = 0.1
#: Points kept (the densest) when no cell passes :data:`POINT_OPACITY_THRESHOLD`.
POINT_TOP_K = 2048
#: Foreground opacity above which a pixel takes part in the depth normalisation.
DEPTH_OPACITY_THRESHOLD = 0.5
#: Grey level (of 255) of the farthest foreground depth; the background is 0 (black).
DEPTH_FAR_GREY = 48
#: Views rendered per forward pass (samples of the grid, or scenes x frames of the turntable);
#: at least :data:`DEPTH_SAMPLES`, so that the first pass holds the depth maps' samples.
_CHUNK = DEPTH_SAMPLES
#: Points decoded per pass when querying a tri-plane.
_POINT_CHUNK = 1 << 16


class _Images(NamedTuple):
    """What the turntable needs of a render: ``images [B, C, H, W, 3]``."""

    images: Tensor


def _forward(
    generator: nn.Module, z: Tensor, cameras: Cameras, resolution: int, c: Tensor | None = None
) -> Any:
    """One deterministic render of ``z [B, latent_dim]`` from ``cameras [B, C]``."""
    if isinstance(generator, BallGANGenerator):
        return generator(
            z[:, : generator.z_dim], cameras, resolution, resolution, c=c,
            z_background=z[:, generator.z_dim :], noise_mode="const", deterministic=True,
        )  # fmt: skip
    return generate(generator, z, cameras, resolution, c=c)


class _TurntableRenderer:
    """``(z, cameras, width, height) -> .images``, a few orbit frames per pass (bounded memory).

    Each pass renders at most :data:`_CHUNK` views (``len(z)`` scenes times its frames, at least
    one frame). Every frame is conditioned on the orbit's first camera, as a single pass over all
    the frames would be, so the scene does not change along the orbit.
    """

    def __init__(self, generator: nn.Module) -> None:
        self.generator = generator

    def __call__(self, z: Tensor, cameras: Cameras, width: int, height: int) -> _Images:
        del height
        labels = cameras.to_eg3d_labels()[:, 0]
        step = max(1, _CHUNK // len(z))
        frames = [
            _forward(self.generator, z, cameras[:, t : t + step], width, c=labels).images
            for t in range(0, cameras.shape[1], step)
        ]
        return _Images(torch.cat(frames, dim=1))


def depth_to_grey(depth: Tensor, opacity: Tensor) -> np.ndarray:
    """Depth maps as grey uint8 pictures, normalised per image over its foreground.

    For each image the foreground is its pixels of opacity > 0.5 (all of its pixels if it has
    none). Depth is normalised to ``t`` in [0, 1] between the foreground's nearest (``t = 1``) and
    farthest (``t = 0``) depth, then shown as the grey level ``48 + (255 - 48) t``: near is white,
    the farthest foreground dark grey, and every pixel outside the foreground (the background's
    far depth) black, so the silhouette stays visible.

    Args:
        depth: depths ``[N, H, W]``.
        opacity: foreground opacities ``[N, H, W]``.

    Returns:
        ``[N, H, W, 3]`` uint8 (three equal channels).
    """
    depth, opacity = depth.detach().cpu().double(), opacity.detach().cpu().double()
    pictures = np.zeros((*depth.shape, 3), dtype=np.uint8)
    for i, (d, a) in enumerate(zip(depth, opacity, strict=True)):
        mask = (a > DEPTH_OPACITY_THRESHOLD) & torch.isfinite(d)
        if not bool(mask.any()):
            mask = torch.isfinite(d)
        if not bool(mask.any()):
            continue
        near, far = d[mask].min(), d[mask].max()
        span = float(far - near)
        t = ((far - d) / span).clamp(0, 1) if span > 0 else torch.ones_like(d)
        grey = DEPTH_FAR_GREY + (255 - DEPTH_FAR_GREY) * t
        grey = torch.where(mask, grey.round(), torch.zeros_like(grey))
        pictures[i] = grey.to(torch.uint8).numpy()[..., None]
    return pictures


def _scale(resolution: int) -> int:
    """Nearest-neighbour upscaling of the PNGs: 2 below 128 px, else none."""
    return 2 if resolution < 128 else 1


def _save_png(picture: np.ndarray, scale: int, path: Path) -> Path:
    image = Image.fromarray(picture)
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    image.save(path, format="PNG")
    return path


def _save_gaussians(gaussians: Gaussians, path: Path) -> Path:
    """The first scene's Gaussians as a 3DGS PLY, colours mapped from [-1, 1] to [0, 1]."""
    first = gaussians[0]
    viewable = Gaussians(
        first.means, first.quats, first.scales, first.opacities,
        ((first.features + 1) / 2).clamp(0, 1), first.levels,
    )  # fmt: skip
    return viewable.save_ply(path)


def triplane_point_cloud(
    generator: BallGANGenerator,
    planes: Tensor,
    *,
    grid_size: int = POINT_GRID,
    threshold: float = POINT_OPACITY_THRESHOLD,
    top_k: int = POINT_TOP_K,
) -> tuple[np.ndarray, np.ndarray]:
    """The foreground of one scene's tri-planes as coloured points.

    The density is queried at the centres of a ``grid_size``-cubed grid over the renderer's box
    ``[-box_size / 2, box_size / 2]^3``, exactly as the renderer reads it
    (:func:`~aware3d.functional.sample_triplane` with the renderer's box and plane axes, then its
    decoder, ``sigma = softplus(raw - density_offset)``). A cell is kept when its opacity
    ``1 - exp(-sigma * cell size)`` exceeds ``threshold``; if none does, the ``top_k`` densest
    cells are kept, so the cloud is never empty. A point's colour is its decoded features' first
    three channels (what BallGAN's raw image composites; they lie in [0, 1]) as uint8.

    Args:
        generator: the BallGAN generator whose renderer decodes the planes.
        planes: one scene's tri-planes ``[1, 3, F, R, R]``.
        grid_size: cells per side.
        threshold: opacity above which a cell is foreground.
        top_k: cells kept when none is foreground.

    Returns:
        ``(points [P, 3] float32, colours [P, 3] uint8)``, ``P >= 1``.
    """
    renderer = generator.renderer
    box = float(renderer.box_size)
    cell = box / grid_size
    axis = (torch.arange(grid_size, device=planes.device, dtype=planes.dtype) + 0.5) * cell
    axis = axis - box / 2
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    sigmas, colours = [], []
    for start in range(0, len(points), _POINT_CHUNK):
        part = points[None, start : start + _POINT_CHUNK]
        sampled = sample_triplane(planes[:1], part, box_size=box, projection=renderer.projection)
        raw, features = renderer.decoder(sampled)
        sigmas.append(F.softplus(raw[0] - renderer.density_offset))
        colours.append(features[0, :, :3])
    sigma = torch.cat(sigmas)
    opacity = -torch.expm1(-sigma * cell)
    keep = torch.nonzero(opacity > threshold)[:, 0]
    if len(keep) == 0:
        keep = torch.topk(sigma, min(top_k, len(sigma))).indices.sort().values
    rgb = (torch.cat(colours)[keep].clamp(0, 1) * 255).round().to(torch.uint8)
    return points[keep].float().cpu().numpy(), rgb.cpu().numpy()


def _save_point_cloud(points: np.ndarray, colours: np.ndarray, path: Path) -> Path:
    columns = {axis: np.ascontiguousarray(points[:, i]) for i, axis in enumerate("xyz")}
    for i, name in enumerate(("red", "green", "blue")):
        columns[name] = np.ascontiguousarray(colours[:, i])
    _ply.write_vertices(path, columns)
    return path


def _check_labels(labels: object) -> Tensor:
    if not isinstance(labels, Tensor):
        raise ValueError(f"`labels` must be a tensor [N, 25], got {type(labels).__name__}")
    if labels.ndim != 2 or labels.shape[0] < 1 or labels.shape[1] != 25:
        raise ValueError(f"`labels` must be EG3D labels [N, 25], N >= 1, got {list(labels.shape)}")
    if not labels.is_floating_point():
        raise ValueError(f"`labels` must be floating point, got {labels.dtype}")
    return labels


def render_outputs(
    generator: nn.Module,
    out: Path,
    *,
    labels: Tensor,
    resolution: int,
    count: int = 16,
    seed: int = 0,
    turntable_frames: int = 24,
) -> dict[str, Path]:
    """Writes a generator's sample grid, turntable, depth maps and 3D sample into ``out``.

    Latents are ``torch.randn(count, latent_dim(generator))`` from
    ``torch.Generator().manual_seed(seed)`` (drawn on the CPU, so the same on every device).
    Sample ``i`` is seen from (and conditioned on) the camera of ``labels[i % N]``. Runs under
    ``torch.no_grad()`` on the generator's device and changes no global state (nor the
    generator's mode).

    Files (created in ``out``, which is made if missing):

    * ``grid.png``: the ``count`` samples, ``floor(sqrt(count))`` columns, white padding;
    * ``turntable.gif``: the first ``min(count, 4)`` latents side by side, ``turntable_frames``
      frames of :func:`~aware3d.cameras.orbit`'s swing, with the field of view of ``labels[0]``
      (:func:`~aware3d.demo.figures.save_turntable`: twice the resolution);
    * ``depth.png``: the first ``min(count, 8)`` samples in the top row, their composited depth
      in grey below (:func:`depth_to_grey`: normalised per image over its foreground, near white,
      background black);
    * ``sample.ply``: the first sample's 3D content (scene ``0`` seen from ``labels[0]``).
      Gaussian generators: its foreground Gaussians as a 3DGS PLY, colours mapped from [-1, 1]
      to [0, 1]. BallGAN: a point cloud (``x y z`` float, ``red green blue`` uchar) of its
      tri-plane foreground (:func:`triplane_point_cloud`).

    PNGs are upscaled 2x (nearest) below 128 px.

    Args:
        generator: a :class:`~aware3d.models.GSGANGenerator` (or subclass, like the demo's) or a
            :class:`~aware3d.models.BallGANGenerator`.
        out: the output folder.
        labels: EG3D camera labels ``[N, 25]``.
        resolution: image size (BallGAN: its super-resolution's output resolution).
        count: samples in the grid.
        seed: seed of the latents.
        turntable_frames: frames of the turntable.

    Returns:
        ``{"grid", "turntable", "depth", "ply"}`` -> the path written.

    Raises:
        ValueError: for ``count``, ``resolution`` or ``turntable_frames`` not an integer >= 1,
            ``labels`` not a floating-point ``[N, 25]`` tensor of valid cameras, a non-integer
            ``seed``, a ``resolution`` BallGAN cannot output, or a generator of another kind.
    """
    check_positive_int("count", count)
    check_positive_int("resolution", resolution)
    check_positive_int("turntable_frames", turntable_frames)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"`seed` must be an integer, got {seed!r}")
    labels = _check_labels(labels)
    if not isinstance(generator, GSGANGenerator | BallGANGenerator):
        raise ValueError(
            "`generator` must be a GSGANGenerator (or subclass) or a BallGANGenerator, got "
            f"{type(generator).__name__}"
        )
    if isinstance(generator, BallGANGenerator):
        expected = generator.superresolution.output_resolution
        if resolution != expected:
            raise ValueError(
                f"`resolution` must be the BallGAN generator's output resolution {expected}, "
                f"got {resolution}"
            )
    parameter = next(generator.parameters())
    device, dtype = parameter.device, parameter.dtype
    labels = labels.detach().to(device=device, dtype=dtype)
    Cameras.from_eg3d_labels(labels)  # refuses invalid cameras before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scale = _scale(resolution)
    written: dict[str, Path] = {}

    with torch.no_grad():
        z = torch.randn(
            count, latent_dim(generator), generator=torch.Generator().manual_seed(seed)
        ).to(device=device, dtype=dtype)
        sample_labels = labels[torch.arange(count, device=device) % len(labels)]

        images, first = [], None
        for start in range(0, count, _CHUNK):
            part = slice(start, start + _CHUNK)
            cameras = Cameras.from_eg3d_labels(sample_labels[part, None])
            output = _forward(generator, z[part], cameras, resolution)
            images.append(output.images[:, 0])
            if first is None:
                first = output
        assert first is not None
        pictures = to_uint8(torch.cat(images))
        columns = max(1, math.isqrt(count))
        written["grid"] = _save_png(grid(pictures, columns), scale, out / "grid.png")

        fov = float(fov_from_intrinsics(labels[0, 16:].reshape(3, 3)))
        turntable = out / "turntable.gif"
        save_turntable(
            _TurntableRenderer(generator), z[:TURNTABLE_SAMPLES], fov, resolution, turntable,
            frames=turntable_frames,
        )  # fmt: skip
        written["turntable"] = turntable

        shown = min(count, DEPTH_SAMPLES)
        composite = first.composite
        assert composite.depth is not None  # every library generator renders depth
        depth, opacity = composite.depth[:shown, 0, ..., 0], composite.opacity[:shown, 0, ..., 0]
        if depth.shape[-1] != resolution:  # BallGAN: depth at the neural resolution
            size = (resolution, resolution)
            depth = F.interpolate(depth[:, None], size=size, mode="nearest")[:, 0]
            opacity = F.interpolate(opacity[:, None], size=size, mode="nearest")[:, 0]
        rows = np.concatenate([pictures[:shown], depth_to_grey(depth, opacity)])
        written["depth"] = _save_png(grid(rows, shown), scale, out / "depth.png")

        ply = out / "sample.ply"
        if isinstance(generator, BallGANGenerator):
            points, colours = triplane_point_cloud(generator, first.planes[:1])
            written["ply"] = _save_point_cloud(points, colours, ply)
        else:
            written["ply"] = _save_gaussians(first.gaussians, ply)
    return written
