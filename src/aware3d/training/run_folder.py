"""A run folder belongs to one run: its lock, its start, its restart point.

:func:`~aware3d.training.fit` calls these on rank 0 before the first step:

* :class:`RunLock` holds ``DIR/.lock`` for the run's life (an OS file lock, released by the
  operating system when the process dies, so a lock file left by a dead process is recognised as
  stale and taken over with a message); a second trainer on the same folder is refused.
* :func:`claim_run_folder` refuses to start a new run in a folder that already holds one, unless
  the run resumes or ``overwrite`` moves the old run aside (``DIR.old-<time>``, never deleted).
* :func:`clean_leftovers` removes what killed writers left: unfinished ``.step-*.tmp-<pid>``
  folders, and puts back a ``.step-*.old-<pid>`` copy whose replacement never landed.
* :func:`set_aside_later_checkpoints` moves the checkpoints past a restart point to
  ``checkpoints/abandoned-<time>/``, where resume, eval and render do not look.
* :func:`truncate_log` keeps the records of ``log.jsonl`` up to the restart step, so a resumed
  run logs each step once.
"""

import contextlib
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from aware3d._io import atomic_write_text
from aware3d.training import run_checkpoints as checkpoints

__all__ = [
    "LOCK_FILE",
    "RunFolderError",
    "RunLock",
    "claim_run_folder",
    "clean_leftovers",
    "set_aside_later_checkpoints",
    "truncate_log",
]

LOCK_FILE = ".lock"

try:
    import fcntl
except ImportError:  # Windows: the lock file's process id is checked instead
    fcntl = None


