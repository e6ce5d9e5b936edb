"""The ``D`` of a released EG3D, GSGAN or BallGAN pickle, as a :class:`DualDiscriminator`.

So training can continue from a released model: :func:`convert_released_discriminator` reads the
``D`` of a ``torch_utils.persistence`` snapshot with the safe reader
(:func:`~aware3d.models._persistence.read_network_pickle`: nothing of the authors' code is
imported or run), builds a :class:`~aware3d.training.DualDiscriminator` from the constructor
arguments recorded in the file (``_init_args`` / ``_init_kwargs``, nothing entered by hand) and
copies every tensor into it. The released parameter names are kept, so the copy is one to one;
the recorded constant FIR filters (``resample_filter`` buffers, which aware3d keeps as
non-persistent buffers) are checked against the recorded arguments and listed as unmapped, with
the reason, as is any tensor without a counterpart.

Recognised classes (``training/dual_discriminator.py`` of each repository):

* ``DualDiscriminator`` (EG3D; BallGAN's is the same network): ``dual=True``;
* ``SingleDiscriminator`` (EG3D, BallGAN): ``dual=False``;
* ``SingleDiscriminator`` with ``aux_branch_feat`` / ``aux_branch_camera`` (GSGAN, whose
  training script uses it): ``dual=False, conditioned=False, contrastive_dim=64`` (its ``c_dim``
  reaches only the camera-contrastive head).

Arguments without an effect on the function (``num_fp16_res``, ``fp16_channels_last``,
``sr_upsample_factor``) are recorded in the spec's ``"ignored"``; anything aware3d cannot build
(another architecture or activation, an unknown keyword) raises
:class:`~aware3d.models.released.ReleasedModelError` naming the file and the argument, before the
module is allocated.
"""

import inspect
import math
import numbers
import os
from typing import Any

import torch
from torch import Tensor

from aware3d.models._persistence import NetworkPickle, PersistentModule, read_network_pickle
from aware3d.models.released import ReleasedModelError
from aware3d.nn._conv_layers import STYLEGAN2_FIR
from aware3d.training.dual_discriminator import ARCHITECTURES, DualDiscriminator

__all__ = [
    "SPEC_FORMAT",
    "SPEC_VERSION",
    "build_released_discriminator",
    "convert_released_discriminator",
    "discriminator_spec",
]

#: ``spec["format"]`` and ``spec["version"]`` of a converted discriminator's description.
SPEC_FORMAT = "aware3d.released_discriminator"
SPEC_VERSION = 1

#: The positional order shared by every released variant's constructor (later ones differ).
_POSITIONAL = ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base",
               "channel_max", "num_fp16_res", "conv_clamp", "cmap_dim")  # fmt: skip
#: The released constructors' defaults.
_DEFAULTS: dict[str, Any] = dict(
    architecture="resnet", channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256,
    cmap_dim=None, disc_c_noise=0, sr_upsample_factor=1, block_kwargs={}, mapping_kwargs={},
    epilogue_kwargs={},
)  # fmt: skip
_ARGUMENTS = {
    "DualDiscriminator": frozenset(_POSITIONAL) | {"disc_c_noise", "block_kwargs",
                                                   "mapping_kwargs", "epilogue_kwargs"},
    "SingleDiscriminator": frozenset(_POSITIONAL) | {"disc_c_noise", "sr_upsample_factor",
                                                     "block_kwargs", "mapping_kwargs",
                                                     "epilogue_kwargs"},
}  # fmt: skip
_BLOCK_KEYS = frozenset({"activation", "resample_filter", "fp16_channels_last", "freeze_layers"})
_MAPPING_KEYS = frozenset(
    {"num_layers", "embed_features", "layer_features", "activation", "lr_multiplier"}
)
_EPILOGUE_KEYS = frozenset({"mbstd_group_size", "mbstd_num_channels", "activation"})
#: Buffers of the layers that resample with the block's filter (the rest use the default).
_BLOCK_FILTER_LAYERS = ("conv1", "skip", "")


