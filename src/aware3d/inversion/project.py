"""Projection into W / W+ (StyleGAN2's projector schedule) and pivotal tuning (PTI).

Everything goes through :func:`~aware3d.models.styles.styles_of`: a generator is rendered from
style codes ``ws`` (one tensor ``[1, num_ws, D]`` per mapping network), so GSGAN-family and
BallGAN-family generators and a user's own :class:`~aware3d.models.styles.SupportsStyles`
generator are inverted alike. Images are channels last in [-1, 1], as the generators output them.
"""

import copy
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm import tqdm

from aware3d.cameras import Cameras
from aware3d.inversion.camera import CameraGuess, CameraParameters
from aware3d.inversion.lpips import LPIPS
from aware3d.models.protocol import SupportsCameraCheck
from aware3d.models.styles import SupportsStyles, styles_of

__all__ = [
    "LossWeights",
    "PTIConfig",
    "Projection",
    "ProjectorSchedule",
    "Tuning",
    "WStatistics",
    "locality_psnr",
    "pivotal_tuning",
    "project",
    "psnr",
    "reconstruction_loss",
    "w_statistics",
]

Space = Literal["w", "w+"]


@dataclass(frozen=True)
class ProjectorSchedule:
    """The optimisation schedule of :func:`project` (defaults: StyleGAN2-ADA's ``projector.py``).

    With ``t = step / steps``, the learning rate is
    ``learning_rate * min(1, t / lr_rampup) * (0.5 - 0.5 cos(pi min(1, (1 - t) / lr_rampdown)))``
    and the style codes are perturbed by Gaussian noise of standard deviation
    ``w_std * noise * max(0, 1 - t / noise_ramp)^2`` (``w_std`` the root mean square distance of
    a mapped latent from ``w_avg``); Adam with ``betas``.

    Attributes:
        steps: optimisation steps (StyleGAN2: 1000).
        learning_rate: peak learning rate of the codes (0.1).
        lr_rampup: fraction of the steps the learning rate ramps up over (0.05).
        lr_rampdown: fraction of the steps it ramps down over, cosine (0.25).
        noise: initial noise, as a fraction of ``w_std`` (0.05).
        noise_ramp: fraction of the steps the noise decays over, quadratically (0.75).
        betas: Adam's betas ((0.9, 0.999)).
        w_avg_samples: latents mapped to estimate ``w_avg`` and ``w_std`` (10000).
        camera_learning_rate: peak learning rate of refined camera parameters (radians for
            the angles, world units for radius and look-at, log for the focal), same ramps.
    """

    steps: int = 1000
    learning_rate: float = 0.1
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    noise: float = 0.05
    noise_ramp: float = 0.75
    betas: tuple[float, float] = (0.9, 0.999)
    w_avg_samples: int = 10000
    camera_learning_rate: float = 0.01

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"`steps` must be an integer >= 0, got {self.steps!r}")
        for name in ("learning_rate", "lr_rampup", "lr_rampdown", "noise_ramp", "noise",
                     "camera_learning_rate"):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}")
        if self.w_avg_samples < 2:
            raise ValueError(f"`w_avg_samples` must be >= 2, got {self.w_avg_samples!r}")

    def lr_scale(self, t: float) -> float:
        """The learning rate's factor at progress ``t`` in [0, 1]."""
        down = min(1.0, (1.0 - t) / self.lr_rampdown) if self.lr_rampdown > 0 else 1.0
        scale = 0.5 - 0.5 * math.cos(down * math.pi)
        return scale * (min(1.0, t / self.lr_rampup) if self.lr_rampup > 0 else 1.0)

    def noise_scale(self, t: float) -> float:
        """The noise's fraction of ``w_std`` at progress ``t``."""
        if self.noise_ramp <= 0:
            return 0.0
        return self.noise * max(0.0, 1.0 - t / self.noise_ramp) ** 2


