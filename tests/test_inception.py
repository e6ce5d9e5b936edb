"""FID / KID: the torch-fidelity Inception from a local file, and the distances by torchmetrics.

No test touches the network: the Inception here has the real architecture and random weights,
saved by the test itself; the distances are checked against references written here.
"""

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from aware3d.training.inception import (
    INCEPTION_WEIGHTS_ENV,
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    FidKid,
    InceptionFeatures,
    _fidelity_inception_class,
    fid_kid,
    find_inception_weights,
    inception_features,
    load_inception,
)

# ---------------------------------------------------------------------- a random-weight Inception


def _randomise(network: nn.Module, generator: torch.Generator) -> None:
    """He-scaled convolutions, batch norms with non-trivial statistics: finite, varied features."""
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(
                    torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5
                )
            elif isinstance(module, nn.BatchNorm2d):
                size = module.num_features
                module.weight.copy_(0.5 + torch.rand(size, generator=generator))
                module.bias.copy_(0.1 * torch.randn(size, generator=generator))
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.copy_(0.1 * torch.randn(size, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(size, generator=generator))
            elif isinstance(module, nn.Linear):
                module.weight.copy_(
                    torch.randn(module.weight.shape, generator=generator) / module.in_features**0.5
                )
                module.bias.zero_()


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torch-fidelity's Inception architecture with random weights, saved as a state dict.

    The extractor's ``__init__`` loads weights from a file or from ``load_state_dict_from_url``;
    to build one without either, the download function is replaced (for this construction only)
    by one returning a marker that the replaced ``load_state_dict`` skips, keeping the random
    initialisation, which is then re-randomised.
    """
    extractor_class = _fidelity_inception_class()
    module = sys.modules[extractor_class.__module__]
    marker = object()
    original = extractor_class.load_state_dict

    def keep_random_init(self, state_dict, *args, **kwargs):
        return None if state_dict is marker else original(self, state_dict, *args, **kwargs)

    def no_download(*args, **kwargs):
        return marker

    with pytest.MonkeyPatch.context() as patch, torch.random.fork_rng(devices=[]):
        patch.setattr(module, "load_state_dict_from_url", no_download)
        patch.setattr(extractor_class, "load_state_dict", keep_random_init)
        torch.manual_seed(0)
        network = extractor_class("inception-v3-compat", ["2048"])
    _randomise(network, torch.Generator().manual_seed(1))
    path = tmp_path_factory.mktemp("inception") / INCEPTION_WEIGHTS_FILE
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def extractor(random_weights: Path) -> InceptionFeatures:
    found = find_inception_weights(random_weights)
    assert found == random_weights
    return load_inception(found)


def _images(n: int = 4, size: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, size, size, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------------- the feature path


def test_features_from_a_local_file(extractor: InceptionFeatures, random_weights: Path):
    saved = torch.load(random_weights, weights_only=True)
    loaded = extractor.extractor.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[key], loaded[key]) for key in saved)
    assert extractor.num_features == 2048
    assert not extractor.training
    assert not any(p.requires_grad for p in extractor.parameters())

    images = _images()
    features = extractor(images)
    assert features.shape == (4, 2048)
    assert features.dtype == torch.float32
    assert torch.isfinite(features).all()
    assert features.abs().sum() > 0
    distances = torch.cdist(features, features)
    assert (distances + torch.eye(4) > 0).all(), "different images must give different features"

    # Deterministic: the same batch again gives the same bits; other batchings agree closely.
    assert torch.equal(inception_features(extractor, images, batch_size=4), features)
    batched = inception_features(extractor, images, batch_size=3)
    torch.testing.assert_close(batched, features, rtol=1e-4, atol=1e-5)


def test_extractor_stays_in_eval_mode(extractor: InceptionFeatures):
    parent = nn.ModuleDict({"inception": extractor}).train()
    assert parent.training
    assert not extractor.training
    assert not any(m.training for m in extractor.modules())


@pytest.mark.parametrize("corruption", ["renamed key", "wrong shape"])
def test_a_wrong_state_dict_is_refused(random_weights: Path, tmp_path: Path, corruption: str):
    state = torch.load(random_weights, weights_only=True)
    if corruption == "renamed key":
        state["fc.not_a_weight"] = state.pop("fc.weight")
        expected = r"Missing key\(s\).*fc\.weight.*Unexpected key\(s\).*fc\.not_a_weight"
    else:
        state["fc.weight"] = torch.zeros(10, 2048)
        expected = r"size mismatch for fc\.weight"
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(
        ValueError, match=r"(?s)is not a state dict of torch-fidelity's .*" + expected
    ):
        load_inception(path)


def test_a_file_that_is_no_state_dict_is_refused(tmp_path: Path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a pytorch file at all")
    with pytest.raises(ValueError, match="garbage.pth"):
        load_inception(path)


class _Recorder(nn.Module):
    """Stands in for torch-fidelity's network: records its input, returns zero features."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.seen: list[torch.Tensor] = []

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor]:
        self.seen.append(pixels)
        return (torch.zeros(pixels.shape[0], 2048),)


