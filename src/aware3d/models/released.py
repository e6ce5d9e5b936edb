"""The authors' released generators (GSGAN, EG3D, BallGAN ``.pkl`` files) as aware3d modules.

:func:`load_released` reads a ``torch_utils.persistence`` network pickle with the safe reader
(:func:`~aware3d.models._persistence.read_network_pickle`: nothing of the authors' code is imported
or run), recognises the network's family from its recorded class, builds the aware3d assembly
from the constructor arguments recorded in the file and copies every tensor into it. Tensors that
have no place in the aware3d module are listed in :attr:`ReleasedGenerator.unmapped`, never
dropped silently.

A family converter (``aware3d.models._released_<family>``) provides:

* ``matches(record, family) -> bool``: whether a
  :class:`~aware3d.models._persistence.PersistentModule` is a generator of ``family``;
* ``generator_spec(record, path) -> dict``: the JSON-ready description of the aware3d module to
  build, from the recorded ``init_args`` / ``init_kwargs`` (and recorded constant buffers);
  raises :class:`ReleasedModelError` naming the file and the argument aware3d cannot build; its
  ``"family"`` key names the family;
* ``build_generator(spec) -> nn.Module``: the aware3d module of that description (random
  weights), also used to rebuild a converted checkpoint;
* ``generator_state(record, spec, path) -> (state, unmapped)``: the aware3d ``state_dict`` made
  from the recorded tensors and the names (with reasons) of recorded tensors left unused.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from torch import Tensor, nn

from aware3d.models._persistence import NetworkPickle, PersistentModule, read_network_pickle

__all__ = [
    "FAMILIES",
    "ReleasedGenerator",
    "ReleasedModelError",
    "build_released_generator",
    "convert_released_generator",
    "family_of",
    "load_released",
]

#: The families :func:`load_released` recognises, in the order they are tried.
FAMILIES = ("gsgan", "ballgan", "eg3d")

NetworkName = Literal["G_ema", "G"]

#: StyleGAN2's ``MappingNetwork.__init__`` parameters in order (``training/networks_stylegan2.py``),
#: which every family's mapping network records.
STYLEGAN2_MAPPING_ARGS = (
    "z_dim",
    "c_dim",
    "w_dim",
    "num_ws",
    "num_layers",
    "embed_features",
    "layer_features",
    "activation",
    "lr_multiplier",
    "w_avg_beta",
)
#: StyleGAN2's ``FullyConnectedLayer.__init__`` parameters in order.
STYLEGAN2_FC_ARGS = (
    "in_features",
    "out_features",
    "bias",
    "activation",
    "lr_multiplier",
    "bias_init",
)


class ReleasedModelError(ValueError):
    """A released network aware3d cannot convert; the message names the file and what is missing."""


@dataclasses.dataclass(frozen=True)
class ReleasedGenerator:
    """A converted generator and what the conversion did.

    Attributes:
        generator: the aware3d module, in eval mode, on the CPU, in float32.
        family: ``"gsgan"``, ``"ballgan"`` or ``"eg3d"``.
        spec: the JSON-ready description :func:`build_released_generator` rebuilds it from.
        unmapped: ``"name: reason"`` for every recorded tensor not copied into ``generator``.
        source: the file read.
        network: the entry read (``"G_ema"`` or ``"G"``).
    """

    generator: nn.Module
    family: str
    spec: dict[str, Any]
    unmapped: list[str]
    source: Path
    network: str


def _family_module(family: str) -> ModuleType:
    if family == "gsgan":
        from aware3d.models import _released_gsgan as module
    elif family in ("ballgan", "eg3d"):
        from aware3d.models import _released_triplane as module
    else:
        raise ValueError(f"`family` must be one of {FAMILIES}, got {family!r}")
    return module


def family_of(record: PersistentModule, path: str | os.PathLike[str]) -> str:
    """The family of a recorded generator (by its class and module source).

    Raises:
        ReleasedModelError: for a class no family converter recognises (naming it and the file).
    """
    for family in FAMILIES:
        if _family_module(family).matches(record, family):
            return family
    raise ReleasedModelError(
        f"{path}: the generator is a {record.class_name!r}, which aware3d cannot convert; known: "
        "GSGAN's GSGenerator, EG3D's and BallGAN's TriPlaneGenerator"
    )


def _network(snapshot: NetworkPickle, network: str) -> PersistentModule:
    if network not in ("G_ema", "G"):
        raise ValueError(f"`network` must be 'G_ema' or 'G', got {network!r}")
    record = getattr(snapshot, network)
    if record is None:
        raise ReleasedModelError(f"{snapshot.path}: the file has no {network!r} network")
    return record


def convert_released_generator(
    path: str | os.PathLike[str] | NetworkPickle, network: NetworkName = "G_ema"
) -> ReleasedGenerator:
    """Converts the generator ``network`` of a released pickle, with the conversion's report.

    Args:
        path: a released ``.pkl`` (or its already-read :class:`NetworkPickle`).
        network: ``"G_ema"`` (the moving average, to sample from) or ``"G"``.

    Raises:
        ReleasedModelError: the file lacks the network, the network is of an unknown class, or
            its recorded arguments describe a network aware3d cannot build.
        NetworkPickleError: the file is not a readable network pickle (see the safe reader).
    """
    snapshot = path if isinstance(path, NetworkPickle) else read_network_pickle(path)
    record = _network(snapshot, network)
    family = family_of(record, snapshot.path)
    module = _family_module(family)
    spec = module.generator_spec(record, str(snapshot.path))
    generator = build_released_generator(spec)
    state, unmapped = module.generator_state(record, spec, str(snapshot.path))
    _load_exact(generator, state, str(snapshot.path), network)
    return ReleasedGenerator(
        generator=generator.eval().requires_grad_(False),
        family=family,
        spec=spec,
        unmapped=list(unmapped),
        source=snapshot.path,
        network=network,
    )


def load_released(path: str | os.PathLike[str], network: NetworkName = "G_ema") -> nn.Module:
    """The aware3d generator of a released GSGAN, EG3D or BallGAN pickle.

    Nothing of the authors' code is imported or executed (see
    :func:`~aware3d.models._persistence.read_network_pickle`). The module is built from the
    constructor arguments recorded in the file; every tensor is copied, and recorded tensors that
    have no place in it are listed by :func:`convert_released_generator`.

    Args:
        path: a released ``.pkl`` (``network-snapshot-*.pkl`` format).
        network: ``"G_ema"`` (default) or ``"G"``.

    Returns:
        A :class:`~aware3d.models.GSGANGenerator` (GSGAN) or
        :class:`~aware3d.models.BallGANGenerator` (BallGAN; EG3D without the sphere), in eval
        mode, float32, on the CPU.

    Raises:
        ReleasedModelError: see :func:`convert_released_generator`.
        NetworkPickleError: the file is not a readable network pickle.
    """
    return convert_released_generator(path, network).generator


def build_released_generator(spec: dict[str, Any]) -> nn.Module:
    """The aware3d generator (random weights) a conversion's ``spec`` describes."""
    family = spec.get("family")
    if family not in FAMILIES:
        raise ValueError(f"`spec['family']` must be one of {FAMILIES}, got {family!r}")
    return _family_module(str(family)).build_generator(spec)


def _load_exact(module: nn.Module, state: dict[str, Tensor], path: str, network: str) -> None:
    expected = module.state_dict()
    missing = [name for name in expected if name not in state]
    extra = [name for name in state if name not in expected]
    if missing or extra:
        raise ReleasedModelError(
            f"{path}: converting {network!r} left aware3d tensors without a value {missing[:8]} "
            f"or made unknown ones {extra[:8]}; please report this file"
        )
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ReleasedModelError(
                f"{path}: {network!r} tensor for {name!r} has shape {tuple(tensor.shape)}, "
                f"aware3d's module expects {tuple(expected[name].shape)}"
            )
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
