"""``aware3d data make`` and ``aware3d data check``: argument parsing and the two handlers.

``make`` reads camera poses (COLMAP, transforms.json or plain matrices), normalises the scene into
EG3D's frame and writes an EG3D dataset; ``check`` reports every problem of a dataset, its camera
statistics and the pose-sampler settings a recipe should use, and exits non-zero on errors.
"""

import argparse
import json
import math
import sys
from pathlib import Path

from aware3d._cli_types import existing_path, positive_int, positive_number

__all__ = ["add_data_parser"]


def _floats(count: int, name: str):
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {count} comma-separated numbers ({name}), got {text!r}"
            ) from None
        if len(values) != count or not all(math.isfinite(v) for v in values):
            raise argparse.ArgumentTypeError(
                f"expected {count} comma-separated finite numbers ({name}), got {text!r}"
            )
        return values

    return parse


def _point_or(word: str):
    parse = _floats(3, "x,y,z")

    def point(text: str) -> str | tuple[float, ...]:
        return text if text in (word, "none") else parse(text)

    return point


def _fail(command: str, error: BaseException) -> None:
    sys.stderr.write(f"aware3d data {command}: error: {error}\n")
    raise SystemExit(1)


def _make(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from aware3d.data.make import make_dataset
    from aware3d.data.normalize import normalize_scene
    from aware3d.data.poses import read_poses

    if args.front == "auto" and args.up == "none":
        parser.error("--front auto needs --up (auto or x,y,z)")
    try:
        posed = read_poses(
            args.poses, images=args.images, distortion=args.distortion,
            convention=args.convention, kind=args.kind,
        )  # fmt: skip
        if args.limit is not None:
            posed = posed.select(range(min(args.limit, len(posed))))
        transform = None
        if args.lookat != "none":
            cameras, transform = normalize_scene(
                posed.cameras, lookat=args.lookat, radius=args.radius,
                center=args.center, up=None if args.up == "none" else args.up,
                front=None if args.front == "none" else args.front,
                background_radius=args.background_radius, names=posed.names,
            )  # fmt: skip
            posed = posed.with_cameras(cameras)
        out = make_dataset(
            posed, args.out, resolution=args.resolution, box=args.box, mirror=args.mirror,
            as_zip=True if args.zip else None, overwrite=args.overwrite,
            progress=not args.no_progress, transform=transform,
        )  # fmt: skip
    except (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
            ValueError, OSError) as error:  # fmt: skip
        _fail("make", error)
        return
    count = len(posed) * (2 if args.mirror else 1)
    print(f"wrote {count} images of {args.resolution} x {args.resolution} px and dataset.json "
          f"to {out}")  # fmt: skip
    if transform is not None:
        print(f"scene transform (stored in dataset.json): scale {transform.scale:.6g}")
    print(f"next: aware3d data check {out}")


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from aware3d._io import atomic_write_text
    from aware3d.data.check import check_dataset, plot_dataset_report

    try:
        report = check_dataset(
            args.dataset, background_radius=args.background_radius, decode=not args.quick
        )
    except (FileNotFoundError, ValueError) as error:
        _fail("check", error)
        return
    print(report.format())
    try:
        if args.figure is not None:
            print(f"figure: {plot_dataset_report(report, args.figure)}")
        if args.json is not None:
            atomic_write_text(args.json, json.dumps(report.to_json(), indent=2))
            print(f"report: {args.json}")
    except OSError as error:
        _fail("check", error)
    if not report.ok:
        sys.stderr.write(f"aware3d data check: {len(report.errors)} error(s) in {args.dataset}\n")
        raise SystemExit(1)


def add_data_parser(commands: argparse._SubParsersAction) -> None:
    """Adds ``aware3d data make`` and ``aware3d data check`` to the ``aware3d`` parser."""
    data = commands.add_parser(
        "data",
        help="make an EG3D dataset from images and camera poses, or check one",
        description="Make an EG3D dataset (images + dataset.json with 25-number labels) from "
        "COLMAP, nerfstudio/instant-ngp/Blender transforms.json or plain pose matrices, or check "
        "a dataset before training.",
    )
    actions = data.add_subparsers(dest="data_command", required=True)
    make = actions.add_parser(
        "make",
        help="images + camera poses -> an EG3D dataset (folder or zip)",
        description="Reads the poses, normalises the scene (look-at point to --center, median "
        "camera distance to --radius, optionally up to +y and the mean view to +z), crops each "
        "image to a square around its principal point (or --box), resizes it and writes the "
        "dataset whole or not at all.",
    )
    make.add_argument(
        "poses", type=existing_path,
        help="a COLMAP model folder (sparse/0, text or binary), a transforms.json (or its folder), "
        "or a .npz of plain matrices (names, poses, intrinsics in pixels)",
    )  # fmt: skip
    make.add_argument("out", type=Path, help="the dataset folder, or a .zip file to write")
    make.add_argument(
        "--images", type=existing_path, default=None,
        help="the image folder the poses' names are relative to (default: COLMAP's images/ "
        "beside sparse/, the transforms.json's folder, the .npz's folder)",
    )  # fmt: skip
    make.add_argument(
        "--resolution", type=positive_int, default=256, help="output size (default 256)"
    )
    make.add_argument(
        "--box", type=_floats(4, "x0,y0,x1,y1"), default=None,
        help="crop every image to this box in pixels instead of the square around its "
        "principal point",
    )  # fmt: skip
    make.add_argument(
        "--mirror", action="store_true",
        help="also write a left-right mirrored copy of every image with EG3D's mirrored label",
    )  # fmt: skip
    make.add_argument("--zip", action="store_true", help="write a zip archive (also for .zip)")
    make.add_argument(
        "--limit", type=positive_int, default=None, help="use only the first N images"
    )
    make.add_argument(
        "--lookat", type=_point_or("auto"), default="auto",
        help="the point the cameras look at: auto (least squares), x,y,z, or none to keep the "
        "poses as they are (no normalisation)",
    )  # fmt: skip
    make.add_argument(
        "--radius", type=positive_number, default=2.7,
        help="median camera distance from the look-at point afterwards (EG3D: 2.7)",
    )  # fmt: skip
    make.add_argument(
        "--center", type=_floats(3, "x,y,z"), default=(0.0, 0.0, 0.0),
        help="where the look-at point goes (default 0,0,0; EG3D's FFHQ looks at 0,0,0.2)",
    )  # fmt: skip
    make.add_argument(
        "--up", type=_point_or("auto"), default="none",
        help="turn the world so this becomes +y: auto (the cameras' mean up), x,y,z, or none",
    )  # fmt: skip
    make.add_argument(
        "--front", choices=("auto", "none"), default="none",
        help="auto: turn about +y so the mean view comes from +z (EG3D's frontal view)",
    )  # fmt: skip
    make.add_argument(
        "--background-radius", type=positive_number, default=3.0,
        help="refuse cameras at or beyond this distance from the origin (BallGAN: 3)",
    )  # fmt: skip
    make.add_argument(
        "--distortion", choices=("refuse", "ignore"), default="refuse",
        help="lens distortion in the poses: refuse (default) or ignore it knowingly",
    )  # fmt: skip
    make.add_argument(
        "--convention", choices=("opencv", "opengl"), default=None,
        help="camera axes of .npz matrices",
    )  # fmt: skip
    make.add_argument(
        "--kind", choices=("c2w", "w2c"), default=None, help="direction of .npz matrices"
    )
    make.add_argument("--overwrite", action="store_true", help="replace a dataset at OUT")
    make.add_argument("--no-progress", action="store_true", help="no progress bar")
    make.set_defaults(handler=_make)

    check = actions.add_parser(
        "check",
        help="report every problem of an EG3D dataset, its cameras and the pose sampler to use",
        description="Reads every entry and image of an EG3D dataset and lists each problem by "
        "file name (unreadable images, sizes, duplicates, labels that are not finite, not rigid, "
        "in pixels or outside the background sphere), the spread of the cameras and the "
        "pose-sampler settings for `aware3d train`. Exits with status 1 when there are errors.",
    )
    check.add_argument("dataset", type=existing_path, help="the dataset folder or .zip")
    check.add_argument("--figure", type=Path, default=None, help="write the figure (PNG) here")
    check.add_argument("--json", type=Path, default=None, help="write the report (JSON) here")
    check.add_argument(
        "--background-radius", type=positive_number, default=3.0,
        help="cameras at or beyond this distance from the origin are errors (default 3)",
    )  # fmt: skip
    check.add_argument(
        "--quick", action="store_true", help="read image headers only (no full decode)"
    )
    check.set_defaults(handler=_check)
