"""``nn.Module`` wrappers that own parameters and call :mod:`aware3d.functional`."""

from aware3d.nn.background import SphericalBackground, ballgan_background
from aware3d.nn.background_gaussians import GaussianBackground
from aware3d.nn.compositing import CompositeRenderer
from aware3d.nn.decoder import (
    FlatGaussianDecoder,
    HierarchicalGaussianDecoder,
    gsgan_decoder_256,
    gsgan_decoder_512,
    small_decoder,
)
from aware3d.nn.layers import (
    EqualizedLinear,
    ModulatedConv2d,
    ModulatedLinear,
    SynthesisBlock,
    SynthesisLayer,
    ToRGBLayer,
    fir_taps,
    modulated_conv2d,
    upfirdn2d,
    upsample2d,
)
from aware3d.nn.losses import (
    BallGANDensityLoss,
    CentreDistanceLoss,
    DistortionLoss,
    KNNDistanceLoss,
    SeparationLoss,
)
from aware3d.nn.mapping import MappingNetwork, ballgan_background_mapping, gsgan_mapping
from aware3d.nn.superresolution import (
    SuperResolution,
    dual_discriminator_input,
    eg3d_superresolution,
)
from aware3d.nn.triplane import (
    TriplaneDecoder,
    TriplaneDecoderOutput,
    TriplaneGenerator,
    eg3d_triplane_256,
    small_triplane,
)
from aware3d.nn.volume_renderer import TriplaneRenderer, VolumeRender

__all__ = [
    "BallGANDensityLoss",
    "CentreDistanceLoss",
    "CompositeRenderer",
    "DistortionLoss",
    "EqualizedLinear",
    "FlatGaussianDecoder",
    "GaussianBackground",
    "HierarchicalGaussianDecoder",
    "KNNDistanceLoss",
    "MappingNetwork",
    "ModulatedConv2d",
    "ModulatedLinear",
    "SeparationLoss",
    "SphericalBackground",
    "SuperResolution",
    "SynthesisBlock",
    "SynthesisLayer",
    "ToRGBLayer",
    "TriplaneDecoder",
    "TriplaneDecoderOutput",
    "TriplaneGenerator",
    "TriplaneRenderer",
    "VolumeRender",
    "ballgan_background",
    "ballgan_background_mapping",
    "dual_discriminator_input",
    "eg3d_superresolution",
    "eg3d_triplane_256",
    "fir_taps",
    "gsgan_decoder_256",
    "gsgan_decoder_512",
    "gsgan_mapping",
    "modulated_conv2d",
    "small_decoder",
    "small_triplane",
    "upfirdn2d",
    "upsample2d",
]
