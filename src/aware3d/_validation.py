"""Input validation: one mechanism for the whole library.

Two kinds of checks, run at the public boundary:

* **Structural checks** (is it a tensor, its dtype kind, its shape, its device) never synchronise
  with the device and always run. :func:`checked` derives them from a function's jaxtyping
  annotations, so a shape is stated once, in the signature: ``Float[Tensor, "*batch S+1"]`` means
  a floating-point tensor whose shape is the ``*batch`` and ``S`` bound by the other arguments,
  then ``S + 1``. A mismatch raises ``ValueError`` naming the argument, the expected and the
  received shape.
* **Value checks** (finite, positive, in range, sorted, rigid) need one host synchronisation
  each. They run where data enters: building :class:`~aware3d.Cameras` and
  :class:`~aware3d.Gaussians`, reading files, and the public functions and modules that take raw
  tensors. Ops trust validated containers. Value checks can be switched off for tight loops with
  :func:`value_checks` (a context manager) or :func:`set_value_checks` (the global default), and
  they step aside under ``torch.compile`` and for meta tensors. With them off, a NaN is not
  hidden: it propagates to the output.
"""

import contextlib
import dataclasses
import functools
import inspect
import math
import numbers
import os
import re
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "check_values",
    "checked",
    "set_value_checks",
    "value_checks",
    "value_checks_enabled",
]

# ---------------------------------------------------------------------- the switch

_value_checks_default = os.environ.get("AWARE3D_VALUE_CHECKS", "1").strip() not in ("0", "false")
_value_checks_override: ContextVar[bool | None] = ContextVar("aware3d_value_checks", default=None)


def value_checks_enabled() -> bool:
    """Whether value checks (finite, ranges, ...) run now; always false under ``torch.compile``."""
    if torch.compiler.is_compiling():
        return False
    override = _value_checks_override.get()
    return _value_checks_default if override is None else override


def set_value_checks(enabled: bool) -> None:
    """Sets the global default of value checks (initially on, or ``AWARE3D_VALUE_CHECKS=0``).

    Structural checks (types, shapes, devices) are not affected: they cost no synchronisation.
    """
    global _value_checks_default
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be a bool, got {enabled!r}")
    _value_checks_default = enabled


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Turns value checks on or off inside a ``with`` block (per thread and async task).

    Value checks are the ones that synchronise with the device (finite, positive, in range,
    sorted, rigid cameras). Turn them off around a tight loop whose inputs were validated once,
    e.g. a training step::

        with aware3d.value_checks(False):
            loss = step(batch)

    With checks off, bad values are not caught but are not hidden either: a NaN propagates.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"`enabled` must be a bool, got {enabled!r}")
    token = _value_checks_override.set(enabled)
    try:
        yield
    finally:
        _value_checks_override.reset(token)


# ---------------------------------------------------------------------- formatting


def format_shape(shape: Sequence[int | str]) -> str:
    """Formats a shape as ``[2, N, 3]``."""
    return "[" + ", ".join(str(s) for s in shape) + "]"


# ---------------------------------------------------------------------- shapes from annotations


@dataclass(frozen=True)
class _Dim:
    """One entry of a jaxtyping dimension string."""

    kind: str  # "fixed", "named", "anonymous", "expression", "variadic", "anonymous_variadic"
    text: str
    size: int = -1


def _parse_dims(dim_str: str) -> tuple[_Dim, ...]:
    dims = []
    for token in dim_str.split():
        if token == "...":
            dims.append(_Dim("anonymous_variadic", token))
        elif token.startswith("*"):
            name = token[1:]
            kind = "anonymous_variadic" if not name or name.startswith("_") else "variadic"
            dims.append(_Dim(kind, name))
        elif token.lstrip("#").isdigit():
            dims.append(_Dim("fixed", token, int(token.lstrip("#"))))
        elif token.startswith("_"):
            dims.append(_Dim("anonymous", token))
        elif token.lstrip("#").isidentifier():
            dims.append(_Dim("named", token.lstrip("#")))
        else:
            dims.append(_Dim("expression", token))
    if sum(d.kind in ("variadic", "anonymous_variadic") for d in dims) > 1:
        raise TypeError(f"dimension string {dim_str!r} has more than one variadic dimension")
    return tuple(dims)


