"""The safe reader of ``torch_utils.persistence`` network pickles (aware3d.models._persistence).

The pickles are written here in the authors' format by a small writer (``pickle._Pickler`` with
extra dispatch entries) that names ``torch_utils.persistence._reconstruct_persistent_obj``,
``dnnlib.util.EasyDict`` and the authors' classes as globals without any such module existing.
Tensors are pickled by torch itself (``_rebuild_parameter(_rebuild_tensor_v2(
_load_from_bytes(<legacy torch.save stream>)))``).
"""

import builtins
import io
import os
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aware3d.models._persistence import (
    ALLOWED_GLOBALS,
    ForbiddenGlobalError,
    GlobalRef,
    NetworkPickleError,
    PersistentModule,
    Placeholder,
    read_network_pickle,
)
from persistence_writer import (
    MODULE_SRC,
    Named,
    NewObj,
    Persistent,
    Raw,
    Stub,
    Writer,
    cuda_tensor,
    dumps,
    easydict,
    storage_stream,
    write,
)


def generator() -> tuple[Persistent, dict[str, torch.Tensor]]:
    """A G in the authors' shape, and the state_dict a torch module of that shape would have."""
    G = Persistent("Generator", 8, mapping_kwargs=easydict(num_layers=2), rendering_kwargs={})
    G.register_parameter("_xyz", nn.Parameter(torch.randn(5, 3)))
    mapping = Persistent("MappingNetwork", z_dim=8)
    mapping.fc0 = nn.Linear(8, 4)
    mapping.fc1 = Persistent("FullyConnectedLayer", 4, 4)
    mapping.fc1.weight = nn.Parameter(torch.randn(4, 4))
    mapping.fc1.bias = nn.Parameter(torch.zeros(4))
    mapping.register_buffer("w_avg", torch.randn(4))
    mapping.register_buffer("scratch", torch.ones(2), persistent=False)
    G.mapping = mapping
    decoder = Named("training.triplane.OSGDecoder")
    decoder.net = nn.Sequential(nn.Linear(4, 4), nn.Softplus(), nn.Linear(4, 2))
    decoder.hidden_dim = 4
    G.decoder = decoder
    G.renderer = Named("training.volumetric_rendering.renderer.ImportanceRenderer")
    G.renderer_gaussian3d = NewObj(
        "training.gaussian3d_splatting.renderer",
        "Renderer",
        state={
            "sh_degree": 0,
            "bg_color": torch.zeros(3),
            "scaling_activation": torch.exp,
            "opacity_activation": torch.sigmoid,
            "rotation_activation": torch.nn.functional.normalize,
            "covariance_activation": Stub(
                "training.gaussian3d_splatting.renderer", "build_covariance_from_scaling_rotation"
            ),
        },
    )
    G.rendering_kwargs = easydict(ray_start=2.25, custom_options=easydict(num_pts=256))
    G.scale = np.float32(0.5)
    G.steps = np.int64(3)
    G.device = torch.device("cuda", 0)
    G.dtype = torch.float16
    G.reverse_camera_direction = torch.eye(4)
    return G, G.state_dict()  # what torch names and orders


def snapshot(**networks) -> dict:
    return dict(training_set_kwargs=dict(path="ffhq.zip", resolution=64), **networks)


@pytest.fixture
def no_author_packages():
    for name in ("dnnlib", "torch_utils"):
        assert name not in sys.modules
    yield
    for name in ("dnnlib", "dnnlib.util", "torch_utils", "torch_utils.persistence"):
        assert name not in sys.modules
    assert not Path("source_was_executed").exists()