class _Refusal:
    """Raises :class:`ReleasedModelError` naming the file and the argument."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, argument: str, value: Any, expected: str) -> ReleasedModelError:
        return ReleasedModelError(
            f"{self.path}: the discriminator's recorded argument {argument}={value!r} cannot be "
            f"built by aware3d's DualDiscriminator (expected {expected})"
        )


def _int(refuse: _Refusal, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise refuse(name, value, f"an integer >= {minimum}")
    return int(value)


def _number(refuse: _Refusal, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise refuse(name, value, "a finite number >= 0")
    number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise refuse(name, value, "a finite number >= 0")
    return number


def _optional_int(refuse: _Refusal, name: str, value: Any) -> int | None:
    return None if value is None else _int(refuse, name, value, 1)


def _sub_kwargs(refuse: _Refusal, name: str, value: Any, known: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise refuse(name, value, "a dict of keyword arguments")
    unknown = sorted(set(value) - known)
    if unknown:
        raise refuse(f"{name}[{unknown[0]!r}]", value[unknown[0]], f"one of {sorted(known)}")
    return dict(value)


def _activation(refuse: _Refusal, name: str, kwargs: dict[str, Any]) -> None:
    if kwargs.get("activation", "lrelu") != "lrelu":
        raise refuse(f"{name}['activation']", kwargs["activation"], "'lrelu'")


def _recorded_arguments(record: PersistentModule, refuse: _Refusal) -> dict[str, Any]:
    """The constructor's arguments by name: recorded positional and keyword ones, then defaults."""
    allowed = _ARGUMENTS[record.class_name]
    args = tuple(record.init_args)
    if len(args) > len(_POSITIONAL):
        raise refuse(
            f"positional argument #{len(_POSITIONAL) + 1}",
            args[len(_POSITIONAL)],
            f"at most {len(_POSITIONAL)} positional arguments ({', '.join(_POSITIONAL)})",
        )
    named: dict[str, Any] = dict(zip(_POSITIONAL, args, strict=False))
    kwargs = record.init_kwargs if isinstance(record.init_kwargs, dict) else {}
    for key, value in kwargs.items():
        if not isinstance(key, str) or key not in allowed:
            raise refuse(str(key), value, f"one of {sorted(allowed)}")
        if key in named:
            raise refuse(key, value, "each argument once (it was also given by position)")
        named[key] = value
    for key in ("c_dim", "img_resolution", "img_channels"):
        if key not in named:
            raise ReleasedModelError(
                f"{refuse.path}: the discriminator's constructor arguments lack {key!r} "
                "(recorded _init_args/_init_kwargs); it cannot be rebuilt"
            )
    return {**{k: v for k, v in _DEFAULTS.items() if k in allowed}, **named}


def _contrastive_dims(record: PersistentModule, refuse: _Refusal) -> tuple[int, int, int]:
    """GSGAN's branch widths from its recorded tensors: (hidden, embedding, camera input)."""
    params = record.parameters()
    shapes = {}
    for name in ("aux_branch_feat.0.weight", "aux_branch_feat.1.weight",
                 "aux_branch_camera.0.weight", "aux_branch_camera.1.weight"):  # fmt: skip
        tensor = params.get(name)
        if tensor is None or tensor.ndim != 2:
            shape = None if tensor is None else tuple(tensor.shape)
            raise refuse(name, shape, "GSGAN's contrastive branch (two linear layers each)")
        shapes[name] = tuple(tensor.shape)
    hidden, embedding = shapes["aux_branch_feat.0.weight"][0], shapes["aux_branch_feat.1.weight"][0]
    camera = shapes["aux_branch_camera.0.weight"][1]
    return hidden, embedding, camera


