"""densify: GSGAN's parent parameterisation, property-tested for any parents and raw values."""

import math

import hypothesis.strategies as st
import jaxtyping
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis.extra.numpy import arrays

from aware3d.functional.hierarchy import (
    HierarchyNodes,
    densify,
    descendant_mask,
    level_sizes,
    nodes_to_gaussians,
    normalize_quaternion,
    parent_indices,
    quaternion_to_matrix,
)
from aware3d.gaussians import Gaussians

MIN_LOG_SCALE = -8.0
F32_MAX = float(np.finfo(np.float32).max)


def nodes_from_arrays(arrays_, dtype=torch.float64, requires_grad=False):
    tensors = [torch.tensor(a, dtype=dtype, requires_grad=requires_grad) for a in arrays_]
    return HierarchyNodes(*tensors)


def check_children(
    parent, children, *, rho, pixel_size, min_log_scale=MIN_LOG_SCALE, tol=1e-9, unit=True
):
    """Asserts GSGAN's hierarchy constraints for children of `parent` (checked in float64).

    The bounds hold exactly only in exact arithmetic: a child on its bound (an offset with
    tanh = 1, a log-scale at its cap) lands on either side by its rounding. Float64 children get
    ``tol`` plus 1e-12 of the parent's distance from the origin in sigmas; lower-precision
    children (a float32 decoder) also get 64 of their eps of the quantities they were computed
    from, ~10x the few eps each operation of densify rounds by.
    """
    batch, num_parents = parent.position.shape[:2]
    total = children.position.shape[1]
    k = total // num_parents
    idx = parent_indices(num_parents, k)
    p_mu = parent.position[:, idx].double()
    p_s = parent.log_scale[:, idx].double()
    p_q = parent.rotation[:, idx].double()
    mu, s, q = children.position.double(), children.log_scale.double(), children.rotation.double()
    for value in children:
        assert torch.isfinite(value).all()
    dtype = children.position.dtype
    low_eps = 0.0 if dtype == torch.float64 else torch.finfo(dtype).eps
    # inside the parent's one-sigma box, in the parent's frame
    frame = quaternion_to_matrix(p_q)
    local = torch.einsum("bnji,bnj->bni", frame, mu - p_mu) / torch.exp(p_s)
    reach = p_mu.abs().amax(-1, keepdim=True) / p_s.exp()  # |parent centre| in parent sigmas
    assert (local.abs() <= 1 + tol + 1e-12 * reach + 64 * low_eps * (1 + reach)).all()
    # log-scale bounds
    tol_s = tol + 64 * low_eps * (1 + p_s.abs())
    assert (s >= min_log_scale - tol).all()  # a clamp: exact in any dtype
    shrinks = p_s.amax(-1, keepdim=True) > math.log(pixel_size)
    s_hat = p_s - shrinks.double() * math.log(rho)
    assert (s <= torch.maximum(s_hat, torch.full_like(s_hat, min_log_scale)) + tol_s).all()
    at_or_above_floor = p_s >= min_log_scale
    assert (s <= p_s + tol_s)[at_or_above_floor].all()
    strict = shrinks & (s_hat >= min_log_scale)
    assert (s <= p_s - math.log(rho) + tol_s)[strict.expand_as(s)].all()
    # unit quaternions (unless rotations accumulate unnormalised), activated values valid
    if unit:
        assert torch.allclose(torch.linalg.vector_norm(q, dim=-1), torch.ones_like(q[..., 0]))
    g = nodes_to_gaussians(children)
    Gaussians(g.means, g.quats, g.scales, g.opacities, g.features)  # full validation
    assert (g.scales > 0).all()
    assert ((g.opacities >= 0) & (g.opacities <= 1)).all()


