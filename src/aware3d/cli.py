"""The aware3d command line: `aware3d demo [options]` trains the demo 3D-aware GAN.

Every argument is checked before any work starts, so a typo is an argparse error naming the
option, not a traceback after minutes of training.
"""

import argparse
import os
import tempfile
from pathlib import Path

#: Generators ``aware3d demo --model`` trains (mirrors ``aware3d.demo.models.MODELS``; a test
#: keeps them equal without importing torch here).
DEMO_MODELS = ("demo", "gsgan", "ballgan")
#: Resolutions the demo's discriminator accepts.
RESOLUTIONS = (16, 32, 64, 128, 256)
#: Synthetic scenes are seen from this many cameras each, so ``--max-images`` needs at least one
#: scene's worth.
VIEWS_PER_SCENE = 4


def _int_at_least(minimum: int, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer >= {minimum}, got {text!r}"
        ) from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(1, text)


def _nonnegative_int(text: str) -> int:
    return _int_at_least(0, text)


def _resolution(text: str) -> int:
    value = _positive_int(text)
    if value not in RESOLUTIONS:
        raise argparse.ArgumentTypeError(
            f"expected a power of two from {RESOLUTIONS[0]} to {RESOLUTIONS[-1]}, got {value}"
        )
    return value


def _max_images(text: str) -> int:
    value = _positive_int(text)
    if value < VIEWS_PER_SCENE:
        raise argparse.ArgumentTypeError(
            f"expected at least {VIEWS_PER_SCENE} images (one synthetic scene seen from "
            f"{VIEWS_PER_SCENE} cameras), got {value}"
        )
    return value


def _device(text: str) -> str:
    kind = text.split(":", 1)[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text} requested but CUDA is not available")
    return text


def _existing_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return path


def check_output_folder(path: Path) -> str | None:
    """Why ``path`` cannot be the demo's output folder, or ``None`` if it can.

    The folder may exist (it must be a writable directory) or not (its nearest existing parent
    must be a writable directory, where it will be created).
    """
    if path.exists() and not path.is_dir():
        return f"{path} exists and is not a directory"
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory, so {path} cannot be created"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"{existing} is not writable ({error.strerror})"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def _output_folder(text: str) -> Path:
    path = Path(text)
    problem = check_output_folder(path)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return path


def _demo(args: argparse.Namespace) -> None:
    from aware3d.demo.run import run_demo
    from aware3d.demo.train import DemoConfig

    config = DemoConfig(
        model=args.model,
        steps=args.steps,
        resolution=args.resolution,
        batch=args.batch,
        seed=args.seed,
    )
    run_demo(
        data_path=args.data,
        out=args.out,
        device=args.device,
        config=config,
        max_images=args.max_images,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``aware3d`` command."""
    parser = argparse.ArgumentParser(
        prog="aware3d", description="Building blocks for 3D-aware GANs: the aware3d command."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train a small 3D-aware GAN from the components and write figures and metrics",
        description="Trains MappingNetwork + HierarchicalGaussianDecoder + SphericalBackground + "
        "rasterize + CompositeRenderer against a camera-conditioned discriminator, then writes "
        "samples, a turntable, the foreground/background decomposition, loss curves, a PLY, a "
        "checkpoint and metrics.json to --out.",
    )
    defaults = _demo_defaults()
    demo.add_argument(
        "--model",
        choices=DEMO_MODELS,
        default=defaults["model"],
        help="the generator: the demo's own (demo), GSGAN's (gsgan) or BallGAN's (ballgan) "
        "assembly at CPU size (default: %(default)s)",
    )
    demo.add_argument(
        "--data",
        type=_existing_path,
        default=None,
        help="EG3D dataset folder or zip (default: synthetic scenes)",
    )
    demo.add_argument(
        "--steps",
        type=_positive_int,
        default=defaults["steps"],
        help="training steps, >= 1 (default: %(default)s, a few minutes on 2 CPU cores)",
    )
    demo.add_argument(
        "--resolution",
        type=_resolution,
        default=defaults["resolution"],
        help="image size, a power of two from 16 to 256 (default: %(default)s)",
    )
    demo.add_argument(
        "--batch",
        type=_positive_int,
        default=defaults["batch"],
        help="scenes per step, >= 1 (default: %(default)s)",
    )
    demo.add_argument(
        "--out",
        type=_output_folder,
        default="out/demo",
        help="output folder, created if missing (default: %(default)s)",
    )
    demo.add_argument(
        "--device",
        type=_device,
        default="cpu",
        help="cpu, cuda, cuda:N or mps; cuda renders with gsplat (default: %(default)s)",
    )
    demo.add_argument(
        "--seed",
        type=_nonnegative_int,
        default=defaults["seed"],
        help="seed of the data, the models and the latents (default: %(default)s)",
    )
    demo.add_argument(
        "--max-images",
        type=_max_images,
        default=defaults["max_images"],
        help=f"images used for training, >= {VIEWS_PER_SCENE} (synthetic data: "
        f"max_images // {VIEWS_PER_SCENE} scenes of {VIEWS_PER_SCENE} views; "
        "default: %(default)s)",
    )
    demo.set_defaults(handler=_demo)
    return parser


def _demo_defaults() -> dict:
    # Mirrors DemoConfig's defaults (and run_demo's max_images) without importing torch, so that
    # `--help` and argument errors are instant; a test keeps them equal.
    return {
        "model": "demo",
        "steps": 1000,
        "resolution": 32,
        "batch": 8,
        "seed": 0,
        "max_images": 2048,
    }


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``aware3d`` console script."""
    args = build_parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
