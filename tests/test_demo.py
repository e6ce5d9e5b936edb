"""The demo end to end with a handful of steps: every output exists and opens."""

import json

import plyfile
import pytest
import torch
from PIL import Image

from aware3d.cli import build_parser
from aware3d.demo import DemoConfig, build_models
from aware3d.demo.run import run_demo
from aware3d.training import load_checkpoint

TINY = DemoConfig(steps=2, resolution=32, batch=2, metric_images=8)


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    metrics = run_demo(
        data_path=None, out=out, device="cpu", config=TINY, max_images=8, progress=False
    )
    return out, metrics


def test_outputs_exist_and_open(demo_output):
    out, metrics = demo_output
    for name in ("samples.png", "decomposition.png", "levels.png", "loss_curves.png"):
        with Image.open(out / name) as image:
            assert image.size[0] > 32
    with Image.open(out / "turntable.gif") as gif:
        assert gif.n_frames == 24
    vertex = plyfile.PlyData.read(str(out / "sample.ply"))["vertex"]
    assert vertex.count > 0
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("sliced_wasserstein_start", "sliced_wasserstein_end", "separation_loss_end"):
        assert isinstance(saved[key], float)
    assert saved["steps"] == 2
    assert metrics["sliced_wasserstein_start"] == saved["sliced_wasserstein_start"]


def test_checkpoint_round_trip(demo_output):
    out, _ = demo_output
    generator, discriminator = build_models(TINY, torch.device("cpu"))
    config = load_checkpoint(
        out / "checkpoint", {"generator_ema": generator, "discriminator": discriminator}
    )
    assert config["demo_config"]["steps"] == 2
    trained, _ = build_models(TINY, torch.device("cpu"))
    load_checkpoint(out / "checkpoint", {"generator_ema": trained})
    for a, b in zip(generator.state_dict().values(), trained.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_cli_parses_the_documented_flags():
    args = build_parser().parse_args(
        ["demo", "--steps", "5", "--resolution", "32", "--batch", "4", "--out", "x",
         "--device", "cpu", "--seed", "3"]
    )  # fmt: skip
    assert (args.steps, args.resolution, args.batch, args.seed) == (5, 32, 4, 3)
    assert args.data is None
    defaults = build_parser().parse_args(["demo"])
    config = DemoConfig()
    assert (defaults.steps, defaults.resolution, defaults.batch, defaults.seed) == (
        config.steps, config.resolution, config.batch, config.seed,
    )  # fmt: skip


def test_demo_trains_on_an_eg3d_dataset(tmp_path):
    from aware3d.data import SyntheticScenes

    archive = SyntheticScenes(
        num_scenes=2, views_per_scene=4, resolution=16, num_gaussians=100
    ).export_eg3d(tmp_path / "data.zip", as_zip=True)
    metrics = run_demo(
        data_path=archive, out=tmp_path / "out", device="cpu", config=TINY, max_images=8,
        progress=False,
    )  # fmt: skip
    assert metrics["data"].startswith("EG3DDataset(")
    assert (tmp_path / "out" / "samples.png").is_file()
