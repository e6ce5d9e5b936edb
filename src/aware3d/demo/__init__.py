"""The demo: a small 3D-aware GAN assembled from aware3d's components, trained end to end."""

from aware3d.demo.generator import Generator3D, GeneratorOutput
from aware3d.demo.train import (
    Batch,
    DemoConfig,
    Evaluation,
    Models,
    TrainingRun,
    build_models,
    evaluate,
    train,
    training_step,
)

__all__ = [
    "Batch",
    "DemoConfig",
    "Evaluation",
    "Generator3D",
    "GeneratorOutput",
    "Models",
    "TrainingRun",
    "build_models",
    "evaluate",
    "train",
    "training_step",
]
