"""Verification: "are these two images of the same class?" scored as ROC AUC, EER and accuracy.

`pair_scores` runs a model over labelled pairs; `roc_curve` and `verification_metrics` turn
scores into numbers (numpy only, no scikit-learn); `verification_report` does both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from keras_siamese import validation
from keras_siamese.evaluation.features import _check_input_scale, _is_representation_model
from keras_siamese.similarity import check_distance, pair_distance, score_from_distance

Pairs = tuple | tf.data.Dataset
"""`((images_a, images_b), labels)` numpy arrays, or a `tf.data.Dataset` of such pairs."""


def _similarity_function(model, distance: str | None, input_scale: float | None) -> Callable:
    """A keras_siamese model's `similarity`, else a score of the embeddings with `distance`."""
    scale = _check_input_scale(model, input_scale)
    representation_model = _is_representation_model(model)
    if representation_model and distance is None:
        return tf.function(model.similarity, reduce_retracing=True)
    if distance is None:
        distance = model.distance if representation_model else "cosine"
    distance = check_distance(distance)

    def embed(images):
        if scale is not None:
            images = tf.cast(images, tf.float32) * scale
        return model(images, training=False)

    @tf.function(reduce_retracing=True)
    def similarity(images_a, images_b):
        embeddings_a, embeddings_b = embed(images_a), embed(images_b)
        return score_from_distance(pair_distance(embeddings_a, embeddings_b, distance), distance)

    return similarity


def _pair_batches(pairs: Pairs, batch_size: int):
    """Yields `(images_a, images_b, labels)` batches and returns the number of batches if known."""
    if isinstance(pairs, tf.data.Dataset):
        spec = pairs.element_spec
        pair_structure = isinstance(spec, tuple) and len(spec) == 2
        if not (pair_structure and isinstance(spec[0], tuple) and len(spec[0]) == 2):
            raise ValueError(
                "Argument `pairs` must be a tf.data.Dataset of `((images_a, images_b), labels)`"
                f" (see keras_siamese.sampling.make_pairs). Received: pairs.element_spec={spec}"
            )
        if spec[1].shape.rank == 0:
            pairs = pairs.batch(batch_size)
        count = int(pairs.cardinality())
        batches = ((a, b, y) for (a, b), y in pairs.prefetch(tf.data.AUTOTUNE))
        return batches, (count if count >= 0 else None)
    if not (
        isinstance(pairs, (tuple, list))
        and len(pairs) == 2
        and isinstance(pairs[0], (tuple, list))
        and len(pairs[0]) == 2
    ):
        raise ValueError(
            "Argument `pairs` must be `((images_a, images_b), labels)` numpy arrays or a "
            f"tf.data.Dataset of them. Received: pairs of type {type(pairs).__name__}"
        )
    (images_a, images_b), labels = pairs
    images_a, images_b, labels = np.asarray(images_a), np.asarray(images_b), np.asarray(labels)
    if images_a.shape != images_b.shape or labels.shape != images_a.shape[:1]:
        raise ValueError(
            "Argument `pairs` must hold two image arrays of the same shape and one label per "
            f"pair. Received: images_a.shape={images_a.shape}, images_b.shape="
            f"{images_b.shape}, labels.shape={labels.shape}"
        )
    starts = range(0, len(labels), batch_size)
    batches = (
        (images_a[s : s + batch_size], images_b[s : s + batch_size], labels[s : s + batch_size])
        for s in starts
    )
    return batches, len(starts)


