"""``aware3d view``: frames from settings, the viser app, the port rule, and a real browser.

The browser test opens the page in headless Chromium (the system's, driven by Playwright; nothing
is downloaded), waits for the first frame, presses a control and checks that the page's picture
changed and matches ``aware3d render`` for the same latent and camera. It skips, saying why,
where Chromium or Playwright is missing. Its screenshots stay in the test's temporary folder
(``AWARE3D_VIEWER_SHOTS=DIR`` copies them there, for the docs).
"""

import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aware3d.viewer import ViewRenderer, ViewSettings, eg3d_pose, load_model, render_camera_label
from aware3d.viewer.model import UnknownCheckpointError, frontal_label, seed_latent
from aware3d.viewer.render import yaw_pitch_of

RES = 16


def make_checkpoint(folder: Path, model: str, resolution: int = RES) -> Path:
    """A run folder with one checkpoint of the demo recipe's ``model`` (untrained weights).

    BallGAN's density head starts at zero (every point equally dense); it gets random weights
    here, so that its density has a surface to extract.
    """
    from aware3d.recipes import RECIPES, DemoRecipe, config_to_json
    from aware3d.training import run_checkpoints

    config = dataclasses.replace(DemoRecipe(), demo_model=model, resolution=resolution)
    recipe = RECIPES["demo"]
    torch.manual_seed(config.seed)
    generator = recipe.generator(config)
    if model == "ballgan":
        torch.nn.init.normal_(generator.renderer.decoder.density_head.weight, std=3.0)
    run_checkpoints.save_training_checkpoint(
        folder,
        1,
        modules={"generator_ema": generator},
        optimizers={},
        config=config_to_json(config, recipe),
        state={"step": 1, "images_seen": 4, "rng": [{}], "data_position": 0},
        keep=1,
    )
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("viewer-checkpoints")
    return {name: make_checkpoint(root / name, name) for name in ("demo", "gsgan", "ballgan")}


def render_sample(checkpoint: Path, out: Path, seed: int) -> np.ndarray:
    """``aware3d render --count 1 --seed S``'s grid picture, at the model's resolution."""
    from aware3d.cli import main

    main(
        [
            "render",
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--count",
            "1",
            "--seed",
            str(seed),
        ]
    )
    with Image.open(out / "grid.png") as picture:
        image = np.asarray(picture.convert("RGB"))
    scale = image.shape[0] // RES
    return image[::scale, ::scale]


# ---------------------------------------------------------------------- frames without a browser


@pytest.mark.slow
@pytest.mark.parametrize("name", ["demo", "gsgan", "ballgan"])
def test_default_frame_is_what_aware3d_render_writes(checkpoints, tmp_path, name):
    model = load_model(checkpoints[name])
    label = render_camera_label(3)[0].double()
    from aware3d.cameras import fov_from_intrinsics

    settings = ViewSettings(
        seed=3,
        conditioning="view",
        cam2world=label[:16].reshape(4, 4),
        fov=float(fov_from_intrinsics(label[16:].reshape(3, 3))),
        resolution=RES,
    )
    frame = ViewRenderer(model).render(settings)
    assert np.array_equal(frame, render_sample(checkpoints[name], tmp_path / "r", 3))


@pytest.mark.parametrize("name", ["demo", "ballgan"])
def test_every_view_renders_and_they_differ(checkpoints, name):
    model = load_model(checkpoints[name])
    renderer = ViewRenderer(model)
    frames = {
        view: renderer.render(ViewSettings(view=view, resolution=RES)) for view in renderer.views
    }
    assert set(frames) >= {"composite", "foreground", "background", "opacity", "depth"}
    for view, frame in frames.items():
        assert frame.shape == (RES, RES, 3) and frame.dtype == np.uint8, view
    pictures = [frame.tobytes() for frame in frames.values()]
    assert len(set(pictures)) == len(pictures)
    opacity = frames["opacity"].astype(int)
    assert (opacity[..., 0] == opacity[..., 2]).all()  # grey


def test_gaussian_levels_and_shrink_change_the_frame(checkpoints):
    renderer = ViewRenderer(load_model(checkpoints["demo"]))
    assert renderer.num_levels == 3
    base = ViewSettings(resolution=RES)
    frames = [
        renderer.render(base.replace(**change))
        for change in (
            {},
            {"levels": "up to", "level": 0},
            {"levels": "only", "level": 2},
            {"shrink": 0.25},
            {"levels": "up to", "level": 2},
        )
    ]
    assert np.array_equal(frames[0], frames[4])  # up to the last level is every level
    assert len({frame.tobytes() for frame in frames[:4]}) == 4
    only = renderer.gaussians(base.replace(levels="only", level=1))
    assert set(only.levels.tolist()) == {1}
    assert float(only.features.min()) >= 0 and float(only.features.max()) <= 1


def test_seed_psi_conditioning_and_camera_change_the_frame(checkpoints):
    renderer = ViewRenderer(load_model(checkpoints["gsgan"]))
    base = ViewSettings(resolution=RES)
    first = renderer.render(base)
    assert np.array_equal(first, renderer.render(base))  # a pure function of the settings
    for change in (
        {"seed": 1},
        {"psi": 0.5},
        {"conditioning": "view", "cam2world": eg3d_pose(20, 0)},
        {"cam2world": eg3d_pose(20, 10)},
        {"fov": 20.0},
    ):
        assert not np.array_equal(first, renderer.render(base.replace(**change))), change


def test_yaw_pitch_round_trip_and_frontal_label():
    for yaw, pitch, radius in ((0, 0, 2.7), (35, -20, 2.2), (-120, 60, 1.5)):
        got = yaw_pitch_of(eg3d_pose(yaw, pitch, radius))
        assert got == pytest.approx((yaw, pitch, radius), abs=1e-6)
    label = frontal_label()
    assert label.shape == (1, 25)
    assert torch.allclose(label[0, :16].reshape(4, 4).double(), eg3d_pose(0, 0), atol=1e-6)