@dataclass(frozen=True)
class _TensorSpec:
    """What :func:`checked` checks for one annotated argument."""

    name: str
    position: int | None  # index among positional arguments, None for keyword-only
    dims: tuple[_Dim, ...]
    kind: str  # "float", "int", "bool" or "any"
    optional: bool


def _dtype_kind(dtypes: Any) -> str:
    if not isinstance(dtypes, tuple | list):
        return "any"
    if "float32" in dtypes:
        return "float"
    if "int64" in dtypes:
        return "int"
    if "bool" in dtypes:
        return "bool"
    return "any"


def _array_annotation(annotation: Any) -> tuple[Any, bool] | None:
    """The jaxtyping array type of an annotation (``X`` or ``X | None``) and its optionality."""
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        if len(members) != 1:
            return None
        annotation = members[0]
    if getattr(annotation, "array_type", None) is Tensor and hasattr(annotation, "dim_str"):
        return annotation, optional
    return None


def _specs(function: Callable[..., Any]) -> tuple[_TensorSpec, ...]:
    signature = inspect.signature(function)  # annotations are objects: no postponed evaluation
    specs = []
    position = 0
    for parameter in signature.parameters.values():
        positional = parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        )
        found = _array_annotation(parameter.annotation)
        if found is not None:
            annotation, optional = found
            specs.append(
                _TensorSpec(
                    parameter.name,
                    position if positional else None,
                    _parse_dims(annotation.dim_str),
                    _dtype_kind(annotation.dtypes),
                    optional or parameter.default is None,
                )
            )
        if positional:
            position += 1
    return tuple(specs)


class _Bindings:
    """Sizes bound by the arguments checked so far, and which argument bound each."""

    def __init__(self) -> None:
        self.sizes: dict[str, int] = {}
        self.variadic: dict[str, tuple[int, ...]] = {}
        self.source: dict[str, str] = {}


def _shown(dims: tuple[_Dim, ...]) -> str:
    return format_shape(["*" + d.text if d.kind == "variadic" else d.text for d in dims])


def _expected(dims: tuple[_Dim, ...], bound: _Bindings) -> list[int] | None:
    """The concrete shape ``dims`` stands for, if every entry is known."""
    shape: list[int] = []
    for dim in dims:
        if dim.kind == "fixed":
            shape.append(dim.size)
        elif dim.kind == "named" and dim.text in bound.sizes:
            shape.append(bound.sizes[dim.text])
        elif dim.kind == "variadic" and dim.text in bound.variadic:
            shape.extend(bound.variadic[dim.text])
        elif dim.kind == "expression":
            value = _evaluate(dim.text, bound)
            if value is None:
                return None
            shape.append(value)
        else:
            return None
    return shape


def _evaluate(expression: str, bound: _Bindings) -> int | None:
    try:
        value = eval(expression, {"__builtins__": {}}, dict(bound.sizes))
    except NameError:
        return None
    return int(value)


def _shape_error(spec: _TensorSpec, shape: tuple[int, ...], bound: _Bindings) -> ValueError:
    expected = _expected(spec.dims, bound)
    message = f"`{spec.name}` must have shape {_shown(spec.dims)}"
    if expected is not None and format_shape(expected) != _shown(spec.dims):
        message += f" = {format_shape(expected)}"
    by_argument: dict[str, list[str]] = {}
    for dim in spec.dims:
        names = re.findall(r"[A-Za-z_]\w*", dim.text) if dim.kind == "expression" else [dim.text]
        for name in names:
            argument = bound.source.get(name)
            if argument is not None and argument != spec.name:
                shown = ("*" if name in bound.variadic else "") + name
                if shown not in by_argument.setdefault(argument, []):
                    by_argument[argument].append(shown)
    if by_argument:
        message += (
            " ("
            + "; ".join(
                f"{', '.join(dims)} from `{argument}`" for argument, dims in by_argument.items()
            )
            + ")"
        )
    return ValueError(f"{message}, got {format_shape(shape)}")


