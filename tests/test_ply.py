"""The binary PLY reader and writer on real files: round trips, atomic writes, every bad header."""

import os
from pathlib import Path

import numpy as np
import plyfile
import pytest

from aware3d import _ply

HEADER = "ply\nformat binary_little_endian 1.0\nelement vertex 2\nproperty float x\n"


def write_ply(path, header, body=b""):
    path.write_bytes(header.encode("latin-1") + body)
    return path


def test_round_trip_of_every_dtype(tmp_path):
    columns = {
        "a": np.array([1.5, -2.0, 3.25], dtype=np.float32),
        "b": np.array([0, 255, 7], dtype=np.uint8),
        "c": np.array([-(2**31), 0, 2**31 - 1], dtype=np.int32),
        "d": np.array([1e300, -1e-300, 0.0], dtype=np.float64),
        "e": np.array([-1, 2, -3], dtype=">i2"),  # big-endian input is stored little-endian
    }
    path = tmp_path / "columns.ply"
    _ply.write_vertices(path, columns)
    back = _ply.read_vertices(path)
    assert list(back) == list(columns)
    for name, values in columns.items():
        np.testing.assert_array_equal(back[name], values)
        assert back[name].dtype == values.dtype.newbyteorder("<")
    assert [p.name for p in plyfile.PlyData.read(str(path))["vertex"].properties] == list(columns)


def test_only_the_vertex_element_is_read_and_headers_may_use_crlf(tmp_path):
    vertex = np.array([(1.0, 2), (3.0, 4)], dtype=[("x", "<f4"), ("k", "u1")])
    faces = np.array([(5,)], dtype=[("i", "<i4")])
    path = tmp_path / "two.ply"
    plyfile.PlyData(
        [plyfile.PlyElement.describe(vertex, "vertex"), plyfile.PlyElement.describe(faces, "f")],
        comments=["end_header in a comment is not the end"],
    ).write(str(path))
    columns = _ply.read_vertices(path)
    np.testing.assert_array_equal(columns["x"], [1.0, 3.0])
    np.testing.assert_array_equal(columns["k"], [2, 4])
    crlf = write_ply(tmp_path / "crlf.ply", HEADER.replace("\n", "\r\n") + "end_header\r\n",
                     np.array([7.0, 8.0], dtype="<f4").tobytes())  # fmt: skip
    np.testing.assert_array_equal(_ply.read_vertices(crlf)["x"], [7.0, 8.0])


BODY = np.zeros(4, dtype="<f4").tobytes()


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("ply\nformat binary_little_endian 1.0\nelement vertex -1\nproperty float x\n",
         r"header line 3 \('element vertex -1'\): the vertex count must be >= 0"),
        ("ply\nformat binary_little_endian 1.0\nelement vertex abc\nproperty float x\n",
         r"header line 3 \('element vertex abc'\): the vertex count must be an integer"),
        ("ply\nformat binary_little_endian 1.0\nelement vertex\nproperty float x\n",
         r"header line 3 .*expected 'element <name> <count>'"),
        (HEADER + "property float x\n",
         r"header line 5 \('property float x'\): duplicate property name 'x'"),
        (HEADER + "property float\n",
         r"header line 5 \('property float'\): expected 'property <type> <name>'"),
        (HEADER + "property half y\n", r"header line 5 .*unknown PLY property type 'half'"),
        (HEADER + "property list uchar int vertex_indices\n",
         r"header line 5 .*list properties are not supported"),
        ("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\n",
         r"header line 2 \('format ascii 1.0'\): only binary_little_endian"),
        ("ply\nformat binary_big_endian 1.0\nelement vertex 2\nproperty float x\n",
         "header line 2 .*only binary_little_endian"),
        ("ply\nformat binary_little_endian\nelement vertex 2\nproperty float x\n",
         "header line 2 .*only binary_little_endian"),
        ("ply\nelement vertex 2\nproperty float x\n", "the header has no 'format' line"),
        ("ply\nformat binary_little_endian 1.0\nelement face 2\nproperty float x\n",
         r"header line 3 .*expected the 'vertex' element first"),
        ("ply\nformat binary_little_endian 1.0\nproperty float x\nelement vertex 2\n",
         r"header line 3 .*a property before any element"),
        ("ply\nformat binary_little_endian 1.0\nelement vertex 2\n",
         "the 'vertex' element has no properties"),
        ("ply\nformat binary_little_endian 1.0\n", "no 'vertex' element in the header"),
        (HEADER + "comment caf\u00e9\n", r"header line 5 is not ASCII text"),
        (HEADER + "colour float x\n", r"header line 5 .*unexpected header keyword 'colour'"),
        ("ply\nformat binary_little_endian 1.0\nelement vertex 99\nproperty float x\n",
         "truncated: header declares 99 vertices of 4 bytes, but only 16 bytes follow"),
    ],
    ids=[
        "negative-count", "count-not-a-number", "count-missing", "duplicate-property",
        "property-without-name", "unknown-type", "list-property", "ascii", "big-endian",
        "format-without-version", "no-format", "face-first", "property-before-element",
        "no-properties", "no-element", "non-ascii-header", "unknown-keyword", "short-body",
    ],
)  # fmt: skip
def test_bad_headers_name_the_file_and_line(tmp_path, header, message):
    path = write_ply(tmp_path / "bad.ply", header + "end_header\n", BODY)
    with pytest.raises(ValueError, match=message) as caught:
        _ply.read_vertices(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"not a ply at all", b"ply\nformat binary_little_endian 1.0\nelement vertex 0\n",
     b"plyx\nend_header\n"],
    ids=["empty", "text", "no-end-header", "bad-magic"],
)  # fmt: skip
def test_files_that_are_not_ply_are_refused(tmp_path, content):
    path = tmp_path / "not.ply"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="is not a PLY file") as caught:
        _ply.read_vertices(path)
    assert str(path) in str(caught.value)


