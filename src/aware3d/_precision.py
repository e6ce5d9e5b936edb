"""Precision helpers shared by the geometry and rendering code (a leaf module).

The library's rule: networks may run in low precision under ``torch.autocast``; geometry and
rendering do not (they turn autocast off and compute in float32 at least).
"""

import contextlib

import torch

__all__ = ["autocast_enabled", "autocast_off", "geometry_dtype"]


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """A context with ``torch.autocast`` disabled on ``device`` (a no-op where it has none)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def autocast_enabled(device: torch.device) -> bool:
    """Whether ``torch.autocast`` is on for ``device``."""
    return torch.amp.is_autocast_available(device.type) and torch.is_autocast_enabled(device.type)


def geometry_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype geometry is computed in: float32 at least (half precision rounds once)."""
    return torch.promote_types(dtype, torch.float32)
