"""BallGAN's generator assembled from aware3d's components (a readable template).

Foreground (EG3D): ``(z, c) -> mapping -> ws``; ``ws -> TriplaneGenerator -> planes``; every
pixel ray of the neural-rendering resolution is sampled coarse + fine, the planes are read at the
samples and decoded (:class:`~aware3d.nn.TriplaneDecoder`) into raw densities and 32 features.
Background (BallGAN): its own latent ``z_bg -> mapping -> ws_bg`` drives a
:class:`~aware3d.nn.SphericalBackground`; no density, reached with occupancy 1.
The volume renderer composites the foreground's features over the background's *before*
super-resolution (as BallGAN does), scales them to ``2 x - 1`` (EG3D's ray marcher), and the
super-resolution network turns that feature image into the output image; the raw image is its
first three channels.
"""

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from jaxtyping import Float
from torch import Tensor, nn

from aware3d import _ply
from aware3d._validation import check_choice, check_number, check_positive_int, check_shape
from aware3d.cameras import Cameras
from aware3d.functional.compositing import CompositeResult
from aware3d.functional.losses import ballgan_density_loss, separation_loss
from aware3d.functional.triplane import sample_triplane
from aware3d.nn.background import SphericalBackground, ballgan_background
from aware3d.nn.layers import NOISE_MODES
from aware3d.nn.mapping import MappingNetwork, ballgan_background_mapping, gsgan_mapping
from aware3d.nn.superresolution import (
    SuperResolution,
    dual_discriminator_input,
    eg3d_superresolution,
)
from aware3d.nn.triplane import (
    TriplaneDecoder,
    TriplaneGenerator,
    eg3d_triplane_256,
    small_triplane,
)
from aware3d.nn.volume_renderer import TriplaneRenderer, VolumeRender

__all__ = [
    "BallGANGenerator",
    "BallGANOutput",
    "ballgan_ffhq256",
    "ballgan_small",
    "triplane_point_cloud",
]

#: Cells per side of the grid on which the density is queried (:meth:`BallGANGenerator.export_ply`).
POINT_GRID = 64
#: A grid cell is foreground when its opacity ``1 - exp(-sigma * cell size)`` exceeds this.
POINT_OPACITY_THRESHOLD = 0.1
#: Points kept (the densest) when no cell passes :data:`POINT_OPACITY_THRESHOLD`.
POINT_TOP_K = 2048
#: Points decoded per pass when querying a tri-plane.
_POINT_CHUNK = 1 << 16


class BallGANOutput(NamedTuple):
    """What :class:`BallGANGenerator` returns: the images and everything the losses need.

    Attributes:
        images: the super-resolved images ``[B, C, Ho, Wo, 3]``.
        images_raw: the raw images, the first three composited channels,
            ``[B, C, H, W, 3]`` at the neural-rendering resolution.
        composite: the composited feature image (``2 x - 1``) with opacity, ``T_bg`` (for the
            separation loss), camera-space depth and interval weights, at ``H x W``.
        render: the volume renderer's full output (intervals for the distortion loss, the
            importance samples for BallGAN's density loss, the background alone).
        planes: the tri-planes ``[B, 3, F, R, R]``.
        ws: foreground style codes ``[B, num_ws, D]``.
        ws_background: background style codes ``[B, num_ws_bg, D_bg]`` (``None`` without a
            background, as in :class:`~aware3d.models.EG3DGenerator`).
    """

    images: Float[Tensor, "B C Ho Wo 3"]
    images_raw: Float[Tensor, "B C H W 3"]
    composite: CompositeResult
    render: VolumeRender
    planes: Float[Tensor, "B 3 F R R"]
    ws: Float[Tensor, "B _ D"]
    ws_background: Float[Tensor, "B _ E"] | None


