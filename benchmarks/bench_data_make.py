"""Benchmark: ``aware3d data make`` on N images of 512 px to an EG3D dataset of 256 px.

Generates N smooth-textured 512 x 512 RGB PNGs (content like a photograph's: gradients, blobs and
mild noise, which compresses like real images) with cameras on EG3D's FFHQ-like sphere in a
nerfstudio ``transforms.json`` (not timed), then times the whole ``data make`` path in this process:
reading the poses, normalising the scene, and writing the dataset (square crop around the
principal point, Lanczos resize to 256 px, PNG encoding at compression level 1, ``dataset.json``),
once to a folder and once to a zip archive. The target is under a minute for 1,000 images on 2
cores; ``make_dataset`` runs in one process, so the second core is idle.

Usage::

    .venv/bin/python benchmarks/bench_data_make.py [--images 1000] [--size 512]
        [--resolution 256] [--out DIR]

Writes ``data_make_cpu.json`` and ``data_make_cpu.png`` under ``--out`` (``data_make_cpu_N`` for
another image count) and prints the timings.
"""

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def write_capture(folder: Path, count: int, size: int) -> Path:
    """``count`` PNGs of ``size`` px and a transforms.json (OpenGL poses, pixel intrinsics)."""
    from aware3d import sample_look_at_poses

    rng = np.random.default_rng(0)
    generator = torch.Generator().manual_seed(0)
    poses = sample_look_at_poses(math.pi / 2, math.pi / 2, (0.0, 0.0, 0.2), 0.3, 0.15, n=count,
                                 generator=generator, dtype=torch.float64)  # fmt: skip
    ys, xs = np.mgrid[0:size, 0:size] / size
    (folder / "images").mkdir(parents=True)
    frames = []
    for index in range(count):
        centre = rng.uniform(0.3, 0.7, (3, 2))
        channels = [
            np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 0.05) + 0.3 * xs * (c + 1) / 3
            for c, (cx, cy) in enumerate(centre)
        ]
        image = np.stack(channels, -1) + rng.normal(0, 0.02, (size, size, 3))
        pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
        name = f"images/{index:05d}.png"
        Image.fromarray(pixels).save(folder / name)
        gl = poses[index].numpy() @ np.diag([1.0, -1.0, -1.0, 1.0])
        frames.append({"file_path": name, "transform_matrix": gl.tolist()})
    focal = 4.2647 * size
    transforms = {"w": size, "h": size, "fl_x": focal, "fl_y": focal, "cx": size / 2,
                  "cy": size / 2, "frames": frames}  # fmt: skip
    (folder / "transforms.json").write_text(json.dumps(transforms))
    return folder / "transforms.json"


def time_make(transforms: Path, out: Path, resolution: int) -> float:
    from aware3d.data import make_dataset, normalize_scene, read_transforms

    start = time.perf_counter()
    posed = read_transforms(transforms)
    cameras, transform = normalize_scene(posed.cameras, up="auto", front="auto")
    make_dataset(posed.with_cameras(cameras), out, resolution=resolution, progress=False,
                 transform=transform)  # fmt: skip
    return time.perf_counter() - start


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    kinds = ["folder", "zip"]
    seconds = [result["folder_s"], result["zip_s"]]
    per_1000 = [s * 1000 / result["images"] for s in seconds]
    bars = ax.bar(kinds, per_1000, color=["tab:blue", "tab:orange"])
    ax.bar_label(bars, [f"{v:.1f} s" for v in per_1000])
    ax.axhline(60, color="red", linestyle="--", label="target: 60 s per 1,000 images")
    ax.set_ylabel("seconds per 1,000 images")
    ax.set_title(f"data make: {result['images']} images {result['size']} -> "
                 f"{result['resolution']} px, CPU")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description="aware3d data make benchmark")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        start = time.perf_counter()
        transforms = write_capture(folder / "capture", args.images, args.size)
        generate = time.perf_counter() - start
        folder_s = time_make(transforms, folder / "dataset", args.resolution)
        zip_s = time_make(transforms, folder / "dataset.zip", args.resolution)
        zip_mib = (folder / "dataset.zip").stat().st_size / 2**20
    result = {
        "images": args.images,
        "size": args.size,
        "resolution": args.resolution,
        "folder_s": folder_s,
        "zip_s": zip_s,
        "folder_per_1000_s": folder_s * 1000 / args.images,
        "zip_per_1000_s": zip_s * 1000 / args.images,
        "zip_mib": zip_mib,
        "generate_s": generate,
        "meta": {
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "processes": 1,
            "torch": torch.__version__,
            "pillow": Image.__version__,
            "command": "python benchmarks/bench_data_make.py " + " ".join(sys.argv[1:]),
        },
    }
    stem = "data_make_cpu" if args.images == 1000 else f"data_make_cpu_{args.images}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(result, args.out / f"{stem}.png")
    print(f"{args.images} images {args.size} -> {args.resolution} px: folder {folder_s:.2f} s, "
          f"zip {zip_s:.2f} s ({result['folder_per_1000_s']:.1f} / {result['zip_per_1000_s']:.1f} "
          f"s per 1,000 images); wrote {args.out / stem}.json")  # fmt: skip


if __name__ == "__main__":
    main()
