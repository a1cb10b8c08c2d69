"""Tests of keras_siamese.evaluation.retrieval: recall@k, precision@k, R-precision, mAP@R vs
brute force, and the report's NMI / AMI of k-means on the gallery."""

import keras
import numpy as np
import pytest
from conftest import random_images, tiny_encoder

import keras_siamese as ks
from keras_siamese.evaluation import retrieval

IMAGE_SHAPE = (16, 16, 1)


def brute_force_retrieval(
    queries, query_labels, gallery, gallery_labels, ks, distance, exclude_self
):
    """float64 loops over queries, written from the definitions (Musgrave et al. 2020)."""
    queries, gallery = np.asarray(queries, np.float64), np.asarray(gallery, np.float64)
    if distance == "cosine":
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    totals = {f"recall@{k}": 0.0 for k in ks} | {f"precision@{k}": 0.0 for k in ks}
    totals["r_precision"] = totals["map@r"] = 0.0
    used = 0
    for index, (query, label) in enumerate(zip(queries, query_labels, strict=True)):
        candidates = [g for g in range(len(gallery)) if not (exclude_self and g == index)]
        if distance == "cosine":
            distances = [1.0 - query @ gallery[g] for g in candidates]
        else:
            distances = [np.linalg.norm(query - gallery[g]) for g in candidates]
        ranked = [candidates[i] for i in np.argsort(distances, kind="stable")]
        relevant = [gallery_labels[g] == label for g in ranked]
        r = sum(relevant)
        if r == 0:
            continue
        used += 1
        for k in ks:
            totals[f"recall@{k}"] += float(any(relevant[:k]))
            totals[f"precision@{k}"] += sum(relevant[:k]) / k
        totals["r_precision"] += sum(relevant[:r]) / r
        hits, precision_sum = 0, 0.0
        for position in range(r):
            if relevant[position]:
                hits += 1
                precision_sum += hits / (position + 1)
        totals["map@r"] += precision_sum / r
    return {name: value / used for name, value in totals.items()}, used


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_metrics_equal_brute_force(distance, exclude_self, monkeypatch):
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(60, 4))
    gallery_labels = rng.integers(0, 5, 60)
    if exclude_self:
        queries, query_labels = gallery, gallery_labels
    else:
        queries, query_labels = rng.normal(size=(25, 4)), rng.integers(0, 6, 25)  # 5: no match
    ks_ = (1, 3, 10)
    expected, used = brute_force_retrieval(
        queries, query_labels, gallery, gallery_labels, ks_, distance, exclude_self
    )
    monkeypatch.setattr(retrieval, "_MAX_CHUNK_ENTRIES", 7 * 60)  # chunks of 7 queries
    metrics = retrieval.retrieval_metrics(
        queries, query_labels, gallery, gallery_labels, ks_, distance, exclude_self
    )
    assert metrics["queries"] == used
    assert metrics["queries_without_match"] == len(queries) - used
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-9), name


def test_map_at_r_analytic_case():
    # Query at 0; gallery at 1 (relevant), 2 (not), 3 (relevant): R = 2, the first two are
    # [hit, miss], so AP@R = (1/2)(1/1) = 0.5; recall@1 = 1, precision@2 = 0.5.
    gallery = np.array([[1.0], [2.0], [3.0]])
    metrics = retrieval.retrieval_metrics(
        np.zeros((1, 1)), [0], gallery, np.array([0, 1, 0]), ks=(1, 2)
    )
    assert metrics["map@r"] == 0.5
    assert metrics["r_precision"] == 0.5  # 1 of the R = 2 nearest is relevant
    assert (metrics["recall@1"], metrics["precision@2"]) == (1.0, 0.5)


def test_r_precision_analytic_case():
    # Query 0 at 0: gallery ranked [hit, miss, hit, hit, miss], R = 3: R-precision 2/3, while
    # mAP@R = (1/3)(1/1 + 2/3) also sees the miss come before the second hit. Query 1 at 3.4
    # (class 1, R = 2): ranked 3, 4, 4.5, 2, 1 = [miss, miss, hit, hit, miss]: both 0.
    gallery = np.array([[1.0], [2.0], [3.0], [4.0], [4.5]])
    gallery_labels = np.array([0, 1, 0, 0, 1])
    metrics = retrieval.retrieval_metrics(
        np.array([[0.0], [3.4]]), [0, 1], gallery, gallery_labels, ks=(1,)
    )
    assert metrics["r_precision"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert metrics["map@r"] == pytest.approx(((1 + 2 / 3) / 3 + 0.0) / 2)
    # Every relevant item ranked first: R-precision and mAP@R are both 1.
    separated = np.array([[0.0], [0.1], [0.2], [5.0], [5.1]])
    labels = np.array([0, 0, 0, 1, 1])
    perfect = retrieval.retrieval_metrics(
        separated, labels, separated, labels, ks=(1,), exclude_self=True
    )
    assert perfect["r_precision"] == perfect["map@r"] == 1.0


def test_nearest_neighbors():
    points = np.array([[0.0], [0.1], [5.0], [5.2], [9.0]])
    np.testing.assert_array_equal(
        retrieval.nearest_neighbors(points, points, k=2, exclude_self=True),
        [[1, 2], [0, 2], [3, 4], [2, 4], [3, 2]],
    )
    np.testing.assert_array_equal(
        retrieval.nearest_neighbors(points, points, k=1).ravel(), range(5)
    )


def test_report_detects_self_retrieval_and_matches_metrics():
    keras.utils.set_random_seed(0)
    model = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), embedding_dim=4)
    images = random_images(30, IMAGE_SHAPE, seed=1)
    labels = np.arange(30) % 3
    gallery = (images, labels)
    report = retrieval.retrieval_report(model, gallery, gallery, ks=(1, 5), progress=False)
    embeddings = model.predict(images, verbose=0)
    expected = retrieval.retrieval_metrics(
        embeddings, labels, embeddings, labels, ks=(1, 5), exclude_self=True
    )
    for name, value in expected.items():
        assert report[name] == pytest.approx(value, abs=1e-6), name
    # Same image array in a new tuple: still detected. A copy is not, unless told.
    assert retrieval.retrieval_report(model, gallery, (images, labels), ks=1, progress=False)[
        "recall@1"
    ] == pytest.approx(report["recall@1"])
    copied = (images.copy(), labels)
    assert (
        retrieval.retrieval_report(model, gallery, copied, ks=1, progress=False)["recall@1"] == 1.0
    )
    told = retrieval.retrieval_report(
        model, gallery, copied, ks=1, exclude_self=True, progress=False
    )
    assert told["recall@1"] == pytest.approx(report["recall@1"])


