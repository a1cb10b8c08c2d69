"""Tests of `SimCLRAugmenter` and the crop: value range, per-image randomness, crop statistics
against the analytic Inception-crop distribution, probabilities, blur against scipy, config,
errors and per-replica randomness under MirroredStrategy. The operations alone are tested in
test_augment_ops.py, the recipes in test_augment_recipes.py."""

import json
import math
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images

from keras_siamese import augment
from keras_siamese.augment import SimCLRAugmenter, random_resized_crop

LOG_ASPECT = (math.log(3 / 4), math.log(4 / 3))
# Switches every random operation off except the ones a test turns back on.
NOTHING = dict(crop_area=(1.0, 1.0), flip=False, jitter_probability=0.0, grayscale_probability=0.0)


def ramp_images(count, size=32):
    """Float [0, 255] images whose channels hold the row (0) and column (1) coordinate.

    Bilinear resampling of a linear ramp is exact, so the first and last output pixels of a
    crop give its box in relative coordinates: `[y0, x0, y1, x1]`.
    """
    coordinates = np.linspace(0.0, 255.0, size, dtype="float32")
    image = np.zeros((size, size, 3), "float32")
    image[..., 0] = coordinates[:, None]
    image[..., 1] = coordinates[None, :]
    return np.repeat(image[None], count, axis=0)


def boxes_from_ramp_views(views):
    """Recovers `(boxes, flipped)` from augmented `ramp_images` (no colour operations)."""
    views = np.asarray(views, dtype="float64")
    y0, y1 = views[:, 0, 0, 0], views[:, -1, 0, 0]
    left, right = views[:, 0, 0, 1], views[:, 0, -1, 1]
    flipped = left > right
    x0, x1 = np.minimum(left, right), np.maximum(left, right)
    return np.stack([y0, x0, y1, x1], axis=1), flipped


def analytic_inception_crop_mean_area(area, log_aspect, tries=10):
    """Mean area fraction of the Inception crop on a square image, by numerical integration.

    A try draws area `a ~ U(area)` and log-aspect `l ~ U(log_aspect)`; the box (width
    `sqrt(a e^l)`, height `sqrt(a e^-l)`) fits iff `a <= min(e^l, e^-l)`. The first fitting
    try of `tries` is kept, else the whole image (area 1).
    """
    low, high = log_aspect
    a = np.linspace(area[0], area[1], 200_001)
    # P(fit | a): the fraction of [low, high] where |l| <= -log(a).
    bound = -np.log(a)
    fit_given_a = np.clip(np.minimum(bound, high) - np.maximum(-bound, low), 0.0, None) / (
        high - low
    )
    # Means over the uniform grid are the integrals divided by the length of `area`.
    p_fit = fit_given_a.mean()
    mean_area_given_fit = (a * fit_given_a).mean() / p_fit
    p_fallback = (1.0 - p_fit) ** tries
    return (1.0 - p_fallback) * mean_area_given_fit + p_fallback * 1.0


def analytic_inception_crop_cdfs(area, log_aspect, tries=10):
    """The Inception crop on a square image, analytically: (P(fallback), area CDF, log-aspect CDF).

    Given that a try fits, its area has density proportional to P(fit | a) (uniform prior)
    and its log aspect density proportional to P(fit | l) = P(a <= exp(-|l|)). The CDFs are
    of the kept box given that some try fitted (the fallback keeps the whole image).
    """
    low, high = log_aspect
    grid_a = np.linspace(area[0], area[1], 100_001)
    bound = -np.log(grid_a)
    fit_given_a = np.clip(np.minimum(bound, high) - np.maximum(-bound, low), 0.0, None) / (
        high - low
    )
    p_fit = fit_given_a.mean()
    area_cdf = np.cumsum(fit_given_a) / fit_given_a.sum()
    grid_l = np.linspace(low, high, 100_001)
    fit_given_l = np.clip((np.exp(-np.abs(grid_l)) - area[0]) / (area[1] - area[0]), 0.0, 1.0)
    aspect_cdf = np.cumsum(fit_given_l) / fit_given_l.sum()
    return (
        (1.0 - p_fit) ** tries,
        lambda x: np.interp(x, grid_a, area_cdf),
        lambda x: np.interp(x, grid_l, aspect_cdf),
    )


