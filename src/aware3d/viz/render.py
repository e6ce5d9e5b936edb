"""What ``aware3d render`` writes for a trained generator: grid, turntable, depth and a PLY.

:func:`render_outputs` works for any :class:`~aware3d.models.GeneratorProtocol` (the library's
:class:`~aware3d.models.DemoGenerator`, :class:`~aware3d.models.GSGANGenerator`,
:class:`~aware3d.models.BallGANGenerator`, and a user's own):

* ``grid.png``: ``count`` samples, sample ``i`` seen from the camera of ``labels[i % N]``;
* ``turntable.gif``: the first four latents side by side, orbiting
  (:func:`~aware3d.viz.save_turntable`, the field of view of ``labels[0]``);
* ``depth.png`` (outputs with a ``composite`` holding depth and opacity): the first
  ``min(count, 8)`` samples (top row) above their composited depth (bottom row, grey; see
  :func:`depth_to_grey` for the normalisation);
* ``sample.ply`` (generators with ``export_ply``, :class:`~aware3d.models.SupportsPLYExport`):
  the first latent's 3D content. Gaussian generators: its foreground Gaussians in the standard
  3D Gaussian Splatting layout, colours mapped from the images' [-1, 1] to [0, 1]. BallGAN: a
  coloured point cloud of its tri-plane foreground
  (:func:`~aware3d.models.triplane_point_cloud`).

The generator is rendered in eval mode (its mode is restored afterwards), so BallGAN renders
without ray jitter and with the tri-plane synthesis's constant noise, as EG3D renders its
figures; the Gaussian generators draw no random numbers.
"""

import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from aware3d._io import check_writable_folder
from aware3d._validation import check_positive_int
from aware3d.cameras import Cameras, fov_from_intrinsics
from aware3d.models.protocol import SupportsPLYExport, check_generator
from aware3d.viz.figures import grid, save_turntable, to_uint8

__all__ = [
    "DEPTH_SAMPLES",
    "TURNTABLE_SAMPLES",
    "depth_to_grey",
    "render_outputs",
]

#: Samples shown in ``depth.png`` (at most).
DEPTH_SAMPLES = 8
#: Latents in the turntable (at most).
TURNTABLE_SAMPLES = 4
#: Foreground opacity above which a pixel takes part in the depth normalisation.
DEPTH_OPACITY_THRESHOLD = 0.5
#: Grey level (of 255) of the farthest foreground depth; the background is 0 (black).
DEPTH_FAR_GREY = 48
#: Views rendered per forward pass (samples of the grid, or scenes x frames of the turntable);
#: at least :data:`DEPTH_SAMPLES`, so that the first pass holds the depth maps' samples.
_CHUNK = DEPTH_SAMPLES
#: The files written, by the keys of :func:`render_outputs`' result.
_FILES = {"grid": "grid.png", "turntable": "turntable.gif", "depth": "depth.png",
          "ply": "sample.ply"}  # fmt: skip


class _Images(NamedTuple):
    """What the turntable needs of a render: ``images [B, C, H, W, 3]``."""

    images: Tensor


