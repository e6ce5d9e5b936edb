"""Benchmark: the volume-rendering path (BallGAN/EG3D) beside the splat path at the same resolution.

Volume path: :class:`aware3d.nn.TriplaneRenderer` with a :class:`aware3d.nn.TriplaneDecoder` and a
:class:`aware3d.nn.SphericalBackground`, on random tri-planes, EG3D's 48 coarse + 48 importance
samples per ray (96 field evaluations per ray) in ``[2.25, 3.3]``:

* ``eg3d``: planes ``[B, 3, 32, 256, 256]``, ``TriplaneDecoder(32, 32)`` (64 hidden),
  ``ballgan_background(512)`` (32 features);
* ``small``: planes ``[B, 3, 16, 32, 32]`` with ``ballgan_small``'s decoder (16 -> 32 hidden
  -> 16) and background (16 features), same 48 + 48 samples.

Splat path: :func:`aware3d.rasterize` of the Gaussians that
``aware3d.nn.gsgan_decoder_256(num_levels=L)`` outputs (``L = 5``: 87,296 Gaussians, GSGAN's 256
configuration; 3 features, RGB, as GSGAN rasterizes), made once with random style codes; backend
``"torch"`` on CPU, ``"gsplat"`` on CUDA.
Only the rasterizer is timed: the Gaussian decoder runs once per scene, whatever the resolution
(see ``bench_generator.py`` for it), and the splat path has no background here.

Both paths see the same cameras (FFHQ focal length, radius 2.7, looking at ``(0, 0, 0.2)``, one
camera per scene) at ``R x R`` for ``R`` in 32 and 64 (EG3D's neural-rendering resolution is 64)
and batch 1 and 2. For each, the forward pass (``torch.no_grad``) and forward + backward
(gradients w.r.t. the planes, the background's style codes and the modules' parameters, or w.r.t.
every Gaussian parameter, from a fixed random upstream gradient on the image) are timed: a few
warm-up calls, then the median of ``--repeats`` calls of wall time and of process CPU time.
Throughput is rays per second, ``B * C * H * W / seconds`` (for the splat path: pixels per
second). The ratio splat / volume is that of the two throughputs measured in the same run (with
one thread the CPU-time ratio hardly depends on other processes on a shared machine). Also the
whole ``aware3d.models.ballgan_small()`` generator (mapping, tri-plane generator, volume
rendering at 16 x 16 with 12 + 12 samples, super-resolution to 32 x 32), forward and
forward + backward, images per second.

Each measurement runs in a fresh subprocess; peak memory is the growth of ``ru_maxrss`` over the
resident size after setup (CPU) or of ``torch.cuda.max_memory_allocated`` over the memory held
(CUDA), after the forward calls and again after the forward + backward calls.

Usage::

    .venv/bin/python benchmarks/bench_volume.py [--device cpu|cuda] [--threads 1] [--repeats 5]
        [--warmup 2] [--resolutions 32 64] [--batches 1 2] [--levels 5] [--quick] [--out DIR]

Writes ``volume_<device>.json``, ``volume_<device>.md`` and ``volume_<device>.png``
(``volume_<device>_quick.*`` with ``--quick``) under ``--out`` (default ``benchmarks/results``)
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
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

#: Tri-plane configurations: plane channels, plane resolution, decoder hidden width and output
#: features, background style width.
PLANES = {
    "eg3d": {"channels": 32, "resolution": 256, "hidden": 64, "features": 32, "w_dim": 512},
    "small": {"channels": 16, "resolution": 32, "hidden": 32, "features": 16, "w_dim": 64},
}
W_DIM = 512  # the Gaussian decoder's style width


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _current_rss_kib() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


class _Memory:
    """Peak extra memory since construction: ru_maxrss growth (CPU) or CUDA allocator peak."""

    def __init__(self, device: str) -> None:
        self.device = device
        _sync(device)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = _current_rss_kib() * 1024

    def peak_mib(self) -> float:
        _sync(self.device)
        if self.device == "cuda":
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0, peak - self.base) / 2**20


def _cameras(batch: int, device: str):
    from aware3d.cameras import FFHQ_FOCAL, Cameras, look_at

    origins = torch.tensor([[[0.0, 0.0, 2.7]]], device=device)
    cam2world = look_at(origins, [0.0, 0.0, 0.2]).expand(batch, 1, 4, 4).contiguous()
    f = FFHQ_FOCAL
    intrinsics = torch.tensor([[f, 0, 0.5], [0, f, 0.5], [0, 0, 1.0]], device=device)
    return Cameras(cam2world, intrinsics.expand(batch, 1, 3, 3).contiguous())


def _time_calls(call, device: str, warmup: int, repeats: int) -> tuple[float, float, float]:
    """Median wall and CPU seconds of ``repeats`` calls after ``warmup``; also the minimum wall."""
    for _ in range(warmup):
        call()
    _sync(device)
    walls, cpus = [], []
    for _ in range(repeats):
        _sync(device)
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        _sync(device)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), min(walls)


def _measure(forward, backward, device: str, warmup: int, repeats: int, rays: int) -> dict:
    """Times ``forward`` (under no_grad) then ``backward`` (forward + backward); peak memory."""
    memory = _Memory(device)

    def fwd() -> None:
        with torch.no_grad():
            forward()

    fwd_s, fwd_cpu_s, fwd_min_s = _time_calls(fwd, device, warmup, repeats)
    peak_fwd = memory.peak_mib()
    both_s, both_cpu_s, both_min_s = _time_calls(backward, device, warmup, repeats)
    peak_both = memory.peak_mib()
    return {
        "rays": rays,
        "fwd_s": fwd_s,
        "fwd_cpu_s": fwd_cpu_s,
        "fwd_min_s": fwd_min_s,
        "fwdbwd_s": both_s,
        "fwdbwd_cpu_s": both_cpu_s,
        "fwdbwd_min_s": both_min_s,
        "fwd_rays_per_s": rays / fwd_s,
        "fwdbwd_rays_per_s": rays / both_s,
        "fwd_rays_per_cpu_s": rays / fwd_cpu_s,
        "fwdbwd_rays_per_cpu_s": rays / both_cpu_s,
        "peak_fwd_mib": peak_fwd,
        "peak_fwdbwd_mib": peak_both,
        "warmup": warmup,
        "repeats": repeats,
    }


# ---------------------------------------------------------------------- children


def _child_volume(spec: dict) -> dict:
    from aware3d.nn import SphericalBackground, TriplaneDecoder, TriplaneRenderer
    from aware3d.nn.background import ballgan_background

    device, batch, size = spec["device"], spec["batch"], spec["resolution"]
    cfg = PLANES[spec["planes"]]
    torch.manual_seed(0)
    decoder = TriplaneDecoder(cfg["channels"], cfg["features"], hidden=cfg["hidden"])
    if spec["planes"] == "eg3d":
        background = ballgan_background(cfg["w_dim"])
    else:  # ballgan_small's background
        background = SphericalBackground(
            cfg["w_dim"], feature_dim=cfg["features"], hidden=32, num_layers=2, num_freqs=2,
            output_activation="sigmoid",
        )  # fmt: skip
    renderer = TriplaneRenderer(
        decoder, background, num_coarse=spec["num_coarse"], num_fine=spec["num_fine"]
    ).to(device)
    res = cfg["resolution"]
    planes = torch.randn(batch, 3, cfg["channels"], res, res, device=device)
    w = torch.randn(batch, cfg["w_dim"], device=device)
    cameras = _cameras(batch, device)
    upstream = torch.rand(batch, 1, size, size, cfg["features"], device=device)
    planes_leaf, w_leaf = planes.clone().requires_grad_(), w.clone().requires_grad_()

    def forward() -> None:
        renderer(planes, cameras, size, size, w).image.sum().item()

    def backward() -> None:
        renderer.zero_grad(set_to_none=True)
        planes_leaf.grad = w_leaf.grad = None
        out = renderer(planes_leaf, cameras, size, size, w_leaf)
        out.image.backward(upstream)

    rays = batch * size * size
    result = _measure(forward, backward, device, spec["warmup"], spec["repeats"], rays)
    samples = spec["num_coarse"] + spec["num_fine"]
    result.update(
        {
            "path": "volume",
            "planes": spec["planes"],
            "plane_shape": [3, cfg["channels"], res, res],
            "features": cfg["features"],
            "resolution": size,
            "batch": batch,
            "num_coarse": spec["num_coarse"],
            "num_fine": spec["num_fine"],
            "samples_per_ray": samples,
            "fwd_samples_per_s": result["fwd_rays_per_s"] * samples,
            "fwdbwd_samples_per_s": result["fwdbwd_rays_per_s"] * samples,
        }
    )
    return result


def _child_gaussians(spec: dict) -> dict:
    """Decodes ``batch`` scenes with ``gsgan_decoder_256(num_levels=L)``; saves them on CPU."""
    from aware3d.nn import gsgan_decoder_256

    device = spec["device"]
    torch.manual_seed(0)
    decoder = gsgan_decoder_256(W_DIM, num_levels=spec["levels"]).to(device)
    ws = torch.randn(spec["batch"], decoder.num_ws, W_DIM, device=device)
    cameras = _cameras(spec["batch"], device)
    forward = cameras.forward_directions[:, 0] if decoder.camera_conditioning else None
    with torch.no_grad():
        g = decoder(ws, forward)
    tensors = {
        name: getattr(g, name).detach().cpu()
        for name in ("means", "quats", "scales", "opacities", "features")
    }
    torch.save(tensors, spec["path"])
    return {"num_gaussians": decoder.num_gaussians, "feature_dim": decoder.feature_dim}


def _child_splat(spec: dict) -> dict:
    from aware3d import Gaussians, rasterize

    device, batch, size = spec["device"], spec["batch"], spec["resolution"]
    backend = "gsplat" if device == "cuda" else "torch"  # never gsplat with CPU tensors
    saved = torch.load(spec["path"])
    leaves = [
        saved[name][:batch].to(device).requires_grad_()
        for name in ("means", "quats", "scales", "opacities", "features")
    ]
    scene = Gaussians(*leaves)  # validated once, outside the timed calls
    cameras = _cameras(batch, device)
    channels = leaves[-1].shape[-1]
    upstream = torch.rand(batch, 1, size, size, channels + 1, device=device)

    def forward() -> None:
        out = rasterize(scene, cameras, size, size, backend=backend)
        out.features.sum().item()

    def backward() -> None:
        for leaf in leaves:
            leaf.grad = None
        out = rasterize(scene, cameras, size, size, backend=backend)
        torch.cat([out.features, out.alpha], -1).backward(upstream)

    rays = batch * size * size
    result = _measure(forward, backward, device, spec["warmup"], spec["repeats"], rays)
    result.update(
        {
            "path": "splat",
            "backend": backend,
            "levels": spec["levels"],
            "num_gaussians": leaves[0].shape[1],
            "features": channels,
            "resolution": size,
            "batch": batch,
        }
    )
    return result


def _child_generator(spec: dict) -> dict:
    from aware3d.models import ballgan_small

    device, batch = spec["device"], spec["batch"]
    torch.manual_seed(0)
    g = ballgan_small().to(device)
    size = g.superresolution.output_resolution
    low = g.neural_resolution
    z = torch.randn(batch, g.z_dim, device=device)
    z_bg = torch.randn(batch, g.z_background_dim, device=device)
    cameras = _cameras(batch, device)
    upstream = torch.rand(batch, 1, size, size, 3, device=device)

    def forward() -> None:
        g(z, cameras, size, size, z_background=z_bg).images.sum().item()

    def backward() -> None:
        g.zero_grad(set_to_none=True)
        out = g(z, cameras, size, size, z_background=z_bg)
        out.images.backward(upstream)

    rays = batch * low * low
    result = _measure(forward, backward, device, spec["warmup"], spec["repeats"], rays)
    renderer = g.renderer
    result.update(
        {
            "path": "ballgan_small",
            "batch": batch,
            "resolution": size,
            "neural_resolution": low,
            "num_coarse": renderer.num_coarse,
            "num_fine": renderer.num_fine,
            "samples_per_ray": renderer.num_coarse + renderer.num_fine,
            "parameters": sum(p.numel() for p in g.parameters()),
            "fwd_images_per_s": batch / result["fwd_s"],
            "fwdbwd_images_per_s": batch / result["fwdbwd_s"],
        }
    )
    return result


CHILDREN = {
    "volume": _child_volume,
    "gaussians": _child_gaussians,
    "splat": _child_splat,
    "generator": _child_generator,
}


def _run_child(spec: dict, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    result = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec), "--threads", str(threads)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"child {spec} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- driver


def _ratios(volume: list[dict], splat: list[dict]) -> list[dict]:
    """Splat / volume throughput for every (planes, resolution, batch) measured in this run."""
    by_key = {(r["resolution"], r["batch"]): r for r in splat}
    rows = []
    for v in volume:
        s = by_key.get((v["resolution"], v["batch"]))
        if s is None:
            continue
        rows.append(
            {
                "planes": v["planes"],
                "resolution": v["resolution"],
                "batch": v["batch"],
                "fwd": s["fwd_rays_per_s"] / v["fwd_rays_per_s"],
                "fwdbwd": s["fwdbwd_rays_per_s"] / v["fwdbwd_rays_per_s"],
                "fwd_cpu": s["fwd_rays_per_cpu_s"] / v["fwd_rays_per_cpu_s"],
                "fwdbwd_cpu": s["fwdbwd_rays_per_cpu_s"] / v["fwdbwd_rays_per_cpu_s"],
            }
        )
    return rows


def run(args: argparse.Namespace) -> dict:
    common = {"device": args.device, "warmup": args.warmup, "repeats": args.repeats}
    volume, splat = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "gaussians.pt")
        spec = {**common, "levels": args.levels, "batch": max(args.batches), "path": path}
        gaussians = _run_child({"kind": "gaussians", **spec}, args.threads)
        print(
            f"gsgan_decoder_256(num_levels={args.levels}): "
            f"{gaussians['num_gaussians']:,} Gaussians, "
            f"{gaussians['feature_dim']} features",
            flush=True,
        )
        for size in args.resolutions:
            for batch in args.batches:
                for planes in args.planes:
                    row = _run_child(
                        {
                            "kind": "volume", **common, "planes": planes, "resolution": size,
                            "batch": batch, "num_coarse": args.num_coarse,
                            "num_fine": args.num_fine,
                        },
                        args.threads,
                    )  # fmt: skip
                    volume.append(row)
                    print(_row_text(row, f"volume {planes:5s}"), flush=True)
                row = _run_child(
                    {"kind": "splat", **spec, "resolution": size, "batch": batch}, args.threads
                )
                splat.append(row)
                print(_row_text(row, f"splat N={row['num_gaussians']:,}"), flush=True)
    generator = _run_child(
        {"kind": "generator", **common, "batch": args.generator_batch}, args.threads
    )
    print(
        f"ballgan_small batch {generator['batch']}: {generator['fwd_images_per_s']:.2f} images/s "
        f"fwd, {generator['fwdbwd_images_per_s']:.2f} images/s fwd+bwd",
        flush=True,
    )
    return {
        "volume": volume,
        "splat": splat,
        "ratios": _ratios(volume, splat),
        "generator": generator,
        "gaussians": gaussians,
    }


def _row_text(row: dict, name: str) -> str:
    return (
        f"  {name:20s} {row['resolution']:>3d}x{row['resolution']:<3d} B={row['batch']}  "
        f"fwd {row['fwd_s'] * 1e3:8.1f} ms {row['fwd_rays_per_s']:10.4g} rays/s  "
        f"fwd+bwd {row['fwdbwd_s'] * 1e3:8.1f} ms {row['fwdbwd_rays_per_s']:10.4g} rays/s  "
        f"peak +{row['peak_fwdbwd_mib']:.0f} MiB"
    )


# ---------------------------------------------------------------------- output


def _markdown(result: dict) -> str:
    meta = result["meta"]
    g = result["generator"]
    n = result["gaussians"]["num_gaussians"]
    load = meta["loadavg_start"], meta["loadavg_end"]
    lines = [
        f"# Volume rendering vs splatting ({meta['device']})",
        "",
        f"`{meta['command']}`",
        "",
        f"{meta['device_name']}, torch {meta['torch']}, {meta['threads']} thread(s), "
        f"{meta['cpu_count']} CPUs, value checks {'on' if meta['value_checks'] else 'off'}. "
        f"Load average (1 min) {load[0][0]:.2f} at the start, {load[1][0]:.2f} at the end: other "
        "processes shared the machine, so absolute times are indicative only; compare the ratios "
        "(the CPU-time ratio hardly depends on the load with one thread).",
        "",
        f"Median of {meta['repeats']} calls after {meta['warmup']} warm-up calls, in a fresh "
        "process per row. Volume: `TriplaneRenderer` + `TriplaneDecoder` + `SphericalBackground` "
        f"on random planes, {meta['num_coarse']} + {meta['num_fine']} samples per ray. Splat: "
        f"`rasterize` (backend `{result['splat'][0]['backend']}`) of the {n:,} Gaussians of "
        f"`gsgan_decoder_256(num_levels={meta['levels']})` ({result['gaussians']['feature_dim']} "
        "features; the decoder itself is not timed). Throughput = B x H x W / median wall time "
        "(one camera per scene). Peak = growth of the process's memory high-water mark.",
        "",
        "| path | size | res | B | fwd ms | fwd rays/s | fwd+bwd ms | fwd+bwd rays/s "
        "| peak MiB fwd / fwd+bwd |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = sorted(
        result["volume"] + result["splat"],
        key=lambda r: (r["resolution"], r["batch"], r["path"] == "splat", r.get("planes", "")),
    )
    for r in rows:
        if r["path"] == "volume":
            shape = "x".join(str(s) for s in r["plane_shape"])
            name, what = f"volume ({r['planes']})", f"{shape}, {r['samples_per_ray']} samples/ray"
        else:
            name, what = "splat", f"{r['num_gaussians']:,} Gaussians"
        lines.append(
            f"| {name} | {what} | {r['resolution']} | {r['batch']} | {r['fwd_s'] * 1e3:.1f} | "
            f"{r['fwd_rays_per_s']:.3g} | {r['fwdbwd_s'] * 1e3:.1f} | "
            f"{r['fwdbwd_rays_per_s']:.3g} | {r['peak_fwd_mib']:.0f} / "
            f"{r['peak_fwdbwd_mib']:.0f} |"
        )
    lines += [
        "",
        "Splat / volume throughput, same run (wall / CPU time):",
        "",
        "| volume planes | res | B | fwd | fwd+bwd |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["ratios"]:
        lines.append(
            f"| {r['planes']} | {r['resolution']} | {r['batch']} | {r['fwd']:.2f}x / "
            f"{r['fwd_cpu']:.2f}x | {r['fwdbwd']:.2f}x / {r['fwdbwd_cpu']:.2f}x |"
        )
    lines += _growth(result)
    lines += [
        "",
        f"Whole `ballgan_small()` generator ({g['parameters']:,} parameters; volume rendering at "
        f"{g['neural_resolution']}x{g['neural_resolution']} with {g['num_coarse']} + "
        f"{g['num_fine']} samples, super-resolution to {g['resolution']}x{g['resolution']}), "
        f"batch {g['batch']}: {g['fwd_images_per_s']:.2f} images/s forward "
        f"({g['fwd_s'] * 1e3:.1f} ms, {g['fwd_rays_per_s']:.3g} rays/s), "
        f"{g['fwdbwd_images_per_s']:.2f} images/s forward+backward "
        f"({g['fwdbwd_s'] * 1e3:.1f} ms, {g['fwdbwd_rays_per_s']:.3g} rays/s).",
    ]
    return "\n".join(lines) + "\n"


def _growth(result: dict) -> list[str]:
    """How each path's time grows from the smallest to the largest resolution (batch 1)."""
    resolutions = sorted({r["resolution"] for r in result["volume"]})
    batch = min(r["batch"] for r in result["volume"])
    if len(resolutions) < 2:
        return []
    low, high = resolutions[0], resolutions[-1]

    def growth(rows: list[dict], key: str) -> float:
        by_res = {r["resolution"]: r[key] for r in rows if r["batch"] == batch}
        return by_res[high] / by_res[low]

    parts = []
    for planes in dict.fromkeys(r["planes"] for r in result["volume"]):
        mine = [r for r in result["volume"] if r["planes"] == planes]
        parts.append(
            f"volume ({planes}) {growth(mine, 'fwd_s'):.1f}x forward, "
            f"{growth(mine, 'fwdbwd_s'):.1f}x forward+backward"
        )
    splat = result["splat"]
    parts.append(
        f"splat {growth(splat, 'fwd_s'):.1f}x forward, {growth(splat, 'fwdbwd_s'):.1f}x "
        "forward+backward"
    )
    return [
        "",
        f"Time from {low}x{low} to {high}x{high} (batch {batch}, {(high / low) ** 2:.0f}x the "
        f"rays): {'; '.join(parts)}. The volume path costs per ray (every ray evaluates its "
        "samples); the splat path also costs per Gaussian (projection, sorting, tile lists), "
        "which dominates where there are many more Gaussians than pixels, so the ratio grows "
        "with the resolution.",
    ]


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullLocator

    plain = FuncFormatter(lambda value, _: f"{value:g}")

    fig, (ax_rate, ax_ratio) = plt.subplots(1, 2, figsize=(11, 4))
    batch = min(r["batch"] for r in result["volume"])
    groups = [(f"volume {p}", [r for r in result["volume"] if r["planes"] == p]) for p in
              dict.fromkeys(r["planes"] for r in result["volume"])]  # fmt: skip
    groups.append(("splat", result["splat"]))
    for (name, mine), color in zip(groups, ("C0", "C1", "C2", "C3"), strict=False):
        mine = sorted((r for r in mine if r["batch"] == batch), key=lambda r: r["resolution"])
        res = [r["resolution"] for r in mine]
        ax_rate.loglog(res, [r["fwd_rays_per_s"] for r in mine], "o-", color=color,
                       label=f"{name} fwd")  # fmt: skip
        ax_rate.loglog(res, [r["fwdbwd_rays_per_s"] for r in mine], "s--", color=color,
                       label=f"{name} fwd+bwd")  # fmt: skip
    resolutions = sorted({r["resolution"] for r in result["volume"]})
    ax_rate.xaxis.set_minor_locator(NullLocator())
    ax_rate.set_xticks(resolutions, [str(r) for r in resolutions])
    ax_rate.yaxis.set_major_formatter(plain)
    ax_rate.yaxis.set_minor_formatter(plain)
    ax_rate.set_xlabel("resolution (pixels per side)")
    ax_rate.set_ylabel("rays (pixels) per second")
    ax_rate.set_title(f"throughput, batch {batch} ({result['meta']['device']})")
    ax_rate.grid(True, which="both", alpha=0.3)
    ax_rate.legend(fontsize=7)
    ratios = result["ratios"]
    labels = [f"{r['planes']}\n{r['resolution']}, B{r['batch']}" for r in ratios]
    x = range(len(ratios))
    ax_ratio.bar([i - 0.2 for i in x], [r["fwd"] for r in ratios], 0.4, label="fwd")
    ax_ratio.bar([i + 0.2 for i in x], [r["fwdbwd"] for r in ratios], 0.4, label="fwd+bwd")
    ax_ratio.set_xticks(list(x), labels, fontsize=7)
    ax_ratio.set_yscale("log")
    ax_ratio.axhline(1.0, color="k", lw=0.8)
    ax_ratio.yaxis.set_major_formatter(plain)
    ax_ratio.yaxis.set_minor_formatter(plain)
    ax_ratio.set_ylabel("splat / volume throughput")
    ax_ratio.set_title("speed-up of splatting, same run (wall time)")
    ax_ratio.grid(True, axis="y", which="both", alpha=0.3)
    ax_ratio.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--planes", nargs="+", choices=tuple(PLANES), default=["eg3d", "small"])
    parser.add_argument("--num-coarse", type=int, default=48)
    parser.add_argument("--num-fine", type=int, default=48)
    parser.add_argument(
        "--levels", type=int, default=5, help="gsgan_decoder_256 levels (5: 87,296)"
    )
    parser.add_argument("--generator-batch", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child is not None:
        spec = json.loads(args.child)
        print(json.dumps(CHILDREN[spec["kind"]](spec)))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.quick:
        args.resolutions, args.batches, args.planes = [16], [1], ["small"]
        args.levels, args.repeats, args.warmup, args.generator_batch = 3, 1, 1, 1
    import aware3d

    meta = {
        "device": args.device,
        "device_name": (
            torch.cuda.get_device_name() if args.device == "cuda" else platform.processor()
        )
        or platform.machine(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "value_checks": aware3d.value_checks_enabled()
        if hasattr(aware3d, "value_checks_enabled")
        else None,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "resolutions": args.resolutions,
        "batches": args.batches,
        "planes": args.planes,
        "num_coarse": args.num_coarse,
        "num_fine": args.num_fine,
        "levels": args.levels,
        "quick": args.quick,
        "command": " ".join(["python", "benchmarks/bench_volume.py", *sys.argv[1:]]),
        "loadavg_start": list(os.getloadavg()),
    }
    start = time.perf_counter()
    result = {"meta": meta, **run(args)}
    meta["loadavg_end"] = list(os.getloadavg())
    meta["total_s"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"volume_{args.device}{'_quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = _markdown(result)
    stem.with_suffix(".md").write_text(markdown)
    _plot(result, stem.with_suffix(".png"))
    print()
    print(markdown)
    print(f"wrote {stem}.json, .md, .png in {meta['total_s']:.0f} s")


if __name__ == "__main__":
    main()
