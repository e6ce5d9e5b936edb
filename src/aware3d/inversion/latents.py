"""An inverted latent on disk: the style codes and the camera as one safetensors file.

Tensors: one per style group under its name (``ws``, ``ws_background``: ``[1, num_ws, D]``)
and ``camera`` (the EG3D label ``[1, 25]``); metadata ``space`` (``w`` or ``w+``) and
``format`` (``aware3d-latent``). Written atomically.
"""

import os
from pathlib import Path

from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors
from torch import Tensor

from aware3d._io import atomic_write_bytes
from aware3d.cameras import Cameras

__all__ = ["load_latent", "save_latent"]

LATENT_FORMAT = "aware3d-latent"


def save_latent(
    path: str | os.PathLike[str],
    ws: list[Tensor],
    names: list[str],
    cameras: Cameras,
    *,
    space: str,
) -> Path:
    """Writes the codes ``ws`` (named ``names``) and the first camera's label to ``path``."""
    if len(ws) != len(names):
        raise ValueError(f"`ws` ({len(ws)}) and `names` ({len(names)}) must match")
    tensors = {
        name: code.detach().float().cpu().contiguous() for name, code in zip(names, ws, strict=True)
    }
    tensors["camera"] = cameras.to_eg3d_labels().reshape(-1, 25)[:1].detach().float().cpu()
    data = save_safetensors(tensors, metadata={"format": LATENT_FORMAT, "space": space})
    return atomic_write_bytes(path, data)


def load_latent(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], Cameras]:
    """The codes by group name and the ``Cameras [1, 1]`` of a :func:`save_latent` file."""
    tensors = load_file(str(path))
    if "camera" not in tensors:
        raise ValueError(f"{path}: not an aware3d latent (no `camera` tensor)")
    label = tensors.pop("camera")
    return tensors, Cameras.from_eg3d_labels(label.reshape(1, 1, 25))
