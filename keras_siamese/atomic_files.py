"""Files that are whole or absent: written under a temporary name, flushed, then renamed.

Every file the package writes (models, backups, JSON, CSV, plots, export configs) goes
through one of these, so a process killed at any moment leaves either the previous complete
file or the new complete one, never half of one (POSIX `rename` replaces a file atomically
within a directory). The temporary name starts with a dot and holds `.tmp-`, so readers that
list a directory can skip it (`is_temporary`), and `remove_stale` clears those a killed
writer left.

Example:
    >>> with atomic_write("results.json") as file:
    ...     file.write("{}")
    >>> with atomic_path("model.keras") as temporary:   # for writers that take a path
    ...     model.save(temporary)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO

TEMPORARY_MARK = ".tmp-"


def is_temporary(name: str) -> bool:
    """Whether `name` (a file or directory name) is one of our temporary names."""
    base = os.path.basename(name)
    return base.startswith(".") and TEMPORARY_MARK in base


def _sync_directory(directory: str) -> None:
    """Flushes a directory's entries (the rename) to disk where the OS allows it."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows: directories cannot be opened
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename stands
    finally:
        os.close(descriptor)


def _sync_file(file_path: str) -> None:
    with open(file_path, "rb") as file:
        os.fsync(file.fileno())


def temporary_name(target: str) -> str:
    """A fresh temporary path beside `target`, keeping its extension (Keras needs
    `.keras` / `.weights.h5`): `dir/.name.tmp-PID-XXXXXXXX.ext` (PID: the writer's)."""
    directory, base = os.path.split(os.path.abspath(target))
    stem, extension = base, ""
    for suffix in (".weights.h5", ".keras", ".json", ".csv", ".png", ".h5", ".npy", ".txt"):
        if base.endswith(suffix):
            stem, extension = base[: -len(suffix)], suffix
            break
    descriptor, path = tempfile.mkstemp(
        prefix=f".{stem}{TEMPORARY_MARK}{os.getpid()}-", suffix=extension, dir=directory
    )
    os.close(descriptor)
    os.remove(path)  # the writer creates it; the name is ours
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path to write `target` to; renames it over `target` on success.

    For writers that take a path (`model.save`, `savefig`). On an exception the temporary
    file is removed and `target` is left as it was.

    Args:
        target: the file to (re)write; its directory must exist.

    Yields:
        The temporary path (same directory and extension).

    Raises:
        FileNotFoundError: naming the file, if the writer wrote nothing there.
    """
    target = os.fspath(target)
    temporary = temporary_name(target)
    try:
        yield temporary
        if not os.path.isfile(temporary):
            raise FileNotFoundError(
                f"Nothing was written to {temporary} for {target}: the writer must create "
                f"the file at the path it is given. Received: target={target!r}"
            )
        _sync_file(temporary)
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    _sync_directory(os.path.dirname(os.path.abspath(target)))


@contextlib.contextmanager
def atomic_write(
    target: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO]:
    """Opens a temporary file for writing; on success flushes it and renames it to `target`.

    Args:
        target: the file to (re)write.
        mode: "w" (text) or "wb" (bytes).
        encoding: text encoding (ignored for "wb").

    Yields:
        The open file.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"`mode` must be 'w' or 'wb'. Received: mode={mode!r}")
    with atomic_path(target) as temporary:
        options = {} if mode == "wb" else {"encoding": encoding, "newline": ""}
        with open(temporary, mode, **options) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())


def _writer_alive(name: str) -> bool:
    """Whether the process that owns temporary `name` still runs on this machine."""
    try:
        pid = int(name.split(TEMPORARY_MARK, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return False  # not ours to judge: an old or foreign name
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def remove_stale(directory: str) -> list[str]:
    """Removes the temporary files and directories killed writers left in `directory`.

    Only names that `is_temporary` recognises are touched, and only those whose writer no
    longer runs (the PID in the name), so a concurrent writer keeps its file.
    Returns the removed paths.
    """
    import shutil

    removed = []
    if not os.path.isdir(directory):
        return removed
    for name in os.listdir(directory):
        if not is_temporary(name) or _writer_alive(name):
            continue
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        removed.append(path)
    return removed
