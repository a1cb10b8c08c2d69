"""Argument checks of the dataset readers (numbers go through `keras_siamese.validation`)."""

from __future__ import annotations

import numbers
import os

from keras_siamese import validation

ON_ERROR = ("raise", "skip")


def check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string such as 'fashion_mnist'. Received: name={name!r}")


def check_split(split: object) -> None:
    if not isinstance(split, str):
        raise TypeError(
            f"`split` must be a string such as 'train' or 'test[:10%]'. Received: split={split!r}"
        )


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def normalize_image_size(image_size: object) -> tuple[int, int] | None:
    """None, an int (square) or a `(height, width)` pair of positive ints -> a pair or None."""
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


def check_channels(channels: object, allowed: tuple[int, ...] = (1, 3)) -> int | None:
    """None or one of `allowed` (TypeError for non-integers, ValueError for other counts)."""
    if channels is None:
        return None
    expected = f"None or one of {', '.join(str(count) for count in allowed)}"
    if not isinstance(channels, numbers.Integral) or isinstance(channels, bool):
        raise TypeError(f"`channels` must be {expected}. Received: channels={channels!r}")
    if channels not in allowed:
        raise ValueError(f"`channels` must be {expected}. Received: channels={channels!r}")
    return int(channels)


def check_directory(path: object) -> str:
    """An existing directory, returned as an absolute path."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"`path` must be a directory path (str or os.PathLike). Received: path={path!r}"
        )
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        raise ValueError(f"`path` must be an existing directory. Received: path={path!r}")
    return path


def check_labels(labels: object) -> str | None:
    if labels not in ("inferred", None):
        raise ValueError(
            "`labels` must be 'inferred' (one sub-folder per class) or None (unlabelled "
            f"images). Received: labels={labels!r}"
        )
    return labels


def check_on_error(on_error: object) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(
            "`on_error` must be 'raise' (stop at the first bad file, naming it) or 'skip' "
            f"(leave bad files out and count them in one warning). Received: on_error={on_error!r}"
        )
    return on_error


def check_batching(batch_size: object, shuffle: object, seed: object) -> int | None:
    """Checks the streaming arguments shared by the file readers; returns `batch_size`."""
    if batch_size is not None:
        batch_size = validation.check_integer("batch_size", batch_size, minimum=1)
    check_bool("shuffle", shuffle)
    validation.check_integer("seed", seed, minimum=0)
    return batch_size
