"""Recipe configurations: typed dataclasses of every hyper-parameter, one per released recipe.

A recipe's configuration is a frozen dataclass; :class:`TrainConfig` holds the fields every run
has and each recipe subclasses it with its own defaults (and, for the demo, its own model
fields), citing where the numbers come from. ``aware3d train --recipe NAME --set key=value``
starts from the recipe's default configuration and replaces fields with :func:`apply_overrides`,
which parses each value by the field's annotation and refuses unknown keys. The registry
(:mod:`aware3d.recipes.registry`) stores the resolved configuration beside every checkpoint.

The released numbers are those of GSGAN's (``hse1032/Adversarial-Generation-of-Hierarchical-
Gaussians-for-3D-Generative-Model``: ``train.py``, ``_scripts/train_ffhq{256,512}.sh``,
``training/training_loop.py``) and BallGAN's (``minjung-s/BallGAN``: ``ballgan/train.py`` and its
README's FFHQ command) training code, both built on EG3D's loop. Where a released loop differs
from ours (EG3D's separate lazy-R1 pass is folded into the discriminator step; the
discriminator is :class:`~aware3d.training.CameraConditionedDiscriminator`, not EG3D's
StyleGAN2 ``DualDiscriminator``), the field's documentation says so.
"""

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from aware3d._validation import (
    check_bool,
    check_choice,
    check_nonnegative_int,
    check_nonnegative_number,
    check_positive_int,
    check_positive_number,
)
from aware3d.training.augment import AUGMENTATIONS

__all__ = [
    "GSGANFFHQ256",
    "GSGANFFHQ512",
    "BallGANFFHQ256",
    "DemoRecipe",
    "TrainConfig",
    "apply_overrides",
    "describe",
    "fields_from_json",
]


