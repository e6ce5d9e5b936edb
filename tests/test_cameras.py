"""Cameras, EG3D labels, look-at frames, EG3D's pose samplers, intrinsics and pixel rays."""

import math

import numpy as np
import pytest
import torch

import aware3d
from aware3d import (
    Cameras,
    eg3d_fov_to_intrinsics,
    fov_from_intrinsics,
    intrinsics_from_fov,
    look_at,
    orbit,
    sample_gaussian_poses,
    sample_look_at_poses,
)
from aware3d.cameras import FFHQ_FOCAL


# ------------------------------------------------------------------ EG3D's formulas, for oracles
# Written from EG3D's camera_utils.py (LookAtPoseSampler.sample, GaussianCameraPoseSampler.sample)
# and math_utils.py (create_cam2world_matrix, normalize_vecs), NVlabs/eg3d, in float64 numpy.
def eg3d_origin(h: float, v: float, radius: float) -> np.ndarray:
    v = min(max(v, 1e-5), math.pi - 1e-5)  # torch.clamp(v, 1e-5, math.pi - 1e-5)
    phi = math.acos(1 - 2 * (v / math.pi))  # v = v / math.pi; phi = torch.arccos(1 - 2*v)
    theta = h
    return np.array(
        [
            radius * math.sin(phi) * math.cos(math.pi - theta),
            radius * math.cos(phi),
            radius * math.sin(phi) * math.sin(math.pi - theta),
        ]
    )


def eg3d_cam2world(forward: np.ndarray, origin: np.ndarray) -> np.ndarray:
    forward = forward / np.linalg.norm(forward)
    up = np.array([0.0, 1.0, 0.0])
    right = -np.cross(up, forward)
    right /= np.linalg.norm(right)
    up = np.cross(forward, right)
    up /= np.linalg.norm(up)
    rotation = np.eye(4)
    rotation[:3, :3] = np.stack([right, up, forward], axis=-1)
    translation = np.eye(4)
    translation[:3, 3] = origin
    return translation @ rotation


def eg3d_look_at_pose(h: float, v: float, lookat, radius: float) -> np.ndarray:
    origin = eg3d_origin(h, v, radius)
    return eg3d_cam2world(np.asarray(lookat, dtype=np.float64) - origin, origin)


def ffhq_cameras(n: int = 3, generator=None, dtype=torch.float32) -> Cameras:
    poses = sample_look_at_poses(
        math.pi / 2, math.pi / 2, (0, 0, 0.2), 0.3, 0.15, n=n, generator=generator, dtype=dtype
    )
    return Cameras(poses, intrinsics_from_fov(13.37, dtype=dtype).expand(n, 3, 3))


# ------------------------------------------------------------------ labels


def test_eg3d_label_round_trip(generator):
    cameras = ffhq_cameras(4, generator)
    labels = cameras.to_eg3d_labels()
    assert labels.shape == (4, 25)
    again = Cameras.from_eg3d_labels(labels)
    torch.testing.assert_close(again.cam2world, cameras.cam2world, rtol=0, atol=0)
    torch.testing.assert_close(again.intrinsics, cameras.intrinsics, rtol=0, atol=0)
    torch.testing.assert_close(again.to_eg3d_labels(), labels, rtol=0, atol=0)


def _gaussians(batch, generator):
    from splat_reference import random_gaussians

    return random_gaussians(batch, 16, 3, generator, torch.float32)


@pytest.mark.usefixtures("without_shape_checker")  # the library's own errors, as users see them
def test_labels_of_a_batch_render_after_the_hinted_reshape(generator):
    from aware3d.nn import SphericalBackground

    labels = ffhq_cameras(4, generator).to_eg3d_labels()  # a dataset batch: [B, 25]
    cameras = Cameras.from_eg3d_labels(labels)
    assert cameras.shape == (4,)  # one batch dimension; renderers want [B, C]
    gaussians = _gaussians(4, generator)
    hint = (
        r"`cameras` must have shape \[B, C\] with B = 4 \(the Gaussians' batch\), got \[4\]; "
        r"for one camera per scene pass `cameras\[:, None\]` \(shape \[4, 1\]\), or "
        r"`Cameras.from_eg3d_labels\(labels\[:, None\]\)` for labels \[B, 25\]"
    )
    with pytest.raises(ValueError, match=hint):
        aware3d.rasterize(gaussians, cameras, 8, 8)
    background = SphericalBackground(8, hidden=8, num_layers=1, num_freqs=2)
    with pytest.raises(ValueError, match=r"got \[4\]; for one camera per scene pass"):
        background.render(cameras, 8, 8, torch.randn(4, 8))
    # both fixes give [B, 1] and the same images
    per_scene = Cameras.from_eg3d_labels(labels[:, None])
    assert per_scene.shape == cameras[:, None].shape == (4, 1)
    first = aware3d.rasterize(gaussians, per_scene, 8, 8)
    second = aware3d.rasterize(gaussians, cameras[:, None], 8, 8)
    assert first.features.shape == (4, 1, 8, 8, 3)
    assert all(float(a.max()) > 0 for a in first.alpha)  # every scene shows something
    torch.testing.assert_close(first.features, second.features, rtol=0, atol=0)


