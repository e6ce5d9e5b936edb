"""Training checkpoints: ``DIR/checkpoints/step-<8 digits>/``, published atomically, last K kept.

A checkpoint folder holds one safetensors file per network and per optimizer
(``generator``, ``generator_ema``, ``discriminator``, ``optimizer_generator``,
``optimizer_discriminator``) and two JSON files: ``config.json`` (what the caller of
:func:`~aware3d.training.fit` stores, a recipe's resolved configuration) and
``state.json`` (step, images seen, every process's RNG states, the data-loader position and the
optimizers' hyper-parameters). No pickle is written or read.

The folder is written complete under a hidden temporary name (``.step-...tmp-<pid>``), each file
synced, and only then renamed to its final name, so a crash or a kill at any moment leaves either
no new checkpoint or a complete one. ``state.json`` lists every file with its size, so a
checkpoint damaged later (a truncated copy, a missing file) is recognised:
:func:`checkpoint_problem` says what is wrong and :func:`find_latest_checkpoint` (what
``--resume auto``, eval and render use) skips such a checkpoint with a message and takes the
newest complete one. After a new checkpoint is published, older ones beyond the newest ``keep``
are deleted; checkpoints of later steps (left by an abandoned future) are never touched.
"""

import base64
import json
import os
import random
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from aware3d.training.checkpoint import check_module_state, read_json_object, read_safetensors

__all__ = [
    "CHECKPOINT_FOLDER",
    "capture_rng",
    "checkpoint_problem",
    "find_latest_checkpoint",
    "list_checkpoints",
    "load_training_checkpoint",
    "read_checkpoint_config",
    "read_checkpoint_state",
    "restore_rng",
    "save_training_checkpoint",
    "step_folder_name",
]

CHECKPOINT_FOLDER = "checkpoints"
STEP_PATTERN = re.compile(r"^step-(\d{8})$")
STATE_FILE = "state.json"
CONFIG_FILE = "config.json"


