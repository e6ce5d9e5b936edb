"""Generator pose conditioning with label swapping (EG3D's and GSGAN's regulariser).

The mapping network sees a camera label. Conditioning it on the rendering camera always would let
the generator tie the scene to the view (a face that turns with the camera); so with probability
``p`` each scene is conditioned on another scene's camera instead (its batch neighbour's, as
released: the labels rolled by one). ``p`` starts at 1 (the label says nothing about the view) and
fades linearly to its final value: 0.5 for FFHQ and 0.8 for AFHQ in GSGAN's scripts, over 1,000
kimg (0 when resuming).
"""

import torch
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._validation import check_nonnegative_number, check_number

__all__ = ["GSGAN_SWAP_PROBABILITY", "swap_conditioning_labels", "swap_probability"]

#: GSGAN's final swapping probabilities (``gpc_reg_prob`` of its training scripts).
GSGAN_SWAP_PROBABILITY = {"ffhq": 0.5, "afhq": 0.8}


def swap_probability(
    images_seen: float, final: float = 0.5, fade_images: float = 1_000_000
) -> float:
    """``p(n) = (1 - a) + a * final`` with ``a = min(n / fade_images, 1)`` (1 when not fading).

    Args:
        images_seen: ``n``, images shown to the discriminator so far (>= 0).
        final: the probability after the fade, in ``[0, 1]`` (GSGAN: 0.5 FFHQ, 0.8 AFHQ).
        fade_images: length of the fade in images (GSGAN: 1,000 kimg; 0 for no fade).

    Returns:
        The probability of conditioning a scene on another scene's camera.

    Raises:
        ValueError: for a negative ``images_seen`` or ``fade_images``, or ``final`` outside
            ``[0, 1]``.
    """
    images_seen = check_nonnegative_number("images_seen", images_seen)
    fade_images = check_nonnegative_number("fade_images", fade_images)
    final = check_number("final", final)
    if not 0.0 <= final <= 1.0:
        raise ValueError(f"`final` must be in [0, 1], got {final!r}")
    alpha = min(images_seen / fade_images, 1.0) if fade_images > 0 else 1.0
    return (1.0 - alpha) + alpha * final


@checked
def swap_conditioning_labels(
    labels: Float[Tensor, "B L"],
    probability: float,
    *,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "B L"]:
    """The mapping network's conditioning labels: each row, with ``probability``, its neighbour's.

    ``out[i] = labels[i - 1]`` (the batch rolled by one, row 0 takes the last) where
    ``u_i < probability`` for ``u_i ~ U[0, 1)``, else ``labels[i]``. The rendering camera stays
    ``labels[i]``; only the conditioning changes. One random draw per row, on ``labels``' device.

    Args:
        labels: camera labels ``[B, L]`` (``L = 25`` for EG3D's).
        probability: swapping probability in ``[0, 1]`` (see :func:`swap_probability`).
        generator: random generator for the draws (on ``labels``' device).

    Returns:
        ``[B, L]`` conditioning labels.

    Raises:
        ValueError: for ``probability`` outside ``[0, 1]``.
    """
    probability = check_number("probability", probability)
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"`probability` must be in [0, 1], got {probability!r}")
    draws = torch.rand(
        labels.shape[0], 1, generator=generator, device=labels.device, dtype=labels.dtype
    )
    return torch.where(draws < probability, labels.roll(1, dims=0), labels)