class BallGANGenerator(nn.Module):
    """Mapping networks + tri-plane generator + volume renderer over the sphere + super-resolution.

    Args:
        mapping: ``(z, c) -> ws [B, triplane.num_ws, D]`` (EG3D/BallGAN: depth 2, conditioned on
            the camera label).
        triplane: :class:`~aware3d.nn.TriplaneGenerator`.
        renderer: :class:`~aware3d.nn.TriplaneRenderer` holding the decoder and the
            :class:`~aware3d.nn.SphericalBackground`.
        background_mapping: ``z_bg -> ws_bg [B, background.num_ws, D_bg]`` (BallGAN: 8 layers, no
            conditioning); ``None`` together with a renderer without background (EG3D: see
            :class:`~aware3d.models.EG3DGenerator`).
        superresolution: :class:`~aware3d.nn.SuperResolution`; reads the last of ``ws``.
        neural_resolution: the volume-rendering resolution ``h = w`` (EG3D/BallGAN: 64 at the
            start of training, 128 later).
        label_scale: the camera label is multiplied by this before the mapping (EG3D's
            ``c_scale``, 1); 0 feeds a zero label, as EG3D's and BallGAN's scripts do without
            ``--gen_pose_cond`` (``c_gen_conditioning_zero``).
        superresolution_noise_mode: the super-resolution's noise (EG3D's
            ``superresolution_noise_mode``: ``"none"``, its default, or ``"random"``).

    It implements :class:`~aware3d.models.GeneratorProtocol`: ``latent_dim`` is
    ``z_dim + z_background_dim`` (a latent ``z`` of that width is split into the foreground's and
    the background's), :meth:`regularizers` returns ``separation`` and ``density``, and the
    discriminator sees EG3D's dual images (``image_channels`` 6). In eval mode
    (``module.eval()``) it renders deterministically by default: no ray jitter and the
    tri-plane synthesis's constant noise, as EG3D renders its figures.
    """

    def __init__(
        self,
        mapping: MappingNetwork,
        triplane: TriplaneGenerator,
        renderer: TriplaneRenderer,
        background_mapping: MappingNetwork | None,
        superresolution: SuperResolution,
        *,
        neural_resolution: int = 64,
        label_scale: float = 1.0,
        superresolution_noise_mode: str = "none",
    ) -> None:
        super().__init__()
        if mapping.num_ws != triplane.num_ws:
            raise ValueError(
                f"`mapping` must produce triplane.num_ws = {triplane.num_ws} style vectors, got "
                f"{mapping.num_ws}"
            )
        background = renderer.background
        if background_mapping is None:
            if background is not None:
                raise TypeError("`background_mapping` is required with a renderer background")
        elif not isinstance(background, SphericalBackground):
            raise TypeError("`renderer` must hold a SphericalBackground (BallGAN's sphere)")
        elif background_mapping.num_ws != background.num_ws:
            raise ValueError(
                f"`background_mapping` must produce background.num_ws = {background.num_ws} "
                f"style vectors, got {background_mapping.num_ws}"
            )
        self.mapping, self.triplane, self.renderer = mapping, triplane, renderer
        self.background_mapping, self.superresolution = background_mapping, superresolution
        self.neural_resolution = check_positive_int("neural_resolution", neural_resolution)
        self.label_scale = check_number("label_scale", label_scale)
        check_choice("superresolution_noise_mode", superresolution_noise_mode, NOISE_MODES)
        self.superresolution_noise_mode = superresolution_noise_mode
        self.z_dim = mapping.z_dim
        self.z_background_dim = 0 if background_mapping is None else background_mapping.z_dim
        #: Width of the latent the loop draws: the foreground's, then the background's.
        self.latent_dim = self.z_dim + self.z_background_dim
        #: Width of the conditioning label (25, or 0 for an unconditioned mapping).
        self.c_dim = mapping.c_dim
        #: Channels the discriminator sees: the final image and the upsampled raw image.
        self.image_channels = 6

    def forward(
        self,
        z: Float[Tensor, "B Z"],
        cameras: Cameras,
        width: int,
        height: int,
        *,
        c: Float[Tensor, "B 25"] | None = None,
        psi: float = 1.0,
        z_background: Float[Tensor, "B Zb"] | None = None,
        neural_resolution: int | None = None,
        noise_mode: str | None = None,
        deterministic: bool | None = None,
        generator: torch.Generator | None = None,
    ) -> BallGANOutput:
        """Generates ``B`` scenes and renders each from its cameras (``Cameras [B, C]``).

        Args:
            z: foreground latents ``[B, z_dim]`` with ``z_background``, or both latents
                concatenated ``[B, latent_dim]`` without it (``[B, z_dim]`` without a
                background).
            cameras: ``Cameras [B, C]``.
            width: output width (the super-resolution's output resolution).
            height: output height (equal to ``width``).
            c: conditioning labels ``[B, 25]``; default: each scene's first camera.
            psi: truncation of both mappings.
            z_background: background latents ``[B, z_background_dim]`` (or ``None``, above).
            neural_resolution: volume-rendering resolution (default: the module's).
            noise_mode: the tri-plane synthesis noise (``"random"``, ``"const"``, ``"none"``);
                default ``"random"`` in training mode, ``"const"`` in eval mode.
            deterministic: no jitter in the ray sampling; default: in eval mode.
            generator: random generator for the ray sampling and the noise.

        Returns:
            :class:`BallGANOutput`.
        """
        if not isinstance(cameras, Cameras):
            raise TypeError(f"`cameras` must be Cameras, got {type(cameras).__name__}")
        if width != height or width != self.superresolution.output_resolution:
            raise ValueError(
                f"`width` and `height` must both be the super-resolution's output resolution "
                f"{self.superresolution.output_resolution}, got {width} x {height}"
            )
        low = self.neural_resolution if neural_resolution is None else neural_resolution
        check_positive_int("neural_resolution", low)
        if z_background is None:
            check_shape("z", z, (None, self.latent_dim))
            z, z_background = z[:, : self.z_dim], z[:, self.z_dim :]
        elif self.background_mapping is None:
            raise ValueError("`z_background` was given but this generator has no background")
        if noise_mode is None:
            noise_mode = "random" if self.training else "const"
        if deterministic is None:
            deterministic = not self.training
        labels = cameras.to_eg3d_labels()[:, 0] if c is None else c
        if self.label_scale != 1:
            labels = labels * self.label_scale
        ws = self.mapping(z, labels if self.mapping.c_dim else None, psi=psi)
        ws_background = (
            None
            if self.background_mapping is None
            else self.background_mapping(z_background, psi=psi)
        )
        planes = self.triplane(ws, noise_mode=noise_mode, generator=generator)
        render = self.renderer(
            planes, cameras, low, low, ws_background, deterministic=deterministic,
            generator=generator,
        )  # fmt: skip
        features = render.image * 2 - 1  # EG3D's ray marcher: scale to (-1, 1)
        views = cameras.shape[1]
        feature_image = rearrange(features, "b c h w f -> (b c) f h w")
        image = self.superresolution(
            feature_image,
            ws.repeat_interleave(views, dim=0),
            noise_mode=self.superresolution_noise_mode,
            generator=generator,
        )
        images = rearrange(image, "(b c) f h w -> b c h w f", c=views)
        composite = CompositeResult(
            features, render.opacity, render.bg_transmittance, render.depth, render.weights
        )
        return BallGANOutput(
            images, features[..., :3], composite, render, planes, ws, ws_background
        )

    def check_cameras(self, cameras: Cameras, name: str = "cameras") -> None:
        """Refuses cameras outside the background sphere the rays leave through.

        Raises:
            ValueError: see :meth:`~aware3d.nn.SphericalBackground.check_cameras`.
        """
        background = self.renderer.background
        if isinstance(background, SphericalBackground):
            background.check_cameras(cameras, name)

    def regularizers(self, out: BallGANOutput) -> dict[str, Tensor]:
        """The generator's regularisation terms of ``out``.

        * ``separation``: BallGAN's ``min(T_bg, 1 - T_bg)`` of the volume rendering;
        * ``density``: BallGAN's density loss,
          :func:`~aware3d.functional.ballgan_density_loss` of the fine samples' raw densities at
          their distances.
        """
        fine = out.render.fine
        return {
            "separation": separation_loss(out.composite.bg_transmittance),
            "density": ballgan_density_loss(fine.raw_densities, fine.t),
        }

    def real_discriminator_images(self, real: Float[Tensor, "B H W 3"]) -> Float[Tensor, "B H W 6"]:
        """Real images as the dual discriminator sees them, ``[B, H, W, 6]``.

        The image paired with itself resized down to the neural-rendering resolution and back up
        (antialiased bilinear, EG3D's ``filtered_resizing``), as EG3D's training loop pairs real
        images.
        """
        low = self.neural_resolution
        x = rearrange(real, "b h w f -> b f h w")
        raw = F.interpolate(x, size=(low, low), mode="bilinear", align_corners=False,
                            antialias=True)  # fmt: skip
        return rearrange(dual_discriminator_input(x, raw), "b f h w -> b h w f")

    def export_ply(self, out: BallGANOutput, path: Path) -> Path:
        """Writes scene 0's tri-plane foreground as a coloured point cloud PLY.

        ``x y z`` float and ``red green blue`` uchar columns, from :func:`triplane_point_cloud`.
        """
        points, colours = triplane_point_cloud(self, out.planes[:1])
        columns = {axis: np.ascontiguousarray(points[:, i]) for i, axis in enumerate("xyz")}
        for i, name in enumerate(("red", "green", "blue")):
            columns[name] = np.ascontiguousarray(colours[:, i])
        _ply.write_vertices(path, columns)
        return path

    def discriminator_images(self, out: BallGANOutput) -> Float[Tensor, "B C Ho Wo 6"]:
        """EG3D's dual-discriminator input, channels last like the images.

        :func:`~aware3d.nn.dual_discriminator_input`: the final image, then the raw image resized
        to it (antialiased bilinear, EG3D's ``filtered_resizing``).
        """
        views = out.images.shape[1]
        pair = dual_discriminator_input(
            rearrange(out.images, "b c h w f -> (b c) f h w"),
            rearrange(out.images_raw, "b c h w f -> (b c) f h w"),
        )
        return rearrange(pair, "(b c) f h w -> b c h w f", c=views)


