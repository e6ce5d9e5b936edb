"""StyleGAN2's mapping network: latent ``z`` (and an optional camera label) -> styles ``ws``."""

import torch
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._checked import checked
from aware3d._validation import (
    check_bool,
    check_module_device,
    check_module_dtype,
    check_nonnegative_int,
    check_number,
    check_positive_int,
    check_positive_number,
    check_shape,
    check_values,
    finite_checks,
    value_checks_enabled,
)
from aware3d.nn.layers import EqualizedLinear

__all__ = ["MappingNetwork", "ballgan_background_mapping", "gsgan_mapping"]


def _normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    return x * torch.rsqrt(x.square().mean(dim=-1, keepdim=True) + eps)


class MappingNetwork(nn.Module):
    """StyleGAN2-style mapping ``(z, c) -> ws [B, num_ws, w_dim]`` with truncation.

    ``x = normalise(z)`` (unit second moment); with ``c_dim > 0`` the camera label is embedded,
    ``y = normalise(E c)``, and ``x = [x, y]``. Then ``num_layers`` :class:`EqualizedLinear`
    layers (learning-rate multiplier ``lr_multiplier``, 0.01 in StyleGAN2, scaled leaky ReLU)
    give ``w``, broadcast to ``num_ws`` copies.

    **Tracked average.** ``w_avg`` (a buffer) is the running mean of ``w`` used for truncation.
    As in StyleGAN2, a forward pass in training mode updates it,
    ``w_avg <- lerp(mean_batch(w), w_avg, w_avg_beta)``; this is the one deliberate side effect of
    ``forward`` (``update_w_avg=False`` turns it off, ``True`` forces it in eval mode). An empty
    batch, or one whose mean is not finite, leaves ``w_avg`` unchanged (without a host
    synchronisation), so one bad batch cannot poison it for good.

    **Truncation.** ``ws[:, :cutoff] = lerp(w_avg, ws[:, :cutoff], psi)``; ``psi = 1`` (default)
    leaves ``ws`` unchanged, ``cutoff = None`` truncates every style vector.

    Args:
        z_dim: latent width.
        w_dim: ``D``, style width.
        num_ws: style vectors per sample (a decoder's ``num_ws``).
        c_dim: width of the conditioning label (25 for an EG3D camera label), 0 for none.
        num_layers: fully connected layers.
        hidden_dim: width of the hidden layers (default ``w_dim``).
        lr_multiplier: learning-rate multiplier of the layers.
        w_avg_beta: decay of the tracked ``w_avg``.
    """

    w_avg: Tensor

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_ws: int,
        c_dim: int = 0,
        num_layers: int = 8,
        *,
        hidden_dim: int | None = None,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.998,
    ) -> None:
        super().__init__()
        self.z_dim = check_positive_int("z_dim", z_dim)
        self.w_dim = check_positive_int("w_dim", w_dim)
        self.num_ws = check_positive_int("num_ws", num_ws)
        if isinstance(c_dim, bool) or not isinstance(c_dim, int) or c_dim < 0:
            raise ValueError(f"`c_dim` must be an integer >= 0, got {c_dim!r}")
        self.c_dim = c_dim
        self.num_layers = check_positive_int("num_layers", num_layers)
        hidden_dim = w_dim if hidden_dim is None else check_positive_int("hidden_dim", hidden_dim)
        check_positive_number("lr_multiplier", lr_multiplier)
        if not 0.0 <= check_number("w_avg_beta", w_avg_beta) <= 1.0:
            raise ValueError(f"`w_avg_beta` must lie in [0, 1], got {w_avg_beta!r}")
        self.w_avg_beta = float(w_avg_beta)
        self.embed = EqualizedLinear(c_dim, w_dim) if c_dim > 0 else None
        widths = [z_dim + (w_dim if c_dim > 0 else 0)] + [hidden_dim] * (num_layers - 1) + [w_dim]
        self.layers = nn.ModuleList(
            EqualizedLinear(widths[i], widths[i + 1], lr_multiplier=lr_multiplier, leaky_relu=True)
            for i in range(num_layers)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def extra_repr(self) -> str:
        """Summary shown by ``repr``."""
        return (
            f"z_dim={self.z_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, c_dim={self.c_dim}, "
            f"num_layers={self.num_layers}, w_avg_beta={self.w_avg_beta}"
        )

    @checked
    def forward(
        self,
        z: Float[Tensor, "B Z"],
        c: Float[Tensor, "B _"] | None = None,
        *,
        psi: float = 1.0,
        cutoff: int | None = None,
        update_w_avg: bool | None = None,
    ) -> Float[Tensor, "B _ D"]:
        """Maps latents (and labels) to style codes.

        Args:
            z: latents ``[B, z_dim]``.
            c: labels ``[B, c_dim]``; required iff ``c_dim > 0``.
            psi: truncation strength (1 = none, 0 = ``w_avg``).
            cutoff: truncate only the first ``cutoff`` style vectors (``None``: all).
            update_w_avg: update the tracked ``w_avg``; default: in training mode only.

        Returns:
            ``ws`` ``[B, num_ws, w_dim]``.

        Raises:
            ValueError: for misshapen ``z`` or ``c``, a missing or unexpected ``c``, a dtype or
                device other than the network's, an invalid ``psi`` or ``cutoff``, and (value
                checks) non-finite ``z`` or ``c``.
            TypeError: for non-floating inputs.
        """
        check_shape("z", z, ("B", self.z_dim))
        check_module_dtype("z", z, self)
        check_module_device("z", z, self)
        psi = check_number("psi", psi)
        if cutoff is not None:
            check_nonnegative_int("cutoff", cutoff)
        if update_w_avg is not None:
            check_bool("update_w_avg", update_w_avg)
        if self.embed is None and c is not None:
            raise ValueError("`c` was given but this mapping network has c_dim = 0")
        if self.embed is not None:
            if c is None:
                raise ValueError(f"`c` [B, {self.c_dim}] is required (c_dim = {self.c_dim})")
            check_shape("c", c, (z.shape[0], self.c_dim))
        if value_checks_enabled():
            check_values(finite_checks(z=z, c=c))
        x = _normalize_2nd_moment(z)
        if self.embed is not None:
            assert c is not None
            x = torch.cat([x, _normalize_2nd_moment(self.embed(c))], dim=-1)
        for layer in self.layers:
            x = layer(x)
        if (self.training if update_w_avg is None else update_w_avg) and x.shape[0] > 0:
            with torch.no_grad():
                batch_mean = x.detach().mean(dim=0).to(self.w_avg.dtype)
                updated = batch_mean.lerp(self.w_avg, self.w_avg_beta)
                self.w_avg.copy_(torch.where(torch.isfinite(batch_mean).all(), updated, self.w_avg))
        ws = x[:, None].expand(-1, self.num_ws, -1)
        if psi != 1:
            w_avg = self.w_avg.to(ws.dtype)
            if cutoff is None:
                ws = w_avg.lerp(ws, psi)
            else:
                truncated = w_avg.lerp(ws[:, :cutoff], psi)
                ws = torch.cat([truncated, ws[:, cutoff:]], dim=1)
        return ws


def gsgan_mapping(num_ws: int, c_dim: int = 25, *, w_dim: int = 512) -> MappingNetwork:
    """GSGAN's (and EG3D's, BallGAN's) mapping network: ``z`` 512 -> ``w`` 512, depth 2.

    Two layers with learning-rate multiplier 0.01, conditioned on the 25-number EG3D camera label
    (pass ``c_dim=0`` for none). GSGAN makes ``decoder.num_ws + 1`` style vectors: the last one
    drives its background (16 + 1 = 17 for ``gsgan_decoder_256``).

    Args:
        num_ws: style vectors per sample.
        c_dim: width of the conditioning label.
        w_dim: latent and style width.
    """
    return MappingNetwork(w_dim, w_dim, num_ws, c_dim=c_dim, num_layers=2)


def ballgan_background_mapping(
    num_ws: int = 5, *, z_dim: int = 512, w_dim: int = 512, num_layers: int = 8
) -> MappingNetwork:
    """BallGAN's mapping network for the background's own latent: ``z_bg`` 512 -> ``w_bg`` 512.

    BallGAN (``bg_ver="ver1"``, the default of its train.py) samples a second latent ``z_bg``
    per image and maps it with a separate StyleGAN2 mapping network: ``z_bg_dim = 512``,
    ``w_bg_dim = 512``, ``bg_mapping = 8`` layers, no camera conditioning (``c_dim = 0``),
    StyleGAN2's defaults otherwise (learning-rate multiplier 0.01, ``w_avg`` decay 0.998), and
    ``num_ws = n_blocks + 1 = 5`` broadcast copies, one per layer of
    :func:`~aware3d.nn.ballgan_background`. Truncation works as for the foreground's ``ws``.

    Args:
        num_ws: style vectors per sample (the background's ``num_ws``).
        z_dim: width of ``z_bg``.
        w_dim: width of ``w_bg`` (the background's ``w_dim``).
        num_layers: fully connected layers.
    """
    return MappingNetwork(z_dim, w_dim, num_ws, c_dim=0, num_layers=num_layers)
