"""`class_balanced_subset`: the deterministic 1%/10% label subsets of semi-supervised runs."""

from __future__ import annotations

import numpy as np

from keras_siamese import validation


def _check_fraction(fraction: float) -> float:
    """A label fraction in (0, 1], e.g. 0.01 for 1% of the labels."""
    return validation.check_number("label_fraction", fraction, 0.0, 1.0, include_minimum=False)


def class_balanced_subset(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Returns the indices of a deterministic, class-balanced fraction of a labelled set.

    The labelled subsets of the semi-supervised protocol (SimCLR, Chen et al. 2020,
    section 4.2: "we sample 1% or 10% of the labeled ILSVRC-12 training datasets in a
    class-balanced way"). Every class contributes `round(fraction * count_of_that_class)`
    examples (at least one), drawn without replacement by a `numpy` generator seeded with
    `seed`, so the same labels, fraction and seed give the same subset on every machine.
    For a balanced data set such as Fashion-MNIST (6,000 images per class), 1% is 60 images
    of every class. Classes are sampled independently: the subset of one class does not
    depend on the other classes' labels.

    Args:
        labels: integer class labels of shape `(N,)`.
        fraction: the fraction of each class to keep, in (0, 1].
        seed: the seed of the draw.

    Returns:
        int64 indices into `labels`, sorted ascending (the data set's order is kept).

    Raises:
        TypeError: if `fraction` is not a number or `seed` not an int.
        ValueError: if `labels` is not a non-empty integer vector, `fraction` is not in
            (0, 1] or `seed` is negative.

    Example:
        >>> labels = np.repeat(np.arange(3), 100)
        >>> indices = class_balanced_subset(labels, 0.1, seed=0)
        >>> np.bincount(labels[indices]).tolist()
        [10, 10, 10]
    """
    fraction = _check_fraction(fraction)
    seed = validation.check_integer("seed", seed, 0)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) == 0 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "Argument `labels` must be a non-empty vector of integer class labels. "
            f"Received: labels.shape={labels.shape}, labels.dtype={labels.dtype}"
        )
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, int(round(fraction * len(members))))
        # One generator per class, keyed by (seed, class): a class's draw is independent
        # of which other classes exist.
        rng = np.random.default_rng([int(seed), int(label) & 0xFFFFFFFF])
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)
