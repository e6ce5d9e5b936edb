"""``aware3d demo``: the demo recipe through :func:`aware3d.training.fit`, then its figures.

The run folder is an ordinary training run (``checkpoints/step-*``, ``log.jsonl``, ``images/``)
that ``aware3d eval``, ``aware3d render`` and ``aware3d train --resume`` read; the demo adds its
figures (samples, turntable, decomposition, levels, loss curves, a PLY) and ``metrics.json`` with
the sliced Wasserstein distance, the separation loss and the foreground coverage of the EMA
generator before and after training.
"""

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import Dataset

from aware3d._io import atomic_write_text
from aware3d.cameras import Cameras, fov_from_intrinsics
from aware3d.data.eg3d import EG3DItem
from aware3d.functional.losses import separation_loss
from aware3d.models import DemoGenerator, SupportsPLYExport, check_generator
from aware3d.nn.background import SphericalBackground
from aware3d.recipes import RECIPES, DemoRecipe, train
from aware3d.training import (
    claim_run_folder,
    dataset_labels,
    make_ema,
    resize_images,
    sliced_wasserstein_distance,
)
from aware3d.viz import figures

__all__ = ["DemoEvaluation", "demo_metrics", "run_demo"]

_METRIC_SEED = 12345
#: Losses drawn in ``loss_curves.png`` (those the generator returns).
_CURVES = ("d_loss", "g_loss", "separation", "distortion", "density", "r1")


class DemoEvaluation(NamedTuple):
    """Quality of a generator against the first ``count`` real images.

    Attributes:
        swd: mean sliced Wasserstein distance (x1e3) to the real images.
        swd_per_level: the same per Laplacian-pyramid level.
        separation: mean separation loss of the generated images.
        coverage_fake: mean foreground opacity of the generated images.
        coverage_real: mean ground-truth foreground mask of the same real images (``None`` for
            data without masks).
    """

    swd: float
    swd_per_level: list[float]
    separation: float
    coverage_fake: float
    coverage_real: float | None


@torch.no_grad()
def demo_metrics(
    generator: nn.Module, data: Dataset[EG3DItem], resolution: int, count: int, device: torch.device
) -> DemoEvaluation:
    """SWD, separation loss and foreground coverage of ``generator`` from fixed latents.

    The fakes are rendered from the cameras of the first ``count`` items; the generator's output
    must carry a ``composite`` (every generator of the library's does).
    """
    gen = check_generator(generator)
    count = min(count, len(data))  # type: ignore[arg-type]
    labels = dataset_labels(data)[:count].to(device)
    z = torch.randn(count, gen.latent_dim, generator=torch.Generator().manual_seed(_METRIC_SEED))
    fakes, separations, coverages = [], [], []
    for start in range(0, count, 32):
        part = slice(start, start + 32)
        cameras = Cameras.from_eg3d_labels(labels[part, None])
        out = generator(z[part].to(device), cameras, resolution, resolution)
        fakes.append(out.images[:, 0].cpu())
        separations.append(separation_loss(out.composite.bg_transmittance, reduction="sum"))
        coverages.append(out.composite.opacity.sum())
    fake = torch.cat(fakes)
    real = resize_images(torch.stack([data[i].image for i in range(count)]), resolution)
    swd = sliced_wasserstein_distance((real.clamp(-1, 1) + 1) / 2, (fake.clamp(-1, 1) + 1) / 2,
                                      min_size=16)  # fmt: skip
    masks = getattr(data, "masks", None)
    pixels = count * resolution**2
    return DemoEvaluation(
        swd.mean, list(swd.per_level), float(torch.stack(separations).sum()) / pixels,
        float(torch.stack(coverages).sum()) / pixels,
        None if masks is None else float(masks[:count].mean()),
    )  # fmt: skip