def triplane_point_cloud(
    generator: "BallGANGenerator",
    planes: Tensor,
    *,
    grid_size: int = POINT_GRID,
    threshold: float = POINT_OPACITY_THRESHOLD,
    top_k: int = POINT_TOP_K,
) -> tuple[np.ndarray, np.ndarray]:
    """The foreground of one scene's tri-planes as coloured points.

    The density is queried at the centres of a ``grid_size``-cubed grid over the renderer's box
    ``[-box_size / 2, box_size / 2]^3``, exactly as the renderer reads it
    (:func:`~aware3d.functional.sample_triplane` with the renderer's box and plane axes, then its
    decoder, ``sigma = softplus(raw - density_offset)``). A cell is kept when its opacity
    ``1 - exp(-sigma * cell size)`` exceeds ``threshold``; if none does, the ``top_k`` densest
    cells are kept, so the cloud is never empty. A point's colour is its decoded features' first
    three channels (what BallGAN's raw image composites; they lie in [0, 1]) as uint8.

    Args:
        generator: the BallGAN generator whose renderer decodes the planes.
        planes: one scene's tri-planes ``[1, 3, F, R, R]``.
        grid_size: cells per side.
        threshold: opacity above which a cell is foreground.
        top_k: cells kept when none is foreground.

    Returns:
        ``(points [P, 3] float32, colours [P, 3] uint8)``, ``P >= 1``.
    """
    renderer = generator.renderer
    box = float(renderer.box_size)
    cell = box / grid_size
    axis = (torch.arange(grid_size, device=planes.device, dtype=planes.dtype) + 0.5) * cell
    axis = axis - box / 2
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    sigmas, colours = [], []
    for start in range(0, len(points), _POINT_CHUNK):
        part = points[None, start : start + _POINT_CHUNK]
        sampled = sample_triplane(planes[:1], part, box_size=box, projection=renderer.projection)
        raw, features = renderer.decoder(sampled)
        sigmas.append(F.softplus(raw[0] - renderer.density_offset))
        colours.append(features[0, :, :3])
    sigma = torch.cat(sigmas)
    opacity = -torch.expm1(-sigma * cell)
    keep = torch.nonzero(opacity > threshold)[:, 0]
    if len(keep) == 0:
        keep = torch.topk(sigma, min(top_k, len(sigma))).indices.sort().values
    rgb = (torch.cat(colours)[keep].clamp(0, 1) * 255).round().to(torch.uint8)
    return points[keep].float().cpu().numpy(), rgb.cpu().numpy()


