"""Tests of representation_report: the same numbers as the protocols run one by one."""

import json

import keras
import numpy as np
import pytest
from conftest import tiny_encoder

from keras_siamese import evaluation


def labelled_images(count, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    levels = np.array([40, 120, 200])[labels][:, None, None, None]
    images = np.clip(levels + rng.normal(0, 25, (count, 16, 16, 1)), 0, 255).astype("uint8")
    return images, labels


def test_report_equals_the_protocols_run_separately():
    train, test = labelled_images(96, seed=0), labelled_images(30, seed=1)
    encoder = tiny_encoder()
    probe_options = {"epochs": 5, "batch_size": 16}
    tune_options = {"epochs": 2, "batch_size": 8, "learning_rate": 0.05}
    report = evaluation.representation_report(
        encoder,
        train,
        test,
        k=10,
        label_fractions=(0.25,),
        linear_probe_options=probe_options,
        fine_tune_options=tune_options,
        seed=3,
        progress=False,
        input_scale=1 / 255,  # tiny_encoder takes [0, 1], the images are [0, 255]
    )
    scaled = {"progress": False, "input_scale": 1 / 255}
    knn = evaluation.knn_accuracy(encoder, train, test, k=10, **scaled)
    probe = evaluation.linear_probe(encoder, train, test, seed=3, **scaled, **probe_options)
    tuned = evaluation.fine_tune(
        encoder, train, test, label_fraction=0.25, seed=3, **scaled, **tune_options
    )
    assert report["knn"] == {"top1": knn, "k": 10, "temperature": 0.1}
    assert report["linear_probe"] == {"top1": probe["top1"], "top5": probe["top5"]}
    assert report["fine_tune"] == {
        "25%": {"top1": tuned["top1"], "top5": tuned["top5"], "labelled_examples": 24}
    }
    assert report["feature_dims"] == 16
    assert set(report["seconds"]) == {"features", "knn", "linear_probe", "fine_tune_25%"}
    json.dumps(report)  # numbers only


def test_one_hot_encoder_scores_perfectly_and_shuffled_labels_score_chance():
    # The "encoder" reads the class straight off the image: kNN and the probe are exact.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 400)
    images = np.zeros((400, 2, 2, 1), "float32")
    images.reshape(400, 4)[np.arange(400), labels] = 255.0
    encoder = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten()])
    options = {
        "label_fractions": (),
        "linear_probe_options": {"epochs": 10},
        "progress": False,
        "input_scale": 1.0,
    }
    train, test = (images[:200], labels[:200]), (images[200:], labels[200:])
    report = evaluation.representation_report(encoder, train, test, **options)
    assert report["knn"]["top1"] == 1.0
    assert report["linear_probe"]["top1"] == 1.0
    assert report["fine_tune"] == {}
    shuffled = rng.permutation(labels)
    train, test = (images[:200], shuffled[:200]), (images[200:], shuffled[200:])
    report = evaluation.representation_report(encoder, train, test, **options)
    assert 0.12 < report["knn"]["top1"] < 0.38
    assert 0.12 < report["linear_probe"]["top1"] < 0.38


def test_fraction_names():
    assert [evaluation.report.fraction_name(f) for f in (0.01, 0.1, 0.005, 1.0)] == [
        "1%",
        "10%",
        "0.5%",
        "100%",
    ]


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"label_fractions": 0.1}, TypeError, "`label_fractions` must be a sequence"),
        ({"label_fractions": (0.1, 2.0)}, ValueError, r"`label_fraction` must be .* <= 1"),
        ({"k": 0}, ValueError, "`k` must be an integer >= 1"),
        ({"temperature": 0.0}, ValueError, "`temperature` must be finite and > 0"),
        ({"batch_size": 0}, ValueError, "`batch_size` must be an integer >= 1"),
        ({"linear_probe_options": {"seed": 1}}, ValueError, "`seed` is an argument of"),
        ({"fine_tune_options": {"progress": True}}, ValueError, "`progress` is an argument of"),
    ],
)
def test_bad_arguments_are_refused_before_the_encoder_runs(options, error, match):
    def encoder(images, training=False):
        raise AssertionError("the encoder must not run")

    data = labelled_images(8, seed=0)
    with pytest.raises(error, match=match):
        evaluation.representation_report(encoder, data, data, progress=False, **options)
