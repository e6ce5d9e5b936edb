"""Stateless math: the canonical API. Nothing here imports :mod:`aware3d.nn`."""

from aware3d.functional.compositing import (
    CompositeResult,
    VolumeSamples,
    VolumeWeights,
    composite_splat,
    composite_volume,
    volume_weights,
)
from aware3d.functional.encoding import fourier_feature_dim, fourier_features
from aware3d.functional.hierarchy import (
    GaussianHierarchy,
    HierarchyNodes,
    densify,
    descendant_mask,
    level_sizes,
    nodes_to_gaussians,
    normalize_quaternion,
    parent_indices,
    quaternion_to_matrix,
)
from aware3d.functional.losses import (
    distortion_loss,
    distortion_loss_packed,
    separation_loss,
    splat_distortion_loss,
)
from aware3d.functional.regularizers import centre_distance_loss, knn_distance_loss
from aware3d.functional.sphere import ray_sphere_exit
from aware3d.functional.splat import SplatOutput, rasterize

__all__ = [
    "CompositeResult",
    "GaussianHierarchy",
    "HierarchyNodes",
    "SplatOutput",
    "VolumeSamples",
    "VolumeWeights",
    "centre_distance_loss",
    "composite_splat",
    "composite_volume",
    "densify",
    "descendant_mask",
    "distortion_loss",
    "distortion_loss_packed",
    "fourier_feature_dim",
    "fourier_features",
    "knn_distance_loss",
    "level_sizes",
    "nodes_to_gaussians",
    "normalize_quaternion",
    "parent_indices",
    "quaternion_to_matrix",
    "rasterize",
    "ray_sphere_exit",
    "separation_loss",
    "splat_distortion_loss",
    "volume_weights",
]
