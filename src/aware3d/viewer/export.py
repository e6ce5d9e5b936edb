"""``aware3d export``: one generated scene as files that standard 3D tools open.

What each family can write (:data:`FORMATS`; ``--format`` picks, the default is all of the
family's):

* Gaussians (GSGAN, the demo's): ``ply``, the 3D Gaussian Splatting PLY
  (:meth:`~aware3d.Gaussians.save_ply`), and ``splat``, the 32-byte-per-Gaussian format of web
  splat viewers (:meth:`~aware3d.Gaussians.save_splat`); colours clamped to the generator's black
  to white and stored as [0, 1];
* volumes (BallGAN, EG3D): ``ply`` and ``obj``, a triangle mesh of the foreground density by
  marching cubes with vertex colours (:mod:`aware3d.viz.export`), and ``npy``, the density grid
  ``[R, R, R]`` (float32, indexed ``[x, y, z]``, samples on ``linspace(-box/2, box/2, R)``);
* every generator: ``mp4`` and ``gif``, turntables of the composite, its depth and its opacity.

Files are named ``seed<S>-<what>.<ext>`` (or ``latent-<what>.<ext>`` for a latent file) in the
output folder. Everything is checked before the work starts: a file that exists is refused unless
``force`` (listing them all), a format the family cannot write is refused naming those it can. Each
file is written to a temporary file in the folder and all of them are renamed into place at the
end, so an interrupted or failed export leaves no half-written file (and no new file at all).
"""

import contextlib
import dataclasses
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aware3d.viewer.model import LoadedModel, frontal_label, load_latent, seed_latent
from aware3d.viewer.render import FFHQ_FOV

__all__ = ["FORMATS", "ExportOptions", "export_model", "export_plan"]

#: The formats each family can write.
FORMATS = {
    "gaussians": ("ply", "splat", "mp4", "gif"),
    "volume": ("ply", "obj", "npy", "mp4", "gif"),
    "other": ("mp4", "gif"),
}
#: Turntable views (composite, depth, opacity) and the file name part of each.
_VIDEO_NAMES = {
    "composite": "turntable",
    "depth": "turntable-depth",
    "opacity": "turntable-opacity",
}


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """What :func:`export_model` writes.

    Attributes:
        seed: the latent's seed (:func:`~aware3d.viewer.model.seed_latent`: the latent of
            ``aware3d render --seed S --count 1``).
        latent: a latent file (``.npy``/``.pt``) used instead of the seed.
        formats: formats to write (``None``: all of the family's).
        psi: truncation.
        mesh_resolution: samples per axis of the density grid (volumes).
        threshold: the density ``sigma`` of the mesh's surface (volumes; EG3D's shapes use 10).
        frames: frames of the turntables.
        fps: frames per second of the turntables.
        video_views: which turntables: any of ``composite``, ``depth``, ``opacity``.
        fov: horizontal field of view of the turntables in degrees (FFHQ's by default).
        force: replace files that exist.
    """

    seed: int = 0
    latent: Path | None = None
    formats: tuple[str, ...] | None = None
    psi: float = 1.0
    mesh_resolution: int = 128
    threshold: float = 10.0
    frames: int = 48
    fps: int = 24
    video_views: tuple[str, ...] = ("composite", "depth", "opacity")
    fov: float = FFHQ_FOV
    force: bool = False


def _stem(options: ExportOptions) -> str:
    return "latent" if options.latent is not None else f"seed{options.seed:04d}"