@dataclass(frozen=True)
class TrainConfig:
    """Fields every training run has. Use a recipe (a subclass), not this class directly.

    Lengths are in images (``kimg``: thousands of images, as in StyleGAN), so a schedule means
    the same at every batch size; one step shows ``batch`` real and ``batch`` generated images
    to the discriminator.

    Attributes:
        recipe: the recipe's name (set by each subclass; not overridable).
        model: the generator, one of :data:`aware3d.recipes.MODELS` (a user's recipe may ignore
            it and build its own).
        resolution: image size (the data are resized to it when they differ).
        batch: global batch: scenes per step over all processes (divided evenly among them).
        kimg: training length in thousands of images (used when ``steps`` is 0).
        steps: training length in steps; 0 means ``ceil(kimg * 1000 / batch)``.
        seed: seed of the models, the data order, the latents and each process's own stream.
        lr_generator: Adam learning rate of the generator.
        lr_discriminator: Adam learning rate of the discriminator.
        betas: Adam's ``(beta1, beta2)`` for both networks.
        adam_eps: Adam's epsilon.
        r1_gamma: R1 weight ``gamma`` (the penalty is ``gamma / 2 * E|grad D(x)|^2``).
        r1_interval: lazy R1: applied every this many steps with weight ``gamma / 2 * interval``.
        lazy_adjust: scale the discriminator's learning rate and betas by
            ``c = interval / (interval + 1)`` (``lr * c``, ``beta ** c``), StyleGAN2's
            compensation for the separate regularisation pass of its lazy R1.
        mbstd_group: minibatch standard-deviation group size of the discriminator (per
            process; StyleGAN2's 4).
        d_channel_base: discriminator channels are ``min(d_channel_base // res, d_channel_max)``.
        d_channel_max: the most channels of a discriminator block.
        d_embed_dim: width of the discriminator's camera projection.
        d_camera_conditioned: condition the discriminator's score on the camera label.
        d_contrastive_dim: width of GSGAN's camera-contrastive branch (0 for none).
        pose_contrastive_weight: weight of GSGAN's camera-contrastive loss (for both networks).
        pose_contrastive_temperature: its temperature ``tau``.
        blur_sigma: initial std (pixels) of the blur on every image the discriminator sees
            (EG3D: 10); 0 for none. It fades linearly to 0 over ``blur_fade_kimg``.
        blur_fade_kimg: length of the blur fade.
        ema_kimg: half-life of the generator's EMA in kimg (StyleGAN2: ``batch * 10 / 32``).
        ema_rampup: the half-life is at most ``ema_rampup * images seen`` (0 for none).
        swap_probability: final probability of conditioning the generator's mapping on
            another scene's camera (EG3D/GSGAN ``gpc_reg_prob``); 0 with ``swap_fade_kimg=0``
            never swaps.
        swap_fade_kimg: the probability fades from 1 to ``swap_probability`` over this length.
        separation_weight: weight of BallGAN's separation loss (background transmittance).
        separation_ramp: multiply it by BallGAN's ramp ``exp(n / 5000) / 20`` below 15k images.
        foreground_loss_weight: weight of the generator's foreground regulariser: ``distortion``
            (the splat distortion loss of the Gaussian generators) and ``density`` (BallGAN's
            density loss), whichever the generator returns.
        foreground_loss_ramp: multiply it by the same ramp.
        knn_weight: weight of GSGAN's k-NN regulariser of the level-0 anchors.
        knn_neighbours: its ``k``.
        centre_weight: weight of GSGAN's centre regulariser of the level-0 anchors.
        augment: DiffAugment transforms on every image the discriminator sees.
        workers: data-loader worker processes per training process.
        checkpoint_kimg: write a checkpoint every this many kimg (and at the end).
        keep_checkpoints: how many of the newest checkpoints to keep.
        log_every: record the losses (one device synchronisation) every this many steps.
        image_kimg: write an image grid of the EMA generator every this many kimg.
        metric_kimg: evaluate the EMA generator every this many kimg (0: only at the end).
        metric_images: generated and real images for the metrics (SWD, and FID/KID when the
            Inception weights are present).
        fake_uniform_probability: the share of fake cameras drawn from the pose sampler below
            instead of the data's own poses (GSGAN's ``prob_uniform``: 0.5 for FFHQ, 0 for
            AFHQ); 0 renders fakes from the data's poses only. Used by recipes whose
            ``fake_labels`` is :func:`~aware3d.recipes.builders.build_fake_labels`.
        fake_horizontal_mean: the sampler's mean horizontal angle (EG3D's convention, radians;
            pi/2 is frontal). ``aware3d data check`` prints the data's own.
        fake_horizontal_stddev: its standard deviation (``gaussian``) or half-width
            (``uniform``), radians.
        fake_horizontal_type: ``"gaussian"`` or ``"uniform"``.
        fake_vertical_mean: the mean vertical angle (radians; pi/2 is level).
        fake_vertical_stddev: its standard deviation or half-width, radians.
        fake_vertical_type: ``"gaussian"`` or ``"uniform"``.
        fake_radius: the sampled cameras' distance from the origin.
        fake_lookat: the point the sampled cameras look at (GSGAN's sampler: the origin).
            The defaults of the six sampler fields are GSGAN's FFHQ statistics as released
            (``train.py``: horizontal Gaussian of 3.14 * 16.61 / 180, vertical uniform of
            half-width 3 * 3.14 * 7.44 / 180 around 3.14 / 2 - 5.16 degrees, radius 2.7);
            each sampled camera keeps the intrinsics of a data camera drawn at random.
    """

    recipe: ClassVar[str] = ""
    model: str = "demo"
    resolution: int = 32
    batch: int = 8
    kimg: float = 8.0
    steps: int = 0
    seed: int = 0
    lr_generator: float = 0.0025
    lr_discriminator: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    adam_eps: float = 1e-8
    r1_gamma: float = 1.0
    r1_interval: int = 16
    lazy_adjust: bool = True
    mbstd_group: int = 4
    d_channel_base: int = 32768
    d_channel_max: int = 512
    d_embed_dim: int = 128
    d_camera_conditioned: bool = True
    d_contrastive_dim: int = 0
    pose_contrastive_weight: float = 0.0
    pose_contrastive_temperature: float = 0.1
    blur_sigma: float = 10.0
    blur_fade_kimg: float = 200.0
    ema_kimg: float = 10.0
    ema_rampup: float = 0.05
    swap_probability: float = 0.5
    swap_fade_kimg: float = 1000.0
    separation_weight: float = 0.0
    separation_ramp: bool = False
    foreground_loss_weight: float = 0.0
    foreground_loss_ramp: bool = False
    knn_weight: float = 0.0
    knn_neighbours: int = 64
    centre_weight: float = 0.0
    augment: tuple[str, ...] = ()
    workers: int = 2
    checkpoint_kimg: float = 200.0
    keep_checkpoints: int = 3
    log_every: int = 10
    image_kimg: float = 200.0
    metric_kimg: float = 0.0
    metric_images: int = 2000
    fake_uniform_probability: float = 0.0
    fake_horizontal_mean: float = 3.14 / 2
    fake_horizontal_stddev: float = 3.14 * 16.610813365115508 / 180
    fake_horizontal_type: str = "gaussian"
    fake_vertical_mean: float = 3.14 / 2 - 5.159614799787766 / 180 * 3.14
    fake_vertical_stddev: float = 3.14 * 7.440431327985016 / 180 * 3
    fake_vertical_type: str = "uniform"
    fake_radius: float = 2.7
    fake_lookat: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        for name in ("resolution", "batch", "r1_interval", "mbstd_group", "d_channel_base",
                     "d_channel_max", "d_embed_dim", "knn_neighbours", "keep_checkpoints",
                     "log_every", "metric_images"):  # fmt: skip
            check_positive_int(name, getattr(self, name))
        for name in ("steps", "seed", "workers", "d_contrastive_dim"):
            check_nonnegative_int(name, getattr(self, name))
        for name in ("lr_generator", "lr_discriminator", "adam_eps", "ema_kimg",
                     "checkpoint_kimg", "image_kimg", "pose_contrastive_temperature"):  # fmt: skip
            check_positive_number(name, getattr(self, name))
        for name in ("kimg", "r1_gamma", "blur_sigma", "blur_fade_kimg", "ema_rampup",
                     "swap_fade_kimg", "separation_weight", "foreground_loss_weight",
                     "knn_weight", "centre_weight", "pose_contrastive_weight",
                     "metric_kimg"):  # fmt: skip
            check_nonnegative_number(name, getattr(self, name))
        for name in ("lazy_adjust", "d_camera_conditioned", "separation_ramp",
                     "foreground_loss_ramp"):  # fmt: skip
            check_bool(name, getattr(self, name))
        if self.steps == 0 and self.kimg == 0:
            raise ValueError("set a training length: `kimg` > 0 or `steps` > 0")
        if self.resolution & (self.resolution - 1) or not 16 <= self.resolution <= 512:
            raise ValueError(f"`resolution` must be a power of two in [16, 512], got "
                             f"{self.resolution}")  # fmt: skip
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"`betas` must be two numbers in [0, 1), got {self.betas!r}")
        if not 0.0 <= self.swap_probability <= 1.0:
            raise ValueError(f"`swap_probability` must be in [0, 1], got {self.swap_probability}")
        unknown = [name for name in self.augment if name not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"`augment` must hold names from {AUGMENTATIONS}, got {unknown}")
        if self.pose_contrastive_weight > 0 and self.d_contrastive_dim == 0:
            raise ValueError("`pose_contrastive_weight` > 0 needs `d_contrastive_dim` > 0")
        self._check_fake_sampler()

    def _check_fake_sampler(self) -> None:
        if not 0.0 <= self.fake_uniform_probability <= 1.0:
            raise ValueError(f"`fake_uniform_probability` must be in [0, 1], got "
                             f"{self.fake_uniform_probability}")  # fmt: skip
        check_nonnegative_number("fake_horizontal_stddev", self.fake_horizontal_stddev)
        check_nonnegative_number("fake_vertical_stddev", self.fake_vertical_stddev)
        check_positive_number("fake_radius", self.fake_radius)
        check_choice("fake_horizontal_type", self.fake_horizontal_type, ("gaussian", "uniform"))
        check_choice("fake_vertical_type", self.fake_vertical_type, ("gaussian", "uniform"))
        if len(self.fake_lookat) != 3 or not all(math.isfinite(v) for v in self.fake_lookat):
            raise ValueError(f"`fake_lookat` must be 3 finite numbers, got {self.fake_lookat!r}")

    @property
    def total_steps(self) -> int:
        """The number of training steps: ``steps``, or ``ceil(kimg * 1000 / batch)``."""
        return self.steps or max(1, math.ceil(self.kimg * 1000 / self.batch))

    def every(self, kimg: float) -> int:
        """A period in kimg as a whole number of steps (at least 1)."""
        return max(1, round(kimg * 1000 / self.batch))