# ---------------------------------------------------------------------------------------
# Output format and value range
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("blur", [False, True])
def test_output_dtype_range_and_shape(channels, blur):
    layer = SimCLRAugmenter((12, 10), channels=channels, blur=blur, blur_probability=1.0, seed=1)
    images = random_images(6, (16, 16, channels))
    views = layer(images, training=True)
    assert views.dtype == tf.float32
    assert tuple(views.shape) == (6, 12, 10, channels)
    assert layer.compute_output_shape((6, 16, 16, channels)) == (6, 12, 10, channels)
    values = views.numpy()
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert np.all(np.isfinite(values))


def test_uint8_and_float_inputs_give_the_same_views():
    images = random_images(8, (16, 16, 3), seed=3)
    from_uint8 = SimCLRAugmenter(16, seed=7)(images, training=True)
    from_float = SimCLRAugmenter(16, seed=7)(images.astype("float32"), training=True)
    np.testing.assert_allclose(from_uint8.numpy(), from_float.numpy(), atol=1e-6)


def test_same_seed_same_views_other_seed_other_views():
    images = random_images(4, (16, 16, 3))
    first = SimCLRAugmenter(16, seed=5)(images).numpy()
    np.testing.assert_array_equal(SimCLRAugmenter(16, seed=5)(images).numpy(), first)
    assert np.abs(SimCLRAugmenter(16, seed=6)(images).numpy() - first).max() > 0.1


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_training_false_is_a_pure_rescale(dtype):
    layer = SimCLRAugmenter(16, channels=3, blur=True, seed=0)
    images = random_images(5, (16, 16, 3)).astype(dtype)
    expected = images.astype("float64") / 255.0
    for _ in range(2):  # no randomness: the same output every call
        np.testing.assert_allclose(layer(images, training=False).numpy(), expected, atol=1e-6)


def test_training_false_resizes_to_image_size():
    layer = SimCLRAugmenter(8, channels=1)
    images = np.full((2, 16, 16, 1), 51, "uint8")
    views = layer(images, training=False).numpy()
    assert views.shape == (2, 8, 8, 1)
    np.testing.assert_allclose(views, 0.2, atol=1e-6)


# ---------------------------------------------------------------------------------------
# Per-image randomness
# ---------------------------------------------------------------------------------------


def test_views_of_one_image_differ_within_a_batch_and_between_calls():
    layer = SimCLRAugmenter(16, channels=3, seed=2)
    images = np.repeat(random_images(1, (16, 16, 3)), 8, axis=0)
    views = layer(images, training=True).numpy()
    flat = views.reshape(8, -1)
    distances = np.abs(flat[:, None, :] - flat[None, :, :]).max(axis=-1)
    off_diagonal = ~np.eye(8, dtype=bool)
    assert distances[off_diagonal].min() > 1e-3
    again = layer(images, training=True).numpy()
    assert np.abs(again - views).reshape(8, -1).max(axis=1).min() > 1e-3


def test_two_images_in_a_batch_get_different_crops():
    layer = SimCLRAugmenter(32, channels=3, seed=4, **{**NOTHING, "crop_area": (0.08, 1.0)})
    boxes, _ = boxes_from_ramp_views(layer(ramp_images(16), training=True))
    distances = np.abs(boxes[:, None, :] - boxes[None, :, :]).max(axis=-1)
    assert distances[~np.eye(16, dtype=bool)].min() > 1e-4


# ---------------------------------------------------------------------------------------
# Crop boxes
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("aspect_of_image", [1.0, 2.0])
def test_crop_boxes_respect_area_and_aspect_ratio(aspect_of_image):
    boxes = augment.crop_boxes(
        tf.constant([3, 4]), 20_000, (0.08, 1.0), LOG_ASPECT, aspect_of_image
    ).numpy()
    assert boxes.shape == (20_000, 4) and boxes.dtype == np.float32
    y0, x0, y1, x1 = boxes.T
    height, width = y1 - y0, x1 - x0
    assert y0.min() >= 0 and x0.min() >= 0
    assert y1.max() <= 1 + 1e-6 and x1.max() <= 1 + 1e-6
    whole = (height > 1 - 1e-6) & (width > 1 - 1e-6)
    area = height * width
    pixel_aspect = width / height * aspect_of_image
    eps = 1e-5
    assert np.all((area[~whole] >= 0.08 - eps) & (area[~whole] <= 1.0 + eps))
    assert np.all((pixel_aspect[~whole] >= 3 / 4 - eps) & (pixel_aspect[~whole] <= 4 / 3 + eps))


