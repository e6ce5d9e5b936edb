"""LPIPS (Zhang et al., CVPR 2018) with a VGG16 backbone, built here, weights from local files.

Nothing is downloaded: :func:`load_lpips` reads a torchvision-format VGG16 state dict (the
``features.N.weight`` / ``features.N.bias`` tensors of ``torchvision.models.vgg16``; the
classifier's are ignored) and the LPIPS linear layers (the ``lin0`` ... ``lin4`` tensors of the
LPIPS authors' ``weights/v0.1/vgg.pth``) from paths the user gives, as the FID Inception weights
are read (:mod:`aware3d.training.inception`): ``torch.load(weights_only=True)`` or safetensors,
so a file can hold tensors only, never code.

The distance, for images ``x``, ``y`` in [-1, 1]:

* scale: ``(x - shift) / scale`` with LPIPS's ``shift = (-0.030, -0.088, -0.188)`` and
  ``scale = (0.458, 0.448, 0.450)``;
* VGG16's ``relu1_2``, ``relu2_2``, ``relu3_3``, ``relu4_3``, ``relu5_3`` (64, 128, 256, 512, 512
  channels);
* each unit-normalised over channels, ``f / (||f||_2 + 1e-10)``;
* ``d = sum_l mean_hw( sum_c w_lc (f_l(x) - f_l(y))^2_c )`` with the non-negative linear weights
  ``w_l`` (dropout is off at evaluation, as LPIPS evaluates).
"""

import os
from pathlib import Path

import torch
from einops import rearrange
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._validation import check_shape

__all__ = ["LPIPS", "VGG16Features", "load_lpips", "load_state_file"]

#: LPIPS's input shift and scale (its ``ScalingLayer``), for images in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
#: Channels of the five VGG16 layers LPIPS compares.
VGG_CHANNELS = (64, 128, 256, 512, 512)
#: torchvision's ``vgg16().features`` up to ``relu5_3``: conv widths, ``"M"`` for max pooling.
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
#: ``features`` indices that end each LPIPS slice (after ``relu1_2`` ... ``relu5_3``).
_SLICE_ENDS = (4, 9, 16, 23, 30)


class VGG16Features(nn.Module):
    """torchvision's VGG16 ``features`` (up to ``relu5_3``) with the same module indices.

    ``state_dict`` keys are ``features.N.weight`` / ``features.N.bias``, so a torchvision VGG16
    state dict loads into it (less its classifier).
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                assert isinstance(item, int)
                layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)

    def forward(self, x: Float[Tensor, "N 3 H W"]) -> list[Tensor]:
        """The five LPIPS activations of images ``[N, 3, H, W]`` (already scaled)."""
        outputs, start = [], 0
        for end in _SLICE_ENDS:
            for index in range(start, end):
                x = self.features[index](x)
            outputs.append(x)
            start = end
        return outputs


class LPIPS(nn.Module):
    """The LPIPS distance with a VGG16 backbone.

    Build it with :func:`load_lpips` for the published metric; constructed directly its weights
    are random (VGG16 as torchvision initialises it, linear weights 1), for tests.
    """

    shift: Tensor
    scale: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.vgg = VGG16Features()
        self.lins = nn.ParameterList(nn.Parameter(torch.ones(c)) for c in VGG_CHANNELS)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT)[None, :, None, None])
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE)[None, :, None, None])
        self.requires_grad_(False)

    def forward(
        self, x: Float[Tensor, "N H W 3"], y: Float[Tensor, "N H W 3"]
    ) -> Float[Tensor, " N"]:
        """The LPIPS distance of channels-last images in [-1, 1] (``[N]``, one per pair).

        Raises:
            ValueError: for images that are not ``[N, H, W, 3]`` alike.
        """
        check_shape("x", x, (None, None, None, 3))
        check_shape("y", y, tuple(x.shape))
        both = rearrange(torch.cat([x, y]), "n h w c -> n c h w")
        both = (both - self.shift.to(both.dtype)) / self.scale.to(both.dtype)
        total = both.new_zeros(x.shape[0])
        for features, weight in zip(self.vgg(both), self.lins, strict=True):
            norm = torch.linalg.vector_norm(features, dim=1, keepdim=True)  # zero gradient at 0
            features = features / (norm + 1e-10)
            fx, fy = features.chunk(2)
            weighted = ((fx - fy).square() * weight.to(fx.dtype)[None, :, None, None]).sum(dim=1)
            total = total + weighted.mean(dim=(1, 2))
        return total


def load_state_file(path: str | os.PathLike[str], what: str, argument: str) -> dict[str, Tensor]:
    """The tensors of a weights file: safetensors, or ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: for a missing file (naming ``argument``).
        ValueError: for a file that cannot be read as tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{argument} {path}: no such file ({what})")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{argument} {path}: cannot read {what} as tensors (safetensors or "
            f"torch.load(weights_only=True)): {error}"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{argument} {path}: {what} must be a dict of tensors")
    return state