def test_zero_vertices_read_as_empty_columns(tmp_path):
    path = write_ply(
        tmp_path / "empty.ply", HEADER.replace("vertex 2", "vertex 0") + "end_header\n"
    )
    columns = _ply.read_vertices(path)
    assert columns["x"].shape == (0,)
    assert columns["x"].dtype == np.float32


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({}, "needs at least one column"),
        ({"x": np.zeros(2, np.float32), "y": np.zeros(3, np.float32)}, "must have one length"),
        ({"x": np.zeros((2, 2), np.float32)}, r"column 'x' must be 1-D, got shape \(2, 2\)"),
        ({"x": np.zeros(2, np.int64)}, "column 'x' has dtype int64, which PLY cannot store"),
        ({"x": np.zeros(2, np.float16)}, "column 'x' has dtype float16"),
        ({"two words": np.zeros(2, np.float32)}, "names must be non-empty ASCII without spaces"),
        ({"": np.zeros(2, np.float32)}, "names must be non-empty ASCII without spaces"),
    ],
    ids=["empty", "lengths", "2-d", "int64", "float16", "space", "empty-name"],
)
def test_bad_columns_are_refused_before_writing(tmp_path, columns, message):
    path = tmp_path / "scene.ply"
    path.write_bytes(b"old content")
    with pytest.raises(ValueError, match=message) as caught:
        _ply.write_vertices(path, columns)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["scene.ply"]


