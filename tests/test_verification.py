"""Tests of keras_siamese.evaluation.verification: ROC AUC, EER, accuracy, against references."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images, tiny_encoder
from sklearn import metrics as sklearn_metrics

import keras_siamese as ks
from keras_siamese.evaluation import verification

IMAGE_SHAPE = (16, 16, 1)


def random_scores(seed, count=300, ties=False):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, count)
    scores = rng.normal(size=count) + 1.2 * labels
    if ties:
        scores = np.round(scores, 1)  # many tied scores across both classes
    return scores, labels


def brute_force_accuracy(scores, labels):
    """Best accuracy of "same when score >= t" over every candidate t, and the highest such t."""
    best, best_threshold = -1.0, None
    for threshold in sorted(set(scores) | {np.inf}, reverse=True):
        accuracy = np.mean((scores >= threshold) == (labels == 1))
        if accuracy > best:
            best, best_threshold = accuracy, threshold
    return best, best_threshold


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_metrics_equal_sklearn_and_brute_force(seed, ties):
    scores, labels = random_scores(seed, ties=ties)
    metrics = verification.verification_metrics(scores, labels)
    assert metrics["roc_auc"] == pytest.approx(
        sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12
    )
    accuracy, threshold = brute_force_accuracy(scores, labels)
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert metrics["threshold"] == threshold
    assert (metrics["positive_pairs"], metrics["negative_pairs"]) == (
        labels.sum(),
        300 - labels.sum(),
    )
    fpr, tpr, thresholds = verification.roc_curve(scores, labels)
    reference_fpr, reference_tpr, reference_thresholds = sklearn_metrics.roc_curve(
        labels, scores, drop_intermediate=False
    )
    np.testing.assert_allclose(fpr, reference_fpr)
    np.testing.assert_allclose(tpr, reference_tpr)
    np.testing.assert_allclose(thresholds[1:], reference_thresholds[1:])


def test_equal_error_rate_analytic_cases():
    # Negatives uniform on [0, 1], positives on [0.5, 1.5]: FPR(t) = 1 - t and FNR(t) = t - 0.5
    # cross at t = 0.75, so EER = 0.25.
    grid = (np.arange(20000) + 0.5) / 20000
    scores = np.r_[grid, grid + 0.5]
    labels = np.r_[np.zeros(20000), np.ones(20000)].astype(int)
    metrics = verification.verification_metrics(scores, labels)
    assert metrics["equal_error_rate"] == pytest.approx(0.25, abs=1e-4)
    assert metrics["roc_auc"] == pytest.approx(0.875, abs=1e-4)  # 1 - 0.5 * 0.5 * 0.5
    assert metrics["accuracy"] == pytest.approx(0.75, abs=1e-4)  # at any t in [0.5, 1]
    separated = verification.verification_metrics([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0])
    assert (separated["equal_error_rate"], separated["roc_auc"], separated["accuracy"]) == (0, 1, 1)
    assert separated["threshold"] == 0.8
    inverted = verification.verification_metrics([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0])
    assert (inverted["equal_error_rate"], inverted["roc_auc"]) == (1.0, 0.0)
    # Two tied scores of different labels: the ROC segment crosses the diagonal at 0.5.
    assert verification.verification_metrics([0.5, 0.5], [1, 0])["equal_error_rate"] == 0.5


def test_equal_error_rate_lies_where_the_error_rates_cross():
    scores, labels = random_scores(5, count=2000)
    eer = verification.verification_metrics(scores, labels)["equal_error_rate"]
    # Sweep thresholds: the EER is between min over t of the smaller and of the larger rate.
    thresholds = np.sort(scores)
    fpr = np.array([np.mean(scores[labels == 0] >= t) for t in thresholds])
    fnr = np.array([np.mean(scores[labels == 1] < t) for t in thresholds])
    crossing = np.argmin(np.abs(fpr - fnr))
    assert (
        min(fpr[crossing], fnr[crossing]) - 2e-3 <= eer <= max(fpr[crossing], fnr[crossing]) + 2e-3
    )


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return ks.SiameseNetwork(tiny_encoder(IMAGE_SHAPE), distance="cosine", normalize=False)


def make_pairs(count=40, seed=0):
    images_a = random_images(count, IMAGE_SHAPE, seed=seed)
    images_b = random_images(count, IMAGE_SHAPE, seed=seed + 1)
    images_b[: count // 2] = images_a[: count // 2] // 2 + 60  # similar images for the positives
    labels = (np.arange(count) < count // 2).astype("int64")
    return (images_a, images_b), labels


def test_report_equals_sklearn_on_the_models_scores(model):
    pairs, labels = make_pairs()
    report = verification.verification_report(model, (pairs, labels), batch_size=16, progress=False)
    scores = model.similarity(*pairs).numpy()
    assert report["roc_auc"] == pytest.approx(
        sklearn_metrics.roc_auc_score(labels, scores), abs=1e-6
    )
    assert report["accuracy"] == pytest.approx(brute_force_accuracy(scores, labels)[0], abs=1e-6)
    # A dataset of the same pairs, batched or not, gives the same report.
    dataset = tf.data.Dataset.from_tensor_slices((pairs, labels))
    for data in (dataset, dataset.batch(7)):
        again = verification.verification_report(model, data, batch_size=16, progress=True)
        assert again["roc_auc"] == pytest.approx(report["roc_auc"], abs=1e-6)


def test_pair_scores_of_a_plain_model_use_cosine():
    inputs = keras.Input(IMAGE_SHAPE)
    plain = keras.Model(inputs, keras.layers.Flatten()(inputs))
    pairs, labels = make_pairs(8)
    scores, returned = verification.pair_scores(
        plain, (pairs, labels), progress=False, input_scale=1 / 255
    )
    a, b = (np.asarray(x, np.float64).reshape(8, -1) for x in pairs)
    expected = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    np.testing.assert_array_equal(returned, labels)


def test_pair_scores_follow_the_model_contract(model):
    # A keras_siamese model is scored with its `similarity`; its `embedding_model()` (a plain
    # Keras model starting with a Rescaling) with the model's `distance` gives the same scores.
    pairs, labels = make_pairs(8)
    scores, _ = verification.pair_scores(model, (pairs, labels), progress=False)
    np.testing.assert_allclose(scores, model.similarity(*pairs).numpy(), rtol=1e-6)
    embedding = model.embedding_model()
    again, _ = verification.pair_scores(
        embedding, (pairs, labels), progress=False, distance=model.distance
    )
    np.testing.assert_allclose(again, scores, rtol=1e-5, atol=1e-6)
    euclidean, _ = verification.pair_scores(
        model, (pairs, labels), progress=False, distance="euclidean"
    )
    a, b = (model.predict(images, verbose=0) for images in pairs)
    np.testing.assert_allclose(euclidean, -np.linalg.norm(a - b, axis=1), rtol=1e-5, atol=1e-6)


def test_check_scores_is_the_shared_pair_check():
    scores, labels = verification.check_scores([0.9, 0.1], [True, False])
    assert scores.dtype == np.float64 and labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match="same shape"):
        verification.check_scores([0.9, 0.1, 0.2], [1, 0])
    with pytest.raises(ValueError, match="both same-class"):
        verification.check_scores([0.9, 0.1], [0, 0])


def test_bad_input_raises(model):
    pairs, labels = make_pairs(8)
    with pytest.raises(ValueError, match=r"\(\(images_a, images_b\), labels\)"):
        verification.verification_report(model, (pairs[0], labels), progress=False)
    with pytest.raises(ValueError, match="same shape"):
        verification.verification_report(model, ((pairs[0], pairs[1][:4]), labels), progress=False)
    with pytest.raises(ValueError, match="must be 1 for a same-class pair"):
        verification.verification_metrics([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="both same-class"):
        verification.verification_metrics([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        verification.verification_metrics([np.nan, 0.2], [1, 0])
    dataset = tf.data.Dataset.from_tensor_slices((pairs[0], labels))
    with pytest.raises(ValueError, match="element_spec"):
        verification.verification_report(model, dataset, progress=False)
