"""Exports that standard 3D tools open: meshes of a tri-plane's density, its grid, and videos.

* :func:`triplane_density_grid`: the density ``sigma`` of one scene's tri-planes (BallGAN, EG3D)
  on a regular grid over the renderer's box, queried exactly as the renderer reads it;
* :func:`extract_mesh`: the surface where the density crosses a threshold, by marching cubes
  (PyMCubes), with each vertex coloured by the decoder's features there
  (:func:`triplane_colours`);
* :func:`mesh_ply_bytes` and :func:`mesh_obj_text`: the mesh as a binary PLY (``vertex`` with
  ``x y z red green blue``, ``face`` with ``vertex_indices``) or a Wavefront OBJ with vertex
  colours (``v x y z r g b``, the common extension MeshLab, Blender and trimesh read);
* :func:`encode_mp4`: uint8 frames as an H.264 MP4 through the ``ffmpeg`` binary of
  ``imageio-ffmpeg``, and :func:`gif_bytes` as an animated GIF;
* :func:`video_frames`: a generator's orbit as composite, depth or opacity frames.

The optional packages (``PyMCubes``, ``imageio-ffmpeg``: ``pip install 'aware3d[export]'``) are
imported only when used. Every writer here is atomic: the file appears whole or not at all.
"""

import contextlib
import io
import math
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from aware3d._io import check_writable_file
from aware3d._validation import check_positive_int
from aware3d.cameras import Cameras, intrinsics_from_fov, orbit
from aware3d.viz.figures import to_uint8

__all__ = [
    "VIDEO_VIEWS",
    "DensityGrid",
    "Mesh",
    "NoSurfaceError",
    "density_range",
    "encode_mp4",
    "extract_mesh",
    "gif_bytes",
    "mesh_obj_text",
    "mesh_ply_bytes",
    "triplane_colours",
    "triplane_density_grid",
    "video_frames",
]

#: What :func:`video_frames` can show: the images, the foreground's depth or its opacity.
VIDEO_VIEWS = ("composite", "depth", "opacity")
#: Points decoded per pass when querying a tri-plane.
_CHUNK = 1 << 16
#: Grey of the farthest foreground depth in depth frames (near is white, background black).
_FAR_GREY = 48


class NoSurfaceError(ValueError):
    """The density never crosses the marching-cubes threshold: there is no surface to extract."""


class DensityGrid(NamedTuple):
    """A density volume on a regular grid.

    Attributes:
        sigma: densities ``[R, R, R]`` float32, indexed ``[x, y, z]``.
        low: world coordinate of the first sample on every axis.
        spacing: distance between neighbouring samples.
    """

    sigma: np.ndarray
    low: float
    spacing: float

    def to_world(self, indices: np.ndarray) -> np.ndarray:
        """Grid coordinates ``[..., 3]`` (fractional indices) as world points."""
        return (self.low + indices * self.spacing).astype(np.float32)


class Mesh(NamedTuple):
    """A triangle mesh with vertex colours.

    Attributes:
        vertices: ``[V, 3]`` float32 world points.
        faces: ``[T, 3]`` int32 vertex indices, counter-clockwise seen from outside (normals
            point from dense to empty space).
        colours: ``[V, 3]`` uint8 RGB.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colours: np.ndarray


def _renderer(generator: Any) -> Any:
    renderer = getattr(generator, "renderer", None)
    if renderer is None or not hasattr(renderer, "decoder") or not hasattr(renderer, "box_size"):
        raise TypeError(
            f"{type(generator).__name__} has no tri-plane renderer (BallGAN and EG3D generators "
            "have one): it has no density to export"
        )
    return renderer


def _query(generator: Any, planes: Tensor, points: Tensor) -> tuple[Tensor, Tensor]:
    """``(sigma [P], rgb [P, 3])`` of one scene's planes at ``points [P, 3]``, as rendered."""
    from aware3d.functional.triplane import sample_triplane

    renderer = _renderer(generator)
    box = float(renderer.box_size)
    sigmas, colours = [], []
    for start in range(0, len(points), _CHUNK):
        part = points[None, start : start + _CHUNK].to(planes)
        sampled = sample_triplane(planes[:1], part, box_size=box, projection=renderer.projection)
        raw, features = renderer.decoder(sampled)
        sigmas.append(F.softplus(raw[0].reshape(-1) - renderer.density_offset))
        colours.append(features[0, :, :3])
    return torch.cat(sigmas), torch.cat(colours)


