"""``aware3d invert``: its outputs, and bad input refused (naming the argument) before any work."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

RES = 16


@pytest.fixture
def model(monkeypatch):
    """A tiny demo generator served as the checkpoint's (no training run needed)."""
    import aware3d.recipes
    from aware3d.models import demo_generator

    torch.manual_seed(0)
    generator = demo_generator(resolution=RES, num_levels=2).eval().requires_grad_(False)

    def load_generator(checkpoint, device="cpu", **kwargs):
        if "missing" in str(checkpoint):
            raise FileNotFoundError(f"{checkpoint} holds no checkpoint")
        return generator, None, SimpleNamespace(resolution=RES), {}

    monkeypatch.setattr(aware3d.recipes, "load_generator", load_generator)
    return generator


@pytest.fixture
def no_optimisation(monkeypatch):
    import aware3d.inversion

    def fail(*args, **kwargs):
        pytest.fail("the optimisation started before the input was checked")

    monkeypatch.setattr(aware3d.inversion, "project", fail)


def _image(path, size=RES, mode="RGB"):
    channels = {"RGB": 3, "RGBA": 4}[mode]
    data = np.random.default_rng(0).integers(0, 255, (size, size, channels), dtype=np.uint8)
    Image.fromarray(data, mode).save(path)
    return path


def _run(*argv):
    from aware3d.cli import main

    main([str(a) for a in argv])


def _error(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        _run(*argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_invert_writes_every_output(model, tmp_path, capsys):
    image = _image(tmp_path / "face.png", size=2 * RES)
    out = tmp_path / "out"
    _run("invert", image, "--checkpoint", tmp_path, "--camera", "yaw=5,pitch=0",
         "--steps", 3, "--pti-steps", 2, "--frames", 2, "--out", out, "--no-progress")  # fmt: skip
    captured = capsys.readouterr()
    assert "resized to the model's 16 x 16" in captured.err
    folder = out / "face"
    for name in ("latent.safetensors", "generator.safetensors", "figure.png", "turntable.gif",
                 "depth.png", "opacity.png", "scene.ply", "metrics.json"):  # fmt: skip
        assert (folder / name).stat().st_size > 0, name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["space"] == "w+" and metrics["pti"]["steps"] == 2
    assert metrics["camera"]["refined"] == ["yaw", "pitch"]
    assert len(metrics["camera"]["label"]) == 25
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left
    from safetensors.torch import load_file

    state = load_file(str(folder / "generator.safetensors"))
    model.load_state_dict(state)  # the tuned generator loads into the checkpoint's
    error = _error(capsys, "invert", image, "--checkpoint", tmp_path, "--camera", "yaw=0",
                   "--out", out)  # fmt: skip
    assert "argument --out" in error and "--overwrite" in error


def test_invert_with_a_dataset_json_label_and_no_pti(model, tmp_path):
    from aware3d.inversion import CameraGuess

    image = _image(tmp_path / "a.png")
    label = CameraGuess(yaw=3.0).label().tolist()
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["img/a.png", label]]}))
    out = tmp_path / "out"
    _run("invert", image, "--checkpoint", tmp_path, "--dataset-json", tmp_path / "dataset.json",
         "--space", "w", "--steps", 2, "--frames", 1, "--out", out, "--no-progress")  # fmt: skip
    assert not (out / "a" / "generator.safetensors").exists()
    metrics = json.loads((out / "a" / "metrics.json").read_text())
    assert metrics["camera"]["refined"] == [] and "pti" not in metrics
    assert metrics["camera"]["label"] == pytest.approx(label, abs=1e-6)


def _not_rigid():
    from aware3d.inversion import CameraGuess

    label = CameraGuess().label()
    label[0] = 2.0
    return " ".join(str(float(v)) for v in label)


def _outside():
    from aware3d.inversion import CameraGuess

    return " ".join(str(float(v)) for v in CameraGuess(radius=5.0).label())


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("nan", "argument IMAGE: .* has NaN"),
        ("rgba", "argument IMAGE: .* is RGBA"),
        ("wide", "argument IMAGE: .* is 16 x 8"),
        ("no_camera", "one of --label, --dataset-json or --camera is required"),
        ("not_rigid", "argument --label: not a rigid camera"),
        ("outside", "argument --label: .*sphere"),
        ("lpips", "argument --vgg16: --lpips needs"),
        ("missing", "argument --checkpoint: .*holds no checkpoint"),
        ("bad_camera", "argument --camera"),
        ("no_label", "argument --dataset-json: no label for x.png"),
    ],
)
def test_bad_input_names_its_argument(model, no_optimisation, tmp_path, capsys, case, message):
    import re

    image = _image(tmp_path / "x.png")
    checkpoint = tmp_path / ("missing" if case == "missing" else "run")
    argv: list = ["invert", image, "--checkpoint", checkpoint, "--out", tmp_path / "out"]
    camera = ["--camera", "yaw=0"]
    if case == "nan":
        array = np.full((RES, RES, 3), 0.5, dtype=np.float32)
        array[1, 2, 0] = np.nan
        np.save(tmp_path / "nan.npy", array)
        argv[1] = tmp_path / "nan.npy"
    elif case == "rgba":
        argv[1] = _image(tmp_path / "rgba.png", mode="RGBA")
    elif case == "wide":
        Image.new("RGB", (16, 8)).save(tmp_path / "wide.png")
        argv[1] = tmp_path / "wide.png"
    if case == "not_rigid":
        camera = ["--label", _not_rigid()]
    elif case == "outside":
        camera = ["--label", _outside()]
    elif case == "lpips":
        camera += ["--lpips", "1"]
    elif case == "bad_camera":
        camera = ["--camera", "tilt=3"]
    elif case == "no_label":
        (tmp_path / "d.json").write_text(json.dumps({"labels": [["y.png", [0.0] * 25]]}))
        camera = ["--dataset-json", tmp_path / "d.json"]
    if case == "no_camera":
        camera = []
    error = _error(capsys, *argv, *camera)
    assert re.search(message, error), error
    assert not (tmp_path / "out").exists()