def discriminator_spec(record: PersistentModule, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON-ready description of the aware3d module for a recorded ``D``.

    Reads only the recorded constructor arguments (and, for GSGAN's contrastive branch, the
    widths of its recorded weights); allocates nothing.

    Returns:
        ``{"format", "version", "released_class", "variant", "kwargs", "recorded", "ignored"}``:
        ``kwargs`` are :class:`DualDiscriminator`'s constructor arguments, ``recorded`` the
        released constructor's (defaults filled in), ``ignored`` the recorded arguments without
        an effect here, with the reason.

    Raises:
        ReleasedModelError: for an unknown class or an argument aware3d cannot build, naming the
            file and the argument.
    """
    path = str(path)
    refuse = _Refusal(path)
    if record.class_name not in _ARGUMENTS:
        raise ReleasedModelError(
            f"{path}: the discriminator is a {record.class_name!r}, which aware3d cannot convert; "
            f"known: {', '.join(sorted(_ARGUMENTS))} (EG3D, GSGAN, BallGAN)"
        )
    named = _recorded_arguments(record, refuse)
    c_dim = _int(refuse, "c_dim", named["c_dim"], 0)
    resolution = _int(refuse, "img_resolution", named["img_resolution"], 8)
    if resolution & (resolution - 1):
        raise refuse("img_resolution", resolution, "a power of two >= 8")
    image_channels = _int(refuse, "img_channels", named["img_channels"], 1)
    architecture = named["architecture"]
    if architecture not in ARCHITECTURES:
        raise refuse("architecture", architecture, f"one of {ARCHITECTURES}")
    channel_base = _int(refuse, "channel_base", named["channel_base"], 1)
    channel_max = _int(refuse, "channel_max", named["channel_max"], 1)
    if min(channel_base // resolution, channel_max) < 1:
        raise refuse("channel_base", channel_base, f"at least img_resolution ({resolution})")
    _int(refuse, "num_fp16_res", named["num_fp16_res"], 0)
    conv_clamp = named["conv_clamp"]
    conv_clamp = None if conv_clamp is None else _number(refuse, "conv_clamp", conv_clamp)
    cmap_dim = _optional_int(refuse, "cmap_dim", named["cmap_dim"])
    disc_c_noise = _number(refuse, "disc_c_noise", named.get("disc_c_noise", 0))

    block = _sub_kwargs(refuse, "block_kwargs", named["block_kwargs"], _BLOCK_KEYS)
    _activation(refuse, "block_kwargs", block)
    taps = block.get("resample_filter", list(STYLEGAN2_FIR))
    if (
        not isinstance(taps, list | tuple)
        or len(taps) < 2
        or not all(isinstance(t, numbers.Real) and not isinstance(t, bool) for t in taps)
        or not all(math.isfinite(float(t)) for t in taps)
        or sum(float(t) for t in taps) == 0
    ):
        raise refuse("block_kwargs['resample_filter']", taps, "1D filter taps with a sum != 0")
    taps = [float(t) for t in taps]
    freeze_layers = _int(refuse, "block_kwargs['freeze_layers']",
                         block.get("freeze_layers", 0), 0)  # fmt: skip
    mapping = _sub_kwargs(refuse, "mapping_kwargs", named["mapping_kwargs"], _MAPPING_KEYS)
    _activation(refuse, "mapping_kwargs", mapping)
    mapping_layers = _int(refuse, "mapping_kwargs['num_layers']",
                          mapping.get("num_layers", 8), 1)  # fmt: skip
    embed = _optional_int(refuse, "mapping_kwargs['embed_features']",
                          mapping.get("embed_features"))  # fmt: skip
    layer_features = _optional_int(refuse, "mapping_kwargs['layer_features']",
                                   mapping.get("layer_features"))  # fmt: skip
    lr_multiplier = _number(refuse, "mapping_kwargs['lr_multiplier']",
                            mapping.get("lr_multiplier", 0.01))  # fmt: skip
    if lr_multiplier == 0:
        raise refuse("mapping_kwargs['lr_multiplier']", 0, "a number > 0")
    epilogue = _sub_kwargs(refuse, "epilogue_kwargs", named["epilogue_kwargs"], _EPILOGUE_KEYS)
    _activation(refuse, "epilogue_kwargs", epilogue)
    group = epilogue.get("mbstd_group_size", 4)
    group = None if group is None else _int(refuse, "epilogue_kwargs['mbstd_group_size']",
                                            group, 1)  # fmt: skip
    mbstd_channels = _int(refuse, "epilogue_kwargs['mbstd_num_channels']",
                          epilogue.get("mbstd_num_channels", 1), 0)  # fmt: skip
    final = min(channel_base // 4, channel_max)
    if mbstd_channels and final % mbstd_channels:
        raise refuse("epilogue_kwargs['mbstd_num_channels']", mbstd_channels,
                     f"a divisor of the 4x4 channels ({final})")  # fmt: skip

    contrastive = "aux_branch_feat" in record.submodules or "aux_branch_camera" in record.submodules
    if record.class_name == "DualDiscriminator":
        variant, dual, conditioned, contrastive_dim = "eg3d-dual", True, c_dim > 0, None
    elif contrastive:  # GSGAN: c_dim goes to the contrastive camera head, D is unconditional
        hidden, contrastive_dim, camera = _contrastive_dims(record, refuse)
        if hidden != final or camera != c_dim or c_dim == 0:
            raise refuse("c_dim", c_dim, f"GSGAN's contrastive branch widths (recorded: hidden "
                         f"{hidden}, camera input {camera}; 4x4 channels {final})")  # fmt: skip
        variant, dual, conditioned = "gsgan-single-contrastive", False, False
    else:
        variant, dual, conditioned, contrastive_dim = "eg3d-single", False, c_dim > 0, None
    kwargs = dict(
        resolution=resolution, image_channels=image_channels, dual=dual, c_dim=c_dim,
        conditioned=conditioned, channel_base=channel_base, channel_max=channel_max,
        cmap_dim=cmap_dim, conv_clamp=conv_clamp, architecture=architecture,
        mbstd_group_size=group, mbstd_num_channels=mbstd_channels,
        mapping_layers=mapping_layers, mapping_embed_features=embed,
        mapping_layer_features=layer_features, mapping_lr_multiplier=lr_multiplier,
        freeze_layers=freeze_layers, resample_filter=taps, disc_c_noise=disc_c_noise,
        contrastive_dim=contrastive_dim,
    )  # fmt: skip
    ignored = {"num_fp16_res": "fp16 runs only on CUDA in the released code; aware3d runs the "
               "module in its parameters' dtype"}  # fmt: skip
    if "fp16_channels_last" in block:
        ignored["block_kwargs['fp16_channels_last']"] = "a memory format, no effect on values"
    if "sr_upsample_factor" in named:
        ignored["sr_upsample_factor"] = "unused by the released SingleDiscriminator"
    if variant == "gsgan-single-contrastive" and "disc_c_noise" in named:
        ignored["disc_c_noise"] = "GSGAN's D is unconditional (its c_dim is set to 0 inside)"
    recorded = {key: _json_ready(value) for key, value in sorted(named.items())}
    return {
        "format": SPEC_FORMAT,
        "version": SPEC_VERSION,
        "released_class": record.class_name,
        "variant": variant,
        "kwargs": kwargs,
        "recorded": recorded,
        "ignored": ignored,
    }


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return repr(value)


def build_released_discriminator(spec: dict[str, Any]) -> DualDiscriminator:
    """The :class:`DualDiscriminator` (random weights) a conversion's ``spec`` describes.

    Raises:
        ValueError: for a spec of another format or version, or unknown constructor arguments.
    """
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        raise ValueError(f"`spec` must be a dict with format {SPEC_FORMAT!r}")
    if spec.get("version") != SPEC_VERSION:
        raise ValueError(f"`spec['version']` must be {SPEC_VERSION}, got {spec.get('version')!r}")
    kwargs = spec.get("kwargs")
    if not isinstance(kwargs, dict):
        raise ValueError("`spec['kwargs']` must be a dict of DualDiscriminator's arguments")
    known = set(inspect.signature(DualDiscriminator).parameters)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"`spec['kwargs']` has unknown DualDiscriminator arguments {unknown}")
    return DualDiscriminator(**kwargs)


def _filter_2d(taps: list[float]) -> Tensor:
    """The released ``upfirdn2d.setup_filter(taps)``: outer product (< 8 taps), normalised."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.numel() < 8:  # not separable: the 2D filter
        f = torch.outer(f, f)
    return f / f.sum()


def _state(
    record: PersistentModule, module: DualDiscriminator, spec: dict[str, Any], path: str
) -> tuple[dict[str, Tensor], list[str]]:
    expected = module.state_dict()
    block_filter = _filter_2d(spec["kwargs"]["resample_filter"])
    default_filter = _filter_2d(list(STYLEGAN2_FIR))
    recorded = {**record.parameters(), **record.buffers()}
    state: dict[str, Tensor] = {}
    unmapped: list[str] = []
    for name, tensor in recorded.items():
        if name in expected:
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise ReleasedModelError(
                    f"{path}: D's tensor {name!r} has shape {tuple(tensor.shape)}, aware3d's "
                    f"DualDiscriminator expects {tuple(expected[name].shape)} for the recorded "
                    "arguments"
                )
            state[name] = tensor
            continue
        prefix, _, leaf = name.rpartition(".")
        if leaf == "resample_filter":
            parts = prefix.split(".")
            in_block = parts[0].startswith("b") and parts[0] not in ("b4",)
            layer = parts[1] if len(parts) > 1 else ""
            uses_block = in_block and layer in _BLOCK_FILTER_LAYERS
            want = block_filter if uses_block else default_filter
            if tensor.shape != want.shape or not torch.allclose(tensor.float(), want,
                                                                rtol=1e-6, atol=0):  # fmt: skip
                raise ReleasedModelError(
                    f"{path}: D's constant {name!r} is not the FIR filter of the recorded "
                    f"arguments ({spec['kwargs']['resample_filter'] if uses_block else 'default'})"
                )
            note = "" if prefix else " (used only by the released 'classic' resizing mode)"
            unmapped.append(
                f"{name}: the constant FIR filter{note}, checked equal to the recorded "
                "arguments'; aware3d keeps its taps as a non-persistent buffer"
            )
            continue
        unmapped.append(f"{name}: no counterpart in aware3d's DualDiscriminator")
    missing = [name for name in expected if name not in state]
    if missing:
        raise ReleasedModelError(
            f"{path}: D lacks the tensors {missing[:8]} that its recorded arguments imply "
            f"({len(missing)} in all)"
        )
    return state, unmapped


def convert_released_discriminator(
    path_or_snapshot: str | os.PathLike[str] | NetworkPickle,
) -> tuple[DualDiscriminator, dict[str, Any], list[str]]:
    """Converts the ``D`` of a released pickle, so training can continue from it.

    Args:
        path_or_snapshot: a released ``.pkl`` (``network-snapshot-*.pkl`` format) or its
            already-read :class:`~aware3d.models._persistence.NetworkPickle`.

    Returns:
        ``(discriminator, spec, unmapped)``: the :class:`DualDiscriminator` in training mode,
        float32, on the CPU, its parameters trainable (frozen layers' tensors are buffers, as
        released); the JSON-ready ``spec`` that :func:`build_released_discriminator` rebuilds it
        from; ``"name: reason"`` for every recorded tensor not copied into it.

    Raises:
        ReleasedModelError: the file has no ``D``, ``D`` is of an unknown class, or its recorded
            arguments describe a network aware3d cannot build (naming the file and the
            argument; raised before the module is allocated).
        NetworkPickleError: the file is not a readable network pickle (see the safe reader).
    """
    snapshot = (
        path_or_snapshot
        if isinstance(path_or_snapshot, NetworkPickle)
        else read_network_pickle(path_or_snapshot)
    )
    path = str(snapshot.path)
    record = snapshot.D
    if record is None:
        raise ReleasedModelError(f"{path}: the file has no 'D' network")
    spec = discriminator_spec(record, path)
    module = build_released_discriminator(spec)
    state, unmapped = _state(record, module, spec, path)
    with torch.no_grad():
        module.load_state_dict(
            {name: tensor.to(torch.float32) for name, tensor in state.items()}, strict=True
        )
    return module.train(), spec, unmapped
