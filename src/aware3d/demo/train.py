"""The demo's training loop: a small 3D-aware GAN on synthetic scenes or an EG3D dataset."""

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor
from tqdm import tqdm

from aware3d._validation import (
    check_choice,
    check_nonnegative_int,
    check_nonnegative_number,
    check_positive_int,
    check_positive_number,
    value_checks,
)
from aware3d.cameras import Cameras
from aware3d.demo.models import (
    MODELS,
    DemoGenerator,
    build_generator,
    generate,
    latent_dim,
    real_discriminator_images,
)
from aware3d.functional.losses import separation_loss
from aware3d.nn.decoder import GSGAN_WORLD_SCALE
from aware3d.training import (
    CameraConditionedDiscriminator,
    SlicedWasserstein,
    discriminator_loss,
    ema_beta,
    generator_loss,
    lazy_r1_weight,
    make_ema,
    r1_penalty,
    sliced_wasserstein_distance,
    update_ema,
)
from aware3d.training.augment import AUGMENTATIONS, diff_augment

#: The losses :func:`training_step` returns, in order.
LOSS_NAMES = ("d_loss", "g_loss", "separation", "distortion", "r1")


class ImageSource(Protocol):
    """What the loop needs from a dataset: images in [-1, 1] with their EG3D labels."""

    @property
    def images(self) -> Tensor:
        """``[N, H, W, 3]`` in [-1, 1]."""
        ...

    @property
    def labels(self) -> Tensor:
        """EG3D labels ``[N, 25]``."""
        ...

    @property
    def masks(self) -> Tensor | None:
        """Ground-truth foreground masks ``[N, H, W, 1]`` in [0, 1], or ``None``."""
        ...


@dataclass(frozen=True)
class DemoConfig:
    """Hyper-parameters of the demo run (all JSON-serialisable; stored with the checkpoint).

    Attributes:
        model: the generator (:data:`~aware3d.demo.models.MODELS`): ``"demo"`` (the demo's own
            Gaussian generator, below), ``"gsgan"`` (:func:`~aware3d.models.gsgan_small`: GSGAN's
            network at CPU size) or ``"ballgan"`` (:func:`~aware3d.models.ballgan_small`:
            tri-plane, volume rendering at half the resolution, super-resolution, dual
            discriminator). The ``decoder_*``, ``initial_radius`` and ``background_freqs``
            fields configure ``"demo"`` only.
        steps: training steps (one generator and one discriminator update each).
        resolution: image size.
        batch: scenes per step.
        seed: seed of the models, the data order and the latents.
        z_dim: latent width.
        w_dim: style width.
        decoder_levels: levels of the small hierarchical decoder.
        decoder_blocks: the decoder's token network (:func:`~aware3d.nn.small_decoder`'s
            ``blocks``): ``"window"`` (the simpler network) or ``"gsgan"`` (GSGAN's blocks, whose
            zero-initialised gates learn more slowly in the demo's 2,048 images; see the demo
            page).
        initial_radius: with ``decoder_blocks="window"``, radius of the ball the decoder's
            level-0 anchors start in (:class:`~aware3d.nn.HierarchicalGaussianDecoder`'s
            ``initial_radius``). 0.2 is the size of the synthetic objects (radii 0.13 to 0.22); a
            wider start puts Gaussians across the whole image (its half-width at the look-at
            point is 0.32), and the generator then tended to keep the foreground at the
            borders. GSGAN's blocks place the level-0 anchors themselves.
        lr_generator: Adam learning rate of the generator.
        lr_discriminator: Adam learning rate of the discriminator.
        r1_gamma: R1 weight; 10 keeps the discriminator smooth enough that the generator is not
            rewarded for high-frequency speckle (with 2, one seed in three got worse).
        r1_interval: lazy R1 every this many steps.
        separation_weight: weight of BallGAN's separation loss.
        distortion_weight: weight of the generator's foreground loss: the splat distortion loss,
            or for ``"ballgan"`` BallGAN's density loss.
        ema_half_life_images: EMA half-life of the generator, in images (StyleGAN2-ADA's
            ``batch * 10 / 32`` kimg is 2,500 at batch 8). A long average smooths the
            generator's late oscillations, which otherwise decide the fine band of the metric.
        ema_rampup: the half-life is at most this fraction of the images seen so far
            (StyleGAN2-ADA's ramp-up), so the initial weights do not linger in the average;
            0 turns the ramp-up off.
        metric_images: images per set for the sliced Wasserstein distance.
        augment: DiffAugment transforms applied to every image the discriminator sees
            (:func:`aware3d.training.augment.diff_augment`); none by default: on the synthetic
            scenes they weakened the discriminator until the separation and distortion losses
            removed the foreground.
        background_freqs: octaves of the background's direction encoding. Two keep it as smooth
            as real backgrounds, so it cannot paint the object on the sphere instead of the
            foreground learning it.
        log_every: read the losses back from the device every this many steps (the training
            step itself never waits for the device).
    """

    model: str = "demo"
    steps: int = 1000
    resolution: int = 32
    batch: int = 8
    seed: int = 0
    z_dim: int = 64
    w_dim: int = 64
    decoder_levels: int = 3
    decoder_blocks: str = "window"
    initial_radius: float = 0.2
    lr_generator: float = 0.0025
    lr_discriminator: float = 0.001
    r1_gamma: float = 10.0
    r1_interval: int = 4
    separation_weight: float = 0.1
    distortion_weight: float = 0.1
    ema_half_life_images: float = 2000.0
    ema_rampup: float = 0.25
    metric_images: int = 128
    augment: tuple[str, ...] = ()
    background_freqs: int = 2
    log_every: int = 25

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "z_dim", "w_dim", "decoder_levels", "r1_interval",
                     "metric_images", "log_every"):  # fmt: skip
            check_positive_int(name, getattr(self, name))
        check_positive_int("resolution", self.resolution)
        check_nonnegative_int("seed", self.seed)
        check_nonnegative_int("background_freqs", self.background_freqs)
        check_choice("model", self.model, MODELS)
        check_choice("decoder_blocks", self.decoder_blocks, ("window", "gsgan"))
        check_positive_number("initial_radius", self.initial_radius)
        if self.initial_radius >= GSGAN_WORLD_SCALE:
            raise ValueError(
                "`initial_radius` must be smaller than the foreground box's half extent "
                f"{GSGAN_WORLD_SCALE:.3f}, got {self.initial_radius!r}"
            )
        for name in ("lr_generator", "lr_discriminator", "ema_half_life_images"):
            check_positive_number(name, getattr(self, name))
        for name in ("r1_gamma", "separation_weight", "distortion_weight", "ema_rampup"):
            check_nonnegative_number(name, getattr(self, name))
        unknown = [name for name in self.augment if name not in AUGMENTATIONS]
        if isinstance(self.augment, str) or unknown:
            raise ValueError(
                f"`augment` must hold names from {AUGMENTATIONS}, got {self.augment!r}"
            )


