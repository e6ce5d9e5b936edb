"""``aware3d invert IMAGE... --checkpoint CKPT``: photos into a generator, then their 3D scenes.

Every argument is checked, and every image, label and weights file read, before any
optimisation starts; each problem is an argparse error naming the argument. Each image's outputs
are written into a staging folder inside ``--out`` and moved to ``OUT/<image stem>/`` only when
all are written, so an interrupted inversion leaves no half-written folder.
"""

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aware3d._cli_types import device, nonnegative_int, positive_int

#: The files ``aware3d invert`` writes per image (``generator.safetensors`` only after PTI,
#: ``scene.ply`` only for a generator with ``export_ply``, ``turntable.mp4`` only with an MP4
#: encoder).
INVERT_FILES = (
    "latent.safetensors",
    "generator.safetensors",
    "figure.png",
    "turntable.gif",
    "turntable.mp4",
    "depth.png",
    "opacity.png",
    "scene.ply",
    "metrics.json",
)
#: Image files read as pictures; ``.npy`` holds float ``[H, W, 3]`` in [0, 1].
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_CAMERA_KEYS = ("yaw", "pitch", "radius", "focal", "lookat")


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _label(text: str) -> list[float]:
    parts = text.replace(",", " ").split()
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 25 numbers, got {text!r}") from None
    if len(values) != 25 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"expected 25 finite numbers (the flattened 4x4 cam2world, then the 3x3 normalised "
            f"intrinsics), got {len(values)}"
        )
    return values


def _camera(text: str) -> dict[str, Any]:
    from aware3d.inversion import CameraGuess

    given: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in _CAMERA_KEYS or not value:
            raise argparse.ArgumentTypeError(
                f"expected KEY=VALUE items from {', '.join(_CAMERA_KEYS)} separated by commas "
                f"(lookat as X:Y:Z), got {item!r}"
            )
        try:
            if key == "lookat":
                point = tuple(float(v) for v in value.split(":"))
                if len(point) != 3:
                    raise ValueError
                given[key] = point
            else:
                given[key] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key}: not a number (or X:Y:Z), {value!r}") from None
    try:
        CameraGuess(**given)
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return given


def _refine(text: str) -> tuple[str, ...]:
    from aware3d.inversion import CAMERA_PARAMETERS

    if text == "none":
        return ()
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in CAMERA_PARAMETERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected 'none' or names from {', '.join(CAMERA_PARAMETERS)} separated by commas, "
            f"got {text!r}"
        )
    return names


