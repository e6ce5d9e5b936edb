"""Driving a generator from its style codes ``ws`` instead of its latent ``z``.

Inversion (:mod:`aware3d.inversion`) optimises style codes, so it needs two things the
:class:`~aware3d.models.GeneratorProtocol` call ``(z, cameras, width, height, *, c, psi)`` does
not give: the generator's mapping networks (to find ``w_avg`` and the spread of ``w``) and a way
to render from given ``ws``. :class:`SupportsStyles` names them. A user's generator may implement
it directly; :func:`styles_of` returns such a generator unchanged and wraps every other
generator whose call maps ``z`` through :class:`~aware3d.nn.MappingNetwork` attributes (the
library's :class:`~aware3d.models.GSGANGenerator`, :class:`~aware3d.models.DemoGenerator`,
:class:`~aware3d.models.BallGANGenerator` and EG3D's assembly) in a :class:`StyleDriver`.

A generator has one *style group* per mapping network: GSGAN-family generators one (``"ws"``,
``[B, num_ws, D]``, the last vector driving the background), BallGAN two (``"ws"`` for the
tri-plane foreground, ``"ws_background"`` for the sphere).

:class:`StyleDriver` renders from given codes by calling the generator as usual with a zero
latent while a forward hook replaces each mapping network's output by the given codes, so the
rest of the generator's call (labels, camera conditioning, rendering, super-resolution) runs
exactly as written in the assembly. The mapping networks still run on the zero latent (a few
small matrix products) and their result is discarded.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from aware3d.cameras import Cameras
from aware3d.nn.mapping import MappingNetwork

__all__ = ["StyleDriver", "StyleGroup", "SupportsStyles", "styles_of"]

#: Attributes a generator's mapping networks are looked up by, in the order of the latent ``z``.
MAPPING_ATTRIBUTES = ("mapping", "background_mapping")


@dataclass(frozen=True)
class StyleGroup:
    """One mapping network's style codes.

    Attributes:
        name: the group's name (``"ws"``, ``"ws_background"``): the key of the saved latent.
        mapping: the mapping network (``z_dim``, ``w_dim``, ``num_ws``, ``c_dim``, ``w_avg``).
    """

    name: str
    mapping: MappingNetwork

    @property
    def num_ws(self) -> int:
        """Style vectors of the group."""
        return self.mapping.num_ws

    @property
    def w_dim(self) -> int:
        """Width of a style vector."""
        return self.mapping.w_dim


@runtime_checkable
class SupportsStyles(Protocol):
    """A generator that renders from style codes.

    ``style_groups()`` lists its mapping networks; ``map_latents(z, cameras, c=None)`` gives the
    codes its call would use for the latents ``z [B, latent_dim]`` (one tensor per group,
    ``[B, num_ws, w_dim]``), and ``synthesize(ws, cameras, width, height, **kwargs)`` renders from
    such codes and returns what the generator's call returns.
    """

    def style_groups(self) -> tuple[StyleGroup, ...]:
        """The style groups, in the order of ``ws``."""
        ...

    def map_latents(
        self,
        z: Tensor,
        cameras: Cameras,
        width: int,
        height: int,
        *,
        c: Tensor | None = None,
        psi: float = 1.0,
    ) -> list[Tensor]:
        """The codes ``[B, num_ws, w_dim]`` per group the generator's call uses for ``z``."""
        ...

    def synthesize(
        self, ws: Sequence[Tensor], cameras: Cameras, width: int, height: int, **kwargs: Any
    ) -> Any:
        """Renders the scenes of the codes ``ws`` (one ``[B, num_ws, w_dim]`` per group)."""
        ...


class _MappedError(Exception):
    """Raised by a hook to stop a generator's call once every mapping network has run."""


