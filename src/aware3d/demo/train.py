"""The demo's training loop: a small 3D-aware GAN on synthetic scenes or an EG3D dataset."""

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm import tqdm

from aware3d.cameras import Cameras
from aware3d.demo.generator import Generator3D
from aware3d.functional.losses import separation_loss, splat_distortion_loss
from aware3d.nn.decoder import small_decoder
from aware3d.training.augment import diff_augment
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
        steps: training steps (one generator and one discriminator update each).
        resolution: image size.
        batch: scenes per step.
        seed: seed of the models, the data order and the latents.
        z_dim: latent width.
        w_dim: style width.
        decoder_levels: levels of the small hierarchical decoder.
        lr_generator: Adam learning rate of the generator.
        lr_discriminator: Adam learning rate of the discriminator.
        r1_gamma: R1 weight.
        r1_interval: lazy R1 every this many steps.
        separation_weight: weight of BallGAN's separation loss.
        distortion_weight: weight of the splat distortion loss.
        ema_half_life_images: EMA half-life of the generator, in images.
        metric_images: images per set for the sliced Wasserstein distance.
    """

    steps: int = 1000
    resolution: int = 32
    batch: int = 8
    seed: int = 0
    z_dim: int = 64
    w_dim: int = 64
    decoder_levels: int = 3
    lr_generator: float = 0.0025
    lr_discriminator: float = 0.001
    r1_gamma: float = 2.0
    r1_interval: int = 4
    separation_weight: float = 0.1
    distortion_weight: float = 0.1
    ema_half_life_images: float = 500.0
    metric_images: int = 128
    augment: tuple[str, ...] = ("color", "translation", "cutout")
    background_freqs: int = 4


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

    generator: Generator3D
    generator_ema: Generator3D
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
) -> tuple[Generator3D, CameraConditionedDiscriminator]:
    """The demo's generator (small decoder) and discriminator, seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    decoder = small_decoder(
        config.w_dim, num_levels=config.decoder_levels, resolution=config.resolution
    )
    generator = Generator3D(
        config.z_dim, config.w_dim, decoder, background_freqs=config.background_freqs
    ).to(device)
    discriminator = CameraConditionedDiscriminator(
        config.resolution, channel_base=2048, channel_max=64, embed_dim=64
    ).to(device)
    return generator, discriminator


def render_with_labels(
    generator: Generator3D,
    z: Float[Tensor, "B Z"],
    labels: Float[Tensor, "B 25"],
    resolution: int,
) -> Float[Tensor, "B H W 3"]:
    """Renders one image per latent from the camera of the matching EG3D label."""
    cameras = Cameras.from_eg3d_labels(labels[:, None])
    return generator(z, cameras, resolution, resolution).images[:, 0]


@torch.no_grad()
def evaluate(
    generator: Generator3D, data: ImageSource, config: DemoConfig, device: torch.device
) -> Evaluation:
    """Sliced Wasserstein distance, separation loss and foreground coverage, fixed latents."""
    count = min(config.metric_images, data.images.shape[0])
    z = torch.randn(count, config.z_dim, generator=torch.Generator().manual_seed(12345))
    labels = data.labels[:count].to(device)
    fakes, separations, coverages = [], [], []
    for start in range(0, count, 32):
        part = slice(start, start + 32)
        cameras = Cameras.from_eg3d_labels(labels[part, None])
        out = generator(z[part].to(device), cameras, config.resolution, config.resolution)
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


def train(
    config: DemoConfig,
    data: ImageSource,
    device: torch.device | str = "cpu",
    *,
    progress: bool = True,
) -> TrainingRun:
    """Trains the demo GAN.

    Each step renders one batch with the generator from cameras drawn from the dataset's labels,
    updates the generator with the non-saturating loss plus ``separation_weight`` times BallGAN's
    separation loss and ``distortion_weight`` times the splat distortion loss, then updates the
    camera-conditioned discriminator on the same (detached) fakes and a real batch, with lazy R1.
    The EMA generator is evaluated before and after training.
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
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_generator, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(
        discriminator.parameters(), lr=config.lr_discriminator, betas=(0.0, 0.99)
    )
    beta = ema_beta(config.batch, config.ema_half_life_images)
    rng = torch.Generator().manual_seed(config.seed)
    history: dict[str, list[float]] = {
        k: [] for k in ("d_loss", "g_loss", "separation", "distortion", "r1")
    }
    count = data.images.shape[0]
    start = time.perf_counter()
    steps = tqdm(range(config.steps), disable=not progress, desc="training", unit="step")
    for step in steps:
        real_index = torch.randint(count, (config.batch,), generator=rng)
        fake_index = torch.randint(count, (config.batch,), generator=rng)
        real = data.images[real_index].to(device)
        real_labels = data.labels[real_index].to(device)
        fake_labels = data.labels[fake_index].to(device)
        z = torch.randn(config.batch, config.z_dim, generator=rng).to(device)

        # generator step
        cameras = Cameras.from_eg3d_labels(fake_labels[:, None])
        out = generator(z, cameras, config.resolution, config.resolution)
        fake = out.images[:, 0]
        discriminator.requires_grad_(False)
        g_adv = generator_loss(
            discriminator(diff_augment(fake, config.augment, generator=rng), fake_labels)
        )
        separation = separation_loss(out.composite.bg_transmittance)
        assert out.splat.moment1 is not None
        assert out.splat.moment2 is not None
        distortion = splat_distortion_loss(out.splat.alpha, out.splat.moment1, out.splat.moment2)
        g_total = (
            g_adv + config.separation_weight * separation + config.distortion_weight * distortion
        )
        opt_g.zero_grad(set_to_none=True)
        g_total.backward()
        opt_g.step()
        discriminator.requires_grad_(True)

        # discriminator step on the same fakes
        r1_weight = lazy_r1_weight(step, config.r1_gamma, config.r1_interval)
        real_input = real.detach().requires_grad_(r1_weight > 0)
        real_logits = discriminator(
            diff_augment(real_input, config.augment, generator=rng), real_labels
        )
        fake_logits = discriminator(
            diff_augment(fake.detach(), config.augment, generator=rng), fake_labels
        )
        d_loss = discriminator_loss(real_logits, fake_logits)
        r1 = (
            r1_penalty(real_logits, real_input) if r1_weight > 0 else torch.zeros((), device=device)
        )
        opt_d.zero_grad(set_to_none=True)
        (d_loss + r1_weight * r1).backward()
        opt_d.step()

        update_ema(generator_ema, generator, beta)
        logged = torch.stack([d_loss, g_adv, separation, distortion, r1]).detach().tolist()
        for key, value in zip(
            ("d_loss", "g_loss", "separation", "distortion"), logged, strict=False
        ):
            history[key].append(value)
        if r1_weight > 0:
            history["r1"].append(logged[-1])
        steps.set_postfix(
            d=f"{history['d_loss'][-1]:.3f}",
            g=f"{history['g_loss'][-1]:.3f}",
            sep=f"{history['separation'][-1]:.3f}",
        )
    seconds = time.perf_counter() - start
    end_eval = evaluate(generator_ema, data, config, device)
    for values in history.values():
        if any(not math.isfinite(v) for v in values):
            raise RuntimeError("training diverged: a loss became NaN or infinite")
    return TrainingRun(
        generator, generator_ema, discriminator, history, start_eval, end_eval, seconds, config,
    )  # fmt: skip
