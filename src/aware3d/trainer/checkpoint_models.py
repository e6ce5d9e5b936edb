"""A trained checkpoint's generator, and what ``aware3d eval`` and ``aware3d render`` do with it."""

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aware3d.trainer import checkpoints
from aware3d.trainer.data import dataset_labels, open_dataset
from aware3d.trainer.distributed import DistributedContext
from aware3d.trainer.evaluate import Evaluator
from aware3d.trainer.loop import resolve_resume
from aware3d.trainer.models import build_generator
from aware3d.trainer.recipes import TrainConfig, config_from_json

__all__ = ["evaluate_checkpoint", "load_generator", "render_checkpoint"]


def load_generator(
    checkpoint: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """The EMA generator of a checkpoint (or of a run folder's newest), its recipe and state.

    Raises:
        FileNotFoundError: if the folder holds no checkpoint.
        ValueError: for a checkpoint whose files do not match its recipe's generator.
    """
    folder = resolve_resume(str(checkpoint), Path(checkpoint))
    assert folder is not None
    config = config_from_json(checkpoints.read_checkpoint_config(folder))
    generator = build_generator(config)
    state = checkpoints.load_training_checkpoint(folder, modules={"generator_ema": generator})
    state["folder"] = str(folder)
    return generator.to(device).eval().requires_grad_(False), config, state


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    *,
    data: Path | None,
    device: str = "cpu",
    images: int | None = None,
    inception_weights: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """SWD (and FID/KID when the Inception weights are found) of a checkpoint's EMA generator.

    Returns:
        ``{"checkpoint", "step", "kimg", "images", "metrics": {...}}``.
    """
    generator, config, state = load_generator(checkpoint, device)
    if images is not None:
        config = dataclasses.replace(config, metric_images=images)
    dataset = open_dataset(data, config)
    ctx = DistributedContext(0, 1, 0, torch.device(device))
    evaluator = Evaluator(dataset, config, ctx, inception_weights)
    metrics = evaluator(generator)
    return {"checkpoint": str(state["folder"]), "step": state["step"],
            "kimg": state["images_seen"] / 1000, "images": evaluator.count,
            "metrics": metrics}  # fmt: skip


def render_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: Path,
    *,
    device: str = "cpu",
    count: int = 16,
    seed: int = 0,
) -> dict[str, Path]:
    """Writes a checkpoint's samples (grid, turntable GIF, depth, PLY) into ``out``.

    The cameras are drawn, seeded by ``seed``, by the synthetic scenes' camera sampler (EG3D's
    FFHQ poses: radius 2.7 around the frontal view, FFHQ's focal length), so no data set is
    needed.
    """
    from aware3d.data.synthetic import SyntheticScenes
    from aware3d.trainer.render import render_outputs

    generator, config, _ = load_generator(checkpoint, device)
    scenes = SyntheticScenes(num_scenes=max(1, count // 4), views_per_scene=4,
                             resolution=16, seed=seed)  # fmt: skip
    labels = dataset_labels(scenes).to(device)
    return render_outputs(generator, out, labels=labels, resolution=config.resolution,
                          count=count, seed=seed)  # fmt: skip
