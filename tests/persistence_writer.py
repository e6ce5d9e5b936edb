"""A writer of ``torch_utils.persistence`` network pickles for tests (no author code needed).

``Writer`` (``pickle._Pickler`` with extra dispatch entries) names
``torch_utils.persistence._reconstruct_persistent_obj``, ``dnnlib.util.EasyDict`` and the authors'
classes as globals without any such module existing; tensors are pickled by torch itself
(``_rebuild_parameter(_rebuild_tensor_v2(_load_from_bytes(<legacy torch.save stream>)))``).
``Persistent`` is a module that pickles like a ``@persistent_class`` instance, ``Named`` a
non-persistent module pickled under another import path.
"""

import io
import pickle
import pickletools
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

# Source that must stay text: running it would create this file in the working directory.
MODULE_SRC = "import pathlib\npathlib.Path('source_was_executed').touch()\nclass Generator: pass\n"


class Stub:
    """A global written by name (``GLOBAL module name``); nothing by that name needs to exist."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self, *args):  # save_reduce wants a callable; never called
        raise AssertionError


class NewObj:
    """An object of a named class: ``NEWOBJ`` (no args), ``SETITEM``s, then ``BUILD state``."""

    def __init__(self, module: str, name: str, state=None, items=None) -> None:
        self.module, self.name, self.state, self.items = module, name, state, items or {}


def easydict(**items) -> NewObj:
    """``dnnlib.util.EasyDict`` as Python 3.9 pickles it (``NEWOBJ``, items, empty ``BUILD``)."""
    return NewObj("dnnlib.util", "EasyDict", state={}, items=items)


class Persistent(nn.Module):
    """A module that pickles like a ``@persistent_class`` instance."""

    def __init__(self, class_name: str, *init_args, version=6, kind="class", **init_kwargs):
        super().__init__()
        self.meta = dict(type=kind, version=version, module_src=MODULE_SRC, class_name=class_name)
        self.init = (init_args, init_kwargs)

    def __reduce_ex__(self, protocol):
        state = {k: v for k, v in vars(self).items() if k not in ("meta", "init")}
        state["_init_args"], state["_init_kwargs"] = self.init
        meta = dict(self.meta, state=state)
        return Stub("torch_utils.persistence", "_reconstruct_persistent_obj"), (meta,)


class Named(nn.Module):
    """A non-persistent module pickled under another name (``training.triplane.OSGDecoder``)."""

    def __init__(self, qualified_name: str) -> None:
        super().__init__()
        self.pickle_as = qualified_name


class Raw:
    """An object reduced to ``(func, args)`` as given."""

    def __init__(self, func, *args) -> None:
        self.reduced = (func, args)

    def __reduce__(self):
        return self.reduced


class Writer(pickle._Pickler):
    dispatch = pickle._Pickler.dispatch.copy()

    def save_stub(self, obj: Stub) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    def save_newobj(self, obj: NewObj) -> None:
        self.save(Stub(obj.module, obj.name))
        self.save(())
        self.write(pickle.NEWOBJ)
        self.memoize(obj)
        for key, value in obj.items.items():
            self.save(key)
            self.save(value)
            self.write(pickle.SETITEM)
        if obj.state is not None:
            self.save(obj.state)
            self.write(pickle.BUILD)

    def save_named(self, obj: Named) -> None:
        module, _, name = obj.pickle_as.rpartition(".")
        state = {k: v for k, v in vars(obj).items() if k != "pickle_as"}
        self.save_newobj(NewObj(module, name, state=state))

    dispatch[Stub] = save_stub
    dispatch[NewObj] = save_newobj
    dispatch[Named] = save_named


def dumps(obj) -> bytes:
    buf = io.BytesIO()
    Writer(buf, protocol=4).dump(obj)
    return buf.getvalue()


def write(tmp_path: Path, obj, name: str = "net.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(obj if isinstance(obj, bytes) else dumps(obj))
    return path


def storage_stream(tensor: torch.Tensor, location: str = "cpu") -> bytes:
    """``tensor``'s storage as ``torch.storage._load_from_bytes`` receives it (legacy format)."""
    (stream,) = [a for _, a, _ in pickletools.genops(pickle.dumps(tensor)) if type(a) is bytes]
    # The location is a BINUNICODE string in the storage's persistent id.
    cpu = b"X\x03\x00\x00\x00cpu"
    assert stream.count(cpu) == 1
    return stream.replace(cpu, b"X" + len(location).to_bytes(4, "little") + location.encode())


def cuda_tensor(tensor: torch.Tensor) -> Raw:
    """``tensor`` pickled as a tensor whose storage was saved from ``cuda:0`` (GSGAN)."""
    data = storage_stream(tensor.float().contiguous(), "cuda:0")
    storage = Raw(torch.storage._load_from_bytes, data)
    args = (storage, 0, tuple(tensor.shape), tensor.stride(), True, OrderedDict())
    return Raw(torch._utils._rebuild_tensor_v2, *args)
