"""Named recipes: a configuration class plus the builders of everything a run needs.

``aware3d train --recipe NAME`` looks ``NAME`` up in :data:`RECIPES`; ``--recipe
package.module:attr`` imports a user's :class:`Recipe` (the module must be importable, e.g. on
``PYTHONPATH``). A checkpoint's ``config.json`` names its recipe (and, for a user's recipe, where
it came from), so ``aware3d eval``, ``aware3d render`` and ``--resume`` rebuild the same
networks.
"""

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from aware3d.data.eg3d import EG3DItem
from aware3d.recipes.builders import (
    build_discriminator,
    build_fake_labels,
    build_generator,
    build_loss,
    make_optimizers,
    open_dataset,
)
from aware3d.recipes.config import (
    GSGANFFHQ256,
    GSGANFFHQ512,
    BallGANFFHQ256,
    DemoRecipe,
    TrainConfig,
    fields_from_json,
)
from aware3d.training import GANLoss

__all__ = ["RECIPES", "Recipe", "config_from_json", "config_to_json", "get_recipe"]


@dataclass(frozen=True)
class Recipe:
    """A recipe: its configuration class and the builders of its run.

    Every builder is a function of the resolved configuration; the defaults are the library's
    (:mod:`aware3d.recipes.builders`), so a user's recipe names only what it changes::

        MY_RECIPE = Recipe(MyConfig, generator=lambda config: MyGenerator(config.resolution))

    Attributes:
        config: the configuration class (a frozen :class:`~aware3d.recipes.TrainConfig`
            subclass whose ``recipe`` class variable is the name).
        generator: ``config -> generator`` (a :class:`~aware3d.models.GeneratorProtocol`
            module; called under the run's seed).
        discriminator: ``(config, image_channels) -> discriminator``.
        loss: ``config -> GANLoss``.
        optimizers: ``(config, generator, discriminator) -> (opt_g, opt_d)``.
        data: ``(config, path or None) -> data set`` of EG3D items.
        fake_labels: ``(config, data set) -> labels [M, 25]`` the fakes are rendered from
            (the pose sampler), or ``None`` for the data set's own labels; default
            :func:`~aware3d.recipes.build_fake_labels` (the data's labels mixed with sampled
            poses with probability ``config.fake_uniform_probability``, 0 by default).
        source: ``"package.module:attr"`` for a recipe loaded from a user's module (set by
            :func:`get_recipe`); ``None`` for the built-in ones.
    """

    config: type[TrainConfig]
    generator: Callable[[TrainConfig], nn.Module] = build_generator
    discriminator: Callable[[TrainConfig, int], nn.Module] = build_discriminator
    loss: Callable[[TrainConfig], GANLoss] = build_loss
    optimizers: Callable[
        [TrainConfig, nn.Module, nn.Module], tuple[torch.optim.Optimizer, torch.optim.Optimizer]
    ] = make_optimizers
    data: Callable[[TrainConfig, Path | None], Dataset[EG3DItem]] = open_dataset
    fake_labels: Callable[[TrainConfig, Dataset[EG3DItem]], torch.Tensor] | None = build_fake_labels
    source: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.config, type) and issubclass(self.config, TrainConfig)):
            raise TypeError(f"`config` must be a TrainConfig subclass, got {self.config!r}")
        if not self.config.recipe:
            raise ValueError(f"{self.config.__name__}.recipe (the recipe's name) is empty")

    @property
    def name(self) -> str:
        """The recipe's name (its configuration class's ``recipe``)."""
        return self.config.recipe


#: The built-in recipes by name.
RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(DemoRecipe),
        Recipe(GSGANFFHQ256),
        Recipe(GSGANFFHQ512),
        Recipe(BallGANFFHQ256),
    )
}


def get_recipe(name: str) -> Recipe:
    """The built-in recipe ``name``, or a user's ``"package.module:attr"`` recipe.

    Raises:
        ValueError: for an unknown name, a module that cannot be imported, a missing attribute
            or an attribute that is not a :class:`Recipe`.
    """
    if ":" not in name:
        if name not in RECIPES:
            raise ValueError(
                f"unknown recipe {name!r}; built-in: {', '.join(RECIPES)} (or give "
                "package.module:attr for your own Recipe)"
            )
        return RECIPES[name]
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"recipe {name!r}: cannot import {module_name!r} ({error})") from None
    recipe = getattr(module, attr, None)
    if not isinstance(recipe, Recipe):
        found = "nothing" if recipe is None else type(recipe).__name__
        raise ValueError(f"recipe {name!r}: {module_name}.{attr} must be a Recipe, found {found}")
    return dataclasses.replace(recipe, source=name)


def config_to_json(config: TrainConfig, recipe: Recipe | None = None) -> dict[str, Any]:
    """The resolved config as JSON-ready data: ``{"recipe", "fields"}`` (and ``"source"``)."""
    data: dict[str, Any] = {"recipe": type(config).recipe, "fields": dataclasses.asdict(config)}
    if recipe is not None and recipe.source is not None:
        data["source"] = recipe.source
    return data


def config_from_json(data: dict[str, Any]) -> tuple[Recipe, TrainConfig]:
    """The recipe and configuration written by :func:`config_to_json` (checks re-run).

    Raises:
        ValueError: for an unknown recipe or fields the recipe does not have.
    """
    name = data.get("recipe")
    source = data.get("source")
    recipe = get_recipe(source if isinstance(source, str) else str(name))
    if recipe.name != name:
        raise ValueError(f"{source} is the recipe {recipe.name!r}, the checkpoint's is {name!r}")
    return recipe, fields_from_json(recipe.config, data.get("fields"), recipe.name)
