"""Features: `extract_features`, the one place that runs an encoder over a data set."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

Data = tuple | tf.data.Dataset
"""`(images, labels)` numpy arrays, or a `tf.data.Dataset` of `(images, labels)`."""


def _check_data(data: Data, name: str = "data") -> None:
    """Raises TypeError/ValueError unless `data` is `(images, labels)` or such a dataset."""
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


def _batches(
    data: Data, encoder: Callable, batch_size: int
) -> tuple[Iterator[tuple], int | None]:
    """Yields `(images, labels)` batches of `data` and returns the number of batches if known."""
    if isinstance(data, tf.data.Dataset):
        dataset = _batched_dataset(data, encoder, batch_size)
        count = int(dataset.cardinality())
        return iter(dataset), (count if count >= 0 else None)
    images, labels = np.asarray(data[0]), np.asarray(data[1])
    starts = range(0, len(images), batch_size)
    batches = ((images[s : s + batch_size], labels[s : s + batch_size]) for s in starts)
    return batches, len(starts)


def _make_predict_function(encoder: Callable) -> Callable:
    """Wraps `encoder(images, training=False)` in one `tf.function` that can be reused.

    Variables are captured by reference, so the function keeps following the encoder's
    weights as they train (the `KNNMonitor` builds it once per model).
    """

    @tf.function(reduce_retracing=True)
    def predict(images):
        return encoder(images, training=False)

    return predict


def _extract_with(
    predict: Callable,
    encoder: Callable,
    data: Data,
    batch_size: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """`extract_features` with an already built predict function."""
    batches, count = _batches(data, encoder, batch_size)
    if progress:
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
    if not all_features:
        raise ValueError("Argument `data` holds no examples. Received: an empty data set")
    return np.concatenate(all_features), np.concatenate(all_labels)


def _check_positive_int(name: str, value: int, meaning: str = "") -> None:
    """Raises TypeError unless `value` is an int, ValueError unless it is >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"Argument `{name}` must be an int. Received: {name}={value!r}")
    if value < 1:
        raise ValueError(f"Argument `{name}` must be >= 1{meaning}. Received: {name}={value}")


def _check_batch_size(batch_size: int) -> None:
    _check_positive_int("batch_size", batch_size)


def extract_features(
    encoder: Callable,
    data: Data,
    batch_size: int = 256,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs `encoder` over a labelled data set and returns its features and labels.

    The encoder is called as `encoder(images, training=False)` inside one `tf.function`
    (`reduce_retracing=True`, so the smaller last batch does not trace a second graph), so
    batch normalisation uses its moving statistics. Images go in as they are stored (the
    models of this package take uint8 or float images in [0, 255]). A dataset whose elements
    are single examples is batched here; one that is already batched is used as is. Which
    one is decided by comparing the rank of its images with the rank of the encoder's input
    (for subclassed encoders without a symbolic input, by the rank of the labels).

    Args:
        encoder: a callable Keras model mapping a batch of images to features of shape
            `(batch, dims)`, e.g. `model.encoder` or a `SimCLR`/`SimSiam` model itself.
        data: a tuple `(images, labels)` of numpy arrays with integer labels of shape `(N,)`,
            or a `tf.data.Dataset` of `(images, labels)`, batched or not.
        batch_size: examples per forward pass (for numpy data and unbatched datasets).
        progress: show a tqdm progress bar over the batches.

    Returns:
        `(features, labels)`: float32 of shape `(N, dims)` and int64 of shape `(N,)`, in the
        order of `data`.

    Raises:
        TypeError: if `data` is neither a tuple nor a dataset, or `batch_size` is not an int.
        ValueError: if the encoder output is not rank 2, labels are not of shape `(N,)`,
            images and labels differ in length, `data` is empty or `batch_size < 1`.

    Example:
        >>> import keras
        >>> encoder = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
        >>> images = np.zeros((3, 4, 4, 1), "uint8")
        >>> features, labels = extract_features(encoder, (images, np.arange(3)), progress=False)
        >>> features.shape, labels.dtype
        ((3, 16), dtype('int64'))
    """
    _check_batch_size(batch_size)
    _check_data(data)
    return _extract_with(_make_predict_function(encoder), encoder, data, batch_size, progress)
