"""Family converter for EG3D's and BallGAN's released generators (``training.triplane``).

Both papers' generators are a ``TriPlaneGenerator`` of ``training/triplane.py`` (a StyleGAN2
backbone whose image is three feature planes, EG3D's ``OSGDecoder``, an importance renderer and a
``Superresolution*`` network); BallGAN's adds a background network ``BG_Net`` (a ``NeRFBlock``),
its mapping network ``BG_mapping`` and the constructor argument ``BG_kwargs``, which is how the two
are told apart. EG3D's becomes an :class:`~aware3d.models.EG3DGenerator`, BallGAN's a
:class:`~aware3d.models.BallGANGenerator`.

Everything is read from the recorded constructor arguments: the generator's own
(``rendering_kwargs``: sampling, box, super-resolution module, pose conditioning; ``BG_kwargs``)
and those of its persistent submodules (mapping, synthesis network and blocks, super-resolution
blocks, decoder layers, background layers), with the released classes' defaults where an argument
was not passed. The defaults and layouts below are facts of EG3D's and BallGAN's public sources.

Differences kept on purpose (see the "Released models" and super-resolution pages): the released
networks run their super-resolution in fp16 on a GPU (aware3d in the module's dtype, with the
same clamp of 256); EG3D's 2X and 4X super-resolution add into the raw image in place, aware3d
returns the raw image unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from aware3d.models._persistence import ModuleRecord, PersistentModule
from aware3d.models.released import (
    STYLEGAN2_FC_ARGS,
    STYLEGAN2_MAPPING_ARGS,
    ReleasedModelError,
)

__all__ = ["build_generator", "generator_spec", "generator_state", "matches"]

_GENERATOR_CLASS = "TriPlaneGenerator"

#: Positional parameters of the released constructors (for records built with positional args).
_SIGNATURES: dict[str, tuple[str, ...]] = {
    "eg3d": (
        "z_dim",
        "c_dim",
        "w_dim",
        "img_resolution",
        "img_channels",
        "sr_num_fp16_res",
        "mapping_kwargs",
        "rendering_kwargs",
        "sr_kwargs",
    ),
    "ballgan": (
        "z_dim",
        "z_bg_dim",
        "c_dim",
        "w_dim",
        "w_bg_dim",
        "img_resolution",
        "img_channels",
        "sr_num_fp16_res",
        "only_fg",
        "only_bg",
        "mapping_kwargs",
        "rendering_kwargs",
        "BG_kwargs",
        "sr_kwargs",
    ),
    "MappingNetwork": STYLEGAN2_MAPPING_ARGS,
    "SynthesisNetwork": (
        "w_dim",
        "img_resolution",
        "img_channels",
        "channel_base",
        "channel_max",
        "num_fp16_res",
    ),
    "SynthesisBlock": (
        "in_channels",
        "out_channels",
        "w_dim",
        "resolution",
        "img_channels",
        "is_last",
        "architecture",
        "resample_filter",
        "conv_clamp",
        "use_fp16",
        "fp16_channels_last",
        "fused_modconv_default",
    ),
    "FullyConnectedLayer": STYLEGAN2_FC_ARGS,
    "Style2Layer": (
        "in_channels",
        "out_channels",
        "w_dim",
        "activation",
        "resample_filter",
        "magnitude_ema_beta",
    ),
    "ToRGBLayer": ("in_channels", "out_channels", "w_dim", "kernel_size", "conv_clamp"),
    "Superresolution": (
        "channels",
        "img_resolution",
        "sr_num_fp16_res",
        "sr_antialias",
        "num_fp16_res",
        "conv_clamp",
        "channel_base",
        "channel_max",
    ),
}

#: The released super-resolution modules: (input resolution, output resolution, antialiased
#: resize; ``None`` = the ``sr_antialias`` argument).
_SUPERRESOLUTION: dict[str, tuple[int, int, bool | None]] = {
    "SuperresolutionHybrid2X": (64, 128, None),
    "SuperresolutionHybrid4X": (128, 256, None),
    "SuperresolutionHybrid8X": (128, 512, None),
    "SuperresolutionHybrid8XDC": (128, 512, None),
    "SuperresolutionHybridDeepfp32": (128, 256, False),
}

#: ``NeRFBlock``'s class attributes (BallGAN's ``training/Ball.py``), which ``BG_kwargs`` override.
_NERF_DEFAULTS: dict[str, Any] = {
    "input_dim": 2,
    "w_dim": 512,
    "z_dim": 0,
    "rgb_out_dim": 32,
    "hidden_size": 128,
    "n_blocks": 4,
    "magnitude_ema_beta": -1,
    "disable_latents": False,
    "shuffle_factor": 1,
    "activation": "lrelu",
    "use_skip": False,
    "use_viewdirs": False,
    "add_rgb": False,
    "predict_rgb": False,
    "merge_sigma_feat": False,
    "no_sigma": False,
    "R": 3.0,
    "use_normal": False,
    "use_pos": False,
    "n_freq_posenc": 10,
    "downscale_p_by": 1,
    "positional_encoding": "normal",
    "final_sigmoid_act": False,
    "normalized_feat": False,
}

#: Settings of ``NeRFBlock`` aware3d's SphericalBackground reproduces only at their defaults.
_NERF_AT_DEFAULT = (
    "input_dim",
    "z_dim",
    "disable_latents",
    "shuffle_factor",
    "activation",
    "use_skip",
    "use_viewdirs",
    "add_rgb",
    "predict_rgb",
    "merge_sigma_feat",
    "use_normal",
    "use_pos",
    "positional_encoding",
)

#: EG3D's ``generate_planes()``: the tri-plane axes aware3d's ``projection="eg3d"`` reproduces.
_EG3D_PLANE_AXES = (
    ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    ((1, 0, 0), (0, 0, 1), (0, 1, 0)),
    ((0, 0, 1), (1, 0, 0), (0, 1, 0)),
)

_FILTER_REASON = "StyleGAN2's fixed [1, 3, 3, 1] filter (checked equal to aware3d's built-in one)"


def _fail(path: str, what: str, detail: str) -> ReleasedModelError:
    return ReleasedModelError(f"{path}: {what}: {detail}")


def _is_ballgan(record: PersistentModule) -> bool:
    """BallGAN's generator records its background network, its mapping and ``BG_kwargs``."""
    return (
        "BG_Net" in record.submodules
        or "BG_mapping" in record.submodules
        or "BG_kwargs" in record.init_kwargs
    )


