"""Tests of class_balanced_subset and fine_tune: balance, determinism, known answers, checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_encoder

import keras_siamese as ks
from keras_siamese import evaluation


def brightness_problem(count, seed, num_classes=2):
    """16x16 images whose class is their brightness: crop- and flip-invariant, easy to learn."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, count)
    levels = np.linspace(50, 200, num_classes)[labels][:, None, None, None]
    images = np.clip(levels + rng.normal(0, 20, (count, 16, 16, 1)), 0, 255).astype("uint8")
    return images, labels


# --------------------------------------------------------------------------- subsets


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 1.0])
def test_subset_is_class_balanced(fraction):
    labels = np.repeat(np.arange(10), 600)
    np.random.default_rng(0).shuffle(labels)
    indices = evaluation.class_balanced_subset(labels, fraction, seed=0)
    counts = np.bincount(labels[indices], minlength=10)
    np.testing.assert_array_equal(counts, np.full(10, round(600 * fraction)))
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, np.unique(indices))  # sorted, no repeats


def test_subset_of_unbalanced_classes_takes_the_fraction_of_each():
    labels = np.concatenate([np.zeros(1000), np.ones(100), np.full(3, 2)]).astype("int64")
    indices = evaluation.class_balanced_subset(labels, 0.1, seed=0)
    assert np.bincount(labels[indices]).tolist() == [100, 10, 1]  # at least one per class


