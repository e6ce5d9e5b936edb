"""Argument types shared by the ``aware3d`` command's sub-commands (argparse ``type=`` callables).

Each turns the text of one argument into its value or raises ``argparse.ArgumentTypeError`` with
what was expected and what was given, which argparse prints as a usage error naming the argument.
"""

import argparse
import math
from collections.abc import Callable
from pathlib import Path


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An integer ``>= minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


#: An integer >= 1.
positive_int = int_at_least(1)
#: An integer >= 0.
nonnegative_int = int_at_least(0)


def positive_number(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def device(text: str) -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``mps``; CUDA only where it is available."""
    kind = text.split(":", 1)[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text} requested but CUDA is not available")
    return text


def existing_path(text: str) -> Path:
    """A path that exists (file or folder)."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return path