def export_plan(model: LoadedModel, out: Path, options: ExportOptions) -> dict[str, Path]:
    """The files :func:`export_model` writes, by key (``"ply"``, ``"mp4-depth"``, ...).

    Raises:
        ValueError: a format the model's family cannot write (naming those it can), or an
            unknown video view.
        FileExistsError: files that exist, without ``force`` (all of them named).
    """
    allowed = FORMATS[model.family]
    formats = allowed if options.formats is None else tuple(dict.fromkeys(options.formats))
    wrong = [name for name in formats if name not in allowed]
    if wrong:
        what = {
            "gaussians": "a Gaussian",
            "volume": "a volume (tri-plane)",
            "other": f"this ({type(model.generator).__name__})",
        }[model.family]
        raise ValueError(
            f"{what} generator cannot be exported as {', '.join(wrong)}: it writes "
            f"{', '.join(allowed)}"
        )
    bad_views = [view for view in options.video_views if view not in _VIDEO_NAMES]
    if bad_views or not options.video_views:
        raise ValueError(
            f"video views must be some of {', '.join(_VIDEO_NAMES)}, got "
            f"{', '.join(options.video_views) or 'none'}"
        )
    stem = _stem(options)
    names = {
        "ply": f"{stem}-{'gaussians' if model.family == 'gaussians' else 'mesh'}.ply",
        "splat": f"{stem}.splat",
        "obj": f"{stem}-mesh.obj",
        "npy": f"{stem}-density.npy",
    }
    plan: dict[str, Path] = {}
    for name in formats:
        if name in ("mp4", "gif"):
            for view in options.video_views:
                plan[f"{name}-{view}"] = out / f"{stem}-{_VIDEO_NAMES[view]}.{name}"
        else:
            plan[name] = out / names[name]
    existing = [str(path) for path in plan.values() if path.exists() or path.is_symlink()]
    if existing and not options.force:
        raise FileExistsError(
            f"{'these files exist' if len(existing) > 1 else 'this file exists'}: "
            f"{', '.join(existing)} (pass --force to replace them)"
        )
    folders = [str(path) for path in plan.values() if path.is_dir()]
    if folders:
        raise IsADirectoryError(f"cannot write {', '.join(folders)}: a folder is in the way")
    return plan


