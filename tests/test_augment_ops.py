"""Tests of the augmentation operations one by one: colour operations against `tf.image`, the
per-image random order of the colour jitter, grayscale, solarize, flip, the `RandomApply` gate
(eager, `tf.function`, XLA, `fit`), the channel rules, `Pipeline` with keras-cv and Keras core
layers, configs and argument errors."""

import itertools
import math

import keras
import keras_cv
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images

from keras_siamese import augment
from keras_siamese.augment import random_apply, random_color_jitter


def float_images(count, shape, seed=0, low=0.0, high=1.0):
    return np.random.default_rng(seed).uniform(low, high, (count, *shape)).astype("float32")


def per_image(function, images, values):
    """`function(image, value)` applied image by image (the `tf.image` references)."""
    pairs = zip(images, values, strict=True)
    return np.stack([function(image, float(value)).numpy() for image, value in pairs])


# ---------------------------------------------------------------------------------------
# Colour operations against tf.image, one parameter per image
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_adjust_contrast_equals_tf_image(channels):
    images = float_images(5, (6, 7, channels))
    factors = np.array([0.2, 0.5, 1.0, 1.4, 1.8], "float32")
    expected = per_image(tf.image.adjust_contrast, images, factors)
    actual = augment.adjust_contrast(tf.constant(images), tf.constant(factors))
    np.testing.assert_allclose(actual.numpy(), expected, atol=1e-6)


