"""The EG3D dataset reader on real files: folders, zips, x-flip, workers and every bad input."""

import io
import json
import multiprocessing
import pickle
import struct
import warnings
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from aware3d import Cameras, intrinsics_from_fov, sample_look_at_poses
from aware3d.data import EG3DDataset


def make_labels(n: int) -> torch.Tensor:
    poses = sample_look_at_poses(1.57, 1.57, (0, 0, 0.2), 0.3, 0.1, n=n,
                                 generator=torch.Generator().manual_seed(0))  # fmt: skip
    return Cameras(poses, intrinsics_from_fov(13.37).expand(n, 3, 3)).to_eg3d_labels()


def write_folder(root, n=3, size=8):
    root.mkdir(parents=True, exist_ok=True)
    labels = make_labels(n)
    rng = np.random.default_rng(0)
    entries, pixels = [], []
    for i in range(n):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        name = f"sub/img{i:08d}.png"
        (root / "sub").mkdir(exist_ok=True)
        Image.fromarray(image).save(root / name)
        entries.append([name, labels[i].tolist()])
        pixels.append(image)
    (root / "dataset.json").write_text(json.dumps({"labels": entries}))
    return labels, pixels


def zip_folder(folder, archive):
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


@pytest.mark.parametrize("as_zip", [False, True])
def test_round_trip_of_cameras_and_pixels(tmp_path, as_zip):
    labels, pixels = write_folder(tmp_path / "data")
    path = zip_folder(tmp_path / "data", tmp_path / "data.zip") if as_zip else tmp_path / "data"
    dataset = EG3DDataset(path)
    assert len(dataset) == 3
    item = dataset[1]
    assert item.image.shape == (8, 8, 3)
    assert item.image.dtype == torch.float32
    torch.testing.assert_close(item.image, torch.from_numpy(pixels[1] / 255.0).float())
    torch.testing.assert_close(item.label, labels[1], rtol=0, atol=0)
    torch.testing.assert_close(item.cameras.cam2world[0], labels[1, :16].reshape(4, 4))


def test_value_range_and_collate(tmp_path):
    write_folder(tmp_path / "data")
    dataset = EG3DDataset(tmp_path / "data", value_range=(-1.0, 1.0))
    batch = EG3DDataset.collate([dataset[0], dataset[2]])
    assert batch.images.shape == (2, 1, 8, 8, 3)
    assert batch.images.min() >= -1.0
    assert batch.images.max() <= 1.0
    assert batch.cameras.shape == (2, 1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=EG3DDataset.collate)
    assert next(iter(loader)).labels.shape == (3, 25)


def test_xflip_mirrors_image_and_camera(tmp_path):
    labels, pixels = write_folder(tmp_path / "data")
    dataset = EG3DDataset(tmp_path / "data", xflip=True)
    assert len(dataset) == 6
    flipped = dataset[3 + 2]
    torch.testing.assert_close(flipped.image, torch.from_numpy(pixels[2][:, ::-1] / 255.0).float())
    original = Cameras.from_eg3d_labels(labels[2])
    torch.testing.assert_close(flipped.cameras.cam2world, original.mirrored().cam2world)
    # EG3D's flip_yaw negates these entries of the pose
    expected = labels[2, :16].reshape(4, 4).clone()
    for i, j in ((0, 1), (0, 2), (1, 0), (2, 0), (0, 3)):
        expected[i, j] *= -1
    torch.testing.assert_close(flipped.label[:16].reshape(4, 4), expected)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        EG3DDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no dataset.json"):
        EG3DDataset(tmp_path / "empty")
    write_folder(tmp_path / "data")
    (tmp_path / "data" / "sub" / "img00000001.png").unlink()
    with pytest.raises(ValueError, match=r"entry 1: image 'sub/img00000001.png' is missing"):
        EG3DDataset(tmp_path / "data")