def test_reads_a_snapshot(tmp_path, no_author_packages):
    G, expected = generator()
    D = Persistent("DualDiscriminator")
    D.init = ((), easydict(c_dim=25, block_kwargs=easydict(freeze_layers=0)))  # an EasyDict itself
    D.b4 = nn.Linear(3, 1)
    path = write(tmp_path, snapshot(G=G, D=D, G_ema=G, augment_pipe=None, cur_nimg=1000))
    net = read_network_pickle(path)

    assert net.path == path
    assert isinstance(net.G, PersistentModule) and net.G_ema is net.G
    assert net.augment_pipe is None
    assert net.training_set_kwargs == dict(path="ffhq.zip", resolution=64)
    assert net.extra == {"cur_nimg": 1000}
    g = net.G
    assert g.class_name == "Generator" and g.version == 6 and g.module_src == MODULE_SRC
    assert g.init_args == (8,)
    assert g.init_kwargs == {"mapping_kwargs": {"num_layers": 2}, "rendering_kwargs": {}}
    assert type(g.init_kwargs["mapping_kwargs"]) is dict
    assert g.training is True and g.is_module

    # Parameters and buffers over the tree, with state_dict()'s names and order.
    state = g.state_dict()
    assert list(state) == list(expected)
    for name, tensor in expected.items():
        assert state[name].device.type == "cpu" and not state[name].requires_grad
        torch.testing.assert_close(state[name], tensor.detach(), rtol=0, atol=0)
    assert set(g.parameters()) == {k for k in expected if k != "mapping.w_avg"}
    assert set(g.buffers()) == {"mapping.w_avg", "mapping.scratch"}

    # Nested records: persistent, torch placeholders, the authors' placeholders.
    mapping = g.submodules["mapping"]
    assert isinstance(mapping, PersistentModule) and mapping.init_kwargs == {"z_dim": 8}
    assert isinstance(mapping.submodules["fc1"], PersistentModule)
    fc0 = mapping.submodules["fc0"]
    assert isinstance(fc0, Placeholder) and fc0.qualified_name == "torch.nn.modules.linear.Linear"
    assert fc0.attributes == {"in_features": 8, "out_features": 4}
    assert mapping.non_persistent_buffer_names == {"scratch"}
    decoder = g.submodules["decoder"]
    assert decoder.qualified_name == "training.triplane.OSGDecoder"
    assert decoder.attributes == {"hidden_dim": 4}
    assert [type(m).qualified_name for m in decoder.submodules["net"].submodules.values()] == [
        "torch.nn.modules.linear.Linear",
        "torch.nn.modules.activation.Softplus",
        "torch.nn.modules.linear.Linear",
    ]
    renderer = g.submodules["renderer"]
    assert renderer.qualified_name.endswith("volumetric_rendering.renderer.ImportanceRenderer")
    assert set(g.named_modules()) >= {"", "mapping", "mapping.fc1", "decoder.net.2", "renderer"}

    # Plain attributes: GSGAN's renderer with its functions, numpy scalars, device, dtype.
    attrs = g.attributes
    gaussians = attrs["renderer_gaussian3d"]
    assert isinstance(gaussians, Placeholder) and not gaussians.is_module
    assert gaussians.state["opacity_activation"] == GlobalRef("torch.sigmoid")
    assert gaussians.state["scaling_activation"] == GlobalRef("torch.exp")
    assert gaussians.state["rotation_activation"] == GlobalRef("torch.nn.functional.normalize")
    assert gaussians.state["covariance_activation"] == GlobalRef(
        "training.gaussian3d_splatting.renderer.build_covariance_from_scaling_rotation"
    )
    torch.testing.assert_close(gaussians.state["bg_color"], torch.zeros(3))
    assert attrs["rendering_kwargs"] == {"ray_start": 2.25, "custom_options": {"num_pts": 256}}
    assert type(attrs["rendering_kwargs"]["custom_options"]) is dict
    assert attrs["scale"] == np.float32(0.5) and attrs["scale"].dtype == np.float32
    assert attrs["steps"] == 3 and attrs["steps"].dtype == np.int64
    assert attrs["device"] == torch.device("cuda", 0) and attrs["dtype"] is torch.float16
    torch.testing.assert_close(attrs["reverse_camera_direction"], torch.eye(4))
    assert "_init_kwargs" not in attrs and "_forward_hooks" not in attrs
    assert net.D.init_kwargs == {"c_dim": 25, "block_kwargs": {"freeze_layers": 0}}
    assert type(net.D.init_kwargs) is dict and type(net.D.init_kwargs["block_kwargs"]) is dict
    assert net.D.submodules["b4"].own_parameters.keys() == {"weight", "bias"}


