"""aware3d.inversion: rendering from styles, projection, PTI, the camera, LPIPS, latent files."""

import math

import pytest
import torch

from aware3d.cameras import Cameras, sample_look_at_poses
from aware3d.inversion import (
    LPIPS,
    CameraGuess,
    CameraParameters,
    LossWeights,
    ProjectorSchedule,
    PTIConfig,
    load_latent,
    load_lpips,
    locality_psnr,
    pivotal_tuning,
    project,
    psnr,
    reconstruction_loss,
    rotation_error_degrees,
    save_latent,
)
from aware3d.models import ballgan_small, demo_generator
from aware3d.models.styles import StyleDriver, SupportsStyles, styles_of

RES = 16


@pytest.fixture(scope="module")
def demo():
    torch.manual_seed(0)
    return demo_generator(resolution=RES, num_levels=2).eval()


def _target(generator, seed=5, camera=None):
    camera = CameraGuess(yaw=5.0, pitch=2.0) if camera is None else camera
    cameras = camera.cameras()
    z = torch.randn(1, generator.latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator(z, cameras, RES, RES).images[0, 0], cameras


def _quick(steps=4):
    return ProjectorSchedule(steps=steps, w_avg_samples=64)


def test_synthesize_from_mapped_latents_reproduces_the_call(demo):
    torch.manual_seed(1)
    ballgan = ballgan_small(resolution=16, neural_resolution=8, num_coarse=4, num_fine=4).eval()
    for generator in (demo, ballgan):
        styles = styles_of(generator)
        assert isinstance(styles, StyleDriver) and isinstance(styles, SupportsStyles)
        cameras = CameraGuess().cameras()
        z = torch.randn(2, generator.latent_dim)
        cams = Cameras(cameras.cam2world.expand(2, 1, 4, 4), cameras.intrinsics.expand(2, 1, 3, 3))
        ws = styles.map_latents(z, cams, RES, RES)
        assert [w.shape[1] for w in ws] == [g.num_ws for g in styles.style_groups()]
        with torch.no_grad():
            expected = generator(z, cams, RES, RES).images
            got = styles.synthesize(ws, cams, RES, RES).images
        torch.testing.assert_close(got, expected)
    names = [group.name for group in styles_of(ballgan).style_groups()]
    assert names == ["ws", "ws_background"]


def test_styles_of_refuses_a_module_without_mapping():
    with pytest.raises(TypeError, match="MappingNetwork"):
        styles_of(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="ws"):
        styles_of(demo_generator(resolution=RES, num_levels=2)).synthesize(
            [torch.zeros(1, 2, 3)], CameraGuess().cameras(), RES, RES
        )


def test_schedule_is_stylegan2_projectors():
    schedule = ProjectorSchedule()
    assert schedule.steps == 1000 and schedule.learning_rate == 0.1
    assert schedule.lr_scale(0.0) == 0.0
    assert schedule.lr_scale(0.025) == pytest.approx(0.5)
    assert schedule.lr_scale(0.5) == pytest.approx(1.0)
    assert schedule.lr_scale(0.875) == pytest.approx(0.5)
    assert schedule.noise_scale(0.0) == pytest.approx(0.05)
    assert schedule.noise_scale(0.375) == pytest.approx(0.05 * 0.25)
    assert schedule.noise_scale(0.75) == 0.0
    with pytest.raises(ValueError, match="steps"):
        ProjectorSchedule(steps=-1)


def test_projection_w_and_w_plus_improve_and_are_deterministic(demo):
    target, cameras = _target(demo)
    start = project(demo, target, cameras, schedule=_quick(0)).image
    w = project(demo, target, cameras, space="w", schedule=_quick(6), seed=3)
    w_plus = project(demo, target, cameras, space="w+", schedule=_quick(6), seed=3)
    again = project(demo, target, cameras, space="w+", schedule=_quick(6), seed=3)
    assert psnr(w.image, target) > psnr(start, target)
    assert psnr(w_plus.image, target) > psnr(start, target)
    torch.testing.assert_close(again.ws[0], w_plus.ws[0], rtol=0, atol=0)
    assert w.ws[0].shape == w_plus.ws[0].shape
    # W space: one vector for every layer
    torch.testing.assert_close(w.ws[0], w.ws[0][:, :1].expand_as(w.ws[0]))
    assert len(w_plus.history["loss"]) == 6 and "l2" in w_plus.history
    assert not demo.training


def test_pti_improves_keeps_the_original_and_measures_locality(demo):
    target, cameras = _target(demo, seed=6)
    found = project(demo, target, cameras, schedule=_quick(3))
    before = {k: v.clone() for k, v in demo.state_dict().items()}
    tuning = pivotal_tuning(
        demo, found.ws, found.cameras, target, config=PTIConfig(steps=4, learning_rate=1e-3)
    )
    assert psnr(tuning.image, target) > psnr(found.image, target)
    for key, value in demo.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert len(tuning.history["locality"]) == 4
    locality = locality_psnr(demo, tuning.generator, cameras, RES, RES, count=1)
    assert 10 < locality < math.inf
    assert locality_psnr(demo, demo, cameras, RES, RES, count=1) == math.inf


def test_camera_guess_matches_eg3d_sampler_and_round_trips():
    guess = CameraGuess(yaw=20.0, pitch=-10.0, radius=2.5, lookat=(0.0, 0.1, 0.2), focal=3.0)
    cameras = guess.cameras(dtype=torch.float64)
    pose = sample_look_at_poses(
        math.pi / 2 + math.radians(20), math.pi / 2 - math.radians(10), (0.0, 0.1, 0.2),
        radius=2.5, dtype=torch.float64,
    )  # fmt: skip
    torch.testing.assert_close(cameras.cam2world[0, 0], pose[0], atol=1e-6, rtol=0)
    back = CameraGuess.from_cameras(cameras)
    assert back.yaw == pytest.approx(20.0, abs=1e-4)
    assert back.pitch == pytest.approx(-10.0, abs=1e-4)
    assert back.radius == pytest.approx(2.5) and back.focal == pytest.approx(3.0)
    assert rotation_error_degrees(cameras, back.cameras(dtype=torch.float64)) < 1e-3
    assert rotation_error_degrees(cameras, CameraGuess(yaw=23.0).cameras()) > 2
    with pytest.raises(ValueError, match="pitch"):
        CameraGuess(pitch=95.0)
    with pytest.raises(ValueError, match="refine"):
        CameraParameters(guess, ("roll",))


def test_camera_parameters_get_gradients_only_when_refined():
    parameters = CameraParameters(CameraGuess(yaw=10.0), ("yaw", "focal"))
    cameras = parameters()
    (cameras.cam2world.sum() + cameras.intrinsics.sum()).backward()
    assert parameters.get_parameter("yaw").grad is not None
    assert parameters.get_parameter("focal").grad is not None
    assert parameters.get_parameter("pitch").grad is None


def test_camera_refinement_moves_the_camera(demo):
    target, _ = _target(demo, seed=8)
    found = project(demo, target, CameraGuess(yaw=25.0, pitch=10.0), space="w",
                    refine_camera=("yaw", "pitch"), schedule=_quick(3))  # fmt: skip
    assert found.camera is not None
    assert (found.camera.yaw, found.camera.pitch) != (25.0, 10.0)
    assert found.camera.radius == pytest.approx(2.7)


def test_bad_input_is_refused_before_optimisation(demo):
    target, cameras = _target(demo)
    bad = target.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="target.*NaN"):
        project(demo, bad, cameras, schedule=_quick())
    with pytest.raises(ValueError, match="image"):
        project(demo, target[..., :2], cameras, schedule=_quick())
    with pytest.raises(ValueError, match="mask"):
        project(demo, target, cameras, mask=torch.ones(3, 3), schedule=_quick())
    with pytest.raises((ValueError, TypeError), match="space"):
        project(demo, target, cameras, space="z", schedule=_quick())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="camera"):
        project(demo, target, CameraGuess(radius=5.0), schedule=_quick())
    with pytest.raises(ValueError, match="regularizers"):
        project(demo, target, cameras, schedule=_quick(1),
                loss=LossWeights(regularizers={"nope": 1.0}))  # fmt: skip
    found = project(demo, target, cameras, schedule=_quick(1),
                    loss=LossWeights(regularizers={"separation": 0.1}))  # fmt: skip
    assert "separation" in found.history