def test_seed_latent_is_aware3d_renders_first(checkpoints):
    model = load_model(checkpoints["demo"])
    z = seed_latent(model, 5)
    expected = torch.randn(
        1, model.generator.latent_dim, generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(z, expected)
    with pytest.raises(ValueError, match="seed"):
        seed_latent(model, -1)


def test_unknown_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(UnknownCheckpointError, match="not a folder"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownCheckpointError, match="not a checkpoint aware3d reads"):
        load_model(tmp_path / "empty")


def test_benchmark_prints_frames_per_second(checkpoints, capsys):
    from aware3d.cli import main

    main(["view", str(checkpoints["demo"]), "--benchmark", "2", "--resolution", "16"])
    report = json.loads(capsys.readouterr().out)
    assert report["fps"] > 0 and report["frames"] == 2 and report["resolution"] == 16


def test_view_of_an_unknown_checkpoint_is_an_error(tmp_path, capsys):
    from aware3d.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["view", str(tmp_path), "--benchmark", "1"])
    assert exit_info.value.code != 0
    assert "not a checkpoint aware3d reads" in capsys.readouterr().err


def test_import_aware3d_loads_no_viewer_or_export_package():
    probe = (
        "import sys, aware3d, aware3d.viewer, aware3d.viz.export, aware3d.cli_view\n"
        "heavy = ('viser', 'mcubes', 'imageio_ffmpeg', 'playwright', 'trimesh')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------- the viser app

viser = pytest.importorskip("viser", reason="the viewer needs viser (the view extra)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_port_in_use_is_replaced_and_said(checkpoints):
    from aware3d.viewer.app import ViewerApp, letterbox

    lines: list[str] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = ViewerApp(
            load_model(checkpoints["demo"]),
            port=port,
            log=lines.append,
            settings=ViewSettings(resolution=RES),
        )
        try:
            assert app.port != port
            assert lines == [f"port {port} is in use: serving on port {app.port} instead"]
            assert app.wait_for_frames(1, timeout=60)
            assert app.last_frame is not None and app.last_frame.shape == (RES, RES, 3)
            app.update(seed=1)
            assert app.wait_for_frames(2, timeout=60)
        finally:
            app.close()
    frame = np.zeros((4, 4, 3), np.uint8)
    assert letterbox(frame, 2.0).shape == (4, 8, 3) and letterbox(frame, 0.5).shape == (8, 4, 3)


# ---------------------------------------------------------------------- a real browser


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _close_notifications(page) -> None:
    """Closes viser's notices (headless Chromium renders WebGL in software, and viser says so)."""
    buttons = page.locator(".mantine-Notification-closeButton, [class*=closeButton]")
    for index in range(buttons.count()):
        with contextlib.suppress(Exception):  # a notice that left by itself
            buttons.nth(index).click(timeout=2000)


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference inside a 1/8 margin (the frame's edges blur into the bars)."""
    margin = a.shape[0] // 8
    inner = slice(margin, a.shape[0] - margin)
    return float(np.abs(a[inner, inner].astype(np.float64) - b[inner, inner]).mean())


def _canvas_square(page, app) -> np.ndarray:
    """The page's picture of the frame: the canvas screenshot's centred square, at frame size."""
    import io

    shot = Image.open(io.BytesIO(page.locator("canvas").first.screenshot())).convert("RGB")
    width, height = shot.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = shot.crop((left, top, left + side, top + side))
    size = app.last_frame.shape[0]
    return np.asarray(square.resize((size, size), Image.Resampling.BOX)).astype(np.float64)


@pytest.mark.slow
def test_in_a_real_browser(checkpoints, tmp_path):
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (the test extra)"
    )
    from aware3d.viewer.app import ViewerApp

    shots = tmp_path / "screenshots"
    shots.mkdir()
    model = load_model(checkpoints["demo"])
    app = ViewerApp(
        model, port=free_port(), log=print, settings=ViewSettings(seed=3, resolution=RES)
    )
    try:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=browser_path,
                headless=True,
                args=["--no-sandbox", "--enable-unsafe-swiftshader"],
            )
            page = browser.new_page(viewport={"width": 1100, "height": 640})
            page.goto(app.url)
            page.get_by_text("frame ").first.wait_for(timeout=60_000)  # the first frame's status
            page.wait_for_timeout(1500)
            _close_notifications(page)
            page.wait_for_timeout(500)
            page.screenshot(path=shots / "viewer.png")
            before = _canvas_square(page, app)
            first = app.last_frame.copy()
            assert _difference(before, first) < 12  # the page shows the frame

            sent = app.frames
            page.get_by_role("button", name="camera of aware3d render").click()
            assert app.wait_for_frames(sent + 1, timeout=60)
            page.wait_for_timeout(1500)
            page.screenshot(path=shots / "viewer-render-camera.png")
            after = _canvas_square(page, app)
            browser.close()
    finally:
        app.close()
    expected = render_sample(checkpoints["demo"], tmp_path / "render", 3)
    assert np.array_equal(app.last_frame, expected)  # the frame sent is aware3d render's
    assert not np.array_equal(expected, first)
    assert _difference(after, before) > 5  # the page's picture changed
    assert _difference(after, expected) < 12  # and it is aware3d render's picture
    assert _difference(after, expected) < 0.5 * _difference(after, first)
    keep = os.environ.get("AWARE3D_VIEWER_SHOTS")
    if keep:
        for shot in shots.iterdir():
            shutil.copy(shot, Path(keep) / shot.name)
