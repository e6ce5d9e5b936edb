"""Checkpoints and atomic writes on real files: nothing half-written, nothing half-loaded."""

import json
import os

import pytest
import torch
from safetensors.torch import save_file

from aware3d._io import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_files,
    atomic_write_text,
    check_writable_file,
    check_writable_folder,
)
from aware3d.training import load_checkpoint, save_checkpoint


def modules(seed):
    torch.manual_seed(seed)
    return {"a": torch.nn.Linear(3, 2), "b": torch.nn.Sequential(torch.nn.Linear(4, 4))}


def snapshot(mods):
    return {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in mods.items()}


def assert_unchanged(mods, before):
    for name, module in mods.items():
        for key, value in module.state_dict().items():
            torch.testing.assert_close(value, before[name][key], rtol=0, atol=0)


def files_in(directory):
    return sorted(p.name for p in directory.iterdir())


# ------------------------------------------------------------------ save


def test_round_trip_and_file_modes_follow_the_umask(tmp_path, umask):
    umask(0o027)
    saved = modules(0)
    save_checkpoint(tmp_path / "ckpt", saved, {"step": 3, "lr": (0.1, 0.2), "loss": float("nan")})
    for name in ("model.safetensors", "config.json"):
        assert (tmp_path / "ckpt" / name).stat().st_mode & 0o777 == 0o640
    loaded = modules(1)
    config = load_checkpoint(tmp_path / "ckpt", loaded)
    assert config["step"] == 3
    assert config["lr"] == [0.1, 0.2]
    assert config["loss"] != config["loss"]  # NaN survives
    assert_unchanged(loaded, snapshot(saved))


def test_saving_again_replaces_both_files_and_leaves_no_temporary_files(tmp_path):
    save_checkpoint(tmp_path, modules(0), {"step": 1})
    later = modules(5)
    save_checkpoint(tmp_path, later, {"step": 2})
    assert files_in(tmp_path) == ["config.json", "model.safetensors"]
    loaded = modules(1)
    assert load_checkpoint(tmp_path, loaded) == {"step": 2}
    assert_unchanged(loaded, snapshot(later))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"metrics": {"fid": torch.tensor(3.0)}}, r"`config`\['metrics'\]\['fid'\] is a Tensor"),
        ({"sizes": [1, {2, 3}]}, r"`config`\['sizes'\]\[1\] is a set"),
        ({"table": {1: "one"}}, r"`config`\['table'\] has the key 1 of type int"),
        ({"path": os.path.curdir.encode()}, r"`config`\['path'\] is a bytes"),
    ],
    ids=["tensor", "set", "int-key", "bytes"],
)
def test_a_config_json_cannot_store_changes_nothing(tmp_path, config, message):
    save_checkpoint(tmp_path / "old", modules(0), {"step": 1})
    before = {name: (tmp_path / "old" / name).read_bytes() for name in files_in(tmp_path / "old")}
    with pytest.raises(TypeError, match=message):
        save_checkpoint(tmp_path / "old", modules(1), config)
    assert {name: (tmp_path / "old" / name).read_bytes() for name in before} == before
    assert files_in(tmp_path / "old") == ["config.json", "model.safetensors"]
    with pytest.raises(TypeError, match=message):
        save_checkpoint(tmp_path / "new", modules(1), config)
    assert not (tmp_path / "new").exists()


def test_a_config_that_contains_itself_is_refused(tmp_path):
    config: dict = {"a": []}
    config["a"].append(config)
    with pytest.raises(TypeError, match=r"`config`\['a'\]\[0\] contains itself"):
        save_checkpoint(tmp_path / "ckpt", modules(0), config)


class WithExtraState(torch.nn.Module):
    def get_extra_state(self):
        return {"not": "a tensor"}

    def set_extra_state(self, state):
        del state


def test_bad_modules_are_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"without '.', got 'a.b'"):
        save_checkpoint(tmp_path / "ckpt", {"a.b": torch.nn.Linear(2, 2)}, {})
    with pytest.raises(TypeError, match=r"module 'x': state entry '_extra_state' is a dict"):
        save_checkpoint(tmp_path / "ckpt", {"x": WithExtraState()}, {})
    with pytest.raises(TypeError, match=r"`modules\['x'\]` must be a torch.nn.Module"):
        save_checkpoint(tmp_path / "ckpt", {"x": torch.zeros(2)}, {})  # type: ignore[dict-item]
    assert not (tmp_path / "ckpt").exists()


# ------------------------------------------------------------------ load


