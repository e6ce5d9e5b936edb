"""``aware3d data make``: images + camera poses -> an EG3D dataset (folder or zip).

Each image is cropped to a square (around its principal point, or a given box), resized with
Lanczos filtering and written as an RGB PNG; its EG3D label holds the camera's OpenCV
camera-to-world and the intrinsics of the cropped, resized image, so a 3D point projects to the
same place in the new image as in the original (up to the resampling filter's blur). Optional
mirrored copies get EG3D's mirrored labels (:meth:`aware3d.Cameras.mirrored`). The output is
written whole or not at all: a folder is built beside its destination and renamed into place,
a zip archive is written to a temporary file and renamed; an error or an interrupt leaves the
destination as it was.
"""

import contextlib
import io
import json
import os
import secrets
import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from aware3d._io import atomic_open
from aware3d._validation import check_bool, check_positive_int
from aware3d.cameras import Cameras
from aware3d.data.normalize import SceneTransform
from aware3d.data.poses import PosedImages

__all__ = ["crop_box", "crop_intrinsics", "make_dataset"]

_PathLike = str | os.PathLike[str]
Box = tuple[float, float, float, float]
#: Pillow reads images up to this many pixels; larger ones are refused (a decompression guard).
MAX_SOURCE_PIXELS = 16384 * 16384


def crop_box(intrinsics: Any, size: tuple[int, int]) -> Box:
    """The largest square box (pixels, ``(x0, y0, x1, y1)``) centred on the principal point.

    The box's edges may fall between pixels: the resampling reads it exactly, so the principal
    point of the cropped image is its centre (``cx = cy = 0.5``).

    Args:
        intrinsics: ``[3, 3]`` intrinsics divided by the image size.
        size: ``(width, height)`` of the image in pixels.

    Raises:
        ValueError: if the principal point is not inside the image.
    """
    width, height = size
    k = np.asarray(intrinsics, dtype=np.float64)
    cx, cy = k[0, 2] * width, k[1, 2] * height
    half = min(cx, width - cx, cy, height - cy)
    if not half > 0:
        raise ValueError(
            f"the principal point ({cx:.4g}, {cy:.4g}) lies outside the {width} x {height} image, "
            "so no square around it fits; give a crop box"
        )
    return (cx - half, cy - half, cx + half, cy + half)


def crop_intrinsics(intrinsics: Any, size: tuple[int, int], box: Box) -> np.ndarray:
    """Intrinsics (divided by the new image's size) of the crop ``box`` of an image of ``size``.

    For pixel intrinsics ``fx, cx`` and a box from ``x0`` to ``x1``: ``fx' = fx / (x1 - x0)`` and
    ``cx' = (cx - x0) / (x1 - x0)`` (same for y), whatever size the crop is resized to (pixel
    centres at +0.5, which is how the resampling maps the box).
    """
    width, height = size
    k = np.asarray(intrinsics, dtype=np.float64)
    x0, y0, x1, y1 = box
    fx, cx = k[0, 0] * width, k[0, 2] * width
    fy, cy = k[1, 1] * height, k[1, 2] * height
    return np.array(
        [
            [fx / (x1 - x0), 0.0, (cx - x0) / (x1 - x0)],
            [0.0, fy / (y1 - y0), (cy - y0) / (y1 - y0)],
            [0.0, 0.0, 1.0],
        ]
    )


def _check_box(box: Any) -> Box:
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError):
        raise TypeError(f"`box` must be 4 numbers (x0, y0, x1, y1), got {box!r}") from None
    if len(values) != 4 or not all(np.isfinite(values)):
        raise ValueError(f"`box` must be 4 finite numbers (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = values
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"`box` must have x1 > x0 and y1 > y0, got {box!r}")
    return (x0, y0, x1, y1)


def _image_size(path: Path, entry: str) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path} ({entry}) cannot be read as an image: {error}") from None
    if width * height > MAX_SOURCE_PIXELS:
        raise ValueError(f"{path} ({entry}) has {width} x {height} pixels, more than allowed")
    return width, height


