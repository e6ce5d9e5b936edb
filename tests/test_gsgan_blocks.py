"""GSGAN's token blocks against small reference implementations written here (plain loops)."""

import math

import torch
import torch.nn.functional as F

from aware3d.nn._gsgan_blocks import (
    EdgeConv,
    FeatureEdgeBlock,
    GatedTransformerBlock,
    PointEncoding,
    ResidualUpsample,
    SiblingEdgeBlock,
    TokenAdaIN,
    feature_neighbours,
)

# Each output below is a handful of float64 operations on O(1) values: 1e-12 is ~5,000 eps.
TOL = {"rtol": 1e-12, "atol": 1e-12}


def reference_adain(x, gamma, beta):
    """Per scene and channel: (x - mean over tokens) / (population std over tokens + 1e-8)."""
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[2]):
            column = x[b, :, c]
            mean = sum(column.tolist()) / len(column)
            std = math.sqrt(sum((v - mean) ** 2 for v in column.tolist()) / len(column))
            out[b, :, c] = (column - mean) / (std + 1e-8) * gamma[b, c] + beta[b, c]
    return out


def test_token_adain_normalises_each_channel_across_tokens():
    torch.manual_seed(0)
    norm = TokenAdaIN(5, 4).double()
    x = torch.randn(2, 7, 5, dtype=torch.float64) * 3 + 1
    w = torch.randn(2, 4, dtype=torch.float64)
    torch.testing.assert_close(norm(x, w), reference_adain(x, norm.gamma(w), norm.beta(w)), **TOL)
    # not LayerNorm: a token's channels are not normalised together
    plain = norm(x, torch.zeros(2, 4, dtype=torch.float64))  # gamma = 1, beta = 0 at w = 0
    assert plain.mean(dim=1).abs().max() < 1e-12
    assert plain.mean(dim=2).abs().max() > 1e-3


def reference_edge_conv(edge, x, neighbour_index):
    """y_i = sum_j softmax_j(a(x_j - x_i)) h([x_i, x_j - x_i]), one token at a time."""
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            deltas = torch.stack([x[b, j] - x[b, i] for j in neighbour_index[b][i]])
            logits = edge.weight_out(edge.weight_hidden(deltas))  # [k, C]
            weights = torch.softmax(logits, dim=0)
            centre = x[b, i].expand_as(deltas)
            values = edge.value_out(edge.value_hidden(torch.cat([centre, deltas], dim=-1)))
            out[b, i] = (weights * values).sum(dim=0)
    return out


def reference_knn(h, k):
    """The k nearest other tokens by Euclidean distance, by sorting every row."""
    index = []
    for b in range(h.shape[0]):
        rows = []
        for i in range(h.shape[1]):
            distances = [
                (float((h[b, i] - h[b, j]).norm().detach()), j) for j in range(h.shape[1]) if j != i
            ]
            rows.append([j for _, j in sorted(distances)[:k]])
        index.append(rows)
    return index


def test_feature_edge_block_matches_a_loop_reference():
    torch.manual_seed(1)
    block = FeatureEdgeBlock(6, 4, k=3).double()
    with torch.no_grad():
        block.gate.weight.normal_()  # the gate starts closed; open it to see the EdgeConv
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    w = torch.randn(2, 4, dtype=torch.float64)
    h = block.norm(x, w)
    index = reference_knn(h, 3)
    assert [[sorted(r) for r in rows] for rows in feature_neighbours(h, 3).tolist()] == [
        [sorted(r) for r in rows] for rows in index
    ]
    expected = x + reference_edge_conv(block.edge, h, index) * block.gate(w)[:, None]
    torch.testing.assert_close(block(x, w), expected, **TOL)
    closed = FeatureEdgeBlock(6, 4, k=3).double()
    torch.testing.assert_close(closed(x, w), x, rtol=0, atol=0)  # zero gate: the identity


