"""The shape checker is really on: jaxtyping's pytest hook with typeguard 2."""

import inspect

import jaxtyping
import pytest
import torch


def test_canary_wrong_shape_is_rejected_by_the_checker():
    # The library's own check (``aware3d._checked.checked``) is the outer wrapper and raises
    # ValueError; jaxtyping's checker wraps the function inside it, so calling that inner function
    # and getting jaxtyping's TypeCheckError proves the annotations are checked in the tests.
    from aware3d.cameras import fov_from_intrinsics

    with pytest.raises(ValueError, match=r"`intrinsics` must have shape \[\*batch, 3, 3\]"):
        fov_from_intrinsics(torch.eye(4))
    with pytest.raises(jaxtyping.TypeCheckError):
        fov_from_intrinsics.__wrapped__(torch.eye(4))  # pyright: ignore[reportFunctionMemberAccess]


def test_annotation_checker_is_installed():
    import jaxtyping
    import typeguard

    from aware3d import cameras

    # typeguard 2 exposes `check_argument_types`; typeguard 3/4 break jaxtyping's checks.
    assert hasattr(typeguard, "check_argument_types"), "typeguard must be < 3"
    source = inspect.getsource(cameras)
    assert "from __future__ import annotations" not in source
    assert jaxtyping.Float is not None


def test_canary_multi_axis_mismatch_is_rejected():
    from aware3d.gaussians import Gaussians

    # B differs between means and quats: the checker binds B from `means` and rejects `quats`.
    with pytest.raises(jaxtyping.TypeCheckError):
        Gaussians.__init__.__wrapped__(  # pyright: ignore[reportFunctionMemberAccess]
            object.__new__(Gaussians),
            torch.zeros(2, 5, 3),
            torch.ones(3, 5, 4),
            torch.ones(2, 5, 3),
            torch.ones(2, 5),
            torch.ones(2, 5, 3),
        )
