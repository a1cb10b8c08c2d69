"""`views_in_dataset`: make the views in the `tf.data` pipeline instead of the train step.

By default a model augments inside its train step: on the accelerator, per replica, with no
host work. When the step waits for nothing else and the host has idle cores (a TPU host, a
CPU-bound step whose augmentation would otherwise serialise with it), the same recipe can run
in `tf.data` instead: `views_in_dataset` maps each batch of images to `{"views": (...)}`, which
every `TwoViewModel` trains on as it is. The views come from the same layers with the same
distribution as in the step (one draw per image and view).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_siamese.augment.multi_crop import MultiCrop


def views_in_dataset(
    dataset: tf.data.Dataset,
    augmenter: keras.layers.Layer | tuple,
    num_parallel_calls: int | None = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Maps a dataset of image batches to a dataset of `{"views": (view, ...)}` batches.

    Args:
        dataset: batches of uint8/float images in [0, 255], or `(images, labels)` batches
            (labels are kept as the second element).
        augmenter: the model's augmenter: one layer (applied twice, for two views), a pair
            `(augmenter_a, augmenter_b)`, or a `MultiCrop` (all its views, global first).
        num_parallel_calls: batches augmented in parallel (`tf.data.AUTOTUNE` by default).

    Returns:
        A dataset whose elements are `{"views": (view_1, ..., view_n)}` (or that and the
        labels), each view float32 in [0, 1]; pass it to `model.fit` in place of the images.

    Raises:
        TypeError: if `dataset` is not a `tf.data.Dataset` or `augmenter` is not a layer, a
            pair of layers or a `MultiCrop`.

    Example:
        >>> augmenter = keras_siamese.augment.simclr_augmenter(28, channels=1)
        >>> train = keras_siamese.augment.views_in_dataset(images.batch(256), augmenter)
        >>> model = keras_siamese.SimCLR(encoder, augmenter=augmenter)  # same recipe, saved
        >>> model.fit(train.prefetch(2), epochs=10)
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(
            "Argument `dataset` must be a tf.data.Dataset of image batches. "
            f"Received: dataset of type {type(dataset).__name__}"
        )
    if (
        isinstance(augmenter, (tuple, list))
        and len(augmenter) == 2
        and all(isinstance(layer, keras.layers.Layer) for layer in augmenter)
    ):
        layers = tuple(augmenter)
    elif isinstance(augmenter, keras.layers.Layer):
        layers = None if isinstance(augmenter, MultiCrop) else (augmenter, augmenter)
    else:
        raise TypeError(
            "Argument `augmenter` must be a layer, a pair of layers or a MultiCrop. "
            f"Received: augmenter={augmenter!r}"
        )

    def make_views(images):
        if layers is None:
            return tuple(augmenter(images, training=True))
        return tuple(layer(images, training=True) for layer in layers)

    def to_views(*element):
        views = {"views": make_views(element[0])}
        return views if len(element) == 1 else (views, *element[1:])

    return dataset.map(to_views, num_parallel_calls=num_parallel_calls)
