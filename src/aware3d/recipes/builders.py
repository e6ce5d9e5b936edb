"""What the built-in recipes build from their configuration: generator, discriminator, loss, data.

Each builder is a plain function of the resolved :class:`~aware3d.recipes.TrainConfig`; a
:class:`~aware3d.recipes.Recipe` names the builders it uses, and a user's recipe may replace any
of them.
"""

import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from aware3d.cameras import look_at
from aware3d.data.eg3d import EG3DDataset, EG3DItem
from aware3d.data.synthetic import SyntheticScenes
from aware3d.models import (
    ballgan_ffhq256,
    ballgan_small,
    demo_generator,
    gsgan_ffhq256,
    gsgan_ffhq512,
    gsgan_small,
)
from aware3d.recipes.config import DemoRecipe, TrainConfig
from aware3d.training import CameraConditionedDiscriminator, GANLoss
from aware3d.training.data import dataset_labels

__all__ = [
    "MODELS",
    "build_discriminator",
    "build_fake_labels",
    "build_generator",
    "build_loss",
    "make_optimizers",
    "open_dataset",
]

#: Synthetic scenes are seen from this many cameras each.
VIEWS_PER_SCENE = 4
#: The pool of fake-camera labels that mixes data and sampled poses holds at least this many.
FAKE_POOL = 8192


