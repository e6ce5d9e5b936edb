"""``aware3d data check``: every problem of an EG3D dataset, its camera statistics and a figure.

Unlike :class:`~aware3d.data.EG3DDataset`, which stops at the first error, :func:`check_dataset`
reads everything and lists every problem by file name: unreadable or undecodable images, images
of another size, duplicate and missing names, labels that are not 25 finite numbers, not rigid,
with intrinsics in pixels, or with a camera outside the background sphere. It also measures the
cameras (radius, look-at, focal length, EG3D's horizontal and vertical angles) and recommends the
pose-sampler parameters a training recipe should use for the data.
"""

import io
import math
import os
import posixpath
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from aware3d._io import atomic_write_bytes
from aware3d.cameras import Cameras
from aware3d.data.eg3d import (
    _MAX_FOCAL,
    _PRINCIPAL_POINT_RANGE,
    IMAGE_EXTENSIONS,
    MAX_IMAGE_PIXELS,
    _check_entry_name,
    _ImageError,
    _is_finite_number,
    _mode_kind,
    _opened_image,
    _parse_json,
    _Source,
)
from aware3d.data.normalize import BACKGROUND_RADIUS, estimate_lookat

__all__ = ["DatasetReport", "Problem", "check_dataset", "plot_dataset_report"]

_PathLike = str | os.PathLike[str]
_RIGID_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Problem:
    """One finding of :func:`check_dataset`.

    Attributes:
        severity: ``"error"`` (training would fail or learn wrong poses) or ``"warning"``.
        file: the image (as ``dataset.json`` names it) or file concerned, or ``None``.
        message: what is wrong and what to do.
    """

    severity: Literal["error", "warning"]
    file: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{self.severity}: {where}{self.message}"


