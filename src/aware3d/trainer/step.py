"""One training step of a recipe: a generator update, a discriminator update, the EMA update.

The generator phase renders the fakes, scores them with the (frozen) discriminator and minimises
the non-saturating loss plus the recipe's regularisers; the discriminator phase scores the real
batch and the detached fakes, with lazy R1 on the real images (folded into the same update, not
a separate pass as in StyleGAN2). Every image the discriminator sees is blurred (EG3D's fading
blur) and augmented the same way. Under ``DistributedDataParallel`` each process computes the
means over its own share of the batch and DDP averages the gradients, which equals the gradient
of the mean over the global batch; the only batch-coupled terms are the discriminator's
minibatch standard deviation (per process, as in StyleGAN2) and GSGAN's camera-contrastive loss,
whose negatives are the process's own batch.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from aware3d._validation import value_checks
from aware3d.cameras import Cameras
from aware3d.demo.models import generate, real_discriminator_images
from aware3d.functional.losses import ballgan_regularizer_ramp, separation_loss
from aware3d.functional.regularizers import centre_distance_loss, knn_distance_loss
from aware3d.models import GSGANGenerator
from aware3d.trainer.models import is_conditioned
from aware3d.trainer.recipes import TrainConfig
from aware3d.training import (
    CameraConditionedDiscriminator,
    blur_sigma,
    camera_contrastive_loss,
    diff_augment,
    discriminator_blur,
    discriminator_loss,
    ema_beta,
    generator_loss,
    lazy_r1_weight,
    r1_penalty,
    swap_conditioning_labels,
    swap_probability,
    update_ema,
)

__all__ = ["LOSS_NAMES", "DiscriminatorPass", "Networks", "Schedule", "StepInputs", "schedule",
           "training_step"]  # fmt: skip

#: The values :func:`training_step` returns, in order.
LOSS_NAMES = ("d_loss", "g_loss", "separation", "foreground", "knn", "centre",
              "contrastive_g", "contrastive_d", "r1")  # fmt: skip


class DiscriminatorPass(nn.Module):
    """The discriminator phase's scores of the real and the fake batch in one ``forward``.

    ``DistributedDataParallel`` hooks ``forward`` and expects one call per backward, so the real
    and the fake batch (each scored separately, so the minibatch standard deviation never mixes
    them) and GSGAN's contrastive loss on the real batch go through a single call.
    """

    def __init__(self, discriminator: CameraConditionedDiscriminator) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(
        self,
        real: Tensor,
        real_labels: Tensor,
        fake: Tensor,
        fake_labels: Tensor,
        contrastive: bool = False,
        temperature: float = 0.1,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Real logits ``[b]``, fake logits ``[b]`` and the contrastive loss (0 when off)."""
        fake_logits = self.discriminator(fake, fake_labels)
        if not contrastive:
            return self.discriminator(real, real_labels), fake_logits, real.new_zeros(())
        out = self.discriminator.forward_contrastive(real, real_labels)
        loss = camera_contrastive_loss(out.image_embeddings, out.camera_embeddings, temperature)
        return out.logits, fake_logits, loss


class Networks(NamedTuple):
    """What a step updates.

    Attributes:
        generator: the generator being trained.
        generator_ema: its moving average.
        discriminator: the discriminator.
        generator_train: ``generator`` or its ``DistributedDataParallel`` wrapper.
        discriminator_train: a :class:`DiscriminatorPass` or its DDP wrapper.
        opt_g: the generator's optimizer.
        opt_d: the discriminator's optimizer.
    """

    generator: nn.Module
    generator_ema: nn.Module
    discriminator: CameraConditionedDiscriminator
    generator_train: nn.Module
    discriminator_train: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer


class StepInputs(NamedTuple):
    """This process's share of one step's batch, on its device.

    Attributes:
        real: real images ``[b, H, W, 3]`` in [-1, 1].
        real_labels: their labels ``[b, 25]``.
        fake_labels: the labels of the cameras the fakes are rendered from ``[b, 25]``.
        fake_cameras: those cameras, ``Cameras [b, 1]``.
        z: latents ``[b, latent_dim]``.
    """

    real: Tensor
    real_labels: Tensor
    fake_labels: Tensor
    fake_cameras: Cameras
    z: Tensor


class Schedule(NamedTuple):
    """The step's scheduled values (functions of the step and the images seen)."""

    r1_weight: float
    blur_sigma: float
    swap_probability: float
    separation_weight: float
    foreground_weight: float
    ema_beta: float


