"""Safe files for interrupted and concurrent runs.

- Every file is written into a uniquely named temporary file beside it (``.<name>.<pid>.<random>.tmp``,
  created with the usual permissions, so the umask applies) and renamed over the target: an interrupted
  write never leaves a half-written file that is later read as finished, and two processes never write
  into the same file. Temporary files left by a process that died are removed on the next write.
- Folders are checked before use (:func:`ensure_dir`), so a file in the way or a read-only folder is a
  one-line error, not a traceback later.
- A folder being written by one run (the image cache, an experiment) is locked (:func:`locked`, an
  ``flock`` through the ``filelock`` package): another run waits for it, or stops with a clear message.
- JSON is strict: NaN and infinities are written as ``null`` (:func:`json_safe`).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

LOCK_FILE = ".lock"


class StorageError(OSError):
    """A folder that can't be used for writing (a file in the way, not writable); one-line message."""


class FolderBusy(RuntimeError):
    """Another run holds the lock of a folder this run must not share."""


def temp_path(path: str | os.PathLike, folder: bool = False) -> Path:
    """A new, empty, uniquely named file (or folder) beside ``path``, to be renamed over ``path`` when complete."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    if folder:
        tmp.mkdir()
    else:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> None:
    """Remove the temporary files (and folders) of ``path`` left by processes that no longer run."""
    path = Path(path)
    prefix = f".{path.name}."
    with contextlib.suppress(FileNotFoundError):
        for entry in path.parent.iterdir():
            if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
                continue
            pid = entry.name[len(prefix):-len(".tmp")].partition(".")[0]
            if pid.isdigit() and _alive(int(pid)):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()


def _replace_from_temp(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    remove_stale_temps(path)


def json_safe(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by None, so that it serialises as strict JSON."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(v) for v in data]
    return data


def write_json(path: str | os.PathLike, data: Any, indent: int | None = 2) -> None:
    """Write ``data`` as strict JSON (NaN and infinities as null) to ``path`` atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "w") as f:
            json.dump(json_safe(data), f, indent=indent, default=str, allow_nan=False)
    _replace_from_temp(Path(path), write)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    _replace_from_temp(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def copy_file(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Copy the bytes of ``source`` to ``path`` atomically."""
    _replace_from_temp(Path(path), lambda tmp: shutil.copyfile(source, tmp))


def torch_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` to ``path`` atomically; the same object gives the same bytes wherever it is saved."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object, not a path: the archive's inner folder would be the temp name
            torch.save(obj, f)
    _replace_from_temp(Path(path), write)


def ensure_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    """``path`` as an existing writable folder (created if missing), else a one-line :class:`StorageError`."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StorageError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {what} {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StorageError(f"{what} {path} is not writable")
    return path


@contextlib.contextmanager
def locked(lock_file: str | os.PathLike, message: str, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` while the block runs.

    When another process holds it: with ``wait``, print ``message`` to stderr and wait for it; without,
    raise :class:`FolderBusy` with ``message``.
    """
    lock = FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise FolderBusy(message) from None
        print(message, file=sys.stderr, flush=True)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