def test_adjust_brightness_multiplies():
    images = float_images(3, (4, 4, 3))
    factors = np.array([0.5, 1.0, 1.7], "float32")
    actual = augment.adjust_brightness(tf.constant(images), tf.constant(factors)).numpy()
    np.testing.assert_allclose(actual, images * factors[:, None, None, None], rtol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_adjust_saturation_equals_tf_image(scale):
    images = float_images(6, (8, 8, 3), seed=1) * scale
    images[0, 0, 0] = [0.0, 0.0, 0.0]  # black and gray pixels: no hue
    images[0, 0, 1] = [0.3 * scale] * 3
    factors = np.array([0.0, 0.3, 1.0, 1.6, 2.0, 5.0], "float32")
    expected = per_image(tf.image.adjust_saturation, images, factors)
    actual = augment.adjust_saturation(tf.constant(images), tf.constant(factors))
    np.testing.assert_allclose(actual.numpy(), expected, atol=2e-6 * scale)


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_adjust_hue_equals_tf_image(scale):
    images = float_images(6, (8, 8, 3), seed=2) * scale
    deltas = np.array([-0.5, -0.2, 0.0, 0.1, 0.37, 0.5], "float32")
    expected = per_image(tf.image.adjust_hue, images, deltas)
    actual = augment.adjust_hue(tf.constant(images), tf.constant(deltas))
    np.testing.assert_allclose(actual.numpy(), expected, atol=2e-6 * scale)


def test_colour_operations_with_a_shifted_value_range():
    """With `low`, HSV values are measured from `low`: the same as shifting the images."""
    images = float_images(4, (5, 5, 3), seed=3)
    factors = tf.constant([0.5, 1.5, 2.0, 0.1])
    shifted = tf.constant(images - 1.0)  # value range (-1, 0)
    np.testing.assert_allclose(
        augment.adjust_saturation(shifted, factors, low=-1.0).numpy() + 1.0,
        augment.adjust_saturation(tf.constant(images), factors).numpy(),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        augment.adjust_hue(shifted, factors / 10, low=-1.0).numpy() + 1.0,
        augment.adjust_hue(tf.constant(images), factors / 10).numpy(),
        atol=1e-6,
    )


# ---------------------------------------------------------------------------------------
# The random order of the colour jitter
# ---------------------------------------------------------------------------------------


def digit_operations(count):
    """Operations appending their digit: the result spells each image's order in base 10."""
    return [
        lambda x, p, k=k: x * 10.0 + (k + 1) + 0.0 * p[:, None, None, None] for k in range(count)
    ]


@pytest.mark.parametrize("batch", [8, 7, 1])
def test_random_orders_apply_every_operation_once_in_a_permutation(batch):
    count = 4
    blocks = math.ceil(batch / count)
    orders = tf.argsort(tf.random.stateless_uniform([blocks, count], [1, 2]), axis=1)
    ones = [tf.ones([batch])] * count
    result = random_color_jitter.apply_in_random_orders(
        tf.zeros([batch, 1, 1, 1]), digit_operations(count), ones, orders
    )
    spelled = [str(int(value)) for value in result.numpy().ravel()]
    for word in spelled:
        assert sorted(word) == ["1", "2", "3", "4"], spelled
    # Image i follows its block's permutation rotated by i % count.
    for image, word in enumerate(spelled):
        block, shift = divmod(image, count)
        permutation = orders.numpy()[block]
        expected = [permutation[(step + shift) % count] + 1 for step in range(count)]
        assert word == "".join(map(str, expected))


def test_random_orders_route_each_image_its_own_parameters():
    batch, count = 10, 3
    orders = tf.argsort(tf.random.stateless_uniform([4, count], [3, 4]), axis=1)
    parameters = [tf.range(1, batch + 1, dtype=tf.float32) * 10.0**k for k in range(count)]
    operations = [lambda x, p: x + p[:, None, None, None]] * count
    result = random_color_jitter.apply_in_random_orders(
        tf.zeros([batch, 1, 1, 1]), operations, parameters, orders
    )
    expected = np.arange(1, batch + 1) * 111.0
    np.testing.assert_allclose(result.numpy().ravel(), expected)


def test_random_orders_run_each_operation_on_one_image_per_block():
    """Each step computes an operation on `batch / count` images only (static shapes)."""
    sizes = []

    def recording(x, p):
        sizes.append(x.shape[0])
        return x

    orders = tf.argsort(tf.random.stateless_uniform([3, 4], [5, 6]), axis=1)
    images = tf.zeros([12, 2, 2, 3])
    random_color_jitter.apply_in_random_orders(images, [recording] * 4, [tf.ones([12])] * 4, orders)
    assert sizes == [3] * 16  # 4 steps x 4 operations, each on 12 / 4 images


def test_jitter_orders_are_uniform_over_the_permutations():
    stats = pytest.importorskip("scipy.stats")
    batch = 2_400
    layer = augment.RandomColorJitter(0.5, 0.5, 0.5, 0.1, seed=3)
    transformations = layer.get_random_transformation_batch(
        batch, images=tf.zeros([batch, 1, 1, 3])
    )
    blocks = transformations["orders"].numpy()
    assert blocks.shape == (batch // 4, 4)
    orders = [tuple(np.roll(block, -shift)) for block in blocks for shift in range(4)]
    index = {permutation: i for i, permutation in enumerate(itertools.permutations(range(4)))}
    counts = np.bincount([index[order] for order in orders], minlength=24)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_jitter_with_two_fixed_operations_uses_both_orders():
    """Contrast and saturation do not commute: each image shows one order, each about half."""
    count = 400
    images = float_images(count, (4, 4, 3), seed=5, low=0.2, high=0.8)
    layer = augment.RandomColorJitter(
        contrast=(0.5, 0.5), saturation=(2.0, 2.0), value_range=(0, 1), seed=1
    )
    views = layer(images, training=True).numpy()

    def contrast(x):
        return np.clip(tf.image.adjust_contrast(x, 0.5).numpy(), 0, 1)

    def saturation(x):
        return np.clip(tf.image.adjust_saturation(x, 2.0).numpy(), 0, 1)

    first = saturation(contrast(images))
    second = contrast(saturation(images))
    is_first = np.abs(views - first).max(axis=(1, 2, 3)) < 1e-5
    is_second = np.abs(views - second).max(axis=(1, 2, 3)) < 1e-5
    assert np.all(is_first ^ is_second)
    assert abs(is_first.mean() - 0.5) < 5 * math.sqrt(0.25 / count)


def test_jitter_single_fixed_operation_and_clipping():
    images = float_images(4, (3, 3, 3), seed=6, high=255.0)
    views = augment.RandomColorJitter(brightness=(1.5, 1.5), seed=0)(images).numpy()
    np.testing.assert_allclose(views, np.clip(images * 1.5, 0, 255), rtol=1e-6)


@pytest.mark.parametrize("channels", [1, 2, 4, 13])
def test_jitter_on_non_rgb_images_is_brightness_and_contrast(channels):
    layer = augment.RandomColorJitter(saturation=0.8, hue=0.5, seed=0)
    assert layer.operations(channels) == ()
    images = random_images(6, (5, 5, channels))
    np.testing.assert_allclose(layer(images).numpy(), images, atol=1e-4)
    assert augment.RandomColorJitter(0.4, 0.4, 0.4, 0.1).operations(channels) == (
        "brightness",
        "contrast",
    )
    jittered = augment.RandomColorJitter(0.4, 0.4, 0.4, 0.1, seed=0)(images).numpy()
    assert jittered.shape == images.shape
    assert np.abs(jittered - images).max() > 1.0


def test_jitter_changes_each_rgb_image_and_keeps_the_range():
    images = random_images(24, (8, 8, 3), seed=4)
    views = augment.RandomColorJitter(0.8, 0.8, 0.8, 0.2, seed=0)(images).numpy()
    assert views.min() >= 0.0 and views.max() <= 255.0
    assert np.abs(views - images).max(axis=(1, 2, 3)).min() > 0.5


# ---------------------------------------------------------------------------------------
# Grayscale, solarize, flip, unit range
# ---------------------------------------------------------------------------------------


def test_grayscale_equals_tf_image_and_keras_cv():
    images = random_images(4, (6, 6, 3)).astype("float32")
    expected = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(images)).numpy()
    actual = augment.Grayscale()(images).numpy()
    np.testing.assert_allclose(actual, expected, atol=1e-4)
    keras_cv_gray = keras_cv.layers.Grayscale(output_channels=3)(images).numpy()
    np.testing.assert_allclose(actual, keras_cv_gray, atol=1e-4)


@pytest.mark.parametrize("channels", [1, 2, 4, 13])
def test_grayscale_leaves_other_channel_counts_unchanged(channels):
    images = random_images(3, (4, 4, channels))
    np.testing.assert_array_equal(augment.Grayscale()(images).numpy(), images)


def test_solarize():
    images = np.array([0.0, 100.0, 127.4, 127.5, 200.0, 255.0], "float32").reshape(1, 1, 6, 1)
    expected = [0.0, 100.0, 127.4, 127.5, 55.0, 0.0]
    np.testing.assert_allclose(augment.Solarize()(images).numpy().ravel(), expected, atol=1e-5)
    unit = augment.Solarize(threshold=0.25, value_range=(0, 1))(images / 255.0).numpy().ravel()
    expected = [0.0, 1 - 100 / 255, 1 - 127.4 / 255, 0.5, 55 / 255, 0.0]
    np.testing.assert_allclose(unit, expected, atol=1e-6)


def test_flip_mirrors_half_of_the_images():
    count = 400
    images = random_images(count, (5, 5, 2))
    views = augment.RandomFlip(seed=2)(images).numpy()
    same = np.all(views == images, axis=(1, 2, 3))
    mirrored = np.all(views == images[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(same ^ mirrored)
    assert abs(mirrored.mean() - 0.5) < 5 * math.sqrt(0.25 / count)
    np.testing.assert_array_equal(augment.RandomFlip(seed=2)(images, training=False), images)


def test_to_unit_range():
    images = np.array([0, 51, 255], "uint8").reshape(1, 1, 3, 1)
    for training in (True, False):
        views = augment.ToUnitRange()(images, training=training)
        assert views.dtype == tf.float32
        np.testing.assert_allclose(views.numpy().ravel(), [0.0, 0.2, 1.0], atol=1e-7)
    shifted = augment.ToUnitRange(value_range=(-1, 1))(np.array([[[[-2.0, 0.0, 1.0]]]]))
    np.testing.assert_allclose(shifted.numpy().ravel(), [0.0, 0.5, 1.0])


def test_random_layers_keep_the_value_range_and_dtype_of_keras_cv():
    """Our layers accept what keras-cv layers accept: a single image and dict inputs."""
    image = random_images(1, (8, 8, 3))[0]
    assert augment.RandomFlip(seed=0)(image).shape == (8, 8, 3)
    inputs = {"images": random_images(2, (8, 8, 3)), "labels": np.array([1, 2])}
    outputs = augment.RandomColorJitter(0.4, seed=0)(inputs)
    np.testing.assert_array_equal(outputs["labels"], [1, 2])
    assert outputs["images"].dtype == tf.float32


# ---------------------------------------------------------------------------------------
# RandomApply: the per-image gate
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_random_apply_gate_probability_and_pass_through(mode):
    count, probability = 2_000, 0.3
    images = random_images(count, (2, 2, 1), seed=1).astype("float32")
    layer = augment.RandomApply(augment.Solarize(threshold=0.0), probability, seed=4)
    call = {
        "eager": lambda x: layer(x, training=True),
        "graph": tf.function(lambda x: layer(x, training=True)),
        "xla": tf.function(lambda x: layer(x, training=True), jit_compile=True),
    }[mode]
    views = call(tf.constant(images)).numpy()
    applied = np.all(np.abs(views - (255.0 - images)) < 1e-4, axis=(1, 2, 3))
    untouched = np.all(views == images, axis=(1, 2, 3))
    assert np.all(applied | untouched)
    assert abs(applied.mean() - probability) < 5 * math.sqrt(0.3 * 0.7 / count)


def test_random_apply_gathered_and_masked_paths_agree(monkeypatch):
    """Outside XLA the layer runs on the drawn images only; the masked path gives the same."""
    images = tf.constant(random_images(64, (4, 4, 3), seed=2).astype("float32"))
    layers = [augment.RandomApply(augment.Grayscale(), 0.5, seed=9) for _ in range(2)]
    gathered = tf.function(lambda x: layers[0](x, training=True))(images).numpy()
    monkeypatch.setattr(random_apply, "in_xla_context", lambda: True)
    masked = tf.function(lambda x: layers[1](x, training=True))(images).numpy()
    np.testing.assert_array_equal(gathered, masked)
    gray = np.all(gathered == gathered[..., :1], axis=(1, 2, 3))
    assert 0 < gray.sum() < 64


def test_random_apply_probabilities_zero_and_one():
    images = random_images(8, (4, 4, 3)).astype("float32")

    class Failing(keras.layers.Layer):
        def call(self, inputs):
            raise AssertionError("probability 0 must not call the layer")

    np.testing.assert_array_equal(augment.RandomApply(Failing(), 0.0)(images).numpy(), images)
    always = augment.RandomApply(augment.Solarize(threshold=0.0), 1.0)(images).numpy()
    np.testing.assert_allclose(always, 255.0 - images)
    gated = augment.RandomApply(augment.Solarize(threshold=0.0), 1.0)
    np.testing.assert_array_equal(gated(images, training=False).numpy(), images)


def test_random_apply_trains_inside_fit():
    """keras-cv's RandomApply fails here (a Python bool of a symbolic tensor)."""
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            augment.RandomApply(keras_cv.layers.Grayscale(output_channels=3), 0.5, seed=1),
            augment.RandomApply(augment.RandomColorJitter(0.4, 0.4, 0.4, 0.1, seed=2), 0.8),
            keras.layers.Flatten(),
            keras.layers.Dense(2),
        ]
    )
    model.compile(optimizer="sgd", loss="mse")
    images = random_images(16, (8, 8, 3)).astype("float32") / 255.0
    history = model.fit(images, np.zeros((16, 2)), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_random_apply_refuses_shape_changing_layers():
    layer = augment.RandomApply(augment.RandomResizedCrop(4), 0.5, seed=0)
    with pytest.raises(ValueError, match=r"must keep the image shape"):
        layer(random_images(4, (8, 8, 3)))


# ---------------------------------------------------------------------------------------
# Pipelines mixing our layers with keras-cv and Keras core
# ---------------------------------------------------------------------------------------


def test_keras_cv_pipeline_with_our_gate_and_rand_augment_in_a_tf_function():
    pipeline = augment.Pipeline(
        [
            augment.RandomResizedCrop(16, seed=0),
            keras_cv.layers.RandomFlip("horizontal"),
            augment.RandomApply(keras_cv.layers.Grayscale(output_channels=3), 0.5, seed=1),
            keras_cv.layers.RandAugment(value_range=(0, 255), augmentations_per_image=1),
            augment.ToUnitRange(),
        ]
    )
    images = tf.constant(random_images(4, (20, 20, 3)))
    views = tf.function(lambda x: pipeline(x, training=True))(images).numpy()
    assert views.shape == (4, 16, 16, 3)
    assert views.min() >= 0.0 and views.max() <= 1.0


def test_keras_core_pipeline_in_a_tf_function():
    pipeline = augment.Pipeline(
        [
            keras.layers.RandomFlip("horizontal"),
            augment.RandomApply(keras.layers.RandomContrast(0.3), 0.5, seed=2),
            keras.layers.RandomRotation(0.1),
            keras.layers.Rescaling(1 / 255),
        ]
    )
    images = tf.constant(random_images(4, (16, 16, 3)).astype("float32"))
    views = tf.function(lambda x: pipeline(x, training=True))(images).numpy()
    assert views.shape == (4, 16, 16, 3)
    assert views.max() <= 1.0 + 1e-6
    assert pipeline.compute_output_shape((None, 16, 16, 3)) == (None, 16, 16, 3)


def test_pipeline_symbolic_output_shape_and_round_trip():
    pipeline = augment.Pipeline(
        [
            augment.RandomResizedCrop((8, 6), seed=1),
            augment.RandomFlip(seed=2),
            augment.ToUnitRange(),
        ]
    )
    inputs = keras.Input((16, 16, 3), dtype="uint8")
    assert pipeline(inputs).shape == (None, 8, 6, 3)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(pipeline))
    assert [type(layer) for layer in restored.layers] == [type(layer) for layer in pipeline.layers]
    images = random_images(4, (16, 16, 3))
    np.testing.assert_array_equal(restored(images).numpy(), pipeline(images).numpy())


# ---------------------------------------------------------------------------------------
# Configs and errors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer",
    [
        augment.RandomResizedCrop((8, 6), crop_area=(0.2, 0.9), aspect_ratio=(0.5, 2.0), seed=1),
        augment.RandomFlip(probability=0.3, seed=2),
        augment.RandomColorJitter(0.1, (0.5, 1.5), 0.3, (-0.1, 0.2), value_range=(0, 1), seed=3),
        augment.Grayscale(),
        augment.RandomGaussianBlur(5, sigma=(0.5, 1.0), seed=4),
        augment.Solarize(threshold=0.3, value_range=(0, 1)),
        augment.ToUnitRange(value_range=(-1, 1)),
        augment.RandomApply(augment.Grayscale(), 0.25, seed=5),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_every_layer_round_trips_through_its_registered_name(layer):
    config = layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == config
    name = keras.saving.get_registered_name(type(layer))
    assert name == f"keras_siamese>{type(layer).__name__}"
    images = random_images(4, (8, 8, 3))
    np.testing.assert_allclose(restored(images).numpy(), layer(images).numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: augment.RandomResizedCrop(0), ValueError, r"`image_size`.*Received: image_size=0"),
        (lambda: augment.RandomResizedCrop(8, aspect_ratio=(2, 1)), ValueError, r"`aspect_ratio`"),
        (lambda: augment.RandomFlip(probability=1.5), ValueError, r"`probability`.*Received"),
        (lambda: augment.RandomColorJitter(-0.1), ValueError, r"`brightness`.*Received"),
        (lambda: augment.RandomColorJitter(hue=0.7), ValueError, r"`hue`.*Received: hue=0.7"),
        (lambda: augment.RandomColorJitter(contrast="a"), TypeError, r"`contrast`.*Received"),
        (lambda: augment.RandomColorJitter(value_range=(1, 0)), ValueError, r"`value_range`"),
        (lambda: augment.RandomGaussianBlur(4), ValueError, r"`kernel_size` must be odd"),
        (lambda: augment.RandomGaussianBlur(3, sigma=(0, 1)), ValueError, r"`sigma`"),
        (lambda: augment.Solarize(threshold=2), ValueError, r"`threshold`.*Received"),
        (lambda: augment.RandomApply("gray"), TypeError, r"`layer` must be a keras.layers.Layer"),
        (lambda: augment.RandomApply(augment.Grayscale(), 2), ValueError, r"`probability`"),
        (lambda: augment.RandomFlip(seed=1.5), TypeError, r"`seed`.*Received: seed=1.5"),
        (lambda: augment.Pipeline([]), ValueError, r"`layers` must be a non-empty list"),
        (lambda: augment.Pipeline([augment.Grayscale(), "x"]), TypeError, r"layers\[1\]='x'"),
    ],
)
def test_bad_arguments_raise(build, error, match):
    with pytest.raises(error, match=match):
        build()
