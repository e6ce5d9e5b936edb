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
