"""One GAN step for any generator of :class:`~aware3d.models.GeneratorProtocol`.

:class:`GANLoss` holds the weights and schedules (R1, blur, augmentation, pose swaps, the
camera-contrastive branch, the generator's named regularisers, the EMA half-life);
:func:`gan_step` runs one generator update, one discriminator update and the EMA update with
them. It works in a user's own loop as it does inside :func:`~aware3d.training.fit`.

The generator phase renders the fakes, scores them with the (frozen) discriminator and minimises
``g_total = g_loss + sum_k w_k reg_k + w_con contrastive_g``, where ``reg_k`` are the terms of
``generator.regularizers(out)`` and ``w_k`` their scheduled weights; the discriminator phase
scores the real batch and the detached fakes and minimises ``d_total = d_loss + w_r1 r1 +
w_con contrastive_d``, with lazy R1 on the real images (folded into the same update, not a
separate pass as in StyleGAN2). Every image the discriminator sees is blurred (EG3D's fading
blur) and augmented the same way. Under ``DistributedDataParallel`` each process computes the
means over its own share of the batch and DDP averages the gradients, which equals the gradient
of the mean over the global batch; the only batch-coupled terms are the discriminator's
minibatch standard deviation (per process, as in StyleGAN2) and GSGAN's camera-contrastive loss,
whose negatives are the process's own batch. The step never waits for the device: it returns
the losses as tensors.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from aware3d._validation import (
    check_nonnegative_number,
    check_positive_int,
    check_positive_number,
    value_checks,
)
from aware3d.cameras import Cameras
from aware3d.functional.losses import ballgan_regularizer_ramp
from aware3d.models.protocol import GeneratorProtocol, check_generator
from aware3d.training.augment import AUGMENTATIONS, diff_augment
from aware3d.training.blur import blur_sigma, discriminator_blur
from aware3d.training.ema import ema_beta, make_ema, update_ema
from aware3d.training.losses import (
    camera_contrastive_loss,
    discriminator_loss,
    generator_loss,
    lazy_r1_weight,
    r1_penalty,
)
from aware3d.training.pose_conditioning import swap_conditioning_labels, swap_probability

__all__ = [
    "DiscriminatorPass",
    "GANLoss",
    "Networks",
    "Schedule",
    "StepBatch",
    "gan_step",
    "make_networks",
]


@dataclass(frozen=True)
class GANLoss:
    """Weights and schedules of :func:`gan_step` (lengths in images, as in StyleGAN).

    Attributes:
        weights: weight of each of the generator's regularisers by name (see
            :meth:`~aware3d.models.GeneratorProtocol.regularizers`); terms without a weight are
            logged, not optimised, and weights without a term are ignored.
        ramped: names of regularisers multiplied by BallGAN's ramp ``exp(n / 5000) / 20`` below
            15,000 images (:func:`~aware3d.functional.ballgan_regularizer_ramp`).
        r1_gamma: R1 weight ``gamma`` (the penalty is ``gamma / 2 * E|grad D(x)|^2``).
        r1_interval: lazy R1: applied every this many steps with weight ``gamma / 2 * interval``.
        blur_sigma: initial std (pixels) of the blur on every image the discriminator sees
            (EG3D: 10); 0 for none.
        blur_fade_images: the blur fades linearly to 0 over this many images.
        augment: DiffAugment transforms (:data:`~aware3d.training.AUGMENTATIONS`) on every image
            the discriminator sees.
        swap_probability: final probability of conditioning the generator on another scene's
            camera label (EG3D/GSGAN ``gpc_reg_prob``); only for generators with ``c_dim > 0``.
        swap_fade_images: the probability fades from 1 to ``swap_probability`` over this many
            images (0: constant).
        contrastive_weight: weight of GSGAN's camera-contrastive loss (both networks; needs a
            discriminator with ``forward_contrastive``).
        contrastive_temperature: its temperature ``tau``.
        ema_half_life_images: half-life of the generator's EMA in images.
        ema_rampup: the half-life is at most ``ema_rampup * images seen`` (0 for none).
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    ramped: tuple[str, ...] = ()
    r1_gamma: float = 1.0
    r1_interval: int = 16
    blur_sigma: float = 0.0
    blur_fade_images: float = 0.0
    augment: tuple[str, ...] = ()
    swap_probability: float = 0.0
    swap_fade_images: float = 0.0
    contrastive_weight: float = 0.0
    contrastive_temperature: float = 0.1
    ema_half_life_images: float = 10_000.0
    ema_rampup: float = 0.05

    def __post_init__(self) -> None:
        for name, weight in self.weights.items():
            if not isinstance(name, str):
                raise ValueError(f"`weights` keys must be names, got {name!r}")
            check_nonnegative_number(f"weights[{name!r}]", weight)
        object.__setattr__(self, "weights", dict(self.weights))
        check_positive_int("r1_interval", self.r1_interval)
        for name in ("r1_gamma", "blur_sigma", "blur_fade_images", "swap_fade_images",
                     "contrastive_weight", "ema_rampup"):  # fmt: skip
            check_nonnegative_number(name, getattr(self, name))
        for name in ("contrastive_temperature", "ema_half_life_images"):
            check_positive_number(name, getattr(self, name))
        if not 0.0 <= self.swap_probability <= 1.0:
            raise ValueError(f"`swap_probability` must be in [0, 1], got {self.swap_probability}")
        unknown = [name for name in self.augment if name not in AUGMENTATIONS]
        if isinstance(self.augment, str) or unknown:
            raise ValueError(
                f"`augment` must hold names from {AUGMENTATIONS}, got {self.augment!r}"
            )

    def schedule(self, step: int, images_seen: int, batch: int) -> "Schedule":
        """The scheduled values at ``step``, with ``images_seen`` images shown before it.

        Args:
            step: steps completed before this one.
            images_seen: images shown to the discriminator before this step (global).
            batch: the global batch (the EMA's decay per step).
        """
        half_life = self.ema_half_life_images
        if self.ema_rampup > 0:
            half_life = min(half_life, max(images_seen, batch) * self.ema_rampup)
        ramp = ballgan_regularizer_ramp(images_seen)
        weights = {name: w * (ramp if name in self.ramped else 1.0)
                   for name, w in self.weights.items()}  # fmt: skip
        return Schedule(
            r1_weight=lazy_r1_weight(step, self.r1_gamma, self.r1_interval),
            blur_sigma=blur_sigma(images_seen, self.blur_sigma, self.blur_fade_images),
            swap_probability=swap_probability(
                images_seen, self.swap_probability, self.swap_fade_images
            ),
            weights=weights,
            ema_beta=ema_beta(batch, half_life),
        )


