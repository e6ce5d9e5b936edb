"""FID and KID with the standard FID Inception, from local weights only.

The feature extractor is torch-fidelity's ``FeatureExtractorInceptionV3``
(``"inception-v3-compat"``, feature ``"2048"``): a port of the TensorFlow Inception graph of
2015-12-05 that the original FID code uses, including its TensorFlow-1.x-style bilinear resize to
299 x 299, so the 2048-wide pool features are the ones FID and KID are conventionally reported
on. The distances are computed by torchmetrics' ``FrechetInceptionDistance`` and
``KernelInceptionDistance`` from precomputed features. Nothing here downloads: the weights file
(``weights-inception-2015-12-05-6726825d.pth``) must already be on disk, see
:func:`find_inception_weights`. It is unpickled only by ``torch.load(weights_only=True)``, and a
file picked up from torch-fidelity's download cache only after its SHA-256 is checked.

torch-fidelity and torchmetrics are optional and imported only when a function here needs them,
so importing this module loads neither. torch-fidelity's package ``__init__`` imports
torchvision (for its CLIP, VGG and DINOv2 extractors), which has no build for some torch
installations; the Inception extractor itself does not need it, and
:func:`_fidelity_inception_class` loads it without the package ``__init__`` when torchvision is
missing or broken.

Typical use::

    extractor = load_inception().to(device)  # weights found as described in find_inception_weights
    real = inception_features(extractor, real_images)  # [N, H, W, 3] in [-1, 1]
    fake = inception_features(extractor, fake_images)
    result = fid_kid(real, fake)  # FidKid(fid=..., kid_mean=..., kid_std=..., ...)
"""

import hashlib
import importlib
import importlib.util
import io
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import NamedTuple, Self

import torch
from einops import rearrange
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._checked import checked
from aware3d._validation import (
    check_finite,
    check_module_device,
    check_nonnegative_int,
    check_positive_int,
)

__all__ = [
    "INCEPTION_WEIGHTS_ENV",
    "INCEPTION_WEIGHTS_FILE",
    "INCEPTION_WEIGHTS_URL",
    "FidKid",
    "InceptionFeatures",
    "fid_kid",
    "find_inception_weights",
    "inception_features",
    "load_inception",
]

#: File name of torch-fidelity's Inception weights (its download cache uses the same name).
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
#: Where torch-fidelity publishes that file; fetch it yourself, nothing here downloads.
INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_WEIGHTS_FILE
)
#: Environment variable naming the weights file when no path is given.
INCEPTION_WEIGHTS_ENV = "AWARE3D_INCEPTION_WEIGHTS"

# torch-fidelity publishes no full SHA-256 of the file, only this prefix in its name (torch.hub's
# convention, which ``load_state_dict_from_url(check_hash=True)`` checks).
_WEIGHTS_SHA256_PREFIX = "6726825d"

_FEATURES = 2048
_INSTALL_HINT = (
    "install it with `pip install torch-fidelity`, or `pip install --no-deps torch-fidelity` "
    "where torchvision has no build for your torch (the Inception extractor does not need it)"
)


# ---------------------------------------------------------------------- optional imports


