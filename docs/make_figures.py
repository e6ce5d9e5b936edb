"""Regenerates the docs' figures from a demo run: ``python docs/make_figures.py out/demo``.

Copies the demo's figures into ``docs/pages/assets/`` and renders three more: a splatted scene
(colour, alpha, depth), the trained background's panorama and EG3D's coarse + fine sampling of
one ray, a hand-made tri-plane and BallGAN's super-resolution path
(``python docs/make_figures.py --components`` renders only those, without a demo run).
"""

import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from aware3d import Cameras, intrinsics_from_fov, orbit, rasterize
from aware3d.data import SyntheticScenes
from aware3d.functional import (
    composite_volume,
    midpoint_volume_samples,
    sample_coarse_fine,
    smooth_weights_eg3d,
)
from aware3d.models import ballgan_small
from aware3d.nn import SphericalBackground, TriplaneRenderer
from aware3d.recipes import load_generator

ASSETS = Path(__file__).parent / "pages" / "assets"


def splat_figure(path: Path) -> None:
    """Colour, alpha and depth of one synthetic scene from three cameras."""
    scenes = SyntheticScenes(num_scenes=1, views_per_scene=3, resolution=96, seed=3)
    cameras = Cameras.from_eg3d_labels(scenes.labels[None])
    out = rasterize(scenes.scenes, cameras, 96, 96)
    fig, axes = plt.subplots(3, 3, figsize=(6, 6))
    for view in range(3):
        depth = out.depth[0, view, ..., 0]
        panels = [
            (out.features[0, view].clamp(0, 1), "colour (premultiplied)", None),
            (out.alpha[0, view, ..., 0], "alpha", "gray"),
            (torch.where(out.alpha[0, view, ..., 0] > 0.05, depth, torch.nan), "depth", "viridis"),
        ]
        for col, (image, title, cmap) in enumerate(panels):
            axes[view, col].imshow(image, cmap=cmap)
            axes[view, col].axis("off")
            if view == 0:
                axes[view, col].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def panorama_figure(demo: Path, path: Path) -> None:
    """Panoramas of the trained EMA generator's backgrounds for three latents."""
    generator, *_ = load_generator(demo)
    z = torch.randn(3, generator.z_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ws = generator.mapping(z)
        panoramas = generator.background.panorama(ws[:, -1], 128, 64)
    fig, axes = plt.subplots(3, 1, figsize=(6, 6.5))
    for ax, image in zip(axes, panoramas, strict=True):
        ax.imshow(((image + 1) / 2).clamp(0, 1))
        ax.axis("off")
    axes[0].set_title("trained backgrounds, equirectangular (longitude x latitude)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sampling_figure(path: Path) -> None:
    """EG3D's coarse + fine samples on one ray through a thin shell, and the resulting weights."""

    def field(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = 2.7 - points[..., 2]  # the ray runs along -z from z = 2.7
        raw = -4.0 + 60.0 * torch.exp(-(((t - 2.62) / 0.025) ** 2))
        return raw, torch.ones(*raw.shape, 1)

    origins = torch.tensor([[[0.0, 0.0, 2.7]]])
    dirs = torch.tensor([[[0.0, 0.0, -1.0]]])
    near, far = torch.full((1, 1), 2.25), torch.full((1, 1), 3.3)
    samples = sample_coarse_fine(
        field, origins, dirs, near, far, generator=torch.Generator().manual_seed(0)
    )
    merged = midpoint_volume_samples(*samples.merged)
    result = composite_volume(*merged, torch.zeros(1, 1, 1))
    t = torch.linspace(2.25, 3.3, 2000)
    raw = field(torch.stack([torch.zeros_like(t), torch.zeros_like(t), 2.7 - t], -1))[0]
    coarse_t = torch.linspace(2.25, 3.3, 48)
    fig, axes = plt.subplots(2, 1, figsize=(8, 4.2), sharex=True)
    axes[0].plot(t, torch.nn.functional.softplus(raw - 1), color="0.3", label="density")
    axes[0].plot(
        samples.fine.t[0, 0], torch.zeros(48) - 1, "|", color="tab:red", label="48 fine samples"
    )
    axes[0].plot(
        samples.merged.t[0, 0][~torch.isin(samples.merged.t[0, 0], samples.fine.t[0, 0])],
        torch.zeros(48) - 3, "|", color="tab:blue", label="48 coarse samples",
    )  # fmt: skip
    axes[0].set_ylabel("softplus(x - 1)")
    axes[0].legend(fontsize=8, loc="upper right")
    mids = 0.5 * (samples.merged.t[0, 0, 1:] + samples.merged.t[0, 0, :-1])
    coarse_mids = 0.5 * (coarse_t[1:] + coarse_t[:-1])
    smoothed = smooth_weights_eg3d(samples.coarse_weights[0, 0])
    axes[1].step(coarse_mids, smoothed, where="mid", color="tab:blue",
                 label="coarse weights, smoothed + 0.01")  # fmt: skip
    axes[1].plot(mids, result.weights[0, 0], ".-", color="tab:red", ms=3,
                 label="final interval weights")  # fmt: skip
    axes[1].set_xlabel("distance along the ray t (FFHQ bounds 2.25 to 3.3)")
    axes[1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _disc_triplane(resolution: int = 64) -> torch.Tensor:
    """A hand-made tri-plane ``[1, 3, 4, R, R]``: an occupancy disc per plane, colour ramps."""
    u = (torch.arange(resolution) + 0.5) / resolution * 2 - 1
    a, b = torch.meshgrid(u, u, indexing="xy")
    planes = torch.zeros(1, 3, 4, resolution, resolution)
    planes[0, :, 0] = torch.exp(-((torch.sqrt(a**2 + b**2) / 0.45) ** 4))
    planes[0, :, 1] = 0.5 + 0.5 * a
    planes[0, :, 2] = 0.5 - 0.5 * b
    planes[0, :, 3] = 0.6
    return planes


class _OccupancyDecoder(torch.nn.Module):
    """Mean over the planes; density from channel 0, colour from the others."""

    def forward(self, sampled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw densities and colours."""
        mean = sampled.mean(dim=1)
        return 200.0 * (mean[..., 0] - 0.75), mean[..., 1:].clamp(0, 1)


def triplane_figure(path: Path) -> None:
    """The three planes of a hand-made tri-plane and its volume renders from three cameras."""
    torch.manual_seed(0)
    planes = _disc_triplane()
    background = SphericalBackground(16, feature_dim=3, hidden=32, num_layers=2, num_freqs=2,
                                     output_activation="sigmoid")  # fmt: skip
    renderer = TriplaneRenderer(_OccupancyDecoder(), background)
    cameras = Cameras(orbit(3, horizontal_amplitude=0.6)[None],
                      intrinsics_from_fov(13.4).expand(1, 3, 3, 3))  # fmt: skip
    with torch.no_grad():
        out = renderer(planes, cameras, 64, 64, torch.randn(1, 16), deterministic=True)
    fig, axes = plt.subplots(3, 3, figsize=(6.6, 6.6))
    for k, name in enumerate(("plane (x, y)", "plane (x, z)", "plane (z, x)")):
        axes[0, k].imshow(planes[0, k, 0], cmap="gray", vmin=0, vmax=1)
        axes[0, k].set_title(name, fontsize=9)
    for view in range(3):
        axes[1, view].imshow(out.image[0, view].clamp(0, 1))
        depth = out.depth[0, view, ..., 0]
        axes[2, view].imshow((depth - depth.min()) / (depth.max() - depth.min()), cmap="viridis")
    axes[1, 0].set_title("composite over the sphere", fontsize=9, loc="left")
    axes[2, 0].set_title("camera-space depth", fontsize=9, loc="left")
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def superresolution_figure(path: Path) -> None:
    """BallGAN's image path (untrained ``ballgan_small``): raw, resized raw, output."""
    torch.manual_seed(0)
    generator = ballgan_small(32, resolution=64, neural_resolution=16)
    cameras = Cameras(orbit(1)[None], intrinsics_from_fov(13.4).expand(1, 1, 3, 3))
    with torch.no_grad():
        out = generator(torch.randn(1, 32), cameras, 64, 64, z_background=torch.randn(1, 32),
                        noise_mode="const", deterministic=True)  # fmt: skip
        dual = generator.discriminator_images(out)
    panels = {
        "raw image, 16 x 16\n(composited features 0-2)": out.images_raw[0, 0],
        "raw resized to 64 x 64\n(dual discriminator, ch. 3-5)": dual[0, 0, ..., 3:],
        "super-resolved, 64 x 64\n(dual discriminator, ch. 0-2)": out.images[0, 0],
    }
    fig, axes = plt.subplots(1, 3, figsize=(8, 3))
    for ax, (title, image) in zip(axes, panels.items(), strict=True):
        ax.imshow(((image + 1) / 2).clamp(0, 1))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    """Copies the demo's figures and renders the extra ones."""
    ASSETS.mkdir(parents=True, exist_ok=True)
    sampling_figure(ASSETS / "volume-sampling.png")
    triplane_figure(ASSETS / "triplane-render.png")
    superresolution_figure(ASSETS / "superresolution.png")
    if sys.argv[1:] == ["--components"]:
        return
    demo = Path(sys.argv[1] if len(sys.argv) > 1 else "out/demo")
    ASSETS.mkdir(parents=True, exist_ok=True)
    for name in ("samples.png", "decomposition.png", "levels.png", "loss_curves.png"):
        shutil.copy(demo / name, ASSETS / f"demo-{name}")
    shutil.copy(demo / "turntable.gif", ASSETS / "demo-turntable.gif")
    splat_figure(ASSETS / "splat-views.png")
    panorama_figure(demo, ASSETS / "background-panorama.png")
    print(f"wrote figures to {ASSETS}")


if __name__ == "__main__":
    main()