def _match(spec: _TensorSpec, shape: tuple[int, ...], bound: _Bindings) -> None:
    dims = spec.dims
    variadic_at = next(
        (i for i, d in enumerate(dims) if d.kind in ("variadic", "anonymous_variadic")), None
    )
    if variadic_at is None:
        if len(shape) != len(dims):
            raise _shape_error(spec, shape, bound)
        pairs = list(zip(dims, shape, strict=True))
    else:
        fixed = len(dims) - 1
        if len(shape) < fixed:
            raise _shape_error(spec, shape, bound)
        tail = len(dims) - variadic_at - 1
        middle = shape[variadic_at : len(shape) - tail]
        pairs = list(zip(dims[:variadic_at], shape[:variadic_at], strict=True))
        pairs += list(zip(dims[variadic_at + 1 :], shape[len(shape) - tail :], strict=True))
        variadic = dims[variadic_at]
        if variadic.kind == "variadic":
            if variadic.text in bound.variadic:
                if bound.variadic[variadic.text] != tuple(middle):
                    raise _shape_error(spec, shape, bound)
            else:
                bound.variadic[variadic.text] = tuple(middle)
                bound.source[variadic.text] = spec.name
    for dim, size in pairs:
        if dim.kind == "fixed" and size != dim.size:
            raise _shape_error(spec, shape, bound)
        if dim.kind == "named":
            if dim.text in bound.sizes:
                if bound.sizes[dim.text] != size:
                    raise _shape_error(spec, shape, bound)
            else:
                bound.sizes[dim.text] = size
                bound.source[dim.text] = spec.name
    for dim, size in pairs:
        if dim.kind == "expression":
            value = _evaluate(dim.text, bound)
            if value is not None and value != size:
                raise _shape_error(spec, shape, bound)


_KIND_WORDS = {"float": "a floating-point", "int": "an integer", "bool": "a boolean"}


def _check_kind(spec: _TensorSpec, value: Tensor) -> None:
    if spec.kind == "any":
        return
    is_kind = {
        "float": value.is_floating_point(),
        "int": not value.is_floating_point()
        and not value.is_complex()
        and value.dtype != torch.bool,
        "bool": value.dtype == torch.bool,
    }[spec.kind]
    if not is_kind:
        raise TypeError(
            f"`{spec.name}` must be {_KIND_WORDS[spec.kind]} tensor, got dtype {value.dtype}"
        )


def checked(function: Callable[..., Any] | None = None, *, same_dtype: bool = True) -> Any:
    """Checks a function's tensor arguments against its jaxtyping annotations, at every call.

    For every argument annotated ``Float[Tensor, "..."]`` (``Int``, ``Bool``, ``Shaped``; also
    ``... | None``): it must be a tensor of that dtype kind (``TypeError`` otherwise), its shape
    must match the dimension string with the sizes that earlier arguments bound (``ValueError``
    naming the argument, the expected and the received shape), all of them must be on one device,
    and, with ``same_dtype``, every floating-point one must have the same dtype. Dimension strings
    follow jaxtyping: ``B`` binds a size, ``3`` is fixed, ``*batch`` binds a run of sizes,
    ``_`` or ``_name`` and ``...`` match anything, and ``S+1`` is an expression of bound sizes.
    These checks never synchronise with the device. Under ``torch.compile`` they step aside.

    Use as ``@checked`` or ``@checked(same_dtype=False)``.
    """

    def decorate(inner: Callable[..., Any]) -> Callable[..., Any]:
        specs = _specs(inner)

        @functools.wraps(inner)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not torch.compiler.is_compiling():
                _check_call(specs, args, kwargs, same_dtype)
            return inner(*args, **kwargs)

        return wrapper

    return decorate if function is None else decorate(function)


_MISSING = object()


def _check_call(
    specs: tuple[_TensorSpec, ...],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    same_dtype: bool,
) -> None:
    present = []
    for spec in specs:
        value = kwargs.get(spec.name, _MISSING)
        if value is _MISSING and spec.position is not None and spec.position < len(args):
            value = args[spec.position]
        if value is not _MISSING:
            present.append((spec, value))
    _check_tensors(present, same_dtype)


def _check_tensors(present: list[tuple[_TensorSpec, Any]], same_dtype: bool) -> _Bindings:
    bound = _Bindings()
    first_device: tuple[str, Tensor] | None = None
    first_float: tuple[str, Tensor] | None = None
    for spec, value in present:
        if value is None and spec.optional:
            continue
        if not isinstance(value, Tensor):
            raise TypeError(f"`{spec.name}` must be a torch.Tensor, got {type(value).__name__}")
        _check_kind(spec, value)
        _match(spec, tuple(value.shape), bound)
        if first_device is None:
            first_device = (spec.name, value)
        elif value.device != first_device[1].device:
            raise ValueError(
                f"`{spec.name}` is on {value.device} but `{first_device[0]}` is on "
                f"{first_device[1].device}; move them to one device"
            )
        if same_dtype and value.is_floating_point():
            if first_float is None:
                first_float = (spec.name, value)
            elif value.dtype != first_float[1].dtype:
                raise ValueError(
                    f"`{spec.name}` has dtype {value.dtype} but `{first_float[0]}` has "
                    f"{first_float[1].dtype}; convert them to one dtype"
                )
    return bound


