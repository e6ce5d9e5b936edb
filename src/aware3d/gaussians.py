"""The ``Gaussians`` container: activated 3D Gaussians, level selection, PLY and .splat I/O."""

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from aware3d import _ply, _splat_file
from aware3d._checked import checked
from aware3d._io import check_writable_file
from aware3d._validation import (
    check_float_dtype,
    check_positive_number,
    check_shape,
    check_values,
    finite_checks,
    range_check,
    value_checks_enabled,
)

#: Zeroth-order spherical-harmonic constant, ``1 / (2 sqrt(pi))``: 3DGS colour = 0.5 + SH_C0 * f_dc.
SH_C0 = 0.28209479177387814
#: Number of ``f_rest_*`` properties written (degree-3 SH, all zero) for fixed-layout viewers.
PLY_REST_COEFFS = 45
_LOGIT_LIMIT = 40.0
#: How far RGB features may lie outside ``save_ply``'s ``value_range``, a fraction of its width.
PLY_RANGE_TOLERANCE = 1e-3


def _check_value_range(value_range: object) -> tuple[float, float]:
    """``(low, high)`` from ``value_range``: two finite numbers with ``low < high``."""
    message = (
        f"`value_range` must be two finite numbers (low, high) with low < high, got {value_range!r}"
    )
    if not isinstance(value_range, tuple | list) or len(value_range) != 2:
        raise ValueError(message)
    low, high = value_range
    if (
        not all(
            isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
            for v in (low, high)
        )
        or not low < high
    ):
        raise ValueError(message)
    return float(low), float(high)


def _not_positive(scales: Tensor) -> str:
    return f"`scales` must be positive everywhere, but its minimum is {float(scales.min()):.6g}"


def _colours_in_unit_range(features: Tensor, low: float, high: float, scene: int) -> Tensor:
    """RGB ``features [N, 3]`` in ``[low, high]`` mapped to [0, 1]; out of range is an error."""
    colours = (features - low) / (high - low)
    outside = (colours < -PLY_RANGE_TOLERANCE) | (colours > 1 + PLY_RANGE_TOLERANCE)
    if bool(outside.any()):  # NaN (possible with value checks off) is written as it is
        numbers = features[~features.isnan()]
        least, most = float(numbers.min()), float(numbers.max())
        hint = (
            "pass `value_range=(-1.0, 1.0)` for features in [-1, 1]"
            if max(abs(least), abs(most)) <= 1 + 2 * PLY_RANGE_TOLERANCE
            else f"pass the range they lie in as `value_range` (e.g. ({least:.4g}, {most:.4g}))"
        )
        raise ValueError(
            f"`features` of scene {scene} lie in [{least:.6g}, {most:.6g}], outside "
            f"`value_range` ({low:g}, {high:g}) (3DGS colours are in [0, 1]); {hint}, or clamp "
            "them to the range"
        )
    return colours


