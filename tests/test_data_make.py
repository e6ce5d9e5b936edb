"""``make_dataset`` / ``aware3d data make``: crops with consistent intrinsics, mirrors, atomic."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from aware3d import Cameras, look_at
from aware3d.cli import main
from aware3d.data import (
    EG3DDataset,
    cameras_from_matrices,
    make_dataset,
    normalize_scene,
    read_colmap,
    read_transforms,
)
from aware3d.data.poses import PosedImages

WIDTH, HEIGHT = 120, 90
K_PIXELS = np.array([[100.0, 0.0, 55.3], [0.0, 104.0, 47.1], [0.0, 0.0, 1.0]])
GL = np.diag([1.0, -1.0, -1.0, 1.0])
#: Points the test images show as bright dots (world coordinates).
POINTS = np.array([[0.4, 0.3, 0.0], [-0.4, -0.3, 0.1]])


def scene_cameras(n=3):
    angles = torch.linspace(-0.3, 0.3, n, dtype=torch.float64)
    origins = torch.stack([3 * torch.sin(angles), 0.2 * angles, 3 * torch.cos(angles)], dim=-1)
    k = torch.from_numpy(K_PIXELS / np.array([WIDTH, HEIGHT, 1.0])[:, None])
    return Cameras(look_at(origins, (0.0, 0.0, 0.0)), k.expand(n, 3, 3).clone())


def project(label, points, width, height):
    """Pixel coordinates (pixel centres at +0.5) of world points under an EG3D label."""
    c2w = np.asarray(label[:16], dtype=np.float64).reshape(4, 4)
    k = (
        np.asarray(label[16:], dtype=np.float64).reshape(3, 3)
        * np.array([width, height, 1.0])[:, None]
    )
    w2c = np.linalg.inv(c2w)
    camera = points @ w2c[:3, :3].T + w2c[:3, 3]
    pixels = camera @ k.T
    return pixels[:, :2] / pixels[:, 2:]


def dot_image(label, points):
    """A black image with a Gaussian dot (sigma 2.5 px) where each point projects."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH] + 0.5
    image = np.zeros((HEIGHT, WIDTH))
    for u, v in project(label, points, WIDTH, HEIGHT):
        image += np.exp(-((xs - u) ** 2 + (ys - v) ** 2) / (2 * 2.5**2))
    return np.repeat((np.clip(image, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, -1)


def write_transforms_dataset(folder, cameras, images=True):
    folder.mkdir(parents=True, exist_ok=True)
    labels = cameras.to_eg3d_labels().numpy()
    frames = []
    for index, c2w in enumerate(cameras.cam2world.numpy()):
        name = f"photos/p{index}.png"
        if images:
            (folder / "photos").mkdir(exist_ok=True)
            Image.fromarray(dot_image(labels[index], POINTS)).save(folder / name)
        frames.append({"file_path": name, "transform_matrix": (c2w @ GL).tolist()})
    data = {"w": WIDTH, "h": HEIGHT, "fl_x": K_PIXELS[0, 0], "fl_y": K_PIXELS[1, 1],
            "cx": K_PIXELS[0, 2], "cy": K_PIXELS[1, 2], "frames": frames}  # fmt: skip
    (folder / "transforms.json").write_text(json.dumps(data))
    return folder / "transforms.json"


def centroids(image, expected, radius=5):
    """Intensity centroids (pixel-centre coordinates) of the dots near ``expected``."""
    grey = image.astype(np.float64).mean(-1)
    ys, xs = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]] + 0.5
    out = []
    for u, v in expected:
        window = (np.abs(xs - u) < radius) & (np.abs(ys - v) < radius)
        weights = grey * window
        out.append([(weights * xs).sum() / weights.sum(), (weights * ys).sum() / weights.sum()])
    return np.array(out)