def test_crop_boxes_area_and_aspect_are_uniform_when_every_try_fits():
    stats = pytest.importorskip("scipy.stats")
    # Areas <= 0.5 always fit for aspect ratios in [3/4, 4/3]: the first try is kept, so the
    # area is exactly U(0.1, 0.5) and the log aspect ratio U(log 3/4, log 4/3).
    boxes = augment.crop_boxes(tf.constant([1, 2]), 5_000, (0.1, 0.5), LOG_ASPECT).numpy()
    y0, x0, y1, x1 = boxes.T.astype("float64")
    area, log_aspect = (y1 - y0) * (x1 - x0), np.log((x1 - x0) / (y1 - y0))
    assert stats.kstest(area, stats.uniform(0.1, 0.4).cdf).pvalue > 1e-3
    spread = LOG_ASPECT[1] - LOG_ASPECT[0]
    assert stats.kstest(log_aspect, stats.uniform(LOG_ASPECT[0], spread).cdf).pvalue > 1e-3
    # The offset is uniform over the room left by the box.
    relative_offset = y0 / (1.0 - (y1 - y0))
    assert stats.kstest(relative_offset, stats.uniform(0.0, 1.0).cdf).pvalue > 1e-3


def test_crop_boxes_mean_area_matches_the_inception_crop_distribution():
    boxes = augment.crop_boxes(tf.constant([5, 6]), 40_000, (0.08, 1.0), LOG_ASPECT).numpy()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    expected = analytic_inception_crop_mean_area((0.08, 1.0), LOG_ASPECT)
    # Rejections of large, elongated boxes pull the mean below the untruncated 0.54.
    assert expected < 0.53
    standard_error = area.std() / math.sqrt(len(area))
    assert abs(area.mean() - expected) < 5 * standard_error


def test_crop_boxes_area_and_aspect_follow_the_analytic_distribution():
    """Kolmogorov-Smirnov tests of the kept boxes against the analytic Inception crop."""
    stats = pytest.importorskip("scipy.stats")
    area_range = (0.5, 1.0)  # large areas: many rejected tries and some fallbacks
    boxes = augment.crop_boxes(tf.constant([7, 8]), 20_000, area_range, LOG_ASPECT).numpy()
    y0, x0, y1, x1 = boxes.T.astype("float64")
    height, width = y1 - y0, x1 - x0
    whole = (height > 1 - 1e-6) & (width > 1 - 1e-6)
    p_fallback, area_cdf, aspect_cdf = analytic_inception_crop_cdfs(area_range, LOG_ASPECT)
    # A box fitting exactly (area 1, aspect 1) has probability 0: "whole" means fallback.
    assert abs(whole.mean() - p_fallback) < 5 * math.sqrt(p_fallback * (1 - p_fallback) / 20_000)
    kept_area = (height * width)[~whole]
    kept_log_aspect = np.log(width / height)[~whole]
    assert stats.kstest(kept_area, area_cdf).pvalue > 1e-3
    assert stats.kstest(kept_log_aspect, aspect_cdf).pvalue > 1e-3
    # Control: the untruncated uniform area is rejected.
    uniform = stats.uniform(area_range[0], area_range[1] - area_range[0]).cdf
    assert stats.kstest(kept_area, uniform).pvalue < 1e-6


def test_crop_boxes_fall_back_to_the_whole_image():
    # Area 1 fits only for aspect ratio exactly 1: every try fails.
    boxes = augment.crop_boxes(tf.constant([0, 1]), 64, (1.0, 1.0), LOG_ASPECT).numpy()
    np.testing.assert_allclose(boxes, np.tile([[0.0, 0.0, 1.0, 1.0]], (64, 1)), atol=1e-6)