class Evaluation(NamedTuple):
    """Quality of a generator against the first ``metric_images`` real images.

    Attributes:
        swd: sliced Wasserstein distance to the real images.
        separation: mean separation loss of the generated images.
        coverage_fake: mean foreground opacity of the generated images.
        coverage_real: mean ground-truth foreground mask of the same real images (``None`` for
            data without masks).
    """

    swd: SlicedWasserstein
    separation: float
    coverage_fake: float
    coverage_real: float | None


@dataclass
class TrainingRun:
    """What :func:`train` returns: the models, the loss history and the metrics."""

    generator: DemoGenerator
    generator_ema: DemoGenerator
    discriminator: CameraConditionedDiscriminator
    history: dict[str, list[float]]
    start: Evaluation
    end: Evaluation
    seconds: float
    config: DemoConfig

    def metrics(self) -> dict[str, Any]:
        """JSON-serialisable summary."""
        return {
            "sliced_wasserstein_start": self.start.swd.mean,
            "sliced_wasserstein_end": self.end.swd.mean,
            "sliced_wasserstein_start_per_level": self.start.swd.per_level,
            "sliced_wasserstein_end_per_level": self.end.swd.per_level,
            "separation_loss_start": self.start.separation,
            "separation_loss_end": self.end.separation,
            "foreground_coverage_fake_start": self.start.coverage_fake,
            "foreground_coverage_fake": self.end.coverage_fake,
            "foreground_coverage_real": self.end.coverage_real,
            "separation_loss_mean_last_50_steps": _tail_mean(self.history["separation"], 50),
            "training_seconds": self.seconds,
            "steps": self.config.steps,
            "config": dataclasses.asdict(self.config),
        }


def _tail_mean(values: list[float], count: int) -> float:
    tail = values[-count:]
    return sum(tail) / max(1, len(tail))