def test_cuda_storages_are_read_on_the_cpu(tmp_path, no_author_packages):
    values = torch.arange(6.0).reshape(2, 3)
    with pytest.raises(RuntimeError, match="CUDA"):  # what torch does without a map_location
        torch.load(io.BytesIO(storage_stream(values, "cuda:0")), weights_only=True)
    G = Persistent("Generator")
    G._parameters["_xyz"] = Raw(torch._utils._rebuild_parameter, cuda_tensor(values), True, {})
    G._buffers["w_avg"] = cuda_tensor(values[0])
    g = read_network_pickle(write(tmp_path, snapshot(G=G, G_ema=G, D=None))).G
    assert g.parameters()["_xyz"].device == torch.device("cpu")
    torch.testing.assert_close(g.parameters()["_xyz"], values)
    torch.testing.assert_close(g.buffers()["w_avg"], values[0])


def test_views_and_old_pickle_protocols(tmp_path, no_author_packages):
    # Torch pickles each view with its own copy of the storage; offsets and strides must hold.
    base = torch.arange(12.0)
    G, expected = generator()
    G.register_buffer("a", base[2:5])
    G.register_buffer("b", base.view(3, 4)[:, 1])
    G.blob = b"\x00\xff"
    for protocol in (0, 1, 2, 4):  # 0-2: Python 2 names, copyreg._reconstructor, _codecs.encode
        buf = io.BytesIO()
        Writer(buf, protocol=protocol).dump(snapshot(G=G))
        g = read_network_pickle(write(tmp_path, buf.getvalue(), f"p{protocol}.pkl")).G
        torch.testing.assert_close(g.buffers()["a"], base[2:5])
        torch.testing.assert_close(g.buffers()["b"], base.view(3, 4)[:, 1])
        assert list(g.state_dict()) == list(G.state_dict())
        assert g.attributes["blob"] == b"\x00\xff"
        assert g.init_kwargs["mapping_kwargs"] == {"num_layers": 2}
        assert g.submodules["mapping"].submodules["fc0"].attributes["in_features"] == 8


def test_resumed_runs_and_augment_pipe(tmp_path, no_author_packages):
    # A class defined in pickled source of a resumed run lives in _imported_module_<hex>.
    G = Persistent("TriPlaneGenerator")
    G.decoder = Named(f"_imported_module_{'0a' * 16}.OSGDecoder")
    augment = Persistent("AugmentPipe", xflip=1)
    net = read_network_pickle(write(tmp_path, snapshot(G_ema=G, augment_pipe=augment)))
    assert net.G is None and net.D is None
    assert net.G_ema.submodules["decoder"].qualified_name.endswith(".OSGDecoder")
    assert isinstance(net.augment_pipe, PersistentModule)
    assert net.augment_pipe.init_kwargs == {"xflip": 1}


class Evil:
    """``func(*args)`` on load."""

    def __init__(self, func, *args) -> None:
        self.reduced = (func, args)

    def __reduce__(self):
        return self.reduced


