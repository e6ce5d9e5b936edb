"""A safe reader for ``torch_utils.persistence`` network pickles (EG3D, GSGAN, BallGAN snapshots).

The ``network-snapshot-*.pkl`` files written by StyleGAN2-ADA-derived training loops
(NVlabs/stylegan2-ada-pytorch, NVlabs/eg3d, hse1032/GSGAN, minjung-s/BallGAN) are plain
:func:`pickle.dump` output of ``dict(training_set_kwargs=dict(...), G=..., D=..., G_ema=...,
augment_pipe=...)``. Loading them with :mod:`pickle` imports the authors' ``dnnlib`` and
``torch_utils`` packages and ``exec``-s the Python source embedded in the file. This module reads
the same bytes without importing or executing anything of theirs: :func:`read_network_pickle`
returns inert records (:class:`PersistentModule`, :class:`Placeholder`, :class:`GlobalRef`) and
CPU tensors, which a converter maps onto the library's own modules.

Format facts (from ``torch_utils/persistence.py``, ``training/training_loop.py`` and
``legacy.py`` of the four repositories named above; all write persistence version 6):

* A ``@persistent_class`` instance pickles as the call
  ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with
  ``meta = dict(type='class', version=6, module_src=<source of the class's whole module>,
  class_name=<name>, state=<the instance's __dict__>)``. For a ``torch.nn.Module`` the state holds
  ``training``, ``_parameters`` / ``_buffers`` / ``_modules`` (ordered dicts),
  ``_non_persistent_buffers_set``, the hook dicts, ``_init_args`` (tuple), ``_init_kwargs`` (a dict
  whose values may be ``dnnlib.util.EasyDict``) and the object's plain attributes.
* Other objects pickle by import path: ``torch.nn.modules.*`` layers and containers, EG3D's and
  BallGAN's ``training.triplane.OSGDecoder`` and ``training.volumetric_rendering.*`` (renderer, ray
  sampler, ray marcher), GSGAN's ``training.gaussian3d_splatting.renderer.Renderer`` (a plain
  object, not a module) and its functions; a module defined in pickled source (a run resumed from
  a snapshot) has the name ``_imported_module_<32 hex digits>``. ``dnnlib.util.EasyDict`` is a
  ``dict`` subclass (``NEWOBJ`` + ``SETITEMS``, possibly an empty ``BUILD``).
* ``torch.sigmoid`` / ``torch.exp`` stored as attributes (GSGAN's ``Renderer``) pickle as
  ``builtins.getattr(torch._C._VariableFunctionsClass, 'sigmoid')``;
  ``torch.nn.functional.normalize`` by name.
* A tensor pickles as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
  requires_grad, backward_hooks[, metadata])``, a parameter as ``torch._utils._rebuild_parameter(
  tensor, requires_grad, backward_hooks)`` (``_rebuild_parameter_with_state`` with a fourth
  argument), and the storage as ``torch.storage._load_from_bytes(b)``, where ``b`` is a legacy
  (non-zip) ``torch.save`` stream of the storage that records its device (``cuda:0`` in GSGAN's
  snapshots, which skip EG3D's ``.cpu()``). Torch's ``_load_from_bytes`` unpickles ``b`` with
  ``weights_only=False``; this reader never calls it and parses ``b`` with
  ``torch.load(weights_only=True, map_location="cpu")`` instead, reading a large ``b`` straight
  from the file (see :class:`_SafeUnpickler`), so that a file needs about its own size in
  memory.

Everything else is refused by name (:class:`ForbiddenGlobalError`) before it is imported; the
allow-list is :data:`ALLOWED_GLOBALS` plus the namespaces in :data:`PLACEHOLDER_NAMESPACES`, the
functions of ``torch.nn.functional`` and the dtypes / layouts / memory formats of ``torch``.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import copy
import dataclasses
import importlib
import io
import os
import pickle
import re
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, TypeAlias, cast

import numpy as np
import torch
import torch._utils
from torch import Tensor

__all__ = [
    "ALLOWED_GLOBALS",
    "PLACEHOLDER_NAMESPACES",
    "SUPPORTED_VERSIONS",
    "ForbiddenGlobalError",
    "GlobalRef",
    "ModuleRecord",
    "NetworkPickle",
    "NetworkPickleError",
    "PersistentModule",
    "Placeholder",
    "read_network_pickle",
]

#: ``meta['version']`` values accepted. Version 6 is the one written by every public copy of
#: ``torch_utils/persistence.py`` (stylegan2-ada-pytorch, EG3D, GSGAN, BallGAN); 4 and 5 are
#: accepted with the same ``meta`` layout (type, version, module_src, class_name, state) because
#: older internal snapshots are reported to carry them. No public source of 4 or 5 was found.
SUPPORTED_VERSIONS = frozenset({4, 5, 6})

#: Globals (``module``, ``name``) the reader resolves, each to one of its own data-only
#: stand-ins or to a harmless constructor; described in :meth:`_SafeUnpickler.find_class`.
ALLOWED_GLOBALS = frozenset(
    {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"),
        ("dnnlib.util", "EasyDict"),
        ("dnnlib", "EasyDict"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor_v3"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.storage", "_load_from_bytes"),
        ("torch._tensor", "Tensor"),
        ("torch", "Tensor"),
        ("torch.nn.parameter", "Parameter"),
        ("torch", "Size"),
        ("torch", "device"),
        ("torch._C", "_VariableFunctionsClass"),
        ("builtins", "getattr"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "object"),
        ("builtins", "dict"),
        ("collections", "OrderedDict"),
        ("copyreg", "_reconstructor"),
        ("copyreg", "__newobj__"),
        ("_codecs", "encode"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)

#: Modules (and, with a trailing dot, module prefixes) whose globals become inert
#: :class:`Placeholder` classes: torch's layers and containers, and the authors' non-persistent
#: classes and functions (never imported).
PLACEHOLDER_NAMESPACES = (
    "torch.nn.modules.",
    "training.triplane",
    "training.volumetric_rendering",
    "training.volumetric_rendering.",
    "training.gaussian3d_splatting.",
)

_IMPORTED_MODULE = re.compile(r"_imported_module_[0-9a-f]{32}")
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_PUBLIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

#: Keys of a ``torch.nn.Module``'s ``__dict__`` that are its machinery, not its attributes.
_MODULE_INTERNALS = frozenset(
    {
        "training",
        "_parameters",
        "_buffers",
        "_modules",
        "_non_persistent_buffers_set",
        "_is_full_backward_hook",
        "_init_args",
        "_init_kwargs",
    }
)
_HOOK_KEY = re.compile(r"_\w*hooks\w*")

_TORCH_ENUMS: dict[str, Any] = {
    name: value
    for name, value in vars(torch).items()
    if isinstance(value, torch.dtype | torch.layout | torch.memory_format)
}


class NetworkPickleError(pickle.UnpicklingError, ValueError):
    """A network pickle that this reader cannot read or refuses; the message names the file."""


class ForbiddenGlobalError(NetworkPickleError):
    """The pickle names a global outside the allow-list; nothing was imported or run.

    Attributes:
        module: the global's module as pickled (a Python 2 name read as Python 3's).
        name: the global's name as pickled.
        path: the file.
    """

    def __init__(self, path: str, module: str, name: str, detail: str = "") -> None:
        self.module, self.name, self.path = module, name, path
        super().__init__(
            f"{path}: refused global {module}.{name}"
            + (f" ({detail})" if detail else "")
            + ": not on the safe reader's allow-list; nothing was imported or executed"
        )


@dataclasses.dataclass(frozen=True)
class GlobalRef:
    """An inert reference to a function stored as an attribute (never imported, not callable).

    Attributes:
        qualified_name: ``module.name`` as pickled; a ``torch`` function pickled as
            ``getattr(torch._C._VariableFunctionsClass, name)`` reads ``torch.<name>``.
    """

    qualified_name: str


class _ModuleTree:
    """Views of a ``torch.nn.Module``-shaped ``__dict__`` (``_parameters``, ``_buffers``, ...)."""

    def _module_state(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def is_module(self) -> bool:
        """Whether the state is a ``torch.nn.Module``'s (has ``_parameters`` and ``_modules``)."""
        state = self._module_state()
        return "_parameters" in state and "_modules" in state

    @property
    def training(self) -> bool:
        """The recorded ``training`` flag (False when absent)."""
        return bool(self._module_state().get("training", False))

    @property
    def own_parameters(self) -> dict[str, Tensor]:
        """This object's own parameters (not its submodules'), by attribute name."""
        return _tensors(self._module_state().get("_parameters"))

    @property
    def own_buffers(self) -> dict[str, Tensor]:
        """This object's own buffers, persistent or not, by attribute name."""
        return _tensors(self._module_state().get("_buffers"))

    @property
    def non_persistent_buffer_names(self) -> frozenset[str]:
        """Names of own buffers registered with ``persistent=False`` (not in ``state_dict``)."""
        names = self._module_state().get("_non_persistent_buffers_set") or ()
        return frozenset(name for name in names if isinstance(name, str))

    @property
    def submodules(self) -> dict[str, ModuleRecord]:
        """Direct submodules (``_modules``), persistent records or placeholders; None skipped."""
        modules = self._module_state().get("_modules")
        if not isinstance(modules, dict):
            return {}
        return {k: v for k, v in modules.items() if isinstance(v, PersistentModule | Placeholder)}

    @property
    def attributes(self) -> dict[str, Any]:
        """Plain attributes: the state without the module machinery, hooks and init arguments."""
        return {
            key: value
            for key, value in self._module_state().items()
            if key not in _MODULE_INTERNALS and not _HOOK_KEY.fullmatch(key)
        }

    def named_modules(self) -> dict[str, ModuleRecord]:
        """Every module of the tree by dotted name, this one as ``""`` (``_modules`` nesting)."""
        return {name: record for name, record in self._walk("", ())}

    def parameters(self) -> dict[str, Tensor]:
        """All parameters of the tree, named as ``state_dict()`` does (``mapping.fc0.weight``)."""
        return {
            _join(prefix, key): tensor
            for prefix, record in self._walk("", ())
            for key, tensor in record.own_parameters.items()
        }

    def buffers(self) -> dict[str, Tensor]:
        """All buffers of the tree (non-persistent ones included), dotted names."""
        return {
            _join(prefix, key): tensor
            for prefix, record in self._walk("", ())
            for key, tensor in record.own_buffers.items()
        }

    def state_dict(self) -> dict[str, Tensor]:
        """Parameters and persistent buffers, with the names and order of ``Module.state_dict``."""
        out: dict[str, Tensor] = {}
        for prefix, record in self._walk("", ()):
            skip = record.non_persistent_buffer_names
            out.update((_join(prefix, k), t) for k, t in record.own_parameters.items())
            out.update(
                (_join(prefix, k), t) for k, t in record.own_buffers.items() if k not in skip
            )
        return out

    def _walk(self, prefix: str, path: tuple[int, ...]) -> Iterator[tuple[str, ModuleRecord]]:
        if id(self) in path:  # a module that contains itself: list it once
            return
        assert isinstance(self, PersistentModule | Placeholder)
        yield prefix, self
        for name, child in self.submodules.items():
            yield from child._walk(_join(prefix, name), (*path, id(self)))


