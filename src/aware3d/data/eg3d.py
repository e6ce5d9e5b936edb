"""Reader for EG3D-format datasets: a folder or ``.zip`` of images plus ``dataset.json``.

``dataset.json`` holds ``{"labels": [[filename, [25 numbers]], ...]}``: each image's EG3D label,
the flattened 4x4 OpenCV ``cam2world`` then the flattened 3x3 normalised intrinsics. This is the
format EG3D, GSGAN and BallGAN users already have. Only JSON is parsed; nothing is unpickled.
"""

import contextlib
import io
import json
import math
import os
import posixpath
import struct
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Literal, NamedTuple

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from aware3d._validation import check_bool, value_checks
from aware3d.cameras import Cameras

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
"""The image formats (Pillow's names) the reader decodes; others are refused."""
MAX_IMAGE_PIXELS = 4096 * 4096
"""The default most pixels an image may have (``max_image_pixels``); larger ones are refused."""

# Normalised intrinsics have the principal point near 0.5 (in [0, 1] whenever it lies in the
# image; [-1, 2] still admits crops that moved it an image size out) and focal lengths of
# 1 / (2 tan(fov / 2)), above 100 only for fields of view under 0.6 degrees. Pixel intrinsics
# have cx ~ W / 2 and fx ~ W / (2 tan(fov / 2)): outside these bounds for images over 4 pixels.
_PRINCIPAL_POINT_RANGE = (-1.0, 2.0)
_MAX_FOCAL = 100.0


def collate_cameras(batch: Sequence[Cameras], **_: object) -> Cameras:
    """Stacks ``Cameras`` of one shape along a new first axis (``[1]`` items give ``[B, 1]``).

    Registered with ``torch.utils.data.default_collate``, so a ``DataLoader`` without a
    ``collate_fn`` batches :class:`EG3DItem` (and any structure holding ``Cameras``): images
    ``[B, H, W, 3]``, labels ``[B, 25]`` and cameras ``[B, 1]``.

    Raises:
        ValueError: for cameras of different shapes, dtypes or devices.
    """
    shapes = {tuple(cameras.shape) for cameras in batch}
    kinds = {(cameras.dtype, cameras.device) for cameras in batch}
    if len(shapes) != 1 or len(kinds) != 1:
        raise ValueError(
            f"`batch`: cameras in one batch must share a shape, dtype and device, got shapes "
            f"{sorted(shapes)} and {sorted(map(str, kinds))}"
        )
    return Cameras._trusted(
        torch.stack([cameras.cam2world for cameras in batch]),
        torch.stack([cameras.intrinsics for cameras in batch]),
    )


def _register_default_collate() -> None:
    """Teaches ``default_collate`` to batch ``Cameras`` (torch keeps its table in a module)."""
    try:
        from torch.utils.data._utils.collate import default_collate_fn_map
    except ImportError:  # pragma: no cover - a torch without the table: use EG3DDataset.collate
        return
    default_collate_fn_map.setdefault(Cameras, collate_cameras)


_register_default_collate()


class EG3DItem(NamedTuple):
    """One image with its camera.

    The default ``DataLoader`` collate batches items into ``EG3DItem(images [B, H, W, 3],
    labels [B, 25], cameras [B, 1])`` (:func:`collate_cameras`);
    :meth:`EG3DDataset.collate` gives the renderer's ``[B, 1, H, W, 3]`` images instead.

    Attributes:
        image: ``[H, W, 3]`` float32, channels-last, in the dataset's ``value_range``.
        label: the EG3D label ``[25]`` (mirrored when the item is an x-flip).
        cameras: ``Cameras`` of shape ``[1]`` built from the label.
    """

    image: Float[Tensor, "H W 3"]
    label: Float[Tensor, "25"]
    cameras: Cameras


class EG3DBatch(NamedTuple):
    """A batch from :meth:`EG3DDataset.collate`.

    Attributes:
        images: ``[B, 1, H, W, 3]``: one camera per scene, the renderer's layout.
        labels: ``[B, 25]``.
        cameras: ``Cameras`` of shape ``[B, 1]``.
    """

    images: Float[Tensor, "B 1 H W 3"]
    labels: Float[Tensor, "B 25"]
    cameras: Cameras


