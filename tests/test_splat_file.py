"""``Gaussians.save_splat`` / ``load_splat``: the 32-byte ``.splat`` layout of web splat viewers."""

import struct

import numpy as np
import pytest
import torch

from aware3d import Cameras, Gaussians, intrinsics_from_fov, look_at, rasterize


def gaussians(n: int = 50, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(1, n, 3, generator=g) * 0.3,
        quats=torch.randn(1, n, 4, generator=g),
        scales=torch.rand(1, n, 3, generator=g) * 0.05 + 0.01,
        opacities=torch.rand(1, n, generator=g),
        features=torch.rand(1, n, 3, generator=g) * 2 - 1,
    )


def test_bytes_follow_the_layout(tmp_path):
    one = Gaussians(
        means=torch.tensor([[[0.5, -1.0, 2.0]]]),
        quats=torch.tensor([[[2.0, 0.0, 0.0, 0.0]]]),  # normalised to (1, 0, 0, 0)
        scales=torch.tensor([[[0.1, 0.2, 0.3]]]),
        opacities=torch.tensor([[0.5]]),
        features=torch.tensor([[[1.0, 0.0, -1.0]]]),
    )
    data = one.save_splat(tmp_path / "one.splat", value_range=(-1.0, 1.0)).read_bytes()
    assert len(data) == 32
    x, y, z, sx, sy, sz = struct.unpack("<6f", data[:24])
    assert (x, y, z) == (0.5, -1.0, 2.0)
    np.testing.assert_allclose((sx, sy, sz), (0.1, 0.2, 0.3), rtol=1e-7)
    assert list(data[24:28]) == [255, 128, 0, 128]  # rgb (1, 0.5, 0), alpha 0.5 rounds to 128
    assert list(data[28:32]) == [255, 128, 128, 128]  # w = 1 -> 256 clipped to 255


def test_round_trip_within_quantisation(tmp_path):
    original = gaussians()
    path = original.save_splat(tmp_path / "g.splat", value_range=(-1.0, 1.0))
    assert path.stat().st_size == 32 * original.num_gaussians
    loaded = Gaussians.load_splat(path, value_range=(-1.0, 1.0))
    # Records are sorted by decreasing volume * opacity: match them back by position.
    importance = original.scales[0].prod(-1) * original.opacities[0]
    order = torch.argsort(-importance, stable=True)
    torch.testing.assert_close(loaded.means[0], original.means[0, order], rtol=0, atol=0)
    torch.testing.assert_close(loaded.scales[0], original.scales[0, order], rtol=0, atol=0)
    assert (loaded.features[0] - original.features[0, order]).abs().max() <= 1 / 255 + 1e-6
    assert (loaded.opacities[0] - original.opacities[0, order]).abs().max() <= 0.5 / 255 + 1e-6
    unit = torch.nn.functional.normalize(original.quats[0, order], dim=-1)
    decoded = torch.nn.functional.normalize(loaded.quats[0], dim=-1)
    cosine = (unit * decoded).sum(-1).abs()  # q and -q are one rotation
    assert cosine.min() > 1 - 1e-3


def test_renders_of_the_round_trip_agree(tmp_path):
    original = gaussians(n=200, seed=1)
    loaded = Gaussians.load_splat(
        original.save_splat(tmp_path / "g.splat", value_range=(-1.0, 1.0)),
        value_range=(-1.0, 1.0),
    )
    c2w = look_at(torch.tensor([[[0.0, 0.0, 2.5]]]), [0.0, 0.0, 0.0])
    cameras = Cameras(c2w, intrinsics_from_fov(30.0).expand(1, 1, 3, 3).clone())
    a = rasterize(original, cameras, 32, 32)
    b = rasterize(loaded, cameras, 32, 32)
    # Colour bytes (1/255 of the range 2) and rotation bytes move pixels by a few 1e-3.
    assert (a.features - b.features).abs().max() < 0.03
    assert (a.alpha - b.alpha).abs().max() < 0.03


def test_bad_input(tmp_path):
    features = gaussians()
    wide = Gaussians(features.means, features.quats, features.scales, features.opacities,
                     torch.zeros(1, 50, 8))  # fmt: skip
    with pytest.raises(ValueError, match="3 channels, got 8"):
        wide.save_splat(tmp_path / "x.splat")
    with pytest.raises(ValueError, match=r"outside `value_range` \(0, 1\)"):
        features.save_splat(tmp_path / "x.splat")  # features in [-1, 1]
    assert not (tmp_path / "x.splat").exists()
    with pytest.raises(IndexError, match="out of range for B = 1"):
        features.save_splat(tmp_path / "x.splat", scene=1, value_range=(-1.0, 1.0))
    (tmp_path / "odd.splat").write_bytes(b"\0" * 33)
    with pytest.raises(ValueError, match="odd.splat is not a .splat file: its size 33"):
        Gaussians.load_splat(tmp_path / "odd.splat")
    (tmp_path / "empty.splat").write_bytes(b"")
    with pytest.raises(ValueError, match="size 0"):
        Gaussians.load_splat(tmp_path / "empty.splat")
    record = struct.pack("<6f", 0, 0, 0, 0.1, 0.0, 0.1) + bytes([1, 2, 3, 4, 255, 128, 128, 128])
    (tmp_path / "flat.splat").write_bytes(record)
    with pytest.raises(ValueError, match="flat.splat: record 0 has .* non-positive"):
        Gaussians.load_splat(tmp_path / "flat.splat")
    record = struct.pack("<6f", 0, 0, 0, 0.1, 0.1, 0.1) + bytes([1, 2, 3, 4, 128, 128, 128, 128])
    (tmp_path / "zero.splat").write_bytes(record)
    with pytest.raises(ValueError, match="zero.splat: record 0 has a zero quaternion"):
        Gaussians.load_splat(tmp_path / "zero.splat")