def _vgg_state(state: dict[str, Tensor], model: VGG16Features, argument: str, path: str) -> dict:
    wanted = model.state_dict()
    picked = {}
    for key, reference in wanted.items():
        value = state.get(key)
        if value is None:
            raise ValueError(
                f"{argument} {path}: not a torchvision VGG16 state dict (no `{key}`; expected "
                "the keys of torchvision.models.vgg16().state_dict())"
            )
        if value.shape != reference.shape:
            raise ValueError(
                f"{argument} {path}: `{key}` has shape {list(value.shape)}, VGG16 needs "
                f"{list(reference.shape)}"
            )
        picked[key] = value.float()
    return picked


def _lin_weights(state: dict[str, Tensor], argument: str, path: str) -> list[Tensor]:
    weights = []
    for i, channels in enumerate(VGG_CHANNELS):
        value = state.get(f"lin{i}.model.1.weight", state.get(f"lin{i}.weight"))
        if value is None:
            raise ValueError(
                f"{argument} {path}: not LPIPS linear weights (no `lin{i}.model.1.weight`; "
                "expected the LPIPS authors' weights/v0.1/vgg.pth)"
            )
        if value.numel() != channels:
            raise ValueError(
                f"{argument} {path}: `lin{i}` has {value.numel()} weights, VGG16's layer {i} has "
                f"{channels} channels"
            )
        weights.append(value.reshape(channels).float())
    return weights


def load_lpips(
    vgg16: str | os.PathLike[str],
    linear: str | os.PathLike[str],
    *,
    vgg16_argument: str = "vgg16",
    linear_argument: str = "linear",
) -> LPIPS:
    """LPIPS-VGG from a torchvision VGG16 state dict and the LPIPS linear weights (local files).

    Args:
        vgg16: torchvision's ``vgg16`` weights (e.g. ``vgg16-397923af.pth``).
        linear: LPIPS's ``vgg.pth`` (``lin0.model.1.weight`` ... ``lin4.model.1.weight``).
        vgg16_argument: name of the option the VGG16 path came from (for errors).
        linear_argument: name of the option the linear weights came from (for errors).

    Returns:
        :class:`LPIPS` in eval mode, gradients off for its own weights.

    Raises:
        FileNotFoundError: a missing file, naming its argument.
        ValueError: a file that is not what it should be, naming its argument.
    """
    model = LPIPS()
    vgg_state = load_state_file(vgg16, "VGG16 weights", vgg16_argument)
    model.vgg.load_state_dict(_vgg_state(vgg_state, model.vgg, vgg16_argument, str(vgg16)))
    lins = _lin_weights(load_state_file(linear, "LPIPS linear weights", linear_argument),
                        linear_argument, str(linear))  # fmt: skip
    with torch.no_grad():
        for parameter, value in zip(model.lins, lins, strict=True):
            parameter.copy_(value)
    return model.eval().requires_grad_(False)