@pytest.mark.usefixtures("without_shape_checker")
def test_other_camera_batches_get_their_own_hint(generator):
    cameras = ffhq_cameras(3, generator)
    one_scene = _gaussians(1, generator)
    with pytest.raises(ValueError, match=r"got \[3\]; for these 3 cameras of the one scene pass "
                                         r"`cameras\[None\]`"):  # fmt: skip
        aware3d.rasterize(one_scene, cameras, 8, 8)
    assert aware3d.rasterize(one_scene, cameras[None], 8, 8).alpha.shape == (1, 3, 8, 8, 1)
    nested = cameras.reshape(1, 3, 1)
    with pytest.raises(ValueError, match=r"got \[1, 3, 1\]; .* `cameras.reshape\(1, -1\)`"):
        aware3d.rasterize(one_scene, nested, 8, 8)
    two_scenes = _gaussians(2, generator)
    with pytest.raises(ValueError, match=r"B = 2 \(the Gaussians' batch\), got \[3\]$"):
        aware3d.rasterize(two_scenes, cameras, 8, 8)  # no reshape fits: no hint


def test_none_adds_a_batch_axis(generator):
    cameras = ffhq_cameras(3, generator)
    assert cameras[:, None].shape == (3, 1) and cameras[None].shape == (1, 3)
    torch.testing.assert_close(cameras[:, None].cam2world[:, 0], cameras.cam2world)
    torch.testing.assert_close(cameras[None].intrinsics[0], cameras.intrinsics)


def test_eg3d_label_layout_is_flat_pose_then_flat_intrinsics():
    pose = look_at(torch.tensor([0.0, 0.0, 2.7]), (0.0, 0.0, 0.0))
    intrinsics = torch.tensor([[FFHQ_FOCAL, 0, 0.5], [0, FFHQ_FOCAL, 0.5], [0, 0, 1]])
    label = torch.cat([pose.flatten(), intrinsics.flatten()])
    cameras = Cameras.from_eg3d_labels(label)
    assert cameras.shape == (1,)
    torch.testing.assert_close(cameras.cam2world[0], pose)
    torch.testing.assert_close(cameras.intrinsics[0], intrinsics)


def test_labels_keep_leading_batch_shape(generator):
    cameras = ffhq_cameras(6, generator).reshape(2, 3)
    labels = cameras.to_eg3d_labels()
    assert labels.shape == (2, 3, 25)
    assert Cameras.from_eg3d_labels(labels).shape == (2, 3)


# ------------------------------------------------------------------ look-at


def test_look_at_gives_orthonormal_opencv_frames_that_look_at_the_target(generator):
    origins = torch.randn(32, 3, generator=generator, dtype=torch.float64) * 3
    targets = torch.randn(32, 3, generator=generator, dtype=torch.float64) * 0.3
    c2w = look_at(origins, targets)
    rotation = c2w[:, :3, :3]
    eye = torch.eye(3, dtype=torch.float64).expand(32, 3, 3)
    torch.testing.assert_close(rotation.transpose(1, 2) @ rotation, eye)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(32, dtype=torch.float64))
    torch.testing.assert_close(c2w[:, :3, 3], origins)
    forward = (targets - origins) / (targets - origins).norm(dim=-1, keepdim=True)
    torch.testing.assert_close(rotation[:, :, 2], forward)  # camera z looks at the target
    # OpenCV: camera x is horizontal (no world-up component) and camera y points down.
    assert rotation[:, 1, 0].abs().max() < 1e-12
    assert (rotation[:, 1, 1] < 0).all()


def test_look_at_frontal_camera_is_the_expected_matrix():
    c2w = look_at(torch.tensor([0.0, 0.0, 2.7]), (0.0, 0.0, 0.0))
    expected = torch.tensor([[1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, -1.0, 2.7], [0, 0, 0, 1.0]])
    torch.testing.assert_close(c2w, expected)


