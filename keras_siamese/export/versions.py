"""Version directories of an export: written whole, published with no moment unservable.

TensorFlow Serving loads only complete numeric directories of a model's base path. An export
writes its version into a hidden temporary directory beside them (an
`atomic_files.temporary_name`, `.version-<v>.tmp-<pid>-<random>`), flushes its files, then
publishes it with renames chosen so that a complete numeric version exists at every moment,
even if the process is killed between two of them:

- a new version: one rename, `temporary -> <v>`;
- replacing `<v>` (`overwrite=True`): where the OS offers it (Linux `renameat2`, macOS
  `renamex_np`) the two directories are swapped in one atomic step, so `<v>` never vanishes;
  elsewhere, if another numeric version exists the old `<v>` is renamed aside first (the other
  one stays servable meanwhile), and if `<v>` is the only one it is first renamed to the spare
  version `0`, marked as such, which stays servable until the new `<v>` is in place.

`remove_leftovers`, run by every export before it writes, removes what killed exports left:
temporary directories whose writer no longer runs (`atomic_files.remove_stale`), the
temporary names of earlier releases (`.tmp-<v>-<hex>`, `.old-<v>-<hex>`, once an hour old),
and a spare version `0` (put back as `<v>` if the kill came before the new one was in).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import sys
import time

from keras_siamese import atomic_files

SPARE_VERSION = "0"
SPARE_MARK = ".keras_siamese-spare.json"
_LEGACY = re.compile(r"^\.(tmp|old)-\d+-[0-9a-f]{8}$")  # names of earlier releases
_LEGACY_AGE_S = 3600.0


def numeric_versions(export_dir: str) -> list[int]:
    """Returns the versions found in `export_dir`: its sub-directories named by an integer."""
    if not os.path.isdir(export_dir):
        return []
    return sorted(
        int(entry.name)
        for entry in os.scandir(export_dir)
        if entry.name.isdigit() and entry.is_dir()
    )


def refuse_existing(version_dir: str, version: int) -> None:
    raise ValueError(
        f"Version {version} already exists at {version_dir!r}; pass overwrite=True to "
        f"replace it, or another version. Received: version={version}"
    )


def new_temporary_dir(export_dir: str, version: int) -> str:
    """Creates and returns a hidden temporary directory for `version` in `export_dir`."""
    path = atomic_files.temporary_name(os.path.join(export_dir, f"version-{version}"))
    os.mkdir(path)
    return path


def sync_tree(directory: str) -> None:
    """Flushes every file under `directory` to disk, so a published version is whole."""
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as file:
                os.fsync(file.fileno())


def _remove_tree(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _exchange(first: str, second: str) -> bool:
    """Swaps two directories in one atomic step; False where the OS or file system cannot."""
    flag_swap = 2  # RENAME_EXCHANGE (Linux) and RENAME_SWAP (macOS) are both 2
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
            at_cwd = -100
            result = libc.renameat2(
                at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), flag_swap
            )
        elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
            result = libc.renamex_np(os.fsencode(first), os.fsencode(second), flag_swap)
        else:
            return False
    except OSError:
        return False
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV):
        return False  # not offered here: fall back to renames
    raise OSError(code, f"Could not swap {first} and {second}: {os.strerror(code)}")


def publish(temporary_dir: str, version_dir: str, version: int, overwrite: bool) -> None:
    """Moves the finished `temporary_dir` to `version_dir`, a complete version at every moment.

    Raises:
        ValueError: if `version_dir` exists and `overwrite` is False.
    """
    export_dir = os.path.dirname(version_dir)
    sync_tree(temporary_dir)
    if not os.path.lexists(version_dir):
        os.rename(temporary_dir, version_dir)
    elif not overwrite:
        refuse_existing(version_dir, version)
    elif _exchange(temporary_dir, version_dir):
        _remove_tree(temporary_dir)  # now the old version
    elif [other for other in numeric_versions(export_dir) if other != version]:
        aside = atomic_files.temporary_name(os.path.join(export_dir, f"replaced-{version}"))
        os.rename(version_dir, aside)  # another version stays servable meanwhile
        os.rename(temporary_dir, version_dir)
        _remove_tree(aside)
    else:
        spare = os.path.join(export_dir, SPARE_VERSION)
        with atomic_files.atomic_write(os.path.join(export_dir, SPARE_MARK)) as file:
            json.dump({"version": version, "pid": os.getpid()}, file)
        os.rename(version_dir, spare)  # the old version stays servable as version 0
        os.rename(temporary_dir, version_dir)
        _remove_tree(spare)
        os.remove(os.path.join(export_dir, SPARE_MARK))
    atomic_files._sync_directory(export_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover_spare(export_dir: str) -> list[str]:
    """Puts back or removes a spare version 0 that a killed overwrite left."""
    mark = os.path.join(export_dir, SPARE_MARK)
    try:
        with open(mark, encoding="utf-8") as file:
            record = json.load(file)
        version, pid = int(record["version"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if pid != os.getpid() and _alive(pid):
        return []  # that export still runs
    spare = os.path.join(export_dir, SPARE_VERSION)
    version_dir = os.path.join(export_dir, str(version))
    changed = []
    if os.path.isdir(spare):
        if os.path.isdir(version_dir):
            _remove_tree(spare)
        else:
            os.rename(spare, version_dir)  # the kill came before the new version was in
        changed.append(spare)
    os.remove(mark)
    return changed


def remove_leftovers(export_dir: str) -> list[str]:
    """Removes what killed exports left in `export_dir`; returns the paths removed or restored."""
    if not os.path.isdir(export_dir):
        return []
    removed = _recover_spare(export_dir)
    removed += atomic_files.remove_stale(export_dir)
    now = time.time()
    for name in os.listdir(export_dir):
        path = os.path.join(export_dir, name)
        with contextlib.suppress(FileNotFoundError):
            if _LEGACY.match(name) and now - os.path.getmtime(path) > _LEGACY_AGE_S:
                _remove_tree(path)
                removed.append(path)
    return removed
