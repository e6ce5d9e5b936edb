"""``nn.Module`` wrappers that own parameters and call :mod:`aware3d.functional`."""

from aware3d.nn.background import SphericalBackground
from aware3d.nn.compositing import CompositeRenderer
from aware3d.nn.layers import EqualizedLinear, ModulatedLinear
from aware3d.nn.losses import DistortionLoss, SeparationLoss

__all__ = [
    "CompositeRenderer",
    "DistortionLoss",
    "EqualizedLinear",
    "ModulatedLinear",
    "SeparationLoss",
    "SphericalBackground",
]
