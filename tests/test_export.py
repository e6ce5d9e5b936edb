"""``aware3d export``: Gaussians as 3DGS PLY and .splat, tri-planes as meshes and grids, videos."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aware3d.cli import main
from aware3d.gaussians import Gaussians
from aware3d.viewer import ExportOptions, export_model, load_model
from aware3d.viz import export as viz_export
from test_viewer import make_checkpoint

pytest.importorskip("mcubes", reason="the mesh export needs PyMCubes (the export extra)")
pytest.importorskip("imageio_ffmpeg", reason="the MP4 export needs imageio-ffmpeg")

FAST = ["--frames", "4", "--mesh-resolution", "24"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export-checkpoints")
    return {name: make_checkpoint(root / name, name) for name in ("demo", "ballgan")}


@pytest.mark.slow
def test_gaussians_as_ply_and_splat_are_aware3d_renders_sample(checkpoints, tmp_path, capsys):
    main(["export", str(checkpoints["demo"]), "--seed", "2", "--format", "ply,splat",
          "--out", str(tmp_path / "x")])  # fmt: skip
    printed = capsys.readouterr().out
    ply, splat = tmp_path / "x" / "seed0002-gaussians.ply", tmp_path / "x" / "seed0002.splat"
    assert str(ply) in printed and str(splat) in printed
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [ply.name, splat.name]
    # the demo's mapping is unconditioned: the scene is aware3d render's first sample
    main(["render", "--checkpoint", str(checkpoints["demo"]), "--out", str(tmp_path / "r"),
          "--count", "1", "--seed", "2"])  # fmt: skip
    assert ply.read_bytes() == (tmp_path / "r" / "sample.ply").read_bytes()
    from_ply = Gaussians.load_ply(ply, value_range=(-1.0, 1.0))
    from_splat = Gaussians.load_splat(splat, value_range=(-1.0, 1.0))
    assert from_splat.num_gaussians == from_ply.num_gaussians == 672
    # the .splat file is sorted by importance: match records by position
    order = torch.argsort(from_ply.means[0, :, 0])
    other = torch.argsort(from_splat.means[0, :, 0])
    assert torch.allclose(from_ply.means[0, order], from_splat.means[0, other], atol=1e-6)
    assert torch.allclose(from_ply.scales[0, order], from_splat.scales[0, other], rtol=1e-5)
    assert torch.allclose(from_ply.features[0, order], from_splat.features[0, other], atol=0.01)
    assert torch.allclose(from_ply.opacities[0, order], from_splat.opacities[0, other], atol=0.003)


def test_tri_planes_as_mesh_and_density_grid(checkpoints, tmp_path):
    model = load_model(checkpoints["ballgan"])
    options = ExportOptions(seed=1, formats=("npy",), mesh_resolution=24)
    written = export_model(model, tmp_path, options)
    grid = np.load(written["npy"])
    assert grid.shape == (24, 24, 24) and grid.dtype == np.float32
    threshold = float(grid.min() + grid.max()) / 2
    options = ExportOptions(seed=1, formats=("ply", "obj"), mesh_resolution=24, threshold=threshold)
    written.update(export_model(model, tmp_path, options))
    assert {path.name for path in written.values()} == {
        "seed0001-mesh.ply", "seed0001-mesh.obj", "seed0001-density.npy"}  # fmt: skip
    text = written["obj"].read_text().splitlines()
    vertices = np.array([[float(v) for v in line.split()[1:]] for line in text
                         if line.startswith("v ")])  # fmt: skip
    faces = np.array([[int(v) for v in line.split()[1:]] for line in text if line.startswith("f ")])
    assert vertices.shape[1] == 6 and len(faces) > 0 and faces.min() == 1
    assert faces.max() == len(vertices)
    half = model.generator.renderer.box_size / 2  # pyright: ignore[reportAttributeAccessIssue]
    assert np.abs(vertices[:, :3]).max() <= half + 1e-5
    assert vertices[:, 3:].min() >= 0 and vertices[:, 3:].max() <= 1
    trimesh = pytest.importorskip("trimesh")
    for key in ("ply", "obj"):
        mesh = trimesh.load(written[key], process=False)
        assert len(mesh.vertices) == len(vertices) and len(mesh.faces) == len(faces)
        assert mesh.visual.kind == "vertex"
        colours = np.asarray(mesh.visual.vertex_colors)[:, :3]
        assert np.abs(colours - np.round(vertices[:, 3:] * 255)).max() <= 1
    assert np.allclose(np.asarray(trimesh.load(written["ply"]).vertices).mean(0),
                       vertices[:, :3].mean(0), atol=1e-4)  # fmt: skip


def test_marching_cubes_normals_point_out_of_the_dense_side():
    axis = np.linspace(-1, 1, 33)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    sigma = (20 * (0.6 - np.sqrt(x**2 + y**2 + z**2))).astype(np.float32)  # dense inside a ball
    grid = viz_export.DensityGrid(sigma, -1.0, 2 / 32)
    vertices, faces = viz_export.extract_mesh(grid, 0.0)
    radii = np.linalg.norm(vertices, axis=1)
    assert np.abs(radii - 0.6).max() < 0.02
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    normals = np.cross(b - a, c - a)
    outward = np.einsum("ij,ij->i", normals, (a + b + c) / 3) > 0
    assert outward.mean() > 0.95


def test_no_surface_names_the_density_range(checkpoints, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(checkpoints["ballgan"]), "--format", "obj", "--threshold", "1000",
              "--out", str(tmp_path), *FAST])  # fmt: skip
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert "no surface at density threshold 1000" in error and "lies in [" in error
    assert list(tmp_path.iterdir()) == []
    flat = viz_export.DensityGrid(np.ones((4, 4, 4), np.float32), 0.0, 1.0)
    with pytest.raises(viz_export.NoSurfaceError, match=r"\[1, 1\]"):
        viz_export.extract_mesh(flat, 1.0)


def test_bad_input_is_refused_before_any_work(checkpoints, tmp_path, capsys):
    def error(*argv: str) -> str:
        with pytest.raises(SystemExit) as exit_info:
            main(["export", *argv])
        assert exit_info.value.code != 0
        return capsys.readouterr().err

    assert "not a checkpoint aware3d reads" in error(str(tmp_path), "--out", str(tmp_path / "o"))
    assert "is not a folder" in error(str(tmp_path / "missing"))
    message = error(str(checkpoints["ballgan"]), "--format", "splat", "--out", str(tmp_path))
    assert "cannot be exported as splat" in message and "ply, obj, npy, mp4, gif" in message
    assert "unknown format stl" in error(str(checkpoints["demo"]), "--format", "stl")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "seed0000.splat").write_bytes(b"mine")
    message = error(str(checkpoints["demo"]), "--format", "ply,splat", "--out", str(taken))
    assert f"this file exists: {taken / 'seed0000.splat'}" in message and "--force" in message
    assert (taken / "seed0000.splat").read_bytes() == b"mine"
    assert sorted(p.name for p in taken.iterdir()) == ["seed0000.splat"]
    main(["export", str(checkpoints["demo"]), "--format", "ply,splat", "--out", str(taken),
          "--force"])  # fmt: skip
    assert (taken / "seed0000.splat").stat().st_size == 32 * 672


@pytest.mark.slow
def test_videos_in_every_view_and_an_interrupted_export_leaves_nothing(
    checkpoints, tmp_path, monkeypatch
):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    model = load_model(checkpoints["ballgan"])
    options = ExportOptions(formats=("mp4", "gif", "npy"), frames=4, mesh_resolution=8)
    written = export_model(model, tmp_path / "ok", options)
    names = sorted(path.name for path in (tmp_path / "ok").iterdir())
    assert names == sorted(path.name for path in written.values()) and len(names) == 7
    reader = imageio_ffmpeg.read_frames(str(written["mp4-composite"]))
    meta = next(reader)
    assert meta["size"] == (256, 256)
    assert sum(1 for _ in reader) == 4
    contents = {key: path.read_bytes() for key, path in written.items() if key.startswith("gif")}
    assert len(set(contents.values())) == 3  # composite, depth and opacity differ

    calls = []

    def interrupted(frames, path, **kwargs):
        calls.append(path)
        Path(path).write_bytes(b"half a video")
        raise KeyboardInterrupt

    monkeypatch.setattr(viz_export, "encode_mp4", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_model(model, tmp_path / "stopped", options)
    assert calls and list((tmp_path / "stopped").iterdir()) == []  # not even the .npy


def test_video_frames_normalise_depth_over_the_sequence(checkpoints):
    model = load_model(checkpoints["demo"])
    z = torch.zeros(1, model.generator.latent_dim)  # pyright: ignore[reportArgumentType]
    frames = viz_export.video_frames(model.generator, z, resolution=16, fov_degrees=13.4,
                                     frames=3, chunk=2)  # fmt: skip
    assert set(frames) == {"composite", "depth", "opacity"}
    for pictures in frames.values():
        assert pictures.shape == (3, 16, 16, 3) and pictures.dtype == np.uint8
    depth = viz_export.depth_frames(torch.tensor([1.0, 2.0, 3.0]).reshape(3, 1, 1, 1),
                                    torch.ones(3, 1, 1, 1))  # fmt: skip
    assert depth[:, 0, 0, 0].tolist() == [255, 152, 48]  # one near and far for all frames
    with pytest.raises(ValueError, match="views"):
        viz_export.video_frames(model.generator, z, resolution=16, fov_degrees=13.4,
                                views=("normals",))  # fmt: skip


@pytest.mark.slow
def test_export_command_runs_as_a_process(checkpoints, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "aware3d", "export", str(checkpoints["ballgan"]), "--format",
         "npy", "--out", str(tmp_path), "--mesh-resolution", "8"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sigma in [" in result.stdout and (tmp_path / "seed0000-density.npy").is_file()