@functools.cache
def _field_specs(container_type: type) -> tuple[_TensorSpec, ...]:
    specs = []
    for field, annotation in typing.get_type_hints(container_type).items():
        found = _array_annotation(annotation)
        if found is not None:
            annotation, optional = found
            # within one container, ``_N`` (unbound across a call's arguments) binds as ``N``
            dims = tuple(
                _Dim("named", d.text[1:]) if d.kind == "anonymous" and len(d.text) > 1 else d
                for d in _parse_dims(annotation.dim_str)
            )
            specs.append(_TensorSpec(field, None, dims, _dtype_kind(annotation.dtypes), optional))
    return tuple(specs)


def check_fields(name: str, container: Any, container_type: type) -> dict[str, int]:
    """Checks a NamedTuple's tensor fields against its own jaxtyping annotations.

    Like :func:`checked`, in one scope per container: its fields must agree with each other
    (types, dtype kinds, shapes, one device, one floating dtype). A dimension ``_N`` (which
    jaxtyping leaves unbound across a call's arguments) binds as ``N`` within the container.
    Messages name the field as ``name.field``.

    Returns:
        The sizes its named dimensions bound (e.g. ``{"B": 2, "N": 5, "F": 3}``).

    Raises:
        TypeError: if ``container`` is not a ``container_type`` or a field has the wrong kind.
        ValueError: for a field of the wrong shape, device or dtype.
    """
    if not isinstance(container, container_type):
        raise TypeError(
            f"`{name}` must be {container_type.__name__}, got {type(container).__name__}"
        )
    present = [
        (dataclasses.replace(spec, name=f"{name}.{spec.name}"), getattr(container, spec.name))
        for spec in _field_specs(container_type)
    ]
    return _check_tensors(present, same_dtype=True).sizes


# ---------------------------------------------------------------------- explicit structural checks


def require_tensor(name: str, value: object) -> Tensor:
    """Returns ``value`` if it is a floating-point tensor, else raises ``TypeError`` naming it."""
    if not isinstance(value, Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"`{name}` must be a floating-point tensor, got dtype {value.dtype}")
    return value


def check_shape(
    name: str, value: Tensor, expected: Sequence[int | str | None], *, batch: bool = False
) -> None:
    """Checks ``value.shape`` against ``expected``, for sizes that annotations cannot state.

    Args:
        name: argument name used in the error message.
        value: the tensor to check.
        expected: one entry per trailing dimension: an ``int`` must match exactly, a ``str`` or
            ``None`` matches any size (the string is the dimension letter shown in the message).
        batch: if true, any number of leading dimensions may precede ``expected``.

    Raises:
        ValueError: if the number of dimensions or a fixed size differs.
    """
    if torch.compiler.is_compiling():
        return
    shape = tuple(value.shape)
    shown = (["..."] if batch else []) + [("?" if e is None else e) for e in expected]
    ndim_ok = len(shape) >= len(expected) if batch else len(shape) == len(expected)
    trailing = shape[len(shape) - len(expected) :] if ndim_ok else ()
    sizes_ok = ndim_ok and all(
        not isinstance(e, int) or s == e for s, e in zip(trailing, expected, strict=True)
    )
    if not sizes_ok:
        raise ValueError(
            f"`{name}` must have shape {format_shape(shown)}, got {format_shape(shape)}"
        )


def check_same_device(names_and_values: Sequence[tuple[str, Tensor]]) -> None:
    """Raises ``ValueError`` if the tensors do not all live on one device."""
    if len(names_and_values) < 2:
        return
    first_name, first = names_and_values[0]
    for name, value in names_and_values[1:]:
        if value.device != first.device:
            raise ValueError(
                f"`{name}` is on {value.device} but `{first_name}` is on {first.device}; "
                "move them to one device"
            )


