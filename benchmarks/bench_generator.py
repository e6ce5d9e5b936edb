"""Benchmark: the hierarchical Gaussian decoder vs its number of levels, and the whole generator.

Section 1 (decoder, CPU; also CUDA when available): GSGAN's released network
(``gsgan_decoder_256(num_levels=L)``: 256 initial tokens, 4 children, widths 512, 512, 256, 128,
128, 128, 6 gated transformer blocks, EdgeConv at finer levels) with ``L`` = 3..6 levels (5,376 to
349,440 Gaussians) at batch 1: minimum and median wall time over the repeats of a forward pass (no
grad) and of forward + backward, and peak extra memory. Each (levels, mode) runs in a fresh
subprocess; on CPU the peak is the growth of the process's ``ru_maxrss`` high-water mark during the
first call (model and inputs already allocated), on CUDA ``torch.cuda.max_memory_allocated`` minus
the memory held before the call. The cost's growth with the Gaussian count is the slope of a
least-squares line through ``log(time)`` vs ``log(N)`` (1.0 = linear), with time the minimum over
the repeats of the process CPU time on CPU (one thread by default, so CPU time is the work done and
hardly depends on other processes on a shared machine) and of wall time on CUDA. The small levels
are dominated by the fixed-size level-0 transformer, so the exponents over ``L >= 4`` and over the
last step (the two largest decoders) are reported too.

Section 2 (whole generator): mapping + decoder + spherical background + rasterize + composite,
images per second at 64x64 on CPU (and 256x256 / 512x512 with the GSGAN presets on CUDA; GSGAN
reports 2.7 ms and 3.0 ms per image for rendering). The other components are imported lazily;
the section is skipped with a message if one of them is missing.

Usage::

    .venv/bin/python benchmarks/bench_generator.py [--threads 1] [--repeats 5] [--out DIR]
        [--levels 3 4 5 6] [--skip-generator]

Writes ``generator_<device>.json``, ``generator_<device>.png`` and ``generator_<device>.md``
under ``--out`` (default ``benchmarks/results``) and prints the tables.
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

import numpy as np
import torch

W_DIM = 512


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _decoder(levels: int, device: str):
    from aware3d.nn.decoder import gsgan_decoder_256

    torch.manual_seed(0)
    return gsgan_decoder_256(W_DIM, num_levels=levels).to(device)


def _camera(decoder, ws: torch.Tensor) -> torch.Tensor | None:
    if not decoder.camera_conditioning:
        return None
    return torch.tensor([[0.0, 0.0, -1.0]], device=ws.device).expand(ws.shape[0], 3)


def _decoder_call(decoder, ws: torch.Tensor, mode: str) -> None:
    if mode == "forward":
        with torch.no_grad():
            g = decoder(ws, _camera(decoder, ws))
        g.means.sum().item()
    else:
        g = decoder(ws, _camera(decoder, ws))
        loss = g.means.sum() + g.scales.sum() + g.opacities.sum() + g.features.sum()
        loss.backward()
        decoder.zero_grad(set_to_none=True)


def _child_decoder(levels: int, mode: str, device: str, repeats: int) -> dict:
    """Runs in a subprocess: memory of the first call, then median time of ``repeats`` calls."""
    decoder = _decoder(levels, device)
    ws = torch.randn(1, decoder.num_ws, W_DIM, device=device)
    _sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    _decoder_call(decoder, ws, mode)
    _sync(device)
    first = time.perf_counter() - start
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    times, cpu_times = [], []
    for _ in range(repeats):
        _sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        _decoder_call(decoder, ws, mode)
        _sync(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {
        "levels": levels,
        "mode": mode,
        "num_gaussians": decoder.num_gaussians,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "min_cpu_s": min(cpu_times),
        "first_call_s": first,
        "peak_extra_mib": peak / 2**20,
    }


def _run_child(args: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    result = subprocess.run(
        [sys.executable, __file__, "--child", *args, "--threads", str(threads)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _exponent(xs: list[float], ys: list[float]) -> float:
    slope, _ = np.polyfit(np.log(xs), np.log(ys), 1)
    return float(slope)


def bench_decoder(device: str, levels: list[int], repeats: int, threads: int) -> dict:
    rows = []
    for level in levels:
        for mode in ("forward", "forward+backward"):
            child_args = ["decoder", str(level), mode, device, str(repeats)]
            rows.append(_run_child(child_args, threads))
            row = rows[-1]
            print(
                f"  L={level} {mode:16s} N={row['num_gaussians']:>7,d} "
                f"min {row['min_s'] * 1e3:8.1f} ms (cpu {row['min_cpu_s'] * 1e3:8.1f} ms)  "
                f"median {row['median_s'] * 1e3:8.1f} ms  "
                f"peak +{row['peak_extra_mib']:8.1f} MiB",
                flush=True,
            )
    fits = {}
    key = "min_cpu_s" if device == "cpu" else "min_s"
    for mode in ("forward", "forward+backward"):
        mine = [r for r in rows if r["mode"] == mode]
        n = [r["num_gaussians"] for r in mine]
        memory = [max(r["peak_extra_mib"], 1e-3) for r in mine]
        fits[mode] = {
            "time_exponent": _exponent(n, [r[key] for r in mine]),
            "memory_exponent": _exponent(n, memory),
        }
        if len(mine) >= 2:  # marginal growth between the two largest decoders
            fits[mode]["time_exponent_last_step"] = _exponent(n[-2:], [r[key] for r in mine[-2:]])
            fits[mode]["memory_exponent_last_step"] = _exponent(n[-2:], memory[-2:])
        big = [r for r in mine if r["levels"] >= 4]
        if len(big) >= 2:
            fits[mode]["time_exponent_L>=4"] = _exponent(
                [r["num_gaussians"] for r in big], [r[key] for r in big]
            )
    return {"rows": rows, "fits": fits}


# ---------------------------------------------------------------------- whole generator


def _generator_parts():
    """Imports the other components lazily; returns None and a reason if one is missing."""
    try:
        from aware3d.cameras import FFHQ_FOCAL, Cameras, look_at
        from aware3d.functional.splat import rasterize
        from aware3d.nn.background import SphericalBackground
        from aware3d.nn.compositing import CompositeRenderer
        from aware3d.nn.decoder import gsgan_decoder_256, gsgan_decoder_512, small_decoder
        from aware3d.nn.mapping import MappingNetwork
    except ImportError as error:  # a component is not in this checkout yet
        return None, f"skipped: {error}"
    parts = {
        "FFHQ_FOCAL": FFHQ_FOCAL,
        "Cameras": Cameras,
        "look_at": look_at,
        "rasterize": rasterize,
        "SphericalBackground": SphericalBackground,
        "CompositeRenderer": CompositeRenderer,
        "MappingNetwork": MappingNetwork,
        "presets": {
            "small": small_decoder,
            "gsgan_decoder_256": gsgan_decoder_256,
            "gsgan_decoder_512": gsgan_decoder_512,
        },
    }
    return parts, ""


def _child_generator(preset: str, resolution: int, batch: int, device: str, repeats: int) -> dict:
    parts, reason = _generator_parts()
    if parts is None:
        return {"skipped": reason}
    torch.manual_seed(0)
    decoder = parts["presets"][preset]().to(device)
    w_dim = decoder.w_dim
    mapping = parts["MappingNetwork"](w_dim, w_dim, decoder.num_ws + 1).to(device).eval()
    background = parts["SphericalBackground"](w_dim, decoder.feature_dim).to(device)
    compositor = parts["CompositeRenderer"](background).to(device)
    origins = torch.tensor([[[0.0, 0.0, 2.7]]], device=device)
    cam2world = parts["look_at"](origins, [0.0, 0.0, 0.2]).expand(batch, 1, 4, 4)
    f = parts["FFHQ_FOCAL"]
    intrinsics = torch.tensor([[f, 0, 0.5], [0, f, 0.5], [0, 0, 1.0]], device=device)
    cameras = parts["Cameras"](cam2world.contiguous(), intrinsics.expand(batch, 1, 3, 3))
    z = torch.randn(batch, w_dim, device=device)
    camera_forward = cameras.forward_directions[:, 0] if decoder.camera_conditioning else None

    def step() -> tuple[float, float]:
        _sync(device)
        start = time.perf_counter()
        with torch.no_grad():
            ws = mapping(z)
            gaussians = decoder(ws[:, :-1], camera_forward)
            _sync(device)
            mid = time.perf_counter()
            splat = parts["rasterize"](gaussians, cameras, resolution, resolution)
            image = compositor(splat, w=ws[:, -1], cameras=cameras).image
            image.sum().item()
        _sync(device)
        end = time.perf_counter()
        return end - start, end - mid

    step()
    totals, renders = zip(*(step() for _ in range(repeats)), strict=True)
    total = statistics.median(totals)
    return {
        "preset": preset,
        "resolution": resolution,
        "batch": batch,
        "num_gaussians": decoder.num_gaussians,
        "median_s_per_batch": total,
        "images_per_s": batch / total,
        "ms_per_image": 1e3 * total / batch,
        "render_ms_per_image": 1e3 * statistics.median(renders) / batch,
    }


def bench_generator(device: str, repeats: int, threads: int) -> dict:
    if device == "cpu":
        configs = [("small", 64, 4), ("gsgan_decoder_256", 64, 1)]
    else:
        configs = [("gsgan_decoder_256", 256, 8), ("gsgan_decoder_512", 512, 8)]
    rows = []
    for preset, resolution, batch in configs:
        child_args = ["generator", preset, str(resolution), str(batch), device, str(repeats)]
        row = _run_child(child_args, threads)
        if "skipped" in row:
            print(f"  whole generator {row['skipped']}", flush=True)
            return {"skipped": row["skipped"], "rows": []}
        rows.append(row)
        print(
            f"  {preset:9s} {resolution}x{resolution} batch {batch}: "
            f"{row['images_per_s']:8.2f} images/s, {row['ms_per_image']:8.1f} ms/image "
            f"(rasterize + composite {row['render_ms_per_image']:.1f} ms/image)",
            flush=True,
        )
    return {"rows": rows}


# ---------------------------------------------------------------------- output


def _markdown(device: str, decoder: dict, generator: dict, meta: dict) -> str:
    lines = [
        f"# Generator benchmark ({device})",
        "",
        f"{meta['platform']}, torch {meta['torch']}, {meta['threads']} threads, batch 1.",
        "",
        "Decoder: `gsgan_decoder_256(num_levels=L)`, GSGAN's released network (6 gated transformer",
        "blocks of width 512, EdgeConv at finer levels; 38.8 M parameters at L = 5), camera",
        "conditioning on.",
        "",
        "Wall times: minimum (median) of the repeats. Growth exponents are fitted to the minimum",
        "process CPU time on CPU (robust to other processes on a shared machine), wall time on",
        "CUDA.",
        "",
        "| levels | Gaussians | forward (ms) | fwd+bwd (ms) | fwd peak (MiB) "
        "| fwd+bwd peak (MiB) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(r["levels"], r["mode"]): r for r in decoder["rows"]}
    for level in sorted({r["levels"] for r in decoder["rows"]}):
        f, b = by_key[(level, "forward")], by_key[(level, "forward+backward")]
        lines.append(
            f"| {level} | {f['num_gaussians']:,} | {f['min_s'] * 1e3:.1f} "
            f"({f['median_s'] * 1e3:.1f}) | {b['min_s'] * 1e3:.1f} ({b['median_s'] * 1e3:.1f}) | "
            f"{f['peak_extra_mib']:.1f} | {b['peak_extra_mib']:.1f} |"
        )
    lines.append("")
    for mode, fit in decoder["fits"].items():
        text = ", ".join(f"{k} {v:.2f}" for k, v in fit.items())
        lines.append(f"- {mode}: {text}")
    lines += ["", "## Whole generator", ""]
    if generator.get("skipped"):
        lines.append(generator["skipped"])
    for row in generator.get("rows", []):
        lines.append(
            f"- {row['preset']} at {row['resolution']}x{row['resolution']}, batch {row['batch']}: "
            f"{row['images_per_s']:.2f} images/s ({row['ms_per_image']:.1f} ms/image, "
            f"rasterize + composite {row['render_ms_per_image']:.1f} ms/image)"
        )
    return "\n".join(lines) + "\n"


def _plot(path: Path, device: str, decoder: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(10, 4))
    for mode in ("forward", "forward+backward"):
        mine = [r for r in decoder["rows"] if r["mode"] == mode]
        n = [r["num_gaussians"] for r in mine]
        exponent = decoder["fits"][mode]["time_exponent"]
        label = f"{mode} (N^{exponent:.2f})"
        ax_time.loglog(n, [r["min_s"] * 1e3 for r in mine], "o-", label=label)
        ax_mem.loglog(n, [max(r["peak_extra_mib"], 1e-3) for r in mine], "o-", label=mode)
    n = [r["num_gaussians"] for r in decoder["rows"] if r["mode"] == "forward"]
    first = next(r for r in decoder["rows"] if r["mode"] == "forward")["min_s"] * 1e3
    ax_time.loglog(n, [first * x / n[0] for x in n], "k--", lw=0.8, label="linear")
    ax_time.set_xlabel("Gaussians")
    ax_time.set_ylabel("min time over repeats (ms)")
    ax_time.set_title(f"decoder time ({device}, batch 1)")
    ax_time.legend()
    ax_mem.set_xlabel("Gaussians")
    ax_mem.set_ylabel("peak extra memory (MiB)")
    ax_mem.set_title("decoder peak memory")
    ax_mem.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--levels", type=int, nargs="+", default=[3, 4, 5, 6])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--skip-generator", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        kind, *rest = args.child
        if kind == "decoder":
            levels, mode, device, repeats = rest
            result = _child_decoder(int(levels), mode, device, int(repeats))
        else:
            preset, resolution, batch, device, repeats = rest
            result = _child_generator(preset, int(resolution), int(batch), device, int(repeats))
        print(json.dumps(result))
        return

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    args.out.mkdir(parents=True, exist_ok=True)
    for device in devices:
        meta = {
            "device": device,
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "threads": args.threads,
            "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        }
        print(f"== decoder vs levels ({device}) ==", flush=True)
        decoder = bench_decoder(device, args.levels, args.repeats, args.threads)
        for mode, fit in decoder["fits"].items():
            print(f"  growth with N, {mode}: " + ", ".join(f"{k} {v:.2f}" for k, v in fit.items()))
        print(f"== whole generator ({device}) ==", flush=True)
        if args.skip_generator:
            generator: dict = {"skipped": "skipped by --skip-generator", "rows": []}
            print("  skipped by --skip-generator")
        else:
            generator = bench_generator(device, args.repeats, args.threads)
        result = {"meta": meta, "decoder": decoder, "generator": generator}
        stem = args.out / f"generator_{device}"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        stem.with_suffix(".md").write_text(_markdown(device, decoder, generator, meta))
        _plot(stem.with_suffix(".png"), device, decoder)
        print(f"wrote {stem}.json, .md, .png")


if __name__ == "__main__":
    main()