def rewrite_entry(folder, index, entry):
    meta = json.loads((folder / "dataset.json").read_text())
    meta["labels"][index] = entry
    (folder / "dataset.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (["sub/img00000000.png", [0.0] * 24], "entry 0 .*the label must be 25 finite numbers"),
        (["sub/img00000000.png", [float("nan")] * 25], "must be 25 finite numbers"),
        (["sub/img00000000.png", "not a list"], "must be 25 finite numbers"),
        (["sub/img00000000.png", [0.0] * 25], r"entry 0 \('sub/img00000000.png'\): invalid camera"),
        (["../outside.png", [0.0] * 25], "escapes the dataset"),
        ([3, [0.0] * 25], "the file name must be a string"),
        ("just a string", r"expected \[filename, \[25 numbers\]\]"),
    ],
)
def test_bad_labels_name_the_entry(tmp_path, entry, message):
    write_folder(tmp_path / "data")
    rewrite_entry(tmp_path / "data", 0, entry)
    with pytest.raises(ValueError, match=message):
        EG3DDataset(tmp_path / "data")


def test_bad_json(tmp_path):
    write_folder(tmp_path / "data")
    (tmp_path / "data" / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        EG3DDataset(tmp_path / "data")
    (tmp_path / "data" / "dataset.json").write_text(json.dumps({"labels": None}))
    with pytest.raises(ValueError, match="non-empty list under 'labels'"):
        EG3DDataset(tmp_path / "data")


def test_corrupt_image_names_the_entry(tmp_path):
    write_folder(tmp_path / "data")
    (tmp_path / "data" / "sub" / "img00000002.png").write_bytes(b"\x89PNG garbage")
    dataset = EG3DDataset(tmp_path / "data")
    with pytest.raises(ValueError) as caught:
        dataset[2]
    message = str(caught.value)
    assert str(tmp_path / "data" / "sub" / "img00000002.png") in message
    assert "(dataset.json entry 2) cannot be decoded" in message
    assert "not a PNG, JPEG, WEBP or BMP image" in message


def test_zip_members_escaping_the_archive_are_refused(tmp_path):
    write_folder(tmp_path / "data")
    archive = zip_folder(tmp_path / "data", tmp_path / "data.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../evil.png", b"x")
    with pytest.raises(ValueError, match="would escape the archive"):
        EG3DDataset(archive)


def test_a_file_that_is_not_a_zip(tmp_path):
    (tmp_path / "data.zip").write_bytes(b"plain text")
    with pytest.raises(ValueError, match="not a zip archive"):
        EG3DDataset(tmp_path / "data.zip")


def test_value_range_must_increase(tmp_path):
    write_folder(tmp_path / "data")
    with pytest.raises(ValueError, match="`value_range`"):
        EG3DDataset(tmp_path / "data", value_range=(1.0, 0.0))


# ------------------------------------------------------------------ DataLoader workers


def batches(loader):
    return [(batch.images, batch.labels) for batch in loader]


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.slow
def test_zip_dataset_with_two_workers_under_every_start_method(tmp_path, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {method!r} is not available here")
    # big enough (noise PNGs of ~12 kB) that workers sharing one file offset would collide
    write_folder(tmp_path / "data", n=16, size=64)
    archive = zip_folder(tmp_path / "data", tmp_path / "data.zip")
    dataset = EG3DDataset(archive, xflip=True)
    expected = batches(
        torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=EG3DDataset.collate)
    )
    # the parent has read the archive, so fork copies an open handle: workers must not share it
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=2,
        num_workers=2,
        multiprocessing_context=method,
        collate_fn=EG3DDataset.collate,
    )
    got = batches(loader)
    assert len(got) == len(expected) == 16
    for (images, labels), (want_images, want_labels) in zip(got, expected):
        torch.testing.assert_close(images, want_images, rtol=0, atol=0)
        torch.testing.assert_close(labels, want_labels, rtol=0, atol=0)


def test_zip_dataset_pickles_without_its_handle(tmp_path):
    write_folder(tmp_path / "data")
    dataset = EG3DDataset(zip_folder(tmp_path / "data", tmp_path / "data.zip"))
    first = dataset[0].image
    copy = pickle.loads(pickle.dumps(dataset))
    torch.testing.assert_close(copy[0].image, first, rtol=0, atol=0)
    dataset.close()
    torch.testing.assert_close(dataset[0].image, first, rtol=0, atol=0)  # opens again


