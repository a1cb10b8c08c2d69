"""Tests of keras_siamese.evaluation.linear_probe: known answers, a sklearn reference, checks."""

import keras
import numpy as np
import pytest
from conftest import tiny_encoder

import keras_siamese as ks
from keras_siamese import evaluation


def gaussian_problem(count=1200, dims=12, num_classes=5, spread=2.0, seed=0):
    """Class centres plus noise: a linear classifier gets well above chance, not 100%."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dims))
    labels = rng.integers(0, num_classes, count)
    features = centres[labels] + spread * rng.normal(size=(count, dims))
    # Different scales per dimension: the probe must standardise.
    features = features * np.logspace(-2, 2, dims) + 5.0
    half = count // 2
    return (
        features[:half].astype("float32"),
        labels[:half],
        features[half:].astype("float32"),
        labels[half:],
    )


# --------------------------------------------------------------------------- known answers


def test_one_hot_features_give_perfect_accuracy():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2000)
    features = np.eye(10, dtype="float32")[labels]
    result = evaluation.linear_probe_on_features(
        features[:1000], labels[:1000], features[1000:], labels[1000:], epochs=20
    )
    assert result["top1"] == 1.0
    assert result["top5"] == 1.0


def test_shuffled_labels_give_chance():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 4000)
    features = np.eye(10, dtype="float32")[labels]
    shuffled = rng.permutation(labels)  # labels no longer related to the features
    result = evaluation.linear_probe_on_features(
        features[:2000], shuffled[:2000], features[2000:], shuffled[2000:], epochs=20
    )
    assert 0.05 < result["top1"] < 0.16
    assert 0.4 < result["top5"] < 0.6


def test_matches_sklearn_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_x, train_y, test_x, test_y = gaussian_problem()
    result = evaluation.linear_probe_on_features(
        train_x, train_y, test_x, test_y, epochs=100, batch_size=64, learning_rate=1e-2
    )
    scaler = StandardScaler().fit(train_x)
    reference = LogisticRegression(C=1e4, max_iter=5000).fit(scaler.transform(train_x), train_y)
    expected = reference.score(scaler.transform(test_x), test_y)
    assert 0.3 < expected < 0.95  # the problem is neither trivial nor hopeless
    assert abs(result["top1"] - expected) < 0.03


def test_classifier_takes_raw_features_and_reproduces_top1():
    train_x, train_y, test_x, test_y = gaussian_problem()
    result = evaluation.linear_probe_on_features(train_x, train_y, test_x, test_y, epochs=10)
    logits = np.asarray(result["classifier"](test_x))
    assert logits.shape == (len(test_x), 5)
    assert result["top1"] == pytest.approx(np.mean(logits.argmax(axis=1) == test_y))
    assert result["top1"] <= result["top5"]


def test_constant_training_dimension_does_not_explode():
    # A pixel that is 0 in every training image but lit in a test image (raw-pixel probes).
    train_x, train_y, test_x, test_y = gaussian_problem()
    train_x = np.concatenate([train_x, np.zeros((len(train_x), 1), "float32")], axis=1)
    test_x = np.concatenate([test_x, np.full((len(test_x), 1), 255.0, "float32")], axis=1)
    result = evaluation.linear_probe_on_features(train_x, train_y, test_x, test_y, epochs=10)
    logits = np.asarray(result["classifier"](test_x))
    assert np.all(np.isfinite(logits)) and np.abs(logits).max() < 1e3
    assert result["top1"] > 0.3


def test_deterministic_for_a_seed():
    train_x, train_y, test_x, test_y = gaussian_problem()
    runs = [
        evaluation.linear_probe_on_features(train_x, train_y, test_x, test_y, epochs=3, seed=seed)
        for seed in (7, 7, 8)
    ]
    first, again, other = (run["classifier"].get_weights() for run in runs)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[-2], other[-2])  # another shuffling order


def test_probe_is_float32_under_a_mixed_precision_policy():
    train_x, train_y, test_x, test_y = gaussian_problem()
    reference = evaluation.linear_probe_on_features(train_x, train_y, test_x, test_y, epochs=3)
    try:
        ks.distribute.set_mixed_precision("bfloat16")
        mixed = evaluation.linear_probe_on_features(train_x, train_y, test_x, test_y, epochs=3)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert all(layer.compute_dtype == "float32" for layer in mixed["classifier"].layers)
    assert mixed["top1"] == reference["top1"]
    weights = mixed["classifier"].get_weights(), reference["classifier"].get_weights()
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_top_k_accuracies_match_sklearn():
    from sklearn.metrics import top_k_accuracy_score

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 7))
    labels = rng.integers(0, 7, 300)
    result = evaluation.top_k_accuracies(logits, labels, ks=(1, 3, 5, 9))
    for k in (1, 3, 5):
        expected = top_k_accuracy_score(labels, logits, k=k, labels=np.arange(7))
        assert result[f"top{k}"] == pytest.approx(expected)
    assert result["top9"] == 1.0  # k above the number of classes is clamped


# --------------------------------------------------------------------------- from an encoder


def test_linear_probe_on_images_equals_probe_on_extracted_features():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 64)
    images = rng.integers(0, 60, (64, 16, 16, 1)).astype("uint8")
    images[np.arange(64), labels * 4, 0, 0] = 255  # the bright pixel's row is the class
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8))
    train, test = (images[:32], labels[:32]), (images[32:], labels[32:])
    result = evaluation.linear_probe(model, train, test, epochs=5, progress=False)
    train_features, _ = evaluation.extract_features(model, train, progress=False)
    test_features, _ = evaluation.extract_features(model, test, progress=False)
    expected = evaluation.linear_probe_on_features(
        train_features, train[1], test_features, test[1], epochs=5
    )
    assert result["top1"] == expected["top1"]
    assert result["top5"] == expected["top5"]
    for a, b in zip(
        result["classifier"].get_weights(), expected["classifier"].get_weights(), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_linear_probe_of_pixels_separates_pixel_classes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    images = np.zeros((200, 4, 4, 1), "float32")
    images[np.arange(200), labels, labels, 0] = 255.0
    encoder = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
    result = evaluation.linear_probe(
        encoder, (images[:100], labels[:100]), (images[100:], labels[100:]), progress=False,
        input_scale=1 / 255,
    )
    assert result["top1"] == 1.0


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"epochs": 0}, ValueError, "`epochs` must be an integer >= 1"),
        ({"epochs": 2.5}, TypeError, "`epochs` must be an int"),
        ({"batch_size": 0}, ValueError, "`batch_size` must be an integer >= 1"),
        ({"learning_rate": -1.0}, ValueError, "`learning_rate` must be finite and > 0"),
        ({"learning_rate": "fast"}, TypeError, "`learning_rate` must be a number"),
        ({"weight_decay": -0.1}, ValueError, "`weight_decay` must be finite and >= 0"),
        ({"seed": -1}, ValueError, "`seed` must be an integer >= 0"),
        ({"seed": 1.5}, TypeError, "`seed` must be an int"),
        ({"num_classes": 2}, ValueError, r"must lie in \[0, num_classes\)"),
    ],
)
def test_bad_arguments(options, error, match):
    train_x, train_y, test_x, test_y = gaussian_problem(count=40)
    with pytest.raises(error, match=match):
        evaluation.linear_probe_on_features(train_x, train_y, test_x, test_y, **options)


def test_bad_features():
    train_x, train_y, test_x, test_y = gaussian_problem(count=40)
    with pytest.raises(ValueError, match="same feature size"):
        evaluation.linear_probe_on_features(train_x, train_y, test_x[:, :3], test_y)
    with pytest.raises(ValueError, match="`train_labels` must be integers of shape"):
        evaluation.linear_probe_on_features(train_x, train_y[:-1], test_x, test_y)
    with pytest.raises(ValueError, match="`train_labels` must be integers of shape"):
        evaluation.linear_probe_on_features(train_x, train_y.astype("float32"), test_x, test_y)
    with pytest.raises(ValueError, match="`test_features` must be a non-empty rank-2"):
        evaluation.linear_probe_on_features(train_x, train_y, test_x[0], test_y)
    broken = train_x.copy()
    broken[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        evaluation.linear_probe_on_features(broken, train_y, test_x, test_y)


def test_bad_data_is_refused_before_the_encoder_runs():
    encoder = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
    images = np.zeros((4, 4, 4, 1), "float32")
    scaled = {"progress": False, "input_scale": 1 / 255}
    with pytest.raises(TypeError, match="Argument `train` must be a tuple"):
        evaluation.linear_probe(encoder, images, (images, np.arange(4)), **scaled)
    with pytest.raises(ValueError, match="as many labels as images"):
        evaluation.linear_probe(encoder, (images, np.arange(4)), (images, np.arange(3)), **scaled)
    with pytest.raises(ValueError, match="`feature_batch_size` must be an integer >= 1"):
        evaluation.linear_probe(
            encoder, (images, np.arange(4)), (images, np.arange(4)), feature_batch_size=0,
            **scaled,
        )
