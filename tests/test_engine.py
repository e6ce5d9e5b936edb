"""The open training engine: the generator protocol, gan_step, fit, and user recipes."""

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from aware3d import Cameras, intrinsics_from_fov, orbit
from aware3d.data import SyntheticScenes
from aware3d.models import (
    GeneratorProtocol,
    ballgan_small,
    check_generator,
    demo_generator,
    gsgan_small,
)
from aware3d.training import (
    CameraConditionedDiscriminator,
    GANLoss,
    StepBatch,
    fit,
    gan_step,
    make_networks,
)
from tiny_generator import TinyGenerator

ROOT = Path(__file__).resolve().parent.parent


def _labels(count: int) -> Tensor:
    cameras = Cameras(orbit(count)[:, None], intrinsics_from_fov(13.4).expand(count, 1, 3, 3))
    return cameras.to_eg3d_labels()[:, 0]


ASSEMBLIES = {
    "tiny": lambda: TinyGenerator(),
    "demo": lambda: demo_generator(z_dim=16, w_dim=16, resolution=16, num_levels=2),
    "gsgan-small": lambda: gsgan_small(16, num_levels=2, resolution=16),
    "gsgan-small-gaussians": lambda: gsgan_small(
        16, num_levels=2, resolution=16, background="gaussians"
    ),
    "ballgan-small": lambda: ballgan_small(16, resolution=16, neural_resolution=8),
}


@pytest.mark.parametrize("name", list(ASSEMBLIES))
def test_every_assembly_conforms_to_the_protocol(name):
    torch.manual_seed(0)
    generator = ASSEMBLIES[name]()
    assert isinstance(generator, GeneratorProtocol)
    assert check_generator(generator) is generator
    labels = _labels(2)
    z = torch.randn(2, generator.latent_dim)
    out = generator(z, Cameras.from_eg3d_labels(labels[:, None]), 16, 16, c=None, psi=1.0)
    assert out.images.shape == (2, 1, 16, 16, 3)
    seen = generator.discriminator_images(out)
    assert seen.shape == (2, 1, 16, 16, generator.image_channels)
    real = torch.rand(2, 16, 16, 3) * 2 - 1
    assert generator.real_discriminator_images(real).shape == (2, 16, 16, generator.image_channels)
    terms = generator.regularizers(out)
    assert terms and all(isinstance(k, str) and v.ndim == 0 for k, v in terms.items())
    assert all(torch.isfinite(v) for v in terms.values())


def test_a_non_generator_is_refused_naming_what_is_missing():
    with pytest.raises(TypeError, match="regularizers.*latent_dim"):
        check_generator(nn.Linear(2, 2))


def test_no_isinstance_on_concrete_generators_outside_the_assemblies():
    pattern = ("isinstance(", "GSGANGenerator", "BallGANGenerator", "Generator3D")
    found = []
    for path in (ROOT / "src" / "aware3d").rglob("*.py"):
        if path.parent.name == "models":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern[0] in line and any(name in line for name in pattern[1:]):
                found.append(f"{path}:{number}: {line.strip()}")
    assert found == []


def _batch(generator, count=2, size=16):
    labels = _labels(count)
    return StepBatch(
        torch.rand(count, size, size, 3) * 2 - 1, labels, labels,
        Cameras.from_eg3d_labels(labels[:, None]), torch.randn(count, generator.latent_dim),
    )  # fmt: skip


def _networks(generator, lr=0.01):
    discriminator = CameraConditionedDiscriminator(16, generator.image_channels, channel_base=256,
                                                   channel_max=16, embed_dim=8)  # fmt: skip
    return make_networks(
        generator, discriminator, torch.optim.SGD(generator.parameters(), lr=lr),
        torch.optim.SGD(discriminator.parameters(), lr=lr),
    )  # fmt: skip