def test_writing_replaces_the_file_atomically_with_the_umask_mode(tmp_path, umask):
    umask(0o027)
    path = tmp_path / "scene.ply"
    path.write_bytes(b"old content")
    os.chmod(path, 0o600)
    _ply.write_vertices(path, {"x": np.arange(3, dtype=np.float32)})
    np.testing.assert_array_equal(_ply.read_vertices(path)["x"], [0.0, 1.0, 2.0])
    assert os.listdir(tmp_path) == ["scene.ply"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o640


# ---------------------------------------------------------------------- Gaussians.save_ply colours


def _rgb_gaussians(features):
    import torch

    from aware3d import Gaussians

    count, like = features.shape[1], {"dtype": features.dtype}
    quats = torch.zeros(1, count, 4, **like)
    quats[..., 0] = 1
    return Gaussians(
        torch.zeros(1, count, 3, **like), quats, torch.full((1, count, 3), 0.1, **like),
        torch.full((1, count), 0.5, **like), features,
    )  # fmt: skip


def _stored_colours(path):
    from aware3d.gaussians import SH_C0

    columns = _ply.read_vertices(path)
    dc = np.stack([columns[f"f_dc_{i}"] for i in range(3)], axis=-1).astype(np.float64)
    return 0.5 + SH_C0 * dc  # the colour a 3DGS viewer shows


def test_save_ply_maps_value_range_to_3dgs_colours(tmp_path):
    import torch

    signed = torch.tensor([[[-1.0, 0.0, 1.0], [0.5, -0.5, 0.25]]], dtype=torch.float64)
    gaussians = _rgb_gaussians(signed)
    path = gaussians.save_ply(tmp_path / "signed.ply", value_range=(-1.0, 1.0))
    np.testing.assert_allclose(_stored_colours(path), (signed[0].numpy() + 1) / 2, atol=1e-6)
    # the default (0, 1) stores colours as they are, the same file as the mapped one
    unit = _rgb_gaussians((signed + 1) / 2).save_ply(tmp_path / "unit.ply")
    assert unit.read_bytes() == path.read_bytes()
    # load_ply maps back
    back = type(gaussians).load_ply(path, dtype=torch.float64, value_range=(-1, 1))
    torch.testing.assert_close(back.features, signed, atol=1e-6, rtol=0)
    # a range of any width, and tiny excursions (float rounding) within the tolerance
    scaled = _rgb_gaussians(signed * 127.5 + 127.5).save_ply(
        tmp_path / "bytes.ply", value_range=(0, 255)
    )
    np.testing.assert_allclose(_stored_colours(scaled), _stored_colours(path), atol=1e-6)
    _rgb_gaussians(signed * (1 + 1e-4)).save_ply(tmp_path / "nudged.ply", value_range=(-1, 1))


def test_save_ply_refuses_colours_outside_value_range(tmp_path):
    import torch

    signed = _rgb_gaussians(torch.tensor([[[-0.8, 0.1, 0.9], [0.2, 0.3, 0.4]]]))
    path = tmp_path / "scene.ply"
    with pytest.raises(ValueError, match=r"lie in \[-0\.8, 0\.9\], outside `value_range` \(0, 1\)")\
            as caught:  # fmt: skip
        signed.save_ply(path)
    assert "pass `value_range=(-1.0, 1.0)`" in str(caught.value)
    assert not path.exists()  # nothing written
    wide = _rgb_gaussians(torch.tensor([[[0.0, 2.0, 3.0]]]))
    with pytest.raises(ValueError, match=r"pass the range they lie in as `value_range` \(e\.g\."):
        wide.save_ply(path, value_range=(-1.0, 1.0))
    with pytest.raises(ValueError, match="outside `value_range`"):
        _rgb_gaussians(torch.tensor([[[0.5, 0.5, 1.0011]]])).save_ply(path)
    assert not path.exists()


@pytest.mark.usefixtures("without_shape_checker")  # the library's own errors, as users see them
@pytest.mark.parametrize(
    "value_range",
    [(1.0, 0.0), (0.0, 0.0), (0.0,), (0.0, float("nan")), (0, float("inf")), "01", (False, True),
     None],
)  # fmt: skip
def test_save_ply_and_load_ply_refuse_a_bad_value_range(tmp_path, value_range):
    import torch

    gaussians = _rgb_gaussians(torch.rand(1, 4, 3))
    with pytest.raises(ValueError, match="`value_range` must be two finite numbers"):
        gaussians.save_ply(tmp_path / "scene.ply", value_range=value_range)
    path = gaussians.save_ply(tmp_path / "scene.ply")
    with pytest.raises(ValueError, match="`value_range` must be two finite numbers"):
        type(gaussians).load_ply(path, value_range=value_range)


def test_value_range_leaves_non_rgb_features_verbatim(tmp_path):
    import torch

    features = torch.tensor([[[-5.0, 7.0], [0.5, 100.0]]])
    path = _rgb_gaussians(features).save_ply(tmp_path / "features.ply", value_range=(-1, 1))
    columns = _ply.read_vertices(path)
    np.testing.assert_array_equal(columns["feature_1"], [7.0, 100.0])
    assert not columns["f_dc_0"].any()


def test_save_ply_checks_its_path_before_building_the_file(tmp_path, monkeypatch):
    import errno

    import torch

    gaussians = _rgb_gaussians(torch.rand(1, 4, 3))
    built = []
    monkeypatch.setattr(_ply, "write_vertices", lambda path, columns: built.append(path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    (tmp_path / "a_folder").mkdir()
    cases = [
        ("missing/scene.ply", FileNotFoundError, "the folder missing does not exist"),
        ("a_file/scene.ply", NotADirectoryError, "a_file is a file, not a folder"),
        ("a_folder", IsADirectoryError, "it is a folder"),
        ("new/", IsADirectoryError, "it names a folder"),
    ]
    for given, kind, reason in cases:
        with pytest.raises(kind) as caught:
            gaussians.save_ply(given)
        assert str(caught.value) == f"cannot write {given}: {reason}"
    real_open = os.open

    def refused(name, *args):
        if str(name).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", str(name))
        return real_open(name, *args)

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(PermissionError) as caught:
        gaussians.save_ply("scene.ply")
    assert str(caught.value) == (
        f"cannot write scene.ply: the folder {Path.cwd()} is not writable (Permission denied)"
    )
    monkeypatch.setattr(os, "open", real_open)
    assert built == []
    assert sorted(os.listdir(tmp_path)) == ["a_file", "a_folder"]
    assert gaussians.save_ply("scene.ply") == Path("scene.ply") and built == [Path("scene.ply")]
