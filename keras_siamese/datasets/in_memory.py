"""`shuffled_batches`: endless shuffled batches of in-memory arrays, cheap to reshuffle.

Also the epoch orders every seeded reader of `datasets` shuffles with (`epoch_seeds`,
`epoch_orders`): stateless draws keyed by `(seed, epoch)` alone. Seeded `tf.data` ops
(`shuffle(seed=...)`) combine their seed with TensorFlow's global seed and with how many
seeded ops ran before, so they are not used.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf


def epoch_seeds(seed: int | None, endless: bool) -> tf.data.Dataset:
    """Epoch n's stateless seed `(2,)`: `stateless_fold_in((seed, 0), n)`, for n = 0, 1, ...

    Endless: `Dataset.counter()` mapped to the seeds, the epoch number being data (a new
    iterator starts again at epoch 0 and `skip(n)` lands on epoch n exactly). Otherwise one
    seed per iteration over the dataset (each `repeat()` or new iterator is the next epoch),
    counted by a variable. `seed=None` draws the base seed from TensorFlow's global
    generator (so it follows `tf.random.set_seed`).
    """
    if seed is None:
        base = tf.random.uniform([2], maxval=2**62, dtype=tf.int64).numpy()
    else:
        base = np.array([seed, 0], np.int64)
    base = tf.constant(base, tf.int64)
    if endless:
        return tf.data.Dataset.counter().map(
            lambda epoch: tf.random.experimental.stateless_fold_in(base, epoch)
        )
    with tf.init_scope():
        iterations = tf.Variable(-1, dtype=tf.int64, trainable=False, name="epoch")
    return tf.data.Dataset.range(1).map(
        lambda _: tf.random.experimental.stateless_fold_in(base, iterations.assign_add(1))
    )


def stateless_order(count, seed) -> tf.Tensor:
    """A permutation of `range(count)` (int64) keyed by the stateless seed `(2,)` alone."""
    indices = tf.range(tf.cast(count, tf.int64), dtype=tf.int64)
    return tf.random.experimental.stateless_shuffle(indices, seed=seed)


def epoch_orders(count: int, seed: int | None, endless: bool) -> tf.data.Dataset:
    """Epoch n's order of `range(count)`, keyed by `(seed, n)` alone (see `epoch_seeds`)."""
    return epoch_seeds(seed, endless).map(lambda epoch_seed: stateless_order(count, epoch_seed))


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
        seed: epoch n's order depends on `(seed, n)` alone, not on TensorFlow's global seed
            nor on what ran before (None: drawn from TensorFlow's global generator).
        repeat: repeat endlessly (pass `steps_per_epoch` to `fit`), or one epoch. Endless,
            epoch n is the n-th `count` examples of the stream, so `skip(k)` lands on
            exactly the k-th batch; one epoch, each new iteration is the next epoch.

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

    dataset = epoch_orders(count, seed, endless=repeat).flat_map(tf.data.Dataset.from_tensor_slices)
    dataset = dataset.batch(int(batch_size), drop_remainder=True)
    batches = tf.data.INFINITE_CARDINALITY if repeat else count // int(batch_size)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