def test_gan_step_minimises_the_weighted_sum_of_its_logged_terms():
    """Oracle: the generator's SGD update is -lr * grad(g_loss + sum_k w_k reg_k)."""
    torch.manual_seed(0)
    generator = gsgan_small(16, num_levels=2, resolution=16)
    nets = _networks(generator)
    batch = _batch(generator)
    weights = {"separation": 0.3, "distortion": 0.2, "knn": 0.5, "centre": 0.7}
    loss = GANLoss(weights=weights, r1_gamma=1.0, r1_interval=1, ema_rampup=0.0)
    plan = loss.schedule(0, 0, 2)
    before = {n: p.detach().clone() for n, p in generator.named_parameters()}
    # the oracle: the same forward, its weighted sum, and its gradient
    reference = make_networks(gsgan_small(16, num_levels=2, resolution=16),
                              nets.discriminator, nets.opt_g, nets.opt_d)  # fmt: skip
    reference.generator.load_state_dict(generator.state_dict())
    out = reference.generator(batch.z, batch.fake_cameras, 16, 16, c=batch.fake_labels)
    nets.discriminator.requires_grad_(False)
    from aware3d.training import generator_loss

    terms = reference.generator.regularizers(out)
    g_adv = generator_loss(nets.discriminator(out.images[:, 0], batch.fake_labels))
    total = g_adv + sum(w * terms[name] for name, w in weights.items())
    grads = torch.autograd.grad(total, list(reference.generator.parameters()), allow_unused=True)
    nets.discriminator.requires_grad_(True)

    logged = gan_step(nets, batch, loss, plan, torch.Generator().manual_seed(0))
    expected_total = logged["g_loss"] + sum(w * logged[name] for name, w in weights.items())
    torch.testing.assert_close(logged["g_total"], expected_total, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(logged["g_total"], total.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logged["d_total"], logged["d_loss"] + plan.r1_weight * logged["r1"])
    for (name, param), grad in zip(generator.named_parameters(), grads, strict=True):
        change = param.detach() - before[name]
        step = torch.zeros_like(change) if grad is None else -0.01 * grad
        # float32 parameters: the difference of two values of size |p| is exact to ~|p| * 2^-23
        atol = 4 * 2**-23 * float(param.detach().abs().max()) + 1e-9
        torch.testing.assert_close(change, step, rtol=1e-3, atol=atol, msg=name)


def test_a_term_without_a_weight_is_logged_not_optimised():
    torch.manual_seed(0)
    generator = TinyGenerator()
    nets = _networks(generator)
    loss = GANLoss(r1_gamma=0.0)
    logged = gan_step(nets, _batch(generator), loss, loss.schedule(0, 0, 2),
                      torch.Generator().manual_seed(0))  # fmt: skip
    assert "brightness" in logged
    torch.testing.assert_close(logged["g_total"], logged["g_loss"])


@pytest.mark.slow
def test_gan_step_does_not_wait_for_the_device(monkeypatch):
    """Counts host synchronisations made by aware3d's own code during one GAN step.

    Allowed: the torch rasterizer's one data-dependent size (the number of Gaussian-tile pairs,
    ``aware3d/functional/_splat_tiles.py``; the gsplat backend needs none). Torch's own internals
    (e.g. Adam reading its step counter on CPU) are not the library's.
    """
    torch.manual_seed(0)
    generator = demo_generator(z_dim=16, w_dim=16, resolution=16, num_levels=2)
    discriminator = CameraConditionedDiscriminator(16, 3, channel_base=256, channel_max=16,
                                                   embed_dim=8)  # fmt: skip
    nets = make_networks(generator, discriminator, torch.optim.Adam(generator.parameters()),
                         torch.optim.Adam(discriminator.parameters()))  # fmt: skip
    batch = _batch(generator)
    loss = GANLoss(weights={"separation": 0.1, "distortion": 0.1, "knn": 0.1, "centre": 0.1},
                   r1_interval=1, blur_sigma=1.0, blur_fade_images=100.0,
                   augment=("color", "translation"))  # fmt: skip
    plan = loss.schedule(0, 0, 2)
    package = os.path.dirname(inspect.getfile(GANLoss)).rsplit(os.sep, 1)[0]
    ours = []

    def counting(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            caller = inspect.stack()[1]  # who converts the tensor: aware3d, or torch itself
            if caller.filename.startswith(package) and not caller.filename.endswith(
                "_splat_tiles.py"
            ):
                ours.append(f"{name} at {caller.filename}:{caller.lineno}")
            return original(self, *args, **kwargs)

        return wrapper

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    losses = gan_step(nets, batch, loss, plan, torch.Generator().manual_seed(0))
    assert ours == []
    from aware3d import separation_loss

    separation_loss(torch.rand(4))  # positive control: a value check outside the step is seen
    monkeypatch.undo()
    assert len(ours) == 1 and "_validation.py" in ours[0]
    assert all(torch.isfinite(v) for v in losses.values())


def test_gan_loss_rejects_bad_values_naming_the_field():
    with pytest.raises(ValueError, match="r1_interval"):
        GANLoss(r1_interval=0)
    with pytest.raises(ValueError, match="separation"):
        GANLoss(weights={"separation": -1.0})
    with pytest.raises(ValueError, match="augment"):
        GANLoss(augment=("flip",))


@pytest.mark.slow
def test_fit_trains_a_generator_written_in_the_test(tmp_path):
    torch.manual_seed(0)
    generator = TinyGenerator()
    discriminator = CameraConditionedDiscriminator(16, 3, channel_base=256, channel_max=16,
                                                   embed_dim=8)  # fmt: skip
    data = SyntheticScenes(num_scenes=4, views_per_scene=2, resolution=16, num_gaussians=50,
                           value_range=(-1.0, 1.0))  # fmt: skip
    first = generator.colour.weight.detach().clone()
    result = fit(generator, discriminator, data, GANLoss(weights={"brightness": 0.1}),
                 out=tmp_path / "run", steps=4, batch=4, checkpoint_every=2, image_every=4,
                 metric_images=4, tensorboard=False, progress=False)  # fmt: skip
    assert result.step == 4 and result.checkpoint is not None
    assert not torch.equal(first, generator.colour.weight)
    assert set(result.history) >= {"d_loss", "g_loss", "brightness", "r1", "g_total"}
    assert len(result.history["d_loss"]) == 4
    assert (tmp_path / "run" / "images" / "samples-00000004.png").is_file()
    # resume continues from step 4 of the same run
    again = fit(TinyGenerator(), CameraConditionedDiscriminator(16, 3, channel_base=256,
                                                                channel_max=16, embed_dim=8),
                data, GANLoss(weights={"brightness": 0.1}), out=tmp_path / "run", steps=6,
                batch=4, resume="auto", metric_images=4, tensorboard=False,
                progress=False)  # fmt: skip
    assert again.step == 6


def test_fit_refuses_a_module_that_is_no_generator(tmp_path):
    with pytest.raises(TypeError, match="GeneratorProtocol"):
        fit(nn.Linear(2, 2), nn.Linear(2, 2), SyntheticScenes(1, 1, resolution=16, num_gaussians=8),
            GANLoss(), out=tmp_path, steps=1, batch=1)  # fmt: skip


USER_RECIPE = """
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from aware3d.recipes import DemoRecipe, Recipe


class Output:
    def __init__(self, images):
        self.images = images


class FlatGenerator(nn.Module):
    def __init__(self, resolution):
        super().__init__()
        self.latent_dim, self.c_dim, self.image_channels = 4, 0, 3
        self.colour = nn.Linear(4, 3)

    def forward(self, z, cameras, width, height, *, c=None, psi=1.0):
        colour = torch.tanh(self.colour(z))[:, None, None, None, :]
        return Output(colour.expand(-1, cameras.shape[1], height, width, -1))

    def discriminator_images(self, out):
        return out.images

    def real_discriminator_images(self, real):
        return real

    def regularizers(self, out):
        return {}


@dataclass(frozen=True)
class FlatConfig(DemoRecipe):
    recipe: ClassVar[str] = "flat"


FLAT = Recipe(FlatConfig, generator=lambda config: FlatGenerator(config.resolution))
"""


@pytest.mark.slow
def test_aware3d_train_runs_a_user_recipe_by_module_path(tmp_path):
    (tmp_path / "my_recipe.py").write_text(USER_RECIPE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "aware3d", "train", "--recipe", "my_recipe:FLAT", "--out",
               str(tmp_path / "run"), "--steps", "2", "--batch", "2", "--set",
               "synthetic_images=8", "--set", "resolution=16", "--no-progress"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "run" / "checkpoints" / "step-00000002" / "generator.safetensors").is_file()
    render = subprocess.run(
        [sys.executable, "-m", "aware3d", "render", "--checkpoint", str(tmp_path / "run"),
         "--out", str(tmp_path / "r"), "--count", "2"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert render.returncode == 0, render.stderr
    assert (tmp_path / "r" / "grid.png").is_file()
    assert not (tmp_path / "r" / "sample.ply").exists()  # FlatGenerator exports no 3D content


def test_an_unknown_recipe_is_a_clear_error():
    from aware3d.recipes import get_recipe

    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        get_recipe("nope")
    with pytest.raises(ValueError, match="cannot import"):
        get_recipe("no_such_module_here:X")
    with pytest.raises(ValueError, match="must be a Recipe"):
        get_recipe("aware3d.recipes:TrainConfig")
