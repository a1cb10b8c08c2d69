"""Datasets: Fashion-MNIST from local IDX files, everything else from TensorFlow Datasets.

`load()` returns an unbatched `tf.data.Dataset` of `(image, label)` pairs (or of images
alone with `as_supervised=False`). Images are always `uint8` in `[0, 255]` with shape
`(height, width, channels)`; labels are `int64` scalars. Nothing here rescales pixels:
the models divide by 255 themselves, so the same pipeline feeds training, evaluation
and export.

Fashion-MNIST (Xiao et al., 2017, https://arxiv.org/abs/1708.07747) is read straight from
the four gzipped IDX files of the original release, looked up in order in
`$KERAS_SIAMESE_DATA_DIR`, `/usr/share/datasets/fashion-mnist` (the Debian/Ubuntu package
`dataset-fashion-mnist`) and `~/.keras/datasets/fashion-mnist`. Nothing is ever downloaded:
any other name goes to `tensorflow_datasets.load(..., download=False)`, so a TFDS dataset must
have been prepared beforehand (`tfds build NAME` on a machine with internet access).
"""

from __future__ import annotations

import difflib
import functools
import gzip
import numbers
import os
import re
import zlib
from typing import NamedTuple

import numpy as np
import tensorflow as tf

FASHION_MNIST = "fashion_mnist"

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

DATA_DIR_VARIABLE = "KERAS_SIAMESE_DATA_DIR"

# Searched after `$KERAS_SIAMESE_DATA_DIR`, in this order.
FASHION_MNIST_DIRS = (
    "/usr/share/datasets/fashion-mnist",
    "~/.keras/datasets/fashion-mnist",
)

_FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions.
_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension.

_SPLIT_PART = re.compile(r"^(?P<name>\w+)(?:\[(?P<start>[^:\]]*):(?P<stop>[^:\]]*)\])?$")
_SPLIT_BOUND = re.compile(r"^(?P<value>-?\d+)(?P<percent>%?)$")