def test_layer_crops_follow_the_crop_distribution_and_flip_half():
    """The layer's own crops, read back from coordinate-ramp images."""
    switches = {**NOTHING, "crop_area": (0.2, 1.0), "flip": True}
    layer = SimCLRAugmenter(32, channels=3, seed=9, **switches)
    boxes, flipped = boxes_from_ramp_views(layer(ramp_images(4_000), training=True))
    height, width = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    area = height * width
    eps = 1e-4
    assert area.min() >= 0.2 - eps and area.max() <= 1.0 + eps
    aspect = width / height
    assert aspect.min() >= 3 / 4 - eps and aspect.max() <= 4 / 3 + eps
    expected = analytic_inception_crop_mean_area((0.2, 1.0), LOG_ASPECT)
    assert abs(area.mean() - expected) < 5 * area.std() / math.sqrt(len(area))
    # Horizontal flip with p = 0.5: 5 standard deviations of a binomial fraction.
    assert abs(flipped.mean() - 0.5) < 5 * math.sqrt(0.25 / len(flipped))


# ---------------------------------------------------------------------------------------
# Operation probabilities and the 1-channel case
# ---------------------------------------------------------------------------------------


def test_everything_off_returns_the_rescaled_input():
    images = random_images(8, (16, 16, 3))
    views = SimCLRAugmenter(16, channels=3, **NOTHING)(images, training=True)
    np.testing.assert_allclose(views.numpy(), images / 255.0, atol=1e-6)


def test_flip_only_mirrors_columns():
    images = random_images(400, (8, 8, 1))
    views = SimCLRAugmenter(8, channels=1, **{**NOTHING, "flip": True})(images).numpy()
    same = np.all(np.abs(views - images / 255.0) < 1e-6, axis=(1, 2, 3))
    mirrored = np.all(np.abs(views - images[:, :, ::-1] / 255.0) < 1e-6, axis=(1, 2, 3))
    assert np.all(same ^ mirrored)
    assert abs(mirrored.mean() - 0.5) < 5 * math.sqrt(0.25 / 400)


@pytest.mark.parametrize("probability", [0.3, 0.8])
def test_jitter_probability(probability):
    count = 2_000
    images = random_images(count, (8, 8, 1), seed=1)
    layer = SimCLRAugmenter(8, channels=1, **{**NOTHING, "jitter_probability": probability})
    views = layer(images, training=True).numpy()
    changed = np.abs(views - images / 255.0).max(axis=(1, 2, 3)) > 1e-5
    bound = 5 * math.sqrt(probability * (1 - probability) / count)
    assert abs(changed.mean() - probability) < bound


@pytest.mark.parametrize("probability", [0.2, 0.6])
def test_grayscale_probability_and_weights(probability):
    count = 2_000
    images = random_images(count, (6, 6, 3), seed=2)
    layer = SimCLRAugmenter(6, channels=3, **{**NOTHING, "grayscale_probability": probability})
    views = layer(images, training=True).numpy()
    gray = np.all(np.abs(views - views[..., :1]) < 1e-6, axis=(1, 2, 3))
    bound = 5 * math.sqrt(probability * (1 - probability) / count)
    assert abs(gray.mean() - probability) < bound
    # Gray images hold the luma of the input; the others are untouched.
    luma = images.astype("float64") @ np.array([0.2989, 0.5870, 0.1140]) / 255.0
    np.testing.assert_allclose(views[gray][..., 0], luma[gray], atol=1e-5)
    np.testing.assert_allclose(views[~gray], images[~gray] / 255.0, atol=1e-6)


def test_one_channel_images_get_no_grayscale():
    images = random_images(64, (16, 16, 1))
    layer = SimCLRAugmenter(16, channels=1, **{**NOTHING, "grayscale_probability": 1.0})
    np.testing.assert_allclose(layer(images).numpy(), images / 255.0, atol=1e-6)


def test_one_channel_jitter_is_brightness_and_contrast_only():
    # Brightness and contrast are affine per image; with values kept away from 0 and 1 no
    # clipping happens, so every jittered view is an exact affine function of its input.
    images = np.random.default_rng(0).integers(80, 161, (32, 12, 12, 1)).astype("uint8")
    layer = SimCLRAugmenter(12, channels=1, strength=0.5, **{**NOTHING, "jitter_probability": 1.0})
    views = layer(images, training=True).numpy().reshape(32, -1).astype("float64")
    inputs = images.reshape(32, -1) / 255.0
    for source, view in zip(inputs, views, strict=True):
        design = np.stack([source, np.ones_like(source)], axis=1)
        coefficients, *_ = np.linalg.lstsq(design, view, rcond=None)
        np.testing.assert_allclose(design @ coefficients, view, atol=1e-5)
        assert abs(coefficients[0] - 1.0) > 1e-4  # jitter did something


