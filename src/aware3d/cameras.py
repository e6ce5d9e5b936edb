"""Cameras in EG3D's convention, look-at frames, EG3D's pose samplers and pixel rays.

Conventions (``docs/pages/conventions.md``):

* ``cam2world`` is a 4x4 OpenCV camera-to-world matrix: camera x right, y down, z forward.
* Intrinsics are normalised: ``[[fx/W, 0, cx/W], [0, fy/H, cy/H], [0, 0, 1]]``.
* An EG3D label is 25 numbers: the flattened 4x4 ``cam2world`` then the flattened 3x3 intrinsics.
* World up is +y (EG3D). Angles of the pose samplers follow EG3D: the horizontal angle is pi/2 for
  the frontal view, the vertical angle is pi/2 for a level view. All angles are radians; fields of
  view are degrees at the API.
* Pixel centres are at +0.5.
"""

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor

from aware3d._checked import checked
from aware3d._precision import autocast_off, geometry_dtype
from aware3d._validation import (
    check_finite,
    check_float_dtype,
    check_nonnegative_number,
    check_number,
    check_positive_int,
    check_positive_number,
    check_values,
    finite_check,
    finite_checks,
    format_shape,
    range_check,
    value_checks_enabled,
)

#: EG3D's normalised focal length for FFHQ (a true horizontal field of view of ~13.37 degrees).
FFHQ_FOCAL = 4.2647
#: EG3D's camera radius for FFHQ.
FFHQ_RADIUS = 2.7
#: EG3D's look-at point for FFHQ.
FFHQ_LOOKAT = (0.0, 0.0, 0.2)

_ORTHONORMAL_TOL = 1e-3


def _rigidity_tolerance(dtype: torch.dtype) -> float:
    """How far ``R^T R`` may be from ``I`` (and the bottom row from ``[0, 0, 0, 1]``) in ``dtype``.

    A rotation rounded once to ``dtype`` is off by up to ``eps`` (half an ulp per entry, summed
    over a row); ``4 eps`` also admits poses computed in that dtype. That is the fixed ``1e-3``
    for float32 and float64, ``3.9e-3`` for float16 and ``3.1e-2`` for bfloat16.
    """
    return max(_ORTHONORMAL_TOL, 4 * torch.finfo(dtype).eps)


class Rays(NamedTuple):
    """Rays with unit directions.

    Attributes:
        origins: ray origins, ``[..., 3]``.
        directions: unit ray directions, same shape as ``origins``.
    """

    origins: Float[Tensor, "*batch 3"]
    directions: Float[Tensor, "*batch 3"]


def _camera_checks(cam2world: Tensor, intrinsics: Tensor) -> list:
    """Value checks of a camera batch: finite, rigid poses, pinhole intrinsics (one sync)."""
    rotation = cam2world[..., :3, :3].double()
    eye = torch.eye(3, dtype=rotation.dtype, device=rotation.device)
    ortho_error = (rotation.transpose(-1, -2) @ rotation - eye).abs().amax()
    det = torch.linalg.det(rotation) if rotation.numel() else rotation.new_ones(1)
    bottom = cam2world[..., 3, :].double()
    bottom_error = (bottom - torch.tensor([0.0, 0.0, 0.0, 1.0], device=bottom.device)).abs()
    fx, fy = intrinsics[..., 0, 0], intrinsics[..., 1, 1]
    off_diagonal = torch.stack(
        [intrinsics[..., 0, 1], intrinsics[..., 1, 0], intrinsics[..., 2, 0], intrinsics[..., 2, 1]]
    )

    tolerance = _rigidity_tolerance(cam2world.dtype)

    def not_rigid() -> str:
        return (
            "`cam2world` must hold rigid transforms: its 3x3 rotation block must be orthonormal "
            f"with determinant +1 (max |R^T R - I| = {float(ortho_error):.3g}, at most "
            f"{tolerance:.3g} in {cam2world.dtype}; min det = {float(det.min()):.3g})"
        )

    def bad_focal() -> str:
        return (
            "`intrinsics` must have positive focal lengths, got fx in "
            f"[{float(fx.min()):.6g}, {float(fx.max()):.6g}] and fy in "
            f"[{float(fy.min()):.6g}, {float(fy.max()):.6g}]"
        )

    return [
        *finite_checks(cam2world=cam2world, intrinsics=intrinsics),
        ((ortho_error <= tolerance) & (det > 0).all(), not_rigid),
        (
            (bottom_error <= tolerance).all(),
            lambda: "`cam2world` must have bottom row [0, 0, 0, 1] in every matrix",
        ),
        (((fx > 0) & (fy > 0)).all(), bad_focal),
        (
            (off_diagonal == 0).all() & (intrinsics[..., 2, 2] == 1).all(),
            lambda: (
                "`intrinsics` must have the form [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (no skew)"
            ),
        ),
    ]