@st.composite
def parents_and_raw(draw, float_bound: float = 1e300, dtype: type = np.float64):
    batch = draw(st.integers(1, 2))
    num = draw(st.integers(1, 3))
    k = draw(st.integers(1, 4))
    f = draw(st.integers(1, 3))
    finite = st.floats(-10, 10, allow_nan=False)
    parent = (
        draw(arrays(np.float64, (batch, num, 3), elements=finite)),
        draw(arrays(np.float64, (batch, num, 3), elements=st.floats(MIN_LOG_SCALE, 3.0))),
        draw(arrays(np.float64, (batch, num, 4), elements=finite)),
        draw(arrays(np.float64, (batch, num), elements=st.floats(-20, 20))),
        draw(arrays(np.float64, (batch, num, f), elements=finite)),
    )
    width = 64 if dtype == np.float64 else 32
    tiny = 1e-300 if dtype == np.float64 else 1e-37
    extreme = st.sampled_from(
        [0.0, tiny, -tiny, 1e-30, -1e-30, 1e30, -1e30, float_bound, -float_bound]
    )
    element = st.one_of(
        st.floats(-float_bound, float_bound, allow_nan=False, allow_infinity=False, width=width),
        st.floats(-50, 50, width=width),
        extreme,
    )
    raw = tuple(
        draw(arrays(dtype, shape, elements=element))
        for shape in [
            (batch, num * k, 3),
            (batch, num * k, 3),
            (batch, num * k, 4),
            (batch, num * k),
            (batch, num * k, f),
        ]
    )
    return parent, raw


@given(
    data=parents_and_raw(),
    rho=st.floats(1.0, 4.0),
    log_pixel=st.floats(-9.0, 2.0),
)
@pytest.mark.slow
def test_children_satisfy_the_hierarchy_constraints(data, rho, log_pixel):
    parent_arrays, raw_arrays = data
    parent = nodes_from_arrays(parent_arrays, requires_grad=True)
    raw = nodes_from_arrays(raw_arrays, requires_grad=True)
    pixel_size = math.exp(log_pixel)
    children = densify(parent, raw, rho=rho, pixel_size=pixel_size)
    assert children.position.shape == raw.position.shape
    check_children(parent, children, rho=rho, pixel_size=pixel_size)
    g = nodes_to_gaussians(children)
    loss = torch.stack(
        [t.sum() for t in (g.means, g.quats, g.scales, g.opacities, g.features)]
    ).sum()
    loss.backward()
    for tensor in (*parent, *raw):
        assert tensor.grad is not None
        assert torch.isfinite(tensor.grad).all()


@given(data=parents_and_raw(float_bound=F32_MAX, dtype=np.float32))
@pytest.mark.slow
def test_float32_extremes_stay_finite(data):
    parent_arrays, raw_arrays = data
    parent = nodes_from_arrays(parent_arrays, dtype=torch.float32, requires_grad=True)
    raw = nodes_from_arrays(raw_arrays, dtype=torch.float32, requires_grad=True)
    children = densify(parent, raw, pixel_size=2.5e-3)
    for value in children:
        assert torch.isfinite(value).all()
    assert (children.log_scale >= MIN_LOG_SCALE).all()
    assert torch.allclose(
        torch.linalg.vector_norm(children.rotation, dim=-1), torch.ones(()), atol=1e-5
    )
    g = nodes_to_gaussians(children)
    loss = torch.stack(
        [t.sum() for t in (g.means, g.quats, g.scales, g.opacities, g.features)]
    ).sum()
    loss.backward()
    for tensor in (*parent, *raw):
        assert tensor.grad is not None
        assert torch.isfinite(tensor.grad).all()


def simple_parent(batch=1, num=1, f=3, log_scale=0.0, dtype=torch.float64):
    rotation = torch.zeros(batch, num, 4, dtype=dtype)
    rotation[..., 0] = 1
    return HierarchyNodes(
        torch.zeros(batch, num, 3, dtype=dtype),
        torch.full((batch, num, 3), log_scale, dtype=dtype),
        rotation,
        torch.zeros(batch, num, dtype=dtype),
        torch.zeros(batch, num, f, dtype=dtype),
    )


def zeros_raw(batch, count, f=3, dtype=torch.float64):
    return HierarchyNodes(
        torch.zeros(batch, count, 3, dtype=dtype),
        torch.zeros(batch, count, 3, dtype=dtype),
        torch.zeros(batch, count, 4, dtype=dtype),
        torch.zeros(batch, count, dtype=dtype),
        torch.zeros(batch, count, f, dtype=dtype),
    )