def add_invert_parser(commands: argparse._SubParsersAction) -> None:
    """Adds ``aware3d invert`` to the ``aware3d`` command's subparsers."""
    invert = commands.add_parser(
        "invert",
        help="invert photos into a checkpoint's generator: latent, tuned generator, novel views",
        description="Projects each IMAGE into the generator of --checkpoint (W or W+ from w_avg, "
        "StyleGAN2's projector schedule), optionally refines the camera and runs pivotal tuning, "
        "then writes OUT/<image stem>/: latent.safetensors, generator.safetensors (after PTI), "
        "figure.png (input / reconstruction / error), turntable.gif (and .mp4 with an encoder), "
        "depth.png, opacity.png, scene.ply (3DGS Gaussians; points for tri-planes) and "
        "metrics.json. Images are RGB "
        "pictures or .npy float [H, W, 3] in [0, 1], square; another size is resized to the "
        "model's resolution with a note.",
    )
    invert.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="images to invert")
    invert.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="an aware3d checkpoint or run folder, or a converted released model",
    )
    camera = invert.add_mutually_exclusive_group()
    camera.add_argument(
        "--label",
        type=_label,
        default=None,
        help="the camera as an EG3D label: 25 numbers (one image)",
    )
    camera.add_argument(
        "--dataset-json",
        type=Path,
        default=None,
        help="an EG3D dataset.json whose labels hold every image's camera",
    )
    camera.add_argument(
        "--camera",
        type=_camera,
        default=None,
        help="a rough camera to refine: yaw=DEG,pitch=DEG,radius=R,focal=F,"
        "lookat=X:Y:Z (any subset; FFHQ's values otherwise)",
    )
    invert.add_argument(
        "--refine-camera",
        type=_refine,
        default=None,
        help="camera parameters to refine, comma-separated from yaw, pitch, "
        "radius, lookat, focal, or 'none' (default: yaw,pitch with --camera, "
        "none with a label)",
    )
    invert.add_argument("--space", choices=("w", "w+"), default="w+", help="latent space")
    invert.add_argument(
        "--steps",
        type=nonnegative_int,
        default=1000,
        help="projection steps (default: %(default)s, StyleGAN2's)",
    )
    invert.add_argument(
        "--pti-steps",
        type=nonnegative_int,
        default=0,
        help="pivotal tuning steps after the projection (PTI: 350; default 0)",
    )
    invert.add_argument(
        "--lr",
        type=_nonnegative_float,
        default=0.1,
        help="peak learning rate of the projection (default: %(default)s)",
    )
    invert.add_argument(
        "--pti-lr",
        type=_nonnegative_float,
        default=3e-4,
        help="learning rate of pivotal tuning (default: %(default)s)",
    )
    invert.add_argument("--l1", type=_nonnegative_float, default=0.0, help="L1 weight")
    invert.add_argument("--l2", type=_nonnegative_float, default=1.0, help="L2 weight")
    invert.add_argument(
        "--lpips",
        type=_nonnegative_float,
        default=0.0,
        help="LPIPS weight (> 0 needs --vgg16 and --lpips-weights)",
    )
    invert.add_argument(
        "--vgg16",
        type=Path,
        default=None,
        help="torchvision VGG16 state dict (e.g. vgg16-397923af.pth)",
    )
    invert.add_argument(
        "--lpips-weights",
        type=Path,
        default=None,
        help="the LPIPS linear weights (LPIPS's weights/v0.1/vgg.pth)",
    )
    invert.add_argument(
        "--mask",
        type=Path,
        default=None,
        help="a foreground mask picture (white counts), the size of the image",
    )
    invert.add_argument("--frames", type=positive_int, default=24, help="turntable frames")
    invert.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    invert.add_argument("--device", type=device, default="cpu", help="cpu or cuda[:N]")
    invert.add_argument(
        "--out", type=Path, default=Path("out/invert"), help="output folder (default: %(default)s)"
    )
    invert.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier inversion of the same image in --out",
    )
    invert.add_argument("--no-progress", action="store_true", help="no progress bar")
    invert.set_defaults(handler=lambda args, _parser: _invert(args, invert))


@dataclass
class _Job:
    image: Path
    target: Any  # [H, W, 3] in [-1, 1]
    mask: Any
    camera: Any  # Cameras, or CameraGuess
    folder: Path