@dataclasses.dataclass(eq=False, repr=False)
class PersistentModule(_ModuleTree):
    """One ``@persistence.persistent_class`` object, as recorded (its source is never run).

    Attributes:
        class_name: the class's name inside ``module_src``.
        module_src: the source of the class's whole module, kept as text.
        version: ``meta['version']`` (see :data:`SUPPORTED_VERSIONS`).
        init_args: the constructor's positional arguments (``_init_args``).
        init_kwargs: the constructor's keyword arguments (``_init_kwargs``); ``EasyDict`` values
            are plain dicts.
        state: the object's whole recorded ``__dict__`` (``EasyDict`` read as ``dict``, functions
            as :class:`GlobalRef`).
    """

    class_name: str
    module_src: str
    version: int
    init_args: tuple[Any, ...]
    init_kwargs: dict[str, Any]
    state: dict[str, Any]

    def _module_state(self) -> dict[str, Any]:
        return self.state

    def __repr__(self) -> str:
        return (
            f"PersistentModule({self.class_name}, {len(self.own_parameters)} parameters, "
            f"submodules={list(self.submodules)})"
        )


class Placeholder(_ModuleTree):
    """An inert stand-in for a non-persistent object (``torch.nn.Linear``, EG3D's ``OSGDecoder``).

    :meth:`_SafeUnpickler.find_class` returns a subclass per qualified name; pickle then builds an
    instance through ``NEWOBJ`` (``cls.__new__(cls, *args)``), ``REDUCE`` (``cls(*args)``) or
    ``copyreg``'s ``_reconstructor`` / ``__newobj__``, fills it with ``BUILD``
    (:meth:`__setstate__`), ``SETITEMS`` (``__setitem__``) or ``APPENDS`` (``append`` /
    ``extend``). Nothing of the original class runs.

    Attributes:
        qualified_name: ``module.name`` of the original class (a class attribute).
        args: positional arguments it was created with.
        kwargs: keyword arguments it was created with.
        state: the ``BUILD`` state (a module's ``__dict__``), or None.
        items: ``SETITEMS`` entries (dict subclasses).
        list_items: ``APPENDS`` entries (list subclasses).
    """

    qualified_name: ClassVar[str] = "?"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any
    items: dict[Any, Any]
    list_items: list[Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Placeholder:
        obj = object.__new__(cls)
        obj.args, obj.kwargs = _plain(args, _Memo()), _plain(kwargs, _Memo())
        obj.state, obj.items, obj.list_items = None, {}, []
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass  # __new__ recorded the arguments

    def __setstate__(self, state: Any) -> None:
        self.state = _plain(state, _Memo())

    def __deepcopy__(self, memo: dict[Any, Any]) -> Placeholder:
        new = object.__new__(type(self))
        memo[id(self)] = new
        for name in ("args", "kwargs", "state", "items", "list_items"):
            setattr(new, name, copy.deepcopy(getattr(self, name), memo))
        return new

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[_plain(key, _Memo())] = _plain(value, _Memo())

    def append(self, value: Any) -> None:
        """``APPENDS`` on a list subclass: record the item."""
        self.list_items.append(_plain(value, _Memo()))

    def extend(self, values: Any) -> None:
        """``APPENDS`` on a list subclass: record the items."""
        self.list_items.extend(_plain(value, _Memo()) for value in values)

    def _module_state(self) -> dict[str, Any]:
        state = self.state
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, slots) form
            state = state[0]
        return state if isinstance(state, dict) else {}

    def __repr__(self) -> str:
        return f"Placeholder({self.qualified_name})"


