"""Distances and similarity scores between embeddings, shared by losses, models, metrics and export.

Convention everywhere in keras_siamese: a *score* is higher for more similar pairs.
For `"cosine"` it is the cosine similarity in [-1, 1]; for `"euclidean"` it is the
negated Euclidean distance (0 for identical embeddings, negative otherwise).
"""

from __future__ import annotations

import tensorflow as tf

DISTANCES = ("euclidean", "cosine")


def check_distance(distance: str) -> str:
    """Validates a distance name.

    Args:
        distance: `"euclidean"` or `"cosine"`.

    Returns:
        The name.

    Raises:
        ValueError: for another name.

    Example:
        >>> check_distance("cosine")
        'cosine'
    """
    if distance not in DISTANCES:
        raise ValueError(
            f"Argument `distance` must be one of {DISTANCES}. Received: distance={distance!r}"
        )
    return distance


def pair_distance(a: tf.Tensor, b: tf.Tensor, distance: str = "euclidean") -> tf.Tensor:
    """Distance between corresponding rows of `a` and `b`.

    Euclidean: `||a - b||` (with a gradient-safe square root: the gradient at 0 is 0).
    Cosine: `1 - cos(a, b)`.

    Args:
        a: `(batch, d)` embeddings.
        b: `(batch, d)` embeddings.
        distance: `"euclidean"` or `"cosine"`.

    Returns:
        float32 `(batch,)` distances.

    Example:
        >>> float(pair_distance(tf.constant([[3.0, 4.0]]), tf.constant([[0.0, 0.0]]))[0])
        5.0
    """
    check_distance(distance)
    a = tf.cast(a, tf.float32)
    b = tf.cast(b, tf.float32)
    if distance == "cosine":
        a = tf.math.l2_normalize(a, axis=-1)
        b = tf.math.l2_normalize(b, axis=-1)
        return 1.0 - tf.reduce_sum(a * b, axis=-1)
    squared = tf.reduce_sum(tf.square(a - b), axis=-1)
    return _safe_sqrt(squared)


def pairwise_distances(
    embeddings: tf.Tensor, others: tf.Tensor | None = None, distance: str = "euclidean"
) -> tf.Tensor:
    """All distances between rows of `embeddings` and rows of `others` (default: itself).

    Args:
        embeddings: `(n, d)`.
        others: `(m, d)`, or None for `embeddings`.
        distance: `"euclidean"` or `"cosine"`.

    Returns:
        float32 `(n, m)` distances; for Euclidean the diagonal of a self-comparison
        is exactly 0.

    Example:
        >>> pairwise_distances(tf.eye(3)).shape
        TensorShape([3, 3])
    """
    check_distance(distance)
    embeddings = tf.cast(embeddings, tf.float32)
    self_comparison = others is None
    others = embeddings if self_comparison else tf.cast(others, tf.float32)
    if distance == "cosine":
        a = tf.math.l2_normalize(embeddings, axis=-1)
        b = tf.math.l2_normalize(others, axis=-1)
        return 1.0 - tf.matmul(a, b, transpose_b=True)
    squared = (
        tf.reduce_sum(tf.square(embeddings), axis=1, keepdims=True)
        - 2.0 * tf.matmul(embeddings, others, transpose_b=True)
        + tf.reduce_sum(tf.square(others), axis=1)[None, :]
    )
    squared = tf.maximum(squared, 0.0)
    if self_comparison:
        squared = tf.linalg.set_diag(squared, tf.zeros(tf.shape(squared)[0]))
    return _safe_sqrt(squared)


def score_from_distance(distances: tf.Tensor, distance: str = "euclidean") -> tf.Tensor:
    """Turns distances into scores (higher = more similar).

    Args:
        distances: output of `pair_distance` or `pairwise_distances`.
        distance: the distance they were computed with.

    Returns:
        Cosine similarity for `"cosine"`, negated distance for `"euclidean"`.

    Example:
        >>> float(score_from_distance(tf.constant(0.25), "cosine"))
        0.75
    """
    check_distance(distance)
    return 1.0 - distances if distance == "cosine" else -distances


def _safe_sqrt(squared):
    positive = squared > 0.0
    safe = tf.where(positive, squared, tf.ones_like(squared))
    return tf.where(positive, tf.sqrt(safe), tf.zeros_like(squared))