class Cameras:
    """A batch of pinhole cameras: OpenCV camera-to-world poses and normalised intrinsics.

    The shape is ``[..., C]``: any leading batch shape followed by ``C`` cameras. A renderer takes
    ``Cameras`` of shape ``[B, C]``: ``C`` cameras for each of ``B`` scenes.

    Args:
        cam2world: OpenCV camera-to-world matrices (x right, y down, z forward), ``[..., C, 4, 4]``.
        intrinsics: normalised intrinsics ``[[fx/W, 0, cx/W], [0, fy/H, cy/H], [0, 0, 1]]``,
            ``[..., C, 3, 3]``, same leading shape as ``cam2world``.

    Raises:
        ValueError: for wrong shapes, mismatched batch shapes, dtypes or devices, and (value
            checks, one host synchronisation, see :func:`aware3d.value_checks`) non-finite
            values, a rotation that is not orthonormal with determinant +1, a bottom row other
            than ``[0, 0, 0, 1]``, or intrinsics that are not ``[[fx, 0, cx], [0, fy, cy],
            [0, 0, 1]]`` with positive focal lengths.
        TypeError: for arguments that are not floating-point tensors.
    """

    __slots__ = ("cam2world", "intrinsics")

    cam2world: Float[Tensor, "*batch C 4 4"]
    intrinsics: Float[Tensor, "*batch C 3 3"]

    @checked
    def __init__(
        self,
        cam2world: Float[Tensor, "*batch C 4 4"],
        intrinsics: Float[Tensor, "*batch C 3 3"],
    ) -> None:
        if value_checks_enabled() and cam2world.numel():
            check_values(_camera_checks(cam2world, intrinsics))
        self.cam2world = cam2world
        self.intrinsics = intrinsics

    @classmethod
    def _trusted(cls, cam2world: Tensor, intrinsics: Tensor) -> "Cameras":
        """Wraps tensors derived from an already validated ``Cameras`` without re-checking."""
        cameras = object.__new__(cls)
        cameras.cam2world = cam2world
        cameras.intrinsics = intrinsics
        return cameras

    # ------------------------------------------------------------------ shape and device

    @property
    def shape(self) -> torch.Size:
        """Batch shape ``[..., C]``."""
        return self.cam2world.shape[:-2]

    @property
    def num_cameras(self) -> int:
        """``C``, the size of the last batch dimension."""
        return self.cam2world.shape[-3]

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.cam2world.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point dtype of the tensors."""
        return self.cam2world.dtype

    @property
    def centers(self) -> Float[Tensor, "*batch C 3"]:
        """Camera centres in world coordinates, ``[..., C, 3]``."""
        return self.cam2world[..., :3, 3]

    @property
    def forward_directions(self) -> Float[Tensor, "*batch C 3"]:
        """Unit viewing directions (the camera's +z axis) in world coordinates, ``[..., C, 3]``.

        GSGAN conditions the colour of its Gaussians on this vector
        (``HierarchicalGaussianDecoder(camera_conditioning=True)``).
        """
        return self.cam2world[..., :3, 2]

    def pixel_depths(
        self,
        distances: Float[Tensor, "*batch C H W 1"],
        directions: Float[Tensor, "*batch C H W 3"],
    ) -> Float[Tensor, "*batch C H W 1"]:
        """Camera-space depth ``z`` of the points at ``distances`` along these cameras' pixel rays.

        ``z = t (d . f)`` for a point at distance ``t`` along the unit direction ``d`` of
        :meth:`pixel_rays`, ``f`` the camera's forward axis (the library's depth convention).
        """
        forward_axis = self.forward_directions[..., None, None, :]
        return distances * (directions * forward_axis).sum(-1, keepdim=True)

    def to(self, *args: object, **kwargs: object) -> "Cameras":
        """Returns the cameras moved or cast like ``Tensor.to`` (e.g. ``cams.to("cuda")``).

        Raises:
            TypeError: for a cast to a non-floating dtype (it would truncate the intrinsics).
        """
        try:
            cam2world = self.cam2world.to(*args, **kwargs)  # pyright: ignore[reportArgumentType, reportCallIssue]
            intrinsics = self.intrinsics.to(*args, **kwargs)  # pyright: ignore[reportArgumentType, reportCallIssue]
        except (RuntimeError, TypeError) as error:
            raise TypeError(f"`Cameras.to` cannot use {args} {kwargs}: {error}") from None
        check_float_dtype("dtype", cam2world.dtype)
        return Cameras._trusted(cam2world, intrinsics)

    def __getitem__(self, index: int | slice | Tensor | tuple | None) -> "Cameras":
        """Indexes the batch shape ``[..., C]`` like a tensor of that shape.

        An index that would remove the camera axis keeps it with size 1, so ``cams[0]`` of a
        ``[C]`` batch is the first camera as ``Cameras`` of shape ``[1]``. ``None`` adds an axis:
        ``cams[:, None]`` of a ``[B]`` batch is ``[B, 1]`` (one camera per scene) and
        ``cams[None]`` of a ``[C]`` batch is ``[1, C]`` (the cameras of one scene).
        """
        if not isinstance(index, tuple):
            index = (index,)
        if any(i is Ellipsis for i in index):
            raise IndexError("Cameras indexing does not support `...`; index the batch axes")
        cam2world = self.cam2world[(*index, slice(None), slice(None))]
        intrinsics = self.intrinsics[(*index, slice(None), slice(None))]
        if cam2world.ndim == 2:
            cam2world, intrinsics = cam2world[None], intrinsics[None]
        return Cameras._trusted(cam2world, intrinsics)

    def reshape(self, *shape: int) -> "Cameras":
        """Reshapes the batch shape ``[..., C]``; the last entry is the new ``C``."""
        if len(shape) == 0:
            raise ValueError("`shape` must have at least one entry (the camera axis)")
        try:
            torch.empty(self.shape, device="meta").reshape(*shape)
        except (RuntimeError, TypeError) as error:
            raise ValueError(
                f"cannot reshape cameras of shape {format_shape(self.shape)} to `shape` {shape}: "
                f"{error}"
            ) from None
        return Cameras._trusted(
            self.cam2world.reshape(*shape, 4, 4), self.intrinsics.reshape(*shape, 3, 3)
        )

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (
            f"Cameras(shape={format_shape(self.shape)}, dtype={self.dtype}, device={self.device})"
        )

    # ------------------------------------------------------------------ matrices

    def viewmats(self) -> Float[Tensor, "*batch C 4 4"]:
        """World-to-camera matrices, ``[..., C, 4, 4]``: ``[[R^T, -R^T t], [0, 1]]``.

        In the cameras' dtype, computed in float32 at least and with ``torch.autocast`` off.
        """
        cam2world = self.cam2world.to(geometry_dtype(self.dtype))
        with autocast_off(self.device):
            rotation_t = cam2world[..., :3, :3].transpose(-1, -2)
            top = torch.cat([rotation_t, -rotation_t @ cam2world[..., :3, 3:]], dim=-1)
        bottom = torch.zeros_like(cam2world[..., 3:, :])
        bottom[..., 3] = 1
        return torch.cat([top, bottom], dim=-2).to(self.dtype)

    def Ks(self, width: int, height: int) -> Float[Tensor, "*batch C 3 3"]:
        """Pixel intrinsics for an image of ``width`` x ``height`` pixels, ``[..., C, 3, 3]``.

        ``K_pixel = diag(W, H, 1) @ K_normalised``.
        """
        check_positive_int("width", width)
        check_positive_int("height", height)
        scale = torch.tensor(
            [float(width), float(height), 1.0], dtype=self.dtype, device=self.device
        )
        return self.intrinsics * scale[:, None]

    def pixel_rays(self, width: int, height: int) -> Rays:
        """Unit-direction rays through every pixel centre.

        Pixel ``(i, j)`` (row, column) has normalised image coordinates
        ``u = (j + 0.5) / W``, ``v = (i + 0.5) / H``; its camera-space direction is
        ``K^-1 [u, v, 1]^T`` and its world direction ``R`` times that, normalised. The rays have
        the cameras' dtype; they are computed in float32 at least and with ``torch.autocast``
        off, so origins and directions always share one dtype.

        Args:
            width: image width ``W`` in pixels.
            height: image height ``H`` in pixels.

        Returns:
            ``Rays`` with ``origins`` and ``directions`` of shape ``[..., C, H, W, 3]``.
        """
        check_positive_int("width", width)
        check_positive_int("height", height)
        dtype = geometry_dtype(self.dtype)
        intrinsics, cam2world = self.intrinsics.to(dtype), self.cam2world.to(dtype)
        kwargs = {"dtype": dtype, "device": self.device}
        u = (torch.arange(width, **kwargs) + 0.5) / width
        v = (torch.arange(height, **kwargs) + 0.5) / height
        fx = intrinsics[..., 0, 0, None, None]
        fy = intrinsics[..., 1, 1, None, None]
        cx = intrinsics[..., 0, 2, None, None]
        cy = intrinsics[..., 1, 2, None, None]
        x = ((u[None, :] - cx) / fx).expand(*self.shape, height, width)
        y = ((v[:, None] - cy) / fy).expand(*self.shape, height, width)
        dirs_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
        rotation = cam2world[..., None, None, :3, :3]
        with autocast_off(self.device):
            dirs = (rotation @ dirs_cam[..., None])[..., 0]
        dirs = (dirs / torch.linalg.vector_norm(dirs, dim=-1, keepdim=True)).to(self.dtype)
        origins = self.centers[..., None, None, :].expand_as(dirs)
        return Rays(origins, dirs)

    def mirrored(self) -> "Cameras":
        """The cameras that see the left-right mirrored images (EG3D's ``flip_yaw``).

        Mirroring an image about its vertical axis mirrors its camera about the world's x = 0
        plane: ``cam2world' = M @ cam2world @ M`` with ``M = diag(-1, 1, 1, 1)``. The intrinsics'
        principal point is mirrored too (``cx' = 1 - cx``).
        """
        flip = torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=self.dtype, device=self.device)
        cam2world = flip[:, None] * self.cam2world * flip
        intrinsics = self.intrinsics.clone()
        intrinsics[..., 0, 2] = 1.0 - intrinsics[..., 0, 2]
        return Cameras._trusted(cam2world, intrinsics)

    # ------------------------------------------------------------------ EG3D labels

    @classmethod
    @checked
    def from_eg3d_labels(cls, labels: Float[Tensor, "*batch 25"]) -> "Cameras":
        """Builds cameras from EG3D labels: flattened 4x4 ``cam2world`` then flattened 3x3 ``K``.

        The batch shape is the labels' leading shape, so a dataset batch of labels ``[B, 25]``
        gives ``Cameras [B]``, one batch dimension. The renderers (:func:`~aware3d.rasterize`,
        the backgrounds, the volume renderer) take ``[B, C]``, ``C`` cameras per scene: for one
        camera per scene build them from ``labels[:, None]`` (``[B, 1, 25]`` gives ``[B, 1]``), or
        index ``cameras[:, None]``. A ``[B]`` batch is refused there with that hint, not guessed
        (it could as well be the ``C = B`` cameras of one scene).

        Args:
            labels: ``[..., 25]``; a single label ``[25]`` gives ``Cameras`` of shape ``[1]``.

        Returns:
            ``Cameras`` of shape ``labels.shape[:-1]`` (or ``[1]`` for a single label).

        Raises:
            ValueError: as :class:`Cameras` does, for labels that are not ``[..., 25]`` or do
                not describe valid cameras.
        """
        if labels.ndim == 1:
            labels = labels[None]
        cam2world = labels[..., :16].reshape(*labels.shape[:-1], 4, 4)
        intrinsics = labels[..., 16:].reshape(*labels.shape[:-1], 3, 3)
        try:
            return cls(cam2world, intrinsics)
        except ValueError as error:
            raise ValueError(
                f"`labels` are not valid EG3D labels (16 numbers of cam2world, then 9 of the "
                f"intrinsics): {error}"
            ) from None

    def to_eg3d_labels(self) -> Float[Tensor, "*batch C 25"]:
        """EG3D labels ``[..., C, 25]``: flattened ``cam2world`` then flattened intrinsics."""
        return torch.cat([self.cam2world.flatten(-2), self.intrinsics.flatten(-2)], dim=-1)


# ---------------------------------------------------------------------- intrinsics


def _check_fov(fov_degrees: object) -> float:
    fov = check_number("fov_degrees", fov_degrees)
    if not 0.0 < fov < 180.0:
        raise ValueError(f"`fov_degrees` must be in (0, 180) degrees, got {fov_degrees!r}")
    return fov


def intrinsics_from_fov(
    fov_degrees: float,
    aspect_ratio: float = 1.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Float[Tensor, "3 3"]:
    """Normalised intrinsics for a true horizontal field of view, principal point centred.

    ``fx/W = 1 / (2 tan(fov / 2))`` and, for square pixels, ``fy/H = fx/W * W/H``.

    Args:
        fov_degrees: horizontal field of view in degrees, in (0, 180).
        aspect_ratio: image width divided by height.
        dtype: dtype of the result.
        device: device of the result.

    Returns:
        ``[3, 3]`` normalised intrinsics. FFHQ's EG3D focal 4.2647 is a field of view of ~13.37
        degrees.
    """
    fov = _check_fov(fov_degrees)
    aspect = check_positive_number("aspect_ratio", aspect_ratio)
    check_float_dtype("dtype", dtype)
    focal = 1.0 / (2.0 * math.tan(math.radians(fov) / 2.0))
    return torch.tensor(
        [[focal, 0.0, 0.5], [0.0, focal * aspect, 0.5], [0.0, 0.0, 1.0]], dtype=dtype, device=device
    )


@checked
def fov_from_intrinsics(intrinsics: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch"]:
    """True horizontal field of view in degrees of normalised intrinsics: ``2 atan(1 / (2 fx))``.

    Raises:
        ValueError: for a shape other than ``[..., 3, 3]`` and (value checks) a focal length
            ``fx`` that is not finite and positive.
    """
    if value_checks_enabled():
        fx = intrinsics[..., 0, 0]
        check_values(
            [
                finite_check("intrinsics", fx),
                range_check("intrinsics", fx, 1e-300, None, what="the focal length fx"),
            ]
        )
    return torch.rad2deg(2.0 * torch.atan(0.5 / intrinsics[..., 0, 0]))


def eg3d_fov_to_intrinsics(
    fov_degrees: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Float[Tensor, "3 3"]:
    """EG3D's ``FOV_to_intrinsics``, reproduced number for number, for compatibility only.

    EG3D computes ``f = 1 / (tan(fov * 3.14159 / 360) * 1.414)``; the extra 1.414 means its
    "field of view" is not the true one: EG3D's 18.837 gives FFHQ's focal ~4.26, whose true field of
    view is ~13.4 degrees. Use :func:`intrinsics_from_fov` for a true field of view.

    Args:
        fov_degrees: EG3D's nominal field of view in degrees.
        dtype: dtype of the result.
        device: device of the result.

    Returns:
        ``[3, 3]`` normalised intrinsics ``[[f, 0, 0.5], [0, f, 0.5], [0, 0, 1]]``.
    """
    fov = _check_fov(fov_degrees)
    check_float_dtype("dtype", dtype)
    focal = 1.0 / (math.tan(fov * 3.14159 / 360.0) * 1.414)
    return torch.tensor(
        [[focal, 0.0, 0.5], [0.0, focal, 0.5], [0.0, 0.0, 1.0]], dtype=dtype, device=device
    )


# ---------------------------------------------------------------------- poses


def _as_points(name: str, value: Tensor | Sequence[float], dtype: torch.dtype, device) -> Tensor:
    try:
        points = torch.as_tensor(value, dtype=dtype, device=device)
    except (TypeError, ValueError, RuntimeError) as error:
        raise TypeError(f"`{name}` must be a tensor or a sequence of 3 numbers: {error}") from None
    if points.ndim == 0 or points.shape[-1] != 3:
        raise ValueError(f"`{name}` must have shape [..., 3], got {format_shape(points.shape)}")
    return points


def _as_point(name: str, value: Tensor | Sequence[float], dtype: torch.dtype, device) -> Tensor:
    point = _as_points(name, value, dtype, device)
    if point.ndim != 1:
        raise ValueError(f"`{name}` must have shape [3], got {format_shape(point.shape)}")
    return point


@checked
def look_at(
    origins: Float[Tensor, "*batch 3"],
    targets: Float[Tensor, "*target_batch 3"] | Sequence[float],
    up: Sequence[float] = (0.0, 1.0, 0.0),
) -> Float[Tensor, "*batch 4 4"]:
    """OpenCV camera-to-world matrices for cameras at ``origins`` looking at ``targets``.

    EG3D's ``create_cam2world_matrix``: ``z = normalise(target - origin)``,
    ``x = -normalise(up x z)``, ``y = normalise(z x x)``, so with world up +y the camera's y axis
    points down in the image, as OpenCV wants.

    Args:
        origins: camera centres, ``[..., 3]``.
        targets: points looked at, ``[..., 3]`` or one point broadcast to all cameras.
        up: the world's up direction.

    Returns:
        ``[..., 4, 4]`` camera-to-world matrices in the dtype of ``origins``, computed in float32
        at least (half-precision poses are rounded once, so they stay rigid to their precision).

    Raises:
        ValueError: for wrong shapes, and (value checks, one host synchronisation) non-finite
            values, a target equal to its origin, or a viewing direction parallel to ``up``.
    """
    dtype = origins.dtype
    origins = origins.to(geometry_dtype(dtype))
    targets_t = _as_points("targets", targets, origins.dtype, origins.device)
    up_t = _as_point("up", up, origins.dtype, origins.device)
    try:
        torch.broadcast_shapes(targets_t.shape, origins.shape)
    except RuntimeError:
        raise ValueError(
            f"`targets` of shape {format_shape(targets_t.shape)} does not match `origins` "
            f"of shape {format_shape(origins.shape)}"
        ) from None
    forward = targets_t - origins
    distance = torch.linalg.vector_norm(forward, dim=-1, keepdim=True)
    forward = forward / distance
    cross = torch.linalg.cross(up_t.expand_as(forward), forward, dim=-1)
    cross_norm = torch.linalg.vector_norm(cross, dim=-1, keepdim=True)
    if value_checks_enabled():
        check_values(
            [
                *finite_checks(origins=origins, targets=targets_t, up=up_t),
                (
                    (distance > 1e-12).all(),
                    lambda: "every target in `targets` must differ from its camera in `origins`",
                ),
                (
                    (cross_norm > 1e-9).all() | (distance <= 1e-12).any(),
                    lambda: "a viewing direction is parallel to `up`; the camera roll is undefined",
                ),
            ]
        )
    right = -cross / cross_norm
    down = torch.linalg.cross(forward, right, dim=-1)
    down = down / torch.linalg.vector_norm(down, dim=-1, keepdim=True)
    rotation = torch.stack([right, down, forward], dim=-1)
    top = torch.cat([rotation, origins[..., :, None]], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 3] = 1
    return torch.cat([top, bottom], dim=-2).to(dtype)


def _angles(
    mean: float, stddev: float, n: int, generator: torch.Generator | None, device, dtype
) -> Tensor:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"`generator` must be a torch.Generator, got {type(generator).__name__}")
    # draw where the generator lives (so a CPU generator gives the same poses on every device)
    source = generator.device if generator is not None else device
    noise = torch.randn(n, 1, generator=generator, device=source, dtype=dtype)
    return noise.to(device, geometry_dtype(dtype)) * stddev + mean


def _eg3d_origins(horizontal: Tensor, vertical: Tensor, radius: float) -> Tensor:
    """EG3D's sphere parametrisation (``camera_utils.LookAtPoseSampler``), ``[n, 3]``."""
    vertical = torch.clamp(vertical, 1e-5, math.pi - 1e-5)
    phi = torch.arccos(1 - 2 * (vertical / math.pi))
    theta = horizontal
    x = radius * torch.sin(phi) * torch.cos(math.pi - theta)
    y = radius * torch.cos(phi)
    z = radius * torch.sin(phi) * torch.sin(math.pi - theta)
    return torch.cat([x, y, z], dim=-1)


def _check_sampler_args(
    means: Sequence[float], stddevs: Sequence[float], radius: float, n: int, dtype: object
) -> None:
    check_number("horizontal_mean", means[0])
    check_number("vertical_mean", means[1])
    check_nonnegative_number("horizontal_stddev", stddevs[0])
    check_nonnegative_number("vertical_stddev", stddevs[1])
    check_positive_number("radius", radius)
    check_positive_int("n", n)
    check_float_dtype("dtype", dtype)


def sample_look_at_poses(
    horizontal_mean: float,
    vertical_mean: float,
    lookat: Float[Tensor, "3"] | Sequence[float],
    horizontal_stddev: float = 0.0,
    vertical_stddev: float = 0.0,
    radius: float = FFHQ_RADIUS,
    n: int = 1,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Float[Tensor, "n 4 4"]:
    """EG3D's ``LookAtPoseSampler``: cameras on a sphere looking at ``lookat``.

    Angles are drawn as ``h ~ N(horizontal_mean, horizontal_stddev^2)`` and
    ``v ~ N(vertical_mean, vertical_stddev^2)`` (in that order from ``generator``), ``v`` is clamped
    to ``[1e-5, pi - 1e-5]``, ``phi = arccos(1 - 2 v / pi)``, ``theta = h``, and the camera sits at
    ``radius * (sin(phi) cos(pi - theta), cos(phi), sin(phi) sin(pi - theta))``.
    ``h = v = pi/2`` is the frontal, level view from +z.

    Args:
        horizontal_mean: mean horizontal angle in radians (pi/2 is frontal).
        vertical_mean: mean vertical angle in radians (pi/2 is level).
        lookat: the point every camera looks at, ``[3]`` (FFHQ: ``(0, 0, 0.2)``).
        horizontal_stddev: standard deviation of the horizontal angle in radians.
        vertical_stddev: standard deviation of the vertical angle in radians.
        radius: distance of the cameras from the origin.
        n: number of poses.
        generator: random generator for reproducible draws.
        dtype: dtype of the result; half precision is computed in float32 and rounded
            once, so the poses pass the rigidity check of :class:`Cameras` in that dtype.
        device: device of the result.

    Returns:
        ``[n, 4, 4]`` OpenCV camera-to-world matrices.
    """
    _check_sampler_args(
        (horizontal_mean, vertical_mean), (horizontal_stddev, vertical_stddev), radius, n, dtype
    )
    target = _as_point("lookat", lookat, geometry_dtype(dtype), device)
    check_finite(lookat=target)
    h = _angles(horizontal_mean, horizontal_stddev, n, generator, device, dtype)
    v = _angles(vertical_mean, vertical_stddev, n, generator, device, dtype)
    origins = _eg3d_origins(h, v, radius)
    return look_at(origins, target).to(dtype)


def sample_gaussian_poses(
    horizontal_mean: float,
    vertical_mean: float,
    horizontal_stddev: float = 0.0,
    vertical_stddev: float = 0.0,
    radius: float = FFHQ_RADIUS,
    n: int = 1,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Float[Tensor, "n 4 4"]:
    """EG3D's ``GaussianCameraPoseSampler``: cameras on a sphere looking at the origin.

    EG3D's own default radius for this sampler is 1; this one defaults to FFHQ's 2.7, pass
    ``radius=1`` for EG3D's default.

    Args:
        horizontal_mean: mean horizontal angle in radians (pi/2 is frontal).
        vertical_mean: mean vertical angle in radians (pi/2 is level).
        horizontal_stddev: standard deviation of the horizontal angle in radians.
        vertical_stddev: standard deviation of the vertical angle in radians.
        radius: distance of the cameras from the origin.
        n: number of poses.
        generator: random generator for reproducible draws.
        dtype: dtype of the result; half precision is computed in float32 and rounded
            once, so the poses pass the rigidity check of :class:`Cameras` in that dtype.
        device: device of the result.

    Returns:
        ``[n, 4, 4]`` OpenCV camera-to-world matrices.
    """
    _check_sampler_args(
        (horizontal_mean, vertical_mean), (horizontal_stddev, vertical_stddev), radius, n, dtype
    )
    h = _angles(horizontal_mean, horizontal_stddev, n, generator, device, dtype)
    v = _angles(vertical_mean, vertical_stddev, n, generator, device, dtype)
    origins = _eg3d_origins(h, v, radius)
    return look_at(origins, torch.zeros_like(origins)).to(dtype)


def orbit(
    n: int,
    *,
    radius: float = FFHQ_RADIUS,
    lookat: Float[Tensor, "3"] | Sequence[float] = FFHQ_LOOKAT,
    vertical: float = math.pi / 2,
    horizontal_amplitude: float | None = None,
    vertical_amplitude: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Float[Tensor, "n 4 4"]:
    """A turntable of ``n`` camera poses for videos, in EG3D's angle convention.

    With ``horizontal_amplitude=None`` the cameras make one full turn,
    ``h_k = pi/2 + 2 pi k / n`` starting at the frontal view. Otherwise they swing like EG3D's
    ``gen_videos.py``: ``h_k = pi/2 + a_h sin(2 pi k / n)`` and
    ``v_k = vertical + a_v cos(2 pi k / n)``.

    Args:
        n: number of frames.
        radius: distance of the cameras from the origin.
        lookat: the point every camera looks at.
        vertical: vertical angle in radians (pi/2 is level).
        horizontal_amplitude: swing amplitude in radians, or ``None`` for a full turn.
        vertical_amplitude: vertical swing amplitude in radians.
        dtype: dtype of the result; half precision is computed in float32 and rounded
            once, so the poses pass the rigidity check of :class:`Cameras` in that dtype.
        device: device of the result.

    Returns:
        ``[n, 4, 4]`` OpenCV camera-to-world matrices.
    """
    check_positive_int("n", n)
    check_positive_number("radius", radius)
    check_number("vertical", vertical)
    if horizontal_amplitude is not None:
        check_number("horizontal_amplitude", horizontal_amplitude)
    check_number("vertical_amplitude", vertical_amplitude)
    check_float_dtype("dtype", dtype)
    target = _as_point("lookat", lookat, geometry_dtype(dtype), device)
    check_finite(lookat=target)
    phase = 2 * math.pi * torch.arange(n, dtype=torch.float64, device=device) / n
    if horizontal_amplitude is None:
        h = math.pi / 2 + phase
    else:
        h = math.pi / 2 + float(horizontal_amplitude) * torch.sin(phase)
    v = vertical + float(vertical_amplitude) * torch.cos(phase)
    geometry = geometry_dtype(dtype)
    origins = _eg3d_origins(h[:, None].to(geometry), v[:, None].to(geometry), radius)
    return look_at(origins, target).to(dtype)
