"""Generators assembled from the library's public components: readable templates.

* :class:`GSGANGenerator`: mapping -> hierarchical Gaussian decoder -> rasterizer, over BallGAN's
  sphere or GSGAN's background Gaussians.
* :class:`BallGANGenerator`: mapping -> tri-plane generator -> tri-plane decoder -> volume
  renderer over BallGAN's sphere -> super-resolution.

* :class:`EG3DGenerator`: EG3D's generator, a :class:`BallGANGenerator` without the sphere.
* :class:`DemoGenerator`: the demo's small Gaussian generator (a :class:`GSGANGenerator`).

:func:`load_released` builds these assemblies from the authors' released ``.pkl`` files
(GSGAN, EG3D, BallGAN) without importing or running any of their code.

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
from aware3d.models.eg3d import EG3DGenerator, eg3d_ffhq512
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
from aware3d.models.released import (
    ReleasedGenerator,
    ReleasedModelError,
    convert_released_generator,
    load_released,
)

__all__ = [
    "BallGANGenerator",
    "BallGANOutput",
    "DemoGenerator",
    "EG3DGenerator",
    "GSGANGenerator",
    "GSGANOutput",
    "GeneratorOutput",
    "GeneratorProtocol",
    "ReleasedGenerator",
    "ReleasedModelError",
    "SupportsCameraCheck",
    "SupportsPLYExport",
    "ballgan_ffhq256",
    "ballgan_small",
    "check_generator",
    "convert_released_generator",
    "demo_generator",
    "eg3d_ffhq512",
    "gsgan_ffhq256",
    "gsgan_ffhq512",
    "gsgan_small",
    "load_released",
    "triplane_point_cloud",
]
