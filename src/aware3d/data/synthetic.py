"""Procedural multi-view scenes, rendered with the library's own renderer, for tests and the demo.

Each scene is a foreground object made of Gaussians (an ellipsoidal body with a striped colour
pattern and a few blobs attached to it, inside the foreground box around FFHQ's look-at point) and
a smooth random background on the sphere of radius ``background_radius``. Images are rendered from
EG3D-like camera distributions with :func:`aware3d.functional.splat.rasterize` and composited with
the background at unit occupancy, so ground-truth foreground masks (the splatted alpha) come free.
Everything is seeded and deterministic.
"""

import io
import json
import math
import os
import secrets
import shutil
import zipfile
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from aware3d._io import atomic_open
from aware3d._validation import check_positive_int, check_positive_number
from aware3d.cameras import (
    FFHQ_FOCAL,
    FFHQ_LOOKAT,
    FFHQ_RADIUS,
    Cameras,
    fov_from_intrinsics,
    intrinsics_from_fov,
    sample_look_at_poses,
)
from aware3d.data.eg3d import EG3DItem
from aware3d.functional.sphere import ray_sphere_exit
from aware3d.functional.splat import rasterize
from aware3d.gaussians import Gaussians

_SCENES_PER_RENDER = 16


def _random_unit(count: int, generator: torch.Generator) -> Tensor:
    v = torch.randn(count, 3, generator=generator)
    return v / v.norm(dim=-1, keepdim=True)


def _scene_gaussians(num_gaussians: int, generator: torch.Generator) -> Gaussians:
    """One procedural object: a striped ellipsoidal body and 1 to 3 blobs, ``B = 1``."""

    def uniform(low: float, high: float, *shape: int) -> Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    centre = torch.tensor(FFHQ_LOOKAT) + uniform(-0.03, 0.03, 3)
    radii = uniform(0.13, 0.22, 3)
    num_blobs = int(torch.randint(1, 4, (1,), generator=generator))
    blob_share = num_gaussians // 5
    body_count = num_gaussians - blob_share
    # body: points in a shell of the ellipsoid
    body_dirs = _random_unit(body_count, generator)
    body = centre + body_dirs * radii * uniform(0.75, 1.0, body_count, 1)
    palette = torch.rand(3, 3, generator=generator)
    frequency, phase = uniform(15.0, 30.0, 1), uniform(0.0, 2 * math.pi, 1)
    axis = _random_unit(1, generator)[0]
    stripes = (torch.sin(frequency * (body - centre) @ axis + phase) > 0).float()[:, None]
    body_colours = stripes * palette[0] + (1 - stripes) * palette[1]
    # blobs attached to the surface
    anchors = centre + _random_unit(num_blobs, generator) * radii
    which = torch.randint(0, num_blobs, (blob_share,), generator=generator)
    blob_radius = uniform(0.04, 0.08, num_blobs)
    blob = anchors[which] + _random_unit(blob_share, generator) * (
        blob_radius[which, None] * uniform(0.0, 1.0, blob_share, 1) ** (1 / 3)
    )
    blob_colours = palette[2].expand(blob_share, 3)
    means = torch.cat([body, blob])
    colours = torch.cat([body_colours, blob_colours])
    count = means.shape[0]
    quats = torch.zeros(count, 4)
    quats[:, 0] = 1.0
    return Gaussians(
        means=means[None],
        quats=quats[None],
        scales=uniform(0.018, 0.03, count, 1).expand(count, 3)[None].contiguous(),
        opacities=torch.full((1, count), 0.95),
        features=colours[None],
    )


def _background_colour(directions: Tensor, params: Tensor) -> Tensor:
    """Smooth random colour field on the unit sphere: base + sum of 3 low-frequency cosines."""
    base = params[:, 0, :3]  # [S, 3]
    out = base[:, None, :].expand(params.shape[0], directions.shape[1], 3).clone()
    for k in range(1, params.shape[1]):
        wave = params[:, k, :3]  # direction and frequency
        amplitude = params[:, k, 3:6]
        phase = params[:, k, 6]
        arg = (directions * wave[:, None, :]).sum(-1) + phase[:, None]
        out = out + amplitude[:, None, :] * torch.cos(arg)[..., None]
    return out.clamp(0.0, 1.0)