def test_colour_jitter_keeps_range_and_changes_colour_images():
    images = random_images(32, (8, 8, 3), seed=4)
    layer = SimCLRAugmenter(8, channels=3, **{**NOTHING, "jitter_probability": 1.0})
    views = layer(images, training=True).numpy()
    assert views.min() >= 0.0 and views.max() <= 1.0
    assert np.abs(views - images / 255.0).max(axis=(1, 2, 3)).min() > 1e-3


# ---------------------------------------------------------------------------------------
# Gaussian blur
# ---------------------------------------------------------------------------------------


def test_gaussian_blur_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    images = np.random.default_rng(0).uniform(size=(4, 12, 10, 2)).astype("float32")
    sigma = np.array([0.3, 1.0, 1.7, 2.0], "float32")
    kernel_size = 5
    blurred = augment.gaussian_blur(tf.constant(images), tf.constant(sigma), kernel_size).numpy()
    # Under XLA the same sums are written as shifted copies.
    compiled = tf.function(lambda x, s: augment.gaussian_blur(x, s, kernel_size), jit_compile=True)
    blurred_xla = compiled(tf.constant(images), tf.constant(sigma)).numpy()
    expected = np.empty_like(images, dtype="float64")
    for index, image in enumerate(images.astype("float64")):
        # Zero padding ('SAME' convolution), a window of radius 2, normalised over the window.
        rows = ndimage.gaussian_filter1d(
            image, sigma[index], axis=0, mode="constant", radius=kernel_size // 2
        )
        expected[index] = ndimage.gaussian_filter1d(
            rows, sigma[index], axis=1, mode="constant", radius=kernel_size // 2
        )
    np.testing.assert_allclose(blurred, expected, atol=1e-5)
    np.testing.assert_allclose(blurred_xla, expected, atol=1e-5)


def test_blur_probability():
    count = 1_000
    images = random_images(count, (10, 10, 1), seed=5)
    layer = SimCLRAugmenter(10, channels=1, blur=True, blur_probability=0.5, **NOTHING)
    views = layer(images, training=True).numpy()
    blurred = np.abs(views - images / 255.0).max(axis=(1, 2, 3)) > 1e-5
    assert abs(blurred.mean() - 0.5) < 5 * math.sqrt(0.25 / count)


# ---------------------------------------------------------------------------------------
# Symbolic use, config, factories
# ---------------------------------------------------------------------------------------


def test_sequential_with_the_augmenter_builds_symbolically_and_fits():
    layer = SimCLRAugmenter(16, channels=1, seed=1)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            layer,
            keras.layers.Flatten(),
            keras.layers.Dense(256, use_bias=False, kernel_initializer="identity"),
        ]
    )
    assert model.output_shape == (None, 256)
    # Learning rate 0: the Dense stays the identity, so the loss measures the augmentation.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    images = random_images(16, (16, 16, 1))
    targets = images.reshape(16, -1) / 255.0
    history = model.fit(images, targets, batch_size=8, epochs=1, verbose=0)
    assert history.history["loss"][0] > 1e-3  # fit ran the random augmentation
    assert model.evaluate(images, targets, batch_size=8, verbose=0) < 1e-10  # a pure rescale
    inputs = keras.Input((16, 16, 1), dtype="uint8")
    functional = keras.Model(inputs, SimCLRAugmenter((8, 12), channels=1)(inputs))
    assert functional.output_shape == (None, 8, 12, 1)


def test_get_config_round_trip():
    layer = SimCLRAugmenter(
        (12, 16),
        channels=1,
        strength=0.4,
        blur=True,
        crop_area=(0.3, 0.9),
        flip=False,
        jitter_probability=0.7,
        grayscale_probability=0.1,
        blur_probability=0.25,
        solarize_probability=0.3,
        color_jitter=(0.4, 0.4, 0.2, 0.1),
        seed=11,
        name="views",
    )
    config = layer.get_config()
    for key, value in {
        "image_size": (12, 16),
        "channels": 1,
        "strength": 0.4,
        "blur": True,
        "crop_area": (0.3, 0.9),
        "flip": False,
        "jitter_probability": 0.7,
        "grayscale_probability": 0.1,
        "blur_probability": 0.25,
        "solarize_probability": 0.3,
        "color_jitter": (0.4, 0.4, 0.2, 0.1),
        "seed": 11,
        "name": "views",
    }.items():
        assert config[key] == value, key
    clone = SimCLRAugmenter.from_config(config)
    assert clone.get_config() == config
    # Without custom_objects, through the registered name.
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, SimCLRAugmenter)
    assert restored.get_config() == config
    images = random_images(4, (12, 16, 1))
    np.testing.assert_array_equal(restored(images).numpy(), layer(images).numpy())


