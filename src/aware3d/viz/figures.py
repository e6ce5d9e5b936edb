"""Figures: image grids, sample grids, turntable GIFs, decompositions, level renders, loss curves.

Every function takes a generator's call ``(z, cameras, width, height) -> output with .images``
(any :class:`~aware3d.models.GeneratorProtocol`), except :func:`save_decomposition` and
:func:`save_levels`, which read the parts of a :class:`~aware3d.models.GSGANGenerator` (and the
demo's :class:`~aware3d.models.DemoGenerator` hierarchy).
"""

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from aware3d.cameras import Cameras, intrinsics_from_fov, orbit
from aware3d.models.demo import DemoGenerator
from aware3d.models.gsgan import GSGANGenerator
from aware3d.nn.background import SphericalBackground
from aware3d.viz.hierarchy import render_levels

__all__ = [
    "decomposition_columns",
    "grid",
    "save_decomposition",
    "save_levels",
    "save_loss_curves",
    "save_samples",
    "save_turntable",
    "to_uint8",
]


def to_uint8(images: Tensor) -> np.ndarray:
    """Images in [-1, 1], channels-last, to uint8 numpy."""
    return ((images.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def grid(images: np.ndarray, columns: int) -> np.ndarray:
    """Tiles ``[N, H, W, 3]`` images into a grid with ``columns`` columns (padding with white)."""
    count, height, width, channels = images.shape
    rows = math.ceil(count / columns)
    canvas = np.full((rows * height, columns * width, channels), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * height : (r + 1) * height, c * width : (c + 1) * width] = image
    return canvas


@torch.no_grad()
def save_samples(
    generator: Callable[..., Any], z: Tensor, labels: Tensor, resolution: int, path: Path
) -> None:
    """A grid of samples, each from the camera of the matching label.

    ``generator(z, cameras, width, height)`` returns an output with ``.images [B, C, H, W, 3]``.
    """
    cameras = Cameras.from_eg3d_labels(labels[:, None])
    images = generator(z, cameras, resolution, resolution).images[:, 0]
    columns = max(1, math.isqrt(len(z)))
    Image.fromarray(grid(to_uint8(images), columns)).resize(
        (columns * resolution * 2, math.ceil(len(z) / columns) * resolution * 2),
        Image.Resampling.NEAREST,
    ).save(path)


@torch.no_grad()
def save_turntable(
    generator: Callable[..., Any],
    z: Tensor,
    fov_degrees: float,
    resolution: int,
    path: Path,
    frames: int = 24,
) -> None:
    """A GIF of every latent's scene seen from an orbit of cameras (side by side).

    ``generator`` is called as in :func:`save_samples`.
    """
    poses = orbit(frames, horizontal_amplitude=0.6, vertical_amplitude=0.15)
    intrinsics = intrinsics_from_fov(fov_degrees).expand(frames, 3, 3)
    cameras = Cameras(
        poses[None].expand(len(z), frames, 4, 4).to(z.device),
        intrinsics[None].expand(len(z), frames, 3, 3).to(z.device),
    )
    images = generator(z, cameras, resolution, resolution).images  # [B, T, H, W, 3]
    strips = [grid(to_uint8(images[:, t]), len(z)) for t in range(frames)]  # each [H, B*W, 3]
    scale = 2
    pictures = [
        Image.fromarray(s).resize(
            (s.shape[1] * scale, s.shape[0] * scale), Image.Resampling.NEAREST
        )
        for s in strips
    ]
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=80, loop=0)


@torch.no_grad()
def decomposition_columns(
    generator: GSGANGenerator, z: Tensor, labels: Tensor, resolution: int
) -> dict[str, Tensor]:
    """The panels of :func:`save_decomposition` as image values ``[N, H, W, 3]`` in [-1, 1].

    The foreground (premultiplied by its opacity) and the background are in the generator's
    colour space and pass through its ``colours_to_image`` (``2 x - 1`` for GSGAN's SH-0
    colours), as the composite does.
    """
    sphere = generator.background
    if not isinstance(sphere, SphericalBackground):
        raise TypeError(
            "the decomposition needs a generator over a SphericalBackground, got "
            f"{type(sphere).__name__}"
        )
    cameras = Cameras.from_eg3d_labels(labels[:, None])
    out = generator(z, cameras, resolution, resolution)
    background = sphere.render(cameras, resolution, resolution, out.ws[:, -1])
    return {
        "foreground (premultiplied)": generator.colours_to_image(out.splat.features[:, 0]),
        "foreground opacity": out.composite.opacity[:, 0].expand(-1, -1, -1, 3) * 2 - 1,
        "background": generator.colours_to_image(background[:, 0]),
        "composite": out.images[:, 0],
    }


def save_decomposition(
    generator: GSGANGenerator, z: Tensor, labels: Tensor, resolution: int, path: Path
) -> None:
    """Foreground, its opacity, the background alone and the composite, one row per latent.

    For a generator over BallGAN's sphere (a :class:`~aware3d.nn.SphericalBackground`).
    """
    columns = decomposition_columns(generator, z, labels, resolution)
    fig, axes = plt.subplots(len(z), 4, figsize=(8, 2 * len(z)), squeeze=False)
    for col, (title, images) in enumerate(columns.items()):
        pictures = to_uint8(images)
        for row in range(len(z)):
            axes[row, col].imshow(pictures[row])
            axes[row, col].axis("off")
        axes[0, col].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@torch.no_grad()
def save_levels(
    generator: DemoGenerator, z: Tensor, labels: Tensor, resolution: int, path: Path
) -> None:
    """Renders levels 0..l cumulatively (coarse to fine), one row per latent."""
    hierarchy, _ = generator.hierarchy(z)
    cameras = Cameras.from_eg3d_labels(labels[:, None])
    white = torch.ones(len(z), 1, 3, device=z.device)
    images = render_levels(hierarchy, cameras, resolution, resolution, backgrounds=white)
    fig, axes = plt.subplots(len(z), len(images), figsize=(2 * len(images), 2 * len(z)),
                             squeeze=False)  # fmt: skip
    for level, image in enumerate(images):
        pictures = to_uint8(image[:, 0])
        for row in range(len(z)):
            axes[row, level].imshow(pictures[row])
            axes[row, level].axis("off")
        levels = hierarchy.gaussians.levels
        assert levels is not None
        count = int((levels <= level).sum())
        axes[0, level].set_title(f"levels 0..{level} ({count} G.)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def save_loss_curves(history: dict[str, list[float]], path: Path) -> None:
    """Plots every loss against the step (moving average over 10 steps)."""
    keys = [k for k, v in history.items() if v]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        values = np.asarray(history[key])
        window = min(10, len(values))
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        ax.plot(values, alpha=0.3, color="tab:blue")
        ax.plot(np.arange(window - 1, len(values)), smooth, color="tab:blue")
        ax.set_title(key)
        ax.set_xlabel("step" if key != "r1" else "R1 step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
