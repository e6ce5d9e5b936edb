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
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.utils.data import Dataset

from aware3d.cameras import Cameras

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


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
    """Read access to the files of a folder or a zip archive, by archive-relative name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.is_file():
            if not zipfile.is_zipfile(path):
                raise ValueError(f"`path` {path} is a file but not a zip archive")
            self.zip = zipfile.ZipFile(path)
            self.names = set()
            for name in self.zip.namelist():
                if name.endswith("/"):
                    continue
                self.names.add(_safe_member(name, path))
        elif path.is_dir():
            self.names = None
        else:
            raise FileNotFoundError(f"`path` {path} does not exist")

    def exists(self, name: str) -> bool:
        if self.zip is not None:
            assert self.names is not None
            return name in self.names
        return (self.path / name).is_file()

    def read(self, name: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(name)
        return (self.path / name).read_bytes()


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


class EG3DDataset(Dataset[EG3DItem]):
    """EG3D-format dataset: images with camera labels, optionally mirrored for augmentation.

    Labels are read and validated when the dataset is opened (each entry must name an existing
    image and hold 25 finite numbers forming a valid camera); images are decoded on access.

    Args:
        path: a folder or ``.zip`` archive holding ``dataset.json`` and the images.
        xflip: append a left-right mirrored copy of every image (the dataset doubles); its camera
            is mirrored as EG3D does (:meth:`aware3d.Cameras.mirrored`), so the pose stays right.
        value_range: the range pixel values are mapped to (``(0, 1)`` or, for GANs, ``(-1, 1)``).

    Raises:
        FileNotFoundError: if ``path`` or ``dataset.json`` is missing.
        ValueError: for malformed JSON, bad labels (naming the entry), a missing image, or archive
            members that would escape the archive.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        xflip: bool = False,
        value_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.path = Path(path)
        self._source = _Source(self.path)
        if not self._source.exists("dataset.json"):
            raise FileNotFoundError(f"{self.path} has no dataset.json")
        try:
            meta = json.loads(self._source.read("dataset.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{self.path}/dataset.json is not valid JSON: {error}") from None
        entries = meta.get("labels") if isinstance(meta, dict) else None
        if not isinstance(entries, list) or not entries:
            raise ValueError(
                f"{self.path}/dataset.json must hold a non-empty list under 'labels', "
                "like {'labels': [['img00000000.png', [25 numbers]], ...]}"
            )
        names: list[str] = []
        labels: list[list[float]] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, list | tuple) or len(entry) != 2:
                raise ValueError(
                    f"dataset.json entry {index}: expected [filename, [25 numbers]], got {entry!r}"
                )
            name = _check_entry_name(entry[0], index)
            label = entry[1]
            if (
                not isinstance(label, list)
                or len(label) != 25
                or not all(isinstance(v, int | float) and math.isfinite(v) for v in label)
            ):
                raise ValueError(
                    f"dataset.json entry {index} ({name!r}): the label must be 25 finite "
                    f"numbers, got {label!r}"
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
        self.xflip = bool(xflip)
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(
                f"`value_range` must be (low, high) with high > low, got {value_range}"
            )
        self.value_range = (low, high)

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
        """Decodes image ``index`` (not flipped) to ``[H, W, 3]`` float32 in ``value_range``."""
        name = self.names[index]
        try:
            with Image.open(io.BytesIO(self._source.read(name))) as handle:
                pixels = np.asarray(handle.convert("RGB"), dtype=np.float32)
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise ValueError(f"image {name!r} (entry {index}) cannot be decoded: {error}") from None
        low, high = self.value_range
        return torch.from_numpy(pixels / 255.0 * (high - low) + low)

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