@dataclass(frozen=True)
class DemoRecipe(TrainConfig):
    """The demo's model and settings (what ``aware3d demo`` trains).

    Source: this library's demo, tuned on its synthetic scenes (see the demo page): a small
    Gaussian generator against a small camera-conditioned discriminator at 32 px, non-lazy
    compensation off, no blur, no pose swap, BallGAN's separation loss and the splat distortion
    loss at 0.1. Runs on a laptop CPU; synthetic data when ``--data`` is absent.

    Attributes:
        demo_model: which generator ``model="demo"`` builds: ``"demo"`` (the demo's own),
            ``"gsgan"`` or ``"ballgan"`` (the CPU-sized assemblies), as ``aware3d demo --model``.
        z_dim: latent width.
        w_dim: style width.
        decoder_levels: levels of the small hierarchical decoder.
        decoder_blocks: ``"window"`` or ``"gsgan"`` token network.
        initial_radius: radius of the ball the level-0 anchors start in (window network).
        background_freqs: octaves of the background's direction encoding.
        synthetic_images: images of the synthetic data set used without ``--data``.
    """

    recipe: ClassVar[str] = "demo"
    model: str = "demo"
    resolution: int = 32
    batch: int = 8
    kimg: float = 8.0
    lr_generator: float = 0.0025
    lr_discriminator: float = 0.001
    r1_gamma: float = 20.0
    r1_interval: int = 4
    lazy_adjust: bool = False
    d_channel_base: int = 2048
    d_channel_max: int = 64
    d_embed_dim: int = 64
    blur_sigma: float = 0.0
    blur_fade_kimg: float = 0.0
    ema_kimg: float = 2.0
    ema_rampup: float = 0.25
    swap_probability: float = 0.0
    swap_fade_kimg: float = 0.0
    separation_weight: float = 0.1
    foreground_loss_weight: float = 0.1
    workers: int = 0
    checkpoint_kimg: float = 2.0
    image_kimg: float = 2.0
    metric_kimg: float = 0.0
    metric_images: int = 128
    log_every: int = 25
    demo_model: str = "demo"
    z_dim: int = 64
    w_dim: int = 64
    decoder_levels: int = 3
    decoder_blocks: str = "window"
    initial_radius: float = 0.2
    background_freqs: int = 2
    synthetic_images: int = 2048

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("demo_model", self.demo_model, ("demo", "gsgan", "ballgan"))
        check_choice("decoder_blocks", self.decoder_blocks, ("window", "gsgan"))
        for name in ("z_dim", "w_dim", "decoder_levels", "synthetic_images"):
            check_positive_int(name, getattr(self, name))
        check_nonnegative_int("background_freqs", self.background_freqs)
        check_positive_number("initial_radius", self.initial_radius)
        if self.model != "demo":
            raise ValueError(
                f"the demo recipe builds `model='demo'` (choose the generator with `demo_model`), "
                f"got {self.model!r}"
            )


