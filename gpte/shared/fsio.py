"""Crash-safe file-system primitives: atomic writes (write, fsync, rename) and a writer lock.

Everything gpte persists (models, indexes, manifests) goes through these helpers, so a crash or a full disk in the
middle of a save never leaves a half-written file where a good one stood.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

__all__ = ["umask_mode", "atomic_directory", "atomic_write_bytes", "atomic_write_json", "atomic_writer", "fsync_dir", "writer_lock", "LockedError"]


class LockedError(RuntimeError):
    """Another process holds the writer lock of a directory."""


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so that renames inside it survive a power loss (no-op where unsupported)."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[Any]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    On any exception the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, umask_mode(0o666))  # the mode open() would give, not mkstemp's 0o600
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


def umask_mode(base: int = 0o777) -> int:
    """``base`` less the process umask: the mode a plain ``mkdir`` would give."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory in a temporary sibling, fsync it, then swap it in for ``path``.

    On an exception the temporary directory is removed and ``path`` is untouched. The swap renames the old
    directory aside, renames the new one in and then deletes the old one; should the second rename fail, the old
    directory is renamed back. The new directory gets the usual permissions (``0o777`` less the umask), not the
    ``0o700`` of a temporary directory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, umask_mode())
    old: Path | None = None
    try:
        yield tmp
        _usual_modes(tmp)
        _fsync_tree(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        if old is not None and not path.exists():
            os.replace(old, path)  # put the previous directory back
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _usual_modes(root: Path) -> None:
    """Give every file and folder under ``root`` the mode a plain ``open``/``mkdir`` would (libraries such as
    safetensors create their files ``0o600``)."""
    file_mode, dir_mode = umask_mode(0o666), umask_mode()
    for dirpath, dirs, files in os.walk(root):
        for name in dirs:
            os.chmod(os.path.join(dirpath, name), dir_mode)
        for name in files:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, file_mode)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path, "wb") as fh:
        fh.write(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))


@contextlib.contextmanager
def writer_lock(directory: str | os.PathLike[str], timeout: float = 0.0) -> Iterator[None]:
    """Hold the exclusive writer lock ``<directory>/.lock``; raise :class:`LockedError` if another writer has it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / ".lock"), timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise LockedError(
            f"{directory} is locked by another writer (lock file {directory / '.lock'}); "
            "wait for it to finish, or open the index read-only"
        ) from exc
    try:
        yield
    finally:
        lock.release()
