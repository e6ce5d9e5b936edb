"""aware3d train: recipes, overrides, blur, checkpoints, data position, resume bit-identity."""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aware3d import cli
from aware3d.data.synthetic import SyntheticScenes
from aware3d.recipes import (
    GSGANFFHQ256,
    GSGANFFHQ512,
    RECIPES,
    BallGANFFHQ256,
    DemoRecipe,
    apply_overrides,
    config_from_json,
    config_to_json,
)
from aware3d.training import blur_kernel, blur_sigma, discriminator_blur
from aware3d.training import run_checkpoints as checkpoints
from aware3d.training.data import DataPosition, RealBatches

#: A demo run small enough for a test: 64 synthetic images, 16 metric images, no bar.
TINY = ("synthetic_images=64", "metric_images=16", "batch=4", "log_every=1")


def tiny_demo(*extra: str) -> DemoRecipe:
    config = apply_overrides(DemoRecipe(), [*TINY, *extra])
    assert isinstance(config, DemoRecipe)
    return config


# ---------------------------------------------------------------------- recipes


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_builds_cites_its_source_and_round_trips_through_json(name):
    recipe = RECIPES[name]
    config = recipe.config()
    assert recipe.name == name
    assert "Source" in inspect.getdoc(type(config))
    data = json.loads(json.dumps(config_to_json(config)))
    assert config_from_json(data) == (recipe, config)


def test_released_hyper_parameters_are_pinned():
    # GSGAN train.py / _scripts/train_ffhq256.sh and BallGAN train.py + README (see recipes.py).
    for cls in (GSGANFFHQ256, GSGANFFHQ512, BallGANFFHQ256):
        config = cls()
        assert (config.batch, config.lr_generator, config.lr_discriminator) == (32, 0.0025, 0.002)
        assert config.betas == (0.0, 0.99) and config.adam_eps == 1e-8
        assert (config.r1_gamma, config.r1_interval, config.lazy_adjust) == (1.0, 16, True)
        assert (config.blur_sigma, config.blur_fade_kimg) == (10.0, 200.0)
        assert (config.ema_kimg, config.ema_rampup) == (10.0, 0.05)
        assert (config.swap_probability, config.swap_fade_kimg) == (0.5, 1000.0)
    gsgan = GSGANFFHQ256()
    assert (gsgan.kimg, gsgan.knn_weight, gsgan.knn_neighbours, gsgan.centre_weight) == (
        15000.0, 10.0, 64, 1.0,
    )  # fmt: skip
    assert gsgan.pose_contrastive_weight == 1.0 and gsgan.d_contrastive_dim == 64
    assert not gsgan.d_camera_conditioned
    assert (GSGANFFHQ512().resolution, GSGANFFHQ512().model) == (512, "gsgan-ffhq512")
    ballgan = BallGANFFHQ256()
    assert ballgan.kimg == 25000.0 and ballgan.model == "ballgan-ffhq256"
    assert ballgan.separation_weight == 0.0 and ballgan.foreground_loss_weight == 0.0


def test_overrides_are_parsed_by_the_field_type():
    config = apply_overrides(
        GSGANFFHQ256(),
        ["batch=16", "lr_generator=1e-3", "lazy_adjust=false", "betas=0.1,0.9",
         "augment=color,cutout", "model=gsgan-small"],
    )  # fmt: skip
    assert config.batch == 16 and config.lr_generator == 1e-3 and config.lazy_adjust is False
    assert config.betas == (0.1, 0.9) and config.augment == ("color", "cutout")
    assert apply_overrides(DemoRecipe(), ["augment="]).augment == ()
    assert type(config) is GSGANFFHQ256


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("bacth=4", "no field 'bacth' (did you mean 'batch'?); valid keys: adam_eps, augment, b"),
        ("batch=four", "--set batch: expected an integer, got 'four'"),
        ("lr_generator=fast", "--set lr_generator: expected a number"),
        ("lr_generator=nan", "expected a finite number"),
        ("lazy_adjust=maybe", "--set lazy_adjust: expected true or false"),
        ("betas=0.5", "--set betas: expected 2 comma-separated values"),
        ("batch", "--set expects key=value"),
        ("batch=0", "`batch` must be"),
        ("augment=blur", "`augment` must hold names from"),
        ("z_dim=8", "has no field 'z_dim'"),
    ],
)
def test_bad_overrides_name_the_key_and_the_problem(item, message):
    config = GSGANFFHQ256() if item.startswith("z_dim") else DemoRecipe()
    with pytest.raises(ValueError, match=None) as error:
        apply_overrides(config, [item])
    assert message in str(error.value)


