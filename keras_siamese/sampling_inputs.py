"""Reading and checking the labelled examples that `keras_siamese.sampling` takes."""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

Examples = tuple | tf.data.Dataset
"""`(images, labels)` numpy arrays, or a `tf.data.Dataset` of single `(image, label)` examples."""

_READ_BATCH = 4096


def check_dataset_spec(dataset: tf.data.Dataset, argument: str) -> None:
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(
            f"Argument `{argument}` must be a tf.data.Dataset of `(image, label)` examples (for "
            "tfds use `as_supervised=True`). "
            f"Received: {argument}.element_spec={spec}"
        )
    labels_spec = spec[1]
    if not isinstance(labels_spec, tf.TensorSpec) or labels_spec.shape.rank != 0:
        raise ValueError(
            f"Argument `{argument}` must yield single examples with a scalar integer label; "
            "call `.unbatch()` on a batched dataset. "
            f"Received: {argument}.element_spec={spec}"
        )
    if not labels_spec.dtype.is_integer:
        raise TypeError(
            f"Argument `{argument}` must have integer class labels. "
            f"Received: labels of dtype {labels_spec.dtype.name}"
        )


def check_arrays(images, labels, argument: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels)
    if labels.ndim != 1 or images.ndim < 1 or len(images) != len(labels):
        raise ValueError(
            f"Argument `{argument}` must be `(images, labels)` with one integer label per image, "
            f"labels of shape (N,). Received: images.shape={images.shape}, "
            f"labels.shape={labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"Argument `{argument}` must have integer class labels (not one-hot). "
            f"Received: labels.dtype={labels.dtype}"
        )
    if len(labels) == 0:
        raise ValueError(f"Argument `{argument}` holds no examples. Received: 0 examples")
    return images, labels


def as_arrays(examples: Examples, argument: str = "dataset") -> tuple[np.ndarray, np.ndarray]:
    """Returns `(images, labels)` numpy arrays of a tuple of arrays or a finite dataset."""
    if isinstance(examples, tf.data.Dataset):
        check_dataset_spec(examples, argument)
        if examples.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError(
                f"Argument `{argument}` must be finite (its examples are read into memory); "
                f"remove `.repeat()`. Received: an infinite dataset"
            )
        parts = [(x.numpy(), y.numpy()) for x, y in examples.batch(_READ_BATCH)]
        if not parts:
            raise ValueError(f"Argument `{argument}` holds no examples. Received: an empty dataset")
        images = np.concatenate([part[0] for part in parts])
        labels = np.concatenate([part[1] for part in parts])
        return check_arrays(images, labels, argument)
    if isinstance(examples, (tuple, list)) and len(examples) == 2:
        return check_arrays(examples[0], examples[1], argument)
    raise TypeError(
        f"Argument `{argument}` must be a tuple `(images, labels)` of numpy arrays or a "
        f"tf.data.Dataset of `(image, label)` examples. Received: {argument} of type "
        f"{type(examples).__name__}"
    )


def check_seed(seed) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"Argument `seed` must be an integer or None. Received: seed={seed!r}")
    return None if seed is None else int(seed)