def test_an_archive_replaced_after_opening_is_refused(tmp_path):
    write_folder(tmp_path / "data")
    archive = zip_folder(tmp_path / "data", tmp_path / "data.zip")
    dataset = EG3DDataset(archive)
    (tmp_path / "data" / "extra.txt").write_text("makes the archive bigger")
    zip_folder(tmp_path / "data", archive)
    copy = pickle.loads(pickle.dumps(dataset))  # as a spawn worker gets it
    with pytest.raises(ValueError, match="changed after the dataset was opened") as caught:
        copy[0]
    assert str(archive) in str(caught.value)


# ------------------------------------------------------------------ corrupt files


def png_file(width, height, bit_depth, colour_type, rows=None, idat=None):
    """A PNG written by hand: any bit depth and colour type, or a header with any size."""

    def chunk(tag, data):
        crc = zlib.crc32(tag + data)
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    if idat is None:
        idat = zlib.compress(b"".join(b"\x00" + row for row in rows))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def replace_image(folder, data, name="sub/img00000001.png"):
    (folder / name).write_bytes(data)
    return EG3DDataset(folder)


def member_data_offset(archive, name):
    """Where the bytes of member ``name`` start in ``archive`` (after its local header)."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(name)
    with open(archive, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    return info.header_offset + 30 + name_length + extra_length, info.compress_size


def flip_member_bytes(archive, name):
    start, size = member_data_offset(archive, name)
    raw = bytearray(archive.read_bytes())
    for i in range(start + size // 2, start + size // 2 + 8):
        raw[i] ^= 0xFF
    archive.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"]
)
def test_a_corrupt_zip_member_names_the_archive_member_and_entry(tmp_path, compression):
    write_folder(tmp_path / "data", size=32)
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", compression=compression) as zf:
        for path in sorted((tmp_path / "data").rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(tmp_path / "data").as_posix())
    flip_member_bytes(archive, "sub/img00000001.png")
    dataset = EG3DDataset(archive)
    dataset[0]  # the other members still read
    with pytest.raises(ValueError) as caught:
        dataset[1]
    message = str(caught.value)
    assert f"{archive}: member 'sub/img00000001.png' (dataset.json entry 1)" in message
    assert "cannot be read" in message


def test_a_corrupt_dataset_json_member_names_the_archive(tmp_path):
    write_folder(tmp_path / "data")
    archive = zip_folder(tmp_path / "data", tmp_path / "data.zip")
    flip_member_bytes(archive, "dataset.json")
    with pytest.raises(
        ValueError, match=r"member 'dataset.json' \(the labels file\) cannot be read"
    ) as caught:
        EG3DDataset(archive)
    assert str(archive) in str(caught.value)


def test_decompression_bombs_are_refused_by_their_header(tmp_path):
    write_folder(tmp_path / "data")
    # 5000 x 5000 is below Pillow's own limits but above the reader's; the IDAT is junk, so the
    # message proves the size was refused before any decoding
    dataset = replace_image(tmp_path / "data", png_file(5000, 5000, 8, 2, idat=b"junk"))
    with pytest.raises(ValueError) as caught:
        dataset[1]
    message = str(caught.value)
    assert str(tmp_path / "data" / "sub" / "img00000001.png") in message
    assert "(dataset.json entry 1)" in message
    assert "5000 x 5000 = 25000000 pixels, more than the limit of 16777216" in message
    # far beyond Pillow's limit: Pillow's own refusal, reported the same way
    dataset = replace_image(tmp_path / "data", png_file(100_000, 100_000, 8, 2, idat=b"junk"))
    with pytest.raises(ValueError, match=r"\(dataset.json entry 1\) cannot be decoded: .*bomb"):
        dataset[1]


def test_max_image_pixels_is_the_exact_limit(tmp_path):
    write_folder(tmp_path / "data", size=8)
    assert EG3DDataset(tmp_path / "data", max_image_pixels=64)[0].image.shape == (8, 8, 3)
    with pytest.raises(ValueError, match="8 x 8 = 64 pixels, more than the limit of 63"):
        EG3DDataset(tmp_path / "data", max_image_pixels=63)[0]
    with pytest.raises(ValueError, match="`max_image_pixels` must be >= 1"):
        EG3DDataset(tmp_path / "data", max_image_pixels=0)


def test_16_bit_greyscale_png_keeps_its_full_range(tmp_path):
    write_folder(tmp_path / "data", size=2)
    values = np.array([[0, 1], [32768, 65535]], dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    dataset = replace_image(tmp_path / "data", buffer.getvalue())
    assert Image.open(tmp_path / "data" / "sub" / "img00000001.png").mode.startswith("I;16")
    image = dataset[1].image
    expected = torch.from_numpy(values / 65535.0).float()[..., None].expand(2, 2, 3)
    torch.testing.assert_close(image, expected, rtol=0, atol=1e-7)
    assert image[0, 1, 0] > 0  # 1 / 65535, not rounded away
    half = EG3DDataset(tmp_path / "data", value_range=(-1.0, 1.0))[1].image
    torch.testing.assert_close(half, expected * 2 - 1, rtol=0, atol=1e-6)


def encoded(image, **save):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **save)
    return buffer.getvalue()


def palette_image():
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 0), 1)
    return image


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # RGBA: alpha dropped, colour kept as stored (not composited)
        (encoded(Image.new("RGBA", (2, 1), (200, 100, 50, 0))), [[200, 100, 50]] * 2),
        # LA: grey repeated, alpha dropped
        (encoded(Image.new("LA", (2, 1), (70, 10))), [[70, 70, 70]] * 2),
        # L and 1 (bilevel reads as 0 or 255)
        (encoded(Image.new("L", (2, 1), 9)), [[9, 9, 9]] * 2),
        (encoded(Image.new("1", (2, 1), 1)), [[255, 255, 255]] * 2),
        # palette expanded, its transparency dropped (and no Pillow warning)
        (encoded(palette_image(), transparency=bytes([0, 128])), [[255, 0, 0], [0, 0, 255]]),
        # 16-bit RGB: Pillow keeps the high byte
        (
            png_file(2, 1, 16, 2, rows=[struct.pack(">6H", 0, 256, 65535, 0x8000, 0x80FF, 7)]),
            [[0, 1, 255], [128, 128, 0]],
        ),
    ],
    ids=["RGBA", "LA", "L", "1", "P", "RGB16"],
)
def test_image_modes_map_to_rgb_as_documented(tmp_path, data, expected):
    write_folder(tmp_path / "data", n=2, size=2)
    (tmp_path / "data" / "sub" / "img00000000.png").write_bytes(data)  # images share one size
    dataset = replace_image(tmp_path / "data", data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = dataset[1].image
    want = torch.tensor(expected, dtype=torch.float32)[None] / 255
    torch.testing.assert_close(image, want, rtol=0, atol=1e-7)


def test_32_bit_modes_are_read_only_as_16_bit_png_greyscale():
    from aware3d.data.eg3d import _ImageError, _to_rgb

    # older Pillow opens a 16-bit greyscale PNG as mode I
    image = Image.fromarray(np.array([[0, 65535]], dtype=np.int32))
    assert image.mode == "I"
    np.testing.assert_array_equal(_to_rgb(image, "PNG")[0, :, 0], [0.0, 1.0])
    with pytest.raises(_ImageError, match="mode 'I' has no defined RGB meaning"):
        _to_rgb(image, None)
    too_big = Image.fromarray(np.array([[0, 70000]], dtype=np.int32))
    with pytest.raises(_ImageError, match="outside the 16-bit range"):
        _to_rgb(too_big, "PNG")
    with pytest.raises(_ImageError, match="mode 'F' has no defined RGB meaning"):
        _to_rgb(Image.fromarray(np.zeros((1, 2), dtype=np.float32)), None)


def test_other_image_formats_are_refused(tmp_path):
    write_folder(tmp_path / "data", size=2)
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buffer, format="TIFF")
    dataset = replace_image(tmp_path / "data", buffer.getvalue())
    with pytest.raises(ValueError, match=r"\(dataset.json entry 1\) cannot be decoded: it is not"):
        dataset[1]


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_image_names_the_file_and_entry(tmp_path, keep):
    write_folder(tmp_path / "data", size=32)
    path = tmp_path / "data" / "sub" / "img00000001.png"
    data = path.read_bytes()
    dataset = replace_image(tmp_path / "data", data[: int(len(data) * keep)])
    with pytest.raises(ValueError) as caught:
        dataset[1]
    assert f"{path} (dataset.json entry 1) cannot be decoded" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "is not valid JSON"),
        ('{"labels": "caf\u00e9"}'.encode("latin-1"), "is not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "is not usable JSON: it nests too deeply"),
        (b'{"labels": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}", "nests too deeply"),
    ],
    ids=["corrupt", "latin-1", "deep", "deep-inside"],
)
def test_a_bad_dataset_json_names_the_file(tmp_path, content, message):
    write_folder(tmp_path / "data")
    (tmp_path / "data" / "dataset.json").write_bytes(content)
    with pytest.raises(ValueError, match=message) as caught:
        EG3DDataset(tmp_path / "data")
    assert str(tmp_path / "data" / "dataset.json") in str(caught.value)


def test_a_dataset_json_with_a_byte_order_mark_reads(tmp_path):
    labels, _ = write_folder(tmp_path / "data")
    path = tmp_path / "data" / "dataset.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    torch.testing.assert_close(EG3DDataset(tmp_path / "data").labels, labels, rtol=0, atol=0)


def test_booleans_are_not_label_numbers(tmp_path):
    labels, _ = write_folder(tmp_path / "data")
    entry = ["sub/img00000000.png", [True, *labels[0, 1:].tolist()]]
    rewrite_entry(tmp_path / "data", 0, entry)
    with pytest.raises(ValueError, match="entry 0 .*must be 25 finite numbers"):
        EG3DDataset(tmp_path / "data")


# ------------------------------------------------------------------ export_eg3d


@pytest.fixture(scope="module")
def two_views():
    from aware3d.data import SyntheticScenes

    return SyntheticScenes(num_scenes=1, views_per_scene=2, resolution=8, num_gaussians=50)


@pytest.fixture(scope="module")
def one_view():
    from aware3d.data import SyntheticScenes

    return SyntheticScenes(num_scenes=1, views_per_scene=1, resolution=8, num_gaussians=50, seed=1)


def tree(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_export_refuses_a_non_empty_folder_and_overwrite_replaces_it(tmp_path, two_views, one_view):
    target = tmp_path / "data"
    two_views.export_eg3d(target)
    before = tree(target)
    with pytest.raises(FileExistsError, match="non-empty folder; pass overwrite=True") as caught:
        one_view.export_eg3d(target)
    assert str(target) in str(caught.value)
    assert tree(target) == before
    assert one_view.export_eg3d(target, overwrite=True) == target
    assert sorted(tree(target)) == [
        "00000/img00000000.png", "dataset.json", "masks/00000/img00000000.png",
    ]  # fmt: skip
    assert len(EG3DDataset(target)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary siblings


def test_export_into_an_empty_folder_needs_no_overwrite(tmp_path, one_view, umask):
    (tmp_path / "empty").mkdir()
    one_view.export_eg3d(tmp_path / "empty")
    assert len(EG3DDataset(tmp_path / "empty")) == 1
    umask(0o027)
    one_view.export_eg3d(tmp_path / "deep" / "new")  # parents made, the umask applies
    assert (tmp_path / "deep" / "new").stat().st_mode & 0o777 == 0o750
    assert (tmp_path / "deep" / "new" / "dataset.json").stat().st_mode & 0o777 == 0o640


def test_export_refuses_an_existing_zip_and_overwrite_replaces_it(
    tmp_path, two_views, one_view, umask
):
    umask(0o027)
    archive = two_views.export_eg3d(tmp_path / "data.zip", as_zip=True)
    before = archive.read_bytes()
    with pytest.raises(FileExistsError, match="exists; pass overwrite=True") as caught:
        one_view.export_eg3d(archive, as_zip=True)
    assert str(archive) in str(caught.value)
    assert archive.read_bytes() == before
    one_view.export_eg3d(archive, as_zip=True, overwrite=True)
    assert len(EG3DDataset(archive)) == 1
    assert archive.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.zip"]


def test_export_refuses_the_other_kind_of_target(tmp_path, one_view):
    (tmp_path / "file").write_text("a file")
    with pytest.raises(NotADirectoryError, match="exists and is not a folder"):
        one_view.export_eg3d(tmp_path / "file", overwrite=True)
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder; export_eg3d\\(as_zip=True\\)"):
        one_view.export_eg3d(tmp_path / "folder", as_zip=True, overwrite=True)
    assert (tmp_path / "file").read_text() == "a file"


def fail_on_call(function, count):
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == count:
            raise OSError("disk full (simulated)")
        return function(*args, **kwargs)

    return failing


def test_a_failed_export_leaves_the_old_dataset_intact(tmp_path, two_views, one_view, monkeypatch):
    from aware3d.data import synthetic

    folder = two_views.export_eg3d(tmp_path / "data")
    archive = two_views.export_eg3d(tmp_path / "data.zip", as_zip=True)
    before_folder, before_archive = tree(folder), archive.read_bytes()
    monkeypatch.setattr(synthetic, "_write_file", fail_on_call(synthetic._write_file, 2))
    with pytest.raises(OSError, match="simulated"):
        one_view.export_eg3d(folder, overwrite=True)
    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail_on_call(zipfile.ZipFile.writestr, 2))
    with pytest.raises(OSError, match="simulated"):
        one_view.export_eg3d(archive, as_zip=True, overwrite=True)
    assert tree(folder) == before_folder
    assert archive.read_bytes() == before_archive
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "data.zip"]


# ------------------------------------------------------------ entries, members and links (#21)


def read_meta(folder):
    return json.loads((folder / "dataset.json").read_text())


def write_meta(folder, meta):
    (folder / "dataset.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (
            lambda labels: ["sub/img00000000.png", labels[0]],
            r"entry 2 \('sub/img00000000.png'\) repeats entry 0 with the same label",
        ),
        (
            lambda labels: ["sub/img00000000.png", labels[1]],
            r"entries 0 and 2 both name 'sub/img00000000.png' with different labels "
            r"\(first difference at label index 0: ",
        ),
        (
            lambda labels: ["sub/./img00000000.png", labels[0]],
            r"entry 2 \('sub/./img00000000.png'\) repeats entry 0 \('sub/img00000000.png'\)",
        ),
    ],
    ids=["identical", "conflicting", "same-file"],
)
def test_an_image_listed_twice_is_refused(tmp_path, second, message):
    write_folder(tmp_path / "data")
    meta = read_meta(tmp_path / "data")
    meta["labels"][2] = second([label for _, label in meta["labels"]])
    write_meta(tmp_path / "data", meta)
    with pytest.raises(ValueError, match=message):
        EG3DDataset(tmp_path / "data")


@pytest.mark.parametrize("alias", ["sub/img00000001.png", "./sub/img00000001.png"])
def test_a_zip_member_stored_twice_is_refused(tmp_path, alias):
    write_folder(tmp_path / "data")
    archive = zip_folder(tmp_path / "data", tmp_path / "data.zip")
    with warnings.catch_warnings(), zipfile.ZipFile(archive, "a") as zf:
        warnings.simplefilter("ignore")  # zipfile's "Duplicate name" warning
        zf.writestr(alias, encoded(Image.new("RGB", (8, 8))))
    with pytest.raises(ValueError) as caught:
        EG3DDataset(archive)
    message = str(caught.value)
    assert str(archive) in message
    if alias == "sub/img00000001.png":
        assert "member 'sub/img00000001.png' is stored 2 times" in message
    else:
        assert "members 'sub/img00000001.png' and './sub/img00000001.png' name one file" in message


def test_symbolic_links_must_stay_inside_the_folder(tmp_path):
    folder = tmp_path / "data"
    _, pixels = write_folder(folder)
    outside = tmp_path / "outside.png"
    Image.fromarray(pixels[0]).save(outside)
    # a link to a file inside the folder is fine, and reads that file
    image = folder / "sub" / "img00000001.png"
    image.unlink()
    image.symlink_to(folder / "sub" / "img00000000.png")
    dataset = EG3DDataset(folder)
    torch.testing.assert_close(dataset[1].image, dataset[0].image, rtol=0, atol=0)
    # a link to a file outside is refused when the dataset opens, naming entry and target
    image.unlink()
    image.symlink_to(outside)
    with pytest.raises(ValueError) as caught:
        EG3DDataset(folder)
    assert (
        f"{image} (dataset.json entry 1) leads through a symbolic link to {outside}, "
        f"outside the dataset folder {folder}"
    ) in str(caught.value)
    # ... and when it is read, if the link changed after the dataset opened
    image.unlink()
    image.symlink_to("img00000000.png")
    dataset = EG3DDataset(folder)
    image.unlink()
    image.symlink_to(outside)
    with pytest.raises(ValueError, match="leads through a symbolic link"):
        dataset[1]


def test_a_linked_folder_or_labels_file_outside_is_refused(tmp_path):
    folder = tmp_path / "data"
    write_folder(folder)
    (folder / "sub").rename(tmp_path / "elsewhere")
    (folder / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match=r"\(dataset.json entry 0\) leads through a symbolic link"):
        EG3DDataset(folder)
    (folder / "sub").unlink()
    (tmp_path / "elsewhere").rename(folder / "sub")
    (folder / "dataset.json").rename(tmp_path / "dataset.json")
    (folder / "dataset.json").symlink_to(tmp_path / "dataset.json")
    with pytest.raises(ValueError, match=r"\(the labels file\) leads through a symbolic link"):
        EG3DDataset(folder)
    # a dataset folder that is itself a link (to a folder holding real files) is fine
    (folder / "dataset.json").unlink()
    (tmp_path / "dataset.json").rename(folder / "dataset.json")
    (tmp_path / "link").symlink_to(folder)
    assert len(EG3DDataset(tmp_path / "link")) == 3


# ------------------------------------------------------------------ cameras (#21)


def set_intrinsics(folder, index, fx, fy, cx, cy):
    meta = read_meta(folder)
    label = meta["labels"][index][1]
    label[16:] = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    write_meta(folder, meta)


def test_pixel_intrinsics_are_refused_with_the_fix(tmp_path):
    folder = tmp_path / "data"
    write_folder(folder, size=16)
    for index in range(3):  # FFHQ's 4.2647 in pixels of a 16-pixel image, principal point 8
        set_intrinsics(folder, index, 68.2352, 68.2352, 8.0, 8.0)
    with pytest.raises(ValueError) as caught:
        EG3DDataset(folder)
    message = str(caught.value)
    assert "dataset.json entry 0 ('sub/img00000000.png')" in message
    assert "fx = 68.2352, fy = 68.2352, cx = 8, cy = 8" in message
    assert "divide fx and cx by the image width and fy and cy by its height" in message
    assert "this image is 16 x 16: fx = 4.2647, fy = 4.2647, cx = 0.5, cy = 0.5" in message
    assert "3 of 3 labels" in message


@pytest.mark.parametrize(
    ("fx", "cx", "cy"),
    [(1093.0, 256.0, 256.0), (4.2647, 2.5, 0.5), (4.2647, 0.5, -1.5), (150.0, 0.5, 0.5)],
)
def test_intrinsics_out_of_the_normalised_range_are_refused(tmp_path, fx, cx, cy):
    write_folder(tmp_path / "data")
    set_intrinsics(tmp_path / "data", 1, fx, fx, cx, cy)
    with pytest.raises(
        ValueError, match=r"entry 1 \('sub/img00000001.png'\): the intrinsics look like pixels"
    ):
        EG3DDataset(tmp_path / "data")


@pytest.mark.parametrize(
    ("fx", "cx", "cy"),
    [(4.2647, 0.5, 0.5), (1.0, -0.9, 1.9), (100.0, 2.0, -1.0), (0.3, 0.5, 0.5)],
    ids=["ffhq", "off-centre", "bounds", "wide"],
)
def test_normalised_intrinsics_are_accepted(tmp_path, fx, cx, cy):
    write_folder(tmp_path / "data")
    set_intrinsics(tmp_path / "data", 1, fx, fx, cx, cy)
    label = EG3DDataset(tmp_path / "data")[1].label
    assert label[16:].tolist() == pytest.approx([fx, 0, cx, 0, fx, cy, 0, 0, 1])


def test_a_non_rigid_camera_is_refused_even_with_value_checks_off(tmp_path):
    import aware3d

    labels, _ = write_folder(tmp_path / "data")
    label = labels[1].clone()
    label[0] *= 2  # the rotation block is no longer orthonormal
    rewrite_entry(tmp_path / "data", 1, ["sub/img00000001.png", label.tolist()])
    with (
        aware3d.value_checks(False),
        pytest.raises(
            ValueError, match=r"entry 1 \('sub/img00000001.png'\): invalid camera: .*rigid"
        ),
    ):
        EG3DDataset(tmp_path / "data")


def test_a_number_too_large_for_a_float_is_not_finite(tmp_path):
    labels, _ = write_folder(tmp_path / "data")
    meta = read_meta(tmp_path / "data")
    text = json.dumps(meta).replace(json.dumps(labels[2, 3].item()), "1" + "0" * 400, 1)
    (tmp_path / "data" / "dataset.json").write_text(text)
    with pytest.raises(ValueError, match=r"entry 2 .*must be 25 finite numbers"):
        EG3DDataset(tmp_path / "data")


# ------------------------------------------------------------------ image sizes (#21)


def test_the_first_image_is_checked_when_the_dataset_opens(tmp_path):
    folder = tmp_path / "data"
    write_folder(folder, size=32)
    assert EG3DDataset(folder).image_size == (32, 32)
    first = folder / "sub" / "img00000000.png"
    data = first.read_bytes()
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((32, 32), dtype=np.float32)).save(buffer, format="TIFF")
    first.write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match=rf"{first} \(dataset.json entry 0\) cannot be decoded"):
        EG3DDataset(folder)
    first.write_bytes(png_file(5000, 5000, 8, 2, idat=b"junk"))
    with pytest.raises(ValueError, match="5000 x 5000 = 25000000 pixels"):
        EG3DDataset(folder)
    # only the header is read when the dataset opens: a truncated image fails when it is read
    first.write_bytes(data[: len(data) // 2])
    dataset = EG3DDataset(folder)
    with pytest.raises(ValueError, match=r"\(dataset.json entry 0\) cannot be decoded"):
        dataset[0]


def test_the_first_images_mode_is_checked_when_the_dataset_opens(tmp_path, monkeypatch):
    from aware3d.data import eg3d

    write_folder(tmp_path / "data")
    monkeypatch.setattr(eg3d, "_EIGHT_BIT_MODES", frozenset({"L"}))  # RGB as if it had no meaning
    with pytest.raises(
        ValueError, match=r"entry 0\) cannot be decoded: its mode 'RGB' has no defined RGB"
    ):
        EG3DDataset(tmp_path / "data")


@pytest.mark.parametrize("as_zip", [False, True])
def test_an_image_of_another_size_names_both_sizes(tmp_path, as_zip):
    folder = tmp_path / "data"
    write_folder(folder)
    (folder / "sub" / "img00000002.png").write_bytes(encoded(Image.new("RGB", (16, 8))))
    path = zip_folder(folder, tmp_path / "data.zip") if as_zip else folder
    dataset = EG3DDataset(path)
    dataset[1]
    with pytest.raises(ValueError) as caught:
        dataset[2]
    message = str(caught.value)
    if as_zip:
        described = f"{path}: member 'sub/img00000002.png'"
        first = f"{path}: member 'sub/img00000000.png'"
    else:
        described = str(folder / "sub" / "img00000002.png")
        first = str(folder / "sub" / "img00000000.png")
    assert (
        f"{described} (dataset.json entry 2) is 16 x 8 pixels (width x height), but the "
        f"dataset's first image, {first}, is 8 x 8"
    ) in message
    with pytest.raises(ValueError, match="is 16 x 8 pixels"):
        EG3DDataset(path, xflip=True)[5]  # the mirrored copy too