# ------------------------------------------------------------------ EG3D samplers

# The library's samplers against EG3D's formulas, both in float64 (measured: 6e-16 at most).
# Near the clamped pole acos amplifies a rounding of its argument about 300x, so allow 1e-11:
# still far below what a formula slip would cost (pi written as 3.14159 moves poses by ~1e-6).
EG3D_TOL = {"rtol": 0, "atol": 1e-11}


@pytest.mark.parametrize(
    ("h", "v"),
    [(math.pi / 2, math.pi / 2), (0.3, 1.2), (2.5, 2.9), (math.pi / 2, -0.7), (1.0, 4.0)],
)
def test_look_at_sampler_matches_eg3d_formula(h, v):
    lookat = (0.0, 0.0, 0.2)
    got = sample_look_at_poses(h, v, lookat, radius=2.7, dtype=torch.float64)
    expected = torch.from_numpy(eg3d_look_at_pose(h, v, lookat, 2.7))
    torch.testing.assert_close(got[0], expected, **EG3D_TOL)


@pytest.mark.parametrize(("h", "v"), [(math.pi / 2, math.pi / 2), (0.4, 0.9), (2.0, 2.0)])
def test_gaussian_sampler_matches_eg3d_formula(h, v):
    got = sample_gaussian_poses(h, v, radius=1.0, dtype=torch.float64)
    origin = eg3d_origin(h, v, 1.0)
    expected = torch.from_numpy(eg3d_cam2world(-origin, origin))
    torch.testing.assert_close(got[0], expected, **EG3D_TOL)


def test_sampler_draws_horizontal_then_vertical_noise_like_eg3d():
    n, mh, mv, sh, sv = 16, math.pi / 2, math.pi / 2, 0.3, 0.2
    got = sample_look_at_poses(
        mh, mv, (0, 0, 0.2), sh, sv, radius=2.7, n=n,
        generator=torch.Generator().manual_seed(7), dtype=torch.float64,
    )  # fmt: skip
    g = torch.Generator().manual_seed(7)
    h = torch.randn(n, 1, generator=g, dtype=torch.float64) * sh + mh
    v = torch.randn(n, 1, generator=g, dtype=torch.float64) * sv + mv
    expected = np.stack(
        [eg3d_look_at_pose(float(hi), float(vi), (0, 0, 0.2), 2.7) for hi, vi in zip(h, v)]
    )
    torch.testing.assert_close(got, torch.from_numpy(expected), **EG3D_TOL)


def test_sampler_clamps_the_vertical_angle_like_eg3d():
    top = sample_look_at_poses(math.pi / 2, -1.0, (0, 0, 0), radius=2.0, dtype=torch.float64)
    # v clamps to 1e-5: phi = arccos(1 - 2e-5 / pi), so the camera sits just below the +y pole.
    phi = math.acos(1 - 2 * 1e-5 / math.pi)
    assert top[0, 1, 3].item() == pytest.approx(2.0 * math.cos(phi), abs=1e-9)
    assert torch.isfinite(top).all()


def test_samplers_are_reproducible_with_a_generator():
    a = sample_look_at_poses(1.0, 1.5, (0, 0, 0.2), 0.3, 0.2, n=5,
                             generator=torch.Generator().manual_seed(3))  # fmt: skip
    b = sample_look_at_poses(1.0, 1.5, (0, 0, 0.2), 0.3, 0.2, n=5,
                             generator=torch.Generator().manual_seed(3))  # fmt: skip
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_orbit_full_turn_starts_frontal_and_stays_on_the_sphere():
    poses = orbit(8, radius=2.7, lookat=(0, 0, 0.2), dtype=torch.float64)
    assert poses.shape == (8, 4, 4)
    torch.testing.assert_close(
        poses[0], torch.from_numpy(eg3d_look_at_pose(math.pi / 2, math.pi / 2, (0, 0, 0.2), 2.7))
    )
    radii = poses[:, :3, 3].norm(dim=-1)
    torch.testing.assert_close(radii, torch.full((8,), 2.7, dtype=torch.float64))
    # a full turn: the horizontal angles are spread over 2 pi
    angles = torch.atan2(poses[:, 2, 3], poses[:, 0, 3])
    assert torch.unique(torch.round(angles, decimals=4)).numel() == 8