def payloads(marker: Path) -> dict[str, object]:
    command = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": Evil(Stub("os", "system"), command),
        "posix.system": Evil(os.system, command),
        "builtins.eval": Evil(builtins.eval, code),
        "builtins.exec": Evil(builtins.exec, code),
        "subprocess.Popen": Evil(subprocess.Popen, ["touch", str(marker)]),
        "builtins.__import__": Evil(builtins.getattr, Evil(builtins.__import__, "os"), "system"),
        "importlib.import_module": Evil(Stub("importlib", "import_module"), "os"),
        "torch.load": Evil(Stub("torch", "load"), str(marker)),
        "dnnlib.util.call_func_by_name": Evil(
            Stub("dnnlib.util", "call_func_by_name"), "os.system"
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "os.system",
        "posix.system",
        "builtins.eval",
        "builtins.exec",
        "subprocess.Popen",
        "builtins.__import__",
        "importlib.import_module",
        "torch.load",
        "dnnlib.util.call_func_by_name",
    ],
)
def test_refuses_dangerous_globals_by_name(tmp_path, name, no_author_packages):
    marker = tmp_path / "payload_ran"
    G = Persistent("Generator")
    G.hook = payloads(marker)[name]
    path = write(tmp_path, snapshot(G=G))
    with pytest.raises(ForbiddenGlobalError) as info:
        read_network_pickle(path)
    module, _, attr = name.rpartition(".")
    assert (info.value.module, info.value.name) == (module, attr)
    assert str(path) in str(info.value) and f"refused global {name}" in str(info.value)
    assert isinstance(info.value, pickle.UnpicklingError) and isinstance(info.value, ValueError)
    assert not marker.exists()


def test_the_eval_payload_is_live(tmp_path):
    # The control: plain pickle runs the payload the reader refuses.
    marker = tmp_path / "payload_ran"
    pickle.loads(dumps(payloads(marker)["builtins.eval"]))
    assert marker.exists()


@pytest.mark.parametrize(
    ("target", "attr"),
    [
        (Stub("torch._C", "_VariableFunctionsClass"), "__class__"),
        (Stub("torch._C", "_VariableFunctionsClass"), "_private"),
        (Stub("collections", "OrderedDict"), "fromkeys"),
        (Stub("torch.nn.functional", "normalize"), "__globals__"),
        (Stub("torch.nn.modules.linear", "Linear"), "__init__"),
        (Stub("builtins", "set"), "__subclasses__"),
    ],
)
def test_getattr_only_on_torch_functions(tmp_path, target, attr, no_author_packages):
    G = Persistent("Generator")
    G.act = Evil(builtins.getattr, target, attr)
    path = write(tmp_path, snapshot(G=G))
    with pytest.raises(ForbiddenGlobalError, match="builtins.getattr") as info:
        read_network_pickle(path)
    assert str(path) in str(info.value) and repr(attr) in str(info.value)


def test_a_malicious_storage_stream_is_refused_by_torch(tmp_path, no_author_packages):
    marker = tmp_path / "payload_ran"
    legacy = io.BytesIO(storage_stream(torch.zeros(2)))
    for _ in range(3):  # magic number, protocol version, system info
        pickle.load(legacy)
    header = legacy.getvalue()[: legacy.tell()]
    nested = header + pickle.dumps(
        Evil(builtins.eval, f"open({str(marker)!r}, 'w').close()"), protocol=2
    )
    G = Persistent("Generator")
    G._buffers["w"] = Raw(
        torch._utils._rebuild_tensor_v2,
        Raw(torch.storage._load_from_bytes, nested),
        0,
        (2,),
        (1,),
        False,
        OrderedDict(),
    )
    path = write(tmp_path, snapshot(G=G))
    with pytest.raises(NetworkPickleError, match="weights_only") as info:
        read_network_pickle(path)
    assert str(path) in str(info.value) and "storage stream" in str(info.value)
    assert "Unsupported global: GLOBAL eval" in str(info.value)
    assert not marker.exists()


