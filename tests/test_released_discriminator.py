"""The released discriminators as aware3d's DualDiscriminator, and their conversion from pickles.

``tests/data/released_dual_discriminator_small.pt`` holds a small EG3D ``DualDiscriminator``
(16 px, ``channel_base=128``, ``channel_max=16``, FFHQ's other arguments; random weights and
biases) made with the authors' code outside this repository: its recorded constructor arguments,
its tensors by name (the released layout), the class of every submodule, float32 and float64
inputs, and the released network's logits for them (float64 with the networks' float32 casts
redirected to float64). Here a pickle in the authors' format is written from it with
``persistence_writer`` (no author code), converted, and must reproduce those logits.
"""

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from einops import rearrange
from torch import nn

from aware3d.data import SyntheticScenes
from aware3d.models.released import ReleasedModelError
from aware3d.training import DualDiscriminator, GANLoss, fit
from aware3d.training import released_discriminator as released
from aware3d.training.released_discriminator import (
    build_released_discriminator,
    convert_released_discriminator,
)
from persistence_writer import Named, Persistent, easydict, write
from tiny_generator import TinyGenerator

FIXTURE = Path(__file__).parent / "data" / "released_dual_discriminator_small.pt"


@pytest.fixture(scope="module")
def fixture() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def _easy(value):
    return easydict(**value) if isinstance(value, dict) else value


def released_tree(
    class_name: str,
    kwargs: dict,
    classes: dict[str, str],
    parameters: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
) -> Persistent:
    """A ``D`` in the authors' layout: persistent modules by dotted name, tensors at their names."""
    recorded: dict[str, Any] = {k: _easy(v) for k, v in kwargs.items()}
    root = Persistent(class_name, **recorded)
    modules: dict[str, nn.Module] = {"": root}
    for name, cls in classes.items():
        if not name:
            continue
        parent, _, leaf = name.rpartition(".")
        module = Named(cls) if cls.startswith("torch.") else Persistent(cls)
        modules[parent].add_module(leaf, module)
        modules[name] = module
    for name, tensor in parameters.items():
        owner, _, leaf = name.rpartition(".")
        parameter = nn.Parameter(tensor.detach().clone(), requires_grad=False)
        modules[owner].register_parameter(leaf, parameter)
    for name, tensor in buffers.items():
        owner, _, leaf = name.rpartition(".")
        modules[owner].register_buffer(leaf, tensor.clone())
    return root


def write_snapshot(tmp_path: Path, D, name: str = "network-snapshot-000000.pkl") -> Path:
    """The top-level dict as the released training loop pickles it."""
    snapshot = dict(training_set_kwargs=dict(path="ffhq.zip", resolution=16), G=None, D=D,
                    G_ema=None, augment_pipe=None)  # fmt: skip
    return write(tmp_path, snapshot, name)


def fixture_pickle(tmp_path: Path, fixture: dict, **overrides) -> Path:
    kwargs = {**fixture["common"], **fixture["init_kwargs"], **overrides}
    D = released_tree(fixture["class_name"], kwargs, fixture["classes"], fixture["parameters"],
                      fixture["buffers"])  # fmt: skip
    return write_snapshot(tmp_path, D)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    return rearrange(x, "b c h w -> b h w c")


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# ---------------------------------------------------------------------- conversion, exactly


def test_a_released_pickle_converts_and_reproduces_the_released_logits(tmp_path, fixture):
    for name in ("dnnlib", "torch_utils"):
        assert name not in sys.modules
    path = fixture_pickle(tmp_path, fixture)
    D, spec, unmapped = convert_released_discriminator(path)
    assert not any(name in sys.modules for name in ("dnnlib", "torch_utils", "training"))

    assert isinstance(D, DualDiscriminator) and D.training
    assert spec["variant"] == "eg3d-dual" and spec["released_class"] == "DualDiscriminator"
    assert spec["kwargs"]["resolution"] == 16 and spec["kwargs"]["conv_clamp"] == 256
    assert json.loads(json.dumps(spec)) == spec
    # every recorded tensor is mapped (the parameters, one to one) or listed (the FIR filters)
    assert set(D.state_dict()) == set(fixture["parameters"])
    listed = {entry.split(":")[0] for entry in unmapped}
    assert listed == set(fixture["buffers"])
    assert all(name.endswith("resample_filter") for name in listed)
    for name, tensor in fixture["parameters"].items():
        assert torch.equal(D.state_dict()[name], tensor), name

    D.eval()
    with torch.no_grad():
        got32 = D.forward_pair(channels_last(fixture["image_float32"]),
                               channels_last(fixture["image_raw_float32"]),
                               fixture["labels_float32"])  # fmt: skip
        got64 = D.double().forward_pair(channels_last(fixture["image"]),
                                        channels_last(fixture["image_raw"]),
                                        fixture["labels"])  # fmt: skip
    assert relative_error(got32.double(), fixture["logits_float32"]) < 1e-5
    # float64: the released network's logits to float64 rounding (measured 1.8e-15)
    assert relative_error(got64, fixture["logits_float64"]) < 1e-10


