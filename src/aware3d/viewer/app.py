"""``aware3d view``: a local web viewer on viser, with frames rendered by aware3d on the server.

:class:`ViewerApp` starts a viser server (a page any browser opens), builds the controls and runs
one render thread: every change (a control, the camera moved with the mouse) bumps a version,
and the thread renders the newest settings with :class:`~aware3d.viewer.render.ViewRenderer`
and sends the frame to the page as its background image (PNG by default, lossless). Changes that
arrive while a frame renders are merged into the next frame, so the page never lags behind by
more than one frame.

The page's camera is the frame's camera: dragging orbits around the look-at point (viser's
orbit controls, EG3D's world with +y up), and the yaw / pitch / radius / field-of-view sliders
place the camera as EG3D's look-at sampler does. The square frame is letterboxed into the
page's aspect ratio, so its vertical field of view is the page camera's. For Gaussian
generators, "client-side splats" shows the Gaussians themselves in the browser (viser's
Gaussian splatting), without the background, instead of the server's frames.
"""

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from aware3d.cameras import FFHQ_LOOKAT
from aware3d.viewer.model import LoadedModel, describe, render_camera_label
from aware3d.viewer.render import (
    LEVEL_MODES,
    ViewRenderer,
    ViewSettings,
    eg3d_pose,
    yaw_pitch_of,
)

__all__ = ["LETTERBOX_GREY", "ViewerApp", "letterbox"]

#: Grey of the bars around the square frame.
LETTERBOX_GREY = 40
#: Resolutions offered for generators that render any size.
_RESOLUTIONS = ("64", "128", "256", "512")


def letterbox(frame: np.ndarray, aspect: float) -> np.ndarray:
    """A square frame ``[S, S, 3]`` centred in a picture of width / height ``aspect``.

    Landscape pictures keep the frame's height, portrait ones its width; the bars are grey.
    """
    size = frame.shape[0]
    if not math.isfinite(aspect) or aspect <= 0 or abs(aspect - 1) < 1e-3:
        return frame
    if aspect > 1:
        height, width = size, max(size, round(size * aspect))
    else:
        height, width = max(size, round(size / aspect)), size
    picture = np.full((height, width, 3), LETTERBOX_GREY, dtype=np.uint8)
    top, left = (height - size) // 2, (width - size) // 2
    picture[top : top + size, left : left + size] = frame
    return picture


def _pose_from_client(wxyz: np.ndarray, position: np.ndarray) -> torch.Tensor:
    """Viser's camera (OpenCV axes: x right, y down, z forward) as a camera-to-world matrix."""
    w, x, y, z = (float(v) for v in wxyz / np.linalg.norm(wxyz))
    rotation = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = rotation, np.asarray(position, dtype=np.float64)
    return torch.from_numpy(pose)


