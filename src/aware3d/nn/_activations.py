"""StyleGAN2's scaled leaky ReLU, in one place for the linear and the convolution layers.

A leaf module (it imports nothing from :mod:`aware3d`), so every layer module can import it.
"""

import math

import torch.nn.functional as F
from torch import Tensor

__all__ = ["LEAKY_GAIN", "LEAKY_SLOPE", "scaled_leaky_relu"]

#: Negative slope and gain of StyleGAN2's leaky ReLU.
LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2.0)


def scaled_leaky_relu(x: Tensor) -> Tensor:
    """StyleGAN2's activation ``sqrt(2) * leaky_relu(x, 0.2)`` (the gain keeps the variance)."""
    return F.leaky_relu(x, LEAKY_SLOPE) * LEAKY_GAIN
