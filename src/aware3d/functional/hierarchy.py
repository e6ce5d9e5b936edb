"""GSGAN's hierarchy of Gaussians: a child node parameterised by its coarser parent.

A node has a position ``mu``, a per-axis log-scale ``s``, a rotation ``q`` (``wxyz``), an opacity
logit ``o`` and features ``c`` (:class:`HierarchyNodes`). A child of parent ``p`` with raw network
outputs ``(dmu, ds, dq, do, dc)`` is (GSGAN's parameterisation)::

    mu    = mu_p + R(q_p) @ (exp(s_p) * tanh(dmu))            # inside the parent's one-sigma box
    s_hat = s_p - log(rho)   if max(exp(s_p)) > tau  else s_p  # shrink until pixel size tau
    s     = clamp(s_hat - softplus(-ds), min=min_log_scale)    # s <= s_hat (see below)
    q     = normalise(q_p + dq)
    o     = o_p + do
    c     = c_p + dc

Nodes of one level are stored level-major: with ``K`` children per parent, child ``j`` of a level
belongs to parent ``j // K`` of the level above (:func:`parent_indices`).

**Floor edge case.** The lower clamp at ``min_log_scale`` keeps every log-scale finite and bounded
below (the rasterizer never sees a vanishing Gaussian). It wins over the shrink: on an axis where
``s_hat`` itself is already below ``min_log_scale`` the child sits exactly at ``min_log_scale``,
so ``s <= max(s_hat, min_log_scale)``. Since every node made by :func:`densify` has
``s >= min_log_scale``, a child is still never larger than its parent on any axis
(``s <= s_p``); only the strict ``rho`` shrink is given up on axes already at the floor. With
``pixel_size >= rho * exp(min_log_scale)`` the parent's *largest* axis always shrinks by the full
``rho`` while it exceeds the pixel size.

**Rotations.** Quaternions are normalised when used. Nodes made by :func:`densify` hold unit
quaternions: ``q = normalise(normalise(q_p) + dq)``, which is GSGAN's ``q_p + dq`` for a unit
parent, and keeps values bounded across many levels. If ``normalise(q_p) + dq`` is (close to) zero
the rotation is undefined; the child then keeps its parent's rotation instead of producing a NaN.
"""

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor

from aware3d._checked import check_fields
from aware3d._validation import (
    check_number,
    check_positive_int,
    check_positive_number,
    check_values,
    finite_checks,
    value_checks_enabled,
)
from aware3d.functional._quaternion import (
    QUATERNION_EPS,
    normalize_quaternion,
    quaternion_to_matrix,
    unit_quaternion_to_matrix,
)
from aware3d.gaussians import Gaussians

__all__ = [
    "QUATERNION_EPS",
    "GaussianHierarchy",
    "HierarchyNodes",
    "densify",
    "descendant_mask",
    "level_sizes",
    "nodes_to_gaussians",
    "normalize_quaternion",
    "parent_indices",
    "quaternion_to_matrix",
]


class HierarchyNodes(NamedTuple):
    """Nodes of a hierarchy level (or the raw network outputs for them), ``B`` scenes x ``N`` nodes.

    Used both for nodes (position, log-scale, rotation, opacity logit, features) and for the raw
    outputs ``(dmu, ds, dq, do, dc)`` that :func:`densify` turns into children.

    Attributes:
        position: ``mu`` (or ``dmu``), ``[B, N, 3]``.
        log_scale: per-axis natural log of sigma, ``s`` (or ``ds``), ``[B, N, 3]``.
        rotation: ``wxyz`` quaternion ``q`` (or ``dq``), ``[B, N, 4]``.
        opacity_logit: ``o`` (or ``do``), ``[B, N]``.
        features: ``c`` (or ``dc``), ``[B, N, F]``.
    """

    # ``_N``: not bound across the arguments of one call, so a parent level and its children
    # (``N`` vs ``N K`` nodes) can meet in one call; ``check_fields`` binds it within one value.
    position: Float[Tensor, "B _N 3"]
    log_scale: Float[Tensor, "B _N 3"]
    rotation: Float[Tensor, "B _N 4"]
    opacity_logit: Float[Tensor, "B _N"]
    features: Float[Tensor, "B _N F"]

    @property
    def batch_size(self) -> int:
        """``B``, the number of scenes."""
        return self.position.shape[0]

    @property
    def num_nodes(self) -> int:
        """``N``, the number of nodes per scene."""
        return self.position.shape[1]


