"""Stateless math: the canonical API. Nothing here imports :mod:`aware3d.nn`."""

from aware3d.functional.compositing import (
    CompositeResult,
    VolumeSamples,
    VolumeWeights,
    composite_splat,
    composite_volume,
    volume_weights,
)
from aware3d.functional.encoding import (
    fourier_feature_dim,
    fourier_features,
    sphere_angle_features,
)
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
    ballgan_density_loss,
    ballgan_regularizer_ramp,
    distortion_loss,
    distortion_loss_packed,
    separation_loss,
    splat_distortion_loss,
)
from aware3d.functional.regularizers import centre_distance_loss, knn_distance_loss
from aware3d.functional.sampling import (
    ray_box_intersection,
    sample_importance_eg3d,
    sample_pdf,
    sample_stratified,
    smooth_weights_eg3d,
)
from aware3d.functional.sphere import ray_sphere_exit, sphere_angles
from aware3d.functional.splat import SplatOutput, rasterize
from aware3d.functional.triplane import sample_triplane
from aware3d.functional.volume import (
    CoarseFineSamples,
    RaySamples,
    midpoint_volume_samples,
    sample_coarse_fine,
)

__all__ = [
    "CoarseFineSamples",
    "CompositeResult",
    "GaussianHierarchy",
    "HierarchyNodes",
    "RaySamples",
    "SplatOutput",
    "VolumeSamples",
    "VolumeWeights",
    "ballgan_density_loss",
    "ballgan_regularizer_ramp",
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
    "midpoint_volume_samples",
    "nodes_to_gaussians",
    "normalize_quaternion",
    "parent_indices",
    "quaternion_to_matrix",
    "rasterize",
    "ray_box_intersection",
    "ray_sphere_exit",
    "sample_coarse_fine",
    "sample_importance_eg3d",
    "sample_pdf",
    "sample_stratified",
    "sample_triplane",
    "separation_loss",
    "smooth_weights_eg3d",
    "sphere_angle_features",
    "sphere_angles",
    "splat_distortion_loss",
    "volume_weights",
]