def check_float_dtype(name: str, dtype: object) -> torch.dtype:
    """Returns ``dtype`` if it is a floating-point ``torch.dtype``, else raises ``TypeError``.

    Integer dtypes would silently truncate angles, focal lengths and principal points.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"`{name}` must be a floating-point torch.dtype, got {dtype!r}")
    return dtype


def check_module_dtype(name: str, value: Tensor, module: torch.nn.Module) -> None:
    """Refuses an input whose dtype differs from the module's parameters (outside autocast).

    Inside ``torch.autocast`` mixed dtypes are the point; outside it they fail deep in torch.
    """
    parameter = next(module.parameters(), None)
    if parameter is None or value.dtype == parameter.dtype:
        return
    if torch.is_autocast_enabled(value.device.type):
        return
    raise ValueError(
        f"`{name}` has dtype {value.dtype} but {type(module).__name__}'s parameters are "
        f"{parameter.dtype}; convert the input (`{name}.to({parameter.dtype})`) or the module "
        f"(`.to({value.dtype})`), or run under torch.autocast"
    )


def check_module_device(name: str, value: Tensor, module: torch.nn.Module) -> None:
    """Refuses an input on another device than the module's parameters."""
    parameter = next(module.parameters(), None)
    if parameter is None or value.device == parameter.device:
        return
    raise ValueError(
        f"`{name}` is on {value.device} but {type(module).__name__}'s parameters are on "
        f"{parameter.device}; move one of them"
    )


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """Raises ``ValueError`` unless ``value`` is one of ``choices`` (no truthiness games)."""
    if not any(value == choice and type(value) is type(choice) for choice in choices):
        raise ValueError(f"`{name}` must be one of {tuple(choices)}, got {value!r}")


def check_bool(name: str, value: object) -> bool:
    """Returns ``value`` if it is a ``bool``; ``"no"`` or ``0`` are refused, not read as truthy."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {value!r}")
    return value


def check_number(name: str, value: object) -> float:
    """Returns ``value`` as a float if it is a finite real number (not a bool), else raises."""
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    scalar_tensor = isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex()
    if not (real or scalar_tensor):
        raise TypeError(f"`{name}` must be a number, got {value!r}")
    number = float(value)  # pyright: ignore[reportArgumentType]
    if not math.isfinite(number):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}")
    return number


def check_positive_number(name: str, value: object) -> float:
    """Returns ``value`` as a float if it is a finite number > 0, else raises ``ValueError``."""
    number = check_number(name, value)
    if not number > 0:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}")
    return number


def check_nonnegative_number(name: str, value: object) -> float:
    """Returns ``value`` as a float if it is a finite number >= 0, else raises ``ValueError``."""
    number = check_number(name, value)
    if not number >= 0:
        raise ValueError(f"`{name}` must be a finite number >= 0, got {value!r}")
    return number


def check_positive_int(name: str, value: object) -> int:
    """Returns ``value`` if it is an ``int`` >= 1, else raises ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
    return value


