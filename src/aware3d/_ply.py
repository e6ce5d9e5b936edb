"""Minimal binary PLY reading and writing for one element of scalar properties.

Only what 3D Gaussian Splatting files use: a single ``vertex`` element whose properties are
scalars (no lists), stored ``binary_little_endian``. Anything else is refused with a clear error.
"""

from pathlib import Path

import numpy as np

_PLY_TO_NUMPY = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}
_NUMPY_TO_PLY = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int",
                 "u4": "uint", "f4": "float", "f8": "double"}  # fmt: skip


def write_vertices(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Writes ``columns`` (name -> 1-D array, all one length) as a binary PLY ``vertex`` element."""
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"PLY columns must have one length, got lengths {sorted(lengths)}")
    (count,) = lengths
    dtype = np.dtype([(name, "<" + values.dtype.str[1:]) for name, values in columns.items()])
    table = np.empty(count, dtype=dtype)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    for name, values in columns.items():
        table[name] = values
        header.append(f"property {_NUMPY_TO_PLY[values.dtype.str[1:]]} {name}")
    header.append("end_header")
    with open(path, "wb") as handle:
        handle.write(("\n".join(header) + "\n").encode("ascii"))
        handle.write(table.tobytes())


def read_vertices(path: Path) -> dict[str, np.ndarray]:
    """Reads the ``vertex`` element of a binary little-endian PLY as name -> 1-D array."""
    with open(path, "rb") as handle:
        data = handle.read()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise ValueError(f"{path} is not a PLY file (no 'ply' magic or no 'end_header')")
    newline = data.find(b"\n", end)
    header = data[:end].decode("ascii", errors="replace").splitlines()
    body = data[newline + 1 :]
    fields: list[tuple[str, str]] = []
    count = None
    offset = 0
    in_vertex = False
    for line in header:
        words = line.split()
        if not words or words[0] in ("ply", "comment", "obj_info"):
            continue
        if words[0] == "format":
            if words[1:2] != ["binary_little_endian"]:
                raise ValueError(f"{path}: only binary_little_endian PLY is supported, got {line}")
        elif words[0] == "element":
            if count is not None and in_vertex:
                break
            in_vertex = words[1] == "vertex"
            if in_vertex:
                count = int(words[2])
            else:
                raise ValueError(f"{path}: expected the 'vertex' element first, got {line!r}")
        elif words[0] == "property" and in_vertex:
            if words[1] == "list":
                raise ValueError(f"{path}: list properties are not supported ({line!r})")
            if words[1] not in _PLY_TO_NUMPY:
                raise ValueError(f"{path}: unknown PLY property type in {line!r}")
            fields.append((words[2], "<" + _PLY_TO_NUMPY[words[1]]))
    if count is None:
        raise ValueError(f"{path}: no 'vertex' element in the header")
    dtype = np.dtype(fields)
    if len(body) < offset + dtype.itemsize * count:
        raise ValueError(
            f"{path}: truncated: header declares {count} vertices of {dtype.itemsize} bytes, "
            f"but only {len(body)} bytes follow"
        )
    table = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    return {name: np.array(table[name]) for name, _ in fields}
