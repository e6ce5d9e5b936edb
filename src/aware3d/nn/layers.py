"""StyleGAN2-style layers: equalized learning rate, style modulation with demodulation.

One namespace for the StyleGAN2 layers, implemented in private modules that import one another in
one direction only: the scaled leaky ReLU in :mod:`aware3d.nn._activations`, the linear layers
(:class:`EqualizedLinear`, :class:`ModulatedLinear`) in :mod:`aware3d.nn._linear_layers`, and the
2D convolution layers (FIR resampling, modulated convolutions, synthesis blocks; NCHW images),
which use :class:`EqualizedLinear` as their style affine, in :mod:`aware3d.nn._conv_layers`.
"""

from aware3d.nn._activations import LEAKY_GAIN, LEAKY_SLOPE
from aware3d.nn._conv_layers import (
    NOISE_MODES,
    STYLEGAN2_FIR,
    ModulatedConv2d,
    SynthesisBlock,
    SynthesisLayer,
    ToRGBLayer,
    fir_taps,
    modulated_conv2d,
    upfirdn2d,
    upsample2d,
)
from aware3d.nn._linear_layers import EqualizedLinear, ModulatedLinear

__all__ = [
    "LEAKY_GAIN",
    "LEAKY_SLOPE",
    "NOISE_MODES",
    "STYLEGAN2_FIR",
    "EqualizedLinear",
    "ModulatedConv2d",
    "ModulatedLinear",
    "SynthesisBlock",
    "SynthesisLayer",
    "ToRGBLayer",
    "fir_taps",
    "modulated_conv2d",
    "upfirdn2d",
    "upsample2d",
]
