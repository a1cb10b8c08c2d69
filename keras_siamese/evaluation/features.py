"""Features: `extract_features` and `FeatureExtractor`, the one place that runs a model over data.

Data sets hold images as stored, uint8 or float in [0, 255], while a keras_siamese encoder
(`model.encoder`, `keras_siamese.encoders`) takes float images in [0, 1]: the keras_siamese
model rescales them in between. So that an encoder never silently sees the wrong range, the
model is one of:

- a keras_siamese model (`keras_siamese.models.RepresentationModel`: SimCLR, BYOL, ...,
  SiameseNetwork), called on the images as stored;
- a Keras model that starts with a `Rescaling` layer, such as `model.embedding_model()`,
  also called on the images as stored;
- any other model or callable, with an explicit `input_scale`: the factor the stored
  images are multiplied by first (`1 / 255` for an encoder taking [0, 1] such as
  `model.encoder`, `1.0` for a model that takes the images as stored). Without it a
  ValueError says so.

`progress=` is True (a tqdm bar, the default) or False (nothing), or where to report the work
done instead: an object with `update(count)` (a tqdm bar, the command line's
`keras_siamese.cli.progress_lines.Progress`) or a callable `progress(count)`, called with the
examples of each batch once it is done. The caller owns such an object: it is never closed here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from keras_siamese import validation

Data = tuple | tf.data.Dataset
"""`(images, labels)` numpy arrays, or a `tf.data.Dataset` of `(images, labels)`."""

_SWITCHES = (bool, int, np.bool_, np.integer)  # progress=True/False (and 0/1), as before hooks


def progress_hook(progress) -> Callable[[int], object] | None:
    """Where a loop reports its work: None for a switch, else a function of the items done.

    Args:
        progress: True or False (None counts as False): the loop's own tqdm bar or nothing,
            so None comes back; an object with `update(count)` (a tqdm bar,
            `keras_siamese.cli.progress_lines.Progress`): its `update`; a callable
            `progress(count)`: itself.

    Returns:
        The function to call with each count of items done, or None for a switch.

    Raises:
        TypeError: for anything else.

    Example:
        >>> done = []
        >>> progress_hook(done.append)(8), done, progress_hook(True)
        (None, [8], None)
    """
    if progress is None or isinstance(progress, _SWITCHES):
        return None
    update = getattr(progress, "update", None)
    if callable(update):
        return update
    if callable(progress):
        return progress
    raise TypeError(
        "Argument `progress` must be True or False, an object with an `update(count)` method "
        "(a tqdm bar, keras_siamese.cli.progress_lines.Progress) or a callable taking the "
        f"count of items done. Received: progress={progress!r} of type {type(progress).__name__}"
    )


def _is_representation_model(model) -> bool:
    """True for a keras_siamese model: it takes images as stored and rescales them itself."""
    from keras_siamese import models  # imported here: evaluation never imports models at load

    return isinstance(model, models.RepresentationModel)


def _starts_with_rescaling(model) -> bool:
    """True for a Keras model whose first layer is a `Rescaling` (as `embedding_model()`)."""
    if not isinstance(model, keras.Model):
        return False
    try:
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    except (AttributeError, ValueError):
        return False
    return bool(layers) and isinstance(layers[0], keras.layers.Rescaling)


def _check_input_scale(model, input_scale: float | None) -> float | None:
    """Checks how the stored images reach `model`: the factor to multiply them by, or None.

    See the module docstring; the error is what `FeatureExtractor` raises.
    """
    if _is_representation_model(model):
        if input_scale is not None:
            raise ValueError(
                f"Argument `input_scale` must be None for a keras_siamese model: "
                f"{type(model).__name__} takes the images as stored ([0, 255]) and rescales "
                f"them itself. Received: input_scale={input_scale!r}"
            )
        return None
    if input_scale is not None:
        scale = validation.check_number("input_scale", input_scale, 0.0, include_minimum=False)
        return None if scale == 1.0 else scale
    if _starts_with_rescaling(model):
        return None
    name = getattr(model, "name", type(model).__name__)
    raise ValueError(
        "Argument `input_scale` is needed: the model is not a keras_siamese model and does not "
        "start with a `Rescaling` layer, so the range its images must be in is unknown, while "
        "data sets hold images as stored ([0, 255]) and keras_siamese encoders take [0, 1]. "
        "Pass the keras_siamese model itself or its `embedding_model()`, or say how to scale "
        "the images: `input_scale=1/255` for an encoder taking [0, 1] (e.g. `model.encoder`), "
        "`input_scale=1.0` for a model taking the images as stored. "
        f"Received: model={name!r} of type {type(model).__name__}, input_scale=None"
    )


def check_data(data: Data, name: str = "data") -> None:
    """Raises TypeError/ValueError unless `data` is `(images, labels)` or such a dataset.

    Args:
        data: `(images, labels)` numpy arrays with labels of shape `(N,)`, or a
            `tf.data.Dataset` of `(images, labels)` pairs.
        name: the argument's name, for the message.

    Raises:
        TypeError: for anything but a tuple or a dataset.
        ValueError: for a dataset of other elements, labels not of shape `(N,)` or a
            different number of images and labels.

    Example:
        >>> check_data((np.zeros((2, 4, 4, 1)), np.arange(2)))
    """
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(
                f"Argument `{name}` must be a tf.data.Dataset of `(images, labels)` pairs. "
                f"Received: {name}.element_spec={spec}"
            )
        return
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(
            f"Argument `{name}` must be a tuple `(images, labels)` of numpy arrays or a "
            f"tf.data.Dataset of such pairs. Received: {name} of type {type(data).__name__}"
        )
    images, labels = (np.asarray(part) for part in data)
    if images.ndim < 1 or labels.ndim != 1:
        raise ValueError(
            f"Argument `{name}` needs images with a leading example axis and integer labels "
            f"of shape (N,). Received: images.shape={images.shape}, labels.shape={labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"Argument `{name}` needs as many labels as images. "
            f"Received: len(images)={len(images)}, len(labels)={len(labels)}"
        )


def _encoder_input_rank(encoder: Callable) -> int | None:
    """The rank (batch axis included) of a functional encoder's single input, else None."""
    try:
        inputs = encoder.inputs
    except AttributeError:
        return None
    if not isinstance(inputs, (list, tuple)) or len(inputs) != 1:
        return None
    return len(inputs[0].shape)