def test_mask_limits_the_loss():
    image, target = torch.zeros(1, 4, 4, 3), torch.zeros(1, 4, 4, 3)
    image[0, :2] = 1.0
    mask = torch.zeros(4, 4, 1)
    mask[2:] = 1.0
    total, parts = reconstruction_loss(image, target, LossWeights(l1=1.0), mask=mask)
    assert float(total) == 0.0 and set(parts) == {"l1", "l2"}
    total, _ = reconstruction_loss(image, target, LossWeights(l1=1.0))
    assert float(total) > 0


def _lpips_files(tmp_path):
    torch.manual_seed(0)
    model = LPIPS()
    state = {f"features.{k.split('.', 1)[1]}": v for k, v in model.vgg.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's head, ignored
    vgg = tmp_path / "vgg16.pth"
    torch.save(state, vgg)
    channels = (64, 128, 256, 512, 512)
    lins = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(channels)}
    linear = tmp_path / "vgg.pth"
    torch.save(lins, linear)
    return vgg, linear, state, lins


def test_lpips_loads_torchvision_and_lpips_files(tmp_path):
    vgg, linear, state, lins = _lpips_files(tmp_path)
    model = load_lpips(vgg, linear)
    torch.testing.assert_close(model.vgg.features[28].weight, state["features.28.weight"])
    torch.testing.assert_close(model.lins[4], lins["lin4.model.1.weight"].reshape(-1))
    x = torch.rand(2, 32, 32, 3) * 2 - 1
    y = torch.rand(2, 32, 32, 3) * 2 - 1
    assert torch.all(model(x, x) == 0)
    distance = model(x, y)
    assert distance.shape == (2,) and torch.all(distance > 0)
    # the published formula, written out
    features = model.vgg((torch.cat([x, y]).permute(0, 3, 1, 2) - model.shift) / model.scale)
    expected = torch.zeros(2)
    for f, w in zip(features, model.lins, strict=True):
        f = f / (f.square().sum(1, keepdim=True).sqrt() + 1e-10)
        expected += ((f[:2] - f[2:]).square() * w[None, :, None, None]).sum(1).mean((1, 2))
    torch.testing.assert_close(distance, expected)
    with pytest.raises(FileNotFoundError, match="--vgg16"):
        load_lpips(tmp_path / "none.pth", linear, vgg16_argument="--vgg16")
    with pytest.raises(ValueError, match="--lpips-weights.*lin0"):
        load_lpips(vgg, vgg, linear_argument="--lpips-weights")
    with pytest.raises(ValueError, match="torchvision VGG16"):
        load_lpips(linear, linear)


def test_projection_with_lpips_and_mask(demo, tmp_path):
    vgg, linear, _, _ = _lpips_files(tmp_path)
    target, cameras = _target(demo)
    mask = torch.zeros(RES, RES)
    mask[4:12, 4:12] = 1
    found = project(demo, target, cameras, lpips=load_lpips(vgg, linear), mask=mask,
                    schedule=_quick(2))  # fmt: skip
    assert "lpips" in found.history and math.isfinite(found.history["loss"][-1])


def test_latent_file_round_trips(demo, tmp_path):
    target, cameras = _target(demo)
    found = project(demo, target, cameras, schedule=_quick(1))
    path = save_latent(tmp_path / "latent.safetensors", found.ws, found.group_names,
                       found.cameras, space="w+")  # fmt: skip
    codes, loaded = load_latent(path)
    torch.testing.assert_close(codes["ws"], found.ws[0])
    torch.testing.assert_close(loaded.cam2world, found.cameras.cam2world)