def step_folder_name(step: int) -> str:
    """``step-<step as 8 digits>``."""
    return f"step-{step:08d}"


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The checkpoint folders of a run, complete or not, oldest first (temporary ones ignored)."""
    folder = Path(run_dir) / CHECKPOINT_FOLDER
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and STEP_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: int(p.name[5:]))


def _safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file (its header and data size), or ``None``."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            prefix = handle.read(8)
            if len(prefix) < 8:
                return f"{path.name} is truncated ({size} bytes)"
            header_size = int.from_bytes(prefix, "little")
            if header_size > size - 8:
                return f"{path.name} is truncated (header of {header_size} bytes, file {size})"
            header = json.loads(handle.read(header_size))
    except (OSError, ValueError) as error:
        return f"{path.name} is unreadable ({error})"
    ends = [e["data_offsets"][1] for k, e in header.items() if k != "__metadata__"]
    if 8 + header_size + max(ends, default=0) != size:
        return f"{path.name} is truncated or padded ({size} bytes, its header describes more)"
    return None


def checkpoint_problem(
    checkpoint: str | os.PathLike[str], *, required: Sequence[str] = ("step",)
) -> str | None:
    """Why a checkpoint folder cannot be resumed from, or ``None`` when it is complete.

    Checks that ``state.json`` and ``config.json`` parse, that the state has the ``required``
    keys (and, where it has RNG states, one per process), and that every file the state lists
    exists with its recorded size (for checkpoints without that list, that every safetensors file
    is whole). Reads no tensor.
    """
    folder = Path(checkpoint)
    try:
        state = read_json_object(_existing(folder / STATE_FILE))
        read_json_object(_existing(folder / CONFIG_FILE))
    except (OSError, ValueError) as error:
        return str(error)
    missing = [key for key in required if key not in state]
    if missing:
        return f"{STATE_FILE} lacks {missing}"
    rng = state.get("rng", [{}])
    if not isinstance(rng, list) or not rng or not all(isinstance(r, dict) for r in rng):
        return f"{STATE_FILE} holds no RNG state per process (got {str(rng)[:60]!r})"
    files = state.get("files")
    if isinstance(files, dict):
        for name, size in files.items():
            path = folder / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != size:
                return f"{name} has {path.stat().st_size} bytes, {size} were written"
        return None
    for path in sorted(folder.glob("*.safetensors")):
        problem = _safetensors_problem(path)
        if problem is not None:
            return problem
    return None


def find_latest_checkpoint(
    run_dir: str | os.PathLike[str], *, required: Sequence[str] = ("step",), report: bool = True
) -> Path | None:
    """The newest complete checkpoint of a run, or ``None``.

    Newer checkpoints that are incomplete or damaged (:func:`checkpoint_problem` with
    ``required``) are skipped, each with a message on ``stderr`` naming it and what is wrong
    (``report=False`` keeps quiet).

    Raises:
        ValueError: when the run has checkpoints but none of them is complete (the message lists
            them).
    """
    found = list_checkpoints(run_dir)
    skipped = []
    for folder in reversed(found):
        problem = checkpoint_problem(folder, required=required)
        if problem is None:
            return folder
        skipped.append(f"{folder}: {problem}")
        if report:
            print(f"skipping {folder}: {problem}", file=sys.stderr, flush=True)
    if skipped:
        listed = "\n  ".join(skipped)
        raise ValueError(
            f"no complete checkpoint in {Path(run_dir) / CHECKPOINT_FOLDER}:\n  {listed}\n"
            "restore a complete copy, or start the run again with --overwrite "
            "(overwrite=True), which moves this one aside"
        )
    return None


# ---------------------------------------------------------------------- RNG states


def _encode_bytes(state: torch.Tensor) -> str:
    return base64.b64encode(state.cpu().numpy().tobytes()).decode("ascii")


def _decode_bytes(text: str) -> torch.Tensor:
    data = bytearray(base64.b64decode(text.encode("ascii")))
    return torch.frombuffer(data, dtype=torch.uint8).clone()


def capture_rng(generators: Mapping[str, torch.Generator]) -> dict[str, Any]:
    """This process's RNG states as JSON-ready data.

    Covers the named ``torch.Generator`` objects, torch's default CPU generator, every CUDA
    device's generator (when CUDA is initialised), Python's ``random`` and NumPy's legacy global
    generator.
    """
    numpy_state = np.random.get_state()  # noqa: NPY002 (the legacy global generator is saved)
    state: dict[str, Any] = {
        "generators": {name: _encode_bytes(g.get_state()) for name, g in generators.items()},
        "torch": _encode_bytes(torch.get_rng_state()),
        "python": json.loads(json.dumps(random.getstate())),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],  # type: ignore[index]
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_encode_bytes(s) for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: Mapping[str, Any], generators: Mapping[str, torch.Generator]) -> None:
    """Restores what :func:`capture_rng` captured (the named generators must match).

    Raises:
        ValueError: if the named generators differ from those captured.
    """
    stored = state["generators"]
    if set(stored) != set(generators):
        raise ValueError(
            f"the checkpoint has RNG streams {sorted(stored)}, this run has {sorted(generators)}"
        )
    for name, generator in generators.items():
        generator.set_state(_decode_bytes(stored[name]))
    torch.set_rng_state(_decode_bytes(state["torch"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            kind,
            np.asarray(keys, dtype=np.uint32),
            pos,
            has_gauss,
            cached,
        )
    )
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = [_decode_bytes(s) for s in state["cuda"]]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


# ---------------------------------------------------------------------- tensors


def _module_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def _optimizer_parts(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state split into tensors (safetensors) and the rest (JSON)."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entry in state_dict["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                scalars.setdefault(str(index), {})[key] = value
    meta = {"param_groups": state_dict["param_groups"], "scalars": scalars}
    return tensors, meta


def _optimizer_state(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, entries in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True).encode("utf-8")


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def save_training_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    config: Mapping[str, Any],
    state: Mapping[str, Any],
    keep: int,
) -> Path:
    """Publishes ``DIR/checkpoints/step-<step>/`` atomically, then keeps the newest ``keep``.

    Args:
        run_dir: the run's output folder.
        step: steps completed.
        modules: name -> network (one safetensors file each).
        optimizers: name -> optimizer (one safetensors file each, hyper-parameters in
            ``state.json``).
        config: the resolved recipe (``config.json``).
        state: step, images seen, RNG states, data position (``state.json``; must be JSON).
        keep: how many of the newest checkpoints to keep (>= 1).

    Returns:
        The published folder.

    Only checkpoints of earlier steps are pruned: the one just written is always kept, and so
    are later ones (a restarted run sets those aside itself).
    """
    if keep < 1:
        raise ValueError(f"`keep` must be >= 1, got {keep}")
    folder = Path(run_dir) / CHECKPOINT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / step_folder_name(step)
    files: dict[str, bytes] = {}
    for name, module in modules.items():
        files[f"{name}.safetensors"] = save_safetensors(_module_tensors(module))
    optimizer_meta = {}
    for name, optimizer in optimizers.items():
        tensors, meta = _optimizer_parts(optimizer)
        files[f"{name}.safetensors"] = save_safetensors(tensors)
        optimizer_meta[name] = meta
    files[CONFIG_FILE] = _json_bytes(dict(config))
    sizes = {name: len(data) for name, data in files.items()}
    files[STATE_FILE] = _json_bytes({**state, "optimizers": optimizer_meta, "files": sizes})
    temp = folder / f".{final.name}.tmp-{os.getpid()}"
    if temp.exists():
        shutil.rmtree(temp)
    temp.mkdir()
    try:
        for name, data in files.items():
            _write_synced(temp / name, data)
        if final.exists():  # the same step written again (e.g. after a resume): replace it
            old = folder / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(temp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temp, final)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
    earlier = [p for p in list_checkpoints(run_dir) if int(p.name[5:]) < step]
    for stale in earlier[: max(len(earlier) - (keep - 1), 0)]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} has no {path.name}: not a training checkpoint")
    return path


def read_checkpoint_config(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The configuration stored in a checkpoint folder (``config.json``: a recipe's)."""
    return read_json_object(_existing(Path(checkpoint) / CONFIG_FILE))


def read_checkpoint_state(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint folder's ``state.json`` (step, images seen, RNG states, data position)."""
    return read_json_object(_existing(Path(checkpoint) / STATE_FILE))


def load_training_checkpoint(
    checkpoint: str | os.PathLike[str],
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
) -> dict[str, Any]:
    """Loads a checkpoint's networks (and optimizers) strictly; returns ``state.json``.

    Every file is read and checked (keys, shapes, dtypes) before any module changes.

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: for unreadable files or weights that do not match a module.
    """
    folder = Path(checkpoint)
    state = read_json_object(_existing(folder / STATE_FILE))
    loaded: dict[str, dict[str, torch.Tensor]] = {}
    for name, module in modules.items():
        path = _existing(folder / f"{name}.safetensors")
        loaded[name] = check_module_state(path, name, module, read_safetensors(path))
    optimizer_states = {}
    for name in optimizers or {}:
        tensors = read_safetensors(_existing(folder / f"{name}.safetensors"))
        optimizer_states[name] = _optimizer_state(tensors, state["optimizers"][name])
    for name, module in modules.items():
        module.load_state_dict(loaded[name])
    for name, optimizer in (optimizers or {}).items():
        optimizer.load_state_dict(optimizer_states[name])
    return state