class _Staging:
    """Temporary files next to their destinations, renamed into place by :meth:`commit`."""

    def __init__(self) -> None:
        self.pending: list[tuple[Path, Path]] = []

    def temp_for(self, path: Path) -> Path:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial{path.suffix}")
        self.pending.append((temp, path))
        return temp

    def write(self, path: Path, data: bytes) -> None:
        temp = self.temp_for(path)
        with open(temp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def commit(self) -> None:
        while self.pending:
            temp, path = self.pending[0]
            os.replace(temp, path)
            self.pending.pop(0)

    def discard(self) -> None:
        for temp, _ in self.pending:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        self.pending.clear()


def _latent(model: LoadedModel, options: ExportOptions) -> torch.Tensor:
    if options.latent is not None:
        return load_latent(model, options.latent)
    return seed_latent(model, options.seed)


def export_model(
    model: LoadedModel,
    out: str | os.PathLike[str],
    options: ExportOptions = ExportOptions(),
    *,
    log: Any = None,
) -> dict[str, Path]:
    """Writes the exports of one latent into the folder ``out`` (created if missing).

    The scene is conditioned on EG3D's frontal camera (:func:`~aware3d.viewer.model.frontal_label`),
    as EG3D's samples are.

    Args:
        model: the generator (:func:`~aware3d.viewer.model.load_model`).
        out: the output folder.
        options: what to write.
        log: called with a line of text per step (e.g. ``print``), or ``None``.

    Returns:
        key -> the path written (see :func:`export_plan`).

    Raises:
        ValueError: see :func:`export_plan`; ``NoSurfaceError`` (a ``ValueError``) when the
            density does not reach ``threshold`` (with the density range).
        FileExistsError: existing files without ``force``.
        ImportError: a format whose optional package is missing (naming the ``export`` extra).
    """
    from aware3d._io import check_writable_folder

    out = Path(out)
    plan = export_plan(model, out, options)
    check_writable_folder(out, [path.name for path in plan.values()])
    say = log if log is not None else (lambda line: None)
    z = _latent(model, options)
    c = frontal_label().to(device=model.device, dtype=model.dtype)
    out.mkdir(parents=True, exist_ok=True)
    staging = _Staging()
    try:
        _write_3d(model, z, c, options, plan, staging, say)
        _write_videos(model, z, c, options, plan, staging, say)
        staging.commit()
    finally:
        staging.discard()
    return plan


def _first_output(model: LoadedModel, z: torch.Tensor, c: torch.Tensor, psi: float) -> Any:
    """The generator's output for ``z`` from the frontal camera (small where it can be)."""
    from aware3d.cameras import Cameras

    label = c.reshape(1, 1, 25)
    cameras = Cameras.from_eg3d_labels(label)
    size = model.resolution if model.fixed_resolution else 32
    extra = {"neural_resolution": 8} if model.family == "volume" else {}
    with torch.no_grad():
        return model.generator(z, cameras, size, size, c=c, psi=psi, **extra)


def _write_3d(
    model: LoadedModel,
    z: torch.Tensor,
    c: torch.Tensor,
    options: ExportOptions,
    plan: dict[str, Path],
    staging: _Staging,
    say: Any,
) -> None:
    wanted = [key for key in ("ply", "splat", "obj", "npy") if key in plan]
    if not wanted:
        return
    out = _first_output(model, z, c, options.psi)
    if model.family == "gaussians":
        from aware3d.gaussians import Gaussians

        generator: Any = model.generator
        low, high = (float(v) for v in generator.colour_range)
        first = out.gaussians[0]
        viewable = Gaussians(
            first.means,
            first.quats,
            first.scales,
            first.opacities,
            first.features.clamp(low, high),
            first.levels,
        )
        for key, save in (("ply", viewable.save_ply), ("splat", viewable.save_splat)):
            if key in plan:
                temp = staging.temp_for(plan[key])
                save(temp, value_range=(low, high))
                say(f"{key}: {viewable.num_gaussians} Gaussians")
        return
    from aware3d.viz import export as viz_export

    planes = out.planes[:1]
    grid = viz_export.triplane_density_grid(model.generator, planes, options.mesh_resolution)
    low, high = viz_export.density_range(grid)
    say(f"density grid {options.mesh_resolution}^3: sigma in [{low:.4g}, {high:.4g}]")
    if "npy" in plan:
        import io

        buffer = io.BytesIO()
        np.save(buffer, grid.sigma, allow_pickle=False)
        staging.write(plan["npy"], buffer.getvalue())
    if "ply" in plan or "obj" in plan:
        vertices, faces = viz_export.extract_mesh(grid, options.threshold)
        colours = viz_export.triplane_colours(model.generator, planes, vertices)
        mesh = viz_export.Mesh(vertices, faces, colours)
        say(f"mesh at sigma = {options.threshold:g}: {len(vertices)} vertices, {len(faces)} faces")
        if "ply" in plan:
            staging.write(plan["ply"], viz_export.mesh_ply_bytes(mesh))
        if "obj" in plan:
            staging.write(plan["obj"], viz_export.mesh_obj_text(mesh).encode("ascii"))


def _write_videos(
    model: LoadedModel,
    z: torch.Tensor,
    c: torch.Tensor,
    options: ExportOptions,
    plan: dict[str, Path],
    staging: _Staging,
    say: Any,
) -> None:
    kinds = [kind for kind in ("mp4", "gif") if any(key.startswith(kind) for key in plan)]
    if not kinds:
        return
    from aware3d.viz import export as viz_export

    frames = viz_export.video_frames(
        model.generator,
        z,
        resolution=model.resolution,
        fov_degrees=options.fov,
        frames=options.frames,
        views=options.video_views,
        c=c,
        psi=options.psi,
    )
    for view, pictures in frames.items():
        if "mp4" in kinds:
            path = plan[f"mp4-{view}"]
            _encode_staged(viz_export, pictures, path, staging, options.fps)
        if "gif" in kinds:
            staging.write(plan[f"gif-{view}"], viz_export.gif_bytes(pictures, fps=options.fps))
        say(f"{view} turntable: {len(pictures)} frames")


def _encode_staged(
    viz_export: Any, pictures: np.ndarray, path: Path, staging: _Staging, fps: int
) -> None:
    temp = staging.temp_for(path)
    viz_export.encode_mp4(pictures, temp, fps=fps)


def video_views(text: str) -> tuple[str, ...]:
    """``"composite,depth"`` as a tuple of views."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_formats(text: str) -> tuple[str, ...] | None:
    """``"ply,splat"`` as a tuple of formats; ``"all"`` as ``None``."""
    parts = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    if parts in ((), ("all",)):
        return None
    known = sorted({name for names in FORMATS.values() for name in names})
    unknown = [part for part in parts if part not in known]
    if unknown:
        raise ValueError(
            f"unknown format {', '.join(unknown)}: choose from {', '.join(known)}, all"
        )
    return parts
