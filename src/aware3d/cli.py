"""The ``aware3d`` command line: ``aware3d demo [...]``."""

import argparse
from pathlib import Path


def _demo(args: argparse.Namespace) -> None:
    from aware3d.demo.run import run_demo
    from aware3d.demo.train import DemoConfig

    config = DemoConfig(
        steps=args.steps, resolution=args.resolution, batch=args.batch, seed=args.seed
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
    parser = argparse.ArgumentParser(prog="aware3d", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train a small 3D-aware GAN from the components and write figures and metrics",
        description="Trains MappingNetwork + HierarchicalGaussianDecoder + SphericalBackground + "
        "rasterize + CompositeRenderer against a camera-conditioned discriminator.",
    )
    defaults = _demo_defaults()
    demo.add_argument(
        "--data",
        type=Path,
        default=None,
        help="EG3D dataset folder or zip (default: synthetic scenes)",
    )
    demo.add_argument(
        "--steps",
        type=int,
        default=defaults["steps"],
        help="training steps (default: %(default)s, ~5 min on 2 CPU cores)",
    )
    demo.add_argument(
        "--resolution",
        type=int,
        default=defaults["resolution"],
        help="image size, a power of two from 16 to 256 (default: %(default)s)",
    )
    demo.add_argument(
        "--batch",
        type=int,
        default=defaults["batch"],
        help="scenes per step (default: %(default)s)",
    )
    demo.add_argument(
        "--out", type=Path, default=Path("out/demo"), help="output folder (default: %(default)s)"
    )
    demo.add_argument("--device", default="cpu", help="cpu or cuda (cuda renders with gsplat)")
    demo.add_argument(
        "--seed",
        type=int,
        default=defaults["seed"],
        help="seed of the data, the models and the latents (default: %(default)s)",
    )
    demo.add_argument("--max-images", type=int, default=256, help="images used for training")
    demo.set_defaults(handler=_demo)
    return parser


def _demo_defaults() -> dict:
    # Mirror DemoConfig's defaults without importing torch for `--help`.
    return {"steps": 1000, "resolution": 32, "batch": 8, "seed": 0}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``aware3d`` console script."""
    args = build_parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
