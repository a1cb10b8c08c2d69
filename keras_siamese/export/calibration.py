"""Calibrating the `verify` threshold on validation pairs, with the metrics it was chosen at.

Scores follow the keras_siamese convention (higher = more similar) and the decision rule of the
exported `verify` signature is `same = score >= threshold`. The threshold is chosen at the
equal error rate: among the observed scores, the one where the false-accept rate (different
pairs called the same) and the false-reject rate (same pairs called different) are closest.
Unlike the best-accuracy threshold, it does not depend on the share of same pairs in the
validation set. ROC AUC and the (interpolated) equal error rate come from
`keras_siamese.evaluation.verification`, so the metadata of an export reports the same numbers
as `verification_report` on the same pairs.
"""

from __future__ import annotations

import numpy as np

from keras_siamese import validation
from keras_siamese.evaluation import verification


def error_rates(scores, same, threshold: float) -> tuple[float, float]:
    """False-accept and false-reject rates of the rule `same = score >= threshold`.

    Args:
        scores: `(n,)` pair scores, higher = more similar.
        same: `(n,)` booleans or 0/1, true for pairs of the same identity.
        threshold: the decision threshold.

    Returns:
        `(false_accept_rate, false_reject_rate)`.

    Raises:
        ValueError: for unequal shapes, non-finite scores, or pairs of one kind only.

    Example:
        >>> error_rates([0.9, 0.8, 0.3, 0.1], [1, 0, 1, 0], 0.5)
        (0.5, 0.5)
    """
    scores, labels = verification.check_scores(scores, same)
    same = labels == 1
    accepted = scores >= threshold
    return float(np.mean(accepted[~same])), float(np.mean(~accepted[same]))


def equal_error_threshold(scores, same) -> float:
    """The observed score where false-accept and false-reject rates are closest.

    Every observed score is a candidate threshold of `score >= threshold`; the one whose two
    error rates differ least is chosen, the highest one on ties (fewer false accepts).

    Args:
        scores: `(n,)` pair scores, higher = more similar.
        same: `(n,)` booleans or 0/1.

    Returns:
        The threshold, one of `scores`.

    Raises:
        ValueError: for unequal shapes, non-finite scores, or pairs of one kind only.

    Example:
        >>> equal_error_threshold([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])
        0.8
    """
    scores, labels = verification.check_scores(scores, same)
    candidates = np.unique(scores)  # ascending
    positive_scores = np.sort(scores[labels == 1])
    negative_scores = np.sort(scores[labels == 0])
    # Rates of `score >= t` for every candidate t, by counting with searchsorted.
    false_accepts = len(negative_scores) - np.searchsorted(negative_scores, candidates, "left")
    false_rejects = np.searchsorted(positive_scores, candidates, "left")
    gap = np.abs(false_accepts / len(negative_scores) - false_rejects / len(positive_scores))
    return float(candidates[np.flatnonzero(gap == gap.min())[-1]])


def calibrate(scores, same, threshold: float | None = None) -> dict:
    """Summarises validation pairs for the export metadata, choosing the threshold if not given.

    Args:
        scores: `(n,)` pair scores from the exported similarity, higher = more similar.
        same: `(n,)` booleans or 0/1.
        threshold: a threshold to keep; None chooses `equal_error_threshold`.

    Returns:
        A dict with `threshold`, `threshold_source` (`"equal error rate"` or `"given"`),
        `pairs`, `same_pairs`, `roc_auc`, `equal_error_rate`, and the `false_accept_rate`
        and `false_reject_rate` of the threshold on these pairs.

    Raises:
        ValueError: for unequal shapes, non-finite scores, labels other than 0/1, or pairs of
            one kind only.

    Example:
        >>> calibrate([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0])["threshold"]
        0.8
    """
    metrics = verification.verification_metrics(scores, np.asarray(same))
    source = "given"
    if threshold is None:
        threshold, source = equal_error_threshold(scores, same), "equal error rate"
    false_accept_rate, false_reject_rate = error_rates(scores, same, threshold)
    return {
        "threshold": float(threshold),
        "threshold_source": source,
        "pairs": metrics["positive_pairs"] + metrics["negative_pairs"],
        "same_pairs": metrics["positive_pairs"],
        "roc_auc": metrics["roc_auc"],
        "equal_error_rate": metrics["equal_error_rate"],
        "false_accept_rate": false_accept_rate,
        "false_reject_rate": false_reject_rate,
    }


def check_threshold(threshold) -> float | None:
    """Validates a user-given threshold: None or a finite real number (a score).

    Scores are cosine similarities or negated Euclidean distances, so any finite value
    is a valid threshold.

    Example:
        >>> check_threshold(0.5)
        0.5
    """
    if threshold is None:
        return None
    return validation.check_number("threshold", threshold)