def _load_model(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[Any, int]:
    from aware3d.recipes import is_converted, load_converted, load_generator

    try:
        if is_converted(args.checkpoint):
            model = load_converted(args.checkpoint, args.device)
            generator, resolution = model.generator_ema, model.resolution
        else:
            generator, _, config, _ = load_generator(args.checkpoint, args.device)
            resolution = config.resolution
    except (FileNotFoundError, ValueError, KeyError, TypeError) as error:
        parser.error(f"argument --checkpoint: {error}")
    from aware3d.models.protocol import check_generator
    from aware3d.models.styles import styles_of

    try:
        check_generator(generator)
        styles_of(generator)
    except TypeError as error:
        parser.error(f"argument --checkpoint: not a generator aware3d can invert: {error}")
    return generator, int(resolution)


def _read_image(path: Path, resolution: int, parser: argparse.ArgumentParser) -> Any:
    import numpy as np
    import torch
    from PIL import Image

    if not path.is_file():
        parser.error(f"argument IMAGE: {path} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            parser.error(f"argument IMAGE: {path}: cannot read ({error})")
        if array.ndim != 3 or array.shape[-1] != 3 or array.dtype.kind != "f":
            parser.error(
                f"argument IMAGE: {path}: a .npy image must be float [H, W, 3] in [0, 1], got "
                f"{array.dtype} {list(array.shape)}"
            )
        if not np.isfinite(array).all():
            parser.error(f"argument IMAGE: {path} has NaN or infinite pixels")
        image = torch.from_numpy(array.astype(np.float32))
    else:
        try:
            picture = Image.open(path)
            picture.load()
        except OSError as error:
            parser.error(f"argument IMAGE: {path}: not a readable picture ({error})")
        if picture.mode not in ("RGB", "L"):
            parser.error(
                f"argument IMAGE: {path} is {picture.mode} ({len(picture.getbands())} channels); "
                "the generator takes RGB (pass an RGB picture, and a foreground as --mask)"
            )
        if picture.mode == "L":
            print(f"note: {path} is greyscale; inverted as RGB", file=sys.stderr)
            picture = picture.convert("RGB")
        image = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)
    height, width = image.shape[:2]
    if height != width:
        parser.error(
            f"argument IMAGE: {path} is {width} x {height}; the model takes square images of "
            f"{resolution} x {resolution} (crop it first)"
        )
    if height != resolution:
        print(
            f"note: {path} is {width} x {height}; resized to the model's {resolution} x "
            f"{resolution}",
            file=sys.stderr,
        )
        resized = torch.nn.functional.interpolate(
            image.permute(2, 0, 1)[None],
            size=(resolution, resolution),
            mode="bicubic",
            antialias=True,
            align_corners=False,
        )
        image = resized[0].permute(1, 2, 0).clamp(0, 1)
    return image * 2 - 1


def _read_mask(path: Path, size: int, parser: argparse.ArgumentParser) -> Any:
    import numpy as np
    import torch
    from PIL import Image

    try:
        picture = Image.open(path).convert("L")
    except OSError as error:
        parser.error(f"argument --mask: {path}: not a readable picture ({error})")
    if picture.size != (size, size):
        picture = picture.resize((size, size), Image.Resampling.BILINEAR)
    mask = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)
    if not bool((mask > 0).any()):
        parser.error(f"argument --mask: {path} selects no pixel (all black)")
    return mask


def _dataset_labels(path: Path, parser: argparse.ArgumentParser) -> dict[str, list[float]]:
    try:
        document = json.loads(path.read_text())
        labels = document["labels"]
        table = {str(name): [float(v) for v in label] for name, label in labels}
    except (OSError, ValueError, KeyError, TypeError) as error:
        parser.error(f"argument --dataset-json: {path}: not an EG3D dataset.json ({error})")
    return table


def _label_for(image: Path, table: dict[str, list[float]], parser: argparse.ArgumentParser) -> Any:
    for key in (image.as_posix(), image.name):
        if key in table:
            return table[key]
    matches = [name for name in table if Path(name).name == image.name]
    if len(matches) == 1:
        return table[matches[0]]
    parser.error(f"argument --dataset-json: no label for {image.name}")


def _cameras_from_label(values: Any, argument: str, parser: argparse.ArgumentParser) -> Any:
    import torch

    from aware3d.cameras import Cameras

    label = torch.tensor(values, dtype=torch.float32)
    if label.shape != (25,) or not bool(torch.isfinite(label).all()):
        parser.error(f"argument {argument}: a label must be 25 finite numbers")
    try:
        return Cameras.from_eg3d_labels(label.reshape(1, 1, 25))
    except ValueError as error:
        parser.error(f"argument {argument}: not a rigid camera: {error}")


def _prepare(
    args: argparse.Namespace, parser: argparse.ArgumentParser, generator: Any, resolution: int
) -> list[_Job]:
    from aware3d.inversion import CameraGuess
    from aware3d.models.protocol import SupportsCameraCheck

    if args.label is None and args.dataset_json is None and args.camera is None:
        parser.error(
            "one of --label, --dataset-json or --camera is required (without a pose, "
            "give --camera with a rough guess, e.g. --camera yaw=0,pitch=0)"
        )
    if args.label is not None and len(args.images) > 1:
        parser.error("argument --label: one label for several images; use --dataset-json")
    stems = [image.stem for image in args.images]
    if len(set(stems)) != len(stems):
        parser.error("argument IMAGE: two images share a name; their outputs would collide")
    table = None if args.dataset_json is None else _dataset_labels(args.dataset_json, parser)
    jobs = []
    for image in args.images:
        target = _read_image(image, resolution, parser)
        mask = None if args.mask is None else _read_mask(args.mask, resolution, parser)
        if args.camera is not None:
            camera: Any = CameraGuess(**args.camera)
            argument = "--camera"
        else:
            argument = "--label" if args.label is not None else "--dataset-json"
            values = args.label if table is None else _label_for(image, table, parser)
            camera = _cameras_from_label(values, argument, parser)
        if isinstance(generator, SupportsCameraCheck):
            cameras = camera.cameras() if isinstance(camera, CameraGuess) else camera
            try:
                generator.check_cameras(cameras.to(args.device), argument)
            except ValueError as error:
                parser.error(f"argument {argument}: {error}")
        folder = args.out / image.stem
        if folder.exists() and not args.overwrite:
            parser.error(
                f"argument --out: {folder} exists (an earlier inversion); pass "
                "--overwrite to replace it"
            )
        jobs.append(_Job(image, target, mask, camera, folder))
    return jobs