def check_nonnegative_int(name: str, value: object) -> int:
    """Returns ``value`` if it is an ``int`` >= 0, else raises ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}")
    return value


# ---------------------------------------------------------------------- value checks


def check_values(checks: Sequence[tuple[Tensor, Callable[[], str]]]) -> None:
    """Runs several value checks with one host synchronisation.

    Callers build the checks only when :func:`value_checks_enabled` (building them reads the
    data). Checks of meta tensors (no data) are skipped.

    Args:
        checks: pairs of a boolean scalar tensor that must be true and a function returning the
            error message (called only on failure, so it may synchronise to describe the values).

    Raises:
        ValueError: with the message of the first failed check.
    """
    checks = [check for check in checks if check[0].device.type != "meta"]
    if not checks or not value_checks_enabled():
        return
    device = checks[0][0].device
    flags = torch.stack([flag.reshape(()).to(device) for flag, _ in checks]).tolist()
    for ok, (_, message) in zip(flags, checks, strict=True):
        if not ok:
            raise ValueError(message())


def _extremes(value: Tensor) -> tuple[Tensor, Tensor] | None:
    """``(min, max)`` of a non-empty tensor as 0-d tensors (NaN if any entry is NaN), else None.

    One ``aminmax`` pass serves the finite and the range checks: the minimum and the maximum are
    both finite exactly when every entry is, and it is many times faster than ``isfinite().all()``.
    """
    if value.numel() == 0 or value.dtype == torch.bool:
        return None
    low, high = torch.aminmax(value.detach())
    return low, high


def _true(device: torch.device) -> Tensor:
    return torch.ones((), dtype=torch.bool, device=device)


def finite_check(name: str, value: Tensor) -> tuple[Tensor, Callable[[], str]]:
    """A :func:`check_values` entry: every entry of ``value`` is finite."""
    value = value.detach()

    def message() -> str:
        bad = int((~torch.isfinite(value)).sum())
        nan = int(torch.isnan(value).sum())
        return (
            f"`{name}` must be finite, but {bad} of its {value.numel()} entries are NaN ({nan}) "
            "or infinite"
        )

    extremes = _extremes(value) if value.is_floating_point() else None
    if extremes is None:
        return _true(value.device), message
    return torch.isfinite(extremes[0]) & torch.isfinite(extremes[1]), message


def range_check(
    name: str, value: Tensor, low: float | None, high: float | None, *, what: str = ""
) -> tuple[Tensor, Callable[[], str]]:
    """A :func:`check_values` entry: every entry lies in ``[low, high]`` (``None``: unbounded).

    NaN entries fail it too.
    """
    value = value.detach()
    ok = _true(value.device)
    extremes = _extremes(value)
    if extremes is not None:
        if low is not None:
            ok = ok & (extremes[0] >= low)
        if high is not None:
            ok = ok & (extremes[1] <= high)
    if low is not None and high is not None:
        rule = f"must lie in [{low:g}, {high:g}]"
    elif low is not None:
        rule = f"must be >= {low:g}"
    elif high is not None:
        rule = f"must be <= {high:g}"
    else:
        raise ValueError("range_check needs `low` or `high`; use finite_check for finiteness")

    def message() -> str:
        finite = value[torch.isfinite(value)]
        seen = (
            f"[{float(finite.min()):.6g}, {float(finite.max()):.6g}]" if finite.numel() else "none"
        )
        extra = f" ({what})" if what else ""
        return f"`{name}` {rule}{extra}, got values in {seen}"

    return ok, message


def sorted_check(name: str, values: Tensor) -> tuple[Tensor, Callable[[], str]]:
    """A :func:`check_values` entry: ``values`` is non-decreasing along its last axis."""
    values = values.detach()
    widths = values[..., 1:] - values[..., :-1]

    def message() -> str:
        return (
            f"`{name}` must be sorted (non-decreasing) along the last axis, but some bins have "
            f"negative width (smallest width {float(widths.min()):.6g})"
        )

    if widths.numel() == 0:
        return _true(values.device), message
    return widths.amin() >= 0, message


def finite_checks(**tensors: Tensor | None) -> list[tuple[Tensor, Callable[[], str]]]:
    """:func:`finite_check` entries for every named tensor that is not ``None``."""
    return [finite_check(name, value) for name, value in tensors.items() if value is not None]


def check_finite(**tensors: Tensor | None) -> None:
    """Raises ``ValueError`` if a named tensor holds a NaN or an infinity (one host sync)."""
    if value_checks_enabled():
        check_values(finite_checks(**tensors))


def check_in_range(name: str, value: Tensor, low: float | None, high: float | None) -> None:
    """Raises ``ValueError`` unless ``value`` is finite and lies in ``[low, high]`` (one sync)."""
    if value_checks_enabled():
        check_values([finite_check(name, value), range_check(name, value, low, high)])


# ---------------------------------------------------------------------- memory


#: Estimates below this are accepted without asking the system for its free memory.
_MEMORY_CHECK_FLOOR = 256 * 2**20


def _available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as handle:
                for line in handle:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def _gib(count: float) -> str:
    return f"{count / 2**30:.3g} GiB"


def check_memory(what: str, needed_bytes: float, device: torch.device, hint: str = "") -> None:
    """Refuses work whose estimated memory exceeds what ``device`` has available.

    Raises:
        MemoryError: naming the estimate and the limit, instead of letting the OS kill the
            process or the allocator fail half-way.
    """
    if needed_bytes < _MEMORY_CHECK_FLOOR:
        return  # fits anywhere; not worth asking the system
    available = _available_bytes(device)
    if available is None or needed_bytes <= available:
        return
    raise MemoryError(
        f"{what} needs about {_gib(needed_bytes)} but only {_gib(available)} is available on "
        f"{device}" + (f"; {hint}" if hint else "")
    )
