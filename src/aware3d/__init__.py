"""aware3d: building blocks for 3D-aware GANs.

Hierarchical 3D Gaussians (GSGAN) rendered by splatting, and a spherical background with unit
occupancy (BallGAN). Importing ``aware3d`` never loads gsplat's CUDA backend; gsplat is imported
only when CUDA tensors are rendered.
"""

from aware3d._validation import set_value_checks, value_checks, value_checks_enabled
from aware3d.cameras import (
    Cameras,
    Rays,
    eg3d_fov_to_intrinsics,
    fov_from_intrinsics,
    intrinsics_from_fov,
    look_at,
    orbit,
    sample_gaussian_poses,
    sample_look_at_poses,
)
from aware3d.functional import (
    CompositeResult,
    GaussianHierarchy,
    SplatOutput,
    composite_splat,
    composite_volume,
    distortion_loss,
    rasterize,
    ray_sphere_exit,
    separation_loss,
    splat_distortion_loss,
    volume_weights,
)
from aware3d.gaussians import Gaussians
from aware3d.nn import (
    CompositeRenderer,
    DistortionLoss,
    FlatGaussianDecoder,
    GaussianBackground,
    HierarchicalGaussianDecoder,
    MappingNetwork,
    SeparationLoss,
    SphericalBackground,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "Cameras",
    "CompositeRenderer",
    "CompositeResult",
    "DistortionLoss",
    "FlatGaussianDecoder",
    "GaussianBackground",
    "GaussianHierarchy",
    "Gaussians",
    "HierarchicalGaussianDecoder",
    "MappingNetwork",
    "Rays",
    "SeparationLoss",
    "SphericalBackground",
    "SplatOutput",
    "__version__",
    "composite_splat",
    "composite_volume",
    "distortion_loss",
    "eg3d_fov_to_intrinsics",
    "fov_from_intrinsics",
    "intrinsics_from_fov",
    "look_at",
    "orbit",
    "rasterize",
    "ray_sphere_exit",
    "sample_gaussian_poses",
    "sample_look_at_poses",
    "separation_loss",
    "set_value_checks",
    "splat_distortion_loss",
    "value_checks",
    "value_checks_enabled",
    "volume_weights",
]
