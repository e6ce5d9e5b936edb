"""Camera poses from COLMAP, nerfstudio / instant-ngp / Blender and plain matrices, as ``Cameras``.

Every reader returns :class:`PosedImages`: image names, ``Cameras`` in the library's convention
(OpenCV camera-to-world, x right, y down, z forward; intrinsics divided by the image size, pixel
centres at +0.5) and the image size the intrinsics were divided by. Conversions happen here, at the
boundary, and each reader's docstring states the convention it reads.

Every entry is checked where it is read: finite numbers, a rigid pose (orthonormal rotation with
determinant +1, bottom row ``[0, 0, 0, 1]``), positive focal lengths, and a camera model without
lens distortion. An error names the file and the entry (``images.txt line 7 (image 'a.png')``,
``transforms.json frame 3 ('images/a.png')``). Nothing here needs a compiled dependency: COLMAP's
text and binary models are parsed by this module.
"""

import json
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from aware3d._validation import check_choice, value_checks
from aware3d.cameras import Cameras

__all__ = [
    "COLMAP_MODELS",
    "PosedImages",
    "cameras_from_matrices",
    "read_colmap",
    "read_matrices",
    "read_poses",
    "read_transforms",
]

_PathLike = str | os.PathLike[str]

#: COLMAP's camera models: id -> (name, number of parameters), as in COLMAP's ``models.h``.
COLMAP_MODELS: dict[int, tuple[str, int]] = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
_MODEL_IDS = {name: (model_id, count) for model_id, (name, count) in COLMAP_MODELS.items()}

#: Models that are a pinhole plus radial/tangential distortion: read when the distortion is 0
#: (or with ``distortion="ignore"``). ``(fx, fy, cx, cy)`` positions and the distortion's.
_PINHOLE_FAMILY: dict[str, tuple[tuple[int, int, int, int], slice]] = {
    "SIMPLE_PINHOLE": ((0, 0, 1, 2), slice(3, 3)),
    "PINHOLE": ((0, 1, 2, 3), slice(4, 4)),
    "SIMPLE_RADIAL": ((0, 0, 1, 2), slice(3, 4)),
    "RADIAL": ((0, 0, 1, 2), slice(3, 5)),
    "OPENCV": ((0, 1, 2, 3), slice(4, 8)),
    "FULL_OPENCV": ((0, 1, 2, 3), slice(4, 12)),
}

#: OpenGL / Blender / nerfstudio camera axes (x right, y up, z backward) to OpenCV's.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
_RIGID_TOLERANCE = 1e-4
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG")

Distortion = Literal["refuse", "ignore"]


@dataclass(frozen=True)
class PosedImages:
    """Images with their cameras, as a pose reader found them.

    Attributes:
        names: each image's path relative to ``image_root`` (POSIX separators).
        cameras: ``Cameras [N]`` (float64): OpenCV camera-to-world and intrinsics divided by
            ``sizes`` (``fx/W, fy/H, cx/W, cy/H``).
        sizes: ``(width, height)`` in pixels of each image, which the intrinsics were divided by.
        image_root: the folder the names are relative to, or ``None`` if unknown.
        entries: how an error names each entry (``"images.bin image 3 ('a.png')"``).
        source: the file or folder the poses came from.
    """

    names: list[str]
    cameras: Cameras
    sizes: list[tuple[int, int]]
    image_root: Path | None
    entries: list[str]
    source: str

    def __post_init__(self) -> None:
        count = len(self.names)
        if not (self.cameras.shape == (count,) and len(self.sizes) == len(self.entries) == count):
            raise ValueError(
                f"`names`, `cameras`, `sizes` and `entries` must describe the same images: "
                f"{count} names, cameras of shape {tuple(self.cameras.shape)}, "
                f"{len(self.sizes)} sizes, {len(self.entries)} entries"
            )

    def __len__(self) -> int:
        return len(self.names)

    def select(self, indices: Sequence[int]) -> "PosedImages":
        """The images at ``indices``, in that order."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return PosedImages(
            [self.names[i] for i in indices],
            Cameras._trusted(self.cameras.cam2world[index], self.cameras.intrinsics[index]),
            [self.sizes[i] for i in indices],
            self.image_root,
            [self.entries[i] for i in indices],
            self.source,
        )

    def with_cameras(self, cameras: Cameras) -> "PosedImages":
        """The same images with other cameras (``[N]``, e.g. after scene normalisation)."""
        return PosedImages(
            self.names, cameras, self.sizes, self.image_root, self.entries, self.source
        )

    def pixel_intrinsics(self) -> np.ndarray:
        """``[N, 3, 3]`` intrinsics in pixels of each image's own size (float64)."""
        scale = np.array([[w, h, 1.0] for w, h in self.sizes])
        return self.cameras.intrinsics.double().numpy() * scale[:, :, None]


