"""GSGAN's released generator (hse1032/GSGAN ``GSGenerator``) as aware3d's :class:`GSGANGenerator`.

The family converter of :mod:`aware3d.models.released` (see its docstring for the interface).

**Recognising it.** GSGAN's training script builds ``training.gs_generator.GSGenerator``; its
snapshot records a persistent object of that class name with a ``PointGenerator`` (the
hierarchical point generator, ``point_gen``), a ``PointBgGenerator`` (the background Gaussians,
``point_gen_bg``) and StyleGAN2's ``MappingNetwork`` (``mapping_network``). EG3D's and BallGAN's
generators are each a ``TriPlaneGenerator``, so the class name tells the families apart.

**The description** (:func:`generator_spec`) comes from what the file records and nothing else:
the generator's constructor arguments (``z_dim``, ``c_dim``, ``w_dim``, ``img_resolution``,
``mapping_kwargs``, ``rendering_kwargs['custom_options']``: ``num_pts``, ``res_end``,
``up_ratio``, ``scale_end``, ...), the constructor arguments every persistent submodule records
(the transformer's width and depth, its heads, the EdgeConv's ``k``, every layer's widths), the
constant float32 buffers (``scale_threshold``, ``scale_init``, ``opacity_init``, ...: their
stored values, not the formulas that made them) and, for the few sizes the released source fixes
without recording them, the recorded tensors' shapes (the number of background points) or plain
attributes (the background's ``radius``). The converted module keeps GSGAN's own units and
released rules: box ``[-1, 1]``, level-0 cap ``exp(scale_threshold)``, shrink
``rho = split_ratio`` (2 for the FFHQ scripts) while a parent is above ``exp(scale_end)``
(``1 / resolution``), log-scales clamped to ``[-8, 0]`` from level 1 on, the released level-0
Gaussians and point encoding, rotations accumulated, positions clamped to the box, SH-0 colours,
the background's released modulated layers, and GSGAN's camera (focal 2.508 and its camera-centre
quirk, :func:`~aware3d.models.gsgan.gsgan_released_cameras`).

**The tensors** (:func:`generator_state`): every recorded tensor is copied into the aware3d module
or listed with a reason: the tensors the released network builds but never uses (the camera
affine ``camera_dep_affine``, the last level's anchor heads, the background parents' position
head), the FIR buffers of its 1x1 convolutions, the constants read into the description, the
training loop's ``dataset_label_std`` and the renderer's plain tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aware3d.models._persistence import PersistentModule, Placeholder
from aware3d.models.gsgan import GSGANGenerator
from aware3d.models.released import (
    STYLEGAN2_FC_ARGS,
    STYLEGAN2_MAPPING_ARGS,
    ReleasedModelError,
)
from aware3d.nn.background_gaussians import GaussianBackground
from aware3d.nn.decoder import HierarchicalGaussianDecoder
from aware3d.nn.mapping import MappingNetwork

__all__ = ["build_generator", "generator_spec", "generator_state", "matches"]

#: The class name of GSGAN's generator (``training/gs_generator.py``).
CLASS_NAME = "GSGenerator"
#: ``GSGenerator.__init__``'s positional parameters, in order.
_GENERATOR_ARGS = (
    "z_dim",
    "c_dim",
    "w_dim",
    "img_resolution",
    "img_channels",
    "sr_num_fp16_res",
    "mapping_kwargs",
    "rendering_kwargs",
    "sr_kwargs",
)
#: StyleGAN2's ``MappingNetwork.__init__`` defaults (training/networks_stylegan2.py).
_MAPPING_DEFAULTS = {
    "num_layers": 8,
    "embed_features": None,
    "layer_features": None,
    "activation": "lrelu",
    "lr_multiplier": 0.01,
    "w_avg_beta": 0.998,
}
#: ``FullyConnectedLayer.__init__``'s defaults.
_FC_DEFAULTS = {"bias": True, "activation": "linear", "lr_multiplier": 1, "bias_init": 0}
#: Released head keys -> aware3d ``AttributeHeads`` / background head names.
_HEADS = {
    "xyz": "position",
    "scale": "log_scale",
    "rotation": "rotation",
    "color": "features",
    "opacity": "opacity",
}
_BG_HEADS = {
    "xyz": "position",
    "scale": "scale",
    "rotation": "rotation",
    "color": "features",
    "opacity": "opacity",
}
#: Constants of the released source that the file does not record (the released value is used).
RELEASED_MIN_LOG_SCALE = -8.0  # PointGenerator.postprocessing_block: clamp(-8, 0)
RELEASED_BG_MIN_LOG_SCALE = -10.0  # PointBgGenerator.postprocessing_block: clamp(-10, 0)
RELEASED_BG_SPLIT_THRESHOLD = 0.05  # PointBgGenerator.postprocessing_block(percent_dense=0.05)
RELEASED_BG_RADIUS = 3.0  # PointBgGenerator(radius=3), also a recorded attribute
RELEASED_XYZ_OUTPUT_SCALE = 0.1  # the level-0 anchors' position scale aware3d applies
RELEASED_CAMERA_DIM = 32  # the camera embedding appended to the colour heads


def matches(record: PersistentModule, family: str) -> bool:
    """Whether ``record`` is GSGAN's generator (class ``GSGenerator``) and ``family`` "gsgan"."""
    return family == "gsgan" and record.class_name == CLASS_NAME


