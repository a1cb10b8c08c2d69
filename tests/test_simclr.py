"""Tests of keras_siamese.SimCLR: a training step, metrics against numpy, predict, save/reload,
input errors, and (slow) learning on Fashion-MNIST."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import in_replica_process, random_images, tiny_encoder

import keras_siamese as ks
from keras_siamese import augment

IMAGE_SHAPE = (16, 16, 1)
METRICS = {"loss", "contrastive_accuracy", "representation_std"}


def make_model(**kwargs):
    kwargs.setdefault("projection_dims", (16, 8))
    model = ks.SimCLR(tiny_encoder(IMAGE_SHAPE), **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    return model


@pytest.fixture(scope="module")
def trained():
    """A SimCLR model after one SGD step on 8 images, with its weights before training."""
    keras.utils.set_random_seed(0)
    model = make_model()
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    history = model.fit(random_images(8, IMAGE_SHAPE), batch_size=8, epochs=1, verbose=0)
    return model, before, history.history


def normalized_config(config):
    """The config as the `.keras` file stores it (JSON: tuples become lists)."""
    return json.loads(json.dumps(config))


# ---------------------------------------------------------------------------------------
# Training step and metrics
# ---------------------------------------------------------------------------------------


def test_fit_step_changes_encoder_and_head_and_logs_finite_metrics(trained):
    model, before, history = trained
    assert set(history) == METRICS
    assert np.isfinite(history["loss"][0]) and history["loss"][0] > 0
    assert 0.0 <= history["contrastive_accuracy"][0] <= 1.0
    assert history["representation_std"][0] >= 0.0
    changed = {
        id(weight)
        for weight, old in zip(model.trainable_weights, before, strict=True)
        if not np.allclose(weight.numpy(), old)
    }
    encoder_kernels = {id(w) for w in model.encoder.trainable_weights if "kernel" in w.path}
    assert encoder_kernels and encoder_kernels <= changed
    assert {id(w) for w in model.projector.trainable_weights} & changed
    assert int(model.optimizer.iterations) == 1


def test_evaluate_logs_the_same_metrics(trained):
    model, _, _ = trained
    results = model.evaluate(
        random_images(8, IMAGE_SHAPE), batch_size=8, verbose=0, return_dict=True
    )
    assert set(results) == METRICS
    assert np.isfinite(results["loss"])
    assert 0.0 <= results["contrastive_accuracy"] <= 1.0


def numpy_nt_xent_and_accuracy(z_a, z_b, temperature):
    """Float64 NT-Xent loss and top-1 accuracy of the positive among the 2n - 1 other views."""
    views = np.concatenate([z_a, z_b]).astype("float64")
    views /= np.linalg.norm(views, axis=1, keepdims=True)
    count, half = len(views), len(views) // 2
    similarity = views @ views.T / temperature
    np.fill_diagonal(similarity, -np.inf)
    positives = (np.arange(count) + half) % count
    log_softmax = similarity - np.log(np.exp(similarity).sum(axis=1, keepdims=True))
    loss = -log_softmax[np.arange(count), positives].mean()
    accuracy = np.mean(np.argmax(similarity, axis=1) == positives)
    return loss, accuracy


def numpy_representation_std(features):
    normalized = features / np.linalg.norm(features, axis=1, keepdims=True)
    return normalized.std(axis=0).mean() * np.sqrt(features.shape[1])


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_loss_and_metrics_match_numpy_on_a_fixed_batch(temperature):
    model = make_model(temperature=temperature)
    rng = np.random.default_rng(3)
    features_a = rng.normal(size=(8, model.feature_dim)).astype("float32")
    features_b = (features_a + 1.2 * rng.normal(size=features_a.shape)).astype("float32")
    loss, values = model.loss_on_features(features_a, features_b, training=False)
    assert set(values) == {"contrastive_accuracy", "representation_std"}
    z_a = model.projector(features_a, training=False).numpy()
    z_b = model.projector(features_b, training=False).numpy()
    expected_loss, expected_accuracy = numpy_nt_xent_and_accuracy(z_a, z_b, temperature)
    assert 0.0 < expected_accuracy < 1.0  # the noise makes some positives lose
    np.testing.assert_allclose(float(loss), expected_loss, rtol=1e-5)
    np.testing.assert_allclose(float(values["contrastive_accuracy"]), expected_accuracy)
    np.testing.assert_allclose(
        float(values["representation_std"]), numpy_representation_std(features_a), rtol=1e-5
    )


def test_representation_std_detects_collapse():
    model = make_model()
    constant = np.ones((8, model.feature_dim), "float32")
    _, values = model.loss_on_features(constant, constant, training=False)
    assert float(values["representation_std"]) < 1e-3


# ---------------------------------------------------------------------------------------
# predict, call, embedding model
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_predict_returns_the_encoder_representation(trained, dtype):
    model, _, _ = trained
    images = random_images(10, IMAGE_SHAPE, seed=4).astype(dtype)
    expected = model.encoder(images.astype("float32") / 255.0, training=False).numpy()
    assert expected.shape == (10, model.feature_dim)
    np.testing.assert_allclose(model.predict(images, batch_size=4, verbose=0), expected, atol=1e-5)
    np.testing.assert_allclose(model(images).numpy(), expected, atol=1e-5)
    embedding = model.embedding_model()
    np.testing.assert_allclose(embedding(images.astype("float32")).numpy(), expected, atol=1e-5)


# ---------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------


def test_keras_file_round_trip(trained, tmp_path):
    model, _, _ = trained
    path = str(tmp_path / "simclr.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects
    assert isinstance(reloaded, ks.SimCLR)
    assert normalized_config(reloaded.get_config()) == normalized_config(model.get_config())
    assert reloaded.temperature == model.temperature
    assert tuple(reloaded.projection_dims) == (16, 8)
    assert isinstance(reloaded.augmenter, augment.SimCLRAugmenter)
    images = random_images(8, IMAGE_SHAPE, seed=5)
    np.testing.assert_allclose(
        reloaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6
    )
    features = np.random.default_rng(0).normal(size=(4, model.feature_dim)).astype("float32")
    np.testing.assert_allclose(
        reloaded.projector(features, training=False).numpy(),
        model.projector(features, training=False).numpy(),
        atol=1e-6,
    )
    for name in ("contrastive_accuracy", "representation_std"):
        assert name in [metric.name for metric in reloaded.metrics]
    # The reloaded model trains on: optimizer restored with its step count.
    assert int(reloaded.optimizer.iterations) == int(model.optimizer.iterations)
    history = reloaded.fit(images, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_config_holds_every_argument():
    augmenter = augment.simclr_augmenter(16, channels=1, strength=0.3, seed=2)
    model = ks.SimCLR(
        tiny_encoder(IMAGE_SHAPE),
        augmenter,
        projection_dims=(12, 6),
        temperature=0.3,
        sync_batch_norm=True,
        name="contrast",
    )
    config = model.get_config()
    assert config["name"] == "contrast"
    assert tuple(config["projection_dims"]) == (12, 6)
    assert config["temperature"] == 0.3 and config["sync_batch_norm"] is True
    expected = normalized_config(config)
    clone = ks.SimCLR.from_config(normalized_config(config))
    assert normalized_config(clone.get_config()) == expected
    assert clone.augmenter.get_config()["strength"] == 0.3


def test_from_config_leaves_its_argument_unchanged():
    config = ks.SimCLR(tiny_encoder(IMAGE_SHAPE), projection_dims=(8, 4)).get_config()
    expected = normalized_config(config)
    ks.SimCLR.from_config(config)
    assert normalized_config(config) == expected


def test_default_augmenter_follows_the_image_size():
    small = ks.SimCLR(tiny_encoder((28, 28, 1)), projection_dims=(8, 4)).augmenter
    assert (small.image_size, small.channels, small.strength, small.blur) == (
        (28, 28),
        1,
        0.5,
        False,
    )
    large = ks.SimCLR(tiny_encoder((96, 96, 3)), projection_dims=(8, 4)).augmenter
    assert (large.image_size, large.channels, large.strength, large.blur) == (
        (96, 96),
        3,
        1.0,
        True,
    )


# ---------------------------------------------------------------------------------------
# Bad input: a ValueError/TypeError naming the argument and the shapes
# ---------------------------------------------------------------------------------------


def _nan_images():
    images = random_images(8, IMAGE_SHAPE).astype("float32")
    images[3, 2, 2, 0] = np.nan
    return images


FIT_ERRORS = {
    "rank": (
        lambda: random_images(8, IMAGE_SHAPE)[..., 0],
        {},
        ValueError,
        r"`x` must be a batch of images \(batch, height, width, channels\).*"
        r"Received: x.shape=\(8, 16, 16\)",
    ),
    "channels": (
        lambda: random_images(8, (16, 16, 3)),
        {},
        ValueError,
        r"`x` must have 1 channels.*\(16, 16, 1\).*x.shape=\(8, 16, 16, 3\)",
    ),
    "size": (
        lambda: random_images(8, (20, 20, 1)),
        {},
        ValueError,
        r"`x` must have images of size \(16, 16\).*x.shape=\(8, 20, 20, 1\)",
    ),
    "batch_of_one": (
        lambda: random_images(1, IMAGE_SHAPE),
        {},
        ValueError,
        r"at least 2 images.*x.shape=\(1, 16, 16, 1\), batch_size=8",
    ),
    "last_batch_of_one": (
        lambda: random_images(9, IMAGE_SHAPE),
        {},
        ValueError,
        r"leave a batch of 1.*x.shape=\(9, 16, 16, 1\), batch_size=8",
    ),
    "nan": (_nan_images, {}, ValueError, r"`x` contains NaN or infinite values"),
    "strings": (
        lambda: random_images(8, IMAGE_SHAPE).astype(str),
        {},
        TypeError,
        r"`x` must be uint8 or float.*x.dtype=string",
    ),
    "booleans": (
        lambda: random_images(8, IMAGE_SHAPE) > 100,
        {},
        TypeError,
        r"`x` must be uint8 or float.*x.dtype=bool",
    ),
    "unbatched_dataset": (
        lambda: tf.data.Dataset.from_tensor_slices(random_images(8, IMAGE_SHAPE)),
        {},
        ValueError,
        r"`x` is a dataset of single images \(16, 16, 1\); batch it first",
    ),
    "dataset_batch_of_one": (
        lambda: tf.data.Dataset.from_tensor_slices(random_images(8, IMAGE_SHAPE)).batch(
            1, drop_remainder=True
        ),
        {},
        ValueError,
        r"at least 2 images per batch.*\(1, 16, 16, 1\)",
    ),
    "dataset_channels": (
        lambda: tf.data.Dataset.from_tensor_slices(random_images(8, (16, 16, 3))).batch(
            4, drop_remainder=True
        ),
        {},
        ValueError,
        r"`x` must have 1 channels.*x.shape=\(4, 16, 16, 3\)",
    ),
    "validation_data": (
        lambda: random_images(8, IMAGE_SHAPE),
        {"validation_data": random_images(8, (16, 16, 3))},
        ValueError,
        r"`validation_data` must have 1 channels.*validation_data.shape=\(8, 16, 16, 3\)",
    ),
}


@pytest.mark.parametrize("case", sorted(FIT_ERRORS))
def test_fit_rejects_bad_input(case):
    make_x, kwargs, error, match = FIT_ERRORS[case]
    model = make_model()
    with pytest.raises(error, match=match):
        model.fit(make_x(), batch_size=8, epochs=1, verbose=0, **kwargs)


def test_fit_accepts_a_dataset_batched_without_drop_remainder():
    model = make_model()
    dataset = tf.data.Dataset.from_tensor_slices(random_images(8, IMAGE_SHAPE)).batch(4)
    history = model.fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_fit_rejects_a_dataset_of_the_wrong_image_size():
    model = make_model()
    dataset = tf.data.Dataset.from_tensor_slices(random_images(8, (20, 20, 1))).batch(
        4, drop_remainder=True
    )
    with pytest.raises(ValueError, match=r"size \(16, 16\).*\(4, 20, 20, 1\)"):
        model.fit(dataset, epochs=0, verbose=0)  # the checks run before any epoch


def test_compile_refuses_a_loss():
    model = make_model()
    with pytest.raises(ValueError, match=r"computes its own loss.*Received: loss='mse'"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"Received: metrics=\['accuracy'\]"):
        model.compile(optimizer="sgd", metrics=["accuracy"])


@pytest.mark.parametrize(
    "images, match",
    [
        (
            random_images(4, IMAGE_SHAPE)[..., 0],
            r"`x` must be a batch of images.*\(4, 16, 16\)",
        ),
        (random_images(4, (16, 16, 3)), r"`x` must have 1 channels.*\(4, 16, 16, 3\)"),
    ],
    ids=["rank", "channels"],
)
def test_predict_rejects_bad_shapes(images, match):
    model = make_model()
    with pytest.raises(ValueError, match=match):
        model.predict(images, verbose=0)


@pytest.mark.parametrize(
    "images, error, match",
    [
        (random_images(4, (20, 20, 1)), ValueError, r"size \(16, 16\).*\(4, 20, 20, 1\)"),
        (_nan_images(), ValueError, r"`x` contains NaN"),
        (random_images(4, IMAGE_SHAPE).astype(str), TypeError, r"`x` must be uint8 or float"),
    ],
    ids=["size", "nan", "strings"],
)
def test_predict_rejects_bad_values(images, error, match):
    model = make_model()
    with pytest.raises(error, match=match):
        model.predict(images, verbose=0)


def test_predict_rejects_an_unbatched_dataset():
    model = make_model()
    dataset = tf.data.Dataset.from_tensor_slices(random_images(4, IMAGE_SHAPE))
    with pytest.raises(ValueError, match=r"batch it first"):
        model.predict(dataset, verbose=0)


def test_constructor_rejects_bad_arguments():
    encoder = tiny_encoder(IMAGE_SHAPE)
    for temperature in (0, -0.5):
        with pytest.raises(
            ValueError, match=rf"`temperature`.*Received: temperature={temperature}"
        ):
            ks.SimCLR(encoder, temperature=temperature)
    for temperature in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"`temperature`"):
            ks.SimCLR(encoder, temperature=temperature)
    with pytest.raises(TypeError, match=r"`temperature`.*Received: temperature='0.5'"):
        ks.SimCLR(encoder, temperature="0.5")
    with pytest.raises(ValueError, match=r"`projection_dims`.*Received: projection_dims=\(\)"):
        ks.SimCLR(encoder, projection_dims=())
    with pytest.raises(TypeError, match=r"`augmenter` must be a keras.layers.Layer"):
        ks.SimCLR(encoder, augmenter=lambda images: images)
    with pytest.raises(TypeError, match=r"`encoder` must be a keras.Model"):
        ks.SimCLR(keras.layers.Dense(4))
    inputs = keras.Input((None, None, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match=r"any size.*image_size=\(height, width\).*None, 1\)"):
        ks.SimCLR(keras.Model(inputs, pooled))
    with pytest.raises(ValueError, match=r"`image_size` must match.*\(16, 16\).*=\(8, 8\)"):
        ks.SimCLR(encoder, image_size=(8, 8))
    with pytest.raises(ValueError, match=r"`image_size` must be \(height, width\).*=\(0, 4\)"):
        ks.SimCLR(keras.Model(inputs, pooled), image_size=(0, 4))


def test_numpy_float_temperature_is_accepted():
    model = ks.SimCLR(
        tiny_encoder(IMAGE_SHAPE), projection_dims=(8, 4), temperature=np.float32(0.2)
    )
    assert isinstance(model.temperature, float)
    assert abs(model.temperature - 0.2) < 1e-6


# ---------------------------------------------------------------------------------------
# Learning (slow)
# ---------------------------------------------------------------------------------------


def small_fashion_encoder(width=16):
    """Three conv-BN-ReLU layers (28 -> 14 -> 7 pixels) and global pooling: 4 * width features."""
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for index, filters in enumerate((width, 2 * width, 4 * width)):
        strides = 1 if index == 0 else 2
        x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="small")


@pytest.mark.slow
@in_replica_process
def test_simclr_learns_fashion_mnist_features():
    """300 steps on 2,000 images lower the loss and raise kNN accuracy above random init."""
    train_images, train_labels = ks.datasets.load_arrays("fashion_mnist", "train[:2000]")
    test_images, test_labels = ks.datasets.load_arrays("fashion_mnist", "test[:2000]")
    augmenter = augment.simclr_augmenter(
        28, channels=1, strength=0.5, crop_area=(0.25, 1.0), seed=0
    )
    model = ks.SimCLR(small_fashion_encoder(), augmenter, projection_dims=(64, 32), temperature=0.2)
    model.compile(optimizer=keras.optimizers.Adam(4e-3))

    def knn():
        return ks.evaluation.knn_accuracy(
            model,
            (train_images, train_labels),
            (test_images, test_labels),
            k=20,
            batch_size=500,
            progress=False,
        )

    before = knn()
    dataset = (
        tf.data.Dataset.from_tensor_slices(train_images)
        .shuffle(2000, seed=0)
        .repeat()
        .batch(128, drop_remainder=True)
    )
    history = model.fit(dataset, steps_per_epoch=60, epochs=5, verbose=0).history
    after = knn()
    assert history["loss"][-1] < history["loss"][0] - 0.5, history["loss"]
    assert history["contrastive_accuracy"][-1] > history["contrastive_accuracy"][0] + 0.1
    # Seeds 0-5 gave +0.045 to +0.133 (random init: 0.59-0.69, trained: 0.71-0.73).
    assert after > before + 0.025, (before, after)
