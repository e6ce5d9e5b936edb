"""Generators assembled from the library's public components: readable templates.

* :class:`GSGANGenerator`: mapping -> hierarchical Gaussian decoder -> rasterizer, over BallGAN's
  sphere or GSGAN's background Gaussians.
* :class:`BallGANGenerator`: mapping -> tri-plane generator -> tri-plane decoder -> volume
  renderer over BallGAN's sphere -> super-resolution.

Both return their images with everything their losses need, and expose ``foreground_loss``,
``discriminator_images`` and ``image_channels`` for a generic training loop.
"""

from aware3d.models.ballgan import (
    BallGANGenerator,
    BallGANOutput,
    ballgan_ffhq256,
    ballgan_small,
)
from aware3d.models.gsgan import (
    GSGANGenerator,
    GSGANOutput,
    gsgan_ffhq256,
    gsgan_ffhq512,
    gsgan_small,
)

__all__ = [
    "BallGANGenerator",
    "BallGANOutput",
    "GSGANGenerator",
    "GSGANOutput",
    "ballgan_ffhq256",
    "ballgan_small",
    "gsgan_ffhq256",
    "gsgan_ffhq512",
    "gsgan_small",
]
