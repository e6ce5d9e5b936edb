"""GSGAN's generator assembled from aware3d's components (a readable template).

``(z, c) -> mapping -> ws``; ``ws[:, :-1] -> HierarchicalGaussianDecoder -> Gaussians``;
the last style vector drives the background, either

* BallGAN's sphere (:class:`~aware3d.nn.SphericalBackground`): the splatted foreground is
  composited over it with occupancy 1 (``x = C_fg + (1 - A) f_bg``), or
* GSGAN's background Gaussians (:class:`~aware3d.nn.GaussianBackground`): rasterized in the same
  pass as the foreground, through the same colour activation, black where nothing covers the
  pixel, as released.

Colours. Everything is composited in the decoder's colour space, then mapped to the image in
[-1, 1] (the real images' range):

* ``color_activation="sh0"`` (GSGAN's networks): a Gaussian's colour is
  ``max(0, 0.2821 c + 0.5)``, black 0 and white 1; the sphere's features are colours in that
  space (the FFHQ presets give it BallGAN's sigmoid, range ``(-0.001, 1.001)``); the image is
  ``2 x - 1`` (GSGAN's ``x / 0.5 - 1``).
* ``color_activation="identity"`` (the small decoders and the demo): the features are image values
  already, black -1 and white 1, and the image is the composite ``x`` itself.
"""

from pathlib import Path
from typing import Literal, NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._validation import check_choice, check_positive_int
from aware3d.cameras import Cameras
from aware3d.functional.compositing import CompositeResult, composite_splat
from aware3d.functional.losses import separation_loss, splat_distortion_loss
from aware3d.functional.regularizers import centre_distance_loss, knn_distance_loss
from aware3d.functional.splat import SplatOutput, rasterize
from aware3d.gaussians import Gaussians
from aware3d.nn.background import SphericalBackground
from aware3d.nn.background_gaussians import GaussianBackground
from aware3d.nn.decoder import (
    GSGAN_EFFECTIVE_FOCAL,
    HierarchicalGaussianDecoder,
    gsgan_decoder_256,
    gsgan_decoder_512,
    small_decoder,
)
from aware3d.nn.mapping import MappingNetwork, gsgan_mapping

__all__ = [
    "GSGANGenerator",
    "GSGANOutput",
    "gsgan_ffhq256",
    "gsgan_released_cameras",
    "gsgan_small",
]

BackgroundKind = Literal["sphere", "gaussians"]
CameraModel = Literal["given", "gsgan_released"]


def gsgan_released_cameras(cameras: Cameras) -> Cameras:
    """The cameras GSGAN's released renderer actually uses for ``cameras``.

    GSGAN's released ``GSGenerator.synthesis`` ignores the label's intrinsics and passes a field
    of view of 12.96 "degrees" to ``tan`` as radians: the normalised focal is
    ``1 / (2 tan(6.48)) = 2.508`` (:data:`~aware3d.nn.decoder.GSGAN_EFFECTIVE_FOCAL`) on both axes,
    principal point at the centre. Its ``MiniCam`` undoes the axis flip ``diag(1, -1, -1)`` on
    rows 1 and 2 of the world-to-camera rotation but negates all three translation entries, so
    the x entry of the world-to-camera translation changes sign: the camera's centre ``t`` moves
    to ``t - 2 (r . t) r`` along its own right axis ``r`` (orientation unchanged), 0.14 for
    FFHQ's pivot ``(0, 0, 0.2)`` at 20 degrees of yaw. A
    released model was trained under these cameras, so a converted one renders what the released
    code renders only through them.

    Args:
        cameras: ``Cameras [..., C]`` as given to the released generator (EG3D labels).

    Returns:
        ``Cameras`` of the same shape with the moved centres and focal 2.508.
    """
    if not isinstance(cameras, Cameras):
        raise TypeError(f"`cameras` must be Cameras, got {type(cameras).__name__}")
    cam2world = cameras.cam2world
    right, centre = cam2world[..., :3, 0], cam2world[..., :3, 3]
    moved = cam2world.clone()
    moved[..., :3, 3] = centre - 2 * (right * centre).sum(dim=-1, keepdim=True) * right
    intrinsics = torch.zeros_like(cameras.intrinsics)
    intrinsics[..., 0, 0] = intrinsics[..., 1, 1] = GSGAN_EFFECTIVE_FOCAL
    intrinsics[..., 0, 2] = intrinsics[..., 1, 2] = 0.5
    intrinsics[..., 2, 2] = 1.0
    return Cameras._trusted(moved, intrinsics)


