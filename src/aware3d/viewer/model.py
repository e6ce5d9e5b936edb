"""Any checkpoint aware3d reads, as a generator with what the viewer and the exports need.

:func:`load_model` reads the folders ``aware3d render`` reads (a run folder, one of its
``checkpoints/step-*`` folders, a folder written by ``aware3d convert``) and names the generator's
family: ``"gaussians"`` (GSGAN, the demo's), ``"volume"`` (BallGAN, EG3D) or ``"other"`` (a user's
generator that implements only the protocol). :func:`seed_latent` and :func:`render_camera_label`
give the latent and the camera ``aware3d render --seed S --count 1`` draws, so a view or an export
of seed ``S`` shows what that command shows.
"""

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from aware3d.cameras import FFHQ_FOCAL, FFHQ_LOOKAT, FFHQ_RADIUS, sample_look_at_poses

__all__ = [
    "FAMILIES",
    "LoadedModel",
    "UnknownCheckpointError",
    "frontal_label",
    "load_latent",
    "load_model",
    "render_camera_label",
    "seed_latent",
]

#: The generator families the viewer and the exports know.
FAMILIES = ("gaussians", "volume", "other")


class UnknownCheckpointError(ValueError):
    """A path that holds no checkpoint aware3d can read."""


@dataclasses.dataclass
class LoadedModel:
    """A checkpoint's EMA generator, in eval mode without gradients.

    Attributes:
        generator: the generator (a :class:`~aware3d.models.GeneratorProtocol` module).
        family: ``"gaussians"``, ``"volume"`` or ``"other"`` (see the module's docstring).
        resolution: the image size the checkpoint renders (the recipe's, or the released one).
        source: the folder read.
        description: what it is, in words (``"demo recipe, step 1000"``, ``"converted ballgan"``).
    """

    generator: nn.Module
    family: str
    resolution: int
    source: Path
    description: str

    @classmethod
    def from_generator(
        cls, generator: nn.Module, resolution: int, description: str = "a generator"
    ) -> "LoadedModel":
        """A generator built in Python (no checkpoint), put in eval mode without gradients."""
        generator = generator.eval().requires_grad_(False)
        return cls(generator, family_of(generator), int(resolution), Path("."), description)

    @property
    def device(self) -> torch.device:
        """The device of the generator's parameters."""
        return next(self.generator.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the generator's parameters."""
        return next(self.generator.parameters()).dtype

    @property
    def fixed_resolution(self) -> bool:
        """Whether the generator renders only its own resolution (a super-resolution network)."""
        return self.family == "volume"


def family_of(generator: nn.Module) -> str:
    """``"gaussians"``, ``"volume"`` or ``"other"`` for a generator (by what it holds).

    A Gaussian decoder (GSGAN's family, the demo's) makes ``"gaussians"``; a tri-plane generator
    with super-resolution (BallGAN's and EG3D's) ``"volume"``; a user's own generator ``"other"``.
    """
    from aware3d.nn import HierarchicalGaussianDecoder, SuperResolution, TriplaneGenerator

    if isinstance(getattr(generator, "decoder", None), HierarchicalGaussianDecoder):
        return "gaussians"
    if isinstance(getattr(generator, "triplane", None), TriplaneGenerator) and isinstance(
        getattr(generator, "superresolution", None), SuperResolution
    ):
        return "volume"
    return "other"


def load_model(
    checkpoint: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> LoadedModel:
    """The EMA generator of any checkpoint folder aware3d reads.

    Args:
        checkpoint: a run folder (its newest checkpoint), a ``checkpoints/step-*`` folder, or a
            folder written by ``aware3d convert``.
        device: where to put the generator.

    Raises:
        UnknownCheckpointError: a path that is not a folder, or a folder that holds none of
            these (the message says what was looked for).
        ValueError: a checkpoint that does not match its recipe's generator.
    """
    from aware3d.recipes import is_converted, load_converted, load_generator

    path = Path(checkpoint)
    if not path.is_dir():
        raise UnknownCheckpointError(
            f"{checkpoint} is not a folder: give a run folder, a checkpoints/step-* folder or a "
            "folder written by `aware3d convert`"
        )
    if is_converted(path):
        model = load_converted(path, device)
        generator, resolution = model.generator_ema, model.resolution
        description = f"converted {model.family} model ({model.info['source']['file']})"
    else:
        try:
            generator, recipe, config, state = load_generator(path, device, argument="CHECKPOINT")
        except FileNotFoundError as error:
            raise UnknownCheckpointError(
                f"{checkpoint} is not a checkpoint aware3d reads ({error}); give a run folder, a "
                "checkpoints/step-* folder or a folder written by `aware3d convert`"
            ) from None
        resolution = int(config.resolution)
        description = f"{recipe.name} recipe, step {state.get('step')}"
    generator = generator.eval().requires_grad_(False)
    return LoadedModel(generator, family_of(generator), resolution, path, description)


def _latent_dim(model: LoadedModel) -> int:
    value: Any = model.generator.latent_dim
    return int(value)


def seed_latent(model: LoadedModel, seed: int) -> Tensor:
    """The latent ``[1, latent_dim]`` of ``seed``: ``aware3d render --seed S``'s first sample's.

    ``torch.randn(1, latent_dim)`` from ``torch.Generator().manual_seed(seed)`` on the CPU, then
    moved to the generator's device and dtype.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"a seed must be an integer >= 0, got {seed!r}")
    latent_dim = _latent_dim(model)
    z = torch.randn(1, latent_dim, generator=torch.Generator().manual_seed(seed))
    return z.to(device=model.device, dtype=model.dtype)


def load_latent(model: LoadedModel, path: str | os.PathLike[str]) -> Tensor:
    """A latent saved as ``.npy`` (or ``.pt``): ``[latent_dim]`` or ``[1, latent_dim]``.

    Raises:
        ValueError: for a file of another shape or not finite (naming it).
    """
    path = Path(path)
    if path.suffix == ".pt":
        value = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(value, Tensor):
            raise ValueError(f"{path} must hold one tensor, found {type(value).__name__}")
        array = value.detach().double().numpy()
    else:
        array = np.load(path, allow_pickle=False)
    latent_dim = _latent_dim(model)
    if array.shape not in ((latent_dim,), (1, latent_dim)):
        raise ValueError(
            f"{path}: a latent must have shape [{latent_dim}] or [1, {latent_dim}] for this "
            f"generator, got {list(array.shape)}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: the latent holds non-finite values")
    z = torch.from_numpy(np.asarray(array, dtype=np.float64).reshape(1, latent_dim))
    return z.to(device=model.device, dtype=model.dtype)


def frontal_label(dtype: torch.dtype = torch.float32) -> Tensor:
    """EG3D's conditioning label for samples: the frontal FFHQ camera, ``[1, 25]``.

    Radius 2.7 at ``h = v = pi / 2`` looking at ``(0, 0, 0.2)`` with FFHQ's focal 4.2647, as
    EG3D's ``gen_samples.py`` conditions its samples.
    """
    pose = sample_look_at_poses(math.pi / 2, math.pi / 2, FFHQ_LOOKAT, radius=FFHQ_RADIUS)
    intrinsics = torch.tensor([[FFHQ_FOCAL, 0, 0.5], [0, FFHQ_FOCAL, 0.5], [0, 0, 1.0]])
    return torch.cat([pose[0].flatten(), intrinsics.flatten()])[None].to(dtype)


def render_camera_label(seed: int) -> Tensor:
    """The camera label ``[1, 25]`` of ``aware3d render --seed S --count 1``'s sample.

    ``aware3d render`` draws its cameras from the synthetic scenes' FFHQ-like sampler seeded by
    ``seed`` (:func:`~aware3d.recipes.render_checkpoint`); this is the first of them.
    """
    from aware3d.data.synthetic import SyntheticScenes
    from aware3d.training import dataset_labels

    scenes = SyntheticScenes(num_scenes=1, views_per_scene=4, resolution=16, seed=seed)
    return dataset_labels(scenes)[:1].float()


def describe(model: LoadedModel) -> dict[str, Any]:
    """A JSON-ready summary of ``model`` (for the viewer's panel and the CLI)."""
    return {
        "source": str(model.source),
        "what": model.description,
        "family": model.family,
        "generator": type(model.generator).__name__,
        "resolution": model.resolution,
        "latent_dim": _latent_dim(model),
    }