def _caused_by_torchvision(error: BaseException) -> bool:
    """Whether ``error`` (or an exception it chains) comes from importing or running torchvision.

    A missing torchvision raises ``ModuleNotFoundError`` with ``name == "torchvision"``; a broken
    one (built for another torch, or needing CUDA libraries that are absent) raises
    ``ImportError`` or ``RuntimeError`` (``operator torchvision::nms does not exist``) from inside
    its own files. All three are recognised.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = current.name if isinstance(current, ImportError) else None
        if isinstance(name, str) and name.split(".")[0] == "torchvision":
            return True
        if "torchvision" in str(current):
            return True
        for frame in traceback.extract_tb(current.__traceback__):
            if "torchvision" in Path(frame.filename).parts:
                return True
        current = current.__cause__ or current.__context__
    return False


def _fidelity_inception_class() -> type[nn.Module]:
    """Imports torch-fidelity's ``FeatureExtractorInceptionV3`` class, with or without torchvision.

    The normal import runs ``torch_fidelity/__init__.py``, which imports extractors built on
    torchvision. When that fails because torchvision is missing or broken, the package is
    registered in ``sys.modules`` from its import spec *without* executing its ``__init__``, and
    only the Inception submodule (with its torchvision-free helpers ``feature_extractor_base``,
    ``helpers``, ``interpolate_compat_tensorflow``, ``defaults`` and ``deprecations``) is
    imported. Submodules that the failed attempt had already imported completely stay registered
    and are attached to the package, so each class exists once. Later imports of
    ``torch_fidelity.<submodule>`` (torchmetrics' image metrics do one at import time) then
    succeed; ``import torch_fidelity`` returns the bare package, whose top-level names (such as
    ``calculate_metrics``) are absent.

    Returns:
        The ``FeatureExtractorInceptionV3`` class.

    Raises:
        ModuleNotFoundError: torch-fidelity is not installed (with the command to install it).
        ImportError, RuntimeError: the import failed for another reason than torchvision, or the
            Inception submodule itself cannot be imported.
    """
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except (ImportError, RuntimeError) as error:
        spec = importlib.util.find_spec("torch_fidelity")
        if spec is None:
            raise ModuleNotFoundError(
                f"FID and KID need torch-fidelity's Inception network: {_INSTALL_HINT}",
                name="torch_fidelity",
            ) from error
        if not _caused_by_torchvision(error):
            raise
        package = importlib.util.module_from_spec(spec)
        sys.modules["torch_fidelity"] = package
        for name, module in list(sys.modules.items()):
            parent, _, child = name.rpartition(".")
            if parent == "torch_fidelity" and module is not None:
                setattr(package, child, module)
        try:
            inception = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
        except BaseException:
            if sys.modules.get("torch_fidelity") is package:
                del sys.modules["torch_fidelity"]
            raise
        return inception.FeatureExtractorInceptionV3
    return FeatureExtractorInceptionV3


def _prepare_torchmetrics_image() -> None:
    """Makes ``torchmetrics.image.fid`` and ``.kid`` importable, with a hint when it is missing.

    torchmetrics imports torch-fidelity's Inception module when importing its image metrics if
    torch-fidelity is installed, so the torchvision-free loader runs first; without
    torch-fidelity, torchmetrics imports them without it, which is all precomputed features
    need.
    """
    if importlib.util.find_spec("torch_fidelity") is not None:
        _fidelity_inception_class()
    if importlib.util.find_spec("torchmetrics") is None:
        raise ModuleNotFoundError(
            "FID and KID are computed by torchmetrics: install it with `pip install torchmetrics` "
            "(or `pip install aware3d[train]`)",
            name="torchmetrics",
        )


# ---------------------------------------------------------------------- weights


def _existing_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} does not name an existing file; the Inception weights "
            f"({INCEPTION_WEIGHTS_FILE}) are never downloaded here, fetch them from "
            f"{INCEPTION_WEIGHTS_URL}"
        )
    return path


def _cache_file() -> Path:
    """Where torch-fidelity (and torchmetrics) keep the weights they download."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def _is_cache_file(path: Path) -> bool:
    """Whether ``path`` is the cache's file, however it is named (a link, a relative path)."""
    cached = _cache_file()
    return cached.is_file() and path.is_file() and path.samefile(cached)


def _check_cache_hash(path: Path, data: bytes | None = None) -> None:
    """Refuses a cache file whose SHA-256 lacks the published prefix; reads it unless ``data``.

    Raises:
        ValueError: naming ``path``, the expected prefix and the file's SHA-256.
    """
    digest = hashlib.sha256()
    if data is None:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    else:
        digest.update(data)
    actual = digest.hexdigest()
    if not actual.startswith(_WEIGHTS_SHA256_PREFIX):
        raise ValueError(
            f"{path} is in torch-fidelity's download cache, but its SHA-256 {actual} does not "
            f"start with {_WEIGHTS_SHA256_PREFIX}, the prefix published in the file's name "
            f"({INCEPTION_WEIGHTS_FILE}); it was not loaded. Delete it and fetch the file again "
            f"from {INCEPTION_WEIGHTS_URL}, or pass a file you trust as `path` or "
            f"${INCEPTION_WEIGHTS_ENV}"
        )


def find_inception_weights(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Finds torch-fidelity's Inception weights on disk; never downloads.

    Looks, in order, at:

    1. ``path``, when given (it must exist);
    2. the environment variable ``AWARE3D_INCEPTION_WEIGHTS``, when set and not empty (it must
       name an existing file);
    3. torch-fidelity's download cache, ``torch.hub.get_dir() / "checkpoints" /
       "weights-inception-2015-12-05-6726825d.pth"`` (``$TORCH_HOME/hub/checkpoints/...``, by
       default ``~/.cache/torch/hub/checkpoints/...``), where torch-fidelity and torchmetrics
       store the file when they download it themselves.

    A file named by the user (1, 2) is taken as it is. A file found in the cache (3), which
    whatever downloads into that folder may have put there, is accepted only if its SHA-256
    starts with ``6726825d``: torch-fidelity publishes no full SHA-256 of its release file, only
    that prefix in the file's name (torch.hub's convention, checked by its
    ``load_state_dict_from_url(check_hash=True)``). Eight hexadecimal digits catch a truncated,
    corrupt or different file, not a forgery made to match them; :func:`load_inception` reads
    every file with ``torch.load(weights_only=True)`` besides, so a forged file cannot run code.

    Args:
        path: an explicit weights file, or ``None`` to look at the environment and the cache.

    Returns:
        The file found, or ``None`` when neither the variable is set nor the cache holds it.

    Raises:
        FileNotFoundError: ``path``, or the environment variable, names no existing file.
        ValueError: the cache holds the file but its SHA-256 does not start with the published
            prefix (naming the file and both hashes).
    """
    if path is not None:
        return _existing_file(Path(path).expanduser(), f"`path` = {os.fspath(path)!r}")
    from_env = os.environ.get(INCEPTION_WEIGHTS_ENV, "").strip()
    if from_env:
        return _existing_file(
            Path(from_env).expanduser(), f"${INCEPTION_WEIGHTS_ENV} = {from_env!r}"
        )
    cached = _cache_file()
    if not cached.is_file():
        return None
    _check_cache_hash(cached)
    return cached


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of a weights file, unpickled with ``weights_only=True`` (hash-checked if cached).

    The bytes are read once, so the ones checked are the ones unpickled.
    """
    data = path.read_bytes()
    if _is_cache_file(path):
        _check_cache_hash(path, data)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # pickle.UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(
            f"cannot read Inception weights from {path} with torch.load(weights_only=True), "
            f"which unpickles tensors and plain containers only: {error}"
        ) from None
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, Tensor) for key, value in state.items()
    ):
        raise ValueError(
            f"{path} holds a {type(state).__name__}, not a state dict (names to tensors) of "
            f"torch-fidelity's Inception-v3 ({INCEPTION_WEIGHTS_FILE})"
        )
    return state