# ---------------------------------------------------------------------------------------------
# reading the records


class _Reader:
    """The records of one generator, with errors that name the file and what is missing."""

    def __init__(self, record: PersistentModule, path: str) -> None:
        self.record, self.path = record, path
        self._found: dict[str, PersistentModule | Placeholder | None] = {"": record}

    def fail(self, problem: str) -> ReleasedModelError:
        return ReleasedModelError(f"{self.path}: GSGAN generator: {problem}")

    def find(self, name: str) -> PersistentModule | Placeholder | None:
        """The submodule at a dotted path (``_modules`` nesting), or None."""
        if name not in self._found:
            parent_name, _, child = name.rpartition(".")
            parent = self.find(parent_name)
            self._found[name] = None if parent is None else parent.submodules.get(child)
        return self._found[name]

    def module(self, name: str, class_name: str | None = None) -> PersistentModule:
        record = self.find(name)
        if not isinstance(record, PersistentModule):
            found = "missing" if record is None else f"a {type(record).__name__}"
            raise self.fail(
                f"submodule {name!r} is {found}; expected a recorded "
                f"{class_name or 'persistent module'}"
            )
        if class_name is not None and record.class_name != class_name:
            raise self.fail(
                f"submodule {name!r} is a {record.class_name!r}, expected {class_name!r}"
            )
        return record

    def arguments(
        self,
        record: PersistentModule,
        names: tuple[str, ...],
        defaults: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The recorded constructor arguments by name (positional ones bound in order)."""
        if len(record.init_args) > len(names):
            raise self.fail(
                f"{record.class_name} records {len(record.init_args)} positional "
                f"arguments, more than its {len(names)} parameters"
            )
        bound = dict(defaults or {})
        bound.update(zip(names, record.init_args, strict=False))
        bound.update(record.init_kwargs)
        return bound

    def fc(self, name: str) -> dict[str, Any]:
        """A ``FullyConnectedLayer``'s arguments (in, out, activation, lr_multiplier, ...)."""
        return self.arguments(
            self.module(name, "FullyConnectedLayer"), STYLEGAN2_FC_ARGS, _FC_DEFAULTS
        )

    def buffer(self, owner: str, name: str) -> Tensor:
        record = self.module(owner)
        buffers = record.own_buffers
        if name not in buffers:
            raise self.fail(f"constant buffer {owner}.{name} is missing")
        return buffers[name]

    def constant(self, owner: str, name: str, size: int) -> float:
        """A stored constant buffer whose ``size`` entries are all equal, as a Python float."""
        value = self.buffer(owner, name).double().reshape(-1)
        if value.numel() != size or not bool((value == value[0]).all()):
            raise self.fail(f"{owner}.{name} = {value.tolist()}: aware3d needs {size} equal values")
        return float(value[0])

    def require(self, condition: bool, argument: str, value: Any, why: str) -> None:
        if not condition:
            raise self.fail(f"unsupported argument {argument} = {value!r}: {why}")


def _number(value: Any) -> Any:
    """A numpy scalar as a Python number (JSON-ready); anything else unchanged."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _int(reader: _Reader, name: str, value: Any) -> int:
    value = _number(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise reader.fail(f"argument {name} = {value!r} is not an integer")
    return value


def _float(reader: _Reader, name: str, value: Any) -> float:
    value = _number(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise reader.fail(f"argument {name} = {value!r} is not a finite number")
    return float(value)


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit))


# ---------------------------------------------------------------------------------------------
# the description


def generator_spec(record: PersistentModule, path: str) -> dict[str, Any]:
    """The JSON-ready description of the aware3d generator for GSGAN's recorded ``GSGenerator``.

    Raises:
        ReleasedModelError: naming the file and the argument, for a generator aware3d cannot
            build (e.g. ``use_start_pe=False``, ``output_multiplier != 1``, fewer than three
            levels, a width the released source would not make) or a missing submodule or
            constant. Nothing large is allocated before.
    """
    reader = _Reader(record, path)
    args = reader.arguments(record, _GENERATOR_ARGS)
    for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "rendering_kwargs"):
        if name not in args:
            raise reader.fail(f"constructor argument {name!r} is not recorded")
    rendering = args["rendering_kwargs"]
    options = rendering.get("custom_options") if isinstance(rendering, dict) else None
    if not isinstance(options, dict):
        raise reader.fail("rendering_kwargs['custom_options'] is not recorded")
    w_dim = _int(reader, "w_dim", args["w_dim"])
    decoder = _decoder_spec(reader, options, w_dim)
    mapping = _mapping_spec(reader, args, decoder)
    background = _background_spec(reader, w_dim)
    if rendering.get("c_gen_conditioning_zero", False):
        label_scale = 0.0
    else:
        label_scale = _float(reader, "rendering_kwargs.c_scale", rendering.get("c_scale", 0))
    return {
        "family": "gsgan",
        "released_class": CLASS_NAME,
        "resolution": _int(reader, "img_resolution", args["img_resolution"]),
        "label_scale": label_scale,
        "mapping": mapping,
        "decoder": decoder,
        "background": background,
        "generator": {"knn_neighbours": 64, "camera": "gsgan_released"},
    }


def _level_blocks(reader: _Reader, options: dict[str, Any]) -> list[int]:
    """The released ``block_res`` list: 4, 8, ... below ``res_end`` (one entry per level)."""
    res_end = _int(reader, "custom_options.res_end", options.get("res_end"))
    blocks, res = [], 4
    while res < res_end:
        blocks.append(res)
        res *= 2
    reader.require(
        len(blocks) >= 3,
        "rendering_kwargs.custom_options.res_end",
        res_end,
        f"gives {len(blocks)} level(s); the released point generator needs at least 3 (res_end "
        ">= 32): with fewer its forward pass fails",
    )
    return blocks


def _decoder_spec(reader: _Reader, options: dict[str, Any], w_dim: int) -> dict[str, Any]:
    option = "rendering_kwargs.custom_options."
    reader.require(
        bool(options.get("use_start_pe", False)),
        option + "use_start_pe",
        options.get("use_start_pe"),
        "aware3d builds only the positional encoding of the level-0 points (use_start_pe=True)",
    )
    multiplier = _int(reader, "output_multiplier", options.get("output_multiplier", 1))
    reader.require(
        multiplier == 1,
        option + "output_multiplier",
        multiplier,
        "aware3d emits one Gaussian per token",
    )
    xyz_scale = _float(reader, "xyz_output_scale", options.get("xyz_output_scale"))
    reader.require(
        xyz_scale == RELEASED_XYZ_OUTPUT_SCALE,
        option + "xyz_output_scale",
        xyz_scale,
        "aware3d scales the level-0 anchors' positions by 0.1",
    )
    blocks = _level_blocks(reader, options)
    point_gen = reader.module("point_gen", "PointGenerator")
    pg_args = point_gen.init_kwargs
    delta = _number(point_gen.attributes.get("scale_out_delta", 0))
    reader.require(delta == 0, "point_gen.scale_out_delta", delta, "the released source sets 0")
    num_levels = len(blocks)
    children = _int(reader, "up_ratio", options.get("up_ratio"))
    num_initial = _int(reader, "num_pts", options.get("num_pts"))
    xyz = reader.record.own_parameters.get("_xyz")
    if xyz is None or tuple(xyz.shape) != (num_initial, 3):
        raise reader.fail(
            f"parameter _xyz is {None if xyz is None else tuple(xyz.shape)}, "
            f"expected ({num_initial}, 3) for num_pts = {num_initial}"
        )

    # level 0: positional encoding and transformer
    coord = reader.module("point_gen.conv_in", "CoordInjection_const")
    pe_dim = _int(reader, "pe_dim", coord.init_kwargs.get("pe_dim"))
    const_pe = reader.module("point_gen.conv_in.const_pe", "constant_PE")
    grid_size = _int(
        reader, "constant_PE pe_res", reader.arguments(const_pe, ("pe_dim", "pe_res")).get("pe_res")
    )
    transformer = reader.module(f"point_gen.blocks.block_{blocks[0]}.0", "Transformer")
    t_args = reader.arguments(
        transformer, ("n_ctx", "width", "layers", "heads"), {"width": 512, "layers": 2}
    )
    width0 = _int(reader, "Transformer width", t_args["width"])
    depth = _int(reader, "Transformer layers", t_args["layers"])
    attention = reader.module(f"point_gen.blocks.block_{blocks[0]}.0.resblocks.0.attn")
    heads = _int(reader, "attention heads", attention.init_kwargs.get("heads"))
    reader.require(
        width0 == 2 * pe_dim,
        "point_gen.conv_in pe_dim",
        pe_dim,
        f"the encoding must be as wide as the transformer ({width0})",
    )
    reader.require(
        heads > 0 and width0 % heads == 0,
        "attention heads",
        heads,
        f"must divide the width {width0}",
    )
    fc1 = reader.fc(f"point_gen.blocks.block_{blocks[0]}.0.resblocks.0.mlp.c_fc")
    mlp_ratio = _int(reader, "MLP c_fc", fc1["out_features"]) // width0
    _check_style_width(
        reader, f"point_gen.blocks.block_{blocks[0]}.0.resblocks.0.ln_1.gamma", w_dim
    )

    # finer levels: EdgeConv, upsample, MLP
    widths, styled, knn = [width0], 0, None
    for level in range(1, num_levels):
        prefix = f"point_gen.blocks.block_{blocks[level]}"
        edge = reader.module(f"{prefix}.0")
        upsample = reader.module(f"{prefix}.1", "PointUpsample_subpixel")
        mlp = reader.module(f"{prefix}.2")
        up = upsample.init_kwargs
        reader.require(
            _int(reader, "pe_dim", up.get("pe_dim", 96)) == 0,
            f"{prefix}.1 pe_dim",
            up.get("pe_dim", 96),
            "aware3d's upsampling has no coordinate injection",
        )
        reader.require(
            _int(reader, "upsample_ratio", up.get("upsample_ratio")) == children,
            f"{prefix}.1 upsample_ratio",
            up.get("upsample_ratio"),
            f"up_ratio is {children}",
        )
        in_width = _int(reader, "in_features", up.get("in_features"))
        reader.require(
            in_width == widths[-1],
            f"{prefix}.1 in_features",
            in_width,
            f"the previous level is {widths[-1]} wide",
        )
        widths.append(_int(reader, "out_features", up.get("out_features")))
        if edge.class_name == "AdaEdgeBlock" and mlp.class_name == "AdaMLP":
            reader.require(
                styled == level - 1,
                f"{prefix}.0",
                "AdaEdgeBlock",
                "styled levels must come before unstyled ones",
            )
            styled = level
            k = _int(reader, "AdaEdgeBlock k", edge.init_kwargs.get("k"))
            reader.require(knn in (None, k), f"{prefix}.0 k", k, f"earlier levels use {knn}")
            knn = k
            _check_style_width(reader, f"{prefix}.0.norm.gamma", w_dim)
        elif edge.class_name == "LocalEdgeBlock" and mlp.class_name == "PlainMLP":
            reader.require(
                children == 4,
                option + "up_ratio",
                children,
                "the released LocalEdgeBlock groups tokens by 4 whatever up_ratio is",
            )
        else:
            raise reader.fail(
                f"level {level} ({prefix}) is {edge.class_name} + {mlp.class_name}; "
                "expected AdaEdgeBlock + AdaMLP or LocalEdgeBlock + PlainMLP"
            )
        edge_in = _int(reader, "Fin", reader.arguments(edge, ("Fin", "Fout")).get("Fin"))
        reader.require(
            edge_in == widths[-2],
            f"{prefix}.0 Fin",
            edge_in,
            f"the level's input is {widths[-2]} wide",
        )
    reader.require(
        knn is not None,
        "point_gen",
        "no AdaEdgeBlock",
        "the released network has styled EdgeConv levels",
    )
    assert knn is not None
    camera = bool(pg_args.get("use_dir_cond", False))
    if camera:
        embedding = reader.fc("point_gen.encoder_camera_cond")
        reader.require(
            embedding["out_features"] == RELEASED_CAMERA_DIM,
            "point_gen.encoder_camera_cond out_features",
            embedding["out_features"],
            f"aware3d's camera embedding is {RELEASED_CAMERA_DIM} wide",
        )
    colour = reader.fc(f"point_gen.out_layers.color.block_{blocks[0]}.1")
    feature_dim = _int(reader, "colour head out_features", colour["out_features"])
    for key in _HEADS:
        for level, block in enumerate(blocks):
            for which in (0, 1) if level < num_levels - 1 else (1,):
                head = reader.fc(f"point_gen.out_layers.{key}.block_{block}.{which}")
                reader.require(
                    float(_number(head["lr_multiplier"])) == 1.0,
                    f"point_gen.out_layers.{key}.block_{block}.{which} lr_multiplier",
                    head["lr_multiplier"],
                    "aware3d's heads have 1",
                )

    # constants (stored float32 values)
    scale_init = reader.constant("point_gen", "scale_init", 3)
    threshold = reader.constant("point_gen", "scale_threshold", 3)
    reader.require(
        scale_init == threshold,
        "point_gen.scale_init",
        scale_init,
        f"aware3d's level-0 cap starts at the threshold ({threshold})",
    )
    _check_root(reader, "point_gen", feature_dim)
    opacity_logit = reader.constant("point_gen", "opacity_init", 1)
    scale_end = _float(reader, "scale_end", options.get("scale_end"))
    option_init = _float(reader, "scale_init", options.get("scale_init"))
    # PointGenerator.__init__: min_scale = exp(scale_end), split_ratio over log2(res_end / 4) - 1
    min_scale = np.exp(np.float64(scale_end))
    num_upsample = np.log2(blocks[-1] * 2) - np.log2(4)
    split_ratio = np.exp((np.float64(option_init) - np.log(min_scale)) / (num_upsample - 1))
    reader.require(
        bool(np.isfinite(split_ratio) and split_ratio >= 1),
        "split ratio",
        float(split_ratio),
        "the scale shrink per level must be >= 1",
    )
    return {
        "w_dim": w_dim,
        "num_levels": num_levels,
        "num_initial": num_initial,
        "children": children,
        "widths": widths,
        "feature_dim": feature_dim,
        "rho": float(split_ratio),
        "pixel_size": float(min_scale),
        "blocks": "gsgan",
        "depths": [depth] + [1] * (num_levels - 1),
        "head_dim": width0 // heads,
        "mlp_ratio": mlp_ratio,
        "knn": knn,
        "styled_levels": styled,
        "grid_size": grid_size,
        "box_half_extent": 1.0,
        "level0_max_scale": math.exp(threshold),
        "min_log_scale": RELEASED_MIN_LOG_SCALE,
        "initial_opacity": _sigmoid(opacity_logit),
        "camera_conditioning": camera,
        "color_activation": "sh0",
        "accumulate_rotations": True,
        "clamp_positions": True,
        "level0_gaussians": "released",
        "point_encoding": "released",
    }


def _check_style_width(reader: _Reader, name: str, w_dim: int) -> None:
    style = reader.fc(name)["in_features"]
    reader.require(
        style == w_dim,
        f"{name} in_features",
        style,
        f"aware3d's blocks read the style width w_dim = {w_dim} (the released source "
        "hard-codes 512 there)",
    )


def _check_root(reader: _Reader, owner: str, feature_dim: int) -> None:
    rotation = reader.buffer(owner, "rotation_init").double().reshape(-1).tolist()
    reader.require(
        rotation == [1.0, 0.0, 0.0, 0.0],
        f"{owner}.rotation_init",
        rotation,
        "aware3d's root rotation is the identity",
    )
    colour = reader.buffer(owner, "color_init").double().reshape(-1)
    reader.require(
        colour.numel() == feature_dim and not bool(colour.any()),
        f"{owner}.color_init",
        colour.tolist(),
        "aware3d's root features are 0",
    )


def _mapping_spec(reader: _Reader, args: dict[str, Any], decoder: dict[str, Any]) -> dict[str, Any]:
    record = reader.module("mapping_network", "MappingNetwork")
    m = reader.arguments(record, STYLEGAN2_MAPPING_ARGS, _MAPPING_DEFAULTS)
    w_dim = _int(reader, "mapping w_dim", m.get("w_dim"))
    c_dim = _int(reader, "mapping c_dim", m.get("c_dim"))
    reader.require(
        w_dim == decoder["w_dim"],
        "mapping_network w_dim",
        w_dim,
        f"the generator's w_dim is {decoder['w_dim']}",
    )
    reader.require(
        m["activation"] == "lrelu",
        "mapping_network activation",
        m["activation"],
        "aware3d's mapping uses the leaky ReLU",
    )
    embed = m["embed_features"]
    reader.require(
        c_dim == 0 or embed in (None, w_dim),
        "mapping_network embed_features",
        embed,
        f"aware3d embeds the label into w_dim = {w_dim}",
    )
    reader.require(
        m["w_avg_beta"] is not None,
        "mapping_network w_avg_beta",
        None,
        "aware3d's mapping tracks w_avg",
    )
    hidden = m["layer_features"]
    num_ws = _int(reader, "mapping num_ws", m.get("num_ws"))
    depth, styled = decoder["depths"][0], decoder["styled_levels"]
    expected = 2 * depth + 2 * styled + 1
    reader.require(
        num_ws == expected,
        "mapping_network num_ws",
        num_ws,
        f"the point generator reads {expected - 1} style vectors and the background 1",
    )
    return {
        "z_dim": _int(reader, "z_dim", m.get("z_dim")),
        "w_dim": w_dim,
        "num_ws": num_ws,
        "c_dim": c_dim,
        "num_layers": _int(reader, "num_layers", m["num_layers"]),
        "hidden_dim": None if hidden is None else _int(reader, "layer_features", hidden),
        "lr_multiplier": _float(reader, "lr_multiplier", m["lr_multiplier"]),
        "w_avg_beta": _float(reader, "w_avg_beta", m["w_avg_beta"]),
    }


def _background_spec(reader: _Reader, w_dim: int) -> dict[str, Any]:
    record = reader.module("point_gen_bg", "PointBgGenerator")
    kwargs = record.init_kwargs
    num_upsample = _int(reader, "num_upsample", kwargs.get("num_upsample", 1))
    reader.require(
        num_upsample == 1,
        "point_gen_bg num_upsample",
        num_upsample,
        "aware3d's background has one level of children",
    )
    lff = reader.module("point_gen_bg.conv_in", "LFF")
    hidden = _int(
        reader, "LFF hidden_size", reader.arguments(lff, ("hidden_size",)).get("hidden_size")
    )
    upsample = reader.module("point_gen_bg.network.block_1.0", "PointUpsample_modsubpixel")
    up = reader.arguments(upsample, ("in_features", "out_features", "upsample_ratio", "resolution"))
    children = _int(reader, "upsample_ratio", up.get("upsample_ratio", 4))
    reader.require(
        up.get("pe_dim", 96) == 0,
        "point_gen_bg upsample pe_dim",
        up.get("pe_dim", 96),
        "aware3d's background upsampling has no coordinate injection",
    )
    for name in (
        "network.block_0.0",
        "network.block_0.1",
        "network.block_1.1",
        "network.block_1.2",
    ):
        layer = reader.module(f"point_gen_bg.{name}", "ModulatedFullyConnectedLayer")
        la = reader.arguments(layer, ("in_features", "out_features", "w_dim"))
        reader.require(
            la.get("in_features") == hidden and la.get("out_features") == hidden,
            f"point_gen_bg.{name} widths",
            (la.get("in_features"), la.get("out_features")),
            f"aware3d's background is {hidden} wide throughout",
        )
    for name in (
        "network.block_0.0",
        "network.block_1.0.subpixel",
        "out_layers.block_1.xyz.out_block",
    ):
        style = reader.fc(f"point_gen_bg.{name}.affine")["in_features"]
        reader.require(
            style == w_dim,
            f"point_gen_bg.{name}.affine in_features",
            style,
            f"aware3d's background reads the style width w_dim = {w_dim}",
        )
    points = reader.record.own_parameters.get("_xyz_bg")
    if points is None or points.ndim != 2 or points.shape[1] != 3:
        raise reader.fail("parameter _xyz_bg (the background points) is missing or not [P, 3]")
    colour = reader.module("point_gen_bg.out_layers.block_0.color.out_block")
    feature_dim = _int(
        reader,
        "background colour",
        reader.arguments(colour, ("in_features", "out_features")).get("out_features"),
    )
    _check_root(reader, "point_gen_bg", feature_dim)
    radius = _float(
        reader, "point_gen_bg.radius", record.attributes.get("radius", RELEASED_BG_RADIUS)
    )
    return {
        "w_dim": w_dim,
        "feature_dim": feature_dim,
        "num_points": int(points.shape[0]),
        "children": children,
        "radius": radius,
        "hidden": hidden,
        "scale_cap": reader.constant("point_gen_bg", "scale_threshold", 3),
        "split_threshold": RELEASED_BG_SPLIT_THRESHOLD,
        "min_log_scale": RELEASED_BG_MIN_LOG_SCALE,
        "scale_init": reader.constant("point_gen_bg", "scale_init", 3),
        "initial_opacity": _sigmoid(reader.constant("point_gen_bg", "opacity_init", 1)),
        "modulation": "released",
    }


def build_generator(spec: dict[str, Any]) -> GSGANGenerator:
    """The aware3d :class:`GSGANGenerator` (random weights) that ``spec`` describes."""
    if spec.get("family") != "gsgan":
        raise ValueError(f"`spec['family']` must be 'gsgan', got {spec.get('family')!r}")
    decoder_args = dict(spec["decoder"])
    for name in ("widths", "depths"):
        decoder_args[name] = tuple(decoder_args[name])
    w_dim = decoder_args.pop("w_dim")
    decoder = HierarchicalGaussianDecoder(w_dim, **decoder_args)
    mapping = MappingNetwork(**spec["mapping"])
    background_args = dict(spec["background"])
    background = GaussianBackground(background_args.pop("w_dim"), **background_args)
    return GSGANGenerator(mapping, decoder, background, **spec["generator"])


# ---------------------------------------------------------------------------------------------
# the tensors

Transform = Callable[..., Tensor]


def _same(tensor: Tensor) -> Tensor:
    return tensor


def _conv(tensor: Tensor) -> Tensor:  # [out, in, 1, 1] -> [out, in]
    return tensor.reshape(tensor.shape[0], -1)


def _qkv(heads: int) -> Transform:
    """Released ``c_qkv`` rows (per head: q, k, v) -> aware3d's (q, k, v: per head)."""

    def convert(tensor: Tensor) -> Tensor:
        rows = tensor.shape[0]
        head_dim = rows // (3 * heads)
        split = tensor.reshape(heads, 3, head_dim, *tensor.shape[1:])
        return split.transpose(0, 1).reshape(rows, *tensor.shape[1:])

    return convert


class _Plan:
    """aware3d name -> (released names, how to combine them); records what was used."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[tuple[str, ...], Transform]] = {}

    def add(self, target: str, source: str | tuple[str, ...], transform: Transform = _same) -> None:
        sources = (source,) if isinstance(source, str) else source
        self.entries[target] = (sources, transform)

    def layer(self, target: str, source: str, transform: Transform = _same) -> None:
        """``weight`` and ``bias`` of a layer."""
        self.add(f"{target}.weight", f"{source}.weight", transform)
        self.add(f"{target}.bias", f"{source}.bias", transform if transform is not _conv else _same)

    def modulated(self, target: str, source: str) -> None:
        self.layer(target, source)
        self.layer(f"{target}.affine", f"{source}.affine")


def _plan(spec: dict[str, Any], blocks: list[int], label_scale: float) -> _Plan:
    plan = _Plan()
    decoder = spec["decoder"]
    # mapping
    plan.add("mapping.w_avg", "mapping_network.w_avg")
    if spec["mapping"]["c_dim"] > 0:
        scale = float(label_scale)
        plan.add(
            "mapping.embed.weight",
            "mapping_network.embed.weight",
            _same if scale == 1.0 else (lambda t: t * scale),
        )
        plan.add("mapping.embed.bias", "mapping_network.embed.bias")
    for index in range(spec["mapping"]["num_layers"]):
        plan.layer(f"mapping.layers.{index}", f"mapping_network.fc{index}")
    # level 0
    trunk = "decoder.trunk"
    plan.add(f"{trunk}.points", "_xyz")
    plan.layer(f"{trunk}.encoding.fourier", "point_gen.conv_in.learnable_pe.ffm.linear")
    plan.add(
        f"{trunk}.encoding.grid",
        "point_gen.conv_in.const_pe.const_pe",
        lambda t: t.reshape(t.shape[0], t.shape[1], -1),
    )
    heads = decoder["widths"][0] // decoder["head_dim"]
    for index in range(decoder["depths"][0]):
        src = f"point_gen.blocks.block_{blocks[0]}.0.resblocks.{index}"
        dst = f"{trunk}.transformer.{index}"
        plan.layer(f"{dst}.qkv", f"{src}.attn.c_qkv", _qkv(heads))
        plan.layer(f"{dst}.proj", f"{src}.attn.c_proj")
        plan.layer(f"{dst}.mlp.fc1", f"{src}.mlp.c_fc")
        plan.layer(f"{dst}.mlp.fc2", f"{src}.mlp.c_proj")
        for norm, source in (("norm_attention", "ln_1"), ("norm_mlp", "ln_2")):
            plan.layer(f"{dst}.{norm}.gamma", f"{src}.{source}.gamma")
            plan.layer(f"{dst}.{norm}.beta", f"{src}.{source}.beta")
        plan.layer(f"{dst}.gate_attention", f"{src}.ls_1")
        plan.layer(f"{dst}.gate_mlp", f"{src}.ls_2")
    # finer levels
    widths = decoder["widths"]
    for level in range(1, decoder["num_levels"]):
        src, i = f"point_gen.blocks.block_{blocks[level]}", level - 1
        edge = f"{trunk}.edges.{i}"
        for target, source in (
            ("weight_hidden", "conv_w.0"),
            ("weight_out", "conv_w.1"),
            ("value_hidden", "conv_x.0"),
            ("value_out", "conv_x.1"),
        ):
            plan.layer(f"{edge}.edge.{target}", f"{src}.0.{source}", _conv)
        if level <= decoder["styled_levels"]:
            plan.layer(f"{edge}.norm.gamma", f"{src}.0.norm.gamma")
            plan.layer(f"{edge}.norm.beta", f"{src}.0.norm.beta")
            plan.layer(f"{edge}.gate", f"{src}.0.ls")
            plan.layer(f"{trunk}.mlps.{i}.norm.gamma", f"{src}.2.norm.gamma")
            plan.layer(f"{trunk}.mlps.{i}.norm.beta", f"{src}.2.norm.beta")
            plan.layer(f"{trunk}.mlps.{i}.gate", f"{src}.2.ls")
        else:
            plan.add(f"{edge}.scale", f"{src}.0.ls")
            plan.add(f"{trunk}.mlps.{i}.scale", f"{src}.2.ls")
        plan.layer(f"{trunk}.upsamplers.{i}.expand", f"{src}.1.subpixel")
        if widths[level - 1] != widths[level]:
            plan.layer(f"{trunk}.upsamplers.{i}.residual", f"{src}.1.res_fc")
        plan.layer(f"{trunk}.mlps.{i}.mlp.fc1", f"{src}.2.mlp.c_fc")
        plan.layer(f"{trunk}.mlps.{i}.mlp.fc2", f"{src}.2.mlp.c_proj")
    # heads and camera
    for level, block in enumerate(blocks):
        for key, name in _HEADS.items():
            source = f"point_gen.out_layers.{key}.block_{block}"
            if level < decoder["num_levels"] - 1:
                plan.layer(f"{trunk}.anchor_heads.{level}.{name}", f"{source}.0")
            plan.layer(f"{trunk}.gaussian_heads.{level}.{name}", f"{source}.1")
    if decoder["camera_conditioning"]:
        plan.layer(f"{trunk}.camera_embedding", "point_gen.encoder_camera_cond")
    # background
    bg = "point_gen_bg"
    plan.add("background.points", "_xyz_bg")
    plan.layer("background.encoding", f"{bg}.conv_in.ffm.linear")
    for target, block, first in (("parent_block", "block_0", 0), ("child_block", "block_1", 1)):
        for index in range(2):
            plan.modulated(
                f"background.{target}.layers.{index}", f"{bg}.network.{block}.{first + index}"
            )
        plan.add(
            f"background.{target}.gains",
            tuple(f"{bg}.network.{block}.{first + index}.layerscale" for index in range(2)),
            lambda a, b: torch.stack([a.reshape(-1), b.reshape(-1)]),
        )
    plan.modulated("background.upsample", f"{bg}.network.block_1.0.subpixel")
    for key, name in _BG_HEADS.items():
        if key != "xyz":
            plan.modulated(
                f"background.parent_heads.heads.{name}", f"{bg}.out_layers.block_0.{key}.out_block"
            )
        plan.modulated(
            f"background.child_heads.heads.{name}", f"{bg}.out_layers.block_1.{key}.out_block"
        )
    return plan


def _unused_reason(name: str, blocks: list[int]) -> str:
    """Why a recorded tensor of GSGAN's generator has no place in the aware3d module."""
    last = f"block_{blocks[-1]}.0."
    constants = {
        "point_gen.scale_init": "level-0 log-scale start (equal to scale_threshold)",
        "point_gen.scale_threshold": "decoder level0_max_scale = exp(value)",
        "point_gen.opacity_init": "decoder initial_opacity = sigmoid(value)",
        "point_gen.rotation_init": "the root's identity rotation",
        "point_gen.color_init": "the root's zero features",
        "point_gen_bg.scale_init": "background scale_init",
        "point_gen_bg.scale_threshold": "background scale_cap",
        "point_gen_bg.opacity_init": "background initial_opacity = sigmoid(value)",
        "point_gen_bg.rotation_init": "the background parents' identity rotation",
        "point_gen_bg.color_init": "the background parents' zero features",
    }
    if name in constants:
        return f"constant buffer, read into the spec ({constants[name]})"
    if name == "dataset_label_std":
        return (
            "buffer added by the training loop (the training labels' std); "
            "not used by the generator"
        )
    if name.startswith("point_gen.camera_dep_affine."):
        return "built by the released PointGenerator but never called"
    if name.startswith("point_gen.out_layers.") and last in name:
        return (
            "anchor head of the last level: built but never called (the last level has no anchors)"
        )
    if name.startswith("point_gen_bg.out_layers.block_0.xyz."):
        return "position head of the background parents: its output is never used"
    if name.endswith(".resample_filter"):
        return "FIR filter of a 1x1 Conv2dLayer that does not resample: never used"
    if name == "reverse_camera_direction":
        return (
            "plain attribute, the renderer's camera-axis flip diag(1, -1, -1, 1): part of "
            "GSGANGenerator's camera='gsgan_released'"
        )
    if name == "camera_cond_origin":
        return "plain attribute used only by the released visualisation option cam_interp_ratio"
    if name.startswith("renderer_gaussian3d."):
        return (
            "plain attribute of the released renderer (black background): "
            "GSGANGenerator renders black"
        )
    return "not part of GSGAN's released generator as aware3d knows it; not used"


def _recorded_tensors(
    modules: dict[str, PersistentModule | Placeholder],
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Parameters and buffers (persistent or not), and tensors kept as plain attributes."""
    tensors: dict[str, Tensor] = {}
    attributes: dict[str, Tensor] = {}
    for prefix, module in modules.items():
        dot = f"{prefix}." if prefix else ""
        tensors.update((dot + key, t) for key, t in module.own_parameters.items())
        tensors.update((dot + key, t) for key, t in module.own_buffers.items())
        for key, value in module.attributes.items():
            if isinstance(value, Tensor):
                attributes[dot + key] = value
            elif isinstance(value, Placeholder) and isinstance(value.state, dict):
                for inner, item in value.state.items():
                    if isinstance(item, Tensor):
                        attributes[f"{dot}{key}.{inner}"] = item
    return tensors, attributes


def generator_state(
    record: PersistentModule, spec: dict[str, Any], path: str
) -> tuple[dict[str, Tensor], list[str]]:
    """The aware3d ``state_dict`` from the recorded tensors, and the unused ones with reasons.

    Raises:
        ReleasedModelError: a tensor the aware3d module needs is not in the file (naming it).
    """
    reader = _Reader(record, path)
    recorded, attributes = _recorded_tensors(record.named_modules())
    blocks = [4 * 2**level for level in range(spec["decoder"]["num_levels"])]
    plan = _plan(spec, blocks, spec.get("label_scale", 1.0))
    missing = sorted(
        {s for sources, _ in plan.entries.values() for s in sources if s not in recorded}
    )
    if missing:
        raise reader.fail(
            f"{len(missing)} tensor(s) the aware3d module needs are not recorded: {missing[:8]}"
        )
    state: dict[str, Tensor] = {}
    used: set[str] = set()
    for target, (sources, transform) in plan.entries.items():
        state[target] = transform(*(recorded[s] for s in sources)).contiguous()
        used.update(sources)
    unmapped = [f"{name}: {_unused_reason(name, blocks)}" for name in recorded if name not in used]
    unmapped += [f"{name}: {_unused_reason(name, blocks)}" for name in attributes]
    return state, unmapped
