"""Datasets: EG3D-format images with camera labels, pose readers, dataset building and checks.

Pose readers (:func:`read_colmap`, :func:`read_transforms`, :func:`read_matrices`,
:func:`read_poses`, :func:`cameras_from_matrices`) turn COLMAP, nerfstudio / instant-ngp /
Blender and plain-matrix poses into :class:`~aware3d.Cameras`; :func:`normalize_scene` moves
them into EG3D's frame; :func:`make_dataset` writes an EG3D dataset and :func:`check_dataset`
checks one.
"""

from aware3d.data.check import DatasetReport, Problem, check_dataset, plot_dataset_report
from aware3d.data.eg3d import EG3DBatch, EG3DDataset, EG3DItem, collate_cameras
from aware3d.data.make import crop_box, crop_intrinsics, make_dataset
from aware3d.data.normalize import SceneTransform, estimate_lookat, normalize_scene
from aware3d.data.poses import (
    PosedImages,
    cameras_from_matrices,
    read_colmap,
    read_matrices,
    read_poses,
    read_transforms,
)
from aware3d.data.synthetic import SyntheticScenes

__all__ = [
    "DatasetReport",
    "EG3DBatch",
    "EG3DDataset",
    "EG3DItem",
    "PosedImages",
    "Problem",
    "SceneTransform",
    "SyntheticScenes",
    "cameras_from_matrices",
    "check_dataset",
    "collate_cameras",
    "crop_box",
    "crop_intrinsics",
    "estimate_lookat",
    "make_dataset",
    "normalize_scene",
    "plot_dataset_report",
    "read_colmap",
    "read_matrices",
    "read_poses",
    "read_transforms",
]
