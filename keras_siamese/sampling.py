"""Labelled examples into metric-learning batches: pairs, P x K batches and class splits.

All three take labelled examples as a tuple of numpy arrays `(images, labels)` or as a
`tf.data.Dataset` of single `(image, label)` examples. `make_pairs` and
`class_balanced_batches` hold the examples in memory (they need random access by class)
and draw everything inside `tf.data` with stateless random ops, so there is no Python
per element. Every draw is keyed by `(seed, epoch)` alone, where epoch n is the n-th
iteration over the returned dataset: the same seed gives the same pairs and batches,
epoch by epoch, whatever TensorFlow's global seed (`tf.random.set_seed`) and whatever ran
before in the process; each new iteration draws new ones.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np
import tensorflow as tf

from keras_siamese import sampling_inputs
from keras_siamese.datasets.in_memory import epoch_seeds

Examples = sampling_inputs.Examples
_PAIR_BLOCK = 256


def _class_tables(labels: np.ndarray):
    """Examples grouped by class: sorted order, each class's start and count, class per example."""
    _, class_of, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(class_of, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return order, starts, counts, class_of.reshape(-1), rank


def _check_positive_fraction(positive_fraction) -> float:
    if isinstance(positive_fraction, bool) or not isinstance(positive_fraction, numbers.Real):
        raise TypeError(
            f"Argument `positive_fraction` must be a number in [0, 1]. "
            f"Received: positive_fraction={positive_fraction!r}"
        )
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(
            "Argument `positive_fraction` must be in [0, 1]. "
            f"Received: positive_fraction={positive_fraction}"
        )
    return float(positive_fraction)


def _check_pair_classes(counts: np.ndarray, labels: np.ndarray, positive_fraction) -> None:
    """Checks that the classes allow the pairs asked for (positives, negatives or both)."""
    if positive_fraction > 0 and counts.max() < 2:
        raise ValueError(
            "No class has two examples, so no same-class pair exists. Pass more examples per "
            f"class or positive_fraction=0. Received: {len(counts)} classes of one example each"
        )
    if positive_fraction < 1 and len(counts) < 2:
        raise ValueError(
            "All examples are of one class, so no different-class pair exists. Pass examples "
            f"of at least two classes or positive_fraction=1. Received: labels={labels[:1]}"
        )


def _fold_in(seed, index):
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(index, tf.int64))


def _draw_below(limits, seed):
    """One uniform integer in [0, limit) per limit (limits >= 1)."""
    uniform = tf.random.stateless_uniform(tf.shape(limits), seed, dtype=tf.float64)
    draws = tf.cast(tf.floor(uniform * tf.cast(limits, tf.float64)), tf.int64)
    return tf.minimum(draws, limits - 1)


def _pair_drawer(images: np.ndarray, labels: np.ndarray, tables, fraction: float):
    """`block_of_pairs(block_index, anchors, block_seed)`: the pairs of a block of anchors.

    `tables` are `_class_tables(labels)`; position k of the epoch is positive when
    floor((k+1) f) > floor(k f): exactly floor(n f) positives among the first n pairs.
    """
    order, starts, counts, class_of, rank = tables
    count = len(labels)
    images = tf.constant(images)
    labels_tensor = tf.constant(labels)
    order, starts = tf.constant(order, tf.int64), tf.constant(starts, tf.int64)
    counts, class_of = tf.constant(counts, tf.int64), tf.constant(class_of, tf.int64)
    rank = tf.constant(rank, tf.int64)

    def block_of_pairs(block_index, anchors, block_seed):
        positions = block_index * _PAIR_BLOCK + tf.range(tf.size(anchors, out_type=tf.int64))
        k = tf.cast(positions, tf.float64)
        wanted = tf.floor((k + 1.0) * fraction) > tf.floor(k * fraction)
        classes = tf.gather(class_of, anchors)
        sizes, starts_of = tf.gather(counts, classes), tf.gather(starts, classes)
        seeds = tf.random.experimental.stateless_split(block_seed, 2)
        # Positive: one of the other size - 1 members of the class (skipping the anchor).
        draws = _draw_below(tf.maximum(sizes - 1, 1), seeds[0])
        draws += tf.cast(draws >= tf.gather(rank, anchors) - starts_of, tf.int64)
        positives = tf.gather(order, starts_of + tf.minimum(draws, sizes - 1))
        # Negative: one of the count - size examples outside the class block.
        draws = _draw_below(tf.maximum(count - sizes, 1), seeds[1])
        negatives = tf.gather(order, tf.where(draws < starts_of, draws, draws + sizes) % count)
        partners = tf.where(wanted & (sizes > 1), positives, negatives)
        same = tf.equal(tf.gather(labels_tensor, anchors), tf.gather(labels_tensor, partners))
        pairs = (tf.gather(images, anchors), tf.gather(images, partners))
        return pairs, tf.cast(same, tf.int32)

    return block_of_pairs


