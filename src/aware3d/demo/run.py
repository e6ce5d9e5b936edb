"""``aware3d demo``: train the demo GAN and write every figure, the checkpoint and the metrics."""

import json
import time
from pathlib import Path
from typing import NamedTuple

import torch

from aware3d._io import atomic_write_text
from aware3d.cameras import fov_from_intrinsics
from aware3d.data.eg3d import EG3DDataset
from aware3d.data.synthetic import SyntheticScenes
from aware3d.demo import figures
from aware3d.demo.generator import Generator3D
from aware3d.demo.models import ImageRenderer, latent_dim
from aware3d.demo.train import DemoConfig, TrainingRun, train
from aware3d.training import save_checkpoint


class DemoData(NamedTuple):
    """Images in [-1, 1] and their EG3D labels, held in memory."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None
    description: str


def load_data(path: Path | None, resolution: int, seed: int, max_images: int) -> DemoData:
    """Synthetic scenes by default, or an EG3D dataset (images resized to ``resolution``)."""
    if path is None:
        scenes = SyntheticScenes(
            num_scenes=max_images // 4, views_per_scene=4, resolution=resolution, seed=seed,
            value_range=(-1.0, 1.0),
        )  # fmt: skip
        return DemoData(
            scenes.real_images(), scenes.labels, scenes.masks, f"SyntheticScenes({len(scenes)})"
        )
    dataset = EG3DDataset(path, value_range=(-1.0, 1.0))
    count = min(len(dataset), max_images)
    images, labels = [], []
    for index in range(count):
        item = dataset[index]
        image = item.image
        if image.shape[0] != resolution or image.shape[1] != resolution:
            image = torch.nn.functional.interpolate(
                image.permute(2, 0, 1)[None], size=(resolution, resolution), mode="area"
            )[0].permute(1, 2, 0)
        images.append(image)
        labels.append(item.label)
    return DemoData(torch.stack(images), torch.stack(labels), None, f"EG3DDataset({path}, {count})")


def write_outputs(run: TrainingRun, data: DemoData, out: Path, device: torch.device) -> dict:
    """Writes the figures, the PLY, the checkpoint and ``metrics.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    config = run.config
    g = run.generator_ema
    count = min(16, data.labels.shape[0])
    latents = torch.randn(count, latent_dim(g), generator=torch.Generator().manual_seed(7))
    latents = latents.to(device)
    labels = data.labels[:count].to(device)
    resolution = config.resolution
    render = ImageRenderer(g)
    figures.save_samples(render, latents, labels, resolution, out / "samples.png")
    fov = float(fov_from_intrinsics(data.labels[0, 16:].reshape(3, 3)))
    figures.save_turntable(render, latents[:4], fov, resolution, out / "turntable.gif")
    if isinstance(g, Generator3D):  # the figures that read the demo generator's parts
        figures.save_decomposition(
            g, latents[:4], labels[:4], resolution, out / "decomposition.png"
        )
        figures.save_levels(g, latents[:3], labels[:3], resolution, out / "levels.png")
        figures.save_sample_ply(g, latents, out / "sample.ply")
    figures.save_loss_curves(run.history, out / "loss_curves.png")
    metrics = run.metrics()
    metrics["data"] = data.description
    save_checkpoint(
        out / "checkpoint",
        {"generator": run.generator, "generator_ema": g, "discriminator": run.discriminator},
        {"demo_config": metrics["config"], "metrics": {k: v for k, v in metrics.items()
                                                        if k != "config"}},
    )  # fmt: skip
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def run_demo(
    *,
    data_path: Path | None,
    out: Path,
    device: str,
    config: DemoConfig,
    max_images: int = 2048,
    progress: bool = True,
) -> dict:
    """Loads data, trains, writes outputs; returns the metrics."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.perf_counter()
    data = load_data(data_path, config.resolution, config.seed, max_images)
    print(f"data: {data.description}, {data.images.shape[0]} images at {config.resolution} px")
    run = train(config, data, device, progress=progress)
    metrics = write_outputs(run, data, out, torch.device(device))
    metrics["total_seconds"] = time.perf_counter() - start
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    real = metrics["foreground_coverage_real"]
    print(
        f"sliced Wasserstein distance (x1e3, lower is better): "
        f"{metrics['sliced_wasserstein_start']:.1f} at the start -> "
        f"{metrics['sliced_wasserstein_end']:.1f} at the end; foreground coverage "
        f"{metrics['foreground_coverage_fake']:.3f}"
        + ("" if real is None else f" (real images: {real:.3f})")
        + f"; separation loss {metrics['separation_loss_start']:.3f} -> "
        f"{metrics['separation_loss_end']:.3f}; {metrics['total_seconds']:.0f} s; wrote {out}/"
    )
    return metrics