class GSGANOutput(NamedTuple):
    """What :class:`GSGANGenerator` returns: the images and everything the losses need.

    Attributes:
        images: the images ``[B, C, H, W, 3]`` in [-1, 1], the composite's colours mapped by
            :meth:`GSGANGenerator.colours_to_image` (``2 x - 1`` for GSGAN's SH-0 colours).
        composite: :class:`~aware3d.functional.CompositeResult` (its ``image`` the composited
            colours ``x`` in the decoder's colour space, opacity, ``T_bg`` for the separation
            loss, depth).
        splat: the rasterizer's output with depth moments (for the splat distortion loss); with
            background Gaussians it holds foreground and background together.
        gaussians: the foreground :class:`~aware3d.Gaussians` (with levels).
        ws: style codes ``[B, num_ws, D]`` (the last one drives the background).
    """

    images: Float[Tensor, "B C H W 3"]
    composite: CompositeResult
    splat: SplatOutput
    gaussians: Gaussians
    ws: Float[Tensor, "B _ D"]


class GSGANGenerator(nn.Module):
    """Mapping + hierarchical Gaussian decoder + rasterizer + a background.

    Args:
        mapping: ``(z, c) -> ws [B, decoder.num_ws + 1, D]`` (GSGAN:
            :func:`~aware3d.nn.gsgan_mapping`, conditioned on the 25-number camera label).
        decoder: the Gaussian decoder.
        background: :class:`~aware3d.nn.SphericalBackground` or
            :class:`~aware3d.nn.GaussianBackground`, driven by ``ws[:, -1]``.
        knn_neighbours: ``k`` of GSGAN's k-NN regulariser of the level-0 Gaussians (64 as
            released; at most their count minus one is used).
        camera: ``"given"`` (default): render through the cameras as given.
            ``"gsgan_released"``: render through :func:`gsgan_released_cameras` of them (focal
            2.508 and GSGAN's camera-centre quirk), as GSGAN's released code does; converted
            released models use it (their world is GSGAN's own: box ``[-1, 1]``). The mapping's
            labels and the colour's camera conditioning still use the given cameras.

    Colours: the decoder's colour activation
    (:meth:`~aware3d.nn.HierarchicalGaussianDecoder.activate_colours`) is applied to the
    background Gaussians' raw colours as to the foreground's, the composite
    ``x`` lies in :attr:`colour_range` (black where nothing covers a pixel of the background
    Gaussians) and the images are :meth:`colours_to_image` of it: ``2 x - 1`` for GSGAN's SH-0
    colours in ``[0, inf)``, ``x`` for unactivated features (image values already). A sphere's
    features are composited as colours of that space.

    It implements :class:`~aware3d.models.GeneratorProtocol`: ``latent_dim`` is the mapping's
    ``z_dim``, ``c_dim`` its label width, and :meth:`regularizers` returns ``separation``,
    ``distortion``, ``knn`` and ``centre``.
    """

    def __init__(
        self,
        mapping: MappingNetwork,
        decoder: HierarchicalGaussianDecoder,
        background: SphericalBackground | GaussianBackground,
        *,
        knn_neighbours: int = 64,
        camera: CameraModel = "given",
    ) -> None:
        super().__init__()
        if mapping.num_ws != decoder.num_ws + 1:
            raise ValueError(
                f"`mapping` must produce decoder.num_ws + 1 = {decoder.num_ws + 1} style vectors "
                f"(the last drives the background), got num_ws = {mapping.num_ws}"
            )
        if not isinstance(background, SphericalBackground | GaussianBackground):
            raise TypeError(
                "`background` must be a SphericalBackground or a GaussianBackground, got "
                f"{type(background).__name__}"
            )
        self.mapping, self.decoder, self.background = mapping, decoder, background
        self.knn_neighbours = check_positive_int("knn_neighbours", knn_neighbours)
        check_choice("camera", camera, ("given", "gsgan_released"))
        self.camera: CameraModel = camera
        self.z_dim = mapping.z_dim
        #: Width of the latent the loop draws (the mapping's ``z_dim``).
        self.latent_dim = mapping.z_dim
        #: Width of the conditioning label (25, or 0 for an unconditioned mapping).
        self.c_dim = mapping.c_dim
        #: Channels the discriminator sees.
        self.image_channels = 3

    @property
    def colour_range(self) -> tuple[float, float]:
        """``(black, white)`` of the composited colours, mapped to the image's ``(-1, 1)``.

        ``(0, 1)`` for the decoder's ``"sh0"`` activation (GSGAN's colour space), ``(-1, 1)`` for
        ``"identity"`` (image values).
        """
        return (0.0, 1.0) if self.decoder.color_activation == "sh0" else (-1.0, 1.0)

    def colours_to_image(self, colours: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
        """Composited colours ``x`` as image values, :attr:`colour_range` mapped to [-1, 1].

        ``2 x - 1`` (GSGAN's ``x / 0.5 - 1``) for ``"sh0"``; ``x`` itself (the same tensor) for
        ``"identity"``.
        """
        if self.decoder.color_activation == "sh0":
            return 2 * colours - 1
        return colours

    def rasterized_cameras(self, cameras: Cameras) -> Cameras:
        """The cameras the scene is rendered through (see the ``camera`` argument)."""
        return gsgan_released_cameras(cameras) if self.camera == "gsgan_released" else cameras

    def _labels(self, cameras: Cameras, c: Tensor | None) -> Tensor | None:
        if self.mapping.c_dim == 0:
            return None
        return cameras.to_eg3d_labels()[:, 0] if c is None else c

    def forward(
        self,
        z: Float[Tensor, "B Z"],
        cameras: Cameras,
        width: int,
        height: int,
        *,
        c: Float[Tensor, "B 25"] | None = None,
        psi: float = 1.0,
        backend: Literal["auto", "torch", "gsplat"] = "auto",
    ) -> GSGANOutput:
        """Generates ``B`` scenes and renders each from its cameras (``Cameras [B, C]``).

        Args:
            z: latents ``[B, z_dim]``.
            cameras: ``Cameras [B, C]``.
            width: image width.
            height: image height.
            c: the generator's conditioning labels ``[B, 25]`` (with a conditioned mapping);
                default: each scene's first camera (use
                :func:`~aware3d.training.swap_conditioning_labels` in training).
            psi: truncation.
            backend: rasterizer backend.

        Returns:
            :class:`GSGANOutput`.
        """
        if not isinstance(cameras, Cameras):
            raise TypeError(f"`cameras` must be Cameras, got {type(cameras).__name__}")
        ws = self.mapping(z, self._labels(cameras, c), psi=psi)
        camera_forward = None
        if self.decoder.camera_conditioning:
            camera_forward = cameras.forward_directions[:, 0].to(ws.dtype)
        gaussians = self.decoder(ws[:, :-1], camera_forward)
        # the labels and the colour's camera conditioning above use the given cameras
        render_cameras = self.rasterized_cameras(cameras)
        if isinstance(self.background, GaussianBackground):
            raw = self.background(ws[:, -1])
            background = Gaussians._trusted(
                raw.means, raw.quats, raw.scales, raw.opacities,
                self.decoder.activate_colours(raw.features), raw.levels,
            )  # fmt: skip
            scene = Gaussians.cat([gaussians.without_levels(), background])
            splat = rasterize(
                scene, render_cameras, width, height, depth_moments=True, backend=backend
            )
            black = torch.full_like(splat.features, self.colour_range[0])
            composite = composite_splat(splat.features, splat.alpha, black, splat.depth)
        else:
            splat = rasterize(
                gaussians, render_cameras, width, height, depth_moments=True, backend=backend
            )
            bg, bg_depth = self.background.render_with_depth(
                render_cameras, width, height, ws[:, -1]
            )
            composite = composite_splat(splat.features, splat.alpha, bg, splat.depth, bg_depth)
        images = self.colours_to_image(composite.image)
        return GSGANOutput(images, composite, splat, gaussians, ws)

    def check_cameras(self, cameras: Cameras, name: str = "cameras") -> None:
        """Refuses cameras outside the background sphere (GSGAN's background Gaussians take any).

        Raises:
            ValueError: see :meth:`~aware3d.nn.SphericalBackground.check_cameras`.
        """
        if isinstance(self.background, SphericalBackground):
            self.background.check_cameras(cameras, name)

    def regularizers(self, out: GSGANOutput) -> dict[str, Tensor]:
        """The generator's regularisation terms of ``out`` (means over the batch).

        * ``separation``: BallGAN's ``min(T_bg, 1 - T_bg)`` of the composite;
        * ``distortion``: the splat distortion loss of the rendered depth moments;
        * ``knn``: GSGAN's mean distance of each level-0 Gaussian to its ``knn_neighbours``
          nearest (at most ``N0 - 1``), :func:`~aware3d.functional.knn_distance_loss`;
        * ``centre``: GSGAN's distance of the level-0 centroid to the origin,
          :func:`~aware3d.functional.centre_distance_loss`.
        """
        assert out.splat.moment1 is not None
        assert out.splat.moment2 is not None
        anchors = out.gaussians.means[:, : self.decoder.level_sizes[0]]  # level 0 comes first
        return {
            "separation": separation_loss(out.composite.bg_transmittance),
            "distortion": splat_distortion_loss(
                out.splat.alpha, out.splat.moment1, out.splat.moment2
            ),
            "knn": knn_distance_loss(anchors, min(self.knn_neighbours, anchors.shape[1] - 1)),
            "centre": centre_distance_loss(anchors),
        }

    def discriminator_images(self, out: GSGANOutput) -> Float[Tensor, "B C H W 3"]:
        """What the discriminator sees: the composite images."""
        return out.images

    def real_discriminator_images(self, real: Float[Tensor, "B H W 3"]) -> Float[Tensor, "B H W 3"]:
        """Real images as the discriminator sees them: unchanged."""
        return real

    def export_ply(self, out: GSGANOutput, path: Path) -> Path:
        """Writes scene 0's foreground Gaussians as a 3DGS PLY.

        Colours are clamped to :attr:`colour_range` (black to white; GSGAN's SH-0 colours can
        exceed 1) and stored with it as ``value_range``: a viewer shows black to white as 0 to 1.
        """
        low, high = self.colour_range
        first = out.gaussians[0]
        viewable = Gaussians(
            first.means, first.quats, first.scales, first.opacities,
            first.features.clamp(low, high), first.levels,
        )  # fmt: skip
        return viewable.save_ply(path, value_range=(low, high))


def _background(kind: str, w_dim: int) -> SphericalBackground | GaussianBackground:
    check_choice("background", kind, ("sphere", "gaussians"))
    if kind == "gaussians":
        return GaussianBackground(w_dim)
    # colours in the SH-0 decoder's [0, 1], as BallGAN's sphere gives them
    return SphericalBackground(w_dim, feature_dim=3, output_activation="sigmoid")


def gsgan_ffhq256(background: BackgroundKind = "sphere") -> GSGANGenerator:
    """GSGAN's FFHQ 256 generator.

    :func:`~aware3d.nn.gsgan_mapping` (pose-conditioned, depth 2),
    :func:`~aware3d.nn.gsgan_decoder_256` (GSGAN's released network, 5 levels, 87,296 Gaussians,
    SH-0 colours: images ``2 x - 1`` of the composite) and BallGAN's sphere (default; its colours
    through BallGAN's widened sigmoid) or GSGAN's background Gaussians (``background="gaussians"``,
    through the decoder's SH-0 colour activation).

    Args:
        background: ``"sphere"`` or ``"gaussians"``.
    """
    decoder = gsgan_decoder_256()
    mapping = gsgan_mapping(decoder.num_ws + 1)
    return GSGANGenerator(mapping, decoder, _background(background, 512))


def gsgan_ffhq512(background: BackgroundKind = "sphere") -> GSGANGenerator:
    """GSGAN's FFHQ 512 generator: :func:`gsgan_ffhq256` with :func:`~aware3d.nn.gsgan_decoder_512`.

    GSGAN's ``_scripts/train_ffhq512.sh`` (``res_end`` 256: six levels, 349,440 Gaussians,
    rendered at 512 px).

    Args:
        background: ``"sphere"`` or ``"gaussians"``.
    """
    decoder = gsgan_decoder_512()
    mapping = gsgan_mapping(decoder.num_ws + 1)
    return GSGANGenerator(mapping, decoder, _background(background, 512))


def gsgan_small(
    w_dim: int = 64,
    *,
    num_levels: int = 3,
    resolution: int = 32,
    background: BackgroundKind = "sphere",
    conditioned: bool = True,
) -> GSGANGenerator:
    """A CPU-sized GSGAN generator: GSGAN's blocks at small widths.

    :func:`~aware3d.nn.small_decoder`, a 2-layer mapping and a small sphere (or 256 background
    Gaussians).

    Args:
        w_dim: latent and style width.
        num_levels: decoder levels.
        resolution: the image size the decoder's pixel size is set for.
        background: ``"sphere"`` or ``"gaussians"``.
        conditioned: condition the mapping on the 25-number camera label (as GSGAN).
    """
    check_positive_int("w_dim", w_dim)
    decoder = small_decoder(w_dim, num_levels=num_levels, resolution=resolution)
    mapping = MappingNetwork(
        w_dim, w_dim, num_ws=decoder.num_ws + 1, c_dim=25 if conditioned else 0, num_layers=2
    )
    if background == "gaussians":
        return GSGANGenerator(mapping, decoder, GaussianBackground(w_dim, num_points=256))
    check_choice("background", background, ("sphere", "gaussians"))
    return GSGANGenerator(mapping, decoder, SphericalBackground(w_dim, hidden=32, num_freqs=2))