def test_images_become_uint8_channels_first_pixels():
    recorder = _Recorder()
    module = InceptionFeatures(recorder)
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1  # exactly the 256 pixel values
    images = levels.reshape(1, 16, 16, 1).expand(2, 16, 16, 3).clone()
    images[1, 0, 0] = torch.tensor([-3.0, 3.0, 0.0])  # saturates
    module(images)
    (pixels,) = recorder.seen
    assert pixels.dtype == torch.uint8
    assert pixels.shape == (2, 3, 16, 16)
    assert torch.equal(pixels[0, 0].flatten(), torch.arange(256, dtype=torch.uint8))
    assert torch.equal(pixels[0, 0], pixels[0, 2])
    assert pixels[1, :, 0, 0].tolist() == [0, 255, 128]  # round(127.5) = 128 (half to even)


def test_empty_sets_need_no_forward():
    recorder = _Recorder()
    module = InceptionFeatures(recorder)
    assert inception_features(module, torch.zeros(0, 8, 8, 3)).shape == (0, 2048)
    assert module(torch.zeros(0, 8, 8, 3)).shape == (0, 2048)
    assert recorder.seen == []


@pytest.mark.usefixtures("without_shape_checker")
def test_bad_images():
    module = InceptionFeatures(_Recorder())
    with pytest.raises(
        ValueError, match=r"`images` must have shape \[N, H, W, 3\], got \[4, 8, 8\]"
    ):
        module(torch.zeros(4, 8, 8))
    with pytest.raises(ValueError, match=r"`images` must have shape .*got \[4, 8, 8, 4\]"):
        module(torch.zeros(4, 8, 8, 4))
    with pytest.raises(ValueError, match=r"`images` must have shape .*got \[4, 3, 8, 8\]"):
        inception_features(module, torch.zeros(4, 3, 8, 8))
    with pytest.raises(TypeError, match="`images` must be a floating-point tensor"):
        module(torch.zeros(4, 8, 8, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="`images` must be finite"):
        module(torch.full((1, 8, 8, 3), float("nan")))
    with pytest.raises(ValueError, match="`batch_size`"):
        inception_features(module, torch.zeros(4, 8, 8, 3), batch_size=0)


# ---------------------------------------------------------------------- finding the weights


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    return hub


def test_find_weights_explicit_path(empty_hub: Path, tmp_path: Path):
    missing = tmp_path / "nowhere" / "inception.pth"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_inception_weights(missing)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_inception(missing)
    present = tmp_path / "inception.pth"
    present.write_bytes(b"")
    assert find_inception_weights(present) == present
    assert find_inception_weights(str(present)) == present


def test_find_weights_from_the_environment(
    empty_hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from_env = tmp_path / "from_env.pth"
    explicit = tmp_path / "explicit.pth"
    from_env.write_bytes(b"")
    explicit.write_bytes(b"")
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(from_env))
    assert find_inception_weights() == from_env
    assert find_inception_weights(explicit) == explicit  # an explicit path wins
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "gone.pth"))
    with pytest.raises(FileNotFoundError, match=f"{INCEPTION_WEIGHTS_ENV}.*gone.pth"):
        find_inception_weights()


