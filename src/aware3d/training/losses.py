"""GAN objectives: StyleGAN2's non-saturating logistic loss and the (lazy) R1 penalty."""

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._validation import (
    check_nonnegative_int,
    check_nonnegative_number,
    check_positive_int,
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
