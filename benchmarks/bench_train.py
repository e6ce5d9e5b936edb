"""Benchmark: ``aware3d train`` images per second and peak memory, 1 vs 2 CPU processes (and GPU).

CPU section: the ``demo`` recipe at the same global batch (default 8) run by one process and by
two ``torchrun`` processes (DDP, gloo; 4 images per process), in the same run, the repeats
interleaved (1, 2, then 2, 1, ...) so that a change of the machine's load hits both alike. The
machine this was written on has 2 CPU cores, so the fair comparison keeps the total number of
threads equal: one process with ``OMP_NUM_THREADS=2`` (``1x2``) against two processes with
``OMP_NUM_THREADS=1`` each (``2x1``); ``--configs`` takes any ``NxT`` list (e.g. add ``1x1`` to
see what the second thread of one process brings), and ratios are over the first. The thread
count every process actually used (``torch.get_num_threads()``) is recorded.

Every run is ``aware3d train --recipe demo --steps W+S --no-progress`` with
``checkpoint_kimg=1000 image_kimg=1000 metric_kimg=0 log_every=1`` (no checkpoint, image grid or
evaluation during the run; the final ones still happen) and a small synthetic data set
(``synthetic_images``, synthesised by each process at start-up). Throughput excludes the
start-up (imports, rendezvous, data synthesis, model build) and the final image grid, evaluation
and checkpoint: it is taken from ``DIR/log.jsonl``, whose ``speed/images_per_second`` record of
step ``k`` is written (with its ``time``) right after step ``k`` and its loss all-reduce, as
``(S * batch) / (time[W + S] - time[W])``: the ``S`` steps after ``W`` warm-up steps. The median
step time over the same window is recorded too. The wall time of the whole command is recorded
separately, split into the time to the first step's record and the time after the last one.

Peak memory is per process: the training processes run this file as a thin wrapper
(``python bench_train.py --child DIR train ...``, or ``torch.distributed.run ... bench_train.py
--child DIR train ...``) that calls :func:`aware3d.cli.main` and then writes its own figures to
``DIR/rank-<RANK>.json``: ``VmHWM`` from ``/proc/self/status``, the high-water mark of the
process's resident memory since it was exec'd (``ru_maxrss`` is written too, but Linux carries it
over from the image before ``exec``, i.e. from the forking parent, so it can over-state a small
process), and on CUDA ``torch.cuda.max_memory_allocated``/``max_memory_reserved``.
``getrusage(RUSAGE_CHILDREN)`` in this script would give one number for the largest of all
descendants, not one per process. The peaks cover the whole process, final evaluation and
checkpoint included (small here: 16 images at 32 px). Data-loader workers (none for ``demo``)
are not included.

The wrapper also notes, at every ``speed/`` record, each process's CPU time
(``time.process_time``, all its threads) and the machine's busy CPU time (``/proc/stat``), so
that over the measured window it reports how many cores each process kept busy and how many
cores other processes used (busy time minus ours): the machine may be shared, and the 1-minute
load average at the start and end of the run and before each command is recorded as well.

GPU section (when CUDA is available and not ``--skip-gpu``): the ``gsgan-ffhq256`` and
``ballgan-ffhq256`` recipes at batch 32 on one GPU (``--device cuda``, the recipes' own
settings, 3 data-loader workers), images/s and kimg/day (``images/s * 86400 / 1000``), and the
peak CUDA memory. Their ``--data`` is an EG3D folder written by
:meth:`aware3d.data.synthetic.SyntheticScenes.export_eg3d` at 256 px (``--gpu-unique-images``
renders of 64 Gaussians each, listed ``--gpu-repeat-images`` times in ``dataset.json`` so that an
epoch spans many batches, as on FFHQ: the loader starts its workers afresh every epoch; only the
pixels' count matters for the speed). Without CUDA the JSON says
``"gpu": "pending: no CUDA device"``.

Usage::

    .venv/bin/python benchmarks/bench_train.py [--configs 1x2 2x1] [--batch 8] [--warmup 5]
        [--steps 30] [--repeats 3] [--synthetic-images 16] [--skip-gpu]
        [--gpu-recipes gsgan-ffhq256 ballgan-ffhq256] [--gpu-batch 32] [--gpu-steps 40]
        [--quick] [--out DIR]

Writes ``train_cpu.json``, ``train_cpu.md`` and ``train_cpu.png`` (``train_cpu_quick.*`` with
``--quick``; ``train_gpu.*`` with ``--skip-cpu``) under ``--out`` (default
``benchmarks/results``) and prints the table.
"""

