"""Private building blocks of the Gaussian decoders: modulated transformer blocks, upsampling."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aware3d.nn.layers import EqualizedLinear


class AdaptiveLayerNorm(nn.Module):
    """LayerNorm without affine, then a per-sample scale and shift from the style ``w``.

    ``y = LN(x) * (1 + gamma(w)) + beta(w)`` with ``(gamma, beta) = A(w)``, ``A`` an
    :class:`EqualizedLinear` whose bias starts at 0 (so the layer starts as a plain LayerNorm).
    """

    def __init__(self, width: int, w_dim: int) -> None:
        super().__init__()
        self.width = width
        self.affine = EqualizedLinear(w_dim, 2 * width)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        """``x`` ``[B, N, C]``, ``w`` ``[B, D]`` -> ``[B, N, C]``."""
        gamma, beta = self.affine(w)[:, None].chunk(2, dim=-1)
        return F.layer_norm(x, (self.width,)) * (1 + gamma) + beta


class ModulatedTransformerBlock(nn.Module):
    """Pre-norm transformer block whose two normalisations are modulated by ``w``.

    Attention runs inside windows of ``window`` consecutive tokens (all tokens at level 0; the
    descendants of one ancestor at finer levels, since tokens are stored level-major), so the cost
    is linear in the token count for a fixed window.
    """

    def __init__(self, width: int, w_dim: int, num_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
        self.width = width
        self.num_heads = num_heads
        self.norm1 = AdaptiveLayerNorm(width, w_dim)
        self.qkv = EqualizedLinear(width, 3 * width)
        self.proj = EqualizedLinear(width, width)
        self.norm2 = AdaptiveLayerNorm(width, w_dim)
        self.fc1 = EqualizedLinear(width, mlp_ratio * width, leaky_relu=True)
        self.fc2 = EqualizedLinear(mlp_ratio * width, width)

    def forward(self, x: Tensor, w: Tensor, window: int) -> Tensor:
        """``x [B, N, C]`` (``N`` a multiple of ``window``), ``w [B, D]`` -> ``[B, N, C]``."""
        batch, count, width = x.shape
        groups = count // window
        head_dim = width // self.num_heads
        qkv = self.qkv(self.norm1(x, w))
        qkv = qkv.reshape(batch * groups, window, 3, self.num_heads, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B G, heads, window, head_dim]
        attended = F.scaled_dot_product_attention(q, k, v)
        attended = attended.transpose(1, 2).reshape(batch, count, width)
        x = x + self.proj(attended)
        return x + self.fc2(self.fc1(self.norm2(x, w)))


class Upsample(nn.Module):
    """Each token becomes ``children`` tokens: ``[B, N, C_in] -> [B, N K, C_out]``.

    Child ``j`` of token ``p`` is token ``p K + j`` of the output (level-major order), made by
    a linear map to ``K C_out`` channels plus a learned per-child embedding.
    """

    def __init__(self, in_width: int, out_width: int, children: int) -> None:
        super().__init__()
        self.children_count = children
        self.out_width = out_width
        self.linear = EqualizedLinear(in_width, children * out_width, leaky_relu=True)
        self.child_embedding = nn.Parameter(torch.randn(children, out_width) * 0.1)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, N, C_in]`` -> ``[B, N K, C_out]``."""
        batch, count = x.shape[:2]
        y = self.linear(x).reshape(batch, count, self.children_count, self.out_width)
        y = y + self.child_embedding
        return y.reshape(batch, count * self.children_count, self.out_width)


def knn_indices(points: Tensor, k: int, chunk: int = 1024) -> Tensor:
    """Indices of the ``k`` nearest points (self included) for every point, ``[B, P, k]``.

    Exact search by chunked pairwise distances: ``O(P^2)`` work, ``O(P chunk)`` memory. The
    indices carry no gradient.
    """
    with torch.no_grad():
        points = points.detach()
        found = [
            torch.cdist(points[:, start : start + chunk], points)
            .topk(k, dim=-1, largest=False)
            .indices
            for start in range(0, points.shape[1], chunk)
        ]
    return torch.cat(found, dim=1)


class NeighbourAttentionBlock(nn.Module):
    """The children of a parent attend to the children of that parent's ``k`` nearest parents.

    Queries are the ``K`` tokens of one parent; keys and values are the ``k K`` tokens whose
    parents are the ``k`` nearest to it (by parent position, the parent itself included), so
    spatial neighbours that are not siblings can exchange information. Pre-norm with a
    ``w``-modulated LayerNorm and a residual connection.
    """

    def __init__(self, width: int, w_dim: int, num_heads: int) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
        self.width = width
        self.num_heads = num_heads
        self.norm = AdaptiveLayerNorm(width, w_dim)
        self.query = EqualizedLinear(width, width)
        self.key_value = EqualizedLinear(width, 2 * width)
        self.proj = EqualizedLinear(width, width)

    def forward(self, x: Tensor, w: Tensor, neighbours: Tensor) -> Tensor:
        """``x [B, P K, C]``, ``w [B, D]``, ``neighbours [B, P, k]`` -> ``[B, P K, C]``."""
        batch, count, width = x.shape
        num_parents, k = neighbours.shape[1:]
        children = count // num_parents
        heads, head_dim = self.num_heads, width // self.num_heads
        h = self.norm(x, w)
        query = self.query(h).reshape(batch * num_parents, children, heads, head_dim)
        key_value = self.key_value(h).reshape(batch, num_parents, children, 2 * width)
        scenes = torch.arange(batch, device=x.device)[:, None, None]
        gathered = key_value[scenes, neighbours]  # [B, P, k, K, 2C]
        gathered = gathered.reshape(batch * num_parents, k * children, 2, heads, head_dim)
        key, value = gathered.permute(2, 0, 3, 1, 4).unbind(0)  # [B P, heads, k K, head_dim]
        attended = F.scaled_dot_product_attention(query.transpose(1, 2), key, value)
        attended = attended.transpose(1, 2).reshape(batch, count, width)
        return x + self.proj(attended)