def test_formula_on_a_known_case():
    parent = simple_parent(log_scale=math.log(0.5))
    parent = parent._replace(
        position=torch.tensor([[[1.0, 2.0, 3.0]]], dtype=torch.float64),
        rotation=torch.tensor(
            [[[math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)]]], dtype=torch.float64
        ),
    )
    raw = zeros_raw(1, 1)._replace(
        position=torch.tensor([[[100.0, 0.0, 0.0]]], dtype=torch.float64),  # tanh -> 1
        log_scale=torch.full((1, 1, 3), 50.0, dtype=torch.float64),  # softplus(-50) ~ 0
        opacity_logit=torch.tensor([[2.0]], dtype=torch.float64),
        features=torch.tensor([[[0.1, 0.2, 0.3]]], dtype=torch.float64),
    )
    child = densify(parent, raw, rho=2.0, pixel_size=0.01)
    # 90 degrees about z maps the parent's x axis to world y; offset = 0.5 * 1
    torch.testing.assert_close(child.position, torch.tensor([[[1.0, 2.5, 3.0]]]).double())
    torch.testing.assert_close(
        child.log_scale, torch.full((1, 1, 3), math.log(0.25), dtype=torch.float64)
    )
    torch.testing.assert_close(child.rotation, parent.rotation)
    torch.testing.assert_close(child.opacity_logit, torch.tensor([[2.0]]).double())
    torch.testing.assert_close(child.features, raw.features)


def test_no_shrink_below_pixel_size():
    parent = simple_parent(log_scale=math.log(0.001))
    raw = zeros_raw(1, 4)._replace(log_scale=torch.full((1, 4, 3), 60.0, dtype=torch.float64))
    child = densify(parent, raw, pixel_size=0.002)
    torch.testing.assert_close(
        child.log_scale, torch.full((1, 4, 3), math.log(0.001), dtype=torch.float64)
    )


def test_floor_edge_case_floor_wins_over_shrink():
    # largest sigma 1 > tau, so s_hat = s_p - log 2; the two small axes would go below the floor.
    parent = simple_parent()._replace(
        log_scale=torch.tensor([[[0.0, MIN_LOG_SCALE, MIN_LOG_SCALE + 0.1]]], dtype=torch.float64)
    )
    raw = zeros_raw(1, 2)._replace(log_scale=torch.full((1, 2, 3), 60.0, dtype=torch.float64))
    child = densify(parent, raw, pixel_size=0.01)
    expected = torch.tensor([-math.log(2), MIN_LOG_SCALE, MIN_LOG_SCALE], dtype=torch.float64)
    torch.testing.assert_close(child.log_scale, expected.expand(1, 2, 3))
    # still never larger than the parent on any axis
    assert (child.log_scale <= parent.log_scale).all()


def test_zero_rotation_sum_keeps_the_parent_rotation():
    parent = simple_parent()
    q_parent = torch.tensor([[[0.5, 0.5, 0.5, 0.5]]], dtype=torch.float64)
    parent = parent._replace(rotation=q_parent)
    dq = (-q_parent).clone().requires_grad_(True)
    raw = zeros_raw(1, 1)._replace(rotation=dq)
    child = densify(parent, raw, pixel_size=0.01)
    torch.testing.assert_close(child.rotation, q_parent)
    child.rotation.sum().backward()
    assert dq.grad is not None
    assert torch.isfinite(dq.grad).all()


def test_unnormalised_parent_rotation_is_normalised():
    parent = simple_parent()._replace(rotation=torch.tensor([[[4.0, 0, 0, 0]]]).double())
    child = densify(parent, zeros_raw(1, 1), pixel_size=0.01)
    torch.testing.assert_close(child.rotation, torch.tensor([[[1.0, 0, 0, 0]]]).double())


@pytest.mark.slow
def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(3)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)

    parent = HierarchyNodes(
        rand(1, 2, 3),
        (torch.randn(1, 2, 3, generator=gen, dtype=torch.float64) * 0.3 - 1).requires_grad_(),
        rand(1, 2, 4),
        rand(1, 2),
        rand(1, 2, 2),
    )
    raw = HierarchyNodes(rand(1, 4, 3), rand(1, 4, 3), rand(1, 4, 4), rand(1, 4), rand(1, 4, 2))

    def fn(*tensors):
        children = densify(
            HierarchyNodes(*tensors[:5]), HierarchyNodes(*tensors[5:]), pixel_size=0.01
        )
        return tuple(children)

    assert torch.autograd.gradcheck(fn, (*parent, *raw))