@dataclass(frozen=True)
class GSGANFFHQ256(TrainConfig):
    """GSGAN on FFHQ at 256 px, as released.

    Source: GSGAN ``_scripts/train_ffhq256.sh`` (batch 32 on 4 GPUs, 15,000 kimg, gamma 1,
    ``gpc_reg_prob`` 0.5, ``blur_fade_kimg`` 200, ``center_dists`` 1.0, ``prob_uniform`` 0.5:
    half the fakes from the pose sampler, half from the data's poses) and ``train.py``
    (Adam betas (0, 0.99), eps 1e-8, G lr 0.0025, D lr 0.002, ``ema_kimg = batch * 10 / 32``,
    blur sigma 10, ``gpc_reg_fade_kimg`` 1000, ``knn_dists`` 10 with 64 neighbours,
    ``pose_contrastive`` 1.0, a single-image discriminator whose only camera input is the
    contrastive branch); ``training/training_loop.py`` (``D_reg_interval`` 16, ``ema_rampup``
    0.05, lazy-regularisation lr/beta compensation). Snapshots every 50 ticks of 4 kimg.
    """

    recipe: ClassVar[str] = "gsgan-ffhq256"
    model: str = "gsgan-ffhq256"
    resolution: int = 256
    batch: int = 32
    kimg: float = 15000.0
    d_camera_conditioned: bool = False
    d_contrastive_dim: int = 64
    pose_contrastive_weight: float = 1.0
    knn_weight: float = 10.0
    centre_weight: float = 1.0
    fake_uniform_probability: float = 0.5
    workers: int = 3
    metric_kimg: float = 200.0


@dataclass(frozen=True)
class GSGANFFHQ512(GSGANFFHQ256):
    """GSGAN on FFHQ at 512 px, as released.

    Source: GSGAN ``_scripts/train_ffhq512.sh`` (batch 32 on 8 GPUs, ``res_end`` 256, neural
    rendering resolution 512, otherwise the 256 px script's settings); the generator is
    :func:`~aware3d.nn.gsgan_decoder_512`.
    """

    recipe: ClassVar[str] = "gsgan-ffhq512"
    model: str = "gsgan-ffhq512"
    resolution: int = 512


