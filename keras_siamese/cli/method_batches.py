"""The training batches of the `train` methods: their layout, then the `tf.data` pipeline.

Each method's row (`keras_siamese.cli.methods`) names a `batch_layout`, run while the
configuration is resolved (it returns the real batch size and whatever the pipeline needs,
stored under `resolved` in config.json), and a `build_batches`, which turns the unbatched
training split into batches. The rows are read to answer `--help`, so this module must not
import TensorFlow: only the function bodies do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from absl import app

import keras_siamese as ks

if TYPE_CHECKING:
    import tensorflow as tf


def whole_batch(config: dict, num_classes: int | None) -> dict:
    """The layout of `--batch_size` examples drawn at random."""
    return {"batch_size": config["batch_size"]}


def class_balanced(config: dict, num_classes: int | None) -> dict:
    """The P x K layout: `classes_per_batch` classes, `batch_size // P` examples of each.

    P is `--classes_per_batch`, or as many classes as the dataset has, at most half the batch
    (so every class has a positive). The batch size becomes P x K.

    Raises:
        absl.app.UsageError: if P exceeds the classes or K would be below 2.
    """
    classes = config["classes_per_batch"] or min(num_classes, config["batch_size"] // 2)
    if classes > num_classes:
        raise app.UsageError(
            f"--classes_per_batch ({classes}) exceeds the {num_classes} classes of the dataset. "
            f"Received: --classes_per_batch={classes}"
        )
    samples = config["batch_size"] // classes
    if samples < 2:
        raise app.UsageError(
            f"--batch_size ({config['batch_size']}) must hold at least 2 examples of each of the "
            f"{classes} classes per batch, or no triplet has a positive. "
            f"Received: --batch_size={config['batch_size']}, --classes_per_batch={classes}"
        )
    return {"batch_size": classes * samples, "triplet_batch": (classes, samples)}


def images(config: dict, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shuffled batches of images for the two-view methods (`dataset` yields images).

    Folders and TFRecords arrive shuffled (`resolved["files_shuffled"]`): no second buffer
    of decoded images.
    """
    import tensorflow as tf

    if not config["resolved"].get("files_shuffled", False):
        dataset = dataset.shuffle(
            config["shuffle_buffer"], seed=config["seed"], reshuffle_each_iteration=True
        )
    return dataset.batch(config["batch_size"], drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def pairs(config: dict, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Batches of labelled pairs, half positive (`dataset` yields `(image, label)`)."""
    import tensorflow as tf

    pairs = ks.sampling.make_pairs(dataset, positive_fraction=0.5, seed=config["seed"])
    # One pair per example: tell Keras the epoch length, which `unbatch` hides.
    steps = config["resolved"]["steps_per_epoch"]
    return (
        pairs.batch(config["batch_size"], drop_remainder=True)
        .apply(tf.data.experimental.assert_cardinality(steps))
        .prefetch(tf.data.AUTOTUNE)
    )


def class_balanced_batches(config: dict, dataset: tf.data.Dataset) -> tf.data.Dataset:
    """P x K batches of `(images, labels)` in the layout of `class_balanced`."""
    import tensorflow as tf

    classes, samples = config["resolved"]["triplet_batch"]
    batches = ks.sampling.class_balanced_batches(dataset, classes, samples, seed=config["seed"])
    return batches.prefetch(tf.data.AUTOTUNE)
