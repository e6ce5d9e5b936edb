"""Input validation: one mechanism for the whole library.

Two kinds of checks, run at the public boundary:

* **Structural checks** (is it a tensor, its dtype kind, its shape, its device) never synchronise
  with the device and always run. :func:`aware3d._checked.checked` derives them from a function's
  jaxtyping annotations, so a shape is stated once, in the signature; the helpers here cover what
  annotations cannot say (sizes that depend on a module, numbers, choices).
* **Value checks** (finite, positive, in range, sorted, rigid) read the data: one host
  synchronisation per call, all of a call's checks batched. They run where data enters:
  building :class:`~aware3d.Cameras` and :class:`~aware3d.Gaussians`, reading files, and the
  public functions and modules that take raw tensors. Ops trust validated containers. Value
  checks can be switched off for tight loops with :func:`value_checks` (a context manager) or
  :func:`set_value_checks` (the global default), and they step aside under ``torch.compile``
  and for meta tensors. With them off, a NaN is not hidden: it propagates to the output.
"""

import contextlib
import math
import numbers
import os
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar

import torch
from torch import Tensor

__all__ = [
    "check_values",
    "set_value_checks",
    "value_checks",
    "value_checks_enabled",
]

# ---------------------------------------------------------------------- the switch

_value_checks_default = os.environ.get("AWARE3D_VALUE_CHECKS", "1").strip().lower() not in (
    "0",
    "false",
    "off",
)
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


def check_scene_cameras(shape: Sequence[int], batch: int, source: str) -> None:
    """Checks that cameras of batch shape ``shape`` are ``[B, C]``: ``C`` for each of ``B`` scenes.

    The renderers take one row of cameras per scene. The error says how to get there from the
    usual mistakes: a 1-D batch ``[B]`` (what ``Cameras.from_eg3d_labels`` returns for labels
    ``[B, 25]``) is one camera per scene after ``cameras[:, None]``; a 1-D batch ``[C]`` for a
    single scene is ``cameras[None]``; more batch dimensions flatten with ``reshape``.

    Args:
        shape: the cameras' batch shape (``Cameras.shape``).
        batch: ``B``, the number of scenes.
        source: where ``B`` comes from, for the message (e.g. ``"from `planes`"``).

    Raises:
        ValueError: if ``shape`` is not ``[batch, C]``, naming ``cameras``, the shape received and
            the fix.
    """
    shape = tuple(shape)
    if len(shape) == 2 and shape[0] == batch:
        return
    message = (
        f"`cameras` must have shape [B, C] with B = {batch} ({source}), got {format_shape(shape)}"
    )
    if len(shape) == 1 and shape[0] == batch:
        message += (
            f"; for one camera per scene pass `cameras[:, None]` (shape [{batch}, 1]), or "
            "`Cameras.from_eg3d_labels(labels[:, None])` for labels [B, 25]"
        )
    elif len(shape) == 1 and batch == 1:
        message += f"; for these {shape[0]} cameras of the one scene pass `cameras[None]`"
    elif len(shape) > 2 and shape[0] == batch:
        message += f"; for all of each scene's cameras pass `cameras.reshape({batch}, -1)`"
    raise ValueError(message)


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
