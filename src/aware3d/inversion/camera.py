"""The camera of an inverted photo: given as an EG3D label, or refined from a rough guess.

A guess is EG3D's look-at camera (``LookAtPoseSampler``) in the library's angle convention:
``yaw`` and ``pitch`` in degrees at the API are EG3D's horizontal and vertical angles less
``pi/2`` (``h = pi/2 + yaw``, ``v = pi/2 + pitch``; 0 and 0 is the frontal, level view from
+z), so an EG3D user's numbers carry over. The camera sits at
``radius * (sin(phi) cos(pi - h), cos(phi), sin(phi) sin(pi - h))`` with
``phi = arccos(1 - 2 v / pi)`` and looks at ``lookat`` with world up +y (OpenCV axes,
:func:`~aware3d.cameras.look_at`); ``focal`` is the normalised focal length ``fx / W = fy / H``
with the principal point at the centre. FFHQ's defaults: radius 2.7, look-at ``(0, 0, 0.2)``,
focal 4.2647.

:class:`CameraParameters` holds a guess as parameters (angles in radians inside, the focal as
its logarithm) and builds differentiable :class:`~aware3d.cameras.Cameras` from them, so an
optimiser refines the ones named in ``refine``.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aware3d._validation import check_number, check_positive_number
from aware3d.cameras import FFHQ_FOCAL, FFHQ_LOOKAT, FFHQ_RADIUS, Cameras

__all__ = [
    "CAMERA_PARAMETERS",
    "CameraGuess",
    "CameraParameters",
    "rotation_error_degrees",
]

#: What a camera refinement may free.
CAMERA_PARAMETERS = ("yaw", "pitch", "radius", "lookat", "focal")


@dataclass(frozen=True)
class CameraGuess:
    """A look-at camera in EG3D's angle convention (see the module's text).

    Attributes:
        yaw: degrees from the frontal view (EG3D's horizontal angle less 90 degrees).
        pitch: degrees from level (EG3D's vertical angle less 90 degrees).
        radius: distance of the camera from the world's origin.
        lookat: the point looked at.
        focal: normalised focal length (``fx / W``).
    """

    yaw: float = 0.0
    pitch: float = 0.0
    radius: float = FFHQ_RADIUS
    lookat: tuple[float, float, float] = FFHQ_LOOKAT
    focal: float = FFHQ_FOCAL

    def __post_init__(self) -> None:
        check_number("yaw", self.yaw)
        pitch = check_number("pitch", self.pitch)
        if not -90.0 < pitch < 90.0:
            raise ValueError(f"`pitch` must lie in (-90, 90) degrees, got {self.pitch!r}")
        check_positive_number("radius", self.radius)
        check_positive_number("focal", self.focal)
        if len(self.lookat) != 3:
            raise ValueError(f"`lookat` must be 3 numbers, got {self.lookat!r}")
        for value in self.lookat:
            check_number("lookat", value)

    def cameras(
        self, *, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
    ) -> Cameras:
        """``Cameras [1, 1]`` of the guess."""
        return CameraParameters(self).to(device=device, dtype=dtype)()

    def label(self) -> Tensor:
        """The EG3D label ``[25]`` (float32) of the guess."""
        return self.cameras().to_eg3d_labels()[0, 0]

    @classmethod
    def from_cameras(cls, cameras: Cameras) -> "CameraGuess":
        """The guess whose camera is closest to the first of ``cameras``.

        Yaw, pitch and radius come from the camera's centre, ``lookat`` is the point of its
        optical axis nearest the origin, ``focal`` the mean of ``fx`` and ``fy``; a roll or an
        off-centre principal point is not represented.
        """
        cam2world = cameras.cam2world.reshape(-1, 4, 4)[0].double().cpu()
        intrinsics = cameras.intrinsics.reshape(-1, 3, 3)[0].double().cpu()
        centre, forward = cam2world[:3, 3], cam2world[:3, 2]
        radius = float(torch.linalg.vector_norm(centre))
        phi = math.acos(max(-1.0, min(1.0, float(centre[1]) / radius)))
        vertical = math.pi * (1 - math.cos(phi)) / 2
        horizontal = math.atan2(float(centre[2]), -float(centre[0]))
        along = -float(centre @ forward)
        lookat = centre + along * forward
        return cls(
            yaw=math.degrees(horizontal - math.pi / 2),
            pitch=math.degrees(vertical - math.pi / 2),
            radius=radius,
            lookat=(float(lookat[0]), float(lookat[1]), float(lookat[2])),
            focal=float((intrinsics[0, 0] + intrinsics[1, 1]) / 2),
        )


def _look_at(origin: Tensor, target: Tensor) -> Tensor:
    """Differentiable :func:`~aware3d.cameras.look_at` for one camera (world up +y)."""
    forward = target - origin
    forward = forward / torch.linalg.vector_norm(forward)
    up = torch.tensor([0.0, 1.0, 0.0], dtype=origin.dtype, device=origin.device)
    right = -torch.linalg.cross(up, forward)
    right = right / torch.linalg.vector_norm(right)
    down = torch.linalg.cross(forward, right)
    down = down / torch.linalg.vector_norm(down)
    rotation = torch.stack([right, down, forward], dim=-1)
    top = torch.cat([rotation, origin[:, None]], dim=-1)
    bottom = torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=origin.dtype, device=origin.device)
    return torch.cat([top, bottom], dim=0)


class CameraParameters(nn.Module):
    """A :class:`CameraGuess` as parameters; calling it gives differentiable ``Cameras [1, 1]``.

    Args:
        guess: the starting camera.
        refine: which of :data:`CAMERA_PARAMETERS` are optimised (``requires_grad``); the others
            stay at the guess.

    Raises:
        ValueError: for an unknown name in ``refine``.
    """

    def __init__(self, guess: CameraGuess, refine: Sequence[str] = ()) -> None:
        super().__init__()
        unknown = [name for name in refine if name not in CAMERA_PARAMETERS]
        if unknown or isinstance(refine, str):
            raise ValueError(
                f"`refine` must name some of {', '.join(CAMERA_PARAMETERS)}, got {refine!r}"
            )
        self.refine = tuple(refine)
        values = {
            "yaw": [math.radians(guess.yaw)],
            "pitch": [math.radians(guess.pitch)],
            "radius": [guess.radius],
            "lookat": list(guess.lookat),
            "focal": [math.log(guess.focal)],
        }
        for name, value in values.items():
            parameter = nn.Parameter(torch.tensor(value, dtype=torch.float64).float())
            parameter.requires_grad_(name in self.refine)
            setattr(self, name, parameter)

    def forward(self) -> Cameras:
        """``Cameras [1, 1]`` of the current values (gradients flow to the refined ones)."""
        yaw, pitch = self.get_parameter("yaw")[0], self.get_parameter("pitch")[0]
        radius = self.get_parameter("radius")[0]
        horizontal = math.pi / 2 + yaw
        vertical = (math.pi / 2 + pitch).clamp(1e-5, math.pi - 1e-5)
        phi = torch.arccos(1 - 2 * vertical / math.pi)
        origin = radius * torch.stack([
            torch.sin(phi) * torch.cos(math.pi - horizontal),
            torch.cos(phi),
            torch.sin(phi) * torch.sin(math.pi - horizontal),
        ])  # fmt: skip
        cam2world = _look_at(origin, self.get_parameter("lookat"))
        focal = self.get_parameter("focal")[0].exp()
        zero, one, half = focal * 0, focal * 0 + 1, focal * 0 + 0.5
        intrinsics = torch.stack([
            torch.stack([focal, zero, half]),
            torch.stack([zero, focal, half]),
            torch.stack([zero, zero, one]),
        ])  # fmt: skip
        return Cameras._trusted(cam2world[None, None], intrinsics[None, None])

    def guess(self) -> CameraGuess:
        """The current values as a :class:`CameraGuess`."""
        values = {name: self.get_parameter(name).detach().double().cpu().tolist()
                  for name in CAMERA_PARAMETERS}  # fmt: skip
        lookat = values["lookat"]
        return CameraGuess(
            yaw=math.degrees(values["yaw"][0]),
            pitch=math.degrees(values["pitch"][0]),
            radius=values["radius"][0],
            lookat=(lookat[0], lookat[1], lookat[2]),
            focal=math.exp(values["focal"][0]),
        )


def rotation_error_degrees(a: Cameras, b: Cameras) -> float:
    """The angle (degrees) of the rotation between the orientations of the first cameras."""
    ra = a.cam2world.reshape(-1, 4, 4)[0, :3, :3].double().cpu()
    rb = b.cam2world.reshape(-1, 4, 4)[0, :3, :3].double().cpu()
    cosine = ((ra.T @ rb).trace() - 1) / 2
    return math.degrees(math.acos(max(-1.0, min(1.0, float(cosine)))))
