"""Private building blocks of GSGAN's token network (``blocks="gsgan"`` of the decoders).

Written from the facts of GSGAN's paper and released generator (hse1032/GSGAN): tokens are
``[B, N, C]``, normalisation runs over the tokens of a scene (AdaIN), every residual branch is
scaled by a gate that starts at zero, and finer levels mix information with EdgeConv blocks.
"""

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aware3d.nn.layers import EqualizedLinear


def _zero_gate(width: int, w_dim: int) -> EqualizedLinear:
    """``gate(w)``, an affine map of ``w`` whose weight and bias start at 0 (a closed gate)."""
    gate = EqualizedLinear(w_dim, width)
    with torch.no_grad():
        gate.weight.zero_()
    return gate


class TokenAdaIN(nn.Module):
    """AdaIN over tokens: every channel normalised across the tokens of one scene, then styled.

    ``y = gamma(w) * (x - mean_n x) / (std_n x + 1e-8) + beta(w)``; the mean and the (biased)
    standard deviation run over the ``N`` tokens, per scene and channel (not over the channels of
    a token, as LayerNorm does). ``gamma`` starts around 1 (bias 1), ``beta`` around 0.
    """

    def __init__(self, width: int, w_dim: int) -> None:
        super().__init__()
        self.gamma = EqualizedLinear(w_dim, width, bias_init=1.0)
        self.beta = EqualizedLinear(w_dim, width)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """``x [B, N, C]``, ``w [B, D]`` -> ``[B, N, C]``."""
        mean = x.mean(dim=1, keepdim=True)
        std = (x - mean).square().mean(dim=1, keepdim=True).sqrt()
        normalised = (x - mean) / (std + 1e-8)
        return normalised * self.gamma(w)[:, None] + self.beta(w)[:, None]


