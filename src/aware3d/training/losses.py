"""GAN objectives: non-saturating logistic loss, (lazy) R1, GSGAN's camera-contrastive loss."""

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._validation import (
    check_nonnegative_int,
    check_nonnegative_number,
    check_positive_int,
    check_positive_number,
    check_values,
    finite_checks,
    value_checks_enabled,
)


def _require_some(name: str, logits: Tensor) -> None:
    if logits.numel() == 0:
        raise ValueError(f"`{name}` is empty: the mean of zero logits is undefined")


@checked
def generator_loss(fake_logits: Float[Tensor, "*batch"]) -> Float[Tensor, ""]:
    """Non-saturating generator loss ``mean(softplus(-D(G(z))))``.

    Raises:
        ValueError: for empty logits (a mean of nothing).
    """
    _require_some("fake_logits", fake_logits)
    return F.softplus(-fake_logits).mean()


@checked
def discriminator_loss(
    real_logits: Float[Tensor, "*batch"], fake_logits: Float[Tensor, "*other"]
) -> Float[Tensor, ""]:
    """Logistic discriminator loss ``mean(softplus(D(fake))) + mean(softplus(-D(real)))``.

    Raises:
        ValueError: for empty logits (a mean of nothing).
    """
    _require_some("real_logits", real_logits)
    _require_some("fake_logits", fake_logits)
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


@checked
def r1_penalty(
    real_logits: Float[Tensor, " B"], real_images: Float[Tensor, " B *image"]
) -> Float[Tensor, ""]:
    """R1 gradient penalty ``mean_b |d D(x_b) / d x_b|^2`` on real images.

    ``real_images`` must require grad and ``real_logits`` must have been computed from them; the
    result keeps the graph (``create_graph=True``) so it can be back-propagated.

    Args:
        real_logits: discriminator outputs ``[B]``.
        real_images: the real images they came from, ``[B, ...]``.

    Returns:
        The scalar penalty (multiply by ``gamma / 2``, and by the interval when lazy).

    Raises:
        ValueError: for an empty batch, images that do not require grad, or logits that were
            not computed from the images.
    """
    _require_some("real_logits", real_logits)
    if not real_images.requires_grad:
        raise ValueError("`real_images` must require grad (call `.requires_grad_(True)` first)")
    try:
        (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    except RuntimeError as error:
        raise ValueError(
            f"`real_logits` must be computed from `real_images` (autograd: {error})"
        ) from None
    return grad.square().flatten(1).sum(1).mean()


def lazy_r1_weight(step: int, gamma: float, interval: int) -> float:
    """Weight of the R1 term at ``step`` under lazy regularisation (StyleGAN2).

    The penalty is applied every ``interval`` steps with weight ``gamma / 2 * interval`` and is
    skipped (weight 0) otherwise, so its average strength matches ``gamma / 2`` every step.
    """
    check_nonnegative_int("step", step)
    check_positive_int("interval", interval)
    gamma = check_nonnegative_number("gamma", gamma)
    return gamma / 2 * interval if step % interval == 0 else 0.0


@checked
def camera_contrastive_loss(
    image_embeddings: Float[Tensor, "B E"],
    camera_embeddings: Float[Tensor, "B E"],
    temperature: float = 0.1,
) -> Float[Tensor, ""]:
    """GSGAN's camera-contrastive loss: each image must pick its own camera out of the batch.

    InfoNCE from images to cameras on L2-normalised embeddings ``u_i`` (image ``i``) and ``v_j``
    (camera ``j``) with cosine similarities ``s_ij = <u_i, v_j>``:

    ``L = -(1/B) sum_i log( exp(s_ii / tau) / sum_j exp(s_ij / tau) )``.

    The positive of an image is the camera it was rendered from (a real image's own label), the
    negatives are the other cameras of the batch. GSGAN applies it with weight 1 and
    ``tau = 0.1`` to the discriminator on real images and to the generator on its renders
    (discriminator frozen); see
    :meth:`~aware3d.training.CameraConditionedDiscriminator.forward_contrastive`.

    Args:
        image_embeddings: ``[B, E]`` from the discriminator's pose branch.
        camera_embeddings: ``[B, E]`` from its camera head, row ``i`` the camera of image ``i``.
        temperature: ``tau > 0``.

    Returns:
        The scalar loss (``log B`` for embeddings that tell nothing apart).

    Raises:
        ValueError: for an empty batch (a mean of nothing), a temperature that is not positive,
            and (value checks) non-finite embeddings.
    """
    temperature = check_positive_number("temperature", temperature)
    _require_some("image_embeddings", image_embeddings)
    if value_checks_enabled():
        check_values(finite_checks(image_embeddings=image_embeddings,
                                   camera_embeddings=camera_embeddings))  # fmt: skip
    images = F.normalize(image_embeddings, dim=1)
    cameras = F.normalize(camera_embeddings, dim=1)
    logits = images @ cameras.T / temperature
    targets = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, targets)
