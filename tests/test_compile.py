"""``torch.compile`` smoke test: rasterize -> composite -> loss, compiled vs eager."""

import torch

from aware3d.functional import composite_splat, rasterize, separation_loss, splat_distortion_loss
from aware3d.gaussians import Gaussians
from splat_reference import random_cameras, random_gaussians


def _render_loss(cameras, target, means, quats, scales, opacities, features, background):
    gaussians = Gaussians(means, quats, scales, opacities, features)
    splat = rasterize(gaussians, cameras, 20, 16, depth_moments=True, backend="torch")
    assert splat.moment1 is not None and splat.moment2 is not None
    composite = composite_splat(splat.features, splat.alpha, background, splat.depth)
    return (
        (composite.image - target).square().mean()
        + 0.1 * separation_loss(composite.bg_transmittance)
        + 0.1 * splat_distortion_loss(splat.alpha, splat.moment1, splat.moment2)
    )


def _inputs():
    generator = torch.Generator().manual_seed(0)
    cameras = random_cameras(2, 2, generator, dtype=torch.float32)
    scene = random_gaussians(2, 24, 3, generator, dtype=torch.float32, spread=0.6)
    leaves = [
        t.clone().requires_grad_()
        for t in (scene.means, scene.quats, scene.scales, scene.opacities, scene.features)
    ]
    background = torch.rand(2, 2, 16, 20, 3, generator=generator).requires_grad_()
    target = torch.rand(2, 2, 16, 20, 3, generator=generator)
    return cameras, target, [*leaves, background]


def _loss_and_grads(function):
    cameras, target, leaves = _inputs()
    loss = function(cameras, target, *leaves)
    grads = torch.autograd.grad(loss, leaves)
    return loss.detach(), grads


def test_compiled_render_and_loss_match_eager():
    # aot_eager traces through Dynamo and AOTAutograd (graph breaks included) without the
    # minutes of C++ code generation that inductor takes on 2 CPU cores.
    torch._dynamo.reset()
    eager_loss, eager_grads = _loss_and_grads(_render_loss)
    compiled = torch.compile(_render_loss, backend="aot_eager")
    compiled_loss, compiled_grads = _loss_and_grads(compiled)
    assert torch.isfinite(eager_loss)
    # float32 sums over a few hundred splats and pixels, reordered by the compiler
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-6)
    for compiled, eager in zip(compiled_grads, eager_grads, strict=True):
        assert eager.abs().sum() > 0
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-6)