def test_factories():
    simclr = augment.simclr_augmenter(32, channels=3, strength=0.5, seed=1)
    assert isinstance(simclr, SimCLRAugmenter)
    assert (simclr.image_size, simclr.strength, simclr.blur) == ((32, 32), 0.5, False)
    assert simclr.crop_area == (0.08, 1.0)
    simsiam = augment.simsiam_augmenter(24, channels=1)
    assert (simsiam.image_size, simsiam.channels) == ((24, 24), 1)
    assert (simsiam.crop_area, simsiam.strength) == ((0.2, 1.0), 0.5)
    assert augment.simsiam_augmenter(24, crop_area=(0.5, 1.0)).crop_area == (0.5, 1.0)
    # The old keywords still reach the layer.
    old = augment.simclr_augmenter(28, channels=1, strength=0.3, blur=True, crop_area=(0.25, 1.0))
    assert (old.strength, old.blur, old.crop_area) == (0.3, True, (0.25, 1.0))


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        ({"channels": 0}, ValueError, r"`channels` must be an integer >= 1.*Received: channels=0"),
        ({"channels": True}, TypeError, r"`channels`.*Received: channels=True"),
        ({"crop_area": (0.9, 0.2)}, ValueError, r"`crop_area`.*Received: crop_area=\(0\.9, 0\.2\)"),
        ({"crop_area": (0.0, 1.0)}, ValueError, r"`crop_area`"),
        ({"crop_area": (0.5, 1.5)}, ValueError, r"`crop_area`"),
        ({"crop_area": 0.5}, ValueError, r"`crop_area`.*Received: crop_area=0.5"),
        ({"crop_area": ("a", 1.0)}, TypeError, r"`crop_area` must be a number.*Received"),
        ({"jitter_probability": 1.5}, ValueError, r"`jitter_probability`.*Received: jitter_prob"),
        ({"grayscale_probability": -0.1}, ValueError, r"`grayscale_probability`.*Received"),
        ({"blur_probability": 2}, ValueError, r"`blur_probability`.*Received: blur_probability=2"),
        ({"solarize_probability": 1.1}, ValueError, r"`solarize_probability`.*Received"),
        ({"jitter_probability": "high"}, TypeError, r"`jitter_probability`.*Received"),
        ({"jitter_probability": None}, TypeError, r"`jitter_probability`.*Received"),
        ({"strength": 2.0}, ValueError, r"`strength`.*Received: strength=2.0"),
        ({"strength": "strong"}, TypeError, r"`strength`.*Received: strength='strong'"),
        ({"color_jitter": (0.4, 0.4)}, ValueError, r"`color_jitter` must be 4 amounts.*Received"),
        ({"color_jitter": (0.4, 0.4, 0.4, 0.6)}, ValueError, r"hue amount.*Received"),
        ({"image_size": 0}, ValueError, r"`image_size`.*Received: image_size=0"),
        ({"image_size": (16,)}, ValueError, r"`image_size`.*Received"),
        ({"image_size": (16.0, 16)}, ValueError, r"`image_size`.*Received"),
        ({"image_size": None}, ValueError, r"`image_size`.*Received: image_size=None"),
        ({"image_size": True}, ValueError, r"`image_size`.*Received: image_size=True"),
        ({"blur": "yes"}, TypeError, r"`blur` must be a bool.*Received: blur='yes'"),
        ({"seed": -1}, ValueError, r"`seed`.*Received: seed=-1"),
    ],
)
def test_bad_arguments_raise(arguments, error, match):
    arguments = {"image_size": 16, **arguments}
    with pytest.raises(error, match=match):
        SimCLRAugmenter(**arguments)


