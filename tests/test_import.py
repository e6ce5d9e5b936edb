"""`import aware3d` is light: it never loads gsplat (or its CUDA backend) and is quick."""

import json
import subprocess
import sys
import time

PROBE = """
import json, sys, time
start = time.perf_counter()
import aware3d
import aware3d.functional, aware3d.nn, aware3d.data, aware3d.training, aware3d.viz.hierarchy
elapsed = time.perf_counter() - start
loaded = sorted(m for m in sys.modules if m == "gsplat" or m.startswith("gsplat."))
print(json.dumps({"elapsed": elapsed, "gsplat_modules": loaded}))
"""


def test_import_does_not_load_gsplat_and_is_fast():
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    wall = time.perf_counter() - start
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["gsplat_modules"] == [], report
    # torch's own import dominates; aware3d must add little on top of it.
    assert report["elapsed"] < 5.0, report
    assert wall < 15.0


def test_public_names_exist_in_every_namespace():
    import aware3d
    import aware3d.data
    import aware3d.functional
    import aware3d.nn
    import aware3d.training

    for module in (aware3d, aware3d.functional, aware3d.nn, aware3d.data, aware3d.training):
        assert sorted(module.__all__) == sorted(set(module.__all__)), module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    for name in (
        "rasterize",
        "HierarchicalGaussianDecoder",
        "SphericalBackground",
        "CompositeRenderer",
        "DistortionLoss",
        "SeparationLoss",
        "Cameras",
        "Gaussians",
    ):
        assert name in aware3d.__all__, name  # the design's component table, at top level
