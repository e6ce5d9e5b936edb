"""Checkpoints as safetensors plus a JSON config: no pickle anywhere."""

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_checkpoint(
    directory: str | os.PathLike[str],
    modules: Mapping[str, nn.Module],
    config: Mapping[str, Any],
) -> Path:
    """Writes the modules' state to ``model.safetensors`` and ``config`` to ``config.json``.

    Tensors are stored under ``"<module name>.<state key>"``. ``config`` must be JSON-serialisable
    (hyper-parameters, step, metrics).

    Returns:
        The directory written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for module_name, module in modules.items():
        if "." in module_name:
            raise ValueError(f"module names must not contain '.', got {module_name!r}")
        for key, value in module.state_dict().items():
            tensors[f"{module_name}.{key}"] = value.detach().to("cpu").contiguous().clone()
    save_file(tensors, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps(dict(config), indent=2, sort_keys=True))
    return directory


def load_checkpoint(
    directory: str | os.PathLike[str], modules: Mapping[str, nn.Module]
) -> dict[str, Any]:
    """Loads a checkpoint written by :func:`save_checkpoint` into ``modules`` (strictly).

    Returns:
        The JSON config.

    Raises:
        FileNotFoundError: if the weights or config file is missing.
        ValueError: if a module's keys do not match the stored ones.
    """
    directory = Path(directory)
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} has no {name}")
    tensors = load_file(str(directory / WEIGHTS_FILE))
    for module_name, module in modules.items():
        prefix = module_name + "."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        expected = set(module.state_dict())
        if set(state) != expected:
            missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(
                f"checkpoint does not match module {module_name!r}: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        module.load_state_dict(state)
    return json.loads((directory / CONFIG_FILE).read_text())
