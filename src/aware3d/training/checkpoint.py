"""Checkpoints as safetensors plus a JSON config: no pickle anywhere.

Both functions check everything before they change anything: :func:`save_checkpoint` serialises
the config and the tensors in memory and only then writes the two files (each atomically), and
:func:`load_checkpoint` reads and validates both files against every module before it loads a
single tensor into any of them.
"""

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors
from torch import nn

from aware3d._io import atomic_write_files

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def _json_problem(value: object, where: str, active: set[int]) -> str | None:
    """Describes the first value under ``value`` that JSON cannot store, or returns ``None``."""
    if value is None or isinstance(value, str | bool | int | float):
        return None
    if isinstance(value, dict | list | tuple):
        if id(value) in active:
            return f"{where} contains itself"
        active.add(id(value))
        try:
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        return (
                            f"{where} has the key {key!r} of type {type(key).__name__}; "
                            "JSON keys must be strings"
                        )
                    problem = _json_problem(item, f"{where}[{key!r}]", active)
                    if problem:
                        return problem
            else:
                for index, item in enumerate(value):
                    problem = _json_problem(item, f"{where}[{index}]", active)
                    if problem:
                        return problem
        finally:
            active.discard(id(value))
        return None
    hint = " (convert it with float(...) or .tolist())" if hasattr(value, "tolist") else ""
    return f"{where} is a {type(value).__name__}, which JSON cannot store{hint}"


def _config_json(config: Mapping[str, Any]) -> str:
    """Serialises ``config``, naming the first entry JSON cannot store."""
    if not isinstance(config, Mapping):
        raise TypeError(f"`config` must be a mapping, got {type(config).__name__}")
    config = config if isinstance(config, dict) else dict(config)
    problem = _json_problem(config, "`config`", set())
    if problem:
        raise TypeError(problem)
    return json.dumps(config, indent=2, sort_keys=True)


def _state_tensors(modules: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    """The modules' state as ``"<module>.<key>"`` -> contiguous CPU tensor (copied)."""
    tensors: dict[str, torch.Tensor] = {}
    for module_name, module in modules.items():
        if not isinstance(module_name, str) or not module_name or "." in module_name:
            raise ValueError(
                f"module names must be non-empty strings without '.', got {module_name!r}"
            )
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"`modules[{module_name!r}]` must be a torch.nn.Module, got {type(module).__name__}"
            )
        for key, value in module.state_dict().items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(
                    f"module {module_name!r}: state entry {key!r} is a {type(value).__name__}, "
                    "not a tensor; safetensors stores tensors only"
                )
            tensors[f"{module_name}.{key}"] = value.detach().to("cpu").contiguous().clone()
    return tensors


def save_checkpoint(
    directory: str | os.PathLike[str],
    modules: Mapping[str, nn.Module],
    config: Mapping[str, Any],
) -> Path:
    """Writes the modules' state to ``model.safetensors`` and ``config`` to ``config.json``.

    Tensors are stored under ``"<module name>.<state key>"``. ``config`` must be JSON-serialisable
    (hyper-parameters, step, metrics): string keys, and values that are ``None``, booleans,
    numbers, strings, lists, tuples or dicts of those (non-finite floats are written as ``NaN``
    and ``Infinity``, which Python's ``json`` reads back; tuples come back as lists).

    Nothing is written until both files have been serialised in memory, so a bad config or module
    leaves ``directory`` as it was. Each file is then written atomically (to a temporary file,
    then renamed over the old one); the two renames happen one after the other, after both
    temporary files are complete. The files get the usual permissions under the process's umask.

    Args:
        directory: the folder to write (created with its parents if missing).
        modules: name -> module; names must not contain ``'.'``.
        config: the JSON config.

    Returns:
        The directory written.

    Raises:
        ValueError: for a module name that is empty, not a string or contains ``'.'``.
        TypeError: for a value that is not a module, a state entry that is not a tensor, or a
            ``config`` entry JSON cannot store (naming the entry, e.g. ``config['lr']``).
    """
    directory = Path(directory)
    tensors = _state_tensors(modules)
    config_text = _config_json(config)
    weights = save_safetensors(tensors)
    del tensors
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_files(
        {
            directory / WEIGHTS_FILE: weights,
            directory / CONFIG_FILE: config_text.encode("utf-8"),
        }
    )
    return directory


