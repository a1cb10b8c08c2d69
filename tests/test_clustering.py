"""Tests of keras_siamese.evaluation.clustering and .mutual_information: NMI and AMI against
scikit-learn and hand-computed values, k-means on separated blobs, determinism, bad input."""

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

from keras_siamese.evaluation import clustering, mutual_information
from keras_siamese.evaluation.clustering import (
    adjusted_mutual_info,
    clustering_metrics,
    kmeans,
    normalized_mutual_info,
)


def random_labellings(count, classes, clusters, seed, agreement=0.0):
    """Random classes and clusters; with `agreement`, that fraction of clusters follow classes."""
    rng = np.random.default_rng(seed)
    labels_true = rng.integers(0, classes, count)
    labels_pred = rng.integers(0, clusters, count)
    follow = rng.random(count) < agreement
    labels_pred[follow] = labels_true[follow] % clusters
    return labels_true, labels_pred


def blobs(centers, per_blob, spread, seed):
    """`per_blob` Gaussian points around each center and the blob index of each."""
    rng = np.random.default_rng(seed)
    centers = np.asarray(centers, np.float64)
    labels = np.repeat(np.arange(len(centers)), per_blob)
    points = centers[labels] + spread * rng.normal(size=(len(labels), centers.shape[1]))
    return points, labels


@pytest.mark.parametrize(
    "count, classes, clusters",
    [(10, 2, 3), (60, 5, 5), (300, 3, 20), (1000, 10, 7), (5000, 10, 20), (5000, 2, 2)],
)
@pytest.mark.parametrize("agreement", [0.0, 0.6])
def test_nmi_and_ami_match_sklearn(count, classes, clusters, agreement):
    labels_true, labels_pred = random_labellings(count, classes, clusters, count, agreement)
    assert normalized_mutual_info(labels_true, labels_pred) == pytest.approx(
        normalized_mutual_info_score(labels_true, labels_pred), abs=1e-12
    )
    assert adjusted_mutual_info(labels_true, labels_pred) == pytest.approx(
        adjusted_mutual_info_score(labels_true, labels_pred), abs=1e-10
    )


def test_ami_matches_sklearn_on_10000_items_and_string_labels():
    labels_true, labels_pred = random_labellings(10_000, 100, 60, seed=1, agreement=0.3)
    assert adjusted_mutual_info(labels_true, labels_pred) == pytest.approx(
        adjusted_mutual_info_score(labels_true, labels_pred), abs=1e-10
    )
    names = np.array(["cat", "dog", "bird"])[labels_true % 3]
    assert adjusted_mutual_info(names, labels_pred) == pytest.approx(
        adjusted_mutual_info_score(names, labels_pred), abs=1e-10
    )


def reference_mutual_info(labels_true, labels_pred):
    """Mutual information from the definition, a double loop over the contingency table."""
    count = len(labels_true)
    total = 0.0
    for u in set(labels_true):
        for v in set(labels_pred):
            cell = sum(1 for a, b in zip(labels_true, labels_pred, strict=True) if (a, b) == (u, v))
            if cell:
                a_size, b_size = list(labels_true).count(u), list(labels_pred).count(v)
                total += cell / count * math.log(count * cell / (a_size * b_size))
    return total


def reference_entropy(labels):
    count = len(labels)
    return -sum(n / count * math.log(n / count) for n in np.unique(labels, return_counts=True)[1])


def test_nmi_and_ami_analytic_small_case():
    # N = 6, classes of sizes (3, 3), clusters of sizes (2, 4). E[MI] by its definition: the
    # mean MI over all 6! orderings of the clusters (every labelling with those sizes).
    labels_true, labels_pred = [0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]
    information = reference_mutual_info(labels_true, labels_pred)
    mean_entropy = (reference_entropy(labels_true) + reference_entropy(labels_pred)) / 2
    expected_information = np.mean(
        [
            reference_mutual_info(labels_true, permuted)
            for permuted in itertools.permutations(labels_pred)
        ]
    )
    assert normalized_mutual_info(labels_true, labels_pred) == pytest.approx(
        information / mean_entropy, abs=1e-12
    )
    assert adjusted_mutual_info(labels_true, labels_pred) == pytest.approx(
        (information - expected_information) / (mean_entropy - expected_information), abs=1e-12
    )


def test_same_grouping_scores_exactly_one_and_independent_ami_about_zero():
    labels = np.random.default_rng(2).integers(0, 7, 2000)
    renamed = (labels * 5 + 3) % 7  # the same grouping under other names
    for score in (normalized_mutual_info, adjusted_mutual_info):
        assert score(labels, renamed) == 1.0
        assert score(np.arange(50), np.arange(50)[::-1]) == 1.0  # singletons both
        assert score(np.zeros(5), np.ones(5)) == 1.0  # one group each: 1 by convention
        assert score(labels, np.zeros_like(labels)) == 0.0  # one group against seven
    labels_true, labels_pred = random_labellings(10_000, 10, 10, seed=3)
    assert abs(adjusted_mutual_info(labels_true, labels_pred)) < 2e-3
    # NMI is not adjusted for chance: independent labellings with many groups score above 0.
    many_true, many_pred = random_labellings(1000, 100, 100, seed=4)
    assert normalized_mutual_info(many_true, many_pred) > 0.3
    assert abs(adjusted_mutual_info(many_true, many_pred)) < 0.02


