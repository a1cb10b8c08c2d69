"""Datasets for the command line: probe a named dataset before training, then read it.

Every failure of `keras_siamese.datasets` (unknown name or split, files missing, TFDS data
not prepared) becomes one `absl.app.UsageError` line here, raised before any training.
Folders and TFRecord files are read by `keras_siamese.cli.source_data`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from absl import app

from keras_siamese import datasets


@dataclasses.dataclass
class DatasetInfo:
    """What the command line needs to know about a dataset split before training."""

    name: str
    image_shape: tuple  # (height, width, channels); None where the images vary.
    num_classes: int | None  # None when the dataset has no class label.
    class_names: list[str] | None
    num_examples: int


def usage_error(error: Exception, flag: str = "") -> app.UsageError:
    """The library's message as one usage error, after the flag that named the data."""
    message = str(error).strip() or type(error).__name__
    return app.UsageError(f"{flag}: {message}" if flag else message)


def class_names(name: str, num_classes: int | None) -> list[str] | None:
    """The class names of a dataset (Fashion-MNIST's, TFDS metadata's, else the numbers)."""
    if num_classes is None:
        return None
    if name.strip().lower().replace("-", "_") == datasets.FASHION_MNIST:
        return list(datasets.FASHION_MNIST_CLASSES)
    try:
        import tensorflow_datasets as tfds

        info = tfds.builder(name).info
        label_key = info.supervised_keys[1] if info.supervised_keys else "label"
        names = list(info.features[label_key].names)
        if len(names) == num_classes:
            return names
    except Exception:  # noqa: BLE001 - names are decoration: fall back to numbers.
        pass
    return [str(label) for label in range(num_classes)]


def count(dataset: tf.data.Dataset) -> int:
    """The number of elements of a finite dataset (iterates it when TF does not know it)."""
    cardinality = int(dataset.cardinality())
    if cardinality >= 0:
        return cardinality
    return int(dataset.reduce(np.int64(0), lambda total, _: total + 1))


def probe(name: str, split: str) -> DatasetInfo:
    """Reads a dataset's metadata (image shape, classes, size), raising UsageError on failure."""
    try:
        images = datasets.load(name, split, as_supervised=False)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise usage_error(error) from error
    try:
        num_classes = datasets.num_classes(name)
    except ValueError:
        num_classes = None
    shape = tuple(images.element_spec.shape)
    return DatasetInfo(
        name=name,
        image_shape=shape,
        num_classes=num_classes,
        class_names=class_names(name, num_classes),
        num_examples=count(images),
    )


def load(
    name: str,
    split: str,
    image_shape: tuple[int, int, int],
    supervised: bool,
    limit: int = 0,
) -> tf.data.Dataset:
    """Unbatched uint8 images (and int64 labels when `supervised`) at `image_shape`.

    Args:
        name: the dataset name.
        split: the split.
        image_shape: `(height, width, channels)` the images are converted to.
        supervised: yield `(image, label)` pairs instead of images.
        limit: keep only the first `limit` examples (0 keeps all).
    """
    try:
        dataset = datasets.load(
            name,
            split,
            as_supervised=supervised,
            image_size=tuple(image_shape[:2]),
            channels=image_shape[2],
        )
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise usage_error(error) from error
    return dataset.take(limit) if limit else dataset


def to_arrays(dataset: tf.data.Dataset, batch_size: int = 1024) -> tuple[np.ndarray, ...]:
    """Materialises a small unbatched dataset of `(image, label)` pairs as numpy arrays."""
    parts = [batch for batch in dataset.batch(batch_size).as_numpy_iterator()]
    if not parts:
        raise app.UsageError("The dataset selected for evaluation is empty.")
    return tuple(np.concatenate([part[index] for part in parts]) for index in range(2))
