"""How well one labelling of items agrees with another: NMI and AMI, in numpy.

`normalized_mutual_info` divides the mutual information of two labellings by the mean of
their entropies; `adjusted_mutual_info` also subtracts the mutual information expected by
chance (Vinh, Epps & Bailey 2010), so independent labellings score about 0 whatever their
numbers of groups. Both use the arithmetic mean of the entropies, scikit-learn's default, and
natural logarithms (the base cancels). `clustering.clustering_metrics` scores k-means
clusters of embeddings against their classes with them.
"""

from __future__ import annotations

import math

import numpy as np

# Terms of the expected mutual information summed at once (bounds the memory).
_MAX_TERMS = 2**22
_TINY = np.finfo(np.float64).eps


def _check_labellings(labels_true, labels_pred) -> tuple[np.ndarray, np.ndarray]:
    """Both labellings as arrays after checking their shapes and values."""
    labels_true, labels_pred = np.asarray(labels_true), np.asarray(labels_pred)
    if labels_true.ndim != 1 or labels_pred.shape != labels_true.shape or not len(labels_true):
        raise ValueError(
            "Arguments `labels_true` and `labels_pred` must be non-empty 1-D arrays with one "
            f"label per item each. Received: labels_true.shape={labels_true.shape}, "
            f"labels_pred.shape={labels_pred.shape}"
        )
    for name, labels in (("labels_true", labels_true), ("labels_pred", labels_pred)):
        if np.issubdtype(labels.dtype, np.floating) and np.isnan(labels).any():
            raise ValueError(
                f"Argument `{name}` must not contain NaN (a label is one group). Received: "
                f"{int(np.isnan(labels).sum())} NaN labels in {name}"
            )
    return labels_true, labels_pred


def _contingency(labels_true, labels_pred):
    """The non-empty cells of the contingency table: counts, their rows and columns.

    Returns:
        `(cell_counts, cell_rows, cell_columns, class_sizes, cluster_sizes)`, int64: one
        entry per non-empty (class, cluster) cell, then the row and column sums. Only the
        non-empty cells are stored, so N singletons against N singletons costs O(N).
    """
    _, true_codes = np.unique(labels_true, return_inverse=True)
    _, pred_codes = np.unique(labels_pred, return_inverse=True)
    true_codes, pred_codes = true_codes.ravel(), pred_codes.ravel()
    class_sizes, cluster_sizes = np.bincount(true_codes), np.bincount(pred_codes)
    cells, cell_counts = np.unique(
        true_codes.astype(np.int64) * len(cluster_sizes) + pred_codes, return_counts=True
    )
    rows, columns = np.divmod(cells, len(cluster_sizes))
    return cell_counts, rows, columns, class_sizes, cluster_sizes


def _exact_score(table) -> float | None:
    """1.0 for the same grouping, 0.0 for one group against several, else None.

    The same grouping (one non-empty cell per row and column, one group each included by
    convention) shares all information; one group shares none (MI = E[MI] = 0). Computed,
    rounding could leave these a few ulps off, so they are answered exactly.
    """
    cell_counts, _, _, class_sizes, cluster_sizes = table
    if len(cell_counts) == len(class_sizes) == len(cluster_sizes):
        return 1.0
    if min(len(class_sizes), len(cluster_sizes)) == 1:
        return 0.0
    return None


def _entropy(sizes: np.ndarray, count: int) -> float:
    """Entropy (nats) of groups of these sizes among `count` items: log N - sum n log n / N."""
    sizes = sizes[sizes > 0].astype(np.float64)
    return max(math.log(count) - float(np.sum(sizes * np.log(sizes))) / count, 0.0)


def _mutual_information(cell_counts, rows, columns, class_sizes, cluster_sizes) -> float:
    """Mutual information (nats): sum over cells n_ij/N log(N n_ij / (a_i b_j))."""
    count = float(class_sizes.sum())
    cells = cell_counts.astype(np.float64)
    logs = (
        np.log(cells)
        + math.log(count)
        - np.log(class_sizes[rows].astype(np.float64))
        - np.log(cluster_sizes[columns].astype(np.float64))
    )
    return max(float(np.sum(cells * logs)) / count, 0.0)


def _pair_groups(lengths: np.ndarray, limit: int):
    """`(start, stop)` ranges of consecutive pairs whose term counts add up to about `limit`."""
    ends = np.cumsum(lengths)
    start = 0
    while start < len(lengths):
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + limit, side="right")), start + 1)
        yield start, stop
        start = stop


