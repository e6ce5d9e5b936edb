"""Synthetic scenes: deterministic, rendered with the library, exported to and read back as EG3D."""

import pytest
import torch

from aware3d import Cameras
from aware3d.data import EG3DDataset, SyntheticScenes


@pytest.fixture(scope="module")
def scenes():
    return SyntheticScenes(num_scenes=3, views_per_scene=2, resolution=16, num_gaussians=200)


def test_shapes_masks_and_cameras(scenes):
    assert len(scenes) == 6
    assert scenes.images.shape == (6, 16, 16, 3)
    assert scenes.masks.shape == (6, 16, 16, 1)
    assert scenes.images.min() >= 0
    assert scenes.images.max() <= 1
    # the object covers part of every image, and never all of it
    coverage = (scenes.masks > 0.5).float().mean(dim=(1, 2, 3))
    assert (coverage > 0.05).all()
    assert (coverage < 0.95).all()
    cameras = Cameras.from_eg3d_labels(scenes.labels)
    torch.testing.assert_close(
        cameras.centers.norm(dim=-1), torch.full((6,), 2.7), atol=1e-5, rtol=0
    )
    assert scenes.scene_ids.tolist() == [0, 0, 1, 1, 2, 2]


def test_deterministic_for_a_seed(scenes):
    again = SyntheticScenes(num_scenes=3, views_per_scene=2, resolution=16, num_gaussians=200)
    torch.testing.assert_close(again.images, scenes.images, rtol=0, atol=0)
    other = SyntheticScenes(num_scenes=3, views_per_scene=2, resolution=16, num_gaussians=200,
                            seed=1)  # fmt: skip
    assert not torch.allclose(other.images, scenes.images)


def test_items_use_the_value_range():
    scenes = SyntheticScenes(num_scenes=1, views_per_scene=1, resolution=16, num_gaussians=100,
                             value_range=(-1.0, 1.0))  # fmt: skip
    item = scenes[0]
    torch.testing.assert_close(item.image, scenes.images[0] * 2 - 1)
    assert item.cameras.shape == (1,)


@pytest.mark.parametrize("as_zip", [False, True])
def test_export_round_trip_through_the_eg3d_reader(scenes, tmp_path, as_zip):
    path = scenes.export_eg3d(tmp_path / ("data.zip" if as_zip else "data"), as_zip=as_zip)
    dataset = EG3DDataset(path)
    assert len(dataset) == len(scenes)
    for index in (0, 5):
        item = dataset[index]
        torch.testing.assert_close(item.label, scenes.labels[index], rtol=0, atol=0)
        # PNG quantises to 8 bits
        torch.testing.assert_close(item.image, scenes.images[index], atol=0.5 / 255 + 1e-6, rtol=0)


@pytest.mark.usefixtures("without_shape_checker")
def test_bad_arguments():
    with pytest.raises(ValueError, match="`num_scenes` must be an integer >= 1"):
        SyntheticScenes(num_scenes=0)
    with pytest.raises(ValueError, match="`background_radius` must exceed the camera radius"):
        SyntheticScenes(num_scenes=1, background_radius=2.0)