class GaussianHierarchy(NamedTuple):
    """What :meth:`HierarchicalGaussianDecoder.forward_hierarchy` returns.

    Attributes:
        gaussians: every rendered Gaussian, all levels concatenated level by level, with ``levels``.
        nodes: per level, the rendered Gaussians as :class:`HierarchyNodes` (log-space values).
        anchors: per level, the anchors (never rendered): ``anchors[0]`` are the children of the
            root and the parents of the level-0 Gaussians and of level 1; ``anchors[l]`` the
            parents of level ``l + 1``. ``L - 1`` levels (1 when ``L = 1``); empty for a flat
            (non-hierarchical) decoder.
        parents: per level, ``[N_l]`` int64: the index of every rendered Gaussian's parent anchor:
            at level 0 in ``anchors[0]`` (``j``, one Gaussian per anchor), at level ``l > 0`` in
            ``anchors[l - 1]`` (``j // K``). All zeros (the root) for a flat decoder.
        root: the fixed root node (the foreground box), one per scene, ``N = 1``.
    """

    gaussians: Gaussians
    nodes: tuple[HierarchyNodes, ...]
    anchors: tuple[HierarchyNodes, ...]
    parents: tuple[Tensor, ...]
    root: HierarchyNodes


def level_sizes(num_initial: int, children: int, num_levels: int) -> list[int]:
    """Nodes per level: level ``l`` has ``num_initial * children**l``.

    Args:
        num_initial: ``N0``, the nodes of level 0.
        children: ``K``, children per parent.
        num_levels: ``L``.

    Returns:
        ``[N0, N0 K, ..., N0 K^(L-1)]``.
    """
    check_positive_int("num_initial", num_initial)
    check_positive_int("children", children)
    check_positive_int("num_levels", num_levels)
    return [num_initial * children**level for level in range(num_levels)]


def parent_indices(
    num_parents: int, children: int, device: torch.device | str | None = None
) -> Int[Tensor, " N"]:
    """Index of every child's parent: child ``j`` belongs to parent ``j // children``.

    Args:
        num_parents: parents in the coarser level.
        children: ``K``, children per parent.
        device: device of the result.

    Returns:
        ``[num_parents * children]`` int64.
    """
    check_positive_int("num_parents", num_parents)
    check_positive_int("children", children)
    return torch.arange(num_parents * children, device=device) // children


