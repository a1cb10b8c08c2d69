"""Lists the files of a folder, with labels from sub-folders, checking every file's header.

The readers of folders (`from_directory`, `from_numpy_files`) list and check all files with
`list_files` before they build a `tf.data` pipeline, so every problem that a header shows is
reported before a single image is yielded, and the pipeline only holds file paths.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from keras_siamese.datasets import arguments, folder_walk, image_headers, pixel_limit

_SHOWN = 5  # bad files quoted in a message


class ImageFiles(NamedTuple):
    """The files a folder reader streams, in their unshuffled order.

    Attributes:
        file_paths: absolute paths.
        labels: `int64` class indices `[N]` (the position of the sub-folder in
            `class_names`), or None for unlabelled files.
        class_names: the sub-folder names, sorted (or as given), or None.
        headers: what each file's header says (`ImageHeader` for images).
        skipped: the files left out with `on_error="skip"`, each as `"path reason"`.
    """

    file_paths: tuple[str, ...]
    labels: np.ndarray | None
    class_names: tuple[str, ...] | None
    headers: tuple[Any, ...]
    skipped: tuple[str, ...]


def list_image_files(
    path: str | os.PathLike,
    labels: str | None = "inferred",
    class_names: Sequence[str] | None = None,
    on_error: str = "raise",
    max_pixels: int | None = pixel_limit.DEFAULT_MAX_PIXELS,
) -> ImageFiles:
    """Lists and checks the PNG, JPEG, BMP and GIF files under a folder, as `from_directory`.

    Use it to know what `from_directory(path, ..., shuffle=False)` yields, in order: the file
    paths (e.g. as the ids of a retrieval gallery), the labels and the class names.

    Symbolic links are followed, each real directory (device, inode) at most once: a link
    back to a folder already listed (`a/loop -> .`, `a/up -> ..`, a link to another class)
    is not followed, so a loop never repeats or relabels images, and a warning names it.

    Args:
        path: the folder. With `labels="inferred"` each sub-folder is a class (images at
            any depth below it); with `labels=None` every image at any depth.
        labels: `"inferred"` or None.
        class_names: with `labels="inferred"`, the class order (it must name exactly the
            sub-folders); sorted sub-folder names when None, as
            `keras.utils.image_dataset_from_directory` orders them.
        on_error: `"raise"` or `"skip"`, for files whose header shows they are not complete
            images TensorFlow decodes, or have more than `max_pixels` pixels.
        max_pixels: the most pixels (width x height, read from the header, never decoded)
            an image may have; 4096 x 4096 by default, None for no limit. A 1 MB PNG can
            declare 20000 x 20000 pixels, 1.2 GB once decoded.

    Returns:
        An `ImageFiles` tuple.

    Raises:
        ValueError: naming the bad files, or for an empty folder, a single class, an empty
            class folder or `class_names` that do not match the sub-folders.

    Example:
        >>> files = list_image_files("photos", labels="inferred")
        >>> files.class_names, len(files.file_paths)
        (('cats', 'dogs'), 120)
    """
    return list_files(
        path,
        labels,
        class_names,
        on_error,
        image_headers.EXTENSIONS,
        image_headers.read_header,
        max_pixels,
    )


def list_files(
    path,
    labels,
    class_names,
    on_error,
    extensions: tuple[str, ...],
    read_header: Callable[[str], Any],
    max_pixels: int | None = pixel_limit.DEFAULT_MAX_PIXELS,
) -> ImageFiles:
    """`list_image_files` for any file kind: `extensions` and a header reader raising
    `image_headers.InvalidImageError` (its header has `height` and `width`)."""
    path = arguments.check_directory(path)
    arguments.check_labels(labels)
    arguments.check_on_error(on_error)
    max_pixels = pixel_limit.check_max_pixels(max_pixels)
    if labels is None:
        if class_names is not None:
            raise ValueError(
                "`class_names` orders the sub-folder classes, so it needs labels='inferred'. "
                f"Received: class_names={class_names!r} with labels=None"
            )
        names, tops, root = None, [path], None
    else:
        names = _classes(path, class_names, extensions)
        tops, root = [os.path.join(path, name) for name in names], path
    groups, skipped_links = folder_walk.walk_folders(tops, extensions, root)
    if skipped_links:
        _warn_links(skipped_links, path)
    listed = sum(len(group) for group in groups)
    if listed == 0:
        raise ValueError(_empty_message(path, extensions, labels))
    file_paths, label_list, headers, bad = _check_headers(groups, read_header, max_pixels)
    if bad:
        _report(bad, listed, path, on_error)
    if not file_paths:
        raise ValueError(
            f"`path` holds no readable files: all {listed} were skipped as invalid. "
            f"Received: path={path!r}"
        )
    if names is not None:
        counts = np.bincount(label_list, minlength=len(names))
        if not counts.all():
            empty = [name for name, count in zip(names, counts, strict=True) if count == 0]
            raise ValueError(
                f"Class folders {empty} under `path` hold no readable files; every class needs "
                f"at least one. Remove them or add files. Received: path={path!r}"
            )
    return ImageFiles(
        file_paths=tuple(file_paths),
        labels=None if names is None else np.asarray(label_list, np.int64),
        class_names=names,
        headers=tuple(headers),
        skipped=tuple(bad),
    )


def _check_headers(groups, read_header, max_pixels):
    """Reads every file's header: `(file_paths, labels, headers, bad)` (bad: messages)."""
    file_paths, label_list, headers, bad = [], [], [], []
    for index, group in enumerate(groups):
        for file_path in group:
            try:
                header = read_header(file_path)
            except image_headers.InvalidImageError as error:
                bad.append(str(error))
                continue
            reason = pixel_limit.too_many_pixels(header.height, header.width, max_pixels)
            if reason is not None:
                bad.append(f"{file_path} {reason}")
                continue
            headers.append(header)
            file_paths.append(file_path)
            label_list.append(index)
    return file_paths, label_list, headers, bad


