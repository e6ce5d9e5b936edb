"""Scene normalisation: move, turn and scale a capture into EG3D's camera frame, undoably.

EG3D's datasets put the cameras on a sphere around the origin (FFHQ: radius 2.7, looking at
``(0, 0, 0.2)``, world up +y, the frontal view from +z) and the background sphere of BallGAN
(radius 3) must contain them. A capture reconstructed by COLMAP or nerfstudio has its own origin,
scale and up axis. :func:`normalize_scene` recentres it on the point the cameras look at, scales
it to a target radius and optionally turns it so that up is +y and the cameras' mean direction is
+z, and returns the :class:`SceneTransform` it applied, which is stored with the dataset and
can be undone (:meth:`SceneTransform.inverse`).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from aware3d._validation import check_number, check_positive_number
from aware3d.cameras import FFHQ_RADIUS, Cameras

__all__ = ["SceneTransform", "estimate_lookat", "normalize_scene"]

#: BallGAN's background sphere: cameras must stay inside it.
BACKGROUND_RADIUS = 3.0


@dataclass(frozen=True)
class SceneTransform:
    """A similarity transform of the world: ``x' = scale * rotation @ x + translation``.

    Attributes:
        scale: the positive scale factor.
        rotation: ``[3, 3]`` rotation (float64 numpy array, determinant +1).
        translation: ``[3]`` translation after rotating and scaling.
    """

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self) -> None:
        scale = check_positive_number("scale", self.scale)
        rotation = np.asarray(self.rotation, dtype=np.float64)
        translation = np.asarray(self.translation, dtype=np.float64).reshape(-1)
        if rotation.shape != (3, 3) or translation.shape != (3,):
            raise ValueError(
                f"`rotation` must be [3, 3] and `translation` [3], got {rotation.shape} and "
                f"{translation.shape}"
            )
        if not (np.isfinite(rotation).all() and np.isfinite(translation).all()):
            raise ValueError("`rotation` and `translation` must be finite")
        if np.abs(rotation.T @ rotation - np.eye(3)).max() > 1e-6 or np.linalg.det(rotation) <= 0:
            raise ValueError("`rotation` must be a rotation (orthonormal, determinant +1)")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)

    @classmethod
    def identity(cls) -> "SceneTransform":
        """The transform that changes nothing."""
        return cls(1.0, np.eye(3), np.zeros(3))

    @property
    def matrix(self) -> np.ndarray:
        """The ``[4, 4]`` matrix of the transform (homogeneous points)."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.scale * self.rotation
        matrix[:3, 3] = self.translation
        return matrix

    def inverse(self) -> "SceneTransform":
        """The transform that undoes this one."""
        rotation = self.rotation.T
        return SceneTransform(1.0 / self.scale, rotation, -rotation @ self.translation / self.scale)

    def then(self, other: "SceneTransform") -> "SceneTransform":
        """This transform followed by ``other``."""
        return SceneTransform(
            self.scale * other.scale,
            other.rotation @ self.rotation,
            other.scale * other.rotation @ self.translation + other.translation,
        )

    def apply_points(self, points: Tensor | np.ndarray) -> np.ndarray:
        """Transforms points ``[..., 3]`` (float64 numpy)."""
        values = np.asarray(points, dtype=np.float64)
        return self.scale * values @ self.rotation.T + self.translation

    def apply(self, cameras: Cameras) -> Cameras:
        """The cameras seen in the transformed world: centres moved, axes turned, same images.

        ``cam2world' = [[rotation @ R, scale * rotation @ c + translation], [0, 1]]``; the
        intrinsics do not change (scaling the world with the cameras leaves every image as it
        is). Computed in float64, returned in the cameras' dtype.
        """
        cam2world = cameras.cam2world.double()
        rotation = torch.from_numpy(self.rotation).to(cam2world.device)
        translation = torch.from_numpy(self.translation).to(cam2world.device)
        out = cam2world.clone()
        out[..., :3, :3] = rotation @ cam2world[..., :3, :3]
        out[..., :3, 3] = self.scale * cam2world[..., :3, 3] @ rotation.T + translation
        return Cameras._trusted(out.to(cameras.dtype), cameras.intrinsics)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (``from_json`` reads it back exactly)."""
        return {
            "scale": self.scale,
            "rotation": self.rotation.tolist(),
            "translation": self.translation.tolist(),
            "maps": "x_normalised = scale * rotation @ x_source + translation",
        }

    @classmethod
    def from_json(cls, data: Any) -> "SceneTransform":
        """The transform stored by :meth:`to_json`.

        Raises:
            ValueError: for data that are not such a transform.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a scene transform must be an object, got {type(data).__name__}")
        try:
            return cls(float(data["scale"]), np.asarray(data["rotation"], dtype=np.float64),
                       np.asarray(data["translation"], dtype=np.float64))  # fmt: skip
        except (KeyError, TypeError) as error:
            raise ValueError(
                f"a scene transform needs scale, rotation, translation: {error}"
            ) from None


