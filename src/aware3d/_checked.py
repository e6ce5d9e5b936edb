"""Tensor arguments checked against their jaxtyping annotations, at every call.

:func:`checked` derives a function's structural checks from its signature, so a shape is stated
once: ``Float[Tensor, "*batch S+1"]`` next to ``Float[Tensor, "*batch S"]`` means a floating-point
tensor whose shape is the ``*batch`` and ``S`` bound by the other argument, then ``S + 1``. A
mismatch raises ``ValueError`` naming the argument, the expected and the received shape.
:func:`check_fields` does the same for the tensor fields of a NamedTuple. None of it synchronises
with the device, and all of it steps aside under ``torch.compile``.
"""

import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from aware3d._validation import format_shape

__all__ = ["check_fields", "checked"]


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


@functools.cache
def _compiled(expression: str) -> types.CodeType:
    return compile(expression, "<dimension>", "eval")


def _evaluate(expression: str, bound: _Bindings) -> int | None:
    """The value of a dimension expression such as ``S+1``, or None while a name is unbound.

    Expressions come from the library's own annotations, evaluated without builtins.
    """
    try:
        value = eval(_compiled(expression), {"__builtins__": {}}, dict(bound.sizes))
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
