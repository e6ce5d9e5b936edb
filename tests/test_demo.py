"""The demo end to end with a handful of steps: every output exists and opens."""

import json

import plyfile
import pytest
import torch
from PIL import Image

from aware3d.cli import build_parser, main
from aware3d.demo import run_demo
from aware3d.recipes import RECIPES, DemoRecipe, load_generator
from aware3d.training import find_latest_checkpoint, load_training_checkpoint

TINY = DemoRecipe(steps=2, resolution=32, batch=2, metric_images=8, synthetic_images=8)


def build_models(config):
    torch.manual_seed(config.seed)
    generator = RECIPES["demo"].generator(config)
    return generator, RECIPES["demo"].discriminator(config, generator.image_channels)


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    metrics = run_demo(TINY, out=out, progress=False)
    return out, metrics


@pytest.mark.slow
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
    for key in (
        "sliced_wasserstein_start",
        "sliced_wasserstein_end",
        "separation_loss_end",
        "foreground_coverage_fake",
        "foreground_coverage_real",
    ):
        assert isinstance(saved[key], float)
    assert 0 <= saved["foreground_coverage_fake"] <= 1
    assert 0 < saved["foreground_coverage_real"] < 1  # synthetic scenes have masks
    assert saved["steps"] == 2
    assert metrics["sliced_wasserstein_start"] == saved["sliced_wasserstein_start"]


@pytest.mark.slow
def test_checkpoint_round_trip(demo_output):
    """The demo's output folder is an ordinary run: fit's checkpoint, read by eval/render."""
    out, _ = demo_output
    checkpoint = find_latest_checkpoint(out)
    assert checkpoint is not None and checkpoint.name == "step-00000002"
    generator, discriminator = build_models(TINY)
    state = load_training_checkpoint(
        checkpoint, modules={"generator_ema": generator, "discriminator": discriminator}
    )
    assert state["step"] == 2
    loaded, recipe, config, _ = load_generator(out)
    assert recipe.name == "demo" and config == TINY
    for a, b in zip(generator.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.slow
def test_eval_and_render_read_the_demo_output(demo_output, tmp_path, capsys):
    out, _ = demo_output
    main(["eval", "--checkpoint", str(out), "--images", "4"])
    assert '"swd"' in capsys.readouterr().out
    main(["render", "--checkpoint", str(out), "--out", str(tmp_path / "r"), "--count", "2"])
    assert (tmp_path / "r" / "grid.png").is_file()


def test_eval_of_an_empty_folder_names_the_argument(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--checkpoint", str(tmp_path)])
    err = capsys.readouterr().err
    assert "--checkpoint" in err and "--resume" not in err


def test_cli_parses_the_documented_flags():
    args = build_parser().parse_args(
        ["demo", "--steps", "5", "--resolution", "32", "--batch", "4", "--out", "x",
         "--device", "cpu", "--seed", "3"]
    )  # fmt: skip
    assert (args.steps, args.resolution, args.batch, args.seed) == (5, 32, 4, 3)
    assert args.data is None
    defaults = build_parser().parse_args(["demo"])
    assert (defaults.steps, defaults.resolution, defaults.batch, defaults.seed) == (None,) * 4
    assert defaults.model is None  # the demo recipe's own defaults apply


@pytest.mark.slow
def test_demo_trains_on_an_eg3d_dataset(tmp_path):
    from aware3d.data import SyntheticScenes

    archive = SyntheticScenes(
        num_scenes=2, views_per_scene=4, resolution=16, num_gaussians=100
    ).export_eg3d(tmp_path / "data.zip", as_zip=True)
    metrics = run_demo(TINY, data_path=archive, out=tmp_path / "out", progress=False)
    assert metrics["data"].startswith("EG3DDataset(")
    assert metrics["foreground_coverage_real"] is None  # no masks in an EG3D dataset
    assert (tmp_path / "out" / "samples.png").is_file()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", -1),
        ("batch", -1),
        ("initial_radius", 0.0),
        ("decoder_blocks", "transformer"),
        ("ema_kimg", 0.0),
        ("ema_rampup", -0.1),
        ("r1_gamma", float("nan")),
        ("augment", ("flip",)),
        ("augment", "color"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises((ValueError, TypeError), match=field):
        DemoRecipe(**{field: value})


def test_default_decoder_starts_inside_the_image():
    generator, _ = build_models(DemoRecipe())
    decoder = generator.decoder
    anchors = torch.tanh(decoder.trunk.initial_position_raw) * decoder.box_half_extent
    assert float(torch.linalg.vector_norm(anchors, dim=-1).max()) <= DemoRecipe().initial_radius