def _load_perceptual(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    if args.lpips <= 0:
        return None
    if args.vgg16 is None or args.lpips_weights is None:
        missing = "--vgg16" if args.vgg16 is None else "--lpips-weights"
        parser.error(
            f"argument {missing}: --lpips needs the VGG16 weights (--vgg16, torchvision's "
            "vgg16-397923af.pth) and the LPIPS linear weights (--lpips-weights, LPIPS's "
            "weights/v0.1/vgg.pth); nothing is downloaded"
        )
    from aware3d.inversion import load_lpips

    try:
        return load_lpips(
            args.vgg16,
            args.lpips_weights,
            vgg16_argument="--vgg16",
            linear_argument="--lpips-weights",
        )
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))


def _invert(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    generator, resolution = _load_model(args, parser)
    lpips = _load_perceptual(args, parser)
    jobs = _prepare(args, parser, generator, resolution)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"argument --out: {error}")
    if not os.access(args.out, os.W_OK | os.X_OK):
        parser.error(f"argument --out: {args.out} is not writable")
    for job in jobs:
        metrics = _invert_one(args, job, generator, resolution, lpips)
        print(f"{job.image}: PSNR {metrics['psnr']:.2f} dB -> {job.folder}/")


def _invert_one(
    args: argparse.Namespace, job: _Job, generator: Any, resolution: int, lpips: Any
) -> dict[str, Any]:
    from aware3d.inversion import (
        LossWeights,
        ProjectorSchedule,
        PTIConfig,
        locality_psnr,
        pivotal_tuning,
        project,
        psnr,
    )

    refine = args.refine_camera
    if refine is None:
        refine = ("yaw", "pitch") if args.camera is not None else ()
    progress = not args.no_progress
    loss = LossWeights(l1=args.l1, l2=args.l2, lpips=args.lpips)
    projection = project(
        generator,
        job.target,
        job.camera,
        space=args.space,
        schedule=ProjectorSchedule(steps=args.steps, learning_rate=args.lr),
        loss=loss,
        lpips=lpips,
        mask=job.mask,
        refine_camera=refine,
        seed=args.seed,
        progress=progress,
    )
    target = job.target.to(projection.image.device)
    mask = None if job.mask is None else job.mask.to(target.device)[..., None]
    metrics: dict[str, Any] = {
        "image": str(job.image),
        "checkpoint": str(args.checkpoint),
        "space": args.space,
        "steps": args.steps,
        "resolution": resolution,
        "seed": args.seed,
        "projection": {
            "psnr": psnr(projection.image, target, mask),
            "seconds": projection.seconds,
            "final_loss": projection.history["loss"][-1] if args.steps else None,
        },
        "camera": {
            "label": projection.cameras.to_eg3d_labels().reshape(25).tolist(),
            "refined": list(refine),
        },
    }
    if projection.camera is not None:
        metrics["camera"]["refined_guess"] = vars(projection.camera) | {
            "lookat": list(projection.camera.lookat)
        }
    final_generator, image = generator, projection.image
    if args.pti_steps > 0:
        tuning = pivotal_tuning(
            generator,
            projection.ws,
            projection.cameras,
            job.target,
            config=PTIConfig(
                steps=args.pti_steps,
                learning_rate=args.pti_lr,
                l1=args.l1,
                l2=args.l2,
                lpips=args.lpips,
            ),
            lpips=lpips,
            mask=job.mask,
            seed=args.seed,
            progress=progress,
        )
        final_generator, image = tuning.generator, tuning.image
        metrics["pti"] = {
            "steps": args.pti_steps,
            "psnr": psnr(image, target, mask),
            "seconds": tuning.seconds,
            "locality_psnr": locality_psnr(
                generator, tuning.generator, projection.cameras, resolution, resolution
            ),
        }
    metrics["psnr"] = psnr(image, target, mask)
    _write_outputs(args, job, final_generator, projection, image, metrics, resolution)
    return metrics