def test_find_weights_in_the_cache_or_nowhere(empty_hub: Path):
    assert find_inception_weights() is None
    with pytest.raises(
        FileNotFoundError, match=f"no Inception weights found.*{INCEPTION_WEIGHTS_ENV}"
    ):
        load_inception()
    cached = empty_hub / "checkpoints" / INCEPTION_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"")  # found, but its SHA-256 is not the published one
    with pytest.raises(ValueError, match=f"{cached}.*SHA-256 e3b0c442"):
        find_inception_weights()


def test_file_name_and_url_are_torch_fidelity_s():
    module = sys.modules[_fidelity_inception_class().__module__]
    assert module.URL_INCEPTION_V3 == INCEPTION_WEIGHTS_URL
    assert INCEPTION_WEIGHTS_URL.endswith("/" + INCEPTION_WEIGHTS_FILE)


# ---------------------------------------------------------------------- optional imports


def test_missing_torch_fidelity_gives_the_install_command(monkeypatch: pytest.MonkeyPatch):
    for name in list(sys.modules):
        if name.startswith("torch_fidelity."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as if it were not installed
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps torch-fidelity"):
        _fidelity_inception_class()


def test_missing_torchmetrics_gives_the_install_command(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "torchmetrics", None)
    features = torch.randn(8, 4, dtype=torch.float64)
    with pytest.raises(ModuleNotFoundError, match="pip install torchmetrics"):
        fid_kid(features, features)


PROBE = """
import importlib, json, sys
import aware3d, aware3d.training.inception as inception
lazy = sorted(
    m for m in sys.modules if m.split(".")[0] in ("torch_fidelity", "torchmetrics", "torchvision")
)
if sys.argv[1] == "missing":
    sys.modules["torchvision"] = None
else:  # a torchvision that fails the way one built for another torch does
    sys.path.insert(0, sys.argv[2])
extractor_class = inception._fidelity_inception_class()
module = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
print(json.dumps({
    "lazy": lazy,
    "same_class": module.FeatureExtractorInceptionV3 is extractor_class,
    "bare_package": not hasattr(sys.modules["torch_fidelity"], "calculate_metrics"),
}))
"""


@pytest.mark.parametrize("torchvision", ["missing", "broken"])
@pytest.mark.slow
def test_lazy_imports_and_torchvision_free_loading(tmp_path: Path, torchvision: str):
    broken = tmp_path / "torchvision"
    broken.mkdir()
    (broken / "__init__.py").write_text(
        'raise RuntimeError("operator torchvision::nms does not exist")\n'
    )
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROBE), torchvision, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"lazy": [], "same_class": True, "bare_package": True}


# ---------------------------------------------------------------------- FID and KID


def _feature_sets(n_real: int = 400, n_fake: int = 300, width: int = 64):
    g = torch.Generator().manual_seed(0)
    real = torch.randn(n_real, width, generator=g, dtype=torch.float64)
    mixing = torch.eye(width, dtype=torch.float64) + 0.2 * torch.randn(
        width, width, generator=g, dtype=torch.float64
    )
    fake = torch.randn(n_fake, width, generator=g, dtype=torch.float64) @ mixing + 0.3
    return real, fake


def _reference_fid_eigvals(real: torch.Tensor, fake: torch.Tensor) -> float:
    mean = (real.mean(0) - fake.mean(0)).square().sum()
    cov_r, cov_f = torch.cov(real.T), torch.cov(fake.T)
    root_trace = torch.linalg.eigvals(cov_r @ cov_f).real.clamp_min(0).sqrt().sum()
    return float(mean + cov_r.trace() + cov_f.trace() - 2 * root_trace)