def pair_scores(
    model,
    pairs: Pairs,
    batch_size: int = 256,
    progress: bool = True,
    distance: str | None = None,
    *,
    input_scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Similarity scores of labelled pairs (higher = more similar).

    Args:
        model: a keras_siamese model (`SiameseNetwork`, `SimCLR`, ...: scored with
            `model.similarity`), or a model mapping images to embeddings (scored with
            `distance`), which either starts with a `Rescaling` layer (as
            `model.embedding_model()`) or needs `input_scale`.
        pairs: `((images_a, images_b), labels)` numpy arrays, labels 1 for a same-class pair,
            or a `tf.data.Dataset` of such pairs (batched or not).
        batch_size: pairs per forward pass (numpy input and unbatched datasets).
        progress: show a tqdm progress bar.
        distance: score embeddings with this distance instead of `model.similarity`;
            defaults to the keras_siamese model's `distance`, else `"cosine"`.
        input_scale: the factor the stored images are multiplied by before a plain model
            (`1 / 255` for an encoder taking [0, 1]); see `extract_features`.

    Returns:
        `(scores, labels)`: float64 `(N,)` and int64 `(N,)`.

    Raises:
        ValueError: for pairs not of the form `((images_a, images_b), labels)`, labels that
            are not 0/1, no pairs, or an `input_scale` missing for a plain model without
            `Rescaling` (or given for a keras_siamese model).

    Example:
        >>> scores, labels = pair_scores(model, ((images_a, images_b), same), progress=False)
    """
    validation.check_integer("batch_size", batch_size)
    similarity = _similarity_function(model, distance, input_scale)
    batches, count = _pair_batches(pairs, batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=count, desc="pairs", unit="batch", leave=False)
    all_scores, all_labels = [], []
    for images_a, images_b, labels in batches:
        scores = similarity(tf.convert_to_tensor(images_a), tf.convert_to_tensor(images_b))
        all_scores.append(np.asarray(scores, np.float64).reshape(-1))
        all_labels.append(np.asarray(labels).reshape(-1))
    if not all_scores:
        raise ValueError("Argument `pairs` holds no pairs. Received: an empty data set")
    return np.concatenate(all_scores), _check_binary_labels(np.concatenate(all_labels))


def _check_binary_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.all((labels == 0) | (labels == 1)):
        raise ValueError(
            "Pair labels must be 1 for a same-class pair and 0 otherwise, shape (N,). "
            f"Received: labels with shape {labels.shape} and values {np.unique(labels)[:10]}"
        )
    return labels.astype(np.int64)


def check_scores(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """Checks the scores of labelled pairs; returns them as float64 and int64 arrays.

    Args:
        scores: `(N,)` pair scores, higher = more similar.
        labels: `(N,)` 1 for a same-class pair, 0 otherwise (booleans work).

    Returns:
        `(scores, labels)`: float64 `(N,)` and int64 `(N,)`.

    Raises:
        ValueError: for labels other than 0/1, unequal shapes, non-finite scores, or pairs
            of one kind only.

    Example:
        >>> check_scores([0.9, 0.1], [True, False])
        (array([0.9, 0.1]), array([1, 0]))
    """
    scores = np.asarray(scores, np.float64)
    labels = _check_binary_labels(labels)
    if scores.shape != labels.shape:
        raise ValueError(
            "Arguments `scores` and `labels` must have the same shape (N,). "
            f"Received: scores.shape={scores.shape}, labels.shape={labels.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("Argument `scores` contains NaN or infinite values.")
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        raise ValueError(
            "Verification needs both same-class (1) and different-class (0) pairs. "
            f"Received: {positives} positive and {len(labels) - positives} negative pairs"
        )
    return scores, labels


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC curve of scores where "same" is predicted when `score >= threshold`.

    Args:
        scores: `(N,)` scores, higher = more similar.
        labels: `(N,)` 1 for same-class pairs, 0 otherwise.

    Returns:
        `(false_positive_rates, true_positive_rates, thresholds)`, one point per distinct
        score from the highest down, preceded by the point (0, 0) at threshold `+inf`.

    Raises:
        ValueError: for labels that are not 0/1 or of one value only, or unequal shapes.

    Example:
        >>> fpr, tpr, thresholds = roc_curve([0.9, 0.1, 0.8], [1, 0, 0])
        >>> fpr.tolist(), tpr.tolist()
        ([0.0, 0.0, 0.5, 1.0], [0.0, 1.0, 1.0, 1.0])
    """
    scores, labels = check_scores(scores, labels)
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    # The last index of each run of equal scores: a threshold admits all tied pairs at once.
    ends = np.r_[np.flatnonzero(np.diff(scores) != 0), len(scores) - 1]
    true_positives = np.cumsum(labels)[ends]
    false_positives = (ends + 1) - true_positives
    positives, negatives = labels.sum(), len(labels) - labels.sum()
    false_positive_rates = np.r_[0.0, false_positives / negatives]
    true_positive_rates = np.r_[0.0, true_positives / positives]
    return false_positive_rates, true_positive_rates, np.r_[np.inf, scores[ends]]


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)
    return (last_rank - (counts - 1) / 2.0)[inverse.reshape(-1)]