@torch.no_grad()
def triplane_density_grid(generator: Any, planes: Tensor, resolution: int = 128) -> DensityGrid:
    """The density of one scene's tri-planes on a ``resolution``-cubed grid over the box.

    Samples lie on ``linspace(-box / 2, box / 2, resolution)`` on every axis (the box's faces
    included), and the density is the renderer's own: the planes read as
    :func:`~aware3d.functional.sample_triplane` reads them (the renderer's box and plane axes),
    decoded by its decoder, ``sigma = softplus(raw - density_offset)``.

    Args:
        generator: a generator with a tri-plane ``renderer``
            (:class:`~aware3d.models.BallGANGenerator`, :class:`~aware3d.models.EG3DGenerator`).
        planes: one scene's tri-planes ``[1, 3, F, R, R]`` (a generator output's ``planes[:1]``).
        resolution: samples per axis, >= 2.

    Returns:
        :class:`DensityGrid`.
    """
    check_positive_int("resolution", resolution)
    if resolution < 2:
        raise ValueError(f"`resolution` must be at least 2, got {resolution}")
    box = float(_renderer(generator).box_size)
    axis = torch.linspace(-box / 2, box / 2, resolution, dtype=torch.float64)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    sigma, _ = _query(generator, planes, points.to(planes.dtype))
    grid = sigma.reshape(resolution, resolution, resolution).float().cpu().numpy()
    return DensityGrid(grid, -box / 2, box / (resolution - 1))


@torch.no_grad()
def triplane_colours(generator: Any, planes: Tensor, points: np.ndarray) -> np.ndarray:
    """The decoder's colour (its first three features, clamped to [0, 1]) at ``points [P, 3]``.

    Returns:
        ``[P, 3]`` uint8.
    """
    if len(points) == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    query = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)).to(planes.device)
    _, rgb = _query(generator, planes, query)
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def density_range(grid: DensityGrid) -> tuple[float, float]:
    """``(min, max)`` of the grid's finite densities."""
    finite = grid.sigma[np.isfinite(grid.sigma)]
    if finite.size == 0:
        return (math.nan, math.nan)
    return float(finite.min()), float(finite.max())