def matches(record: PersistentModule, family: str) -> bool:
    """Whether ``record`` is a ``TriPlaneGenerator`` of ``family`` (``"eg3d"`` or ``"ballgan"``)."""
    if record.class_name != _GENERATOR_CLASS:
        return False
    return (
        _is_ballgan(record) if family == "ballgan" else family == "eg3d" and not _is_ballgan(record)
    )


def _arguments(record: ModuleRecord, signature: str, path: str, where: str) -> dict[str, Any]:
    """The record's constructor arguments by name (positional ones named by ``signature``)."""
    if not isinstance(record, PersistentModule):
        raise _fail(path, where, f"expected a persistent module, found {record!r}")
    names = _SIGNATURES[signature]
    if len(record.init_args) > len(names):
        raise _fail(
            path,
            where,
            f"{len(record.init_args)} positional arguments; the released "
            f"{record.class_name} takes at most {len(names)}",
        )
    arguments = dict(zip(names, record.init_args, strict=False))
    arguments.update(record.init_kwargs)
    return arguments


def _submodule(record: ModuleRecord, name: str, path: str) -> ModuleRecord:
    found: ModuleRecord | None = record
    for part in name.split("."):
        found = None if found is None else found.submodules.get(part)
    if found is None:
        raise _fail(path, f"the generator's {name!r}", "missing from the recorded network")
    return found