def test_placeholders_and_references_are_inert(tmp_path, no_author_packages):
    # A placeholder class or function reference called through REDUCE runs nothing.
    G = Persistent("Generator")
    G.layer = Evil(Stub("torch.nn.modules.linear", "Linear"), 3, 4)
    net = read_network_pickle(write(tmp_path, snapshot(G=G)))
    layer = net.G.attributes["layer"]
    assert isinstance(layer, Placeholder) and layer.args == (3, 4) and not layer.own_parameters
    G.layer = Evil(Stub("torch.nn.functional", "normalize"), torch.zeros(2))
    with pytest.raises(NetworkPickleError, match="not callable"):
        read_network_pickle(write(tmp_path, snapshot(G=G)))


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"kind": "function"}, "unknown type 'function'"),
        ({"version": 7}, "persistence version 7"),
        ({"version": "6"}, "persistence version '6'"),
    ],
)
def test_unknown_persistent_meta(tmp_path, meta, message, no_author_packages):
    path = write(tmp_path, snapshot(G=Persistent("Generator", **meta)))
    with pytest.raises(NetworkPickleError, match=message) as info:
        read_network_pickle(path)
    assert str(path) in str(info.value)


def test_older_persistence_versions(tmp_path, no_author_packages):
    for version in (4, 5):
        net = read_network_pickle(write(tmp_path, snapshot(G=Persistent("G", version=version))))
        assert net.G.version == version


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "ends early"),
        (b"this is not a pickle, just text\n", "not a pickle"),
        ("truncated", "ends early"),
        (pickle.dumps([1, 2, 3]), "unknown top-level structure list"),
        (pickle.dumps({"generator": 1}), "without G, G_ema or D"),
        (pickle.dumps({"G": {"a": 1}}), "entry 'G' is a builtins.dict"),
        ("persid", "not a pickle"),
    ],
)
def test_bad_files(tmp_path, content, message, no_author_packages):
    if content == "truncated":
        data = dumps(snapshot(G=generator()[0]))
        content = data[: len(data) // 2]
    elif content == "persid":
        content = b"\x80\x04P0\n."  # a persistent id, which these files never hold
    path = write(tmp_path, content)
    with pytest.raises(NetworkPickleError, match=message) as info:
        read_network_pickle(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_network_pickle(tmp_path / "absent.pkl")


def test_allow_list_names_no_code_runners():
    modules = {module for module, _ in ALLOWED_GLOBALS}
    assert not modules & {"os", "posix", "nt", "subprocess", "sys", "importlib", "runpy", "io"}
    assert not {("builtins", "eval"), ("builtins", "exec"), ("torch", "load")} & ALLOWED_GLOBALS


def test_large_storages_are_read_from_the_file_in_place(tmp_path, no_author_packages):
    # Storages of >= 64 KiB are not read into a byte string first: torch.load reads them through
    # a window onto the file (the pickle writes them outside its frames).
    big = torch.randn(300, 100)  # 120 KB
    G = Persistent("Generator")
    G.register_parameter("weight", nn.Parameter(big))
    G.register_buffer("small", torch.arange(5.0))
    path = write(tmp_path, snapshot(G=G, G_ema=G))
    net = read_network_pickle(path)
    torch.testing.assert_close(net.G.state_dict()["weight"], big, rtol=0, atol=0)
    torch.testing.assert_close(net.G.state_dict()["small"], torch.arange(5.0), rtol=0, atol=0)
    data = path.read_bytes()
    for keep in (len(data) // 2, len(data) - 10):  # cut inside the large storage, and after it
        cut = write(tmp_path, data[:keep], f"cut{keep}.pkl")
        with pytest.raises(NetworkPickleError, match="ends early|damaged"):
            read_network_pickle(cut)


def test_records_can_be_deep_copied(tmp_path, no_author_packages):
    import copy

    G, _ = generator()
    net = read_network_pickle(write(tmp_path, snapshot(G=G)))
    clone = copy.deepcopy(net)
    decoder = clone.G.submodules["decoder"]
    assert isinstance(decoder, Placeholder)
    assert decoder.qualified_name == "training.triplane.OSGDecoder"
    assert clone.G.state_dict().keys() == net.G.state_dict().keys()