def _reference_fid_symmetric(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Tr (S_r S_f)^(1/2) = Tr (S_r^(1/2) S_f S_r^(1/2))^(1/2), from symmetric eigensolves."""
    mean = (real.mean(0) - fake.mean(0)).square().sum()
    cov_r, cov_f = torch.cov(real.T), torch.cov(fake.T)
    values, vectors = torch.linalg.eigh(cov_r)
    root_r = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    root_trace = torch.linalg.eigvalsh(root_r @ cov_f @ root_r).clamp_min(0).sqrt().sum()
    return float(mean + cov_r.trace() + cov_f.trace() - 2 * root_trace)


def _reference_kid(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 over whole, equally sized sets."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (
        m * (m - 1)
    )
    return float(within - 2 * k_xy.sum() / m**2)


def test_fid_matches_references():
    real, fake = _feature_sets()
    result = fid_kid(real, fake, kid_subsets=5, kid_subset_size=100)
    assert isinstance(result, FidKid)
    assert (result.num_real, result.num_fake) == (400, 300)
    assert result.fid > 1
    assert result.fid == pytest.approx(_reference_fid_eigvals(real, fake), rel=1e-9)
    assert result.fid == pytest.approx(_reference_fid_symmetric(real, fake), rel=1e-9)
    # float32 features, on either side, give the same distance to float32 precision
    assert fid_kid(real.float(), fake, kid_subsets=1).fid == pytest.approx(result.fid, rel=1e-5)


def test_fid_of_a_set_with_itself_is_zero():
    real, _ = _feature_sets()
    assert fid_kid(real, real.clone(), kid_subsets=1).fid == pytest.approx(0, abs=1e-9)


def test_kid_matches_the_unbiased_mmd():
    real, fake = _feature_sets(n_real=200, n_fake=200)
    result = fid_kid(real, fake, kid_subsets=1, kid_subset_size=200)
    assert result.kid_mean == pytest.approx(_reference_kid(real, fake), rel=1e-9)
    assert result.kid_std == 0
    # identical sets: the unbiased estimate is O(1/m) (here slightly negative), far below a real gap
    same = fid_kid(real, real.clone(), kid_subsets=1, kid_subset_size=200)
    assert same.kid_mean == pytest.approx(_reference_kid(real, real), rel=1e-9)
    assert abs(same.kid_mean) < 0.1 * result.kid_mean


def test_kid_subsets_are_seeded_and_leave_the_global_generator_alone():
    real, fake = _feature_sets()
    state = torch.get_rng_state()
    first = fid_kid(real, fake, kid_subsets=4, kid_subset_size=50, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    again = fid_kid(real, fake, kid_subsets=4, kid_subset_size=50, seed=3)
    other = fid_kid(real, fake, kid_subsets=4, kid_subset_size=50, seed=4)
    assert first == again
    assert other.kid_mean != first.kid_mean
    assert first.kid_std > 0


def test_kid_subset_size_is_clamped_to_the_smaller_set():
    real, fake = _feature_sets(n_real=60, n_fake=40)
    clamped = fid_kid(real, fake, kid_subsets=1, kid_subset_size=1000)
    assert clamped.kid_mean == pytest.approx(
        fid_kid(real, fake, kid_subsets=1, kid_subset_size=40).kid_mean, rel=1e-12
    )


@pytest.mark.usefixtures("without_shape_checker")
def test_fid_kid_bad_input():
    real, fake = _feature_sets(n_real=10, n_fake=10)
    with pytest.raises(ValueError, match="at least 2 features on each side.*1 in `real_features`"):
        fid_kid(real[:1], fake)
    with pytest.raises(ValueError, match="at least 2 features on each side.*1 in `fake_features`"):
        fid_kid(real, fake[:1])
    with pytest.raises(ValueError, match=r"`fake_features` must have shape \[M, D\]"):
        fid_kid(real, fake[:, :32])
    with pytest.raises(ValueError, match="`kid_subsets`"):
        fid_kid(real, fake, kid_subsets=0)
    with pytest.raises(ValueError, match="`real_features` must be finite"):
        fid_kid(torch.full_like(real, float("inf")), fake)


@pytest.mark.slow
def test_the_evaluator_reports_fid_and_kid_with_local_weights(random_weights: Path):
    from aware3d.data.synthetic import SyntheticScenes
    from aware3d.recipes import DemoRecipe, build_generator
    from aware3d.training.evaluate import Evaluator

    config = DemoRecipe(resolution=16, metric_images=4, z_dim=8, w_dim=8, decoder_levels=2)
    scenes = SyntheticScenes(num_scenes=1, views_per_scene=4, resolution=16,
                             value_range=(-1.0, 1.0))  # fmt: skip
    evaluator = Evaluator(scenes, resolution=16, images=4, inception_weights=random_weights,
                          announce=False)  # fmt: skip
    torch.manual_seed(0)
    metrics = evaluator(build_generator(config))
    assert set(metrics) == {"swd", "fid", "kid_mean", "kid_std"}
    assert all(math.isfinite(v) for v in metrics.values()) and metrics["fid"] > 0
    assert evaluator(build_generator(config))["fid"] != metrics["fid"]  # another generator


# ---------------------------------------------------------------------- untrusted files (#21)


class _Trap:
    """Unpickling it makes the folder ``path``: proof that a file was unpickled unsafely."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        import os

        return (os.mkdir, (str(self.path),))


def _trap_file(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"fc.weight": torch.zeros(1), "trap": _Trap(marker)}, path)
    return path