class Gaussians:
    """Activated 3D Gaussians for ``B`` scenes of ``N`` Gaussians each.

    Values are activated: positive ``scales`` (standard deviations, not logs), ``opacities`` in
    [0, 1], ``wxyz`` quaternions. Quaternions are unit by convention; every consumer in the library
    normalises them, so a non-unit quaternion means the rotation of its normalised self (zero is
    refused).

    Args:
        means: centres, ``[B, N, 3]``.
        quats: rotations as ``wxyz`` quaternions, ``[B, N, 4]``, non-zero.
        scales: per-axis standard deviations, ``[B, N, 3]``, > 0.
        opacities: opacities in [0, 1], ``[B, N]``.
        features: colours or learned features, ``[B, N, F]``.
        levels: optional hierarchy level of every Gaussian, ``[N]`` (int64), shared by all scenes.

    Raises:
        ValueError: for mismatched shapes, dtypes or devices, ``F = 0``, and (value checks, one
            host synchronisation, see :func:`aware3d.value_checks`) non-finite values,
            non-positive scales, opacities outside [0, 1], zero quaternions or negative levels.
        TypeError: for arguments that are not floating-point tensors (``levels``: int64).
    """

    __slots__ = ("features", "levels", "means", "opacities", "quats", "scales")

    means: Float[Tensor, "B N 3"]
    quats: Float[Tensor, "B N 4"]
    scales: Float[Tensor, "B N 3"]
    opacities: Float[Tensor, "B N"]
    features: Float[Tensor, "B N F"]
    levels: Int[Tensor, " N"] | None

    @checked
    def __init__(
        self,
        means: Float[Tensor, "B N 3"],
        quats: Float[Tensor, "B N 4"],
        scales: Float[Tensor, "B N 3"],
        opacities: Float[Tensor, "B N"],
        features: Float[Tensor, "B N F"],
        levels: Int[Tensor, " N"] | None = None,
    ) -> None:
        if features.shape[-1] < 1:
            raise ValueError("`features` must have at least one channel, got F = 0")
        if levels is not None and levels.dtype != torch.int64:
            raise TypeError(f"`levels` must be an int64 tensor of shape [N], got {levels.dtype}")
        if value_checks_enabled():
            checks = [
                *finite_checks(
                    means=means, quats=quats, scales=scales, opacities=opacities, features=features
                ),
                ((scales > 0).all(), lambda: _not_positive(scales)),
                range_check("opacities", opacities, 0.0, 1.0),
                (
                    (quats.abs().amax(dim=-1) > 0).all(),
                    lambda: "`quats` must be non-zero quaternions (wxyz); got a zero quaternion",
                ),
            ]
            if levels is not None:
                checks.append(range_check("levels", levels, 0, None))
            check_values(checks)
        self.means = means
        self.quats = quats
        self.scales = scales
        self.opacities = opacities
        self.features = features
        self.levels = levels

    @classmethod
    def _trusted(
        cls,
        means: Tensor,
        quats: Tensor,
        scales: Tensor,
        opacities: Tensor,
        features: Tensor,
        levels: Tensor | None,
    ) -> "Gaussians":
        """Wraps tensors derived from validated ``Gaussians`` (or built valid by construction)."""
        gaussians = object.__new__(cls)
        gaussians.means = means
        gaussians.quats = quats
        gaussians.scales = scales
        gaussians.opacities = opacities
        gaussians.features = features
        gaussians.levels = levels
        return gaussians

    def _map(self, fn, levels: Tensor | None) -> "Gaussians":
        return Gaussians._trusted(
            fn(self.means),
            fn(self.quats),
            fn(self.scales),
            fn(self.opacities),
            fn(self.features),
            levels,
        )

    # ------------------------------------------------------------------ properties

    @property
    def batch_size(self) -> int:
        """``B``, the number of scenes."""
        return self.means.shape[0]

    @property
    def num_gaussians(self) -> int:
        """``N``, the number of Gaussians per scene."""
        return self.means.shape[1]

    @property
    def feature_dim(self) -> int:
        """``F``, the number of feature channels."""
        return self.features.shape[-1]

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating-point dtype of the tensors."""
        return self.means.dtype

    def __repr__(self) -> str:
        levels = ""
        if self.levels is not None:
            levels = f", levels={torch.unique(self.levels).tolist()}"
        return (
            f"Gaussians(B={self.batch_size}, N={self.num_gaussians}, F={self.feature_dim}"
            f"{levels}, dtype={self.dtype}, device={self.device})"
        )

    # ------------------------------------------------------------------ transforms

    def to(self, *args: object, **kwargs: object) -> "Gaussians":
        """Returns the Gaussians moved or cast like ``Tensor.to``; ``levels`` only moves.

        Raises:
            TypeError: for a cast to a non-floating dtype.
        """
        try:
            moved = self._map(lambda t: t.to(*args, **kwargs), None)
        except (RuntimeError, TypeError) as error:
            raise TypeError(f"`Gaussians.to` cannot use {args} {kwargs}: {error}") from None
        check_float_dtype("dtype", moved.dtype)
        if self.levels is not None:
            moved.levels = self.levels.to(device=moved.device)
        return moved

    def detach(self) -> "Gaussians":
        """Returns the Gaussians detached from the autograd graph."""
        return self._map(Tensor.detach, self.levels)

    def without_levels(self) -> "Gaussians":
        """The same Gaussians (the same tensors) without ``levels``.

        For concatenating a decoder's output with Gaussians that belong to no level, such as
        :class:`~aware3d.nn.GaussianBackground`'s.
        """
        return self._map(lambda t: t, None)

    def __getitem__(self, index: int | slice | Sequence[int] | Tensor) -> "Gaussians":
        """Selects scenes; an integer keeps the batch axis (``g[0]`` has ``B = 1``)."""
        if isinstance(index, bool):
            raise TypeError("a scene index must be an integer, a slice or a tensor, not a bool")
        if isinstance(index, int):
            if not -self.batch_size <= index < self.batch_size:
                raise IndexError(f"scene index {index} is out of range for B = {self.batch_size}")
            index = slice(index, index + 1 if index != -1 else None)
        return self._map(lambda t: t[index], self.levels)

    def select(
        self,
        levels: int | Sequence[int] | None = None,
        mask: Bool[Tensor, " N"] | None = None,
    ) -> "Gaussians":
        """Keeps the Gaussians of the given hierarchy levels, or those where ``mask`` is true.

        The same Gaussians are kept in every scene. An empty selection is valid (``N = 0``).

        Args:
            levels: a level or levels to keep; requires ``self.levels``.
            mask: a boolean mask over the ``N`` Gaussians.

        Returns:
            The selected ``Gaussians``.

        Raises:
            ValueError: for both or neither of ``levels`` and ``mask``, a level these Gaussians
                do not have, or a mask of the wrong shape.
            TypeError: for levels that are not integers, or a mask that is not boolean.
        """
        if (levels is None) == (mask is None):
            raise ValueError("pass exactly one of `levels` and `mask` to `Gaussians.select`")
        if levels is not None:
            if self.levels is None:
                raise ValueError("these Gaussians have no `levels`; select with `mask` instead")
            wanted = [levels] if isinstance(levels, int) else list(levels)
            if any(isinstance(level, bool) or not isinstance(level, int) for level in wanted):
                raise TypeError(f"`levels` must be an integer or integers, got {levels!r}")
            present = torch.unique(self.levels).tolist()
            missing = sorted(set(wanted) - set(present))
            if missing:
                raise ValueError(
                    f"levels {missing} are not among these Gaussians' levels {present}"
                )
            mask = torch.isin(self.levels, torch.as_tensor(wanted, device=self.levels.device))
        assert mask is not None
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise TypeError("`mask` must be a boolean tensor of shape [N]")
        check_shape("mask", mask, (self.num_gaussians,))
        mask = mask.to(self.device)
        kept_levels = None if self.levels is None else self.levels[mask.to(self.levels.device)]
        return self._map(lambda t: t[:, mask], kept_levels)

    def scaled(self, factor: float) -> "Gaussians":
        """Returns the Gaussians with every scale multiplied by ``factor`` > 0 (shows structure)."""
        factor = check_positive_number("factor", factor)
        return Gaussians._trusted(
            self.means, self.quats, self.scales * factor, self.opacities, self.features, self.levels
        )

    @staticmethod
    def cat(parts: Sequence["Gaussians"]) -> "Gaussians":
        """Concatenates Gaussians along ``N``; all parts need one ``B``, ``F``, dtype and device.

        ``levels`` are concatenated if every part has them; a mix of parts with and without
        ``levels`` is refused.
        """
        if not isinstance(parts, list | tuple):
            raise TypeError(f"`parts` must be a list of Gaussians, got {type(parts).__name__}")
        if len(parts) == 0:
            raise ValueError("`parts` must hold at least one Gaussians")
        first = parts[0]
        for i, part in enumerate(parts):
            if not isinstance(part, Gaussians):
                raise TypeError(f"`parts[{i}]` must be Gaussians, got {type(part).__name__}")
            if part.batch_size != first.batch_size or part.feature_dim != first.feature_dim:
                raise ValueError(
                    f"`parts[{i}]` has B = {part.batch_size}, F = {part.feature_dim}; "
                    f"`parts[0]` has B = {first.batch_size}, F = {first.feature_dim}"
                )
            if part.dtype != first.dtype or part.device != first.device:
                raise ValueError(f"`parts[{i}]` differs from `parts[0]` in dtype or device")
        has_levels = [part.levels is not None for part in parts]
        if any(has_levels) and not all(has_levels):
            raise ValueError(
                "either every part of `parts` has `levels` or none does (drop them with "
                "`Gaussians.without_levels()`)"
            )
        levels = torch.cat([p.levels for p in parts]) if all(has_levels) else None  # type: ignore[misc]
        return Gaussians._trusted(
            torch.cat([p.means for p in parts], dim=1),
            torch.cat([p.quats for p in parts], dim=1),
            torch.cat([p.scales for p in parts], dim=1),
            torch.cat([p.opacities for p in parts], dim=1),
            torch.cat([p.features for p in parts], dim=1),
            levels,
        )

    # ------------------------------------------------------------------ PLY

    def _check_scene(self, scene: object) -> None:
        """Refuses a ``scene`` index that is not an integer in ``[-B, B)``."""
        if isinstance(scene, bool) or not isinstance(scene, int):
            raise TypeError(f"`scene` must be an integer, got {scene!r}")
        if not -self.batch_size <= scene < self.batch_size:
            raise IndexError(f"`scene` {scene} is out of range for B = {self.batch_size}")

    def save_ply(
        self,
        path: str | os.PathLike[str],
        scene: int = 0,
        *,
        value_range: tuple[float, float] = (0.0, 1.0),
    ) -> Path:
        """Writes one scene in the standard 3D Gaussian Splatting PLY layout.

        Properties, all float32: ``x y z nx ny nz f_dc_0..2 f_rest_0..44 opacity scale_0..2
        rot_0..3`` (3DGS viewers open it), with ``opacity`` as a logit, ``scale_*`` as natural logs,
        ``rot_*`` the ``wxyz`` quaternion normalised, ``n*`` and ``f_rest_*`` zero.

        Features: with ``F = 3`` they are RGB in ``value_range = (low, high)``, mapped to the 3DGS
        colour ``rgb = (features - low) / (high - low)`` in [0, 1] and stored as the SH DC term
        ``f_dc = (rgb - 0.5) / SH_C0``, which viewers show as colour ``rgb``. The default (0, 1)
        stores colours in [0, 1] as they are; pass ``value_range=(-1.0, 1.0)`` for features in
        [-1, 1] (the range the library's generators render). Features outside ``value_range`` by
        more than ``PLY_RANGE_TOLERANCE`` (1e-3) of its width are an error rather than colours a
        viewer would clip. With ``F != 3`` the features are stored verbatim as extra properties
        ``feature_0..F-1`` (``value_range`` is not used), and ``f_dc`` is zero (viewers show mid
        grey). ``levels``, when present, are stored as a ``level`` property. Opacities are clamped
        to logits in [-40, 40] so that 0 and 1 stay finite; :meth:`load_ply` reads them back as 0
        and 1 to float32 precision.

        Args:
            path: destination file.
            scene: which scene of the batch to write.
            value_range: ``(low, high)``, the range of RGB features (``F = 3``), mapped to the
                3DGS colour range [0, 1].

        Returns:
            The path written.

        Raises:
            TypeError: for a ``scene`` that is not an integer.
            IndexError: for a ``scene`` outside the batch.
            ValueError: for a ``value_range`` that is not two finite numbers with
                ``low < high``, or RGB features outside it (nothing is written).
            OSError: if ``path`` cannot be written, checked before the file's content is built
                (``IsADirectoryError`` for a folder, ``FileNotFoundError`` for a missing folder,
                ``NotADirectoryError`` when its folder is a file, ``PermissionError`` for one that
                is not writable), each naming ``path``.
        """
        self._check_scene(scene)
        low, high = _check_value_range(value_range)
        check_writable_file(path)
        g = self[scene].detach().to(device="cpu", dtype=torch.float64)
        count = g.num_gaussians
        zeros = np.zeros(count, dtype=np.float32)

        def f32(values: Tensor) -> np.ndarray:
            return values.numpy().astype(np.float32)

        means, scales = g.means[0], g.scales[0]
        quats = g.quats[0] / torch.linalg.vector_norm(g.quats[0], dim=-1, keepdim=True)
        opacity_logits = torch.logit(g.opacities[0]).clamp(-_LOGIT_LIMIT, _LOGIT_LIMIT)
        columns: dict[str, np.ndarray] = {}
        for i, axis in enumerate("xyz"):
            columns[axis] = f32(means[:, i])
        for axis in "xyz":
            columns[f"n{axis}"] = zeros
        rgb = g.features[0].shape[-1] == 3
        colours = _colours_in_unit_range(g.features[0], low, high, scene) if rgb else None
        for i in range(3):
            columns[f"f_dc_{i}"] = zeros if colours is None else f32((colours[:, i] - 0.5) / SH_C0)
        for i in range(PLY_REST_COEFFS):
            columns[f"f_rest_{i}"] = zeros
        columns["opacity"] = f32(opacity_logits)
        for i in range(3):
            columns[f"scale_{i}"] = f32(torch.log(scales[:, i]))
        for i in range(4):
            columns[f"rot_{i}"] = f32(quats[:, i])
        if not rgb:
            for i in range(g.feature_dim):
                columns[f"feature_{i}"] = f32(g.features[0][:, i])
        if g.levels is not None:
            columns["level"] = f32(g.levels.double())
        path = Path(path)
        _ply.write_vertices(path, columns)
        return path

    def save_splat(
        self,
        path: str | os.PathLike[str],
        scene: int = 0,
        *,
        value_range: tuple[float, float] = (0.0, 1.0),
    ) -> Path:
        """Writes one scene as a ``.splat`` file, the compact format of web splat viewers.

        32 bytes per Gaussian (antimatter15's layout, read by common WebGL/WebGPU splat viewers):
        the centre and the per-axis standard deviations as float32, the colour
        ``rgb = (features - low) / (high - low)`` and the opacity as bytes ``round(255 x)``, and
        the normalised ``wxyz`` quaternion as bytes ``round(128 q + 128)``; records sorted by
        decreasing ``sx sy sz * opacity``, as viewers expect. Colours and rotations are
        quantised (a colour to 1/255, a quaternion component to 1/128); centres and scales are
        exact in float32.

        Args:
            path: destination file.
            scene: which scene of the batch to write.
            value_range: ``(low, high)``, the range of the RGB features, mapped to [0, 1].

        Returns:
            The path written.

        Raises:
            ValueError: for features that are not RGB (``F != 3``) or lie outside
                ``value_range`` (nothing is written).
            IndexError: for a ``scene`` outside the batch.
            OSError: if ``path`` cannot be written (checked first, naming it).
        """
        self._check_scene(scene)
        if self.feature_dim != 3:
            raise ValueError(
                f"a .splat file stores RGB colours: `features` must have 3 channels, got "
                f"{self.feature_dim} (render them to colours first, or use save_ply)"
            )
        low, high = _check_value_range(value_range)
        check_writable_file(path)
        g = self[scene].detach().to(device="cpu", dtype=torch.float64)
        colours = _colours_in_unit_range(g.features[0], low, high, scene)
        data = _splat_file.encode_splat(
            g.means[0].numpy(), g.scales[0].numpy(), g.quats[0].numpy(), colours.numpy(),
            g.opacities[0].numpy(),
        )  # fmt: skip
        path = Path(path)
        _splat_file.write_splat(path, data)
        return path

    @classmethod
    def load_splat(
        cls,
        path: str | os.PathLike[str],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        value_range: tuple[float, float] = (0.0, 1.0),
    ) -> "Gaussians":
        """Reads a ``.splat`` file (as :meth:`save_splat` writes it) as one scene.

        Colours ``rgb`` in [0, 1] become features ``low + (high - low) rgb``; quaternions are
        decoded as ``(byte - 128) / 128`` (not renormalised; every consumer normalises them).

        Returns:
            ``Gaussians`` with ``B = 1``, in the file's (importance) order.

        Raises:
            ValueError: for a file that is not a valid ``.splat`` file (naming it).
        """
        check_float_dtype("dtype", dtype)
        low, high = _check_value_range(value_range)
        arrays = _splat_file.read_splat(Path(path))
        to = {"dtype": dtype, "device": device}

        def tensor(name: str) -> Tensor:
            return torch.from_numpy(arrays[name])[None].to(**to)

        features = low + (high - low) * torch.from_numpy(arrays["rgb"])
        return cls(tensor("means"), tensor("quats"), tensor("scales"), tensor("alpha"),
                   features[None].to(**to))  # fmt: skip

    @classmethod
    def load_ply(
        cls,
        path: str | os.PathLike[str],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        value_range: tuple[float, float] = (0.0, 1.0),
    ) -> "Gaussians":
        """Reads a 3D Gaussian Splatting PLY (as :meth:`save_ply` writes it) as one scene.

        ``feature_*`` properties, when present, become the features; otherwise the SH DC term gives
        RGB features: the colour ``rgb = 0.5 + SH_C0 * f_dc`` mapped from [0, 1] to
        ``value_range = (low, high)``, ``low + (high - low) rgb`` (the inverse of
        :meth:`save_ply`'s mapping; the default (0, 1) keeps the colours). Higher SH coefficients
        (``f_rest_*``) are ignored.

        Args:
            path: the PLY file.
            dtype: dtype of the result.
            device: device of the result.
            value_range: ``(low, high)``, the range to map colours (from ``f_dc``) to.

        Returns:
            ``Gaussians`` with ``B = 1`` (and ``levels`` if the file has a ``level`` property).

        Raises:
            ValueError: for a file that is not a valid 3DGS PLY, or whose values are not valid
                Gaussians (the message names the file).
            TypeError: for a non-floating ``dtype``.
        """
        check_float_dtype("dtype", dtype)
        low, high = _check_value_range(value_range)
        columns = _ply.read_vertices(Path(path))
        required = ["x", "y", "z", "opacity", *(f"scale_{i}" for i in range(3))]
        required += [f"rot_{i}" for i in range(4)]
        missing = [name for name in required if name not in columns]
        if missing:
            raise ValueError(f"{path} lacks the 3DGS properties {missing}")

        def stack(names: Sequence[str]) -> Tensor:
            return torch.from_numpy(
                np.stack([columns[n] for n in names], axis=-1).astype(np.float64)
            )

        feature_names = sorted(
            (n for n in columns if n.startswith("feature_")), key=lambda n: int(n.split("_")[1])
        )
        if feature_names:
            features = stack(feature_names)
        else:
            dc_names = [f"f_dc_{i}" for i in range(3)]
            if any(n not in columns for n in dc_names):
                raise ValueError(f"{path} has neither `feature_*` nor `f_dc_0..2` properties")
            features = low + (high - low) * (0.5 + SH_C0 * stack(dc_names))
        means = stack(["x", "y", "z"])
        quats = stack([f"rot_{i}" for i in range(4)])
        scales = torch.exp(stack([f"scale_{i}" for i in range(3)]))
        opacities = torch.sigmoid(torch.from_numpy(columns["opacity"].astype(np.float64)))
        levels = None
        if "level" in columns:
            levels = torch.from_numpy(columns["level"]).round().to(torch.int64)
        to = {"dtype": dtype, "device": device}
        try:
            return cls(
                means[None].to(**to),
                quats[None].to(**to),
                scales[None].to(**to),
                opacities[None].to(**to),
                features[None].to(**to),
                None if levels is None else levels.to(device=device),
            )
        except ValueError as error:
            raise ValueError(f"{path} does not hold valid Gaussians: {error}") from None