def _demo(config: TrainConfig) -> nn.Module:
    if not isinstance(config, DemoRecipe):
        raise ValueError("`model='demo'` is built by the demo recipe only")
    if config.demo_model == "gsgan":
        return gsgan_small(config.w_dim, num_levels=config.decoder_levels,
                           resolution=config.resolution)  # fmt: skip
    if config.demo_model == "ballgan":
        return ballgan_small(config.w_dim, resolution=config.resolution,
                             neural_resolution=config.resolution // 2)  # fmt: skip
    return demo_generator(
        z_dim=config.z_dim, w_dim=config.w_dim, resolution=config.resolution,
        num_levels=config.decoder_levels, blocks=config.decoder_blocks,
        initial_radius=config.initial_radius, background_freqs=config.background_freqs,
    )  # fmt: skip


#: The generators a recipe's ``model`` field can name, each built from the configuration.
MODELS: dict[str, Callable[[TrainConfig], nn.Module]] = {
    "demo": _demo,
    "gsgan-small": lambda config: gsgan_small(64, resolution=config.resolution),
    "ballgan-small": lambda config: ballgan_small(
        64, resolution=config.resolution, neural_resolution=config.resolution // 2
    ),
    "gsgan-ffhq256": lambda config: gsgan_ffhq256(),
    "gsgan-ffhq512": lambda config: gsgan_ffhq512(),
    "ballgan-ffhq256": lambda config: ballgan_ffhq256(),
}


def build_generator(config: TrainConfig) -> nn.Module:
    """The generator ``config.model`` (call under a fixed seed: its weights are drawn here).

    Raises:
        ValueError: for a model name not in :data:`MODELS`.
    """
    builder = MODELS.get(config.model)
    if builder is None:
        raise ValueError(f"`model` must be one of {tuple(MODELS)}, got {config.model!r}")
    return builder(config)


def build_discriminator(config: TrainConfig, image_channels: int) -> nn.Module:
    """The recipe's discriminator for ``image_channels`` (3, or 6 for a dual discriminator)."""
    return CameraConditionedDiscriminator(
        config.resolution, image_channels, channel_base=config.d_channel_base,
        channel_max=config.d_channel_max, embed_dim=config.d_embed_dim,
        camera_conditioned=config.d_camera_conditioned,
        contrastive_dim=config.d_contrastive_dim or None, mbstd_group_size=config.mbstd_group,
    )  # fmt: skip


def build_loss(config: TrainConfig) -> GANLoss:
    """The recipe's :class:`~aware3d.training.GANLoss`.

    ``foreground_loss_weight`` weighs both ``distortion`` (Gaussian generators) and ``density``
    (BallGAN); each generator returns one of them.
    """
    ramped = (("separation",) if config.separation_ramp else ()) + (
        ("distortion", "density") if config.foreground_loss_ramp else ()
    )
    return GANLoss(
        weights={"separation": config.separation_weight,
                 "distortion": config.foreground_loss_weight,
                 "density": config.foreground_loss_weight,
                 "knn": config.knn_weight, "centre": config.centre_weight},
        ramped=ramped, r1_gamma=config.r1_gamma, r1_interval=config.r1_interval,
        blur_sigma=config.blur_sigma, blur_fade_images=config.blur_fade_kimg * 1000,
        augment=config.augment, swap_probability=config.swap_probability,
        swap_fade_images=config.swap_fade_kimg * 1000,
        contrastive_weight=config.pose_contrastive_weight,
        contrastive_temperature=config.pose_contrastive_temperature,
        ema_half_life_images=config.ema_kimg * 1000, ema_rampup=config.ema_rampup,
    )  # fmt: skip


def make_optimizers(
    config: TrainConfig, generator: nn.Module, discriminator: nn.Module
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam for both networks with the recipe's learning rates, betas and eps.

    The discriminator's lr and betas get StyleGAN2's lazy-regularisation compensation
    ``c = interval / (interval + 1)`` (``lr * c``, ``beta ** c``) when ``lazy_adjust`` is set.
    """
    ratio = config.r1_interval / (config.r1_interval + 1) if config.lazy_adjust else 1.0
    d_betas = (config.betas[0] ** ratio, config.betas[1] ** ratio)
    return (
        torch.optim.Adam(generator.parameters(), lr=config.lr_generator, betas=config.betas,
                         eps=config.adam_eps),
        torch.optim.Adam(discriminator.parameters(), lr=config.lr_discriminator * ratio,
                         betas=d_betas, eps=config.adam_eps),
    )  # fmt: skip


def open_dataset(config: TrainConfig, path: Path | None) -> Dataset[EG3DItem]:
    """The EG3D data set at ``path`` (pixels in [-1, 1]), or the demo's synthetic scenes.

    Raises:
        ValueError: if ``path`` is ``None`` for a recipe other than ``demo``.
    """
    if path is not None:
        return EG3DDataset(path, value_range=(-1.0, 1.0))
    if not isinstance(config, DemoRecipe):
        raise ValueError(f"the {type(config).recipe!r} recipe needs --data (an EG3D data set)")
    return SyntheticScenes(
        num_scenes=max(1, config.synthetic_images // VIEWS_PER_SCENE),
        views_per_scene=VIEWS_PER_SCENE, resolution=config.resolution, seed=config.seed,
        value_range=(-1.0, 1.0),
    )  # fmt: skip


def _sample_angles(
    mean: float, spread: float, kind: str, count: int, generator: torch.Generator
) -> torch.Tensor:
    if kind == "uniform":
        noise = torch.rand(count, 1, generator=generator, dtype=torch.float64) * 2 - 1
    else:
        noise = torch.randn(count, 1, generator=generator, dtype=torch.float64)
    return mean + spread * noise


def build_fake_labels(config: TrainConfig, dataset: Dataset[EG3DItem]) -> torch.Tensor:
    """The labels fakes are rendered from: the data's poses mixed with sampled ones.

    With ``config.fake_uniform_probability`` ``p = 0`` these are the data's own labels (what a
    recipe without this builder uses). Otherwise the pool holds the data's labels (repeated to
    at least :data:`FAKE_POOL` / 2 entries) and ``round(p / (1 - p))`` times as many poses from
    the recipe's sampler (all sampled for ``p = 1``), so a fake drawn uniformly from the pool
    has a sampled camera with probability ``p`` (to the rounding of the counts), as GSGAN's
    FFHQ recipe does per fake with ``prob_uniform``. A sampled pose sits at ``fake_radius`` from
    the origin at EG3D's angles ``h`` and ``v`` (``fake_horizontal_*``, ``fake_vertical_*``;
    ``v`` clamped to ``(0, pi)``), looks at ``fake_lookat`` with world up +y, and takes the
    intrinsics of a data label drawn at random. Seeded by ``config.seed``.

    Returns:
        ``[M, 25]`` float32 labels.
    """
    data = dataset_labels(dataset).to(torch.float32)
    p = config.fake_uniform_probability
    if p == 0:
        return data
    repeat = max(1, math.ceil(FAKE_POOL / 2 / data.shape[0]))
    own = data.repeat(repeat, 1) if p < 1 else data[:0]
    count = FAKE_POOL if p == 1 else round(own.shape[0] * p / (1 - p))
    if count == 0:
        return own
    generator = torch.Generator().manual_seed(config.seed * 7_919 + 104_729)
    h = _sample_angles(config.fake_horizontal_mean, config.fake_horizontal_stddev,
                       config.fake_horizontal_type, count, generator)  # fmt: skip
    v = _sample_angles(config.fake_vertical_mean, config.fake_vertical_stddev,
                       config.fake_vertical_type, count, generator)  # fmt: skip
    phi = torch.arccos(1 - 2 * v.clamp(1e-5, math.pi - 1e-5) / math.pi)
    r = config.fake_radius
    origins = torch.cat(
        [r * torch.sin(phi) * torch.cos(math.pi - h), r * torch.cos(phi),
         r * torch.sin(phi) * torch.sin(math.pi - h)], dim=-1,
    )  # fmt: skip
    poses = look_at(origins, torch.tensor(config.fake_lookat, dtype=torch.float64))
    pick = torch.randint(data.shape[0], (count,), generator=generator)
    sampled = torch.cat([poses.flatten(-2).to(torch.float32), data[pick, 16:]], dim=-1)
    return torch.cat([own, sampled])