def test_subset_is_deterministic_and_depends_on_the_seed():
    labels = np.random.default_rng(0).integers(0, 10, 5000)
    first = evaluation.class_balanced_subset(labels, 0.1, seed=3)
    again = evaluation.class_balanced_subset(labels.copy(), 0.1, seed=3)
    other = evaluation.class_balanced_subset(labels, 0.1, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_subset_of_a_class_does_not_depend_on_other_classes():
    labels = np.random.default_rng(0).integers(0, 3, 900)
    everything = evaluation.class_balanced_subset(labels, 0.1, seed=0)
    only_class_1 = labels.copy()
    only_class_1[labels != 1] = 7  # other classes relabelled
    again = evaluation.class_balanced_subset(only_class_1, 0.1, seed=0)
    np.testing.assert_array_equal(everything[labels[everything] == 1], again[labels[again] == 1])


@pytest.mark.parametrize(
    "labels, fraction, seed, error, match",
    [
        (np.arange(10), 0.0, 0, ValueError, r"`label_fraction` must be finite and > 0 and <= 1"),
        (np.arange(10), 1.5, 0, ValueError, r"`label_fraction` must be finite and > 0 and <= 1"),
        (np.arange(10), "0.1", 0, TypeError, "`label_fraction` must be a number"),
        (np.arange(10), 0.1, -1, ValueError, "`seed` must be an integer >= 0"),
        (np.arange(10), 0.1, 0.5, TypeError, "`seed` must be an int"),
        (np.zeros((3, 2), "int64"), 0.1, 0, ValueError, "non-empty vector of integer"),
        (np.zeros(3, "float32"), 0.1, 0, ValueError, "non-empty vector of integer"),
        (np.zeros(0, "int64"), 0.1, 0, ValueError, "non-empty vector of integer"),
    ],
)
def test_subset_bad_input(labels, fraction, seed, error, match):
    with pytest.raises(error, match=match):
        evaluation.class_balanced_subset(labels, fraction, seed=seed)


# --------------------------------------------------------------------------- fine_tune

OPTIONS = {
    "label_fraction": 0.25,
    "epochs": 10,
    "batch_size": 8,
    "learning_rate": 0.1,
    "input_scale": 1 / 255,
}  # tiny_encoder takes [0, 1], the images are [0, 255]


def test_fine_tune_learns_a_learnable_task_and_leaves_the_encoder_untouched():
    train, test = brightness_problem(400, seed=0), brightness_problem(200, seed=1)
    encoder = tiny_encoder()
    before = [weight.copy() for weight in encoder.get_weights()]
    result = evaluation.fine_tune(encoder, train, test, progress=False, **OPTIONS)
    assert result["top1"] > 0.95
    assert result["labelled_examples"] == 100
    for old, new in zip(before, encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    logits = np.asarray(result["model"](test[0].astype("float32")))  # images as stored
    assert logits.shape == (200, 2)
    assert np.mean(logits.argmax(axis=1) == test[1]) == pytest.approx(result["top1"])


def test_fine_tune_on_shuffled_labels_is_at_chance():
    images, labels = brightness_problem(600, seed=0)
    shuffled = np.random.default_rng(1).permutation(labels)
    result = evaluation.fine_tune(
        tiny_encoder(),
        (images[:400], shuffled[:400]),
        (images[400:], shuffled[400:]),
        progress=False,
        **OPTIONS,
    )
    assert 0.35 < result["top1"] < 0.65


def test_fine_tune_is_deterministic():
    train, test = brightness_problem(100, seed=0), brightness_problem(20, seed=1)
    encoder = tiny_encoder()
    options = {**OPTIONS, "epochs": 2}
    first = evaluation.fine_tune(encoder, train, test, seed=5, progress=False, **options)
    again = evaluation.fine_tune(encoder, train, test, seed=5, progress=False, **options)
    for a, b in zip(first["model"].get_weights(), again["model"].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert first["top1"] == again["top1"]


def test_fine_tune_of_a_simclr_model_uses_its_embedding_model():
    train, test = brightness_problem(160, seed=0), brightness_problem(40, seed=1)
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8))
    encoder_before = [weight.copy() for weight in model.encoder.get_weights()]
    # A dataset of single examples works like arrays.
    dataset = tf.data.Dataset.from_tensor_slices(train)
    options = {**OPTIONS, "epochs": 2, "input_scale": None}
    result = evaluation.fine_tune(model, dataset, test, progress=False, **options)
    tuned = result["model"]
    assert tuned.input_shape == (None, 16, 16, 1)
    # The copy starts from the SimCLR encoder's weights: its first kernel moved away from them.
    first_kernel = tuned.get_layer(index=1).get_weights()[0]
    assert first_kernel.shape == encoder_before[0].shape
    assert not np.array_equal(first_kernel, encoder_before[0])
    for old, new in zip(encoder_before, model.encoder.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_fine_tune_without_training_keeps_the_copied_weights():
    # Learning rate ~0: the copy keeps the encoder's weights, so with batch statistics
    # (training=True; the moving statistics did move) it computes the same features.
    train, test = brightness_problem(64, seed=0), brightness_problem(16, seed=1)
    encoder = tiny_encoder()
    result = evaluation.fine_tune(
        encoder,
        train,
        test,
        label_fraction=0.5,
        epochs=1,
        learning_rate=1e-12,
        progress=False,
        input_scale=1 / 255,
    )
    network = result["model"].get_layer(index=1)  # the copy behind a Rescaling(1 / 255)
    images = test[0].astype("float32")
    np.testing.assert_allclose(
        np.asarray(network(images, training=True)),
        np.asarray(encoder(images / 255.0, training=True)),
        rtol=1e-4,
        atol=1e-5,
    )


def test_fine_tune_learning_rate_follows_the_batch_size_used(monkeypatch):
    # 24 labelled images: the batch is clamped from 256 to 24, so the rate is 0.05 * 24 / 256
    # (SimCLR's rule for the batch actually used), not 0.05 * 256 / 256.
    peaks = []
    cosine_decay = keras.optimizers.schedules.CosineDecay

    def recording_cosine_decay(initial_learning_rate, *args, **kwargs):
        peaks.append(initial_learning_rate)
        return cosine_decay(initial_learning_rate, *args, **kwargs)

    monkeypatch.setattr(keras.optimizers.schedules, "CosineDecay", recording_cosine_decay)
    train, test = brightness_problem(96, seed=0), brightness_problem(8, seed=1)
    result = evaluation.fine_tune(
        tiny_encoder(),
        train,
        test,
        label_fraction=0.25,
        epochs=1,
        progress=False,
        input_scale=1 / 255,
    )
    assert result["labelled_examples"] == 24 and result["batch_size"] == 24
    assert peaks == [pytest.approx(0.05 * 24 / 256)]
    assert result["learning_rate"] == pytest.approx(0.05 * 24 / 256)
    # A given rate is kept as it is.
    peaks.clear()
    evaluation.fine_tune(
        tiny_encoder(),
        train,
        test,
        label_fraction=0.25,
        epochs=1,
        learning_rate=0.2,
        progress=False,
        input_scale=1 / 255,
    )
    assert peaks == [pytest.approx(0.2)]


def test_fine_tune_of_a_bare_encoder_scales_the_images_it_is_told_to():
    # model.encoder takes [0, 1]: with input_scale=1/255 the tuned network sees what the
    # SimCLR model's embedding_model() would; without input_scale it is refused.
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8))
    train, test = brightness_problem(32, seed=0), brightness_problem(8, seed=1)
    with pytest.raises(ValueError, match="`input_scale` is needed"):
        evaluation.fine_tune(model.encoder, train, test, progress=False)
    with pytest.raises(ValueError, match="None for a keras_siamese model"):
        evaluation.fine_tune(model, train, test, progress=False, input_scale=1 / 255)
    options = {"label_fraction": 0.5, "epochs": 1, "learning_rate": 1e-12, "progress": False}
    scaled = evaluation.fine_tune(model.encoder, train, test, input_scale=1 / 255, **options)
    reference = evaluation.fine_tune(model, train, test, **options)
    images = test[0].astype("float32")
    network, expected = (result["model"].get_layer(index=1) for result in (scaled, reference))
    np.testing.assert_allclose(
        np.asarray(network(images, training=False)),
        np.asarray(expected(images, training=False)),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"label_fraction": 0.0}, ValueError, r"`label_fraction` must be finite and > 0 and <= 1"),
        ({"epochs": 0}, ValueError, "`epochs` must be an integer >= 1"),
        ({"batch_size": -2}, ValueError, "`batch_size` must be an integer >= 1"),
        ({"learning_rate": 0.0}, ValueError, "`learning_rate` must be finite and > 0"),
        ({"momentum": 1.0}, ValueError, r"`momentum` must be finite and >= 0 and < 1"),
        ({"augmenter": "crop"}, TypeError, "`augmenter` must be a keras.layers.Layer"),
        ({"num_classes": 1}, ValueError, r"labels in \[0, num_classes\)"),
        ({"seed": -3}, ValueError, "`seed` must be an integer >= 0"),
    ],
)
def test_fine_tune_bad_arguments(options, error, match):
    data = brightness_problem(16, seed=0)
    with pytest.raises(error, match=match):
        evaluation.fine_tune(
            tiny_encoder(), data, data, progress=False, input_scale=1 / 255, **options
        )


