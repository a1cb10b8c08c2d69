"""Retrieval: "find the nearest items" scored as recall@k, precision@k, R-precision, mAP@R.

`nearest_neighbors` ranks a gallery for each query; `retrieval_metrics` scores the ranking
of embeddings with class labels; `retrieval_report` runs a model over gallery and queries
first and adds the NMI and AMI of k-means on the gallery (`clustering`): the columns of the
metric-learning table of Musgrave, Belongie & Lim 2020.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

from keras_siamese import validation
from keras_siamese.evaluation.clustering import clustering_metrics
from keras_siamese.evaluation.features import Data, FeatureExtractor, _is_representation_model
from keras_siamese.similarity import check_distance, pairwise_distances

# Distances computed at once: chunks of queries x the gallery stay under this many entries.
_MAX_CHUNK_ENTRIES = 2**23


def _check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    ks = (ks,) if isinstance(ks, numbers.Integral) else tuple(ks)
    if not ks or any(
        isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 for k in ks
    ):
        raise ValueError(f"Argument `ks` must be positive integers. Received: ks={ks!r}")
    return tuple(sorted({int(k) for k in ks}))


def _chunks(query_count: int, gallery_count: int):
    size = max(1, _MAX_CHUNK_ENTRIES // max(gallery_count, 1))
    return ((start, min(start + size, query_count)) for start in range(0, query_count, size))


def _ranked_chunk(queries, gallery, start, stop, distance, exclude_self):
    """Gallery indices by increasing distance for queries `start:stop` (ties: lower index)."""
    distances = pairwise_distances(queries[start:stop], gallery, distance).numpy()
    rows = np.arange(stop - start)
    if exclude_self:
        distances[rows, start + rows] = np.inf
    order = np.argsort(distances, axis=1, kind="stable")
    if exclude_self:
        order = order[:, :-1]  # the query itself, ranked last
    return order


def _check_embeddings(
    query_embeddings, query_labels, gallery_embeddings, gallery_labels, exclude_self
):
    """Returns the four arrays after checking their shapes."""
    arrays = []
    for name, embeddings, labels in (
        ("query", query_embeddings, query_labels),
        ("gallery", gallery_embeddings, gallery_labels),
    ):
        embeddings, labels = np.asarray(embeddings, np.float32), np.asarray(labels)
        if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1] or not len(labels):
            raise ValueError(
                f"The {name} needs embeddings (N, dims) and one label per embedding, N > 0. "
                f"Received: {name}_embeddings.shape={embeddings.shape}, "
                f"{name}_labels.shape={labels.shape}"
            )
        arrays += [embeddings, labels]
    if exclude_self and len(arrays[1]) != len(arrays[3]):
        raise ValueError(
            "With exclude_self=True query i is gallery item i, so both need the same number of "
            f"items. Received: {len(arrays[1])} queries, {len(arrays[3])} gallery items"
        )
    return arrays


def nearest_neighbors(
    query_embeddings,
    gallery_embeddings,
    k: int = 5,
    distance: str = "euclidean",
    exclude_self: bool = False,
) -> np.ndarray:
    """The indices of the `k` gallery items nearest to each query, nearest first.

    Args:
        query_embeddings: `(Q, dims)`.
        gallery_embeddings: `(G, dims)`.
        k: neighbours per query, at most G (G - 1 with `exclude_self`).
        distance: `"euclidean"` or `"cosine"`.
        exclude_self: query i is gallery item i and is not its own neighbour.

    Returns:
        int64 `(Q, k)` gallery indices; ties are broken by the lower index.

    Raises:
        ValueError: for bad shapes, `k` larger than the gallery, or an unknown distance.

    Example:
        >>> nearest_neighbors(np.eye(3), np.eye(3), k=1).ravel().tolist()
        [0, 1, 2]
    """
    check_distance(distance)
    query_embeddings = np.asarray(query_embeddings)
    gallery_embeddings = np.asarray(gallery_embeddings)
    queries, _, gallery, _ = _check_embeddings(
        query_embeddings,
        np.zeros(query_embeddings.shape[:1]),
        gallery_embeddings,
        np.zeros(gallery_embeddings.shape[:1]),
        exclude_self,
    )
    (k,) = _check_ks(k)
    available = len(gallery) - int(exclude_self)
    if k > available:
        raise ValueError(
            f"Argument `k` must be at most the {available} gallery items. Received: k={k}"
        )
    parts = [
        _ranked_chunk(queries, gallery, start, stop, distance, exclude_self)[:, :k]
        for start, stop in _chunks(len(queries), len(gallery))
    ]
    return np.concatenate(parts).astype(np.int64)


def retrieval_metrics(
    query_embeddings,
    query_labels,
    gallery_embeddings,
    gallery_labels,
    ks: Iterable[int] = (1, 5, 10),
    distance: str = "euclidean",
    exclude_self: bool = False,
) -> dict[str, float]:
    """Recall@k, precision@k, R-precision and mAP@R of ranking the gallery by distance.

    A gallery item is relevant to a query when it has the query's class. For each query,
    with `R` its number of relevant gallery items:

    - `recall@k`: 1 when a relevant item is among the k nearest (the "Recall@K" of
      metric learning; Song et al. 2016), averaged over queries.
    - `precision@k`: the fraction of the k nearest that are relevant.
    - `r_precision`: the fraction of the R nearest that are relevant (Musgrave, Belongie &
      Lim 2020, section 3.2): precision@k with k adapted to each query's class size.
    - `map@r`: mean average precision at R, `(1/R) sum_{i<=R} P(i) rel(i)` with `P(i)`
      the precision of the first i (same paper, "A Metric Learning Reality Check"): 1 only
      when the R nearest are exactly the R relevant; unlike R-precision it also rewards
      ranking the relevant ones first among the R.

    Queries without any relevant gallery item are left out of the averages (counted in
    `queries_without_match`).

    Args:
        query_embeddings: `(Q, dims)`.
        query_labels: `(Q,)` class labels.
        gallery_embeddings: `(G, dims)`.
        gallery_labels: `(G,)` class labels.
        ks: the k of recall@k and precision@k, each at most the gallery size.
        distance: `"euclidean"` or `"cosine"`.
        exclude_self: query i is gallery item i (the same set used as both) and is
            removed from its own ranking and from its R.

    Returns:
        A dict: `recall@k` and `precision@k` for each k, `r_precision`, `map@r`,
        `queries` (the number averaged over) and `queries_without_match`.

    Raises:
        ValueError: for bad shapes, a k larger than the gallery, no query with a relevant
            gallery item, or an unknown distance.

    Example:
        >>> embeddings = np.array([[0.0], [0.1], [5.0], [5.1]])
        >>> labels = np.array([0, 0, 1, 1])
        >>> retrieval_metrics(embeddings, labels, embeddings, labels, ks=(1,),
        ...                   exclude_self=True)["recall@1"]
        1.0
    """
    check_distance(distance)
    ks = _check_ks(ks)
    queries, query_labels, gallery, gallery_labels = _check_embeddings(
        query_embeddings, query_labels, gallery_embeddings, gallery_labels, exclude_self
    )
    available = len(gallery) - int(exclude_self)
    if ks[-1] > available:
        raise ValueError(
            f"Argument `ks` must be at most the {available} gallery items each. Received: ks={ks}"
        )
    sums = {f"recall@{k}": 0.0 for k in ks} | {f"precision@{k}": 0.0 for k in ks}
    sums["r_precision"] = 0.0
    sums["map@r"] = 0.0
    matched = 0
    for start, stop in _chunks(len(queries), len(gallery)):
        order = _ranked_chunk(queries, gallery, start, stop, distance, exclude_self)
        relevant = gallery_labels[order] == query_labels[start:stop, None]
        relevant_count = relevant.sum(axis=1)
        keep = relevant_count > 0
        relevant, relevant_count = relevant[keep], relevant_count[keep]
        matched += int(keep.sum())
        for k in ks:
            sums[f"recall@{k}"] += float(relevant[:, :k].any(axis=1).sum())
            sums[f"precision@{k}"] += float((relevant[:, :k].sum(axis=1) / k).sum())
        ranks = np.arange(1, relevant.shape[1] + 1)
        hits = np.cumsum(relevant, axis=1)
        hits_in_r = hits[np.arange(len(hits)), relevant_count - 1]
        sums["r_precision"] += float((hits_in_r / relevant_count).sum())
        within_r = ranks[None, :] <= relevant_count[:, None]
        precision_at = hits / ranks
        average_precision = (precision_at * relevant * within_r).sum(axis=1) / relevant_count
        sums["map@r"] += float(average_precision.sum())
    if matched == 0:
        raise ValueError(
            "No query has a gallery item of its class, so retrieval cannot be scored. "
            f"Received: query classes {np.unique(query_labels)[:10].tolist()}, gallery "
            f"classes {np.unique(gallery_labels)[:10].tolist()}"
        )
    metrics = {name: value / matched for name, value in sums.items()}
    metrics["queries"] = matched
    metrics["queries_without_match"] = len(queries) - matched
    return metrics


def _same_data(gallery: Data, queries: Data) -> bool:
    if queries is gallery:
        return True
    both_tuples = isinstance(gallery, (tuple, list)) and isinstance(queries, (tuple, list))
    return both_tuples and len(gallery) == len(queries) == 2 and queries[0] is gallery[0]


def retrieval_report(
    model,
    gallery: Data,
    queries: Data,
    ks: Iterable[int] = (1, 5, 10),
    exclude_self: bool | None = None,
    batch_size: int = 256,
    progress: bool = True,
    distance: str | None = None,
    *,
    input_scale: float | None = None,
    clustering: bool = True,
) -> dict[str, float]:
    """Embeds a gallery and queries with a model and reports the metric-learning table.

    Recall@k, precision@k, R-precision and mAP@R of the queries' rankings
    (`retrieval_metrics`, for the definitions) and, with `clustering`, the NMI and AMI of
    k-means on the gallery embeddings against the gallery labels (`clustering_metrics`:
    k = the number of gallery classes, embeddings L2-normalised first for the cosine
    distance, seed 0), the columns of Musgrave, Belongie & Lim 2020. Evaluate on classes
    unseen in training (`keras_siamese.sampling.split_classes`) to measure generalisation.

    Using one set as both gallery and queries (leave-one-out retrieval, as in Musgrave
    et al. 2020) needs each query left out of its own ranking. With
    `exclude_self=None` this is detected when `queries is gallery`, or when both are
    tuples whose image arrays are the same object (`queries[0] is gallery[0]`); an equal
    copy is not detected: pass `exclude_self=True`.

    Args:
        model: a keras_siamese model (`SiameseNetwork`, `SimCLR`, ...) or its
            `embedding_model()`, which take the images as stored ([0, 255]), or, with
            `input_scale`, another model mapping images to embeddings (see
            `extract_features`).
        gallery: `(images, labels)` numpy arrays or a `tf.data.Dataset` of them.
        queries: the same for the queries.
        ks: the k of recall@k and precision@k.
        exclude_self: query i is gallery item i; detected as above when None.
        batch_size: images per forward pass.
        progress: show tqdm progress bars.
        distance: `"euclidean"` or `"cosine"`; defaults to the keras_siamese model's
            `distance`, else `"cosine"`.
        input_scale: the factor the stored images are multiplied by before a plain model
            (`1 / 255` for an encoder taking [0, 1]); see `extract_features`.
        clustering: also report `nmi` and `ami` of k-means on the gallery (needs at least
            2 gallery classes).

    Returns:
        The dict of `retrieval_metrics`, plus `nmi` and `ami` with `clustering`.

    Raises:
        ValueError: for bad data, a k larger than the gallery, no query with a gallery
            item of its class, or, with `clustering`, fewer than 2 gallery classes or
            non-finite gallery embeddings.
        TypeError: for data that are neither tuples nor datasets, or a non-bool
            `clustering`.

    Example:
        >>> unseen = keras_siamese.sampling.split_classes(test, classes=range(7))[1]
        >>> retrieval_report(model, unseen, unseen)["recall@1"]  # leave-one-out
    """
    validation.check_integer("batch_size", batch_size)
    ks = _check_ks(ks)
    if not isinstance(clustering, (bool, np.bool_)):
        raise TypeError(
            f"Argument `clustering` must be True or False. Received: clustering={clustering!r}"
        )
    if distance is None:
        distance = model.distance if _is_representation_model(model) else "cosine"
    distance = check_distance(distance)
    extractor = FeatureExtractor(model, input_scale)
    if exclude_self is None:
        exclude_self = _same_data(gallery, queries)
    gallery_embeddings, gallery_labels = extractor(gallery, batch_size, progress)
    if exclude_self and queries is gallery:
        query_embeddings, query_labels = gallery_embeddings, gallery_labels
    else:
        query_embeddings, query_labels = extractor(queries, batch_size, progress)
    metrics = retrieval_metrics(
        query_embeddings,
        query_labels,
        gallery_embeddings,
        gallery_labels,
        ks=ks,
        distance=distance,
        exclude_self=bool(exclude_self),
    )
    if clustering:
        metrics |= _gallery_clustering(gallery_embeddings, gallery_labels, distance)
    return metrics


def _gallery_clustering(gallery_embeddings, gallery_labels, distance: str) -> dict[str, float]:
    """NMI and AMI of k-means on the gallery, with a message in `retrieval_report`'s terms."""
    classes = np.unique(np.asarray(gallery_labels))
    if len(classes) < 2:
        raise ValueError(
            "With clustering=True the gallery is clustered into its classes, which needs at "
            "least 2 of them; pass clustering=False to report retrieval only. Received: "
            f"gallery classes {classes.tolist()}"
        )
    return clustering_metrics(gallery_embeddings, gallery_labels, distance=distance, seed=0)