def _warn_links(links: list[str], path: str) -> None:
    shown = ", ".join(f"{link} -> {os.path.realpath(link)}" for link in links[:_SHOWN])
    more = f" and {len(links) - _SHOWN} more" if len(links) > _SHOWN else ""
    warnings.warn(
        f"{len(links)} symbolic link(s) under {path} lead to folders already listed (a loop, "
        f"a link to the data folder or to another class) and were not followed: {shown}{more}.",
        stacklevel=4,
    )


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _has_files(directory: str, extensions: tuple[str, ...]) -> bool:
    return bool(folder_walk.walk_folders([directory], extensions)[0][0])


def _classes(path, class_names, extensions):
    folders = sorted(
        name
        for name in os.listdir(path)
        if _visible(name) and os.path.isdir(os.path.join(path, name))
    )
    if class_names is not None:
        if (
            isinstance(class_names, str)
            or len(set(class_names)) != len(class_names)
            or set(class_names) != set(folders)
        ):
            raise ValueError(
                "`class_names` must name each sub-folder of `path` exactly once (the classes "
                f"found are {folders}). Received: class_names={class_names!r}"
            )
        folders = [str(name) for name in class_names]
    if len(folders) < 2:
        if not _has_files(path, extensions):
            raise ValueError(_empty_message(path, extensions, None))
        found = "no sub-folders" if not folders else f"one sub-folder, {folders[0]!r}"
        raise ValueError(
            f"labels='inferred' reads one sub-folder per class, and a labelled dataset needs at "
            f"least two classes, but {path!r} has {found}. Arrange the images as "
            "path/<class>/<image>, or pass labels=None to read them unlabelled. "
            "Received: labels='inferred'"
        )
    loose = [
        name
        for name in os.listdir(path)
        if _visible(name)
        and name.lower().endswith(extensions)
        and os.path.isfile(os.path.join(path, name))
    ]
    if loose:
        warnings.warn(
            f"{len(loose)} files directly in {path} (e.g. {sorted(loose)[0]!r}) are in no class "
            "folder and are left out (labels='inferred').",
            stacklevel=4,
        )
    return tuple(folders)


def _empty_message(path: str, extensions: tuple[str, ...], labels) -> str:
    where = "in its class sub-folders" if labels == "inferred" else "at any depth"
    others = [name for _, _, files in os.walk(path) for name in files][:3]
    hint = f" (other files found, e.g. {others})" if others else ""
    return (
        f"`path` holds no files ending in {', '.join(extensions)} {where}{hint}. "
        f"Received: path={path!r}"
    )


def _report(bad: list[str], listed: int, path: str, on_error: str) -> None:
    shown = "\n  ".join(bad[:_SHOWN])
    more = f"\n  ... and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    if on_error == "skip":
        warnings.warn(
            f"Skipped {len(bad)} of {listed} files under {path} that are not readable:\n  "
            f"{shown}{more}",
            stacklevel=4,
        )
        return
    raise ValueError(
        f"{len(bad)} of {listed} files under {path} are not readable:\n  {shown}{more}\n"
        "Remove or replace them, or pass on_error='skip' to leave them out. "
        "Received: on_error='raise'"
    )
