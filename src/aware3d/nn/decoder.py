"""GSGAN's coarse-to-fine Gaussian decoder: style codes ``ws`` -> a hierarchy of 3D Gaussians.

Structure (GSGAN's generator):

* **Root.** A fixed node, the foreground box: centre at the origin, sigma ``box_half_extent`` on
  every axis, identity rotation. The level-0 **anchors** are its children: their positions lie in
  ``(-e, e)^3`` (``e`` the box half extent) and their sigma is at most ``level0_max_scale``
  (GSGAN: ``1 / sqrt(N0)`` of its ``[-1, 1]`` box), independent of the box size.
* **Every level** emits, per token, an **anchor** (never rendered; the parent of the next level)
  and a rendered **Gaussian**. The Gaussians of level 0 are children of their own level-0 anchor
  (one each, no shrink); anchors and Gaussians of level ``l > 0`` are children of the level
  ``l - 1`` anchors (``K`` each). All are made by :func:`aware3d.functional.hierarchy.densify`, so
  every rendered Gaussian lies in its anchor's one-sigma box and is never larger than it.
* **Scale schedule.** Children shrink by ``rho`` per level while their parent is larger than one
  pixel ``tau``; by default ``rho = (level0_max_scale / tau)^(1 / (L - 1))``, so the finest level's
  cap is one pixel (GSGAN's rule). ``level_max_scales`` holds the cap of every level.
* **Network.** ``blocks="gsgan"`` (default) is GSGAN's released network (learnable points with a
  positional encoding, gated transformer blocks with AdaIN over tokens, EdgeConv at finer levels,
  separate heads); ``blocks="window"`` is a simpler one (free tokens, AdaLN transformer blocks in
  windows of descendants, one modulated head per level). See :mod:`aware3d.nn._decoder_trunks`.

**Pixel size.** ``tau = camera_distance / (focal * resolution)``, the world-space footprint of one
pixel at the scene centre for EG3D's FFHQ camera by default (distance 2.7, normalised focal
4.2647): about ``2.5e-3`` at 256 px and ``1.2e-3`` at 512 px. Pass ``pixel_size`` to override it.

**GSGAN's world in ours.** GSGAN's released camera passes its field of view 12.96 to ``tan`` as
radians: its effective normalised focal is ``1 / (2 tan(6.48)) = 2.508``
(:data:`GSGAN_EFFECTIVE_FOCAL`), not EG3D's 4.2647. Our cameras keep EG3D's true intrinsics, so a
length of GSGAN's world is ``2.508 / 4.2647 = 0.588`` of ours (:data:`GSGAN_WORLD_SCALE`; both
cameras sit 2.7 from the centre, so the same object covers the same pixels). GSGAN's box
``[-1, 1]^3`` is ``[-0.588, 0.588]^3`` here and its level-0 cap ``1/16`` (256 tokens) is 0.0367,
14.9 px at 256 px.
"""

