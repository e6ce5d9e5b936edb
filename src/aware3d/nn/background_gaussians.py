"""GSGAN's background: Gaussians on a sphere shell, rendered in the foreground's rasterization pass.

The alternative to BallGAN's :class:`~aware3d.nn.SphericalBackground`: instead of a density-free
sphere composited behind the splatted foreground, ``P`` learnable points on the sphere of radius
``R`` (a shell behind the object, on the side away from FFHQ's frontal cameras) become ``P``
parent Gaussians and ``P K`` children, all of them on the sphere, drawn together with the
foreground Gaussians (concatenate them with :meth:`~aware3d.Gaussians.cat` and call
:func:`~aware3d.rasterize` once).

Per point ``p`` (learnable, shared by all scenes) with style ``w``:

* features ``h = block_0(sin(W p + b), w)``, ``block`` = two residual modulated layers
  ``h <- h + g * act(ModLinear(h, w))`` with learnable per-channel gains ``g`` (initially 0.01);
* parent: position ``R p / |p|``; log-scale ``s = c - softplus(c - s_raw)`` with
  ``s_raw = head + s_0`` (a soft cap at ``c = scale_cap``; ``s_0 = scale_init``, by default
  ``c``); rotation ``(1, 0, 0, 0) + head``; features ``head``; opacity
  ``sigmoid(logit(o_0) + head)`` (``o_0 = initial_opacity``, 0.1);
* children (``K`` per parent): ``h_k = (h + u_k) / sqrt(2)`` with ``[u_1 ... u_K]`` a modulated
  layer of ``h``, then ``block_1``; position ``x + R(q) diag(exp s) tanh(d)`` projected back onto
  the sphere; log-scale ``max(s - [max exp(s) > split_threshold] ln(K) / 3 - softplus(-ds),
  min_log_scale)`` (at most 0, as released, since ``s <= scale_cap <= 0``); rotation (not
  normalised, as released), features and opacity logit are the parent's plus a delta. This is
  :func:`~aware3d.functional.densify`'s child step with ``rho = K^(1/3)`` and
  ``pixel_size = split_threshold``, followed by the projection onto the sphere.

Heads are modulated, not demodulated, with initial weight scales 1 (position, features,
opacity) and 0.01 (scale, rotation), so the children start near their parents.
``modulation="released"`` gives every modulated layer the released formula (the demodulation
epsilon on the raw weight, outputs clamped to ``[-256, 256]``), so that converted checkpoints
reproduce the released network to float64 rounding.

Precision: under ``torch.autocast`` the modulated layers' products run in autocast's dtype; the
points' encoding ``sin(W p + b)`` and the Gaussians' geometry (children, projection onto the
sphere, activations) are computed in the parameters' dtype with autocast off, and the Gaussians
have that dtype.
"""

import math
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._checked import checked
from aware3d._precision import autocast_off
from aware3d._validation import (
    check_choice,
    check_module_device,
    check_module_dtype,
    check_number,
    check_positive_int,
    check_positive_number,
    check_shape,
    check_values,
    finite_checks,
    value_checks_enabled,
)
from aware3d.functional.hierarchy import HierarchyNodes, _densify, normalize_quaternion
from aware3d.gaussians import Gaussians
from aware3d.nn._activations import scaled_leaky_relu
from aware3d.nn.layers import ModulatedLinear

__all__ = ["GaussianBackground"]

#: The released modulated layers clamp their outputs to +-256 (``bias_act(..., clamp=256)``).
_RELEASED_CLAMP = 256.0

Modulation = Literal["aware3d", "released"]


