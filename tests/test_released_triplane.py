"""Converting EG3D's and BallGAN's released generators (``training.triplane.TriPlaneGenerator``).

The fixtures ``tests/data/released_{eg3d,ballgan}_small.pt`` were made with the released code
(outside this repository) from a small ``TriPlaneGenerator`` of each family: the module tree as
the released classes build it (class names, recorded constructor arguments, tensor names and
shapes, plain attributes, the fixed resampling filters), tensor values drawn from a seed with
numpy's ``RandomState`` (so ~1.1 M values need not be stored), fixed inputs and the released
network's float64 outputs (planes and super-resolution at a fixed subset of elements). The tests
write the network as a ``torch_utils.persistence`` snapshot with ``persistence_writer``, convert
it with :func:`aware3d.models.released.convert_released_generator` and compare.
"""

import copy
import dataclasses
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from aware3d.functional.triplane import sample_triplane
from aware3d.models import BallGANGenerator
from aware3d.models._persistence import PersistentModule, Placeholder, read_network_pickle
from aware3d.models._released_triplane import generator_spec, generator_state, matches
from aware3d.models.eg3d import EG3DGenerator
from aware3d.models.released import (
    ReleasedModelError,
    build_released_generator,
    convert_released_generator,
)
from aware3d.nn import SphericalBackground
from aware3d.nn.layers import SynthesisLayer, ToRGBLayer
from persistence_writer import Named, Persistent, dumps, easydict

DATA = Path(__file__).parent / "data"
FAMILIES = ("eg3d", "ballgan")
#: The float64 agreement the conversion must reach (measured: a few 1e-15).
TOLERANCE = 1e-10


def _stand_in_for_gsgan(patch: pytest.MonkeyPatch) -> None:
    """``family_of`` asks the GSGAN converter first; stand in for it where it is not there yet."""
    try:
        import aware3d.models._released_gsgan  # noqa: F401  # pyright: ignore
    except ImportError:
        stub = types.ModuleType("aware3d.models._released_gsgan")
        stub.matches = lambda record, family: False  # type: ignore[attr-defined]
        patch.setitem(sys.modules, "aware3d.models._released_gsgan", stub)
        patch.setattr("aware3d.models._released_gsgan", stub, raising=False)