# ---------------------------------------------------------------------- checks


def _check_matrix(matrix: np.ndarray, entry: str) -> None:
    """Refuses a camera-to-world matrix that is not finite and rigid, naming ``entry``."""
    if not np.isfinite(matrix).all():
        raise ValueError(f"{entry}: the pose holds a non-finite number (NaN or infinity)")
    rotation = matrix[:3, :3]
    error = float(np.abs(rotation.T @ rotation - np.eye(3)).max())
    det = float(np.linalg.det(rotation))
    if error > _RIGID_TOLERANCE or det <= 0:
        raise ValueError(
            f"{entry}: the pose is not rigid: its rotation must be orthonormal with determinant "
            f"+1 (max |R^T R - I| = {error:.3g}, det = {det:.6g}); a scaled, sheared or mirrored "
            "pose cannot be a camera"
        )
    if np.abs(matrix[3] - [0.0, 0.0, 0.0, 1.0]).max() > _RIGID_TOLERANCE:
        raise ValueError(f"{entry}: the pose's bottom row must be [0, 0, 0, 1], got {matrix[3]}")


def _normalised_intrinsics(
    fx: float, fy: float, cx: float, cy: float, size: tuple[int, int], entry: str
) -> np.ndarray:
    """``[3, 3]`` intrinsics divided by ``size`` from pixel values, checked."""
    values = {"fx": fx, "fy": fy, "cx": cx, "cy": cy}
    bad = [key for key, value in values.items() if not math.isfinite(value)]
    if bad:
        raise ValueError(f"{entry}: the intrinsics hold non-finite values ({', '.join(bad)})")
    if not (fx > 0 and fy > 0):
        raise ValueError(f"{entry}: the focal lengths must be positive, got fx={fx}, fy={fy}")
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"{entry}: the image size must be positive, got {width} x {height}")
    return np.array([[fx / width, 0.0, cx / width], [0.0, fy / height, cy / height], [0, 0, 1.0]])


def _to_cameras(matrices: list[np.ndarray], intrinsics: list[np.ndarray]) -> Cameras:
    if not matrices:
        return Cameras._trusted(
            torch.zeros(0, 4, 4, dtype=torch.float64), torch.zeros(0, 3, 3, dtype=torch.float64)
        )
    with value_checks(True):
        return Cameras(torch.from_numpy(np.stack(matrices)), torch.from_numpy(np.stack(intrinsics)))