def test_orbit_swing_matches_eg3d_video_path():
    poses = orbit(
        12, horizontal_amplitude=0.35, vertical_amplitude=0.25, vertical=math.pi / 2 - 0.05,
        dtype=torch.float64,
    )  # fmt: skip
    for k in (0, 3, 7):
        t = k / 12
        h = math.pi / 2 + 0.35 * math.sin(2 * math.pi * t)
        v = math.pi / 2 - 0.05 + 0.25 * math.cos(2 * math.pi * t)
        expected = eg3d_look_at_pose(h, v, (0, 0, 0.2), 2.7)
        torch.testing.assert_close(poses[k], torch.from_numpy(expected), **EG3D_TOL)


# ------------------------------------------------------------------ intrinsics


def test_intrinsics_from_fov_uses_the_true_field_of_view():
    k = intrinsics_from_fov(13.37, dtype=torch.float64)
    assert k[0, 0].item() == pytest.approx(1 / (2 * math.tan(math.radians(13.37) / 2)))
    assert k[0, 0].item() == pytest.approx(FFHQ_FOCAL, rel=2e-3)
    assert fov_from_intrinsics(k).item() == pytest.approx(13.37)
    wide = intrinsics_from_fov(60.0, aspect_ratio=2.0, dtype=torch.float64)
    assert wide[1, 1].item() == pytest.approx(2 * wide[0, 0].item())


def test_eg3d_fov_helper_reproduces_eg3d_number():
    # EG3D: focal_length = float(1 / (math.tan(fov_degrees * 3.14159 / 360) * 1.414))
    k = eg3d_fov_to_intrinsics(18.837, dtype=torch.float64)
    expected = 1 / (math.tan(18.837 * 3.14159 / 360) * 1.414)
    assert k[0, 0].item() == pytest.approx(expected, rel=1e-12)
    assert k[0, 0].item() == pytest.approx(FFHQ_FOCAL, rel=1e-3)
    # ... whose true horizontal field of view is ~13.4 degrees, not 18.837
    assert fov_from_intrinsics(k).item() == pytest.approx(13.4, abs=0.05)


# ------------------------------------------------------------------ matrices and rays


def test_viewmats_invert_cam2world(generator):
    cameras = ffhq_cameras(5, generator)
    eye = torch.eye(4).expand(5, 4, 4)
    torch.testing.assert_close(cameras.viewmats() @ cameras.cam2world, eye, atol=1e-5, rtol=0)


def test_Ks_are_pixel_intrinsics():
    cameras = Cameras(torch.eye(4)[None], intrinsics_from_fov(90.0)[None])
    k = cameras.Ks(64, 32)[0]
    torch.testing.assert_close(k, torch.tensor([[32.0, 0, 32], [0, 16.0, 16], [0, 0, 1]]))


