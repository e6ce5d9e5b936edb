"""The aware3d command line: ``demo``, ``train``, ``eval`` and ``render``.

``aware3d demo`` trains the demo 3D-aware GAN in one go; ``aware3d train`` runs a recipe (one
process, or ``torchrun --nproc_per_node N -m aware3d train ...``) with checkpoints and resume;
``aware3d eval`` and ``aware3d render`` read a checkpoint.

Every argument is checked before any work starts, so a typo is an argparse error naming the
option, not a traceback after minutes of training.
"""

import argparse
import os
import tempfile
from pathlib import Path

from aware3d._cli_types import (
    device,
    existing_path,
    nonnegative_int,
    positive_int,
    positive_number,
)

#: Resolutions the demo's discriminator accepts.
RESOLUTIONS = (16, 32, 64, 128, 256)
#: Synthetic scenes are seen from this many cameras each, so ``--max-images`` needs at least one
#: scene's worth.
VIEWS_PER_SCENE = 4
#: What ``aware3d render`` writes in its ``--out`` (:func:`aware3d.viz.render_outputs`).
RENDER_FILES = ("grid.png", "turntable.gif", "depth.png", "sample.ply")


def _resolution(text: str) -> int:
    value = positive_int(text)
    if value not in RESOLUTIONS:
        raise argparse.ArgumentTypeError(
            f"expected a power of two from {RESOLUTIONS[0]} to {RESOLUTIONS[-1]}, got {value}"
        )
    return value


def _max_images(text: str) -> int:
    value = positive_int(text)
    if value < VIEWS_PER_SCENE:
        raise argparse.ArgumentTypeError(
            f"expected at least {VIEWS_PER_SCENE} images (one synthetic scene seen from "
            f"{VIEWS_PER_SCENE} cameras), got {value}"
        )
    return value


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


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    import dataclasses

    from aware3d.demo import run_demo
    from aware3d.recipes import DemoRecipe

    given = {
        "demo_model": args.model,
        "steps": args.steps,
        "resolution": args.resolution,
        "batch": args.batch,
        "seed": args.seed,
        "synthetic_images": args.max_images,
    }
    try:
        config = dataclasses.replace(
            DemoRecipe(), **{key: value for key, value in given.items() if value is not None}
        )
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    from aware3d.training import RunFolderError

    try:
        run_demo(config, out=args.out, data_path=args.data, device=args.device,
                 overwrite=args.overwrite)  # fmt: skip
    except RunFolderError as error:
        parser.exit(1, f"aware3d demo: error: {error}\n")


def _require_train_extra(parser: argparse.ArgumentParser) -> None:
    """Refuses to start a run whose logging needs a package the ``train`` extra installs."""
    import importlib.util

    missing = [name for name in ("tensorboard",) if importlib.util.find_spec(name) is None]
    if missing:
        parser.error(
            f"aware3d train logs to TensorBoard and needs {', '.join(missing)}: install the "
            "train extra, e.g. pip install 'aware3d[train]'"
        )


def _output_file(text: str) -> Path:
    """A file path ``aware3d eval`` can write: its folder exists and takes files."""
    from aware3d._io import check_writable_file

    try:
        check_writable_file(text)
    except OSError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return Path(text)


def _render_folder(text: str) -> Path:
    """An output folder in which none of :data:`RENDER_FILES` is a folder."""
    from aware3d._io import check_writable_folder

    path = _output_folder(text)
    try:
        check_writable_folder(path, RENDER_FILES)
    except OSError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return path


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a file")
    return path


