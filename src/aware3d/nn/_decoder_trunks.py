"""The two token networks of the Gaussian decoders: GSGAN's (``blocks="gsgan"``) and the window one.

A trunk turns style codes into per-level tokens and raw node values; the decoder turns those into
the hierarchy (:func:`aware3d.functional.hierarchy.densify`). Both expose the same steps:
``start(batch)`` (level-0 tokens), ``advance(level, tokens, ws, neighbour_points)`` (tokens of
``level > 0`` from those of ``level - 1``), ``heads(level, tokens, ws, camera)`` (raw anchor and
Gaussian values of a level), with ``camera = embed_camera(camera_forward)``.
``style_index[level]`` is the first style vector a level reads.
"""

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from aware3d.functional.hierarchy import HierarchyNodes
from aware3d.nn._decoder_blocks import (
    ModulatedTransformerBlock,
    NeighbourAttentionBlock,
    Upsample,
    knn_indices,
)
from aware3d.nn._gsgan_blocks import (
    AttributeHeads,
    FeatureEdgeBlock,
    GatedMLP,
    GatedTransformerBlock,
    PointEncoding,
    ResidualUpsample,
    ScaledMLP,
    SiblingEdgeBlock,
)
from aware3d.nn.layers import EqualizedLinear, ModulatedLinear

#: Raw channels of one node before the features: dmu (3), ds (3), dq (4), do (1).
GEOMETRY_CHANNELS = 11
#: Width of GSGAN's camera embedding appended to the colour heads.
CAMERA_EMBEDDING_DIM = 32


def raw_nodes(raw: Tensor) -> HierarchyNodes:
    """Splits ``[B, N, 11 + F]`` raw values into ``(dmu, ds, dq, do, dc)``."""
    return HierarchyNodes(raw[..., 0:3], raw[..., 3:6], raw[..., 6:10], raw[..., 10], raw[..., 11:])


