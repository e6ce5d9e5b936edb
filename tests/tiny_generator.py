"""A generator written outside ``aware3d.models`` (for the engine's and the run folder's tests)."""

from typing import NamedTuple

import torch
from torch import Tensor, nn


class TinyOutput(NamedTuple):
    images: Tensor


class TinyGenerator(nn.Module):
    """A generator written outside aware3d.models: a per-latent colour and a camera-dependent tint.

    It implements the generator protocol and nothing else of the library's classes.
    """

    def __init__(self, latent_dim: int = 8) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.c_dim = 0
        self.image_channels = 3
        self.colour = nn.Linear(latent_dim, 3)
        self.tint = nn.Linear(3, 3)

    def forward(self, z, cameras, width, height, *, c=None, psi=1.0):
        del c
        colour = torch.tanh(self.colour(z * psi))  # [B, 3]
        tint = self.tint(cameras.forward_directions)  # [B, C, 3]
        images = torch.tanh(colour[:, None] + tint)[:, :, None, None, :]
        return TinyOutput(images.expand(-1, -1, height, width, -1))

    def discriminator_images(self, out):
        return out.images

    def real_discriminator_images(self, real):
        return real

    def regularizers(self, out):
        return {"brightness": out.images.mean().square()}
