"""``aware3d.viz.render``: the files ``aware3d render`` writes, for every generator kind."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from plyfile import PlyData

from aware3d.data.synthetic import SyntheticScenes
from aware3d.gaussians import SH_C0, Gaussians
from aware3d.models import (
    BallGANGenerator,
    ballgan_small,
    demo_generator,
    gsgan_small,
    triplane_point_cloud,
)
from aware3d.viz.render import depth_to_grey, render_outputs

MODELS = ("demo", "gsgan", "ballgan")
RES = 16
COUNT = 5  # 2 columns x 3 rows in the grid; 4 latents in the turntable; 5 depth maps
FRAMES = 2  # with four latents: one pass of 8 views
SCALE = 2  # PNGs below 128 px are upscaled 2x
FILES = {"grid": "grid.png", "turntable": "turntable.gif", "depth": "depth.png",
         "ply": "sample.ply"}  # fmt: skip
GAUSSIAN_PROPERTIES = [
    *"xyz", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1",
    "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
]  # fmt: skip


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "demo":
        return demo_generator(z_dim=16, w_dim=16, resolution=RES, num_levels=2)
    if name == "gsgan":
        return gsgan_small(16, num_levels=2, resolution=RES)
    return ballgan_small(16, resolution=RES, neural_resolution=RES // 2)


@pytest.fixture(scope="module")
def labels() -> torch.Tensor:
    return SyntheticScenes(num_scenes=2, views_per_scene=2, resolution=RES).labels


@pytest.fixture(scope="module")
def generators() -> dict[str, torch.nn.Module]:
    return {name: _build(name) for name in MODELS}


@pytest.fixture(scope="module")
def rendered(
    generators: dict[str, torch.nn.Module],
    labels: torch.Tensor,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("render")
    written = {}
    for name in MODELS:
        written[name] = render_outputs(
            generators[name], root / name / "out", labels=labels, resolution=RES, count=COUNT,
            turntable_frames=FRAMES,
        )  # fmt: skip
    return written


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.slow
def test_every_file_is_written(rendered: dict[str, dict[str, Path]], name: str) -> None:
    written = rendered[name]
    assert set(written) == set(FILES)
    for key, filename in FILES.items():
        assert written[key].name == filename
        assert written[key].parent.name == "out"  # the folder was created
        assert written[key].is_file() and written[key].stat().st_size > 0


@pytest.mark.parametrize("name", MODELS)
def test_grid_png(rendered: dict[str, dict[str, Path]], name: str) -> None:
    with Image.open(rendered[name]["grid"]) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.size == (2 * RES * SCALE, 3 * RES * SCALE)
        pixels = np.asarray(image)
    cell = RES * SCALE
    assert (pixels[2 * cell :, cell:] == 255).all()  # the sixth cell is white padding
    assert pixels[:cell, :cell].std() > 0  # a sample, not a blank


@pytest.mark.parametrize("name", MODELS)
def test_depth_png(rendered: dict[str, dict[str, Path]], name: str) -> None:
    with Image.open(rendered[name]["depth"]) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert image.size == (COUNT * RES * SCALE, 2 * RES * SCALE)
        pixels = np.asarray(image).astype(int)
    with Image.open(rendered[name]["grid"]) as image:
        first = np.asarray(image)[: RES * SCALE, : RES * SCALE]
    assert (pixels[: RES * SCALE, : RES * SCALE] == first).all()  # top row: the same samples
    depth = pixels[RES * SCALE :]
    assert (depth[..., 0] == depth[..., 1]).all() and (depth[..., 1] == depth[..., 2]).all()
    assert depth.max() == 255  # each image's nearest foreground pixel is white


@pytest.mark.parametrize("name", MODELS)
def test_turntable_gif(rendered: dict[str, dict[str, Path]], name: str) -> None:
    with Image.open(rendered[name]["turntable"]) as image:
        assert image.format == "GIF"
        assert getattr(image, "n_frames", 1) == FRAMES
        assert image.size == (4 * RES * 2, RES * 2)  # the first four latents side by side


@pytest.mark.parametrize("name", ["demo", "gsgan"])
def test_gaussian_ply(
    rendered: dict[str, dict[str, Path]], generators: dict[str, torch.nn.Module], name: str
) -> None:
    path = rendered[name]["ply"]
    vertex = PlyData.read(str(path))["vertex"]
    names = [p.name for p in vertex.properties]
    assert set(GAUSSIAN_PROPERTIES) <= set(names)
    assert vertex.count == generators[name].decoder.num_gaussians > 0  # pyright: ignore
    xyz = np.stack([vertex[a] for a in "xyz"], axis=-1)
    assert np.isfinite(xyz).all()
    rgb = 0.5 + SH_C0 * np.stack([vertex[f"f_dc_{i}"] for i in range(3)], axis=-1)
    assert (rgb >= -1e-5).all() and (rgb <= 1 + 1e-5).all()  # colours mapped to [0, 1]
    gaussians = Gaussians.load_ply(path)  # and the library reads it back
    assert gaussians.num_gaussians == vertex.count


def test_ballgan_point_cloud_ply(
    rendered: dict[str, dict[str, Path]], generators: dict[str, torch.nn.Module]
) -> None:
    vertex = PlyData.read(str(rendered["ballgan"]["ply"]))["vertex"]
    assert [p.name for p in vertex.properties] == ["x", "y", "z", "red", "green", "blue"]
    assert vertex.count > 0
    assert [vertex[n].dtype for n in ("x", "red")] == [np.dtype("float32"), np.dtype("uint8")]
    xyz = np.stack([vertex[a] for a in "xyz"], axis=-1)
    half = generators["ballgan"].renderer.box_size / 2  # pyright: ignore
    assert np.isfinite(xyz).all() and (np.abs(xyz) <= half).all()


def test_point_cloud_rule(generators: dict[str, torch.nn.Module], labels: torch.Tensor) -> None:
    generator = generators["ballgan"]
    assert isinstance(generator, BallGANGenerator)
    z = torch.randn(1, generator.z_dim)
    with torch.no_grad():
        planes = generator.triplane(generator.mapping(z, labels[:1]), noise_mode="const")
        every, colours = triplane_point_cloud(generator, planes, grid_size=4, threshold=0.0)
        densest, _ = triplane_point_cloud(generator, planes, grid_size=4, threshold=1.0, top_k=7)
    assert every.shape == (64, 3) and colours.shape == (64, 3) and colours.dtype == np.uint8
    assert sorted(np.unique(every[:, 0]).tolist()) == [-0.375, -0.125, 0.125, 0.375]  # centres
    assert densest.shape == (7, 3)  # nothing passes the threshold: the densest cells instead


def test_depth_to_grey() -> None:
    depth = torch.tensor([[[1.0, 2.0], [3.0, 9.0]], [[4.0, 5.0], [6.0, 7.0]]])
    opacity = torch.tensor([[[1.0, 1.0], [1.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    grey = depth_to_grey(depth, opacity)
    assert grey.shape == (2, 2, 2, 3) and grey.dtype == np.uint8
    assert grey[0, ..., 0].tolist() == [[255, 152], [48, 0]]  # near white, far grey, bg black
    assert grey[1, 0, 0, 0] == 255 and grey[1, 1, 1, 0] == 48  # no foreground: all pixels


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.slow
def test_same_seed_same_files(
    generators: dict[str, torch.nn.Module],
    rendered: dict[str, dict[str, Path]],
    labels: torch.Tensor,
    tmp_path: Path,
    name: str,
) -> None:
    state = torch.get_rng_state()
    again = render_outputs(generators[name], tmp_path / "again", labels=labels, resolution=RES,
                           count=COUNT, turntable_frames=FRAMES)  # fmt: skip
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is not drawn from
    for key in FILES:
        assert again[key].read_bytes() == rendered[name][key].read_bytes(), key


def test_seed_changes_samples(
    generators: dict[str, torch.nn.Module],
    rendered: dict[str, dict[str, Path]],
    labels: torch.Tensor,
    tmp_path: Path,
) -> None:
    other = render_outputs(generators["demo"], tmp_path, labels=labels, resolution=RES,
                           count=COUNT, seed=1, turntable_frames=FRAMES)  # fmt: skip
    assert other["grid"].read_bytes() != rendered["demo"]["grid"].read_bytes()


@pytest.mark.slow
def test_single_sample(
    generators: dict[str, torch.nn.Module], labels: torch.Tensor, tmp_path: Path
) -> None:
    written = render_outputs(generators["gsgan"], tmp_path, labels=labels[:1], resolution=RES,
                             count=1, turntable_frames=9)  # fmt: skip
    with Image.open(written["grid"]) as image:
        assert image.size == (RES * SCALE, RES * SCALE)
    with Image.open(written["depth"]) as image:
        assert image.size == (RES * SCALE, 2 * RES * SCALE)
    with Image.open(written["turntable"]) as image:
        assert (
            image.size == (RES * 2, RES * 2) and getattr(image, "n_frames", 1) == 9
        )  # two passes: 8 + 1


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"count": 0}, "count"),
        ({"count": -3}, "count"),
        ({"count": True}, "count"),
        ({"resolution": 0}, "resolution"),
        ({"resolution": -16}, "resolution"),
        ({"turntable_frames": 0}, "turntable_frames"),
        ({"labels": torch.zeros(4, 24)}, "labels"),
        ({"labels": torch.zeros(25)}, "labels"),
        ({"labels": torch.zeros(0, 25)}, "labels"),
        ({"labels": torch.zeros(2, 25, 1)}, "labels"),
        ({"labels": torch.zeros(2, 25)}, "labels"),  # not valid cameras
    ],
)
def test_bad_input(
    generators: dict[str, torch.nn.Module],
    labels: torch.Tensor,
    tmp_path: Path,
    kwargs: dict,
    argument: str,
) -> None:
    arguments = {"labels": labels, "resolution": RES, "count": 2, "turntable_frames": 2} | kwargs
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=f"`{argument}`"):
        render_outputs(generators["gsgan"], out, **arguments)
    assert not (out / "grid.png").exists()


def test_ballgan_needs_its_output_resolution(
    generators: dict[str, torch.nn.Module], labels: torch.Tensor, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="output resolution"):
        render_outputs(generators["ballgan"], tmp_path, labels=labels, resolution=2 * RES)
    assert not (tmp_path / "grid.png").exists()
