"""Thin modules over :mod:`aware3d.functional.losses`."""

from typing import Any

from torch import Tensor, nn

from aware3d._validation import check_positive_int
from aware3d.functional.hierarchy import GaussianHierarchy
from aware3d.functional.losses import (
    Reduction,
    Space,
    ballgan_density_loss,
    check_reduction,
    check_space,
    distortion_loss,
    distortion_loss_packed,
    separation_loss,
    splat_distortion_loss,
)
from aware3d.functional.regularizers import centre_distance_loss, knn_distance_loss

__all__ = [
    "BallGANDensityLoss",
    "CentreDistanceLoss",
    "DistortionLoss",
    "KNNDistanceLoss",
    "SeparationLoss",
]


class SeparationLoss(nn.Module):
    """BallGAN's separation loss ``min(T_bg, 1 - T_bg)``; see :func:`separation_loss`.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction: Reduction = reduction

    def forward(self, bg_transmittance: Any) -> Tensor:
        """Loss of a ``T_bg`` tensor, or of a ``CompositeResult`` (its ``bg_transmittance``)."""
        if not isinstance(bg_transmittance, Tensor) and hasattr(
            bg_transmittance, "bg_transmittance"
        ):
            bg_transmittance = bg_transmittance.bg_transmittance
        return separation_loss(bg_transmittance, self.reduction)

    def extra_repr(self) -> str:
        """The constructor's arguments."""
        return f"reduction={self.reduction!r}"


class DistortionLoss(nn.Module):
    """Mip-NeRF 360 distortion loss, volumetric (dense or packed) or splat form.

    * ``loss(weights [..., S], t_edges [..., S + 1])``: :func:`distortion_loss`;
    * ``loss(weights [N], t_edges [N, 2], ray_indices=..., num_rays=R)``: packed ragged rays,
      ``t_edges[:, 0]``/``t_edges[:, 1]`` the start/end of each sample's bin,
      :func:`distortion_loss_packed`;
    * ``loss(splat_output)`` or ``loss.splat(alpha, moment1, moment2)``: the splat form
      :func:`splat_distortion_loss` from rendered depth moments. It measures metric camera depth,
      so it needs ``space="metric"`` (a module built with another space refuses splat input
      rather than ignore the space).

    ``space="mipnerf360"`` is Mip-NeRF 360's own loss: inverse-distance normalisation with its
    ``near = 0.2``, ``far = 1e6`` unless given.

    Args:
        space: ``"metric"``, ``"linear"``, ``"inverse"`` or ``"mipnerf360"`` (volumetric forms).
        near: near distance for the normalised spaces (float).
        far: far distance for the normalised spaces (float).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(
        self,
        space: Space = "metric",
        near: float | None = None,
        far: float | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        check_space(space, near, far)
        check_reduction(reduction)
        self.space: Space = space
        self.near = near
        self.far = far
        self.reduction: Reduction = reduction

    def splat(
        self, alpha: Any, moment1: Tensor | None = None, moment2: Tensor | None = None
    ) -> Tensor:
        """Splat form from ``(alpha, moment1, moment2)`` tensors ``[..., 1]`` or a splat output.

        A splat output must have been rendered with ``depth_moments=True``.

        Raises:
            ValueError: if the module's ``space`` is not ``"metric"`` (the splat form measures
                metric camera depth) or the depth moments are missing.
        """
        if self.space != "metric":
            raise ValueError(
                f"the splat distortion loss measures metric camera depth, but this DistortionLoss "
                f'has space={self.space!r}; use DistortionLoss(space="metric") for splat outputs'
            )
        if not isinstance(alpha, Tensor):
            output = alpha
            alpha = output.alpha
            moment1, moment2 = output.moment1, output.moment2
        if moment1 is None or moment2 is None:
            raise ValueError(
                "the splat distortion loss needs depth moments: pass `moment1` and `moment2`, or "
                "a splat output rendered with `depth_moments=True`"
            )
        return splat_distortion_loss(alpha, moment1, moment2, self.reduction)

    def forward(
        self,
        weights: Any,
        t_edges: Tensor | None = None,
        *,
        ray_indices: Tensor | None = None,
        num_rays: int | None = None,
    ) -> Tensor:
        """Volumetric loss of ``(weights, t_edges)``, or the splat form of a splat output.

        Args:
            weights: ``[..., S]`` (dense) or ``[N]`` (packed) weights, or a splat output.
            t_edges: ``[..., S + 1]`` sorted edges (dense) or ``[N, 2]`` bin starts/ends (packed).
            ray_indices: ``[N]`` ray id per sample (packed form).
            num_rays: number of rays ``R`` (packed form; defaults to ``ray_indices.max() + 1``,
                which costs a host synchronisation).
        """
        if not isinstance(weights, Tensor) and hasattr(weights, "moment1"):
            return self.splat(weights)
        if not isinstance(weights, Tensor):
            raise TypeError(
                f"`weights` must be a tensor or a splat output, got {type(weights).__name__}"
            )
        if t_edges is None:
            raise ValueError("`t_edges` is required for the volumetric distortion loss")
        if ray_indices is None:
            return distortion_loss(
                weights,
                t_edges,
                space=self.space,
                near=self.near,
                far=self.far,
                reduction=self.reduction,
            )
        if t_edges.ndim != 2 or t_edges.shape[-1] != 2:
            raise ValueError(
                f"packed form: `t_edges` must have shape [N, 2] (start, end), got "
                f"{list(t_edges.shape)}"
            )
        if num_rays is None:
            num_rays = int(ray_indices.max()) + 1 if ray_indices.numel() else 0
        return distortion_loss_packed(
            weights,
            t_edges[:, 0],
            t_edges[:, 1],
            ray_indices,
            num_rays,
            space=self.space,
            near=self.near,
            far=self.far,
            reduction=self.reduction,
        )

    def extra_repr(self) -> str:
        """The constructor's arguments."""
        return (
            f"space={self.space!r}, near={self.near}, far={self.far}, reduction={self.reduction!r}"
        )