@dataclass(frozen=True)
class LossWeights:
    """Weights of the reconstruction loss.

    ``L = l1 |x - y|_1 + l2 |x - y|^2 + lpips LPIPS(x, y) + sum_k regularizers[k] R_k``, pixel
    terms as means over the (masked) pixels and channels, ``LPIPS`` only when a network is given,
    ``R_k`` the generator's own regularisers by name
    (:meth:`~aware3d.models.GeneratorProtocol.regularizers`, e.g. ``separation``).

    Attributes:
        l1: weight of the mean absolute error.
        l2: weight of the mean squared error (PTI: 1).
        lpips: weight of LPIPS (PTI: 1; StyleGAN2's projector uses LPIPS alone).
        regularizers: weights of the generator's regularisers, by name.
    """

    l1: float = 0.0
    l2: float = 1.0
    lpips: float = 1.0
    regularizers: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("l1", "l2", "lpips"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}")
        for name, value in self.regularizers.items():
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"regularizer `{name}` weight must be >= 0, got {value!r}")


@dataclass(frozen=True)
class PTIConfig:
    """Pivotal tuning (Roich et al., 2022; defaults from their ``hyperparameters.py``).

    The generator's weights (not its mapping networks) are tuned with Adam so that the pivot's
    codes reproduce the target: ``L = l2 MSE + lpips LPIPS`` (+ ``l1``). The locality regulariser
    draws a latent ``z``, maps it to ``w_z`` and moves from the pivot ``w_p`` towards it,
    ``w_r = w_p + alpha (w_z - w_p) / ||w_z - w_p||``, and keeps the tuned generator's image of
    ``w_r`` near the original's: ``L_R = locality_l2 MSE + locality_lpips LPIPS``, every
    ``locality_interval`` steps.

    Attributes:
        steps: tuning steps (PTI: 350).
        learning_rate: Adam's learning rate (PTI: 3e-4).
        l1: weight of the pivot's mean absolute error.
        l2: weight of the pivot's mean squared error (PTI: 1).
        lpips: weight of the pivot's LPIPS (PTI: 1).
        locality_l2: weight of the regulariser's MSE (PTI: 0.1).
        locality_lpips: weight of the regulariser's LPIPS (PTI: 0.1).
        locality_alpha: PTI's ``alpha``, the distance from the pivot (30 in PTI, for
            StyleGAN's 512-wide W of 18 layers); ``None`` (default) takes ``w_r = w_z``, a latent
            of the model itself, which suits any width.
        locality_interval: steps between regulariser evaluations (PTI: 1); 0 turns it off.
    """

    steps: int = 350
    learning_rate: float = 3e-4
    l1: float = 0.0
    l2: float = 1.0
    lpips: float = 1.0
    locality_l2: float = 0.1
    locality_lpips: float = 0.1
    locality_alpha: float | None = None
    locality_interval: int = 1

    def __post_init__(self) -> None:
        for name in ("steps", "locality_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}")
        for name in ("learning_rate", "l1", "l2", "lpips", "locality_l2", "locality_lpips"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}")
        if self.locality_alpha is not None and not self.locality_alpha > 0:
            raise ValueError(f"`locality_alpha` must be > 0, got {self.locality_alpha!r}")


@dataclass
class WStatistics:
    """Mean and spread of mapped latents, per style group.

    Attributes:
        w_avg: ``[1, num_ws, D]`` per group, the mean of the mapped latents.
        w_std: per group, ``sqrt(sum |w - w_avg|^2 / N)`` of one style vector (StyleGAN2's).
    """

    w_avg: list[Tensor]
    w_std: list[float]


