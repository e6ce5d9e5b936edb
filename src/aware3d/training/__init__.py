"""The training engine: the GAN step, the loop, and the pieces they are made of.

GAN losses, R1, EMA, discriminator, pose swaps, checkpoints, metrics, the one GAN step
(:func:`gan_step` with a :class:`GANLoss`) and the one loop (:func:`fit`).

Three depths of use: import the losses and pieces into your own loop; call :func:`gan_step` in
your loop; or hand your generator (anything implementing
:class:`~aware3d.models.GeneratorProtocol`) to :func:`fit`. Importing this package does not
import TensorBoard, torchmetrics or torch-fidelity (they load when a run logs or evaluates).
"""

from aware3d.training.augment import AUGMENTATIONS, diff_augment
from aware3d.training.blur import blur_kernel, blur_sigma, discriminator_blur
from aware3d.training.checkpoint import load_checkpoint, save_checkpoint
from aware3d.training.data import DataPosition, RealBatches, dataset_labels, resize_images
from aware3d.training.discriminator import (
    CameraConditionedDiscriminator,
    ContrastiveOutput,
    EqualizedConv2d,
    dual_discriminator_input,
)
from aware3d.training.distributed import DistributedContext, init_distributed
from aware3d.training.dual_discriminator import DualDiscriminator
from aware3d.training.ema import ema_beta, make_ema, update_ema
from aware3d.training.evaluate import Evaluator, sample_images
from aware3d.training.fit import STOPPED_EXIT_CODE, FitResult, StepInfo, fit, resolve_resume
from aware3d.training.inception import (
    FidKid,
    InceptionFeatures,
    fid_kid,
    find_inception_weights,
    inception_features,
    load_inception,
)
from aware3d.training.logs import RunLogger
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
from aware3d.training.run_checkpoints import (
    find_latest_checkpoint,
    list_checkpoints,
    load_training_checkpoint,
    save_training_checkpoint,
)
from aware3d.training.run_folder import (
    RunFolderError,
    RunLock,
    claim_run_folder,
    clean_leftovers,
    set_aside_later_checkpoints,
    truncate_log,
)
from aware3d.training.step import (
    DiscriminatorPass,
    GANLoss,
    Networks,
    Schedule,
    StepBatch,
    gan_step,
    make_networks,
)

__all__ = [
    "AUGMENTATIONS",
    "GSGAN_SWAP_PROBABILITY",
    "STOPPED_EXIT_CODE",
    "CameraConditionedDiscriminator",
    "ContrastiveOutput",
    "DataPosition",
    "DiscriminatorPass",
    "DistributedContext",
    "DualDiscriminator",
    "EqualizedConv2d",
    "Evaluator",
    "FidKid",
    "FitResult",
    "GANLoss",
    "InceptionFeatures",
    "Networks",
    "RealBatches",
    "RunFolderError",
    "RunLock",
    "RunLogger",
    "Schedule",
    "SlicedWasserstein",
    "StepBatch",
    "StepInfo",
    "blur_kernel",
    "blur_sigma",
    "camera_contrastive_loss",
    "claim_run_folder",
    "clean_leftovers",
    "dataset_labels",
    "diff_augment",
    "discriminator_blur",
    "discriminator_loss",
    "dual_discriminator_input",
    "ema_beta",
    "fid_kid",
    "find_inception_weights",
    "find_latest_checkpoint",
    "fit",
    "gan_step",
    "generator_loss",
    "inception_features",
    "init_distributed",
    "lazy_r1_weight",
    "list_checkpoints",
    "load_checkpoint",
    "load_inception",
    "load_training_checkpoint",
    "make_ema",
    "make_networks",
    "r1_penalty",
    "resize_images",
    "resolve_resume",
    "sample_images",
    "save_checkpoint",
    "save_training_checkpoint",
    "set_aside_later_checkpoints",
    "sliced_wasserstein_distance",
    "swap_conditioning_labels",
    "swap_probability",
    "truncate_log",
    "update_ema",
]