class SyntheticScenes(Dataset[EG3DItem]):
    """Seeded multi-view renders of procedural scenes, in the EG3D dataset's item format.

    ``num_scenes`` random scenes are each seen from ``views_per_scene`` cameras drawn like EG3D's
    FFHQ training poses (look-at sampler around the frontal view, FFHQ's radius, look-at point and
    focal length), giving ``num_scenes * views_per_scene`` images.

    Args:
        num_scenes: number of random scenes.
        views_per_scene: cameras per scene.
        resolution: image size (square).
        num_gaussians: Gaussians per foreground object.
        seed: seed of everything (scenes, backgrounds and cameras).
        horizontal_stddev: standard deviation of the horizontal camera angle (radians).
        vertical_stddev: standard deviation of the vertical camera angle (radians).
        fov_degrees: true horizontal field of view; defaults to FFHQ's (~13.4 degrees).
        background_radius: radius of the background sphere (cameras sit at 2.7).
        value_range: range the items' pixels are mapped to.

    Attributes:
        images: ``[N, H, W, 3]`` in [0, 1].
        masks: ground-truth foreground opacity ``[N, H, W, 1]`` in [0, 1].
        labels: EG3D labels ``[N, 25]``.
        scene_ids: which scene each image shows, ``[N]``.
    """

    def __init__(
        self,
        num_scenes: int = 64,
        views_per_scene: int = 4,
        resolution: int = 32,
        *,
        num_gaussians: int = 600,
        seed: int = 0,
        horizontal_stddev: float = 0.3,
        vertical_stddev: float = 0.155,
        fov_degrees: float | None = None,
        background_radius: float = 3.0,
        value_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        check_positive_int("num_scenes", num_scenes)
        check_positive_int("views_per_scene", views_per_scene)
        check_positive_int("resolution", resolution)
        check_positive_int("num_gaussians", num_gaussians)
        check_positive_number("background_radius", background_radius)
        if background_radius <= FFHQ_RADIUS:
            raise ValueError(
                f"`background_radius` must exceed the camera radius {FFHQ_RADIUS}, "
                f"got {background_radius}"
            )
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(
                f"`value_range` must be (low, high) with high > low, got {value_range}"
            )
        self.value_range = (low, high)
        self.resolution = resolution
        self.background_radius = float(background_radius)
        generator = torch.Generator().manual_seed(seed)
        if fov_degrees is None:
            ffhq = torch.tensor([[FFHQ_FOCAL, 0, 0.5], [0, FFHQ_FOCAL, 0.5], [0, 0, 1.0]])
            fov_degrees = float(fov_from_intrinsics(ffhq))
        intrinsics = intrinsics_from_fov(fov_degrees)
        scenes = [_scene_gaussians(num_gaussians, generator) for _ in range(num_scenes)]
        self.scenes = _stack_scenes(scenes)
        # background: base colour and 3 waves of (direction * frequency, amplitude, phase)
        base = torch.rand(num_scenes, 1, 7, generator=generator)
        waves = torch.randn(num_scenes, 3, 7, generator=generator)
        waves[..., :3] *= 2.0
        waves[..., 3:6] *= 0.15
        self.background_params = torch.cat([base, waves], dim=1)
        poses = sample_look_at_poses(
            math.pi / 2, math.pi / 2, FFHQ_LOOKAT, horizontal_stddev, vertical_stddev,
            radius=FFHQ_RADIUS, n=num_scenes * views_per_scene, generator=generator,
        )  # fmt: skip
        cameras = Cameras(
            poses.reshape(num_scenes, views_per_scene, 4, 4),
            intrinsics.expand(num_scenes, views_per_scene, 3, 3),
        )
        images, masks = self._render(cameras)
        self.images = images.reshape(-1, resolution, resolution, 3)
        self.masks = masks.reshape(-1, resolution, resolution, 1)
        self.labels = cameras.to_eg3d_labels().reshape(-1, 25)
        self.scene_ids = torch.arange(num_scenes).repeat_interleave(views_per_scene)

    @torch.no_grad()
    def _render(self, cameras: Cameras) -> tuple[Tensor, Tensor]:
        images, masks = [], []
        size = self.resolution
        for start in range(0, self.scenes.batch_size, _SCENES_PER_RENDER):
            part = slice(start, start + _SCENES_PER_RENDER)
            cams = cameras[part]
            splat = rasterize(self.scenes[part], cams, size, size, backend="torch")
            rays = cams.pixel_rays(size, size)
            t = ray_sphere_exit(rays.origins, rays.directions, self.background_radius)
            exit_dirs = rays.origins + t[..., None] * rays.directions
            exit_dirs = exit_dirs / exit_dirs.norm(dim=-1, keepdim=True)
            batch = exit_dirs.shape[0]
            background = _background_colour(
                exit_dirs.reshape(batch, -1, 3), self.background_params[part]
            ).reshape(exit_dirs.shape)
            images.append(splat.features + (1 - splat.alpha) * background)
            masks.append(splat.alpha)
        return torch.cat(images).clamp(0.0, 1.0), torch.cat(masks)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> EG3DItem:
        low, high = self.value_range
        image = self.images[index] * (high - low) + low
        label = self.labels[index]
        return EG3DItem(image, label, Cameras.from_eg3d_labels(label))

    def real_images(self, count: int | None = None) -> Float[Tensor, "N H W 3"]:
        """The first ``count`` images (all by default) in the dataset's ``value_range``."""
        low, high = self.value_range
        return self.images[:count] * (high - low) + low

    def export_eg3d(
        self, path: str | os.PathLike[str], *, as_zip: bool = False, overwrite: bool = False
    ) -> Path:
        """Writes the images as PNGs plus ``dataset.json`` in EG3D's format (and masks as PNGs).

        The export never leaves a half-written dataset: a folder is built in a temporary sibling
        folder and renamed into place once complete, and a zip archive is written to a temporary
        file and renamed over ``path``. On any failure ``path`` is left as it was and the
        temporary copy is removed.

        An existing dataset is never mixed with the new one: a non-empty folder (or, with
        ``as_zip``, an existing file) at ``path`` is refused unless ``overwrite`` is true, and then
        it is replaced completely (files of the old export that the new one lacks do not survive).
        The old folder is swapped out only once the new one is complete. An empty folder may be
        written into without ``overwrite``.

        Args:
            path: a folder to create, or with ``as_zip`` the ``.zip`` file to write. Missing
                parent folders are created.
            as_zip: write a zip archive instead of a folder.
            overwrite: replace an existing folder or archive at ``path``.

        Returns:
            The folder or archive written, readable by :class:`aware3d.data.EG3DDataset`.

        Raises:
            FileExistsError: if ``path`` is a non-empty folder or an existing archive and
                ``overwrite`` is false.
            NotADirectoryError: if a folder is to be written but ``path`` is a file.
            IsADirectoryError: if an archive is to be written but ``path`` is a folder.
        """
        path = Path(path)
        if as_zip:
            _check_archive_target(path, overwrite)
        else:
            _check_folder_target(path, overwrite)
        files = self._eg3d_files()
        if as_zip:
            path.parent.mkdir(parents=True, exist_ok=True)
            with (
                atomic_open(path) as handle,
                zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive,
            ):
                for name, data in files.items():
                    archive.writestr(name, data)
        else:
            _write_folder(path, files)
        return path

    def _eg3d_files(self) -> dict[str, bytes]:
        """The files of the EG3D export, archive-relative name -> content."""
        entries = []
        files: dict[str, bytes] = {}
        for index in range(len(self)):
            name = f"{index // 1000:05d}/img{index:08d}.png"
            entries.append([name, [float(v) for v in self.labels[index].tolist()]])
            files[name] = _png_bytes(self.images[index])
            files[f"masks/{index // 1000:05d}/img{index:08d}.png"] = _png_bytes(
                self.masks[index].expand(-1, -1, 3)
            )
        files["dataset.json"] = json.dumps({"labels": entries}).encode()
        return files


def _check_folder_target(path: Path, overwrite: bool) -> None:
    """Refuses a folder export to a file, or to a non-empty folder without ``overwrite``."""
    if not (path.exists() or path.is_symlink()):
        return
    if not path.is_dir():
        raise NotADirectoryError(
            f"{path} exists and is not a folder; export_eg3d(as_zip=False) writes a folder"
        )
    if not overwrite and any(path.iterdir()):
        raise FileExistsError(
            f"{path} is a non-empty folder; pass overwrite=True to replace it completely"
        )


def _check_archive_target(path: Path, overwrite: bool) -> None:
    """Refuses an archive export to a folder, or over an existing file without ``overwrite``."""
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; export_eg3d(as_zip=True) writes a zip file")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")


