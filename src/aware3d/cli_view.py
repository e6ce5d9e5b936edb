"""``aware3d export`` and ``aware3d view``: argument parsing and the two handlers.

``export`` writes one generated scene as files standard 3D tools open (3DGS PLY and ``.splat``
for Gaussian generators; a marching-cubes mesh as PLY / OBJ and the density grid as ``.npy`` for
tri-plane generators; MP4 / GIF turntables for all); ``view`` serves a local web viewer (viser)
of any checkpoint, or with ``--benchmark N`` measures its frames per second without a browser.
"""

import argparse
import json
import math
from pathlib import Path

from aware3d._cli_types import device, int_at_least

__all__ = ["add_view_parsers"]

_CHECKPOINT_HELP = (
    "a run folder (its newest checkpoint), a checkpoints/step-* folder or a folder written by "
    "`aware3d convert`"
)


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _psi(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _fov(text: str) -> float:
    value = _finite(text)
    if not 0 < value < 180:
        raise argparse.ArgumentTypeError(f"expected degrees in (0, 180), got {text!r}")
    return value


def _formats(text: str) -> tuple[str, ...] | None:
    from aware3d.viewer.export import parse_formats

    try:
        return parse_formats(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _views(text: str) -> tuple[str, ...]:
    from aware3d.viewer.export import video_views

    views = video_views(text)
    known = ("composite", "depth", "opacity")
    if not views or any(view not in known for view in views):
        raise argparse.ArgumentTypeError(
            f"expected some of {', '.join(known)} (comma-separated), got {text!r}"
        )
    return views


def _latent_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file() or path.suffix not in (".npy", ".pt"):
        raise argparse.ArgumentTypeError(f"{text} is not a .npy or .pt file")
    return path


def _load(args: argparse.Namespace, parser: argparse.ArgumentParser, command: str):
    from aware3d.viewer.model import UnknownCheckpointError, load_model

    try:
        return load_model(args.checkpoint, args.device)
    except UnknownCheckpointError as error:
        parser.exit(2, f"aware3d {command}: error: {error}\n")
    except (FileNotFoundError, ValueError) as error:
        parser.exit(1, f"aware3d {command}: error: {args.checkpoint}: {error}\n")


def _export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from aware3d.viewer.export import ExportOptions, export_model, export_plan

    options = ExportOptions(
        seed=args.seed,
        latent=args.latent,
        formats=args.format,
        psi=args.psi,
        mesh_resolution=args.mesh_resolution,
        threshold=args.threshold,
        frames=args.frames,
        fps=args.fps,
        video_views=args.video_views,
        force=args.force,
    )
    model = _load(args, parser, "export")
    try:
        export_plan(model, args.out, options)  # refuses before any work
        written = export_model(model, args.out, options, log=lambda line: print(f"  {line}"))
    except (ValueError, OSError, ImportError) as error:
        parser.exit(1, f"aware3d export: error: {error}\n")
    for key, path in written.items():
        print(f"{key}: {path}")


def _view(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    import torch

    from aware3d.viewer.model import load_latent
    from aware3d.viewer.render import ViewRenderer, ViewSettings, eg3d_pose, measure_fps

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model = _load(args, parser, "view")
    latent = None
    if args.latent is not None:
        try:
            latent = load_latent(model, args.latent)
        except ValueError as error:
            parser.exit(1, f"aware3d view: error: {error}\n")
    settings = ViewSettings(
        seed=args.seed,
        latent=latent,
        psi=args.psi,
        cam2world=eg3d_pose(args.yaw, args.pitch, args.radius),
        resolution=model.resolution if model.fixed_resolution else args.resolution,
        view=args.show,
    )
    if args.fov is not None:
        settings = settings.replace(fov=args.fov)
    if args.benchmark:
        renderer = ViewRenderer(model)
        try:
            report = measure_fps(renderer, settings, frames=args.benchmark)
        except ValueError as error:
            parser.exit(1, f"aware3d view: error: {error}\n")
        report = {
            "checkpoint": str(args.checkpoint),
            "generator": type(model.generator).__name__,
            "view": settings.view,
            **report,
        }
        print(json.dumps(report, indent=2))
        return
    _serve(model, settings, args, parser)


def _serve(model, settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    import importlib.util
    import time

    if importlib.util.find_spec("viser") is None:
        parser.exit(
            1,
            "aware3d view: error: the viewer needs viser: install the view extra, "
            "e.g. pip install 'aware3d[view]'\n",
        )
    from aware3d.viewer.app import ViewerApp

    try:
        app = ViewerApp(model, host=args.host, port=args.port, settings=settings)
    except (ValueError, OSError) as error:
        parser.exit(1, f"aware3d view: error: {error}\n")
    print(f"aware3d view: {model.description} at {app.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()


def add_view_parsers(commands: argparse._SubParsersAction) -> None:
    """Adds ``aware3d export`` and ``aware3d view`` to the ``aware3d`` command's subparsers."""
    export = commands.add_parser(
        "export",
        help="a generated scene as 3DGS PLY/.splat, a mesh (PLY/OBJ), a density grid or videos",
        description="Writes the scene of one latent (seed S: the first sample of `aware3d render "
        "--seed S`, conditioned on the frontal camera) into --out: Gaussian generators (GSGAN, "
        "the demo's) as a 3D Gaussian Splatting PLY and a .splat file; tri-plane generators "
        "(BallGAN, EG3D) as a marching-cubes mesh of the foreground density (PLY and OBJ, vertex "
        "colours) and the density grid (.npy); every generator as MP4 and GIF turntables of the "
        "composite, its depth and its opacity. Existing files are refused unless --force; an "
        "interrupted export leaves no new file.",
    )
    export.add_argument("checkpoint", metavar="CHECKPOINT", type=Path, help=_CHECKPOINT_HELP)
    export.add_argument("--seed", type=int_at_least(0), default=0, help="the latent's seed")
    export.add_argument(
        "--latent",
        type=_latent_file,
        default=None,
        help="a latent [latent_dim] as .npy or .pt, instead of --seed",
    )
    export.add_argument(
        "--format",
        type=_formats,
        default=None,
        metavar="FORMATS",
        help="comma-separated: ply, splat (Gaussians), ply, obj, npy (tri-planes), mp4, gif; "
        "default all the generator's",
    )
    export.add_argument(
        "--out",
        type=Path,
        default=Path("export"),
        help="output folder, created if missing (default: %(default)s)",
    )
    export.add_argument("--force", action="store_true", help="replace files that exist")
    export.add_argument("--psi", type=_psi, default=1.0, help="truncation (default: 1, none)")
    export.add_argument(
        "--mesh-resolution",
        type=int_at_least(2),
        default=128,
        help="density grid samples per axis (default: %(default)s)",
    )
    export.add_argument(
        "--threshold",
        type=_finite,
        default=10.0,
        help="density sigma of the mesh surface (default: %(default)s, as EG3D's shapes)",
    )
    export.add_argument(
        "--frames",
        type=int_at_least(1),
        default=48,
        help="turntable frames (default: %(default)s)",
    )
    export.add_argument(
        "--fps",
        type=int_at_least(1),
        default=24,
        help="turntable frames per second (default: %(default)s)",
    )
    export.add_argument(
        "--video-views",
        type=_views,
        default=("composite", "depth", "opacity"),
        metavar="VIEWS",
        help="turntables of composite, depth, opacity (comma-separated; default: all three)",
    )
    export.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    export.set_defaults(handler=_export)

    view = commands.add_parser(
        "view",
        help="a local web viewer of a checkpoint (viser): orbit, latents, levels, layers",
        description="Serves a page (open it in a browser) that shows the generator rendered by "
        "aware3d on this machine: orbit with the mouse or EG3D's yaw/pitch sliders, change the "
        "seed, truncation and field of view, show the composite, foreground, background, opacity "
        "or depth, GSGAN's levels and shrunken scales, or the Gaussians as client-side splats. "
        "With --benchmark N it renders N frames without serving and prints frames per second.",
    )
    view.add_argument("checkpoint", metavar="CHECKPOINT", type=Path, help=_CHECKPOINT_HELP)
    view.add_argument(
        "--port",
        type=int_at_least(0),
        default=8080,
        help="port to serve on; the next free one when in use (default: %(default)s)",
    )
    view.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only)",
    )
    view.add_argument("--seed", type=int_at_least(0), default=0, help="the first latent's seed")
    view.add_argument(
        "--latent",
        type=_latent_file,
        default=None,
        help="a latent [latent_dim] as .npy or .pt, instead of --seed",
    )
    view.add_argument("--psi", type=_psi, default=1.0, help="truncation (default: 1)")
    view.add_argument(
        "--resolution",
        type=int_at_least(8),
        default=128,
        help="frame size of Gaussian generators (default: %(default)s)",
    )
    view.add_argument("--yaw", type=_finite, default=0.0, help="camera yaw in degrees")
    view.add_argument("--pitch", type=_finite, default=0.0, help="camera pitch in degrees")
    view.add_argument("--radius", type=_positive, default=2.7, help="camera distance (EG3D: 2.7)")
    view.add_argument(
        "--fov",
        type=_fov,
        default=None,
        help="horizontal field of view in degrees (default: FFHQ's 13.4)",
    )
    view.add_argument(
        "--show",
        default="composite",
        choices=("composite", "foreground", "background", "opacity", "depth", "raw"),
        help="what the first frame shows",
    )
    view.add_argument(
        "--threads",
        type=int_at_least(1),
        default=None,
        help="torch CPU threads (default: torch's)",
    )
    view.add_argument(
        "--benchmark",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="render N frames along a camera swing, print frames per second as JSON, and exit",
    )
    view.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    view.set_defaults(handler=_view)