def test_fine_tune_bad_encoders():
    data = brightness_problem(16, seed=0)
    with pytest.raises(TypeError, match="`encoder` must be a keras_siamese model"):
        evaluation.fine_tune(lambda images: images, data, data, progress=False)
    maps = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="must return rank-2 features"):
        evaluation.fine_tune(maps, data, data, progress=False, input_scale=1 / 255)
    flexible = keras.Sequential([keras.Input((None, None, 1)), keras.layers.GlobalMaxPooling2D()])
    with pytest.raises(ValueError, match="images of a fixed shape"):
        evaluation.fine_tune(flexible, data, data, progress=False, input_scale=1 / 255)


def test_a_vision_transformer_is_fine_tuned_with_adamw_and_learns():
    keras.utils.set_random_seed(0)
    vit = ks.encoders.vit(16, 4, dim=16, depth=1, heads=2, pooling="grid")
    train, test = brightness_problem(400, seed=0), brightness_problem(200, seed=1)
    options = {**OPTIONS, "learning_rate": None}
    result = evaluation.fine_tune(vit, train, test, progress=False, **options)
    assert result["optimizer"] == "adamw"
    assert result["learning_rate"] == pytest.approx(1e-3 * 8 / 256)  # MAE's rule
    assert result["top1"] > 0.95
    resnet = evaluation.fine_tune(tiny_encoder(), train, test, progress=False, **OPTIONS)  # SGD
    assert resnet["optimizer"] == "sgd"
    with pytest.raises(ValueError, match=r"`optimizer` must be one of.*'lamb'"):
        evaluation.fine_tune(vit, train, test, optimizer="lamb", progress=False, **options)