@pytest.fixture(autouse=True)
def _gsgan_converter(monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_in_for_gsgan(monkeypatch)


def load_fixture(family: str) -> dict:
    return torch.load(DATA / f"released_{family}_small.pt", weights_only=True)


def draw_values(plan: list) -> dict[str, Tensor]:
    """The fixture's tensor values ``mean + std * z``, ``z`` drawn in order from the seed."""
    rs = np.random.RandomState(2024)
    return {
        name: torch.from_numpy(
            (mean + std * rs.standard_normal(math.prod(shape))).astype(np.float32)
        ).reshape(shape)
        for name, shape, mean, std in plan
    }


def unwrap(value):
    if isinstance(value, dict):
        if set(value) == {"__easydict__"}:
            return easydict(**{k: unwrap(v) for k, v in value["__easydict__"].items()})
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(unwrap(v) for v in value)
    return value


def build_tree(node: dict, values: dict[str, Tensor], prefix: str = "") -> nn.Module:
    """The released module tree of a fixture, pickling as the released classes do."""
    if node["kind"] == "persistent":
        module = Persistent(node["name"], *unwrap(node["init_args"]), **unwrap(node["init_kwargs"]))
    else:
        module = Named(node["name"])
    for name, _ in node["parameters"]:
        module.register_parameter(name, nn.Parameter(values.pop(prefix + name), False))
    for name, spec in node["buffers"]:
        tensor = spec if isinstance(spec, Tensor) else values.pop(prefix + name)
        module.register_buffer(name, tensor, persistent=name not in node["non_persistent"])
    for key, value in node["attributes"].items():
        setattr(module, key, unwrap(value))
    for key, child in node["children"].items():
        module.add_module(key, build_tree(child, values, f"{prefix}{key}."))
    return module.train(False)


def released_generator(fixture: dict) -> nn.Module:
    values = draw_values(fixture["values"])
    tree = build_tree(fixture["tree"], values)
    assert not values, f"fixture tensors not placed: {sorted(values)[:4]}"
    return tree


def write_snapshot(path: Path, generator: nn.Module, fixture: dict) -> Path:
    """A snapshot laid out as the released training loops write it (G, D, G_ema, augment_pipe)."""
    data = {
        "training_set_kwargs": fixture["training_set_kwargs"],
        "G": generator,
        "D": Persistent("DualDiscriminator", c_dim=25, img_resolution=128, img_channels=3),
        "G_ema": generator,
        "augment_pipe": None,
    }
    path.write_bytes(dumps(data))
    return path


def rel(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def subset(tensor: Tensor, ref: dict, key: str) -> tuple[Tensor, Tensor]:
    assert tuple(tensor.shape) == tuple(ref[f"{key}_shape"])
    return tensor.reshape(-1)[ref[f"{key}_index"].long()], ref[f"{key}_values"]


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory) -> dict:
    """Each family's fixture written as a snapshot and read back once (the reader is slow under
    the test suite's type-checker hook)."""
    out = {}
    for family in FAMILIES:
        fixture = load_fixture(family)
        path = tmp_path_factory.mktemp(family) / "net.pkl"
        write_snapshot(path, released_generator(fixture), fixture)
        out[family] = (fixture, read_network_pickle(path))
    return out


@pytest.fixture(scope="module", params=FAMILIES)
def converted(request, snapshots):
    fixture, snapshot = snapshots[request.param]
    with pytest.MonkeyPatch.context() as patch:
        _stand_in_for_gsgan(patch)
        result = convert_released_generator(snapshot)
    return request.param, fixture, result


def _clone(value):
    """A copy of a record tree whose containers can be changed (tensors are shared)."""
    if isinstance(value, PersistentModule):
        return dataclasses.replace(
            value,
            init_args=_clone(value.init_args),
            init_kwargs=_clone(value.init_kwargs),
            state=_clone(value.state),
        )
    if isinstance(value, Placeholder):
        copied = object.__new__(type(value))
        copied.args, copied.kwargs = _clone(value.args), _clone(value.kwargs)
        copied.state, copied.items = _clone(value.state), _clone(value.items)
        copied.list_items = _clone(value.list_items)
        return copied
    if isinstance(value, dict):
        return type(value)((k, _clone(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return type(value)(_clone(v) for v in value)
    return value


def record_copy(snapshots: dict, family: str) -> PersistentModule:
    record = snapshots[family][1].G_ema
    assert record is not None
    return _clone(record)


def test_converts_to_the_family_assembly(converted):
    family, fixture, result = converted
    assert result.family == family
    generator = result.generator
    assert isinstance(generator, EG3DGenerator if family == "eg3d" else BallGANGenerator)
    assert (family == "ballgan") == isinstance(generator.renderer.background, SphericalBackground)
    assert not generator.training
    # every recorded tensor is copied or listed: only the fixed [1, 3, 3, 1] filters are listed
    assert result.unmapped
    assert all(entry.split(":")[0].endswith("resample_filter") for entry in result.unmapped)
    assert all("[1, 3, 3, 1]" in entry for entry in result.unmapped)
    spec = result.spec
    assert json.loads(json.dumps(spec)) == spec
    assert spec["superresolution"]["module"] == "SuperresolutionHybrid2X"
    assert spec["superresolution"]["conv_clamp"] == 256  # sr_num_fp16_res = 4 sets the clamp
    assert spec["triplane"]["conv_clamp"] is None
    assert spec["label_scale"] == 1.0 and spec["neural_resolution"] == 64
    assert spec["renderer"]["num_coarse"] == 12 and spec["renderer"]["num_fine"] == 12
    rebuilt = build_released_generator(spec)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in generator.state_dict().items()
    }


@pytest.mark.slow
def test_reproduces_the_released_outputs_float64(converted):
    """Mapping, tri-planes, decoder, super-resolution and BallGAN's background, to 1e-10."""
    family, fixture, result = converted
    ref = fixture["reference"]
    g = copy.deepcopy(result.generator).double()
    errors = {}
    with torch.no_grad():
        labels = ref["c"] * g.label_scale
        ws = g.mapping(ref["z"], labels)
        errors["ws"] = rel(ws[:, 0], ref["ws"])
        errors["ws_psi"] = rel(g.mapping(ref["z"], labels, psi=0.7)[:, 0], ref["ws_psi"])
        planes = g.triplane(ws, noise_mode="const")
        errors["planes"] = rel(*subset(planes, ref, "planes"))
        renderer = g.renderer
        sampled = sample_triplane(planes, ref["points"], box_size=renderer.box_size,
                                  projection=renderer.projection)  # fmt: skip
        density, features = renderer.decoder(sampled)
        errors["density"] = rel(density, ref["sigma"].reshape(density.shape))
        errors["features"] = rel(features, ref["rgb"].reshape(features.shape))
        image = g.superresolution(ref["sr_features"], ws, noise_mode="none")
        errors["superresolution"] = rel(*subset(image, ref, "sr_image"))
        if family == "ballgan":
            ws_bg = g.background_mapping(ref["z_bg"])
            errors["ws_bg"] = rel(ws_bg[:, 0], ref["ws_bg"])
            features_bg, t_bg = renderer.background.features_and_distance(
                ref["bg_origins"], ref["bg_dirs"], ws_bg
            )
            errors["background"] = rel(features_bg, ref["bg_features"])
            errors["background_distance"] = rel(t_bg, ref["bg_depth"])
    assert max(errors.values()) < TOLERANCE, errors


def test_ballgan_background_needs_the_released_epsilon():
    """The default epsilon placement differs at the 1e-9 level: that is why the option exists."""
    fixture = load_fixture("ballgan")
    ref = fixture["reference"]
    torch.manual_seed(0)
    background = SphericalBackground(
        8, 32, 3.0, 8, 2, 3, encoding="angles", output_activation="sigmoid", demodulation_eps="raw"
    )
    background = background.double()
    scaled = copy.deepcopy(background)
    scaled.demodulation_eps = "scaled"
    w = torch.randn(1, 3, 8, dtype=torch.float64)
    with torch.no_grad():
        raw = background.features_and_distance(ref["bg_origins"], ref["bg_dirs"], w)[0]
        default = scaled.features_and_distance(ref["bg_origins"], ref["bg_dirs"], w)[0]
        layer = background.layers[0]
        x = torch.randn(1, 5, layer.in_features, dtype=torch.float64)
        styles = layer.affine(w[:, 0])
        modulated = layer.weight[None] * styles[:, None]  # [B, O, I], the raw weight
        expected = torch.einsum("bpi,boi->bpo", x, modulated)
        expected = expected / (modulated.square().sum(-1) + 1e-8).sqrt()[:, None]
        expected = torch.nn.functional.leaky_relu(expected + layer.bias, 0.2) * math.sqrt(2)
        from aware3d.nn.background import _demodulated_raw_eps

        assert rel(_demodulated_raw_eps(layer, x, w[:, 0]), expected) < 1e-14
    assert 1e-12 < rel(default, raw) < 1e-6


def test_matches_tells_the_families_apart(snapshots):
    for family in FAMILIES:
        record = record_copy(snapshots, family)
        assert matches(record, family)
        assert not matches(record, "ballgan" if family == "eg3d" else "eg3d")
        assert not matches(record, "gsgan")


def _rendering(record: PersistentModule, **changes) -> PersistentModule:
    record.init_kwargs["rendering_kwargs"] = dict(record.init_kwargs["rendering_kwargs"], **changes)
    return record


def _sub(record: PersistentModule, dotted: str) -> PersistentModule:
    found = record
    for part in dotted.split("."):
        found = found.submodules[part]
    assert isinstance(found, PersistentModule)
    return found


@pytest.mark.parametrize(
    ("family", "change", "named"),
    [
        ("eg3d", lambda r: _rendering(r, white_back=True), "white_back"),
        ("eg3d", lambda r: _rendering(r, clamp_mode="relu"), "clamp_mode"),
        ("eg3d", lambda r: _rendering(r, density_noise=0.5), "density_noise"),
        (
            "eg3d",
            lambda r: _rendering(r, superresolution_module="x.SuperresolutionHybrid4X"),
            "superresolution_module",
        ),
        (
            "eg3d",
            lambda r: _sub(r, "superresolution").init_kwargs.update(img_resolution=1024),
            "img_resolution",
        ),
        (
            "eg3d",
            lambda r: _sub(r, "backbone.synthesis").init_kwargs.update(img_channels=48),
            "img_channels",
        ),
        (
            "eg3d",
            lambda r: _sub(r, "backbone.synthesis.b8").init_kwargs.update(architecture="resnet"),
            "architecture",
        ),
        ("eg3d", lambda r: _sub(r, "backbone.mapping").init_kwargs.update(c_dim=3), "c_dim"),
        (
            "ballgan",
            lambda r: _sub(r, "decoder.sigma_out").init_kwargs.update(activation="relu"),
            "sigma_act",
        ),
        ("ballgan", lambda r: r.init_kwargs["BG_kwargs"].update(bg_ver="ver0"), "bg_ver"),
        (
            "ballgan",
            lambda r: _sub(r, "BG_Net").init_args[0].update(downscale_p_by=1.0),
            "downscale_p_by",
        ),
        ("ballgan", lambda r: _sub(r, "BG_Net").init_args[0].update(use_pos=True), "use_pos"),
    ],
)
def test_unsupported_arguments_are_refused_naming_them(snapshots, family, change, named):
    record = record_copy(snapshots, family)
    change(record)
    with pytest.raises(ReleasedModelError, match=named) as info:
        generator_spec(record, "bad.pkl")
    assert str(info.value).startswith("bad.pkl: ")


def test_missing_tensor_is_refused_naming_it(snapshots):
    record = record_copy(snapshots, "eg3d")
    del _sub(record, "backbone.synthesis.b8.conv1").state["_parameters"]["weight"]
    spec = generator_spec(record, "bad.pkl")
    with pytest.raises(ReleasedModelError, match=r"bad\.pkl: .*synthesis\.b8\.conv1\.weight"):
        generator_state(record, spec, "bad.pkl")


def test_extra_tensor_is_listed_and_odd_filter_refused(snapshots):
    record = record_copy(snapshots, "ballgan")
    decoder = record.submodules["decoder"]
    decoder.state["_buffers"]["calibration"] = torch.ones(3)
    spec = generator_spec(record, "x.pkl")
    state, unmapped = generator_state(record, spec, "x.pkl")
    assert "decoder.calibration: no place in aware3d's ballgan generator" in unmapped
    assert len(state) == len(build_released_generator(spec).state_dict())
    buffers = _sub(record, "superresolution.block1").state["_buffers"]
    buffers["resample_filter"] = buffers["resample_filter"] * 2
    with pytest.raises(ReleasedModelError, match="resample_filter"):
        generator_state(record, spec, "x.pkl")


def test_file_errors_name_the_file_and_come_before_building(tmp_path, monkeypatch):
    """Through a file: a refused argument names the file, and no module is built first."""
    fixture = load_fixture("eg3d")
    generator = released_generator(fixture)
    generator.init[1]["rendering_kwargs"] = dict(generator.init[1]["rendering_kwargs"],
                                                 white_back=True)  # fmt: skip
    path = write_snapshot(tmp_path / "white.pkl", generator, fixture)

    def never(spec):
        raise AssertionError("built before the arguments were checked")

    monkeypatch.setattr("aware3d.models._released_triplane.build_generator", never)
    with pytest.raises(ReleasedModelError, match="white_back") as info:
        convert_released_generator(path)
    assert str(path) in str(info.value)


def test_zero_pose_conditioning_and_c_scale(snapshots):
    record = _rendering(record_copy(snapshots, "eg3d"), c_gen_conditioning_zero=True)
    assert generator_spec(record, "x.pkl")["label_scale"] == 0.0
    record = _rendering(record_copy(snapshots, "eg3d"), c_scale=2.0)
    assert generator_spec(record, "x.pkl")["label_scale"] == 2.0
    del record.init_kwargs["rendering_kwargs"]["c_scale"]  # EG3D's mapping: c * get("c_scale", 0)
    assert generator_spec(record, "x.pkl")["label_scale"] == 0.0


def test_conv_clamp():
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 4, 8, 8, conv_clamp=0.5)
    free = copy.deepcopy(layer)
    free.conv_clamp = None
    x, w = torch.randn(2, 4, 8, 8) * 10, torch.randn(2, 8)
    clamped, unclamped = layer(x, w, noise_mode="none"), free(x, w, noise_mode="none")
    assert unclamped.abs().max() > 0.5
    assert torch.equal(clamped, unclamped.clamp(-0.5, 0.5))
    torgb = ToRGBLayer(4, 3, 8, conv_clamp=0.1)
    assert torgb(x, w).abs().max() <= 0.1
    with pytest.raises(ValueError, match="conv_clamp"):
        SynthesisLayer(4, 4, 8, 8, conv_clamp=0)


def test_eg3d_generator_renders_without_a_background():
    from aware3d.cameras import Cameras, look_at
    from aware3d.nn import MappingNetwork, SuperResolution, TriplaneDecoder, small_triplane
    from aware3d.nn.volume_renderer import TriplaneRenderer

    torch.manual_seed(0)
    triplane = small_triplane(16, resolution=8, plane_channels=4, channel_max=8)
    renderer = TriplaneRenderer(TriplaneDecoder(4, 4, hidden=8), num_coarse=4, num_fine=4)
    generator = EG3DGenerator(
        MappingNetwork(16, 16, triplane.num_ws, c_dim=25, num_layers=1),
        triplane,
        renderer,
        SuperResolution(4, 8, 16, 16, block_channels=(8,), conv_clamp=256.0),
        neural_resolution=8,
        label_scale=0.0,
    ).eval()
    eye = torch.tensor([[0.0, 0.0, 2.7]])
    cam2world = look_at(eye, torch.tensor([0.0, 0.0, 0.2]))[None].expand(2, 1, 4, 4)
    intrinsics = torch.tensor([[4.2647, 0, 0.5], [0, 4.2647, 0.5], [0, 0, 1]]).expand(2, 1, 3, 3)
    out = generator(torch.randn(2, 16), Cameras(cam2world, intrinsics), 16, 16)
    assert generator.latent_dim == 16 and generator.background_mapping is None
    assert out.images.shape == (2, 1, 16, 16, 3) and out.ws_background is None
    assert out.render.background is None and generator.regularizers(out) == {}
    assert generator.discriminator_images(out).shape == (2, 1, 16, 16, 6)
    # zero pose conditioning: the label does not matter
    other = generator(
        torch.zeros(2, 16), Cameras(cam2world, intrinsics), 16, 16, c=torch.ones(2, 25)
    )
    same = generator(torch.zeros(2, 16), Cameras(cam2world, intrinsics), 16, 16)
    assert torch.equal(other.images, same.images)
    with pytest.raises(ValueError, match="no background"):
        generator(torch.randn(2, 16), Cameras(cam2world, intrinsics), 16, 16,
                  z_background=torch.randn(2, 4))  # fmt: skip