def _batched_dataset(
    dataset: tf.data.Dataset, encoder: Callable, batch_size: int
) -> tf.data.Dataset:
    """Returns `dataset` batched, batching it only if its elements are single examples.

    An element is a batch when its images have the rank of the encoder's input (batch axis
    included). For encoders without a symbolic input (subclassed models) the labels decide:
    a scalar label is one example, a vector of labels is a batch.
    """
    images_spec, labels_spec = dataset.element_spec
    images_rank = images_spec.shape.rank
    labels_rank = labels_spec.shape.rank
    input_rank = _encoder_input_rank(encoder)
    if input_rank is not None and images_rank is not None:
        if images_rank == input_rank:
            is_batched = True
        elif images_rank == input_rank - 1:
            is_batched = False
        else:
            raise ValueError(
                f"Argument `data` has images of rank {images_rank}, but `encoder` takes inputs "
                f"of rank {input_rank} (batch axis included), so they are neither batches nor "
                f"single examples. Received: data.element_spec={dataset.element_spec}"
            )
    elif labels_rank in (0, 1):
        is_batched = labels_rank == 1
    else:
        raise ValueError(
            "Argument `data` must yield integer labels, one scalar per example (or a vector "
            f"per batch). Received: data.element_spec={dataset.element_spec}"
        )
    if not is_batched:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _batches(data: Data, encoder: Callable, batch_size: int) -> tuple[Iterator[tuple], int | None]:
    """Yields `(images, labels)` batches of `data` and returns the number of batches if known."""
    if isinstance(data, tf.data.Dataset):
        dataset = _batched_dataset(data, encoder, batch_size)
        count = int(dataset.cardinality())
        return iter(dataset), (count if count >= 0 else None)
    images, labels = np.asarray(data[0]), np.asarray(data[1])
    starts = range(0, len(images), batch_size)
    batches = ((images[s : s + batch_size], labels[s : s + batch_size]) for s in starts)
    return batches, len(starts)


def _make_predict_function(encoder: Callable, scale: float | None = None) -> Callable:
    """Wraps `encoder(images * scale, training=False)` in one reusable `tf.function`.

    Variables are captured by reference, so the function keeps following the encoder's
    weights as they train.
    """

    @tf.function(reduce_retracing=True)
    def predict(images):
        if scale is not None:
            images = tf.cast(images, tf.float32) * scale
        return encoder(images, training=False)

    return predict


def _extract_with(
    predict: Callable,
    encoder: Callable,
    data: Data,
    batch_size: int,
    progress,
) -> tuple[np.ndarray, np.ndarray]:
    """`extract_features` with an already built predict function."""
    batches, count = _batches(data, encoder, batch_size)
    report = progress_hook(progress)
    if report is None and progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=count, desc="features", unit="batch", leave=False)
    all_features, all_labels = [], []
    for images, labels in batches:
        features = predict(tf.convert_to_tensor(images))
        if len(features.shape) != 2:
            raise ValueError(
                "Argument `encoder` must map a batch of images to rank-2 features "
                "(batch, dims); add a pooling or Flatten layer. "
                f"Received: encoder output of shape {tuple(features.shape)}"
            )
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError(
                "Argument `data` must hold integer class labels of shape (batch,), not one-hot "
                f"vectors. Received: a batch of labels of shape {labels.shape}"
            )
        all_features.append(np.asarray(features, dtype=np.float32))
        all_labels.append(labels.astype(np.int64))
        if report is not None:
            report(len(labels))
    if not all_features:
        raise ValueError("Argument `data` holds no examples. Received: an empty data set")
    return np.concatenate(all_features), np.concatenate(all_labels)


