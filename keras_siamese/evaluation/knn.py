"""Weighted kNN: `knn_predict` (maths on feature arrays), `knn_accuracy` (model in, accuracy out).

Shared with `keras_siamese.callbacks.KNNMonitor` through `check_knn_arguments`,
`FeatureExtractor` and `knn_accuracy`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.evaluation.features import (
    Data,
    FeatureExtractor,
    check_data,
)


def check_knn_arguments(k: int, temperature: float, chunk_size: int = 1) -> None:
    """Checks the arguments of the weighted kNN before any forward pass.

    Args:
        k: neighbours per query, an integer >= 1.
        temperature: the weight temperature, finite and > 0 (`validation.check_temperature`).
        chunk_size: queries per similarity block, an integer >= 1.

    Raises:
        TypeError: for a non-integer `k` or `chunk_size`, or a non-numeric `temperature`.
        ValueError: for values out of range.

    Example:
        >>> check_knn_arguments(200, 0.1)
    """
    validation.check_integer("k", k, 1, " (the number of neighbours)")
    validation.check_temperature(temperature)
    validation.check_integer("chunk_size", chunk_size)


@tf.function(reduce_retracing=True)
def _knn_chunk(
    memory_features: tf.Tensor,
    memory_labels: tf.Tensor,
    query_features: tf.Tensor,
    k: tf.Tensor,
    temperature: tf.Tensor,
    num_classes: tf.Tensor,
) -> tf.Tensor:
    """Weighted kNN votes of one chunk of (already L2-normalised) queries."""
    similarities = tf.linalg.matmul(query_features, memory_features, transpose_b=True)
    top_similarities, top_indices = tf.math.top_k(similarities, k=k, sorted=True)
    # exp((s - s_max) / T) is exp(s / T) times one positive constant per row: the same argmax,
    # but it cannot overflow for small temperatures.
    weights = tf.exp((top_similarities - top_similarities[:, :1]) / temperature)
    neighbour_labels = tf.gather(memory_labels, top_indices)
    rows = tf.shape(query_features)[0]
    row_offsets = tf.range(rows, dtype=tf.int64)[:, None] * tf.cast(num_classes, tf.int64)
    # One segment per (query, class): memory stays O(chunk * classes), never chunk * k * classes.
    scores = tf.math.unsorted_segment_sum(
        weights, row_offsets + neighbour_labels, num_segments=rows * num_classes
    )
    scores = tf.reshape(scores, [rows, num_classes])
    return tf.argmax(scores, axis=1, output_type=tf.int64)


def _check_arrays(
    memory_features: np.ndarray,
    memory_labels: np.ndarray,
    query_features: np.ndarray,
    num_classes: int | None,
) -> int:
    """Checks the kNN's arrays (shapes, labels in range); returns `num_classes`."""
    if memory_features.ndim != 2 or query_features.ndim != 2:
        raise ValueError(
            "Arguments `memory_features` and `query_features` must be rank 2 (examples, dims). "
            f"Received: memory_features.shape={memory_features.shape}, "
            f"query_features.shape={query_features.shape}"
        )
    if memory_features.shape[1] != query_features.shape[1]:
        raise ValueError(
            "Arguments `memory_features` and `query_features` must have the same feature size. "
            f"Received: memory_features.shape={memory_features.shape}, "
            f"query_features.shape={query_features.shape}"
        )
    if len(memory_features) == 0:
        raise ValueError(
            "Argument `memory_features` is empty. "
            f"Received: memory_features.shape={memory_features.shape}"
        )
    if memory_labels.shape != (len(memory_features),) or not np.issubdtype(
        memory_labels.dtype, np.integer
    ):
        raise ValueError(
            "Argument `memory_labels` must be integers of shape (M,) matching `memory_features`. "
            f"Received: memory_labels.shape={memory_labels.shape}, dtype={memory_labels.dtype}, "
            f"memory_features.shape={memory_features.shape}"
        )
    smallest, largest = int(memory_labels.min()), int(memory_labels.max())
    if num_classes is None:
        num_classes = largest + 1
    if smallest < 0 or largest >= num_classes:
        raise ValueError(
            "Argument `memory_labels` must lie in [0, num_classes). "
            f"Received: labels in [{smallest}, {largest}], num_classes={num_classes}"
        )
    return num_classes