class _Source:
    """Read access to the files of a folder or a zip archive, by archive-relative name.

    A zip archive is opened lazily, once per process: after a ``fork`` (DataLoader workers) the
    child opens its own handle instead of sharing the parent's file offset, and pickling (``spawn``
    and ``forkserver`` workers) drops the handle. The archive's size and modification time are
    recorded on the first opening; a process that finds them changed refuses to read it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_zip = False
        self.names: set[str] | None = None
        self._zip: zipfile.ZipFile | None = None
        self._pid: int | None = None
        self._stamp: tuple[int, int] | None = None
        self._root = path.resolve()
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise ValueError(f"`path` {path} is a file but not a zip archive")
            self.is_zip = True
            self.names = _unique_members(self._archive().namelist(), path)
        elif not path.is_dir():
            raise FileNotFoundError(f"`path` {path} does not exist")

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_zip"] = None
        state["_pid"] = None
        return state

    def _archive(self) -> zipfile.ZipFile:
        """This process's handle on the archive, opened on first use."""
        pid = os.getpid()
        if self._zip is not None and self._pid == pid:
            return self._zip
        if self._zip is not None:
            # inherited through fork: closing it closes this process's copy of the descriptor only
            self._zip.close()
            self._zip = None
        try:
            archive = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile) as error:
            raise ValueError(f"{self.path} cannot be opened as a zip archive: {error}") from None
        assert archive.fp is not None
        stat = os.fstat(archive.fp.fileno())
        stamp = (stat.st_size, stat.st_mtime_ns)
        if self._stamp is not None and stamp != self._stamp:
            archive.close()
            raise ValueError(
                f"{self.path} changed after the dataset was opened (size or modification time); "
                "create the dataset again"
            )
        self._zip, self._pid, self._stamp = archive, pid, stamp
        return archive

    def close(self) -> None:
        if self._zip is not None and self._pid == os.getpid():
            self._zip.close()
        self._zip = None
        self._pid = None

    def exists(self, name: str) -> bool:
        if self.names is not None:
            return name in self.names
        return (self.path / name).is_file()

    def describe(self, name: str) -> str:
        """How an error message names file ``name``."""
        if self.is_zip:
            return f"{self.path}: member {name!r}"
        return str(self.path / name)

    def check_inside(self, name: str, entry: str, links: dict[str, bool] | None = None) -> None:
        """Refuses a folder's file ``name`` that leads out of the folder through a symbolic link.

        Each component of ``name`` is checked for being a link (``lstat``), and only a path with
        one is resolved. ``links`` caches the folders' answers across calls.

        Raises:
            ValueError: naming the file, ``entry``, where the link leads and the folder.
        """
        if self.is_zip:
            return
        parts = PurePosixPath(name).parts
        for depth in range(1, len(parts) + 1):
            prefix = "/".join(parts[:depth])
            is_link = links.get(prefix) if links is not None else None
            if is_link is None:
                is_link = (self.path / prefix).is_symlink()
                if links is not None and depth < len(parts):
                    links[prefix] = is_link
            if is_link:
                target = (self.path / name).resolve()
                if not target.is_relative_to(self._root):
                    raise ValueError(
                        f"{self.path / name} ({entry}) leads through a symbolic link to {target}, "
                        f"outside the dataset folder {self.path}; copy the file into the folder "
                        "(links to files inside it are fine)"
                    )
                return

    def read(self, name: str, entry: str) -> bytes:
        """The bytes of ``name``; ``entry`` says which dataset entry wants them, for errors.

        Raises:
            ValueError: naming the archive or folder, the file and ``entry``, if the file cannot
                be read (for a zip member: a bad CRC, corrupt compressed data, an unsupported
                compression method or encryption).
        """
        if not self.is_zip:
            self.check_inside(name, entry)
        try:
            if self.is_zip:
                return self._archive().read(name)
            return (self.path / name).read_bytes()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
                RuntimeError) as error:  # fmt: skip
            raise ValueError(f"{self.describe(name)} ({entry}) cannot be read: {error}") from None


def _escapes(name: str) -> bool:
    """Whether a relative path would leave its root (absolute, a drive letter, or ``..``)."""
    normalised = posixpath.normpath(name.replace("\\", "/"))
    return (
        name.startswith(("/", "\\"))
        or (len(name) > 1 and name[1] == ":")
        or normalised == ".."
        or normalised.startswith("../")
    )


def _safe_member(name: str, archive: Path) -> str:
    """Refuses archive members that would escape the archive."""
    if _escapes(name):
        raise ValueError(f"{archive}: member {name!r} would escape the archive; refusing it")
    return name


