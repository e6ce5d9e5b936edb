"""The training command's engine: recipes, the loop, checkpoints, logs and metrics.

``aware3d train`` / ``aware3d eval`` / ``aware3d render`` are thin wrappers of
:func:`~aware3d.trainer.loop.train`, :func:`evaluate_checkpoint` and :func:`render_checkpoint`.
Importing this package does not import TensorBoard, torchmetrics or torch-fidelity (they load
when a run logs or evaluates).
"""

from aware3d.trainer.checkpoint_models import evaluate_checkpoint, load_generator, render_checkpoint
from aware3d.trainer.checkpoints import find_latest_checkpoint, list_checkpoints
from aware3d.trainer.distributed import DistributedContext, init_distributed
from aware3d.trainer.inception import (
    FidKid,
    InceptionFeatures,
    fid_kid,
    find_inception_weights,
    inception_features,
    load_inception,
)
from aware3d.trainer.loop import TrainResult, train
from aware3d.trainer.recipes import (
    GSGANFFHQ256,
    GSGANFFHQ512,
    MODELS,
    RECIPES,
    BallGANFFHQ256,
    DemoRecipe,
    TrainConfig,
    apply_overrides,
    config_from_json,
    config_to_json,
)
from aware3d.trainer.render import render_outputs

__all__ = [
    "GSGANFFHQ256",
    "GSGANFFHQ512",
    "MODELS",
    "RECIPES",
    "BallGANFFHQ256",
    "DemoRecipe",
    "DistributedContext",
    "FidKid",
    "InceptionFeatures",
    "TrainConfig",
    "TrainResult",
    "apply_overrides",
    "config_from_json",
    "config_to_json",
    "evaluate_checkpoint",
    "fid_kid",
    "find_inception_weights",
    "find_latest_checkpoint",
    "inception_features",
    "init_distributed",
    "list_checkpoints",
    "load_generator",
    "load_inception",
    "render_checkpoint",
    "render_outputs",
    "train",
]