def test_an_unknown_model_is_refused_when_the_generator_is_built():
    from aware3d.recipes import build_generator

    with pytest.raises(ValueError, match="`model` must be one of"):
        build_generator(apply_overrides(GSGANFFHQ256(), ["model=unet"]))


def test_an_override_given_twice_is_an_error():
    with pytest.raises(ValueError, match="given twice"):
        apply_overrides(DemoRecipe(), ["batch=4", "batch=8"])


def test_cli_reports_override_errors_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--recipe", "demo", "--out", str(tmp_path / "run"),
                  "--set", "r1_gama=1"])  # fmt: skip
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "has no field 'r1_gama'" in err and "r1_gamma" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit):
        cli.main(["train", "--recipe", "demo", "--out", str(tmp_path), "--steps", "2",
                  "--kimg", "1"])  # fmt: skip


def test_the_cli_flags_are_overrides():
    args = cli.build_parser().parse_args(
        ["train", "--recipe", "demo", "--out", "x", "--kimg", "2.5", "--batch", "4", "--seed", "3"]
    )
    assert cli._train_overrides(args) == ["batch=4", "seed=3", "kimg=2.5", "steps=0"]


def test_total_steps_come_from_kimg_unless_steps_is_set():
    assert DemoRecipe(kimg=1.0, batch=8).total_steps == 125
    assert DemoRecipe(kimg=1.0, batch=8, steps=7).total_steps == 7
    assert DemoRecipe(batch=8).every(0.02) == 2


def test_recipe_checks_run_on_construction():
    with pytest.raises(ValueError, match="training length"):
        DemoRecipe(kimg=0.0)
    with pytest.raises(ValueError, match="d_contrastive_dim"):
        DemoRecipe(pose_contrastive_weight=1.0)
    with pytest.raises(ValueError, match="resolution"):
        DemoRecipe(resolution=48)


# ---------------------------------------------------------------------- blur


def test_blur_matches_eg3d_kernel_and_schedule():
    sigma = 2.0
    x = torch.arange(-6, 7, dtype=torch.float64)
    f = torch.exp2(-((x / sigma) ** 2))
    torch.testing.assert_close(blur_kernel(sigma), (f / f.sum()).float())
    assert blur_kernel(0.3).tolist() == [1.0]
    assert blur_sigma(0, 10.0, 200_000) == 10.0
    assert blur_sigma(100_000, 10.0, 200_000) == 5.0
    assert blur_sigma(300_000, 10.0, 200_000) == 0.0
    assert blur_sigma(5, 10.0, 0) == 0.0


def test_blur_is_separable_filtering_with_zero_padding():
    images = torch.rand(2, 9, 9, 3, dtype=torch.float64)
    out = discriminator_blur(images, 1.0)
    k = blur_kernel(1.0).double()
    r = k.numel() // 2
    padded = torch.nn.functional.pad(images.permute(0, 3, 1, 2), (r, r, r, r))
    kernel2d = (k[:, None] * k[None, :]).expand(3, 1, -1, -1)
    reference = torch.nn.functional.conv2d(padded, kernel2d, groups=3).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, reference)
    assert discriminator_blur(images, 0.0) is images
    small = torch.rand(1, 5, 5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: discriminator_blur(t, 0.7), (small,))


# ---------------------------------------------------------------------- checkpoints