class _ModulatedLinear(ModulatedLinear):
    """:class:`ModulatedLinear`, or (``modulation="released"``) GSGAN's released modulated layer.

    The released layer demodulates with ``d_o = (sum_i (W_oi s_i)^2 + 1e-8)^-1/2`` on the raw
    weight ``W`` (the library adds ``1e-8`` to the gain-scaled weight's sum instead: a 1e-8-level
    difference), skips the weight gain when demodulating (it cancels), and clamps every output
    to ``[-256, 256]`` after the activation. Same parameters and names as ``ModulatedLinear``.
    """

    def __init__(
        self, in_features: int, out_features: int, w_dim: int, *, modulation: Modulation,
        demodulate: bool = True, leaky_relu: bool = True,
    ) -> None:  # fmt: skip
        super().__init__(
            in_features, out_features, w_dim, demodulate=demodulate, leaky_relu=leaky_relu
        )
        self.modulation = modulation

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """``x [B, ..., in]``, ``w [B, w_dim]`` -> ``[B, ..., out]`` (inputs trusted: private)."""
        if self.modulation == "aware3d":
            return super().forward(x, w)
        styles = self.affine(w)
        view = (styles.shape[0],) + (1,) * (x.ndim - 2) + (styles.shape[-1],)
        if self.demodulate:
            y = F.linear(x * styles.reshape(view), self.weight)
            demod = torch.rsqrt(styles.square() @ self.weight.square().T + 1e-8)
            y = y * demod.reshape(*view[:-1], self.out_features)
        else:
            y = F.linear(x * (styles * self.weight_gain).reshape(view), self.weight)
        y = y + self.bias
        y = scaled_leaky_relu(y) if self.leaky_relu else y
        return y.clamp(-_RELEASED_CLAMP, _RELEASED_CLAMP)


class _ResidualBlock(nn.Module):
    """Two residual modulated layers with learnable per-channel branch gains (initially 0.01)."""

    def __init__(self, width: int, w_dim: int, modulation: Modulation) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            _ModulatedLinear(width, width, w_dim, modulation=modulation) for _ in range(2)
        )
        self.gains = nn.Parameter(torch.full((2, width), 0.01))

    def forward(self, h: Tensor, w: Tensor) -> Tensor:
        for layer, gain in zip(self.layers, self.gains, strict=True):
            h = h + gain * layer(h, w)
        return h


class _Heads(nn.Module):
    """Modulated, non-demodulated linear heads for each attribute, with GSGAN's initial scales."""

    def __init__(
        self, width: int, w_dim: int, feature_dim: int, *, position: bool, modulation: Modulation
    ) -> None:
        super().__init__()
        sizes = {"scale": (3, 0.01), "rotation": (4, 0.01), "features": (feature_dim, 1.0),
                 "opacity": (1, 1.0)}  # fmt: skip
        if position:
            sizes["position"] = (3, 1.0)
        self.heads = nn.ModuleDict()
        for name, (size, init_scale) in sizes.items():
            head = _ModulatedLinear(
                width, size, w_dim, modulation=modulation, demodulate=False, leaky_relu=False
            )
            with torch.no_grad():
                head.weight.mul_(init_scale)
            self.heads[name] = head

    def forward(self, h: Tensor, w: Tensor) -> dict[str, Tensor]:
        return {name: head(h, w) for name, head in self.heads.items()}


