"""Tests of the recipes (SimCLR, SimSiam, BYOL pair, multi-crop): their parameters, per-image
independence, seeds, XLA compilation, `.keras` round trips, and the view checks a model runs
on its first batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import random_images

from keras_siamese import augment
from keras_siamese.augment import MultiCrop, SimCLRAugmenter


def layer_types(augmenter):
    """The operation classes of a recipe, gates unwrapped: ['RandomResizedCrop', ...]."""
    names = []
    for layer in augmenter.layers:
        inner = getattr(layer, "layer", None)
        names.append(type(inner or layer).__name__)
    return names


def max_differences(views):
    flat = np.asarray(views).reshape(len(views), -1)
    distances = np.abs(flat[:, None, :] - flat[None, :, :]).max(axis=-1)
    return distances[~np.eye(len(views), dtype=bool)]


# ---------------------------------------------------------------------------------------
# The recipes' parameters
# ---------------------------------------------------------------------------------------


def test_simclr_recipe_defaults_follow_the_paper():
    large = augment.simclr_augmenter(224)
    assert isinstance(large, SimCLRAugmenter)
    assert (large.strength, large.blur, large.blur_probability) == (1.0, True, 0.5)
    assert (large.crop_area, large.jitter_probability, large.grayscale_probability) == (
        (0.08, 1.0),
        0.8,
        0.2,
    )
    assert layer_types(large) == [
        "RandomResizedCrop",
        "RandomFlip",
        "RandomColorJitter",
        "Grayscale",
        "RandomGaussianBlur",
        "ToUnitRange",
    ]
    jitter = large.layers[2].layer
    assert jitter.brightness == pytest.approx((0.2, 1.8)) and jitter.hue == (-0.2, 0.2)
    assert large.layers[4].layer.kernel_size == 23  # 10% of 224, odd
    small = augment.simclr_augmenter(32, strength=0.5)
    assert small.blur is False and "RandomGaussianBlur" not in layer_types(small)


def test_simsiam_recipe_blurs_large_images_by_default():
    large = augment.simsiam_augmenter(224)
    assert (large.blur, large.blur_probability, large.strength, large.crop_area) == (
        True,
        0.5,
        0.5,
        (0.2, 1.0),
    )
    jitter = large.layers[2].layer
    assert (jitter.brightness, jitter.saturation, jitter.hue) == (
        (0.6, 1.4),
        (0.6, 1.4),
        (-0.1, 0.1),
    )
    assert augment.simsiam_augmenter(28, channels=1).blur is False
    assert augment.simsiam_augmenter(28, channels=1, blur=True).blur is True
    assert augment.simsiam_augmenter(224, blur=False).blur is False


def test_byol_recipe_is_an_asymmetric_pair():
    view_a, view_b = augment.byol_augmenters(96, seed=3)
    assert (view_a.blur_probability, view_b.blur_probability) == (1.0, 0.1)
    assert (view_a.solarize_probability, view_b.solarize_probability) == (0.0, 0.2)
    assert view_a.color_jitter == view_b.color_jitter == (0.4, 0.4, 0.2, 0.1)
    assert "Solarize" not in layer_types(view_a) and "Solarize" in layer_types(view_b)
    assert view_a.seed != view_b.seed
    images = random_images(4, (96, 96, 3))
    assert np.abs(view_a(images).numpy() - view_b(images).numpy()).max() > 0.1


def test_multi_crop_recipe_returns_global_then_local_views():
    crops = augment.multi_crop_augmenter(32, 16, local_views=3, seed=1)
    assert isinstance(crops, MultiCrop)
    assert (crops.global_views, crops.local_views, crops.num_views) == (2, 3, 5)
    assert crops.global_augmenter.image_size == (32, 32)
    assert crops.local_augmenter.image_size == (16, 16)
    assert crops.global_augmenter.crop_area == (0.14, 1.0)
    assert crops.local_augmenter.crop_area == (0.05, 0.14)
    images = random_images(4, (40, 40, 3))
    views = crops(images)
    assert isinstance(views, list)
    assert [tuple(view.shape) for view in views] == [(4, 32, 32, 3)] * 2 + [(4, 16, 16, 3)] * 3
    assert all(view.dtype == tf.float32 for view in views)
    assert all(0.0 <= float(tf.reduce_min(v)) and float(tf.reduce_max(v)) <= 1.0 for v in views)
    # Every view of an image is drawn independently.
    assert max_differences([view.numpy()[0] for view in views[:2]]).min() > 1e-3
    assert max_differences([view.numpy()[0] for view in views[2:]]).min() > 1e-3
    # Deterministic views in inference, with the same structure.
    inference = crops(images, training=False)
    assert [tuple(v.shape) for v in inference] == [tuple(v.shape) for v in views]
    np.testing.assert_array_equal(inference[0].numpy(), inference[1].numpy())
    assert crops.compute_output_shape((None, 40, 40, 3)) == (
        [(None, 32, 32, 3)] * 2 + [(None, 16, 16, 3)] * 3
    )


def test_multi_crop_without_local_views_and_dino_parameters():
    dino = augment.multi_crop_augmenter(
        32,
        16,
        local_views=8,
        global_crop_area=(0.4, 1.0),
        local_crop_area=(0.05, 0.4),
        color_jitter=(0.4, 0.4, 0.2, 0.1),
    )
    assert dino.local_views == 8 and dino.local_augmenter.crop_area == (0.05, 0.4)
    # The models' call: the local size follows SwAV's 96/224.
    default = augment.multi_crop_augmenter((28, 28), channels=1)
    assert default.local_augmenter.image_size == (12, 12) and default.local_views == 6
    assert augment.multi_crop_augmenter(224).local_augmenter.image_size == (96, 96)
    only_global = MultiCrop(augment.simclr_augmenter(16, seed=0), global_views=3)
    assert len(only_global(random_images(2, (16, 16, 3)))) == 3


@pytest.mark.parametrize("channels", [1, 4, 13])
def test_recipes_work_for_any_channel_count(channels):
    images = random_images(4, (16, 16, channels))
    for augmenter in (
        augment.simclr_augmenter(16, channels=channels, blur=True, seed=0),
        augment.byol_augmenters(16, channels=channels, blur=True, seed=0)[1],
    ):
        views = augmenter(images).numpy()
        assert views.shape == (4, 16, 16, channels)
        assert 0.0 <= views.min() and views.max() <= 1.0
        assert "Grayscale" not in layer_types(augmenter)


# ---------------------------------------------------------------------------------------
# Independence and seeds
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: augment.simclr_augmenter(16, seed=1),
        lambda: augment.simsiam_augmenter(16, blur=True, seed=1),
        lambda: augment.byol_augmenters(16, blur=True, seed=1)[1],
    ],
    ids=["simclr", "simsiam", "byol_b"],
)
def test_sixteen_identical_images_give_sixteen_different_views(make):
    images = np.repeat(random_images(1, (16, 16, 3)), 16, axis=0)
    views = make()(images).numpy()
    assert max_differences(views).min() > 1e-3


def test_same_seed_same_views_other_seed_other_views():
    images = random_images(8, (16, 16, 3))
    first = augment.simclr_augmenter(16, blur=True, seed=5)(images).numpy()
    again = augment.simclr_augmenter(16, blur=True, seed=5)(images).numpy()
    other = augment.simclr_augmenter(16, blur=True, seed=6)(images).numpy()
    np.testing.assert_array_equal(first, again)
    assert np.abs(other - first).max() > 0.1
    crops = [augment.multi_crop_augmenter(16, 8, local_views=2, seed=4) for _ in range(2)]
    for left, right in zip(crops[0](images), crops[1](images), strict=True):
        np.testing.assert_array_equal(left.numpy(), right.numpy())


# ---------------------------------------------------------------------------------------
# XLA
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: augment.byol_augmenters(16, blur=True, seed=1)[1],
        lambda: augment.multi_crop_augmenter(16, 8, local_views=2, seed=1),
    ],
    ids=["byol_solarize", "multi_crop"],
)
def test_default_recipes_compile_under_xla(make):
    """SimCLR's recipe with blur: test_augment.py::test_augmenter_compiles_under_xla."""
    augmenter = make()
    images = tf.constant(random_images(4, (20, 20, 3)))
    outputs = tf.function(lambda x: augmenter(x, training=True), jit_compile=True)(images)
    for views in outputs if isinstance(outputs, list) else [outputs]:
        assert views.dtype == tf.float32 and views.shape[0] == 4
        assert 0.0 <= float(tf.reduce_min(views)) and float(tf.reduce_max(views)) <= 1.0