def read_json_object(path: Path) -> dict[str, Any]:
    """A UTF-8 JSON file holding an object, with errors that name the file."""
    raw = path.read_bytes()
    try:
        config = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text: {error}") from None
    except RecursionError:
        raise ValueError(f"{path} is not usable JSON: it nests too deeply") from None
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, with an error naming the file when it is unreadable."""
    try:
        return load_file(str(path))
    except (SafetensorError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from None


def check_module_state(
    path: Path,
    module_name: str,
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    prefix: str = "",
) -> dict[str, torch.Tensor]:
    """``state`` (the module's own keys) checked key by key against the module's state.

    Raises:
        ValueError: naming ``path``, for missing or unexpected keys and for an entry whose shape
            or dtype differs (named as ``prefix + key``).
        TypeError: for a module that is not a ``nn.Module`` or has a non-tensor state entry.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"`modules[{module_name!r}]` must be a torch.nn.Module, got {type(module).__name__}"
        )
    current = module.state_dict()
    if set(state) != set(current):
        missing = sorted(set(current) - set(state))
        unexpected = sorted(set(state) - set(current))
        raise ValueError(
            f"{path} does not match module {module_name!r}: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{' ...' if len(unexpected) > 5 else ''}"
        )
    for key, value in current.items():
        stored = state[key]
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"module {module_name!r}: state entry {key!r} is a {type(value).__name__}, "
                "not a tensor; safetensors checkpoints hold tensors only"
            )
        if stored.shape != value.shape or stored.dtype != value.dtype:
            raise ValueError(
                f"{path}: entry {prefix + key!r} is {stored.dtype} {list(stored.shape)} but "
                f"module {module_name!r} expects {value.dtype} {list(value.shape)}"
            )
    return dict(state)


def _module_state(
    path: Path, module_name: str, module: nn.Module, tensors: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The stored state of ``module_name`` (keys ``"<module>.<key>"`` in ``tensors``), checked."""
    prefix = module_name + "."
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return check_module_state(path, module_name, module, state, prefix)


def load_checkpoint(
    directory: str | os.PathLike[str], modules: Mapping[str, nn.Module]
) -> dict[str, Any]:
    """Loads a checkpoint written by :func:`save_checkpoint` into ``modules`` (strictly).

    Everything is read and checked first: the config must be a JSON object, the weights a valid
    safetensors file, and each module's stored keys, shapes and dtypes must equal the module's
    own. Only then are the tensors loaded, so on any error no module has changed. Modules stored
    in the checkpoint but not passed in ``modules`` are ignored.

    Args:
        directory: the folder :func:`save_checkpoint` wrote.
        modules: name -> module to load into, as passed to :func:`save_checkpoint`.

    Returns:
        The JSON config.

    Raises:
        FileNotFoundError: if the weights or config file is missing.
        ValueError: naming the file, if the config is not a UTF-8 JSON object, the weights file
            is corrupt or truncated, or a module's keys, a shape or a dtype do not match (naming
            the module and the entry).
        TypeError: for a value of ``modules`` that is not a module.
    """
    directory = Path(directory)
    weights_path, config_path = directory / WEIGHTS_FILE, directory / CONFIG_FILE
    for path in (weights_path, config_path):
        if not path.is_file():
            raise FileNotFoundError(f"{directory} has no {path.name}")
    config = read_json_object(config_path)
    tensors = read_safetensors(weights_path)
    states = {
        name: _module_state(weights_path, name, module, tensors) for name, module in modules.items()
    }
    for name, module in modules.items():
        module.load_state_dict(states[name])
    return config