def test_report_uses_the_models_distance_unless_told():
    keras.utils.set_random_seed(0)
    model = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), distance="cosine", normalize=False)
    images = random_images(24, IMAGE_SHAPE, seed=2)
    gallery = (images, np.arange(24) % 3)
    embeddings = model.predict(images, verbose=0)
    for distance in ("cosine", "euclidean"):
        expected = retrieval.retrieval_metrics(
            embeddings,
            gallery[1],
            embeddings,
            gallery[1],
            ks=(1, 5),
            distance=distance,
            exclude_self=True,
        )
        told = {"distance": distance} if distance == "euclidean" else {}
        report = retrieval.retrieval_report(
            model, gallery, gallery, ks=(1, 5), progress=False, **told
        )
        for name, value in expected.items():
            assert report[name] == pytest.approx(value, abs=1e-6), (distance, name)


def test_bad_input_raises():
    embeddings, labels = np.eye(3), np.array([0, 0, 1])
    with pytest.raises(ValueError, match="at most the 3 gallery items"):
        retrieval.retrieval_metrics(embeddings, labels, embeddings, labels, ks=(4,))
    with pytest.raises(ValueError, match="at most the 2 gallery items"):
        retrieval.retrieval_metrics(
            embeddings, labels, embeddings, labels, ks=(3,), exclude_self=True
        )
    with pytest.raises(ValueError, match="ks=\\(0,\\)"):
        retrieval.retrieval_metrics(embeddings, labels, embeddings, labels, ks=(0,))
    with pytest.raises(ValueError, match="same number of items"):
        retrieval.retrieval_metrics(
            embeddings[:2], labels[:2], embeddings, labels, exclude_self=True, ks=1
        )
    with pytest.raises(ValueError, match="No query has a gallery item of its class"):
        retrieval.retrieval_metrics(embeddings, [5, 6, 7], embeddings, labels, ks=1)
    with pytest.raises(ValueError, match="one label per embedding"):
        retrieval.retrieval_metrics(embeddings, labels[:2], embeddings, labels, ks=1)
    with pytest.raises(ValueError, match="distance='l1'"):
        retrieval.retrieval_metrics(embeddings, labels, embeddings, labels, ks=1, distance="l1")


def test_report_adds_nmi_and_ami_of_kmeans_on_the_gallery():
    keras.utils.set_random_seed(0)
    model = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), embedding_dim=4, distance="cosine")
    images = random_images(30, IMAGE_SHAPE, seed=3)
    labels = np.arange(30) % 3
    gallery = (images, labels)
    queries = (random_images(12, IMAGE_SHAPE, seed=4), np.arange(12) % 3)
    report = retrieval.retrieval_report(model, gallery, queries, ks=(1, 5), progress=False)
    expected = ks.evaluation.clustering_metrics(
        model.predict(images, verbose=0), labels, distance="cosine", seed=0
    )
    assert report["nmi"] == pytest.approx(expected["nmi"], abs=1e-9)
    assert report["ami"] == pytest.approx(expected["ami"], abs=1e-9)
    assert 0.0 <= report["nmi"] <= 1.0 and 0.0 <= report["r_precision"] <= 1.0
    without = retrieval.retrieval_report(
        model, gallery, queries, ks=(1, 5), progress=False, clustering=False
    )
    assert "nmi" not in without and "ami" not in without
    assert without == {name: report[name] for name in without}


def test_report_clustering_needs_two_gallery_classes_and_a_bool():
    model = ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), embedding_dim=4)
    one_class = (random_images(6, IMAGE_SHAPE, seed=5), np.zeros(6, "int64"))
    with pytest.raises(ValueError, match=r"pass clustering=False.*Received: gallery classes \[0\]"):
        retrieval.retrieval_report(model, one_class, one_class, ks=1, progress=False)
    report = retrieval.retrieval_report(
        model, one_class, one_class, ks=1, progress=False, clustering=False
    )
    assert report["recall@1"] == 1.0
    with pytest.raises(TypeError, match="clustering='yes'"):
        retrieval.retrieval_report(
            model, one_class, one_class, ks=1, progress=False, clustering="yes"
        )
