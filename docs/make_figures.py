"""Regenerates the docs' figures from a demo run: ``python docs/make_figures.py out/demo``.

Copies the demo's figures into ``docs/pages/assets/`` and renders two more: a splatted scene
(colour, alpha, depth) and the trained background's panorama.
"""

import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from aware3d import Cameras, rasterize
from aware3d.data import SyntheticScenes
from aware3d.demo import DemoConfig, build_models
from aware3d.training import load_checkpoint

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
    generator, _ = build_models(DemoConfig(), torch.device("cpu"))
    load_checkpoint(demo / "checkpoint", {"generator_ema": generator})
    z = torch.randn(3, generator.z_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ws = generator.mapping(z)
        panoramas = generator.background.panorama(ws[:, -1], 64, 128)
    fig, axes = plt.subplots(3, 1, figsize=(6, 6.5))
    for ax, image in zip(axes, panoramas, strict=True):
        ax.imshow(((image + 1) / 2).clamp(0, 1))
        ax.axis("off")
    axes[0].set_title("trained backgrounds, equirectangular (longitude x latitude)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    """Copies the demo's figures and renders the two extra ones."""
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