def _checkpoint_folder(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path


def _train_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` items plus the shortcut flags, as ``key=value`` strings."""
    overrides = list(args.set or [])
    for flag, key in (("batch", "batch"), ("seed", "seed"), ("steps", "steps")):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.kimg is not None:
        overrides += [f"kimg={args.kimg}", "steps=0"]
    return overrides


def _train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    _require_train_extra(parser)
    from aware3d.recipes import apply_overrides, get_recipe, train
    from aware3d.training import STOPPED_EXIT_CODE, RunFolderError

    try:
        recipe = get_recipe(args.recipe)
        config = apply_overrides(recipe.config(), _train_overrides(args))
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    try:
        result = train(
            recipe, config, out=args.out, data=args.data, device=args.device,
            resume=args.resume, overwrite=args.overwrite,
            inception_weights=args.inception_weights, progress=not args.no_progress,
        )  # fmt: skip
    except (RunFolderError, FileNotFoundError, ValueError) as error:
        parser.exit(1, f"aware3d train: error: {error}\n")
    if result.stopped:
        raise SystemExit(STOPPED_EXIT_CODE)


def _eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    import json

    from aware3d._io import atomic_write_text
    from aware3d.recipes import evaluate_checkpoint

    try:
        metrics = evaluate_checkpoint(
            args.checkpoint, data=args.data, device=args.device, images=args.images,
            inception_weights=args.inception_weights,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.out is not None:
        try:
            atomic_write_text(args.out, text + "\n")
        except OSError as error:
            parser.error(f"argument --out: {error}")


def _render(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from aware3d.recipes import render_checkpoint

    try:
        written = render_checkpoint(
            args.checkpoint, args.out, device=args.device, count=args.count, seed=args.seed
        )
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    for name, path in written.items():
        print(f"{name}: {path}")


def _convert(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from aware3d.models._persistence import NetworkPickleError
    from aware3d.models.released import ReleasedModelError
    from aware3d.recipes.released import convert_released

    try:
        info = convert_released(
            args.released, args.out, overwrite=args.overwrite,
            discriminator=not args.no_discriminator,
        )  # fmt: skip
    except (FileExistsError, ReleasedModelError, NetworkPickleError, OSError) as error:
        parser.exit(1, f"aware3d convert: error: {error}\n")
    print(f"{info['family']} model at {info['resolution']} px from {info['source']['file']}:")
    for name, entry in info["networks"].items():
        if entry["converted"]:
            unused = len(entry["unmapped"])
            note = f"; {unused} recorded tensors unused (see converted.json)" if unused else ""
            print(f"  {name} <- {entry['from']}{note}")
        else:
            print(f"  {name}: not converted ({entry['reason']})")
    print(f"wrote {args.out}/")


def _add_convert_parser(commands: argparse._SubParsersAction) -> None:
    convert = commands.add_parser(
        "convert",
        help="a released GSGAN, EG3D or BallGAN .pkl as an aware3d checkpoint folder",
        description="Reads a released network pickle (torch_utils.persistence format) without "
        "importing or running any of its code, builds the aware3d networks from the arguments "
        "recorded in it and writes OUT/converted.json and OUT/<network>.safetensors "
        "(generator_ema from G_ema, generator from G, discriminator from D), which `aware3d "
        "eval` and `aware3d render` read.",
    )
    convert.add_argument("released", type=_existing_file, help="the released .pkl file")
    convert.add_argument("out", type=Path, help="the folder to write (must not exist)")
    convert.add_argument(
        "--overwrite", action="store_true", help="replace an earlier converted folder at OUT"
    )
    convert.add_argument(
        "--no-discriminator", action="store_true", help="do not convert the discriminator"
    )
    convert.set_defaults(handler=_convert)


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train a recipe (single process, or under torchrun) with checkpoints and resume",
        description="Trains a recipe. Run it as is for one process, or as `torchrun "
        "--nproc_per_node N -m aware3d train ...` for N processes (DistributedDataParallel; gloo "
        "on CPU, nccl on CUDA). Writes DIR/checkpoints/step-<8 digits>/, DIR/log.jsonl, "
        "DIR/tensorboard/ and DIR/images/.",
    )
    train.add_argument(
        "--recipe",
        required=True,
        metavar="NAME|package.module:attr",
        help="a built-in recipe (demo, gsgan-ffhq256, gsgan-ffhq512, ballgan-ffhq256) or your "
        "own aware3d.recipes.Recipe as package.module:attr (importable, e.g. on PYTHONPATH)",
    )
    train.add_argument(
        "--data",
        type=existing_path,
        default=None,
        help="EG3D data set folder or zip (the demo recipe: synthetic scenes when absent)",
    )
    train.add_argument("--out", type=_output_folder, required=True, help="the run's folder")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, default=None, help="training steps")
    length.add_argument(
        "--kimg", type=positive_number, default=None, help="training length in thousands of images"
    )
    train.add_argument(
        "--batch",
        type=positive_int,
        default=None,
        help="global batch (divided among the processes)",
    )
    start = train.add_mutually_exclusive_group()
    start.add_argument(
        "--resume",
        default=None,
        metavar="DIR|auto",
        help="continue from a checkpoint folder, a run folder (its newest complete one), or "
        "auto (the newest complete one in --out; a fresh start when there is none)",
    )
    start.add_argument(
        "--overwrite",
        action="store_true",
        help="start anew in an --out that holds another run, after moving that run to "
        "OUT.old-<time> (without --resume or --overwrite, such a folder is refused)",
    )
    train.add_argument(
        "--device",
        type=device,
        default="cpu",
        help="cpu, cuda (each process its LOCAL_RANK) or cuda:N",
    )
    train.add_argument("--seed", type=nonnegative_int, default=None, help="the run's seed")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a recipe field (repeatable); tuples comma-separated",
    )
    train.add_argument(
        "--inception-weights",
        type=_existing_file,
        default=None,
        help="the FID Inception's weights file (else $AWARE3D_INCEPTION_WEIGHTS "
        "or torch-fidelity's cache; FID/KID are skipped when none is found)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)


def _add_checkpoint_parsers(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="metrics of a checkpoint's EMA generator (SWD; FID/KID with local weights)",
        description="Evaluates the EMA generator of a checkpoint written by `aware3d train` or "
        "`aware3d demo` against its data set: the sliced Wasserstein distance, and FID/KID when "
        "the Inception weights are found locally (nothing is downloaded). Prints the JSON.",
    )
    evaluate.add_argument(
        "--checkpoint",
        type=_checkpoint_folder,
        required=True,
        help="a checkpoint folder, a run folder (its newest checkpoint) or a folder written by "
        "`aware3d convert`",
    )
    evaluate.add_argument(
        "--data",
        type=existing_path,
        default=None,
        help="EG3D data set (the demo recipe: its synthetic scenes if absent)",
    )
    evaluate.add_argument(
        "--images",
        type=positive_int,
        default=None,
        help="images per set (default: the recipe's metric_images)",
    )
    evaluate.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    evaluate.add_argument(
        "--inception-weights",
        type=_existing_file,
        default=None,
        help="the FID Inception's weights file",
    )
    evaluate.add_argument(
        "--out",
        type=_output_file,
        default=None,
        help="also write the JSON to this file (its folder must exist)",
    )
    evaluate.set_defaults(handler=_eval)
    render = commands.add_parser(
        "render",
        help="a checkpoint's samples: grid, turntable GIF, depth and PLY",
        description="Renders the EMA generator of a checkpoint written by `aware3d train` or "
        "`aware3d demo`: grid.png, turntable.gif, depth.png and sample.ply (3DGS Gaussians, or "
        "BallGAN's tri-plane foreground as points) in --out, from FFHQ-like cameras.",
    )
    render.add_argument(
        "--checkpoint",
        type=_checkpoint_folder,
        required=True,
        help="a checkpoint folder, a run folder (its newest checkpoint) or a folder written by "
        "`aware3d convert`",
    )
    render.add_argument(
        "--out", type=_render_folder, required=True, help="output folder, created if missing"
    )
    render.add_argument("--count", type=positive_int, default=16, help="samples in the grid")
    render.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the latents")
    render.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    render.set_defaults(handler=_render)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``aware3d`` command."""
    from aware3d.cli_data import add_data_parser
    from aware3d.cli_invert import add_invert_parser
    from aware3d.cli_view import add_view_parsers

    parser = argparse.ArgumentParser(
        prog="aware3d", description="Building blocks for 3D-aware GANs: the aware3d command."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train a small 3D-aware GAN from the components and write figures and metrics",
        description="Trains MappingNetwork + HierarchicalGaussianDecoder + SphericalBackground + "
        "rasterize + composite over the sphere against a camera-conditioned discriminator (the "
        "demo recipe of `aware3d train`), then writes samples, a turntable, the "
        "foreground/background decomposition, loss curves, a PLY and metrics.json to --out, "
        "beside the run's checkpoints.",
    )
    demo.add_argument(
        "--model",
        choices=("demo", "gsgan", "ballgan"),
        default=None,
        help="the generator: the demo's own (demo, the default), GSGAN's (gsgan) or BallGAN's "
        "(ballgan) assembly at CPU size",
    )
    demo.add_argument(
        "--data",
        type=existing_path,
        default=None,
        help="EG3D dataset folder or zip (default: synthetic scenes)",
    )
    demo.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="training steps, >= 1 (default: the demo recipe's, a few minutes on 2 CPU cores)",
    )
    demo.add_argument(
        "--resolution",
        type=_resolution,
        default=None,
        help="image size, a power of two from 16 to 256 (default: the demo recipe's)",
    )
    demo.add_argument(
        "--batch",
        type=positive_int,
        default=None,
        help="scenes per step, >= 1 (default: the demo recipe's)",
    )
    demo.add_argument(
        "--out",
        type=_output_folder,
        default="out/demo",
        help="output folder, created if missing; must not hold another run (default: %(default)s)",
    )
    demo.add_argument(
        "--overwrite",
        action="store_true",
        help="move an earlier run in --out to OUT.old-<time> first",
    )
    demo.add_argument(
        "--device",
        type=device,
        default="cpu",
        help="cpu, cuda, cuda:N or mps; cuda renders with gsplat (default: %(default)s)",
    )
    demo.add_argument(
        "--seed",
        type=nonnegative_int,
        default=None,
        help="seed of the data, the models and the latents (default: the demo recipe's)",
    )
    demo.add_argument(
        "--max-images",
        type=_max_images,
        default=None,
        help=f"synthetic images, >= {VIEWS_PER_SCENE} (max_images // {VIEWS_PER_SCENE} scenes "
        f"of {VIEWS_PER_SCENE} views; default: the demo recipe's synthetic_images)",
    )
    demo.set_defaults(handler=_demo)
    _add_train_parser(commands)
    _add_checkpoint_parsers(commands)
    _add_convert_parser(commands)
    add_view_parsers(commands)
    add_data_parser(commands)
    add_invert_parser(commands)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aware3d")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``aware3d`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.handler(args, parser)


if __name__ == "__main__":
    main()