import argparse
import datetime
import itertools
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

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()
SPEED_KEY = "speed/images_per_second"
#: Overrides that keep checkpoints, image grids and evaluations out of the measured steps.
QUIET_SETS = ("checkpoint_kimg=1000", "image_kimg=1000", "metric_kimg=0", "log_every=1")
GPU_PENDING = "pending: no CUDA device"
#: What each training process's wrapper reports that the JSON keeps.
RANK_KEYS = ("rank", "pid", "omp_num_threads", "torch_threads", "peak_rss_mib", "peak_rss_source",
             "ru_maxrss_mib", "cpu_s", "cuda_peak_allocated_mib", "cuda_peak_reserved_mib",
             "cuda_device")  # fmt: skip


# ---------------------------------------------------------------------- helpers


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy (``/proc/stat``), or ``None``."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def _vm_hwm_kib() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _config(text: str) -> tuple[int, int]:
    """``NxT`` (N processes with T threads each) as ``(N, T)``."""
    try:
        n, t = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NxT such as 2x1, got {text!r}") from None
    if n < 1 or t < 1:
        raise argparse.ArgumentTypeError(f"expected N, T >= 1, got {text!r}")
    return n, t


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------------- child (wrapper)


def _child(memdir: Path, argv: list[str]) -> None:
    """One training process: ``aware3d.cli.main(argv)``, then its own measurements to a file."""
    started = time.time()
    import torch

    from aware3d import cli
    from aware3d.training import logs

    marks: list[list[float | None]] = []
    scalars = logs.RunLogger.scalars

    def noting_scalars(self, step: int, images_seen: int, values: dict[str, float]) -> None:
        # every rank calls it (only rank 0's logger writes): note this process's clocks
        if SPEED_KEY in values:
            marks.append([step, time.time(), time.process_time(), _busy_seconds()])
        scalars(self, step, images_seen, values)

    logs.RunLogger.scalars = noting_scalars  # type: ignore[method-assign]
    threads = torch.get_num_threads()
    cli.main(argv)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    hwm = _vm_hwm_kib()
    record = {
        "pid": os.getpid(),
        "rank": int(os.environ.get("RANK", "0")),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch_threads": threads,
        "torch_threads_end": torch.get_num_threads(),
        "started": started,
        "ended": time.time(),
        "peak_rss_mib": hwm / 1024 if hwm is not None else usage.ru_maxrss / 1024,
        "peak_rss_source": "VmHWM" if hwm is not None else "ru_maxrss",
        "ru_maxrss_mib": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "marks": marks,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        record["cuda_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        record["cuda_peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
        record["cuda_device"] = torch.cuda.get_device_name()
    (memdir / f"rank-{record['rank']}.json").write_text(json.dumps(record))


# ---------------------------------------------------------------------- one command


def _log_timing(log_path: Path, warmup: int, batch: int) -> dict:
    """Throughput over the steps after ``warmup`` from ``log.jsonl``'s per-step records."""
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    times = {r["step"]: r["time"] for r in records if r.get("kind") == "scalars" and SPEED_KEY in r}
    last = max(times)
    if warmup not in times or last <= warmup:
        raise RuntimeError(f"{log_path}: no per-step records from step {warmup} to a later one")
    window = [s for s in sorted(times) if s >= warmup]
    step_s = [(times[b] - times[a]) / (b - a) for a, b in itertools.pairwise(window)]
    span = times[last] - times[warmup]
    return {
        "images_per_s": (last - warmup) * batch / span,
        "measured_steps": last - warmup,
        "measured_s": span,
        "step_ms_median": 1e3 * statistics.median(step_s),
        "step_ms_min": 1e3 * min(step_s),
        "images_per_s_median_step": batch / statistics.median(step_s),
    }


def _window(marks: list, warmup: int) -> dict[int, list]:
    return {int(m[0]): m for m in marks if m[0] >= warmup}


def _run(
    *, nproc: int, threads: int | None, train_argv: list[str], folder: Path, warmup: int,
    batch: int, timeout: float,
) -> dict:  # fmt: skip
    """Runs one ``aware3d train`` command (``nproc`` processes) and measures it."""
    memdir, out = folder / "ranks", folder / "run"
    memdir.mkdir(parents=True)
    child = [str(SCRIPT), "--child", str(memdir), "train", *train_argv, "--out", str(out)]
    if nproc == 1:
        command = [sys.executable, *child]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", str(nproc), *child]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    load_before = os.getloadavg()[0]
    busy_before, ours_before = _busy_seconds(), _children_cpu_seconds()
    launched, start = time.time(), time.perf_counter()
    with open(folder / "output.txt", "w") as output:
        done = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, env=env,
                              timeout=timeout, check=False)  # fmt: skip
    wall = time.perf_counter() - start
    busy_after, ours_after = _busy_seconds(), _children_cpu_seconds()
    if done.returncode != 0:
        tail = (folder / "output.txt").read_text()[-4000:]
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{tail}")
    ranks = sorted(
        (json.loads(p.read_text()) for p in memdir.glob("rank-*.json")), key=lambda r: r["rank"]
    )
    if len(ranks) != nproc:
        raise RuntimeError(f"expected {nproc} rank files in {memdir}, found {len(ranks)}")
    row = {"processes": nproc, "wall_s": wall, "load_1min_before": load_before}
    row.update(_log_timing(out / "log.jsonl", warmup, batch))
    # the measured window as each process saw it: its CPU time, and the machine's busy time
    windows = [_window(r["marks"], warmup) for r in ranks]
    last = max(windows[0])
    main0, main1 = windows[0][warmup], windows[0][last]
    span = main1[1] - main0[1]
    cores = [(w[last][2] - w[warmup][2]) / span for w in windows]
    row["cores_busy_per_process"] = cores
    if main0[3] is not None and main1[3] is not None:
        others = (main1[3] - main0[3]) / span - sum(cores)
        row["other_processes_cores"] = max(0.0, others)
    else:
        row["other_processes_cores"] = None
    if busy_before is not None and busy_after is not None:
        others = (busy_after - busy_before) - (ours_after - ours_before)
        row["other_processes_cores_whole_command"] = max(0.0, others / wall)
    row["cpu_s_per_image"] = sum(cores) * span / (row["measured_steps"] * batch)
    row["to_first_step_s"] = ranks[0]["marks"][0][1] - launched
    row["after_last_step_s"] = launched + wall - main1[1]
    row["ranks"] = [{key: r.get(key) for key in RANK_KEYS} for r in ranks]
    row["peak_rss_mib_per_process"] = [r["peak_rss_mib"] for r in ranks]
    row["peak_rss_mib_total"] = sum(row["peak_rss_mib_per_process"])
    row["threads_per_process"] = [r["torch_threads"] for r in ranks]
    return row


# ---------------------------------------------------------------------- sections


def _summary(rows: list[dict]) -> dict:
    """Medians over the repeats of one configuration."""
    rates = [r["images_per_s"] for r in rows]
    nproc = rows[0]["processes"]
    return {
        "processes": nproc,
        "repeats": len(rows),
        "threads_per_process": rows[0]["threads_per_process"],
        "images_per_s": statistics.median(rates),
        "images_per_s_min": min(rates),
        "images_per_s_max": max(rates),
        "images_per_s_median_step": _median([r["images_per_s_median_step"] for r in rows]),
        "step_ms_median": _median([r["step_ms_median"] for r in rows]),
        "wall_s": _median([r["wall_s"] for r in rows]),
        "to_first_step_s": _median([r["to_first_step_s"] for r in rows]),
        "after_last_step_s": _median([r["after_last_step_s"] for r in rows]),
        "peak_rss_mib_per_process": [
            statistics.median(r["peak_rss_mib_per_process"][i] for r in rows) for i in range(nproc)
        ],
        "peak_rss_mib_total": _median([r["peak_rss_mib_total"] for r in rows]),
        "cores_busy_total": _median([sum(r["cores_busy_per_process"]) for r in rows]),
        "cpu_s_per_image": _median([r["cpu_s_per_image"] for r in rows]),
        "other_processes_cores": _median([r["other_processes_cores"] for r in rows]),
    }


def run_cpu(args: argparse.Namespace, work: Path) -> dict:
    sets = [*QUIET_SETS, f"synthetic_images={args.synthetic_images}",
            f"metric_images={args.metric_images}"]  # fmt: skip
    train_argv = ["--recipe", "demo", "--steps", str(args.warmup + args.steps),
                  "--batch", str(args.batch), "--no-progress", "--device", "cpu",
                  *[part for item in sets for part in ("--set", item)]]  # fmt: skip
    runs: list[dict] = []
    for repeat in range(args.repeats):
        order = args.configs if repeat % 2 == 0 else args.configs[::-1]
        for nproc, threads in order:
            row = _run(nproc=nproc, threads=threads, train_argv=train_argv,
                       folder=work / f"cpu-{repeat}-{nproc}x{threads}", warmup=args.warmup,
                       batch=args.batch, timeout=args.timeout)  # fmt: skip
            row.update(repeat=repeat, config=f"{nproc}x{threads}")
            runs.append(row)
            rss = ", ".join(f"{v:.0f}" for v in row["peak_rss_mib_per_process"])
            print(
                f"  repeat {repeat} {nproc} process(es) x {threads} thread(s): "
                f"{row['images_per_s']:6.2f} images/s ({row['step_ms_median']:.0f} ms/step), "
                f"wall {row['wall_s']:.1f} s, peak RSS {rss} MiB, cores busy "
                f"{sum(row['cores_busy_per_process']):.2f}, others "
                f"{row['other_processes_cores'] or 0:.2f}",
                flush=True,
            )
    labels = [f"{n}x{t}" for n, t in args.configs]
    summaries = [_summary([r for r in runs if r["config"] == label]) for label in labels]
    for summary, label in zip(summaries, labels, strict=True):
        summary["config"] = label
    base = summaries[0]
    ratios = []
    for s in summaries[1:]:
        paired = []
        for repeat in range(args.repeats):
            mine = {r["config"]: r["images_per_s"] for r in runs if r["repeat"] == repeat}
            paired.append(mine[s["config"]] / mine[base["config"]])
        ratios.append(
            {
                "config": s["config"],
                "over": base["config"],
                "processes": s["processes"],
                "over_processes": base["processes"],
                "images_per_s": s["images_per_s"] / base["images_per_s"],
                "paired_median": statistics.median(paired),
                "paired": paired,
            }
        )
    return {
        "recipe": "demo",
        "batch": args.batch,
        "warmup_steps": args.warmup,
        "measured_steps": args.steps,
        "synthetic_images": args.synthetic_images,
        "metric_images": args.metric_images,
        "configs": labels,
        "overrides": sets,
        "train_command": "aware3d train " + " ".join(train_argv) + " --out DIR",
        "summary": summaries,
        "ratios": ratios,
        "runs": runs,
    }


def _gpu_dataset(folder: Path, unique: int, repeat: int) -> Path:
    """An EG3D folder at 256 px: ``unique`` synthetic renders, listed ``repeat`` times."""
    from aware3d.data.synthetic import SyntheticScenes

    scenes = SyntheticScenes(
        num_scenes=max(1, unique // 4), views_per_scene=4, resolution=256, num_gaussians=64,
        seed=0,
    )  # fmt: skip
    path = scenes.export_eg3d(folder / "eg3d-256")
    meta = json.loads((path / "dataset.json").read_text())
    meta["labels"] = meta["labels"] * repeat
    (path / "dataset.json").write_text(json.dumps(meta))
    return path


def run_gpu(args: argparse.Namespace, work: Path) -> dict:
    import torch

    try:
        from aware3d.functional._splat_gsplat import gsplat_available

        gsplat = bool(gsplat_available())
    except ImportError:
        gsplat = False
    start = time.perf_counter()
    data = _gpu_dataset(work, args.gpu_unique_images, args.gpu_repeat_images)
    data_s = time.perf_counter() - start
    print(f"  EG3D data at 256 px in {data_s:.0f} s: {data}", flush=True)
    sets = [*QUIET_SETS, f"metric_images={args.metric_images}"]
    rows, summaries = [], []
    for recipe in args.gpu_recipes:
        train_argv = ["--recipe", recipe, "--data", str(data), "--device", "cuda",
                      "--steps", str(args.gpu_warmup + args.gpu_steps),
                      "--batch", str(args.gpu_batch), "--no-progress",
                      *[part for item in sets for part in ("--set", item)]]  # fmt: skip
        mine = []
        for repeat in range(args.gpu_repeats):
            row = _run(nproc=1, threads=None, train_argv=train_argv,
                       folder=work / f"gpu-{recipe}-{repeat}", warmup=args.gpu_warmup,
                       batch=args.gpu_batch, timeout=args.timeout)  # fmt: skip
            row.update(recipe=recipe, repeat=repeat, kimg_per_day=row["images_per_s"] * 86.4)
            row["cuda_peak_allocated_mib"] = row["ranks"][0]["cuda_peak_allocated_mib"]
            row["cuda_peak_reserved_mib"] = row["ranks"][0]["cuda_peak_reserved_mib"]
            mine.append(row)
            print(
                f"  {recipe} batch {args.gpu_batch}: {row['images_per_s']:.1f} images/s "
                f"({row['kimg_per_day']:.0f} kimg/day), peak CUDA "
                f"{row['cuda_peak_allocated_mib']:.0f} MiB allocated",
                flush=True,
            )
        rows += mine
        summary = _summary(mine)
        summary.update(
            recipe=recipe,
            batch=args.gpu_batch,
            kimg_per_day=summary["images_per_s"] * 86.4,
            cuda_peak_allocated_mib=_median([r["cuda_peak_allocated_mib"] for r in mine]),
            cuda_peak_reserved_mib=_median([r["cuda_peak_reserved_mib"] for r in mine]),
            train_command="aware3d train " + " ".join(train_argv) + " --out DIR",
        )
        summaries.append(summary)
    return {
        "device_name": torch.cuda.get_device_name(),
        "gsplat": gsplat,
        "data": {
            "resolution": 256,
            "unique_images": args.gpu_unique_images,
            "listed_times": args.gpu_repeat_images,
            "seconds_to_make": data_s,
        },
        "warmup_steps": args.gpu_warmup,
        "measured_steps": args.gpu_steps,
        "summary": summaries,
        "runs": rows,
    }


# ---------------------------------------------------------------------- output


#: Cores other processes may keep busy during a run before the results are flagged as loaded.
BUSY_OTHERS = 0.25


def _load_note(result: dict) -> str:
    meta = result["meta"]
    cores = meta["cores"]
    start, end = meta["loadavg_start"][0], meta["loadavg_end"][0]
    text = (
        f"Load average (1 min) {start:.2f} at the start and {end:.2f} at the end on {cores} "
        "cores (a lagging average; the end figure includes this benchmark's own processes)."
    )
    cpu = result.get("cpu")
    if not isinstance(cpu, dict):
        return text
    others = [r["other_processes_cores"] for r in cpu["runs"]]
    others = [v for v in others if v is not None]
    if not others:
        return text
    text += (
        f" Measured from `/proc/stat`, other processes kept {statistics.median(others):.2f} "
        f"cores busy during the measured steps (median over the runs; {min(others):.2f} to "
        f"{max(others):.2f})."
    )
    loaded = sum(v >= BUSY_OTHERS for v in others)
    if loaded:
        text += (
            f" **The machine was shared and loaded while this ran** (other processes used "
            f">= {BUSY_OTHERS} cores in {loaded} of {len(others)} runs): those runs are slower "
            "than on an idle machine, and since the configurations compete differently for "
            "the remaining cores, the ratio is affected too; see the per-run table."
        )
    else:
        text += " The machine was otherwise idle during the measurements."
    return text


def _markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [
        "# `aware3d train` throughput and memory",
        "",
        f"`{meta['command']}`",
        "",
        f"{meta['cpu_model']}, {meta['cores']} cores, torch {meta['torch']}, Python "
        f"{meta['python']}, {meta['platform']}; {meta['started']}. " + _load_note(result),
        "",
    ]
    cpu = result.get("cpu")
    if isinstance(cpu, dict):
        lines += _cpu_markdown(cpu, meta)
    else:
        lines += [f"CPU section: {cpu}.", ""]
    gpu = result.get("gpu")
    lines += ["## GPU: FFHQ 256 recipes, one GPU", ""]
    if isinstance(gpu, dict):
        lines += _gpu_markdown(gpu)
    else:
        lines += [f"`{gpu}`: run `python benchmarks/bench_train.py --skip-cpu` on a CUDA machine.",
                  ""]  # fmt: skip
    return "\n".join(lines).rstrip() + "\n"


def _cpu_markdown(cpu: dict, meta: dict) -> list[str]:
    lines = [
        f"## CPU: `demo` recipe, global batch {cpu['batch']}, 1 vs 2 processes",
        "",
        f"`{cpu['train_command']}` (one process), or the same under `python -m "
        "torch.distributed.run --standalone --nproc_per_node 2` (DDP, gloo). "
        "Configurations NxT: N processes with `OMP_NUM_THREADS` = T each "
        f"({', '.join(cpu['configs'])}; the machine has {meta['cores']} cores). "
        f"Images/s over {cpu['measured_steps']} steps after {cpu['warmup_steps']} warm-up steps, "
        "from the times of `log.jsonl`'s per-step records (start-up, final evaluation and "
        f"checkpoint excluded); median (min to max) of {meta['repeats']} interleaved repeats. "
        "Peak RSS: each process's `VmHWM`. Cores busy: the training processes' CPU time over the "
        "measured steps / their wall time.",
        "",
        "| NxT | processes | threads/process | images/s | ms/step | cores busy | CPU s/image "
        "| peak RSS/process (MiB) | total RSS (MiB) | wall (s) | to 1st step (s) "
        "| after last step (s) |",
        "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for s in cpu["summary"]:
        rss = " + ".join(f"{v:.0f}" for v in s["peak_rss_mib_per_process"])
        threads = ", ".join(str(t) for t in s["threads_per_process"])
        lines.append(
            f"| {s['config']} | {s['processes']} | {threads} | {s['images_per_s']:.2f} "
            f"({s['images_per_s_min']:.2f} to {s['images_per_s_max']:.2f}) | "
            f"{s['step_ms_median']:.0f} | {s['cores_busy_total']:.2f} | "
            f"{s['cpu_s_per_image']:.3f} | {rss} | {s['peak_rss_mib_total']:.0f} | "
            f"{s['wall_s']:.1f} | {s['to_first_step_s']:.1f} | {s['after_last_step_s']:.1f} |"
        )
    lines.append("")
    for r in cpu["ratios"]:
        paired = ", ".join(f"{v:.2f}" for v in r["paired"])
        lines.append(
            f"Throughput ratio {r['config']} / {r['over']} ({r['processes']} / "
            f"{r['over_processes']} process(es)): "
            f"**{r['images_per_s']:.2f}x** (ratio of the medians; per repeat: {paired})."
        )
    best = min(cpu["summary"], key=lambda s: s["cpu_s_per_image"])
    for s in cpu["summary"]:
        factor = s["cpu_s_per_image"] / best["cpu_s_per_image"]
        if factor > 1.3:
            lines.append(
                f"`{s['config']}` spent {factor:.1f}x the CPU time per image of "
                f"`{best['config']}` ({s['cpu_s_per_image']:.3f} vs "
                f"{best['cpu_s_per_image']:.3f} CPU s/image) and ran at "
                f"{s['images_per_s'] / best['images_per_s']:.2f}x its images/s."
            )
    lines += [
        "",
        "To 1st step: from the launch to the first step's record (imports, rendezvous, data "
        "synthesis, model build, first step). After last step: final image grid, evaluation, "
        "checkpoint and exit.",
        "",
        "Every run, in the order run (others = cores other processes kept busy during the "
        "measured steps):",
        "",
        "| repeat | NxT | images/s | ms/step | cores busy | others | load before | wall (s) |",
        "|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in cpu["runs"]:
        busy = " + ".join(f"{v:.2f}" for v in r["cores_busy_per_process"])
        others = r["other_processes_cores"]
        lines.append(
            f"| {r['repeat']} | {r['config']} | {r['images_per_s']:.2f} | "
            f"{r['step_ms_median']:.0f} | {busy} | "
            f"{'n/a' if others is None else f'{others:.2f}'} | {r['load_1min_before']:.2f} | "
            f"{r['wall_s']:.1f} |"
        )
    lines.append("")
    return lines


def _gpu_markdown(gpu: dict) -> list[str]:
    rasterizer = (
        "gsplat available"
        if gpu["gsplat"]
        else "gsplat NOT available (the Gaussian generator splats with the torch backend)"
    )
    data = gpu["data"]
    lines = [
        f"{gpu['device_name']}, {rasterizer}. Data: {data['unique_images']} "
        f"synthetic renders at 256 px listed {data['listed_times']} times. Images/s over "
        f"{gpu['measured_steps']} steps after {gpu['warmup_steps']} warm-up steps, median of "
        f"the repeats; kimg/day = images/s x 86.4. Peak CUDA memory: "
        "`torch.cuda.max_memory_allocated` (reserved in brackets) over the whole process.",
        "",
        "| recipe | batch | images/s | kimg/day | ms/step | peak CUDA MiB | peak RSS MiB "
        "| to 1st step (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in gpu["summary"]:
        lines.append(
            f"| {s['recipe']} | {s['batch']} | {s['images_per_s']:.1f} | "
            f"{s['kimg_per_day']:.0f} | {s['step_ms_median']:.0f} | "
            f"{s['cuda_peak_allocated_mib']:.0f} ({s['cuda_peak_reserved_mib']:.0f}) | "
            f"{s['peak_rss_mib_total']:.0f} | {s['to_first_step_s']:.1f} |"
        )
    lines.append("")
    return lines


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cpu = result["cpu"]
    summaries = cpu["summary"]
    fig, (ax_rate, ax_mem) = plt.subplots(1, 2, figsize=(10, 4))
    x = list(range(len(summaries)))
    labels = [
        f"{s['processes']} process{'es' if s['processes'] > 1 else ''}\n"
        f"x {s['threads_per_process'][0]} thread{'s' if s['threads_per_process'][0] > 1 else ''}"
        for s in summaries
    ]
    medians = [s["images_per_s"] for s in summaries]
    errors = [
        [s["images_per_s"] - s["images_per_s_min"] for s in summaries],
        [s["images_per_s_max"] - s["images_per_s"] for s in summaries],
    ]
    ax_rate.bar(x, medians, 0.6, yerr=errors, capsize=6, color=[f"C{i}" for i in x])
    for i, s in enumerate(summaries):
        rates = [r["images_per_s"] for r in cpu["runs"] if r["config"] == s["config"]]
        ax_rate.plot([i] * len(rates), rates, "k.", alpha=0.6)
        ax_rate.annotate(f"{s['images_per_s']:.1f}", (i, s["images_per_s"]),
                         textcoords="offset points", xytext=(14, 4), fontsize=9)  # fmt: skip
    ratio = ", ".join(f"{r['config']} / {r['over']} = {r['images_per_s']:.2f}x"
                     for r in cpu["ratios"])  # fmt: skip
    ax_rate.set_xticks(x, labels)
    ax_rate.set_ylabel("images / s (median, min to max; dots: repeats)")
    ax_rate.set_title(f"demo, global batch {cpu['batch']}, CPU: {ratio}", fontsize=9)
    ax_rate.grid(True, axis="y", alpha=0.3)
    bottom = [0.0] * len(summaries)
    for rank in range(max(s["processes"] for s in summaries)):
        heights = [
            s["peak_rss_mib_per_process"][rank] if rank < s["processes"] else 0.0 for s in summaries
        ]
        ax_mem.bar(x, heights, 0.6, bottom=bottom, label=f"rank {rank}",
                   color=f"C{rank + 4}", edgecolor="k", linewidth=0.5)  # fmt: skip
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    for i, total in enumerate(bottom):
        ax_mem.annotate(f"{total:.0f}", (i, total), textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=9)  # fmt: skip
    ax_mem.set_xticks(x, labels)
    ax_mem.set_ylabel("peak RSS (MiB), stacked per process")
    ax_mem.set_title("peak resident memory (VmHWM)", fontsize=10)
    ax_mem.grid(True, axis="y", alpha=0.3)
    ax_mem.legend(fontsize=8)
    others = _median([r["other_processes_cores"] for r in cpu["runs"]])
    busy = "" if others is None else f"; other processes kept {others:.2f} cores busy (median)"
    fig.suptitle(
        f"{result['meta']['cores']} cores, load average {result['meta']['loadavg_start'][0]:.2f} "
        f"at start / {result['meta']['loadavg_end'][0]:.2f} at end{busy}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------- driver


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(Path(sys.argv[2]), sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    cores = _cores()
    parser.add_argument(
        "--configs", type=_config, nargs="+",
        default=[(1, cores), (2, max(1, cores // 2))],
        help="NxT: N training processes with T threads each; ratios are over the first "
        f"(default: 1x{cores} 2x{max(1, cores // 2)}, the same total number of threads)",
    )  # fmt: skip
    parser.add_argument("--batch", type=int, default=8, help="global batch")
    parser.add_argument("--warmup", type=int, default=5, help="steps before the measurement")
    parser.add_argument("--steps", type=int, default=30, help="measured steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--synthetic-images", type=int, default=16)
    parser.add_argument("--metric-images", type=int, default=16)
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-gpu", action="store_true")
    parser.add_argument("--gpu-recipes", nargs="+", default=["gsgan-ffhq256", "ballgan-ffhq256"])
    parser.add_argument("--gpu-batch", type=int, default=32)
    parser.add_argument("--gpu-warmup", type=int, default=10)
    parser.add_argument("--gpu-steps", type=int, default=40)
    parser.add_argument("--gpu-repeats", type=int, default=2)
    parser.add_argument("--gpu-unique-images", type=int, default=64)
    parser.add_argument("--gpu-repeat-images", type=int, default=16)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per command")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1 or args.gpu_warmup < 1 or args.gpu_steps < 1:
        parser.error("--warmup, --steps, --gpu-warmup and --gpu-steps must be >= 1")
    if any(args.batch % n for n, _ in args.configs):
        parser.error(f"--batch {args.batch} must be divisible by every process count")
    if args.quick:
        args.warmup, args.steps, args.repeats = 1, 2, 1
        args.synthetic_images, args.metric_images = 8, 8
        args.gpu_warmup, args.gpu_steps, args.gpu_repeats = 1, 2, 1
        args.gpu_unique_images, args.gpu_repeat_images = 8, 8
    import torch

    meta = {
        "command": " ".join(["python", "benchmarks/bench_train.py", *sys.argv[1:]]),
        "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": _cpu_model(),
        "cores": _cores(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "repeats": args.repeats,
        "quick": args.quick,
        "loadavg_start": list(os.getloadavg()),
    }
    start = time.perf_counter()
    result: dict = {"meta": meta}
    with tempfile.TemporaryDirectory(prefix="bench_train-") as tmp:
        work = Path(tmp)
        if args.skip_cpu:
            result["cpu"] = "skipped: --skip-cpu"
        else:
            configs = " ".join(f"{n}x{t}" for n, t in args.configs)
            print(f"== CPU: demo recipe, batch {args.batch}, processes x threads {configs} ==")
            result["cpu"] = run_cpu(args, work)
        if args.skip_gpu:
            result["gpu"] = "skipped: --skip-gpu"
        elif not torch.cuda.is_available():
            result["gpu"] = GPU_PENDING
            print(f"== GPU: {GPU_PENDING} ==")
        else:
            print(f"== GPU: {', '.join(args.gpu_recipes)}, batch {args.gpu_batch} ==")
            result["gpu"] = run_gpu(args, work)
    meta["loadavg_end"] = list(os.getloadavg())
    meta["total_s"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    kind = "gpu" if args.skip_cpu else "cpu"
    stem = args.out / f"train_{kind}{'_quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    markdown = _markdown(result)
    stem.with_suffix(".md").write_text(markdown)
    if isinstance(result["cpu"], dict):
        _plot(result, stem.with_suffix(".png"))
    print()
    print(markdown)
    print(f"wrote {stem}.json, .md{', .png' if isinstance(result['cpu'], dict) else ''} in "
          f"{meta['total_s']:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