@pytest.fixture
def checkpoint(tmp_path):
    save_checkpoint(tmp_path / "ckpt", modules(0), {"step": 7})
    return tmp_path / "ckpt"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"step": 7', "config.json is not valid JSON"),
        (b"", "config.json is not valid JSON"),
        ('{"name": "caf\u00e9"}'.encode("latin-1"), "config.json is not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "config.json is not usable JSON: it nests too deeply"),
        (b"[1, 2]", "config.json must hold a JSON object, got list"),
    ],
    ids=["cut", "empty", "latin-1", "deep", "list"],
)
def test_a_bad_config_names_the_file_and_loads_nothing(checkpoint, content, message):
    (checkpoint / "config.json").write_bytes(content)
    target = modules(1)
    before = snapshot(target)
    with pytest.raises(ValueError, match=message) as caught:
        load_checkpoint(checkpoint, target)
    assert str(checkpoint / "config.json") in str(caught.value)
    assert_unchanged(target, before)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda data: data[:-5],
        lambda data: data[:6],
        lambda data: b"",
        lambda data: b"\xff" * 64,
        lambda data: data[:8] + b"]" + data[9:],
    ],
    ids=["truncated", "header-cut", "empty", "garbage", "header-not-json"],
)
def test_a_corrupt_weights_file_names_the_file_and_loads_nothing(checkpoint, corrupt):
    path = checkpoint / "model.safetensors"
    path.write_bytes(corrupt(path.read_bytes()))
    target = modules(1)
    before = snapshot(target)
    with pytest.raises(ValueError, match="is not a readable safetensors file") as caught:
        load_checkpoint(checkpoint, target)
    assert str(path) in str(caught.value)
    assert_unchanged(target, before)


def test_a_shape_mismatch_in_one_module_loads_no_module(checkpoint):
    target = {"a": torch.nn.Linear(3, 2), "b": torch.nn.Sequential(torch.nn.Linear(5, 4))}
    before = snapshot(target)
    with pytest.raises(ValueError) as caught:
        load_checkpoint(checkpoint, target)
    message = str(caught.value)
    assert str(checkpoint / "model.safetensors") in message
    assert "entry 'b.0.weight' is torch.float32 [4, 4]" in message
    assert "module 'b' expects torch.float32 [4, 5]" in message
    assert_unchanged(target, before)  # module 'a' matched but was not loaded either


def test_a_dtype_mismatch_is_refused(checkpoint):
    target = {"a": torch.nn.Linear(3, 2).double()}
    before = snapshot(target)
    with pytest.raises(ValueError, match=r"entry 'a.weight' is torch.float32 \[2, 3\] but module"):
        load_checkpoint(checkpoint, target)
    assert_unchanged(target, before)


def test_a_key_mismatch_names_the_module(checkpoint):
    target = {"a": torch.nn.Linear(3, 2, bias=False)}
    with pytest.raises(ValueError, match=r"does not match module 'a': missing \[\], unexpected"):
        load_checkpoint(checkpoint, target)
    with pytest.raises(ValueError, match=r"does not match module 'c': missing \['weight'\]"):
        load_checkpoint(checkpoint, {"c": torch.nn.Linear(3, 2, bias=False)})


def test_a_subset_of_the_modules_loads(checkpoint):
    target = {"b": torch.nn.Sequential(torch.nn.Linear(4, 4))}
    assert load_checkpoint(checkpoint, target) == {"step": 7}
    assert_unchanged(target, {"b": snapshot(modules(0))["b"]})


def test_a_checkpoint_written_elsewhere_loads(tmp_path):
    saved = modules(0)
    tensors = {f"{n}.{k}": v for n, m in saved.items() for k, v in m.state_dict().items()}
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({"origin": "safetensors"}))
    loaded = modules(1)
    assert load_checkpoint(tmp_path, loaded) == {"origin": "safetensors"}
    assert_unchanged(loaded, snapshot(saved))


def test_missing_files(checkpoint):
    (checkpoint / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_checkpoint(checkpoint, modules(1))


# ------------------------------------------------------------------ atomic writes


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_files_get_the_mode_of_a_new_file(tmp_path, umask, mask):
    umask(mask)
    path = atomic_write_bytes(tmp_path / "file.bin", b"data")
    assert path.read_bytes() == b"data"
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    open(tmp_path / "plain.bin", "wb").close()  # what a plain open() gives
    assert (tmp_path / "plain.bin").stat().st_mode == path.stat().st_mode


def test_atomic_writes_replace_the_file_a_link_points_to(tmp_path):
    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "link.txt").symlink_to("real.txt")
    atomic_write_text(tmp_path / "link.txt", "new \u00e9")
    assert (tmp_path / "link.txt").is_symlink()
    assert (tmp_path / "real.txt").read_bytes() == "new \u00e9".encode()


