"""The compact ``.splat`` file of web Gaussian-splat viewers (antimatter15's format).

No header; 32 bytes per Gaussian, little-endian:

* ``float32 x, y, z``: the centre;
* ``float32 sx, sy, sz``: the per-axis standard deviations (activated, not logs);
* ``uint8 r, g, b, a``: the colour ``round(255 rgb)`` with ``rgb`` in [0, 1] (the 3DGS colour
  ``0.5 + SH_C0 f_dc``) and the opacity ``round(255 alpha)``, each clipped to [0, 255];
* ``uint8 q0..q3``: the unit ``wxyz`` quaternion as ``round(128 q + 128)`` clipped to [0, 255]
  (readers decode ``(byte - 128) / 128``).

Viewers draw the file in its order as a start, so writers sort by decreasing "importance"
``sx sy sz * alpha``; ties keep their order (a stable sort).
"""

from pathlib import Path

import numpy as np

from aware3d._io import atomic_write_bytes

#: Bytes per Gaussian.
SPLAT_RECORD_BYTES = 32
_RECORD = np.dtype(
    [("means", "<f4", (3,)), ("scales", "<f4", (3,)), ("rgba", "u1", (4,)), ("quats", "u1", (4,))]
)
assert _RECORD.itemsize == SPLAT_RECORD_BYTES


def _bytes_from_unit(values: np.ndarray) -> np.ndarray:
    return np.clip(np.round(values * 255.0), 0, 255).astype(np.uint8)


def encode_splat(
    means: np.ndarray, scales: np.ndarray, quats: np.ndarray, rgb: np.ndarray, alpha: np.ndarray
) -> bytes:
    """``N`` Gaussians as ``.splat`` bytes, sorted by decreasing ``prod(scales) * alpha``.

    Args:
        means: ``[N, 3]`` centres.
        scales: ``[N, 3]`` positive standard deviations.
        quats: ``[N, 4]`` ``wxyz`` quaternions (normalised here; non-zero).
        rgb: ``[N, 3]`` colours in [0, 1] (clipped).
        alpha: ``[N]`` opacities in [0, 1] (clipped).
    """
    unit = quats / np.linalg.norm(quats, axis=-1, keepdims=True)
    importance = np.prod(scales.astype(np.float64), axis=-1) * alpha.astype(np.float64)
    order = np.argsort(-importance, kind="stable")
    records = np.empty(means.shape[0], dtype=_RECORD)
    records["means"] = means[order]
    records["scales"] = scales[order]
    records["rgba"][:, :3] = _bytes_from_unit(rgb[order])
    records["rgba"][:, 3] = _bytes_from_unit(alpha[order])
    records["quats"] = np.clip(np.round(unit[order] * 128.0 + 128.0), 0, 255).astype(np.uint8)
    return records.tobytes()


def write_splat(path: Path, data: bytes) -> None:
    """Writes ``.splat`` bytes atomically (a failure leaves ``path`` as it was)."""
    atomic_write_bytes(path, data)


def read_splat(path: Path) -> dict[str, np.ndarray]:
    """A ``.splat`` file's Gaussians as float64 arrays.

    Keys: ``means``, ``scales``, ``quats`` (decoded, not normalised), ``rgb`` and ``alpha`` in
    [0, 1].

    Raises:
        ValueError: for a size that is not a positive multiple of 32 bytes, or non-finite or
            non-positive values (naming the file and the record).
    """
    data = Path(path).read_bytes()
    if not data or len(data) % SPLAT_RECORD_BYTES:
        raise ValueError(
            f"{path} is not a .splat file: its size {len(data)} is not a positive multiple of "
            f"{SPLAT_RECORD_BYTES} bytes"
        )
    records = np.frombuffer(data, dtype=_RECORD)
    means = records["means"].astype(np.float64)
    scales = records["scales"].astype(np.float64)
    bad = ~(np.isfinite(means).all(-1) & np.isfinite(scales).all(-1) & (scales > 0).all(-1))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: record {first} has a non-finite centre or a non-positive or non-finite scale "
            f"(centre {means[first].tolist()}, scales {scales[first].tolist()})"
        )
    quats = (records["quats"].astype(np.float64) - 128.0) / 128.0
    zero = (quats == 0).all(-1)
    if zero.any():
        raise ValueError(f"{path}: record {int(np.flatnonzero(zero)[0])} has a zero quaternion")
    return {
        "means": means,
        "scales": scales,
        "quats": quats,
        "rgb": records["rgba"][:, :3].astype(np.float64) / 255.0,
        "alpha": records["rgba"][:, 3].astype(np.float64) / 255.0,
    }