def ballgan_ffhq256() -> BallGANGenerator:
    """BallGAN's FFHQ generator at 256 x 256 (EG3D's configuration underneath).

    :func:`~aware3d.nn.gsgan_mapping` (z 512, camera label, depth 2, 14 style vectors),
    :func:`~aware3d.nn.eg3d_triplane_256` (3 x 32 x 256 x 256), :class:`~aware3d.nn.TriplaneDecoder`
    (64 hidden, 32 features, BallGAN's zero-initialised density head), 48 + 48 samples per ray in
    ``[2.25, 3.3]``, box 1, EG3D's plane axes; :func:`~aware3d.nn.ballgan_background` (radius 3,
    angles encoding, sigmoid, 32 features) driven by :func:`~aware3d.nn.ballgan_background_mapping`
    (z_bg 512, 8 layers); EG3D's super-resolution for 256 (128 -> 256, its input resized from the
    64 x 64 neural rendering).
    """
    triplane = eg3d_triplane_256()
    background = ballgan_background(512)
    renderer = TriplaneRenderer(TriplaneDecoder(32, 32, zero_init_density=True), background)
    return BallGANGenerator(
        gsgan_mapping(triplane.num_ws),
        triplane,
        renderer,
        ballgan_background_mapping(background.num_ws),
        eg3d_superresolution(256),
        neural_resolution=64,
    )