def _int(value: Any, path: str, what: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(path, what, f"{value!r} is not an integer >= {minimum}")
    return value


def _number(value: Any, path: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(path, what, f"{value!r} is not a finite number")
    return float(value)


def _require(value: Any, allowed: Sequence[Any], path: str, what: str) -> None:
    if value not in allowed:
        raise _fail(
            path,
            what,
            f"{value!r} is not supported by aware3d (supported: {', '.join(map(repr, allowed))})",
        )


def _conv_clamp(value: Any, path: str, what: str) -> float | None:
    return None if value is None else _number(value, path, what)


# ---------------------------------------------------------------------------- spec


def _mapping_spec(record: ModuleRecord, path: str, where: str) -> dict[str, Any]:
    args = _arguments(record, "MappingNetwork", path, where)
    z_dim = _int(args.get("z_dim"), path, f"{where} z_dim")
    c_dim = _int(args.get("c_dim"), path, f"{where} c_dim", minimum=0)
    w_dim = _int(args.get("w_dim"), path, f"{where} w_dim")
    num_ws = _int(args.get("num_ws", 5), path, f"{where} num_ws")
    num_layers = _int(args.get("num_layers", 8), path, f"{where} num_layers")
    _require(args.get("activation", "lrelu"), ("lrelu",), path, f"{where} activation")
    if args.get("embed_features") not in (None, w_dim) and c_dim > 0:
        raise _fail(path, f"{where} embed_features", f"{args['embed_features']!r} != w_dim")
    hidden = args.get("layer_features")
    return {
        "z_dim": z_dim,
        "c_dim": c_dim,
        "w_dim": w_dim,
        "num_ws": num_ws,
        "num_layers": num_layers,
        "hidden_dim": w_dim if hidden is None else _int(hidden, path, f"{where} layer_features"),
        "lr_multiplier": _number(args.get("lr_multiplier", 0.01), path, f"{where} lr_multiplier"),
        "w_avg_beta": _number(args.get("w_avg_beta", 0.998), path, f"{where} w_avg_beta"),
    }


def _block_spec(record: ModuleRecord, path: str, where: str) -> tuple[str, dict[str, Any]]:
    """A released synthesis block's class and arguments, refusing what aware3d cannot build."""
    assert isinstance(record, PersistentModule)
    args = _arguments(record, "SynthesisBlock", path, where)
    _require(record.class_name, ("SynthesisBlock", "SynthesisBlockNoUp"), path, f"{where} class")
    _require(args.get("architecture", "skip"), ("skip",), path, f"{where} architecture")
    taps = args.get("resample_filter", [1, 3, 3, 1])
    _require(
        list(taps) if isinstance(taps, list | tuple) else taps,
        ([1, 3, 3, 1],),
        path,
        f"{where} resample_filter",
    )
    for key in ("kernel_size", "activation", "use_noise"):
        default = {"kernel_size": 3, "activation": "lrelu", "use_noise": True}[key]
        _require(args.get(key, default), (default,), path, f"{where} {key}")
    known = {*_SIGNATURES["SynthesisBlock"], "kernel_size", "activation", "use_noise"}
    unknown = sorted(set(args) - known)
    if unknown:
        raise _fail(
            path,
            f"{where} {unknown[0]}",
            f"{args[unknown[0]]!r}: an argument aware3d does not know",
        )
    return record.class_name, {
        "conv_clamp": _conv_clamp(args.get("conv_clamp", 256), path, f"{where} conv_clamp"),
        "in_channels": args.get("in_channels"),
        "out_channels": args.get("out_channels"),
        "resolution": args.get("resolution"),
        "w_dim": args.get("w_dim"),
    }


def _triplane_spec(record: PersistentModule, path: str) -> dict[str, Any]:
    synthesis = _submodule(record, "backbone.synthesis", path)
    args = _arguments(synthesis, "SynthesisNetwork", path, "backbone.synthesis")
    resolution = _int(args.get("img_resolution"), path, "backbone img_resolution", minimum=4)
    if resolution & (resolution - 1):
        raise _fail(path, "backbone img_resolution", f"{resolution} is not a power of two")
    channels = _int(args.get("img_channels"), path, "backbone img_channels")
    _require(channels, (96,), path, "backbone img_channels (3 planes of 32 channels)")
    clamps = set()
    for res in (2**i for i in range(2, resolution.bit_length())):
        name = f"backbone.synthesis.b{res}"
        _, block = _block_spec(_submodule(record, name, path), path, name)
        clamps.add(block["conv_clamp"])
    if len(clamps) > 1:
        raise _fail(
            path, "backbone conv_clamp", f"differs between blocks: {sorted(map(str, clamps))}"
        )
    return {
        "w_dim": _int(args.get("w_dim"), path, "backbone w_dim"),
        "resolution": resolution,
        "plane_channels": channels // 3,
        "channel_base": _int(args.get("channel_base", 32768), path, "backbone channel_base"),
        "channel_max": _int(args.get("channel_max", 512), path, "backbone channel_max"),
        "conv_clamp": clamps.pop(),
    }


def _linear_layer(record: PersistentModule, name: str, path: str) -> dict[str, Any]:
    args = _arguments(_submodule(record, name, path), "FullyConnectedLayer", path, name)
    _require(args.get("bias", True), (True,), path, f"{name} bias")
    return {
        "in_features": _int(args.get("in_features"), path, f"{name} in_features"),
        "out_features": _int(args.get("out_features"), path, f"{name} out_features"),
        "lr_multiplier": _number(args.get("lr_multiplier", 1), path, f"{name} lr_multiplier"),
        "activation": args.get("activation", "linear"),
    }


def _decoder_spec(record: PersistentModule, family: str, path: str) -> dict[str, Any]:
    hidden = _linear_layer(record, "decoder.net.0", path)
    _require(hidden["activation"], ("linear",), path, "decoder.net.0 activation")
    if family == "ballgan":
        features = _linear_layer(record, "decoder.rgb_out", path)
        density = _linear_layer(record, "decoder.sigma_out", path)
        _require(density["activation"], ("linear",), path, "rendering_kwargs['sigma_act']")
        _require(density["out_features"], (1,), path, "decoder.sigma_out out_features")
        _require(features["activation"], ("linear",), path, "decoder.rgb_out activation")
        out_features = features["out_features"]
        layers = (features, density)
    else:
        output = _linear_layer(record, "decoder.net.2", path)
        _require(output["activation"], ("linear",), path, "decoder.net.2 activation")
        out_features = output["out_features"] - 1
        layers = (output,)
    rates = {hidden["lr_multiplier"], *(layer["lr_multiplier"] for layer in layers)}
    if len(rates) > 1:
        raise _fail(path, "decoder lr_multiplier", f"differs between layers: {sorted(rates)}")
    if out_features < 3:
        raise _fail(path, "decoder output", f"{out_features} features, fewer than RGB")
    return {
        "in_features": hidden["in_features"],
        "hidden": hidden["out_features"],
        "out_features": out_features,
        "lr_multiplier": rates.pop(),
        "zero_init_density": family == "ballgan",
    }


def _renderer_spec(rendering: dict[str, Any], path: str) -> dict[str, Any]:
    def get(key: str) -> Any:
        if key not in rendering:
            raise _fail(path, f"rendering_kwargs[{key!r}]", "missing")
        return rendering[key]

    _require(
        rendering.get("clamp_mode", "softplus"),
        ("softplus",),
        path,
        "rendering_kwargs['clamp_mode']",
    )
    if rendering.get("white_back", False):
        raise _fail(
            path,
            "rendering_kwargs['white_back']",
            "True (a white background) is not supported by aware3d's renderer",
        )
    if _number(rendering.get("density_noise", 0), path, "rendering_kwargs['density_noise']") > 0:
        raise _fail(
            path,
            "rendering_kwargs['density_noise']",
            f"{rendering['density_noise']!r}: noisy densities are not supported",
        )
    start, end = get("ray_start"), get("ray_end")
    if start == "auto" and end == "auto":
        ray_start = ray_end = None
    else:
        ray_start = _number(start, path, "rendering_kwargs['ray_start']")
        ray_end = _number(end, path, "rendering_kwargs['ray_end']")
        if not 0 < ray_start < ray_end:
            raise _fail(
                path,
                "rendering_kwargs['ray_start'/'ray_end']",
                f"{start!r}, {end!r} is not a range 0 < start < end",
            )
    coarse = _int(get("depth_resolution"), path, "rendering_kwargs['depth_resolution']", minimum=4)
    fine = _int(
        get("depth_resolution_importance"), path, "rendering_kwargs['depth_resolution_importance']"
    )
    return {
        "box_size": _number(get("box_warp"), path, "rendering_kwargs['box_warp']"),
        "ray_start": ray_start,
        "ray_end": ray_end,
        "num_coarse": coarse,
        "num_fine": fine,
        "space": "disparity" if rendering.get("disparity_space_sampling", False) else "linear",
    }


def _superresolution_spec(
    record: PersistentModule, rendering: dict[str, Any], w_dim: int, path: str
) -> dict[str, Any]:
    module = rendering.get("superresolution_module")
    sr = _submodule(record, "superresolution", path)
    assert isinstance(sr, PersistentModule)
    if sr.class_name not in _SUPERRESOLUTION or not (
        isinstance(module, str) and module.rsplit(".", 1)[-1] == sr.class_name
    ):
        raise _fail(
            path,
            "rendering_kwargs['superresolution_module']",
            f"{module!r} (a {sr.class_name}); aware3d builds {', '.join(_SUPERRESOLUTION)}",
        )
    args = _arguments(sr, "Superresolution", path, "superresolution")
    input_resolution, output_resolution, antialias = _SUPERRESOLUTION[sr.class_name]
    _require(
        args.get("img_resolution"),
        (output_resolution,),
        path,
        f"superresolution img_resolution ({sr.class_name})",
    )
    extra = sorted(set(args) - set(_SIGNATURES["Superresolution"]) - {"fused_modconv_default"})
    if extra:
        raise _fail(path, f"sr_kwargs[{extra[0]!r}]", f"{args[extra[0]]!r}: not supported")
    if antialias is None:
        antialias = args.get("sr_antialias", rendering.get("sr_antialias", True))
        _require(antialias, (True, False), path, "rendering_kwargs['sr_antialias']")
    channels, clamps, previous = [], set(), _int(args.get("channels"), path, "sr channels")
    upsampling = (output_resolution // input_resolution).bit_length() - 1
    for i in range(2):
        name = f"superresolution.block{i}"
        kind, block = _block_spec(_submodule(record, name, path), path, name)
        if kind != ("SynthesisBlock" if i >= 2 - upsampling else "SynthesisBlockNoUp"):
            raise _fail(path, f"{name} class", f"{kind} where {sr.class_name} has another")
        if block["in_channels"] != previous or block["w_dim"] != w_dim:
            raise _fail(
                path,
                f"{name} in_channels/w_dim",
                f"{block['in_channels']}/{block['w_dim']}, expected {previous}/{w_dim}",
            )
        previous = _int(block["out_channels"], path, f"{name} out_channels")
        channels.append(previous)
        clamps.add(block["conv_clamp"])
    if len(clamps) > 1:
        raise _fail(path, "superresolution conv_clamp", f"differs between blocks: {clamps}")
    noise = rendering.get("superresolution_noise_mode", "none")
    _require(
        noise, ("none", "random", "const"), path, "rendering_kwargs['superresolution_noise_mode']"
    )
    return {
        "module": sr.class_name,
        "in_channels": _int(args.get("channels"), path, "superresolution channels"),
        "input_resolution": input_resolution,
        "output_resolution": output_resolution,
        "block_channels": channels,
        "antialias": bool(antialias),
        "conv_clamp": clamps.pop(),
        "noise_mode": noise,
    }


def _background_spec(record: PersistentModule, args: dict[str, Any], path: str) -> dict[str, Any]:
    bg_kwargs = args.get("BG_kwargs")
    if not isinstance(bg_kwargs, dict):
        raise _fail(path, "BG_kwargs", "missing from the recorded arguments")
    _require(bg_kwargs.get("bg_ver"), ("ver1",), path, "BG_kwargs['bg_ver']")
    net = _submodule(record, "BG_Net", path)
    assert isinstance(net, PersistentModule)
    _require(net.class_name, ("NeRFBlock",), path, "BG_Net class")
    nerf = dict(_NERF_DEFAULTS)
    given = net.init_args[0] if net.init_args else net.init_kwargs.get("nerf_kwargs", {})
    if not isinstance(given, dict):
        raise _fail(path, "BG_Net nerf_kwargs", f"{given!r} is not a dict")
    nerf.update({k: v for k, v in given.items() if k in _NERF_DEFAULTS})
    for key in _NERF_AT_DEFAULT:
        _require(nerf[key], (_NERF_DEFAULTS[key],), path, f"BG_kwargs[{key!r}]")
    if _number(nerf["magnitude_ema_beta"], path, "BG_kwargs['magnitude_ema_beta']") > 0:
        raise _fail(path, "BG_kwargs['magnitude_ema_beta']", "magnitude EMA is not supported")
    scale = _number(nerf["downscale_p_by"], path, "BG_kwargs['downscale_p_by']")
    if not math.isclose(scale, 2 * math.pi, rel_tol=1e-12):
        raise _fail(
            path,
            "BG_kwargs['downscale_p_by']",
            f"{scale!r}; aware3d's angles encoding divides by 2 pi",
        )
    mapping = _mapping_spec(_submodule(record, "BG_mapping", path), path, "BG_mapping")
    w_dim = _int(nerf["w_dim"], path, "BG_kwargs['w_dim']")
    if mapping["c_dim"] != 0 or mapping["w_dim"] != w_dim:
        raise _fail(
            path,
            "BG_mapping",
            f"c_dim {mapping['c_dim']}, w_dim {mapping['w_dim']}; "
            f"expected 0 and the background's {w_dim}",
        )
    blocks = _int(nerf["n_blocks"], path, "BG_kwargs['n_blocks']")
    if mapping["num_ws"] != blocks + 1:
        raise _fail(path, "BG_mapping num_ws", f"{mapping['num_ws']}, expected n_blocks + 1")
    return {
        "mapping": mapping,
        "w_dim": w_dim,
        "feature_dim": _int(nerf["rgb_out_dim"], path, "BG_kwargs['rgb_out_dim']"),
        "radius": _number(nerf["R"], path, "BG_kwargs['R']"),
        "hidden": _int(nerf["hidden_size"], path, "BG_kwargs['hidden_size']"),
        "num_layers": blocks,
        "num_freqs": _int(nerf["n_freq_posenc"], path, "BG_kwargs['n_freq_posenc']"),
    }


def _check_plane_axes(record: PersistentModule, path: str) -> None:
    renderer = record.submodules.get("renderer")
    axes = None if renderer is None else renderer.attributes.get("plane_axes")
    if isinstance(axes, Tensor) and not torch.equal(
        axes.double(), torch.tensor(_EG3D_PLANE_AXES, dtype=torch.float64)
    ):
        raise _fail(path, "renderer.plane_axes", "not EG3D's generate_planes() axes")


def generator_spec(record: PersistentModule, path: str) -> dict[str, Any]:
    """The JSON-ready description of the aware3d generator of a recorded ``TriPlaneGenerator``.

    Raises:
        ReleasedModelError: naming the file and the argument aware3d cannot build (an unknown
            super-resolution module, a white background, BallGAN's ``ver0`` background, ...).
    """
    family = "ballgan" if _is_ballgan(record) else "eg3d"
    args = _arguments(record, family, path, _GENERATOR_CLASS)
    _require(args.get("img_channels"), (3,), path, "img_channels")
    rendering = args.get("rendering_kwargs")
    if not isinstance(rendering, dict):
        raise _fail(path, "rendering_kwargs", "missing from the recorded arguments")
    mapping = _mapping_spec(_submodule(record, "backbone.mapping", path), path, "backbone.mapping")
    _require(mapping["c_dim"], (0, 25), path, "c_dim (EG3D's 25-number camera label, or 0)")
    triplane = _triplane_spec(record, path)
    if triplane["w_dim"] != mapping["w_dim"]:
        raise _fail(path, "w_dim", f"mapping {mapping['w_dim']} != synthesis {triplane['w_dim']}")
    decoder = _decoder_spec(record, family, path)
    if decoder["in_features"] != triplane["plane_channels"]:
        raise _fail(path, "decoder in_features", f"{decoder['in_features']} != plane channels")
    _check_plane_axes(record, path)
    neural = record.attributes.get("neural_rendering_resolution", 64)
    if rendering.get("c_gen_conditioning_zero", False):
        label_scale = 0.0
    else:
        label_scale = _number(rendering.get("c_scale", 0), path, "rendering_kwargs['c_scale']")
    spec: dict[str, Any] = {
        "family": family,
        "mapping": mapping,
        "triplane": triplane,
        "decoder": decoder,
        "renderer": _renderer_spec(rendering, path),
        "superresolution": _superresolution_spec(record, rendering, mapping["w_dim"], path),
        "neural_resolution": _int(neural, path, "neural_rendering_resolution"),
        "label_scale": label_scale,
        "background": _background_spec(record, args, path) if family == "ballgan" else None,
    }
    if spec["superresolution"]["in_channels"] != decoder["out_features"]:
        raise _fail(path, "superresolution channels", "differ from the decoder's features")
    background = spec["background"]
    if background is not None and background["feature_dim"] != decoder["out_features"]:
        raise _fail(path, "BG_kwargs['rgb_out_dim']", "differs from the decoder's features")
    return spec


# ---------------------------------------------------------------------------- build


def build_generator(spec: dict[str, Any]) -> nn.Module:
    """The aware3d generator (random weights) of a spec made by :func:`generator_spec`."""
    from aware3d.models.ballgan import BallGANGenerator
    from aware3d.models.eg3d import EG3DGenerator
    from aware3d.nn.background import SphericalBackground
    from aware3d.nn.mapping import MappingNetwork
    from aware3d.nn.superresolution import SuperResolution
    from aware3d.nn.triplane import TriplaneDecoder, TriplaneGenerator
    from aware3d.nn.volume_renderer import TriplaneRenderer

    def mapping_network(m: dict[str, Any]) -> MappingNetwork:
        return MappingNetwork(
            m["z_dim"],
            m["w_dim"],
            m["num_ws"],
            c_dim=m["c_dim"],
            num_layers=m["num_layers"],
            hidden_dim=m["hidden_dim"],
            lr_multiplier=m["lr_multiplier"],
            w_avg_beta=m["w_avg_beta"],
        )

    t, d, r, s = spec["triplane"], spec["decoder"], spec["renderer"], spec["superresolution"]
    triplane = TriplaneGenerator(
        t["w_dim"],
        t["resolution"],
        t["plane_channels"],
        channel_base=t["channel_base"],
        channel_max=t["channel_max"],
        conv_clamp=t["conv_clamp"],
    )
    decoder = TriplaneDecoder(
        d["in_features"],
        d["out_features"],
        d["hidden"],
        lr_multiplier=d["lr_multiplier"],
        zero_init_density=d["zero_init_density"],
    )
    b = spec.get("background")
    background = None
    if b is not None:
        background = SphericalBackground(
            b["w_dim"],
            feature_dim=b["feature_dim"],
            radius=b["radius"],
            hidden=b["hidden"],
            num_layers=b["num_layers"],
            num_freqs=b["num_freqs"],
            encoding="angles",
            output_activation="sigmoid",
            demodulation_eps="raw",
        )
    renderer = TriplaneRenderer(
        decoder,
        background,
        box_size=r["box_size"],
        ray_start=r["ray_start"],
        ray_end=r["ray_end"],
        num_coarse=r["num_coarse"],
        num_fine=r["num_fine"],
        projection="eg3d",
        space=r["space"],
    )
    superresolution = SuperResolution(
        s["in_channels"],
        s["input_resolution"],
        s["output_resolution"],
        t["w_dim"],
        block_channels=tuple(s["block_channels"]),
        antialias=s["antialias"],
        conv_clamp=s["conv_clamp"],
    )
    options = {
        "neural_resolution": spec["neural_resolution"],
        "label_scale": spec["label_scale"],
        "superresolution_noise_mode": s["noise_mode"],
    }
    mapping = mapping_network(spec["mapping"])
    if b is None:
        return EG3DGenerator(mapping, triplane, renderer, superresolution, **options)
    return BallGANGenerator(
        mapping, triplane, renderer, mapping_network(b["mapping"]), superresolution, **options
    )


# ---------------------------------------------------------------------------- state

_Transform = Callable[[Tensor], Tensor]


def _same(tensor: Tensor) -> Tensor:
    return tensor


def _plan(spec: dict[str, Any]) -> dict[str, tuple[str, _Transform]]:
    """aware3d name -> (recorded name, transform) for every aware3d tensor."""
    plan: dict[str, tuple[str, _Transform]] = {}

    def mapping(ours: str, theirs: str, m: dict[str, Any]) -> None:
        if m["c_dim"]:
            for p in ("weight", "bias"):
                plan[f"{ours}.embed.{p}"] = (f"{theirs}.embed.{p}", _same)
        for i in range(m["num_layers"]):
            for p in ("weight", "bias"):
                plan[f"{ours}.layers.{i}.{p}"] = (f"{theirs}.fc{i}.{p}", _same)
        plan[f"{ours}.w_avg"] = (f"{theirs}.w_avg", _same)

    def layer(ours: str, theirs: str) -> None:
        for p in ("affine.weight", "affine.bias", "weight"):
            plan[f"{ours}.conv.{p}"] = (f"{theirs}.{p}", _same)
        for p in ("bias", "noise_strength", "noise_const"):
            plan[f"{ours}.{p}"] = (f"{theirs}.{p}", _same)

    def block(ours: str, theirs: str, first: bool) -> None:
        if first:
            plan[f"{ours}.const"] = (f"{theirs}.const", _same)
        else:
            layer(f"{ours}.conv0", f"{theirs}.conv0")
        layer(f"{ours}.conv1", f"{theirs}.conv1")
        for p in ("affine.weight", "affine.bias", "weight"):
            plan[f"{ours}.torgb.conv.{p}"] = (f"{theirs}.torgb.{p}", _same)
        plan[f"{ours}.torgb.bias"] = (f"{theirs}.torgb.bias", _same)

    mapping("mapping", "backbone.mapping", spec["mapping"])
    resolution = spec["triplane"]["resolution"]
    for i, res in enumerate(2**k for k in range(2, resolution.bit_length())):
        block(f"triplane.blocks.{i}", f"backbone.synthesis.b{res}", first=i == 0)
    for i in range(len(spec["superresolution"]["block_channels"])):
        block(f"superresolution.blocks.{i}", f"superresolution.block{i}", first=False)

    dec = "renderer.decoder"
    for p in ("weight", "bias"):
        plan[f"{dec}.hidden_layer.{p}"] = (f"decoder.net.0.{p}", _same)
        if spec["family"] == "ballgan":
            plan[f"{dec}.density_head.{p}"] = (f"decoder.sigma_out.{p}", _same)
            plan[f"{dec}.feature_head.{p}"] = (f"decoder.rgb_out.{p}", _same)
        else:  # EG3D's one output layer: row 0 is the density, the rest the features
            plan[f"{dec}.density_head.{p}"] = (f"decoder.net.2.{p}", lambda x: x[:1])
            plan[f"{dec}.feature_head.{p}"] = (f"decoder.net.2.{p}", lambda x: x[1:])

    background = spec.get("background")
    if background is not None:
        mapping("background_mapping", "BG_mapping", background["mapping"])
        names = ["BG_Net.fc_in"] + [
            f"BG_Net.blocks.{j}" for j in range(background["num_layers"] - 1)
        ]
        pairs = [(f"renderer.background.layers.{i}", n) for i, n in enumerate(names)]
        pairs.append(("renderer.background.output", "BG_Net.feat_out"))
        for ours, theirs in pairs:
            for p in ("affine.weight", "affine.bias", "bias"):
                plan[f"{ours}.{p}"] = (f"{theirs}.{p}", _same)
            # 1x1 convolution weights [O, I, 1, 1] -> linear [O, I]
            plan[f"{ours}.weight"] = (f"{theirs}.weight", lambda x: x.reshape(x.shape[0], -1))
    return plan


def _is_fixed_filter(tensor: Tensor) -> bool:
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64) / 8
    return tuple(tensor.shape) == (4, 4) and torch.equal(tensor.double(), taps[:, None] * taps)


def generator_state(
    record: PersistentModule, spec: dict[str, Any], path: str
) -> tuple[dict[str, Tensor], list[str]]:
    """aware3d's ``state_dict`` from the recorded tensors, and the recorded tensors left out.

    Every recorded tensor is either copied (EG3D's decoder output layer split into the density
    and feature heads, BallGAN's 1x1 background weights reshaped) or listed as
    ``"name: reason"``: the fixed resampling filters (checked equal to aware3d's), anything
    else with no place in aware3d's module.

    Raises:
        ReleasedModelError: a tensor aware3d needs is missing, or a resampling filter differs
            from StyleGAN2's ``[1, 3, 3, 1]``.
    """
    recorded = record.state_dict()
    plan = _plan(spec)
    state: dict[str, Tensor] = {}
    used: set[str] = set()
    missing = [theirs for theirs, _ in plan.values() if theirs not in recorded]
    if missing:
        raise _fail(path, "recorded tensors", f"missing {sorted(set(missing))[:8]}")
    for ours, (theirs, transform) in plan.items():
        state[ours] = transform(recorded[theirs]).detach().clone()
        used.add(theirs)
    unmapped = []
    for name, tensor in recorded.items():
        if name in used:
            continue
        if name.rsplit(".", 1)[-1] == "resample_filter":
            if not _is_fixed_filter(tensor):
                raise _fail(path, name, "a resampling filter other than StyleGAN2's [1, 3, 3, 1]")
            unmapped.append(f"{name}: {_FILTER_REASON}")
        else:
            unmapped.append(f"{name}: no place in aware3d's {spec['family']} generator")
    return state, unmapped