def descendant_mask(
    num_initial: int, children: int, num_levels: int, token: int
) -> Bool[Tensor, " N"]:
    """Boolean mask over all levels' nodes (concatenated) of the descendants of one level-0 node.

    A level-``l`` node ``j`` descends from level-0 node ``j // children**l``; the level-0 node
    counts as its own descendant.

    Args:
        num_initial: ``N0``.
        children: ``K``.
        num_levels: ``L``.
        token: index of the level-0 node, in ``[0, N0)``.

    Returns:
        ``[sum_l N0 K^l]`` boolean mask.
    """
    sizes = level_sizes(num_initial, children, num_levels)
    if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < num_initial:
        raise ValueError(f"`token` must be an integer in [0, {num_initial}), got {token!r}")
    masks = [torch.arange(size) // children**level == token for level, size in enumerate(sizes)]
    return torch.cat(masks)


def _densify(
    parent: HierarchyNodes,
    raw: HierarchyNodes,
    rho: float,
    pixel_size: float,
    min_log_scale: float,
    parent_is_unit: bool = False,
    *,
    log_scale_cap: float | None = None,
    normalize_rotation: bool = True,
) -> HierarchyNodes:
    """:func:`densify` without input checks (for callers whose inputs are valid by construction).

    Two options of the decoders: ``log_scale_cap`` replaces ``s_hat`` by a constant (children of
    the root, whose size bounds positions but not scales), and ``normalize_rotation=False``
    accumulates rotations as GSGAN's released code does: ``q = q_p + dq`` (only the parent's frame
    is normalised; the stored quaternion is not).
    """
    batch, num_parents = parent.position.shape[:2]
    total = raw.position.shape[1]
    k = total // num_parents

    def per_parent(value: Tensor) -> Tensor:  # [B, M, ...] -> [B, N, K, ...]
        return value.reshape(batch, num_parents, k, *value.shape[2:])

    def flat(value: Tensor) -> Tensor:  # [B, N, K, ...] -> [B, M, ...]
        return value.reshape(batch, total, *value.shape[3:])

    q_parent = parent.rotation if parent_is_unit else normalize_quaternion(parent.rotation)
    frame = unit_quaternion_to_matrix(q_parent)  # [B, N, 3, 3]
    offset = torch.exp(parent.log_scale)[:, :, None] * torch.tanh(per_parent(raw.position))
    position = parent.position[:, :, None] + torch.einsum("bnij,bnkj->bnki", frame, offset)

    if log_scale_cap is None:
        shrink = parent.log_scale.amax(dim=-1, keepdim=True) > math.log(pixel_size)
        s_hat = (parent.log_scale - shrink.to(parent.log_scale.dtype) * math.log(rho))[:, :, None]
        log_scale = (s_hat - F.softplus(-per_parent(raw.log_scale))).clamp_min(min_log_scale)
    else:
        log_scale = (log_scale_cap - F.softplus(-per_parent(raw.log_scale))).clamp_min(
            min_log_scale
        )

    if normalize_rotation:
        q_sum = q_parent[:, :, None] + per_parent(raw.rotation)
        rotation = normalize_quaternion(q_sum, q_parent[:, :, None].expand_as(q_sum))
    else:
        rotation = parent.rotation[:, :, None] + per_parent(raw.rotation)

    opacity_logit = parent.opacity_logit[:, :, None] + per_parent(raw.opacity_logit)
    features = parent.features[:, :, None] + per_parent(raw.features)
    return HierarchyNodes(
        flat(position), flat(log_scale), flat(rotation), flat(opacity_logit), flat(features)
    )


def densify(
    parent: HierarchyNodes,
    raw: HierarchyNodes,
    *,
    rho: float = 2.0,
    pixel_size: float,
    min_log_scale: float = -8.0,
) -> HierarchyNodes:
    """Children of ``parent`` from raw network outputs, GSGAN's parent parameterisation.

    With ``N`` parents and ``N K`` raw entries, child ``j`` belongs to parent ``j // K``::

        mu    = mu_p + R(q_p) @ (exp(s_p) * tanh(dmu))
        s_hat = s_p - log(rho)  if max_axis exp(s_p) > pixel_size  else  s_p
        s     = max(s_hat - softplus(-ds), min_log_scale)
        q     = normalise(normalise(q_p) + dq)   (the parent's rotation if the sum is ~0)
        o     = o_p + do
        c     = c_p + dc

    so every child lies in its parent's one-sigma box (in the parent's frame), and
    ``s <= max(s_hat, min_log_scale)`` (see the module docstring for the floor edge case).
    Values and gradients are finite for any finite raw values, however large or small.

    Args:
        parent: ``N`` parent nodes per scene, ``[B, N, ...]``.
        raw: raw outputs ``(dmu, ds, dq, do, dc)`` for ``N K`` children, ``[B, N K, ...]``, same
            ``B``, ``F``, dtype and device as ``parent``.
        rho: shrink factor per level (> 1 shrinks), GSGAN's 2.
        pixel_size: ``tau``, the world-space size below which a parent stops shrinking its
            children by ``rho`` (for example one pixel's footprint at the scene centre).
        min_log_scale: floor of every child's log-scale.

    Returns:
        The ``N K`` children, ``[B, N K, ...]``, with unit rotations.

    Raises:
        ValueError: for mismatched shapes, dtypes or devices, a raw count that is not a multiple
            of the parent count, invalid ``rho`` / ``pixel_size`` / ``min_log_scale``, and
            (value checks) NaN or infinite values.
        TypeError: for inputs that are not :class:`HierarchyNodes` of floating-point tensors.
    """
    parent_sizes = check_fields("parent", parent, HierarchyNodes)
    raw_sizes = check_fields("raw", raw, HierarchyNodes)
    batch, num_parents = parent_sizes["B"], parent_sizes["N"]
    if raw_sizes["B"] != batch:
        raise ValueError(f"`raw` has B = {raw_sizes['B']} but `parent` has B = {batch}")
    if raw_sizes["F"] != parent_sizes["F"]:
        raise ValueError(
            f"`raw.features` has F = {raw_sizes['F']} but `parent.features` has "
            f"F = {parent_sizes['F']}"
        )
    if raw.position.dtype != parent.position.dtype:
        raise ValueError(
            f"`raw` has dtype {raw.position.dtype} but `parent` has {parent.position.dtype}"
        )
    if raw.position.device != parent.position.device:
        raise ValueError(
            f"`raw` is on {raw.position.device} but `parent` is on {parent.position.device}"
        )
    total = raw_sizes["N"]
    if num_parents == 0 or total % num_parents != 0:
        raise ValueError(
            f"`raw` must hold K children for each of the N = {num_parents} parents (N >= 1), "
            f"got {total} entries"
        )
    rho = check_positive_number("rho", rho)
    if rho < 1.0:
        raise ValueError(f"`rho` must be >= 1 (children never grow), got {rho!r}")
    pixel_size = check_positive_number("pixel_size", pixel_size)
    min_log_scale = check_number("min_log_scale", min_log_scale)
    if value_checks_enabled():
        check_values(
            finite_checks(**{f"parent.{f}": getattr(parent, f) for f in HierarchyNodes._fields})
            + finite_checks(**{f"raw.{f}": getattr(raw, f) for f in HierarchyNodes._fields})
        )
    if total == 0:
        return raw
    return _densify(parent, raw, rho, pixel_size, float(min_log_scale))


def _nodes_to_gaussians(nodes: HierarchyNodes, levels: Tensor | None) -> Gaussians:
    """:func:`nodes_to_gaussians` without checks, for nodes valid by construction."""
    return Gaussians._trusted(
        nodes.position,
        normalize_quaternion(nodes.rotation),
        torch.exp(nodes.log_scale),
        torch.sigmoid(nodes.opacity_logit),
        nodes.features,
        levels,
    )


def nodes_to_gaussians(nodes: HierarchyNodes, levels: Int[Tensor, " N"] | None = None) -> Gaussians:
    """Activated :class:`~aware3d.gaussians.Gaussians` of nodes.

    ``means = mu``, ``quats = normalise(q)``, ``scales = exp(s)``, ``opacities = sigmoid(o)``,
    ``features = c``. Every finite node gives valid Gaussians (the activations keep scales
    positive and opacities in [0, 1]).

    Args:
        nodes: the nodes, ``[B, N, ...]``.
        levels: optional hierarchy level of every node, ``[N]`` int64.

    Returns:
        ``Gaussians`` with ``B`` scenes of ``N`` Gaussians.

    Raises:
        ValueError: for fields of mismatched shapes, dtypes or devices, ``levels`` of the wrong
            shape, and (value checks) non-finite fields.
        TypeError: for ``nodes`` that are not :class:`HierarchyNodes` of floating-point tensors,
            or ``levels`` that are not int64.
    """
    sizes = check_fields("nodes", nodes, HierarchyNodes)
    if levels is not None:
        if not isinstance(levels, Tensor) or levels.dtype != torch.int64:
            raise TypeError("`levels` must be an int64 tensor of shape [N]")
        if tuple(levels.shape) != (sizes["N"],):
            raise ValueError(
                f"`levels` must have shape [N] = [{sizes['N']}], got {list(levels.shape)}"
            )
    if value_checks_enabled():
        check_values(finite_checks(**{f"nodes.{f}": getattr(nodes, f) for f in nodes._fields}))
    return _nodes_to_gaussians(nodes, levels)