def test_the_spec_rebuilds_the_module(tmp_path, fixture):
    D, spec, _ = convert_released_discriminator(fixture_pickle(tmp_path, fixture))
    rebuilt = build_released_discriminator(json.loads(json.dumps(spec)))
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in D.state_dict().items()
    }
    rebuilt.load_state_dict(D.state_dict())
    with pytest.raises(ValueError, match="unknown DualDiscriminator arguments"):
        build_released_discriminator({**spec, "kwargs": {**spec["kwargs"], "bogus": 1}})
    with pytest.raises(ValueError, match="format"):
        build_released_discriminator({"kwargs": spec["kwargs"]})


def test_forward_takes_the_pair_concatenated_channels_last(fixture, tmp_path):
    D, _, _ = convert_released_discriminator(fixture_pickle(tmp_path, fixture))
    D = D.eval().double()
    image, raw = channels_last(fixture["image"]), channels_last(fixture["image_raw"])
    resized = torch.nn.functional.interpolate(fixture["image_raw"], size=(16, 16),
                                              mode="bilinear", antialias=True)  # fmt: skip
    pair = torch.cat([image, channels_last(resized)], dim=-1)  # [B, H, W, 6]
    with torch.no_grad():
        want = D.forward_pair(image, raw, fixture["labels"])
        torch.testing.assert_close(D(pair, fixture["labels"]), want, rtol=1e-13, atol=0)


def test_a_gsgan_layout_converts_to_the_contrastive_single_image_variant(tmp_path):
    torch.manual_seed(0)
    source = DualDiscriminator(16, dual=False, conditioned=False, contrastive_dim=64,
                               channel_base=128, channel_max=16).eval()  # fmt: skip
    classes = {"": "SingleDiscriminator"}
    for name, module in list(source.named_modules())[1:]:  # the classes of the rest do not matter
        sequential = isinstance(module, nn.Sequential)
        classes[name] = "torch.nn.modules.container.Sequential" if sequential else "Layer"
    kwargs = dict(c_dim=25, img_resolution=16, img_channels=3, channel_base=128, channel_max=16,
                  num_fp16_res=4, conv_clamp=256, disc_c_noise=0, block_kwargs={},
                  mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=4))  # fmt: skip
    D = released_tree("SingleDiscriminator", kwargs, classes, dict(source.named_parameters()), {})
    converted, spec, unmapped = convert_released_discriminator(write_snapshot(tmp_path, D))
    assert spec["variant"] == "gsgan-single-contrastive" and unmapped == []
    assert "disc_c_noise" in spec["ignored"]
    assert converted.contrastive_dim == 64 and not converted.conditioned and not converted.dual
    images, labels = torch.rand(4, 16, 16, 3) * 2 - 1, torch.randn(4, 25)
    with torch.no_grad():
        want = source.forward_contrastive(images, labels)
        got = converted.eval().forward_contrastive(images, labels)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------- unsupported recordings


