"""Smoke tests of the benchmark scripts (their ``--quick`` runs)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_volume_quick(tmp_path):
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_volume.py"), "--quick"]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"--quick took {elapsed:.0f} s"
    result = json.loads((tmp_path / "volume_cpu_quick.json").read_text())
    meta = result["meta"]
    assert meta["device"] == "cpu" and meta["threads"] == 1 and meta["quick"] is True
    assert meta["torch"] and meta["command"].startswith("python benchmarks/bench_volume.py")
    assert meta["num_coarse"] == meta["num_fine"] == 48
    (volume,) = result["volume"]
    assert volume["path"] == "volume" and volume["samples_per_ray"] == 96
    assert volume["rays"] == volume["batch"] * volume["resolution"] ** 2
    (splat,) = result["splat"]
    assert splat["backend"] == "torch" and splat["num_gaussians"] == 5376
    for row in (volume, splat, result["generator"]):
        for key in ("fwd_rays_per_s", "fwdbwd_rays_per_s", "peak_fwd_mib", "peak_fwdbwd_mib"):
            assert row[key] >= 0
        assert row["fwd_rays_per_s"] > 0 and row["fwdbwd_rays_per_s"] > 0
    (ratio,) = result["ratios"]
    expected = splat["fwd_rays_per_s"] / volume["fwd_rays_per_s"]
    assert ratio["fwd"] == pytest.approx(expected)
    assert ratio["fwdbwd"] > 0
    assert result["generator"]["fwd_images_per_s"] > 0
    assert (tmp_path / "volume_cpu_quick.md").read_text().startswith("# Volume rendering")
    assert (tmp_path / "volume_cpu_quick.png").stat().st_size > 0


@pytest.mark.slow
def test_bench_train_quick(tmp_path):
    import torch

    # without CUDA the GPU section must say it is pending; with CUDA it is skipped (time)
    skip_gpu = ["--skip-gpu"] if torch.cuda.is_available() else []
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_train.py"), "--quick", *skip_gpu]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - start
    assert elapsed < 120, f"--quick took {elapsed:.0f} s"
    result = json.loads((tmp_path / "train_cpu_quick.json").read_text())
    meta = result["meta"]
    assert meta["quick"] is True and meta["torch"] and meta["cores"] >= 1
    assert meta["command"].startswith("python benchmarks/bench_train.py --quick")
    assert len(meta["loadavg_start"]) == len(meta["loadavg_end"]) == 3
    assert result["gpu"] == ("skipped: --skip-gpu" if skip_gpu else "pending: no CUDA device")
    cpu = result["cpu"]
    assert cpu["recipe"] == "demo" and cpu["batch"] == 8
    one, two = cpu["summary"]
    assert (one["processes"], two["processes"]) == (1, 2)
    assert len(one["peak_rss_mib_per_process"]) == 1 and len(two["peak_rss_mib_per_process"]) == 2
    cores = meta["cores"]  # the default configurations: 1 x cores threads, 2 x cores // 2
    assert one["threads_per_process"] == [cores]
    assert two["threads_per_process"] == [max(1, cores // 2)] * 2
    for summary in (one, two):
        assert summary["images_per_s"] > 0 and summary["wall_s"] > 0
        assert all(100 < mib < 10_000 for mib in summary["peak_rss_mib_per_process"])
    (ratio,) = cpu["ratios"]
    assert ratio["images_per_s"] == pytest.approx(two["images_per_s"] / one["images_per_s"])
    for run in cpu["runs"]:
        assert run["measured_steps"] == cpu["measured_steps"] == 2
        assert run["images_per_s"] == pytest.approx(2 * 8 / run["measured_s"])
        assert run["wall_s"] > run["measured_s"]
        assert [r["rank"] for r in run["ranks"]] == list(range(run["processes"]))
    assert (tmp_path / "train_cpu_quick.md").read_text().startswith("# `aware3d train`")
    assert (tmp_path / "train_cpu_quick.png").stat().st_size > 0
