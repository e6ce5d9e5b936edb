"""Inverting images into a 3D-aware generator: W / W+ projection, pivotal tuning, the camera.

* :func:`project`: style codes (one per mapping network in W, one per layer in W+) that render a
  target image, from ``w_avg`` under StyleGAN2's projector schedule (:class:`ProjectorSchedule`),
  with the camera given or refined from a :class:`CameraGuess`;
* :func:`pivotal_tuning`: PTI, a tuned copy of the generator around the found codes with a
  locality regulariser (:class:`PTIConfig`), and :func:`locality_psnr` to measure it;
* :class:`LPIPS` / :func:`load_lpips`: the perceptual loss with a VGG16 built here, weights read
  from local files;
* :func:`save_latent` / :func:`load_latent`: the codes and camera as safetensors.

It works through :func:`aware3d.models.styles.styles_of`, so it serves GSGAN-family and
BallGAN-family generators and any generator implementing
:class:`~aware3d.models.styles.SupportsStyles`.
"""

from aware3d.inversion.camera import (
    CAMERA_PARAMETERS,
    CameraGuess,
    CameraParameters,
    rotation_error_degrees,
)
from aware3d.inversion.latents import load_latent, save_latent
from aware3d.inversion.lpips import LPIPS, VGG16Features, load_lpips
from aware3d.inversion.project import (
    LossWeights,
    Projection,
    ProjectorSchedule,
    PTIConfig,
    Tuning,
    WStatistics,
    locality_psnr,
    pivotal_tuning,
    project,
    psnr,
    reconstruction_loss,
    w_statistics,
)

__all__ = [
    "CAMERA_PARAMETERS",
    "LPIPS",
    "CameraGuess",
    "CameraParameters",
    "LossWeights",
    "PTIConfig",
    "Projection",
    "ProjectorSchedule",
    "Tuning",
    "VGG16Features",
    "WStatistics",
    "load_latent",
    "load_lpips",
    "locality_psnr",
    "pivotal_tuning",
    "project",
    "psnr",
    "reconstruction_loss",
    "rotation_error_degrees",
    "save_latent",
    "w_statistics",
]
