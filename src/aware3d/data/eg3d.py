"""Reader for EG3D-format datasets: a folder or ``.zip`` of images plus ``dataset.json``.

``dataset.json`` holds ``{"labels": [[filename, [25 numbers]], ...]}``: each image's EG3D label,
the flattened 4x4 OpenCV ``cam2world`` then the flattened 3x3 normalised intrinsics. This is the
format EG3D, GSGAN and BallGAN users already have. Only JSON is parsed; nothing is unpickled.
"""

import io
import json
import math
import os
import posixpath
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from aware3d._validation import check_bool
from aware3d.cameras import Cameras

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
"""The image formats (Pillow's names) the reader decodes; others are refused."""
MAX_IMAGE_PIXELS = 4096 * 4096
"""The default most pixels an image may have (``max_image_pixels``); larger ones are refused."""


class EG3DItem(NamedTuple):
    """One image with its camera.

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
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise ValueError(f"`path` {path} is a file but not a zip archive")
            self.is_zip = True
            names = set()
            for name in self._archive().namelist():
                if name.endswith("/"):
                    continue
                names.add(_safe_member(name, path))
            self.names = names
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

    def read(self, name: str, entry: str) -> bytes:
        """The bytes of ``name``; ``entry`` says which dataset entry wants them, for errors.

        Raises:
            ValueError: naming the archive or folder, the file and ``entry``, if the file cannot
                be read (for a zip member: a bad CRC, corrupt compressed data, an unsupported
                compression method or encryption).
        """
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


def _check_entry_name(name: object, index: int) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"dataset.json entry {index}: the file name must be a string, got {name!r}"
        )
    if _escapes(name):
        raise ValueError(f"dataset.json entry {index} ({name!r}): the path escapes the dataset")
    return name


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


_EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})
_PALETTE_MODES = frozenset({"P", "PA"})
_SIXTEEN_BIT_GREY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def _to_rgb(image: Image.Image, image_format: str | None) -> np.ndarray:
    """An opened image as ``[H, W, 3]`` float32 in [0, 1], by its mode (see :class:`EG3DDataset`).

    ``image_format`` is the file's format: mode ``I`` is read as 16-bit greyscale only from a PNG,
    whose 16-bit greyscale older Pillow versions open as ``I``.
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_GREY_MODES or (mode == "I" and image_format == "PNG"):
        grey = np.asarray(image)
        if grey.size and (int(grey.min()) < 0 or int(grey.max()) > 65535):
            raise _ImageError(f"mode {mode!r} values lie outside the 16-bit range [0, 65535]")
        scaled = grey.astype(np.float32) / np.float32(65535)
        return np.repeat(scaled[..., None], 3, axis=-1)
    if mode in _PALETTE_MODES:
        # through RGBA: Pillow warns when a palette with transparency goes straight to RGB
        rgb = np.asarray(image.convert("RGBA"))[..., :3]
    elif mode in _EIGHT_BIT_MODES:
        rgb = np.asarray(image.convert("RGB"))
    else:
        raise _ImageError(f"its mode {mode!r} has no defined RGB meaning; convert it to RGB")
    return rgb.astype(np.float32) / np.float32(255)


def _decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decodes an encoded image to ``[H, W, 3]`` float32 in [0, 1], checking its size first."""
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as handle:
            width, height = handle.size
            if width * height > max_pixels:
                raise _ImageError(
                    f"its header declares {width} x {height} = {width * height} pixels, more "
                    f"than the limit of {max_pixels} (`max_image_pixels`)"
                )
            return _to_rgb(handle, handle.format)
    except Image.DecompressionBombError as error:
        raise _ImageError(str(error)) from None
    except UnidentifiedImageError:
        raise _ImageError(
            f"it is not a {', '.join(IMAGE_FORMATS[:-1])} or {IMAGE_FORMATS[-1]} image"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as error:
        raise _ImageError(f"{type(error).__name__}: {error}") from None


class EG3DDataset(Dataset[EG3DItem]):
    """EG3D-format dataset: images with camera labels, optionally mirrored for augmentation.

    Labels are read and validated when the dataset is opened (each entry must name an existing
    image and hold 25 finite numbers forming a valid camera); images are decoded on access.

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

    Raises:
        FileNotFoundError: if ``path`` or ``dataset.json`` is missing.
        ValueError: naming the file, for a ``dataset.json`` that cannot be read, is not UTF-8, is
            not valid JSON or nests too deeply; for bad labels or a missing image (naming the
            entry); for a file that is not a zip archive, or archive members that would escape
            the archive; for a bad ``value_range`` or ``max_image_pixels``.
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
                or not all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in label
                )
            ):
                raise ValueError(
                    f"dataset.json entry {index} ({name!r}): the label must be 25 finite "
                    f"numbers, got {_short(label)}"
                )
            if not self._source.exists(name):
                raise ValueError(f"dataset.json entry {index}: image {name!r} is missing")
            names.append(name)
            labels.append([float(v) for v in label])
        self.names = names
        self.labels = torch.tensor(labels, dtype=torch.float32)
        for index, name in enumerate(names):
            try:
                Cameras.from_eg3d_labels(self.labels[index])
            except ValueError as error:
                raise ValueError(
                    f"dataset.json entry {index} ({name!r}): invalid camera: {error}"
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
                ``max_image_pixels`` pixels, or has a mode with no defined RGB meaning.
        """
        name = self.names[index]
        entry = f"dataset.json entry {index}"
        data = self._source.read(name, entry)
        try:
            pixels = _decode_image(data, self.max_image_pixels)
        except _ImageError as error:
            raise ValueError(
                f"{self._source.describe(name)} ({entry}) cannot be decoded: {error}"
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
