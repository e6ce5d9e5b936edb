"""EG3D's generator assembled from aware3d's components: BallGAN's assembly without the sphere.

EG3D (Chan et al., CVPR 2022) is BallGAN's foreground alone: ``(z, c) -> mapping -> ws``,
``ws -> TriplaneGenerator -> planes``, every pixel ray sampled coarse + fine and decoded
(:class:`~aware3d.nn.TriplaneDecoder`), composited over nothing (EG3D's ray marcher leaves the
weight that no sample takes as black: background features of 0), scaled to ``2 x - 1`` and
super-resolved. :class:`EG3DGenerator` is a :class:`~aware3d.models.BallGANGenerator` whose
renderer has no background and which has no background mapping, so the two share one
forward pass, the dual-discriminator images and the point-cloud export; the latent is EG3D's
``z`` alone.

:func:`aware3d.models.load_released` returns one for EG3D's released ``.pkl`` files.
"""

from torch import Tensor

from aware3d.models.ballgan import BallGANGenerator, BallGANOutput
from aware3d.nn.mapping import MappingNetwork, gsgan_mapping
from aware3d.nn.superresolution import SuperResolution
from aware3d.nn.triplane import TriplaneDecoder, TriplaneGenerator, eg3d_triplane_256
from aware3d.nn.volume_renderer import TriplaneRenderer

__all__ = ["EG3DGenerator", "eg3d_ffhq512"]


class EG3DGenerator(BallGANGenerator):
    """Mapping network + tri-plane generator + volume renderer (no background) + super-resolution.

    Args:
        mapping: ``(z, c) -> ws [B, triplane.num_ws, D]`` (EG3D: depth 2, camera label).
        triplane: :class:`~aware3d.nn.TriplaneGenerator`.
        renderer: :class:`~aware3d.nn.TriplaneRenderer` without a background (EG3D's black).
        superresolution: :class:`~aware3d.nn.SuperResolution`; reads the last of ``ws``.
        neural_resolution: volume-rendering resolution (EG3D: 64, 128 after fine-tuning).
        label_scale: factor of the camera label before the mapping (EG3D's ``c_scale``; 0 for
            its zero conditioning).
        superresolution_noise_mode: the super-resolution's noise (``"none"``: EG3D's default).

    ``latent_dim`` is ``z_dim``; the output is a :class:`~aware3d.models.BallGANOutput` whose
    ``ws_background`` is ``None`` and whose ``composite.bg_transmittance`` is the weight left to
    the black background. :meth:`regularizers` returns nothing: EG3D's optional density
    regulariser is not part of aware3d, and BallGAN's separation and density losses are not
    EG3D's.
    """

    def __init__(
        self,
        mapping: MappingNetwork,
        triplane: TriplaneGenerator,
        renderer: TriplaneRenderer,
        superresolution: SuperResolution,
        *,
        neural_resolution: int = 64,
        label_scale: float = 1.0,
        superresolution_noise_mode: str = "none",
    ) -> None:
        if renderer.background is not None:
            raise TypeError(
                "`renderer` must have no background (EG3D); use BallGANGenerator for a sphere"
            )
        super().__init__(
            mapping,
            triplane,
            renderer,
            None,
            superresolution,
            neural_resolution=neural_resolution,
            label_scale=label_scale,
            superresolution_noise_mode=superresolution_noise_mode,
        )

    def regularizers(self, out: BallGANOutput) -> dict[str, Tensor]:
        """None: EG3D trains without generator regularisers by default."""
        return {}


def eg3d_ffhq512() -> EG3DGenerator:
    """EG3D's FFHQ generator at 512 x 512, as its training script builds it.

    :func:`~aware3d.nn.gsgan_mapping` (z 512, camera label, depth 2, 14 style vectors),
    :func:`~aware3d.nn.eg3d_triplane_256`, :class:`~aware3d.nn.TriplaneDecoder` (64 hidden, 32
    features), 48 + 48 samples per ray in ``[2.25, 3.3]``, box 1, EG3D's plane axes, no
    background; ``SuperresolutionHybrid8XDC`` (128 -> 512, 256 and 128 channels, clamp 256).
    """
    triplane = eg3d_triplane_256()
    renderer = TriplaneRenderer(TriplaneDecoder(32, 32))
    superresolution = SuperResolution(
        32, 128, 512, 512, block_channels=(256, 128), conv_clamp=256.0
    )
    return EG3DGenerator(
        gsgan_mapping(triplane.num_ws), triplane, renderer, superresolution, neural_resolution=64
    )