def _plan(posed: PosedImages, box: Box | None) -> list[tuple[Path, tuple[int, int], Box]]:
    """Checks every image before any work: exists, readable, size agrees with its poses."""
    if posed.image_root is None:
        raise ValueError(
            f"the poses in {posed.source} do not say where the images are; give the image folder"
        )
    root = posed.image_root
    if not root.is_dir():
        raise FileNotFoundError(f"the image folder {root} does not exist")
    missing = [i for i, name in enumerate(posed.names) if not (root / name).is_file()]
    if missing:
        listed = "; ".join(f"{posed.names[i]!r} ({posed.entries[i]})" for i in missing[:10])
        more = f"; and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise ValueError(
            f"{len(missing)} of {len(posed)} images named by the poses are missing from {root}: "
            f"{listed}{more}"
        )
    plan = []
    intrinsics = posed.cameras.intrinsics.double().numpy()
    for index, name in enumerate(posed.names):
        path, entry = root / name, posed.entries[index]
        size = _image_size(path, entry)
        recorded = posed.sizes[index]
        if recorded[0] > 0 and recorded[1] > 0:
            ratio = (size[0] / size[1]) / (recorded[0] / recorded[1])
            if abs(ratio - 1) > 0.01:
                raise ValueError(
                    f"{path} ({entry}) is {size[0]} x {size[1]} pixels, but its poses describe a "
                    f"{recorded[0]} x {recorded[1]} image: another aspect ratio, so the "
                    "intrinsics do not fit it"
                )
        try:
            crop = crop_box(intrinsics[index], size) if box is None else box
        except ValueError as error:
            raise ValueError(f"{path} ({entry}): {error}") from None
        x0, y0, x1, y1 = crop
        if x0 < -1e-6 or y0 < -1e-6 or x1 > size[0] + 1e-6 or y1 > size[1] + 1e-6:
            raise ValueError(
                f"{path} ({entry}): the crop box {crop} reaches outside the {size[0]} x {size[1]} "
                "image"
            )
        plan.append((path, size, crop))
    return plan


def _render(path: Path, box: Box, resolution: int) -> Image.Image:
    """The crop ``box`` of the image at ``path``, resized to ``resolution`` (Lanczos), RGB.

    Pillow maps output pixel centre ``i + 0.5`` to ``x0 + (i + 0.5) (x1 - x0) / resolution`` in
    the source, the mapping :func:`crop_intrinsics` assumes. Alpha is dropped, as
    :class:`~aware3d.data.EG3DDataset` does.
    """
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    return rgb.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box)


def _png(image: Image.Image, compress_level: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def _sibling(target: Path, tag: str) -> Path:
    for _ in range(100):
        candidate = target.with_name(f".{target.name}.{tag}-{secrets.token_hex(6)}")
        if not (candidate.exists() or candidate.is_symlink()):
            return candidate
    raise FileExistsError(f"could not find a free temporary name next to {target}")


class _FolderWriter:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, name: str, data: bytes) -> None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as handle:
            handle.write(data)


class _ZipWriter:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive

    def write(self, name: str, data: bytes) -> None:
        compression = zipfile.ZIP_DEFLATED if name.endswith(".json") else zipfile.ZIP_STORED
        self.archive.writestr(name, data, compress_type=compression)


@contextlib.contextmanager
def _zip_output(path: Path) -> Iterator[_ZipWriter]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: BinaryIO
    with atomic_open(path) as handle, zipfile.ZipFile(handle, "w") as archive:
        yield _ZipWriter(archive)


@contextlib.contextmanager
def _folder_output(path: Path) -> Iterator[_FolderWriter]:
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _sibling(target, "new")
    os.mkdir(temp)
    try:
        yield _FolderWriter(temp)
        if target.exists():
            old = _sibling(target, "old")
            os.rename(target, old)
            try:
                os.rename(temp, target)
            except BaseException:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _check_target(path: Path, as_zip: bool, overwrite: bool) -> None:
    if as_zip:
        if path.is_dir():
            raise IsADirectoryError(f"`out` {path} is a folder; a zip archive was asked for")
        if path.exists() and not overwrite:
            raise FileExistsError(f"`out` {path} exists; pass overwrite=True (--overwrite)")
        return
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"`out` {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise FileExistsError(
            f"`out` {path} is a non-empty folder; pass overwrite=True (--overwrite) to replace it"
        )