class Schedule(NamedTuple):
    """One step's scheduled values (:meth:`GANLoss.schedule`)."""

    r1_weight: float
    blur_sigma: float
    swap_probability: float
    weights: dict[str, float]
    ema_beta: float


class DiscriminatorPass(nn.Module):
    """The discriminator phase's scores of the real and the fake batch in one ``forward``.

    ``DistributedDataParallel`` hooks ``forward`` and expects one call per backward, so the real
    and the fake batch (each scored separately, so the minibatch standard deviation never mixes
    them) and GSGAN's contrastive loss on the real batch go through a single call.
    """

    def __init__(self, discriminator: nn.Module) -> None:
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
        scorer: Any = self.discriminator  # with forward_contrastive (checked by the caller)
        out = scorer.forward_contrastive(real, real_labels)
        loss = camera_contrastive_loss(out.image_embeddings, out.camera_embeddings, temperature)
        return out.logits, fake_logits, loss


class Networks(NamedTuple):
    """What a step updates (build it with :func:`make_networks`).

    Attributes:
        generator: the generator being trained (:class:`~aware3d.models.GeneratorProtocol`).
        generator_ema: its moving average.
        discriminator: the discriminator, ``(images [B, H, W, F], labels [B, 25]) -> logits [B]``.
        generator_train: ``generator`` or its ``DistributedDataParallel`` wrapper.
        discriminator_train: a :class:`DiscriminatorPass` or its DDP wrapper.
        opt_g: the generator's optimizer.
        opt_d: the discriminator's optimizer.
    """

    generator: Any
    generator_ema: Any
    discriminator: nn.Module
    generator_train: nn.Module
    discriminator_train: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer


def make_networks(
    generator: nn.Module,
    discriminator: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    *,
    wrap: Callable[[nn.Module, bool], nn.Module] | None = None,
) -> Networks:
    """:class:`Networks` for :func:`gan_step`: the EMA copy and the discriminator pass.

    Args:
        generator: a :class:`~aware3d.models.GeneratorProtocol` module.
        discriminator: the discriminator.
        opt_g: optimizer of ``generator``'s parameters.
        opt_d: optimizer of ``discriminator``'s parameters.
        wrap: ``(module, sync_buffers) -> wrapper``, e.g. ``DistributedDataParallel`` (used by
            :func:`~aware3d.training.fit` under torchrun); ``None`` trains the modules as they are.

    Raises:
        TypeError: if ``generator`` does not implement the protocol.
    """
    check_generator(generator)
    discriminator_pass: nn.Module = DiscriminatorPass(discriminator)
    generator_train: nn.Module = generator
    if wrap is not None:
        generator_train = wrap(generator, False)
        discriminator_pass = wrap(discriminator_pass, True)
    return Networks(generator, make_ema(generator), discriminator, generator_train,
                    discriminator_pass, opt_g, opt_d)  # fmt: skip


