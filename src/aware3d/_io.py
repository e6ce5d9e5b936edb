"""Atomic file writing: a file is either its old self or completely new, never half-written.

Every writer here writes to a temporary file in the destination's folder, flushes it and syncs it
to disk (``fsync``), renames it over the destination with :func:`os.replace` (atomic on POSIX and
Windows within one file system), then syncs the folder where the platform allows.
A failure at any point removes the temporary file and leaves the destination untouched, and the
``OSError`` raised names the destination as the caller gave it (the system's error, which names the
temporary file, is its ``__cause__``). :func:`check_writable_file` and
:func:`check_writable_folder` raise the same errors up front, before any work.

The temporary file is created with ``os.open(..., O_CREAT | O_EXCL, 0o666)``, so the finished file
gets the mode any newly created file gets under the process's umask (``tempfile`` would give
``0o600``). A destination that is a symbolic link is written through: the file it points to is
replaced and the link kept.
"""

import contextlib
import errno
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_files",
    "atomic_write_text",
    "check_writable_file",
    "check_writable_folder",
]

_PathLike = str | os.PathLike[str]
#: Error numbers of a folder the process may not create files in.
_NOT_PERMITTED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _target(path: _PathLike) -> Path:
    """The file a write to ``path`` must replace (symbolic links resolved)."""
    return Path(os.path.realpath(path))


def _error(kind: type[OSError], code: int | None, message: str) -> OSError:
    """``kind(message)`` with ``errno`` set, its message free of the ``[Errno N]`` prefix."""
    try:
        error = kind(message)
    except TypeError:  # a subclass with a constructor of its own
        error = OSError(message)
    error.errno = code
    return error


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _folder_of(path: _PathLike) -> Path:
    """The folder of ``path`` as the user would name it (the real one for a symbolic link)."""
    return _target(path).parent if os.path.islink(path) else Path(path).parent


def _placement_error(path: _PathLike) -> OSError | None:
    """Why ``path`` cannot be a file whatever the permissions: it is a folder or has none."""
    given, target = os.fspath(path), _target(path)
    if target.is_dir():
        return _error(IsADirectoryError, errno.EISDIR, f"cannot write {given}: it is a folder")
    if given.endswith(("/", os.sep)):
        return _error(IsADirectoryError, errno.EISDIR, f"cannot write {given}: it names a folder")
    if target.parent.is_dir():
        return None
    folder = _folder_of(path)
    existing = _nearest_existing(folder)
    if existing.exists() and not existing.is_dir():
        message = f"cannot write {given}: {existing} is a file, not a folder"
        return _error(NotADirectoryError, errno.ENOTDIR, message)
    message = f"cannot write {given}: the folder {folder} does not exist"
    return _error(FileNotFoundError, errno.ENOENT, message)


def _write_error(path: _PathLike, error: OSError, *, creating: bool = False) -> OSError:
    """``error`` (about a temporary file) as an error of the same kind naming ``path``."""
    placement = _placement_error(path)
    if placement is not None:
        return placement
    if creating:
        reason = _creation_problem(_folder_of(path), error)
    else:
        reason = error.strerror or str(error)
    return _error(type(error), error.errno, f"cannot write {os.fspath(path)}: {reason}")


def _creation_problem(folder: Path, error: OSError) -> str:
    """What ``error``, raised creating a file in the existing ``folder``, means."""
    reason = error.strerror or str(error)
    if folder == Path("."):
        folder = Path.cwd()
    if error.errno in _NOT_PERMITTED:
        return f"the folder {folder} is not writable ({reason})"
    return f"cannot create a file in the folder {folder} ({reason})"


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


def _probe(folder: Path) -> OSError | None:
    """The error creating a file in ``folder`` raises, or ``None`` (nothing is left behind)."""
    try:
        temp, descriptor = _create_temp(folder / "write-check")
    except OSError as error:
        return error
    os.close(descriptor)
    _remove_quietly(temp)
    return None


def check_writable_file(path: _PathLike) -> None:
    """Raises unless the atomic writers here can write ``path``, before any work is done.

    ``path`` may exist (a file, replaced when written) or not; its folder must exist and take new
    files (tried by creating and removing an empty temporary file there).

    Args:
        path: the destination file.

    Raises:
        IsADirectoryError: if ``path`` is a folder or ends with a separator.
        FileNotFoundError: if its folder does not exist.
        NotADirectoryError: if what should be its folder (or one above) is a file.
        OSError: if no file can be created in its folder (``PermissionError`` where it is not
            writable). Each error names ``path`` as given.
    """
    placement = _placement_error(path)
    if placement is not None:
        raise placement
    error = _probe(_target(path).parent)
    if error is not None:
        raise _write_error(path, error, creating=True) from error