def _rotation_from_quaternion(q: Sequence[float] | np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion ``(w, x, y, z)`` (COLMAP's order)."""
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _c2w_from_colmap(q: Sequence[float], t: Sequence[float], entry: str) -> np.ndarray:
    """OpenCV camera-to-world from COLMAP's world-to-camera ``(qvec, tvec)``."""
    values = np.array([*q, *t], dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{entry}: the pose holds a non-finite number (NaN or infinity)")
    norm = float(np.linalg.norm(values[:4]))
    if abs(norm - 1.0) > _RIGID_TOLERANCE:
        raise ValueError(
            f"{entry}: the rotation quaternion must have unit length, got |q| = {norm:.6g}"
        )
    rotation = _rotation_from_quaternion(values[:4] / norm)
    c2w = np.eye(4)
    c2w[:3, :3] = rotation.T
    c2w[:3, 3] = -rotation.T @ values[4:]
    return c2w


# ---------------------------------------------------------------------- COLMAP


@dataclass(frozen=True)
class _ColmapCamera:
    camera_id: int
    model: str
    width: int
    height: int
    params: tuple[float, ...]
    entry: str


def _colmap_intrinsics(camera: _ColmapCamera, distortion: Distortion) -> np.ndarray:
    family = _PINHOLE_FAMILY.get(camera.model)
    if family is None:
        raise ValueError(
            f"{camera.entry}: camera model {camera.model} is not a pinhole camera; undistort the "
            "images to PINHOLE first (`colmap image_undistorter`)"
        )
    (ifx, ify, icx, icy), dist = family
    coefficients = camera.params[dist]
    if distortion == "refuse" and any(abs(k) > 1e-12 for k in coefficients):
        raise ValueError(
            f"{camera.entry}: camera model {camera.model} has lens distortion {coefficients}; "
            "undistort the images first (`colmap image_undistorter` writes PINHOLE cameras), or "
            "pass `distortion='ignore'` (--distortion ignore) to drop it knowingly"
        )
    p = camera.params
    return _normalised_intrinsics(
        p[ifx], p[ify], p[icx], p[icy], (camera.width, camera.height), camera.entry
    )


def _data_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} cannot be read: {error}") from None
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]


def _parse_numbers(tokens: Sequence[str], kind: type, entry: str, what: str) -> list:
    try:
        return [kind(token) for token in tokens]
    except ValueError:
        raise ValueError(f"{entry}: {what} must be numbers, got {' '.join(tokens)!r}") from None


def _colmap_camera(camera_id: int, model: str, width: int, height: int, params: list[float],
                   entry: str) -> _ColmapCamera:  # fmt: skip
    if model not in _MODEL_IDS:
        raise ValueError(f"{entry}: unknown camera model {model!r}")
    expected = _MODEL_IDS[model][1]
    if len(params) != expected:
        raise ValueError(
            f"{entry}: camera model {model} has {expected} parameters, got {len(params)}"
        )
    return _ColmapCamera(camera_id, model, width, height, tuple(params), entry)


def _read_cameras_text(path: Path) -> dict[int, _ColmapCamera]:
    cameras: dict[int, _ColmapCamera] = {}
    for number, line in _data_lines(path):
        if not line or line.startswith("#"):
            continue
        entry = f"{path} line {number}"
        tokens = line.split()
        if len(tokens) < 4:
            raise ValueError(
                f"{entry}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[], got {line!r}"
            )
        camera_id, width, height = _parse_numbers(
            [tokens[0], tokens[2], tokens[3]], int, entry, "CAMERA_ID, WIDTH and HEIGHT"
        )
        params = _parse_numbers(tokens[4:], float, entry, "the parameters")
        entry = f"{entry} (camera {camera_id})"
        if camera_id in cameras:
            raise ValueError(f"{entry}: camera {camera_id} is defined twice")
        cameras[camera_id] = _colmap_camera(camera_id, tokens[1], width, height, params, entry)
    return cameras


def _read_images_text(path: Path) -> list[tuple[str, np.ndarray, int, str]]:
    """``(name, camera-to-world, camera id, entry)`` per image of ``images.txt``."""
    lines = _data_lines(path)
    images = []
    position = 0
    while position < len(lines):
        number, line = lines[position]
        position += 1
        if not line or line.startswith("#"):
            continue
        position += 1  # the POINTS2D line that follows every image line (possibly empty)
        entry = f"{path} line {number}"
        tokens = line.split()
        if len(tokens) < 10:
            raise ValueError(
                f"{entry}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, got {line!r}"
            )
        name = " ".join(tokens[9:])
        entry = f"{entry} (image {name!r})"
        values = _parse_numbers(tokens[1:8], float, entry, "QW QX QY QZ TX TY TZ")
        (camera_id,) = _parse_numbers(tokens[8:9], int, entry, "CAMERA_ID")
        images.append((name, _c2w_from_colmap(values[:4], values[4:], entry), camera_id, entry))
    return images


class _Reader:
    """Little-endian binary reads that name the file and the entry when the data run out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as error:
            raise ValueError(f"{path} cannot be read: {error}") from None
        self.offset = 0

    def read(self, fmt: str, entry: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.offset + size > len(self.data):
            raise ValueError(f"{self.path}: {entry}: the file ends early (truncated or not COLMAP)")
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += size
        return values

    def string(self, entry: str) -> str:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            raise ValueError(f"{self.path}: {entry}: the file ends inside an image name")
        raw = self.data[self.offset : end]
        self.offset = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{self.path}: {entry}: the image name is not UTF-8") from None


def _read_cameras_binary(path: Path) -> dict[int, _ColmapCamera]:
    reader = _Reader(path)
    (count,) = reader.read("Q", "the camera count")
    cameras: dict[int, _ColmapCamera] = {}
    for index in range(count):
        where = f"camera {index}"
        camera_id, model_id, width, height = reader.read("iiQQ", where)
        entry = f"{path} camera {camera_id}"
        if model_id not in COLMAP_MODELS:
            raise ValueError(f"{entry}: unknown camera model id {model_id}")
        model, params_count = COLMAP_MODELS[model_id]
        params = list(reader.read("d" * params_count, where))
        if camera_id in cameras:
            raise ValueError(f"{entry}: camera {camera_id} is defined twice")
        cameras[camera_id] = _colmap_camera(camera_id, model, width, height, params, entry)
    return cameras


def _read_images_binary(path: Path) -> list[tuple[str, np.ndarray, int, str]]:
    reader = _Reader(path)
    (count,) = reader.read("Q", "the image count")
    images = []
    for index in range(count):
        where = f"image {index}"
        image_id, *values, camera_id = reader.read("I7dI", where)
        name = reader.string(where)
        entry = f"{path} image {image_id} ({name!r})"
        (points,) = reader.read("Q", entry)
        reader.offset += 24 * points  # x, y (double) and the 3D point id (uint64) per point
        if reader.offset > len(reader.data):
            raise ValueError(f"{entry}: the file ends early (truncated or not COLMAP)")
        images.append((name, _c2w_from_colmap(values[:4], values[4:], entry), camera_id, entry))
    return images


def _colmap_files(path: Path) -> tuple[Path, Path, str]:
    """``(cameras file, images file, "binary"|"text")`` of a COLMAP model folder."""
    for folder in (path, path / "sparse" / "0", path / "sparse", path / "0"):
        if (folder / "cameras.bin").is_file() and (folder / "images.bin").is_file():
            return folder / "cameras.bin", folder / "images.bin", "binary"
        if (folder / "cameras.txt").is_file() and (folder / "images.txt").is_file():
            return folder / "cameras.txt", folder / "images.txt", "text"
    raise FileNotFoundError(
        f"{path} holds no COLMAP model: expected cameras.bin and images.bin, or cameras.txt and "
        "images.txt (also looked in sparse/0 and sparse)"
    )


def _guess_image_root(model: Path) -> Path | None:
    """COLMAP's usual layout keeps the images in ``images/`` beside ``sparse/``."""
    for folder in (model, *list(model.parents)[:3]):
        if (folder / "images").is_dir():
            return folder / "images"
    return None


def read_colmap(
    path: _PathLike, *, images: _PathLike | None = None, distortion: Distortion = "refuse"
) -> PosedImages:
    """Reads a COLMAP sparse model (``cameras`` and ``images``, binary or text).

    Convention read: COLMAP stores each image's **world-to-camera** pose as a unit quaternion
    ``(QW, QX, QY, QZ)`` and translation ``(TX, TY, TZ)`` in OpenCV camera axes (x right, y down,
    z forward), and intrinsics in pixels with the centre of the top-left pixel at ``(0.5,
    0.5)``. The reader inverts the pose (``cam2world = [[R^T, -R^T t], [0, 1]]``) and divides the
    intrinsics by the camera's width and height; nothing else changes. Like COLMAP, it reads the
    binary files when both kinds are present. ``points3D``, ``rigs`` and ``frames`` are not
    needed and not read.

    Camera models: ``SIMPLE_PINHOLE`` and ``PINHOLE`` are read as they are; the pinhole family
    with distortion (``SIMPLE_RADIAL``, ``RADIAL``, ``OPENCV``, ``FULL_OPENCV``) is read when its
    distortion coefficients are all 0, and otherwise refused (undistort the images with ``colmap
    image_undistorter``), unless ``distortion="ignore"``, which drops the coefficients (the
    labels are then only as right as the lens is close to a pinhole). Fisheye and other models
    are refused. A model that mixes camera models is refused.

    Args:
        path: the model folder (``sparse/0``), or a project folder holding ``sparse/0``.
        images: the folder the image names are relative to; default: an ``images`` folder beside
            or above the model, if there is one.
        distortion: ``"refuse"`` (default) or ``"ignore"`` lens distortion.

    Returns:
        :class:`PosedImages` in the order of the image names.

    Raises:
        FileNotFoundError: if ``path`` holds no COLMAP model.
        ValueError: naming the file and the line or entry, for unreadable or truncated files,
            unknown or mixed camera models, distortion, images naming an undefined camera,
            non-finite or non-unit quaternions, an image listed twice, or an empty model.
    """
    check_choice("distortion", distortion, ("refuse", "ignore"))
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"`path` {folder} does not exist")
    cameras_file, images_file, kind = _colmap_files(folder)
    if kind == "binary":
        cameras = _read_cameras_binary(cameras_file)
        image_records = _read_images_binary(images_file)
    else:
        cameras = _read_cameras_text(cameras_file)
        image_records = _read_images_text(images_file)
    if not image_records:
        raise ValueError(f"{images_file} lists no images")
    used = sorted({camera_id for _, _, camera_id, _ in image_records})
    models = {cameras[i].model for i in used if i in cameras}
    if len(models) > 1:
        listing = ", ".join(f"camera {i}: {cameras[i].model}" for i in used if i in cameras)
        raise ValueError(
            f"{cameras_file}: the images use mixed camera models ({listing}); undistort them to "
            "one model first (`colmap image_undistorter` writes PINHOLE cameras)"
        )
    intrinsics_of = {i: _colmap_intrinsics(cameras[i], distortion) for i in used if i in cameras}
    records = sorted(image_records, key=lambda record: record[0])
    names, matrices, intrinsics, sizes, entries = [], [], [], [], []
    for index, (name, c2w, camera_id, entry) in enumerate(records):
        if camera_id not in cameras:
            raise ValueError(f"{entry}: camera {camera_id} is not defined in {cameras_file}")
        if index and name == records[index - 1][0]:
            raise ValueError(f"{entry}: image {name!r} is listed twice")
        _check_matrix(c2w, entry)
        names.append(name)
        matrices.append(c2w)
        intrinsics.append(intrinsics_of[camera_id])
        sizes.append((cameras[camera_id].width, cameras[camera_id].height))
        entries.append(entry)
    root = Path(images) if images is not None else _guess_image_root(folder)
    return PosedImages(
        names, _to_cameras(matrices, intrinsics), sizes, root, entries, str(images_file)
    )