@pytest.mark.parametrize(
    ("override", "named"),
    [
        (dict(architecture="skip"), "architecture='skip'"),
        (dict(img_resolution=24), "img_resolution=24"),
        (dict(mapping_kwargs=dict(activation="relu")), "mapping_kwargs['activation']"),
        (dict(block_kwargs=dict(resample_filter=[[1, 2], [2, 1]])), "resample_filter"),
        (dict(epilogue_kwargs=dict(mbstd_group_size=4, mbstd_num_channels=3)),
         "mbstd_num_channels"),
        (dict(sr_upsample_factor=2), "sr_upsample_factor"),  # not DualDiscriminator's
        (dict(conv_clamp="256"), "conv_clamp"),
        (dict(bogus=1), "bogus"),
    ],
)  # fmt: skip
def test_unsupported_recorded_arguments_are_refused_before_allocation(
    tmp_path, fixture, monkeypatch, override, named
):
    def no_allocation(*args, **kwargs):
        raise AssertionError("the module was allocated before the arguments were checked")

    monkeypatch.setattr(released, "DualDiscriminator", no_allocation)
    path = fixture_pickle(tmp_path, fixture, **override)
    with pytest.raises(ReleasedModelError) as error:
        convert_released_discriminator(path)
    assert str(path) in str(error.value) and named in str(error.value)


def test_an_unknown_class_a_missing_d_and_mismatched_tensors_are_refused(tmp_path, fixture):
    kwargs = {**fixture["common"], **fixture["init_kwargs"]}
    dummy = released_tree("DummyDualDiscriminator", kwargs, fixture["classes"],
                          fixture["parameters"], fixture["buffers"])  # fmt: skip
    with pytest.raises(ReleasedModelError, match="'DummyDualDiscriminator'"):
        convert_released_discriminator(write_snapshot(tmp_path, dummy, "dummy.pkl"))
    G = Persistent("TriPlaneGenerator")
    no_d = write(tmp_path, dict(training_set_kwargs={}, G=G, D=None, G_ema=G), "no_d.pkl")
    with pytest.raises(ReleasedModelError, match="no 'D'"):
        convert_released_discriminator(no_d)
    # tensors of another width than the recorded arguments imply
    wider = fixture_pickle(tmp_path, fixture, channel_max=32)
    with pytest.raises(ReleasedModelError, match="has shape"):
        convert_released_discriminator(wider)
    # a constant filter that is not the recorded one
    buffers = dict(fixture["buffers"], **{"b8.conv1.resample_filter": torch.ones(4, 4) / 16})
    odd = released_tree("DualDiscriminator", kwargs, fixture["classes"], fixture["parameters"],
                        buffers)  # fmt: skip
    with pytest.raises(ReleasedModelError, match="b8.conv1.resample_filter"):
        convert_released_discriminator(write_snapshot(tmp_path, odd, "odd.pkl"))


# ---------------------------------------------------------------------- the module


def small(**kwargs: Any) -> DualDiscriminator:
    torch.manual_seed(0)
    resolution = kwargs.pop("resolution", 16)
    args: dict[str, Any] = dict(channel_base=64, channel_max=8, mapping_layers=2) | kwargs
    return DualDiscriminator(resolution, **args)


def test_bad_images_and_labels_name_the_argument(without_shape_checker):
    D = small()
    images, labels = torch.rand(2, 16, 16, 6), torch.randn(2, 25)
    with pytest.raises(ValueError, match=r"`images` must have shape \[B, 16, 16, 6\]"):
        D(torch.rand(2, 16, 16, 3), labels)  # one image, not the pair
    with pytest.raises(ValueError, match="`images`"):
        D(rearrange(images, "b h w c -> b c h w"), labels)  # NCHW
    with pytest.raises(ValueError, match="`images`"):
        D(torch.rand(2, 32, 32, 6), labels)
    with pytest.raises(ValueError, match="`labels`"):
        D(images, torch.randn(2, 16))
    with pytest.raises(ValueError, match="`labels`.*required"):
        D(images)
    with pytest.raises(ValueError, match="minibatch standard deviation"):
        D(torch.rand(6, 16, 16, 6), torch.randn(6, 25))
    with pytest.raises(ValueError, match="`images`.*non-finite|`images`.*finite"):
        D(images.clone().fill_(float("nan")), labels)
    with pytest.raises(ValueError, match="dual"):
        small(dual=False).forward_pair(images[..., :3], images[..., :3], labels)
    with pytest.raises(ValueError, match="contrastive"):
        D.forward_contrastive(images, labels)
    with pytest.raises(ValueError, match="resolution"):
        DualDiscriminator(24)
    with pytest.raises(ValueError, match="architecture"):
        DualDiscriminator(16, architecture="skip")
    assert D(images[:0], labels[:0]).shape == (0,)


