"""`from_directory`: stream a folder of PNG, JPEG, BMP or GIF images with `tf.data`."""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from keras_siamese.datasets import arguments, conversion, image_files, pixel_limit, streaming

_SHOWN = 3  # example files quoted per channel count or size


def from_directory(
    path: str | os.PathLike,
    image_size: int | tuple[int, int] | None,
    channels: int | None = 3,
    labels: str | None = "inferred",
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    on_error: str = "raise",
    class_names: Sequence[str] | None = None,
    max_pixels: int | None = pixel_limit.DEFAULT_MAX_PIXELS,
) -> tf.data.Dataset:
    """Streams the images of a folder as `uint8` in [0, 255], with labels from sub-folders.

    The folder is laid out as `keras.utils.image_dataset_from_directory` expects: with
    `labels="inferred"`, `path/<class>/.../<image>` (classes are the sorted sub-folder names,
    so indices agree with Keras'); with `labels=None`, images at any depth. Hidden files and
    folders are ignored, as are files with other extensions than `.png`, `.jpg`, `.jpeg`,
    `.bmp` and `.gif`.

    Every file's header is read and checked before the dataset is returned (see
    `list_image_files`), so a file that is not an image, is empty or cut short, a folder with
    no images or a single class, and channel counts or sizes that cannot be batched raise
    here, naming the file or argument, before anything is yielded. The dataset then holds only
    file names: it reads, decodes (`tf.io.decode_image`), converts and resizes images in
    parallel in `tf.data`, never loading the folder in memory. Resizing is antialiased
    bilinear, rounded back to `uint8`, as `load(image_size=...)` and the exported serving
    graph do; images already at `image_size` keep their exact pixels. (Keras'
    `image_dataset_from_directory` yields float32 without this check, hence this reader.)

    Channels: grayscale is copied to RGB, RGB becomes grayscale by luma, an alpha channel is
    kept (`channels=4`) or added opaque, but never dropped: a file with alpha read with
    `channels=1` or 3 is an error. For more than 4 channels (multispectral stacks) use
    `from_numpy_files` or `from_tfrecords`.

    Args:
        path: the folder.
        image_size: `(height, width)` or an int (square) to resize to, or None to keep the
            files' size (which must then be the same for all).
        channels: 1, 3 or 4, or None to keep the files' own count (which must then be the
            same for all).
        labels: `"inferred"` (one sub-folder per class, at least two) or None (unlabelled).
        batch_size: batch size (the last batch may be smaller), or None for single images.
        shuffle: reshuffle the file order every epoch (the files, not a window of them).
        seed: the shuffle seed.
        on_error: `"raise"` (default) stops on bad files, naming them; `"skip"` leaves them
            out and counts them in one warning (and, at run time, drops any file the decoder
            still rejects).
        class_names: the class order with `labels="inferred"`, naming every sub-folder
            (e.g. the training folder's classes when reading its test folder).
        max_pixels: the most pixels (width x height, from the header) an image may have;
            4096 x 4096 by default, None for no limit. Larger files are bad files (refused,
            or left out with `on_error="skip"`), never decoded.

    Returns:
        A `tf.data.Dataset` of `uint8` images `[H, W, C]` (batched: `[B, H, W, C]`), or of
        `(image, int64 label)` pairs with `labels="inferred"`. Like Keras' reader it carries
        `class_names` (or None) and `file_paths` (the unshuffled order) attributes.

    Raises:
        TypeError: for arguments of the wrong type.
        ValueError: for bad files (naming them), an empty folder, fewer than two classes,
            mixed channel counts with `channels=None`, alpha channels that `channels` would
            drop, mixed sizes with `image_size=None`, or bad arguments.

    Example:
        >>> dataset = from_directory("photos", image_size=64, batch_size=32)
        >>> images, labels = next(iter(dataset))
        >>> images.shape, images.dtype.name, dataset.class_names
        (TensorShape([32, 64, 64, 3]), 'uint8', ('cats', 'dogs'))
    """
    image_size = arguments.normalize_image_size(image_size)
    channels = arguments.check_channels(channels, allowed=(1, 3, 4))
    batch_size = arguments.check_batching(batch_size, shuffle, seed)
    files = image_files.list_image_files(path, labels, class_names, on_error, max_pixels)
    max_pixels = pixel_limit.check_max_pixels(max_pixels)

    stored = collections.defaultdict(list)
    for file_path, header in zip(files.file_paths, files.headers, strict=True):
        stored[header.channels].append(file_path)
    channels = _output_channels(stored, channels)
    image_size = _output_size(files, image_size)
    convert = set(stored) != {channels}

    def read(element):
        data = tf.io.read_file(element["path"])
        checks = pixel_limit.assert_pixels(
            data, max_pixels, element["path"], "from_directory(max_pixels=...)"
        )
        with tf.control_dependencies(checks):
            image = tf.io.decode_image(data, channels=0, dtype=tf.uint8, expand_animations=False)
        image = conversion.to_channels(image, channels) if convert else image
        image = conversion.resize_uint8(image, image_size)
        return tf.ensure_shape(image, (*image_size, channels))

    dataset = streaming.stream(
        {"path": np.asarray(files.file_paths)},
        read,
        files.labels,
        batch_size,
        shuffle,
        seed,
        on_error,
    )
    dataset.class_names = files.class_names
    dataset.file_paths = list(files.file_paths)
    return dataset


def _examples(paths: list[str]) -> str:
    return ", ".join(paths[:_SHOWN]) + (", ..." if len(paths) > _SHOWN else "")


def _output_channels(stored: dict[int, list[str]], channels: int | None) -> int:
    """The channel count to yield, refusing mixed counts (None) and dropped alpha channels."""
    if channels is None:
        if len(stored) > 1:
            found = "; ".join(
                f"{count} channel(s): {len(paths)} files, e.g. {_examples(paths)}"
                for count, paths in sorted(stored.items())
            )
            raise ValueError(
                "`channels=None` keeps the files' channel count, but the images have mixed "
                f"channel counts ({found}). Pass channels=1, 3 or 4 to convert them. "
                "Received: channels=None"
            )
        return next(iter(stored))
    with_alpha = [path for count in (2, 4) for path in stored.get(count, [])]
    if channels in (1, 3) and with_alpha:
        raise ValueError(
            f"{len(with_alpha)} file(s) have an alpha channel that channels={channels} would "
            f"drop, e.g. {_examples(with_alpha)}. Pass channels=4 (or None) to keep it, or "
            f"remove the alpha channel from the files. Received: channels={channels}"
        )
    return channels


def _output_size(files: image_files.ImageFiles, image_size) -> tuple[int, int]:
    if image_size is not None:
        return image_size
    sizes = collections.defaultdict(list)
    for file_path, header in zip(files.file_paths, files.headers, strict=True):
        sizes[(header.height, header.width)].append(file_path)
    if len(sizes) > 1:
        found = "; ".join(
            f"{height}x{width}: {len(paths)} files, e.g. {_examples(paths)}"
            for (height, width), paths in sorted(sizes.items())
        )
        raise ValueError(
            "`image_size=None` keeps the files' size, but the images have different sizes "
            f"({found}). Pass image_size=(height, width) to resize them. "
            "Received: image_size=None"
        )
    return next(iter(sizes))
