"""``aware3d train``: a recipe's networks, loss and data handed to :func:`aware3d.training.fit`."""

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from aware3d.recipes.config import TrainConfig, describe
from aware3d.recipes.registry import Recipe, config_from_json, config_to_json
from aware3d.training import FitResult, StepInfo, fit

__all__ = ["IMMUTABLE_ON_RESUME", "check_resume_config", "train"]

#: Fields a resumed run may not change: the networks' shapes, the data (and the meaning of the
#: stored data position, counted in batches) and the seeds of the streams.
IMMUTABLE_ON_RESUME = ("model", "resolution", "batch", "seed", "synthetic_images")


def check_resume_config(config: TrainConfig, stored: TrainConfig) -> list[str]:
    """Fields that differ between the command and the checkpoint; refuses the structural ones.

    Raises:
        ValueError: for another recipe, or a change of a field in :data:`IMMUTABLE_ON_RESUME` or
            of a network's width (``d_*``, ``z_*``, ``w_*``).
    """
    if type(config) is not type(stored):
        raise ValueError(
            f"the checkpoint was written by the {type(stored).recipe!r} recipe, not "
            f"{type(config).recipe!r}"
        )
    changed = []
    for field in dataclasses.fields(config):
        new, old = getattr(config, field.name), getattr(stored, field.name)
        if new != old:
            if field.name in IMMUTABLE_ON_RESUME or field.name.startswith(("d_", "z_", "w_")):
                raise ValueError(
                    f"`{field.name}` is {old!r} in the checkpoint and {new!r} now: it fixes the "
                    "networks' shapes or the data and cannot change on resume"
                )
            changed.append(f"{field.name}: {old!r} -> {new!r}")
    return changed


def train(
    recipe: Recipe,
    config: TrainConfig,
    *,
    out: Path,
    data: Path | None = None,
    device: str = "cpu",
    resume: str | Path | None = None,
    overwrite: bool = False,
    inception_weights: Path | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    callbacks: Sequence[Callable[[StepInfo], None]] = (),
) -> FitResult:
    """Trains ``config`` of ``recipe`` into ``out`` (one process, or one of torchrun's).

    Builds the recipe's generator and discriminator under ``config.seed``, its loss, optimizers
    and data, and runs :func:`~aware3d.training.fit` with the recipe's lengths (kimg) converted
    to steps. On resume the stored configuration is compared with ``config``: structural changes
    are refused, the others printed, logged and applied.

    Args:
        recipe: the recipe (:func:`~aware3d.recipes.get_recipe`).
        config: its resolved configuration.
        out: the run's folder.
        data: an EG3D data set (folder or zip); ``None`` for the demo's synthetic scenes.
        device: ``cpu``, ``cuda`` (each process its ``LOCAL_RANK``) or ``cuda:N``.
        resume: ``None``, ``"auto"`` or a run / checkpoint folder.
        overwrite: start anew in a folder holding another run, moving that run aside.
        inception_weights: the FID Inception's weights (optional).
        progress: show tqdm's bar on rank 0.
        tensorboard: also write TensorBoard event files (the ``train`` extra).
        callbacks: passed to :func:`~aware3d.training.fit`.

    Raises:
        ValueError: for a checkpoint of another recipe or a structural change on resume.
        RunFolderError: for a folder in use, or holding another run without ``resume`` /
            ``overwrite``.
    """
    if not isinstance(config, recipe.config):
        raise TypeError(
            f"`config` must be a {recipe.config.__name__} for the {recipe.name!r} recipe, got "
            f"{type(config).__name__}"
        )

    def check_stored(stored_json: dict) -> list[str]:
        _, stored = config_from_json(stored_json)
        return check_resume_config(config, stored)  # fit prints and logs the changes

    if os.environ.get("RANK", "0") == "0":
        print(f"aware3d train: recipe {recipe.name!r}; config:")
        print(describe(config), flush=True)
    dataset = recipe.data(config, data)
    torch.manual_seed(config.seed)
    generator = recipe.generator(config)
    discriminator = recipe.discriminator(config, int(getattr(generator, "image_channels")))  # noqa: B009
    fake_labels = None if recipe.fake_labels is None else recipe.fake_labels(config, dataset)
    return fit(
        generator, discriminator, dataset, recipe.loss(config), out=out,
        steps=config.total_steps, batch=config.batch,
        optimizers=recipe.optimizers(config, generator, discriminator), seed=config.seed,
        resolution=config.resolution, fake_labels=fake_labels, device=device,
        resume=resume, overwrite=overwrite, on_resume=check_stored,
        config=config_to_json(config, recipe),
        checkpoint_every=config.every(config.checkpoint_kimg),
        keep_checkpoints=config.keep_checkpoints, log_every=config.log_every,
        image_every=config.every(config.image_kimg),
        metric_every=config.every(config.metric_kimg) if config.metric_kimg > 0 else 0,
        metric_images=config.metric_images, inception_weights=inception_weights,
        workers=config.workers, tensorboard=tensorboard, progress=progress,
        callbacks=callbacks,
    )  # fmt: skip