def flip_yaw(label):
    """EG3D's ``flip_yaw`` on a label: negate (0,1), (0,2), (1,0), (2,0), (0,3); cx -> 1 - cx."""
    out = np.array(label, dtype=np.float64)
    pose = out[:16].reshape(4, 4)
    for i, j in ((0, 1), (0, 2), (1, 0), (2, 0), (0, 3)):
        pose[i, j] = -pose[i, j]
    out[16 + 2] = 1 - out[16 + 2]
    return out


@pytest.mark.parametrize("box", [None, (20.0, 5.0, 100.0, 85.0)], ids=["principal", "box"])
def test_points_project_to_the_same_place_within_half_a_pixel(tmp_path, box):
    posed = read_transforms(write_transforms_dataset(tmp_path / "capture", scene_cameras()))
    out = make_dataset(posed, tmp_path / "data", resolution=64, box=box, progress=False)
    dataset = EG3DDataset(out)
    assert len(dataset) == 3 and dataset.image_size == (64, 64)
    for index in range(3):
        label = dataset.labels[index].double().numpy()
        if box is None:
            assert label[16 + 2] == pytest.approx(0.5) and label[16 + 5] == pytest.approx(0.5)
        expected = project(label, POINTS, 64, 64)
        pixels = (dataset[index].image.numpy() * 255).round()
        found = centroids(pixels, expected)
        assert np.abs(found - expected).max() < 0.5, (found, expected)
        # the pose is the source's, untouched by cropping
        np.testing.assert_allclose(label[:16], posed.cameras.to_eg3d_labels()[index, :16],
                                   atol=1e-6)  # fmt: skip


def test_mirrored_copies_carry_eg3d_flip_yaw(tmp_path):
    posed = read_transforms(write_transforms_dataset(tmp_path / "capture", scene_cameras()))
    cameras, transform = normalize_scene(posed.cameras, up="auto")
    out = make_dataset(posed.with_cameras(cameras), tmp_path / "data.zip", resolution=32,
                       box=(10.0, 0.0, 100.0, 90.0), mirror=True, progress=False,
                       transform=transform)  # fmt: skip
    document = json.loads(__import__("zipfile").ZipFile(out).read("dataset.json"))
    names = [name for name, _ in document["labels"]]
    assert names[:2] == ["00000/img00000000.png", "00000/img00000000_mirror.png"]
    stored = document["aware3d"]["scene_transform"]
    assert stored["scale"] == pytest.approx(transform.scale)
    dataset = EG3DDataset(out)
    for index in range(0, 6, 2):
        label, mirrored = dataset.labels[index].double(), dataset.labels[index + 1].double()
        np.testing.assert_allclose(mirrored.numpy(), flip_yaw(label.numpy()), atol=1e-6)
        assert label[16 + 2] != pytest.approx(0.5)  # the box moved the principal point
        torch.testing.assert_close(dataset[index + 1].image, dataset[index].image.flip(1))


def test_colmap_folder_to_zip_with_limit_and_default_collate(tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    cameras = scene_cameras(4)
    write_transforms_dataset(tmp_path / "project", cameras)
    (tmp_path / "project" / "photos").rename(tmp_path / "project" / "images")
    reconstruction = pycolmap.Reconstruction()
    camera = pycolmap.Camera(model="PINHOLE", width=WIDTH, height=HEIGHT, camera_id=1,
                             params=[K_PIXELS[0, 0], K_PIXELS[1, 1], K_PIXELS[0, 2],
                                     K_PIXELS[1, 2]])  # fmt: skip
    reconstruction.add_camera_with_trivial_rig(camera)
    for index, c2w in enumerate(cameras.cam2world.numpy()):
        w2c = np.linalg.inv(c2w)
        image = pycolmap.Image(name=f"p{index}.png", camera_id=1, image_id=index + 1)
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(w2c[:3, :3]), w2c[:3, 3])
        reconstruction.add_image_with_trivial_frame(image, pose)
    (tmp_path / "project" / "sparse" / "0").mkdir(parents=True)
    reconstruction.write_binary(str(tmp_path / "project" / "sparse" / "0"))
    posed = read_colmap(tmp_path / "project")
    out = make_dataset(posed, tmp_path / "out.zip", resolution=16, limit=3, progress=False)
    dataset = EG3DDataset(out, xflip=True)
    assert len(dataset) == 6
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)  # torch's default collate
    batch = next(iter(loader))
    assert batch.image.shape == (4, 16, 16, 3)
    assert batch.label.shape == (4, 25)
    assert batch.cameras.shape == (4, 1)
    torch.testing.assert_close(batch.cameras.to_eg3d_labels()[:, 0], batch.label)