def _unique_members(names: list[str], archive: Path) -> set[str]:
    """The archive's file members, refusing escaping ones and two members naming one file.

    A name stored twice (``zipfile`` reads the last copy, other tools the first) or two names for
    one path (``a.png`` and ``./a.png``) make the archive's content ambiguous.
    """
    seen: dict[str, str] = {}
    for name in names:
        if name.endswith("/"):
            continue
        key = posixpath.normpath(_safe_member(name, archive))
        if key not in seen:
            seen[key] = name
        elif seen[key] == name:
            raise ValueError(
                f"{archive}: member {name!r} is stored {names.count(name)} times in the "
                "archive, so which copy is read is ambiguous; rebuild the archive with each file "
                "once"
            )
        else:
            raise ValueError(
                f"{archive}: members {seen[key]!r} and {name!r} name one file; rebuild the "
                "archive with each file once"
            )
    return set(seen.values())


def _check_entry_name(name: object, index: int) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"dataset.json entry {index}: the file name must be a string, got {name!r}"
        )
    if _escapes(name):
        raise ValueError(f"dataset.json entry {index} ({name!r}): the path escapes the dataset")
    return name


def _is_finite_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float's range
        return False


def _refuse_repeat(
    first: int, first_name: str, first_label: list[float], index: int, name: str, label: list[float]
) -> None:
    """Refuses entry ``index``, which names the same file as the earlier entry ``first``."""
    spelled = "" if name == first_name else f" ({first_name!r})"
    if label == first_label:
        raise ValueError(
            f"dataset.json entry {index} ({name!r}) repeats entry {first}{spelled} with the same "
            "label; list each image once (a repeated one is drawn twice as often)"
        )
    where = next(i for i, (a, b) in enumerate(zip(first_label, label, strict=True)) if a != b)
    also = "" if name == first_name else f" (as {name!r} in entry {index})"
    raise ValueError(
        f"dataset.json entries {first} and {index} both name {first_name!r}{also} with different "
        f"labels (first difference at label index {where}: {first_label[where]!r} vs "
        f"{label[where]!r}); list each image once, with its one label"
    )


def _short(value: object, limit: int = 100) -> str:
    """``repr(value)``, cut to ``limit`` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_json(data: bytes, name: str) -> object:
    """Parses UTF-8 JSON (a leading byte-order mark is allowed), naming ``name`` on failure."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{name} is not UTF-8 text: {error}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{name} is not usable JSON: it nests too deeply") from None
    except ValueError as error:
        raise ValueError(f"{name} is not valid JSON: {error}") from None


class _ImageError(Exception):
    """An image that cannot be decoded; the message says why, the caller says which file."""


class _WrongSizeError(Exception):
    """An image whose size (its ``args``: width, height) is not the dataset's."""


_EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})
_PALETTE_MODES = frozenset({"P", "PA"})
_SIXTEEN_BIT_GREY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def _mode_kind(mode: str, image_format: str | None) -> Literal["grey16", "palette", "8-bit"]:
    """How an image of ``mode`` becomes RGB; refuses modes with no defined RGB meaning.

    ``image_format`` is the file's format: mode ``I`` is read as 16-bit greyscale only from a PNG,
    whose 16-bit greyscale older Pillow versions open as ``I``.
    """
    if mode in _SIXTEEN_BIT_GREY_MODES or (mode == "I" and image_format == "PNG"):
        return "grey16"
    if mode in _PALETTE_MODES:
        return "palette"
    if mode in _EIGHT_BIT_MODES:
        return "8-bit"
    raise _ImageError(f"its mode {mode!r} has no defined RGB meaning; convert it to RGB")


def _to_rgb(image: Image.Image, image_format: str | None) -> np.ndarray:
    """An opened image as ``[H, W, 3]`` float32 in [0, 1], by its mode (see :class:`EG3DDataset`).

    ``image_format`` is the file's format (see :func:`_mode_kind`).
    """
    mode = image.mode
    kind = _mode_kind(mode, image_format)
    if kind == "grey16":
        grey = np.asarray(image)
        if grey.size and (int(grey.min()) < 0 or int(grey.max()) > 65535):
            raise _ImageError(f"mode {mode!r} values lie outside the 16-bit range [0, 65535]")
        scaled = grey.astype(np.float32) / np.float32(65535)
        return np.repeat(scaled[..., None], 3, axis=-1)
    if kind == "palette":
        # through RGBA: Pillow warns when a palette with transparency goes straight to RGB
        rgb = np.asarray(image.convert("RGBA"))[..., :3]
    else:
        rgb = np.asarray(image.convert("RGB"))
    return rgb.astype(np.float32) / np.float32(255)


