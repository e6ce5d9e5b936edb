"""GSGAN's released generator pickles -> aware3d's GSGANGenerator (aware3d.models._released_gsgan).

The fixture ``data/released_gsgan_small.pt`` was made outside this repository from GSGAN's released
code (hse1032/GSGAN) with its hard-coded sizes made small (see the fixture's ``about``): every
recorded module of its ``G_ema`` (class, constructor arguments, parameters, buffers, plain
attributes), the inputs ``z``, ``c`` and the released code's float64 outputs (mapping, every
level's Gaussians and anchors, the background Gaussians, the renderer's camera matrices). The tests
write a snapshot in the released layout with ``persistence_writer`` (no released code is needed or
run) and check that the conversion reproduces those outputs to float64 rounding.
"""

import copy
import dataclasses
import json
import math
import zlib
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aware3d
from aware3d.models import GSGANGenerator
from aware3d.models._persistence import (
    NetworkPickle,
    PersistentModule,
    Placeholder,
    read_network_pickle,
)
from aware3d.models._released_gsgan import generator_state, matches
from aware3d.models.gsgan import gsgan_released_cameras
from aware3d.models.released import (
    ReleasedModelError,
    build_released_generator,
    convert_released_generator,
)
from aware3d.nn import GaussianBackground
from aware3d.nn._gsgan_blocks import PointEncoding
from aware3d.nn.decoder import GSGAN_EFFECTIVE_FOCAL, small_decoder
from persistence_writer import Named, NewObj, Persistent, Stub, easydict, write

FIXTURE = Path(__file__).parent / "data" / "released_gsgan_small.pt"
TOLERANCE = 1e-10  # relative, float64


@cache
def _fixture() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def _decode(value, blobs):
    if isinstance(value, dict):
        if "__tensor__" in value:
            shape = value["shape"]
            start = value["offset"]
            return (
                blobs[value["__tensor__"]][start : start + math.prod(shape)].reshape(shape).clone()
            )
        if "__numpy__" in value:
            return np.dtype(value["__numpy__"]).type(value["value"])
        if "__global__" in value:
            name = value["__global__"]
            if name == "torch.nn.functional.normalize":
                return F.normalize
            if name.startswith("torch.") and name.count(".") == 1:
                return getattr(torch, name[6:])
            module, _, attr = name.rpartition(".")
            return Stub(module, attr)
        if "__object__" in value:
            module, _, attr = value["__object__"].rpartition(".")
            return NewObj(module, attr, state=_decode(value["state"], blobs))
        if "__dict__" in value:
            return {_decode(k, blobs): _decode(v, blobs) for k, v in value["__dict__"]}
        if "__list__" in value:
            return [_decode(v, blobs) for v in value["__list__"]]
        if "__tuple__" in value:
            return tuple(_decode(v, blobs) for v in value["__tuple__"])
    return value


def released_modules() -> list[dict]:
    """The fixture's module records, decoded (a fresh copy to edit)."""
    fixture = _fixture()
    blobs = {"float32": fixture["float32"], "int64": fixture["int64"]}
    entries = json.loads(zlib.decompress(fixture["modules_json_zlib"].numpy().tobytes()))
    for entry in entries:
        for key in ("params", "buffers", "attributes"):
            entry[key] = {k: _decode(v, blobs) for k, v in entry[key].items()}
        for key in ("init_args", "init_kwargs"):
            if key in entry:
                entry[key] = _decode(entry[key], blobs)
    return entries


def _build(entries: list[dict]) -> nn.Module:
    objects: dict[str, nn.Module] = {}
    for entry in entries:  # parents come before their children
        if entry["kind"] == "persistent":
            kwargs = dict(entry["init_kwargs"])
            if "mapping_kwargs" in kwargs:  # an EasyDict in the real files
                kwargs["mapping_kwargs"] = easydict(**kwargs["mapping_kwargs"])
            module = Persistent(entry["class_name"], *entry["init_args"], **kwargs)
        else:
            module = Named(entry["class_name"])
        module.training = entry["training"]
        for key, tensor in entry["params"].items():
            module.register_parameter(key, nn.Parameter(tensor, requires_grad=False))
        for key, tensor in entry["buffers"].items():
            module.register_buffer(key, tensor, persistent=key not in entry["non_persistent"])
        for key, value in entry["attributes"].items():
            setattr(module, key, value)
        name = entry["name"]
        if name:
            parent, _, child = name.rpartition(".")
            objects[parent].add_module(child, module)
        objects[name] = module
    return objects[""]


