"""Pose readers and scene normalisation: COLMAP (via pycolmap) and transforms.json round trips.

Known cameras are written by pycolmap (a real COLMAP binding) and as nerfstudio / Blender
transforms.json, read back by aware3d's own readers, and compared: labels to 1e-6, and renders of
a few Gaussians from the converted cameras against renders from the originals.
"""

import json
import math
import struct

import numpy as np
import pytest
import torch

from aware3d import Cameras, Gaussians, look_at, sample_look_at_poses
from aware3d.data import (
    SceneTransform,
    cameras_from_matrices,
    estimate_lookat,
    normalize_scene,
    read_colmap,
    read_matrices,
    read_poses,
    read_transforms,
)
from aware3d.functional.splat import rasterize

pycolmap = pytest.importorskip("pycolmap")

WIDTH, HEIGHT = 48, 40
K_PIXELS = np.array([[60.0, 0.0, 23.3], [0.0, 62.0, 19.7], [0.0, 0.0, 1.0]])
GL = np.diag([1.0, -1.0, -1.0, 1.0])


def known_cameras(n=5, seed=0):
    poses = sample_look_at_poses(1.57, 1.5, (0.1, 0.0, 0.2), 0.4, 0.2, radius=2.5, n=n,
                                 generator=torch.Generator().manual_seed(seed),
                                 dtype=torch.float64)  # fmt: skip
    k = torch.from_numpy(K_PIXELS / np.array([WIDTH, HEIGHT, 1.0])[:, None])
    return Cameras(poses, k.expand(n, 3, 3).clone())


def names_of(n):
    return [f"img_{i:03d}.png" for i in range(n)]


def write_colmap(folder, cameras, names, *, binary, model="PINHOLE", params=None):
    reconstruction = pycolmap.Reconstruction()
    params = params or [K_PIXELS[0, 0], K_PIXELS[1, 1], K_PIXELS[0, 2], K_PIXELS[1, 2]]
    camera = pycolmap.Camera(model=model, width=WIDTH, height=HEIGHT, params=params, camera_id=1)
    reconstruction.add_camera_with_trivial_rig(camera)
    for index, (c2w, name) in enumerate(zip(cameras.cam2world.numpy(), names)):
        w2c = np.linalg.inv(c2w)
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(w2c[:3, :3]), w2c[:3, 3])
        image = pycolmap.Image(name=name, camera_id=1, image_id=index + 1)
        reconstruction.add_image_with_trivial_frame(image, pose)
    folder.mkdir(parents=True, exist_ok=True)
    (reconstruction.write_binary if binary else reconstruction.write_text)(str(folder))
    return folder


def write_transforms(path, cameras, names, *, per_frame=False, angle=False, extension=True):
    frames = []
    for c2w, name in zip(cameras.cam2world.numpy(), names):
        stem = name if extension else name.rsplit(".", 1)[0]
        frame = {"file_path": f"./{stem}", "transform_matrix": (c2w @ GL).tolist()}
        frames.append(frame)
    intrinsics = {"w": WIDTH, "h": HEIGHT, "fl_x": K_PIXELS[0, 0], "fl_y": K_PIXELS[1, 1],
                  "cx": K_PIXELS[0, 2], "cy": K_PIXELS[1, 2]}  # fmt: skip
    if angle:
        intrinsics = {"w": WIDTH, "h": HEIGHT,
                      "camera_angle_x": 2 * math.atan(WIDTH / (2 * K_PIXELS[0, 0])),
                      "camera_angle_y": 2 * math.atan(HEIGHT / (2 * K_PIXELS[1, 1])),
                      "cx": K_PIXELS[0, 2], "cy": K_PIXELS[1, 2]}  # fmt: skip
    data = {"camera_model": "OPENCV", "frames": frames}
    if per_frame:
        for frame in frames:
            frame.update(intrinsics)
    else:
        data.update(intrinsics)
    path.write_text(json.dumps(data))
    return path


def small_scene():
    generator = torch.Generator().manual_seed(3)
    count = 32
    quats = torch.zeros(1, count, 4)
    quats[..., 0] = 1
    return Gaussians(
        torch.randn(1, count, 3, generator=generator) * 0.15 + torch.tensor([0.1, 0.0, 0.2]),
        quats,
        torch.full((1, count, 3), 0.06),
        torch.full((1, count), 0.8),
        torch.rand(1, count, 3, generator=generator),
    )


