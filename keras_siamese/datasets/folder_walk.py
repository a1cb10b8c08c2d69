"""Lists the files under class folders, following each real directory at most once.

`os.walk(followlinks=True)` follows a symbolic link every time it meets one: `a/loop -> .`
lists `a`'s images again at every depth until the path is too long (6 files became 126
training images), two such loops never finish, and `a/up -> ..` files class `b`'s images
under class `a`. Here a directory is identified by its real identity, `(st_dev, st_ino)`,
and listed at most once:

1. the data folder and every class folder are marked as seen first, so a link to the root or
   to another class is never followed (it would relabel images);
2. the class folders' own trees are listed without following links, marking each directory;
3. the links to directories met on the way are then followed, breadth first in listing
   order, each only if its target has not been seen, and the trees behind them likewise.

Links to files are kept (a class folder of links to files elsewhere is a common layout).
Links that were not followed are returned, so the reader can say so.
"""

from __future__ import annotations

import os
from collections import deque

_FILE, _FOLDER = 0, 1  # files of a folder come before its sub-folders, as in os.walk


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _identity(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None  # a broken link or a vanished folder
    return status.st_dev, status.st_ino


def walk_folders(
    tops: list[str], extensions: tuple[str, ...], root: str | None = None
) -> tuple[list[list[str]], list[str]]:
    """The files under each of `tops` ending in one of `extensions`, each directory once.

    Args:
        tops: the folders to list, one group each (the class folders, or the data folder).
        extensions: lower-case file endings to keep.
        root: the data folder holding `tops`, never listed again through a link.

    Returns:
        `(groups, skipped_links)`: per top, its files in `os.walk` order (a folder's files
        sorted, then its sub-folders' trees in sorted order; paths through links as
        linked), and the links to directories that were not followed (already listed).
    """
    seen = {_identity(root)} if root is not None else set()
    found: list[list[tuple[tuple, str]]] = [[] for _ in tops]
    links: deque = deque()
    skipped: list[str] = []
    for index, top in enumerate(tops):
        identity = _identity(top)
        if identity in seen:
            skipped.append(top)  # e.g. two class folders linking to one directory
            continue
        seen.add(identity)
        _list_tree(top, (), index, extensions, seen, found, links)
    while links:
        index, link, key = links.popleft()
        identity = _identity(link)
        if identity is None or identity in seen:
            skipped.append(link)
            continue
        seen.add(identity)
        _list_tree(link, key, index, extensions, seen, found, links)
    return [[path for _, path in sorted(group)] for group in found], skipped


def _list_tree(top, key, index, extensions, seen, found, links) -> None:
    """Lists `top`'s tree without following links; queues the links to directories."""
    pending = [(top, key)]
    while pending:
        directory, directory_key = pending.pop()
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError:
            continue  # unreadable: its files cannot be read either
        for entry in entries:
            if not _visible(entry.name):
                continue
            entry_key = (*directory_key, (_FOLDER, entry.name))
            if entry.is_dir(follow_symlinks=True):
                if entry.is_symlink():
                    links.append((index, entry.path, entry_key))
                    continue
                identity = _identity(entry.path)
                if identity not in seen:
                    seen.add(identity)
                    pending.append((entry.path, entry_key))
            elif entry.name.lower().endswith(extensions):
                found[index].append(((*directory_key, (_FILE, entry.name)), entry.path))