# ---------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: augment.simclr_augmenter(16, strength=0.5, blur=True, seed=2),
        lambda: augment.simsiam_augmenter(16, channels=1, seed=2),
        lambda: augment.byol_augmenters(16, seed=2)[1],
        lambda: augment.multi_crop_augmenter(16, 8, local_views=2, seed=2),
    ],
    ids=["simclr", "simsiam", "byol_b", "multi_crop"],
)
def test_recipes_round_trip_through_keras_files(make, tmp_path):
    augmenter = make()
    channels = getattr(augmenter, "channels", 3)
    images = random_images(4, (16, 16, channels))
    augmenter(images)  # advance the random stream: the file keeps its state
    inputs = keras.Input((16, 16, channels), dtype="uint8")
    model = keras.Model(inputs, augmenter(inputs))
    path = str(tmp_path / "augmenter.keras")
    model.save(path)
    restored = keras.saving.load_model(path).layers[-1]  # no custom_objects
    assert type(restored) is type(augmenter)
    assert without_build(restored.get_config()) == without_build(augmenter.get_config())
    expected, actual = augmenter(images), restored(images)  # the same next draw
    for left, right in zip(tree_list(expected), tree_list(actual), strict=True):
        np.testing.assert_allclose(left.numpy(), right.numpy(), atol=1e-6)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(augmenter))
    assert without_build(clone.get_config()) == without_build(augmenter.get_config())


