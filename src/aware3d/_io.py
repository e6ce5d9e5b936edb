"""Atomic file writing: a file is either its old self or completely new, never half-written.

Every writer here writes to a temporary file in the destination's folder, flushes it and syncs it
to disk (``fsync``), renames it over the destination with :func:`os.replace` (atomic on POSIX and
Windows within one file system), then syncs the folder where the platform allows.
A failure at any point removes the temporary file and leaves the destination untouched.

The temporary file is created with ``os.open(..., O_CREAT | O_EXCL, 0o666)``, so the finished file
gets the mode any newly created file gets under the process's umask (``tempfile`` would give
``0o600``). A destination that is a symbolic link is written through: the file it points to is
replaced and the link kept.
"""

import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_write_files", "atomic_write_text"]


def _target(path: str | os.PathLike[str]) -> Path:
    """The file a write to ``path`` must replace (symbolic links resolved)."""
    return Path(os.path.realpath(path))


def _create_temp(target: Path) -> tuple[Path, int]:
    """Creates a new, empty temporary file next to ``target``; returns its path and descriptor."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {target}")


def _fsync_folder(folder: Path) -> None:
    """Makes a rename inside ``folder`` durable, where the platform can (not on Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def _temp_file(target: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """Yields a new temporary file next to ``target``, flushed and synced on a clean exit.

    The file is removed if the body raises; on a clean exit it is closed and left for the caller to
    rename.
    """
    temp, descriptor = _create_temp(target)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield temp, handle
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        _remove_quietly(temp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Opens a binary file for writing that replaces ``path`` only when the block succeeds.

    Args:
        path: the destination file; its folder must exist.

    Yields:
        A binary file object positioned at the start of an empty temporary file.

    Raises:
        OSError: if the temporary file cannot be created, written or renamed; ``path`` is then
            untouched.
    """
    target = _target(path)
    with _temp_file(target) as (temp, handle):
        yield handle
    try:
        os.replace(temp, target)
    except BaseException:
        _remove_quietly(temp)
        raise
    _fsync_folder(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> Path:
    """Writes ``data`` to ``path`` atomically.

    Args:
        path: the destination file; its folder must exist.
        data: the file's whole content.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OSError: if the file cannot be written; ``path`` is then untouched.
    """
    with atomic_open(path) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Writes ``text`` to ``path`` atomically (encoded with ``encoding``, newlines untranslated).

    Args:
        path: the destination file; its folder must exist.
        text: the file's whole content.
        encoding: the text encoding.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OSError: if the file cannot be written; ``path`` is then untouched.
        UnicodeEncodeError: if ``text`` cannot be encoded (before anything is written).
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_files(
    files: Mapping[str | os.PathLike[str], bytes | bytearray | memoryview],
) -> None:
    """Writes several files, each atomically, with the renames done only once all are written.

    Every file is first written and synced to its own temporary file; if any of that fails,
    all the temporary files are removed and no destination is touched. Then the temporary files are
    renamed over their destinations one after the other: each rename is atomic, but a crash between
    two renames can leave some files new and the rest old.

    Args:
        files: destination path -> content.

    Raises:
        OSError: if a file cannot be written or renamed.
    """
    pending: list[tuple[Path, Path]] = []
    folders: set[Path] = set()
    try:
        for path, data in files.items():
            target = _target(path)
            with _temp_file(target) as (temp, handle):
                handle.write(data)
            pending.append((temp, target))
            folders.add(target.parent)
        while pending:
            temp, target = pending[0]
            os.replace(temp, target)
            pending.pop(0)
    finally:
        for temp, _ in pending:
            _remove_quietly(temp)
    for folder in folders:
        _fsync_folder(folder)
