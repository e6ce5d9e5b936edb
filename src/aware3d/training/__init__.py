"""Training helpers: GAN losses, R1, EMA, discriminator, pose swaps, checkpoints, metrics."""

from aware3d.training.augment import AUGMENTATIONS, diff_augment
from aware3d.training.blur import blur_kernel, blur_sigma, discriminator_blur
from aware3d.training.checkpoint import load_checkpoint, save_checkpoint
from aware3d.training.discriminator import (
    CameraConditionedDiscriminator,
    ContrastiveOutput,
    EqualizedConv2d,
    dual_discriminator_input,
)
from aware3d.training.ema import ema_beta, make_ema, update_ema
from aware3d.training.losses import (
    camera_contrastive_loss,
    discriminator_loss,
    generator_loss,
    lazy_r1_weight,
    r1_penalty,
)
from aware3d.training.metrics import SlicedWasserstein, sliced_wasserstein_distance
from aware3d.training.pose_conditioning import (
    GSGAN_SWAP_PROBABILITY,
    swap_conditioning_labels,
    swap_probability,
)

__all__ = [
    "AUGMENTATIONS",
    "GSGAN_SWAP_PROBABILITY",
    "CameraConditionedDiscriminator",
    "ContrastiveOutput",
    "EqualizedConv2d",
    "SlicedWasserstein",
    "blur_kernel",
    "blur_sigma",
    "camera_contrastive_loss",
    "diff_augment",
    "discriminator_blur",
    "discriminator_loss",
    "dual_discriminator_input",
    "ema_beta",
    "generator_loss",
    "lazy_r1_weight",
    "load_checkpoint",
    "make_ema",
    "r1_penalty",
    "save_checkpoint",
    "sliced_wasserstein_distance",
    "swap_conditioning_labels",
    "swap_probability",
    "update_ema",
]