def load(
    name: str,
    split: str = "train",
    as_supervised: bool = True,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
) -> tf.data.Dataset:
    """Loads an image classification dataset as an unbatched `tf.data.Dataset`.

    `"fashion_mnist"` is parsed from the local IDX files (see the module docstring);
    any other name is passed to `tensorflow_datasets.load(name, split=split,
    as_supervised=as_supervised, download=False)`, with non-`uint8` images converted by
    `tf.image.convert_image_dtype` and labels cast to `int64`.

    Splits are `"train"` (60000 examples) and `"test"` (10000) for Fashion-MNIST,
    with the TFDS slicing forms `"train[:1000]"`, `"train[1000:]"`, `"test[10:20]"`,
    `"test[:10%]"` (percentages round to the closest example, negative bounds count
    from the end) and concatenations such as `"train+test"`.

    Args:
        name: `"fashion_mnist"` or any name from `tfds.list_builders()`.
        split: the split to read, optionally sliced (see above).
        as_supervised: if True the elements are `(image, label)`; otherwise images only.
        image_size: if given, an int (square) or `(height, width)`: images are resized
            with antialiased bilinear interpolation, then rounded and clipped back to
            `uint8`.
        channels: if given, 1 or 3: grayscale images become RGB (1 -> 3) or RGB images
            become grayscale (3 -> 1); the same count as the input leaves them unchanged.

    Returns:
        An unbatched dataset of `(uint8 image [H, W, C], int64 label)` when
        `as_supervised`, else of `uint8` images `[H, W, C]`.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: for an unknown dataset name or split, a non-positive size, an
            unsupported channel conversion, or a corrupt Fashion-MNIST file.
        FileNotFoundError: if the Fashion-MNIST files are in none of the searched
            directories, or a TFDS dataset has not been prepared.

    Example:
        >>> dataset = load("fashion_mnist", split="test[:8]", image_size=16, channels=3)
        >>> images, labels = next(iter(dataset.batch(8)))
        >>> images.shape, images.dtype.name, labels.dtype.name
        (TensorShape([8, 16, 16, 3]), 'uint8', 'int64')
    """
    _validate_name(name)
    _validate_split(split)
    if not isinstance(as_supervised, bool):
        raise TypeError(
            f"`as_supervised` must be a bool. Received: as_supervised={as_supervised!r}"
        )
    image_size = _normalize_image_size(image_size)
    _validate_channels(channels)

    if _is_fashion_mnist(name):
        images, labels = load_arrays(FASHION_MNIST, split)
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    else:
        dataset = _load_tfds(name, split, as_supervised)

    image_shape = dataset.element_spec[0].shape
    input_channels = image_shape[-1] if image_shape.rank else None
    convert = _image_converter(input_channels, image_size, channels)
    if as_supervised:
        return dataset.map(
            lambda image, label: (convert(image), label),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return dataset.map(
        lambda image, label: convert(image),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def load_arrays(name: str = FASHION_MNIST, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Loads a Fashion-MNIST split as numpy arrays.

    The files are parsed once per process (cached on path, modification time and size)
    and the arrays are read-only views of that cache: copy them before writing.

    Args:
        name: `"fashion_mnist"` (the only dataset held as local arrays).
        split: `"train"`, `"test"`, a slice such as `"train[:1000]"` or `"test[:10%]"`,
            or a concatenation such as `"train+test"`.

    Returns:
        `(images, labels)`: `uint8` images `[N, 28, 28, 1]` in `[0, 255]` and `int64`
        labels `[N]` in `[0, 9]` (names in `FASHION_MNIST_CLASSES`).

    Raises:
        TypeError: if `name` or `split` is not a string.
        ValueError: for another dataset name, an unknown split, or a corrupt file.
        FileNotFoundError: if the files are in none of the searched directories.

    Example:
        >>> images, labels = load_arrays("fashion_mnist", "test[:100]")
        >>> images.shape, labels.shape
        ((100, 28, 28, 1), (100,))
    """
    _validate_name(name)
    _validate_split(split)
    if not _is_fashion_mnist(name):
        raise ValueError(
            "`load_arrays` reads only 'fashion_mnist'; use `load(name, split)` for TFDS "
            f"datasets. Received: name={name!r}"
        )
    parts = _parse_fashion_mnist_split(split)
    directory = _find_fashion_mnist_directory(sorted({part.name for part in parts}))
    image_chunks, label_chunks = [], []
    for part in parts:
        images, labels = _read_fashion_mnist_split(directory, part.name)
        selected = _select(range(len(labels)), part, split)
        image_chunks.append(images[selected.start : selected.stop])
        label_chunks.append(labels[selected.start : selected.stop])
    if len(parts) == 1:
        return image_chunks[0], label_chunks[0]
    return np.concatenate(image_chunks), np.concatenate(label_chunks)


def num_classes(name: str) -> int:
    """Returns the number of classes of a dataset.

    Args:
        name: `"fashion_mnist"` or a TFDS name whose label is a `ClassLabel`.

    Returns:
        10 for Fashion-MNIST; for TFDS, `num_classes` of the label feature (read from the
        builder's metadata, which works offline).

    Raises:
        TypeError: if `name` is not a string.
        ValueError: for an unknown name or a dataset without a class label.

    Example:
        >>> num_classes("fashion_mnist")
        10
    """
    _validate_name(name)
    if _is_fashion_mnist(name):
        return len(FASHION_MNIST_CLASSES)
    _check_tfds_name(name)
    import tensorflow_datasets as tfds

    info = tfds.builder(name).info
    label_key = info.supervised_keys[1] if info.supervised_keys else "label"
    features = info.features
    label = features[label_key] if label_key in features.keys() else None
    if not isinstance(label, tfds.features.ClassLabel):
        raise ValueError(
            f"Dataset {name!r} has no class label feature {label_key!r}. "
            f"Received: name={name!r}"
        )
    return label.num_classes


# ----------------------------------------------------------------------------- arguments


def _validate_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string such as 'fashion_mnist'. Received: name={name!r}")


def _validate_split(split: object) -> None:
    if not isinstance(split, str):
        raise TypeError(
            f"`split` must be a string such as 'train' or 'test[:10%]'. Received: split={split!r}"
        )


def _is_positive_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _normalize_image_size(image_size: object) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, numbers.Integral) and not isinstance(image_size, bool):
        size = (image_size, image_size)
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2 and all(
        isinstance(side, numbers.Integral) and not isinstance(side, bool) for side in image_size
    ):
        size = tuple(image_size)
    else:
        raise TypeError(
            "`image_size` must be None, an int or a (height, width) pair of ints. "
            f"Received: image_size={image_size!r}"
        )
    if not all(side > 0 for side in size):
        raise ValueError(
            f"`image_size` must be positive. Received: image_size={image_size!r}"
        )
    return int(size[0]), int(size[1])


def _validate_channels(channels: object) -> None:
    if channels is None:
        return
    if not isinstance(channels, numbers.Integral) or isinstance(channels, bool):
        raise TypeError(f"`channels` must be None, 1 or 3. Received: channels={channels!r}")
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be None, 1 or 3. Received: channels={channels!r}")


# ----------------------------------------------------------------------------- images


def _image_converter(input_channels, image_size, channels):
    """Returns a function mapping one uint8 image to the requested size and channels."""
    if channels is not None and channels != input_channels and (
        (input_channels, channels) not in ((1, 3), (3, 1))
    ):
        raise ValueError(
            "`channels` can only convert grayscale to RGB (1 -> 3) or RGB to grayscale "
            f"(3 -> 1), but the images have {input_channels} channels. "
            f"Received: channels={channels!r}"
        )

    def convert(image):
        if channels == 1 and input_channels == 3:
            image = tf.image.rgb_to_grayscale(image)
        if image_size is not None and tuple(image.shape[:2]) != image_size:
            resized = tf.image.resize(image, image_size, method="bilinear", antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
        if channels == 3 and input_channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        return image

    return convert


# ----------------------------------------------------------------------------- splits


class _SplitPart(NamedTuple):
    name: str
    start: str  # raw bound text, "" when absent
    stop: str


def _parse_fashion_mnist_split(split: str) -> list[_SplitPart]:
    parts = []
    for text in split.replace(" ", "").split("+"):
        match = _SPLIT_PART.match(text)
        if match is None or match["name"] not in _FASHION_MNIST_FILES:
            raise ValueError(
                "`split` for 'fashion_mnist' must be 'train' or 'test', optionally sliced "
                "as in 'train[:1000]', 'train[1000:]', 'test[10:20]' or 'test[:10%]', or "
                f"joined with '+'. Received: split={split!r}"
            )
        parts.append(_SplitPart(match["name"], match["start"] or "", match["stop"] or ""))
    return parts


def _bound(text: str, count: int, split: str) -> int | None:
    if not text:
        return None
    match = _SPLIT_BOUND.match(text)
    if match is None:
        raise ValueError(
            "Slice bounds in `split` must be integers or percentages such as 10%. "
            f"Received: split={split!r}"
        )
    value = int(match["value"])
    if not match["percent"]:
        return value
    if not -100 <= value <= 100:
        raise ValueError(
            f"Percentages in `split` must be between -100% and 100%. Received: split={split!r}"
        )
    return round(value * count / 100)


def _select(indices: range, part: _SplitPart, split: str) -> range:
    count = len(indices)
    selected = indices[_bound(part.start, count, split) : _bound(part.stop, count, split)]
    if len(selected) == 0:
        raise ValueError(
            f"`split` selects no examples from the {count} of {part.name!r}. "
            f"Received: split={split!r}"
        )
    return selected


# ----------------------------------------------------------------------------- IDX files


def _is_fashion_mnist(name: str) -> bool:
    return name.strip().lower().replace("-", "_") == FASHION_MNIST


def _search_directories() -> list[str]:
    directories = []
    from_environment = os.environ.get(DATA_DIR_VARIABLE)
    if from_environment:
        directories.append(from_environment)
    directories.extend(FASHION_MNIST_DIRS)
    return [os.path.abspath(os.path.expanduser(directory)) for directory in directories]


def _find_fashion_mnist_directory(split_names: list[str]) -> str:
    needed = [file for name in split_names for file in _FASHION_MNIST_FILES[name]]
    report = []
    for directory in _search_directories():
        if not os.path.isdir(directory):
            report.append(f"  {directory} (no such directory)")
            continue
        missing = [file for file in needed if not os.path.isfile(os.path.join(directory, file))]
        if not missing:
            return directory
        report.append(f"  {directory} (missing {', '.join(missing)})")
    raise FileNotFoundError(
        f"Fashion-MNIST files {', '.join(needed)} were not found. Searched, in order:\n"
        + "\n".join(report)
        + f"\nInstall them with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), "
        "or download the four *-ubyte.gz files from "
        "https://github.com/zalandoresearch/fashion-mnist and set "
        f"{DATA_DIR_VARIABLE} to their directory."
    )


def _read_fashion_mnist_split(directory: str, split_name: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = (
        os.path.join(directory, file) for file in _FASHION_MNIST_FILES[split_name]
    )
    images = _read_idx(images_path, _IMAGES_MAGIC)
    labels = _read_idx(labels_path, _LABELS_MAGIC)
    if len(images) != len(labels):
        raise ValueError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels; the counts must agree. One of the files is from another "
            "release or corrupt: replace both."
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(
            f"{labels_path} holds label {int(labels.max())}, but Fashion-MNIST labels are "
            f"0 to {len(FASHION_MNIST_CLASSES) - 1}. The file is corrupt: replace it."
        )
    return images[..., np.newaxis], labels.astype(np.int64)


def _read_idx(path: str, magic: int) -> np.ndarray:
    status = os.stat(path)
    return _read_idx_cached(path, status.st_mtime_ns, status.st_size, magic)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(path: str, mtime_ns: int, size: int, magic: int) -> np.ndarray:
    """Parses one gzipped IDX file of unsigned bytes; the key includes mtime and size."""
    del mtime_ns, size  # Only part of the cache key.
    try:
        with gzip.open(path, "rb") as file:
            data = file.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise ValueError(
            f"{path} could not be decompressed ({error}): expected a complete gzip file. "
            "It is truncated or corrupt: replace it."
        ) from error
    rank = magic & 0xFF
    header_bytes = 4 + 4 * rank
    found_magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found_magic != magic:
        raise ValueError(
            f"{path} has magic number {found_magic}, expected {magic} (an IDX file of "
            f"unsigned bytes with {rank} dimensions). It is corrupt or not the right file."
        )
    if len(data) < header_bytes:
        raise ValueError(
            f"{path} has {len(data)} bytes, expected at least a {header_bytes}-byte header. "
            "It is truncated: replace it."
        )
    shape = tuple(int(side) for side in np.frombuffer(data, ">u4", count=rank, offset=4))
    if rank == 3 and (shape[1] == 0 or shape[2] == 0):
        raise ValueError(f"{path} header gives image size {shape[1:]}, expected positive sides.")
    expected = int(np.prod(shape))
    found = len(data) - header_bytes
    if found != expected:
        raise ValueError(
            f"{path} header gives shape {shape}, so expected {expected} bytes of data, "
            f"but found {found}. The file is truncated or corrupt: replace it."
        )
    array = np.frombuffer(data, np.uint8, offset=header_bytes).reshape(shape)
    array.flags.writeable = False
    return array


# ----------------------------------------------------------------------------- TFDS


@functools.lru_cache(maxsize=1)
def _tfds_builder_names() -> tuple[str, ...]:
    import tensorflow_datasets as tfds

    return tuple(tfds.list_builders(with_community_datasets=False))


def _check_tfds_name(name: str) -> None:
    """Raises ValueError unless `name` (possibly "name/config:version") is a TFDS builder."""
    base = name.split(":")[0].split("/")[0]
    builders = _tfds_builder_names()
    if base in builders:
        return
    candidates = sorted(set(builders) | {FASHION_MNIST})
    close = difflib.get_close_matches(base, candidates, n=5)
    hint = f" Close matches: {', '.join(repr(match) for match in close)}." if close else ""
    raise ValueError(
        f"Unknown dataset. Expected {FASHION_MNIST!r} (read from local IDX files) or any name "
        f"from `tfds.list_builders()`.{hint} Received: name={name!r}"
    )


def _load_tfds(name: str, split: str, as_supervised: bool) -> tf.data.Dataset:
    """Returns `(uint8 image, int64 label)` pairs (label 0 when not supervised)."""
    _check_tfds_name(name)
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load(name, split=split, as_supervised=as_supervised, download=False)
    except AssertionError as error:  # tfds' "could not find data" when not prepared.
        data_dir = tfds.core.constants.get_default_data_dir()
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r} and keras_siamese "
            f"never downloads at run time. Prepare it with `tfds build {name}` (or "
            f"`tfds.builder({name!r}).download_and_prepare()`) on a machine with internet "
            "access, then copy it to data_dir or point TFDS_DATA_DIR at it."
        ) from error
    if not as_supervised:
        keys = list(dataset.element_spec)
        if "image" not in keys:
            raise ValueError(
                f"Dataset {name!r} has no 'image' feature (features: {keys}). "
                f"Received: name={name!r}"
            )
        dataset = dataset.map(lambda example: (example["image"], tf.constant(0, tf.int64)))

    def to_uint8(image, label):
        if image.dtype != tf.uint8:
            image = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
        return image, tf.cast(label, tf.int64)

    return dataset.map(to_uint8, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