ModuleRecord: TypeAlias = PersistentModule | Placeholder


@dataclasses.dataclass(frozen=True, eq=False)
class NetworkPickle:
    """The entries of a network snapshot.

    Attributes:
        path: the file read.
        G: the generator (None if absent).
        G_ema: the generator's moving average, the one to sample from (None if absent).
        D: the discriminator (None if absent).
        augment_pipe: ADA's augmentation pipeline, read but not used (None if absent).
        training_set_kwargs: the dataset's keyword arguments (plain data), or None.
        extra: any other top-level entries (plain data or records).
    """

    path: Path
    G: PersistentModule | None
    G_ema: PersistentModule | None
    D: PersistentModule | None
    augment_pipe: ModuleRecord | None
    training_set_kwargs: dict[str, Any] | None
    extra: dict[str, Any]


def read_network_pickle(path: str | os.PathLike[str]) -> NetworkPickle:
    """Read a ``torch_utils.persistence`` network pickle without importing or running its code.

    Args:
        path: a ``network-snapshot-*.pkl`` (or a released ``.pkl``) of EG3D, GSGAN, BallGAN or
            StyleGAN2-ADA (PyTorch).

    Returns:
        The snapshot's ``G``, ``G_ema``, ``D`` (:class:`PersistentModule` records),
        ``augment_pipe``, ``training_set_kwargs`` and other entries; every tensor on the CPU.

    Raises:
        ForbiddenGlobalError: the file names a global outside the allow-list (it names the
            global and the file).
        NetworkPickleError: a truncated or non-pickle file, an unknown top-level structure, a
            persistent object of unknown type or version, or a storage stream refused by
            ``torch.load(weights_only=True)``.
        OSError: the file cannot be opened.
    """
    path = Path(path)
    with open(path, "rb") as f:
        unpickler = _SafeUnpickler(f, str(path))
        try:
            data = unpickler.load()
            data = _plain(data, unpickler.plain_memo)
        except NetworkPickleError:
            raise
        except (EOFError, pickle.UnpicklingError, IndexError, KeyError, struct.error) as exc:
            # the pure-Python unpickler meets garbage as an empty stack or memo, or short input
            if isinstance(exc, EOFError) or "truncated" in str(exc):
                problem = "the file ends early (truncated?)"
            else:
                problem = "not a pickle or a damaged one"
            raise NetworkPickleError(f"{path}: {problem}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # anything pickle or a stand-in raised: give it the file's name
            raise NetworkPickleError(
                f"{path}: unreadable network pickle: {type(exc).__name__}: {exc}"
            ) from exc
    return _snapshot(path, data)


def _snapshot(path: Path, data: Any) -> NetworkPickle:
    if not isinstance(data, dict):
        raise NetworkPickleError(
            f"{path}: unknown top-level structure {type(data).__name__}; expected the dict of a "
            "network snapshot (G, G_ema, D, augment_pipe, training_set_kwargs)"
        )
    if not any(key in data for key in ("G", "G_ema", "D")):
        raise NetworkPickleError(
            f"{path}: unknown top-level structure: a dict without G, G_ema or D "
            f"(keys {sorted(map(str, data))})"
        )
    networks: dict[str, PersistentModule | None] = {}
    for key in ("G", "G_ema", "D"):
        value = data.get(key)
        if value is not None and not isinstance(value, PersistentModule):
            raise NetworkPickleError(
                f"{path}: entry {key!r} is {_describe(value)}, not a persistent network"
            )
        networks[key] = value
    augment_pipe = data.get("augment_pipe")
    if augment_pipe is not None and not isinstance(augment_pipe, PersistentModule | Placeholder):
        raise NetworkPickleError(f"{path}: entry 'augment_pipe' is {_describe(augment_pipe)}")
    kwargs = data.get("training_set_kwargs")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise NetworkPickleError(f"{path}: entry 'training_set_kwargs' is {_describe(kwargs)}")
    known = {"G", "G_ema", "D", "augment_pipe", "training_set_kwargs"}
    return NetworkPickle(
        path=path,
        G=networks["G"],
        G_ema=networks["G_ema"],
        D=networks["D"],
        augment_pipe=augment_pipe,
        training_set_kwargs=kwargs,
        extra={k: v for k, v in data.items() if k not in known},
    )


class _EasyDict(dict):
    """``dnnlib.util.EasyDict`` while unpickling (a dict; ``BUILD`` may bring an empty state)."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


class _Marker:
    """A named, inert value standing for a type or namespace that is never called."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


_TORCH_FUNCTIONS = _Marker("torch._C._VariableFunctionsClass")
_TENSOR_TYPE = _Marker("torch.Tensor")
_PARAMETER_TYPE = _Marker("torch.nn.Parameter")
_NDARRAY_TYPE = _Marker("numpy.ndarray")


def _numpy_multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")  # numpy >= 2
    except ImportError:
        return importlib.import_module("numpy.core.multiarray")


#: Byte strings at least this long are not kept in the unpickler's memo (see _SafeUnpickler).
_UNMEMOISED_BYTES = 1 << 16


class _FileWindow(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes of ``file`` from ``start`` (not read yet)."""

    def __init__(self, file: BinaryIO, start: int, length: int) -> None:
        super().__init__()
        self._file, self._start, self._length, self._position = file, start, length, 0

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        count = min(len(memoryview(buffer).cast("B")), self._length - self._position)
        if count <= 0:
            return 0
        self._file.seek(self._start + self._position)
        got = self._file.readinto(memoryview(buffer).cast("B")[:count])  # type: ignore[attr-defined]
        self._position += got
        return got


class _DroppedMemo:
    """What the memo holds in place of a large byte string it did not keep."""


_DROPPED = _DroppedMemo()


#: Python's pure-Python unpickler (typeshed describes it as the C one, without its internals).
_PurePythonUnpickler: Any = pickle._Unpickler  # type: ignore[attr-defined]


class _SafeUnpickler(_PurePythonUnpickler):
    """An unpickler whose ``find_class`` resolves only the allow-list.

    It is Python's own (pure-Python) unpickler with two changes, so that reading a file needs
    about its size in memory, not twice that. Every tensor storage arrives as a byte string (the
    argument of ``torch.storage._load_from_bytes``, a legacy ``torch.save`` stream of at least
    :data:`_UNMEMOISED_BYTES` for any real weight): such a string, when it lies in the file
    outside a pickle frame (as ``pickle.dump`` to a file writes it), is not read but passed on
    as a :class:`_FileWindow` onto the file, from which ``torch.load`` reads the storage straight
    into its own memory; and such strings are not kept in the memo (a pickler memoises them but
    never refers to them again; a reference to a dropped one is refused with a clear error).
    """

    dispatch = _PurePythonUnpickler.dispatch.copy()

    def _load_sized_bytes(self, size_format: str) -> None:
        (length,) = struct.unpack(size_format, self.read(struct.calcsize(size_format)))
        frame = self._unframer.current_frame
        in_frame = frame is not None and frame.tell() < len(frame.getbuffer())
        if length < _UNMEMOISED_BYTES or in_frame:
            data = self.read(length)
            if len(data) < length:
                raise EOFError("the pickle ends inside a byte string (truncated)")
            self.append(data)
            return
        start = self._source.tell()
        if start + length > self._source_size:
            raise EOFError("the pickle ends inside a byte string (truncated)")
        self._source.seek(start + length)
        self.append(_FileWindow(self._source, start, length))

    def _load_binbytes(self) -> None:
        self._load_sized_bytes("<I")

    def _load_binbytes8(self) -> None:
        self._load_sized_bytes("<Q")

    dispatch[pickle.BINBYTES[0]] = _load_binbytes
    dispatch[pickle.BINBYTES8[0]] = _load_binbytes8

    def _memo_value(self) -> Any:
        value = self.stack[-1]
        if isinstance(value, bytes | bytearray) and len(value) >= _UNMEMOISED_BYTES:
            return _DROPPED
        return value

    def _load_put(self) -> None:
        index = int(self.readline()[:-1])
        if index < 0:
            raise self._fail("negative PUT argument")
        self.memo[index] = self._memo_value()

    def _load_binput(self) -> None:
        index = self.read(1)[0]
        self.memo[index] = self._memo_value()

    def _load_long_binput(self) -> None:
        index = int.from_bytes(self.read(4), "little")
        self.memo[index] = self._memo_value()

    def _load_memoize(self) -> None:
        self.memo[len(self.memo)] = self._memo_value()

    def _checked_get(self, index: int) -> None:
        if index not in self.memo:
            raise pickle.UnpicklingError(f"Memo value not found at index {index}")
        value = self.memo[index]
        if value is _DROPPED:
            raise self._fail(
                "the pickle refers twice to a tensor's byte string; this reader does not keep "
                "them (network snapshots never do this)"
            )
        self.append(value)

    def _load_get(self) -> None:
        self._checked_get(int(self.readline()[:-1]))

    def _load_binget(self) -> None:
        self._checked_get(self.read(1)[0])

    def _load_long_binget(self) -> None:
        self._checked_get(int.from_bytes(self.read(4), "little"))

    dispatch[pickle.PUT[0]] = _load_put
    dispatch[pickle.BINPUT[0]] = _load_binput
    dispatch[pickle.LONG_BINPUT[0]] = _load_long_binput
    dispatch[pickle.MEMOIZE[0]] = _load_memoize
    dispatch[pickle.GET[0]] = _load_get
    dispatch[pickle.BINGET[0]] = _load_binget
    dispatch[pickle.LONG_BINGET[0]] = _load_long_binget

    def __init__(self, file: BinaryIO, path: str) -> None:
        super().__init__(file)
        self.path = path
        self._source = file
        self._source_size = os.fstat(file.fileno()).st_size
        self.plain_memo = _Memo()
        self._placeholders: dict[str, type[Placeholder]] = {}
        multiarray = _numpy_multiarray()
        self._exact: dict[tuple[str, str], Any] = {
            ("torch_utils.persistence", "_reconstruct_persistent_obj"): self._persistent_obj,
            ("dnnlib.util", "EasyDict"): _EasyDict,
            ("dnnlib", "EasyDict"): _EasyDict,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_tensor_v3"): self._rebuild_tensor_v3,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): self._rebuild_parameter,
            ("torch._tensor", "_rebuild_from_type_v2"): self._rebuild_from_type_v2,
            ("torch.storage", "_load_from_bytes"): self._load_storage,
            ("torch._tensor", "Tensor"): _TENSOR_TYPE,
            ("torch", "Tensor"): _TENSOR_TYPE,
            ("torch.nn.parameter", "Parameter"): _PARAMETER_TYPE,
            ("torch", "Size"): torch.Size,
            ("torch", "device"): torch.device,
            ("torch._C", "_VariableFunctionsClass"): _TORCH_FUNCTIONS,
            ("builtins", "getattr"): self._getattr,
            ("builtins", "set"): set,
            ("builtins", "frozenset"): frozenset,
            ("builtins", "object"): object,
            ("builtins", "dict"): dict,
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("copyreg", "_reconstructor"): self._reconstructor,
            ("copyreg", "__newobj__"): self._newobj,
            ("_codecs", "encode"): self._codecs_encode,
            ("numpy", "dtype"): self._numpy_dtype,
            ("numpy", "ndarray"): _NDARRAY_TYPE,
            ("numpy.core.multiarray", "scalar"): self._numpy_scalar(multiarray.scalar),
            ("numpy._core.multiarray", "scalar"): self._numpy_scalar(multiarray.scalar),
            ("numpy.core.multiarray", "_reconstruct"): self._numpy_array(multiarray._reconstruct),
            ("numpy._core.multiarray", "_reconstruct"): self._numpy_array(multiarray._reconstruct),
        }
        assert set(self._exact) == ALLOWED_GLOBALS

    def find_class(self, module: str, name: str) -> Any:
        """Resolve a global by name without importing it, or refuse it.

        * :data:`ALLOWED_GLOBALS`: the persistent-object call becomes a :class:`PersistentModule`;
          ``EasyDict`` a dict; torch's tensor / parameter / storage rebuilders this reader's own
          stand-ins; ``torch.Size``, ``torch.device``, ``OrderedDict``, ``set``, ``frozenset``,
          ``numpy.dtype`` / ``scalar`` / ``_reconstruct`` (``ndarray`` only) their data-only
          constructors; ``getattr`` only ``getattr(torch._C._VariableFunctionsClass, name)``.
        * ``torch.<dtype | layout | memory_format>``: the value.
        * ``torch.nn.functional.<name>``: a :class:`GlobalRef`.
        * :data:`PLACEHOLDER_NAMESPACES` and ``_imported_module_<hex>``: a :class:`Placeholder`
          class.

        Python 2 names that protocol 0-2 pickles carry (``__builtin__``, ``copy_reg``) are read
        as their Python 3 names first, as :class:`pickle.Unpickler` does.

        Raises:
            ForbiddenGlobalError: anything else.
        """
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[module, name]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) in self._exact:
            return self._exact[module, name]
        if module == "torch" and name in _TORCH_ENUMS:
            return _TORCH_ENUMS[name]
        if module == "torch.nn.functional" and _PUBLIC_NAME.fullmatch(name):
            return GlobalRef(f"{module}.{name}")
        if _DOTTED_NAME.fullmatch(name) and _is_placeholder_module(module):
            qualified = f"{module}.{name}"
            if qualified not in self._placeholders:
                self._placeholders[qualified] = type(
                    name.rpartition(".")[2],
                    (Placeholder,),
                    {"qualified_name": qualified, "__module__": __name__},
                )
            return self._placeholders[qualified]
        raise ForbiddenGlobalError(self.path, module, name)

    def _fail(self, problem: str) -> NetworkPickleError:
        return NetworkPickleError(f"{self.path}: {problem}")

    def _persistent_obj(self, meta: Any) -> PersistentModule:
        if not isinstance(meta, dict):
            raise self._fail(f"a persistent object's meta is {_describe(meta)}, not a dict")
        missing = {"type", "version", "module_src", "class_name", "state"} - set(meta)
        if missing:
            raise self._fail(f"a persistent object's meta lacks {sorted(missing)}")
        kind, version, class_name = meta["type"], meta["version"], meta["class_name"]
        if kind != "class":
            raise self._fail(f"persistent object of unknown type {kind!r} (known: 'class')")
        if not isinstance(version, int) or version not in SUPPORTED_VERSIONS:
            raise self._fail(
                f"persistent object {class_name!r} has persistence version {version!r}; "
                f"this reader knows {sorted(SUPPORTED_VERSIONS)}"
            )
        if not isinstance(class_name, str) or not isinstance(meta["module_src"], str):
            raise self._fail("a persistent object's class_name or module_src is not a string")
        state = _plain(meta["state"], self.plain_memo)
        if not isinstance(state, dict):
            raise self._fail(f"persistent object {class_name!r} has state {_describe(state)}")
        init_args, init_kwargs = state.get("_init_args", ()), state.get("_init_kwargs", {})
        if not isinstance(init_args, tuple | list) or not isinstance(init_kwargs, dict):
            raise self._fail(f"persistent object {class_name!r} has malformed init arguments")
        return PersistentModule(
            class_name=class_name,
            module_src=meta["module_src"],
            version=version,
            init_args=tuple(init_args),
            init_kwargs=dict(init_kwargs),
            state=state,
        )

    def _load_storage(self, data: Any) -> Any:
        if not isinstance(data, bytes | bytearray | _FileWindow):
            raise self._fail(f"torch.storage._load_from_bytes got {_describe(data)}, not bytes")
        stream = data if isinstance(data, _FileWindow) else io.BytesIO(data)
        here = self._source.tell()
        try:
            storage = torch.load(cast(Any, stream), weights_only=True, map_location="cpu")
        except Exception as exc:
            raise self._fail(
                "a tensor's storage stream was refused or unreadable by "
                f"torch.load(weights_only=True): {type(exc).__name__}: {_torch_reason(exc)}"
            ) from exc
        finally:
            self._source.seek(here)
        if not isinstance(storage, torch.storage.TypedStorage | torch.UntypedStorage):
            raise self._fail(f"a tensor's storage stream holds {_describe(storage)}")
        return storage

    def _rebuild_tensor_v2(
        self,
        storage: Any,
        storage_offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any = False,
        backward_hooks: Any = None,
        metadata: Any = None,
    ) -> Tensor:
        if not isinstance(storage, torch.storage.TypedStorage):
            raise self._fail(f"_rebuild_tensor_v2 got storage {_describe(storage)}")
        return self._tensor(
            storage._untyped_storage, storage.dtype, storage_offset, size, stride, metadata
        )

    def _rebuild_tensor_v3(
        self,
        storage: Any,
        storage_offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any,
        backward_hooks: Any,
        dtype: Any,
        metadata: Any = None,
    ) -> Tensor:
        if not isinstance(storage, torch.UntypedStorage) or not isinstance(dtype, torch.dtype):
            raise self._fail(f"_rebuild_tensor_v3 got {_describe(storage)}, {_describe(dtype)}")
        return self._tensor(storage, dtype, storage_offset, size, stride, metadata)

    def _tensor(
        self,
        untyped: torch.UntypedStorage,
        dtype: torch.dtype,
        offset: Any,
        size: Any,
        stride: Any,
        metadata: Any,
    ) -> Tensor:
        if not (
            _is_int(offset)
            and offset >= 0
            and isinstance(size, tuple | list)
            and isinstance(stride, tuple | list)
            and len(size) == len(stride)
            and all(_is_int(n) and n >= 0 for n in (*size, *stride))
        ):
            raise self._fail(f"malformed tensor layout: offset {offset!r}, size {size!r}")
        item = torch.empty((), dtype=dtype).element_size()
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if all(n > 0 for n in size) and (last + 1) * item > untyped.nbytes():
            raise self._fail(
                f"tensor of size {tuple(size)} at offset {offset} overruns its storage "
                f"({untyped.nbytes()} bytes)"
            )
        tensor = torch.empty((0,), dtype=dtype).set_(untyped, offset, tuple(size), tuple(stride))
        if metadata:
            if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, bool) for k, v in metadata.items()
            ):
                raise self._fail(f"malformed tensor metadata {metadata!r}")
            torch._utils.set_tensor_metadata(tensor, metadata)
        return tensor

    def _rebuild_parameter(
        self, data: Any, requires_grad: Any = False, backward_hooks: Any = None, state: Any = None
    ) -> Tensor:
        if not isinstance(data, Tensor):
            raise self._fail(f"_rebuild_parameter got {_describe(data)}, not a tensor")
        return data

    def _rebuild_from_type_v2(self, func: Any, new_type: Any, args: Any, state: Any) -> Tensor:
        if func not in (self._rebuild_tensor_v2, self._rebuild_tensor_v3) or new_type not in (
            _TENSOR_TYPE,
            _PARAMETER_TYPE,
        ):
            raise self._fail(f"_rebuild_from_type_v2 of {_describe(func)} as {new_type!r}")
        if not isinstance(args, tuple):
            raise self._fail(f"_rebuild_from_type_v2 got arguments {_describe(args)}")
        return func(*args)

    def _getattr(self, target: Any, name: Any, *default: Any) -> GlobalRef:
        if target is _TORCH_FUNCTIONS and isinstance(name, str) and _PUBLIC_NAME.fullmatch(name):
            return GlobalRef(f"torch.{name}")
        raise ForbiddenGlobalError(
            self.path,
            "builtins",
            "getattr",
            f"on {_describe(target)} with {name!r}; only "
            "getattr(torch._C._VariableFunctionsClass, <public name>) is allowed",
        )

    def _constructible(self, cls: Any, via: str) -> type:
        if isinstance(cls, type) and issubclass(cls, Placeholder | _EasyDict):
            return cls
        raise self._fail(f"copyreg.{via} of {_describe(cls)} refused (only placeholders)")

    def _reconstructor(self, cls: Any, base: Any, state: Any) -> Any:
        cls = self._constructible(cls, "_reconstructor")
        obj = cls.__new__(cls)
        if state is not None:  # protocol 0-1 dict subclass: base is dict, state its items
            if base is not dict or not isinstance(state, dict):
                raise self._fail(f"copyreg._reconstructor with base {_describe(base)} refused")
            for key, value in state.items():
                obj[key] = value
        elif base is not object:
            raise self._fail(f"copyreg._reconstructor with base {_describe(base)} refused")
        return obj

    def _newobj(self, cls: Any, *args: Any) -> Any:
        cls = self._constructible(cls, "__newobj__")
        return cls.__new__(cls, *args)

    def _codecs_encode(self, text: Any, encoding: Any = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise self._fail(f"_codecs.encode({_describe(text)}, {encoding!r}) refused")
        return codecs.encode(text, "latin1")

    def _numpy_dtype(self, spec: Any, align: Any = False, copy: Any = False) -> np.dtype[Any]:
        if not isinstance(spec, str):
            raise self._fail(f"numpy.dtype of {_describe(spec)} refused (only type strings)")
        return np.dtype(spec, bool(align), bool(copy))

    def _numpy_scalar(self, scalar: Callable[..., Any]) -> Callable[..., Any]:
        def make(dtype: Any, data: Any = None) -> Any:
            if not isinstance(dtype, np.dtype) or dtype.hasobject:
                raise self._fail(f"numpy scalar of dtype {dtype!r} refused")
            return scalar(dtype, data)

        return make

    def _numpy_array(self, reconstruct: Callable[..., Any]) -> Callable[..., Any]:
        def make(subtype: Any, shape: Any, dtype: Any) -> Any:
            if subtype is not _NDARRAY_TYPE:
                raise self._fail(f"numpy array of type {_describe(subtype)} refused")
            return reconstruct(np.ndarray, shape, dtype)

        return make


def _torch_reason(exc: Exception) -> str:
    """The gist of a ``torch.load`` error (its weights-only messages are paragraphs of advice)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n\n|$)", text, re.DOTALL)
    if match:
        return " ".join(match.group(1).split())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def _is_placeholder_module(module: str) -> bool:
    if _IMPORTED_MODULE.fullmatch(module):
        return True
    return any(
        module.startswith(ns) if ns.endswith(".") else module == ns for ns in PLACEHOLDER_NAMESPACES
    )


class _Memo:
    """The copies :func:`_plain` made, by ``id`` of their original (kept alive alongside)."""

    def __init__(self) -> None:
        self.copies: dict[int, tuple[Any, Any]] = {}


def _plain(value: Any, memo: _Memo) -> Any:
    """``value`` with ``EasyDict`` / ``OrderedDict`` as ``dict``, placeholder classes as refs.

    Tensors are detached.

    Shared and cyclic containers stay shared.
    """
    if id(value) in memo.copies:
        return memo.copies[id(value)][1]
    if isinstance(value, type) and issubclass(value, Placeholder):
        return GlobalRef(value.qualified_name)
    if isinstance(value, Tensor):  # drops whatever BUILD may have set (requires_grad, hooks)
        result = value.detach()
        memo.copies[id(value)] = (value, result)
        return result
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        memo.copies[id(value)] = (value, out)
        for key, item in value.items():
            out[_plain(key, memo)] = _plain(item, memo)
        return out
    if isinstance(value, list):
        items: list[Any] = []
        memo.copies[id(value)] = (value, items)
        items.extend(_plain(item, memo) for item in value)
        return items
    if isinstance(value, tuple) and not isinstance(value, torch.Size):
        result = tuple(_plain(item, memo) for item in value)
        memo.copies[id(value)] = (value, result)
        return result
    if isinstance(value, set | frozenset):
        result = type(value)(_plain(item, memo) for item in value)
        memo.copies[id(value)] = (value, result)
        return result
    return value


def _tensors(mapping: Any) -> dict[str, Tensor]:
    if not isinstance(mapping, dict):
        return {}
    return {k: v for k, v in mapping.items() if isinstance(k, str) and isinstance(v, Tensor)}


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    if isinstance(value, _Marker | GlobalRef):
        return repr(value)
    if isinstance(value, type):
        return f"class {value.__module__}.{value.__qualname__}"
    return f"a {type(value).__module__}.{type(value).__qualname__}"