def test_nan_and_inf_are_refused():
    parent = simple_parent()
    raw = zeros_raw(1, 2)
    bad = raw._replace(log_scale=torch.full((1, 2, 3), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match=r"raw\.log_scale"):
        densify(parent, bad, pixel_size=0.01)
    bad = raw._replace(position=torch.full((1, 2, 3), float("inf"), dtype=torch.float64))
    with pytest.raises(ValueError, match=r"raw\.position"):
        densify(parent, bad, pixel_size=0.01)
    bad_parent = parent._replace(opacity_logit=torch.full((1, 1), float("nan")).double())
    with pytest.raises(ValueError, match=r"parent\.opacity_logit"):
        densify(bad_parent, raw, pixel_size=0.01)


def test_bad_arguments_are_refused():
    parent = simple_parent(num=2)
    with pytest.raises(ValueError, match="K children"):
        densify(parent, zeros_raw(1, 3), pixel_size=0.01)
    # mismatched B, F or trailing sizes: the shape checker (in tests) or the ValueError (in a
    # normal run) refuses them
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="B"):
        densify(parent, zeros_raw(2, 4), pixel_size=0.01)
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="F"):
        densify(parent, zeros_raw(1, 4, f=2), pixel_size=0.01)
    with pytest.raises(ValueError, match="rho"):
        densify(parent, zeros_raw(1, 4), rho=0.5, pixel_size=0.01)
    with pytest.raises(ValueError, match="pixel_size"):
        densify(parent, zeros_raw(1, 4), pixel_size=0.0)
    with pytest.raises(ValueError, match="min_log_scale"):
        densify(parent, zeros_raw(1, 4), pixel_size=0.01, min_log_scale=float("-inf"))
    with pytest.raises(ValueError, match="dtype"):
        densify(parent, zeros_raw(1, 4, dtype=torch.float32), pixel_size=0.01)
    with pytest.raises(TypeError, match="HierarchyNodes"):
        densify(tuple(parent), zeros_raw(1, 4), pixel_size=0.01)  # type: ignore[arg-type]
    misshapen = zeros_raw(1, 4)._replace(rotation=torch.zeros(1, 4, 3, dtype=torch.float64))
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="rotation"):
        densify(parent, misshapen, pixel_size=0.01)


def test_level_sizes_parents_and_descendants():
    assert level_sizes(256, 4, 5) == [256, 1024, 4096, 16384, 65536]
    assert sum(level_sizes(256, 4, 5)) == 87_296
    assert sum(level_sizes(256, 4, 6)) == 349_440
    torch.testing.assert_close(parent_indices(3, 2), torch.tensor([0, 0, 1, 1, 2, 2]))
    mask = descendant_mask(2, 2, 3, token=1)
    expected = [False, True] + [False, False, True, True] + [False] * 4 + [True] * 4
    assert mask.tolist() == expected
    with pytest.raises(ValueError, match="token"):
        descendant_mask(2, 2, 3, token=2)


def test_normalize_quaternion_handles_overflow_and_zero():
    q = torch.tensor([[3e38, 3e38, 0, 0], [0, 0, 0, 0], [1e-30, 0, 0, 0]], dtype=torch.float32)
    unit = normalize_quaternion(q)
    assert torch.isfinite(unit).all()
    torch.testing.assert_close(unit[0], torch.tensor([2**-0.5, 2**-0.5, 0, 0]))
    torch.testing.assert_close(unit[1], torch.tensor([1.0, 0, 0, 0]))


def test_canary_checker_rejects_wrong_shape():
    # the library's own check runs first (ValueError); jaxtyping's checker wraps the function
    # inside it, so calling that directly proves the annotations are checked in the tests
    with pytest.raises(ValueError, match=r"`q` must have shape \[\*batch, 4\]"):
        normalize_quaternion(torch.zeros(2, 3))
    with pytest.raises(jaxtyping.TypeCheckError):
        normalize_quaternion.__wrapped__(torch.zeros(2, 3))  # pyright: ignore[reportFunctionMemberAccess]