class BallGANDensityLoss(nn.Module):
    """BallGAN's released foreground density loss; see :func:`ballgan_density_loss`.

    ``loss(raw_densities [..., S], t [..., S])``: the raw densities of the importance samples and
    their distances, in the order the sampler produced them. Not the Mip-NeRF 360 distortion
    loss (:class:`DistortionLoss`); its values are about 1000x larger on the same ray.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction: Reduction = reduction

    def forward(self, raw_densities: Tensor, t: Tensor) -> Tensor:
        """Loss of raw densities ``[..., S]`` at distances ``t [..., S]``."""
        return ballgan_density_loss(raw_densities, t, reduction=self.reduction)

    def extra_repr(self) -> str:
        """The constructor's arguments."""
        return f"reduction={self.reduction!r}"


def _level0_anchors(points: Any) -> Tensor:
    """The positions to regularise: a tensor as is, or a hierarchy's level-0 anchor positions."""
    if isinstance(points, GaussianHierarchy):
        if not points.anchors:
            raise ValueError(
                "the hierarchy has no anchors (a flat decoder): pass the positions to regularise"
            )
        return points.anchors[0].position
    return points


class KNNDistanceLoss(nn.Module):
    """GSGAN's k-NN regulariser of the level-0 anchors; see :func:`knn_distance_loss`.

    Call it with a :class:`~aware3d.functional.GaussianHierarchy` (its level-0 anchors are used)
    or with positions ``[B, N, 3]``. GSGAN weighs it 10 with ``k = 64`` of 256 anchors.

    Args:
        k: neighbours per point.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(self, k: int = 64, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.k = check_positive_int("k", k)
        check_reduction(reduction)
        self.reduction: Reduction = reduction

    def forward(self, points: Any) -> Tensor:
        """Loss of a hierarchy's level-0 anchors, or of positions ``[B, N, 3]``."""
        return knn_distance_loss(_level0_anchors(points), self.k, reduction=self.reduction)

    def extra_repr(self) -> str:
        """The constructor's arguments."""
        return f"k={self.k}, reduction={self.reduction!r}"


class CentreDistanceLoss(nn.Module):
    """GSGAN's centre regulariser of the level-0 anchors; see :func:`centre_distance_loss`.

    Call it with a :class:`~aware3d.functional.GaussianHierarchy` (its level-0 anchors are used)
    or with positions ``[B, N, 3]``. GSGAN weighs it 1 for FFHQ and 10 for AFHQ.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        check_reduction(reduction)
        self.reduction: Reduction = reduction

    def forward(self, points: Any) -> Tensor:
        """Loss of a hierarchy's level-0 anchors, or of positions ``[B, N, 3]``."""
        return centre_distance_loss(_level0_anchors(points), reduction=self.reduction)

    def extra_repr(self) -> str:
        """The constructor's arguments."""
        return f"reduction={self.reduction!r}"