def _sibling(target: Path, tag: str) -> Path:
    """A name next to ``target`` that does not exist yet (hidden, with a random part)."""
    for _ in range(100):
        candidate = target.with_name(f".{target.name}.{tag}-{secrets.token_hex(6)}")
        if not (candidate.exists() or candidate.is_symlink()):
            return candidate
    raise FileExistsError(f"could not find a free temporary name next to {target}")


def _write_file(path: Path, data: bytes) -> None:
    """Writes a new file and syncs it to disk."""
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _write_folder(path: Path, files: dict[str, bytes]) -> None:
    """Builds the folder in a temporary sibling, then swaps it in for ``path``."""
    target = Path(os.path.realpath(path))
    if not target.name:
        raise ValueError(f"cannot export a dataset to {path}: it has no name to build it beside")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _sibling(target, "new")
    os.mkdir(temp, 0o777)  # the umask applies, like any new folder
    try:
        for name, data in files.items():
            (temp / name).parent.mkdir(parents=True, exist_ok=True)
            _write_file(temp / name, data)
        if not target.exists():
            os.rename(temp, target)
            return
        old = _sibling(target, "old")
        os.rename(target, old)
        try:
            os.rename(temp, target)
        except BaseException:
            os.rename(old, target)
            raise
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    try:
        shutil.rmtree(old)
    except OSError as error:
        raise OSError(
            f"exported to {path}, but could not remove the previous version, moved to {old}: "
            f"{error}"
        ) from error


def _stack_scenes(scenes: list[Gaussians]) -> Gaussians:
    """Stacks single-scene Gaussians (all with ``num_gaussians`` each) into one batch."""
    return Gaussians._trusted(
        torch.cat([s.means for s in scenes]),
        torch.cat([s.quats for s in scenes]),
        torch.cat([s.scales for s in scenes]),
        torch.cat([s.opacities for s in scenes]),
        torch.cat([s.features for s in scenes]),
        None,
    )


def _png_bytes(image: Tensor) -> bytes:
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()