@contextlib.contextmanager
def _opened_image(data: bytes, max_pixels: int) -> Iterator[Image.Image]:
    """Opens an encoded image (its header only) after checking its pixel count.

    Decoding errors inside the ``with`` block, as opening's, become :class:`_ImageError`.
    """
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as handle:
            width, height = handle.size
            if width * height > max_pixels:
                raise _ImageError(
                    f"its header declares {width} x {height} = {width * height} pixels, more "
                    f"than the limit of {max_pixels} (`max_image_pixels`)"
                )
            yield handle
    except Image.DecompressionBombError as error:
        raise _ImageError(str(error)) from None
    except UnidentifiedImageError:
        raise _ImageError(
            f"it is not a {', '.join(IMAGE_FORMATS[:-1])} or {IMAGE_FORMATS[-1]} image"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as error:
        raise _ImageError(f"{type(error).__name__}: {error}") from None


def _image_header(data: bytes, max_pixels: int) -> tuple[int, int]:
    """An image's ``(width, height)``, checking its format, pixel count and mode, not decoding."""
    with _opened_image(data, max_pixels) as handle:
        _mode_kind(handle.mode, handle.format)
        return handle.size


def _decode_image(data: bytes, max_pixels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decodes an encoded image to ``[H, W, 3]`` float32 in [0, 1], checking its size first.

    Raises:
        _ImageError: the image cannot be decoded.
        _WrongSizeError: ``size`` is given and the image's ``(width, height)`` is another.
    """
    with _opened_image(data, max_pixels) as handle:
        if size is not None and handle.size != size:
            raise _WrongSizeError(*handle.size)
        return _to_rgb(handle, handle.format)


class EG3DDataset(Dataset[EG3DItem]):
    """EG3D-format dataset: images with camera labels, optionally mirrored for augmentation.

    Labels are read and validated when the dataset is opened, and the first error names its
    entry: each entry must name an existing image, once, and hold 25 finite numbers forming a
    rigid ``cam2world`` (checked even where value checks are turned off) and intrinsics
    normalised by the image size. Intrinsics in pixels are recognised by a principal point
    outside [-1, 2] or a focal length above 100 (normalised ones have ``cx = cy = 0.5`` when
    centred and ``fx = 1 / (2 tan(fov / 2))``, 4.26 for FFHQ) and refused with the fix. An
    image listed twice is refused whether or not its labels agree (it would be drawn twice as
    often), as are two zip members naming one file, and, in a folder, a file that leads through
    a symbolic link out of the folder (links to files inside it are fine). The first image's
    header is read: its format, pixel count and mode must be usable, and its size is the
    dataset's :attr:`image_size`. Images are decoded on access, and one of another size is
    refused there, naming both sizes.

    The dataset works with ``DataLoader`` workers under every start method (``fork``, ``spawn``,
    ``forkserver``): a zip archive is opened lazily in each process, and the dataset pickles
    without its file handle.

    Images must be PNG, JPEG, WebP or BMP (recognised by content, not by extension) and are
    converted to RGB in [0, 1] by their mode: 8-bit RGB as it is; greyscale (``L``, and ``1``
    as 0 or 1) repeated on the three channels; palette images expanded through their palette;
    16-bit greyscale PNGs (``I;16``, or ``I`` in older Pillow) divided by 65535, at full
    precision; ``CMYK`` and ``YCbCr`` JPEGs converted by Pillow. Alpha (``RGBA``, ``LA``, a
    palette's transparency) is dropped, not composited, as EG3D's dataset tool does. 16-bit
    colour PNGs are read by Pillow at 8 bits per channel. Images with more than
    ``max_image_pixels`` pixels are refused by their header's size before any decoding.

    Args:
        path: a folder or ``.zip`` archive holding ``dataset.json`` and the images.
        xflip: append a left-right mirrored copy of every image (the dataset doubles); its camera
            is mirrored as EG3D does (:meth:`aware3d.Cameras.mirrored`), so the pose stays right.
        value_range: the range pixel values are mapped to (``(0, 1)`` or, for GANs, ``(-1, 1)``).
        max_image_pixels: the most pixels (width x height) an image may have; a guard against
            decompression bombs (:data:`MAX_IMAGE_PIXELS`, 4096 x 4096, by default). Pillow's own
            limit (``2 * PIL.Image.MAX_IMAGE_PIXELS``) still applies above it.

    Attributes:
        names: the image of each entry, as ``dataset.json`` names it.
        labels: ``[N, 25]`` float32, the labels in ``dataset.json``'s order.
        image_size: ``(width, height)`` of the first image, which every image must have.

    Raises:
        FileNotFoundError: if ``path`` or ``dataset.json`` is missing.
        ValueError: naming the file, for a ``dataset.json`` that cannot be read, is not UTF-8, is
            not valid JSON or nests too deeply; naming the entry, for bad labels (not 25 finite
            numbers, not a rigid camera, intrinsics in pixels), an image listed twice, a missing
            image, a link out of the folder, or a first image that cannot be used; for a file
            that is not a zip archive, or archive members that would escape the archive or name
            one file twice; for a bad ``value_range`` or ``max_image_pixels``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        xflip: bool = False,
        value_range: tuple[float, float] = (0.0, 1.0),
        max_image_pixels: int = MAX_IMAGE_PIXELS,
    ) -> None:
        self.path = Path(path)
        if isinstance(max_image_pixels, bool) or not isinstance(max_image_pixels, int):
            raise ValueError(f"`max_image_pixels` must be an integer, got {max_image_pixels!r}")
        if max_image_pixels < 1:
            raise ValueError(f"`max_image_pixels` must be >= 1, got {max_image_pixels}")
        self.max_image_pixels = max_image_pixels
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(
                f"`value_range` must be (low, high) with high > low, got {value_range}"
            )
        self.value_range = (low, high)
        self.xflip = check_bool("xflip", xflip)
        self._source = _Source(self.path)
        if not self._source.exists("dataset.json"):
            raise FileNotFoundError(f"{self.path} has no dataset.json")
        meta_name = self._source.describe("dataset.json")
        meta = _parse_json(self._source.read("dataset.json", "the labels file"), meta_name)
        entries = meta.get("labels") if isinstance(meta, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ValueError(
                f"{meta_name} must hold a non-empty list under 'labels', "
                "like {'labels': [['img00000000.png', [25 numbers]], ...]}"
            )
        names: list[str] = []
        labels: list[list[float]] = []
        first_entry: dict[str, int] = {}
        links: dict[str, bool] = {}
        for index, entry in enumerate(entries):
            if not isinstance(entry, list | tuple) or len(entry) != 2:
                raise ValueError(
                    f"dataset.json entry {index}: expected [filename, [25 numbers]], got "
                    f"{_short(entry)}"
                )
            name = _check_entry_name(entry[0], index)
            label = entry[1]
            if (
                not isinstance(label, list)
                or len(label) != 25
                or not all(_is_finite_number(v) for v in label)
            ):
                raise ValueError(
                    f"dataset.json entry {index} ({name!r}): the label must be 25 finite "
                    f"numbers, got {_short(label)}"
                )
            values = [float(v) for v in label]
            earlier = first_entry.setdefault(posixpath.normpath(name), index)
            if earlier != index:
                _refuse_repeat(earlier, names[earlier], labels[earlier], index, name, values)
            if not self._source.exists(name):
                raise ValueError(f"dataset.json entry {index}: image {name!r} is missing")
            self._source.check_inside(name, f"dataset.json entry {index}", links)
            names.append(name)
            labels.append(values)
        self.names = names
        self.labels = torch.tensor(labels, dtype=torch.float32)
        self._check_cameras()
        self.image_size = self._first_image_size()

    def _check_cameras(self) -> None:
        """Refuses labels that are not rigid cameras with normalised intrinsics, naming the first.

        Value checks are forced on: the labels are checked once, here, whatever the caller set.
        """
        try:
            with value_checks(True):
                Cameras.from_eg3d_labels(self.labels)
        except ValueError:
            for index, name in enumerate(self.names):
                try:
                    with value_checks(True):
                        Cameras.from_eg3d_labels(self.labels[index])
                except ValueError as error:
                    raise ValueError(
                        f"dataset.json entry {index} ({name!r}): invalid camera: {error}"
                    ) from None
            raise
        intrinsics = self.labels[:, 16:].double()
        fx, cx, fy, cy = intrinsics[:, 0], intrinsics[:, 2], intrinsics[:, 4], intrinsics[:, 5]
        low, high = _PRINCIPAL_POINT_RANGE
        centre = torch.stack([cx, cy])
        bad = ((centre < low) | (centre > high)).any(0) | (fx > _MAX_FOCAL) | (fy > _MAX_FOCAL)
        if not bad.any():
            return
        index = int(bad.nonzero()[0])
        name = self.names[index]
        values = {"fx": fx[index], "fy": fy[index], "cx": cx[index], "cy": cy[index]}
        try:
            data = self._source.read(name, f"dataset.json entry {index}")
            width, height = _image_header(data, self.max_image_pixels)
        except (ValueError, _ImageError):
            suggestion = ""
        else:
            scaled = {"fx": width, "fy": height, "cx": width, "cy": height}
            suggestion = (
                f" (this image is {width} x {height}: "
                + ", ".join(
                    f"{key} = {float(value) / scaled[key]:.6g}" for key, value in values.items()
                )
                + ")"
            )
        raise ValueError(
            f"dataset.json entry {index} ({name!r}): the intrinsics look like pixels, not "
            "normalised by the image size: "
            + ", ".join(f"{key} = {float(value):.6g}" for key, value in values.items())
            + f" ({int(bad.sum())} of {len(self.names)} labels are outside the normalised range: "
            f"cx and cy in [{low:g}, {high:g}], fx and fy at most {_MAX_FOCAL:g}). EG3D labels "
            "hold the 3x3 intrinsics divided by the image size, so cx = cy = 0.5 for a centred "
            "principal point and fx = fy = 4.2647 for FFHQ's cameras: divide fx and cx by the "
            f"image width and fy and cy by its height{suggestion}"
        )

    def _first_image_size(self) -> tuple[int, int]:
        """The first image's ``(width, height)`` from its header, checking format and mode."""
        name = self.names[0]
        entry = "dataset.json entry 0"
        try:
            return _image_header(self._source.read(name, entry), self.max_image_pixels)
        except _ImageError as error:
            raise ValueError(
                f"{self._source.describe(name)} ({entry}) cannot be decoded: {error}"
            ) from None

    def __len__(self) -> int:
        return len(self.names) * (2 if self.xflip else 1)

    def __getitem__(self, index: int) -> EG3DItem:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} items")
        index %= len(self)
        flipped = index >= len(self.names)
        raw = index - len(self.names) if flipped else index
        image = self.load_image(raw)
        cameras = Cameras.from_eg3d_labels(self.labels[raw])
        if flipped:
            image = image.flip(1)
            cameras = cameras.mirrored()
        return EG3DItem(image, cameras.to_eg3d_labels()[0], cameras)

    def load_image(self, index: int) -> Float[Tensor, "H W 3"]:
        """Decodes image ``index`` (not flipped) to ``[H, W, 3]`` float32 in ``value_range``.

        Raises:
            ValueError: naming the file and the entry, if the image cannot be read (a corrupt zip
                member), is not a PNG, JPEG, WebP or BMP, is truncated or corrupt, has more than
                ``max_image_pixels`` pixels, has a mode with no defined RGB meaning, has another
                size than the first image (naming both sizes), or leads through a symbolic link
                out of the dataset folder.
        """
        name = self.names[index]
        entry = f"dataset.json entry {index}"
        data = self._source.read(name, entry)
        try:
            pixels = _decode_image(data, self.max_image_pixels, self.image_size)
        except _ImageError as error:
            raise ValueError(
                f"{self._source.describe(name)} ({entry}) cannot be decoded: {error}"
            ) from None
        except _WrongSizeError as mismatch:
            width, height = mismatch.args
            raise ValueError(
                f"{self._source.describe(name)} ({entry}) is {width} x {height} pixels (width x "
                f"height), but the dataset's first image, {self._source.describe(self.names[0])}, "
                f"is {self.image_size[0]} x {self.image_size[1]}; all images must have one size "
                "(resize or crop them beforehand)"
            ) from None
        low, high = self.value_range
        return torch.from_numpy(pixels * (high - low) + low)

    def close(self) -> None:
        """Closes this process's handle on the zip archive; a later access opens it again."""
        self._source.close()

    @staticmethod
    def collate(items: Sequence[EG3DItem]) -> EG3DBatch:
        """Stacks items into a batch: images ``[B, 1, H, W, 3]`` and ``Cameras`` ``[B, 1]``.

        Pass it as ``collate_fn`` to a ``torch.utils.data.DataLoader``.
        """
        shapes = {tuple(item.image.shape) for item in items}
        if len(shapes) != 1:
            raise ValueError(f"images in one batch must share a size, got {sorted(shapes)}")
        labels = torch.stack([item.label for item in items])
        images = torch.stack([item.image for item in items])[:, None]
        return EG3DBatch(images, labels, Cameras.from_eg3d_labels(labels[:, None]))
