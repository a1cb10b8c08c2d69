"""`shuffled_batches`: endless shuffled batches of in-memory arrays, cheap to reshuffle."""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf


def shuffled_batches(
    arrays: np.ndarray | tuple[np.ndarray, ...],
    batch_size: int,
    seed: int | None = None,
    repeat: bool = True,
) -> tf.data.Dataset:
    """Shuffled batches of arrays held in memory, reshuffled every epoch, prefetched.

    The arrays become one constant tensor each; the dataset shuffles only the indices and each
    batch is a `tf.gather` of them in a parallel `map`. Shuffling 60,000 indices costs nothing,
    where `from_tensor_slices(images).shuffle(60000)` keeps a 60,000-image buffer and copies
    every image through it: the training step never waits for its input.

    Args:
        arrays: one array `(N, ...)` (e.g. uint8 images) or a tuple of arrays of equal length
            (e.g. `(images, labels)`); each batch has the same structure.
        batch_size: examples per batch; the last partial batch of an epoch is dropped.
        seed: the shuffle's seed (None: nondeterministic).
        repeat: repeat endlessly (pass `steps_per_epoch` to `fit`), or one epoch.

    Returns:
        A `tf.data.Dataset` of batches.

    Raises:
        ValueError: for no examples, arrays of different lengths, or a `batch_size` that is
            not a positive integer or exceeds the number of examples.

    Example:
        >>> images, _ = ks.datasets.load_arrays("fashion_mnist", "train")
        >>> batches = shuffled_batches(images, 256, seed=0)
        >>> model.fit(batches, epochs=10, steps_per_epoch=len(images) // 256)
    """
    structure = arrays if isinstance(arrays, tuple) else (arrays,)
    lengths = {len(array) for array in structure}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(
            "Argument `arrays` must be an array or a tuple of arrays of one non-zero length. "
            f"Received lengths {[len(array) for array in structure]}"
        )
    (count,) = lengths
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or not 1 <= batch_size <= count
    ):
        raise ValueError(
            f"Argument `batch_size` must be an integer in [1, {count}] (the number of examples). "
            f"Received: batch_size={batch_size!r}"
        )
    tables = tuple(tf.constant(array) for array in structure)

    def gather(indices):
        batch = tuple(tf.gather(table, indices) for table in tables)
        return batch if isinstance(arrays, tuple) else batch[0]

    dataset = tf.data.Dataset.range(count).shuffle(count, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(int(batch_size), drop_remainder=True)
    return dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