def write_snapshot(tmp_path: Path, entries: list[dict] | None = None) -> Path:
    """A network snapshot in the released training loop's layout, written without its code."""
    G = _build(released_modules() if entries is None else entries)
    D = Persistent("SingleDiscriminator", c_dim=25, img_resolution=64, img_channels=3)
    D.b4 = nn.Linear(3, 1)
    kwargs = _decode(_fixture()["training_set_kwargs"], {})
    snapshot = dict(training_set_kwargs=kwargs, G=G, D=D, G_ema=G, augment_pipe=None)
    return write(tmp_path, snapshot, "network-snapshot-000000.pkl")


def _entry(entries: list[dict], name: str) -> dict:
    return next(entry for entry in entries if entry["name"] == name)


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    assert ours.shape == theirs.shape
    return float((ours.double() - theirs).abs().max() / theirs.abs().max())


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> NetworkPickle:
    """The fixture written as a released snapshot and read back with the safe reader."""
    return read_network_pickle(write_snapshot(tmp_path_factory.mktemp("gsgan")))


@pytest.fixture(scope="module")
def converted(snapshot):
    return convert_released_generator(snapshot)


def _clone(value, memo: dict):
    """A copy of read records whose containers can be edited (tensors shared, not copied)."""
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, PersistentModule):
        copied = dataclasses.replace(value)
        memo[id(value)] = copied
        copied.init_kwargs = _clone(value.init_kwargs, memo)
        copied.state = _clone(value.state, memo)
    elif isinstance(value, Placeholder):
        copied = object.__new__(type(value))
        memo[id(value)] = copied
        copied.__dict__.update({k: _clone(v, memo) for k, v in vars(value).items()})
    elif isinstance(value, dict):
        copied = memo[id(value)] = {}
        copied.update((k, _clone(v, memo)) for k, v in value.items())
    elif isinstance(value, list):
        copied = memo[id(value)] = []
        copied.extend(_clone(v, memo) for v in value)
    else:
        copied = value
    return copied


def edited(snapshot: NetworkPickle) -> tuple[NetworkPickle, dict]:
    """A copy of the read snapshot and its G_ema's modules by name, to edit records directly."""
    memo: dict = {}
    copied = dataclasses.replace(
        snapshot, G=_clone(snapshot.G, memo), G_ema=_clone(snapshot.G_ema, memo)
    )
    assert copied.G_ema is not None
    return copied, copied.G_ema.named_modules()