def knn_predict(
    memory_features: np.ndarray,
    memory_labels: np.ndarray,
    query_features: np.ndarray,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Predicts query classes by a similarity-weighted vote of their k nearest neighbours.

    The weighted kNN of InstDisc (Wu et al., 2018, "Unsupervised Feature Learning via
    Non-Parametric Instance Discrimination", eq. 7), used as the training monitor of SimSiam
    (Chen & He, 2021) and lightly: features are L2-normalised, each query takes the `k` memory
    examples of highest cosine similarity `s_i`, each neighbour votes for its class with weight
    `exp(s_i / temperature)`, and the class with the largest sum wins.

    Queries are processed `chunk_size` at a time, so only a `(chunk_size, len(memory))`
    block of similarities exists at once (60k x 10k never materialises).

    Note: if `k` exceeds the memory size it is clamped to the memory size (every memory
    example votes), as a monitor on a small labelled subset should not fail.

    Args:
        memory_features: float array `(M, dims)`, the labelled bank.
        memory_labels: integer array `(M,)` with values in `[0, num_classes)`.
        query_features: float array `(Q, dims)`.
        k: neighbours per query (InstDisc and SimSiam use 200).
        temperature: the weight temperature (0.1 in InstDisc and SimSiam).
        num_classes: number of classes; `max(memory_labels) + 1` when None.
        chunk_size: queries per similarity block.

    Returns:
        int64 array `(Q,)` of predicted classes.

    Raises:
        TypeError: if `k` or `chunk_size` is not an int, `temperature` not a number.
        ValueError: if `k < 1`, `temperature` is not finite and > 0, `chunk_size < 1`, the
            feature arrays are not rank 2 with equal dims, labels do not match the memory
            or fall outside `[0, num_classes)`, or the memory is empty.

    Example:
        >>> memory = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> knn_predict(memory, np.array([0, 1]), np.array([[0.9, 0.1]]), k=1)
        array([0])
    """
    check_knn_arguments(k, temperature, chunk_size)
    memory_features = np.asarray(memory_features, dtype=np.float32)
    query_features = np.asarray(query_features, dtype=np.float32)
    memory_labels = np.asarray(memory_labels)
    num_classes = _check_arrays(memory_features, memory_labels, query_features, num_classes)
    if len(query_features) == 0:
        return np.zeros((0,), np.int64)

    k = min(int(k), len(memory_features))
    memory = tf.math.l2_normalize(tf.constant(memory_features), axis=1)
    queries = tf.math.l2_normalize(tf.constant(query_features), axis=1)
    labels = tf.constant(memory_labels, tf.int64)
    k_tensor = tf.constant(k, tf.int32)
    temperature_tensor = tf.constant(temperature, tf.float32)
    classes_tensor = tf.constant(num_classes, tf.int32)
    predictions = [
        _knn_chunk(
            memory,
            labels,
            queries[start : start + chunk_size],
            k_tensor,
            temperature_tensor,
            classes_tensor,
        ).numpy()
        for start in range(0, len(query_features), chunk_size)
    ]
    return np.concatenate(predictions)


def knn_accuracy(
    model: Callable,
    memory: Data,
    queries: Data,
    k: int = 200,
    temperature: float = 0.1,
    batch_size: int = 256,
    num_classes: int | None = None,
    chunk_size: int = 1024,
    progress: bool = True,
    *,
    input_scale: float | None = None,
) -> float:
    """Top-1 accuracy of a weighted kNN classifier on a model's features.

    Extracts features of `memory` (the labelled bank, usually the training set) and of
    `queries` (usually the test set) with `extract_features`, then classifies each query with
    `knn_predict`: the weighted kNN of InstDisc (Wu et al., 2018), the SimSiam (Chen & He,
    2021) and lightly kNN monitor. It needs no training, so it tracks representation quality
    during self-supervised training at the cost of two forward passes. `k` larger than the
    memory is clamped to the memory size.

    Args:
        model: a keras_siamese model or its `embedding_model()` (images as stored), a bare
            model with `input_scale` (see `keras_siamese.evaluation.features`), or a
            `FeatureExtractor`, reused across calls as `KNNMonitor` does.
        memory: `(images, labels)` numpy arrays or a dataset of them: the labelled bank.
        queries: the same for the examples to classify.
        k: neighbours per query.
        temperature: the weight temperature of `exp(similarity / temperature)`.
        batch_size: examples per forward pass.
        num_classes: number of classes; the largest memory label + 1 when None.
        chunk_size: queries per similarity block (bounds memory use).
        progress: show tqdm progress bars while extracting features.
        input_scale: the factor the stored images are multiplied by before a bare model
            (`1 / 255` for an encoder taking [0, 1]); None for a keras_siamese model, a model
            starting with `Rescaling`, or a `FeatureExtractor`.

    Returns:
        The fraction of queries whose predicted class equals their label, in [0, 1].

    Raises:
        TypeError: as `extract_features` and `knn_predict`.
        ValueError: if `k < 1`, `temperature` is not finite and > 0 or `input_scale` is
            missing or not allowed (checked before any forward pass), and as
            `extract_features` and `knn_predict`.

    Example:
        >>> import keras
        >>> encoder = keras.Sequential([keras.Input((2,)), keras.layers.Identity()])
        >>> points = (np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1]))
        >>> knn_accuracy(encoder, points, points, k=1, progress=False, input_scale=1.0)
        1.0
    """
    check_knn_arguments(k, temperature, chunk_size)
    validation.check_integer("batch_size", batch_size)
    check_data(memory, "memory")
    check_data(queries, "queries")
    if isinstance(model, FeatureExtractor):
        if input_scale is not None:
            raise ValueError(
                "Argument `input_scale` must be None with a FeatureExtractor, which has its "
                f"own (input_scale={model.input_scale!r}). Received: input_scale={input_scale!r}"
            )
        extractor = model
    else:
        extractor = FeatureExtractor(model, input_scale)
    memory_features, memory_labels = extractor(memory, batch_size, progress)
    query_features, query_labels = extractor(queries, batch_size, progress)
    predictions = knn_predict(
        memory_features,
        memory_labels,
        query_features,
        k=k,
        temperature=temperature,
        num_classes=num_classes,
        chunk_size=chunk_size,
    )
    return float(np.mean(predictions == query_labels))