def assert_same_renders(read, original):
    """Renders a few Gaussians from both camera sets (in one call) and compares the images."""
    both = Cameras(torch.cat([read.cam2world, original.cam2world]).float(),
                   torch.cat([read.intrinsics, original.intrinsics]).float())  # fmt: skip
    images = rasterize(small_scene(), both[None], WIDTH, HEIGHT, backend="torch").features[0]
    assert images.abs().sum() > 0  # the scene is in view
    count = original.shape[0]
    torch.testing.assert_close(images[:count], images[count:], rtol=0, atol=1e-5)


def assert_same_cameras(read, original):
    torch.testing.assert_close(read.to_eg3d_labels(), original.to_eg3d_labels(),
                               rtol=0, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_colmap_round_trip_labels_and_renders(tmp_path, binary):
    cameras = known_cameras()
    names = names_of(5)
    folder = write_colmap(tmp_path / "sparse" / "0", cameras, names, binary=binary)
    (tmp_path / "images").mkdir()
    posed = read_colmap(tmp_path)  # the project folder: sparse/0 and images/ found
    assert posed.names == names
    assert posed.sizes == [(WIDTH, HEIGHT)] * 5
    assert posed.image_root == tmp_path / "images"
    assert posed.source.endswith("images.bin" if binary else "images.txt")
    assert_same_cameras(posed.cameras, cameras)
    assert_same_renders(posed.cameras, cameras)
    assert read_poses(folder).names == names


@pytest.mark.parametrize(
    ("per_frame", "angle", "extension"),
    [(False, False, True), (True, False, True), (False, True, False)],
    ids=["shared", "per-frame", "blender-angle-no-extension"],
)
def test_transforms_round_trip_labels_and_renders(tmp_path, per_frame, angle, extension):
    cameras = known_cameras(seed=1)
    names = names_of(5)
    for name in names:  # Blender's paths without extensions are matched to these files
        (tmp_path / name).write_bytes(b"")
    path = write_transforms(tmp_path / "transforms.json", cameras, names, per_frame=per_frame,
                            angle=angle, extension=extension)  # fmt: skip
    posed = read_transforms(tmp_path)
    assert posed.names == names
    assert posed.image_root == tmp_path
    assert_same_cameras(posed.cameras, cameras)
    assert_same_renders(posed.cameras, cameras)
    assert read_poses(path).names == names


@pytest.mark.parametrize("convention", ["opencv", "opengl"])
@pytest.mark.parametrize("kind", ["c2w", "w2c"])
def test_plain_matrices_in_every_convention(tmp_path, convention, kind):
    cameras = known_cameras(seed=2)
    matrices = cameras.cam2world.numpy()
    if convention == "opengl":
        matrices = matrices @ GL
    if kind == "w2c":
        matrices = np.linalg.inv(matrices)
    read = cameras_from_matrices(matrices, K_PIXELS, convention=convention, kind=kind,
                                 image_size=(WIDTH, HEIGHT))  # fmt: skip
    assert_same_cameras(read, cameras)
    from PIL import Image

    names = names_of(5)
    for name in names:
        Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / name)
    np.savez(tmp_path / "poses.npz", names=np.array(names), poses=matrices[:, :3],
             intrinsics=K_PIXELS)  # fmt: skip
    posed = read_matrices(tmp_path / "poses.npz", convention=convention, kind=kind)
    assert_same_cameras(posed.cameras, cameras)
    assert posed.sizes == [(WIDTH, HEIGHT)] * 5


# ---------------------------------------------------------------------- bad input


def test_colmap_distortion_is_refused_or_ignored_knowingly(tmp_path):
    cameras, names = known_cameras(2), names_of(2)
    params = [60.0, 23.3, 19.7, 0.05]
    write_colmap(tmp_path, cameras, names, binary=False, model="SIMPLE_RADIAL", params=params)
    with pytest.raises(ValueError, match=r"cameras\.txt line 4 \(camera 1\).*distortion"):
        read_colmap(tmp_path)
    posed = read_colmap(tmp_path, distortion="ignore")
    assert posed.cameras.intrinsics[0, 0, 0].item() == pytest.approx(60.0 / WIDTH)
    write_colmap(tmp_path / "zero", cameras, names, binary=True, model="SIMPLE_RADIAL",
                 params=[60.0, 23.3, 19.7, 0.0])  # fmt: skip
    assert len(read_colmap(tmp_path / "zero")) == 2  # zero distortion is a pinhole


