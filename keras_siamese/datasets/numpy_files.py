"""`from_numpy_files`: stream a folder of `.npy` image arrays with any channel count."""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.datasets import arguments, conversion, image_files, pixel_limit, streaming
from keras_siamese.datasets.image_headers import InvalidImageError

# The dtypes `tf.io.decode_raw` reads.
_DTYPES = ("uint8", "int8", "uint16", "int16", "int32", "int64", "float16", "float32", "float64")


class ArrayHeader(NamedTuple):
    """What a `.npy` header says: the image size, channels, dtype and data offset."""

    height: int
    width: int
    channels: int
    dtype: np.dtype
    offset: int


def read_npy_header(path: str) -> ArrayHeader:
    """Reads and checks the header of a `.npy` file holding one `[H, W]` or `[H, W, C]` image.

    Raises:
        InvalidImageError: (a `ValueError`) naming the file.
    """
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            offset = file.tell()
            size = os.fstat(file.fileno()).st_size
    except (OSError, ValueError) as error:
        raise InvalidImageError(path, f"is not a readable .npy file ({error}).") from error
    if len(shape) not in (2, 3) or 0 in shape or dtype.name not in _DTYPES:
        raise InvalidImageError(
            path,
            f"holds an array of shape {shape} and dtype {dtype}; expected one image "
            "[height, width] or [height, width, channels] of a numeric dtype "
            f"({', '.join(_DTYPES)}).",
        )
    if fortran_order:
        raise InvalidImageError(
            path,
            "holds a Fortran-ordered array; save it in C order with "
            "`np.save(path, np.ascontiguousarray(array))`.",
        )
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    if size != expected:
        raise InvalidImageError(
            path,
            f"has {size} bytes where its header (shape {shape}, dtype {dtype}) needs "
            f"{expected}: it is truncated or corrupt. Replace it.",
        )
    channels = shape[2] if len(shape) == 3 else 1
    return ArrayHeader(shape[0], shape[1], channels, dtype, offset)


def from_numpy_files(
    path: str | os.PathLike,
    image_size: int | tuple[int, int] | None,
    channels: int | None = None,
    labels: str | None = "inferred",
    value_range: tuple[float, float] | None = None,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    on_error: str = "raise",
    class_names: Sequence[str] | None = None,
    max_pixels: int | None = pixel_limit.DEFAULT_MAX_PIXELS,
) -> tf.data.Dataset:
    """Streams a folder of `.npy` images with any channel count, as `uint8` in [0, 255].

    The way to train on more channels than an image format holds: multispectral stacks
    (e.g. Sentinel-2's 13 bands), RGB + depth or infrared, each image saved with
    `np.save("path/<class>/<name>.npy", image)` as `[height, width, channels]` (or
    `[height, width]` for one channel). The folder layout, labels, checks, shuffling and
    batching are those of `from_directory`; every header is checked before anything is
    yielded, and the pixels are read with `tf.io.decode_raw` in `tf.data`.

    Channels are never converted: all files must have the same count. `uint8` arrays are
    yielded as they are; other dtypes (`uint16` reflectances, floats) need `value_range`,
    mapped linearly to [0, 255], clipped and rounded (the package's models take `uint8`-range
    pixels). The encoders take any channel count (`encoders.resnet(input_shape=(H, W, 13))`).

    Args:
        path: the folder of `.npy` files.
        image_size: `(height, width)` or an int to resize to (antialiased bilinear, per
            channel), or None to keep the files' size (the same for all).
        channels: the expected channel count, or None to take the files'.
        labels: `"inferred"` (one sub-folder per class) or None.
        value_range: `(low, high)` of the stored values, mapped to 0 and 255; required for
            non-`uint8` files, None for `uint8`.
        batch_size: batch size, or None for single images.
        shuffle: reshuffle the file order every epoch.
        seed: the shuffle seed.
        on_error: `"raise"` or `"skip"` (bad files left out with one warning).
        class_names: the class order with `labels="inferred"`.
        max_pixels: the most pixels (height x width, from the `.npy` header) a file may
            hold; 4096 x 4096 by default, None for no limit.

    Returns:
        A dataset of `uint8` images `[H, W, C]` (or `(image, int64 label)` pairs), with
        `class_names` and `file_paths` attributes as `from_directory`.

    Raises:
        ValueError: for bad files (naming them), an empty folder, fewer than two classes,
            mixed channel counts, dtypes or sizes, a channel count other than `channels`, a
            missing or bad `value_range`.

    Example:
        >>> dataset = from_numpy_files("bands", image_size=64, value_range=(0, 10000))
        >>> images, labels = next(iter(dataset.batch(8)))
        >>> images.shape
        TensorShape([8, 64, 64, 13])
    """
    image_size = arguments.normalize_image_size(image_size)
    if channels is not None:
        channels = validation.check_integer("channels", channels, minimum=1)
    batch_size = arguments.check_batching(batch_size, shuffle, seed)
    value_range = _check_value_range(value_range)
    files = image_files.list_files(
        path, labels, class_names, on_error, (".npy",), read_npy_header, max_pixels
    )
    headers = files.headers
    channels, dtype, size = _common_format(files, path, image_size, channels, value_range)
    resize = image_size is not None and any(
        (header.height, header.width) != image_size for header in headers
    )
    read = _reader(dtype, channels, value_range, resize, image_size or size)
    elements = {
        "path": np.asarray(files.file_paths),
        "offset": np.asarray([header.offset for header in headers], np.int64),
        "height": np.asarray([header.height for header in headers], np.int32),
        "width": np.asarray([header.width for header in headers], np.int32),
    }
    dataset = streaming.stream(elements, read, files.labels, batch_size, shuffle, seed, on_error)
    dataset.class_names = files.class_names
    dataset.file_paths = list(files.file_paths)
    return dataset


