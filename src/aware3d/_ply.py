"""Minimal binary PLY reading and writing for one element of scalar properties.

Only what 3D Gaussian Splatting files use: a single ``vertex`` element whose properties are
scalars (no lists), stored ``binary_little_endian``. Anything else is refused with a clear error
naming the file and the header line; nothing is guessed.
"""

from pathlib import Path

import numpy as np

from aware3d._io import atomic_write_bytes

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
_MAX_HEADER_BYTES = 1 << 20


def write_vertices(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Writes ``columns`` (name -> 1-D array, all one length) as a binary PLY ``vertex`` element.

    The file is written atomically (:mod:`aware3d._io`): a failure leaves ``path`` as it was.

    Raises:
        ValueError: for no columns, a column that is not 1-D, columns of different lengths, a name
            that is empty, not ASCII or holds whitespace, or a dtype PLY cannot store (naming it).
    """
    if not columns:
        raise ValueError(f"{path}: a PLY vertex element needs at least one column")
    for name, values in columns.items():
        if not name or not name.isascii() or any(c.isspace() for c in name):
            raise ValueError(
                f"{path}: PLY property names must be non-empty ASCII without spaces, got {name!r}"
            )
        if values.ndim != 1:
            raise ValueError(
                f"{path}: column {name!r} must be 1-D, got shape {tuple(values.shape)}"
            )
        if values.dtype.str[1:] not in _NUMPY_TO_PLY:
            raise ValueError(
                f"{path}: column {name!r} has dtype {values.dtype}, which PLY cannot store "
                f"(use one of {sorted(_NUMPY_TO_PLY)})"
            )
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"{path}: PLY columns must have one length, got lengths {sorted(lengths)}")
    (count,) = lengths
    dtype = np.dtype([(name, "<" + values.dtype.str[1:]) for name, values in columns.items()])
    table = np.empty(count, dtype=dtype)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    for name, values in columns.items():
        table[name] = values
        header.append(f"property {_NUMPY_TO_PLY[values.dtype.str[1:]]} {name}")
    header.append("end_header")
    atomic_write_bytes(path, ("\n".join(header) + "\n").encode("ascii") + table.tobytes())


def _header_lines(path: Path, data: bytes) -> tuple[list[tuple[int, str]], int]:
    """Splits the header into ``(line number, text)`` pairs; returns them and the body's offset."""
    if not (data.startswith((b"ply\n", b"ply\r\n"))):
        raise ValueError(f"{path} is not a PLY file (it does not start with a 'ply' line)")
    lines: list[tuple[int, str]] = []
    start = 0
    number = 0
    while True:
        newline = data.find(b"\n", start, _MAX_HEADER_BYTES)
        if newline < 0:
            raise ValueError(
                f"{path} is not a PLY file (no 'end_header' line in its first "
                f"{_MAX_HEADER_BYTES} bytes)"
            )
        number += 1
        raw = data[start:newline].rstrip(b"\r")
        start = newline + 1
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(
                f"{path}: header line {number} is not ASCII text: {raw[:80]!r}"
            ) from None
        if line.strip() == "end_header":
            return lines, start
        lines.append((number, line))


def read_vertices(path: Path) -> dict[str, np.ndarray]:
    """Reads the ``vertex`` element of a binary little-endian PLY as name -> 1-D array.

    The ``vertex`` element must come first; elements after it are ignored.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming the file (and the header line) for anything that is not such a PLY:
            a missing magic or ``end_header``, a non-ASCII header, another format, a malformed,
            negative or non-integer element count, a malformed property line, an unknown or list
            property type, a duplicate property name, no properties, or a body shorter than the
            header declares.
    """
    data = Path(path).read_bytes()
    lines, body_offset = _header_lines(path, data)
    fields: list[tuple[str, str]] = []
    count: int | None = None
    format_seen = False
    for number, line in lines:
        words = line.split()
        where = f"{path}: header line {number} ({line!r})"
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "ply" and number == 1:
            continue
        if words[0] == "format":
            if len(words) != 3 or words[1] != "binary_little_endian" or words[2] != "1.0":
                raise ValueError(f"{where}: only binary_little_endian 1.0 PLY files are supported")
            format_seen = True
        elif words[0] == "element":
            if count is not None:
                break  # the vertex element is complete; later elements are not read
            if len(words) != 3:
                raise ValueError(f"{where}: expected 'element <name> <count>'")
            if words[1] != "vertex":
                raise ValueError(f"{where}: expected the 'vertex' element first")
            try:
                count = int(words[2])
            except ValueError:
                raise ValueError(f"{where}: the vertex count must be an integer") from None
            if count < 0:
                raise ValueError(f"{where}: the vertex count must be >= 0")
        elif words[0] == "property":
            if count is None:
                raise ValueError(f"{where}: a property before any element")
            if len(words) >= 2 and words[1] == "list":
                raise ValueError(f"{where}: list properties are not supported")
            if len(words) != 3:
                raise ValueError(f"{where}: expected 'property <type> <name>'")
            kind, name = words[1], words[2]
            if kind not in _PLY_TO_NUMPY:
                raise ValueError(f"{where}: unknown PLY property type {kind!r}")
            if any(name == existing for existing, _ in fields):
                raise ValueError(f"{where}: duplicate property name {name!r}")
            fields.append((name, "<" + _PLY_TO_NUMPY[kind]))
        else:
            raise ValueError(f"{where}: unexpected header keyword {words[0]!r}")
    if not format_seen:
        raise ValueError(f"{path}: the header has no 'format' line")
    if count is None:
        raise ValueError(f"{path}: no 'vertex' element in the header")
    if not fields:
        raise ValueError(f"{path}: the 'vertex' element has no properties")
    dtype = np.dtype(fields)
    available = len(data) - body_offset
    if available < dtype.itemsize * count:
        raise ValueError(
            f"{path}: truncated: header declares {count} vertices of {dtype.itemsize} bytes, "
            f"but only {available} bytes follow"
        )
    table = np.frombuffer(data, dtype=dtype, count=count, offset=body_offset)
    return {name: np.array(table[name]) for name, _ in fields}
