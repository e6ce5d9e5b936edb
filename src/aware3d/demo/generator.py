"""A complete 3D-aware generator assembled from aware3d's components (the demo's model).

``z -> MappingNetwork -> ws``; ``ws[:, :-1] -> HierarchicalGaussianDecoder -> Gaussians``;
``rasterize(Gaussians, cameras)`` gives the splatted foreground; ``ws[:, -1]`` drives the
``SphericalBackground``; ``CompositeRenderer`` puts the foreground over the background at unit
occupancy. It is a readable template for your own generator, not a fixed architecture.
"""

from typing import Literal, NamedTuple

from jaxtyping import Float
from torch import Tensor, nn

from aware3d.cameras import Cameras
from aware3d.functional.compositing import CompositeResult
from aware3d.functional.hierarchy import GaussianHierarchy
from aware3d.functional.losses import splat_distortion_loss
from aware3d.functional.splat import SplatOutput, rasterize
from aware3d.gaussians import Gaussians
from aware3d.nn.background import SphericalBackground
from aware3d.nn.compositing import CompositeRenderer
from aware3d.nn.decoder import HierarchicalGaussianDecoder, small_decoder
from aware3d.nn.mapping import MappingNetwork


class GeneratorOutput(NamedTuple):
    """What :class:`Generator3D` returns.

    Attributes:
        images: composite images ``[B, C, H, W, 3]``.
        composite: the full :class:`~aware3d.functional.CompositeResult` (opacity, ``T_bg``...).
        splat: the foreground :class:`~aware3d.functional.SplatOutput` (with depth moments).
        gaussians: the generated :class:`~aware3d.Gaussians`.
        ws: style codes ``[B, num_ws, D]``.
    """

    images: Float[Tensor, "B C H W 3"]
    composite: CompositeResult
    splat: SplatOutput
    gaussians: Gaussians
    ws: Float[Tensor, "B _ D"]


class Generator3D(nn.Module):
    """Mapping network + hierarchical Gaussian decoder + spherical background + compositing.

    Args:
        z_dim: latent width.
        w_dim: style width ``D``.
        decoder: the Gaussian decoder; defaults to :func:`~aware3d.nn.small_decoder`.
        mapping_layers: fully connected layers of the mapping network.
        background_hidden: hidden width of the background MLP.
        background_radius: radius of the background sphere.
    """

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
        super().__init__()
        self.decoder = small_decoder(w_dim) if decoder is None else decoder
        self.background = SphericalBackground(
            w_dim, feature_dim=3, radius=background_radius, hidden=background_hidden,
            num_layers=3, num_freqs=background_freqs,
        )  # fmt: skip
        self.mapping = MappingNetwork(
            z_dim, w_dim, num_ws=self.decoder.num_ws + 1, num_layers=mapping_layers
        )
        self.compositor = CompositeRenderer(self.background)
        self.z_dim = z_dim
        #: Channels the discriminator sees.
        self.image_channels = 3

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

    def forward(
        self,
        z: Float[Tensor, "B Z"],
        cameras: Cameras,
        width: int,
        height: int,
        *,
        psi: float = 1.0,
        backend: Literal["auto", "torch", "gsplat"] = "auto",
    ) -> GeneratorOutput:
        """Generates ``B`` scenes and renders each from its ``C`` cameras (``Cameras [B, C]``).

        A camera-conditioned decoder (``camera_conditioning=True``) colours each scene for its
        first camera's forward vector, as GSGAN renders one camera per scene; pass ``C = 1``
        for colours that match every view.
        """
        ws = self.mapping(z, psi=psi)
        camera_forward = None
        if self.decoder.camera_conditioning:
            camera_forward = cameras.forward_directions[:, 0].to(ws.dtype)
        gaussians = self.decoder(ws[:, :-1], camera_forward)
        splat = rasterize(gaussians, cameras, width, height, depth_moments=True, backend=backend)
        composite = self.compositor(splat, w=ws[:, -1], cameras=cameras)
        return GeneratorOutput(composite.image, composite, splat, gaussians, ws)

    def foreground_loss(self, out: GeneratorOutput) -> Tensor:
        """The splat distortion loss on the rendered depth moments (mean over pixels)."""
        assert out.splat.moment1 is not None
        assert out.splat.moment2 is not None
        return splat_distortion_loss(out.splat.alpha, out.splat.moment1, out.splat.moment2)

    def discriminator_images(self, out: GeneratorOutput) -> Float[Tensor, "B C H W 3"]:
        """What the discriminator sees: the composite images."""
        return out.images