def check_writable_folder(folder: _PathLike, files: Iterable[str] = ()) -> None:
    """Raises unless ``folder`` is, or can be created as, a folder that takes ``files``.

    An existing ``folder`` must be a folder that takes new files, and none of ``files`` (names
    inside it) a folder; a missing one needs its nearest existing parent to be a folder that takes
    new files. Nothing is created.

    Args:
        folder: the output folder.
        files: names of files that will be written in it.

    Raises:
        NotADirectoryError: if ``folder`` or the nearest existing parent is a file.
        IsADirectoryError: if one of ``files`` is a folder.
        OSError: if no file can be created where needed (``PermissionError`` where it is not
            writable). Each error names ``folder`` (or the file) as given.
    """
    given = Path(folder)
    existing = _nearest_existing(given)
    if not existing.is_dir():
        what = "it" if existing == given else existing
        message = f"cannot write into {os.fspath(folder)}: {what} is a file, not a folder"
        raise _error(NotADirectoryError, errno.ENOTDIR, message)
    error = _probe(existing)
    if error is not None:
        message = f"cannot write into {os.fspath(folder)}: {_creation_problem(existing, error)}"
        raise _error(type(error), error.errno, message) from error
    if existing == given:
        for name in files:
            placement = _placement_error(given / name)
            if placement is not None:
                raise placement


@contextlib.contextmanager
def _temp_file(target: Path, path: _PathLike) -> Iterator[tuple[Path, BinaryIO]]:
    """Yields a new temporary file next to ``target``, flushed and synced on a clean exit.

    The file is removed if the body raises (the body's error passes unchanged); on a clean exit it
    is closed and left for the caller to rename. Errors of the file itself name ``path``.
    """
    try:
        temp, descriptor = _create_temp(target)
    except OSError as error:
        raise _write_error(path, error, creating=True) from error
    handle = os.fdopen(descriptor, "wb")
    try:
        yield temp, handle
    except BaseException:
        with contextlib.suppress(OSError):
            handle.close()
        _remove_quietly(temp)
        raise
    try:
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
    except OSError as error:
        with contextlib.suppress(OSError):
            handle.close()
        _remove_quietly(temp)
        raise _write_error(path, error) from error


def _write_temp(target: Path, path: _PathLike, data: bytes | bytearray | memoryview) -> Path:
    """Writes ``data`` to a new temporary file next to ``target``, synced; returns its path."""
    with _temp_file(target, path) as (temp, handle):
        try:
            handle.write(data)
        except OSError as error:
            raise _write_error(path, error) from error
    return temp


def _replace(temp: Path, target: Path, path: _PathLike) -> None:
    """Renames ``temp`` over ``target``; on failure removes ``temp`` and names ``path``."""
    try:
        os.replace(temp, target)
    except BaseException as error:
        _remove_quietly(temp)
        if isinstance(error, OSError):
            raise _write_error(path, error) from error
        raise


@contextlib.contextmanager
def atomic_open(path: _PathLike) -> Iterator[BinaryIO]:
    """Opens a binary file for writing that replaces ``path`` only when the block succeeds.

    Args:
        path: the destination file; its folder must exist.

    Yields:
        A binary file object positioned at the start of an empty temporary file.

    Raises:
        OSError: if the temporary file cannot be created, synced or renamed (naming ``path``, the
            system's error as ``__cause__``); ``path`` is then untouched. Errors raised inside the
            block (its writes included) pass unchanged.
    """
    target = _target(path)
    with _temp_file(target, path) as (temp, handle):
        yield handle
    _replace(temp, target, path)
    _fsync_folder(target.parent)


def atomic_write_bytes(path: _PathLike, data: bytes | bytearray | memoryview) -> Path:
    """Writes ``data`` to ``path`` atomically.

    Args:
        path: the destination file; its folder must exist.
        data: the file's whole content.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OSError: if the file cannot be written (naming ``path``, the system's error as
            ``__cause__``); ``path`` is then untouched.
    """
    target = _target(path)
    _replace(_write_temp(target, path, data), target, path)
    _fsync_folder(target.parent)
    return Path(path)


def atomic_write_text(path: _PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Writes ``text`` to ``path`` atomically (encoded with ``encoding``, newlines untranslated).

    Args:
        path: the destination file; its folder must exist.
        text: the file's whole content.
        encoding: the text encoding.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OSError: if the file cannot be written (naming ``path``, the system's error as
            ``__cause__``); ``path`` is then untouched.
        UnicodeEncodeError: if ``text`` cannot be encoded (before anything is written).
    """
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_files(
    files: Mapping[_PathLike, bytes | bytearray | memoryview],
) -> None:
    """Writes several files, each atomically, with the renames done only once all are written.

    Every file is first written and synced to its own temporary file; if any of that fails,
    all the temporary files are removed and no destination is touched. Then the temporary files are
    renamed over their destinations one after the other: each rename is atomic, but a crash between
    two renames can leave some files new and the rest old.

    Args:
        files: destination path -> content.

    Raises:
        OSError: if a file cannot be written or renamed (naming that file's path as given, the
            system's error as ``__cause__``).
    """
    pending: list[tuple[Path, Path, _PathLike]] = []
    folders: set[Path] = set()
    try:
        for path, data in files.items():
            target = _target(path)
            pending.append((_write_temp(target, path, data), target, path))
            folders.add(target.parent)
        while pending:
            _replace(*pending[0])
            pending.pop(0)
    finally:
        for temp, _, _ in pending:
            _remove_quietly(temp)
    for folder in folders:
        _fsync_folder(folder)
