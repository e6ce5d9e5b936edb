"""The demo: a small 3D-aware GAN assembled from aware3d's components, trained end to end."""

from aware3d.demo.generator import Generator3D, GeneratorOutput
from aware3d.demo.train import DemoConfig, TrainingRun, build_models, train

__all__ = ["DemoConfig", "Generator3D", "GeneratorOutput", "TrainingRun", "build_models", "train"]
