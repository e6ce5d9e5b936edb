"""Shared test configuration.

Do not import ``aware3d`` at module level here: jaxtyping's pytest hook
(``--jaxtyping-packages`` in ``pyproject.toml``) instruments the package only if it is first
imported after the hook is installed.
"""

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    if torch.cuda.is_available():
        return
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_global_generators() -> None:
    """Seeds the global generators of ``torch``, ``numpy`` and ``random`` before every test.

    A test that draws from a global generator (``torch.randn(...)`` without ``generator=``, or
    a module's initialisation) then gets the same numbers whatever ran before it: the whole
    suite, one file, ``-k``, another order. Its data, and so its rounding errors, do not depend
    on the order of the tests. Hypothesis seeds ``random`` and ``numpy`` itself for each example
    and restores them afterwards; torch's state carries on from this seed.
    """
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 (the legacy global state is what unseeded code draws from)
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs every test in its own ``tmp_path``, so that no test can write into the checkout.

    A relative path a test (or the code it calls) writes to lands in the test's temporary folder
    (a bad-input sweep once left a PLY named ``bogus`` at the repository root). Tests that read
    repository files build their paths from ``Path(__file__)``, never from the working directory.
    """
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded CPU generator, fresh for every test."""
    return torch.Generator().manual_seed(0)


@pytest.fixture
def without_shape_checker():
    """Turns jaxtyping's checker off, to test the library's own errors as users see them.

    Without the pytest hook (a normal run) the annotations are not checked, so every public entry
    point must raise its own clear ``ValueError``; with the checker on, a bad shape would be caught
    first as ``jaxtyping.TypeCheckError``.
    """
    import jaxtyping

    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", False)


@pytest.fixture
def umask():
    """Sets the process umask for one test (call it) and restores it afterwards."""
    original = os.umask(0o022)
    os.umask(original)
    yield os.umask
    os.umask(original)
