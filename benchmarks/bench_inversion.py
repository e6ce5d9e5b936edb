"""Benchmark: inversion quality (W, W+, W+ + PTI), novel views, camera recovery, time and memory.

Models are the ones the repository produces here without data or downloads: the demo's small
Gaussian generator (:func:`aware3d.models.demo_generator`, ``--model demo``) or the small GSGAN /
BallGAN presets (``--model gsgan|ballgan``), each **randomly initialised** under the seed
(``torch.manual_seed(seed)``; no training). For each seed (a fresh generator) and each of the
target latents (``z ~ N(0, I)`` from the seed), a target is rendered from a known camera (yaw
and pitch drawn in [-10, 10] and [-5, 5] degrees, FFHQ's radius, look-at and focal), then:

* reconstruction PSNR of W, W+ and W+ followed by pivotal tuning (PTI), camera given;
* novel views: the inverted scene (W, W+, W+ + PTI) rendered from 4 held-out cameras (yaw +-30
  degrees at pitch 0, pitch +-15 degrees at yaw 0) against the true latent's renders, PSNR;
* PTI's locality: mean PSNR between the original and the tuned generator's images of 4 other
  latents;
* camera recovery: the projection (W, yaw and pitch refined) started 20 degrees off in yaw and 10
  in pitch; the error is the angle of the rotation between the recovered and the true camera.

Losses are pixel losses (L2) only: no LPIPS weights are available offline. Timing: one W+
projection plus PTI at each ``--timing-resolutions`` size in a fresh subprocess (seconds, and peak
memory as the growth of ``ru_maxrss`` on CPU, ``torch.cuda.max_memory_allocated`` on CUDA).

Usage::

    .venv/bin/python benchmarks/bench_inversion.py [--model demo] [--resolution 32]
        [--latents 5] [--seeds 3] [--steps 300] [--pti-steps 150] [--camera-steps 300]
        [--threads 1] [--quick] [--out DIR]

Writes ``inversion_<device>[_quick].json``, ``.md`` and ``.png`` under ``--out`` and prints the
table.
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
from typing import Any

import torch

#: The issue's targets.
TARGETS = {"psnr_pti": 30.0, "novel_psnr": 25.0, "camera_error_deg": 3.0}
#: Held-out cameras: (yaw, pitch) in degrees.
NOVEL_VIEWS = ((-30.0, 0.0), (30.0, 0.0), (0.0, -15.0), (0.0, 15.0))
CAMERA_OFFSET = (20.0, 10.0)


def _model(name: str, seed: int, resolution: int) -> torch.nn.Module:
    from aware3d.models import ballgan_small, demo_generator, gsgan_small

    torch.manual_seed(seed)
    if name == "demo":
        return demo_generator(resolution=resolution).eval()
    if name == "gsgan":
        return gsgan_small(resolution=resolution, conditioned=False).eval()
    return ballgan_small(resolution=resolution, neural_resolution=resolution // 2).eval()


def _checkpoint_model(path: Path) -> tuple[torch.nn.Module, int]:
    """A trained generator (an `aware3d train` or `demo` run, or a converted folder), its size."""
    from aware3d.recipes import is_converted, load_converted, load_generator

    if is_converted(path):
        model = load_converted(path)
        return model.generator_ema, model.resolution
    generator, _, config, _ = load_generator(path)
    return generator, config.resolution


def _render(generator: Any, ws: list, camera: Any, resolution: int) -> torch.Tensor:
    from aware3d.models.styles import styles_of

    with torch.no_grad():
        return styles_of(generator).synthesize(ws, camera, resolution, resolution).images[0, 0]


def _one_target(args: argparse.Namespace, generator: Any, seed: int, index: int) -> dict:
    from aware3d.inversion import (
        CameraGuess,
        LossWeights,
        ProjectorSchedule,
        PTIConfig,
        locality_psnr,
        pivotal_tuning,
        project,
        psnr,
        rotation_error_degrees,
        w_statistics,
    )
    from aware3d.models.styles import styles_of

    res, device = args.resolution, args.device
    source = torch.Generator().manual_seed(1000 * seed + index)
    yaw = float(torch.empty(1).uniform_(-10, 10, generator=source))
    pitch = float(torch.empty(1).uniform_(-5, 5, generator=source))
    truth = CameraGuess(yaw=yaw, pitch=pitch)
    cameras = truth.cameras(device=device)
    z = torch.randn(1, generator.latent_dim, generator=source).to(device)
    styles = styles_of(generator)
    with torch.no_grad():
        true_ws = styles.map_latents(z, cameras, res, res)
    target = _render(generator, true_ws, cameras, res)
    novel = [CameraGuess(yaw=y, pitch=p).cameras(device=device) for y, p in NOVEL_VIEWS]
    novel_truth = [_render(generator, true_ws, view, res) for view in novel]

    def novel_psnr(model: Any, ws: list) -> float:
        values = [psnr(_render(model, ws, view, res), ref)
                  for view, ref in zip(novel, novel_truth, strict=True)]  # fmt: skip
        return statistics.fmean(values)

    loss = LossWeights(l2=1.0, lpips=0.0)
    schedule = ProjectorSchedule(steps=args.steps, w_avg_samples=args.w_avg_samples)
    stats = w_statistics(generator, cameras, res, res, samples=args.w_avg_samples, seed=seed)
    row: dict[str, Any] = {"seed": seed, "latent": index, "yaw": yaw, "pitch": pitch}
    for space in ("w", "w+"):
        found = project(generator, target, cameras, space=space, schedule=schedule, loss=loss,
                        statistics=stats, seed=seed)  # fmt: skip
        key = space.replace("+", "p")
        row[f"psnr_{key}"] = psnr(found.image, target)
        row[f"novel_psnr_{key}"] = novel_psnr(generator, found.ws)
        row[f"seconds_{key}"] = found.seconds
        pivot = found
    tuning = pivotal_tuning(
        generator, pivot.ws, pivot.cameras, target,
        config=PTIConfig(steps=args.pti_steps, learning_rate=args.pti_lr, lpips=0.0,
                         locality_lpips=0.0),
        seed=seed,
    )  # fmt: skip
    row["psnr_pti"] = psnr(tuning.image, target)
    row["novel_psnr_pti"] = novel_psnr(tuning.generator, pivot.ws)
    row["seconds_pti"] = tuning.seconds
    row["locality_psnr"] = locality_psnr(generator, tuning.generator, cameras, res, res, count=4)
    start = CameraGuess(yaw=yaw + CAMERA_OFFSET[0], pitch=pitch + CAMERA_OFFSET[1])
    camera_schedule = ProjectorSchedule(steps=args.camera_steps, w_avg_samples=args.w_avg_samples,
                                        camera_learning_rate=args.camera_lr)  # fmt: skip
    found = project(generator, target, start, space="w", schedule=camera_schedule, loss=loss,
                    refine_camera=("yaw", "pitch"), statistics=stats, seed=seed)  # fmt: skip
    assert found.camera is not None
    row["camera_start_error_deg"] = rotation_error_degrees(start.cameras(), truth.cameras())
    row["camera_error_deg"] = rotation_error_degrees(found.cameras, cameras)
    row["camera_yaw_error_deg"] = found.camera.yaw - yaw
    row["camera_pitch_error_deg"] = found.camera.pitch - pitch
    row["camera_psnr"] = psnr(found.image, target)
    return row


def _timing_worker(model: str, resolution: int, steps: int, pti_steps: int, device: str) -> dict:
    from aware3d.inversion import (
        CameraGuess,
        LossWeights,
        ProjectorSchedule,
        PTIConfig,
        pivotal_tuning,
        project,
        w_statistics,
    )
    from aware3d.models.styles import styles_of

    generator = _model(model, 0, resolution).to(device)
    cameras = CameraGuess().cameras(device=device)
    z = torch.randn(1, generator.latent_dim, generator=torch.Generator().manual_seed(7)).to(device)
    with torch.no_grad():
        ws = styles_of(generator).map_latents(z, cameras, resolution, resolution)
        target = _render(generator, ws, cameras, resolution)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        held = torch.cuda.memory_allocated()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    stats = w_statistics(generator, cameras, resolution, resolution, samples=10000)
    statistics_seconds = time.perf_counter() - start
    start = time.perf_counter()
    found = project(generator, target, cameras, space="w+", loss=LossWeights(lpips=0.0),
                    schedule=ProjectorSchedule(steps=steps), statistics=stats)  # fmt: skip
    projection_seconds = time.perf_counter() - start
    pti = PTIConfig(steps=pti_steps, lpips=0.0, locality_lpips=0.0)
    tuning = pivotal_tuning(generator, found.ws, found.cameras, target, config=pti)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - held) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return {"resolution": resolution, "steps": steps, "pti_steps": pti_steps,
            "seconds_w_statistics": statistics_seconds,
            "seconds_projection": projection_seconds, "seconds_pti": tuning.seconds,
            "seconds_per_step": projection_seconds / max(steps, 1),
            "seconds_per_pti_step": tuning.seconds / max(pti_steps, 1),
            "peak_mib": peak}  # fmt: skip


def _summary(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k not in ("seed", "latent", "yaw", "pitch")]
    out = {}
    for key in keys:
        values = [abs(r[key]) if "error" in key else r[key] for r in rows]
        out[key] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}
    passed = {
        "psnr_pti": sum(r["psnr_pti"] >= TARGETS["psnr_pti"] for r in rows),
        "novel_psnr_pti": sum(r["novel_psnr_pti"] >= TARGETS["novel_psnr"] for r in rows),
        "camera_error_deg": sum(r["camera_error_deg"] <= TARGETS["camera_error_deg"]
                                for r in rows),
    }  # fmt: skip
    out["passed_of"] = {"count": len(rows), **passed}
    return out


def _markdown(payload: dict) -> str:
    meta, summary = payload["meta"], payload["summary"]
    lines = [
        "# Inversion quality",
        "",
        (
            f"{meta['model']} generator (random init)"
            if "untrained" in meta["initialisation"]
            else f"generator {meta['initialisation']}"
        )
        + f", {meta['resolution']} px, "
        f"{meta['latents']} latents x {meta['seeds']} seeds, steps W/W+ {meta['steps']}, "
        f"PTI {meta['pti_steps']} (lr {meta['pti_lr']}), camera {meta['camera_steps']}; "
        f"{meta['device']}, {meta['threads']} thread(s).",
        "",
        "| figure | mean | min | max | target |",
        "|---|---|---|---|---|",
    ]
    names = {
        "psnr_w": ("reconstruction PSNR, W (dB)", ""),
        "psnr_wp": ("reconstruction PSNR, W+ (dB)", ""),
        "psnr_pti": ("reconstruction PSNR, W+ + PTI (dB)", ">= 30"),
        "novel_psnr_w": ("novel-view PSNR, W (dB)", ""),
        "novel_psnr_wp": ("novel-view PSNR, W+ (dB)", ""),
        "novel_psnr_pti": ("novel-view PSNR, W+ + PTI (dB)", ">= 25"),
        "locality_psnr": ("PTI locality: other latents before/after (dB)", ""),
        "camera_error_deg": ("camera error after refinement (deg)", "<= 3"),
        "camera_yaw_error_deg": ("|yaw error| (deg)", ""),
        "camera_pitch_error_deg": ("|pitch error| (deg)", ""),
        "seconds_wp": ("seconds, W+ projection", ""),
        "seconds_pti": ("seconds, PTI", ""),
    }
    for key, (label, target) in names.items():
        s = summary[key]
        lines.append(f"| {label} | {s['mean']:.2f} | {s['min']:.2f} | {s['max']:.2f} | {target} |")
    passed = summary["passed_of"]
    lines += [
        "",
        f"Targets met: PTI PSNR {passed['psnr_pti']}/{passed['count']}, novel views "
        f"{passed['novel_psnr_pti']}/{passed['count']}, camera {passed['camera_error_deg']}/"
        f"{passed['count']}.",
        "",
        "| resolution | s / projection step | s / PTI step | peak memory (MiB) |",
        "|---|---|---|---|",
    ]
    for row in payload["timing"]:
        lines.append(f"| {row['resolution']} | {row['seconds_per_step']:.3f} | "
                     f"{row['seconds_per_pti_step']:.3f} | {row['peak_mib']:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _plot(payload: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = payload["results"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    methods = [("w", "W"), ("wp", "W+"), ("pti", "W+ + PTI")]
    for offset, (kind, title) in enumerate(
        (("psnr", "reconstruction"), ("novel_psnr", "novel views"))
    ):
        ax = axes[offset]
        data = [[r[f"{kind}_{key}"] for r in rows] for key, _ in methods]
        ax.boxplot(data, tick_labels=[label for _, label in methods])
        ax.axhline(TARGETS["psnr_pti"] if kind == "psnr" else TARGETS["novel_psnr"],
                   color="red", linestyle="--", label="target")  # fmt: skip
        ax.set_title(f"{title} PSNR (dB)")
        ax.legend()
    ax = axes[2]
    ax.bar(range(len(rows)), [r["camera_error_deg"] for r in rows], color="tab:blue")
    ax.axhline(TARGETS["camera_error_deg"], color="red", linestyle="--", label="target")
    ax.axhline(rows[0]["camera_start_error_deg"], color="grey", linestyle=":", label="start")
    ax.set_title("camera error after refinement (deg)")
    ax.set_xlabel("target (seed x latent)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description="Inversion quality benchmark")
    parser.add_argument("--model", choices=("demo", "gsgan", "ballgan"), default="demo")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a trained run (or converted) folder: its EMA generator for every seed, at its own "
        "resolution, instead of a randomly initialised --model",
    )
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--latents", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--pti-steps", type=int, default=150)
    parser.add_argument("--pti-lr", type=float, default=1e-3)
    parser.add_argument("--camera-steps", type=int, default=300)
    parser.add_argument("--camera-lr", type=float, default=0.05)
    parser.add_argument("--w-avg-samples", type=int, default=10000)
    parser.add_argument("--timing-resolutions", type=int, nargs="*", default=[64, 128])
    parser.add_argument("--timing-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="2 latents, 1 seed, few steps")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        model, res, steps, pti = args.worker
        print(json.dumps(_timing_worker(model, int(res), int(steps), int(pti), args.device)))
        return
    if args.quick:
        args.latents, args.seeds, args.steps, args.pti_steps = 2, 1, 20, 10
        args.camera_steps, args.w_avg_samples, args.timing_steps = 20, 500, 5
        args.timing_resolutions = [32]
    rows = []
    trained = None
    if args.checkpoint is not None:
        trained, args.resolution = _checkpoint_model(args.checkpoint)
        args.timing_resolutions = []  # timing is per model kind, measured without --checkpoint
    for seed in range(args.seeds):
        if trained is not None:
            generator = trained.to(args.device)
        else:
            generator = _model(args.model, seed, args.resolution).to(args.device)
        for index in range(args.latents):
            row = _one_target(args, generator, seed, index)
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)  # fmt: skip
    timing = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for res in args.timing_resolutions:
        worker = [sys.executable, __file__, "--worker", args.model, str(res),
                  str(args.timing_steps), str(max(1, args.timing_steps // 2)),
                  "--threads", str(args.threads), "--device", args.device]  # fmt: skip
        done = subprocess.run(worker, capture_output=True, text=True, check=True, env=env)
        timing.append(json.loads(done.stdout.strip().splitlines()[-1]))
    command = "python benchmarks/bench_inversion.py " + " ".join(sys.argv[1:])
    payload = {
        "meta": {"model": args.model, "resolution": args.resolution, "latents": args.latents,
                 "seeds": args.seeds, "steps": args.steps, "pti_steps": args.pti_steps,
                 "pti_lr": args.pti_lr, "camera_steps": args.camera_steps,
                 "camera_lr": args.camera_lr, "w_avg_samples": args.w_avg_samples,
                 "device": args.device, "threads": args.threads, "quick": args.quick,
                 "torch": torch.__version__, "python": platform.python_version(),
                 "command": command.strip(), "targets": TARGETS,
                 "initialisation": "random (torch.manual_seed(seed)), untrained"
                 if args.checkpoint is None else f"trained: {args.checkpoint}"},
        "results": rows,
        "summary": _summary(rows),
        "timing": timing,
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"inversion_{args.device.split(':')[0]}{'_quick' if args.quick else ''}"
    if args.checkpoint is not None:
        stem += "_trained"
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(_markdown(payload))
    _plot(payload, args.out / f"{stem}.png")
    print(_markdown(payload))


if __name__ == "__main__":
    main()
