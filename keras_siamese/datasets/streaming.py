"""The `tf.data` pipeline of the file readers: shuffle names, read in parallel, batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf


def stream(
    elements: dict[str, np.ndarray],
    read: Callable[[dict[str, tf.Tensor]], tf.Tensor],
    labels: np.ndarray | None,
    batch_size: int | None,
    shuffle: bool,
    seed: int,
    on_error: str,
) -> tf.data.Dataset:
    """Streams images read from small per-file `elements` (paths, offsets, ...).

    Only the elements are held in memory (and shuffled, all of them, once per epoch); `read`
    maps one element to a uint8 image, in parallel and in a deterministic order, so a seed
    gives the same order and pixels every time.

    Args:
        elements: per-file arrays of equal length (e.g. `{"path": ...}`).
        read: element -> `uint8 [H, W, C]` image.
        labels: `int64 [N]` or None.
        batch_size: batch the images (the last batch may be smaller) or yield single images.
        shuffle: reshuffle the files every epoch.
        seed: the shuffle seed.
        on_error: "skip" drops elements whose reading fails at run time; "raise" stops.

    Returns:
        A dataset of images, or of `(image, label)` pairs.
    """
    if labels is not None:
        elements = {**elements, "label": labels}
    count = len(next(iter(elements.values())))
    dataset = tf.data.Dataset.from_tensor_slices(elements)
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    if labels is None:
        dataset = dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        dataset = dataset.map(
            lambda element: (read(element), element["label"]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    if on_error == "skip":
        dataset = dataset.ignore_errors()
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)
