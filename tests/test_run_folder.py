"""A run folder loses nothing: one run per folder, checked resume, sound checkpoints, clean logs."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from aware3d.data import SyntheticScenes
from aware3d.training import (
    CameraConditionedDiscriminator,
    GANLoss,
    RunFolderError,
    RunLock,
    fit,
)
from aware3d.training import run_checkpoints as checkpoints
from tiny_generator import TinyGenerator


def _data(scenes: int = 4, seed: int = 0) -> SyntheticScenes:
    return SyntheticScenes(num_scenes=scenes, views_per_scene=2, resolution=16, num_gaussians=40,
                           value_range=(-1.0, 1.0), seed=seed)  # fmt: skip


def _fit(out, steps, data=None, **kwargs):
    torch.manual_seed(0)
    generator = TinyGenerator()
    discriminator = CameraConditionedDiscriminator(16, 3, channel_base=256, channel_max=16,
                                                   embed_dim=8)  # fmt: skip
    options = {"batch": 4, "checkpoint_every": 2, "image_every": 100, "metric_images": 4,
               "tensorboard": False, "progress": False, **kwargs}  # fmt: skip
    return fit(generator, discriminator, _data() if data is None else data,
               GANLoss(weights={"brightness": 0.1}), out=out, steps=steps, **options)  # fmt: skip


def _steps(out):
    return [p.name for p in checkpoints.list_checkpoints(out)]


def _loss_records(out):
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if r["kind"] == "scalars" and "loss/d_loss" in r]


def test_a_new_run_refuses_a_folder_that_holds_another_and_overwrite_moves_it_aside(tmp_path):
    out = tmp_path / "run"
    _fit(out, 2)
    with pytest.raises(RunFolderError, match=r"already holds a run up to step-00000002.*--resume"):
        _fit(out, 4)
    assert _steps(out) == ["step-00000002"]  # untouched
    _fit(out, 2, overwrite=True, seed=1)
    moved = sorted(tmp_path.glob("run.old-*"))
    assert len(moved) == 1 and _steps(moved[0]) == ["step-00000002"]
    state = checkpoints.read_checkpoint_state(out / "checkpoints" / "step-00000002")
    assert state["run"]["seed"] == 1  # the new run's own checkpoint, nothing of the old one


def test_a_folder_in_use_is_refused_and_a_dead_holder_is_cleared(tmp_path, capsys):
    out = tmp_path / "run"
    with RunLock(out), pytest.raises(RunFolderError, match=f"in use by another run.*{os.getpid()}"):
        _fit(out, 1)
    assert not (out / ".lock").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (out / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": "h", "started": "t"}))
    _fit(out, 1, resume="auto")
    assert f"cleared the stale lock of process {int(dead.stdout)}" in capsys.readouterr().err
    assert not (out / ".lock").exists()


def test_resume_refuses_other_data_naming_the_field_and_both_values(tmp_path):
    out = tmp_path / "run"
    _fit(out, 2)
    with pytest.raises(ValueError, match="its items is 8, this run's data has 16"):
        _fit(out, 4, data=_data(scenes=8), resume="auto")
    with pytest.raises(ValueError, match="its fingerprint is"):
        _fit(out, 4, data=_data(seed=1), resume="auto")
    with pytest.raises(ValueError, match="written with batch 4; this run has 8"):
        _fit(out, 4, resume="auto", batch=8)
    assert _fit(out, 4, resume="auto").step == 4  # the same data resumes


@pytest.mark.parametrize(
    "damage",
    ["truncate", "no_state", "empty_rng", "missing_file"],
)
def test_a_damaged_newest_checkpoint_is_named_and_the_previous_one_used(tmp_path, capsys, damage):
    out = tmp_path / "run"
    _fit(out, 4)
    newest = out / "checkpoints" / "step-00000004"
    if damage == "truncate":
        path = newest / "generator.safetensors"
        path.write_bytes(path.read_bytes()[:-10])
        reason = "generator.safetensors has"
    elif damage == "no_state":
        (newest / "state.json").unlink()
        reason = "has no state.json"
    elif damage == "empty_rng":
        state = json.loads((newest / "state.json").read_text())
        (newest / "state.json").write_text(json.dumps({**state, "rng": []}))
        reason = "no RNG state per process"
    else:
        (newest / "optimizer_discriminator.safetensors").unlink()
        reason = "optimizer_discriminator.safetensors is missing"
    with pytest.raises(ValueError, match=reason):
        _fit(out, 6, resume=newest)
    result = _fit(out, 6, resume="auto")
    err = capsys.readouterr().err
    assert f"skipping {newest}" in err and reason in err
    assert result.step == 6
    abandoned = list((out / "checkpoints").glob("abandoned-*/step-00000004"))
    assert len(abandoned) == 1  # set aside, not used and not deleted
    assert _steps(out) == ["step-00000002", "step-00000004", "step-00000006"]


def test_a_run_whose_checkpoints_are_all_damaged_is_refused_with_the_list(tmp_path):
    out = tmp_path / "run"
    _fit(out, 2)
    (out / "checkpoints" / "step-00000002" / "state.json").write_text("{")
    with pytest.raises(
        ValueError, match=r"(?s)no complete checkpoint.*step-00000002.*not valid JSON.*--overwrite"
    ):
        _fit(out, 4, resume="auto")


def test_killed_writers_leftovers_are_cleaned_and_an_orphaned_copy_restored(tmp_path, capsys):
    out = tmp_path / "run"
    _fit(out, 4)
    folder = out / "checkpoints"
    os.replace(folder / "step-00000004", folder / ".step-00000004.old-99999")  # killed mid-swap
    (folder / ".step-00000006.tmp-99999").mkdir()  # killed mid-write
    result = _fit(out, 6, resume="auto")
    err = capsys.readouterr().err
    assert "restored step-00000004" in err and "removed .step-00000006.tmp-99999" in err
    assert result.step == 6
    assert sorted(p.name for p in folder.iterdir()) == [
        "step-00000002", "step-00000004", "step-00000006",
    ]  # fmt: skip
    assert "resumed from" in (out / "log.jsonl").read_text()


def test_restarting_from_an_older_checkpoint_sets_the_later_ones_aside(tmp_path):
    out = tmp_path / "run"
    _fit(out, 6, keep_checkpoints=3)
    result = _fit(out, 3, resume=out / "checkpoints" / "step-00000002", keep_checkpoints=1)
    assert result.checkpoint.name == "step-00000003"
    assert _steps(out) == ["step-00000003"]  # pruning kept the run's own final checkpoint
    aside = sorted(p.name for p in (out / "checkpoints").glob("abandoned-*/*"))
    assert aside == ["step-00000004", "step-00000006"]
    assert checkpoints.find_latest_checkpoint(out).name == "step-00000003"


def test_rerunning_a_finished_run_keeps_its_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    _fit(out, 2)
    before = json.loads((out / "metrics.json").read_text())
    assert before["metrics"]  # the end-of-run evaluation
    again = _fit(out, 2, resume="auto")
    assert again.step == 2 and again.metrics == before["metrics"]
    assert json.loads((out / "metrics.json").read_text()) == before
    assert "nothing to train" in capsys.readouterr().out


def test_each_step_is_logged_once_after_a_crash_and_a_resume(tmp_path):
    out = tmp_path / "run"

    def crash(info):
        if info.step == 3:
            raise KeyboardInterrupt  # a kill after step 3 was logged, before its checkpoint

    with pytest.raises(KeyboardInterrupt):
        _fit(out, 4, log_every=1, callbacks=[crash])
    assert _loss_records(out) == [1, 2, 3]
    assert not (out / ".lock").exists()  # released on the way out
    _fit(out, 4, log_every=1, resume="auto")
    assert _loss_records(out) == [1, 2, 3, 4]


def test_the_checkpoint_records_its_files_and_data(tmp_path):
    out = tmp_path / "run"
    _fit(out, 2)
    folder = out / "checkpoints" / "step-00000002"
    state = checkpoints.read_checkpoint_state(folder)
    assert (
        state["files"]["generator.safetensors"] == (folder / "generator.safetensors").stat().st_size
    )
    assert set(load_file(folder / "generator.safetensors")) == set(TinyGenerator().state_dict())
    data = state["run"]["data"]
    assert data["kind"] == "SyntheticScenes" and data["items"] == 8 and data["resolution"] == 16
    assert len(data["fingerprint"]) == 64


def test_cameras_outside_the_background_sphere_are_refused_before_the_first_step(tmp_path):
    from aware3d.models import DemoGenerator
    from aware3d.nn import small_decoder

    torch.manual_seed(0)
    generator = DemoGenerator(16, 16, small_decoder(16, num_levels=2), background_radius=2.5)
    discriminator = CameraConditionedDiscriminator(16, 3, channel_base=256, channel_max=16,
                                                   embed_dim=8)  # fmt: skip
    pattern = r"64 of 64 `fake cameras` are not strictly inside the background sphere of radius 2.5"
    with pytest.raises(ValueError, match=pattern):
        fit(generator, discriminator, _data(scenes=32), GANLoss(), out=tmp_path / "run", steps=2,
            batch=4, tensorboard=False, progress=False)  # fmt: skip
    assert not checkpoints.list_checkpoints(tmp_path / "run")
    assert not (tmp_path / "run" / "log.jsonl").exists()  # refused before anything was logged


def test_check_cameras_names_a_bad_argument():
    from aware3d.nn import SphericalBackground

    # under the test suite's type-checker hook, its own message (naming `cameras`) comes first
    with pytest.raises(TypeError, match="cameras"):
        SphericalBackground(8).check_cameras(torch.zeros(2, 25), "fake cameras")