def test_reproduces_the_released_outputs(converted):
    out = _fixture()["outputs"]
    gen = copy.deepcopy(converted.generator).double()
    z, c = out["z"], out["c"]
    errors = {}
    with torch.no_grad():
        for psi in (1.0, 0.7):
            errors[f"ws {psi}"] = _relative(gen.mapping(z, c, psi=psi), out[f"ws_psi{psi}"])
        ws = out["ws_psi1.0"]
        cameras = aware3d.Cameras.from_eg3d_labels(c)
        h = gen.decoder.forward_hierarchy(ws[:, :-1], cameras.forward_directions)
        start = 0
        for level, size in enumerate(gen.decoder.level_sizes):
            part = slice(start, start + size)
            nodes = h.nodes[level]
            errors[f"{level} xyz"] = _relative(h.gaussians.means[:, part], out["xyz"][:, part])
            errors[f"{level} scale"] = _relative(nodes.log_scale, out["scale"][:, part])
            errors[f"{level} rotation"] = _relative(nodes.rotation, out["rotation"][:, part])
            errors[f"{level} colour"] = _relative(nodes.features, out["color"][:, part])
            errors[f"{level} opacity"] = _relative(nodes.opacity_logit, out["opacity"][:, part, 0])
            if level < len(h.anchors):
                anchor = h.anchors[level]
                errors[f"{level} anchor xyz"] = _relative(
                    anchor.position, out["anchor_xyz"][:, part]
                )
                errors[f"{level} anchor scale"] = _relative(
                    anchor.log_scale, out["anchor_scale"][:, part]
                )
                errors[f"{level} anchor rotation"] = _relative(
                    anchor.rotation, out["anchor_rotation"][:, part]
                )
                errors[f"{level} anchor colour"] = _relative(
                    anchor.features, out["anchor_color"][:, part]
                )
                errors[f"{level} anchor opacity"] = _relative(
                    anchor.opacity_logit, out["anchor_opacity"][:, part, 0]
                )
            start += size
        assert start == out["xyz"].shape[1]
        bg = gen.background(ws[:, -1])
        errors["bg xyz"] = _relative(bg.means, out["bg_xyz"])
        errors["bg scale"] = _relative(bg.scales.log(), out["bg_scale"])
        errors["bg rotation"] = _relative(bg.quats, F.normalize(out["bg_rotation"], dim=-1))
        errors["bg colour"] = _relative(bg.features, out["bg_color"])
        errors["bg opacity"] = _relative(bg.opacities, torch.sigmoid(out["bg_opacity"][..., 0]))
        # GSGAN's camera: the released renderer's world-to-camera matrices and focal
        released = gsgan_released_cameras(cameras)
        for b in range(len(z)):
            view = out[f"camera_world_view_{b}"].T
            errors[f"camera {b}"] = _relative(released.viewmats()[b], view)
            focal = 1 / (2 * torch.tan(out[f"camera_fov_{b}"] / 2))
            errors[f"focal {b}"] = _relative(released.intrinsics[b].diagonal()[:2], focal)
    assert max(errors.values()) < TOLERANCE, {k: v for k, v in errors.items() if v >= TOLERANCE}


def test_the_conversion_and_its_report(converted):
    gen = converted.generator
    assert isinstance(gen, GSGANGenerator) and converted.family == "gsgan"
    assert not gen.training and all(p.dtype == torch.float32 for p in gen.parameters())
    spec = converted.spec
    assert json.loads(json.dumps(spec)) == spec  # JSON-ready
    decoder = spec["decoder"]
    assert decoder["level0_gaussians"] == "released" and decoder["point_encoding"] == "released"
    assert decoder["box_half_extent"] == 1.0 and decoder["widths"] == [16, 16, 8, 8]
    # the stored float32 constants, not the formulas that made them
    assert decoder["level0_max_scale"] == math.exp(float(np.float32(math.log(0.5))))
    assert decoder["pixel_size"] == float(np.exp(np.log(1 / 64)))
    assert spec["background"]["modulation"] == "released"
    assert spec["generator"]["camera"] == "gsgan_released" and gen.camera == "gsgan_released"
    # every recorded tensor is mapped or listed with its reason
    reasons = dict(line.split(": ", 1) for line in converted.unmapped)
    assert "never called" in reasons["point_gen.camera_dep_affine.weight"]
    assert "last level" in reasons["point_gen.out_layers.xyz.block_32.0.weight"]
    assert "never used" in reasons["point_gen_bg.out_layers.block_0.xyz.out_block.affine.weight"]
    assert "constant buffer" in reasons["point_gen.scale_threshold"]
    assert "training loop" in reasons["dataset_label_std"]
    assert {
        "reverse_camera_direction",
        "camera_cond_origin",
        "renderer_gaussian3d.bg_color",
    } <= set(reasons)
    recorded = (
        sum(len(e["params"]) + len(e["buffers"]) for e in released_modules()) + 3
    )  # the three plain attribute tensors
    mapped_sources = recorded - len(converted.unmapped)
    assert mapped_sources > 200
    # the spec rebuilds the same module
    rebuilt = build_released_generator(spec)
    assert rebuilt.state_dict().keys() == gen.state_dict().keys()


def test_renders_through_the_released_camera(converted):
    gen = converted.generator
    out = _fixture()["outputs"]
    cameras = aware3d.Cameras.from_eg3d_labels(out["c"].float())[:, None]
    result = gen(out["z"].float(), cameras, 8, 8, c=out["c"].float())
    assert result.images.shape == (2, 1, 8, 8, 3)
    assert torch.isfinite(result.images).all() and result.images.min() >= -1