class ViewerApp:
    """The viewer: a viser server, its controls and a render thread.

    Args:
        model: the generator (:func:`~aware3d.viewer.model.load_model`).
        host: the address to listen on (``127.0.0.1``: this machine only).
        port: the port to listen on; when it is in use the next free one is taken and
            ``log`` says so (:attr:`port` is the one used).
        settings: the first frame's settings.
        log: called with a line of text (``print`` by default).
        lossless: send PNG frames (exact pixels); JPEG otherwise (smaller).

    Attributes:
        port: the port the page is served on.
        url: the page's address.
        last_frame: the newest frame sent (``[S, S, 3]`` uint8, before letterboxing).
        frames: frames sent so far.
    """

    def __init__(
        self,
        model: LoadedModel,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        settings: ViewSettings | None = None,
        log: Callable[[str], Any] = print,
        lossless: bool = True,
    ) -> None:
        import viser

        self.model = model
        self.renderer = ViewRenderer(model)
        self.settings = settings if settings is not None else ViewSettings()
        if model.fixed_resolution:
            self.settings = self.settings.replace(resolution=model.resolution)
        self.log = log
        self.lossless = lossless
        self.last_frame: np.ndarray | None = None
        self.frames = 0
        self.last_seconds = 0.0
        self.error: str | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._version = 1
        self._stopping = False
        self._quiet = False  # set while the app moves its own controls
        self._aspect = 1.0
        self._splats_shown: tuple | None = None
        self.server = viser.ViserServer(host=host, port=port, label="aware3d", verbose=False)
        self.port = self.server.get_port()
        if port != 0 and self.port != port:
            log(f"port {port} is in use: serving on port {self.port} instead")
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        self.url = f"http://{shown}:{self.port}/"
        self.server.gui.configure_theme(show_share_button=False)
        self.server.gui.main_panel.dock_right()  # the controls beside the picture, not over it
        self._build_controls()
        self._place_initial_camera()
        self.server.on_client_connect(self._client_connected)
        self._thread = threading.Thread(target=self._loop, name="aware3d-view", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ controls

    def _build_controls(self) -> None:
        gui, s, r = self.server.gui, self.settings, self.renderer
        info = describe(self.model)
        gui.add_markdown(
            f"**{info['generator']}** ({info['family']}), {info['what']}, {info['resolution']} px"
        )
        with gui.add_folder("Latent"):
            self.seed = gui.add_number(
                "seed",
                s.seed,
                min=0,
                step=1,
                hint="the latent of `aware3d render --seed S --count 1`",
            )
            self.next_seed = gui.add_button("next seed")
            self.psi = gui.add_slider("truncation psi", 0.0, 1.5, 0.01, s.psi)
            self.conditioning = gui.add_dropdown(
                "conditioned on",
                ("frontal", "view"),
                initial_value=s.conditioning,
                hint="frontal: EG3D's samples (the scene stays put); view: the camera shown",
            )
        yaw, pitch, radius = yaw_pitch_of(s.cam2world)
        far = r.sphere_radius
        with gui.add_folder("Camera"):
            self.yaw = gui.add_slider("yaw (deg)", -180.0, 180.0, 0.5, round(yaw, 1))
            self.pitch = gui.add_slider("pitch (deg)", -85.0, 85.0, 0.5, round(pitch, 1))
            top = min(8.0, far - 0.05) if far is not None else 8.0
            self.radius = gui.add_slider("radius", 0.5, top, 0.01, min(round(radius, 2), top))
            self.fov = gui.add_slider("field of view (deg)", 3.0, 90.0, 0.01, round(s.fov, 2))
            self.frontal = gui.add_button("frontal camera")
            self.render_camera = gui.add_button(
                "camera of aware3d render",
                hint="the camera (and conditioning) of `aware3d render --seed S --count 1`",
            )
        with gui.add_folder("Display"):
            self.view = gui.add_dropdown("show", r.views, initial_value=s.view)
            self.resolution = gui.add_dropdown(
                "resolution",
                tuple(sorted({*_RESOLUTIONS, str(s.resolution)}, key=int))
                if not self.model.fixed_resolution
                else (str(self.model.resolution),),
                initial_value=str(s.resolution),
                disabled=self.model.fixed_resolution,
            )
            gaussians = self.model.family == "gaussians"
            self.levels = gui.add_dropdown(
                "levels", LEVEL_MODES, initial_value=s.levels, visible=gaussians
            )
            self.level = gui.add_slider(
                "level",
                0,
                max(r.num_levels - 1, 1),
                1,
                min(s.level, r.num_levels - 1),
                visible=gaussians,
            )
            self.shrink = gui.add_slider(
                "shrink scales", 0.05, 1.0, 0.05, s.shrink, visible=gaussians
            )
            self.splats = gui.add_checkbox(
                "client-side splats",
                False,
                visible=gaussians,
                hint="the Gaussians in the browser (viser's splatting), without background",
            )
        self.status = gui.add_markdown("waiting for the first frame")
        for handle in (
            self.seed,
            self.psi,
            self.conditioning,
            self.view,
            self.resolution,
            self.levels,
            self.level,
            self.shrink,
            self.splats,
        ):
            handle.on_update(self._controls_changed)
        for handle in (self.yaw, self.pitch, self.radius, self.fov):
            handle.on_update(self._camera_sliders_changed)
        self.next_seed.on_click(lambda _: self._set_quietly(self.seed, int(self.seed.value) + 1))
        self.frontal.on_click(lambda _: self.set_camera(eg3d_pose(0.0, 0.0)))
        self.render_camera.on_click(lambda _: self.use_render_camera())

    def _set_quietly(self, handle: Any, value: Any) -> None:
        handle.value = value  # its callback runs (not quiet): the frame follows

    def _controls_changed(self, _: Any = None) -> None:
        if self._quiet:
            return
        resolution = int(self.resolution.value)
        self.update(
            seed=int(self.seed.value),
            psi=float(self.psi.value),
            conditioning=self.conditioning.value,
            view=self.view.value,
            resolution=resolution,
            levels=self.levels.value,
            level=int(self.level.value),
            shrink=float(self.shrink.value),
        )

    def _camera_sliders_changed(self, _: Any = None) -> None:
        if self._quiet:
            return
        pose = eg3d_pose(float(self.yaw.value), float(self.pitch.value), float(self.radius.value))
        self.set_camera(pose, fov=float(self.fov.value), sliders=False)

    # ------------------------------------------------------------------ state changes

    def update(self, **changes: Any) -> None:
        """Changes the settings and asks for a new frame."""
        with self._changed:
            self.settings = self.settings.replace(**changes)
            self._version += 1
            self._changed.notify_all()

    def set_camera(
        self,
        cam2world: torch.Tensor,
        *,
        fov: float | None = None,
        sliders: bool = True,
        **changes: Any,
    ) -> None:
        """Moves the camera (and every page's), then asks for a new frame."""
        pose = torch.as_tensor(cam2world, dtype=torch.float64)
        fov = self.settings.fov if fov is None else fov
        self.update(cam2world=pose, fov=fov, **changes)
        if sliders:
            yaw, pitch, radius = yaw_pitch_of(pose)
            self._quiet = True
            try:
                self.yaw.value, self.pitch.value = round(yaw, 1), round(pitch, 1)
                self.radius.value = min(max(round(radius, 2), self.radius.min), self.radius.max)
                self.fov.value = round(fov, 2)
            finally:
                self._quiet = False
        self._place_initial_camera()
        for client in self.server.get_clients().values():
            self._place_client_camera(client)

    def use_render_camera(self) -> None:
        """The camera and conditioning of ``aware3d render --seed S --count 1`` for this seed."""
        from aware3d.cameras import fov_from_intrinsics

        label = render_camera_label(int(self.seed.value))[0].double()
        fov = float(fov_from_intrinsics(label[16:].reshape(3, 3)))
        self._quiet = True
        try:
            self.conditioning.value = "view"
        finally:
            self._quiet = False
        self.set_camera(label[:16].reshape(4, 4), fov=fov, conditioning="view")

    def _vertical_fov(self) -> float:
        """The page camera's vertical field of view (radians) for the letterboxed frame."""
        half = math.radians(self.settings.fov) / 2
        aspect = self._aspect if self._aspect > 0 else 1.0
        return 2 * math.atan(math.tan(half) / aspect) if aspect < 1 else 2 * half

    def _camera_placement(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(position, look_at, up)`` of the settings' camera for viser's orbit controls.

        ``up`` is the camera's own up axis, so the page's camera is exactly the settings' one
        (a camera with a little roll, like the data sets', keeps it).
        """
        pose = self.settings.cam2world.numpy()
        forward, position = pose[:3, 2], pose[:3, 3]
        distance = float(np.dot(np.asarray(FFHQ_LOOKAT) - position, forward))
        target = position + forward * (distance if distance > 0.1 else 1.0)
        return position, target, -pose[:3, 1]

    def _place_initial_camera(self) -> None:
        position, target, up = self._camera_placement()
        initial = self.server.initial_camera
        initial.up = up
        initial.position = position
        initial.look_at = target
        initial.fov = self._vertical_fov()

    def _place_client_camera(self, client: Any) -> None:
        position, target, up = self._camera_placement()
        try:
            client.camera.update_timestamp  # noqa: B018 (asserts the page has sent its camera)
        except AssertionError:
            return  # not known yet: the page starts from the initial camera
        with client.atomic():
            client.camera.up_direction = up
            client.camera.position = position
            client.camera.look_at = target
            client.camera.fov = self._vertical_fov()

    def _client_connected(self, client: Any) -> None:
        self._place_client_camera(client)
        client.camera.on_update(self._client_camera_moved)
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def _client_camera_moved(self, camera: Any) -> None:
        aspect = float(camera.aspect) if camera.image_height else 1.0
        pose = _pose_from_client(np.asarray(camera.wxyz), np.asarray(camera.position))
        current = self.settings.cam2world
        moved = not torch.allclose(pose, current, atol=1e-4)
        if not moved and abs(aspect - self._aspect) < 1e-3:
            return  # the page echoing the camera the app placed: keep the exact pose
        self._aspect = aspect
        if moved:
            yaw, pitch, radius = yaw_pitch_of(pose)
            self._quiet = True
            try:
                self.yaw.value, self.pitch.value = round(yaw, 1), round(pitch, 1)
                self.radius.value = min(max(round(radius, 2), self.radius.min), self.radius.max)
            finally:
                self._quiet = False
            self.update(cam2world=pose)
        else:
            with self._changed:
                self._version += 1
                self._changed.notify_all()
        if abs(camera.fov - self._vertical_fov()) > 1e-4:
            camera.fov = self._vertical_fov()

    # ------------------------------------------------------------------ frames

    def _loop(self) -> None:
        done = 0
        while True:
            with self._changed:
                while self._version == done and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                done, settings = self._version, self.settings
            try:
                self._show(settings)
                self.error = None
            except Exception as error:  # keep serving: say what went wrong on the page
                self.error = f"{type(error).__name__}: {error}"
                self.status.content = f"**could not render**: {self.error}"
                self.log(f"aware3d view: could not render: {self.error}")

    def _show(self, settings: ViewSettings) -> None:
        if self.model.family == "gaussians" and bool(self.splats.value):
            self._show_splats(settings)
            return
        if self._splats_shown is not None:
            self.server.scene.remove_by_name("/gaussians")
            self._splats_shown = None
        start = time.perf_counter()
        frame = self.renderer.render(settings)
        seconds = time.perf_counter() - start
        self.server.scene.set_background_image(
            letterbox(frame, self._aspect),
            format="png" if self.lossless else "jpeg",
            jpeg_quality=None if self.lossless else 90,
        )
        self.last_frame, self.last_seconds = frame, seconds
        self.frames += 1
        self.status.content = (
            f"frame {self.frames}: {1000 * seconds:.0f} ms ({1 / max(seconds, 1e-9):.1f} fps) at "
            f"{frame.shape[0]} px"
        )

    def _show_splats(self, settings: ViewSettings) -> None:
        key = (
            settings.seed,
            settings.psi,
            settings.conditioning,
            settings.levels,
            settings.level,
            settings.shrink,
            id(settings.latent),
        )
        self.server.scene.set_background_image(None)
        if key == self._splats_shown:
            return
        gaussians = self.renderer.gaussians(settings)
        g = gaussians.detach().to(device="cpu", dtype=torch.float64)
        quats = g.quats[0] / torch.linalg.vector_norm(g.quats[0], dim=-1, keepdim=True)
        w, x, y, z = quats.unbind(-1)
        rotation = torch.stack(
            [
                1 - 2 * (y * y + z * z),
                2 * (x * y - w * z),
                2 * (x * z + w * y),
                2 * (x * y + w * z),
                1 - 2 * (x * x + z * z),
                2 * (y * z - w * x),
                2 * (x * z - w * y),
                2 * (y * z + w * x),
                1 - 2 * (x * x + y * y),
            ],
            dim=-1,
        ).reshape(-1, 3, 3)
        scaled = rotation * g.scales[0][:, None, :]
        covariances = scaled @ scaled.transpose(1, 2)
        self.server.scene.add_gaussian_splats(
            "/gaussians",
            centers=g.means[0].float().numpy(),
            covariances=covariances.float().numpy(),
            rgbs=g.features[0].float().numpy(),
            opacities=g.opacities[0][:, None].float().numpy(),
        )
        self._splats_shown = key
        self.status.content = f"{g.num_gaussians} Gaussians shown as client-side splats"

    def wait_for_frames(self, count: int, timeout: float = 60.0) -> bool:
        """Waits until :attr:`frames` reaches ``count`` (True) or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while self.frames < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.frames >= count

    def close(self) -> None:
        """Stops the render thread and the server."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout=30)
        self.server.stop()
