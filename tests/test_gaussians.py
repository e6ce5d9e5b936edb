"""The Gaussians container: validation, selection, concatenation and the 3DGS PLY layout."""

import numpy as np
import plyfile
import pytest
import torch

from aware3d import Gaussians
from aware3d.gaussians import PLY_REST_COEFFS, SH_C0


def random_gaussians(b=2, n=10, f=3, levels=True, generator=None, dtype=torch.float32):
    g = generator or torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    quats = randn(b, n, 4)
    return Gaussians(
        means=randn(b, n, 3),
        quats=quats / quats.norm(dim=-1, keepdim=True),
        scales=randn(b, n, 3).exp() * 0.1,
        opacities=torch.rand(b, n, generator=g, dtype=dtype),
        features=torch.rand(b, n, f, generator=g, dtype=dtype),
        levels=torch.arange(n) % 3 if levels else None,
    )


def test_properties_and_repr():
    g = random_gaussians(2, 10, 5)
    assert (g.batch_size, g.num_gaussians, g.feature_dim) == (2, 10, 5)
    assert g.dtype == torch.float32 and g.device.type == "cpu"
    assert "Gaussians(B=2, N=10, F=5, levels=[0, 1, 2]" in repr(g)


@pytest.mark.usefixtures("without_shape_checker")
def test_select_refuses_levels_that_are_not_integers():
    with pytest.raises(TypeError, match="`levels` must be an integer or integers"):
        random_gaussians(2, 12).select(levels=[1.0])  # pyright: ignore[reportArgumentType]


def test_select_levels_and_mask():
    g = random_gaussians(2, 12)
    one = g.select(levels=1)
    assert one.num_gaussians == 4 and (one.levels == 1).all()
    torch.testing.assert_close(one.means, g.means[:, g.levels == 1])
    two = g.select(levels=[0, 2])
    assert two.num_gaussians == 8 and set(two.levels.tolist()) == {0, 2}
    mask = torch.zeros(12, dtype=torch.bool)
    mask[[1, 5]] = True
    picked = g.select(mask=mask)
    torch.testing.assert_close(picked.features, g.features[:, [1, 5]])
    none = g.select(mask=torch.zeros(12, dtype=torch.bool))
    assert none.num_gaussians == 0 and none.batch_size == 2
    # like anchors_as_gaussians, a level the Gaussians do not have is an error, not an empty set
    with pytest.raises(ValueError, match=r"levels \[7\] are not among these Gaussians' levels"):
        g.select(levels=7)


def test_scaled_cat_detach_to_and_scene_indexing():
    g = random_gaussians(3, 6)
    torch.testing.assert_close(g.scaled(0.5).scales, g.scales * 0.5)
    both = Gaussians.cat([g, g.select(levels=0)])
    assert both.num_gaussians == 8
    assert both.levels.tolist() == g.levels.tolist() + [0, 0]
    torch.testing.assert_close(both.means[:, :6], g.means)
    assert g.to(torch.float64).means.dtype == torch.float64
    assert g.to(torch.float64).levels.dtype == torch.int64
    leaf = random_gaussians(1, 4)
    leaf.means.requires_grad_(True)
    assert not leaf.detach().means.requires_grad
    assert g[1].batch_size == 1
    torch.testing.assert_close(g[-1].means[0], g.means[2])
    assert g[0:2].batch_size == 2
    with pytest.raises(IndexError):
        g[3]


def test_cat_refuses_a_mix_of_levels_and_no_levels():
    with pytest.raises(ValueError, match="either every part"):
        Gaussians.cat([random_gaussians(levels=True), random_gaussians(levels=False)])
    with pytest.raises(ValueError, match=r"`parts\[1\]` has B = 1"):
        Gaussians.cat([random_gaussians(2), random_gaussians(1)])


# ------------------------------------------------------------------ PLY


def test_without_levels_keeps_the_tensors_and_allows_cat():
    with_levels = random_gaussians(levels=True)
    plain = with_levels.without_levels()
    assert plain.levels is None and with_levels.levels is not None
    assert plain.means is with_levels.means and plain.features is with_levels.features
    both = Gaussians.cat([plain, random_gaussians(levels=False)])
    assert both.num_gaussians == 2 * with_levels.num_gaussians