class StyleDriver:
    """:class:`SupportsStyles` for a generator that maps ``z`` through mapping-network attributes.

    Args:
        generator: the generator (called as ``generator(z, cameras, width, height, c=c)``).
        attributes: names of its :class:`~aware3d.nn.MappingNetwork` attributes, in the order
            of the latent ``z`` (default: those of :data:`MAPPING_ATTRIBUTES` it has and that are
            not ``None``). The first group is named ``"ws"``, the others ``"ws_<name>"`` with the
            attribute's name less ``_mapping``.

    Its call requires each mapping network to run exactly once per call of the generator (as
    in the library's assemblies).

    Raises:
        TypeError: if the generator has no mapping network.
    """

    def __init__(self, generator: nn.Module, attributes: Sequence[str] | None = None) -> None:
        if attributes is None:
            attributes = [
                name
                for name in MAPPING_ATTRIBUTES
                if isinstance(getattr(generator, name, None), MappingNetwork)
            ]
        groups = []
        for i, attribute in enumerate(attributes):
            mapping = getattr(generator, attribute, None)
            if not isinstance(mapping, MappingNetwork):
                raise TypeError(
                    f"`generator` ({type(generator).__name__}) has no MappingNetwork `{attribute}`"
                )
            name = "ws" if i == 0 else "ws_" + attribute.removesuffix("_mapping")
            groups.append(StyleGroup(name, mapping))
        if not groups:
            raise TypeError(
                f"`generator` ({type(generator).__name__}) cannot be driven from style codes: it "
                "neither implements aware3d.models.SupportsStyles nor has a MappingNetwork "
                f"attribute ({', '.join(MAPPING_ATTRIBUTES)})"
            )
        self.generator = generator
        self._groups = tuple(groups)

    def style_groups(self) -> tuple[StyleGroup, ...]:
        """The style groups, in the order of the latent ``z``."""
        return self._groups

    def _latent_dim(self) -> int:
        return int(
            getattr(self.generator, "latent_dim", sum(g.mapping.z_dim for g in self._groups))
        )

    @contextmanager
    def _hooks(self, hook: Callable[[int, Tensor], Tensor | None]) -> Iterator[None]:
        handles = [
            group.mapping.register_forward_hook(
                lambda _module, _inputs, output, i=i: hook(i, output)
            )
            for i, group in enumerate(self._groups)
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def map_latents(
        self,
        z: Tensor,
        cameras: Cameras,
        width: int,
        height: int,
        *,
        c: Tensor | None = None,
        psi: float = 1.0,
    ) -> list[Tensor]:
        """The codes the generator's call uses for latents ``z [B, latent_dim]`` and ``cameras``.

        The generator is called and stopped as soon as every mapping network has run (nothing
        is rendered), so labels reach the mappings exactly as in its call; ``width`` and
        ``height`` are those the generator would render at (some check them first). No mapping
        updates its tracked ``w_avg`` (the mappings run in eval mode).
        """
        captured: dict[int, Tensor] = {}

        def capture(i: int, output: Tensor) -> None:
            captured[i] = output
            if len(captured) == len(self._groups):
                raise _MappedError

        modes = [group.mapping.training for group in self._groups]
        for group in self._groups:
            group.mapping.eval()
        try:
            with self._hooks(capture):
                self.generator(z, cameras[:, :1], width, height, c=c, psi=psi)
        except _MappedError:
            pass
        finally:
            for group, mode in zip(self._groups, modes, strict=True):
                group.mapping.train(mode)
        if len(captured) != len(self._groups):
            raise RuntimeError(
                f"{type(self.generator).__name__}'s call ran {len(captured)} of its "
                f"{len(self._groups)} mapping networks; StyleDriver cannot drive it"
            )
        return [captured[i] for i in range(len(self._groups))]

    def synthesize(
        self, ws: Sequence[Tensor], cameras: Cameras, width: int, height: int, **kwargs: Any
    ) -> Any:
        """The generator's output for the codes ``ws`` (one ``[B, num_ws, w_dim]`` per group).

        ``kwargs`` go to the generator's call (``c``, ``backend``, ...). Gradients flow to ``ws``
        and to the generator's parameters.

        Raises:
            ValueError: for the wrong number of groups or a misshapen code.
        """
        if len(ws) != len(self._groups):
            raise ValueError(f"`ws` must hold {len(self._groups)} tensors, got {len(ws)}")
        batch = ws[0].shape[0] if ws[0].ndim == 3 else -1
        for group, codes in zip(self._groups, ws, strict=True):
            expected = (batch, group.num_ws, group.w_dim)
            if tuple(codes.shape) != expected:
                raise ValueError(
                    f"`ws` for {group.name} must be [B, {group.num_ws}, {group.w_dim}], got "
                    f"{list(codes.shape)}"
                )
        first = ws[0]
        z = torch.zeros(batch, self._latent_dim(), device=first.device, dtype=first.dtype)
        with self._hooks(lambda i, _output: ws[i]):
            return self.generator(z, cameras, width, height, **kwargs)


def styles_of(generator: object) -> SupportsStyles:
    """``generator`` if it implements :class:`SupportsStyles`, else a :class:`StyleDriver` of it.

    Raises:
        TypeError: for a generator that has neither (naming what is missing).
    """
    if isinstance(generator, SupportsStyles):
        return generator
    if not isinstance(generator, nn.Module):
        raise TypeError(f"`generator` must be an nn.Module, got {type(generator).__name__}")
    return StyleDriver(generator)
