"""The inputs of `TwoViewModel` and their checks, before and during tracing.

A batch is images (`images`, `(images, labels)` or `(images, labels, weights)`: the labels
are ignored), uint8 or float in [0, 255], of the encoder's channels and size; the model makes
the views in its step. Or the views were made in `tf.data` by
`keras_siamese.augment.views_in_dataset`: then a batch is `{"views": (view, ...)}`, as many
float views as the augmenter makes.

`check_data` runs in `fit`, `evaluate` and `predict` on numpy arrays, tensors and a dataset's
`element_spec`, so a wrong rank, channel count, size, dtype, NaN or a batch of one is named
before anything is traced; `check_batch` checks the batch again when the step is traced;
`check_augmenter_output` runs the augmenter on a few images of the first batch so a layer that
returns views outside [0, 1] or of other channels is named with its fix.

Each check takes the model (a `TwoViewModel`) for what it checks against: its `image_shape`,
`augmenter`, `min_batch_size` and class name (in the messages).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import augment, validation


def images_from(data):
    """Returns the images of a batch given as `images`, `(images, labels)` or `(x, y, w)`."""
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    return x


def has_views(x) -> bool:
    """Whether a batch (or a dataset's element spec) holds views made in tf.data."""
    return isinstance(x, dict) and "views" in x


def first_images(x, count: int = 8):
    """A few images of `x` (array, tensor or dataset) for checking the augmenter's output."""
    if isinstance(x, tf.data.Dataset):
        if has_views(images_from(x.element_spec)):
            return None  # views made in tf.data: their specs are checked instead
        for batch in x.take(1):
            return images_from(batch)[:count]
        return None
    if isinstance(x, (tuple, list)) and x and hasattr(x[0], "shape"):
        x = x[0]
    if isinstance(x, (np.ndarray, tf.Tensor)):
        return tf.convert_to_tensor(x[:count])
    return None


def check_batch(model, images) -> None:
    """Refuses a batch smaller than `model.min_batch_size` (asserted in the graph when the
    batch size is unknown at tracing)."""
    batch = images.shape[0]
    if batch is not None and batch < model.min_batch_size:
        raise ValueError(
            f"{type(model).__name__} needs at least {model.min_batch_size} images per batch "
            f"(per replica). Received: a batch of shape {tuple(images.shape)}"
        )
    if batch is None and model.min_batch_size > 1:
        tf.debugging.assert_greater_equal(
            tf.shape(images)[0],
            model.min_batch_size,
            message=(
                f"{type(model).__name__} needs at least {model.min_batch_size} images per "
                "batch; batch with drop_remainder=True"
            ),
        )


def check_size(model, shape, argument: str) -> None:
    """Refuses images whose `(height, width)` is not the encoder's input size."""
    if tuple(shape[1:3]) != tuple(model.image_shape[:2]):
        raise ValueError(
            f"Argument `{argument}` must have images of size {model.image_shape[:2]} "
            f"like the encoder input. Received: {argument}.shape={tuple(shape)}"
        )


def check_data(model, x, batch_size, argument: str = "x", for_predict: bool = False) -> None:
    """Validates numpy/tensor/dataset inputs before anything is traced."""
    if x is None:
        return
    if isinstance(x, tf.data.Dataset):
        _check_dataset_spec(model, x, argument, for_predict)
        return
    if isinstance(x, (tuple, list)) and x and hasattr(x[0], "shape"):
        x = x[0]
    if isinstance(x, (np.ndarray, tf.Tensor)):
        validation.check_image_batch(x, model.image_shape, argument)
        check_size(model, x.shape, argument)
        count = int(x.shape[0])
        size = batch_size or 32
        if not for_predict and (
            count < model.min_batch_size or (model.min_batch_size > 1 and count % size == 1)
        ):
            raise ValueError(
                f"{type(model).__name__} needs at least {model.min_batch_size} images in every "
                f"batch, but {count} images in batches of {size} leave a batch of 1. "
                f"Change `batch_size` or drop images. Received: {argument}.shape="
                f"{tuple(x.shape)}, batch_size={batch_size}"
            )
        validation.check_finite(x, argument)


def _check_dataset_spec(model, dataset: tf.data.Dataset, argument: str, for_predict: bool):
    """A dataset of image batches (or of views made in tf.data), from its element spec."""
    spec = dataset.element_spec
    if isinstance(spec, (tuple, list)):
        spec = spec[0]
    if has_views(spec):
        check_view_specs(model, spec["views"], argument)
    elif isinstance(spec, tf.TensorSpec):
        if spec.shape.rank == 3:
            raise ValueError(
                f"Argument `{argument}` is a dataset of single images {spec.shape}; "
                "batch it first, e.g. `dataset.batch(256, drop_remainder=True)`. "
                f"Received: element_spec={dataset.element_spec}"
            )
        validation.check_image_batch(spec, model.image_shape, argument)
        check_size(model, spec.shape, argument)
        if spec.shape[0] is not None and not for_predict:
            check_batch(model, spec)


def check_view_specs(model, views, argument: str = "x") -> None:
    """Views made in tf.data: as many as the augmenter makes, float, rank 4, C channels."""
    augmenter = model.augmenter
    expected = augmenter.num_views if isinstance(augmenter, augment.MultiCrop) else 2
    if not isinstance(views, (tuple, list)) or len(views) != expected:
        raise ValueError(
            f"Argument `{argument}` holds views made in tf.data; {type(model).__name__} with "
            f"its augmenter trains on {expected} views per image. Make them with "
            "`keras_siamese.augment.views_in_dataset(dataset, model.augmenter)`. "
            f"Received: {len(views) if isinstance(views, (tuple, list)) else views!r} views"
        )
    for view in views:
        augment.check_views(view, augmenter, (None, None, model.image_shape[-1]))


def check_augmenter_output(model, images) -> None:
    """Runs the augmenter on a few images; its views must be float, in [0, 1], with the
    encoder's channels (`keras_siamese.augment.check_views` names the fix)."""
    if images is None or images.shape[0] == 0:
        return
    views = model.make_views(tf.convert_to_tensor(images))
    producers = (
        list(model.augmenter)
        if isinstance(model.augmenter, tuple)
        else [model.augmenter] * len(views)
    )
    for view, producer in zip(views, producers, strict=True):
        augment.check_views(view, producer, (None, None, model.image_shape[-1]))
