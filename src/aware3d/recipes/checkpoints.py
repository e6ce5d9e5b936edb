"""A trained checkpoint's generator, and what ``aware3d eval`` and ``aware3d render`` do with it."""

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aware3d._io import check_writable_folder
from aware3d.recipes.config import TrainConfig
from aware3d.recipes.registry import Recipe, config_from_json
from aware3d.recipes.released import is_converted, load_converted
from aware3d.training import Evaluator, dataset_labels, resolve_resume
from aware3d.training import run_checkpoints as checkpoints
from aware3d.viz import render_outputs

__all__ = ["evaluate_checkpoint", "load_generator", "render_checkpoint"]

#: Images per set when ``aware3d eval`` evaluates a converted released model without ``--images``.
CONVERTED_METRIC_IMAGES = 2000


def load_generator(
    checkpoint: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    argument: str = "--checkpoint",
) -> tuple[nn.Module, Recipe, TrainConfig, dict[str, Any]]:
    """The EMA generator of a checkpoint (or of a run folder's newest), its recipe and state.

    Reads the output of ``aware3d train`` and ``aware3d demo`` alike (a run folder, or one of its
    ``checkpoints/step-*`` folders). A folder written by ``aware3d convert`` has no recipe: read
    it with :func:`~aware3d.recipes.load_converted`.

    Args:
        checkpoint: a checkpoint folder or a run folder.
        device: where to put the generator.
        argument: the option the user gave the path with (for error messages).

    Raises:
        FileNotFoundError: if the folder holds no checkpoint (naming ``argument``).
        ValueError: for a checkpoint whose files do not match its recipe's generator.
    """
    if is_converted(checkpoint):
        raise ValueError(
            f"{argument} {checkpoint}: a converted released model, not a training checkpoint; "
            "read it with aware3d.recipes.load_converted"
        )
    folder = resolve_resume(Path(checkpoint), Path(checkpoint), argument=argument)
    assert folder is not None
    recipe, config = config_from_json(checkpoints.read_checkpoint_config(folder))
    torch.manual_seed(config.seed)
    generator = recipe.generator(config)
    state = checkpoints.load_training_checkpoint(folder, modules={"generator_ema": generator})
    state["folder"] = str(folder)
    return generator.to(device).eval().requires_grad_(False), recipe, config, state


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    *,
    data: Path | None,
    device: str = "cpu",
    images: int | None = None,
    inception_weights: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """SWD (and FID/KID when the Inception weights are found) of a checkpoint's EMA generator.

    A folder written by ``aware3d convert`` is evaluated against ``data`` (required) at the
    released resolution, with :data:`CONVERTED_METRIC_IMAGES` images per set by default.

    Returns:
        ``{"checkpoint", "step", "kimg", "images", "metrics": {...}}`` (``step`` and ``kimg``
        None, and ``source`` the released file's name, for a converted model).

    Raises:
        ValueError: a converted model without ``data``.
    """
    if is_converted(checkpoint):
        return _evaluate_converted(Path(checkpoint), data, device, images, inception_weights)
    generator, recipe, config, state = load_generator(checkpoint, device)
    dataset = recipe.data(config, data)
    evaluator = Evaluator(
        dataset, resolution=config.resolution,
        images=config.metric_images if images is None else images, device=device,
        inception_weights=inception_weights,
    )  # fmt: skip
    metrics = evaluator(generator)
    return {"checkpoint": str(state["folder"]), "step": state["step"],
            "kimg": state["images_seen"] / 1000, "images": evaluator.count,
            "metrics": metrics}  # fmt: skip


def _evaluate_converted(
    folder: Path, data: Path | None, device: str, images: int | None,
    inception_weights: str | os.PathLike[str] | None,
) -> dict[str, Any]:  # fmt: skip
    from aware3d.data import EG3DDataset

    if data is None:
        raise ValueError(
            f"{folder} is a converted released model: pass its data set with --data (an EG3D "
            "folder or zip)"
        )
    model = load_converted(folder, device)
    evaluator = Evaluator(
        EG3DDataset(data, value_range=(-1.0, 1.0)), resolution=model.resolution,
        images=CONVERTED_METRIC_IMAGES if images is None else images, device=device,
        inception_weights=inception_weights,
    )  # fmt: skip
    metrics = evaluator(model.generator_ema)
    return {"checkpoint": str(folder), "step": None, "kimg": None,
            "source": model.info["source"]["file"], "images": evaluator.count,
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

    Raises:
        OSError: if ``out`` cannot be written (checked before the checkpoint is read; see
            :func:`~aware3d.viz.render_outputs`).
    """
    from aware3d.data.synthetic import SyntheticScenes

    check_writable_folder(out)
    if is_converted(checkpoint):
        model = load_converted(checkpoint, device)
        generator, resolution = model.generator_ema, model.resolution
    else:
        generator, _, config, _ = load_generator(checkpoint, device)
        resolution = config.resolution
    scenes = SyntheticScenes(num_scenes=max(1, count // 4), views_per_scene=4,
                             resolution=16, seed=seed)  # fmt: skip
    labels = dataset_labels(scenes).to(device)
    return render_outputs(generator, out, labels=labels, resolution=resolution,
                          count=count, seed=seed)  # fmt: skip
