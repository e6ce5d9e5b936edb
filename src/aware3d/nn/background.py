"""BallGAN's spherical background: features on a sphere of radius ``R``, no density."""

import itertools
import math
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._checked import checked
from aware3d._precision import autocast_enabled, autocast_off
from aware3d._validation import (
    check_choice,
    check_float_dtype,
    check_module_device,
    check_module_dtype,
    check_nonnegative_int,
    check_positive_int,
    check_positive_number,
    check_scene_cameras,
    check_shape,
    check_values,
    finite_checks,
    value_checks_enabled,
)
from aware3d.cameras import Cameras
from aware3d.functional.encoding import (
    fourier_feature_dim,
    fourier_features,
    sphere_angle_features,
)
from aware3d.functional.sphere import ray_sphere_exit
from aware3d.nn._activations import scaled_leaky_relu
from aware3d.nn.layers import ModulatedLinear

__all__ = [
    "BackgroundEncoding",
    "DemodulationEps",
    "OutputActivation",
    "SphericalBackground",
    "ballgan_background",
]

BackgroundEncoding = Literal["direction", "angles"]
OutputActivation = Literal["linear", "sigmoid"]
DemodulationEps = Literal["scaled", "raw"]

ENCODINGS = ("direction", "angles")
OUTPUT_ACTIVATIONS = ("linear", "sigmoid")
DEMODULATION_EPS = ("scaled", "raw")

#: EG3D's and BallGAN's widened sigmoid: ``sigmoid(x) * (1 + 2 eps) - eps``.
SIGMOID_EPS = 0.001


