"""Benchmark: the torch splat backend vs brute force on CPU; gsplat vs torch on a GPU.

CPU: N in {1k, 4k, 16k} Gaussians, 64x64 and 128x128, B x C in {1x1, 4x1, 4x4}, float32, F = 3.
For each configuration the torch backend (``rasterize(..., backend="torch")``) and the brute-force
reference (``tests/splat_reference.py::reference_rasterize_dense``: every pixel against every
Gaussian, depth sorted, pixel-chunked so that forward+backward fits in memory) are timed for the
forward pass (under ``torch.no_grad``) and forward+backward (gradients w.r.t. means, quats, scales,
opacities and features from a fixed random upstream gradient on features and alpha): median
wall-clock time and median process CPU time. Each (method, configuration) runs in a fresh
subprocess; peak memory is the growth of the process's ``ru_maxrss`` high-water mark over the
resident size just before the first call (inputs already allocated), measured after the forward
runs and again after the forward+backward runs.

Brute force is O(images x N x pixels); where that exceeds ``--brute-budget`` fragment
evaluations it is not run: its time is extrapolated from the same (N, size) at 1x1 times the
number of images, and marked ``"extrapolated": true`` in the JSON (its memory is then not
reported).

GPU (only when CUDA is available): gsplat and the torch backend at GSGAN's sizes (87,296 Gaussians
at 256x256, 349,440 at 512x512), batch 1 and 32 (one camera per scene), ms per image for forward
and forward+backward (CUDA events, median), and peak ``torch.cuda.max_memory_allocated``.

Usage::

    .venv/bin/python benchmarks/bench_splat.py [--quick] [--threads 1] [--repeats 3] [--out DIR]

Writes ``splat_cpu.json``, ``splat_cpu.png`` and ``splat_cpu.md`` (``splat_cpu_quick.*`` with
``--quick``), and ``splat_gpu.json`` / ``splat_gpu.md`` when CUDA is available, under ``--out``,
and prints the tables.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

COUNTS = (1024, 4096, 16384)
SIZES = (64, 128)
LAYOUTS = ((1, 1), (4, 1), (4, 4))
QUICK_COUNTS = (1024,)
QUICK_SIZES = (64,)
QUICK_LAYOUTS = ((1, 1), (2, 2))
GPU_CASES = ((87_296, 256), (349_440, 512))
GPU_BATCHES = (1, 32)
CHANNELS = 3


def _scene(batch: int, cams: int, count: int, device: str = "cpu"):
    from splat_reference import random_cameras, random_gaussians  # pyright: ignore[reportMissingImports]

    generator = torch.Generator().manual_seed(count + 7 * batch + cams)
    cameras = random_cameras(batch, cams, generator, torch.float32)
    # Objects in [-1, 1]^3 seen from 2.7 away; scales so that 16k Gaussians cover the object.
    gaussians = random_gaussians(
        batch, count, CHANNELS, generator, torch.float32, scale=(0.005, 0.03)
    )
    return gaussians.to(device), cameras.to(device)


def _current_rss_kib() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _max_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _worker(spec: dict) -> dict:
    """Times one (method, configuration) in this process; returns the measurements."""
    torch.set_num_threads(spec["threads"])
    from aware3d.functional.splat import rasterize
    from aware3d.gaussians import Gaussians
    from splat_reference import reference_rasterize_dense  # pyright: ignore[reportMissingImports]

    batch, cams, count, size = spec["batch"], spec["cams"], spec["count"], spec["size"]
    gaussians, cameras = _scene(batch, cams, count)
    viewmats, Ks = cameras.viewmats(), cameras.Ks(size, size)
    generator = torch.Generator().manual_seed(1)
    upstream = torch.rand(batch, cams, size, size, CHANNELS + 1, generator=generator)
    tensors = (
        gaussians.means,
        gaussians.quats,
        gaussians.scales,
        gaussians.opacities,
        gaussians.features,
    )
    leaves = [t.clone().requires_grad_() for t in tensors]
    scene = Gaussians(*leaves)  # validated once, outside the timed calls

    def forward(grad: bool) -> torch.Tensor:
        if spec["method"] == "torch":
            out = rasterize(scene, cameras, size, size, backend="torch")
            image = torch.cat([out.features, out.alpha], -1)
            if grad:
                image.backward(upstream)
            return image
        return reference_rasterize_dense(
            *leaves, viewmats, Ks, size, size, grad_features=upstream if grad else None
        )

    def timed(grad: bool) -> tuple[float, float]:
        for leaf in leaves:
            leaf.grad = None
        wall, cpu = time.perf_counter(), time.process_time()
        if grad:
            forward(True)
        else:
            with torch.no_grad():
                forward(False)
        return time.perf_counter() - wall, time.process_time() - cpu

    repeats = spec["repeats"]
    base = _current_rss_kib()
    fwd = [timed(False) for _ in range(repeats)]
    peak_fwd = _max_rss_kib() - base
    both = [timed(True) for _ in range(repeats)]
    peak_both = _max_rss_kib() - base
    result = {
        "fwd_s": statistics.median(t[0] for t in fwd),
        "fwd_cpu_s": statistics.median(t[1] for t in fwd),
        "fwdbwd_s": statistics.median(t[0] for t in both),
        "fwdbwd_cpu_s": statistics.median(t[1] for t in both),
        "peak_fwd_mib": max(0, peak_fwd) / 1024,
        "peak_fwdbwd_mib": max(0, peak_both) / 1024,
        "repeats": repeats,
    }
    if spec["method"] == "torch":
        result["pairs"] = _count_pairs(gaussians, cameras, size)
    return result


def _count_pairs(gaussians, cameras, size: int) -> int:
    """Gaussian-tile pairs the torch backend evaluates (tile size of the torch backend)."""
    from aware3d.functional import splat
    from aware3d.functional._splat_project import project
    from aware3d.functional._splat_tiles import intersect_tiles

    with torch.no_grad():
        proj = project(
            gaussians.means,
            gaussians.quats,
            gaussians.scales,
            gaussians.opacities,
            cameras.viewmats(),
            cameras.Ks(size, size),
            size,
            size,
            0.3,
            0.01,
            1e10,
        )
        images = proj.depths.shape[0] * proj.depths.shape[1]
        count = proj.depths.shape[-1]
        tiles = -(-size // splat.TILE_SIZE)
        pairs = intersect_tiles(
            proj.means2d.reshape(images, count, 2),
            proj.radii.reshape(images, count, 2),
            proj.depths.reshape(images, count),
            splat.TILE_SIZE,
            tiles,
            tiles,
        )
    return int(pairs.tile_ids.numel())


def _run_worker(spec: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cpu(args: argparse.Namespace) -> dict:
    counts = QUICK_COUNTS if args.quick else COUNTS
    sizes = QUICK_SIZES if args.quick else SIZES
    layouts = QUICK_LAYOUTS if args.quick else LAYOUTS
    rows = []
    per_image_brute: dict[tuple[int, int], dict] = {}
    for count in counts:
        for size in sizes:
            for batch, cams in layouts:
                images = batch * cams
                spec = {
                    "batch": batch,
                    "cams": cams,
                    "count": count,
                    "size": size,
                    "threads": args.threads,
                }
                row: dict = {"N": count, "size": size, "B": batch, "C": cams, "images": images}
                row["torch"] = _run_worker({**spec, "method": "torch", "repeats": args.repeats})
                cost = images * count * size * size
                if cost <= args.brute_budget or (count, size) not in per_image_brute:
                    brute_repeats = 1 if cost > args.brute_budget / 8 else args.repeats
                    brute = _run_worker({**spec, "method": "brute", "repeats": brute_repeats})
                    brute["extrapolated"] = False
                    if images == 1:
                        per_image_brute[(count, size)] = brute
                else:
                    one = per_image_brute[(count, size)]
                    brute = {
                        key: one[key] * images
                        for key in ("fwd_s", "fwd_cpu_s", "fwdbwd_s", "fwdbwd_cpu_s")
                    }
                    brute["extrapolated"] = True
                    brute["note"] = f"1x1 time x {images} images; not run (cost {cost:.2e})"
                row["brute"] = brute
                if "error" not in row["torch"] and "error" not in brute:
                    for key in ("fwd_s", "fwdbwd_s", "fwd_cpu_s", "fwdbwd_cpu_s"):
                        row[f"speedup_{key}"] = brute[key] / row["torch"][key]
                rows.append(row)
                print(_format_row(row), flush=True)
    return {
        "device": "cpu",
        "threads": args.threads,
        "dtype": "float32",
        "features": CHANNELS,
        "repeats": args.repeats,
        "brute_budget": args.brute_budget,
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "rows": rows,
    }


_HEADER = (
    "| N | size | BxC | torch fwd ms | torch fwd+bwd ms | brute fwd ms | brute fwd+bwd ms "
    "| speed-up fwd+bwd (wall / cpu) | torch peak MiB fwd / fwd+bwd | brute peak MiB fwd+bwd "
    "| pairs |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _format_row(row: dict) -> str:
    t, b = row["torch"], row["brute"]
    if "error" in t or "error" in b:
        errors = f"{t.get('error')} {b.get('error')}"
        return f"| {row['N']} | {row['size']} | {row['B']}x{row['C']} | error: {errors} |"
    mark = "*" if b.get("extrapolated") else ""
    brute_peak = "-" if b.get("extrapolated") else f"{b['peak_fwdbwd_mib']:.0f}"
    return (
        f"| {row['N']} | {row['size']} | {row['B']}x{row['C']} | {1e3 * t['fwd_s']:.1f} | "
        f"{1e3 * t['fwdbwd_s']:.1f} | {1e3 * b['fwd_s']:.0f}{mark} | "
        f"{1e3 * b['fwdbwd_s']:.0f}{mark} | "
        f"{row['speedup_fwdbwd_s']:.1f}x / {row['speedup_fwdbwd_cpu_s']:.1f}x | "
        f"{t['peak_fwd_mib']:.0f} / {t['peak_fwdbwd_mib']:.0f} | {brute_peak} | {t['pairs']} |"
    )


def _markdown_cpu(result: dict) -> str:
    lines = [
        f"# Splat benchmark (cpu, {result['threads']} thread(s), float32, F = {CHANNELS})",
        "",
        "Median wall-clock time; `*` = brute force extrapolated from 1x1 (not run). "
        "Peak MiB = growth of ru_maxrss in a fresh process.",
        "",
        _HEADER,
    ]
    lines += [_format_row(row) for row in result["rows"]]
    return "\n".join(lines) + "\n"


def _plot_cpu(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    rows = [r for r in result["rows"] if "speedup_fwd_s" in r]
    configs = sorted({(r["size"], r["B"], r["C"]) for r in rows})
    for ax, key, title in zip(
        axes, ("fwd_s", "fwdbwd_s"), ("forward", "forward+backward"), strict=True
    ):
        for i, (size, batch, cams) in enumerate(configs):
            sel = sorted(
                (r for r in rows if (r["size"], r["B"], r["C"]) == (size, batch, cams)),
                key=lambda r: r["N"],
            )
            xs = [r["N"] for r in sel]
            color = f"C{i}"
            label = f"{size}px {batch}x{cams}"
            ax.plot(xs, [r["torch"][key] for r in sel], "o-", color=color, label=f"torch {label}")
            ax.plot(xs, [r["brute"][key] for r in sel], "x--", color=color, alpha=0.6)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("Gaussians N")
        ax.set_title(f"{title} (solid: torch backend, dashed: brute force)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("median seconds per call")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_gpu(args: argparse.Namespace) -> dict:
    from aware3d.functional.splat import rasterize
    from aware3d.gaussians import Gaussians

    rows = []
    cases = GPU_CASES[:1] if args.quick else GPU_CASES
    for count, size in cases:
        for batch in GPU_BATCHES:
            for backend in ("gsplat", "torch"):
                row: dict = {"N": count, "size": size, "batch": batch, "backend": backend}
                try:
                    gaussians, cameras = _scene(batch, 1, count, "cuda")
                    leaves = [
                        t.clone().requires_grad_()
                        for t in (
                            gaussians.means,
                            gaussians.quats,
                            gaussians.scales,
                            gaussians.opacities,
                            gaussians.features,
                        )
                    ]
                    upstream = torch.rand(batch, 1, size, size, CHANNELS + 1, device="cuda")
                    scene = Gaussians(*leaves)  # validated once, outside the timed calls

                    def call(
                        grad: bool,
                        scene=scene,
                        cameras=cameras,
                        size=size,
                        upstream=upstream,
                        backend=backend,
                    ):
                        out = rasterize(scene, cameras, size, size, backend=backend)
                        if grad:
                            torch.cat([out.features, out.alpha], -1).backward(upstream)

                    def timed(grad: bool, call=call) -> float:
                        start = torch.cuda.Event(enable_timing=True)
                        end = torch.cuda.Event(enable_timing=True)
                        start.record()
                        if grad:
                            call(True)
                        else:
                            with torch.no_grad():
                                call(False)
                        end.record()
                        torch.cuda.synchronize()
                        return start.elapsed_time(end)

                    repeats = 10 if backend == "gsplat" else 3
                    timed(False)
                    timed(True)
                    torch.cuda.reset_peak_memory_stats()
                    held = torch.cuda.memory_allocated()
                    fwd = statistics.median(timed(False) for _ in range(repeats))
                    both = statistics.median(timed(True) for _ in range(repeats))
                    row.update(
                        {
                            "fwd_ms_per_image": fwd / batch,
                            "fwdbwd_ms_per_image": both / batch,
                            "peak_mib": (torch.cuda.max_memory_allocated() - held) / 2**20,
                            "repeats": repeats,
                        }
                    )
                except Exception as error:  # record OOM or a failed gsplat build, keep going
                    row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
                torch.cuda.empty_cache()
                rows.append(row)
                print(row, flush=True)
    return {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "rows": rows,
    }


def _markdown_gpu(result: dict) -> str:
    lines = [
        f"# Splat benchmark ({result['device']})",
        "",
        "| N | size | batch | backend | fwd ms/image | fwd+bwd ms/image | peak MiB |",
        "|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        if "error" in r:
            lines.append(
                f"| {r['N']} | {r['size']} | {r['batch']} | {r['backend']} | {r['error']} | | |"
            )
        else:
            lines.append(
                f"| {r['N']} | {r['size']} | {r['batch']} | {r['backend']} | "
                f"{r['fwd_ms_per_image']:.3f} | {r['fwdbwd_ms_per_image']:.3f} | "
                f"{r['peak_mib']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--brute-budget", type=float, default=7e7, help="max I*N*pixels run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(_worker(json.loads(args.worker))))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    if not args.skip_cpu:
        print(_HEADER, flush=True)
        cpu = run_cpu(args)
        (args.out / f"splat_cpu{suffix}.json").write_text(json.dumps(cpu, indent=2))
        (args.out / f"splat_cpu{suffix}.md").write_text(_markdown_cpu(cpu))
        _plot_cpu(cpu, args.out / f"splat_cpu{suffix}.png")
        print()
        print(_markdown_cpu(cpu))
    if torch.cuda.is_available():
        gpu = run_gpu(args)
        (args.out / f"splat_gpu{suffix}.json").write_text(json.dumps(gpu, indent=2))
        (args.out / f"splat_gpu{suffix}.md").write_text(_markdown_gpu(gpu))
        print(_markdown_gpu(gpu))
    else:
        print("CUDA not available: GPU part skipped")


if __name__ == "__main__":
    main()