# ---------------------------------------------------------------------- transforms.json


def _number(data: dict, key: str, entry: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{entry}: {key!r} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{entry}: {key!r} must be finite, got {value!r}")
    return float(value)


def _resolve_image(root: Path, file_path: str, entry: str) -> str:
    """The frame's image relative to ``root``; Blender's paths lack the extension."""
    name = file_path.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    if Path(name).suffix.lower() in {s.lower() for s in _IMAGE_SUFFIXES}:
        return name
    for suffix in _IMAGE_SUFFIXES:
        if (root / (name + suffix)).is_file():
            return name + suffix
    raise ValueError(
        f"{entry}: image {file_path!r} has no extension and no {'/'.join(_IMAGE_SUFFIXES[:5])} "
        f"file of that name exists in {root}"
    )


def _header_size(path: Path, entry: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise ValueError(
            f"{entry}: image {path} is missing, and its size is needed (the poses give no 'w'/'h')"
        ) from None
    except (OSError, UnidentifiedImageError) as error:
        raise ValueError(f"{entry}: image {path} cannot be read: {error}") from None


_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
_PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE")


def read_transforms(path: _PathLike, *, distortion: Distortion = "refuse") -> PosedImages:
    """Reads a nerfstudio / instant-ngp / Blender ``transforms.json``.

    Convention read: each frame's ``transform_matrix`` is an **OpenGL camera-to-world** matrix
    (camera x right, y up, z backward; Blender's camera too). The reader converts it to OpenCV
    axes, ``cam2world_cv = cam2world_gl @ diag(1, -1, -1, 1)``, and keeps the world frame as it
    is. Intrinsics are pixels: ``fl_x``, ``fl_y``, ``cx``, ``cy`` with ``w``, ``h``, or
    ``camera_angle_x`` (the horizontal field of view in **radians**, with ``camera_angle_y``
    for the vertical one, else square pixels); ``cx`` and ``cy`` default to the image centre.
    Each key may be given once at the top level (shared) or per frame (a frame's own value
    wins). Without ``w``/``h`` the image's header gives its size. ``file_path`` is relative to
    the file's folder; a path without an extension (Blender's ``./train/r_0``) is matched to an
    image file. instant-ngp's ``scale``/``offset``/``aabb_scale`` only change how instant-ngp
    sees the scene and are ignored.

    Distortion coefficients (``k1``-``k4``, ``p1``, ``p2``) other than 0 are refused unless
    ``distortion="ignore"``; ``camera_model`` must be ``OPENCV``, ``PINHOLE`` or
    ``SIMPLE_PINHOLE`` (fisheye and equirectangular are refused), one model for all frames.

    Args:
        path: the JSON file, or a folder holding ``transforms.json``.
        distortion: ``"refuse"`` (default) or ``"ignore"`` lens distortion.

    Returns:
        :class:`PosedImages` in the file's frame order, names relative to the file's folder.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file and the frame, for invalid JSON, no frames, a frame without
            a matrix or a file path, matrices that are not 4x4 (3x4 is completed) or not rigid,
            NaN, missing intrinsics, distortion, mixed camera models, or a frame listed twice.
    """
    check_choice("distortion", distortion, ("refuse", "ignore"))
    file = Path(path)
    if file.is_dir():
        file = file / "transforms.json"
    if not file.is_file():
        raise FileNotFoundError(f"`path` {file} does not exist")
    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"{file} is not readable JSON: {error}") from None
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames:
        raise ValueError(f"{file} must hold a non-empty list under 'frames'")
    root = file.parent
    models = {}
    names, matrices, intrinsics, sizes, entries = [], [], [], [], []
    seen: dict[str, int] = {}
    for index, frame in enumerate(frames):
        entry = f"{file} frame {index}"
        if not isinstance(frame, dict):
            raise ValueError(f"{entry}: a frame must be an object, got {frame!r:.80}")
        file_path = frame.get("file_path")
        if not isinstance(file_path, str) or not file_path:
            raise ValueError(f"{entry}: 'file_path' must be a non-empty string")
        entry = f"{file} frame {index} ({file_path!r})"
        name = _resolve_image(root, file_path, entry)
        if name in seen:
            raise ValueError(f"{entry}: image {name!r} is listed twice (also frame {seen[name]})")
        seen[name] = index
        merged = {**data, **frame}
        model = str(merged.get("camera_model", "OPENCV"))
        if model not in _PINHOLE_MODELS:
            raise ValueError(
                f"{entry}: camera_model {model!r} is not a pinhole camera; undistort to a "
                "pinhole first"
            )
        models.setdefault(model, index)
        coefficients = {k: v for k in _DISTORTION_KEYS if (v := _number(merged, k, entry))}
        if coefficients and distortion == "refuse":
            raise ValueError(
                f"{entry}: lens distortion {coefficients}; undistort the images first, or pass "
                "`distortion='ignore'` (--distortion ignore) to drop it knowingly"
            )
        matrix = np.asarray(frame.get("transform_matrix"), dtype=object)
        if matrix.shape not in ((4, 4), (3, 4)):
            raise ValueError(
                f"{entry}: 'transform_matrix' must be a 4x4 (or 3x4) list of numbers, got shape "
                f"{matrix.shape}"
            )
        try:
            matrix = matrix.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{entry}: 'transform_matrix' must hold numbers only") from None
        if matrix.shape == (3, 4):
            matrix = np.vstack([matrix, [0.0, 0.0, 0.0, 1.0]])
        _check_matrix(matrix, entry)
        width, height = _number(merged, "w", entry), _number(merged, "h", entry)
        if width is None or height is None:
            width, height = _header_size(root / name, entry)
        size = (round(width), round(height))
        fx, fy = _number(merged, "fl_x", entry), _number(merged, "fl_y", entry)
        if fx is None:
            angle_x = _number(merged, "camera_angle_x", entry)
            if angle_x is None:
                raise ValueError(f"{entry}: no intrinsics: give 'fl_x' or 'camera_angle_x'")
            if not 0 < angle_x < math.pi:
                raise ValueError(
                    f"{entry}: 'camera_angle_x' is the field of view in radians, in (0, pi); "
                    f"got {angle_x}"
                )
            fx = 0.5 * size[0] / math.tan(0.5 * angle_x)
        if fy is None:
            angle_y = _number(merged, "camera_angle_y", entry)
            fy = fx if angle_y is None else 0.5 * size[1] / math.tan(0.5 * angle_y)
        cx, cy = _number(merged, "cx", entry), _number(merged, "cy", entry)
        cx = 0.5 * size[0] if cx is None else cx
        cy = 0.5 * size[1] if cy is None else cy
        names.append(name)
        matrices.append(matrix @ _GL_TO_CV)
        intrinsics.append(_normalised_intrinsics(fx, fy, cx, cy, size, entry))
        sizes.append(size)
        entries.append(entry)
    if len(models) > 1:
        listing = ", ".join(f"{model!r} from frame {index}" for model, index in models.items())
        raise ValueError(f"{file}: the frames mix camera models ({listing}); use one model")
    return PosedImages(names, _to_cameras(matrices, intrinsics), sizes, root, entries, str(file))


# ---------------------------------------------------------------------- plain matrices


def cameras_from_matrices(
    matrices: Tensor | np.ndarray | Sequence,
    intrinsics: Tensor | np.ndarray | Sequence,
    *,
    convention: Literal["opencv", "opengl"],
    kind: Literal["c2w", "w2c"],
    image_size: tuple[int, int] | None = None,
) -> Cameras:
    """``Cameras`` from plain 4x4 (or 3x4) pose matrices in a named convention.

    Conventions: ``opencv`` camera axes are x right, y down, z forward (OpenCV, COLMAP, EG3D);
    ``opengl`` axes are x right, y up, z backward (OpenGL, Blender, nerfstudio, instant-ngp).
    ``c2w`` matrices map camera to world coordinates, ``w2c`` the reverse (a view matrix). The
    result is OpenCV camera-to-world: ``w2c`` is inverted exactly for rigid poses, and
    ``opengl`` is converted by ``cam2world @ diag(1, -1, -1, 1)``.

    Args:
        matrices: ``[N, 4, 4]`` or ``[N, 3, 4]`` poses.
        intrinsics: ``[3, 3]`` (shared) or ``[N, 3, 3]``: divided by the image size
            (``fx/W``...), or in pixels when ``image_size`` is given.
        convention: ``"opencv"`` or ``"opengl"`` camera axes.
        kind: ``"c2w"`` or ``"w2c"``.
        image_size: ``(width, height)`` in pixels when ``intrinsics`` are in pixels.

    Returns:
        ``Cameras [N]`` in float64.

    Raises:
        ValueError: for bad shapes, and naming the matrix index, for a non-finite or non-rigid
            pose or intrinsics that are not ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` with
            positive focal lengths.
    """
    check_choice("convention", convention, ("opencv", "opengl"))
    check_choice("kind", kind, ("c2w", "w2c"))
    try:
        poses = np.asarray(
            matrices.detach().cpu() if isinstance(matrices, Tensor) else matrices, np.float64
        )
        ks = np.asarray(
            intrinsics.detach().cpu() if isinstance(intrinsics, Tensor) else intrinsics, np.float64
        )
    except (TypeError, ValueError) as error:
        raise TypeError(f"`matrices` and `intrinsics` must be arrays of numbers: {error}") from None
    if poses.ndim != 3 or poses.shape[1:] not in ((4, 4), (3, 4)) or len(poses) == 0:
        raise ValueError(f"`matrices` must have shape [N, 4, 4] or [N, 3, 4], got {poses.shape}")
    if poses.shape[1] == 3:
        bottom = np.broadcast_to([0.0, 0.0, 0.0, 1.0], (len(poses), 1, 4))
        poses = np.concatenate([poses, bottom], axis=1)
    if ks.shape == (3, 3):
        ks = np.broadcast_to(ks, (len(poses), 3, 3))
    if ks.shape != (len(poses), 3, 3):
        raise ValueError(
            f"`intrinsics` must have shape [3, 3] or [{len(poses)}, 3, 3], got {ks.shape}"
        )
    if image_size is not None:
        width, height = image_size
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            raise ValueError(f"`image_size` must be (width, height) in pixels, got {image_size}")
        ks = ks / np.array([width, height, 1.0])[:, None]
    out = []
    for index, pose in enumerate(poses):
        entry = f"`matrices`[{index}]"
        if kind == "w2c":
            if not np.isfinite(pose).all():
                raise ValueError(f"{entry}: the pose holds a non-finite number (NaN or infinity)")
            _check_matrix(pose, entry)
            inverse = np.eye(4)
            inverse[:3, :3] = pose[:3, :3].T
            inverse[:3, 3] = -pose[:3, :3].T @ pose[:3, 3]
            pose = inverse
        _check_matrix(pose, entry)
        out.append(pose @ _GL_TO_CV if convention == "opengl" else pose)
    try:
        return _to_cameras(out, list(ks))
    except ValueError as error:
        raise ValueError(f"`intrinsics`: {error}") from None


def read_matrices(
    path: _PathLike,
    *,
    convention: Literal["opencv", "opengl"],
    kind: Literal["c2w", "w2c"],
    images: _PathLike | None = None,
    intrinsics_unit: Literal["pixels", "normalized"] = "pixels",
) -> PosedImages:
    """Reads plain pose matrices from a ``.npz`` file with a named convention.

    The archive holds ``names`` (``[N]`` strings, image paths relative to ``images``),
    ``poses`` (``[N, 4, 4]`` or ``[N, 3, 4]``) and ``intrinsics`` (``[3, 3]`` or ``[N, 3, 3]``),
    read by :func:`cameras_from_matrices` with ``convention`` and ``kind``. Pixel intrinsics are
    divided by each image's size, read from its header.

    Args:
        path: the ``.npz`` file (read with ``allow_pickle=False``).
        convention: ``"opencv"`` or ``"opengl"`` camera axes.
        kind: ``"c2w"`` or ``"w2c"``.
        images: the image folder; default: the file's folder.
        intrinsics_unit: ``"pixels"`` (default) or ``"normalized"``.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: naming the file and the entry, for missing arrays, mismatched lengths,
            missing images (when pixel intrinsics need their size) and bad poses.
    """
    check_choice("intrinsics_unit", intrinsics_unit, ("pixels", "normalized"))
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"`path` {file} does not exist")
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{file} cannot be read as a .npz archive: {error}") from None
    missing = [key for key in ("names", "poses", "intrinsics") if key not in arrays]
    if missing:
        raise ValueError(f"{file} lacks the arrays {missing} (needs names, poses, intrinsics)")
    names = [str(name) for name in arrays["names"].reshape(-1)]
    poses, ks = arrays["poses"], arrays["intrinsics"]
    if len(poses) != len(names):
        raise ValueError(f"{file}: {len(names)} names but {len(poses)} poses")
    root = Path(images) if images is not None else file.parent
    entries = [f"{file} entry {index} ({name!r})" for index, name in enumerate(names)]
    ks = np.broadcast_to(ks, (len(names), 3, 3)) if ks.shape == (3, 3) else ks
    if ks.shape != (len(names), 3, 3):
        raise ValueError(f"{file}: intrinsics must be [3, 3] or [N, 3, 3], got {ks.shape}")
    if intrinsics_unit == "pixels":
        sizes = [
            _header_size(root / name, entry) for name, entry in zip(names, entries, strict=True)
        ]
    else:  # the size is known only where the image is already there (0 x 0: unknown)
        sizes = [_header_size(root / name, entry) if (root / name).is_file() else (0, 0)
                 for name, entry in zip(names, entries, strict=True)]  # fmt: skip
    divisor = sizes if intrinsics_unit == "pixels" else [(1, 1)] * len(names)
    scale = np.array([[w, h, 1.0] for w, h in divisor])[:, :, None]
    try:
        cameras = cameras_from_matrices(poses, ks / scale, convention=convention, kind=kind)
    except ValueError as error:
        text = str(error)
        if text.startswith("`matrices`["):
            index = int(text[len("`matrices`[") : text.index("]")])
            raise ValueError(f"{entries[index]}: {text.split(': ', 1)[1]}") from None
        raise ValueError(f"{file}: {text}") from None
    return PosedImages(names, cameras, sizes, root, entries, str(file))


