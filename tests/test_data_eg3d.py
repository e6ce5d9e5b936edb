"""The EG3D dataset reader on real files: folders, zips, x-flip and every bad-input case."""

import json
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from aware3d import Cameras, intrinsics_from_fov, sample_look_at_poses
from aware3d.data import EG3DDataset


def make_labels(n: int) -> torch.Tensor:
    poses = sample_look_at_poses(1.57, 1.57, (0, 0, 0.2), 0.3, 0.1, n=n,
                                 generator=torch.Generator().manual_seed(0))  # fmt: skip
    return Cameras(poses, intrinsics_from_fov(13.37).expand(n, 3, 3)).to_eg3d_labels()


def write_folder(root, n=3, size=8):
    root.mkdir(parents=True, exist_ok=True)
    labels = make_labels(n)
    rng = np.random.default_rng(0)
    entries, pixels = [], []
    for i in range(n):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        name = f"sub/img{i:08d}.png"
        (root / "sub").mkdir(exist_ok=True)
        Image.fromarray(image).save(root / name)
        entries.append([name, labels[i].tolist()])
        pixels.append(image)
    (root / "dataset.json").write_text(json.dumps({"labels": entries}))
    return labels, pixels


def zip_folder(folder, archive):
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


@pytest.mark.parametrize("as_zip", [False, True])
def test_round_trip_of_cameras_and_pixels(tmp_path, as_zip):
    labels, pixels = write_folder(tmp_path / "data")
    path = zip_folder(tmp_path / "data", tmp_path / "data.zip") if as_zip else tmp_path / "data"
    dataset = EG3DDataset(path)
    assert len(dataset) == 3
    item = dataset[1]
    assert item.image.shape == (8, 8, 3)
    assert item.image.dtype == torch.float32
    torch.testing.assert_close(item.image, torch.from_numpy(pixels[1] / 255.0).float())
    torch.testing.assert_close(item.label, labels[1], rtol=0, atol=0)
    torch.testing.assert_close(item.cameras.cam2world[0], labels[1, :16].reshape(4, 4))


def test_value_range_and_collate(tmp_path):
    write_folder(tmp_path / "data")
    dataset = EG3DDataset(tmp_path / "data", value_range=(-1.0, 1.0))
    batch = EG3DDataset.collate([dataset[0], dataset[2]])
    assert batch.images.shape == (2, 1, 8, 8, 3)
    assert batch.images.min() >= -1.0
    assert batch.images.max() <= 1.0
    assert batch.cameras.shape == (2, 1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=EG3DDataset.collate)
    assert next(iter(loader)).labels.shape == (3, 25)


def test_xflip_mirrors_image_and_camera(tmp_path):
    labels, pixels = write_folder(tmp_path / "data")
    dataset = EG3DDataset(tmp_path / "data", xflip=True)
    assert len(dataset) == 6
    flipped = dataset[3 + 2]
    torch.testing.assert_close(flipped.image, torch.from_numpy(pixels[2][:, ::-1] / 255.0).float())
    original = Cameras.from_eg3d_labels(labels[2])
    torch.testing.assert_close(flipped.cameras.cam2world, original.mirrored().cam2world)
    # EG3D's flip_yaw negates these entries of the pose
    expected = labels[2, :16].reshape(4, 4).clone()
    for i, j in ((0, 1), (0, 2), (1, 0), (2, 0), (0, 3)):
        expected[i, j] *= -1
    torch.testing.assert_close(flipped.label[:16].reshape(4, 4), expected)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EG3DDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no dataset.json"):
        EG3DDataset(tmp_path / "empty")
    write_folder(tmp_path / "data")
    (tmp_path / "data" / "sub" / "img00000001.png").unlink()
    with pytest.raises(ValueError, match=r"entry 1: image 'sub/img00000001.png' is missing"):
        EG3DDataset(tmp_path / "data")


def rewrite_entry(folder, index, entry):
    meta = json.loads((folder / "dataset.json").read_text())
    meta["labels"][index] = entry
    (folder / "dataset.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (["sub/img00000000.png", [0.0] * 24], "entry 0 .*the label must be 25 finite numbers"),
        (["sub/img00000000.png", [float("nan")] * 25], "must be 25 finite numbers"),
        (["sub/img00000000.png", "not a list"], "must be 25 finite numbers"),
        (["sub/img00000000.png", [0.0] * 25], r"entry 0 \('sub/img00000000.png'\): invalid camera"),
        (["../outside.png", [0.0] * 25], "escapes the dataset"),
        ([3, [0.0] * 25], "the file name must be a string"),
        ("just a string", r"expected \[filename, \[25 numbers\]\]"),
    ],
)
def test_bad_labels_name_the_entry(tmp_path, entry, message):
    write_folder(tmp_path / "data")
    rewrite_entry(tmp_path / "data", 0, entry)
    with pytest.raises(ValueError, match=message):
        EG3DDataset(tmp_path / "data")


def test_bad_json(tmp_path):
    write_folder(tmp_path / "data")
    (tmp_path / "data" / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        EG3DDataset(tmp_path / "data")
    (tmp_path / "data" / "dataset.json").write_text(json.dumps({"labels": None}))
    with pytest.raises(ValueError, match="non-empty list under 'labels'"):
        EG3DDataset(tmp_path / "data")


def test_corrupt_image_names_the_entry(tmp_path):
    write_folder(tmp_path / "data")
    (tmp_path / "data" / "sub" / "img00000002.png").write_bytes(b"\x89PNG garbage")
    dataset = EG3DDataset(tmp_path / "data")
    with pytest.raises(
        ValueError, match=r"image 'sub/img00000002.png' \(entry 2\) cannot be decoded"
    ):
        dataset[2]


def test_zip_members_escaping_the_archive_are_refused(tmp_path):
    write_folder(tmp_path / "data")
    archive = zip_folder(tmp_path / "data", tmp_path / "data.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../evil.png", b"x")
    with pytest.raises(ValueError, match="would escape the archive"):
        EG3DDataset(archive)


def test_a_file_that_is_not_a_zip(tmp_path):
    (tmp_path / "data.zip").write_bytes(b"plain text")
    with pytest.raises(ValueError, match="not a zip archive"):
        EG3DDataset(tmp_path / "data.zip")


def test_value_range_must_increase(tmp_path):
    write_folder(tmp_path / "data")
    with pytest.raises(ValueError, match="`value_range`"):
        EG3DDataset(tmp_path / "data", value_range=(1.0, 0.0))