def test_kmeans_recovers_separated_blobs():
    centers = 10.0 * np.eye(5, 8)
    points, labels = blobs(centers, 40, 0.5, seed=5)
    assignments, centroids = kmeans(points, 5)
    assert normalized_mutual_info(labels, assignments) == 1.0
    # Lloyd's fixed point: each centroid is its cluster's mean, each point at its nearest.
    for cluster in range(5):
        np.testing.assert_allclose(centroids[cluster], points[assignments == cluster].mean(0))
    nearest = np.argmin(((points[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(nearest, assignments)
    for distance in ("euclidean", "cosine"):
        assert clustering_metrics(points, labels, distance=distance) == {"nmi": 1.0, "ami": 1.0}


def test_cosine_clusters_directions_and_euclidean_clusters_positions():
    # Two directions, each at two scales: cosine groups by direction, Euclidean by position.
    rng = np.random.default_rng(6)
    direction = np.repeat([0, 1], 40)
    scale = np.tile(np.repeat([1.0, 20.0], 20), 2)
    points = np.eye(2)[direction] * scale[:, None] + 0.01 * rng.normal(size=(80, 2))
    assert clustering_metrics(points, direction, distance="cosine")["nmi"] == 1.0
    assert clustering_metrics(points, direction, distance="euclidean")["nmi"] < 0.5


def test_kmeans_is_deterministic_keeps_the_best_restart_and_ignores_chunking(monkeypatch):
    points, _ = blobs(np.random.default_rng(7).normal(size=(6, 4)), 50, 0.8, seed=8)
    first, centroids = kmeans(points, 6, seed=3)
    again, centroids_again = kmeans(points, 6, seed=3)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(centroids, centroids_again)

    def inertia(result):
        assignments, centres = result
        return float(((points - centres[assignments]) ** 2).sum())

    # Restart 0 of three is the single restart of the same seed: the best is no worse.
    for seed in range(3):
        single = inertia(kmeans(points, 6, seed=seed, restarts=1))
        assert inertia(kmeans(points, 6, seed=seed, restarts=3)) <= single + 1e-9
    monkeypatch.setattr(clustering, "_MAX_CHUNK_ENTRIES", 6 * 7)  # chunks of 7 points
    chunked, chunked_centroids = kmeans(points, 6, seed=3)
    np.testing.assert_array_equal(chunked, first)
    np.testing.assert_allclose(chunked_centroids, centroids, atol=1e-12)


def test_kmeans_with_duplicate_points_and_collapsed_embeddings():
    # 3 distinct points for 3 clusters among 9: every cluster is one distinct point.
    points = np.repeat([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], 3, axis=0)
    assignments, _ = kmeans(points, 3)
    assert normalized_mutual_info(np.repeat([0, 1, 2], 3), assignments) == 1.0
    # All embeddings equal (a collapsed representation): one cluster, nothing recovered.
    collapsed = np.ones((20, 4))
    assignments, _ = kmeans(collapsed, 4)
    assert len(np.unique(assignments)) == 1
    assert clustering_metrics(collapsed, np.arange(20) % 4) == {"nmi": 0.0, "ami": 0.0}
    assert kmeans(np.array([[1.0, 2.0]]), 1)[0].tolist() == [0]


def test_bad_input_raises():
    points, labels = np.eye(3), np.array([0, 1, 1])
    with pytest.raises(ValueError, match=r"at most the 3 embeddings. Received: num_clusters=4"):
        kmeans(points, 4)
    with pytest.raises(ValueError, match="num_clusters=0"):
        kmeans(points, 0)
    with pytest.raises(TypeError, match="num_clusters=2.0"):
        kmeans(points, 2.0)
    with pytest.raises(ValueError, match="seed=-1"):
        kmeans(points, 2, seed=-1)
    with pytest.raises(ValueError, match=r"rank-2.*Received: embeddings.shape=\(3,\)"):
        kmeans(np.ones(3), 1)
    with pytest.raises(ValueError, match="must be finite.*Received: 1 non-finite"):
        clustering_metrics(np.array([[0.0, np.nan], [1.0, 0.0], [0.0, 1.0]]), labels)
    with pytest.raises(ValueError, match=r"at least 2 classes.*Received: classes \[1\]"):
        clustering_metrics(points, [1, 1, 1])
    with pytest.raises(ValueError, match=r"one label per embedding.*labels.shape=\(2,\)"):
        clustering_metrics(points, labels[:2])
    with pytest.raises(ValueError, match="NaN labels"):
        clustering_metrics(points, [0.0, 1.0, np.nan])
    with pytest.raises(ValueError, match="distance='l1'"):
        clustering_metrics(points, labels, distance="l1")
    with pytest.raises(ValueError, match=r"one label per item.*labels_pred.shape=\(2,\)"):
        normalized_mutual_info(labels, labels[:2])
    with pytest.raises(ValueError, match=r"labels_true.shape=\(0,\)"):
        adjusted_mutual_info([], [])
    with pytest.raises(ValueError, match="`labels_pred` must not contain NaN"):
        adjusted_mutual_info(labels, [0.0, np.nan, 1.0])


def test_module_split_names_the_same_functions():
    assert clustering.normalized_mutual_info is mutual_information.normalized_mutual_info
    assert clustering.adjusted_mutual_info is mutual_information.adjusted_mutual_info