def tree_list(outputs):
    return outputs if isinstance(outputs, list) else [outputs]


def without_build(config):
    """A config without the nested layers' `build_config` (the shapes they were built for)."""
    if isinstance(config, dict):
        return {k: without_build(v) for k, v in config.items() if k != "build_config"}
    return config


# ---------------------------------------------------------------------------------------
# The first-batch view checks
# ---------------------------------------------------------------------------------------


def test_check_views_accepts_recipe_outputs():
    augmenter = augment.simclr_augmenter(16, seed=0)
    augment.check_views(augmenter(random_images(4, (16, 16, 3))), augmenter, (16, 16, 3))
    crops = augment.multi_crop_augmenter(16, 8, local_views=2, seed=0)
    augment.check_views(crops(random_images(4, (16, 16, 3))), crops, (None, None, 3))


def test_check_views_names_the_augmenter_and_the_fix():
    keras_core = keras.layers.Pipeline([keras.layers.RandomFlip()], name="no_rescaling")
    views = keras_core(random_images(4, (16, 16, 3)).astype("float32"))
    with pytest.raises(ValueError, match=r"no_rescaling.*\[0, 255\]|no_rescaling.*Rescaling"):
        augment.check_views(views, keras_core, (16, 16, 3))
    with pytest.raises(ValueError, match=r"uint8 views.*ToUnitRange"):
        augment.check_views(random_images(2, (16, 16, 3)), keras_core, (16, 16, 3))
    crops = augment.multi_crop_augmenter(16, 8, local_views=2, seed=0)
    with pytest.raises(ValueError, match=r"shape \(4, 8, 8, 3\).*input_shape=\(None, None, 3\)"):
        augment.check_views(crops(random_images(4, (16, 16, 3))), crops, (16, 16, 3))
    # Symbolic tensors: shapes only.
    augment.check_views(keras.KerasTensor((None, 16, 16, 3)), keras_core, (16, 16, 3))


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: MultiCrop("crop"), TypeError, r"`global_augmenter` must be a keras.layers.Layer"),
        (
            lambda: MultiCrop(augment.Grayscale(), local_views=2),
            ValueError,
            r"`local_augmenter` is required.*local_views=2",
        ),
        (lambda: MultiCrop(augment.Grayscale(), global_views=0), ValueError, r"`global_views`"),
        (
            lambda: augment.byol_augmenters(16, blur_probabilities=(1.0,)),
            ValueError,
            r"`blur_probabilities` must be a pair",
        ),
        (
            lambda: augment.byol_augmenters(16, solarize_probabilities=(0.0, 1.5)),
            ValueError,
            r"`solarize_probabilities`.*Received",
        ),
        (lambda: augment.simsiam_augmenter(16, blur="no"), TypeError, r"`blur` must be a bool"),
        (lambda: augment.multi_crop_augmenter(16, 0), ValueError, r"`local_size`.*Received"),
    ],
)
def test_bad_recipe_arguments_raise(build, error, match):
    with pytest.raises(error, match=match):
        build()
