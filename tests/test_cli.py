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