def ballgan_small(
    w_dim: int = 64,
    *,
    resolution: int = 32,
    neural_resolution: int = 16,
    features: int = 16,
    num_coarse: int = 12,
    num_fine: int = 12,
    conditioned: bool = True,
) -> BallGANGenerator:
    """A CPU-sized BallGAN generator with the same structure (a few hundred thousand parameters).

    Args:
        w_dim: latent and style width of both mappings.
        resolution: output resolution (the super-resolution doubles up from ``neural_resolution``).
        neural_resolution: volume-rendering resolution.
        features: channels of the planes and of the composited feature image.
        num_coarse: stratified samples per ray.
        num_fine: importance samples per ray.
        conditioned: condition the foreground mapping on the camera label (as released).
    """
    triplane = small_triplane(w_dim, resolution=32, plane_channels=features)
    background = SphericalBackground(
        w_dim, feature_dim=features, hidden=32, num_layers=2, num_freqs=2,
        output_activation="sigmoid",
    )  # fmt: skip
    decoder = TriplaneDecoder(features, features, hidden=32, zero_init_density=True)
    renderer = TriplaneRenderer(decoder, background, num_coarse=num_coarse, num_fine=num_fine)
    mapping = MappingNetwork(
        w_dim, w_dim, triplane.num_ws, c_dim=25 if conditioned else 0, num_layers=2
    )
    background_mapping = MappingNetwork(w_dim, w_dim, background.num_ws, num_layers=2)
    superresolution = SuperResolution(
        features, neural_resolution, resolution, w_dim, block_channels=(32, 16)
    )
    return BallGANGenerator(
        mapping, triplane, renderer, background_mapping, superresolution,
        neural_resolution=neural_resolution,
    )  # fmt: skip