def _write_figures(
    generator: Any, data: Dataset[EG3DItem], config: DemoRecipe, out: Path, device: torch.device,
    history: dict[str, list[float]],
) -> None:  # fmt: skip
    labels_all = dataset_labels(data)
    count = min(16, labels_all.shape[0])
    latents = torch.randn(count, generator.latent_dim,
                          generator=torch.Generator().manual_seed(7)).to(device)  # fmt: skip
    labels = labels_all[:count].to(device)
    resolution = config.resolution
    figures.save_samples(generator, latents, labels, resolution, out / "samples.png")
    fov = float(fov_from_intrinsics(labels_all[0, 16:].reshape(3, 3)))
    figures.save_turntable(generator, latents[:4], fov, resolution, out / "turntable.gif")
    if isinstance(getattr(generator, "background", None), SphericalBackground):  # sphere + splats
        figures.save_decomposition(generator, latents[:4], labels[:4], resolution,
                                   out / "decomposition.png")  # fmt: skip
    if isinstance(generator, DemoGenerator):  # the hierarchy's levels
        figures.save_levels(generator, latents[:3], labels[:3], resolution, out / "levels.png")
    first = generator(latents[:1], Cameras.from_eg3d_labels(labels[:1, None]), resolution,
                      resolution)  # fmt: skip
    if isinstance(generator, SupportsPLYExport):
        generator.export_ply(first, out / "sample.ply")
    curves = {name: history[name] for name in _CURVES if name in history}
    if "r1" in curves:  # R1 runs every r1_interval steps; the others hold 0
        curves["r1"] = curves["r1"][:: config.r1_interval]
    figures.save_loss_curves(curves, out / "loss_curves.png")


def run_demo(
    config: DemoRecipe,
    *,
    out: Path,
    data_path: Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Trains the demo recipe into ``out`` and writes its figures and ``metrics.json``.

    Args:
        config: the demo recipe's configuration.
        out: the run's folder (empty or missing, unless ``overwrite``).
        data_path: an EG3D data set; ``None`` for the synthetic scenes.
        device: the training device.
        progress: show the progress bar.
        overwrite: move an earlier run in ``out`` aside (to ``<out>.old-<time>``) first.

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        RunFolderError: for a folder holding another run (without ``overwrite``) or in use.
    """
    if not overwrite:  # refuse before minutes of work, not after
        claim_run_folder(out, resuming=False, overwrite=False)
    recipe = RECIPES["demo"]
    start = time.perf_counter()
    torch_device = torch.device(device)
    data = recipe.data(config, data_path)
    print(f"data: {type(data).__name__}, {len(data)} images at {config.resolution} px")  # type: ignore[arg-type]
    torch.manual_seed(config.seed)  # the generator fit starts from, as train() builds it
    initial = make_ema(recipe.generator(config)).to(torch_device)
    before = demo_metrics(initial, data, config.resolution, config.metric_images, torch_device)
    del initial
    result = train(recipe, config, out=out, data=data_path, device=device, progress=progress,
                   tensorboard=False, overwrite=overwrite)  # fmt: skip
    generator = result.networks.generator_ema
    after = demo_metrics(generator, data, config.resolution, config.metric_images, torch_device)
    _write_figures(generator, data, config, out, torch_device, result.history)
    separation_tail = result.history.get("separation", [])[-50:]
    metrics = {
        "sliced_wasserstein_start": before.swd,
        "sliced_wasserstein_end": after.swd,
        "sliced_wasserstein_start_per_level": before.swd_per_level,
        "sliced_wasserstein_end_per_level": after.swd_per_level,
        "separation_loss_start": before.separation,
        "separation_loss_end": after.separation,
        "foreground_coverage_fake_start": before.coverage_fake,
        "foreground_coverage_fake": after.coverage_fake,
        "foreground_coverage_real": after.coverage_real,
        "separation_loss_mean_last_50_steps": sum(separation_tail) / max(1, len(separation_tail)),
        "steps": result.step,
        "checkpoint": str(result.checkpoint),
        "data": f"{type(data).__name__}({len(data)})",  # type: ignore[arg-type]
        "config": dataclasses.asdict(config),
        "total_seconds": time.perf_counter() - start,
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    real = after.coverage_real
    print(
        f"sliced Wasserstein distance (x1e3, lower is better): {before.swd:.1f} at the start -> "
        f"{after.swd:.1f} at the end; foreground coverage {after.coverage_fake:.3f}"
        + ("" if real is None else f" (real images: {real:.3f})")
        + f"; separation loss {before.separation:.3f} -> {after.separation:.3f}; "
        f"{metrics['total_seconds']:.0f} s; wrote {out}/"
    )
    return metrics
