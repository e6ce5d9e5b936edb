"""aware3d train with every regulariser on, the released recipes' networks, eval and render."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from aware3d.recipes import RECIPES

pytestmark = pytest.mark.slow

TINY = ("synthetic_images=64", "metric_images=16", "log_every=1")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "aware3d", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout}\n{result.stderr}")
    return result


def train_demo(out: Path, *sets: str, steps: int = 2) -> list[dict]:
    pairs = [part for item in (*TINY, *sets) for part in ("--set", item)]
    run("train", "--recipe", "demo", "--out", str(out), "--steps", str(steps), "--batch", "4",
        "--no-progress", *pairs)  # fmt: skip
    lines = (out / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "loss/d_loss" in r]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-run")
    train_demo(out)
    return out


def test_gsgan_regularisers_blur_swaps_and_augmentation_all_train(tmp_path):
    records = train_demo(
        tmp_path, "demo_model=gsgan", "knn_weight=10", "knn_neighbours=8", "centre_weight=1",
        "d_contrastive_dim=16", "pose_contrastive_weight=1", "d_camera_conditioned=false",
        "blur_sigma=2", "blur_fade_kimg=1", "swap_probability=0.5", "swap_fade_kimg=1",
        "lazy_adjust=true", "augment=color,translation",
    )  # fmt: skip
    assert len(records) == 2
    for record in records:
        for name in ("knn", "centre", "contrastive_g", "contrastive_d", "separation", "distortion"):
            value = record[f"loss/{name}"]
            assert value == value and value > 0, (name, value)


def test_ballgan_trains_with_its_dual_discriminator_and_ramped_losses(tmp_path):
    records = train_demo(tmp_path, "demo_model=ballgan", "separation_ramp=true",
                         "foreground_loss_ramp=true", "r1_interval=1")  # fmt: skip
    assert all(r["loss/density"] > 0 and r["loss/r1"] > 0 for r in records)
    config = json.loads((tmp_path / "checkpoints" / "step-00000002" / "config.json").read_text())
    assert config["fields"]["demo_model"] == "ballgan"


@pytest.mark.parametrize("name", ["gsgan-ffhq256", "gsgan-ffhq512", "ballgan-ffhq256"])
def test_the_released_recipes_build_their_networks(name):
    recipe = RECIPES[name]
    config = recipe.config()
    generator = recipe.generator(config)
    discriminator = recipe.discriminator(config, generator.image_channels)
    assert discriminator.resolution == config.resolution
    assert discriminator.image_channels == (6 if name.startswith("ballgan") else 3)
    assert (discriminator.contrastive_dim is not None) == name.startswith("gsgan")
    assert sum(p.numel() for p in generator.parameters()) > 10_000_000


def test_a_recipe_without_data_needs_data(tmp_path):
    result = run("train", "--recipe", "gsgan-ffhq256", "--out", str(tmp_path), "--steps", "1",
                 check=False)  # fmt: skip
    assert result.returncode != 0 and "needs --data" in result.stderr


def test_render_writes_every_output_of_a_checkpoint(demo_run, tmp_path):
    result = run("render", "--checkpoint", str(demo_run), "--out", str(tmp_path), "--count", "4")
    for name in ("grid.png", "turntable.gif", "depth.png", "sample.ply"):
        assert (tmp_path / name).is_file() and name in result.stdout
    assert Image.open(tmp_path / "grid.png").size[0] >= 64


def test_eval_reports_the_metrics_of_a_checkpoint(demo_run, tmp_path):
    folder = demo_run / "checkpoints" / "step-00000002"
    result = run("eval", "--checkpoint", str(folder), "--images", "16", "--out",
                 str(tmp_path / "eval.json"))  # fmt: skip
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["step"] == 2 and report["images"] == 16
    assert report["metrics"]["swd"] > 0 and "fid" not in report["metrics"]
    assert "FID/KID skipped" in result.stdout
    missing = run("eval", "--checkpoint", str(tmp_path), check=False)
    assert missing.returncode != 0 and "no checkpoint" in missing.stderr
