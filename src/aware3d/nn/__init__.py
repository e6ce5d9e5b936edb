"""``nn.Module`` wrappers that own parameters and call :mod:`aware3d.functional`."""

from aware3d.nn.layers import EqualizedLinear, ModulatedLinear

__all__ = ["EqualizedLinear", "ModulatedLinear"]
