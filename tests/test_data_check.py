"""``check_dataset`` / ``aware3d data check``: every problem by file name, statistics, sampler."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from aware3d.cli import main
from aware3d.data import SyntheticScenes, check_dataset, plot_dataset_report
from aware3d.recipes.builders import build_fake_labels
from aware3d.recipes.config import GSGANFFHQ256, apply_overrides


@pytest.fixture(scope="module")
def scenes():
    return SyntheticScenes(num_scenes=16, views_per_scene=4, resolution=16, num_gaussians=32)


def test_a_good_dataset_and_its_recommended_sampler(tmp_path, scenes):
    path = scenes.export_eg3d(tmp_path / "good")
    report = check_dataset(path)
    assert report.ok, report.format()
    assert report.entries == 64 and report.sizes == {"16x16": 64} and report.modes == {"RGB": 64}
    sampler = report.sampler
    # SyntheticScenes draws EG3D's look-at sampler around the frontal view: h ~ N(pi/2, 0.3^2)
    assert sampler["fake_horizontal_mean"] == pytest.approx(math.pi / 2, abs=0.1)
    assert sampler["fake_horizontal_stddev"] == pytest.approx(0.3, abs=0.08)
    assert sampler["fake_vertical_mean"] == pytest.approx(math.pi / 2, abs=0.1)
    assert sampler["fake_radius"] == pytest.approx(2.7, abs=1e-5)
    assert sampler["fov_degrees"] == pytest.approx(13.37, abs=0.01)
    assert report.stats["look-at"]["point"] == pytest.approx([0.0, 0.0, 0.2], abs=1e-3)
    figure = plot_dataset_report(report, tmp_path / "report.png")
    with Image.open(figure) as image:
        assert image.size[0] > 800
    assert json.loads(json.dumps(report.to_json()))["errors"] == []


def test_every_problem_is_listed_by_file_name(tmp_path, scenes):
    path = scenes.export_eg3d(tmp_path / "bad")
    document = json.loads((path / "dataset.json").read_text())
    entries = document["labels"]
    names = [name for name, _ in entries]
    entries[1][1][0] = math.nan  # JSON NaN
    entries[2][1][0] *= 2  # not rigid
    entries[3][1][16 + 2] = 8.0  # cx in pixels
    for index in (0, 1, 2):
        entries[4][1][4 * index + 3] *= 1.2  # camera outside the sphere of radius 3
    entries.append(entries[5])  # listed twice
    entries.append(["00000/missing.png", entries[6][1]])
    (path / names[7]).write_bytes(b"not an image")
    Image.new("RGB", (20, 16)).save(path / names[8])
    Image.new("RGB", (16, 16)).save(path / "00000" / "stray.png")
    (path / "dataset.json").write_text(json.dumps(document))
    report = check_dataset(path)
    assert not report.ok
    found = {(problem.file, problem.severity) for problem in report.problems}
    for name in (names[1], names[2], names[3], names[4], names[5], "00000/missing.png",
                 names[7]):  # fmt: skip
        assert (name, "error") in found, (name, report.format())
    text = report.format()
    assert "NaN" in text and "not rigid" in text and "look like pixels" in text
    assert "outside the background" in text and "listed twice" in text
    assert "images of 2 sizes" in text and "stray.png" in text and "unreadable" in text
    assert len(report.labels) == 64 - 3 + 1  # the valid labels (also the missing image's)
    assert report.sampler["fake_radius"] == pytest.approx(2.7, abs=1e-5)


def test_cli_exit_status_and_json(tmp_path, scenes, capsys):
    path = scenes.export_eg3d(tmp_path / "data.zip", as_zip=True)
    main(["data", "check", str(path), "--json", str(tmp_path / "r.json"), "--quick"])
    assert json.loads((tmp_path / "r.json").read_text())["entries"] == 64
    folder = scenes.export_eg3d(tmp_path / "bad")
    (folder / "00000" / "img00000003.png").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", str(folder)])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "00000/img00000003.png: the image is missing" in captured.out
    assert "1 error(s)" in captured.err
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "check", str(tmp_path / "none")])
    assert exit_info.value.code == 2  # argparse: the path does not exist


def test_fake_cameras_mix_data_poses_with_the_sampler(scenes):
    config = apply_overrides(GSGANFFHQ256(), ["fake_uniform_probability=0.5"])
    labels = build_fake_labels(config, scenes)
    data = scenes.labels
    own = (labels[:, None, :] == data[None]).all(-1).any(-1)
    assert own.float().mean().item() == pytest.approx(0.5, abs=0.01)
    sampled = labels[~own]
    centres = sampled[:, [3, 7, 11]]
    torch.testing.assert_close(centres.norm(dim=-1), torch.full((len(sampled),), 2.7))
    # GSGAN's FFHQ sampler: horizontal N(3.14/2, (3.14 * 16.6 / 180)^2), looking at the origin
    horizontal = math.pi - torch.atan2(centres[:, 2], centres[:, 0])
    assert horizontal.mean().item() == pytest.approx(1.57, abs=0.02)
    assert horizontal.std().item() == pytest.approx(3.14 * 16.61 / 180, rel=0.05)
    forward = sampled[:, [2, 6, 10]]
    torch.testing.assert_close(forward, -centres / 2.7, atol=1e-5, rtol=0)
    assert GSGANFFHQ256().fake_uniform_probability == 0.5  # GSGAN's FFHQ prob_uniform
    none = apply_overrides(config, ["fake_uniform_probability=0"])
    assert (build_fake_labels(none, scenes) == data).all()  # p = 0: the data's own
    only = build_fake_labels(apply_overrides(config, ["fake_uniform_probability=1"]), scenes)
    assert not (only[:, None, :] == data[None]).all(-1).any()
    with pytest.raises(ValueError, match="fake_uniform_probability"):
        apply_overrides(config, ["fake_uniform_probability=1.5"])
    with pytest.raises(ValueError, match="fake_vertical_type"):
        apply_overrides(config, ["fake_vertical_type=cauchy"])
    assert np.isfinite(labels.numpy()).all()
