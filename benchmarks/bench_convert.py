"""Benchmark: converting released network pickles (``load_released`` and ``aware3d convert``).

For each given ``.pkl`` (GSGAN, EG3D or BallGAN snapshot format), two measurements, each in a
fresh subprocess with ``--threads`` CPU threads:

* ``load_released``: read the file with the safe reader and build the aware3d generator
  (``G_ema``) with every tensor copied;
* ``convert``: ``convert_released`` (``aware3d convert``): ``G_ema``, ``G`` and ``D`` converted
  and written as safetensors into a temporary folder.

Reported per file: its size, the generator's parameter count, the wall time (median over
``--repeats`` runs, and every run), and the peak extra memory: the growth of the process's
``ru_maxrss`` high-water mark from after the imports to after the call, as a multiple of the
file's size. The issue's targets: under 10 s for a 40 M-parameter generator on 2 CPU cores and
at most 2x the file's size in extra memory.

The released files are not part of the repository. The published checkpoints (GSGAN's Google
Drive, EG3D's NGC catalog, BallGAN's Google Drive; see docs/pages/released.md) work as they are;
the figures in ``benchmarks/results/convert_cpu.json`` were measured on snapshots written by the
authors' own code (random weights, their FFHQ configurations) built outside the repository.

Usage::

    .venv/bin/python benchmarks/bench_convert.py FILE.pkl [FILE.pkl ...] [--threads 2]
        [--repeats 3] [--out DIR]

Writes ``convert_cpu.json``, ``convert_cpu.png`` and ``convert_cpu.md`` under ``--out``
(default ``benchmarks/results``) and prints the table.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, os, resource, sys, tempfile, time
from pathlib import Path
import torch
torch.set_num_threads(int(sys.argv[3]))
from aware3d.models import convert_released_generator
from aware3d.recipes import convert_released

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

mode, path = sys.argv[1], sys.argv[2]
before = peak()
start = time.perf_counter()
if mode == "load_released":
    result = convert_released_generator(path)
    params = sum(p.numel() for p in result.generator.parameters())
    family = result.family
else:
    with tempfile.TemporaryDirectory() as folder:
        info = convert_released(path, Path(folder) / "converted")
        seconds = time.perf_counter() - start
        params, family = None, info["family"]
seconds = time.perf_counter() - start if mode == "load_released" else seconds
print(json.dumps({"seconds": seconds, "extra_bytes": peak() - before, "params": params,
                  "family": family}))
"""


def _run(mode: str, path: Path, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(path), str(threads)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{mode} {path} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    names = [row["file"] for row in rows]
    ys = range(len(rows))
    for offset, mode in ((-0.2, "load_released"), (0.2, "convert")):
        left.barh([y + offset for y in ys], [row[mode]["median_seconds"] for row in rows],
                  height=0.4, label=mode)  # fmt: skip
        right.barh([y + offset for y in ys], [row[mode]["extra_memory_x_file"] for row in rows],
                   height=0.4, label=mode)  # fmt: skip
    left.axvline(10, color="k", ls="--", lw=1, label="target (10 s)")
    right.axvline(2, color="k", ls="--", lw=1, label="target (2x)")
    for axis, label in ((left, "seconds (median)"), (right, "peak extra memory / file size")):
        axis.set_yticks(list(ys), names)
        axis.set_xlabel(label)
        axis.legend(fontsize=7)
    fig.suptitle("Converting released pickles (CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pickles", nargs="+", type=Path, help="released .pkl files")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    rows = []
    for path in args.pickles:
        size = path.stat().st_size
        row: dict = {"file": path.name, "bytes": size}
        for mode in ("load_released", "convert"):
            runs = [_run(mode, path, args.threads) for _ in range(args.repeats)]
            row["family"] = runs[0]["family"]
            if runs[0]["params"] is not None:
                row["generator_parameters"] = runs[0]["params"]
            row[mode] = {
                "seconds": [r["seconds"] for r in runs],
                "median_seconds": statistics.median(r["seconds"] for r in runs),
                "extra_bytes": max(r["extra_bytes"] for r in runs),
                "extra_memory_x_file": max(r["extra_bytes"] for r in runs) / size,
            }
        rows.append(row)
    result = {
        "benchmark": "convert",
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "threads": args.threads,
            "python": platform.python_version(),
        },
        "repeats": args.repeats,
        "targets": {"seconds": 10.0, "extra_memory_x_file": 2.0},
        "files": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "convert_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "| file | family | size | G params | load_released s | extra mem | convert s | extra mem |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        a, b = row["load_released"], row["convert"]
        lines.append(
            f"| {row['file']} | {row['family']} | {row['bytes'] / 2**20:.0f} MiB | "
            f"{row.get('generator_parameters', 0) / 1e6:.1f} M | {a['median_seconds']:.1f} | "
            f"{a['extra_memory_x_file']:.2f}x | {b['median_seconds']:.1f} | "
            f"{b['extra_memory_x_file']:.2f}x |"
        )
    table = "\n".join(lines) + "\n"
    (args.out / "convert_cpu.md").write_text(table)
    _plot(rows, args.out / "convert_cpu.png")
    print(table)


if __name__ == "__main__":
    main()
