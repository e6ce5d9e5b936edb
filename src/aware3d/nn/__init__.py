"""``nn.Module`` wrappers that own parameters and call :mod:`aware3d.functional`."""

from aware3d.nn.background import SphericalBackground
from aware3d.nn.background_gaussians import GaussianBackground
from aware3d.nn.compositing import CompositeRenderer
from aware3d.nn.decoder import (
    FlatGaussianDecoder,
    HierarchicalGaussianDecoder,
    gsgan_256,
    gsgan_512,
    small_decoder,
)
from aware3d.nn.layers import EqualizedLinear, ModulatedLinear
from aware3d.nn.losses import (
    CentreDistanceLoss,
    DistortionLoss,
    KNNDistanceLoss,
    SeparationLoss,
)
from aware3d.nn.mapping import MappingNetwork, gsgan_mapping

__all__ = [
    "CentreDistanceLoss",
    "CompositeRenderer",
    "DistortionLoss",
    "EqualizedLinear",
    "FlatGaussianDecoder",
    "GaussianBackground",
    "HierarchicalGaussianDecoder",
    "KNNDistanceLoss",
    "MappingNetwork",
    "ModulatedLinear",
    "SeparationLoss",
    "SphericalBackground",
    "gsgan_256",
    "gsgan_512",
    "gsgan_mapping",
    "small_decoder",
]
