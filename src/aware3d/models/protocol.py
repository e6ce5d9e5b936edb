"""What a training loop, the metrics and the figures need from a 3D-aware generator.

:class:`GeneratorProtocol` is structural (a :class:`typing.Protocol`): any ``nn.Module`` with these
members trains under :func:`aware3d.training.fit` and :func:`aware3d.training.gan_step`, is
evaluated by :class:`aware3d.training.Evaluator` and rendered by :func:`aware3d.viz.render_outputs`,
without subclassing anything. :class:`~aware3d.models.GSGANGenerator`,
:class:`~aware3d.models.BallGANGenerator` and the demo's :class:`~aware3d.models.DemoGenerator`
implement it; :func:`check_generator` checks a generator against it with a clear error.

A generator may also implement :class:`SupportsPLYExport` (``export_ply``), which
``aware3d render`` uses to write a scene's 3D content.
"""

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from aware3d.cameras import Cameras

__all__ = [
    "GeneratorOutput",
    "GeneratorProtocol",
    "SupportsCameraCheck",
    "SupportsPLYExport",
    "check_generator",
]


@runtime_checkable
class GeneratorOutput(Protocol):
    """What a generator's call returns: at least the images.

    Attributes:
        images: ``[B, C, H, W, 3]``, channels last, in the data's range (``[-1, 1]`` in training).

    An output may carry more (the library's hold ``composite``, a
    :class:`~aware3d.functional.CompositeResult` with foreground opacity and depth, which the
    figures and the demo's metrics use when present).
    """

    @property
    def images(self) -> Tensor:
        """``[B, C, H, W, 3]``."""
        ...


@runtime_checkable
class GeneratorProtocol(Protocol):
    """A 3D-aware generator as the training engine sees it.

    Attributes:
        latent_dim: width ``Z`` of the latent ``z [B, Z]`` the loop draws from ``N(0, I)`` (a
            generator with several latents, like BallGAN's foreground and background, takes
            them concatenated).
        c_dim: width of the conditioning label ``c`` (25 for EG3D's camera label), 0 for an
            unconditioned generator. The loop swaps labels between scenes
            (:func:`~aware3d.training.swap_conditioning_labels`) only when ``c_dim > 0``.
        image_channels: channels of :meth:`discriminator_images` (3, or 6 for EG3D's dual
            discriminator); the discriminator is built for this many.
    """

    latent_dim: int
    c_dim: int
    image_channels: int

    def __call__(
        self,
        z: Tensor,
        cameras: Cameras,
        width: int,
        height: int,
        *,
        c: Tensor | None = None,
        psi: float = 1.0,
    ) -> Any:
        """Generates ``B`` scenes from ``z [B, latent_dim]`` and renders each from ``cameras``.

        Args:
            z: latents ``[B, latent_dim]``.
            cameras: ``Cameras [B, C]``.
            width: image width.
            height: image height.
            c: conditioning labels ``[B, c_dim]`` (default: the generator's choice, the library's
                take each scene's first camera).
            psi: truncation (1 for none).

        Returns:
            A :class:`GeneratorOutput` (``images [B, C, H, W, 3]``).
        """
        ...

    def discriminator_images(self, out: Any) -> Tensor:
        """What the discriminator sees of a fake: ``[B, C, H, W, image_channels]``."""
        ...

    def real_discriminator_images(self, real: Tensor) -> Tensor:
        """What the discriminator sees of real images: ``[B, H, W, 3] -> [B, H, W, F]``.

        ``F`` is ``image_channels``: the identity for a single-image discriminator; EG3D's dual
        discriminator pairs the image with itself resized to the neural-rendering resolution and
        back.
        """
        ...

    def regularizers(self, out: Any) -> dict[str, Tensor]:
        """The generator's own regularisation terms of an output, by name (0-dim tensors).

        The loop weights them by name (:class:`~aware3d.training.GANLoss`'s ``weights``) and logs
        them; a term without a weight is logged, not optimised. Names used by the library:
        ``separation`` (BallGAN's background separation), ``distortion`` (the splat distortion
        loss), ``density`` (BallGAN's foreground density loss), ``knn`` and ``centre`` (GSGAN's
        anchor regularisers).
        """
        ...


@runtime_checkable
class SupportsPLYExport(Protocol):
    """A generator that can write the 3D content of a scene it rendered."""

    def export_ply(self, out: Any, path: Path) -> Path:
        """Writes scene 0 of the output ``out`` as a PLY file at ``path``; returns ``path``."""
        ...


@runtime_checkable
class SupportsCameraCheck(Protocol):
    """A generator that can say up front whether it can render from given cameras.

    :func:`~aware3d.training.fit` calls it on every camera it will render from (the fake
    cameras and the data's) before the first step, so that a data set whose cameras lie outside
    the background sphere fails at once, not at the first image grid hours later.
    """

    def check_cameras(self, cameras: Cameras, name: str = "cameras") -> None:
        """Raises ``ValueError`` (naming ``name``) if it cannot render from ``cameras``."""
        ...


_METHODS = ("discriminator_images", "real_discriminator_images", "regularizers")
_INTEGERS = ("latent_dim", "c_dim", "image_channels")


def check_generator(generator: object, name: str = "generator") -> GeneratorProtocol:
    """``generator`` if it implements :class:`GeneratorProtocol`, else a clear error.

    Raises:
        TypeError: naming every missing or ill-typed member.
    """
    problems = [f"`{member}` (a method)" for member in _METHODS
                if not callable(getattr(generator, member, None))]  # fmt: skip
    if not callable(generator):
        problems.insert(0, "`__call__(z, cameras, width, height, *, c, psi)`")
    for member in _INTEGERS:
        value = getattr(generator, member, None)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            problems.append(f"`{member}` (an integer >= 0, got {value!r})")
    if problems:
        raise TypeError(
            f"`{name}` ({type(generator).__name__}) does not implement "
            f"aware3d.models.GeneratorProtocol: missing or invalid {', '.join(problems)}"
        )
    assert isinstance(generator, GeneratorProtocol)
    return generator