@dataclass
class DatasetReport:
    """What :func:`check_dataset` found.

    Attributes:
        path: the dataset checked.
        entries: the number of entries in ``dataset.json``.
        sizes: ``"WxH"`` -> number of images of that size.
        modes: Pillow mode -> number of images (``"RGB"``, ``"L"``, ``"RGBA"``...).
        problems: every error and warning, in the order found.
        labels: ``[M, 25]`` float64, the valid labels (those of entries without label errors).
        label_names: the image of each valid label.
        stats: the spread of radius, look-at, focal length and angles (see :meth:`format`).
        sampler: recommended pose-sampler parameters (EG3D's angle convention, radians).
    """

    path: str
    entries: int = 0
    sizes: dict[str, int] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 25)))
    label_names: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    sampler: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        """The problems of severity ``"error"``."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """The problems of severity ``"warning"``."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """Whether no error was found."""
        return not self.errors

    def error(self, file: str | None, message: str) -> None:
        """Records an error about ``file``."""
        self.problems.append(Problem("error", file, message))

    def warn(self, file: str | None, message: str) -> None:
        """Records a warning about ``file``."""
        self.problems.append(Problem("warning", file, message))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (without the labels)."""
        return {
            "path": self.path,
            "entries": self.entries,
            "sizes": self.sizes,
            "modes": self.modes,
            "errors": [{"file": p.file, "message": p.message} for p in self.errors],
            "warnings": [{"file": p.file, "message": p.message} for p in self.warnings],
            "stats": self.stats,
            "sampler": self.sampler,
        }

    def format(self) -> str:
        """The report as text: counts, every problem, statistics and the recommended sampler."""
        lines = [f"dataset: {self.path}", f"entries: {self.entries}"]
        lines.append("sizes: " + (", ".join(f"{k} x{v}" for k, v in self.sizes.items()) or "-"))
        lines.append("modes: " + (", ".join(f"{k} x{v}" for k, v in self.modes.items()) or "-"))
        for key, value in self.stats.items():
            if isinstance(value, dict):
                parts = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
                lines.append(f"{key}: {parts}")
            else:
                lines.append(f"{key}: {_fmt(value)}")
        if self.sampler:
            lines.append("recommended pose sampler (EG3D angles in radians; `aware3d train` "
                         "options):")  # fmt: skip
            for key in ("fake_horizontal_mean", "fake_horizontal_stddev", "fake_vertical_mean",
                        "fake_vertical_stddev", "fake_radius", "fake_lookat"):  # fmt: skip
                value = self.sampler[key]
                text = (
                    ",".join(f"{v:.4g}" for v in value)
                    if isinstance(value, list)
                    else (f"{value:.4g}")
                )
                lines.append(f"  --set {key}={text}")
            lines.append(f"  (vertical as a uniform spread: half-width "
                         f"{self.sampler['vertical_uniform_halfwidth']:.4g}; focal "
                         f"{self.sampler['focal']:.4g}, a {self.sampler['fov_degrees']:.4g} "
                         "degree field of view)")  # fmt: skip
        lines.append(f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")
        lines.extend(f"  {problem}" for problem in self.problems)
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _label_problem(label: np.ndarray) -> str | None:
    """Why an EG3D label (25 finite numbers) is not a camera, or ``None``."""
    pose, k = label[:16].reshape(4, 4), label[16:].reshape(3, 3)
    rotation = pose[:3, :3]
    error = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
    det = float(np.linalg.det(rotation))
    if error > _RIGID_TOLERANCE or det <= 0:
        return (
            f"the pose is not rigid (max |R^T R - I| = {error:.3g}, det = {det:.4g}); "
            "cam2world must be a rotation and a translation"
        )
    if np.abs(pose[3] - [0, 0, 0, 1]).max() > _RIGID_TOLERANCE:
        return f"the pose's bottom row is {pose[3].tolist()}, not [0, 0, 0, 1]"
    if k[0, 1] or k[1, 0] or k[2, 0] or k[2, 1] or k[2, 2] != 1:
        return "the intrinsics are not [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]"
    if not (k[0, 0] > 0 and k[1, 1] > 0):
        return f"the focal lengths must be positive, got fx={k[0, 0]:.4g}, fy={k[1, 1]:.4g}"
    low, high = _PRINCIPAL_POINT_RANGE
    if (
        not (low <= k[0, 2] <= high and low <= k[1, 2] <= high)
        or max(k[0, 0], k[1, 1]) > _MAX_FOCAL
    ):
        return (
            f"the intrinsics look like pixels (fx={k[0, 0]:.6g}, cx={k[0, 2]:.6g}), not divided "
            "by the image size: divide fx and cx by the width, fy and cy by the height"
        )
    return None


def _angles(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EG3D's horizontal and vertical angles of camera centres (about the origin), radians.

    The inverse of EG3D's ``LookAtPoseSampler`` placement: ``h = pi - atan2(z, x)`` (pi/2 for
    a camera on +z, the frontal view) and ``v = pi (1 - y / r) / 2`` (pi/2 when level).
    """
    r = np.linalg.norm(centres, axis=1)
    r = np.where(r > 0, r, 1.0)
    horizontal = math.pi - np.arctan2(centres[:, 2], centres[:, 0])
    vertical = math.pi * (1 - np.clip(centres[:, 1] / r, -1, 1)) / 2
    return horizontal, vertical


def _spread(values: np.ndarray) -> dict[str, float]:
    return {
        "min": float(values.min()),
        "median": float(np.median(values)),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "std": float(values.std()),
    }


def _camera_stats(report: DatasetReport, background_radius: float) -> None:
    labels = report.labels
    if len(labels) == 0:
        return
    poses = labels[:, :16].reshape(-1, 4, 4)
    centres, forward = poses[:, :3, 3], poses[:, :3, 2]
    radius = np.linalg.norm(centres, axis=1)
    for index in np.flatnonzero(radius >= background_radius):
        report.error(
            report.label_names[index],
            f"the camera is {radius[index]:.4g} from the origin, on or outside the background "
            f"sphere of radius {background_radius:g}; normalise the scene to a smaller radius",
        )
    focal = labels[:, 16]
    horizontal, vertical = _angles(centres)
    mean_h = float(np.angle(np.exp(1j * horizontal).mean()))
    mean_h = mean_h % (2 * math.pi)
    horizontal = (horizontal - mean_h + math.pi) % (2 * math.pi) - math.pi + mean_h
    report.stats["radius"] = _spread(radius)
    report.stats["focal (fx/W)"] = _spread(focal)
    report.stats["horizontal angle"] = _spread(horizontal)
    report.stats["vertical angle"] = _spread(vertical)
    lookat = [0.0, 0.0, 0.0]
    if len(labels) >= 2:
        try:
            cameras = Cameras._trusted(
                torch.from_numpy(poses), torch.from_numpy(labels[:, 16:].reshape(-1, 3, 3))
            )
            lookat = estimate_lookat(cameras).tolist()
        except ValueError as error:
            report.warn(None, f"no common look-at point: {str(error).split(': ', 1)[-1]}")
        else:
            offset = np.asarray(lookat) - centres
            along = (offset * forward).sum(1, keepdims=True)
            miss = np.linalg.norm(offset - along * forward, axis=1)
            report.stats["look-at"] = {"point": [round(v, 6) for v in lookat],
                                       "axis miss median": float(np.median(miss)),
                                       "axis miss max": float(miss.max())}  # fmt: skip
    std_v = float(vertical.std())
    fx = float(np.median(focal))
    report.sampler = {
        "fake_horizontal_mean": float(np.mean(horizontal)),
        "fake_horizontal_stddev": float(horizontal.std()),
        "fake_vertical_mean": float(vertical.mean()),
        "fake_vertical_stddev": std_v,
        "vertical_uniform_halfwidth": math.sqrt(3) * std_v,
        "fake_radius": float(np.median(radius)),
        "fake_lookat": [float(v) for v in lookat],
        "focal": fx,
        "fov_degrees": math.degrees(2 * math.atan(0.5 / fx)),
    }


def check_dataset(
    path: _PathLike,
    *,
    background_radius: float = BACKGROUND_RADIUS,
    decode: bool = True,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
) -> DatasetReport:
    """Checks an EG3D dataset (folder or zip) completely and measures its cameras.

    Args:
        path: the dataset folder or ``.zip``.
        background_radius: cameras at or beyond this distance from the origin are errors
            (BallGAN's background sphere, 3).
        decode: decode every image completely (finds truncated files); ``False`` reads the
            headers only (faster).
        max_image_pixels: images with more pixels are errors.

    Returns:
        :class:`DatasetReport`; ``report.ok`` is false when it holds errors.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if ``path`` is a file but not a zip archive.
    """
    report = DatasetReport(str(path))
    source = _Source(Path(path))
    try:
        _check(report, source, background_radius, decode, max_image_pixels)
    finally:
        source.close()
    return report


def _check(report: DatasetReport, source: _Source, background_radius: float, decode: bool,
           max_pixels: int) -> None:  # fmt: skip
    if not source.exists("dataset.json"):
        report.error("dataset.json", "missing: an EG3D dataset needs dataset.json with labels")
        return
    try:
        meta = _parse_json(source.read("dataset.json", "the labels file"), "dataset.json")
    except ValueError as error:
        report.error("dataset.json", str(error))
        return
    entries = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(entries, list) or not entries:
        report.error("dataset.json", "must hold a non-empty list under 'labels'")
        return
    report.entries = len(entries)
    seen: dict[str, int] = {}
    folded: dict[str, str] = {}
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    listed: set[str] = set()
    valid: list[np.ndarray] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            report.error("dataset.json", f"entry {index}: expected [filename, [25 numbers]]")
            continue
        try:
            name = _check_entry_name(entry[0], index)
        except ValueError as error:
            report.error("dataset.json", str(error).removeprefix("dataset.json "))
            continue
        key = posixpath.normpath(name)
        if key in seen:
            report.error(name, f"listed twice (entries {seen[key]} and {index})")
            continue
        seen[key] = index
        listed.add(key)
        if key.lower() in folded:
            report.warn(name, f"differs from {folded[key.lower()]!r} only in case; the two "
                              "collide on case-insensitive file systems")  # fmt: skip
        folded.setdefault(key.lower(), name)
        label = entry[1]
        if not (isinstance(label, list) and len(label) == 25
                and all(_is_finite_number(v) for v in label)):  # fmt: skip
            bad = (
                "NaN or infinite numbers"
                if isinstance(label, list) and len(label) == 25
                else ("not 25 numbers")
            )
            report.error(name, f"the label holds {bad}")
        else:
            values = np.asarray(label, dtype=np.float64)
            problem = _label_problem(values)
            if problem is not None:
                report.error(name, problem)
            else:
                valid.append(values)
                report.label_names.append(name)
        if not source.exists(name):
            report.error(name, "the image is missing")
            continue
        try:
            data = source.read(name, f"entry {index}")
            with _opened_image(data, max_pixels) as image:
                _mode_kind(image.mode, image.format)
                if decode:
                    image.load()
                sizes[f"{image.size[0]}x{image.size[1]}"] += 1
                modes[image.mode] += 1
        except (ValueError, _ImageError) as error:
            report.error(name, f"unreadable: {error}")
    report.sizes = dict(sizes.most_common())
    report.modes = dict(modes.most_common())
    report.labels = np.stack(valid) if valid else np.zeros((0, 25))
    if len(sizes) > 1:
        common = sizes.most_common(1)[0][0]
        report.error(None, f"images of {len(sizes)} sizes ({report.sizes}); all must be "
                           f"{common} (or one size): crop and resize them")  # fmt: skip
    for size in sizes:
        width, height = (int(v) for v in size.split("x"))
        if width != height:
            report.warn(None, f"{size} images are not square; the training recipes expect square")
    for mode in modes:
        if mode not in ("RGB", "L"):
            report.warn(None, f"{modes[mode]} image(s) of mode {mode}: read as RGB (alpha dropped)")
    unlisted = sorted(_unlisted(source) - listed)
    if unlisted:
        shown = ", ".join(unlisted[:5]) + (f" and {len(unlisted) - 5} more" if len(unlisted) > 5
                                           else "")  # fmt: skip
        report.warn(None, f"{len(unlisted)} image(s) not listed in dataset.json: {shown}")
    _camera_stats(report, background_radius)


def _unlisted(source: _Source) -> set[str]:
    if source.names is not None:
        names = source.names
    else:
        names = {p.relative_to(source.path).as_posix() for p in source.path.rglob("*")
                 if p.is_file()}  # fmt: skip
    return {posixpath.normpath(n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)}


def plot_dataset_report(report: DatasetReport, path: _PathLike) -> Path:
    """Writes the report's figure (PNG): angle, radius and focal histograms, cameras in 3D.

    The 3D plot shows each camera centre with a short stroke along its viewing direction, the
    look-at point and the background sphere's equator.

    Raises:
        OSError: if ``path`` cannot be written (naming it).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 8.5), layout="constrained")
    axes = figure.subplots(2, 3)
    labels = report.labels
    if len(labels):
        poses = labels[:, :16].reshape(-1, 4, 4)
        centres, forward = poses[:, :3, 3], poses[:, :3, 2]
        horizontal, vertical = _angles(centres)
        panels = [
            (axes[0, 0], np.degrees(horizontal), "horizontal angle (degrees; 90 = frontal)"),
            (axes[0, 1], np.degrees(vertical), "vertical angle (degrees; 90 = level)"),
            (axes[1, 0], np.linalg.norm(centres, axis=1), "camera distance from the origin"),
            (axes[1, 1], labels[:, 16], "focal length fx / W"),
        ]
        for ax, values, title in panels:
            ax.hist(values, bins=min(50, max(5, len(values) // 4)), color="tab:blue")
            ax.set_title(title)
        axes[0, 2].remove()
        ax3d = figure.add_subplot(2, 3, 3, projection="3d")
        step = max(1, len(centres) // 500)
        shown, directions = centres[::step], forward[::step]
        length = 0.15 * float(np.median(np.linalg.norm(centres, axis=1)) or 1.0)
        ax3d.scatter(shown[:, 0], shown[:, 2], zs=shown[:, 1], s=4, color="tab:blue")  # pyright: ignore[reportArgumentType]
        ax3d.quiver(shown[:, 0], shown[:, 2], shown[:, 1], directions[:, 0], directions[:, 2],
                    directions[:, 1], length=length, color="tab:orange", linewidth=0.5)  # fmt: skip  # pyright: ignore[reportArgumentType]
        lookat = report.sampler.get("fake_lookat", [0.0, 0.0, 0.0])
        ax3d.scatter([lookat[0]], [lookat[2]], zs=[lookat[1]], color="red", s=30, label="look-at")  # pyright: ignore[reportArgumentType]
        ax3d.set_xlabel("x")
        ax3d.set_ylabel("z")
        ax3d.set_zlabel("y (up)")
        ax3d.set_title(f"{len(centres)} cameras (every {step})" if step > 1 else "cameras")
        ax3d.legend(loc="upper left")
    else:
        for ax in axes.flat:
            ax.set_axis_off()
    text = axes[1, 2]
    text.set_axis_off()
    summary = [f"{report.entries} entries, {len(report.errors)} errors, "
               f"{len(report.warnings)} warnings", f"sizes: {report.sizes}"]  # fmt: skip
    if report.sampler:
        s = report.sampler
        summary += [
            f"horizontal: {s['fake_horizontal_mean']:.3f} +- {s['fake_horizontal_stddev']:.3f}",
            f"vertical: {s['fake_vertical_mean']:.3f} +- {s['fake_vertical_stddev']:.3f}",
            f"radius {s['fake_radius']:.3f}, fov {s['fov_degrees']:.2f} deg",
        ]
    summary += [str(p)[:90] for p in report.problems[:12]]
    text.text(0.0, 1.0, "\n".join(summary), va="top", family="monospace", fontsize=8)
    figure.suptitle(f"aware3d data check: {report.path}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    return atomic_write_bytes(path, buffer.getvalue())