def verification_metrics(scores, labels) -> dict[str, float]:
    """ROC AUC, equal error rate and best-threshold accuracy of pair scores.

    - `roc_auc`: the probability that a random same-class pair scores above a random
      different-class pair, ties counting one half (the Mann-Whitney statistic; equal to
      the area under the ROC curve).
    - `equal_error_rate`: the error rate where the false accept rate (FPR) equals the
      false reject rate (1 - TPR), interpolated linearly along the ROC curve.
    - `accuracy` and `threshold`: the best accuracy of the rule "same when
      `score >= threshold`" over all thresholds, and that threshold (in score units: a
      cosine similarity, or a negated Euclidean distance); the highest such threshold
      when several give the same accuracy, `inf` when calling every pair "different" is
      best.

    Args:
        scores: `(N,)` scores, higher = more similar.
        labels: `(N,)` 1 for same-class pairs, 0 otherwise.

    Returns:
        A dict of floats: `roc_auc`, `equal_error_rate`, `accuracy`, `threshold`,
        `positive_pairs`, `negative_pairs`.

    Raises:
        ValueError: for labels that are not 0/1 or of one value only, unequal shapes, or
            non-finite scores.

    Example:
        >>> metrics = verification_metrics([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
        >>> metrics["roc_auc"], metrics["equal_error_rate"], metrics["accuracy"]
        (1.0, 0.0, 1.0)
    """
    scores, labels = check_scores(scores, labels)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    ranks = _average_ranks(scores)
    roc_auc = (ranks[labels == 1].sum() - positives * (positives + 1) / 2.0) / (
        positives * negatives
    )

    fpr, tpr, thresholds = roc_curve(scores, labels)
    fnr = 1.0 - tpr
    # First ROC point where the false reject rate has fallen to the false accept rate.
    # It exists and is not the first point: the curve runs from (fpr, fnr) = (0, 1) to (1, 0).
    after = int(np.argmax(fnr <= fpr))
    before = after - 1
    gap_before = fnr[before] - fpr[before]  # > 0
    gap_after = fpr[after] - fnr[after]  # >= 0
    weight = gap_before / (gap_before + gap_after)
    equal_error_rate = float(fpr[before] + weight * (fpr[after] - fpr[before]))

    correct = tpr * positives + (1.0 - fpr) * negatives
    best = int(np.argmax(correct))
    return {
        "roc_auc": float(roc_auc),
        "equal_error_rate": equal_error_rate,
        "accuracy": float(correct[best] / len(labels)),
        "threshold": float(thresholds[best]),
        "positive_pairs": positives,
        "negative_pairs": negatives,
    }


def verification_report(
    model,
    pairs: Pairs,
    batch_size: int = 256,
    progress: bool = True,
    distance: str | None = None,
    *,
    input_scale: float | None = None,
) -> dict[str, float]:
    """Scores labelled pairs with a model and reports ROC AUC, EER and accuracy.

    The face-verification protocol (LFW; Huang et al. 2007) applied to any classes: a
    model is good when same-class pairs score above different-class pairs, measured
    threshold-free (ROC AUC, equal error rate) and at the best single threshold
    (accuracy and that threshold). Evaluate on classes unseen in training to measure
    generalisation (`keras_siamese.sampling.split_classes` and `make_pairs`).

    Args:
        model: see `pair_scores`: a keras_siamese model (scored with `model.similarity`) or
            a model mapping images to embeddings.
        pairs: `((images_a, images_b), labels)` numpy arrays, labels 1 for a same-class pair,
            or a `tf.data.Dataset` of such pairs (batched or not).
        batch_size: pairs per forward pass (numpy input and unbatched datasets).
        progress: show a tqdm progress bar.
        distance: see `pair_scores`.
        input_scale: see `pair_scores`.

    Returns:
        The dict of `verification_metrics`: `roc_auc`, `equal_error_rate`, `accuracy`,
        `threshold`, `positive_pairs`, `negative_pairs`.

    Raises:
        ValueError: for pairs not of the form `((images_a, images_b), labels)`, labels that
            are not 0/1, or pairs of a single label.

    Example:
        >>> pairs = keras_siamese.sampling.make_pairs(unseen, seed=0).batch(256)
        >>> report = verification_report(model, pairs)
        >>> report["roc_auc"], report["equal_error_rate"]
    """
    scores, labels = pair_scores(
        model, pairs, batch_size, progress, distance, input_scale=input_scale
    )
    return verification_metrics(scores, labels)