class SphericalBackground(nn.Module):
    """Background features on a sphere of radius ``R`` centred at the origin (BallGAN).

    A ray ``o + t d`` from a camera inside the sphere leaves it at ``p = o + t_bg d``
    (:func:`~aware3d.functional.ray_sphere_exit`). The point is encoded (``encoding``), then an
    MLP of StyleGAN2 modulated linear layers with demodulation and leaky ReLU, modulated by the
    background's own style code, and a final modulated layer without demodulation or activation
    gives ``F`` features (optionally through a sigmoid). The background has no density:
    compositing gives it occupancy 1 (:class:`~aware3d.nn.CompositeRenderer`).

    Encodings (``num_freqs`` octaves ``K``):

    * ``"direction"`` (default): Fourier features of the unit direction ``u = p / R``,
      ``[u, sin(2^k pi u), cos(2^k pi u)]`` (:func:`~aware3d.functional.fourier_features`,
      ``3 (2 K + 1)`` channels), smooth on the whole sphere: no seam and no pole singularity.
    * ``"angles"``: BallGAN's released encoding of the angles ``(theta, phi) / (2 pi)``
      (:func:`~aware3d.functional.sphere_angle_features`, ``4 K`` channels, no raw input), with
      ``phi = atan2(x, z)`` in ``[0, 2 pi)``: discontinuous across the half-plane ``x = 0, z > 0``
      (the ``+z`` direction) and at the poles ``+-y``.

    Output activations: ``"linear"`` (default) returns the last layer's values; ``"sigmoid"``
    returns ``sigmoid(x) (1 + 2 * 0.001) - 0.001`` (BallGAN's and EG3D's, range
    ``(-0.001, 1.001)``).

    Demodulation epsilon: the hidden layers divide by ``sqrt(sum_i (W_oi g s_i)^2 + 1e-8)``
    (``"scaled"``, the default: :class:`~aware3d.nn.ModulatedLinear`'s rule, the epsilon added to
    the gain-scaled weight, ``g = 1 / sqrt(in_features)``) or by
    ``sqrt(sum_i (W_oi s_i)^2 + 1e-8) / g`` (``"raw"``: BallGAN's released ``Style2Layer``, which
    demodulates the raw weight). The two differ by about ``1e-8 / (g^2 sum_i (W_oi s_i)^2)``
    relative, some 1e-9 for BallGAN's sizes; converted released models use ``"raw"`` so that they
    reproduce the released features to float64 rounding.

    Style codes: ``w [B, D]`` drives every layer; per-layer codes ``ws [B, num_ws, D]`` with
    ``num_ws = num_layers + 1`` give ``ws[:, i]`` to hidden layer ``i`` and ``ws[:, -1]`` to the
    output layer (as BallGAN's background network consumes its own mapping network's output).

    Precision: the rays' geometry (the exit distance and point) is computed in the rays' dtype
    with ``torch.autocast`` off; the encoding and the MLP in the module's dtype, the MLP's
    products in autocast's dtype under ``torch.autocast``. Features have the module's dtype,
    distances and depths the rays'. Under autocast ``w`` may have any float dtype (a mapping
    network's bfloat16 output); outside it ``w``, the rays and the module share one dtype.

    Args:
        w_dim: width ``D`` of the style code ``w``.
        feature_dim: output features ``F``.
        radius: sphere radius ``R``; every camera must be strictly inside.
        hidden: width of the hidden layers.
        num_layers: number of hidden modulated layers (the output layer comes on top).
        num_freqs: octaves ``K`` of the encoding (at least 1 for ``"angles"``).
        encoding: ``"direction"`` or ``"angles"``.
        output_activation: ``"linear"`` or ``"sigmoid"``.
        demodulation_eps: ``"scaled"`` (default) or ``"raw"`` (BallGAN's released placement).
    """

    def __init__(
        self,
        w_dim: int,
        feature_dim: int = 3,
        radius: float = 3.0,
        hidden: int = 64,
        num_layers: int = 4,
        num_freqs: int = 10,
        *,
        encoding: BackgroundEncoding = "direction",
        output_activation: OutputActivation = "linear",
        demodulation_eps: DemodulationEps = "scaled",
    ) -> None:
        super().__init__()
        check_choice("demodulation_eps", demodulation_eps, DEMODULATION_EPS)
        self.demodulation_eps: DemodulationEps = demodulation_eps
        check_positive_int("w_dim", w_dim)
        check_positive_int("feature_dim", feature_dim)
        check_positive_int("hidden", hidden)
        check_positive_int("num_layers", num_layers)
        check_choice("encoding", encoding, ENCODINGS)
        check_choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
        if encoding == "angles":
            check_positive_int("num_freqs", num_freqs)
        else:
            check_nonnegative_int("num_freqs", num_freqs)
        self.w_dim = w_dim
        self.feature_dim = feature_dim
        self.radius = check_positive_number("radius", radius)
        self.hidden = hidden
        self.num_layers = num_layers
        self.num_freqs = num_freqs
        self.encoding: BackgroundEncoding = encoding
        self.output_activation: OutputActivation = output_activation
        #: Style vectors that per-layer ``ws`` must hold: one per hidden layer, one for the output.
        self.num_ws = num_layers + 1
        if encoding == "angles":
            in_dim = fourier_feature_dim(2, num_freqs, include_input=False)
        else:
            in_dim = fourier_feature_dim(3, num_freqs)
        widths = [in_dim] + [hidden] * num_layers
        self.layers = nn.ModuleList(
            ModulatedLinear(a, b, w_dim) for a, b in itertools.pairwise(widths)
        )
        self.output = ModulatedLinear(
            hidden, feature_dim, w_dim, demodulate=False, leaky_relu=False
        )

    def check_cameras(self, cameras: Cameras, name: str = "cameras") -> None:
        """Refuses cameras that are not strictly inside the sphere (always; one host sync).

        Meant for where cameras enter (a data set's labels, a pose sampler), before any rendering:
        the render-time check runs only while value checks are on, and training turns them off.

        Raises:
            ValueError: naming ``name``, how many cameras are outside, the farthest one's
                distance from the centre and the radius.
        """
        if not isinstance(cameras, Cameras):
            raise TypeError(f"`{name}` must be Cameras, got {type(cameras).__name__}")
        distances = cameras.centers.detach().reshape(-1, 3).double().norm(dim=-1)
        outside = ~(distances < self.radius)
        if bool(outside.any()):
            farthest = int(distances.argmax())
            raise ValueError(
                f"{int(outside.sum())} of {distances.numel()} `{name}` are not strictly inside "
                f"the background sphere of radius {self.radius:g} (the farthest, camera "
                f"{farthest}, is {float(distances[farthest]):.4g} from the centre); bring the "
                f"cameras inside (EG3D's sit at 2.7) or build the background with a larger radius"
            )

    def _check_w(self, w: Tensor) -> None:
        if not isinstance(w, Tensor) or not w.is_floating_point():
            raise TypeError(
                f"`w` must be a floating-point tensor [B, {self.w_dim}] or "
                f"[B, {self.num_ws}, {self.w_dim}]"
            )
        if w.ndim == 3:
            check_shape("w", w, ("B", self.num_ws, self.w_dim))
        elif w.ndim != 2 or w.shape[-1] != self.w_dim:
            raise ValueError(
                f"`w` must have shape [B, {self.w_dim}] (one style code) or "
                f"[B, {self.num_ws}, {self.w_dim}] (one per layer, num_ws = num_layers + 1), "
                f"got {list(w.shape)}"
            )
        check_module_dtype("w", w, self)
        check_module_device("w", w, self)
        if value_checks_enabled():
            check_values(finite_checks(w=w))

    @property
    def _dtype(self) -> torch.dtype:
        """The parameters' dtype, in which the encoding and the MLP compute."""
        return self.output.weight.dtype

    def _check_rays(self, origins: Tensor, dirs: Tensor, w: Tensor) -> None:
        """Rays of one dtype, and (outside ``torch.autocast``) ``w`` of that dtype too."""
        if dirs.dtype != origins.dtype:
            raise ValueError(
                f"`dirs` has dtype {dirs.dtype} but `origins` has {origins.dtype}; convert them "
                "to one dtype"
            )
        if w.dtype != origins.dtype and not autocast_enabled(origins.device):
            raise ValueError(
                f"`w` has dtype {w.dtype} but `origins` has {origins.dtype}; convert them to one "
                "dtype, or run under torch.autocast"
            )

    def _features_at(self, units: Tensor, w: Tensor) -> Tensor:
        """Features of unit directions ``[B, ..., 3]`` under ``w [B, D]`` or ``[B, num_ws, D]``."""
        if self.encoding == "angles":
            x = sphere_angle_features(units, self.num_freqs)
        else:
            x = fourier_features(units, self.num_freqs)
        ws = w.unbind(1) if w.ndim == 3 else (w,) * self.num_ws
        for layer, style in zip(self.layers, ws[:-1], strict=True):
            if self.demodulation_eps == "raw":
                x = _demodulated_raw_eps(layer, x, style)
            else:
                x = layer(x, style)
        x = self.output(x, ws[-1])
        if self.output_activation == "sigmoid":
            x = torch.sigmoid(x) * (1 + 2 * SIGMOID_EPS) - SIGMOID_EPS
        return x

    @checked(same_dtype=False)
    def features_and_distance(
        self,
        origins: Float[Tensor, "B *rays 3"],
        dirs: Float[Tensor, "B *rays 3"],
        w: Float[Tensor, "B *ws D"],
    ) -> tuple[Float[Tensor, "B *rays F"], Float[Tensor, "B *rays"]]:  # noqa: F821
        """Background features and the distance ``t_bg`` to the sphere along each ray.

        Args:
            origins: ray origins ``[B, ..., 3]`` strictly inside the sphere.
            dirs: ray directions ``[B, ..., 3]``.
            w: style codes ``[B, D]``, one per scene, or ``[B, num_ws, D]``, one per layer.

        Returns:
            ``(features [B, ..., F], t_bg [B, ...])``: features in the module's dtype, distances
            in the rays'.

        Raises:
            ValueError: for mismatched shapes, a dtype (outside ``torch.autocast``) or device
                other than the module's, and (value checks) a camera on or outside the sphere
                or non-finite values.
        """
        self._check_w(w)
        self._check_rays(origins, dirs, w)
        with autocast_off(origins.device):
            t_bg = ray_sphere_exit(origins, dirs, self.radius)
            points = origins + t_bg[..., None] * dirs
            # |p| = R up to round-off; normalising makes the input exactly a unit direction (the
            # angles encoding divides y by |p| where BallGAN divides it by R: equal on the sphere)
            units = points / torch.linalg.vector_norm(points, dim=-1, keepdim=True)
        dtype = self._dtype
        return self._features_at(units.to(dtype), w.to(dtype)), t_bg

    @checked(same_dtype=False)
    def forward(
        self,
        origins: Float[Tensor, "B *rays 3"],
        dirs: Float[Tensor, "B *rays 3"],
        w: Float[Tensor, "B *ws D"],
    ) -> Float[Tensor, "B *rays F"]:
        """Background features where each ray leaves the sphere.

        Args:
            origins: ray origins ``[B, ..., 3]`` strictly inside the sphere.
            dirs: ray directions ``[B, ..., 3]``.
            w: style codes ``[B, D]``, one per scene, or ``[B, num_ws, D]``, one per layer.

        Returns:
            ``[B, ..., F]`` features.
        """
        return self.features_and_distance(origins, dirs, w)[0]

    def _check_cameras(self, cameras: Cameras, w: Tensor) -> None:
        if not isinstance(cameras, Cameras):
            raise TypeError(f"`cameras` must be Cameras, got {type(cameras).__name__}")
        self._check_w(w)
        if cameras.dtype != w.dtype and not autocast_enabled(w.device):
            raise ValueError(
                f"`cameras` have dtype {cameras.dtype} but `w` has {w.dtype}; convert one of "
                "them, or run under torch.autocast"
            )
        check_scene_cameras(cameras.shape, w.shape[0], "from `w`")

    def render_with_depth(
        self, cameras: Cameras, width: int, height: int, w: Float[Tensor, "B *ws D"]
    ) -> tuple[Float[Tensor, "B C H W F"], Float[Tensor, "B C H W 1"]]:
        """Background image and its camera-space depth ``z`` (the library's depth convention).

        Args:
            cameras: ``Cameras`` of shape ``[B, C]``.
            width: image width ``W``.
            height: image height ``H``.
            w: style codes ``[B, D]`` or ``[B, num_ws, D]``.

        Returns:
            ``(features [B, C, H, W, F], depth [B, C, H, W, 1])``, where the depth is the
            camera-space ``z`` of the exit point, ``t_bg (d . z_cam)``.
        """
        self._check_cameras(cameras, w)
        rays = cameras.pixel_rays(width, height)
        features, t_bg = self.features_and_distance(rays.origins, rays.directions, w)
        return features, cameras.pixel_depths(t_bg[..., None], rays.directions)

    def render(
        self, cameras: Cameras, width: int, height: int, w: Float[Tensor, "B *ws D"]
    ) -> Float[Tensor, "B C H W F"]:
        """Renders the background alone through every pixel centre of every camera.

        Args:
            cameras: ``Cameras`` of shape ``[B, C]``, strictly inside the sphere.
            width: image width ``W``.
            height: image height ``H``.
            w: style codes ``[B, D]`` or ``[B, num_ws, D]``.

        Returns:
            ``[B, C, H, W, F]`` features, channels last.
        """
        self._check_cameras(cameras, w)
        rays = cameras.pixel_rays(width, height)
        return self.features_and_distance(rays.origins, rays.directions, w)[0]

    def render_depth(self, cameras: Cameras, width: int, height: int) -> Float[Tensor, "*batch 1"]:
        """Camera-space depth ``z`` of the sphere behind every pixel, ``[..., C, H, W, 1]``."""
        if not isinstance(cameras, Cameras):
            raise TypeError(f"`cameras` must be Cameras, got {type(cameras).__name__}")
        rays = cameras.pixel_rays(width, height)
        t_bg = ray_sphere_exit(rays.origins, rays.directions, self.radius)
        return cameras.pixel_depths(t_bg[..., None], rays.directions)

    @staticmethod
    def panorama_directions(
        width: int,
        height: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Float[Tensor, "H W 3"]:
        """Unit directions of an equirectangular panorama, world up ``+y``.

        Pixel ``(i, j)`` has longitude ``lon = 2 pi (j + 0.5) / W - pi`` and latitude
        ``lat = pi / 2 - pi (i + 0.5) / H``; its direction is
        ``(cos(lat) sin(lon), sin(lat), -cos(lat) cos(lon))``: the centre column looks along
        ``-z`` (what EG3D's frontal camera, on ``+z``, sees behind the subject), right is ``+x``
        and the top row is up.

        Args:
            width: panorama width ``W``.
            height: panorama height ``H``.
            dtype: floating dtype of the result.
            device: device of the result.

        Returns:
            ``[H, W, 3]`` unit directions.
        """
        check_positive_int("width", width)
        check_positive_int("height", height)
        check_float_dtype("dtype", dtype)
        kwargs = {"dtype": torch.float64, "device": device}
        lon = 2 * math.pi * (torch.arange(width, **kwargs) + 0.5) / width - math.pi
        lat = math.pi / 2 - math.pi * (torch.arange(height, **kwargs) + 0.5) / height
        lat, lon = torch.meshgrid(lat, lon, indexing="ij")
        dirs = torch.stack(
            [torch.cos(lat) * torch.sin(lon), torch.sin(lat), -torch.cos(lat) * torch.cos(lon)],
            dim=-1,
        )
        return dirs.to(dtype)

    def panorama(
        self, w: Float[Tensor, "B *ws D"], width: int, height: int
    ) -> Float[Tensor, "B H W F"]:
        """The whole background as an equirectangular image seen from the sphere's centre.

        Args:
            w: style codes ``[B, D]`` or ``[B, num_ws, D]``.
            width: panorama width ``W`` (longitude from -180 to +180 degrees).
            height: panorama height ``H`` (latitude from +90 to -90 degrees).

        Returns:
            ``[B, H, W, F]`` features; see :meth:`panorama_directions` for the layout.
        """
        self._check_w(w)
        check_positive_int("width", width)
        check_positive_int("height", height)
        dtype = self._dtype
        dirs = self.panorama_directions(width, height, dtype=dtype, device=w.device)
        units = dirs.expand(w.shape[0], height, width, 3)
        return self._features_at(units, w.to(dtype))

    def extra_repr(self) -> str:
        """The constructor's arguments."""
        return (
            f"w_dim={self.w_dim}, feature_dim={self.feature_dim}, radius={self.radius}, "
            f"hidden={self.hidden}, num_layers={self.num_layers}, num_freqs={self.num_freqs}, "
            f"encoding={self.encoding!r}, output_activation={self.output_activation!r}"
            + ("" if self.demodulation_eps == "scaled" else ", demodulation_eps='raw'")
        )


def _demodulated_raw_eps(layer: nn.Module, x: Tensor, w: Tensor) -> Tensor:
    """A demodulated :class:`ModulatedLinear` with the epsilon added to the raw weight's norm.

    ``y = act(((x * s) @ W^T) / sqrt(s^2 @ (W^2)^T + 1e-8) + b)``: BallGAN's ``Style2Layer``
    (a 1x1 modulated convolution of the raw weight ``W``); the gain cancels.
    """
    assert isinstance(layer, ModulatedLinear)
    assert layer.demodulate
    styles = layer.affine(w)
    view = (styles.shape[0],) + (1,) * (x.ndim - 2) + (styles.shape[-1],)
    y = F.linear(x * styles.reshape(view), layer.weight)
    demod = torch.rsqrt(styles.square() @ layer.weight.square().T + 1e-8)
    y = y * demod.reshape(*view[:-1], layer.out_features) + layer.bias
    return scaled_leaky_relu(y) if layer.leaky_relu else y


def ballgan_background(w_dim: int = 512, *, radius: float = 3.0) -> SphericalBackground:
    """BallGAN's released background network (``bg_ver="ver1"``), as a :class:`SphericalBackground`.

    Sizes from BallGAN's ``train.py`` (``n_blocks = 4``, ``hidden_size = 64``, ``R = 3``,
    ``downscale_p_by = 2 pi``, ``w_dim = 512``) and ``training/Ball.py`` (``rgb_out_dim = 32``,
    ``n_freq_posenc = 10``, ``use_pos = False``, the output ``sigmoid(x) (1 + 2 * 0.001) - 0.001``):
    the angles encoding (40 channels), 4 modulated layers of width 64 (BallGAN's ``fc_in`` and
    3 blocks), an output layer without demodulation (its ``ToRGBLayer``) giving 32 features, and
    the widened sigmoid. The 32 features are composited with the foreground's 32 tri-plane
    features before EG3D's super-resolution network.

    BallGAN drives it with its own mapping network (:func:`~aware3d.nn.ballgan_background_mapping`,
    ``z_bg`` 512 -> ``w_bg`` 512, 8 layers, no camera label), whose ``num_ws = n_blocks + 1 = 5``
    style vectors go one per layer: pass them as ``ws [B, 5, 512]`` (``num_ws`` of the returned
    module), or a single ``w [B, 512]`` (the same thing without truncation cut-offs or style
    mixing, since the mapping network broadcasts one ``w``).

    Known differences from the released network: the output layer is initialised like every
    other modulated layer here (standard normal weights, zero bias), where BallGAN's
    ``ToRGBLayer`` re-initialises its weight Kaiming-uniform and its bias uniform in
    ``+-1 / sqrt(64)``, so its first outputs are smaller; and the angles divide ``y`` by ``|p|``
    where BallGAN divides by ``R`` (equal on the sphere).

    Args:
        w_dim: width of the background's style code (``w_bg_dim``, 512).
        radius: sphere radius (``R``, 3.0).
    """
    return SphericalBackground(
        w_dim,
        feature_dim=32,
        radius=radius,
        hidden=64,
        num_layers=4,
        num_freqs=10,
        encoding="angles",
        output_activation="sigmoid",
    )