class FeatureExtractor:
    """Runs a model over labelled data sets: one traced function, reused across calls.

    The model is called as `model(images, training=False)` inside one `tf.function`
    (`reduce_retracing=True`, so the smaller last batch does not trace a second graph), so
    batch normalisation uses its moving statistics. Variables are captured by reference:
    the extractor follows the weights as they train, which is why
    `keras_siamese.callbacks.KNNMonitor` builds one per model and reuses it every epoch.
    A dataset whose elements are single examples is batched here; one that is already
    batched is used as is. Which one is decided by comparing the rank of its images with
    the rank of the model's input (for subclassed models without a symbolic input, by the
    rank of the labels).

    Args:
        model: a keras_siamese model, a Keras model starting with a `Rescaling` layer
            (`model.embedding_model()`), or, with `input_scale`, any callable Keras model
            from images to features `(batch, dims)`.
        input_scale: the factor the stored images are multiplied by before `model`:
            `1 / 255` for an encoder taking [0, 1] such as `model.encoder`, `1.0` for a
            model taking the images as stored. Must be None for a keras_siamese model;
            needed for a model that does not start with `Rescaling` (see the module).

    Raises:
        ValueError: if `input_scale` is missing for a model that is neither a keras_siamese
            model nor starts with `Rescaling`, or given for a keras_siamese model.

    Example:
        >>> encoder = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
        >>> extractor = FeatureExtractor(encoder, input_scale=1 / 255)
        >>> images = np.full((3, 4, 4, 1), 255, "uint8")
        >>> features, labels = extractor((images, np.arange(3)), progress=False)
        >>> features.shape, float(features.max())
        ((3, 16), 1.0)
    """

    def __init__(self, model: Callable, input_scale: float | None = None):
        self.scale = _check_input_scale(model, input_scale)
        self.model = model
        self.input_scale = input_scale
        self._predict = _make_predict_function(model, self.scale)

    def __call__(
        self, data: Data, batch_size: int = 256, progress=True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns `(features, labels)` of `data`; see `extract_features`."""
        validation.check_integer("batch_size", batch_size)
        check_data(data)
        progress_hook(progress)
        return _extract_with(self._predict, self.model, data, batch_size, progress)


def extract_features(
    model: Callable,
    data: Data,
    batch_size: int = 256,
    progress=True,
    *,
    input_scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs a model over a labelled data set and returns its features and labels.

    `FeatureExtractor(model, input_scale)(data, batch_size, progress)`: inference mode,
    one traced function, datasets batched or not. The images of `data` are as stored
    (uint8 or float in [0, 255]); see the module docstring for which models take them as
    they are and which need `input_scale`.

    Args:
        model: a keras_siamese model (SimCLR, BYOL, ..., SiameseNetwork) or its
            `embedding_model()`: both take the images as stored. A bare encoder such as
            `model.encoder` takes [0, 1] and needs `input_scale=1 / 255`.
        data: a tuple `(images, labels)` of numpy arrays with integer labels of shape `(N,)`,
            or a `tf.data.Dataset` of `(images, labels)`, batched or not.
        batch_size: examples per forward pass (for numpy data and unbatched datasets).
        progress: True shows a tqdm progress bar over the batches, False nothing; or an
            object with `update(count)` (`keras_siamese.cli.progress_lines.Progress`, a tqdm
            bar) or a callable `progress(count)`, told the examples of each batch once done
            (and never closed here).
        input_scale: the factor the stored images are multiplied by before a model that is
            neither a keras_siamese model nor starts with a `Rescaling` layer (`1 / 255` for
            an encoder taking [0, 1], `1.0` for a model taking the images as stored).

    Returns:
        `(features, labels)`: float32 of shape `(N, dims)` and int64 of shape `(N,)`, in the
        order of `data`.

    Raises:
        TypeError: if `data` is neither a tuple nor a dataset, `batch_size` is not an int, or
            `progress` is neither a switch, a progress object nor a callable.
        ValueError: if `input_scale` is missing for a bare model or given for a keras_siamese
            model, the model output is not rank 2, labels are not of shape `(N,)`, images
            and labels differ in length, `data` is empty or `batch_size < 1`.

    Example:
        >>> model = keras_siamese.SimCLR(keras_siamese.encoders.resnet(10, (16, 16, 1), width=4))
        >>> images = np.zeros((3, 16, 16, 1), "uint8")
        >>> features, labels = extract_features(model, (images, np.arange(3)), progress=False)
        >>> same, _ = extract_features(
        ...     model.encoder, (images, np.arange(3)), input_scale=1 / 255, progress=False)
        >>> features.shape, labels.dtype
        ((3, 32), dtype('int64'))
    """
    validation.check_integer("batch_size", batch_size)
    check_data(data)
    progress_hook(progress)
    return FeatureExtractor(model, input_scale)(data, batch_size, progress)