def test_sibling_edge_block_matches_a_loop_reference():
    torch.manual_seed(2)
    block = SiblingEdgeBlock(5, children=4).double()
    with torch.no_grad():
        block.scale.normal_()
    x = torch.randn(2, 12, 5, dtype=torch.float64)
    index = [[[4 * (i // 4) + j for j in range(4)] for i in range(12)] for _ in range(2)]
    expected = x + reference_edge_conv(block.edge, x, index) * block.scale
    torch.testing.assert_close(block(x), expected, **TOL)


def test_edge_conv_softmax_runs_over_neighbours_per_channel():
    torch.manual_seed(3)
    edge = EdgeConv(4).double()
    x = torch.randn(1, 1, 4, dtype=torch.float64)
    same = x[:, :, None].expand(1, 1, 5, 4)  # five identical neighbours: uniform weights
    value = edge.value_out(edge.value_hidden(torch.cat([x, torch.zeros_like(x)], -1)))
    torch.testing.assert_close(edge(x, same), value, **TOL)


def test_point_encoding_interpolates_the_grid_and_sums_axes():
    torch.manual_seed(4)
    encoding = PointEncoding(6, grid_size=4).double()
    points = torch.tensor([[[-0.75, 0.0, 0.5], [0.1, -0.2, 0.9]]], dtype=torch.float64)
    out = encoding(points)
    assert out.shape == (1, 2, 6)
    torch.testing.assert_close(out[..., :3], torch.sin(encoding.fourier(points)), **TOL)
    for n in range(2):
        total = torch.zeros(3, dtype=torch.float64)
        for axis in range(3):
            u = (points[0, n, axis].item() + 1) * 4 / 2 - 0.5  # cell centres at 0.5, 1.5, ...
            u = min(max(u, 0.0), 3.0)
            low = min(math.floor(u), 2)
            frac = u - low
            cells = encoding.grid[axis]  # [C, 4]
            total += cells[:, low] * (1 - frac) + cells[:, low + 1] * frac
        torch.testing.assert_close(out[0, n, 3:], total / math.sqrt(3), **TOL)


def test_gated_transformer_block_matches_a_reference():
    torch.manual_seed(5)
    block = GatedTransformerBlock(8, 4, num_heads=2, mlp_ratio=4).double()
    with torch.no_grad():
        block.gate_attention.weight.normal_()
        block.gate_mlp.weight.normal_()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    w_a, w_m = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    h = block.norm_attention(x, w_a)
    q, k, v = block.qkv(h).split(8, dim=-1)
    heads = []
    for head in range(2):
        sl = slice(4 * head, 4 * head + 4)
        weights = torch.softmax(q[..., sl] @ k[..., sl].transpose(1, 2) / 2.0, dim=-1)
        heads.append(weights @ v[..., sl])
    y = x + block.proj(torch.cat(heads, -1)) * block.gate_attention(w_a)[:, None]
    hidden = F.gelu(block.mlp.fc1(block.norm_mlp(y, w_m))) * math.sqrt(2)
    y = y + block.mlp.fc2(hidden) * block.gate_mlp(w_m)[:, None]
    torch.testing.assert_close(block(x, w_a, w_m), y, **TOL)


def test_residual_upsample_children_order():
    torch.manual_seed(6)
    up = ResidualUpsample(3, 2, children=4).double()
    x = torch.randn(1, 2, 3, dtype=torch.float64)
    out = up(x)
    expanded = up.expand(x).reshape(1, 2, 4, 2)
    for p in range(2):
        for j in range(4):
            expected = (up.residual(x[0, p]) + expanded[0, p, j]) / math.sqrt(2)
            torch.testing.assert_close(out[0, 4 * p + j], expected, **TOL)


def test_blocks_pass_float64_gradcheck():
    torch.manual_seed(7)
    block = FeatureEdgeBlock(3, 2, k=2).double()
    with torch.no_grad():
        block.gate.weight.normal_()
    x = torch.randn(1, 4, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: block(a, b), (x, w))
    norm = TokenAdaIN(3, 2).double()
    assert torch.autograd.gradcheck(lambda a, b: norm(a, b), (x, w))