def test_bad_images_raise():
    layer = SimCLRAugmenter(16, channels=3)
    with pytest.raises(ValueError, match=r"3 channels.*images.shape=\(2, 16, 16, 1\)"):
        layer(random_images(2, (16, 16, 1)))
    with pytest.raises(ValueError, match=r"batch.*images.shape=\(16, 16, 3\)"):
        layer(random_images(1, (16, 16, 3))[0])
    with pytest.raises(TypeError, match=r"uint8 or float.*images.dtype=string"):
        layer(random_images(2, (16, 16, 3)).astype(str))
    with pytest.raises(TypeError, match=r"images.dtype=bool"):
        layer(random_images(2, (16, 16, 3)) > 100)


# ---------------------------------------------------------------------------------------
# Distribution: each replica draws its own views
# ---------------------------------------------------------------------------------------

REPLICA_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    from scripts.logical_cpus import use_logical_cpus

    use_logical_cpus(2)

    from keras_siamese import distribute
    from keras_siamese.augment import SimCLRAugmenter

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    images = tf.constant(
        np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype("uint8")
    )

    def replica_views():
        with strategy.scope():
            layer = SimCLRAugmenter(16, channels=3, seed=3)
        step = tf.function(lambda x: strategy.run(lambda y: layer(y, training=True), args=(x,)))
        first, second = strategy.experimental_local_results(step(images))
        return float(np.abs(first.numpy() - second.numpy()).max()), first.shape

    def replica_views_array():
        with strategy.scope():
            layer = SimCLRAugmenter(16, channels=3, seed=3)
        step = tf.function(lambda x: strategy.run(lambda y: layer(y, training=True), args=(x,)))
        return np.stack([v.numpy() for v in strategy.experimental_local_results(step(images))])

    difference, shape = replica_views()
    # The same seed gives the same views on each replica.
    reproduced = float(np.abs(replica_views_array() - replica_views_array()).max())
    # Control: without the replica fold-in both replicas draw the same views.
    replica_seed = distribute.replica_seed
    distribute.replica_seed = lambda seed: tf.cast(seed, tf.int32)
    try:
        control, _ = replica_views()
    finally:
        distribute.replica_seed = replica_seed
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "shape": list(shape),
                      "difference": difference, "control": control,
                      "reproduced": reproduced}))
    """
)


@pytest.mark.replica_job("-c", REPLICA_SCRIPT)
def test_replicas_draw_different_views_of_the_same_images(replica_job):
    result = replica_job
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["shape"] == [4, 16, 16, 3]
    assert report["difference"] > 0.1
    assert report["reproduced"] == 0.0
    assert report["control"] == 0.0


@pytest.mark.parametrize("source", [(12, 10), (80, 70)], ids=["matmul", "gather"])
@pytest.mark.parametrize("size", [(16, 16), (7, 5), (1, 3)])
def test_crop_and_resize_xla_formulations_equal_the_tensorflow_kernel(source, size):
    rng = np.random.default_rng(3)
    images = tf.constant(rng.uniform(0, 1, (5, *source, 3)).astype("float32"))
    corners = rng.uniform(0, 1, (5, 4)).astype("float32")
    boxes = np.concatenate(
        [np.minimum(corners[:, :2], corners[:, 2:]), np.maximum(corners[:, :2], corners[:, 2:])],
        axis=1,
    )
    boxes[0] = [0.0, 0.0, 1.0, 1.0]
    expected = tf.image.crop_and_resize(images, boxes, tf.range(5), size)
    formulation = random_resized_crop._crop_and_resize_xla(images, tf.constant(boxes), size)
    np.testing.assert_allclose(formulation.numpy(), expected.numpy(), atol=1e-5)
    # Under XLA the public function takes that path and compiles.
    compiled = tf.function(lambda x, b: augment.crop_and_resize(x, b, size), jit_compile=True)
    # XLA fuses multiply-adds: a few ulps more than the kernel, far below 1/255.
    np.testing.assert_allclose(compiled(images, boxes).numpy(), expected.numpy(), atol=1e-4)
    np.testing.assert_array_equal(augment.crop_and_resize(images, boxes, size), expected)


def test_augmenter_compiles_under_xla():
    augmenter = augment.simclr_augmenter(16, channels=3, blur=True, seed=1)
    images = tf.constant(np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)), tf.uint8)
    views = tf.function(lambda x: augmenter(x, training=True), jit_compile=True)(images)
    assert views.shape == (4, 16, 16, 3)
    assert 0.0 <= float(tf.reduce_min(views)) and float(tf.reduce_max(views)) <= 1.0
