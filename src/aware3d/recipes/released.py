"""``aware3d convert``: a released GSGAN, EG3D or BallGAN pickle as an aware3d checkpoint folder.

A converted folder holds

* ``converted.json``: the format tag, the source file (name, size, SHA-256), the family, the
  image resolution, and per network the entry it came from (``G_ema``, ``G``, ``D``), the
  JSON description its aware3d module is rebuilt from and the recorded tensors left unused;
* ``generator_ema.safetensors``, ``generator.safetensors`` (when the file has ``G``) and
  ``discriminator.safetensors`` (when it has a ``D`` aware3d can build), the modules'
  ``state_dict`` in float32.

Nothing of the authors' code is imported or executed to write or read it; ``aware3d eval``,
``aware3d render`` and :func:`load_converted` read it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from aware3d._io import check_writable_folder
from aware3d.models._persistence import NetworkPickle, read_network_pickle
from aware3d.models.released import (
    ReleasedModelError,
    build_released_generator,
    convert_released_generator,
)
from aware3d.training.checkpoint import check_module_state, read_json_object, read_safetensors

__all__ = [
    "CONVERTED_FILE",
    "CONVERTED_FORMAT",
    "ConvertedModel",
    "convert_released",
    "is_converted",
    "load_converted",
]

#: The description file of a converted folder.
CONVERTED_FILE = "converted.json"
#: ``converted.json``'s ``format`` value.
CONVERTED_FORMAT = "aware3d-converted-released"
_VERSION = 1
_GENERATOR_FILES = {"generator_ema": "G_ema", "generator": "G"}


@dataclasses.dataclass(frozen=True)
class ConvertedModel:
    """The networks of a converted folder, in eval mode on the requested device.

    Attributes:
        folder: the folder read.
        family: ``"gsgan"``, ``"ballgan"`` or ``"eg3d"``.
        resolution: the image size the released network renders.
        generator_ema: the moving-average generator (``G_ema``), to sample from.
        generator: the trained generator (``G``), or None when not requested or not in the file.
        discriminator: the discriminator (``D``), or None when not requested or not converted.
        info: ``converted.json`` as read.
    """

    folder: Path
    family: str
    resolution: int
    generator_ema: nn.Module
    generator: nn.Module | None
    discriminator: nn.Module | None
    info: dict[str, Any]


def is_converted(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` is a converted released model (holds ``converted.json``)."""
    return (Path(folder) / CONVERTED_FILE).is_file()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _json_ready(value: Any) -> Any:
    """``value`` with anything JSON cannot store written as its ``repr``."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return repr(value)


def _resolution(snapshot: NetworkPickle) -> int:
    for record in (snapshot.G_ema, snapshot.G):
        if record is not None:
            value = record.init_kwargs.get("img_resolution")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    kwargs = snapshot.training_set_kwargs or {}
    value = kwargs.get("resolution")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ReleasedModelError(
        f"{snapshot.path}: no image resolution recorded (the generator's img_resolution or "
        "training_set_kwargs['resolution'])"
    )


def _discriminator_part(snapshot: NetworkPickle) -> tuple[nn.Module | None, dict[str, Any]]:
    if snapshot.D is None:
        return None, {"from": "D", "converted": False, "reason": "the file has no D"}
    from aware3d.training.released_discriminator import convert_released_discriminator

    try:
        module, spec, unmapped = convert_released_discriminator(snapshot)
    except ReleasedModelError as error:
        return None, {"from": "D", "converted": False, "reason": str(error)}
    entry = {"from": "D", "converted": True, "spec": spec, "unmapped": list(unmapped)}
    return module, entry


def convert_released(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    discriminator: bool = True,
) -> dict[str, Any]:
    """Converts a released pickle into the aware3d checkpoint folder ``out``.

    ``G_ema`` must convert; ``G`` is converted when present; ``D`` when present, requested and
    of a configuration aware3d builds (otherwise ``converted.json`` says why it was left out).
    The folder appears whole or not at all (written beside it, then renamed into place).

    Args:
        path: a released ``.pkl`` (``network-snapshot-*.pkl`` format).
        out: the folder to write; must not exist unless ``overwrite``.
        overwrite: replace an existing converted folder at ``out``.
        discriminator: also convert ``D``.

    Returns:
        The content of ``converted.json``.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false (checked before reading).
        ReleasedModelError: the generator cannot be converted (see
            :func:`~aware3d.models.released.convert_released_generator`).
        NetworkPickleError: the file is not a readable network pickle.
        OSError: ``out`` cannot be written.
    """
    source, target = Path(path), Path(out)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} exists; pass overwrite=True (--overwrite) to replace it, or another folder"
        )
    if target.exists() and not is_converted(target):
        raise FileExistsError(
            f"{target} exists and is not a converted model (no {CONVERTED_FILE}); refusing to "
            "replace it"
        )
    check_writable_folder(target.parent if target.parent != Path() else Path("."))
    snapshot = read_network_pickle(source)
    resolution = _resolution(snapshot)
    if snapshot.G_ema is None:
        raise ReleasedModelError(f"{source}: the file has no 'G_ema' network")
    temp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    try:
        networks: dict[str, Any] = {}
        family = None
        for name, entry in _GENERATOR_FILES.items():  # one network in memory at a time
            if getattr(snapshot, entry) is None:
                networks[name] = {"from": entry, "converted": False, "reason": f"no {entry}"}
                continue
            converted = convert_released_generator(snapshot, entry)  # type: ignore[arg-type]
            family = converted.family
            _save_module(converted.generator, temp / f"{name}.safetensors")
            networks[name] = {"from": entry, "converted": True, "spec": converted.spec,
                              "unmapped": converted.unmapped}  # fmt: skip
            del converted
        if discriminator:
            module, networks["discriminator"] = _discriminator_part(snapshot)
            if module is not None:
                _save_module(module, temp / "discriminator.safetensors")
            del module
        else:
            networks["discriminator"] = {"from": "D", "converted": False, "reason": "not requested"}
        info = {
            "format": CONVERTED_FORMAT,
            "version": _VERSION,
            "source": {
                "file": source.name,
                "bytes": source.stat().st_size,
                "sha256": _sha256(source),
            },
            "family": family,
            "resolution": resolution,
            "training_set_kwargs": _json_ready(snapshot.training_set_kwargs),
            "networks": networks,
        }
        (temp / CONVERTED_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            target.rename(old)
        temp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return info


def _save_module(module: nn.Module, path: Path) -> None:
    tensors = {k: v.detach().cpu().float().contiguous() for k, v in module.state_dict().items()}
    save_file(tensors, str(path))


def _read_info(folder: Path) -> dict[str, Any]:
    info = read_json_object(folder / CONVERTED_FILE)
    if info.get("format") != CONVERTED_FORMAT or info.get("version") != _VERSION:
        raise ValueError(
            f"{folder / CONVERTED_FILE}: not a version-{_VERSION} {CONVERTED_FORMAT!r} file "
            f"(format {info.get('format')!r}, version {info.get('version')!r})"
        )
    return info


def _load_module(folder: Path, name: str, module: nn.Module) -> nn.Module:
    path = folder / f"{name}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: {path.name} is missing; convert the file again")
    state = check_module_state(path, name, module, read_safetensors(path))
    module.load_state_dict(state, strict=True)
    return module.eval().requires_grad_(False)


def load_converted(
    folder: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    generator: bool = False,
    discriminator: bool = False,
) -> ConvertedModel:
    """The networks of a folder written by :func:`convert_released` (``aware3d convert``).

    Args:
        folder: the converted folder.
        device: where to put the networks.
        generator: also load ``G`` (to continue training), when converted.
        discriminator: also load ``D`` (to continue training), when converted.

    Raises:
        FileNotFoundError: the folder is not a converted model or misses a file.
        ValueError: a file does not match the description (damaged or edited).
    """
    folder = Path(folder)
    if not is_converted(folder):
        raise FileNotFoundError(f"{folder} is not a converted released model (no {CONVERTED_FILE})")
    info = _read_info(folder)
    networks = info["networks"]
    ema = build_released_generator(networks["generator_ema"]["spec"])
    ema = _load_module(folder, "generator_ema", ema).to(device)
    raw = None
    if generator and networks.get("generator", {}).get("converted"):
        raw = build_released_generator(networks["generator"]["spec"])
        raw = _load_module(folder, "generator", raw).to(device)
    disc = None
    if discriminator and networks.get("discriminator", {}).get("converted"):
        from aware3d.training.released_discriminator import build_released_discriminator

        disc = build_released_discriminator(networks["discriminator"]["spec"])
        disc = _load_module(folder, "discriminator", disc).to(device)
    return ConvertedModel(folder=folder, family=str(info["family"]),
                          resolution=int(info["resolution"]), generator_ema=ema, generator=raw,
                          discriminator=disc, info=info)  # fmt: skip