def extract_mesh(grid: DensityGrid, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The iso-surface ``sigma = threshold`` of ``grid`` by marching cubes (PyMCubes).

    Returns:
        ``(vertices [V, 3] float32 world points, faces [T, 3] int32)``; faces are wound
        counter-clockwise seen from the side of lower density, so normals point outwards.

    Raises:
        NoSurfaceError: when the density does not cross ``threshold`` anywhere (the message gives
            the grid's density range, to choose another threshold).
        ImportError: without PyMCubes (naming the ``export`` extra).
    """
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise ValueError(f"the threshold must be a finite number, got {threshold}")
    low, high = density_range(grid)
    if not (low < threshold < high):
        raise NoSurfaceError(
            f"no surface at density threshold {threshold:g}: the density on the "
            f"{grid.sigma.shape[0]}^3 grid lies in [{low:.4g}, {high:.4g}]; choose a threshold "
            "strictly inside that range"
        )
    mcubes = _import("mcubes", "PyMCubes")
    sigma = np.nan_to_num(grid.sigma.astype(np.float64), nan=0.0, posinf=high, neginf=low)
    vertices, faces = mcubes.marching_cubes(sigma, threshold)
    if len(faces) == 0:
        raise NoSurfaceError(
            f"no surface at density threshold {threshold:g} (density range [{low:.4g}, "
            f"{high:.4g}]): marching cubes found no triangle"
        )
    return grid.to_world(np.asarray(vertices)), np.asarray(faces, dtype=np.int32)


def mesh_ply_bytes(mesh: Mesh) -> bytes:
    """A binary little-endian PLY of ``mesh``.

    Per vertex ``x y z`` float and ``red green blue`` uchar; per face ``vertex_indices`` (a uchar
    count, int indices).
    """
    _check_mesh(mesh)
    vertex = np.empty(len(mesh.vertices), dtype=[("xyz", "<f4", (3,)), ("rgb", "u1", (3,))])
    vertex["xyz"], vertex["rgb"] = mesh.vertices, mesh.colours
    face = np.empty(len(mesh.faces), dtype=[("n", "u1"), ("index", "<i4", (3,))])
    face["n"], face["index"] = 3, mesh.faces
    header = "\n".join(
        [
            "ply",
            "format binary_little_endian 1.0",
            "comment written by aware3d",
            f"element vertex {len(vertex)}",
            "property float x",
            "property float y",
            "property float z",
            "property uchar red",
            "property uchar green",
            "property uchar blue",
            f"element face {len(face)}",
            "property list uchar int vertex_indices",
            "end_header",
        ]
    )
    return (header + "\n").encode("ascii") + vertex.tobytes() + face.tobytes()


def mesh_obj_text(mesh: Mesh) -> str:
    """A Wavefront OBJ of ``mesh``: ``v x y z r g b`` (colours in [0, 1]), ``f a b c`` (1-based)."""
    _check_mesh(mesh)
    lines = ["# written by aware3d: vertices with colours (v x y z r g b), triangles"]
    rgb = mesh.colours.astype(np.float64) / 255
    lines += [
        f"v {x:.6f} {y:.6f} {z:.6f} {r:.4f} {g:.4f} {b:.4f}"
        for (x, y, z), (r, g, b) in zip(mesh.vertices.tolist(), rgb.tolist(), strict=True)
    ]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.faces.tolist()]
    return "\n".join(lines) + "\n"


def _check_mesh(mesh: Mesh) -> None:
    v, f, c = mesh.vertices, mesh.faces, mesh.colours
    if v.ndim != 2 or v.shape[1] != 3 or c.shape != v.shape or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(
            f"a mesh needs vertices [V, 3], colours [V, 3] and faces [T, 3], got "
            f"{v.shape}, {c.shape} and {f.shape}"
        )
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"face indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")


def _import(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"this export needs {package}: install the export extra, e.g. "
            f"pip install 'aware3d[export]'"
        ) from error


def _upscale(frames: np.ndarray, minimum: int) -> np.ndarray:
    """Nearest-neighbour upscaling of ``[T, H, W, 3]`` by the integer that reaches ``minimum``."""
    scale = max(1, math.ceil(minimum / max(frames.shape[1], frames.shape[2])))
    if scale == 1:
        return frames
    return frames.repeat(scale, axis=1).repeat(scale, axis=2)


def _frames_array(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8 or len(array) == 0:
        raise ValueError(
            f"frames must be uint8 [T, H, W, 3] with T >= 1, got {array.dtype} {array.shape}"
        )
    return array


def encode_mp4(
    frames: np.ndarray | Sequence[np.ndarray],
    path: str | os.PathLike[str],
    *,
    fps: int = 24,
    minimum_size: int = 256,
) -> Path:
    """Writes uint8 frames ``[T, H, W, 3]`` as an H.264 MP4 (yuv420p, plays everywhere).

    Frames smaller than ``minimum_size`` are upscaled by an integer factor (nearest), and sizes
    are padded to even numbers by ffmpeg's rules (``macro_block_size`` 2). The video is encoded
    into a temporary file next to ``path`` and renamed over it when complete: an interrupted or
    failed encoding leaves ``path`` as it was and no temporary file behind.

    Raises:
        ImportError: without imageio-ffmpeg (naming the ``export`` extra).
        OSError: if ``path`` cannot be written (checked before encoding).
    """
    array = _upscale(_frames_array(frames), minimum_size)
    check_positive_int("fps", fps)
    check_writable_file(path)
    ffmpeg = _import("imageio_ffmpeg", "imageio-ffmpeg")
    target = Path(os.path.realpath(path))
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.partial.mp4")
    height, width = array.shape[1:3]
    try:
        writer = ffmpeg.write_frames(
            str(temp),
            (width, height),
            fps=fps,
            macro_block_size=2,
            quality=8,
            ffmpeg_log_level="error",
            output_params=["-movflags", "+faststart"],
        )
        writer.send(None)
        try:
            for frame in array:
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return Path(path)


def gif_bytes(
    frames: np.ndarray | Sequence[np.ndarray], *, fps: int = 12, minimum_size: int = 256
) -> bytes:
    """An animated GIF of uint8 frames ``[T, H, W, 3]`` (looping), upscaled as in MP4s."""
    array = _upscale(_frames_array(frames), minimum_size)
    check_positive_int("fps", fps)
    pictures = [Image.fromarray(frame) for frame in array]
    buffer = io.BytesIO()
    pictures[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=pictures[1:],
        duration=round(1000 / fps),
        loop=0,
    )
    return buffer.getvalue()


def _grey(values: Tensor) -> np.ndarray:
    return (values.clamp(0, 1) * 255).round().to(torch.uint8).expand(*values.shape[:-1], 3).numpy()


def depth_frames(depth: Tensor, opacity: Tensor, threshold: float = 0.5) -> np.ndarray:
    """Depth maps ``[T, H, W, 1]`` as grey frames normalised over the whole sequence.

    As :func:`~aware3d.viz.depth_to_grey`, but with one near and far for every frame (so the
    video does not flicker): over the pixels of opacity above ``threshold`` in any frame (all
    finite pixels if none), near is white, the farthest foreground dark grey, the rest black.
    """
    depth, opacity = depth.detach().cpu().double(), opacity.detach().cpu().double()
    mask = (opacity > threshold) & torch.isfinite(depth)
    if not bool(mask.any()):
        mask = torch.isfinite(depth)
    if not bool(mask.any()):
        return np.zeros((*depth.shape[:-1], 3), dtype=np.uint8)
    near, far = depth[mask].min(), depth[mask].max()
    span = float(far - near)
    t = ((far - depth) / span).clamp(0, 1) if span > 0 else torch.ones_like(depth)
    grey = torch.where(mask, (_FAR_GREY + (255 - _FAR_GREY) * t) / 255, torch.zeros_like(t))
    return _grey(grey)


def _resize(values: Tensor, size: int) -> Tensor:
    """``[N, h, w, F]`` to ``[N, size, size, F]`` (nearest), unchanged at that size already."""
    if values.shape[1] == size and values.shape[2] == size:
        return values
    moved = values.permute(0, 3, 1, 2)
    return F.interpolate(moved, size=(size, size), mode="nearest").permute(0, 2, 3, 1)


@torch.no_grad()
def video_frames(
    generator: Any,
    z: Tensor,
    *,
    resolution: int,
    fov_degrees: float,
    frames: int = 48,
    views: Sequence[str] = VIDEO_VIEWS,
    c: Tensor | None = None,
    psi: float = 1.0,
    full_turn: bool = False,
    chunk: int = 8,
) -> dict[str, np.ndarray]:
    """One scene seen along an orbit, as uint8 frames per view.

    The cameras are :func:`~aware3d.cameras.orbit`'s: EG3D's swing (``h = pi/2 + 0.6 sin``,
    ``v = pi/2 + 0.15 cos``, as ``aware3d render``'s turntable) or, with ``full_turn``, a full
    turn; every frame is conditioned on ``c`` (default: the first camera's label), so the scene
    does not change along the orbit. ``depth`` and ``opacity`` need an output with a
    ``composite`` (every generator of the library); depth frames are normalised over the whole
    sequence (:func:`depth_frames`), low-resolution maps (BallGAN's neural rendering) are
    upscaled (nearest) to ``resolution``.

    Args:
        generator: a :class:`~aware3d.models.GeneratorProtocol` module (in eval mode).
        z: one latent ``[1, latent_dim]``.
        resolution: image size.
        fov_degrees: horizontal field of view.
        frames: frames of the orbit.
        views: any of :data:`VIDEO_VIEWS`.
        c: conditioning label ``[1, 25]``.
        psi: truncation.
        full_turn: a full turn instead of EG3D's swing.
        chunk: frames rendered per forward pass.

    Returns:
        view -> ``[frames, resolution, resolution, 3]`` uint8.
    """
    check_positive_int("frames", frames)
    check_positive_int("chunk", chunk)
    unknown = [view for view in views if view not in VIDEO_VIEWS]
    if unknown or not views:
        raise ValueError(f"`views` must be a non-empty subset of {VIDEO_VIEWS}, got {list(views)}")
    swing = {} if full_turn else {"horizontal_amplitude": 0.6, "vertical_amplitude": 0.15}
    poses = orbit(frames, **swing).to(device=z.device, dtype=z.dtype)  # type: ignore[arg-type]
    intrinsics = intrinsics_from_fov(fov_degrees).to(poses).expand(frames, 3, 3)
    cameras = Cameras(poses[None], intrinsics[None])
    if c is None:
        c = cameras.to_eg3d_labels()[:, 0]
    images, depths, opacities = [], [], []
    for start in range(0, frames, chunk):
        out = generator(z, cameras[:, start : start + chunk], resolution, resolution, c=c, psi=psi)
        images.append(out.images[0].float().cpu())
        composite = getattr(out, "composite", None)
        if composite is None and ("depth" in views or "opacity" in views):
            raise ValueError(
                f"{type(generator).__name__}'s output has no `composite`: it has no depth or "
                "opacity to show (ask for the composite view only)"
            )
        if composite is not None:
            depths.append(_resize(composite.depth[0].float().cpu(), resolution))
            opacities.append(_resize(composite.opacity[0].float().cpu(), resolution))
    result: dict[str, np.ndarray] = {}
    if "composite" in views:
        result["composite"] = to_uint8(torch.cat(images))
    if "opacity" in views:
        result["opacity"] = _grey(torch.cat(opacities))
    if "depth" in views:
        result["depth"] = depth_frames(torch.cat(depths), torch.cat(opacities))
    return result
