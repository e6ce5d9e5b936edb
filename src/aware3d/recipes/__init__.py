"""Recipes: named configurations of a training run and the builders of everything it needs.

* :class:`TrainConfig` and the built-in configurations (:class:`DemoRecipe`, GSGAN's and
  BallGAN's released FFHQ recipes), ``--set`` parsing (:func:`apply_overrides`);
* :class:`Recipe` (a configuration class plus builders), the registry :data:`RECIPES` and
  :func:`get_recipe` (a built-in name, or a user's ``package.module:attr``);
* :func:`train` (what ``aware3d train`` runs: a recipe through :func:`aware3d.training.fit`) and
  the checkpoint readers behind ``aware3d eval`` and ``aware3d render``;
* :func:`convert_released` (``aware3d convert``: a released GSGAN / EG3D / BallGAN pickle as an
  aware3d checkpoint folder) and :func:`load_converted`.
"""

from aware3d.recipes.builders import (
    MODELS,
    build_discriminator,
    build_fake_labels,
    build_generator,
    build_loss,
    make_optimizers,
    open_dataset,
)
from aware3d.recipes.checkpoints import evaluate_checkpoint, load_generator, render_checkpoint
from aware3d.recipes.config import (
    GSGANFFHQ256,
    GSGANFFHQ512,
    BallGANFFHQ256,
    DemoRecipe,
    TrainConfig,
    apply_overrides,
    describe,
)
from aware3d.recipes.registry import (
    RECIPES,
    Recipe,
    config_from_json,
    config_to_json,
    get_recipe,
)
from aware3d.recipes.released import (
    ConvertedModel,
    convert_released,
    is_converted,
    load_converted,
)
from aware3d.recipes.run import check_resume_config, train

__all__ = [
    "GSGANFFHQ256",
    "GSGANFFHQ512",
    "MODELS",
    "RECIPES",
    "BallGANFFHQ256",
    "ConvertedModel",
    "DemoRecipe",
    "Recipe",
    "TrainConfig",
    "apply_overrides",
    "build_discriminator",
    "build_fake_labels",
    "build_generator",
    "build_loss",
    "check_resume_config",
    "config_from_json",
    "config_to_json",
    "convert_released",
    "describe",
    "evaluate_checkpoint",
    "get_recipe",
    "is_converted",
    "load_converted",
    "load_generator",
    "make_optimizers",
    "open_dataset",
    "render_checkpoint",
    "train",
]