def estimate_lookat(cameras: Cameras) -> Tensor:
    """The point closest to every camera's optical axis (least squares), ``[3]`` float64.

    Minimises ``sum_i |(I - d_i d_i^T)(p - c_i)|^2`` over ``p`` for centres ``c_i`` and unit
    viewing directions ``d_i`` (the cameras' +z axes).

    Raises:
        ValueError: if the axes are (nearly) parallel, so no point is defined, or if the point
            lies behind the cameras on average (an inside-out capture has no common look-at).
    """
    cam2world = cameras.cam2world.reshape(-1, 4, 4).double().cpu().numpy()
    if len(cam2world) < 2:
        raise ValueError("`cameras`: at least 2 cameras are needed to find where they look")
    centres, directions = cam2world[:, :3, 3], cam2world[:, :3, 2]
    directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    projectors = np.eye(3) - directions[:, :, None] * directions[:, None, :]
    system = projectors.sum(0)
    rhs = (projectors @ centres[:, :, None]).sum(0)[:, 0]
    eigenvalues = np.linalg.eigvalsh(system)
    if eigenvalues[0] < 1e-6 * len(cam2world):
        raise ValueError(
            "`cameras`: the viewing directions are (nearly) parallel, so they do not look at one "
            "point; give the look-at point yourself"
        )
    point = np.linalg.solve(system, rhs)
    ahead = ((point - centres) * directions).sum(1)
    if np.median(ahead) <= 0:
        raise ValueError(
            "`cameras`: the least-squares look-at point lies behind most cameras (an inside-out "
            "capture?); give the look-at point yourself"
        )
    return torch.from_numpy(point)


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector ``a`` to unit vector ``b``."""
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1 + 1e-12:  # opposite: turn by pi about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0.0, 0.0])
        if np.linalg.norm(axis) < 1e-6:
            axis = np.cross(a, [0.0, 1.0, 0.0])
        axis = axis / np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    skew = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + skew + skew @ skew / (1 + c)


def _vector(name: str, value: Sequence[float] | Tensor | np.ndarray) -> np.ndarray:
    try:
        vector = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be 3 numbers, got {value!r}") from None
    if vector.shape != (3,) or not np.isfinite(vector).all():
        raise ValueError(f"`{name}` must be 3 finite numbers, got {value!r}")
    return vector


def normalize_scene(
    cameras: Cameras,
    *,
    lookat: Literal["auto"] | Sequence[float] | Tensor = "auto",
    radius: float = FFHQ_RADIUS,
    center: Sequence[float] = (0.0, 0.0, 0.0),
    up: Literal["auto"] | Sequence[float] | None = None,
    front: Literal["auto"] | None = None,
    background_radius: float | None = BACKGROUND_RADIUS,
    names: Sequence[str] | None = None,
) -> tuple[Cameras, SceneTransform]:
    """Recentres, optionally turns, and scales cameras into EG3D's frame.

    The look-at point ``p`` (given, or :func:`estimate_lookat`'s) goes to ``center``; the
    world turns so that ``up`` becomes +y (EG3D's world up) and then about +y so that the mean
    direction from ``p`` to the cameras becomes +z (the frontal view, horizontal angle pi/2);
    the world scales so that the median camera distance from ``p`` is ``radius``.

    Args:
        cameras: ``Cameras [N]`` (or any batch shape) in the source world.
        lookat: ``"auto"`` (least squares) or the source-world point the cameras look at.
        radius: the median camera distance from the look-at point afterwards (EG3D: 2.7).
        center: where the look-at point goes (EG3D FFHQ looks at ``(0, 0, 0.2)`` from cameras
            around the origin; the default puts the look-at point at the origin).
        up: ``None`` (keep the axes), ``"auto"`` (the cameras' mean up direction, their -y
            axis, becomes +y), or a source-world vector that becomes +y.
        front: ``None`` or ``"auto"`` (after ``up``, turn about +y so that the mean camera
            direction seen from the look-at point is +z). Needs ``up``.
        background_radius: refuse a result with a camera at or beyond this distance from the
            origin (BallGAN's background sphere, 3); ``None`` skips the check.
        names: each camera's image, for error messages.

    Returns:
        ``(cameras, transform)``: the normalised cameras and the :class:`SceneTransform` from the
        source world (``transform.inverse().apply(cameras)`` gives the originals back).

    Raises:
        ValueError: for a look-at point that cannot be found, cameras with no common up or
            front direction, or cameras outside ``background_radius`` afterwards (naming them,
            the farthest first, with the largest radius that keeps them inside).
    """
    radius = check_positive_number("radius", radius)
    target = _vector("center", center)
    point = (
        estimate_lookat(cameras).numpy()
        if isinstance(lookat, str) and lookat == "auto"
        else _vector("lookat", lookat)
    )
    cam2world = cameras.cam2world.reshape(-1, 4, 4).double().cpu().numpy()
    centres = cam2world[:, :3, 3]
    rotation = np.eye(3)
    if up is not None:
        if isinstance(up, str):
            if up != "auto":
                raise ValueError(f"`up` must be None, 'auto' or 3 numbers, got {up!r}")
            mean_up = -cam2world[:, :3, 1].mean(0)
            if np.linalg.norm(mean_up) < 0.3:
                raise ValueError(
                    "`up`='auto': the cameras' up directions disagree (their mean has length "
                    f"{np.linalg.norm(mean_up):.2f}); give the up vector yourself"
                )
        else:
            mean_up = _vector("up", up)
            if np.linalg.norm(mean_up) == 0:
                raise ValueError("`up` must not be the zero vector")
        rotation = _rotation_between(mean_up / np.linalg.norm(mean_up), np.array([0.0, 1, 0]))
    if front is not None:
        if front != "auto":
            raise ValueError(f"`front` must be None or 'auto', got {front!r}")
        if up is None:
            raise ValueError("`front`='auto' needs `up` (the axis to turn about)")
        mean = ((centres - point) @ rotation.T).mean(0)
        flat = np.array([mean[0], 0.0, mean[2]])
        if np.linalg.norm(flat) < 1e-3 * np.linalg.norm(centres - point, axis=1).mean():
            raise ValueError(
                "`front`='auto': the cameras surround the look-at point, so they have no mean "
                "direction; drop `front`"
            )
        angle = math.atan2(flat[0], flat[2])  # turn about +y by -angle takes flat to +z
        cos, sin = math.cos(-angle), math.sin(-angle)
        rotation = np.array([[cos, 0.0, sin], [0.0, 1.0, 0.0], [-sin, 0.0, cos]]) @ rotation
    distances = np.linalg.norm(centres - point, axis=1)
    median = float(np.median(distances))
    if not median > 0:
        raise ValueError("`cameras`: the cameras sit on the look-at point; give another `lookat`")
    scale = radius / median
    transform = SceneTransform(scale, rotation, target - scale * rotation @ point)
    normalised = transform.apply(cameras)
    if background_radius is not None:
        limit = check_number("background_radius", background_radius)
        reach = np.linalg.norm(transform.apply_points(centres), axis=1)
        outside = np.flatnonzero(reach >= limit)
        if len(outside):
            order = outside[np.argsort(-reach[outside])]
            label = [names[i] if names is not None else f"camera {i}" for i in order[:5]]
            more = f" and {len(order) - 5} more" if len(order) > 5 else ""
            largest = radius * limit / float(reach.max()) * 0.999
            raise ValueError(
                f"`radius` {radius:g} puts {len(order)} of {len(reach)} cameras on or outside "
                f"the background sphere of radius {limit:g} (farthest at {reach.max():.4g}): "
                f"{', '.join(map(str, label))}{more}; use a radius below {largest:.4g}, or "
                "drop those images"
            )
    return normalised.reshape(*cameras.shape), transform