def read_poses(
    path: _PathLike,
    *,
    images: _PathLike | None = None,
    distortion: Distortion = "refuse",
    convention: Literal["opencv", "opengl"] | None = None,
    kind: Literal["c2w", "w2c"] | None = None,
) -> PosedImages:
    """Reads poses of any supported source, recognised by ``path``.

    A folder with a COLMAP model (``cameras.bin``/``.txt`` and ``images.bin``/``.txt``, also in
    ``sparse/0``) -> :func:`read_colmap`; a ``.json`` file or a folder with
    ``transforms.json`` -> :func:`read_transforms`; a ``.npz`` file -> :func:`read_matrices`
    (which needs ``convention`` and ``kind``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the source is not recognised, or as the reader raises.
    """
    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"`path` {source} does not exist")
    if source.suffix.lower() == ".npz":
        if convention is None or kind is None:
            raise ValueError(
                f"{source}: plain matrices need their `convention` (opencv or opengl) and "
                "`kind` (c2w or w2c)"
            )
        return read_matrices(source, convention=convention, kind=kind, images=images)
    if source.suffix.lower() == ".json" or (source / "transforms.json").is_file():
        posed = read_transforms(source, distortion=distortion)
        if images is not None:
            posed = PosedImages(posed.names, posed.cameras, posed.sizes, Path(images),
                                posed.entries, posed.source)  # fmt: skip
        return posed
    if source.is_dir():
        return read_colmap(source, images=images, distortion=distortion)
    raise ValueError(
        f"`path` {source} is not a COLMAP model folder, a transforms.json or a .npz of matrices"
    )