def test_a_cache_file_with_another_hash_is_refused_before_unpickling(
    empty_hub: Path, tmp_path: Path
):
    import hashlib

    marker = tmp_path / "unpickled"
    cached = _trap_file(empty_hub / "checkpoints" / INCEPTION_WEIGHTS_FILE, marker)
    digest = hashlib.sha256(cached.read_bytes()).hexdigest()
    for attempt in (find_inception_weights, load_inception, lambda: load_inception(cached)):
        with pytest.raises(ValueError) as caught:
            attempt()
        message = str(caught.value)
        assert str(cached) in message
        assert f"SHA-256 {digest}" in message
        assert "does not start with 6726825d" in message
        assert "not loaded" in message
        assert not marker.exists()


def test_a_cache_file_with_the_published_hash_prefix_loads(
    empty_hub: Path, random_weights: Path, monkeypatch: pytest.MonkeyPatch
):
    import hashlib
    import shutil

    from aware3d.training import inception

    assert INCEPTION_WEIGHTS_FILE.endswith(f"-{inception._WEIGHTS_SHA256_PREFIX}.pth")
    cached = empty_hub / "checkpoints" / INCEPTION_WEIGHTS_FILE
    cached.parent.mkdir(parents=True)
    shutil.copyfile(random_weights, cached)
    prefix = hashlib.sha256(cached.read_bytes()).hexdigest()[:8]
    monkeypatch.setattr(inception, "_WEIGHTS_SHA256_PREFIX", prefix)
    assert find_inception_weights() == cached
    assert load_inception().num_features == 2048


def test_weights_are_unpickled_with_weights_only(empty_hub: Path, tmp_path: Path):
    marker = tmp_path / "unpickled"
    path = _trap_file(tmp_path / "given.pth", marker)
    with pytest.raises(ValueError, match=r"given.pth.*weights_only=True") as caught:
        load_inception(path)
    assert not marker.exists()
    assert "_Trap" in str(caught.value) or "mkdir" in str(caught.value)
    not_a_dict = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(ValueError, match=r"tensor.pth.*holds a Tensor, not a state dict"):
        load_inception(not_a_dict)