def test_colmap_fisheye_and_mixed_models_are_refused(tmp_path):
    cameras, names = known_cameras(2), names_of(2)
    write_colmap(tmp_path, cameras, names, binary=False, model="OPENCV_FISHEYE",
                 params=[60, 60, 23, 19, 0, 0, 0, 0])  # fmt: skip
    with pytest.raises(ValueError, match="OPENCV_FISHEYE is not a pinhole"):
        read_colmap(tmp_path)
    fisheye = "OPENCV_FISHEYE 48 40 60 60 23 19 0 0 0 0"
    text = (tmp_path / "cameras.txt").read_text().replace(fisheye, "PINHOLE 48 40 60 60 23 19")
    text += "2 SIMPLE_PINHOLE 48 40 60 23 19\n"
    (tmp_path / "cameras.txt").write_text(text)
    images = (tmp_path / "images.txt").read_text().splitlines()
    images = [line.replace(" 1 img_001", " 2 img_001") for line in images]
    (tmp_path / "images.txt").write_text("\n".join(images) + "\n")
    with pytest.raises(ValueError, match="mixed camera models.*PINHOLE.*SIMPLE_PINHOLE"):
        read_colmap(tmp_path)


def _edit_image_line(folder, old, new):
    lines = (folder / "images.txt").read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    lines[index] = lines[index].replace(old, new, 1) if old else new
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    return index + 1


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda line: line.replace(line.split()[1], "nan", 1), "non-finite"),
        (lambda line: line.replace(line.split()[1], "3.0", 1), "unit length"),
        (lambda line: line.rsplit(" ", 2)[0] + " 7 img_000.png", "camera 7 is not defined"),
        (lambda line: line.rsplit(" ", 1)[0], "expected IMAGE_ID"),
    ],
    ids=["nan", "not-unit", "undefined-camera", "short-line"],
)
def test_colmap_text_errors_name_the_line_and_image(tmp_path, edit, match):
    write_colmap(tmp_path, known_cameras(2), names_of(2), binary=False)
    lines = (tmp_path / "images.txt").read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    lines[index] = edit(lines[index])
    (tmp_path / "images.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"images\.txt line {index + 1}\b.*{match}"):
        read_colmap(tmp_path)


def test_colmap_binary_truncated_empty_and_missing(tmp_path):
    folder = write_colmap(tmp_path / "m", known_cameras(2), names_of(2), binary=True)
    data = (folder / "images.bin").read_bytes()
    (folder / "images.bin").write_bytes(data[:40])
    with pytest.raises(ValueError, match=r"images\.bin: image 0: the file ends early"):
        read_colmap(folder)
    (folder / "images.bin").write_bytes(struct.pack("<Q", 0))
    with pytest.raises(ValueError, match="lists no images"):
        read_colmap(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no COLMAP model"):
        read_colmap(tmp_path / "empty")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"transform_matrix": [[math.nan, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]},
         "non-finite"),
        ({"transform_matrix": [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]},
         "not rigid"),
        ({"transform_matrix": [[-1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]},
         "not rigid"),
        ({"transform_matrix": [[1, 0, 0], [0, 1, 0]]}, "4x4"),
        ({"camera_model": "OPENCV_FISHEYE"}, "not a pinhole"),
        ({"k1": 0.1}, "lens distortion"),
        ({"camera_model": "PINHOLE"}, "mix camera models"),
    ],
    ids=["nan", "scaled", "mirrored", "shape", "fisheye", "distortion", "mixed-models"],
)  # fmt: skip
def test_transforms_errors_name_the_frame(tmp_path, change, match):
    path = write_transforms(tmp_path / "transforms.json", known_cameras(3), names_of(3))
    data = json.loads(path.read_text())
    data["frames"][1].update(change)
    path.write_text(json.dumps(data))
    where = "" if match == "mix camera models" else r" frame 1 \('\./img_001\.png'\)"
    with pytest.raises(ValueError, match=rf"transforms\.json{where}.*{match}"):
        read_transforms(path)