class _TurntableRenderer:
    """``(z, cameras, width, height) -> .images``, a few orbit frames per pass (bounded memory).

    Each pass renders at most :data:`_CHUNK` views (``len(z)`` scenes times its frames, at least
    one frame). Every frame is conditioned on the orbit's first camera, as a single pass over all
    the frames would be, so the scene does not change along the orbit.
    """

    def __init__(self, generator: Any) -> None:
        self.generator = generator

    def __call__(self, z: Tensor, cameras: Cameras, width: int, height: int) -> _Images:
        labels = cameras.to_eg3d_labels()[:, 0]
        step = max(1, _CHUNK // len(z))
        frames = [
            self.generator(z, cameras[:, t : t + step], width, height, c=labels).images
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

    Latents are ``torch.randn(count, generator.latent_dim)`` from
    ``torch.Generator().manual_seed(seed)`` (drawn on the CPU, so the same on every device).
    Sample ``i`` is seen from (and conditioned on) the camera of ``labels[i % N]``. Runs under
    ``torch.no_grad()`` in eval mode on the generator's device and changes no global state (the
    generator's mode is restored).

    Files (created in ``out``, which is made if missing):

    * ``grid.png``: the ``count`` samples, ``floor(sqrt(count))`` columns, white padding;
    * ``turntable.gif``: the first ``min(count, 4)`` latents side by side, ``turntable_frames``
      frames of :func:`~aware3d.cameras.orbit`'s swing, with the field of view of ``labels[0]``
      (:func:`~aware3d.viz.save_turntable`: twice the resolution);
    * ``depth.png`` (when the output has a ``composite`` with depth): the first ``min(count, 8)``
      samples in the top row, their composited depth in grey below (:func:`depth_to_grey`:
      normalised per image over its foreground, near white, background black);
    * ``sample.ply`` (when the generator has ``export_ply``): the first sample's 3D content
      (scene ``0`` seen from ``labels[0]``).

    PNGs are upscaled 2x (nearest) below 128 px.

    Args:
        generator: a :class:`~aware3d.models.GeneratorProtocol` module.
        out: the output folder.
        labels: EG3D camera labels ``[N, 25]``.
        resolution: image size (BallGAN: its super-resolution's output resolution).
        count: samples in the grid.
        seed: seed of the latents.
        turntable_frames: frames of the turntable.

    Returns:
        ``{"grid", "turntable", "depth", "ply"}`` -> the path written (``depth`` and ``ply``
        when the generator supports them).

    Raises:
        ValueError: for ``count``, ``resolution`` or ``turntable_frames`` not an integer >= 1,
            ``labels`` not a floating-point ``[N, 25]`` tensor of valid cameras, a non-integer
            ``seed``, or a ``resolution`` the generator cannot output.
        TypeError: for a generator that does not implement the protocol.
        OSError: if ``out`` or a file in it cannot be written, checked before anything is
            rendered (``NotADirectoryError`` when ``out`` or a folder above it is a file,
            ``IsADirectoryError`` when a file to write is a folder, ``PermissionError`` for a
            folder that is not writable), each naming the path.
    """
    check_positive_int("count", count)
    check_positive_int("resolution", resolution)
    check_positive_int("turntable_frames", turntable_frames)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"`seed` must be an integer, got {seed!r}")
    labels = _check_labels(labels)
    gen = check_generator(generator)
    parameter = next(generator.parameters())
    device, dtype = parameter.device, parameter.dtype
    labels = labels.detach().to(device=device, dtype=dtype)
    Cameras.from_eg3d_labels(labels)  # refuses invalid cameras before anything is written
    names = [
        name for key, name in _FILES.items() if key != "ply" or isinstance(gen, SupportsPLYExport)
    ]
    check_writable_folder(out, names)
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            return _render(gen, Path(out), labels, resolution, count, seed, turntable_frames,
                           device, dtype)  # fmt: skip
    finally:
        generator.train(was_training)


def _render(
    generator: Any,
    out: Path,
    labels: Tensor,
    resolution: int,
    count: int,
    seed: int,
    turntable_frames: int,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, Path]:
    scale = _scale(resolution)
    written: dict[str, Path] = {}
    z = torch.randn(count, generator.latent_dim, generator=torch.Generator().manual_seed(seed)).to(
        device=device, dtype=dtype
    )
    sample_labels = labels[torch.arange(count, device=device) % len(labels)]

    images, first = [], None
    for start in range(0, count, _CHUNK):
        part = slice(start, start + _CHUNK)
        cameras = Cameras.from_eg3d_labels(sample_labels[part, None])
        output = generator(z[part], cameras, resolution, resolution)
        images.append(output.images[:, 0])
        if first is None:
            first = output
    assert first is not None
    out.mkdir(parents=True, exist_ok=True)
    pictures = to_uint8(torch.cat(images))
    columns = max(1, math.isqrt(count))
    written["grid"] = _save_png(grid(pictures, columns), scale, out / _FILES["grid"])

    fov = float(fov_from_intrinsics(labels[0, 16:].reshape(3, 3)))
    turntable = out / _FILES["turntable"]
    save_turntable(
        _TurntableRenderer(generator), z[:TURNTABLE_SAMPLES], fov, resolution, turntable,
        frames=turntable_frames,
    )  # fmt: skip
    written["turntable"] = turntable

    composite = getattr(first, "composite", None)
    if composite is not None and getattr(composite, "depth", None) is not None:
        shown = min(count, DEPTH_SAMPLES)
        depth = composite.depth[:shown, 0, ..., 0]
        opacity = composite.opacity[:shown, 0, ..., 0]
        if depth.shape[-1] != resolution:  # BallGAN: depth at the neural resolution
            size = (resolution, resolution)
            depth = F.interpolate(depth[:, None], size=size, mode="nearest")[:, 0]
            opacity = F.interpolate(opacity[:, None], size=size, mode="nearest")[:, 0]
        rows = np.concatenate([pictures[:shown], depth_to_grey(depth, opacity)])
        written["depth"] = _save_png(grid(rows, shown), scale, out / _FILES["depth"])

    if isinstance(generator, SupportsPLYExport):
        written["ply"] = generator.export_ply(first, out / _FILES["ply"])
    return written