class StepBatch(NamedTuple):
    """This process's share of one step's batch, on its device.

    Attributes:
        real: real images ``[b, H, W, 3]`` in [-1, 1]; the fakes are rendered at ``W x H``.
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


def _discriminator_view(images: Tensor, loss: GANLoss, sigma: float, rng) -> Tensor:
    return diff_augment(discriminator_blur(images, sigma), loss.augment, generator=rng)


def gan_step(
    nets: Networks,
    batch: StepBatch,
    loss: GANLoss,
    plan: Schedule,
    rng: torch.Generator,
    sync_buffers: Callable[[nn.Module], None] | None = None,
) -> dict[str, Tensor]:
    """One generator update, one discriminator update and the EMA update.

    Runs with value checks off (the batch's cameras were validated when they were built).

    Args:
        nets: the networks and optimizers (:func:`make_networks`).
        batch: this process's batch.
        loss: the weights and schedules.
        plan: the step's :class:`Schedule` (``loss.schedule(step, images_seen, batch)``).
        rng: this process's own random stream (augmentation, pose swaps).
        sync_buffers: called with the generator after its update, before the EMA copies its
            buffers (averages running means over processes).

    Returns:
        0-dim tensors on the device, by name: ``d_loss``, ``g_loss``, every regulariser the
        generator returns, ``contrastive_g`` and ``contrastive_d`` (when the contrastive branch
        is on), ``r1`` (0 on steps without it), ``g_total`` and ``d_total`` (what was
        minimised: the weighted sums above). This process's values, detached.
    """
    generator, generator_ema, discriminator, g_train, d_train, opt_g, opt_d = nets
    gen: GeneratorProtocol = generator
    scorer: Any = discriminator
    contrastive = loss.contrastive_weight > 0
    height, width = batch.real.shape[1], batch.real.shape[2]
    zero = batch.z.new_zeros(())
    with value_checks(False):
        labels = None
        if gen.c_dim > 0:
            labels = swap_conditioning_labels(batch.fake_labels, plan.swap_probability,
                                              generator=rng)  # fmt: skip
        out = g_train(batch.z, batch.fake_cameras, width, height, c=labels)
        fake = gen.discriminator_images(out)[:, 0]
        discriminator.requires_grad_(False)
        fake_seen = _discriminator_view(fake, loss, plan.blur_sigma, rng)
        terms: dict[str, Tensor] = {}
        if contrastive:
            d_out = scorer.forward_contrastive(fake_seen, batch.fake_labels)
            fake_logits = d_out.logits
            contrastive_g = camera_contrastive_loss(
                d_out.image_embeddings, d_out.camera_embeddings, loss.contrastive_temperature
            )
        else:
            fake_logits, contrastive_g = discriminator(fake_seen, batch.fake_labels), zero
        g_adv = generator_loss(fake_logits)
        regularizers = gen.regularizers(out)
        g_total = g_adv + loss.contrastive_weight * contrastive_g
        for name, value in regularizers.items():
            weight = plan.weights.get(name, 0.0)
            if weight:
                g_total = g_total + weight * value
        opt_g.zero_grad(set_to_none=True)
        g_total.backward()
        opt_g.step()
        if sync_buffers is not None:
            sync_buffers(generator)
        discriminator.requires_grad_(True)

        real = gen.real_discriminator_images(batch.real.detach())
        real = real.requires_grad_(plan.r1_weight > 0)
        real_logits, fake_logits, contrastive_d = d_train(
            _discriminator_view(real, loss, plan.blur_sigma, rng), batch.real_labels,
            _discriminator_view(fake.detach(), loss, plan.blur_sigma, rng), batch.fake_labels,
            contrastive, loss.contrastive_temperature,
        )  # fmt: skip
        d_loss = discriminator_loss(real_logits, fake_logits)
        r1 = r1_penalty(real_logits, real) if plan.r1_weight > 0 else zero
        d_total = d_loss + plan.r1_weight * r1 + loss.contrastive_weight * contrastive_d
        opt_d.zero_grad(set_to_none=True)
        d_total.backward()
        opt_d.step()
        update_ema(generator_ema, generator, plan.ema_beta)
    terms.update(d_loss=d_loss, g_loss=g_adv)
    terms.update({name: value.detach() for name, value in regularizers.items()})
    if contrastive:
        terms.update(contrastive_g=contrastive_g, contrastive_d=contrastive_d)
    terms.update(r1=r1, g_total=g_total, d_total=d_total)
    return {name: value.detach() for name, value in terms.items()}