def test_ray_through_principal_point_hits_the_look_at_target(generator):
    cameras = ffhq_cameras(4, generator)
    width = height = 33  # odd: the centre pixel's centre is the principal point (0.5, 0.5)
    rays = cameras.pixel_rays(width, height)
    assert rays.origins.shape == rays.directions.shape == (4, height, width, 3)
    centre = rays.directions[:, height // 2, width // 2]
    to_target = torch.tensor([0.0, 0.0, 0.2]) - cameras.centers
    # Compare the unit vectors, not their cosine: a cosine is flat at 1, so a ray half a pixel
    # off (3.5e-3 rad) would move it by only 6e-6. Each vector carries a few float32 eps from its
    # normalisation and the subtraction (~6 eps at most); measured 1 eps over 200 seeds.
    torch.testing.assert_close(
        centre, to_target / to_target.norm(dim=-1, keepdim=True), atol=2e-6, rtol=0
    )


def test_projection_with_Ks_and_viewmats_agrees_with_pixel_rays(generator):
    cameras = ffhq_cameras(3, generator, dtype=torch.float64)
    width, height = 20, 12
    rays = cameras.pixel_rays(width, height)
    torch.testing.assert_close(
        rays.directions.norm(dim=-1), torch.ones(3, height, width, dtype=torch.float64)
    )
    points = rays.origins + 2.5 * rays.directions
    homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
    cam = torch.einsum("cij,chwj->chwi", cameras.viewmats(), homogeneous)[..., :3]
    assert (cam[..., 2] > 0).all()  # in front of the camera: z forward
    pix = torch.einsum("cij,chwj->chwi", cameras.Ks(width, height), cam)
    uv = pix[..., :2] / pix[..., 2:]
    jj, ii = torch.meshgrid(torch.arange(width), torch.arange(height), indexing="xy")
    expected = torch.stack([jj, ii], dim=-1).to(torch.float64) + 0.5
    # float64 poses, so R^T inverts R to ~1e-16 and uv (up to 20 px) is exact to ~1e-14 px
    # (measured 2.4e-14 over 200 seeds). Poses drawn in float32 are orthonormal only to ~2e-7,
    # which moves uv by up to ~5e-6 px: a property of the input, not of the projection.
    torch.testing.assert_close(uv, expected.expand_as(uv), atol=1e-10, rtol=0)


def test_pixel_rays_have_image_x_right_and_y_down():
    cameras = Cameras(look_at(torch.tensor([0.0, 0.0, 2.7]), (0, 0, 0))[None],
                      intrinsics_from_fov(30.0)[None])  # fmt: skip
    dirs = cameras.pixel_rays(8, 8).directions[0]
    # the frontal camera's right is world +x and its image down is world -y
    assert dirs[4, 7, 0] > dirs[4, 0, 0]
    assert dirs[7, 4, 1] < dirs[0, 4, 1]


def test_mirrored_matches_eg3d_flip_yaw(generator):
    cameras = ffhq_cameras(3, generator)
    flipped = cameras.mirrored().cam2world
    # EG3D's flip_yaw negates entries (0,1), (0,2), (1,0), (2,0) and (0,3)
    expected = cameras.cam2world.clone()
    for i, j in ((0, 1), (0, 2), (1, 0), (2, 0), (0, 3)):
        expected[:, i, j] *= -1
    torch.testing.assert_close(flipped, expected)
    # mirroring twice is the identity, and mirrored poses stay valid rigid transforms
    torch.testing.assert_close(cameras.mirrored().mirrored().cam2world, cameras.cam2world)
    Cameras(flipped, cameras.mirrored().intrinsics)


def test_mirrored_camera_sees_the_mirrored_image(generator):
    cameras = ffhq_cameras(2, generator).to(torch.float64)
    rays = cameras.pixel_rays(10, 6).directions
    mirrored = cameras.mirrored().pixel_rays(10, 6).directions
    flip = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(mirrored, (rays * flip).flip(-2))


def test_indexing_to_and_reshape(generator):
    cameras = ffhq_cameras(6, generator).reshape(2, 3)
    assert cameras.shape == (2, 3)
    assert cameras[1].shape == (3,)
    assert cameras[1, 2].shape == (1,)
    assert cameras[:, :2].shape == (2, 2)
    torch.testing.assert_close(cameras[1, 2].cam2world[0], cameras.cam2world[1, 2])
    assert cameras.to(torch.float64).dtype == torch.float64
    assert len(cameras) == 2
    assert cameras.num_cameras == 3
    assert "Cameras(shape=[2, 3]" in repr(cameras)


# ------------------------------------------------------------------ bad input


@pytest.mark.usefixtures("without_shape_checker")
class TestBadInput:
    def valid(self):
        return look_at(torch.tensor([[0.0, 0.0, 2.7]]), (0, 0, 0)), intrinsics_from_fov(20)[None]

    def test_pose_without_camera_axis(self):
        with pytest.raises(
            ValueError, match=r"`cam2world` must have shape \[\*batch, C, 4, 4\], got \[4, 4\]"
        ):
            Cameras(torch.eye(4), intrinsics_from_fov(20))

    def test_wrong_matrix_size(self):
        pose, k = self.valid()
        with pytest.raises(ValueError, match="`intrinsics` must have shape"):
            Cameras(pose, torch.eye(4)[None])

    def test_mismatched_batch_shapes(self):
        pose, k = self.valid()
        with pytest.raises(
            ValueError,
            match=r"`intrinsics` must have shape \[\*batch, C, 3, 3\] = \[2, 3, 3\] "
            r"\(\*batch, C from `cam2world`\), got \[1, 3, 3\]",
        ):
            Cameras(pose.expand(2, 4, 4), k)

    def test_non_finite(self):
        pose, k = self.valid()
        pose = pose.clone()
        pose[0, 0, 3] = float("nan")
        with pytest.raises(ValueError, match="`cam2world` must be finite"):
            Cameras(pose, k)

    def test_rotation_not_orthonormal(self):
        pose, k = self.valid()
        with pytest.raises(ValueError, match="`cam2world` must hold rigid transforms"):
            Cameras(pose * torch.tensor([2.0, 1, 1, 1])[:, None], k)

    def test_reflection_is_not_a_rotation(self):
        pose, k = self.valid()
        with pytest.raises(ValueError, match="determinant"):
            Cameras(pose * torch.tensor([1.0, -1.0, 1.0, 1.0]), k)

    def test_bad_bottom_row(self):
        pose, k = self.valid()
        pose = pose.clone()
        pose[0, 3, 0] = 1.0
        with pytest.raises(ValueError, match="bottom row"):
            Cameras(pose, k)

    def test_non_positive_focal(self):
        pose, k = self.valid()
        with pytest.raises(ValueError, match="`intrinsics` must have positive focal lengths"):
            Cameras(pose, k * torch.tensor([-1.0, 1.0, 1.0])[:, None])

    def test_skewed_intrinsics(self):
        pose, k = self.valid()
        k = k.clone()
        k[0, 0, 1] = 0.1
        with pytest.raises(ValueError, match="no skew"):
            Cameras(pose, k)

    def test_integer_tensor(self):
        pose, k = self.valid()
        with pytest.raises(TypeError, match="`cam2world` must be a floating-point tensor"):
            Cameras(pose.long(), k)

    def test_labels_of_wrong_length(self):
        with pytest.raises(
            ValueError, match=r"`labels` must have shape \[\*batch, 25\] = \[3, 25\], got \[3, 24\]"
        ):
            Cameras.from_eg3d_labels(torch.zeros(3, 24))

    def test_image_size(self):
        pose, k = self.valid()
        with pytest.raises(ValueError, match="`width` must be an integer >= 1"):
            Cameras(pose, k).pixel_rays(0, 4)
        with pytest.raises(ValueError, match="`height` must be an integer >= 1"):
            Cameras(pose, k).Ks(4, -2)

    def test_look_at_degenerate(self):
        with pytest.raises(
            ValueError, match="every target in `targets` must differ from its camera in `origins`"
        ):
            look_at(torch.zeros(1, 3), (0.0, 0.0, 0.0))
        with pytest.raises(ValueError, match="parallel to `up`"):
            look_at(torch.tensor([[0.0, 3.0, 0.0]]), (0.0, 0.0, 0.0))
        with pytest.raises(ValueError, match="`origins` must have shape"):
            look_at(torch.zeros(2, 4), (0.0, 0.0, 0.0))
        with pytest.raises(ValueError, match="`targets` of shape"):
            look_at(torch.ones(2, 3), torch.zeros(3, 3))

    def test_sampler_arguments(self):
        with pytest.raises(ValueError, match="`radius` must be a finite number > 0"):
            sample_look_at_poses(1.0, 1.0, (0, 0, 0), radius=0.0)
        with pytest.raises(ValueError, match="`n` must be an integer >= 1"):
            sample_gaussian_poses(1.0, 1.0, n=0)
        with pytest.raises(ValueError, match="`horizontal_stddev` must be a finite number >= 0"):
            sample_gaussian_poses(1.0, 1.0, horizontal_stddev=-0.1)
        with pytest.raises(ValueError, match="`lookat` must have shape"):
            sample_look_at_poses(1.0, 1.0, (0, 0))

    def test_field_of_view(self):
        with pytest.raises(ValueError, match=r"`fov_degrees` must be in \(0, 180\)"):
            intrinsics_from_fov(0.0)
        with pytest.raises(ValueError, match=r"`fov_degrees` must be in \(0, 180\)"):
            eg3d_fov_to_intrinsics(180.0)
        with pytest.raises(ValueError, match="`aspect_ratio`"):
            intrinsics_from_fov(30.0, aspect_ratio=0.0)


def test_public_names_are_exported():
    for name in aware3d.__all__:
        assert hasattr(aware3d, name), name


def test_pixel_depths_are_the_camera_space_z_of_points_on_the_rays():
    from aware3d import Cameras, intrinsics_from_fov, orbit

    cameras = Cameras(orbit(3)[None], intrinsics_from_fov(13.4).expand(1, 3, 3, 3))
    rays = cameras.pixel_rays(5, 4)
    distances = torch.rand(1, 3, 4, 5, 1) + 2.0
    points = rays.origins + distances * rays.directions
    world2cam = torch.linalg.inv(cameras.cam2world)[:, :, None, None]
    z = (world2cam[..., 2, :3] * points).sum(-1, keepdim=True) + world2cam[..., 2, 3:]
    torch.testing.assert_close(cameras.pixel_depths(distances, rays.directions), z)