def test_a_failure_leaves_no_half_written_dataset(tmp_path):
    posed = read_transforms(write_transforms_dataset(tmp_path / "capture", scene_cameras()))
    out = tmp_path / "data"
    make_dataset(posed, out, resolution=16, progress=False)
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    broken = tmp_path / "capture" / "photos" / "p2.png"
    broken.write_bytes(broken.read_bytes()[:200])  # a valid header, a truncated body
    for target in (out, tmp_path / "data.zip", tmp_path / "fresh"):
        with pytest.raises(ValueError, match=r"p2\.png \(.*frame 2.*cannot be decoded"):
            make_dataset(posed, target, resolution=16, progress=False, overwrite=True)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    assert not (tmp_path / "data.zip").exists() and not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture", "data"]  # no leftovers


def test_bad_input_names_the_images(tmp_path):
    transforms = write_transforms_dataset(tmp_path / "capture", scene_cameras(), images=False)
    (tmp_path / "capture" / "photos").mkdir()
    posed = read_transforms(transforms)
    with pytest.raises(ValueError, match=r"3 of 3 images .* missing.*'photos/p0\.png'.*p2"):
        make_dataset(posed, tmp_path / "data", progress=False)
    write_transforms_dataset(tmp_path / "capture", scene_cameras())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="non-empty folder"):
        make_dataset(posed, tmp_path / "data", progress=False)
    with pytest.raises(ValueError, match="reaches outside"):
        make_dataset(posed, tmp_path / "d2", box=(0, 0, 200, 90), progress=False)
    small = Image.new("RGB", (60, 60))
    small.save(tmp_path / "capture" / "photos" / "p1.png")
    with pytest.raises(ValueError, match=r"p1\.png .* 60 x 60 .* 120 x 90 image"):
        make_dataset(posed, tmp_path / "d3", progress=False)
    with pytest.raises(ValueError, match="`resolution`"):
        make_dataset(posed, tmp_path / "d4", resolution=0)
    one = cameras_from_matrices(np.eye(4)[None], np.eye(3), convention="opencv", kind="c2w")
    empty = PosedImages([], one[:0], [], tmp_path, [], "x")
    with pytest.raises(ValueError, match="hold no images"):
        make_dataset(empty, tmp_path / "d5")


def test_cli_make_then_check(tmp_path, capsys):
    transforms = write_transforms_dataset(tmp_path / "capture", scene_cameras())
    out = tmp_path / "data"
    main(["data", "make", str(transforms), str(out), "--resolution", "32", "--up", "auto",
          "--front", "auto", "--mirror", "--no-progress"])  # fmt: skip
    assert "wrote 6 images of 32 x 32 px" in capsys.readouterr().out
    dataset = EG3DDataset(out)
    centres = dataset.labels[:, [3, 7, 11]].double()
    assert np.median(centres.norm(dim=-1).numpy()) == pytest.approx(2.7, abs=1e-5)
    main(["data", "check", str(out), "--quick"])
    text = capsys.readouterr().out
    assert "0 error(s)" in text and "--set fake_horizontal_mean=1.57" in text
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "make", str(transforms), str(out), "--no-progress"])
    assert exit_info.value.code == 1
    assert "non-empty folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "make", str(transforms), str(tmp_path / "x"), "--radius", "2.9",
              "--background-radius", "2.8", "--no-progress"])  # fmt: skip
    assert exit_info.value.code == 1
    assert "background sphere" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert math.isfinite(float(dataset.labels.abs().max()))
