"""The training batches of the `train` methods: their layout, then the `tf.data` pipeline.

Each method's row (`keras_siamese.cli.methods`) names a `batch_layout`, run while the
configuration is resolved (from the recipe: the real global batch and the P x K of triplet
batches), and a `build_batches`, which turns the unbatched training split into batches of the
resolved `RunConfig`. The rows are read to answer `--help`, so this module must not
import TensorFlow: only the function bodies do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from absl import app

import keras_siamese as ks

if TYPE_CHECKING:
    import tensorflow as tf


def whole_batch(recipe, num_classes: int | None, batch_size: int) -> tuple[int, None]:
    """The layout of `batch_size` examples drawn at random: `(batch_size, None)`."""
    return batch_size, None


def class_balanced(recipe, num_classes: int | None, batch_size: int) -> tuple[int, tuple[int, int]]:
    """The P x K layout of the recipe's `triplet_layout`: `(P * K, (P, K))`.

    P is `--classes_per_batch`, or as many classes as the dataset has, at most half the batch
    (so every class has a positive).

    Raises:
        absl.app.UsageError: if P exceeds the classes or K would be below 2.
    """
    try:
        classes, samples = recipe.triplet_layout(num_classes, batch_size)
    except ValueError as error:
        message = str(error).replace("classes_per_batch (", "--classes_per_batch (")
        message = message.replace("batch_size (", "--batch_size (").replace(
            "Received: ", "Received: --"
        )
        raise app.UsageError(
            message.replace(", classes_per_batch=", ", --classes_per_batch=")
        ) from None
    return classes * samples, (classes, samples)


def images(config: dict, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shuffled batches of images for the two-view methods (`dataset` yields images).

    Folders and TFRecords arrive shuffled (`resolved["files_shuffled"]`): no second buffer
    of decoded images.
    """
    import tensorflow as tf

    if not config.files_shuffled:
        dataset = dataset.shuffle(
            config.flags["shuffle_buffer"], seed=config.seed, reshuffle_each_iteration=True
        )
    return dataset.batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def pairs(config: dict, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Batches of labelled pairs, half positive (`dataset` yields `(image, label)`)."""
    import tensorflow as tf

    pairs = ks.sampling.make_pairs(dataset, positive_fraction=0.5, seed=config.seed)
    # One pair per example: tell Keras the epoch length, which `unbatch` hides.
    steps = config.steps_per_epoch
    return (
        pairs.batch(config.batch_size, drop_remainder=True)
        .apply(tf.data.experimental.assert_cardinality(steps))
        .prefetch(tf.data.AUTOTUNE)
    )


def class_balanced_batches(config: dict, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """P x K batches of `(images, labels)` in the layout of `class_balanced`."""
    import tensorflow as tf

    classes, samples = config.triplet_batch
    batches = ks.sampling.class_balanced_batches(dataset, classes, samples, seed=config.seed)
    return batches.prefetch(tf.data.AUTOTUNE)