class GaussianBackground(nn.Module):
    """GSGAN's background Gaussians for ``B`` scenes: ``P`` parents and ``P K`` children.

    See the module docstring for the formulas. GSGAN's configuration is the default: 2,000
    points on the sphere of radius 3 (cameras at 2.7 are inside it), ``K = 4`` children, width
    128, scale cap ``-2``, split threshold 0.05, log-scales clamped to ``[-10, 0]``, 3 colour
    features. GSGAN renders the background black where nothing covers it, drives this module with
    one extra style vector of its mapping network, and switches it on after the first 50,000
    training images.

    The features are raw, as the released network outputs them (for GSGAN, degree-0
    spherical-harmonic coefficients ``c``): give them the foreground's colour activation before
    rasterizing, as GSGAN's rasterizer does to both (``max(0, 0.2821 c + 0.5)``);
    :class:`~aware3d.models.GSGANGenerator` applies its decoder's
    :meth:`~aware3d.nn.HierarchicalGaussianDecoder.activate_colours`.

    With ``w_dim=512`` this module has 1,061,641 parameters: the released background network's
    1,121,692 less its level-0 position head, whose output is never used (66,051), plus the 2,000
    points (6,000), which GSGAN keeps on the generator.

    Args:
        w_dim: width of the style code ``w``.
        feature_dim: features per Gaussian ``F`` (e.g. 3 for colour).
        num_points: ``P``, the learnable points on the sphere.
        children: ``K``, children per point.
        radius: sphere radius ``R``.
        hidden: width of the per-point features.
        scale_cap: soft upper bound of the parents' log-scale.
        split_threshold: a parent whose largest scale exceeds it gives children whose scales are
            ``K^(1/3)`` times smaller (the volume split among ``K``).
        min_log_scale: lower clamp of the children's log-scale.
        scale_init: the parents' log-scale before the head's output (``s_raw = head +
            scale_init``); default ``scale_cap`` (GSGAN's ``scale_init_bg = scale_threshold_bg``).
        initial_opacity: the parents' opacity before the head's output (GSGAN: 0.1).
        modulation: ``"aware3d"`` (default): the library's :class:`~aware3d.nn.ModulatedLinear`.
            ``"released"``: GSGAN's released modulated layers (demodulation epsilon on the raw
            weight, outputs clamped to ``[-256, 256]``), for converted checkpoints.
        seed: seed of the points' initialisation (a shell ``z <= 0``, norm ``sqrt(3)``) and the
            encoding's random frequencies.
    """

    def __init__(
        self,
        w_dim: int,
        feature_dim: int = 3,
        *,
        num_points: int = 2000,
        children: int = 4,
        radius: float = 3.0,
        hidden: int = 128,
        scale_cap: float = -2.0,
        split_threshold: float = 0.05,
        min_log_scale: float = -10.0,
        scale_init: float | None = None,
        initial_opacity: float = 0.1,
        modulation: Modulation = "aware3d",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.w_dim = check_positive_int("w_dim", w_dim)
        self.feature_dim = check_positive_int("feature_dim", feature_dim)
        self.num_points = check_positive_int("num_points", num_points)
        self.num_children = check_positive_int("children", children)
        self.radius = check_positive_number("radius", radius)
        self.hidden = check_positive_int("hidden", hidden)
        self.scale_cap = check_number("scale_cap", scale_cap)
        self.split_threshold = check_positive_number("split_threshold", split_threshold)
        self.min_log_scale = check_number("min_log_scale", min_log_scale)
        self.scale_init = (
            self.scale_cap if scale_init is None else check_number("scale_init", scale_init)
        )
        initial_opacity = check_positive_number("initial_opacity", initial_opacity)
        if initial_opacity >= 1:
            raise ValueError(f"`initial_opacity` must be in (0, 1), got {initial_opacity!r}")
        self.initial_opacity_logit = math.log(initial_opacity / (1 - initial_opacity))
        check_choice("modulation", modulation, ("aware3d", "released"))
        self.modulation: Modulation = modulation
        if self.scale_cap > 0 or self.min_log_scale >= 0:
            raise ValueError(
                "`scale_cap` must be <= 0 and `min_log_scale` < 0 (log-scales are clamped to "
                f"[min_log_scale, 0]), got scale_cap={scale_cap!r}, min_log_scale={min_log_scale!r}"
            )
        generator = torch.Generator().manual_seed(seed)
        points = torch.randn(num_points, 3, generator=generator)
        points[:, 2] = -points[:, 2].abs()
        points = points / points.square().mean(dim=1, keepdim=True).sqrt()
        self.points = nn.Parameter(points)
        self.encoding = nn.Linear(3, hidden)
        with torch.no_grad():
            bound = math.sqrt(3.0)
            self.encoding.weight.copy_(
                torch.rand(hidden, 3, generator=generator) * (2 * bound) - bound
            )
            self.encoding.bias.copy_(torch.rand(hidden, generator=generator) * 2 - 1)
        self.parent_block = _ResidualBlock(hidden, w_dim, modulation)
        self.parent_heads = _Heads(
            hidden, w_dim, feature_dim, position=False, modulation=modulation
        )
        self.upsample = _ModulatedLinear(hidden, children * hidden, w_dim, modulation=modulation)
        self.child_block = _ResidualBlock(hidden, w_dim, modulation)
        self.child_heads = _Heads(hidden, w_dim, feature_dim, position=True, modulation=modulation)

    @property
    def num_gaussians(self) -> int:
        """``P (1 + K)``: every parent and child, as rendered."""
        return self.num_points * (1 + self.num_children)

    @checked
    def forward(self, w: Float[Tensor, "B D"]) -> Gaussians:
        """The background Gaussians of ``B`` scenes, parents first, then their children.

        Args:
            w: style codes ``[B, D]``.

        Returns:
            :class:`~aware3d.Gaussians` ``[B, P (1 + K)]`` with ``F`` raw features (not
            activated), every mean on the sphere of radius ``R``. Activate the features as the
            foreground's, concatenate them with the foreground's and rasterize once.

        Raises:
            ValueError: for a misshapen ``w``, a dtype (outside ``torch.autocast``) or device
                other than the module's, and (value checks) a non-finite ``w``.
        """
        check_shape("w", w, ("B", self.w_dim))
        check_module_dtype("w", w, self)
        check_module_device("w", w, self)
        if value_checks_enabled():
            check_values(finite_checks(w=w))
        dtype = self.points.dtype
        w = w.to(dtype)
        batch, count, k = w.shape[0], self.num_points, self.num_children
        points = self.points.expand(batch, count, 3)
        with autocast_off(w.device):
            encoded = torch.sin(self.encoding(points))
        h = self.parent_block(encoded, w)
        parent = {name: value.to(dtype) for name, value in self.parent_heads(h, w).items()}
        upsampled = self.upsample(h, w).reshape(batch, count, k, self.hidden)
        h_child = ((h[:, :, None] + upsampled) / math.sqrt(2.0)).reshape(
            batch, count * k, self.hidden
        )
        child = self.child_heads(self.child_block(h_child, w), w)
        with autocast_off(w.device):
            return self._gaussians(points, parent, {n: v.to(dtype) for n, v in child.items()})

    def _gaussians(
        self, points: Tensor, parent: dict[str, Tensor], child: dict[str, Tensor]
    ) -> Gaussians:
        """The parents and their children from the heads' raw values (the geometry)."""
        position = F.normalize(points, dim=-1) * self.radius
        raw_scale = parent["scale"] + self.scale_init
        log_scale = self.scale_cap - F.softplus(self.scale_cap - raw_scale)
        rotation = parent["rotation"] + points.new_tensor([1.0, 0.0, 0.0, 0.0])
        opacity_logit = parent["opacity"][..., 0] + self.initial_opacity_logit
        features = parent["features"]

        # GSGAN's children of the parents (densify with rho = K^(1/3) above split_threshold and
        # rotations accumulated), then put back on the sphere
        parents = HierarchyNodes(position, log_scale, rotation, opacity_logit, features)
        raw = HierarchyNodes(
            child["position"], child["scale"], child["rotation"], child["opacity"][..., 0],
            child["features"],
        )  # fmt: skip
        children = _densify(
            parents, raw, self.num_children ** (1 / 3), self.split_threshold, self.min_log_scale,
            normalize_rotation=False,
        )  # fmt: skip
        child_position = F.normalize(children.position, dim=-1) * self.radius
        # valid by construction (like the decoder's output): no value checks, no host sync
        return Gaussians._trusted(
            torch.cat([position, child_position], dim=1),
            normalize_quaternion(torch.cat([rotation, children.rotation], dim=1)),
            torch.cat([log_scale, children.log_scale], dim=1).exp(),
            torch.sigmoid(torch.cat([opacity_logit, children.opacity_logit], dim=1)),
            torch.cat([features, children.features], dim=1),
            None,
        )

    def extra_repr(self) -> str:
        """The configuration for ``repr``."""
        return (
            f"w_dim={self.w_dim}, feature_dim={self.feature_dim}, "
            f"num_points={self.num_points}, children={self.num_children}, radius={self.radius:g}, "
            f"hidden={self.hidden}"
        )