@pytest.mark.parametrize(
    ("option", "value"),
    [("use_start_pe", False), ("res_end", 16), ("output_multiplier", 2), ("xyz_output_scale", 0.2)],
)
def test_unsupported_arguments_are_refused_before_building(snapshot, monkeypatch, option, value):
    copied, modules = edited(snapshot)
    modules[""].init_kwargs["rendering_kwargs"]["custom_options"][option] = value

    def no_build(spec):
        raise AssertionError("built before the arguments were checked")

    monkeypatch.setattr("aware3d.models._released_gsgan.build_generator", no_build)
    with pytest.raises(ReleasedModelError, match=option) as error:
        convert_released_generator(copied)
    assert str(copied.path) in str(error.value)


def test_unsupported_submodule_arguments(snapshot):
    copied, modules = edited(snapshot)
    modules["point_gen.blocks.block_8.1"].init_kwargs["upsample_ratio"] = 2
    with pytest.raises(ReleasedModelError, match="upsample_ratio"):
        convert_released_generator(copied)
    copied, modules = edited(snapshot)
    modules["point_gen.blocks.block_4.0.resblocks.0.attn"].init_kwargs["heads"] = 3
    with pytest.raises(ReleasedModelError, match="heads"):
        convert_released_generator(copied)


def test_missing_and_unknown_tensors(snapshot, converted):
    copied, modules = edited(snapshot)
    del modules["point_gen.blocks.block_8.2.mlp.c_fc"].state["_parameters"]["weight"]
    with pytest.raises(
        ReleasedModelError, match=r"point_gen\.blocks\.block_8\.2\.mlp\.c_fc\.weight"
    ):
        generator_state(modules[""], converted.spec, "net.pkl")

    copied, modules = edited(snapshot)
    modules["point_gen"].state["_buffers"]["surprise"] = torch.ones(2)
    modules["point_gen_bg"].state["extra_table"] = torch.zeros(3)
    state, unmapped = generator_state(modules[""], converted.spec, "net.pkl")
    assert state.keys() == converted.generator.state_dict().keys()
    reasons = dict(line.split(": ", 1) for line in unmapped)
    assert "not part of" in reasons["point_gen.surprise"]
    assert "not part of" in reasons["point_gen_bg.extra_table"]


def test_missing_submodule_and_constant_are_named(snapshot):
    copied, modules = edited(snapshot)
    del modules[""].state["_modules"]["point_gen_bg"]
    with pytest.raises(ReleasedModelError, match="point_gen_bg"):
        convert_released_generator(copied)
    copied, modules = edited(snapshot)
    del modules["point_gen"].state["_buffers"]["scale_threshold"]
    with pytest.raises(ReleasedModelError, match="scale_threshold"):
        convert_released_generator(copied)


def test_matches_only_gsgan_generators():
    def record(class_name: str) -> PersistentModule:
        return PersistentModule(class_name, "", 6, (), {}, {})

    assert matches(record("GSGenerator"), "gsgan")
    assert not matches(record("GSGenerator"), "eg3d")
    assert not matches(record("TriPlaneGenerator"), "gsgan")


@pytest.mark.parametrize("cells", [8, 7, 1])
def test_released_point_encoding_is_grid_sample_at_the_middle(cells):
    torch.manual_seed(0)
    encoding = PointEncoding(8, cells, grid_read="released").double()
    p = torch.cat([torch.linspace(-1, 1, 41), torch.tensor([0.0, 1e-9, -1e-9, 1.0, -1.0])])
    points = torch.stack([p, p.flip(0), p.roll(3)], dim=-1).double()[None]  # [1, N, 3]
    ours = encoding(points)[..., 4:]
    # GSGAN's read: grid_sample of the [C, 1, cells] image of each axis at (x, y) = (0, p)
    image = encoding.grid[:, :, None]  # [3, C, 1, cells]
    grid = torch.stack([torch.zeros_like(points), points], dim=-1)[0].permute(1, 0, 2)[:, None]
    sampled = F.grid_sample(image, grid, mode="bilinear", align_corners=False)  # [3, C, 1, N]
    theirs = sampled[:, :, 0].sum(0).T / math.sqrt(3.0)
    torch.testing.assert_close(ours[0], theirs, rtol=1e-12, atol=1e-14)