def make_pairs(
    dataset: Examples, positive_fraction: float = 0.5, seed: int | None = None
) -> tf.data.Dataset:
    """Pairs of examples labelled 1 when both are of the same class, 0 otherwise.

    Every example is the first image of one pair per epoch (in a shuffled order); its
    partner is drawn uniformly from the other examples of its class for a positive pair
    or from the examples of all other classes for a negative one. Exactly
    `floor(n * positive_fraction)` of the first `n` pairs of an epoch are meant to be
    positive — so every batch is balanced, not only the epoch — except that an example
    alone in its class can only make a negative pair. The label is computed from the
    two examples' classes, so it is always right. The pairs are what
    `SiameseNetwork(loss="contrastive")` trains on (Hadsell, Chopra & LeCun 2006).

    Args:
        dataset: `(images, labels)` numpy arrays or a finite `tf.data.Dataset` of single
            `(image, label)` examples with integer labels; read into memory.
        positive_fraction: the fraction of same-class pairs, in [0, 1].
        seed: the pairs of epoch n (the n-th iteration over the returned dataset) depend
            on `(seed, n)` alone, not on TensorFlow's global seed; None: random.

    Returns:
        A dataset of `((image_a, image_b), label)` single examples (label int32, 1 for a
        same-class pair), one per example of `dataset`; batch it for `fit`.

    Raises:
        ValueError: if `positive_fraction` is outside [0, 1], no class has two examples
            while positives are asked for, there is a single class while negatives are
            asked for, or `dataset` is empty or not `(image, label)` examples.
        TypeError: for non-integer labels, a `seed` that is not an integer, or a
            `dataset` of another type.

    Example:
        >>> pairs = make_pairs((images, labels), positive_fraction=0.5, seed=0)
        >>> model.fit(pairs.batch(128, drop_remainder=True), epochs=5)
    """
    fraction = _check_positive_fraction(positive_fraction)
    seed = sampling_inputs.check_seed(seed)
    images, labels = sampling_inputs.as_arrays(dataset)
    order, starts, counts, class_of, rank = _class_tables(labels)
    _check_pair_classes(counts, labels, positive_fraction)
    count = len(labels)
    block_of_pairs = _pair_drawer(images, labels, (order, starts, counts, class_of, rank), fraction)

    # Pairs are drawn a block of anchors at a time (vectorised), then unbatched.
    def blocks_of_epoch(epoch_seed):
        seeds = tf.random.experimental.stateless_split(epoch_seed, 2)
        anchors = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seeds[0]
        )
        return (
            tf.data.Dataset.from_tensor_slices(anchors)
            .batch(_PAIR_BLOCK)
            .enumerate()
            .map(lambda index, block: (index, block, _fold_in(seeds[1], index)))
        )

    return (
        epoch_seeds(seed, endless=False)
        .flat_map(blocks_of_epoch)
        .map(block_of_pairs, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .unbatch()
        .apply(tf.data.experimental.assert_cardinality(count))  # so fit() knows the epoch
    )


def class_balanced_batches(
    dataset: Examples,
    classes_per_batch: int,
    samples_per_class: int,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of P classes x K examples each, the batches triplet mining needs.

    Each batch draws `classes_per_batch` (P) distinct classes uniformly, then
    `samples_per_class` (K) distinct examples of each (a class with fewer than K
    examples repeats its examples, all of them before any twice), as in the P x K
    batches of Hermans, Beyer & Leibe 2017 ("In Defense of the Triplet Loss"). Every
    example then has K - 1 positives and (P - 1) K negatives in its batch, so
    `SiameseNetwork(loss="triplet")` always finds triplets. Batches hold P x K examples
    ordered class by class; an epoch is `max(1, N // (P x K))` batches.

    Args:
        dataset: `(images, labels)` numpy arrays or a finite `tf.data.Dataset` of single
            `(image, label)` examples with integer labels; read into memory.
        classes_per_batch: P, at most the number of classes.
        samples_per_class: K, at least 2 (one example of a class has no positive).
        seed: the batches of epoch n (the n-th iteration over the returned dataset)
            depend on `(seed, n)` alone, not on TensorFlow's global seed; None: random.

    Returns:
        A dataset of `(images, labels)` batches of `P * K` examples (labels as given).

    Raises:
        ValueError: if `classes_per_batch` is not in [1, number of classes],
            `samples_per_class < 2`, or `dataset` is empty or not `(image, label)`
            examples.
        TypeError: for non-integer arguments or labels, or a `dataset` of another type.

    Example:
        >>> batches = class_balanced_batches((images, labels), 8, 4, seed=0)
        >>> model.fit(batches, epochs=5)  # 32 images per batch: 8 classes x 4
    """
    for name, value, minimum in (
        ("classes_per_batch", classes_per_batch, 1),
        ("samples_per_class", samples_per_class, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"Argument `{name}` must be an integer. Received: {name}={value!r}")
        if value < minimum:
            reason = " (one example of a class has no positive)" if minimum == 2 else ""
            raise ValueError(
                f"Argument `{name}` must be >= {minimum}{reason}. Received: {name}={value}"
            )
    seed = sampling_inputs.check_seed(seed)
    images, labels = sampling_inputs.as_arrays(dataset)
    order, starts, counts, _, _ = _class_tables(labels)
    num_classes = len(counts)
    if classes_per_batch > num_classes:
        raise ValueError(
            f"Argument `classes_per_batch` must be at most the number of classes ({num_classes})"
            f". Received: classes_per_batch={classes_per_batch}"
        )
    # members[c, i]: the i-th example of class c (rows padded with the class's first example).
    members = np.tile(order[starts][:, None], (1, counts.max()))
    for cls in range(num_classes):
        members[cls, : counts[cls]] = order[starts[cls] : starts[cls] + counts[cls]]
    images = tf.constant(images)
    labels_tensor = tf.constant(labels)
    members, counts = tf.constant(members, tf.int64), tf.constant(counts, tf.int64)
    classes_per_batch, samples_per_class = int(classes_per_batch), int(samples_per_class)
    batch_size = classes_per_batch * samples_per_class
    slots_per_class = int(members.shape[1])

    def batch(batch_seed):
        seeds = tf.random.experimental.stateless_split(batch_seed, 2)
        noise = tf.random.stateless_uniform([num_classes], seeds[0])
        chosen = tf.argsort(noise)[:classes_per_batch]
        sizes = tf.gather(counts, chosen)[:, None]
        # A random order of each chosen class's members: sort uniform noise, the padding last.
        noise = tf.random.stateless_uniform([classes_per_batch, slots_per_class], seeds[1])
        slots = tf.range(slots_per_class, dtype=tf.int64)[None, :]
        noise = tf.where(slots < sizes, noise, 2.0 + tf.cast(slots, tf.float32))
        positions = tf.cast(tf.argsort(noise, axis=1)[:, :samples_per_class], tf.int64)
        positions = tf.where(positions < sizes, positions, positions % sizes)
        indices = tf.reshape(tf.gather(tf.gather(members, chosen), positions, batch_dims=1), [-1])
        return tf.gather(images, indices), tf.gather(labels_tensor, indices)

    batches_per_epoch = max(1, len(labels) // batch_size)

    def seeds_of_epoch(epoch_seed):
        batches = tf.data.Dataset.range(batches_per_epoch)
        return batches.map(lambda index: _fold_in(epoch_seed, index))

    return (
        epoch_seeds(seed, endless=False)
        .flat_map(seeds_of_epoch)
        .map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .apply(tf.data.experimental.assert_cardinality(batches_per_epoch))
    )


def split_classes(dataset: Examples, classes: Iterable[int]) -> tuple[Examples, Examples]:
    """Splits labelled examples into those of `classes` and those of the other classes.

    The split behind "generalises to unseen classes": train on some classes, evaluate
    verification and retrieval on the others.

    Args:
        dataset: `(images, labels)` numpy arrays, or a `tf.data.Dataset` of single
            `(image, label)` examples (filtered lazily, never read into memory).
        classes: the integer class ids of the first part.

    Returns:
        `(selected, rest)`, of the type of `dataset`: numpy tuples for numpy input, datasets
        for a dataset.

    Raises:
        ValueError: if `classes` is empty, for numpy input when no example is of
            `classes`, or for a dataset that is not of `(image, label)` examples.
        TypeError: for class ids that are not integers, or a `dataset` of another type.

    Example:
        >>> seen, unseen = split_classes((images, labels), classes=range(7))
    """
    classes = list(classes) if not isinstance(classes, (int, np.integer)) else [classes]
    if not classes:
        raise ValueError("Argument `classes` must name at least one class. Received: classes=[]")
    for value in classes:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"Argument `classes` must hold integer class ids. Received: classes={classes!r}"
            )
    wanted = np.asarray(sorted({int(value) for value in classes}), np.int64)
    if isinstance(dataset, tf.data.Dataset):
        sampling_inputs.check_dataset_spec(dataset, "dataset")
        wanted_tensor = tf.constant(wanted)

        def selected(image, label):
            return tf.reduce_any(tf.equal(tf.cast(label, tf.int64), wanted_tensor))

        return dataset.filter(selected), dataset.filter(lambda x, y: ~selected(x, y))
    if not (isinstance(dataset, (tuple, list)) and len(dataset) == 2):
        raise TypeError(
            "Argument `dataset` must be a tuple `(images, labels)` of numpy arrays or a "
            f"tf.data.Dataset of `(image, label)` examples. Received: dataset of type "
            f"{type(dataset).__name__}"
        )
    images, labels = sampling_inputs.check_arrays(dataset[0], dataset[1], "dataset")
    mask = np.isin(labels, wanted)
    if not mask.any():
        raise ValueError(
            f"No example is of the given classes; the labels are {np.unique(labels)[:20].tolist()}"
            f". Received: classes={wanted.tolist()}"
        )
    return (images[mask], labels[mask]), (images[~mask], labels[~mask])