import math
from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._precision import autocast_enabled, autocast_off
from aware3d._validation import (
    check_bool,
    check_choice,
    check_memory,
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
from aware3d.cameras import FFHQ_FOCAL, FFHQ_RADIUS
from aware3d.functional.hierarchy import (
    GaussianHierarchy,
    HierarchyNodes,
    _densify,
    _nodes_to_gaussians,
    level_sizes,
)
from aware3d.gaussians import Gaussians
from aware3d.nn._decoder_trunks import (
    GEOMETRY_CHANNELS,
    GSGANTrunk,
    WindowTrunk,
    softplus_inverse,
    window_initial_offsets,
)

__all__ = [
    "GSGAN_EFFECTIVE_FOCAL",
    "GSGAN_WORLD_SCALE",
    "FlatGaussianDecoder",
    "HierarchicalGaussianDecoder",
    "gsgan_decoder_256",
    "gsgan_decoder_512",
    "small_decoder",
]

#: GSGAN's effective normalised focal length: ``1 / (2 tan(12.96 / 2))`` with the angle in radians.
GSGAN_EFFECTIVE_FOCAL = 1.0 / (2.0 * math.tan(12.96 / 2.0))
#: One length unit of GSGAN's world in ours (EG3D's true FFHQ focal): ``2.508 / 4.2647``.
GSGAN_WORLD_SCALE = GSGAN_EFFECTIVE_FOCAL / FFHQ_FOCAL
#: ``max(0, C0 c + 0.5)``: the degree-0 spherical-harmonic colour of GSGAN's rasterizer.
SH_C0 = 0.28209479177387814
#: GSGAN's per-level token widths (levels 0, 1, 2, then 128 for every finer level).
GSGAN_WIDTHS = (512, 512, 256)
#: GSGAN's initial opacity of every node.
GSGAN_INITIAL_OPACITY = 0.1


def _gsgan_widths(num_levels: int) -> tuple[int, ...]:
    return tuple([*GSGAN_WIDTHS, *([128] * num_levels)][:num_levels])


def _as_dtype(nodes: HierarchyNodes, dtype: torch.dtype) -> HierarchyNodes:
    """``nodes`` with every field in ``dtype`` (the heads' outputs are bfloat16 under autocast)."""
    return HierarchyNodes(*(field.to(dtype) for field in nodes))


class _TokenDecoder(nn.Module):
    """The decoder shared by the hierarchical and the flat form (see the subclasses).

    Level ``l`` has ``num_initial * children**l`` rendered Gaussians. The output concatenates all
    levels (level 0 first) and carries ``levels``. Subclasses decide whose child each Gaussian
    is. The arguments are documented on :class:`HierarchicalGaussianDecoder`.
    """

    gaussian_levels: Tensor

    def __init__(
        self,
        w_dim: int,
        num_levels: int,
        num_initial: int = 256,
        children: int = 4,
        widths: Sequence[int] | None = None,
        feature_dim: int = 3,
        rho: float | None = None,
        resolution: int = 256,
        *,
        blocks: Literal["gsgan", "window"] = "gsgan",
        depths: Sequence[int] | None = None,
        head_dim: int = 64,
        mlp_ratio: int | None = None,
        knn: int | None = None,
        styled_levels: int = 2,
        grid_size: int = 512,
        attention_window: int | None = None,
        box_half_extent: float = GSGAN_WORLD_SCALE,
        level0_max_scale: float | None = None,
        focal: float = FFHQ_FOCAL,
        camera_distance: float = FFHQ_RADIUS,
        pixel_size: float | None = None,
        min_log_scale: float = -8.0,
        initial_radius: float | None = None,
        initial_opacity: float | None = None,
        camera_conditioning: bool = False,
        color_activation: Literal["identity", "sh0"] = "identity",
        accumulate_rotations: bool = False,
        clamp_positions: bool = False,
        level0_gaussians: Literal["anchor", "released"] = "anchor",
        point_encoding: Literal["interpolate", "released"] = "interpolate",
    ) -> None:
        super().__init__()
        self.w_dim = check_positive_int("w_dim", w_dim)
        self.num_levels = check_positive_int("num_levels", num_levels)
        self.num_initial = check_positive_int("num_initial", num_initial)
        self.children_count = check_positive_int("children", children)
        self.feature_dim = check_positive_int("feature_dim", feature_dim)
        self.resolution = check_positive_int("resolution", resolution)
        check_choice("blocks", blocks, ("gsgan", "window"))
        self.blocks = blocks
        self.box_half_extent = check_positive_number("box_half_extent", box_half_extent)
        self.min_log_scale = check_number("min_log_scale", min_log_scale)
        if pixel_size is None:
            focal = check_positive_number("focal", focal)
            camera_distance = check_positive_number("camera_distance", camera_distance)
            pixel_size = camera_distance / (focal * resolution)
        self.pixel_size = check_positive_number("pixel_size", pixel_size)
        if level0_max_scale is None:
            level0_max_scale = GSGAN_WORLD_SCALE / math.sqrt(num_initial)
        self.level0_max_scale = check_positive_number("level0_max_scale", level0_max_scale)
        if math.log(self.level0_max_scale) < self.min_log_scale:
            raise ValueError(
                f"`level0_max_scale` ({level0_max_scale!r}) is below exp(min_log_scale) "
                f"({math.exp(self.min_log_scale):.3g})"
            )
        if rho is None:
            steps = num_levels - 1
            ratio = self.level0_max_scale / self.pixel_size
            rho = ratio ** (1.0 / steps) if steps and ratio > 1.0 else 1.0
        self.rho = check_positive_number("rho", rho)
        if self.rho < 1:
            raise ValueError(f"`rho` must be >= 1, got {rho!r}")
        self.camera_conditioning = check_bool("camera_conditioning", camera_conditioning)
        check_choice("color_activation", color_activation, ("identity", "sh0"))
        self.color_activation = color_activation
        self.accumulate_rotations = check_bool("accumulate_rotations", accumulate_rotations)
        self.clamp_positions = check_bool("clamp_positions", clamp_positions)
        check_choice("level0_gaussians", level0_gaussians, ("anchor", "released"))
        check_choice("point_encoding", point_encoding, ("interpolate", "released"))
        self.level0_gaussians = level0_gaussians
        self.point_encoding = point_encoding
        gsgan = self.blocks == "gsgan"
        if level0_gaussians == "released" and not self._has_anchors:
            raise ValueError(
                "`level0_gaussians='released'` needs anchors (HierarchicalGaussianDecoder)"
            )
        if point_encoding == "released" and not gsgan:
            raise ValueError("`point_encoding='released'` needs blocks='gsgan'")
        if initial_opacity is None:
            initial_opacity = GSGAN_INITIAL_OPACITY if gsgan else 0.5
        initial_opacity = check_positive_number("initial_opacity", initial_opacity)
        if initial_opacity >= 1:
            raise ValueError(f"`initial_opacity` must be in (0, 1), got {initial_opacity!r}")
        self.initial_opacity_logit = math.log(initial_opacity / (1 - initial_opacity))

        widths = _gsgan_widths(num_levels) if widths is None else tuple(widths)
        if depths is None:
            depths = [6 if gsgan else 2] + [1] * (num_levels - 1)
        depths = tuple(depths)
        for name, values in (("widths", widths), ("depths", depths)):
            if len(values) != num_levels:
                raise ValueError(f"`{name}` needs {num_levels} entries, got {len(values)}")
        for level, width in enumerate(widths):
            check_positive_int(f"widths[{level}]", width)
        for level, depth in enumerate(depths):
            check_nonnegative_int(f"depths[{level}]", depth)
        check_positive_int("head_dim", head_dim)
        mlp_ratio = check_positive_int(
            "mlp_ratio", (4 if gsgan else 2) if mlp_ratio is None else mlp_ratio
        )
        knn = check_nonnegative_int("knn", (16 if gsgan else 0) if knn is None else knn)
        self.knn = knn
        self.widths = widths
        self.depths = depths
        self.level_sizes = tuple(level_sizes(num_initial, children, num_levels))
        self.num_gaussians = sum(self.level_sizes)
        self.level_max_scales = self._level_caps()
        levels = torch.repeat_interleave(torch.arange(num_levels), torch.tensor(self.level_sizes))
        self.register_buffer("gaussian_levels", levels, persistent=False)

        self.trunk: GSGANTrunk | WindowTrunk
        if gsgan:
            self._check_gsgan_options(depths, knn, styled_levels, attention_window, initial_radius)
            self.trunk = GSGANTrunk(
                w_dim, widths, depths[0], num_initial, children, feature_dim,
                head_dim=head_dim, mlp_ratio=mlp_ratio, knn=knn,
                styled_levels=styled_levels, grid_size=check_positive_int("grid_size", grid_size),
                camera_conditioning=self.camera_conditioning, anchors=self._has_anchors,
                grid_read=point_encoding,
            )  # fmt: skip
        else:
            if self.camera_conditioning:
                raise ValueError("`camera_conditioning` needs blocks='gsgan'")
            self.trunk = WindowTrunk(
                w_dim, widths, depths, num_initial, children, feature_dim,
                head_dim=head_dim, mlp_ratio=mlp_ratio,
                windows=self._windows(attention_window), knn=knn,
            )  # fmt: skip
            self._initialise_window_heads(initial_radius)
        self.num_ws = self.trunk.num_ws
        check_memory(
            f"a decoder of {self.num_gaussians:,} Gaussians (one scene's forward pass)",
            self.activation_bytes(1, torch.float32),
            torch.device("cpu"),
            hint="use fewer levels, fewer initial tokens or fewer children",
        )

    @property
    def _has_anchors(self) -> bool:
        return True

    @property
    def _dtype(self) -> torch.dtype:
        """The parameters' dtype: the hierarchy's geometry and the output Gaussians have it."""
        return next(self.parameters()).dtype

    def _level_caps(self) -> tuple[float, ...]:
        """The largest sigma a node of each level can have (see :func:`densify`)."""
        caps = [self.level0_max_scale]
        for _ in range(1, self.num_levels):
            cap = caps[-1]  # a parent above tau shrinks its children by rho, but not below tau
            caps.append(max(cap / self.rho, self.pixel_size) if cap > self.pixel_size else cap)
        return tuple(caps)

    def _check_gsgan_options(
        self,
        depths: tuple[int, ...],
        knn: int,
        styled_levels: int,
        attention_window: int | None,
        initial_radius: float | None,
    ) -> None:
        if any(depth != 1 for depth in depths[1:]):
            raise ValueError(
                "blocks='gsgan' has one EdgeConv / upsample / MLP stage per level > 0: "
                f"`depths[1:]` must be all 1, got {list(depths[1:])}"
            )
        check_positive_int("depths[0]", depths[0])
        check_positive_int("knn", knn)
        check_positive_int("styled_levels", styled_levels)
        for name, value in (("attention_window", attention_window),
                            ("initial_radius", initial_radius)):  # fmt: skip
            if value is not None:
                raise ValueError(f"`{name}` is an option of blocks='window' only")

    def _windows(self, attention_window: int | None) -> tuple[int, ...]:
        children = self.children_count
        if attention_window is None:
            attention_window = children**2
        check_positive_int("attention_window", attention_window)
        power = round(math.log(attention_window, children)) if children > 1 else 0
        if children > 1 and children**power != attention_window:
            raise ValueError(
                f"`attention_window` must be a power of `children` ({children}), "
                f"got {attention_window!r}"
            )
        return tuple(
            size if level == 0 else min(size, children ** min(level, power))
            for level, size in enumerate(self.level_sizes)
        )

    def _initialise_window_heads(self, initial_radius: float | None) -> None:
        """Level-0 anchors spread in a ball, sigma about half their spacing (window trunk)."""
        assert isinstance(self.trunk, WindowTrunk)
        box = self.box_half_extent
        radius = 0.5 * box if initial_radius is None else initial_radius
        radius = check_positive_number("initial_radius", radius)
        if radius >= box:
            raise ValueError(
                f"`initial_radius` ({radius!r}) must be smaller than `box_half_extent` ({box!r})"
            )
        positions, child_offsets = window_initial_offsets(
            self.num_initial, self.children_count, radius, box
        )
        spacing = (4 / 3 * math.pi * radius**3 / self.num_initial) ** (1 / 3)
        target = min(0.5 * spacing, 0.9 * self.level0_max_scale)
        bias = -softplus_inverse(math.log(self.level0_max_scale / target))
        self.trunk.initialise(positions, bias, child_offsets)

    def activation_bytes(self, batch: int, dtype: torch.dtype) -> int:
        """An estimate of the memory a forward and backward pass of ``batch`` scenes needs.

        Per level: every token's activations in the trunk's blocks, the heads' raw outputs and
        the nodes (anchors and Gaussians) of that level, per scene; plus one gradient per
        parameter. For ``gsgan_decoder_256(num_levels=L)`` at batch 1 it is 6% to 22% above the peak
        measured by ``benchmarks/bench_generator.py`` (``L = 3..6``, CPU).
        """
        itemsize = torch.empty((), dtype=dtype).element_size()
        raw_dim = GEOMETRY_CHANNELS + self.feature_dim
        floats = sum(
            self.trunk.activation_floats(level, size, self.widths, self.knn) + size * 8 * raw_dim
            for level, size in enumerate(self.level_sizes)
        )
        gradients = sum(p.numel() for p in self.parameters())
        return (batch * floats + gradients) * itemsize

    def extra_repr(self) -> str:
        """Summary shown by ``repr``."""
        return (
            f"blocks={self.blocks!r}, w_dim={self.w_dim}, num_levels={self.num_levels}, "
            f"num_initial={self.num_initial}, children={self.children_count}, "
            f"num_gaussians={self.num_gaussians}, num_ws={self.num_ws}, rho={self.rho:.4g}, "
            f"pixel_size={self.pixel_size:.4g}, level0_max_scale={self.level0_max_scale:.4g}"
            + (
                f", level0_gaussians={self.level0_gaussians!r}"
                if self.level0_gaussians != "anchor"
                else ""
            )
            + (
                f", point_encoding={self.point_encoding!r}"
                if self.point_encoding != "interpolate"
                else ""
            )
        )

    def activate_colours(self, features: Float[Tensor, "*batch F"]) -> Float[Tensor, "*batch F"]:
        """The colour a Gaussian with raw features ``c`` renders, by ``color_activation``.

        ``"sh0"``: ``max(0, C0 c + 0.5)`` with ``C0 = 0.28209479177387814`` (:data:`SH_C0`), the
        degree-0 spherical-harmonic colour of GSGAN's rasterizer, in ``[0, inf)``; ``"identity"``:
        ``c`` itself (the same tensor). :meth:`forward` applies it to the decoded Gaussians;
        :class:`~aware3d.models.GSGANGenerator` applies it to its background Gaussians too.
        """
        if self.color_activation == "sh0":
            return (SH_C0 * features + 0.5).clamp_min(0.0)
        return features

    def root(self, batch: int, dtype: torch.dtype, device: torch.device) -> HierarchyNodes:
        """The fixed root node (the foreground box) for ``batch`` scenes, ``N = 1``."""
        rotation = torch.zeros(batch, 1, 4, dtype=dtype, device=device)
        rotation[..., 0] = 1
        return HierarchyNodes(
            torch.zeros(batch, 1, 3, dtype=dtype, device=device),
            torch.full((batch, 1, 3), math.log(self.box_half_extent), dtype=dtype, device=device),
            rotation,
            torch.full((batch, 1), self.initial_opacity_logit, dtype=dtype, device=device),
            torch.zeros(batch, 1, self.feature_dim, dtype=dtype, device=device),
        )

    def _check_ws(self, ws: Tensor, camera_forward: Tensor | None) -> None:
        if not isinstance(ws, Tensor) or not ws.is_floating_point():
            raise TypeError(
                f"`ws` must be a floating-point tensor [B, {self.num_ws}, {self.w_dim}]"
            )
        check_shape("ws", ws, ("B", self.num_ws, self.w_dim))
        if ws.shape[0] == 0:
            raise ValueError("`ws` must hold at least one scene (B >= 1)")
        check_module_dtype("ws", ws, self)
        check_module_device("ws", ws, self)
        check_memory(
            f"decoding {ws.shape[0]} scenes of {self.num_gaussians:,} Gaussians",
            self.activation_bytes(ws.shape[0], ws.dtype),
            ws.device,
            hint="decode fewer scenes per call",
        )
        if self.camera_conditioning:
            if camera_forward is None:
                raise ValueError(
                    "`camera_forward` [B, 3] is required with camera_conditioning=True "
                    "(the cameras' forward vectors, `Cameras.forward_directions`)"
                )
            if not isinstance(camera_forward, Tensor) or not (
                camera_forward.dtype == ws.dtype
                or (camera_forward.is_floating_point() and autocast_enabled(ws.device))
            ):
                raise TypeError(f"`camera_forward` must be a tensor of dtype {ws.dtype}")
            check_shape("camera_forward", camera_forward, (ws.shape[0], 3))
            check_module_device("camera_forward", camera_forward, self)
        elif camera_forward is not None:
            raise ValueError("`camera_forward` is only used with camera_conditioning=True")
        if value_checks_enabled():
            check_values(finite_checks(ws=ws, camera_forward=camera_forward))

    def _child(
        self, parent: HierarchyNodes, raw: HierarchyNodes, *, rho: float | None = None,
        log_scale_cap: float | None = None, min_log_scale: float | None = None,
    ) -> HierarchyNodes:  # fmt: skip
        floor = self.min_log_scale if min_log_scale is None else min_log_scale
        return _densify(
            parent, raw, self.rho if rho is None else rho, self.pixel_size, floor,
            parent_is_unit=not self.accumulate_rotations, log_scale_cap=log_scale_cap,
            normalize_rotation=not self.accumulate_rotations,
        )  # fmt: skip

    def _level0_anchors(self, root: HierarchyNodes, raw: HierarchyNodes) -> HierarchyNodes:
        """Children of the root box with sigma at most ``level0_max_scale``.

        With ``level0_gaussians="released"`` their log-scales have no floor (GSGAN's released code
        clamps log-scales from level 1 on only).
        """
        floor = -math.inf if self.level0_gaussians == "released" else None
        cap = math.log(self.level0_max_scale)
        return self._child(root, raw, log_scale_cap=cap, min_log_scale=floor)

    def forward_hierarchy(
        self,
        ws: Float[Tensor, "B _ D"],
        camera_forward: Float[Tensor, "B 3"] | None = None,
    ) -> GaussianHierarchy:
        """Decodes ``ws`` into Gaussians and returns the whole hierarchy (for visualisation).

        Args:
            ws: style codes ``[B, num_ws, w_dim]``.
            camera_forward: ``[B, 3]`` unit forward vectors of the rendering cameras
                (:attr:`~aware3d.Cameras.forward_directions`), only with
                ``camera_conditioning=True``.

        Returns:
            A :class:`~aware3d.functional.hierarchy.GaussianHierarchy`: the rendered Gaussians
            (with ``levels``), per-level nodes, anchors and parent indices, and the root.

        Raises:
            ValueError: if ``ws`` is not ``[B, num_ws, w_dim]`` (or ``camera_forward`` is
                missing, extra or misshapen).
        """
        self._check_ws(ws, camera_forward)
        # under torch.autocast the codes may be bfloat16; the trunk's products run in autocast's
        # dtype and the hierarchy's geometry in the parameters' dtype with autocast off
        dtype = self._dtype
        ws = ws.to(dtype)
        if camera_forward is not None:
            camera_forward = camera_forward.to(dtype)
        batch = ws.shape[0]
        root = self.root(batch, dtype, ws.device)
        camera = self.trunk.embed_camera(camera_forward)
        nodes: list[HierarchyNodes] = []
        anchors: list[HierarchyNodes] = []
        parents: list[Tensor] = []
        anchor = root
        tokens = self.trunk.start(batch, dtype, ws)
        for level in range(self.num_levels):
            if level > 0:
                tokens = self.trunk.advance(level, tokens, ws, anchor.position)
            raw_anchor, raw_gaussian = self.trunk.heads(level, tokens, ws, camera)
            if raw_anchor is not None:
                raw_anchor = _as_dtype(raw_anchor, dtype)
            with autocast_off(ws.device):
                gaussian, next_anchor = self._level_nodes(
                    level, root, anchor, raw_anchor, _as_dtype(raw_gaussian, dtype)
                )
            nodes.append(gaussian)
            if next_anchor is not None:
                anchor = next_anchor
                anchors.append(anchor)
            parents.append(self._parent_index(level, self.level_sizes[level], ws.device))
        levels = self.gaussian_levels.to(ws.device).clone()
        with autocast_off(ws.device):
            merged = HierarchyNodes(
                *(torch.cat([getattr(n, f) for n in nodes], dim=1) for f in HierarchyNodes._fields)
            )
            gaussians = _nodes_to_gaussians(merged, levels)
            if self.clamp_positions or self.color_activation == "sh0":
                means = gaussians.means
                if self.clamp_positions:
                    means = means.clamp(-self.box_half_extent, self.box_half_extent)
                gaussians = Gaussians._trusted(
                    means, gaussians.quats, gaussians.scales, gaussians.opacities,
                    self.activate_colours(gaussians.features), levels,
                )  # fmt: skip
        return GaussianHierarchy(
            gaussians=gaussians,
            nodes=tuple(nodes),
            anchors=tuple(anchors),
            parents=tuple(parents),
            root=root,
        )

    def _level_nodes(
        self,
        level: int,
        root: HierarchyNodes,
        anchor: HierarchyNodes,
        raw_anchor: HierarchyNodes | None,
        raw_gaussian: HierarchyNodes,
    ) -> tuple[HierarchyNodes, HierarchyNodes | None]:
        """This level's rendered Gaussians and anchors (``None`` at the last level)."""
        raise NotImplementedError

    def _parent_index(self, level: int, count: int, device: torch.device) -> Tensor:
        """``[count]`` index of every Gaussian's parent (see ``GaussianHierarchy.parents``)."""
        raise NotImplementedError

    def forward(
        self,
        ws: Float[Tensor, "B _ D"],
        camera_forward: Float[Tensor, "B 3"] | None = None,
    ) -> Gaussians:
        """Decodes style codes into Gaussians.

        Args:
            ws: style codes ``[B, num_ws, w_dim]``.
            camera_forward: ``[B, 3]`` unit forward vectors of the rendering cameras, only with
                ``camera_conditioning=True``.

        Returns:
            ``Gaussians`` with ``B`` scenes of ``num_gaussians`` Gaussians, all levels
            concatenated (level 0 first) and ``levels`` set, every field in the decoder's
            parameters' dtype. Under ``torch.autocast`` the token network's products run in
            autocast's dtype (``ws`` and ``camera_forward`` may have any float dtype) and the
            hierarchy's geometry runs with autocast off.

        Raises:
            ValueError: if ``ws`` is not ``[B, num_ws, w_dim]`` with ``B >= 1``, has another
                dtype or device than the decoder, or (value checks) holds NaN or infinity.
            MemoryError: if decoding ``B`` scenes would need more memory than is available.
        """
        return self.forward_hierarchy(ws, camera_forward).gaussians


class HierarchicalGaussianDecoder(_TokenDecoder):
    """Style codes ``ws`` -> hierarchical 3D Gaussians, coarse to fine (GSGAN's generator).

    Level ``l`` has ``num_initial * children**l`` rendered Gaussians. Gaussian ``j`` of level 0 is
    the child of level-0 anchor ``j``; Gaussian (and anchor) ``j`` of level ``l > 0`` is a child of
    anchor ``j // children`` of level ``l - 1``; the level-0 anchors are children of the root box.
    The output concatenates all levels (level 0 first) and carries ``levels``.

    Args:
        w_dim: ``D``, width of the style codes.
        num_levels: ``L``, the number of levels.
        num_initial: ``N0``, tokens (and Gaussians) at level 0 (GSGAN: 256).
        children: ``K``, children per node (GSGAN: 4).
        widths: token width per level (``L`` entries); default GSGAN's 512, 512, 256, then 128.
        feature_dim: ``F``, feature channels per Gaussian (3 for RGB).
        rho: scale shrink per level while a parent is larger than a pixel; default
            ``(level0_max_scale / pixel_size)^(1 / (L - 1))``, so the finest level's cap is one
            pixel (GSGAN's rule; 1 when ``L = 1``).
        resolution: image resolution used for the pixel size ``tau``.
        blocks: the token network: ``"gsgan"`` (GSGAN's released network) or ``"window"`` (free
            tokens and windowed AdaLN transformer blocks, one modulated head per level).
        depths: transformer blocks per level (``L`` entries). ``"gsgan"``: ``depths[0]`` gated
            transformer blocks at level 0 (default 6) and 1 for every finer level (one EdgeConv,
            upsample and MLP stage); ``"window"``: default 2 at level 0, 1 after.
        head_dim: channels per attention head (GSGAN: 64, 8 heads at width 512).
        mlp_ratio: hidden width of the MLPs relative to the token width (default 4 for
            ``"gsgan"``, 2 for ``"window"``).
        knn: ``"gsgan"``: neighbours of the feature-space EdgeConv (default 16); ``"window"``: if
            > 0 (default 0), a neighbour-attention block at every level > 0 over the children of
            the ``knn`` nearest parents (by anchor position). Both searches are exact,
            ``O(N^2)`` work per level.
        styled_levels: ``"gsgan"``: levels ``1..styled_levels`` use ``w`` (feature-space EdgeConv
            and a styled MLP, two style vectors each); finer levels use a sibling EdgeConv and an
            unstyled MLP (GSGAN: 2).
        grid_size: ``"gsgan"``: cells per axis of the learned positional-encoding grid (512).
        attention_window: ``"window"``: tokens per attention window at levels > 0, a power of
            ``children``; default ``children**2``.
        box_half_extent: ``e``: level-0 anchors lie in ``(-e, e)^3``; default GSGAN's ``[-1, 1]``
            box in our units, :data:`GSGAN_WORLD_SCALE` (0.588).
        level0_max_scale: the largest sigma of a level-0 anchor; default GSGAN's
            ``1 / sqrt(N0)`` in our units, ``GSGAN_WORLD_SCALE / sqrt(num_initial)``.
        focal: normalised focal length of the camera model for ``tau``.
        camera_distance: distance of the camera model from the scene centre for ``tau``.
        pixel_size: ``tau`` itself, overriding ``resolution``, ``focal``, ``camera_distance``.
        min_log_scale: floor of every log-scale.
        initial_radius: ``"window"``: level-0 anchors start spread uniformly in a ball of this
            radius (default ``0.5 * box_half_extent``), with sigma about half their spacing.
        initial_opacity: opacity of the root, which every node refines (default GSGAN's 0.1 for
            ``"gsgan"``, 0.5 for ``"window"``).
        camera_conditioning: ``"gsgan"``: append the embedding ``lrelu(E f)`` (32 channels) of
            the camera's forward vector ``f`` to the input of every Gaussian feature head, as
            GSGAN does. ``forward`` then needs ``camera_forward``. It lets colour depend on the
            view (a cost in 3D consistency).
        color_activation: ``"identity"`` or ``"sh0"``: rendered features
            ``max(0, 0.2821 c + 0.5)``, the degree-0 spherical-harmonic colour of GSGAN's
            rasterizer (RGB around 0.5; GSGAN maps the image to ``2 x - 1`` after rendering).
        accumulate_rotations: store ``q = q_p + dq`` without normalising (GSGAN's released
            rule); rotations are normalised where they are used. Default: ``q`` is normalised.
        clamp_positions: clamp rendered positions to the box ``[-e, e]^3`` (GSGAN's final clamp).
        level0_gaussians: ``"anchor"`` (default): a level-0 Gaussian refines every attribute of
            its own level-0 anchor. ``"released"``: as GSGAN's released code, only its position
            does (inside the anchor's one-sigma box); its log-scale (capped at
            ``level0_max_scale``), rotation, opacity and features refine the root's initial
            values, as the anchors do, and level-0 log-scales (anchors and Gaussians) have no
            ``min_log_scale`` floor.
        point_encoding: ``"interpolate"`` (default): the positional grid is read by linear
            interpolation along its ``grid_size`` cells. ``"released"``: as GSGAN's released code
            reads it, the middle of the grid scaled by ``1 - |p| / 2`` (``blocks="gsgan"`` only).

    Attributes:
        num_ws: the number of style vectors ``forward`` takes.
        num_gaussians: ``N``, rendered Gaussians per scene.
        level_sizes: ``[N0, N0 K, ...]``.
        level_max_scales: the largest sigma a node of each level can have (world units); divide
            by ``pixel_size`` for pixels.
        pixel_size: ``tau``.
        rho: the shrink per level.

    Raises:
        ValueError: for invalid arguments.
        MemoryError: if one scene's forward pass would need more memory than is available.
    """

    def _level_nodes(
        self,
        level: int,
        root: HierarchyNodes,
        anchor: HierarchyNodes,
        raw_anchor: HierarchyNodes | None,
        raw_gaussian: HierarchyNodes,
    ) -> tuple[HierarchyNodes, HierarchyNodes | None]:
        if level == 0:
            assert raw_anchor is not None
            level_anchor = self._level0_anchors(root, raw_anchor)
            in_box = self._child(level_anchor, raw_gaussian, rho=1.0)
            if self.level0_gaussians == "anchor":
                return in_box, level_anchor
            # as released: only the position refines the anchor; the rest refines the root
            of_root = self._level0_anchors(root, raw_gaussian)
            return of_root._replace(position=in_box.position), level_anchor
        if raw_anchor is None or level == self.num_levels - 1:
            return self._child(anchor, raw_gaussian), None
        return self._child(anchor, raw_gaussian), self._child(anchor, raw_anchor)

    def _parent_index(self, level: int, count: int, device: torch.device) -> Tensor:
        index = torch.arange(count, device=device)
        return index // self.children_count if level > 0 else index


class FlatGaussianDecoder(_TokenDecoder):
    """The same network and Gaussian budget without the parent parameterisation (GSGAN's ablation).

    Every Gaussian is a child of the root box only: ``mu = e tanh(dmu)``,
    ``s = max(log(cap_l) - softplus(-ds), min_log_scale)`` with ``cap_l`` the level's entry of
    ``level_max_scales`` (the hierarchical decoder's caps), rotation, opacity and features free.
    There are no anchors; ``parents`` are all 0 (the root); with ``blocks="window"`` and ``knn``
    the neighbours are the root's position (no neighbour structure). GSGAN reports FID 95.97 for
    this naive form vs 6.59 with the hierarchy on FFHQ-256.

    Takes the same arguments as :class:`HierarchicalGaussianDecoder`.
    """

    @property
    def _has_anchors(self) -> bool:
        return False

    def _level_nodes(
        self,
        level: int,
        root: HierarchyNodes,
        anchor: HierarchyNodes,
        raw_anchor: HierarchyNodes | None,
        raw_gaussian: HierarchyNodes,
    ) -> tuple[HierarchyNodes, HierarchyNodes | None]:
        cap = math.log(self.level_max_scales[level])
        return self._child(root, raw_gaussian, log_scale_cap=cap), None

    def _parent_index(self, level: int, count: int, device: torch.device) -> Tensor:
        return torch.zeros(count, dtype=torch.int64, device=device)


def gsgan_decoder_256(w_dim: int = 512, **overrides: object) -> HierarchicalGaussianDecoder:
    """GSGAN's FFHQ-256 generator network: 5 levels of ``256 * 4**l``, 87,296 Gaussians.

    The released point generator's configuration: widths 512, 512, 256, 128, 128; 6 gated
    transformer blocks of width 512 with 8 heads; feature-space EdgeConv (16 neighbours) at levels
    1-2, sibling EdgeConv after; camera conditioning of the colour heads; SH0 colour; GSGAN's
    rotation accumulation and final position clamp. Box ``[-0.588, 0.588]^3`` (GSGAN's
    ``[-1, 1]``), ``tau`` at 256 px (0.00247), ``rho = 1.963``; the per-level caps on sigma are
    14.9, 7.6, 3.9, 2.0 and 1.0 px (GSGAN's released constants, ``rho = 2`` and a shrink threshold
    of ``1 / 256`` of its box: 14.9, 7.4, 3.7, 1.9 and 0.93 px).
    38,809,374 parameters: the released point generator's 38,827,308 less its 18,702 unused ones,
    plus the 768 coordinates of the 256 learnable input points.

    Args:
        w_dim: style width (GSGAN: 512).
        **overrides: any other :class:`HierarchicalGaussianDecoder` argument; ``num_levels``
            alone keeps GSGAN's widths and depths for that many levels.
    """
    return _gsgan_preset(w_dim, 5, 256, overrides)


def gsgan_decoder_512(w_dim: int = 512, **overrides: object) -> HierarchicalGaussianDecoder:
    """GSGAN's FFHQ-512 generator network: 6 levels of ``256 * 4**l``, 349,440 Gaussians.

    As :func:`gsgan_decoder_256` with a sixth level of width 128 and ``tau`` at 512 px (0.00124),
    ``rho = 1.970``: caps 29.7, 15.1, 7.7, 3.9, 2.0 and 1.0 px (GSGAN's: 29.7, 14.9, 7.4, 3.7, 1.9,
    0.93). 39,077,082 parameters: the released 39,095,016 less 18,702 unused, plus 768.

    Args:
        w_dim: style width (GSGAN: 512).
        **overrides: any other :class:`HierarchicalGaussianDecoder` argument; ``num_levels``
            alone keeps GSGAN's widths and depths for that many levels.
    """
    return _gsgan_preset(w_dim, 6, 512, overrides)


def _gsgan_preset(
    w_dim: int, num_levels: int, resolution: int, overrides: dict[str, object]
) -> HierarchicalGaussianDecoder:
    """GSGAN's configuration; overriding ``num_levels`` alone adapts widths and depths."""
    num_levels = overrides.get("num_levels", num_levels)  # type: ignore[assignment]
    check_positive_int("num_levels", num_levels)
    config: dict[str, object] = {
        "num_levels": num_levels,
        "num_initial": 256,
        "children": 4,
        "widths": _gsgan_widths(num_levels),
        "resolution": resolution,
        "blocks": "gsgan",
        "depths": (6,) + (1,) * (num_levels - 1),
        "head_dim": 64,
        "mlp_ratio": 4,
        "knn": 16,
        "styled_levels": 2,
        "grid_size": 512,
        "camera_conditioning": True,
        "color_activation": "sh0",
        "accumulate_rotations": True,
        "clamp_positions": True,
    }
    config.update(overrides)
    return HierarchicalGaussianDecoder(w_dim, **config)  # type: ignore[arg-type]


def small_decoder(w_dim: int = 64, **overrides: object) -> HierarchicalGaussianDecoder:
    """GSGAN's blocks at small widths, for a CPU: 4 levels of ``32 * 4**l``, 2,720 Gaussians.

    Token widths 64, 64, 32, then 16 for every further level (so ``num_levels`` can be overridden
    alone: ``small_decoder(64, num_levels=3)`` has 672 Gaussians); 2 gated transformer blocks with
    16-channel heads at level 0, 8 feature-space neighbours, a 64-cell positional grid; ``tau`` at
    64 px. Colour is not conditioned on the camera and features are not activated.

    Args:
        w_dim: style width.
        **overrides: any other :class:`HierarchicalGaussianDecoder` argument.
    """
    num_levels = overrides.get("num_levels", 4)
    check_positive_int("num_levels", num_levels)
    assert isinstance(num_levels, int)
    config: dict[str, object] = {
        "num_levels": num_levels,
        "num_initial": 32,
        "children": 4,
        "widths": tuple([64, 64, 32, *([16] * 16)][:num_levels]),
        "resolution": 64,
        "head_dim": 16,
    }
    if overrides.get("blocks", "gsgan") == "gsgan":
        config |= {"depths": (2,) + (1,) * (num_levels - 1), "knn": 8, "grid_size": 64}
    config.update(overrides)
    return HierarchicalGaussianDecoder(w_dim, **config)  # type: ignore[arg-type]