class GSGANTrunk(nn.Module):
    """GSGAN's generator network (the released point generator's structure).

    * Level 0: ``N0`` learnable points ``p`` (``tanh`` keeps them in ``(-1, 1)^3``) encoded by
      :class:`PointEncoding` (its grid read as ``grid_read`` says), then ``depths[0]``
      :class:`GatedTransformerBlock` (two style vectors each: attention, MLP).
    * Level ``l > 0``: on the parent tokens an EdgeConv (levels ``1..styled_levels``: over the
      ``knn`` nearest tokens in feature space, styled; later levels: among the ``K`` siblings,
      unstyled), then :class:`ResidualUpsample` to ``K`` children, then an MLP (styled up to
      ``styled_levels``). Styled levels read two style vectors (EdgeConv, MLP).
    * Heads: separate linear heads per attribute for the anchors (all levels but the last) and for
      the Gaussians, whose feature head also reads the camera embedding ``lrelu(E f)`` of the
      camera's forward vector ``f`` when ``camera_conditioning``.
    """

    def __init__(
        self,
        w_dim: int,
        widths: Sequence[int],
        depth: int,
        num_initial: int,
        children: int,
        feature_dim: int,
        *,
        head_dim: int,
        mlp_ratio: int,
        knn: int,
        styled_levels: int,
        grid_size: int,
        camera_conditioning: bool,
        anchors: bool,
        grid_read: Literal["interpolate", "released"] = "interpolate",
    ) -> None:
        super().__init__()
        num_levels = len(widths)
        self.children_count = children
        self.styled_levels = styled_levels
        coords = torch.randn(num_initial, 3)
        coords = coords * torch.rsqrt(coords.square().mean(dim=1, keepdim=True) + 1e-8) * 0.5
        self.points = nn.Parameter(coords)
        self.encoding = PointEncoding(widths[0], grid_size, grid_read=grid_read)
        self.transformer = nn.ModuleList(
            GatedTransformerBlock(widths[0], w_dim, max(1, widths[0] // head_dim), mlp_ratio)
            for _ in range(depth)
        )
        self.edges = nn.ModuleList(
            FeatureEdgeBlock(widths[level - 1], w_dim, knn)
            if level <= styled_levels
            else SiblingEdgeBlock(widths[level - 1], children)
            for level in range(1, num_levels)
        )
        self.upsamplers = nn.ModuleList(
            ResidualUpsample(widths[level - 1], widths[level], children)
            for level in range(1, num_levels)
        )
        self.mlps = nn.ModuleList(
            GatedMLP(widths[level], w_dim, mlp_ratio)
            if level <= styled_levels
            else ScaledMLP(widths[level], mlp_ratio)
            for level in range(1, num_levels)
        )
        camera_dim = CAMERA_EMBEDDING_DIM if camera_conditioning else 0
        self.camera_embedding = (
            EqualizedLinear(3, CAMERA_EMBEDDING_DIM, leaky_relu=True)
            if camera_conditioning
            else None
        )
        self.anchor_heads = nn.ModuleList(
            AttributeHeads(widths[level], feature_dim)
            for level in range(max(1, num_levels - 1) if anchors else 0)
        )
        self.gaussian_heads = nn.ModuleList(
            AttributeHeads(width, feature_dim, camera_dim) for width in widths
        )
        self.style_index = [0] + [
            2 * depth + 2 * min(level - 1, styled_levels) for level in range(1, num_levels)
        ]
        self.num_ws = 2 * depth + 2 * min(num_levels - 1, styled_levels)

    def start(self, batch: int, dtype: torch.dtype, ws: Tensor) -> Tensor:
        """Level-0 tokens ``[B, N0, widths[0]]`` after the transformer blocks."""
        points = torch.tanh(self.points).to(dtype)[None].expand(batch, -1, -1)
        tokens = self.encoding(points)
        for index, block in enumerate(self.transformer):
            tokens = block(tokens, ws[:, 2 * index], ws[:, 2 * index + 1])
        return tokens

    def advance(self, level: int, tokens: Tensor, ws: Tensor, neighbour_points: Tensor) -> Tensor:
        """Tokens of ``level`` from the parent tokens (``neighbour_points`` is unused here)."""
        edge, upsample, mlp = (
            self.edges[level - 1],
            self.upsamplers[level - 1],
            self.mlps[level - 1],
        )
        if level <= self.styled_levels:
            style = self.style_index[level]
            tokens = edge(tokens, ws[:, style])
            return mlp(upsample(tokens), ws[:, style + 1])
        return mlp(upsample(edge(tokens)))

    def embed_camera(self, camera_forward: Tensor | None) -> Tensor | None:
        """``lrelu(E f)``, ``[B, 32]``, or ``None`` without camera conditioning."""
        if self.camera_embedding is None or camera_forward is None:
            return None
        return self.camera_embedding(camera_forward)

    def heads(
        self, level: int, tokens: Tensor, ws: Tensor, camera: Tensor | None
    ) -> tuple[HierarchyNodes | None, HierarchyNodes]:
        """Raw anchor values (``None`` at the last level or without anchors) and Gaussian values.

        The level-0 anchors' raw positions are scaled by 0.1 (GSGAN's ``xyz_output_scale``).
        """
        anchor = None
        if level < len(self.anchor_heads):
            position, *rest = self.anchor_heads[level](tokens)
            anchor = HierarchyNodes(position * 0.1 if level == 0 else position, *rest)
        return anchor, HierarchyNodes(*self.gaussian_heads[level](tokens, camera))

    def activation_floats(self, level: int, count: int, widths: Sequence[int], k: int) -> int:
        """Floats per scene one forward pass keeps for backward at ``level`` (an upper estimate)."""
        width = widths[level]
        if level == 0:
            return count * width * (4 + 24 * len(self.transformer))
        parents = count // self.children_count
        fan = k if level <= self.styled_levels else self.children_count
        edge = parents * widths[level - 1] * (12 * fan + 8)  # EdgeConv's [N, k, C] activations
        return edge + count * width * 16


class WindowTrunk(nn.Module):
    """The simpler token network (``blocks="window"``): free tokens and windowed transformers.

    Level 0: ``N0`` learned tokens through ``depths[0]`` transformer blocks whose LayerNorms are
    modulated by ``w`` (AdaLN). Level ``l > 0``: every token upsampled to ``K`` (a linear map plus
    a per-child embedding), optionally a neighbour-attention block over the children of the
    ``knn`` nearest parents, then ``depths[l]`` blocks attending within windows of descendants of
    one ancestor. One modulated linear head per level emits anchor and Gaussian values. Every block
    and head reads its own style vector.
    """

    initial_position_raw: Tensor
    child_position_raw: Tensor

    def __init__(
        self,
        w_dim: int,
        widths: Sequence[int],
        depths: Sequence[int],
        num_initial: int,
        children: int,
        feature_dim: int,
        *,
        head_dim: int,
        mlp_ratio: int,
        windows: Sequence[int],
        knn: int,
    ) -> None:
        super().__init__()
        num_levels = len(widths)
        self.children_count = children
        self.feature_dim = feature_dim
        self.depths = tuple(depths)
        self.windows = tuple(windows)
        self.knn = knn
        self.tokens = nn.Parameter(torch.randn(num_initial, widths[0]))
        self.upsamplers = nn.ModuleList(
            Upsample(widths[level - 1], widths[level], children) for level in range(1, num_levels)
        )
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                ModulatedTransformerBlock(
                    widths[level], w_dim, max(1, widths[level] // head_dim), mlp_ratio
                )
                for _ in range(depths[level])
            )
            for level in range(num_levels)
        )
        self.neighbour_blocks = (
            nn.ModuleList(
                NeighbourAttentionBlock(widths[level], w_dim, max(1, widths[level] // head_dim))
                for level in range(1, num_levels)
            )
            if knn
            else None
        )
        raw_dim = GEOMETRY_CHANNELS + feature_dim
        self.head_layers = nn.ModuleList(
            ModulatedLinear(widths[level], 2 * raw_dim, w_dim, demodulate=False, leaky_relu=False)
            for level in range(num_levels)
        )
        per_level = [depths[level] + 1 + (1 if knn and level else 0) for level in range(num_levels)]
        self.style_index = [sum(per_level[:level]) for level in range(num_levels)]
        self.head_style = [sum(per_level[: level + 1]) - 1 for level in range(num_levels)]
        self.num_ws = sum(per_level)
        self.register_buffer("initial_position_raw", torch.zeros(num_initial, 3))
        self.register_buffer("child_position_raw", torch.zeros(children, 3))

    def initialise(
        self,
        initial_positions: Tensor,
        level0_log_scale_bias: float,
        child_position_raw: Tensor,
    ) -> None:
        """Head biases: level-0 anchors at ``initial_positions`` (raw), the given level-0 scale.

        Head weights are scaled by 0.1 so outputs start near the biases; finer levels start at
        ``ds = 2`` (near the cap) with the children spread by ``child_position_raw``.
        """
        raw_dim = GEOMETRY_CHANNELS + self.feature_dim
        with torch.no_grad():
            self.initial_position_raw.copy_(initial_positions)
            self.child_position_raw.copy_(child_position_raw)
            for level, head in enumerate(self.head_layers):
                assert isinstance(head, ModulatedLinear)
                head.weight.mul_(0.1)
                bias = head.bias.view(2, raw_dim)
                bias.zero_()
                bias[:, 3:6] = level0_log_scale_bias if level == 0 else 2.0

    def start(self, batch: int, dtype: torch.dtype, ws: Tensor) -> Tensor:
        """Level-0 tokens after the level-0 transformer blocks."""
        tokens = self.tokens.to(dtype)[None].expand(batch, -1, -1)
        for index, block in enumerate(self.blocks[0]):  # type: ignore[arg-type]
            tokens = block(tokens, ws[:, index], self.windows[0])
        return tokens

    def advance(self, level: int, tokens: Tensor, ws: Tensor, neighbour_points: Tensor) -> Tensor:
        """Tokens of ``level``: upsample, (neighbour attention,) windowed blocks."""
        style = self.style_index[level]
        tokens = self.upsamplers[level - 1](tokens)
        if self.neighbour_blocks is not None:
            neighbours = knn_indices(neighbour_points, min(self.knn, neighbour_points.shape[1]))
            tokens = self.neighbour_blocks[level - 1](tokens, ws[:, style], neighbours)
            style += 1
        for block in self.blocks[level]:  # type: ignore[union-attr]
            tokens = block(tokens, ws[:, style], self.windows[level])
            style += 1
        return tokens

    def embed_camera(self, camera_forward: Tensor | None) -> None:
        """No camera embedding: this network has no camera conditioning."""
        return None

    def heads(
        self, level: int, tokens: Tensor, ws: Tensor, camera: Tensor | None
    ) -> tuple[HierarchyNodes | None, HierarchyNodes]:
        """Raw anchor and Gaussian values of ``level`` (anchor first, then Gaussian)."""
        raw = self.head_layers[level](tokens, ws[:, self.head_style[level]])
        raw_anchor, raw_gaussian = raw.chunk(2, dim=-1)
        count = tokens.shape[1]
        if level == 0:
            raw_anchor = raw_anchor.clone()
            raw_anchor[..., 0:3] = raw_anchor[..., 0:3] + self.initial_position_raw.to(raw.dtype)
        else:
            offset = self.child_position_raw.to(raw.dtype).repeat(count // self.children_count, 1)
            raw_anchor = torch.cat([raw_anchor[..., 0:3] + offset, raw_anchor[..., 3:]], dim=-1)
            raw_gaussian = torch.cat(
                [raw_gaussian[..., 0:3] + offset, raw_gaussian[..., 3:]], dim=-1
            )
        return raw_nodes(raw_anchor), raw_nodes(raw_gaussian)

    def activation_floats(self, level: int, count: int, widths: Sequence[int], k: int) -> int:
        """Floats per scene one forward pass keeps for backward at ``level`` (an upper estimate)."""
        raw_dim = GEOMETRY_CHANNELS + self.feature_dim
        return count * (widths[level] * 16 * (self.depths[level] + 1) + 8 * raw_dim)


def window_initial_offsets(
    num_initial: int, children: int, radius: float, box_half_extent: float
) -> tuple[Tensor, Tensor]:
    """Fixed raw offsets (seed 0) of the window trunk's heads.

    Returns:
        Raw level-0 positions ``[N0, 3]`` that put the anchors uniformly in a ball of ``radius``,
        and raw child offsets ``[K, 3]`` that spread the children of a parent.
    """
    seeded = torch.Generator().manual_seed(0)
    direction = torch.randn(num_initial, 3, generator=seeded)
    direction = direction / torch.linalg.vector_norm(direction, dim=-1, keepdim=True)
    points = direction * radius * torch.rand(num_initial, 1, generator=seeded) ** (1 / 3)
    child_offsets = torch.randn(children, 3, generator=seeded) * 0.6
    return torch.atanh(points / box_half_extent), child_offsets


def softplus_inverse(y: float) -> float:
    """``x`` with ``softplus(x) = y`` (``y > 0``)."""
    return y + math.log(-math.expm1(-y))