def test_ply_round_trip_is_exact_to_float32(tmp_path):
    g = random_gaussians(2, 50, 3)
    path = g.save_ply(tmp_path / "scene.ply", scene=1)
    back = Gaussians.load_ply(path)
    assert back.batch_size == 1 and back.num_gaussians == 50
    atol = 1e-6
    torch.testing.assert_close(back.means[0], g.means[1], rtol=0, atol=0)
    torch.testing.assert_close(back.quats[0], g.quats[1], rtol=1e-6, atol=atol)
    torch.testing.assert_close(back.scales[0], g.scales[1], rtol=1e-6, atol=atol)
    torch.testing.assert_close(back.opacities[0], g.opacities[1], rtol=1e-6, atol=atol)
    torch.testing.assert_close(back.features[0], g.features[1], rtol=1e-6, atol=atol)
    assert back.levels.tolist() == g.levels.tolist()


def test_ply_round_trip_keeps_opacity_zero_and_one(tmp_path):
    g = random_gaussians(1, 4, 3, levels=False)
    g = Gaussians(g.means, g.quats, g.scales, torch.tensor([[0.0, 1.0, 0.5, 1e-6]]), g.features)
    back = Gaussians.load_ply(g.save_ply(tmp_path / "o.ply"))
    torch.testing.assert_close(back.opacities, g.opacities, rtol=1e-6, atol=1e-7)
    assert back.levels is None


def test_ply_has_the_3dgs_layout_read_by_plyfile(tmp_path):
    g = random_gaussians(1, 20, 3)
    path = g.save_ply(tmp_path / "scene.ply")
    data = plyfile.PlyData.read(str(path))
    vertex = data["vertex"]
    names = [p.name for p in vertex.properties]
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    expected += [f"f_rest_{i}" for i in range(PLY_REST_COEFFS)]
    expected += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert names == [*expected, "level"]
    assert all(p.val_dtype in ("f4", "float32") for p in vertex.properties)
    assert vertex.count == 20
    # save_ply computes in float64 and rounds once to float32 (half an ulp, 6e-8 relative), so
    # compare with the float64 values to rtol=1e-6 (8 ulps). The same formulas evaluated in
    # float32 instead are off by an ulp of their inputs, which is unbounded relative to a logit
    # near 0 (an opacity near 0.5).
    g64 = g.to(torch.float64)
    rgb = g64.features[0].numpy()
    quats = g64.quats[0] / g64.quats[0].norm(dim=-1, keepdim=True)
    np.testing.assert_allclose(vertex["f_dc_0"], (rgb[:, 0] - 0.5) / SH_C0, rtol=1e-6)
    np.testing.assert_allclose(vertex["opacity"], torch.logit(g64.opacities[0]).numpy(), rtol=1e-6)
    np.testing.assert_allclose(vertex["scale_2"], g64.scales[0, :, 2].log().numpy(), rtol=1e-6)
    np.testing.assert_allclose(vertex["rot_0"], quats[:, 0].numpy(), rtol=1e-6)


def test_ply_non_rgb_features_are_extra_properties(tmp_path):
    g = random_gaussians(1, 8, 5, levels=False)
    path = g.save_ply(tmp_path / "features.ply")
    vertex = plyfile.PlyData.read(str(path))["vertex"]
    names = [p.name for p in vertex.properties]
    assert [n for n in names if n.startswith("feature_")] == [f"feature_{i}" for i in range(5)]
    assert np.all(vertex["f_dc_0"] == 0)  # viewers show mid grey
    back = Gaussians.load_ply(path)
    torch.testing.assert_close(back.features, g.features)


def test_load_ply_reads_a_file_written_by_plyfile(tmp_path):
    n = 6
    fields = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity"]
    fields += [f"scale_{i}" for i in range(3)] + [f"rot_{i}" for i in range(4)]
    table = np.zeros(n, dtype=[(f, "f4") for f in fields])
    table["x"] = np.arange(n)
    table["rot_0"] = 1.0
    table["f_dc_1"] = 1.0
    path = tmp_path / "external.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(table, "vertex")]).write(str(path))
    g = Gaussians.load_ply(path)
    torch.testing.assert_close(g.means[0, :, 0], torch.arange(n, dtype=torch.float32))
    torch.testing.assert_close(g.features[0, :, 1], torch.full((n,), 0.5 + SH_C0))
    torch.testing.assert_close(g.opacities[0], torch.full((n,), 0.5))