def test_a_failed_atomic_write_leaves_the_file_and_no_temporary(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("old")

    def write_half():
        with atomic_open(path) as handle:
            handle.write(b"half of the new content")
            raise RuntimeError("midway")

    with pytest.raises(RuntimeError, match="midway"):
        write_half()
    assert path.read_text() == "old"
    assert files_in(tmp_path) == ["file.txt"]


def test_atomic_write_files_renames_nothing_until_all_are_written(tmp_path):
    (tmp_path / "one.txt").write_text("old")
    with pytest.raises(FileNotFoundError):
        atomic_write_files({tmp_path / "one.txt": b"new", tmp_path / "missing" / "two.txt": b"x"})
    assert (tmp_path / "one.txt").read_text() == "old"
    assert files_in(tmp_path) == ["one.txt"]


def _write_with(writer, path):
    if writer == "open":
        with atomic_open(path) as handle:
            handle.write(b"x")
    elif writer == "files":
        atomic_write_files({path: b"x"})
    else:
        atomic_write_bytes(path, b"x")


@pytest.mark.parametrize("writer", ["bytes", "open", "files"])
def test_atomic_write_errors_name_the_path_given_not_the_temporary(tmp_path, monkeypatch, writer):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("old")
    (tmp_path / "a_folder").mkdir()
    cases = [
        ("missing/out.txt", FileNotFoundError, "the folder missing does not exist"),
        ("a_file/out.txt", NotADirectoryError, "a_file is a file, not a folder"),
        ("a_folder", IsADirectoryError, "it is a folder"),
    ]
    for given, kind, reason in cases:
        with pytest.raises(kind) as caught:
            _write_with(writer, given)
        assert str(caught.value) == f"cannot write {given}: {reason}"
        assert caught.value.errno == caught.value.__cause__.errno  # the system's error, kept
        assert ".tmp" in str(caught.value.__cause__)
    assert files_in(tmp_path) == ["a_file", "a_folder"] and files_in(tmp_path / "a_folder") == []


def test_atomic_write_errors_of_the_system_name_the_path(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "file.txt"
    path.write_text("old")
    real_open, real_fsync = os.open, os.fsync

    def refused(name, *args):
        if str(name).endswith(".tmp"):
            raise PermissionError(errno.EACCES, "Permission denied", str(name))
        return real_open(name, *args)

    monkeypatch.setattr(os, "open", refused)
    message = f"cannot write {path}: the folder {tmp_path} is not writable (Permission denied)"
    with pytest.raises(PermissionError) as caught:
        atomic_write_text(path, "new")
    assert str(caught.value) == message and isinstance(caught.value.__cause__, PermissionError)
    with pytest.raises(PermissionError, match="is not writable"):
        check_writable_file(path)  # the same, before any work
    monkeypatch.setattr(os, "open", real_open)

    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as caught:
        atomic_write_files({path: b"new"})
    assert str(caught.value) == f"cannot write {path}: No space left on device"
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert path.read_text() == "old" and files_in(tmp_path) == ["file.txt"]
    error = OSError("the caller's own")
    with pytest.raises(OSError) as caught, atomic_open(path):
        raise error
    assert caught.value is error  # errors inside the block pass unchanged


def test_output_paths_are_checked_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("old")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "grid.png").mkdir()
    check_writable_file("a_file")  # an existing file is replaced
    check_writable_file("new.txt")
    with pytest.raises(IsADirectoryError, match="^cannot write new/: it names a folder$"):
        check_writable_file("new/")
    with pytest.raises(IsADirectoryError, match="^cannot write out: it is a folder$"):
        check_writable_file("out")
    with pytest.raises(NotADirectoryError, match="^cannot write a_file/x/y: a_file is a file"):
        check_writable_file("a_file/x/y")
    check_writable_folder("new/run", ["grid.png"])  # created later, nothing created now
    check_writable_folder("out", ["depth.png"])
    with pytest.raises(IsADirectoryError, match="^cannot write out/grid.png: it is a folder$"):
        check_writable_folder("out", ["depth.png", "grid.png"])
    with pytest.raises(NotADirectoryError, match="^cannot write into a_file: it is a file"):
        check_writable_folder("a_file")
    with pytest.raises(NotADirectoryError, match="^cannot write into a_file/run: a_file is a file"):
        check_writable_folder("a_file/run")
    assert files_in(tmp_path) == ["a_file", "out"]
    assert files_in(tmp_path / "out") == ["grid.png"]
