"""The ``aware3d`` command refuses bad arguments before any work starts."""

import subprocess
import sys

import pytest

from aware3d.cli import build_parser, check_output_folder


def parse_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["demo", *argv])
    assert exit_info.value.code == 2  # argparse's usage error, not a traceback
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "argument --steps: expected an integer >= 1, got 0"),
        (["--steps", "-5"], "argument --steps: expected an integer >= 1, got -5"),
        (["--steps", "many"], "argument --steps: expected an integer >= 1, got 'many'"),
        (["--batch", "0"], "argument --batch: expected an integer >= 1, got 0"),
        (["--max-images", "3"], "argument --max-images: expected at least 4 images"),
        (["--resolution", "48"], "argument --resolution: expected a power of two from 16 to 256"),
        (["--seed", "-1"], "argument --seed: expected an integer >= 0, got -1"),
        (["--device", "gpu"], "argument --device: expected cpu, cuda, cuda:N or mps"),
    ],
)
def test_bad_numbers_are_usage_errors(capsys, argv, message):
    assert message in parse_error(capsys, *argv)


def test_out_must_be_a_writable_folder(capsys, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    assert "exists and is not a directory" in parse_error(capsys, "--out", str(a_file))
    below_a_file = a_file / "out"
    assert "cannot be created" in parse_error(capsys, "--out", str(below_a_file))
    # a missing folder under a writable one is fine (created when the demo writes)
    args = build_parser().parse_args(["demo", "--out", str(tmp_path / "new" / "run")])
    assert args.out == tmp_path / "new" / "run"
    assert check_output_folder(tmp_path) is None


def test_missing_data_is_a_usage_error(capsys, tmp_path):
    assert "does not exist" in parse_error(capsys, "--data", str(tmp_path / "missing.zip"))


def test_max_images_default_is_the_demo_recipes():
    from aware3d.recipes import DemoRecipe

    assert build_parser().parse_args(["demo"]).max_images is None  # DemoRecipe's applies
    assert DemoRecipe().synthetic_images == 2048


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("aware3d ")


def test_train_without_tensorboard_names_the_extra(monkeypatch, capsys, tmp_path):
    import importlib.util

    from aware3d.cli import main

    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "tensorboard" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(SystemExit):
        main(["train", "--recipe", "demo", "--out", str(tmp_path / "run"), "--steps", "1"])
    assert "aware3d[train]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.slow
def test_help_has_no_raw_markup():
    result = subprocess.run(
        [sys.executable, "-m", "aware3d", "--help"], capture_output=True, text=True, check=True
    )
    assert "``" not in result.stdout
    assert "demo" in result.stdout


def cli_error(capsys, *argv: str) -> str:
    from aware3d.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.fixture
def no_work(monkeypatch, tmp_path):
    """``tmp_path`` as the working folder, with evaluation and rendering failing the test."""
    import aware3d.recipes

    def work(*args, **kwargs):
        pytest.fail("the work started before --out was checked")

    monkeypatch.setattr(aware3d.recipes, "evaluate_checkpoint", work)
    monkeypatch.setattr(aware3d.recipes, "render_checkpoint", work)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    (tmp_path / "out" / "sample.ply").mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize(
    ("command", "out", "message"),
    [
        (
            "eval",
            "missing/m.json",
            "cannot write missing/m.json: the folder missing does not exist",
        ),
        ("eval", "a_file/m.json", "cannot write a_file/m.json: a_file is a file, not a folder"),
        ("eval", "out", "cannot write out: it is a folder"),
        ("eval", "out/", "cannot write out/: it is a folder"),
        ("eval", "new/", "cannot write new/: it names a folder"),
        ("render", "out", "cannot write out/sample.ply: it is a folder"),
    ],
)
def test_eval_and_render_check_out_before_any_work(capsys, no_work, command, out, message):
    error = cli_error(capsys, command, "--checkpoint", str(no_work), "--out", out)
    assert f"aware3d {command}: error: argument --out: {message}\n" in error


def test_eval_writes_its_json_and_names_out_when_that_fails(capsys, monkeypatch, tmp_path):
    import json
    import shutil

    import aware3d.recipes
    from aware3d.cli import main

    report = {"step": 2, "metrics": {"swd": 1.5}}
    monkeypatch.setattr(aware3d.recipes, "evaluate_checkpoint", lambda *a, **k: report)
    out = tmp_path / "reports" / "eval.json"
    out.parent.mkdir()
    main(["eval", "--checkpoint", str(tmp_path), "--out", str(out)])
    text = json.dumps(report, indent=2) + "\n"
    assert out.read_text() == text and capsys.readouterr().out == text

    def folder_gone(*args, **kwargs):
        shutil.rmtree(out.parent)
        return report

    monkeypatch.setattr(aware3d.recipes, "evaluate_checkpoint", folder_gone)
    error = cli_error(capsys, "eval", "--checkpoint", str(tmp_path), "--out", str(out))
    assert f"argument --out: cannot write {out}: the folder {out.parent} does not exist" in error


def test_render_checks_its_folder_before_reading_or_rendering(tmp_path):
    import torch

    from aware3d.cli import RENDER_FILES
    from aware3d.data.synthetic import SyntheticScenes
    from aware3d.models import demo_generator
    from aware3d.recipes import render_checkpoint
    from aware3d.viz.render import _FILES, render_outputs

    assert tuple(_FILES.values()) == RENDER_FILES
    (tmp_path / "a_file").write_text("")
    with pytest.raises(NotADirectoryError, match="it is a file, not a folder"):
        render_checkpoint(tmp_path / "no-checkpoint", tmp_path / "a_file")
    torch.manual_seed(0)
    generator = demo_generator(z_dim=16, w_dim=16, resolution=16, num_levels=2)
    calls = []
    generator.register_forward_hook(lambda *args: calls.append(args))
    (tmp_path / "out" / "grid.png").mkdir(parents=True)
    labels = SyntheticScenes(num_scenes=1, views_per_scene=1, resolution=16).labels
    with pytest.raises(IsADirectoryError) as caught:
        render_outputs(generator, tmp_path / "out", labels=labels, resolution=16, count=1)
    assert str(caught.value) == f"cannot write {tmp_path / 'out' / 'grid.png'}: it is a folder"
    assert calls == []
