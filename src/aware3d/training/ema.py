"""Exponential moving average of a generator's weights (StyleGAN's ``G_ema``)."""

import copy
from typing import TypeVar

import torch
from torch import nn

from aware3d._validation import check_number, check_positive_int, check_positive_number

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def make_ema(model: ModuleT) -> ModuleT:
    """A frozen copy of ``model`` in eval mode, to be tracked with :func:`update_ema`."""
    ema = copy.deepcopy(model).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """``ema <- beta * ema + (1 - beta) * model`` for parameters; buffers are copied.

    The average keeps its own dtype: a model trained in bfloat16 (or under ``torch.autocast``)
    can be tracked by a float32 average, whose small steps ``(1 - beta) (model - ema)`` would
    round away in bfloat16. Parameters and buffers are cast to the average's dtype first.

    Args:
        ema: the averaged copy (from :func:`make_ema`).
        model: the model being trained, with the same structure.
        beta: decay in [0, 1); StyleGAN2 uses ``0.5 ** (batch / (10k images))``.
    """
    if not 0.0 <= check_number("beta", beta) < 1.0:
        raise ValueError(f"`beta` must be in [0, 1), got {beta}")
    ema_params = dict(ema.named_parameters())
    for name, param in model.named_parameters():
        if name not in ema_params:
            raise ValueError(f"`ema` has no parameter {name!r}; was it made from `model`?")
        average = ema_params[name]
        average.lerp_(param.detach().to(average.dtype), 1.0 - beta)
    ema_buffers = dict(ema.named_buffers())
    for name, buffer in model.named_buffers():
        if name not in ema_buffers:
            raise ValueError(f"`ema` has no buffer {name!r}; was it made from `model`?")
        ema_buffers[name].copy_(buffer)


def ema_beta(batch_size: int, half_life_images: float = 10_000.0) -> float:
    """StyleGAN2's decay for a half-life in images: ``0.5 ** (batch_size / half_life_images)``."""
    check_positive_int("batch_size", batch_size)
    half_life = check_positive_number("half_life_images", half_life_images)
    return 0.5 ** (batch_size / half_life)