def schedule(config: TrainConfig, step: int, images_seen: int) -> Schedule:
    """The recipe's schedules at ``step``, with ``images_seen`` images shown before it."""
    half_life = config.ema_kimg * 1000
    if config.ema_rampup > 0:
        half_life = min(half_life, max(images_seen, config.batch) * config.ema_rampup)
    ramp = ballgan_regularizer_ramp(images_seen)
    return Schedule(
        r1_weight=lazy_r1_weight(step, config.r1_gamma, config.r1_interval),
        blur_sigma=blur_sigma(images_seen, config.blur_sigma, config.blur_fade_kimg * 1000),
        swap_probability=swap_probability(
            images_seen, config.swap_probability, config.swap_fade_kimg * 1000
        ),
        separation_weight=config.separation_weight * (ramp if config.separation_ramp else 1.0),
        foreground_weight=config.foreground_loss_weight
        * (ramp if config.foreground_loss_ramp else 1.0),
        ema_beta=ema_beta(config.batch, half_life),
    )


def _discriminator_view(images: Tensor, config: TrainConfig, sigma: float, rng) -> Tensor:
    return diff_augment(discriminator_blur(images, sigma), config.augment, generator=rng)


def training_step(
    nets: Networks,
    inputs: StepInputs,
    config: TrainConfig,
    plan: Schedule,
    rng: torch.Generator,
    sync_buffers: Callable[[nn.Module], None] | None = None,
) -> Tensor:
    """One generator update, one discriminator update and the EMA update.

    Args:
        nets: the networks and optimizers.
        inputs: this process's batch.
        config: the recipe.
        plan: the step's :class:`Schedule`.
        rng: this process's own random stream (augmentation, pose swaps).
        sync_buffers: called with the generator after its update, before the EMA copies its
            buffers (averages running means over processes).

    Returns:
        The losses of :data:`LOSS_NAMES` as one tensor on the device (this process's values;
        0 for terms that are off).
    """
    generator, generator_ema, discriminator, g_train, d_train, opt_g, opt_d = nets
    assembly: Any = (
        generator  # a generator of aware3d.models: discriminator_images, foreground_loss
    )
    contrastive = config.pose_contrastive_weight > 0
    zero = inputs.z.new_zeros(())
    with value_checks(False):
        labels = None
        if is_conditioned(generator):
            labels = swap_conditioning_labels(
                inputs.fake_labels, plan.swap_probability, generator=rng
            )
        out = generate(g_train, inputs.z, inputs.fake_cameras, config.resolution, c=labels,
                     module=generator)  # fmt: skip
        fake = assembly.discriminator_images(out)[:, 0]
        discriminator.requires_grad_(False)
        fake_seen = _discriminator_view(fake, config, plan.blur_sigma, rng)
        if contrastive:
            d_out = discriminator.forward_contrastive(fake_seen, inputs.fake_labels)
            fake_logits = d_out.logits
            contrastive_g = camera_contrastive_loss(
                d_out.image_embeddings, d_out.camera_embeddings, config.pose_contrastive_temperature
            )
        else:
            fake_logits, contrastive_g = discriminator(fake_seen, inputs.fake_labels), zero
        g_adv = generator_loss(fake_logits)
        separation = separation_loss(out.composite.bg_transmittance)
        foreground = assembly.foreground_loss(out) if plan.foreground_weight > 0 else zero
        knn = centre = zero
        if isinstance(generator, GSGANGenerator) and (config.knn_weight or config.centre_weight):
            anchors = out.gaussians.select(levels=0).means
            if config.knn_weight:
                knn = knn_distance_loss(anchors, min(config.knn_neighbours, anchors.shape[1] - 1))
            if config.centre_weight:
                centre = centre_distance_loss(anchors)
        g_total = (
            g_adv
            + plan.separation_weight * separation
            + plan.foreground_weight * foreground
            + config.knn_weight * knn
            + config.centre_weight * centre
            + config.pose_contrastive_weight * contrastive_g
        )
        opt_g.zero_grad(set_to_none=True)
        g_total.backward()
        opt_g.step()
        if sync_buffers is not None:
            sync_buffers(generator)
        discriminator.requires_grad_(True)

        real = real_discriminator_images(generator, inputs.real.detach())
        real = real.requires_grad_(plan.r1_weight > 0)
        real_logits, fake_logits, contrastive_d = d_train(
            _discriminator_view(real, config, plan.blur_sigma, rng), inputs.real_labels,
            _discriminator_view(fake.detach(), config, plan.blur_sigma, rng), inputs.fake_labels,
            contrastive, config.pose_contrastive_temperature,
        )  # fmt: skip
        d_loss = discriminator_loss(real_logits, fake_logits)
        r1 = r1_penalty(real_logits, real) if plan.r1_weight > 0 else zero
        d_total = d_loss + plan.r1_weight * r1 + config.pose_contrastive_weight * contrastive_d
        opt_d.zero_grad(set_to_none=True)
        d_total.backward()
        opt_d.step()
        update_ema(generator_ema, generator, plan.ema_beta)
    return torch.stack(
        [d_loss, g_adv, separation, foreground, knn, centre, contrastive_g, contrastive_d, r1]
    ).detach()