@dataclass
class Projection:
    """What :func:`project` found.

    Attributes:
        ws: the codes, ``[1, num_ws, D]`` per style group (detached).
        cameras: the (refined) ``Cameras [1, 1]`` (detached).
        camera: the refined camera as a :class:`CameraGuess` (``None`` when given).
        image: the reconstruction ``[H, W, 3]``.
        history: per-step ``loss`` and the loss's parts, and ``lr``.
        seconds: wall time of the optimisation.
        space: ``"w"`` or ``"w+"``.
        group_names: the style groups' names (keys of a saved latent).
    """

    ws: list[Tensor]
    cameras: Cameras
    camera: CameraGuess | None
    image: Tensor
    history: dict[str, list[float]]
    seconds: float
    space: str
    group_names: list[str]


@dataclass
class Tuning:
    """What :func:`pivotal_tuning` returns.

    Attributes:
        generator: the tuned copy (eval mode, gradients off).
        image: its reconstruction ``[H, W, 3]``.
        history: per-step ``loss``, ``pivot`` and ``locality``.
        seconds: wall time of the tuning.
    """

    generator: nn.Module
    image: Tensor
    history: dict[str, list[float]]
    seconds: float


def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None) -> float:
    """PSNR in dB of images in [-1, 1] (a range of 2: ``10 log10(4 / MSE)``)."""
    difference = (a.detach().double() - b.detach().double()).square()
    if mask is not None:
        weight = mask.detach().double().expand_as(difference)
        mse = float((difference * weight).sum() / weight.sum().clamp_min(1e-12))
    else:
        mse = float(difference.mean())
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def reconstruction_loss(
    images: Tensor,
    target: Tensor,
    weights: LossWeights | PTIConfig,
    *,
    lpips: LPIPS | None = None,
    mask: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """The pixel and perceptual loss of ``images`` against ``target`` (both ``[N, H, W, 3]``).

    With ``mask [H, W, 1]`` the pixel terms are means over the masked pixels, and LPIPS compares
    the images with the target pasted outside the mask (so nothing there counts).

    Returns:
        ``(total, parts)``, parts by name (``l1``, ``l2``, ``lpips``) for those with a weight.
    """
    parts: dict[str, Tensor] = {}
    difference = images - target
    weight = None if mask is None else mask.to(images.dtype).expand_as(images)

    def mean(values: Tensor) -> Tensor:
        if weight is None:
            return values.mean()
        return (values * weight).sum() / weight.sum().clamp_min(1e-8)

    if weights.l1 > 0:
        parts["l1"] = mean(difference.abs())
    if weights.l2 > 0:
        parts["l2"] = mean(difference.square())
    if lpips is not None and weights.lpips > 0:
        shown = images if weight is None else weight * images + (1 - weight) * target
        parts["lpips"] = lpips(shown, target).mean()
    total = sum((getattr(weights, name) * value for name, value in parts.items()),
                images.new_zeros(()))  # fmt: skip
    return total, parts


def _device_dtype(generator: nn.Module) -> tuple[torch.device, torch.dtype]:
    parameter = next(generator.parameters())
    return parameter.device, parameter.dtype


def _latent_dim(generator: nn.Module) -> int:
    value = getattr(generator, "latent_dim", None)
    if not isinstance(value, int):
        raise TypeError(f"`generator` ({type(generator).__name__}) has no integer `latent_dim`")
    return value


def _detached(cameras: Cameras) -> Cameras:
    return Cameras._trusted(cameras.cam2world.detach(), cameras.intrinsics.detach())


def _expand(cameras: Cameras, count: int) -> Cameras:
    first = cameras[:1, :1]
    return Cameras._trusted(first.cam2world.expand(count, 1, 4, 4),
                            first.intrinsics.expand(count, 1, 3, 3))  # fmt: skip


@torch.no_grad()
def w_statistics(
    generator: nn.Module,
    cameras: Cameras,
    width: int,
    height: int,
    *,
    samples: int = 10000,
    seed: int = 0,
) -> WStatistics:
    """``w_avg`` and ``w_std`` from ``samples`` latents mapped as the generator maps them.

    A camera-conditioned mapping sees the label of ``cameras`` (the target's camera, as EG3D's
    projector does). Latents are drawn on the CPU from ``seed`` (the same on every device).
    """
    styles = styles_of(generator)
    device, dtype = _device_dtype(generator)
    latent_dim = _latent_dim(generator)
    z = torch.randn(samples, latent_dim, generator=torch.Generator().manual_seed(seed))
    z = z.to(device=device, dtype=dtype)
    chunks: list[list[Tensor]] = []
    for start in range(0, samples, 2048):
        part = z[start : start + 2048]
        chunks.append(styles.map_latents(part, _expand(cameras, len(part)), width, height))
    w_avg, w_std = [], []
    for group in range(len(chunks[0])):
        ws = torch.cat([chunk[group] for chunk in chunks]).double()
        mean = ws.mean(dim=0, keepdim=True)
        w_avg.append(mean.to(dtype))
        w_std.append(math.sqrt(float((ws[:, 0] - mean[:, 0]).square().sum()) / samples))
    return WStatistics(w_avg, w_std)


def _check_target(target: object, name: str = "target") -> Tensor:
    if not isinstance(target, Tensor) or not target.is_floating_point():
        raise ValueError(f"`{name}` must be a floating-point tensor [H, W, 3] in [-1, 1]")
    if target.ndim == 4 and target.shape[0] == 1:
        target = target[0]
    if target.ndim != 3 or target.shape[-1] != 3:
        raise ValueError(f"`{name}` must be an image [H, W, 3], got {list(target.shape)}")
    if not bool(torch.isfinite(target).all()):
        raise ValueError(f"`{name}` has NaN or infinite pixels")
    return target


def _check_mask(mask: object, target: Tensor) -> Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, Tensor) or not mask.is_floating_point():
        raise ValueError("`mask` must be a floating-point tensor [H, W] in [0, 1]")
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if tuple(mask.shape) != tuple(target.shape[:2]):
        raise ValueError(
            f"`mask` must be [H, W] = {list(target.shape[:2])}, got {list(mask.shape)}"
        )
    if not bool(torch.isfinite(mask).all()) or bool((mask < 0).any() | (mask > 1).any()):
        raise ValueError("`mask` must hold finite values in [0, 1]")
    if not bool((mask > 0).any()):
        raise ValueError("`mask` selects no pixel")
    return mask[..., None]