@dataclass(frozen=True)
class BallGANFFHQ256(TrainConfig):
    """BallGAN on FFHQ at 256 px (tri-plane foreground, spherical background), as released.

    Source: BallGAN's README command (``--cfg=ffhq --gpus=8 --batch=32 --gamma=1
    --gen_pose_cond=True``) and ``ballgan/train.py`` defaults (25,000 kimg, G lr 0.0025,
    D lr 0.002, betas (0, 0.99), blur sigma 10 over 200 kimg, ``gpc_reg_prob`` 0.5 over 1000
    kimg, neural rendering at 64 px, EG3D's dual discriminator). Its regulariser weights
    (``bg_transmittance_reg``, ``fg_density_reg``, ``density_reg``) all default to 0 and the
    README's commands set none, so the separation and density losses are 0 here; set them with
    ``--set separation_weight=... --set foreground_loss_weight=...`` (and the ``*_ramp``
    switches for BallGAN's ``exp(n / 5000) / 20`` schedule).
    """

    recipe: ClassVar[str] = "ballgan-ffhq256"
    model: str = "ballgan-ffhq256"
    resolution: int = 256
    batch: int = 32
    kimg: float = 25000.0
    workers: int = 3
    checkpoint_kimg: float = 80.0
    metric_kimg: float = 80.0


def _field_types(cls: type[TrainConfig]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse_scalar(text: str, kind: Any, key: str) -> Any:
    text = text.strip()
    if kind is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"--set {key}: expected true or false, got {text!r}")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"--set {key}: expected an integer, got {text!r}") from None
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--set {key}: expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"--set {key}: expected a finite number, got {text!r}")
        return value
    if kind is str:
        return text
    raise TypeError(f"--set {key}: fields of type {kind} cannot be set from the command line")


def _parse_value(text: str, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is tuple:
        args = typing.get_args(annotation)
        items = [part for part in text.split(",") if part.strip()] if text.strip() else []
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_parse_scalar(item, args[0], key) for item in items)
        if len(items) != len(args):
            raise ValueError(
                f"--set {key}: expected {len(args)} comma-separated values, got {text!r}"
            )
        return tuple(_parse_scalar(item, kind, key) for item, kind in zip(items, args, strict=True))
    if origin in (types.UnionType, typing.Union):
        raise TypeError(f"--set {key}: union fields are not supported")
    return _parse_scalar(text, annotation, key)


def apply_overrides(config: TrainConfig, overrides: Sequence[str]) -> TrainConfig:
    """``config`` with ``key=value`` overrides applied, each parsed by its field's type.

    Integers, numbers, booleans (``true``/``false``), strings, and tuples as comma-separated
    values (``betas=0,0.99``; ``augment=color,translation``; ``augment=`` for none). The
    recipe's own checks then run on the result.

    Raises:
        ValueError: for an item without ``=``, a key the recipe does not have (listing the
            valid keys), a key given twice, a value of the wrong type, or a resulting config
            that fails the recipe's checks.
    """
    fields = {f.name for f in dataclasses.fields(config)}
    types_ = _field_types(type(config))
    changes: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"--set {key}: the {type(config).recipe!r} recipe has no field {key!r}{hint}; "
                f"valid keys: {', '.join(sorted(fields))}"
            )
        if key in changes:
            raise ValueError(f"--set {key} is given twice")
        changes[key] = _parse_value(text, types_[key], key)
    return dataclasses.replace(config, **changes)


def fields_from_json(cls: type[TrainConfig], fields: object, name: str) -> TrainConfig:
    """Rebuilds a configuration of ``cls`` from its JSON fields (tuples restored, checks re-run).

    Raises:
        ValueError: for fields that are not an object, or fields the recipe does not have.
    """
    if not isinstance(fields, dict):
        raise ValueError("the config has no 'fields' object")
    types_ = _field_types(cls)
    unknown = sorted(set(fields) - set(types_))
    if unknown:
        raise ValueError(f"the {name!r} recipe has no fields {unknown}")
    values: dict[str, Any] = {
        key: tuple(value) if typing.get_origin(types_[key]) is tuple else value
        for key, value in fields.items()
    }
    return cls(**values)


def describe(config: TrainConfig) -> str:
    """The resolved config as indented JSON (printed at the start of a run)."""
    return json.dumps(
        {"recipe": type(config).recipe, "fields": dataclasses.asdict(config)}, indent=2
    )