def test_load_ply_errors(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"not a ply at all")
    with pytest.raises(ValueError, match="is not a PLY file"):
        Gaussians.load_ply(bad)
    ascii_ply = tmp_path / "ascii.ply"
    ascii_ply.write_bytes(
        b"ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nend_header\n"
    )
    with pytest.raises(ValueError, match="only binary_little_endian"):
        Gaussians.load_ply(ascii_ply)
    table = np.zeros(2, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    partial = tmp_path / "points.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(table, "vertex")]).write(str(partial))
    with pytest.raises(ValueError, match="lacks the 3DGS properties"):
        Gaussians.load_ply(partial)
    truncated = tmp_path / "truncated.ply"
    truncated.write_bytes(partial.read_bytes()[:-4])
    with pytest.raises(ValueError, match="truncated"):
        Gaussians.load_ply(truncated)


# ------------------------------------------------------------------ bad input


@pytest.mark.usefixtures("without_shape_checker")
class TestBadInput:
    def parts(self, b=1, n=4, f=3):
        return {
            "means": torch.zeros(b, n, 3),
            "quats": torch.tensor([1.0, 0, 0, 0]).expand(b, n, 4),
            "scales": torch.ones(b, n, 3),
            "opacities": torch.full((b, n), 0.5),
            "features": torch.zeros(b, n, f),
        }

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("means", torch.zeros(1, 4), r"`means` must have shape \[B, N, 3\], got \[1, 4\]"),
            (
                "quats",
                torch.ones(1, 4, 3),
                r"`quats` must have shape \[B, N, 4\] = \[1, 4, 4\] \(B, N from `means`\), "
                r"got \[1, 4, 3\]",
            ),
            ("scales", torch.ones(2, 4, 3), r"`scales` must have shape \[B, N, 3\] = \[1, 4, 3\]"),
            ("opacities", torch.ones(1, 4, 1), r"`opacities` must have shape \[B, N\] = \[1, 4\]"),
            ("features", torch.ones(1, 5, 3), r"`features` must have shape \[B, N, F\] \(B, N"),
            ("features", torch.ones(1, 4, 0), "at least one channel"),
            ("scales", torch.zeros(1, 4, 3), "`scales` must be positive"),
            ("opacities", torch.full((1, 4), 1.5), r"`opacities` must lie in \[0, 1\]"),
            ("means", torch.full((1, 4, 3), float("inf")), "`means` must be finite"),
            ("quats", torch.zeros(1, 4, 4), "non-zero quaternions"),
            ("features", torch.zeros(1, 4, 3, dtype=torch.float64), "`features` has dtype"),
        ],
    )
    def test_refused(self, name, value, message):
        parts = self.parts()
        parts[name] = value
        with pytest.raises(ValueError, match=message):
            Gaussians(**parts)

    def test_levels(self):
        with pytest.raises(TypeError, match="`levels` must be an integer tensor"):
            Gaussians(**self.parts(), levels=torch.zeros(4))
        with pytest.raises(TypeError, match="`levels` must be an int64 tensor"):
            Gaussians(**self.parts(), levels=torch.zeros(4, dtype=torch.int32))
        with pytest.raises(ValueError, match=r"`levels` must have shape \[N\] = \[4\]"):
            Gaussians(**self.parts(), levels=torch.zeros(5, dtype=torch.int64))
        with pytest.raises(ValueError, match="`levels` must be >= 0"):
            Gaussians(**self.parts(), levels=torch.full((4,), -1))

    def test_select_and_scaled(self):
        g = Gaussians(**self.parts())
        with pytest.raises(ValueError, match="have no `levels`"):
            g.select(levels=0)
        with pytest.raises(ValueError, match="exactly one of"):
            g.select()
        with pytest.raises(ValueError, match=r"`mask` must have shape \[4\]"):
            g.select(mask=torch.ones(3, dtype=torch.bool))
        with pytest.raises(ValueError, match="`factor` must be a finite number > 0"):
            g.scaled(0.0)
        with pytest.raises(IndexError, match="`scene`"):
            g.save_ply("unused.ply", scene=2)


def test_zero_opacity_and_empty_scenes_are_valid():
    parts = TestBadInput().parts(b=2, n=0)
    assert Gaussians(**parts).num_gaussians == 0
    parts = TestBadInput().parts()
    parts["opacities"] = torch.zeros(1, 4)
    Gaussians(**parts)
