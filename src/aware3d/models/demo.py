"""The demo's generator: GSGAN's assembly with the demo's small parts (the window network).

``z -> MappingNetwork -> ws``; ``ws[:, :-1] -> HierarchicalGaussianDecoder -> Gaussians``;
``rasterize(Gaussians, cameras)`` gives the splatted foreground; ``ws[:, -1]`` drives the
``SphericalBackground``, over which the foreground is composited at unit occupancy. It is
:class:`~aware3d.models.GSGANGenerator` (returning a :class:`~aware3d.models.GSGANOutput`) built
from a small decoder, an unconditioned mapping network and a smooth background, plus
:meth:`DemoGenerator.hierarchy` for the figures. The small decoder's colours are not activated:
features, background and composite are image values in [-1, 1] and the image is the composite
itself (:attr:`~aware3d.models.GSGANGenerator.colour_range` ``(-1, 1)``).
"""

from jaxtyping import Float
from torch import Tensor

from aware3d.functional.hierarchy import GaussianHierarchy
from aware3d.models.gsgan import GSGANGenerator
from aware3d.nn.background import SphericalBackground
from aware3d.nn.decoder import HierarchicalGaussianDecoder, small_decoder
from aware3d.nn.mapping import MappingNetwork

__all__ = ["DemoGenerator", "demo_generator"]


class DemoGenerator(GSGANGenerator):
    """Mapping network + hierarchical Gaussian decoder + spherical background + compositing.

    Args:
        z_dim: latent width.
        w_dim: style width ``D``.
        decoder: the Gaussian decoder; defaults to :func:`~aware3d.nn.small_decoder`.
        mapping_layers: fully connected layers of the mapping network (no camera label).
        background_hidden: hidden width of the background MLP.
        background_radius: radius of the background sphere.
        background_freqs: octaves of the background's direction encoding.
    """

    background: SphericalBackground

    def __init__(
        self,
        z_dim: int = 64,
        w_dim: int = 64,
        decoder: HierarchicalGaussianDecoder | None = None,
        *,
        mapping_layers: int = 4,
        background_hidden: int = 64,
        background_radius: float = 3.0,
        background_freqs: int = 4,
    ) -> None:
        decoder = small_decoder(w_dim) if decoder is None else decoder
        background = SphericalBackground(
            w_dim, feature_dim=3, radius=background_radius, hidden=background_hidden,
            num_layers=3, num_freqs=background_freqs,
        )  # fmt: skip
        mapping = MappingNetwork(z_dim, w_dim, num_ws=decoder.num_ws + 1, num_layers=mapping_layers)
        super().__init__(mapping, decoder, background)

    def hierarchy(
        self,
        z: Float[Tensor, "B Z"],
        *,
        psi: float = 1.0,
        camera_forward: Float[Tensor, "B 3"] | None = None,
    ) -> tuple[GaussianHierarchy, Float[Tensor, "B _ D"]]:
        """The decoder's full hierarchy (levels, anchors, parents) for latents ``z``.

        ``camera_forward`` is needed by a camera-conditioned decoder only.
        """
        ws = self.mapping(z, psi=psi)
        return self.decoder.forward_hierarchy(ws[:, :-1], camera_forward), ws


def demo_generator(
    *,
    z_dim: int = 64,
    w_dim: int = 64,
    resolution: int = 32,
    num_levels: int = 3,
    blocks: str = "window",
    initial_radius: float = 0.2,
    background_freqs: int = 2,
) -> DemoGenerator:
    """The demo's generator at CPU size (call under a fixed seed: its weights are drawn here).

    Args:
        z_dim: latent width.
        w_dim: style width ``D``.
        resolution: the image size the decoder's pixel size is set for.
        num_levels: decoder levels.
        blocks: the decoder's token network, ``"window"`` or ``"gsgan"``
            (:func:`~aware3d.nn.small_decoder`).
        initial_radius: with ``"window"``, radius of the ball the level-0 anchors start in.
        background_freqs: octaves of the background's direction encoding.
    """
    window = {"initial_radius": initial_radius} if blocks == "window" else {}
    decoder = small_decoder(
        w_dim, num_levels=num_levels, resolution=resolution, blocks=blocks, **window
    )
    return DemoGenerator(z_dim, w_dim, decoder, background_freqs=background_freqs)
