"""GSGAN's coarse-to-fine Gaussian decoder: style codes ``ws`` -> a hierarchy of 3D Gaussians.

Structure (GSGAN's generator):

* **Root.** A fixed node, the foreground box: centre at the origin, sigma ``box_half_extent`` on
  every axis, identity rotation, opacity logit 0, zero features. Every level-0 node is its child,
  so level 0 lies inside ``[-box_half_extent, box_half_extent]^3`` and finer levels inside their
  ancestors' one-sigma boxes (a margin of about one level-0 sigma beyond the box).
* **Level 0.** ``num_initial`` learned tokens go through transformer blocks whose LayerNorms are
  modulated by ``w`` (AdaLN: ``LN(x) (1 + gamma(w)) + beta(w)``), full attention among the tokens.
* **Level l > 0.** Every token is upsampled into ``children`` tokens (child ``j`` of token ``p`` is
  token ``p K + j``), then transformer blocks attend within windows of the descendants of one
  ancestor (``attention_window`` tokens: siblings and cousins), then an MLP. The cost is linear in
  the number of tokens. Optionally (``knn > 0``) a neighbour-attention block first lets the
  children of a parent attend to the children of its ``knn`` nearest parents.
* **Heads.** At every level a modulated linear head emits, per token, raw values for an **anchor**
  (never rendered; the parent of the next level) and a **Gaussian** (rendered). Both are children
  of the previous level's anchor, made by :func:`aware3d.functional.hierarchy.densify`.

Each transformer block and each head takes its own style vector: ``ws[:, i]`` in the order level 0
blocks, level 0 head, level 1 (neighbour block if ``knn``,) blocks, level 1 head, ...;
``num_ws`` gives the count so a :class:`~aware3d.nn.mapping.MappingNetwork` can be sized to it.

**Pixel size.** The shrink threshold ``tau`` is the world-space footprint of one pixel at the
scene centre: ``tau = camera_distance / (focal * resolution)`` with EG3D's FFHQ camera by default
(distance 2.7, normalised focal 4.2647), about ``2.5e-3`` at 256 px and ``1.2e-3`` at 512 px.
Pass ``pixel_size`` to override it.

**Colour.** Features depend only on ``w``. ``view_dependent_features=True`` adds a
camera-direction term (as GSGAN's official code does); it costs 3D consistency (the same Gaussian
changes colour with the view), so it is off by default.
"""

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from aware3d._validation import (
    check_bool,
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
from aware3d.nn._decoder_blocks import (
    ModulatedTransformerBlock,
    NeighbourAttentionBlock,
    Upsample,
    knn_indices,
)
from aware3d.nn.layers import EqualizedLinear, ModulatedLinear

__all__ = [
    "FlatGaussianDecoder",
    "HierarchicalGaussianDecoder",
    "gsgan_256",
    "gsgan_512",
    "small_decoder",
]

#: Raw channels of one node before the features: dmu (3), ds (3), dq (4), do (1).
_GEOMETRY_CHANNELS = 11
#: Activations a forward pass keeps per token and channel of width, per transformer block
#: (normalisations, q/k/v, attention output, the MLP at ``mlp_ratio`` 2, residuals), for the
#: memory estimate; measured peaks stay below it.
_FLOATS_PER_BLOCK_CHANNEL = 16


def _softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class _TokenDecoder(nn.Module):
    """The token network shared by the hierarchical and the flat decoder (see the subclasses).

    Level ``l`` has ``num_initial * children**l`` rendered Gaussians. The output concatenates all
    levels (level 0 first) and carries ``levels``. Subclasses decide whose child each Gaussian
    is: :meth:`_gaussian_parent`, :meth:`_next_anchor`, :meth:`_neighbour_source`,
    :meth:`_parent_index`. The arguments are documented on :class:`HierarchicalGaussianDecoder`.
    """

    initial_position_raw: Tensor
    child_position_raw: Tensor
    gaussian_levels: Tensor

    def __init__(
        self,
        w_dim: int,
        num_levels: int,
        num_initial: int = 256,
        children: int = 4,
        widths: Sequence[int] | None = None,
        feature_dim: int = 3,
        rho: float = 2.0,
        resolution: int = 256,
        *,
        depths: Sequence[int] | None = None,
        head_dim: int = 32,
        mlp_ratio: int = 2,
        attention_window: int | None = None,
        box_half_extent: float = 0.5,
        focal: float = FFHQ_FOCAL,
        camera_distance: float = FFHQ_RADIUS,
        pixel_size: float | None = None,
        min_log_scale: float = -8.0,
        initial_radius: float | None = None,
        view_dependent_features: bool = False,
        knn: int = 0,
    ) -> None:
        super().__init__()
        self.w_dim = check_positive_int("w_dim", w_dim)
        self.num_levels = check_positive_int("num_levels", num_levels)
        self.num_initial = check_positive_int("num_initial", num_initial)
        self.children_count = check_positive_int("children", children)
        self.feature_dim = check_positive_int("feature_dim", feature_dim)
        self.rho = check_positive_number("rho", rho)
        if self.rho < 1:
            raise ValueError(f"`rho` must be >= 1, got {rho!r}")
        self.resolution = check_positive_int("resolution", resolution)
        self.box_half_extent = check_positive_number("box_half_extent", box_half_extent)
        self.min_log_scale = check_number("min_log_scale", min_log_scale)
        if pixel_size is None:
            focal = check_positive_number("focal", focal)
            camera_distance = check_positive_number("camera_distance", camera_distance)
            pixel_size = camera_distance / (focal * resolution)
        self.pixel_size = check_positive_number("pixel_size", pixel_size)
        self.view_dependent_features = check_bool(
            "view_dependent_features", view_dependent_features
        )
        self.knn = check_nonnegative_int("knn", knn)

        if widths is None:
            widths = [max(32, 256 // 2**level) for level in range(num_levels)]
        if depths is None:
            depths = [2] + [1] * (num_levels - 1)
        widths, depths = list(widths), list(depths)
        for name, values in (("widths", widths), ("depths", depths)):
            if len(values) != num_levels:
                raise ValueError(f"`{name}` needs {num_levels} entries, got {len(values)}")
        for level, width in enumerate(widths):
            check_positive_int(f"widths[{level}]", width)
        for level, depth in enumerate(depths):
            check_nonnegative_int(f"depths[{level}]", depth)
        check_positive_int("head_dim", head_dim)
        check_positive_int("mlp_ratio", mlp_ratio)
        if attention_window is None:
            attention_window = children**2
        check_positive_int("attention_window", attention_window)
        window_power = round(math.log(attention_window, children)) if children > 1 else 0
        if children > 1 and children**window_power != attention_window:
            raise ValueError(
                f"`attention_window` must be a power of `children` ({children}), "
                f"got {attention_window!r}"
            )
        self.widths = tuple(widths)
        self.depths = tuple(depths)
        self.level_sizes = tuple(level_sizes(num_initial, children, num_levels))
        self.num_gaussians = sum(self.level_sizes)
        self._windows = tuple(
            size if level == 0 else min(size, children ** min(level, window_power))
            for level, size in enumerate(self.level_sizes)
        )
        self.num_ws = sum(depths) + num_levels + (num_levels - 1 if knn else 0)
        check_memory(
            f"a decoder of {self.num_gaussians:,} Gaussians (one scene's forward pass)",
            self.activation_bytes(1, torch.float32),
            torch.device("cpu"),
            hint="use fewer levels, fewer initial tokens or fewer children",
        )
        levels = torch.repeat_interleave(torch.arange(num_levels), torch.tensor(self.level_sizes))
        self.register_buffer("gaussian_levels", levels, persistent=False)

        self.tokens = nn.Parameter(torch.randn(num_initial, widths[0]))
        self.upsamplers = nn.ModuleList(
            Upsample(widths[level - 1], widths[level], children) for level in range(1, num_levels)
        )
        self.blocks = nn.ModuleList(
            nn.ModuleList(
                ModulatedTransformerBlock(
                    widths[level], w_dim, max(1, widths[level] // head_dim), mlp_ratio
                )
                for _ in range(depths[level])
            )
            for level in range(num_levels)
        )
        self.neighbour_blocks = (
            nn.ModuleList(
                NeighbourAttentionBlock(widths[level], w_dim, max(1, widths[level] // head_dim))
                for level in range(1, num_levels)
            )
            if knn
            else None
        )
        raw_dim = _GEOMETRY_CHANNELS + feature_dim
        self.heads = nn.ModuleList(
            ModulatedLinear(widths[level], 2 * raw_dim, w_dim, demodulate=False, leaky_relu=False)
            for level in range(num_levels)
        )
        self.view_heads = (
            nn.ModuleList(
                EqualizedLinear(widths[level] + 3, feature_dim) for level in range(num_levels)
            )
            if self.view_dependent_features
            else None
        )

        # Initialisation: small head outputs around per-channel biases chosen so that level 0
        # fills a ball in the box with visible Gaussians and finer levels spread over the parent.
        radius = 0.7 * box_half_extent if initial_radius is None else initial_radius
        radius = check_positive_number("initial_radius", radius)
        if radius >= box_half_extent:
            raise ValueError("`initial_radius` must be smaller than `box_half_extent`")
        seeded = torch.Generator().manual_seed(0)
        direction = torch.randn(num_initial, 3, generator=seeded)
        direction = direction / torch.linalg.vector_norm(direction, dim=-1, keepdim=True)
        points = direction * radius * torch.rand(num_initial, 1, generator=seeded) ** (1 / 3)
        self.register_buffer("initial_position_raw", torch.atanh(points / box_half_extent))
        child_offsets = torch.randn(children, 3, generator=seeded) * 0.6
        self.register_buffer("child_position_raw", child_offsets)
        spacing = (4 / 3 * math.pi * radius**3 / num_initial) ** (1 / 3)
        level0_sigma = box_half_extent / rho if self._shrinks(box_half_extent) else box_half_extent
        target = min(0.5 * spacing, 0.9 * level0_sigma)
        level0_scale_bias = -_softplus_inverse(math.log(level0_sigma / target))
        with torch.no_grad():
            for level, head in enumerate(self.heads):
                assert isinstance(head, ModulatedLinear)
                head.weight.mul_(0.1)
                bias = head.bias.view(2, raw_dim)
                bias.zero_()
                bias[:, 3:6] = level0_scale_bias if level == 0 else 2.0

    def _shrinks(self, sigma: float) -> bool:
        return math.log(sigma) > math.log(self.pixel_size)

    def activation_bytes(self, batch: int, dtype: torch.dtype) -> int:
        """An upper estimate of the memory one forward pass of ``batch`` scenes keeps for backward.

        Per level: every token's activations in each transformer block, the heads' raw outputs
        and the nodes (anchors and Gaussians) of that level.
        """
        itemsize = torch.empty((), dtype=dtype).element_size()
        raw_dim = _GEOMETRY_CHANNELS + self.feature_dim
        floats = sum(
            size * (self.widths[level] * (_FLOATS_PER_BLOCK_CHANNEL * (self.depths[level] + 1))
                    + 8 * raw_dim)
            for level, size in enumerate(self.level_sizes)
        )  # fmt: skip
        return batch * floats * itemsize

    def extra_repr(self) -> str:
        """Summary shown by ``repr``."""
        return (
            f"w_dim={self.w_dim}, num_levels={self.num_levels}, num_initial={self.num_initial}, "
            f"children={self.children_count}, num_gaussians={self.num_gaussians}, "
            f"num_ws={self.num_ws}, pixel_size={self.pixel_size:.4g}, knn={self.knn}"
        )

    def root(self, batch: int, dtype: torch.dtype, device: torch.device) -> HierarchyNodes:
        """The fixed root node (the foreground box) for ``batch`` scenes, ``N = 1``."""
        rotation = torch.zeros(batch, 1, 4, dtype=dtype, device=device)
        rotation[..., 0] = 1
        return HierarchyNodes(
            torch.zeros(batch, 1, 3, dtype=dtype, device=device),
            torch.full((batch, 1, 3), math.log(self.box_half_extent), dtype=dtype, device=device),
            rotation,
            torch.zeros(batch, 1, dtype=dtype, device=device),
            torch.zeros(batch, 1, self.feature_dim, dtype=dtype, device=device),
        )

    def _check_ws(self, ws: Tensor, camera_centers: Tensor | None) -> None:
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
        if value_checks_enabled():
            check_values(finite_checks(ws=ws, camera_centers=camera_centers))
        if self.view_dependent_features:
            if camera_centers is None:
                raise ValueError(
                    "`camera_centers` [B, 3] is required with view_dependent_features=True"
                )
            if not isinstance(camera_centers, Tensor) or camera_centers.dtype != ws.dtype:
                raise TypeError(f"`camera_centers` must be a tensor of dtype {ws.dtype}")
            check_shape("camera_centers", camera_centers, (ws.shape[0], 3))
        elif camera_centers is not None:
            raise ValueError("`camera_centers` is only used with view_dependent_features=True")

    def _split_raw(self, raw: Tensor) -> tuple[HierarchyNodes, HierarchyNodes]:
        f = self.feature_dim

        def nodes(chunk: Tensor) -> HierarchyNodes:
            return HierarchyNodes(
                chunk[..., 0:3], chunk[..., 3:6], chunk[..., 6:10], chunk[..., 10], chunk[..., 11:]
            )

        anchor, gaussian = raw.split(_GEOMETRY_CHANNELS + f, dim=-1)
        return nodes(anchor), nodes(gaussian)

    def _position_offset(self, level: int, batch: int, count: int) -> Tensor:
        if level == 0:
            return self.initial_position_raw
        return self.child_position_raw.repeat(count // self.children_count, 1)

    def forward_hierarchy(
        self,
        ws: Float[Tensor, "B _ D"],
        camera_centers: Float[Tensor, "B 3"] | None = None,
    ) -> GaussianHierarchy:
        """Decodes ``ws`` into Gaussians and returns the whole hierarchy (for visualisation).

        Args:
            ws: style codes ``[B, num_ws, w_dim]``.
            camera_centers: ``[B, 3]``, only with ``view_dependent_features=True``.

        Returns:
            A :class:`~aware3d.functional.hierarchy.GaussianHierarchy`: the rendered Gaussians
            (with ``levels``), per-level nodes, anchors and parent indices, and the root.

        Raises:
            ValueError: if ``ws`` is not ``[B, num_ws, w_dim]`` (or ``camera_centers`` is
                missing, extra or misshapen).
        """
        self._check_ws(ws, camera_centers)
        batch = ws.shape[0]
        root = self.root(batch, ws.dtype, ws.device)
        tokens = self.tokens[None].expand(batch, -1, -1)
        anchor = root  # the parents of the next level's anchors
        style = 0
        nodes: list[HierarchyNodes] = []
        anchors: list[HierarchyNodes] = []
        parents: list[Tensor] = []
        for level in range(self.num_levels):
            count = self.level_sizes[level]
            if level > 0:
                tokens = self.upsamplers[level - 1](tokens)
                if self.neighbour_blocks is not None:
                    where = self._neighbour_source(anchor, nodes[-1]).position
                    neighbours = knn_indices(where, min(self.knn, where.shape[1]))
                    block = self.neighbour_blocks[level - 1]
                    tokens = block(tokens, ws[:, style], neighbours)
                    style += 1
            for block in self.blocks[level]:  # type: ignore[union-attr]
                tokens = block(tokens, ws[:, style], self._windows[level])
                style += 1
            raw = self.heads[level](tokens, ws[:, style])
            style += 1
            offset = self._position_offset(level, batch, count).to(raw.dtype)
            raw_anchor, raw_gaussian = self._split_raw(raw)
            raw_anchor = raw_anchor._replace(position=raw_anchor.position + offset)
            raw_gaussian = raw_gaussian._replace(position=raw_gaussian.position + offset)
            gaussian_parent = self._gaussian_parent(anchor, root)
            if self.view_heads is not None:
                assert camera_centers is not None
                k = count // gaussian_parent.num_nodes
                where = gaussian_parent.position.repeat_interleave(k, dim=1)
                direction = where - camera_centers[:, None].to(where.dtype)
                direction = direction / torch.linalg.vector_norm(
                    direction, dim=-1, keepdim=True
                ).clamp_min(1e-6)
                view_term = self.view_heads[level](torch.cat([tokens, direction], dim=-1))
                raw_gaussian = raw_gaussian._replace(features=raw_gaussian.features + view_term)
            nodes.append(self._densify(gaussian_parent, raw_gaussian))
            next_anchor = self._next_anchor(anchor, raw_anchor)
            if next_anchor is not None:
                anchor = next_anchor
                anchors.append(anchor)
            parents.append(self._parent_index(level, count, ws.device))
        levels = self.gaussian_levels.to(ws.device).clone()
        merged = HierarchyNodes(
            *(torch.cat([getattr(n, f) for n in nodes], dim=1) for f in HierarchyNodes._fields)
        )
        return GaussianHierarchy(
            gaussians=_nodes_to_gaussians(merged, levels),
            nodes=tuple(nodes),
            anchors=tuple(anchors),
            parents=tuple(parents),
            root=root,
        )

    def _densify(self, parent: HierarchyNodes, raw: HierarchyNodes) -> HierarchyNodes:
        return _densify(
            parent, raw, self.rho, self.pixel_size, self.min_log_scale, parent_is_unit=True
        )

    def _gaussian_parent(self, anchor: HierarchyNodes, root: HierarchyNodes) -> HierarchyNodes:
        """The parent of this level's rendered Gaussians."""
        raise NotImplementedError

    def _next_anchor(self, anchor: HierarchyNodes, raw: HierarchyNodes) -> HierarchyNodes | None:
        """This level's anchors (the next level's parents), or ``None`` without anchors."""
        raise NotImplementedError

    def _neighbour_source(self, anchor: HierarchyNodes, previous: HierarchyNodes) -> HierarchyNodes:
        """Whose positions define the nearest neighbours of this level's parents."""
        raise NotImplementedError

    def _parent_index(self, level: int, count: int, device: torch.device) -> Tensor:
        """``[count]`` index of every node's parent (see ``GaussianHierarchy.parents``)."""
        raise NotImplementedError

    def forward(
        self,
        ws: Float[Tensor, "B _ D"],
        camera_centers: Float[Tensor, "B 3"] | None = None,
    ) -> Gaussians:
        """Decodes style codes into Gaussians.

        Args:
            ws: style codes ``[B, num_ws, w_dim]``.
            camera_centers: ``[B, 3]``, only with ``view_dependent_features=True``.

        Returns:
            ``Gaussians`` with ``B`` scenes of ``num_gaussians`` Gaussians, all levels
            concatenated (level 0 first) and ``levels`` set.

        Raises:
            ValueError: if ``ws`` is not ``[B, num_ws, w_dim]`` with ``B >= 1``, has another
                dtype or device than the decoder, or (value checks) holds NaN or infinity.
            MemoryError: if decoding ``B`` scenes would need more memory than is available.
        """
        return self.forward_hierarchy(ws, camera_centers).gaussians


class HierarchicalGaussianDecoder(_TokenDecoder):
    """Style codes ``ws`` -> hierarchical 3D Gaussians, coarse to fine (GSGAN's generator).

    Level ``l`` has ``num_initial * children**l`` rendered Gaussians; node ``j`` of level ``l``
    descends from anchor ``j // children`` of level ``l - 1`` (level 0 from the root box). The
    output concatenates all levels (level 0 first) and carries ``levels``.

    Args:
        w_dim: ``D``, width of the style codes.
        num_levels: ``L``, the number of levels.
        num_initial: ``N0``, tokens (and Gaussians) at level 0 (GSGAN: 256).
        children: ``K``, children per node (GSGAN: 4).
        widths: token width per level (``L`` entries); default halves from 256 per level, >= 32.
        feature_dim: ``F``, feature channels per Gaussian (3 for RGB).
        rho: scale shrink per level while a parent is larger than a pixel.
        resolution: image resolution used for the pixel-size threshold ``tau``.
        depths: transformer blocks per level (``L`` entries); default 2 at level 0, 1 after.
        head_dim: channels per attention head.
        mlp_ratio: hidden width of the block MLPs relative to the token width.
        attention_window: tokens per attention window at levels > 0, a power of ``children``
            (the descendants of one ancestor that many levels up); default ``children**2``.
        box_half_extent: sigma ``e`` of the root node: level 0 lies in ``[-e, e]^3`` (EG3D's
            FFHQ box is ``[-0.5, 0.5]^3``; the FFHQ camera sees about +-0.32 at the centre).
        focal: normalised focal length of the camera model for ``tau``.
        camera_distance: distance of the camera model from the scene centre for ``tau``.
        pixel_size: ``tau`` itself, overriding ``resolution``, ``focal``, ``camera_distance``.
        min_log_scale: floor of every log-scale.
        initial_radius: level-0 Gaussians start spread uniformly in a ball of this radius
            (default ``0.7 * box_half_extent``), with sigma about half their spacing.
        view_dependent_features: add a camera-direction term to the features (costs 3D
            consistency; off by default). ``forward`` then needs ``camera_centers``.
        knn: if > 0, each level > 0 starts with a neighbour-attention block: the children of a
            parent attend to the children of its ``knn`` nearest parents (by anchor position).
            The exact neighbour search costs ``O(N^2)`` work per level (chunked, ``O(N)``
            memory); off by default.

    Attributes:
        num_ws: the number of style vectors ``forward`` takes.
        num_gaussians: ``N``, rendered Gaussians per scene.
        level_sizes: ``[N0, N0 K, ...]``.
        pixel_size: ``tau``.

    Raises:
        ValueError: for invalid arguments.
        MemoryError: if one scene's forward pass would need more memory than is available.
    """

    def _gaussian_parent(self, anchor: HierarchyNodes, root: HierarchyNodes) -> HierarchyNodes:
        return anchor

    def _next_anchor(self, anchor: HierarchyNodes, raw: HierarchyNodes) -> HierarchyNodes:
        return self._densify(anchor, raw)

    def _neighbour_source(self, anchor: HierarchyNodes, previous: HierarchyNodes) -> HierarchyNodes:
        return anchor

    def _parent_index(self, level: int, count: int, device: torch.device) -> Tensor:
        index = torch.arange(count, device=device)
        return index // self.children_count if level > 0 else index * 0


class FlatGaussianDecoder(_TokenDecoder):
    """The same network and Gaussian budget without the parent parameterisation (GSGAN's ablation).

    Every Gaussian is a child of the root box only: ``mu = e tanh(dmu)``,
    ``s = max(log(e / rho) - softplus(-ds), min_log_scale)`` (``e`` the box half extent), rotation,
    opacity and features free. There are no anchors; ``parents`` are all 0 (the root); with
    ``knn`` the neighbours are those of the previous level's Gaussians. GSGAN reports FID 95.97
    for this naive form vs 6.59 with the hierarchy on FFHQ-256.

    Takes the same arguments as :class:`HierarchicalGaussianDecoder`.
    """

    def _gaussian_parent(self, anchor: HierarchyNodes, root: HierarchyNodes) -> HierarchyNodes:
        return root

    def _next_anchor(self, anchor: HierarchyNodes, raw: HierarchyNodes) -> None:
        return None

    def _neighbour_source(self, anchor: HierarchyNodes, previous: HierarchyNodes) -> HierarchyNodes:
        return previous

    def _parent_index(self, level: int, count: int, device: torch.device) -> Tensor:
        return torch.zeros(count, dtype=torch.int64, device=device)


def gsgan_256(w_dim: int = 512, **overrides: object) -> HierarchicalGaussianDecoder:
    """GSGAN's FFHQ-256 decoder: 5 levels of ``256 * 4**l``, 87,296 Gaussians, ``tau`` at 256 px.

    Args:
        w_dim: style width.
        **overrides: any other :class:`HierarchicalGaussianDecoder` argument.
    """
    config: dict = {
        "num_levels": 5,
        "num_initial": 256,
        "children": 4,
        "widths": (256, 256, 128, 64, 32),
        "resolution": 256,
    }
    config.update(overrides)
    return HierarchicalGaussianDecoder(w_dim, **config)


def gsgan_512(w_dim: int = 512, **overrides: object) -> HierarchicalGaussianDecoder:
    """GSGAN's 512 px decoder: 6 levels of ``256 * 4**l``, 349,440 Gaussians, ``tau`` at 512 px.

    Args:
        w_dim: style width.
        **overrides: any other :class:`HierarchicalGaussianDecoder` argument.
    """
    config: dict = {
        "num_levels": 6,
        "num_initial": 256,
        "children": 4,
        "widths": (256, 256, 128, 64, 32, 32),
        "resolution": 512,
    }
    config.update(overrides)
    return HierarchicalGaussianDecoder(w_dim, **config)


def small_decoder(w_dim: int = 64, **overrides: object) -> HierarchicalGaussianDecoder:
    """A decoder that trains on a CPU: 4 levels of ``32 * 4**l``, 2,720 Gaussians, 64 px.

    Token widths are 64, 64, 32, then 16 for every further level, so ``num_levels`` can be
    overridden alone (``small_decoder(64, num_levels=3)`` has 672 Gaussians).

    Args:
        w_dim: style width.
        **overrides: any other :class:`HierarchicalGaussianDecoder` argument.
    """
    num_levels = overrides.get("num_levels", 4)
    check_positive_int("num_levels", num_levels)  # type: ignore[arg-type]
    config: dict = {
        "num_levels": num_levels,
        "num_initial": 32,
        "children": 4,
        "widths": tuple([64, 64, 32, *([16] * 16)][: int(num_levels)]),  # type: ignore[call-overload]
        "resolution": 64,
        "head_dim": 16,
    }
    config.update(overrides)
    return HierarchicalGaussianDecoder(w_dim, **config)