class PointEncoding(nn.Module):
    """Level-0 tokens from learnable 3D points ``p`` in ``(-1, 1)^3``: sinusoids and a learned grid.

    ``e(p) = [sin(A p + a), (g_x(p_x) + g_y(p_y) + g_z(p_z)) / sqrt(3)]``: ``width // 2`` random
    Fourier features (``A`` uniform in ``+-sqrt(3)``, SIREN's first-layer range) and, per axis, a
    learned table of ``grid_size`` cells.

    ``grid_read="interpolate"`` (default) reads the table by linear interpolation at the coordinate
    (``align_corners=False``, border cells extended). ``grid_read="released"`` reads it as GSGAN's
    released code does (``grid_sample`` of a ``[C, 1, grid_size]`` image at ``(x, y) = (0, p)``,
    bilinear, zero padding): the middle of the table (the mean of cells ``G/2 - 1`` and ``G/2`` for
    an even ``G``), scaled by ``1 - |p| / 2``, for every ``p`` in ``[-1, 1]``.
    """

    def __init__(
        self,
        width: int,
        grid_size: int,
        *,
        grid_read: Literal["interpolate", "released"] = "interpolate",
    ) -> None:
        super().__init__()
        if grid_read not in ("interpolate", "released"):
            raise ValueError(f"`grid_read` must be 'interpolate' or 'released', got {grid_read!r}")
        self.grid_read = grid_read
        self.fourier = nn.Linear(3, width // 2)
        with torch.no_grad():
            self.fourier.weight.uniform_(-math.sqrt(3.0), math.sqrt(3.0))
        self.grid = nn.Parameter(torch.randn(3, width - width // 2, grid_size))

    def forward(self, points: Tensor) -> Tensor:
        """``points [B, N, 3]`` in ``(-1, 1)`` -> tokens ``[B, N, width]``."""
        if self.grid_read == "released":
            grid_features = self._released_grid(points)
        else:
            grid_features = self._interpolated_grid(points)
        return torch.cat([torch.sin(self.fourier(points)), grid_features], dim=-1)

    def _interpolated_grid(self, points: Tensor) -> Tensor:
        cells = self.grid.shape[-1]
        where = ((points + 1) * cells / 2 - 0.5).clamp(0, cells - 1)  # [B, N, 3]
        low = where.floor().clamp_max(cells - 2) if cells > 1 else where.floor()
        frac = (where - low)[..., None]  # [B, N, 3, 1]
        low = low.long()
        table = self.grid.permute(0, 2, 1)  # [3, cells, C]
        axes = torch.arange(3, device=points.device)
        below = table[axes, low]  # [B, N, 3, C]
        above = table[axes, (low + 1).clamp_max(cells - 1)]
        return (below + frac * (above - below)).sum(dim=2) / math.sqrt(3.0)

    def _released_grid(self, points: Tensor) -> Tensor:
        # grid_sample's source index along the G cells at x = 0 is G / 2 - 0.5; along the size-1
        # axis at y = p it is p / 2, so the one row is weighted 1 - |p| / 2 (its neighbour is
        # zero padding)
        cells = self.grid.shape[-1]
        centre = cells / 2 - 0.5
        low = math.floor(centre)
        frac = centre - low
        middle = self.grid[..., low]  # [3, C]
        if frac:
            middle = middle * (1 - frac) + self.grid[..., low + 1] * frac
        weight = (1 - points.abs() / 2).clamp_min(0)  # [B, N, 3]
        return (weight[..., None] * middle).sum(dim=2) / math.sqrt(3.0)


class GatedTransformerBlock(nn.Module):
    """GSGAN's coarse block: AdaIN over tokens, attention and a 4x GELU MLP, both gated by ``w``.

    ``x = x + attn(AdaIN(x, w_a)) * gate_a(w_a)``; ``x = x + mlp(AdaIN(x, w_m)) * gate_m(w_m)``
    with ``mlp(h) = W2 (sqrt(2) GELU(W1 h))``. The gates start at zero, so the block starts as the
    identity; attention and MLP take separate style vectors.
    """

    def __init__(self, width: int, w_dim: int, num_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm_attention = TokenAdaIN(width, w_dim)
        self.qkv = EqualizedLinear(width, 3 * width)
        self.proj = EqualizedLinear(width, width)
        self.gate_attention = _zero_gate(width, w_dim)
        self.norm_mlp = TokenAdaIN(width, w_dim)
        self.mlp = GELUMLP(width, mlp_ratio)
        self.gate_mlp = _zero_gate(width, w_dim)

    def forward(self, x: Tensor, w_attention: Tensor, w_mlp: Tensor) -> Tensor:
        """``x [B, N, C]``, styles ``[B, D]`` -> ``[B, N, C]``."""
        batch, count, width = x.shape
        qkv = self.qkv(self.norm_attention(x, w_attention))
        qkv = qkv.reshape(batch, count, 3, self.num_heads, width // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, N, head_dim]
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(x.shape)
        x = x + self.proj(attended) * self.gate_attention(w_attention)[:, None]
        return x + self.mlp(self.norm_mlp(x, w_mlp)) * self.gate_mlp(w_mlp)[:, None]


class GELUMLP(nn.Module):
    """``W2 (sqrt(2) GELU(W1 x))`` with hidden width ``ratio * width`` (equalized layers)."""

    def __init__(self, width: int, ratio: int) -> None:
        super().__init__()
        self.fc1 = EqualizedLinear(width, ratio * width)
        self.fc2 = EqualizedLinear(ratio * width, width)

    def forward(self, x: Tensor) -> Tensor:
        """``[..., C]`` -> ``[..., C]``."""
        return self.fc2(F.gelu(self.fc1(x)) * math.sqrt(2.0))


class GatedMLP(nn.Module):
    """``x + mlp(AdaIN(x, w)) * gate(w)``: the styled MLP after upsampling (levels 1-2 in GSGAN)."""

    def __init__(self, width: int, w_dim: int, ratio: int) -> None:
        super().__init__()
        self.norm = TokenAdaIN(width, w_dim)
        self.mlp = GELUMLP(width, ratio)
        self.gate = _zero_gate(width, w_dim)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """``x [B, N, C]``, ``w [B, D]`` -> ``[B, N, C]``."""
        return x + self.mlp(self.norm(x, w)) * self.gate(w)[:, None]


class ScaledMLP(nn.Module):
    """``x + mlp(x) * g``, ``g`` a per-channel scale starting at 0: the MLP of unstyled levels."""

    def __init__(self, width: int, ratio: int) -> None:
        super().__init__()
        self.mlp = GELUMLP(width, ratio)
        self.scale = nn.Parameter(torch.zeros(width))

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, C]`` -> ``[B, N, C]``."""
        return x + self.mlp(x) * self.scale


class EdgeConv(nn.Module):
    """Softmax-weighted EdgeConv: ``y_i = sum_j softmax_j(a(x_j - x_i)) * h([x_i, x_j - x_i])``.

    ``a`` (``C -> C/2 -> C``) and ``h`` (``2C -> C -> C``) are two-layer perceptrons with the scaled
    leaky ReLU between; the softmax runs over the neighbours ``j`` of ``i``, per output channel.
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight_hidden = EqualizedLinear(width, max(1, width // 2), leaky_relu=True)
        self.weight_out = EqualizedLinear(max(1, width // 2), width)
        self.value_hidden = EqualizedLinear(2 * width, width, leaky_relu=True)
        self.value_out = EqualizedLinear(width, width)

    def forward(self, x: Tensor, neighbours: Tensor) -> Tensor:
        """``x [B, N, C]`` and the features of each token's ``k`` neighbours ``[B, N, k, C]``."""
        centre = x[:, :, None].expand_as(neighbours)
        delta = neighbours - centre
        weights = torch.softmax(self.weight_out(self.weight_hidden(delta)), dim=2)
        values = self.value_out(self.value_hidden(torch.cat([centre, delta], dim=-1)))
        return (weights * values).sum(dim=2)


def feature_neighbours(x: Tensor, k: int) -> Tensor:
    """Indices ``[B, N, k]`` of each token's ``k`` nearest other tokens in feature space.

    The token itself is excluded (a token with no other token, ``N = 1``, is its own neighbour);
    ``k`` is capped at ``N - 1``. The indices carry no gradient.
    """
    count = x.shape[1]
    if count == 1:
        return torch.zeros(x.shape[0], 1, 1, dtype=torch.int64, device=x.device)
    with torch.no_grad():
        distance = torch.cdist(x.detach(), x.detach())
        distance.diagonal(dim1=1, dim2=2).fill_(float("inf"))
        return distance.topk(min(k, count - 1), dim=-1, largest=False).indices


class FeatureEdgeBlock(nn.Module):
    """Styled EdgeConv over the ``k`` nearest tokens in feature space (GSGAN's levels 1 and 2).

    ``x + EdgeConv(AdaIN(x, w), kNN) * gate(w)``: neighbours are found among the normalised
    tokens of the scene (all of them, not only siblings), so the cost is ``O(N^2)`` per level.
    """

    def __init__(self, width: int, w_dim: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.norm = TokenAdaIN(width, w_dim)
        self.edge = EdgeConv(width)
        self.gate = _zero_gate(width, w_dim)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """``x [B, N, C]``, ``w [B, D]`` -> ``[B, N, C]``."""
        h = self.norm(x, w)
        index = feature_neighbours(h, self.k)  # [B, N, k]
        scenes = torch.arange(h.shape[0], device=h.device)[:, None, None]
        return x + self.edge(h, h[scenes, index]) * self.gate(w)[:, None]


class SiblingEdgeBlock(nn.Module):
    """Unstyled EdgeConv among the ``K`` siblings of every token (GSGAN's levels >= 3).

    Tokens ``p K .. p K + K - 1`` share a parent; each attends to all ``K`` of them (itself
    included). ``x + EdgeConv(x) * g`` with a per-channel scale ``g`` starting at 0.
    """

    def __init__(self, width: int, children: int) -> None:
        super().__init__()
        self.children_count = children
        self.edge = EdgeConv(width)
        self.scale = nn.Parameter(torch.zeros(width))

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, P K, C]`` -> ``[B, P K, C]``."""
        batch, count, width = x.shape
        k = self.children_count
        groups = x.reshape(batch, count // k, 1, k, width).expand(-1, -1, k, -1, -1)
        neighbours = groups.reshape(batch, count, k, width)
        return x + self.edge(x, neighbours) * self.scale


class ResidualUpsample(nn.Module):
    """Each token becomes ``K`` tokens: ``(repeat(r(x)) + split(lrelu(U x))) / sqrt(2)``.

    ``U`` maps ``C_in`` to ``K C_out`` channels, split into ``K`` children (child ``j`` of token
    ``p`` is token ``p K + j``); ``r`` is the identity when ``C_in = C_out``, else a linear map.
    """

    def __init__(self, in_width: int, out_width: int, children: int) -> None:
        super().__init__()
        self.children_count = children
        self.out_width = out_width
        self.expand = EqualizedLinear(in_width, children * out_width, leaky_relu=True)
        self.residual = (
            EqualizedLinear(in_width, out_width) if in_width != out_width else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, C_in]`` -> ``[B, N K, C_out]``."""
        batch, count = x.shape[:2]
        children = self.expand(x).reshape(batch, count * self.children_count, self.out_width)
        skip = self.residual(x).repeat_interleave(self.children_count, dim=1)
        return (skip + children) / math.sqrt(2.0)


class AttributeHeads(nn.Module):
    """Separate unmodulated linear heads per attribute, raw ``(dmu, ds, dq, do, dc)`` per token.

    Initial weight scales as GSGAN's: position 1, log-scale 0.1, rotation 0.1, features 1,
    opacity 1 (biases 0). ``extra_feature_inputs`` channels (a camera embedding) are appended to
    the input of the feature head only.
    """

    def __init__(self, width: int, feature_dim: int, extra_feature_inputs: int = 0) -> None:
        super().__init__()
        self.position = EqualizedLinear(width, 3)
        self.log_scale = EqualizedLinear(width, 3)
        self.rotation = EqualizedLinear(width, 4)
        self.opacity = EqualizedLinear(width, 1)
        self.features = EqualizedLinear(width + extra_feature_inputs, feature_dim)
        with torch.no_grad():
            self.log_scale.weight.mul_(0.1)
            self.rotation.weight.mul_(0.1)

    def forward(
        self, x: Tensor, feature_extra: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``x [B, N, C]`` (and ``[B, E]`` extra inputs) -> ``(dmu, ds, dq, do [B, N], dc)``."""
        feature_input = x
        if feature_extra is not None:
            extra = feature_extra[:, None].expand(-1, x.shape[1], -1)
            feature_input = torch.cat([x, extra], dim=-1)
        return (
            self.position(x),
            self.log_scale(x),
            self.rotation(x),
            self.opacity(x)[..., 0],
            self.features(feature_input),
        )