def test_transforms_missing_intrinsics_duplicates_and_sizes(tmp_path):
    path = write_transforms(tmp_path / "transforms.json", known_cameras(2), names_of(2))
    data = json.loads(path.read_text())
    del data["fl_x"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"frame 0 .*no intrinsics"):
        read_transforms(path)
    data = json.loads(write_transforms(path, known_cameras(2), names_of(2)).read_text())
    data["frames"][1]["file_path"] = data["frames"][0]["file_path"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"frame 1 .*listed twice"):
        read_transforms(path)
    data = json.loads(write_transforms(path, known_cameras(2), names_of(2)).read_text())
    del data["w"], data["h"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"frame 0 .*img_000\.png is missing, and its size"):
        read_transforms(path)
    path.write_text(json.dumps({"frames": []}))
    with pytest.raises(ValueError, match="non-empty list under 'frames'"):
        read_transforms(path)


@pytest.mark.usefixtures("without_shape_checker")
def test_matrices_errors_name_the_index():
    cameras = known_cameras(3)
    matrices = cameras.cam2world.numpy().copy()
    matrices[2, 0, 0] = math.nan
    with pytest.raises(ValueError, match=r"`matrices`\[2\].*non-finite"):
        cameras_from_matrices(matrices, K_PIXELS, convention="opencv", kind="c2w",
                              image_size=(WIDTH, HEIGHT))  # fmt: skip
    with pytest.raises(ValueError, match="`convention`"):
        cameras_from_matrices(matrices, K_PIXELS, convention="blender", kind="c2w")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`intrinsics`"):
        cameras_from_matrices(cameras.cam2world, np.eye(3)[:2], convention="opencv", kind="c2w")


# ---------------------------------------------------------------------- normalisation


def test_lookat_estimate_and_radius():
    cameras = known_cameras(8)
    point = estimate_lookat(cameras)
    torch.testing.assert_close(point, torch.tensor([0.1, 0.0, 0.2], dtype=torch.float64),
                               rtol=0, atol=1e-9)  # fmt: skip
    normalised, transform = normalize_scene(cameras, radius=1.5)
    distances = normalised.centers.norm(dim=-1)
    assert np.median(distances.numpy()) == pytest.approx(1.5)
    torch.testing.assert_close(estimate_lookat(normalised), torch.zeros(3, dtype=torch.float64),
                               rtol=0, atol=1e-9)  # fmt: skip
    # the stored transform undoes exactly, also after a JSON round trip
    stored = SceneTransform.from_json(json.loads(json.dumps(transform.to_json())))
    assert_same_cameras(stored.inverse().apply(normalised), cameras)
    torch.testing.assert_close(normalised.intrinsics, cameras.intrinsics)


def test_up_and_front_alignment_undo_a_similarity():
    cameras = known_cameras(12)
    angle = 0.9
    axis = np.array([0.3, 0.8, -0.5]) / np.linalg.norm([0.3, 0.8, -0.5])
    skew = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + math.sin(angle) * skew + (1 - math.cos(angle)) * skew @ skew
    moved = SceneTransform(3.7, rotation, np.array([5.0, -2.0, 1.0])).apply(cameras)
    expected, _ = normalize_scene(cameras, up="auto", front="auto")
    aligned, transform = normalize_scene(moved, up="auto", front="auto")
    assert_same_cameras(aligned, expected)
    assert (-aligned.cam2world[:, :3, 1].mean(0)).numpy() @ [0, 1, 0] > 0.95  # up is +y
    mean = aligned.centers.mean(0).numpy()
    assert abs(mean[0]) < 1e-9 and mean[2] > 0  # the mean view comes from +z
    assert_same_cameras(transform.inverse().apply(aligned), moved)


def test_normalisation_bad_input():
    cameras = known_cameras(4)
    names = [f"n{i}.png" for i in range(4)]
    with pytest.raises(ValueError, match=r"`radius` 2\.9 puts .* background sphere.*n\d\.png"):
        normalize_scene(cameras, radius=2.9, names=names)
    assert normalize_scene(cameras, radius=2.9, background_radius=None)[0].shape == (4,)
    origins = torch.tensor([[0.0, 0, 3], [1, 0, 3], [0, 1, 3]], dtype=torch.float64)
    targets = origins - torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64)
    parallel = Cameras(look_at(origins, targets), cameras.intrinsics[:3])
    with pytest.raises(ValueError, match="parallel"):
        normalize_scene(parallel)
    with pytest.raises(ValueError, match="`front`='auto' needs `up`"):
        normalize_scene(cameras, front="auto")
    with pytest.raises(ValueError, match="`radius`"):
        normalize_scene(cameras, radius=-1.0)