def _common_format(files, path, image_size, channels, value_range):
    """Checks that the files share one channel count, dtype (and size when kept); returns them.

    Returns:
        `(channels, dtype, size)`: the files' channel count, `np.dtype` and the first size.
    """
    by_channels = _group(files, lambda header: header.channels)
    by_dtype = _group(files, lambda header: header.dtype.str)
    by_size = _group(files, lambda header: (header.height, header.width))
    for found, what in ((by_channels, "channel counts"), (by_dtype, "dtypes")):
        if len(found) > 1:
            raise ValueError(
                f"The .npy files under `path` have mixed {what} ({_listing(found)}); "
                f"from_numpy_files converts neither, so save every image alike. "
                f"Received: path={_root(path)!r}"
            )
    if image_size is None and len(by_size) > 1:
        raise ValueError(
            f"`image_size=None` keeps the files' size, but they differ ({_listing(by_size)}). "
            "Pass image_size=(height, width) to resize them. Received: image_size=None"
        )
    file_channels = next(iter(by_channels))
    if channels is not None and channels != file_channels:
        raise ValueError(
            f"The .npy files have {file_channels} channels, and from_numpy_files does not "
            f"convert channels. Received: channels={channels}"
        )
    dtype = np.dtype(next(iter(by_dtype)))
    size = next(iter(by_size))
    if value_range is None and dtype != np.uint8:
        raise ValueError(
            f"The .npy files hold {dtype} arrays; pass value_range=(low, high) to map them "
            "linearly to [0, 255] (e.g. (0, 10000) for reflectances, (0.0, 1.0) for floats). "
            "Received: value_range=None"
        )
    return file_channels, dtype, size


def _reader(dtype: np.dtype, channels: int, value_range, resize: bool, out_size):
    """The `tf.data` function reading one file's pixels as `uint8` `[*out_size, channels]`."""

    def read(element):
        data = tf.strings.substr(tf.io.read_file(element["path"]), element["offset"], -1)
        values = tf.io.decode_raw(data, tf.as_dtype(dtype.name), little_endian=dtype.str[0] != ">")
        image = tf.reshape(values, tf.stack([element["height"], element["width"], channels]))
        if value_range is not None:
            low, high = value_range
            scaled = (tf.cast(image, tf.float32) - low) * (255.0 / (high - low))
            image = tf.cast(tf.clip_by_value(tf.round(scaled), 0.0, 255.0), tf.uint8)
        if resize:
            image = conversion.resize_uint8(image, out_size)
        return tf.ensure_shape(image, (*out_size, channels))

    return read


def _check_value_range(value_range):
    if value_range is None:
        return None
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
        raise ValueError(
            "`value_range` must be None or a (low, high) pair of numbers. "
            f"Received: value_range={value_range!r}"
        )
    low = validation.check_number("value_range[0]", value_range[0])
    high = validation.check_number("value_range[1]", value_range[1])
    if not low < high:
        raise ValueError(
            f"`value_range` must have low < high. Received: value_range={value_range!r}"
        )
    return low, high


def _root(path) -> str:
    return os.path.abspath(os.fspath(path))


def _group(files: image_files.ImageFiles, key) -> dict:
    """The files' paths grouped by `key(header)`."""
    found = collections.defaultdict(list)
    for file_path, header in zip(files.file_paths, files.headers, strict=True):
        found[key(header)].append(file_path)
    return found


def _listing(found: dict) -> str:
    return "; ".join(
        f"{value}: {len(paths)} files, e.g. {paths[0]}" for value, paths in sorted(found.items())
    )