def test_frozen_layers_hold_buffers_and_the_noise_is_drawn_in_training_mode_only():
    D = small(freeze_layers=3)
    params = dict(D.named_parameters())
    assert "b16.fromrgb.weight" not in params and "b16.conv1.weight" not in params
    assert "b16.skip.weight" in params and "b16.fromrgb.weight" in D.state_dict()
    noisy = small(disc_c_noise=1.0)
    images, labels = torch.rand(4, 16, 16, 6), torch.randn(4, 25)
    with torch.no_grad():
        a = noisy(images, labels, noise_generator=torch.Generator().manual_seed(1))
        b = noisy(images, labels, noise_generator=torch.Generator().manual_seed(2))
        assert not torch.equal(a, b)
        noisy.eval()
        assert torch.equal(noisy(images, labels), noisy(images, labels))
    with pytest.raises(ValueError, match="at least 2"):
        noisy.train()(images[:1], labels[:1])


@pytest.mark.slow
def test_gradcheck_float64(without_shape_checker):
    # 8 px, one channel, a 4-number label: every layer (blocks, minibatch std, projection,
    # contrastive branch) on a small input; fast mode checks random directional derivatives.
    D = small(resolution=8, image_channels=1, dual=False, c_dim=4, channel_base=16,
              channel_max=4, conv_clamp=None, contrastive_dim=3).double().eval()  # fmt: skip
    images = (torch.rand(2, 8, 8, 1, dtype=torch.float64) * 2 - 1).requires_grad_()
    labels = torch.randn(2, 4, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, c: D(x, c), (images, labels), fast_mode=True)
    assert torch.autograd.gradcheck(lambda x, c: tuple(D.forward_contrastive(x, c)),
                                    (images, labels), fast_mode=True)  # fmt: skip


# ---------------------------------------------------------------------- in aware3d's loop


class DualTinyGenerator(TinyGenerator):
    """TinyGenerator whose discriminator sees EG3D's pair (image, raw image at half size)."""

    def __init__(self) -> None:
        super().__init__()
        self.image_channels = 6

    @staticmethod
    def _pair(images: torch.Tensor) -> torch.Tensor:
        x = rearrange(images, "b h w f -> b f h w")
        raw = torch.nn.functional.interpolate(x, scale_factor=0.5, mode="bilinear",
                                              antialias=True)  # fmt: skip
        up = torch.nn.functional.interpolate(raw, size=x.shape[-2:], mode="bilinear",
                                             antialias=True)  # fmt: skip
        return rearrange(torch.cat([x, up], dim=1), "b f h w -> b h w f")

    def discriminator_images(self, out):
        b, c = out.images.shape[:2]
        flat = self._pair(out.images.flatten(0, 1))
        return flat.reshape(b, c, *flat.shape[1:])

    def real_discriminator_images(self, real):
        return self._pair(real)


@pytest.mark.slow
def test_fit_runs_two_steps_with_it(tmp_path):
    data = SyntheticScenes(num_scenes=2, views_per_scene=2, resolution=16, num_gaussians=16,
                           value_range=(-1.0, 1.0))  # fmt: skip
    D = small()
    before = {k: v.clone() for k, v in D.state_dict().items()}
    result = fit(DualTinyGenerator(), D, data, GANLoss(r1_interval=1), out=tmp_path / "dual",
                 steps=2, batch=2, checkpoint_every=2, image_every=2, metric_images=2,
                 tensorboard=False, progress=False)  # fmt: skip
    assert result.step == 2 and len(result.history["d_loss"]) == 2
    assert all(torch.isfinite(torch.tensor(result.history[k])).all() for k in ("d_loss", "r1"))
    assert any(not torch.equal(before[k], v) for k, v in D.state_dict().items())
    # GSGAN's single-image discriminator with its camera-contrastive branch
    gsgan = small(dual=False, conditioned=False, contrastive_dim=8)
    result = fit(TinyGenerator(), gsgan, data, GANLoss(contrastive_weight=0.1),
                 out=tmp_path / "single", steps=2, batch=2, checkpoint_every=2, image_every=2,
                 metric_images=2, tensorboard=False, progress=False)  # fmt: skip
    assert result.step == 2 and "contrastive_d" in result.history