class InceptionFeatures(nn.Module):
    """The FID Inception as a module: images in the library's convention to 2048 pool features.

    Wraps torch-fidelity's ``FeatureExtractorInceptionV3`` built for the ``"2048"`` feature.
    The wrapped network always stays in evaluation mode (``train()`` is a no-op for it, so its
    batch norms keep their statistics inside a model that is being trained) and has no
    trainable parameters. Build it with :func:`load_inception`.

    Attributes:
        extractor: the torch-fidelity network.
        num_features: ``2048``, the width of the features (torchmetrics reads this attribute).
    """

    def __init__(self, extractor: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor
        self.num_features = _FEATURES
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> Self:
        """Keeps the network in evaluation mode whatever ``mode`` is (see the class docstring)."""
        return super().train(False)

    @checked
    def forward(self, images: Float[Tensor, "N H W 3"]) -> Float[Tensor, "N 2048"]:
        """Inception pool features of a batch of images.

        The images are mapped from ``[-1, 1]`` to ``uint8`` pixels, ``round((x + 1) * 127.5)``
        clamped to ``[0, 255]`` (values outside ``[-1, 1]`` saturate), and handed to the
        extractor channels-first. The extractor resizes them to 299 x 299 itself (bilinear, as
        TensorFlow 1.x does it) and maps the pixels to ``(p - 128) / 128``, whatever their size.
        Quantising to ``uint8`` is part of the FID protocol (images are compared as 8-bit
        pictures) and makes the features non-differentiable.

        Args:
            images: ``[N, H, W, 3]`` floating-point RGB images in ``[-1, 1]``, on the module's
                device.

        Returns:
            ``[N, 2048]`` float32 features, on the module's device.

        Raises:
            ValueError: for another shape than ``[N, H, W, 3]``, a device other than the
                module's, or (value checks) non-finite pixels.
            TypeError: for an integer or boolean tensor.
        """
        check_module_device("images", images, self.extractor)
        check_finite(images=images)
        if images.shape[0] == 0:
            return images.new_zeros((0, self.num_features), dtype=torch.float32)
        pixels = ((images.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        (features,) = self.extractor(rearrange(pixels, "n h w c -> n c h w"))
        return features.float()


def load_inception(path: str | os.PathLike[str] | None = None) -> InceptionFeatures:
    """Builds the FID Inception from a local weights file (on the CPU, in evaluation mode).

    The file is found by :func:`find_inception_weights` and unpickled here with
    ``torch.load(weights_only=True)``, so it can hold tensors and plain containers only, never
    code. A file in torch-fidelity's download cache, however it is named, is loaded only if its
    SHA-256 starts with the published ``6726825d`` (see :func:`find_inception_weights`), checked
    on the bytes that are then unpickled. torch-fidelity's extractor, which would unpickle with
    ``weights_only=False``, is handed these tensors saved again in memory, never the file.

    Args:
        path: the weights file; ``None`` looks at ``$AWARE3D_INCEPTION_WEIGHTS`` and at
            torch-fidelity's cache (see :func:`find_inception_weights`).

    Returns:
        An :class:`InceptionFeatures`; move it with ``.to(device)``.

    Raises:
        FileNotFoundError: no weights file is found (the message says where to put one).
        ValueError: naming the file, when it is not a state dict of tensors of this network
            (missing or unexpected keys, wrong shapes, not a PyTorch file, objects that
            ``weights_only=True`` refuses), or when it is in torch-fidelity's cache and its
            SHA-256 does not start with the published prefix.
        ModuleNotFoundError: torch-fidelity is not installed.
    """
    found = find_inception_weights(path)
    if found is None:
        raise FileNotFoundError(
            f"no Inception weights found: pass a path, set ${INCEPTION_WEIGHTS_ENV}, or put "
            f"{INCEPTION_WEIGHTS_FILE} in {_cache_file().parent}; they are never downloaded "
            f"here, fetch them from {INCEPTION_WEIGHTS_URL}"
        )
    state = _read_state_dict(found)
    extractor_class = _fidelity_inception_class()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    try:
        extractor = extractor_class(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path=buffer
        )
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(
            f"{found} is not a state dict of torch-fidelity's Inception-v3 "
            f"({INCEPTION_WEIGHTS_FILE}): {error}"
        ) from error
    return InceptionFeatures(extractor)


@torch.no_grad()
@checked
def inception_features(
    extractor: InceptionFeatures, images: Float[Tensor, "N H W 3"], batch_size: int = 64
) -> Float[Tensor, "N 2048"]:
    """Inception features of many images, a batch at a time, without gradients.

    Each batch is moved to the extractor's device, so ``images`` may stay on the CPU while the
    network runs on a GPU; the features come back on ``images``' device.

    Args:
        extractor: the network, from :func:`load_inception`.
        images: ``[N, H, W, 3]`` RGB images in ``[-1, 1]`` (see :meth:`InceptionFeatures.forward`).
        batch_size: images per forward pass.

    Returns:
        ``[N, 2048]`` float32 features.

    Raises:
        ValueError: for a bad shape or ``batch_size``, or (value checks) non-finite pixels.
    """
    check_positive_int("batch_size", batch_size)
    parameter = next(extractor.parameters(), None)
    device = images.device if parameter is None else parameter.device
    chunks = [
        extractor(images[start : start + batch_size].to(device)).to(images.device)
        for start in range(0, images.shape[0], batch_size)
    ]
    if not chunks:
        return images.new_zeros((0, extractor.num_features), dtype=torch.float32)
    return torch.cat(chunks)


# ---------------------------------------------------------------------- distances


class FidKid(NamedTuple):
    """Result of :func:`fid_kid`.

    Attributes:
        fid: Fréchet Inception Distance (lower is better, 0 for identical statistics).
        kid_mean: Kernel Inception Distance, the mean over random subsets (unbiased, so it can
            be slightly negative for matching distributions).
        kid_std: the (population) standard deviation of KID over the subsets.
        num_real: number of real features.
        num_fake: number of generated features.
    """

    fid: float
    kid_mean: float
    kid_std: float
    num_real: int
    num_fake: int


class _Precomputed(nn.Module):
    """Hands precomputed features to torchmetrics' metrics as their "feature extractor".

    Having ``num_features``, it spares torchmetrics the dummy forward pass it otherwise runs to
    find the width.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


@torch.no_grad()
@checked(same_dtype=False)
def fid_kid(
    real_features: Float[Tensor, "N D"],
    fake_features: Float[Tensor, "M D"],
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
) -> FidKid:
    """FID and KID between two sets of features, by torchmetrics (in float64).

    With the means ``mu_r, mu_f`` and the unbiased covariances ``S_r, S_f`` of the real and
    generated features,

    ``FID = |mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))``,

    the squared Fréchet distance between the two Gaussians (torchmetrics takes the trace of the
    square root as the sum of the square roots of the eigenvalues of ``S_r S_f``; rounding can
    make the FID of a set with itself a tiny negative number). KID is the unbiased squared
    maximum mean discrepancy with the cubic polynomial kernel ``k(x, y) = (x . y / d + 1)^3``
    (``d`` the feature width): for ``kid_subsets`` pairs of random subsets of ``m`` real
    features ``x_i`` and ``m`` generated ones ``y_j``,

    ``MMD^2 = 1 / (m (m - 1)) sum_{i != j} (k(x_i, x_j) + k(y_i, y_j))``
    ``- 2 / m^2 sum_{i,j} k(x_i, y_j)``,

    reported as the mean and the standard deviation over the subsets.

    FID is biased for small sets and needs many samples (conventionally 50k generated images,
    at least the feature width) to be comparable between papers; KID is unbiased and more
    meaningful for a few thousand.

    Args:
        real_features: ``[N, D]`` features of real images, ``N >= 2``.
        fake_features: ``[M, D]`` features of generated images, ``M >= 2``, on the same device.
        kid_subsets: number of random subsets KID averages over.
        kid_subset_size: features per KID subset; clamped to ``min(N, M)`` (torchmetrics
            refuses subsets larger than a set), so small sets use all their features.
        seed: seed of KID's subset draw. torch's global CPU generator is seeded inside a
            ``torch.random.fork_rng`` block, so the caller's random state is left as it was.

    Returns:
        :class:`FidKid` with the distances and the set sizes.

    Raises:
        ValueError: fewer than 2 features on a side, widths that differ, bad counts, or (value
            checks) non-finite features.
        ModuleNotFoundError: torchmetrics is not installed.
    """
    check_positive_int("kid_subsets", kid_subsets)
    check_positive_int("kid_subset_size", kid_subset_size)
    check_nonnegative_int("seed", seed)
    num_real, num_fake = real_features.shape[0], fake_features.shape[0]
    if num_real < 2 or num_fake < 2:
        raise ValueError(
            "FID and KID need at least 2 features on each side, got "
            f"{num_real} in `real_features` and {num_fake} in `fake_features`"
        )
    check_finite(real_features=real_features, fake_features=fake_features)
    real = real_features.detach().double()
    fake = fake_features.detach().double()
    width = real.shape[1]

    _prepare_torchmetrics_image()
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fid_metric = FrechetInceptionDistance(feature=_Precomputed(width), sync_on_compute=False)
    with warnings.catch_warnings():  # "will save all extracted features in buffer": we know
        warnings.filterwarnings(
            "ignore", message=".*Kernel Inception Distance", category=UserWarning
        )
        kid_metric = KernelInceptionDistance(
            feature=_Precomputed(width),
            subsets=kid_subsets,
            subset_size=min(kid_subset_size, num_real, num_fake),
            sync_on_compute=False,
        )
    fid_metric.to(real.device)
    kid_metric.to(real.device)
    for metric in (fid_metric, kid_metric):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    fid = float(fid_metric.compute())
    # KID draws its subsets with torch.randperm from the default generator: make that the CPU one
    # (whatever the default device), seed it, and restore it afterwards.
    with torch.random.fork_rng(devices=[]), torch.device("cpu"):
        torch.default_generator.manual_seed(seed)
        kid_mean, kid_std = kid_metric.compute()
    return FidKid(float(fid), float(kid_mean), float(kid_std), num_real, num_fake)