def build_models(
    config: DemoConfig, device: torch.device
) -> tuple[DemoGenerator, CameraConditionedDiscriminator]:
    """The generator ``config.model`` and the discriminator, seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    generator = build_generator(
        config.model, z_dim=config.z_dim, w_dim=config.w_dim, resolution=config.resolution,
        decoder_levels=config.decoder_levels, decoder_blocks=config.decoder_blocks,
        initial_radius=config.initial_radius, background_freqs=config.background_freqs,
    ).to(device)  # fmt: skip
    discriminator = CameraConditionedDiscriminator(
        config.resolution, generator.image_channels, channel_base=2048, channel_max=64,
        embed_dim=64,
    ).to(device)  # fmt: skip
    return generator, discriminator


@torch.no_grad()
def evaluate(
    generator: DemoGenerator, data: ImageSource, config: DemoConfig, device: torch.device
) -> Evaluation:
    """Sliced Wasserstein distance, separation loss and foreground coverage, fixed latents."""
    count = min(config.metric_images, data.images.shape[0])
    z = torch.randn(count, latent_dim(generator), generator=torch.Generator().manual_seed(12345))
    labels = data.labels[:count].to(device)
    fakes, separations, coverages = [], [], []
    for start in range(0, count, 32):
        part = slice(start, start + 32)
        cameras = Cameras.from_eg3d_labels(labels[part, None])
        out = generate(generator, z[part].to(device), cameras, config.resolution)
        fakes.append(out.images[:, 0].cpu())
        separations.append(separation_loss(out.composite.bg_transmittance, reduction="sum"))
        coverages.append(out.composite.opacity.sum())
    fake = torch.cat(fakes)
    real = data.images[:count]
    swd = sliced_wasserstein_distance(
        (real.clamp(-1, 1) + 1) / 2, (fake.clamp(-1, 1) + 1) / 2, min_size=16
    )
    pixels = count * config.resolution**2
    masks = data.masks
    return Evaluation(
        swd,
        float(torch.stack(separations).sum()) / pixels,
        float(torch.stack(coverages).sum()) / pixels,
        None if masks is None else float(masks[:count].mean()),
    )


class Models(NamedTuple):
    """What a training step updates: the networks, their EMA and the optimisers."""

    generator: DemoGenerator
    generator_ema: DemoGenerator
    discriminator: CameraConditionedDiscriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer


class Batch(NamedTuple):
    """One step's inputs, on the training device.

    Attributes:
        real: real images ``[B, H, W, 3]`` in [-1, 1].
        real_labels: their EG3D labels ``[B, 25]``.
        fake_labels: labels of the cameras to render the fakes from ``[B, 25]``.
        fake_cameras: those cameras, ``Cameras [B, 1]`` (validated once, when the data loaded).
        z: latents ``[B, Z]``.
    """

    real: Tensor
    real_labels: Tensor
    fake_labels: Tensor
    fake_cameras: Cameras
    z: Tensor


def training_step(
    models: Models,
    batch: Batch,
    config: DemoConfig,
    step: int,
    ema_decay: float,
    rng: torch.Generator,
) -> Tensor:
    """One generator update, one discriminator update and the EMA update.

    The generator minimises the non-saturating loss plus ``separation_weight`` times BallGAN's
    separation loss and ``distortion_weight`` times its foreground loss (the splat distortion
    loss, or BallGAN's density loss); the
    camera-conditioned discriminator then updates on the same (detached) fakes and the real
    batch, with lazy R1. Runs with value checks off (its inputs were validated when they were
    built), so it never waits for the device except for the torch rasterizer's one data-dependent
    size (the number of Gaussian-tile pairs; gsplat needs none).

    Returns:
        The losses of :data:`LOSS_NAMES` as one tensor ``[5]`` on the device (R1 is 0 on steps
        without it).
    """
    generator, generator_ema, discriminator, opt_g, opt_d = models
    resolution = config.resolution
    with value_checks(False):
        out = generate(generator, batch.z, batch.fake_cameras, resolution)
        fake = generator.discriminator_images(out)[:, 0]
        discriminator.requires_grad_(False)
        fake_seen = diff_augment(fake, config.augment, generator=rng)
        g_adv = generator_loss(discriminator(fake_seen, batch.fake_labels))
        separation = separation_loss(out.composite.bg_transmittance)
        distortion = generator.foreground_loss(out)
        g_total = (
            g_adv + config.separation_weight * separation + config.distortion_weight * distortion
        )
        opt_g.zero_grad(set_to_none=True)
        g_total.backward()
        opt_g.step()
        discriminator.requires_grad_(True)

        r1_weight = lazy_r1_weight(step, config.r1_gamma, config.r1_interval)
        real_input = real_discriminator_images(generator, batch.real.detach())
        real_input = real_input.requires_grad_(r1_weight > 0)
        real_seen = diff_augment(real_input, config.augment, generator=rng)
        real_logits = discriminator(real_seen, batch.real_labels)
        fake_logits = discriminator(
            diff_augment(fake.detach(), config.augment, generator=rng), batch.fake_labels
        )
        d_loss = discriminator_loss(real_logits, fake_logits)
        r1 = r1_penalty(real_logits, real_input) if r1_weight > 0 else d_loss.new_zeros(())
        opt_d.zero_grad(set_to_none=True)
        (d_loss + r1_weight * r1).backward()
        opt_d.step()
        update_ema(generator_ema, generator, ema_decay)
    return torch.stack([d_loss, g_adv, separation, distortion, r1]).detach()


def _record(history: dict[str, list[float]], pending: list[tuple[int, Tensor]], config) -> None:
    """Moves the pending per-step losses to ``history`` (one host synchronisation)."""
    if not pending:
        return
    values = torch.stack([losses for _, losses in pending]).tolist()
    for (step, _), row in zip(pending, values, strict=True):
        if not all(math.isfinite(v) for v in row):
            raise RuntimeError(f"training diverged at step {step}: a loss became NaN or infinite")
        for name, value in zip(LOSS_NAMES[:-1], row, strict=False):
            history[name].append(value)
        if lazy_r1_weight(step, config.r1_gamma, config.r1_interval) > 0:
            history["r1"].append(row[-1])
    pending.clear()


def train(
    config: DemoConfig,
    data: ImageSource,
    device: torch.device | str = "cpu",
    *,
    progress: bool = True,
) -> TrainingRun:
    """Trains the demo GAN with :func:`training_step`.

    Cameras of the dataset's labels are built (and validated) once; each step draws a real batch
    and a batch of labels for the fakes from the dataset, and latents, from a generator seeded
    with ``config.seed``. The EMA generator is evaluated before and after training.

    Raises:
        ValueError: if the data's images do not have ``config.resolution`` pixels.
        RuntimeError: if a loss becomes NaN or infinite.
    """
    device = torch.device(device)
    if data.images.shape[1] != config.resolution:
        raise ValueError(
            f"the data's images are {data.images.shape[1]} px but `resolution` is "
            f"{config.resolution}"
        )
    generator, discriminator = build_models(config, device)
    generator_ema = make_ema(generator)
    start_eval = evaluate(generator_ema, data, config, device)
    models = Models(
        generator,
        generator_ema,
        discriminator,
        torch.optim.Adam(generator.parameters(), lr=config.lr_generator, betas=(0.0, 0.99)),
        torch.optim.Adam(discriminator.parameters(), lr=config.lr_discriminator, betas=(0.0, 0.99)),
    )
    rng = torch.Generator().manual_seed(config.seed)
    images, labels = data.images.to(device), data.labels.to(device)
    cameras = Cameras.from_eg3d_labels(labels[:, None])  # validated once, here
    history: dict[str, list[float]] = {name: [] for name in LOSS_NAMES}
    pending: list[tuple[int, Tensor]] = []
    count = images.shape[0]
    start = time.perf_counter()
    steps = tqdm(range(config.steps), disable=not progress, desc="training", unit="step")
    for step in steps:
        real_index = torch.randint(count, (config.batch,), generator=rng).to(device)
        fake_index = torch.randint(count, (config.batch,), generator=rng).to(device)
        z = torch.randn(config.batch, latent_dim(generator), generator=rng).to(device)
        batch = Batch(
            images[real_index], labels[real_index], labels[fake_index], cameras[fake_index], z
        )
        half_life = config.ema_half_life_images
        if config.ema_rampup > 0:
            half_life = min(half_life, config.ema_rampup * (step + 1) * config.batch)
        beta = ema_beta(config.batch, half_life)
        pending.append((step, training_step(models, batch, config, step, beta, rng)))
        if len(pending) >= config.log_every or step == config.steps - 1:
            _record(history, pending, config)
            steps.set_postfix(
                d=f"{history['d_loss'][-1]:.3f}",
                g=f"{history['g_loss'][-1]:.3f}",
                sep=f"{history['separation'][-1]:.3f}",
            )
    seconds = time.perf_counter() - start
    end_eval = evaluate(generator_ema, data, config, device)
    return TrainingRun(
        generator, generator_ema, discriminator, history, start_eval, end_eval, seconds, config
    )