def _expected_mutual_information(class_sizes, cluster_sizes) -> float:
    """E[MI] over random labellings with these group sizes (the hypergeometric model).

    Vinh, Epps & Bailey 2010, eq. 24a: for class size a, cluster size b and N items, the
    cell count n follows a hypergeometric law on max(1, a + b - N) .. min(a, b) and adds
    (n/N) log(N n / (a b)) times its probability. The sum depends on the sizes only, so it runs
    over the distinct (a, b) pairs, weighted by how often each occurs. The probabilities are
    exponentials of sums of log-factorials (a table of `math.lgamma`): no factorial overflows.
    """
    count = int(class_sizes.sum())
    a_values, a_counts = np.unique(class_sizes, return_counts=True)
    b_values, b_counts = np.unique(cluster_sizes, return_counts=True)
    a = np.repeat(a_values, len(b_values))
    b = np.tile(b_values, len(a_values))
    weights = np.outer(a_counts, b_counts).ravel().astype(np.float64)
    low = np.maximum(1, a + b - count)
    lengths = np.minimum(a, b) - low + 1
    log_factorial = np.fromiter(map(math.lgamma, range(1, count + 2)), np.float64, count + 1)
    # The n-independent part of each pair's log-probability and log-ratio.
    pair_log = (
        log_factorial[a]
        + log_factorial[b]
        + log_factorial[count - a]
        + log_factorial[count - b]
        - log_factorial[count]
    )
    pair_ratio = math.log(count) - np.log(a.astype(np.float64)) - np.log(b.astype(np.float64))
    total = 0.0
    for start, stop in _pair_groups(lengths, _MAX_TERMS):
        pair = np.repeat(np.arange(start, stop), lengths[start:stop])
        offsets = np.cumsum(lengths[start:stop]) - lengths[start:stop]
        n = low[pair] + np.arange(len(pair)) - offsets[pair - start]
        log_probability = pair_log[pair] - (
            log_factorial[n]
            + log_factorial[a[pair] - n]
            + log_factorial[b[pair] - n]
            + log_factorial[count - a[pair] - b[pair] + n]
        )
        terms = n / count * (np.log(n.astype(np.float64)) + pair_ratio[pair])
        total += float(np.sum(weights[pair] * terms * np.exp(log_probability)))
    return total


def normalized_mutual_info(labels_true, labels_pred) -> float:
    """Normalised mutual information of two labellings, `MI / mean(H_true, H_pred)`.

    The arithmetic mean of the entropies is the normaliser (scikit-learn's default
    `average_method`), so the score is in [0, 1]: 1 for the same grouping under any names,
    0 when the labellings share no information. It is not adjusted for chance: random
    labellings score above 0, the more the more groups (see `adjusted_mutual_info`). The
    same grouping scores exactly 1, including one group each (by convention); one group
    against several scores 0.

    Args:
        labels_true: `(N,)` labels, e.g. the classes (any type `np.unique` sorts).
        labels_pred: `(N,)` labels, e.g. the clusters.

    Returns:
        The NMI as a float.

    Raises:
        ValueError: for arrays that are not 1-D, of different lengths, empty, or holding NaN.

    Example:
        >>> normalized_mutual_info([0, 0, 1, 1], [5, 5, 3, 3])
        1.0
    """
    table = _contingency(*_check_labellings(labels_true, labels_pred))
    exact = _exact_score(table)
    if exact is not None:
        return exact
    class_sizes, cluster_sizes = table[3], table[4]
    count = int(class_sizes.sum())
    mean_entropy = (_entropy(class_sizes, count) + _entropy(cluster_sizes, count)) / 2
    return float(_mutual_information(*table) / mean_entropy)  # both entropies > 0 here


def adjusted_mutual_info(labels_true, labels_pred) -> float:
    """Adjusted mutual information of two labellings (Vinh, Epps & Bailey 2010).

    `(MI - E[MI]) / (mean(H_true, H_pred) - E[MI])`, with `E[MI]` the mutual information
    expected between random labellings of the same group sizes (the hypergeometric model)
    and the arithmetic mean of the entropies, as scikit-learn's default. 1 for the same
    grouping, about 0 (and possibly negative) for independent ones whatever the number of
    groups, which makes it the fairer score when the number of clusters varies. The same
    grouping scores exactly 1, including one group each (by convention); one group against
    several scores 0.

    Args:
        labels_true: `(N,)` labels, e.g. the classes.
        labels_pred: `(N,)` labels, e.g. the clusters.

    Returns:
        The AMI as a float.

    Raises:
        ValueError: for arrays that are not 1-D, of different lengths, empty, or holding NaN.

    Example:
        >>> round(adjusted_mutual_info([0, 0, 1, 1], [1, 1, 0, 0]), 6)
        1.0
    """
    table = _contingency(*_check_labellings(labels_true, labels_pred))
    exact = _exact_score(table)
    if exact is not None:
        return exact
    class_sizes, cluster_sizes = table[3], table[4]
    count = int(class_sizes.sum())
    information = _mutual_information(*table)
    expected = _expected_mutual_information(class_sizes, cluster_sizes)
    mean_entropy = (_entropy(class_sizes, count) + _entropy(cluster_sizes, count)) / 2
    # E[MI] < mean entropy unless the grouping is the same (handled above); rounding could
    # still bring them together, so the denominator keeps its sign away from 0.
    denominator = mean_entropy - expected
    denominator = math.copysign(max(abs(denominator), _TINY), denominator)
    return float((information - expected) / denominator)
