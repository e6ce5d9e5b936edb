"""Assemble a scene from aware3d's pieces and render it from an orbit of cameras to a PNG.

Run with ``bash .ci/demo`` (set-up included) or ``python examples/render_demo.py --out out``.
"""

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import aware3d


def spiral_scene(n: int, generator: torch.Generator) -> aware3d.Gaussians:
    """A coloured double helix of Gaussians around the FFHQ look-at point."""
    t = torch.linspace(0, 1, n)
    strand = (torch.arange(n) % 2).float()
    angle = 6 * math.pi * t + math.pi * strand
    means = torch.stack([0.35 * torch.cos(angle), 0.9 * (t - 0.5), 0.35 * torch.sin(angle)], -1)
    means = means + torch.tensor([0.0, 0.0, 0.2]) + 0.01 * torch.randn(n, 3, generator=generator)
    colours = torch.stack([t, 0.3 + 0.5 * strand, 1 - t], dim=-1)
    quats = torch.tensor([1.0, 0.0, 0.0, 0.0]).expand(n, 4)
    return aware3d.Gaussians(
        means=means[None],
        quats=quats[None].clone(),
        scales=torch.full((1, n, 3), 0.02),
        opacities=torch.full((1, n), 0.9),
        features=colours[None],
        levels=(torch.arange(n) * 3 // n).long(),
    )


def render_points(
    gaussians: aware3d.Gaussians, cameras: aware3d.Cameras, size: int
) -> torch.Tensor:
    """Projects every Gaussian's mean with ``Ks @ viewmats`` and paints it, far to near."""
    images = torch.ones(cameras.num_cameras, size, size, 3)
    means = torch.cat([gaussians.means[0], torch.ones(gaussians.num_gaussians, 1)], dim=-1)
    for c in range(cameras.num_cameras):
        cam = (cameras.viewmats()[c] @ means.T).T[:, :3]
        pix = (cameras.Ks(size, size)[c] @ cam.T).T
        uv = pix[:, :2] / pix[:, 2:]
        radius = (gaussians.scales[0, :, 0] * cameras.Ks(size, size)[c, 0, 0] / cam[:, 2]).ceil()
        for k in torch.argsort(cam[:, 2], descending=True).tolist():
            u, v, r = int(uv[k, 0]), int(uv[k, 1]), max(1, int(radius[k]))
            if cam[k, 2] <= 0 or not (0 <= u < size and 0 <= v < size):
                continue
            images[c, max(0, v - r) : v + r + 1, max(0, u - r) : u + r + 1] = gaussians.features[
                0, k
            ]
    return images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--views", type=int, default=6)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    gaussians = spiral_scene(600, generator)
    poses = aware3d.orbit(args.views, horizontal_amplitude=0.8, vertical_amplitude=0.3)
    cameras = aware3d.Cameras(poses, aware3d.intrinsics_from_fov(30.0).expand(args.views, 3, 3))
    images = render_points(gaussians, cameras, args.size)
    strip = np.concatenate(list((images.clamp(0, 1) * 255).byte().numpy()), axis=1)
    args.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip).save(args.out / "demo.png")
    gaussians.save_ply(args.out / "demo.ply")
    print(f"wrote {args.out / 'demo.png'} ({args.views} views) and {args.out / 'demo.ply'}")


if __name__ == "__main__":
    main()