def test_released_level0_gaussians_refine_the_root():
    torch.manual_seed(0)
    sizes = dict(num_levels=2, num_initial=8, widths=(16, 8), head_dim=8, knn=3, grid_size=4)
    decoder = small_decoder(16, **sizes, level0_gaussians="released", accumulate_rotations=True)
    ws = torch.randn(2, decoder.num_ws, 16)
    h = decoder.forward_hierarchy(ws)
    tokens = decoder.trunk.start(2, torch.float32, ws)
    _, raw = decoder.trunk.heads(0, tokens, ws, None)
    anchor, gaussian = h.anchors[0], h.nodes[0]
    cap = math.log(decoder.level0_max_scale)
    torch.testing.assert_close(gaussian.log_scale, cap - F.softplus(-raw.log_scale))
    torch.testing.assert_close(gaussian.rotation, raw.rotation + torch.tensor([1.0, 0, 0, 0]))
    torch.testing.assert_close(gaussian.opacity_logit, raw.opacity_logit + math.log(0.1 / 0.9))
    torch.testing.assert_close(gaussian.features, raw.features)
    # the position still lies in the anchor's box
    frame = aware3d.functional.quaternion_to_matrix(anchor.rotation)
    offset = (frame.transpose(-1, -2) @ (gaussian.position - anchor.position)[..., None])[..., 0]
    assert (offset.abs() <= anchor.log_scale.exp() * (1 + 1e-5)).all()
    # the default keeps every attribute a child of the anchor
    default = small_decoder(16, **sizes)
    default.load_state_dict(decoder.state_dict())
    assert (default.forward_hierarchy(ws).nodes[0].log_scale <= anchor.log_scale + 1e-6).all()


def test_released_background_modulation():
    torch.manual_seed(0)
    released = GaussianBackground(8, num_points=16, hidden=8, modulation="released").double()
    ours = GaussianBackground(8, num_points=16, hidden=8).double()
    ours.load_state_dict(released.state_dict())
    w = torch.randn(2, 8, dtype=torch.float64)
    layer = released.parent_block.layers[0]
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    styles = layer.affine(w)
    weight = layer.weight[None] * styles[:, None]  # the raw weight, styled
    demod = (weight.square().sum(-1) + 1e-8).rsqrt()
    expected = torch.einsum("bni,boi->bno", x, weight) * demod[:, None] + layer.bias
    expected = (F.leaky_relu(expected, 0.2) * math.sqrt(2)).clamp(-256, 256)
    torch.testing.assert_close(layer(x, w), expected, rtol=1e-13, atol=1e-13)
    with torch.no_grad():
        a, b = released(w), ours(w)
    difference = float((a.features - b.features).abs().max() / b.features.abs().max())
    assert 0 < difference < 1e-5  # the epsilon's place: a small but real difference


def test_released_cameras_move_the_centre_along_the_right_axis():
    poses = aware3d.sample_look_at_poses(math.pi / 2 + 0.3, math.pi / 2, (0, 0, 0.2), 0.0, 0.0, n=1)
    cameras = aware3d.Cameras(poses.double(), aware3d.intrinsics_from_fov(13.37)[None].double())
    released = gsgan_released_cameras(cameras)
    expected = cameras.viewmats().clone()
    expected[..., 0, 3] *= -1  # MiniCam's w2c[:3, 3] *= -1 after a flip of rows 1 and 2 only
    torch.testing.assert_close(released.viewmats(), expected)
    assert torch.equal(released.cam2world[..., :3, :3], cameras.cam2world[..., :3, :3])
    assert torch.allclose(
        released.intrinsics[..., 0, 0], torch.tensor(GSGAN_EFFECTIVE_FOCAL).double()
    )
    assert torch.equal(released.intrinsics[..., :2, 2], torch.full((1, 2), 0.5).double())
