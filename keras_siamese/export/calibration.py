"""Calibrating the `verify` threshold on validation pairs: ROC AUC, equal error rate, threshold.

Scores follow the keras_siamese convention (higher = more similar) and the decision rule of the
exported `verify` signature is `same = score >= threshold`. The threshold is chosen at the
equal error rate (EER) of the validation pairs: the candidate threshold (one of the observed
scores) where the false-accept rate (different pairs called the same) and the false-reject
rate (same pairs called different) are closest; the EER reported is their mean there.
"""

from __future__ import annotations

import math

import numpy as np


def _check_scores_and_labels(scores, same) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same)
    if scores.ndim != 1 or same.shape != scores.shape:
        raise ValueError(
            "`scores` and `same` must be 1-D arrays of one value per pair. "
            f"Received: scores.shape={scores.shape}, same.shape={same.shape}"
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError("`scores` must be finite. Received: scores with NaN or infinite values")
    if same.dtype != bool:
        if not np.all(np.isin(same, (0, 1))):
            raise ValueError(
                "`same` must hold booleans or 0/1 (1 = the pair shows the same identity). "
                f"Received: same values {np.unique(same)[:5].tolist()}"
            )
        same = same.astype(bool)
    positives, negatives = int(same.sum()), int((~same).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(
            "Calibrating needs both same and different pairs. "
            f"Received: {positives} same and {negatives} different pairs"
        )
    return scores, same


def roc_auc(scores, same) -> float:
    """Area under the ROC curve: the probability that a same pair outscores a different one.

    Computed as the Mann-Whitney U statistic with ties counted as one half.

    Args:
        scores: `(n,)` pair scores, higher = more similar.
        same: `(n,)` booleans (or 0/1), True for pairs of the same identity.

    Returns:
        The AUC in [0, 1].

    Raises:
        ValueError: if the shapes differ, scores are not finite, or one class is missing.

    Example:
        >>> roc_auc([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0])
        0.75
    """
    scores, same = _check_scores_and_labels(scores, same)
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), np.float64)
    # Average rank (1-based) of each group of tied scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    positives, negatives = int(same.sum()), int((~same).sum())
    rank_sum = ranks[same].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def error_rates(scores, same, threshold: float) -> tuple[float, float]:
    """False-accept and false-reject rates of the rule `same = score >= threshold`.

    Args:
        scores: `(n,)` pair scores, higher = more similar.
        same: `(n,)` booleans (or 0/1).
        threshold: the decision threshold.

    Returns:
        `(false_accept_rate, false_reject_rate)`.

    Example:
        >>> error_rates([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0], 0.5)
        (0.5, 0.5)
    """
    scores, same = _check_scores_and_labels(scores, same)
    accepted = scores >= threshold
    return float(np.mean(accepted[~same])), float(np.mean(~accepted[same]))


def equal_error_rate(scores, same) -> tuple[float, float]:
    """The equal error rate and the threshold where it is reached.

    Every observed score is a candidate threshold; the one whose false-accept and
    false-reject rates differ least is chosen (the highest such score on ties), and the
    EER is the mean of the two rates there.

    Args:
        scores: `(n,)` pair scores, higher = more similar.
        same: `(n,)` booleans (or 0/1).

    Returns:
        `(eer, threshold)`.

    Example:
        >>> equal_error_rate([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
        (0.0, 0.8)
    """
    scores, same = _check_scores_and_labels(scores, same)
    candidates = np.unique(scores)  # ascending
    positive_scores = np.sort(scores[same])
    negative_scores = np.sort(scores[~same])
    # Rates of `score >= t` for every candidate t, by counting with searchsorted.
    false_accepts = len(negative_scores) - np.searchsorted(negative_scores, candidates, "left")
    false_rejects = np.searchsorted(positive_scores, candidates, "left")
    false_accept_rate = false_accepts / len(negative_scores)
    false_reject_rate = false_rejects / len(positive_scores)
    gap = np.abs(false_accept_rate - false_reject_rate)
    best = np.flatnonzero(gap == gap.min())[-1]
    eer = (false_accept_rate[best] + false_reject_rate[best]) / 2.0
    return float(eer), float(candidates[best])


def calibrate(scores, same, threshold: float | None = None) -> dict:
    """Summarises validation pairs for the export metadata, choosing the threshold if not given.

    Args:
        scores: `(n,)` pair scores from the exported similarity, higher = more similar.
        same: `(n,)` booleans (or 0/1).
        threshold: a threshold to keep; None chooses the EER threshold.

    Returns:
        A dict with `threshold`, `threshold_source` (`"equal error rate"` or `"given"`),
        `pairs`, `same_pairs`, `roc_auc`, `equal_error_rate`, and the `false_accept_rate`
        and `false_reject_rate` of the threshold on these pairs.

    Example:
        >>> calibrate([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])["threshold"]
        0.8
    """
    scores, same = _check_scores_and_labels(scores, same)
    eer, eer_threshold = equal_error_rate(scores, same)
    source = "given"
    if threshold is None:
        threshold, source = eer_threshold, "equal error rate"
    false_accept_rate, false_reject_rate = error_rates(scores, same, threshold)
    return {
        "threshold": float(threshold),
        "threshold_source": source,
        "pairs": int(len(scores)),
        "same_pairs": int(same.sum()),
        "roc_auc": roc_auc(scores, same),
        "equal_error_rate": eer,
        "false_accept_rate": false_accept_rate,
        "false_reject_rate": false_reject_rate,
    }


def check_threshold(threshold) -> float | None:
    """Validates a user-given threshold: None or a finite real number."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
        raise TypeError(
            "`threshold` must be a number (a score: cosine similarity, or negated Euclidean "
            f"distance) or None. Received: threshold={threshold!r} of type "
            f"{type(threshold).__name__}"
        )
    if not math.isfinite(float(threshold)):
        raise ValueError(f"`threshold` must be finite. Received: threshold={threshold!r}")
    return float(threshold)