def _optimised_module():
    module = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1, betas=(0.0, 0.99))
    module(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    return module, optimizer


def test_checkpoints_keep_the_newest_and_ignore_temporary_folders(tmp_path):
    module, optimizer = _optimised_module()
    for step in (2, 4, 6, 8):
        checkpoints.save_training_checkpoint(
            tmp_path, step, modules={"net": module}, optimizers={"opt": optimizer},
            config={"recipe": "x"}, state={"step": step}, keep=2,
        )  # fmt: skip
    (tmp_path / "checkpoints" / ".step-00000010.tmp-123").mkdir()  # a crash mid-write
    names = [p.name for p in checkpoints.list_checkpoints(tmp_path)]
    assert names == ["step-00000006", "step-00000008"]
    assert checkpoints.find_latest_checkpoint(tmp_path).name == "step-00000008"
    assert checkpoints.find_latest_checkpoint(tmp_path / "nothing") is None


def test_checkpoint_round_trip_restores_modules_optimizers_and_rng(tmp_path):
    module, optimizer = _optimised_module()
    generator = torch.Generator().manual_seed(5)
    torch.randn(3, generator=generator)
    rng = checkpoints.capture_rng({"stream": generator})
    folder = checkpoints.save_training_checkpoint(
        tmp_path, 1, modules={"net": module}, optimizers={"opt": optimizer},
        config={"recipe": "x"}, state={"step": 1, "rng": rng}, keep=1,
    )  # fmt: skip
    expected_draw = torch.randn(4, generator=generator)
    expected_global = torch.rand(2)
    other, other_optimizer = torch.nn.Linear(3, 2), None
    other_optimizer = torch.optim.Adam(other.parameters(), lr=0.5)
    state = checkpoints.load_training_checkpoint(
        folder, modules={"net": other}, optimizers={"opt": other_optimizer}
    )
    for a, b in zip(module.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    saved, loaded = optimizer.state_dict(), other_optimizer.state_dict()
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(saved["state"][0][key], loaded["state"][0][key])
    assert loaded["param_groups"][0]["lr"] == 0.1
    fresh = torch.Generator().manual_seed(0)
    checkpoints.restore_rng(state["rng"], {"stream": fresh})
    assert torch.equal(torch.randn(4, generator=fresh), expected_draw)
    assert torch.equal(torch.rand(2), expected_global)
    with pytest.raises(ValueError, match="RNG streams"):
        checkpoints.restore_rng(state["rng"], {"other": fresh})


def test_a_checkpoint_of_another_network_is_refused_before_loading(tmp_path):
    module, optimizer = _optimised_module()
    folder = checkpoints.save_training_checkpoint(
        tmp_path, 1, modules={"net": module}, optimizers={}, config={}, state={"step": 1}, keep=1
    )
    wrong = torch.nn.Linear(4, 2)
    before = wrong.weight.clone()
    with pytest.raises(ValueError, match="expects"):
        checkpoints.load_training_checkpoint(folder, modules={"net": wrong})
    assert torch.equal(wrong.weight, before)
    with pytest.raises(FileNotFoundError, match="state.json"):
        checkpoints.load_training_checkpoint(tmp_path, modules={})


# ---------------------------------------------------------------------- data


def test_processes_share_the_data_and_a_position_resumes_it():
    scenes = SyntheticScenes(num_scenes=3, views_per_scene=4, resolution=16, seed=0)

    def labels_of(batches, count):
        return [batches.next(torch.device("cpu"))[1] for _ in range(count)]

    kwargs = {"batch": 2, "resolution": 16, "seed": 0, "workers": 0}
    one = labels_of(RealBatches(scenes, rank=0, world_size=1, **{**kwargs, "batch": 4}), 3)
    ranks = [labels_of(RealBatches(scenes, rank=r, world_size=2, **kwargs), 3) for r in (0, 1)]
    for step in range(3):  # each process takes every second item of the same permutation
        torch.testing.assert_close(one[step][0::2], ranks[0][step])
        torch.testing.assert_close(one[step][1::2], ranks[1][step])
    straight = RealBatches(scenes, rank=0, world_size=1, **kwargs)
    seen = labels_of(straight, 8)  # crosses the epoch boundary (6 batches per epoch)
    assert straight.position == DataPosition(1, 2)
    resumed = RealBatches(scenes, rank=0, world_size=1, position=DataPosition(0, 5), **kwargs)
    for a, b in zip(seen[5:], labels_of(resumed, 3), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="too few"):
        RealBatches(scenes, rank=0, world_size=1, **{**kwargs, "batch": 13})


# ---------------------------------------------------------------------- resume
# Training runs go through the command in a subprocess: outside pytest's jaxtyping hook a demo
# step takes a fraction of a second instead of seconds.


def run_train(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "aware3d", "train", "--recipe", "demo", "--no-progress",
               *[part for item in TINY for part in ("--set", item)], *args]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _checkpoint_tensors(folder: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors.update({f"{file.stem}/{k}": v for k, v in load_file(file).items()})
    return tensors


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["demo", "gsgan", "ballgan"])
def test_resuming_two_plus_two_steps_is_bit_identical_to_four(tmp_path, model):
    every_2 = ("--set", "checkpoint_kimg=0.008", "--set", "augment=color,translation,cutout",
               "--set", f"demo_model={model}")  # fmt: skip
    run_train("--out", str(tmp_path / "straight"), "--steps", "4", *every_2)
    run_train("--out", str(tmp_path / "resumed"), "--steps", "2", *every_2)
    assert checkpoints.find_latest_checkpoint(tmp_path / "resumed").name == "step-00000002"
    run_train("--out", str(tmp_path / "resumed"), "--steps", "4", "--resume", "auto", *every_2)
    a = _checkpoint_tensors(tmp_path / "straight" / "checkpoints" / "step-00000004")
    b = _checkpoint_tensors(tmp_path / "resumed" / "checkpoints" / "step-00000004")
    assert a.keys() == b.keys() and len(a) > 50
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, different[:5]
    assert any(name.startswith("optimizer_generator/state.") for name in a)
    assert any(name.startswith("generator_ema/") for name in a)
    state = json.loads(
        (tmp_path / "resumed" / "checkpoints" / "step-00000004" / "state.json").read_text()
    )
    assert state["step"] == 4 and state["images_seen"] == 16 and state["world_size"] == 1
    assert state["data_position"] == [0, 4]
    log = _log(tmp_path / "resumed")
    assert any(r["kind"] == "event" and r["message"].startswith("resumed") for r in log)
    losses = [r for r in log if r["kind"] == "scalars" and "loss/d_loss" in r]
    assert [r["step"] for r in losses] == [1, 2, 3, 4]
    assert os.listdir(tmp_path / "resumed" / "tensorboard")
    assert (tmp_path / "resumed" / "images" / "samples-00000004.png").is_file()
    config = json.loads(
        (tmp_path / "resumed" / "checkpoints" / "step-00000004" / "config.json").read_text()
    )
    assert config_from_json(config)[1] == tiny_demo(
        "steps=4", "checkpoint_kimg=0.008", "augment=color,translation,cutout",
        f"demo_model={model}",
    )  # fmt: skip


@pytest.mark.slow
def test_resume_refuses_a_changed_network_and_reports_other_changes(tmp_path):
    run_train("--out", str(tmp_path), "--steps", "1")
    refused = run_train("--out", str(tmp_path), "--steps", "2", "--resume", "auto",
                        "--set", "z_dim=32", check=False)  # fmt: skip
    assert refused.returncode != 0
    assert "`z_dim` is 64 in the checkpoint and 32 now" in refused.stderr
    changed = run_train("--out", str(tmp_path), "--steps", "2", "--resume", str(tmp_path),
                        "--set", "lr_generator=0.001")  # fmt: skip
    assert "resumed from" in changed.stdout and "lr_generator: 0.0025 -> 0.001" in changed.stdout
    resumed = [r for r in _log(tmp_path) if r.get("message", "").startswith("resumed from")]
    assert "lr_generator: 0.0025 -> 0.001" in resumed[-1]["changes"]  # logged, not only printed
    latest = checkpoints.find_latest_checkpoint(tmp_path)
    assert latest.name == "step-00000002"
    groups = json.loads((latest / "state.json").read_text())["optimizers"]
    assert groups["optimizer_generator"]["param_groups"][0]["lr"] == 0.001  # took effect
    assert groups["optimizer_discriminator"]["param_groups"][0]["lr"] == 0.001  # the demo's
    for field in ("seed=1", "r1_interval=1"):
        result = run_train("--out", str(tmp_path), "--steps", "3", "--resume", "auto",
                           "--set", field, check=False)  # fmt: skip
        if field.startswith("seed"):
            assert result.returncode != 0
            assert "was written with seed 0; this run has 1" in result.stderr
        else:  # any other field may change
            assert result.returncode == 0, result.stderr
    missing = run_train("--out", str(tmp_path / "new"), "--steps", "1", "--resume",
                        str(tmp_path / "new"), check=False)  # fmt: skip
    assert missing.returncode != 0 and "no checkpoint" in missing.stderr


@pytest.mark.slow
def test_the_cli_refuses_a_forgotten_resume_and_overwrite_moves_the_run_aside(tmp_path):
    run_train("--out", str(tmp_path / "run"), "--steps", "1")
    again = run_train("--out", str(tmp_path / "run"), "--steps", "2", check=False)
    assert again.returncode == 1
    assert "already holds a run up to step-00000001" in again.stderr
    assert "--resume auto" in again.stderr and "--overwrite" in again.stderr
    both = run_train("--out", str(tmp_path / "run"), "--resume", "auto", "--overwrite",
                     check=False)  # fmt: skip
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    run_train("--out", str(tmp_path / "run"), "--steps", "1", "--overwrite")
    assert len(list(tmp_path.glob("run.old-*/checkpoints/step-00000001"))) == 1
