"""Benchmark: O(S) distortion loss vs the O(S^2) double sum, and background throughput.

Distortion loss at 4096 rays, S in {48, 96, 192, 384}, float32: forward + backward (gradients
w.r.t. weights and edges) median wall time, and peak extra memory. When torch_efficient_distloss
is installed (``pip install --no-deps torch_efficient_distloss``), also a side-by-side comparison
with its ``eff_distloss`` on the same inputs (interleaved in one process, value checks on and
off). Each (implementation, S) of the main table runs in a fresh subprocess; peak memory on CPU
is the growth of the process's ``ru_maxrss`` high-water mark during the first forward + backward
(inputs already allocated), on CUDA
``torch.cuda.max_memory_allocated`` minus the memory held before the call. Also the spherical
background's rays per second (forward, and forward + backward), on CPU and, when CUDA is
available, on the GPU.

Usage::

    .venv/bin/python benchmarks/bench_losses.py [--threads 1] [--repeats 5] [--out DIR]

Writes ``losses_<device>.json``, ``losses_<device>.png`` and ``losses_<device>.md`` under ``--out``
and prints the table.
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
from collections.abc import Callable
from pathlib import Path

import torch

RAYS = 4096
SAMPLES = (48, 96, 192, 384)
W_DIM = 512


def reference_distortion(weights: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """The O(S^2) double sum ``sum_ij w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 delta_i``."""
    mid = 0.5 * (edges[..., 1:] + edges[..., :-1])
    delta = edges[..., 1:] - edges[..., :-1]
    pair = weights[..., :, None] * weights[..., None, :]
    dist = (mid[..., :, None] - mid[..., None, :]).abs()
    loss = (pair * dist).sum((-1, -2)) + (weights.square() * delta).sum(-1) / 3.0
    return loss.mean()


def _inputs(S: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(S)
    widths = torch.rand(RAYS, S, generator=g) + 0.01
    edges = torch.cat([torch.zeros(RAYS, 1), torch.cumsum(widths, -1)], -1) + 2.0
    weights = torch.softmax(torch.randn(RAYS, S, generator=g), -1) * 0.9
    return (
        weights.to(device).requires_grad_(),
        edges.to(device).requires_grad_(),
    )


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def worker(impl: str, S: int, device: str, repeats: int) -> dict:
    """Runs in a fresh process: memory of the first call, then the median time of ``repeats``."""
    from aware3d.functional.losses import distortion_loss

    def step(weights: torch.Tensor, edges: torch.Tensor) -> None:
        if impl == "linear":
            loss = distortion_loss(weights, edges)
        else:
            loss = reference_distortion(weights, edges)
        loss.backward()
        weights.grad = None
        edges.grad = None

    weights, edges = _inputs(S, device)
    _sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step(weights, edges)
        _sync(device)
        peak = torch.cuda.max_memory_allocated() - before
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step(weights, edges)
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        step(weights, edges)
        _sync(device)
        times.append(time.perf_counter() - start)
    return {
        "impl": impl,
        "S": S,
        "rays": RAYS,
        "median_ms": 1e3 * statistics.median(times),
        "times_ms": [1e3 * t for t in times],
        "peak_mib": peak / 2**20,
    }


def _available_mib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def run_distortion(device: str, threads: int, repeats: int) -> list[dict]:
    rows = []
    for S in SAMPLES:
        for impl in ("linear", "reference"):
            # the reference's autograd graph holds ~3 [R, S, S] float32 tensors
            need = 4 * 4 * RAYS * S * S / 2**20
            if device == "cpu" and impl == "reference" and need * 1.5 > _available_mib():
                rows.append({"impl": impl, "S": S, "rays": RAYS, "skipped": "not enough memory"})
                continue
            reps = repeats if impl == "linear" or S <= 96 else min(repeats, 3)
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                impl,
                str(S),
                device,
                str(reps),
                "--threads",
                str(threads),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {impl:9s} S={S:4d}: {rows[-1]['median_ms']:9.2f} ms", flush=True)
    return rows


def run_versus_efficient_distloss(device: str, repeats: int) -> list[dict] | str:
    """Side by side with torch_efficient_distloss's ``eff_distloss``, interleaved in one process.

    Same inputs: our ``distortion_loss(weights, edges)`` against ``eff_distloss(weights,
    midpoints, widths)`` (its own input form, computed from the same edges beforehand), forward
    plus backward with gradients w.r.t. the weights, value checks on (the default) and off.
    """
    try:
        from torch_efficient_distloss import eff_distloss
    except ImportError:
        return "skipped: `pip install --no-deps torch_efficient_distloss` to compare"
    rows = [_versus_one(S, device, repeats, eff_distloss) for S in SAMPLES]
    return rows


def _versus_one(S: int, device: str, repeats: int, eff_distloss: Callable) -> dict:
    import aware3d

    weights, edges = (t.detach() for t in _inputs(S, device))
    midpoints = 0.5 * (edges[:, 1:] + edges[:, :-1])
    widths = edges.diff(dim=-1)

    def theirs() -> None:
        w = weights.clone().requires_grad_()
        eff_distloss(w, midpoints, widths).backward()

    def ours() -> None:
        w = weights.clone().requires_grad_()
        aware3d.distortion_loss(w, edges).backward()

    def ours_unchecked() -> None:
        with aware3d.value_checks(False):
            ours()

    variants = {
        "torch_efficient_distloss": theirs,
        "aware3d": ours,
        "aware3d_no_value_checks": ours_unchecked,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(3):  # warm-up
        for run in variants.values():
            run()
    for _ in range(max(repeats, 15)):
        for name, run in variants.items():
            _sync(device)
            start = time.perf_counter()
            run()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    medians = {name: 1e3 * statistics.median(values) for name, values in times.items()}
    base = medians["torch_efficient_distloss"]
    print(f"  S={S:4d}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in medians.items()), flush=True)
    return {
        "S": S,
        "rays": RAYS,
        "median_ms": medians,
        "ratio_to_efficient_distloss": {k: v / base for k, v in medians.items()},
    }


def _versus_table(rows: list[dict] | str) -> str:
    if isinstance(rows, str):
        return f"Comparison with torch_efficient_distloss {rows}."
    lines = [
        "| S | torch_efficient_distloss ms | aware3d ms (ratio) | aware3d, value checks off ms "
        "(ratio) |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        ms, ratio = row["median_ms"], row["ratio_to_efficient_distloss"]
        lines.append(
            f"| {row['S']} | {ms['torch_efficient_distloss']:.2f} | {ms['aware3d']:.2f} "
            f"({ratio['aware3d']:.2f}x) | {ms['aware3d_no_value_checks']:.2f} "
            f"({ratio['aware3d_no_value_checks']:.2f}x) |"
        )
    return "\n".join(lines)


def run_background(device: str, repeats: int) -> dict:
    from aware3d.cameras import Cameras, intrinsics_from_fov, orbit
    from aware3d.nn import background as bg_module

    torch.manual_seed(0)
    bg = bg_module.SphericalBackground(W_DIM).to(device)
    size = 128
    cameras = Cameras(orbit(1)[None], intrinsics_from_fov(18.0)[None, None]).to(device)
    w = torch.randn(1, W_DIM, device=device)
    rays = size * size

    def fwd() -> None:
        with torch.no_grad():
            bg.render(cameras, size, size, w)

    def fwd_bwd() -> None:
        bg.render(cameras, size, size, w).square().mean().backward()
        bg.zero_grad(set_to_none=True)

    config = f"SphericalBackground({bg.extra_repr()})"
    result = {"rays_per_call": rays, "w_dim": W_DIM, "config": config}
    for name, fn in (("forward", fwd), ("forward_backward", fwd_bwd)):
        fn()
        times = []
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - start)
        med = statistics.median(times)
        result[f"{name}_ms"] = 1e3 * med
        result[f"{name}_rays_per_s"] = rays / med
    return result


def _table(rows: list[dict]) -> str:
    by = {(r["impl"], r["S"]): r for r in rows}
    lines = [
        "| S | O(S) fwd+bwd ms | O(S^2) fwd+bwd ms | speed-up | O(S) peak MiB | O(S^2) peak MiB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for S in SAMPLES:
        lin, ref = by[("linear", S)], by[("reference", S)]
        if "skipped" in ref:
            lines.append(
                f"| {S} | {lin['median_ms']:.2f} | skipped | - | {lin['peak_mib']:.1f} | - |"
            )
            continue
        lines.append(
            f"| {S} | {lin['median_ms']:.2f} | {ref['median_ms']:.2f} | "
            f"{ref['median_ms'] / lin['median_ms']:.1f}x | {lin['peak_mib']:.1f} | "
            f"{ref['peak_mib']:.1f} |"
        )
    return "\n".join(lines)


def _plot(rows: list[dict], path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for impl, label in (("linear", "O(S) prefix sums"), ("reference", "O(S^2) double sum")):
        pts = [r for r in rows if r["impl"] == impl and "skipped" not in r]
        xs = [r["S"] for r in pts]
        axes[0].plot(xs, [r["median_ms"] for r in pts], "o-", label=label)
        axes[1].plot(xs, [max(r["peak_mib"], 1e-2) for r in pts], "o-", label=label)
    for ax, ylabel in zip(axes, ("fwd+bwd median [ms]", "peak extra memory [MiB]"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("samples per ray S")
        ax.set_ylabel(ylabel)
        ax.set_xticks(SAMPLES, [str(s) for s in SAMPLES])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"Distortion loss, {RAYS} rays, float32, {device}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description="Distortion loss and background benchmark")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        impl, S, device, reps = args.worker
        print(json.dumps(worker(impl, int(S), device, int(reps))))
        return
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    args.out.mkdir(parents=True, exist_ok=True)
    for device in devices:
        print(f"== {device} ==", flush=True)
        rows = run_distortion(device, args.threads, args.repeats)
        versus = run_versus_efficient_distloss(device, args.repeats)
        background = run_background(device, args.repeats)
        table = _table(rows)
        versus_table = _versus_table(versus)
        meta = {
            "device": device,
            "device_name": (
                torch.cuda.get_device_name() if device == "cuda" else platform.processor()
            ),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "torch": torch.__version__,
            "rays": RAYS,
            "dtype": "float32",
            "command": "python benchmarks/bench_losses.py " + " ".join(sys.argv[1:]),
        }
        payload = {
            "meta": meta,
            "distortion": rows,
            "versus_efficient_distloss": versus,
            "background": background,
        }
        (args.out / f"losses_{device}.json").write_text(json.dumps(payload, indent=2) + "\n")
        _plot(rows, args.out / f"losses_{device}.png", device)
        bg_line = (
            f"Background ({background['config']}), {background['rays_per_call']} rays per call: "
            f"{background['forward_rays_per_s']:.3g} rays/s forward, "
            f"{background['forward_backward_rays_per_s']:.3g} rays/s forward+backward."
        )
        (args.out / f"losses_{device}.md").write_text(
            f"# Distortion loss benchmark ({device}, {args.threads} thread(s))\n\n"
            f"{table}\n\nSide by side with torch_efficient_distloss (forward + backward, "
            f"{RAYS} rays, medians of interleaved runs):\n\n{versus_table}\n\n{bg_line}\n"
        )
        print(table)
        print(versus_table)
        print(bg_line)


if __name__ == "__main__":
    main()