def _write_outputs(
    args: argparse.Namespace,
    job: _Job,
    generator: Any,
    projection: Any,
    image: Any,
    metrics: dict[str, Any],
    resolution: int,
) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{job.folder.name}.", suffix=".partial", dir=args.out))
    try:
        _write_files(staging, args, job, generator, projection, image, metrics, resolution)
        if job.folder.exists():
            old = job.folder.with_name(f".{job.folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            job.folder.rename(old)
            staging.rename(job.folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(job.folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_files(
    folder: Path,
    args: argparse.Namespace,
    job: _Job,
    generator: Any,
    projection: Any,
    image: Any,
    metrics: dict[str, Any],
    resolution: int,
) -> None:
    import numpy as np
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    from aware3d.cameras import Cameras, orbit
    from aware3d.inversion import CameraGuess, save_latent
    from aware3d.models import SupportsPLYExport
    from aware3d.models.styles import styles_of
    from aware3d.viz import depth_to_grey, to_uint8

    save_latent(
        folder / "latent.safetensors",
        projection.ws,
        projection.group_names,
        projection.cameras,
        space=projection.space,
    )
    if args.pti_steps > 0:
        state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
        save_file(
            state,
            str(folder / "generator.safetensors"),
            metadata={"format": "aware3d-tuned-generator", "checkpoint": str(args.checkpoint)},
        )

    target = job.target.to(image.device)
    error = (image - target).abs().mean(dim=-1, keepdim=True).expand(-1, -1, 3) - 1
    panels = to_uint8(torch.stack([target, image, error.clamp(-1, 1)]))
    strip = np.concatenate(list(panels), axis=1)
    scale = 2 if resolution < 128 else 1
    picture = Image.fromarray(strip)
    picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST).save(
        folder / "figure.png"
    )

    styles = styles_of(generator)
    cameras = projection.cameras
    with torch.no_grad():
        out = styles.synthesize(projection.ws, cameras, resolution, resolution)
        composite = getattr(out, "composite", None)
        if composite is not None and getattr(composite, "depth", None) is not None:
            depth, opacity = composite.depth[:1, 0, ..., 0], composite.opacity[:1, 0, ..., 0]
            Image.fromarray(depth_to_grey(depth, opacity)[0]).save(folder / "depth.png")
            grey = (opacity[0].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
            Image.fromarray(grey).save(folder / "opacity.png")
        guess = CameraGuess.from_cameras(cameras)
        poses = orbit(
            args.frames,
            radius=guess.radius,
            lookat=guess.lookat,
            horizontal_amplitude=0.6,
            vertical_amplitude=0.15,
        )
        poses = poses.to(device=cameras.device, dtype=cameras.dtype)
        intrinsics = cameras.intrinsics[:1, :1].expand(1, args.frames, 3, 3)
        frames = []
        for t in range(args.frames):
            view = Cameras(poses[None, t : t + 1], intrinsics[:, t : t + 1])
            frames.append(
                styles.synthesize(
                    projection.ws, view, resolution, resolution, c=cameras.to_eg3d_labels()[:, 0]
                ).images[0, 0]
            )
        pictures = to_uint8(torch.stack(frames))
    gif = [Image.fromarray(p) for p in pictures]
    gif[0].save(folder / "turntable.gif", save_all=True, append_images=gif[1:], duration=80, loop=0)
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401

        imageio.mimwrite(folder / "turntable.mp4", list(pictures), fps=12, macro_block_size=1)
    except Exception:  # an encoder is optional: no MP4 without one
        (folder / "turntable.mp4").unlink(missing_ok=True)
    if isinstance(generator, SupportsPLYExport):  # 3DGS Gaussians (GSGAN), points (tri-planes)
        generator.export_ply(out, folder / "scene.ply")
    metrics["files"] = sorted(p.name for p in folder.iterdir())
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
