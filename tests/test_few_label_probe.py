"""Tests of keras_siamese.evaluation.few_label_probe: the subset, the probe, the report, checks."""

import keras
import numpy as np
import pytest
from conftest import tiny_encoder

from keras_siamese import evaluation


def labelled_features(count=600, dims=6, num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), count // num_classes)
    features = rng.normal(size=(num_classes, dims))[labels] + rng.normal(size=(len(labels), dims))
    return features.astype("float32"), labels


def test_equals_the_linear_probe_on_the_class_balanced_subset():
    train_x, train_y = labelled_features(seed=0)
    test_x, test_y = labelled_features(90, seed=1)
    result = evaluation.few_label_linear_probe_on_features(
        train_x, train_y, test_x, test_y, label_fraction=0.1, epochs=5, seed=2
    )
    subset = evaluation.class_balanced_subset(train_y, 0.1, seed=2)
    reference = evaluation.linear_probe_on_features(
        train_x[subset], train_y[subset], test_x, test_y, epochs=5, seed=2
    )
    assert result["top1"] == reference["top1"]
    assert result["top5"] == reference["top5"]
    assert result["labelled_examples"] == 60
    assert result["epochs"] == 5


def test_one_hot_features_are_perfect_and_shuffled_labels_near_chance():
    labels = np.repeat(np.arange(4), 250)
    features = np.eye(4, dtype="float32")[labels]
    perfect = evaluation.few_label_linear_probe_on_features(
        features, labels, features, labels, label_fraction=0.02
    )
    assert perfect["top1"] == 1.0
    assert perfect["labelled_examples"] == 20
    shuffled = np.random.default_rng(0).permutation(labels)
    chance = evaluation.few_label_linear_probe_on_features(
        features, shuffled, features, labels, label_fraction=0.1
    )
    assert chance["top1"] < 0.5


def test_default_epochs():
    assert evaluation.default_few_label_epochs(0.01) == 100
    assert evaluation.default_few_label_epochs(0.005) == 100
    assert evaluation.default_few_label_epochs(0.1) == 50
    train_x, train_y = labelled_features()
    result = evaluation.few_label_linear_probe_on_features(
        train_x, train_y, train_x, train_y, label_fraction=0.1
    )
    assert result["epochs"] == 50


def test_model_version_equals_the_features_version():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(2), 40)
    images = np.clip(
        np.array([60, 190])[labels][:, None, None, None] + rng.normal(0, 30, (80, 16, 16, 1)),
        0,
        255,
    ).astype("uint8")
    encoder = tiny_encoder()
    data = (images, labels)
    result = evaluation.few_label_linear_probe(
        encoder, data, data, label_fraction=0.25, epochs=3, progress=False, input_scale=1 / 255
    )
    features, _ = evaluation.extract_features(encoder, data, progress=False, input_scale=1 / 255)
    reference = evaluation.few_label_linear_probe_on_features(
        features, labels, features, labels, label_fraction=0.25, epochs=3
    )
    assert result["top1"] == reference["top1"]
    assert result["labelled_examples"] == 20
    with pytest.raises(ValueError, match="input_scale"):
        evaluation.few_label_linear_probe(encoder, data, data, progress=False)


def test_report_runs_it_once_per_fraction():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    images = np.zeros((200, 2, 2, 1), "float32")
    images.reshape(200, 4)[np.arange(200), labels] = 255.0
    flatten = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten()])
    report = evaluation.representation_report(
        flatten,
        (images, labels),
        (images[rng.permutation(200)], labels),
        k=5,
        label_fractions=(),
        linear_label_fractions=(0.1, 0.5),
        linear_probe_options={"epochs": 3},
        progress=False,
        input_scale=1 / 255,
    )
    assert set(report["few_label_linear"]) == {"10%", "50%"}
    assert report["few_label_linear"]["10%"]["labelled_examples"] == 20
    assert {"linear_10%", "linear_50%"} <= set(report["seconds"])
    without = evaluation.representation_report(
        flatten,
        (images, labels),
        (images, labels),
        k=5,
        label_fractions=(),
        progress=False,
        input_scale=1 / 255,
    )
    assert "few_label_linear" not in without


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"label_fraction": 0.0}, ValueError, "label_fraction"),
        ({"label_fraction": 1.5}, ValueError, "label_fraction"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_arguments_are_refused(options, error, match):
    features, labels = labelled_features()
    with pytest.raises(error, match=match):
        evaluation.few_label_linear_probe_on_features(features, labels, features, labels, **options)


def test_report_refuses_a_bare_number_of_fractions():
    features = np.zeros((4, 2, 2, 1), "float32")
    flatten = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten()])
    with pytest.raises(TypeError, match="linear_label_fractions"):
        evaluation.representation_report(
            flatten,
            (features, np.arange(4) % 2),
            (features, np.arange(4) % 2),
            linear_label_fractions=0.1,
            progress=False,
            input_scale=1.0,
        )