def _initial_camera(
    camera: Cameras | CameraGuess | Tensor, refine: Sequence[str]
) -> tuple[Cameras | None, CameraParameters | None]:
    if isinstance(camera, Tensor):
        if camera.shape[-1] != 25:
            raise ValueError(f"`camera` label must be 25 numbers, got {list(camera.shape)}")
        camera = Cameras.from_eg3d_labels(camera.reshape(1, 1, 25).float())
    if isinstance(camera, Cameras):
        if camera.cam2world.reshape(-1, 4, 4).shape[0] != 1:
            raise ValueError(f"`camera` must be one camera, got Cameras {list(camera.shape)}")
        if not refine:
            return camera.reshape(1, 1), None
        camera = CameraGuess.from_cameras(camera)
    if not isinstance(camera, CameraGuess):
        raise TypeError(
            "`camera` must be Cameras, an EG3D label [25] or a CameraGuess, got "
            f"{type(camera).__name__}"
        )
    return None, CameraParameters(camera, refine)


class _Frozen:
    """Eval mode and no parameter gradients for the duration (restored after)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> None:
        self.training = self.module.training
        self.flags = [p.requires_grad for p in self.module.parameters()]
        self.module.eval().requires_grad_(False)

    def __exit__(self, *_: object) -> None:
        self.module.train(self.training)
        for parameter, flag in zip(self.module.parameters(), self.flags, strict=True):
            parameter.requires_grad_(flag)


def _regularizer_terms(generator: nn.Module, out: Any, weights: Mapping[str, float]) -> dict:
    if not weights:
        return {}
    terms = generator.regularizers(out)  # type: ignore[operator]
    unknown = sorted(set(weights) - set(terms))
    if unknown:
        raise ValueError(f"regularizers {unknown} are not the generator's (it has {sorted(terms)})")
    return {name: terms[name] for name in weights}


def project(
    generator: nn.Module,
    target: Tensor,
    camera: Cameras | CameraGuess | Tensor,
    *,
    space: Space = "w+",
    schedule: ProjectorSchedule | None = None,
    loss: LossWeights | None = None,
    lpips: LPIPS | None = None,
    mask: Tensor | None = None,
    refine_camera: Sequence[str] = (),
    statistics: WStatistics | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Projection:
    """Finds the style codes (and optionally the camera) that render ``target``.

    Starts at ``w_avg`` (the mean of mapped latents, :func:`w_statistics`), then optimises one
    code per style group (``space="w"``, broadcast over its layers) or one per layer (``"w+"``)
    with Adam under :class:`ProjectorSchedule`, perturbing the codes with its decaying noise.
    With ``refine_camera`` the named camera parameters (:data:`~aware3d.inversion.camera.
    CAMERA_PARAMETERS`) are optimised jointly, starting from ``camera``.

    The generator is used in eval mode with its parameters frozen (both restored afterwards);
    the result is deterministic under ``seed`` (noise drawn on the CPU).

    Args:
        generator: the generator (see :func:`~aware3d.models.styles.styles_of`).
        target: the image ``[H, W, 3]`` in [-1, 1], rendered at its size.
        camera: the camera: ``Cameras`` with one camera, an EG3D label ``[25]``, or a
            :class:`CameraGuess` (required with ``refine_camera``; a label is turned into one).
        space: ``"w"`` or ``"w+"``.
        schedule: the schedule (default :class:`ProjectorSchedule`).
        loss: the loss weights (default :class:`LossWeights`).
        lpips: the LPIPS network (:func:`~aware3d.inversion.load_lpips`), or ``None``.
        mask: a foreground mask ``[H, W]`` in [0, 1]: only the pixels it weights count.
        refine_camera: camera parameters to optimise.
        statistics: precomputed :func:`w_statistics` (default: computed here).
        seed: seed of the noise and of the latents of :func:`w_statistics`.
        progress: show a progress bar.

    Raises:
        ValueError: a misshapen or non-finite target or mask, an unknown space, camera
            parameter or regulariser name, or a camera the generator cannot render from
            (outside its background sphere) — all before the first step.
    """
    if space not in ("w", "w+"):
        raise ValueError(f"`space` must be 'w' or 'w+', got {space!r}")
    schedule = ProjectorSchedule() if schedule is None else schedule
    weights = LossWeights() if loss is None else loss
    target = _check_target(target)
    mask = _check_mask(mask, target)
    styles: SupportsStyles = styles_of(generator)
    device, dtype = _device_dtype(generator)
    height, width = target.shape[:2]
    target = target.to(device=device, dtype=dtype)[None]
    mask = None if mask is None else mask.to(device=device, dtype=dtype)
    given, parameters = _initial_camera(camera, tuple(refine_camera))
    if parameters is not None:
        parameters = parameters.to(device=device, dtype=dtype)
        cameras = parameters()
    else:
        assert given is not None
        cameras = given.to(device=device, dtype=dtype)
    if isinstance(generator, SupportsCameraCheck):
        generator.check_cameras(_detached(cameras), "camera")
    if lpips is not None:
        lpips = lpips.to(device=device, dtype=dtype)

    start = time.perf_counter()
    with _Frozen(generator):
        if statistics is None:
            statistics = w_statistics(
                generator,
                _detached(cameras),
                width,
                height,
                samples=schedule.w_avg_samples,
                seed=seed,
            )
        groups = styles.style_groups()
        codes = [
            (avg[:, :1] if space == "w" else avg).detach().clone().requires_grad_(True)
            for avg in statistics.w_avg
        ]
        param_groups: list[dict[str, Any]] = [{"params": codes, "base": schedule.learning_rate}]
        if parameters is not None:
            free = [p for p in parameters.parameters() if p.requires_grad]
            param_groups.append({"params": free, "base": schedule.camera_learning_rate})
        optimizer = torch.optim.Adam(param_groups, lr=schedule.learning_rate,
                                     betas=schedule.betas)  # fmt: skip
        noise_source = torch.Generator().manual_seed(seed + 1)
        history: dict[str, list[float]] = {"loss": [], "lr": []}
        bar = tqdm(range(schedule.steps), desc=f"project {space}", disable=not progress,
                   leave=False)  # fmt: skip
        for step in bar:
            t = step / schedule.steps
            lr_scale = schedule.lr_scale(t)
            for group in optimizer.param_groups:
                group["lr"] = group["base"] * lr_scale
            noise_scale = schedule.noise_scale(t)
            ws = []
            for code, std, group in zip(codes, statistics.w_std, groups, strict=True):
                noise = torch.randn(code.shape, generator=noise_source).to(device, dtype)
                ws.append((code + noise * (std * noise_scale)).expand(-1, group.num_ws, -1))
            if parameters is not None:
                cameras = parameters()
            out = styles.synthesize(ws, cameras, width, height)
            total, parts = reconstruction_loss(out.images[:, 0], target, weights, lpips=lpips,
                                               mask=mask)  # fmt: skip
            for name, term in _regularizer_terms(generator, out, weights.regularizers).items():
                parts[name] = term
                total = total + weights.regularizers[name] * term
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            value = float(total.detach())
            history["loss"].append(value)
            history["lr"].append(schedule.learning_rate * lr_scale)
            for name, value in parts.items():
                history.setdefault(name, []).append(float(value.detach()))
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        final = [
            code.detach().expand(-1, group.num_ws, -1).clone()
            for code, group in zip(codes, groups, strict=True)
        ]
        with torch.no_grad():
            if parameters is not None:
                cameras = parameters()
            cameras = _detached(cameras)
            image = styles.synthesize(final, cameras, width, height).images[0, 0]
    return Projection(
        ws=final, cameras=cameras,
        camera=None if parameters is None else parameters.guess(), image=image,
        history=history, seconds=time.perf_counter() - start, space=space,
        group_names=[group.name for group in groups],
    )  # fmt: skip


def _locality_codes(
    styles: SupportsStyles,
    pivot: Sequence[Tensor],
    cameras: Cameras,
    width: int,
    height: int,
    latent_dim: int,
    alpha: float | None,
    source: torch.Generator,
) -> list[Tensor]:
    first = pivot[0]
    z = torch.randn(1, latent_dim, generator=source).to(first.device, first.dtype)
    with torch.no_grad():
        mapped = styles.map_latents(z, cameras, width, height)
    if alpha is None:
        return mapped
    codes = []
    for w_z, w_p in zip(mapped, pivot, strict=True):
        direction = w_z - w_p
        codes.append(w_p + alpha * direction / torch.linalg.vector_norm(direction).clamp_min(1e-12))
    return codes


def pivotal_tuning(
    generator: nn.Module,
    ws: Sequence[Tensor],
    cameras: Cameras,
    target: Tensor,
    *,
    config: PTIConfig | None = None,
    lpips: LPIPS | None = None,
    mask: Tensor | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Tuning:
    """Fine-tunes a copy of ``generator`` so that the pivot ``ws`` renders ``target`` (PTI).

    The original generator is left as it was; its mapping networks are not tuned (the pivot is
    a code, not a latent). See :class:`PTIConfig` for the loss and its locality regulariser.

    Args:
        generator: the generator the pivot was found in.
        ws: the pivot, ``[1, num_ws, D]`` per style group (:attr:`Projection.ws`).
        cameras: the target's ``Cameras [1, 1]``.
        target: the image ``[H, W, 3]`` in [-1, 1].
        config: the tuning's settings (default :class:`PTIConfig`).
        lpips: the LPIPS network, or ``None``.
        mask: a foreground mask ``[H, W]`` in [0, 1].
        seed: seed of the regulariser's latents.
        progress: show a progress bar.
    """
    config = PTIConfig() if config is None else config
    target = _check_target(target)
    mask = _check_mask(mask, target)
    device, dtype = _device_dtype(generator)
    height, width = target.shape[:2]
    target = target.to(device=device, dtype=dtype)[None]
    mask = None if mask is None else mask.to(device=device, dtype=dtype)
    pivot = [code.detach().to(device=device, dtype=dtype) for code in ws]
    cameras = cameras.to(device=device, dtype=dtype)
    if lpips is not None:
        lpips = lpips.to(device=device, dtype=dtype)
    original = styles_of(generator)
    tuned_module = copy.deepcopy(generator).eval().requires_grad_(True)
    tuned = styles_of(tuned_module)
    for group in tuned.style_groups():
        group.mapping.requires_grad_(False)
    trainable = [p for p in tuned_module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=config.learning_rate)
    source = torch.Generator().manual_seed(seed + 2)
    latent_dim = _latent_dim(generator)
    locality_weights = LossWeights(l2=config.locality_l2, lpips=config.locality_lpips)
    history: dict[str, list[float]] = {"loss": [], "pivot": [], "locality": []}
    start = time.perf_counter()
    with _Frozen(generator):
        bar = tqdm(range(config.steps), desc="pivotal tuning", disable=not progress, leave=False)
        for step in bar:
            out = tuned.synthesize(pivot, cameras, width, height)
            total, _ = reconstruction_loss(out.images[:, 0], target, config, lpips=lpips,
                                           mask=mask)  # fmt: skip
            history["pivot"].append(float(total.detach()))
            if config.locality_interval and step % config.locality_interval == 0:
                codes = _locality_codes(original, pivot, cameras, width, height, latent_dim,
                                        config.locality_alpha, source)  # fmt: skip
                with torch.no_grad():
                    reference = original.synthesize(codes, cameras, width, height).images[:, 0]
                moved = tuned.synthesize(codes, cameras, width, height).images[:, 0]
                locality, _ = reconstruction_loss(moved, reference, locality_weights,
                                                  lpips=lpips)  # fmt: skip
                history["locality"].append(float(locality.detach()))
                total = total + locality
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            value = float(total.detach())
            history["loss"].append(value)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
    tuned_module.requires_grad_(False)
    with torch.no_grad():
        image = tuned.synthesize(pivot, cameras, width, height).images[0, 0]
    return Tuning(tuned_module, image, history, time.perf_counter() - start)


@torch.no_grad()
def locality_psnr(
    original: nn.Module,
    tuned: nn.Module,
    cameras: Cameras,
    width: int,
    height: int,
    *,
    count: int = 8,
    seed: int = 1234,
) -> float:
    """Mean PSNR (dB) between the original's and the tuned generator's images of other latents.

    ``count`` latents drawn from ``seed`` (on the CPU), each rendered by both generators from
    ``cameras`` with the same codes (mapped by the original): how little PTI changed the rest of
    the latent space (higher is better; identical images give ``inf``).
    """
    before, after = styles_of(original), styles_of(tuned)
    device, dtype = _device_dtype(original)
    latent_dim = _latent_dim(original)
    z = torch.randn(count, latent_dim, generator=torch.Generator().manual_seed(seed))
    z = z.to(device=device, dtype=dtype)
    cameras = cameras.to(device=device, dtype=dtype)
    with _Frozen(original), _Frozen(tuned):
        codes = before.map_latents(z, _expand(cameras, count), width, height)
        values = []
        for i in range(count):
            one = [code[i : i + 1] for code in codes]
            a = before.synthesize(one, cameras, width, height).images
            b = after.synthesize(one, cameras, width, height).images
            values.append(psnr(a, b))
    return sum(values) / len(values)
