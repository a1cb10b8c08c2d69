"""The `tf.data` pipeline of the file readers: shuffle names, read in parallel, batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from keras_siamese.datasets import in_memory, named_errors


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
    maps one element to a uint8 image, in parallel and in a deterministic order. Epoch n's
    order (the n-th iteration over the dataset) is a stateless permutation keyed by
    `(seed, n)` alone, so a seed gives the same order and pixels every time, whatever
    TensorFlow's global seed and whatever ran before.

    Args:
        elements: per-file arrays of equal length, with the file's `"path"` (and e.g. its
            offset).
        read: element -> `uint8 [H, W, C]` image.
        labels: `int64 [N]` or None.
        batch_size: batch the images (the last batch may be smaller) or yield single images.
        shuffle: reshuffle the files every epoch.
        seed: the shuffle seed (None: drawn from TensorFlow's global generator).
        on_error: "skip" drops elements whose reading fails at run time; "raise" stops with
            an error naming the file (see `named_errors`).

    Returns:
        A dataset of images, or of `(image, label)` pairs.
    """
    if labels is not None:
        elements = {**elements, "label": labels}
    count = len(next(iter(elements.values())))
    if shuffle:
        tables = {key: tf.constant(values) for key, values in elements.items()}
        dataset = in_memory.epoch_orders(count, seed, endless=False).flat_map(
            lambda order: tf.data.Dataset.from_tensor_slices(
                {key: tf.gather(table, order) for key, table in tables.items()}
            )
        )
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(count))
    else:
        dataset = tf.data.Dataset.from_tensor_slices(elements)

    def read_element(element):
        return read(element) if labels is None else (read(element), element["label"])

    dataset = named_errors.map_naming_errors(
        dataset, read_element, lambda element: element["path"], on_error
    )
    if batch_size is not None:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)