def make_dataset(
    posed: PosedImages,
    out: _PathLike,
    *,
    resolution: int = 256,
    box: Sequence[float] | None = None,
    mirror: bool = False,
    as_zip: bool | None = None,
    limit: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    transform: SceneTransform | None = None,
    compress_level: int = 1,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Writes an EG3D dataset: square crops resized to ``resolution`` and their labels.

    Images are taken in ``posed``'s order (the first ``limit`` of them) and written as
    ``00000/img00000000.png``... with ``dataset.json`` holding ``{"labels": [[name, [25
    numbers]], ...]}`` and, under ``"aware3d"``, where each image came from, the crop, and the
    scene ``transform`` (so it can be undone). With ``mirror`` every image also gets a
    left-right mirrored copy ``img00000000_mirror.png`` with EG3D's mirrored label.

    Every image is checked first (present, readable, an aspect ratio matching its poses, a crop
    inside it); nothing is written if one fails.

    Args:
        posed: images and cameras from a reader (:func:`~aware3d.data.read_poses`), already
            normalised if wanted (:func:`~aware3d.data.normalize_scene`).
        out: the folder to write, or the ``.zip`` archive.
        resolution: the output size in pixels (square).
        box: ``(x0, y0, x1, y1)`` in pixels of every source image (edges, so ``(0, 0, W, H)``
            is the whole image); default: the largest square centred on each image's principal
            point.
        mirror: also write mirrored copies (the dataset doubles).
        as_zip: write a zip archive; default: when ``out`` ends with ``.zip``.
        limit: use only the first this many images.
        overwrite: replace an existing dataset at ``out`` (only once the new one is complete).
        progress: show a progress bar.
        transform: the scene normalisation applied to the cameras, stored in ``dataset.json``.
        compress_level: PNG compression level 0-9 (1: fast, files about 10% larger than 6).
        metadata: more JSON-ready data stored under ``"aware3d"``.

    Returns:
        ``out``, readable by :class:`~aware3d.data.EG3DDataset`.

    Raises:
        FileNotFoundError: if the image folder is missing.
        FileExistsError: if ``out`` holds a dataset and ``overwrite`` is false.
        ValueError: naming the images, for missing or unreadable images, sizes that disagree
            with the poses, crops outside an image, or no images at all.
    """
    check_positive_int("resolution", resolution)
    check_bool("mirror", mirror)
    check_bool("overwrite", overwrite)
    check_bool("progress", progress)
    if not (isinstance(compress_level, int) and 0 <= compress_level <= 9):
        raise ValueError(f"`compress_level` must be an integer in [0, 9], got {compress_level!r}")
    if not isinstance(posed, PosedImages):
        raise TypeError(f"`posed` must be PosedImages (from a pose reader), got {type(posed)}")
    if limit is not None:
        check_positive_int("limit", limit)
        posed = posed.select(range(min(limit, len(posed))))
    if len(posed) == 0:
        raise ValueError(f"`posed`: the poses in {posed.source} hold no images")
    crop = None if box is None else _check_box(box)
    out = Path(out)
    as_zip = out.suffix.lower() == ".zip" if as_zip is None else check_bool("as_zip", as_zip)
    _check_target(out, as_zip, overwrite)
    plan = _plan(posed, crop)

    intrinsics = posed.cameras.intrinsics.double().numpy()
    new_intrinsics = np.stack(
        [crop_intrinsics(intrinsics[i], size, b) for i, (_, size, b) in enumerate(plan)]
    )
    cameras = Cameras._trusted(posed.cameras.cam2world.double(), torch.from_numpy(new_intrinsics))
    labels = cameras.to_eg3d_labels().numpy()
    mirrored = cameras.mirrored().to_eg3d_labels().numpy() if mirror else None

    from tqdm.auto import tqdm

    entries: list[list[Any]] = []
    sources: list[list[str]] = []
    output = _zip_output(out) if as_zip else _folder_output(out)
    with output as writer, tqdm(total=len(plan), disable=not progress, unit="img",
                                desc="aware3d data make") as bar:  # fmt: skip
        for index, (path, _, b) in enumerate(plan):
            try:
                image = _render(path, b, resolution)
            except (OSError, ValueError, Image.DecompressionBombError) as error:
                raise ValueError(
                    f"{path} ({posed.entries[index]}) cannot be decoded: {error}; nothing was "
                    f"written to {out}"
                ) from None
            name = f"{index // 1000:05d}/img{index:08d}.png"
            writer.write(name, _png(image, compress_level))
            entries.append([name, labels[index].tolist()])
            sources.append([name, posed.names[index]])
            if mirrored is not None:
                flipped = name.replace(".png", "_mirror.png")
                writer.write(flipped, _png(ImageOps.mirror(image), compress_level))
                entries.append([flipped, mirrored[index].tolist()])
                sources.append([flipped, posed.names[index] + " (mirrored)"])
            bar.update(1)
        info: dict[str, Any] = {
            "source": posed.source,
            "resolution": resolution,
            "crop": "principal point" if crop is None else list(crop),
            "mirror": mirror,
            "images": sources,
            **dict(metadata or {}),
        }
        if transform is not None:
            info["scene_transform"] = transform.to_json()
        document = {"labels": entries, "aware3d": info}
        writer.write("dataset.json", json.dumps(document).encode("utf-8"))
    return out