class RunFolderError(RuntimeError):
    """A run folder that this run may not use (busy, or holding another run)."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


class RunLock:
    """``DIR/.lock``, held from ``__enter__`` to ``__exit__`` (one run per folder).

    The file records the holder's process id, host and start time, for the message another
    process gets. Where ``fcntl`` exists the lock is an advisory ``flock`` on the file, which the
    operating system drops when its holder dies; elsewhere the file's existence is the lock and
    a recorded process id that no longer runs makes it stale.

    Args:
        run_dir: the run's folder (created if missing).

    Raises:
        RunFolderError: on ``__enter__``, when another live process holds the folder.
    """

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._descriptor: int | None = None

    def _holder(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            holder = json.loads(self.path.read_text(encoding="utf-8") or "{}")
            if isinstance(holder, dict):
                return holder
        return {}

    def _busy(self, holder: dict[str, Any]) -> RunFolderError:
        who = (
            f"process {holder.get('pid', '?')} on {holder.get('host', '?')} since "
            f"{holder.get('started', '?')}"
        )
        return RunFolderError(
            f"{self.path.parent} is in use by another run ({who}); wait for it to finish, stop "
            f"it, or choose another output folder"
        )

    def _stale_message(self, holder: dict[str, Any]) -> None:
        if holder:
            print(
                f"{self.path}: cleared the stale lock of process {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')} (no longer running)",
                file=sys.stderr,
                flush=True,
            )

    def _record(self) -> str:
        return json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
        )

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is not None:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = self._holder()
                os.close(descriptor)
                raise self._busy(holder) from None
            self._stale_message(self._holder())
            os.ftruncate(descriptor, 0)
            os.write(descriptor, self._record().encode("utf-8"))
            os.fsync(descriptor)
            self._descriptor = descriptor
            return self
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
        for _ in range(2):
            try:
                descriptor = os.open(self.path, flags, 0o666)
            except FileExistsError:
                holder = self._holder()
                if (
                    _pid_alive(int(holder.get("pid", -1)))
                    or holder.get("host", socket.gethostname()) != socket.gethostname()
                ):
                    raise self._busy(holder) from None
                self._stale_message(holder)
                self.path.unlink(missing_ok=True)
                continue
            os.write(descriptor, self._record().encode("utf-8"))
            self._descriptor = descriptor
            return self
        raise self._busy(self._holder())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._descriptor is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._descriptor)  # also releases the flock
        self._descriptor = None


#: Entries of a run folder that are not a run's output.
_NOT_RUN_OUTPUT = {LOCK_FILE}


def claim_run_folder(
    run_dir: str | os.PathLike[str], *, resuming: bool, overwrite: bool
) -> Path | None:
    """Checks that a run may start in ``run_dir`` (call with its :class:`RunLock` held).

    A new run (not ``resuming``) needs an empty or missing folder; with ``overwrite`` the old
    contents are moved to ``<run_dir>.old-<YYYYmmdd-HHMMSS>`` first (nothing is deleted).

    Returns:
        Where the old run was moved, or ``None``.

    Raises:
        RunFolderError: for a folder that holds another run, naming what is there and the
            options.
    """
    folder = Path(run_dir)
    if resuming or not folder.is_dir():
        return None
    entries = sorted(p.name for p in folder.iterdir() if p.name not in _NOT_RUN_OUTPUT)
    if not entries:
        return None
    if not overwrite:
        latest = checkpoints.find_latest_checkpoint(folder)
        what = f"a run up to {latest.name}" if latest is not None else "files"
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise RunFolderError(
            f"{folder} already holds {what} ({shown}); to continue it pass --resume auto "
            f"(resume='auto'), to move it aside pass --overwrite (overwrite=True), or choose "
            f"another output folder"
        )
    aside = folder.with_name(f"{folder.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    suffix = 0
    while aside.exists():
        suffix += 1
        aside = aside.with_name(f"{folder.name}.old-{time.strftime('%Y%m%d-%H%M%S')}-{suffix}")
    aside.mkdir()
    for name in entries:
        os.replace(folder / name, aside / name)
    print(f"moved the previous run in {folder} to {aside}", file=sys.stderr, flush=True)
    return aside


def clean_leftovers(run_dir: str | os.PathLike[str]) -> list[str]:
    """Removes killed writers' temporary checkpoint folders; restores an orphaned old copy.

    Call with the run's :class:`RunLock` held (no other writer exists then).

    Returns:
        One message per action taken.
    """
    folder = Path(run_dir) / checkpoints.CHECKPOINT_FOLDER
    if not folder.is_dir():
        return []
    messages = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if not (name.startswith(".step-") and path.is_dir()):
            continue
        base, _, kind = name[1:].rpartition(".")
        final = folder / base
        if kind.startswith("old-") and not final.exists():
            os.replace(path, final)
            messages.append(f"restored {final.name} from {name} (a replacement never landed)")
        else:
            shutil.rmtree(path, ignore_errors=True)
            messages.append(f"removed {name}, left by a killed writer")
    for message in messages:
        print(f"{folder}: {message}", file=sys.stderr, flush=True)
    return messages


def set_aside_later_checkpoints(run_dir: str | os.PathLike[str], step: int) -> Path | None:
    """Moves the checkpoints after ``step`` to ``checkpoints/abandoned-<time>/``.

    A run restarted from an earlier checkpoint continues from there; its later checkpoints belong
    to the abandoned future, so ``--resume auto``, eval and render must not pick them up.

    Returns:
        The folder they were moved to, or ``None`` when there were none.
    """
    later = [p for p in checkpoints.list_checkpoints(run_dir) if int(p.name[5:]) > step]
    if not later:
        return None
    folder = Path(run_dir) / checkpoints.CHECKPOINT_FOLDER
    aside = folder / f"abandoned-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir(parents=True, exist_ok=True)
    for path in later:
        os.replace(path, aside / path.name)
    names = ", ".join(p.name for p in later)
    print(f"restarting at step {step}: moved {names} to {aside}", file=sys.stderr, flush=True)
    return aside


def truncate_log(run_dir: str | os.PathLike[str], step: int) -> int:
    """Drops the records of ``DIR/log.jsonl`` after ``step`` (and unreadable lines).

    Returns:
        How many records were dropped.
    """
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            keep = isinstance(record, dict) and int(record.get("step", 0)) <= step
        except (ValueError, TypeError):
            keep = False
        if keep:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_text(path, "".join(line + "\n" for line in kept))
    return dropped
