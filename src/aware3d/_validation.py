"""Input checks for the public boundary: clear ``ValueError`` messages naming the argument.

Shape checks never synchronise with the device. Value checks (finite, positive, in range) do, so
public entry points call them once, on construction, never inside a hot loop. Under
``torch.compile`` every check steps aside.
"""

from collections.abc import Sequence

import torch
from torch import Tensor


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def format_shape(shape: Sequence[int | str]) -> str:
    """Formats a shape as ``[2, N, 3]``."""
    return "[" + ", ".join(str(s) for s in shape) + "]"


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
    """Checks ``value.shape`` against ``expected``.

    Args:
        name: argument name used in the error message.
        value: the tensor to check.
        expected: one entry per trailing dimension: an ``int`` must match exactly, a ``str`` or
            ``None`` matches any size (the string is the dimension letter shown in the message).
        batch: if true, any number of leading dimensions may precede ``expected``.

    Raises:
        ValueError: if the number of dimensions or a fixed size differs.
    """
    if _compiling():
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


def check_finite(name: str, value: Tensor) -> None:
    """Raises ``ValueError`` if ``value`` holds a NaN or an infinity (one host sync)."""
    if _compiling():
        return
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"`{name}` must be finite, but {bad} entries are NaN or infinite")


def check_positive(name: str, value: Tensor) -> None:
    """Raises ``ValueError`` unless every entry of ``value`` is > 0 (one host sync)."""
    if _compiling():
        return
    if not bool((value > 0).all()):
        raise ValueError(
            f"`{name}` must be positive everywhere, but its minimum is {float(value.min()):.6g}"
        )


def check_in_range(name: str, value: Tensor, low: float, high: float) -> None:
    """Raises ``ValueError`` unless every entry lies in ``[low, high]`` (one host sync)."""
    if _compiling():
        return
    if value.numel() and not bool(((value >= low) & (value <= high)).all()):
        raise ValueError(
            f"`{name}` must lie in [{low}, {high}], got values in "
            f"[{float(value.min()):.6g}, {float(value.max()):.6g}]"
        )


def check_positive_number(name: str, value: float) -> float:
    """Returns ``value`` as a float if it is a finite number > 0, else raises ``ValueError``."""
    number = float(value)
    if not (number > 0 and number != float("inf")):
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}")
    return number


def check_positive_int(name: str, value: int) -> int:
    """Returns ``value`` if it is an ``int`` >= 1, else raises ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1, got {value!r}")
    return value


def check_samples_and_edges(name: str, samples: Tensor, edges: Tensor) -> None:
    """Checks per-sample values ``[..., S]`` against their bin edges ``t_edges [..., S + 1]``.

    Both must be floating-point tensors on one device; the edges' name is always ``t_edges``.
    """
    require_tensor(name, samples)
    require_tensor("t_edges", edges)
    check_shape(name, samples, ("S",), batch=True)
    check_shape("t_edges", edges, ("S+1",), batch=True)
    if edges.shape[:-1] != samples.shape[:-1] or edges.shape[-1] != samples.shape[-1] + 1:
        raise ValueError(
            f"`t_edges` must have shape [..., S + 1] = "
            f"{format_shape((*samples.shape[:-1], samples.shape[-1] + 1))} to match `{name}` "
            f"{format_shape(samples.shape)}, got {format_shape(edges.shape)}"
        )
    check_same_device([(name, samples), ("t_edges", edges)])
