"""Generators assembled from the library's public components: readable templates.

* :class:`GSGANGenerator`: mapping -> hierarchical Gaussian decoder -> rasterizer, over BallGAN's
  sphere or GSGAN's background Gaussians.
* :class:`BallGANGenerator`: mapping -> tri-plane generator -> tri-plane decoder -> volume
  renderer over BallGAN's sphere -> super-resolution.

* :class:`DemoGenerator`: the demo's small Gaussian generator (a :class:`GSGANGenerator`).

All implement :class:`GeneratorProtocol`, what :func:`aware3d.training.fit` needs of a generator
(latent layout, ``image_channels``, what the discriminator sees, named regularisers); a user's
own generator that implements it trains the same way.
"""

from aware3d.models.ballgan import (
    BallGANGenerator,
    BallGANOutput,
    ballgan_ffhq256,
    ballgan_small,
    triplane_point_cloud,
)
from aware3d.models.demo import DemoGenerator, demo_generator
from aware3d.models.gsgan import (
    GSGANGenerator,
    GSGANOutput,
    gsgan_ffhq256,
    gsgan_ffhq512,
    gsgan_small,
)
from aware3d.models.protocol import (
    GeneratorOutput,
    GeneratorProtocol,
    SupportsCameraCheck,
    SupportsPLYExport,
    check_generator,
)

__all__ = [
    "BallGANGenerator",
    "BallGANOutput",
    "DemoGenerator",
    "GSGANGenerator",
    "GSGANOutput",
    "GeneratorOutput",
    "GeneratorProtocol",
    "SupportsCameraCheck",
    "SupportsPLYExport",
    "ballgan_ffhq256",
    "ballgan_small",
    "check_generator",
    "demo_generator",
    "gsgan_ffhq256",
    "gsgan_ffhq512",
    "gsgan_small",
    "triplane_point_cloud",
]
