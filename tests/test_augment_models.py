"""Any augmenter a user brings trains a model: keras-cv pipelines (with our per-image
RandomApply), keras-cv RandAugment, Keras core layers, and any channel count."""

import keras
import keras_cv
import numpy as np
import pytest
from conftest import random_images, tiny_encoder

import keras_siamese as ks


def fit_one_epoch(model, images):
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    before = [w.numpy().copy() for w in model.encoder.trainable_weights]
    history = model.fit(images, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = model.encoder.trainable_weights
    assert any(not np.allclose(b, a.numpy()) for b, a in zip(before, after, strict=True))


def test_a_keras_cv_pipeline_with_our_random_apply_trains_simclr():
    augmenter = ks.augment.Pipeline(
        [
            keras_cv.layers.RandomCropAndResize((16, 16), (0.3, 1.0), (3 / 4, 4 / 3)),
            keras_cv.layers.RandomFlip("horizontal"),
            ks.augment.RandomApply(
                keras_cv.layers.RandomBrightness(0.3, value_range=(0, 255)), probability=0.8
            ),
            keras.layers.Rescaling(1 / 255),
        ]
    )
    model = ks.SimCLR(tiny_encoder(), augmenter=augmenter, projection_dims=(16, 8))
    fit_one_epoch(model, random_images(16).astype("float32"))


def test_keras_cv_rand_augment_trains_simclr_on_rgb_images():
    augmenter = keras.Sequential(
        [
            keras_cv.layers.RandAugment(
                value_range=(0, 255), augmentations_per_image=2, magnitude=0.5
            ),
            keras.layers.Rescaling(1 / 255),
        ]
    )
    encoder = tiny_encoder((16, 16, 3))
    model = ks.SimCLR(encoder, augmenter=augmenter, projection_dims=(16, 8))
    fit_one_epoch(model, random_images(16, (16, 16, 3)).astype("float32"))


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: keras_cv.layers.RandomApply(keras_cv.layers.Grayscale(3), rate=0.5),
        lambda: keras_cv.layers.AugMix(value_range=(0, 255), severity=0.3, num_chains=2),
        lambda: keras_cv.layers.RandomAugmentationPipeline(
            [keras_cv.layers.RandomFlip(), keras_cv.layers.RandomSharpness(0.5, (0, 255))],
            augmentations_per_image=1,
        ),
    ],
    ids=["RandomApply", "AugMix", "RandomAugmentationPipeline"],
)
def test_keras_cv_layers_that_branch_in_python_train_inside_fit(make_layer):
    # They branch on tensors in Python: the base traces the augmenter with AutoGraph.
    augmenter = keras.Sequential([make_layer(), keras.layers.Rescaling(1 / 255)])
    model = ks.SimCLR(tiny_encoder((16, 16, 3)), augmenter=augmenter, projection_dims=(16, 8))
    fit_one_epoch(model, random_images(16, (16, 16, 3)).astype("float32"))


def test_a_keras_core_pipeline_trains_simsiam():
    augmenter = keras.Sequential(  # RandomContrast clips to its value_range, [0, 255]
        [
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomTranslation(0.1, 0.1),
            keras.layers.RandomContrast(0.3),
            keras.layers.Rescaling(1 / 255),
        ]
    )
    model = ks.SimSiam(
        tiny_encoder(),
        augmenter=augmenter,
        projection_dim=16,
        projection_layers=2,
        predictor_hidden_dim=4,
    )
    fit_one_epoch(model, random_images(16))


@pytest.mark.parametrize("channels", [4, 13])
def test_the_default_augmenter_trains_simclr_on_any_channel_count(channels):
    shape = (16, 16, channels)
    model = ks.SimCLR(tiny_encoder(shape), projection_dims=(16, 8))
    views = model.make_views(random_images(8, shape))
    assert all(tuple(view.shape) == (8, *shape) for view in views)
    fit_one_epoch(model, random_images(16, shape))


def test_multi_crop_views_go_only_to_methods_that_use_them():
    multi_crop = ks.augment.multi_crop_augmenter(16, local_size=8, local_views=2, channels=1)
    with pytest.raises(TypeError, match=r"SimCLR trains on two views.*DINO, SwAV"):
        ks.SimCLR(tiny_encoder(), augmenter=multi_crop)


def test_the_default_recipe_trains_under_xla():
    model = ks.SimCLR(tiny_encoder(), projection_dims=(16, 8))
    model.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=True)
    history = model.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def deterministic_pair():
    return (
        keras.layers.Rescaling(1 / 255, name="identity_view"),
        keras.layers.Rescaling(-1 / 255, offset=1.0, name="inverted_view"),
    )


def test_views_made_in_tf_data_train_exactly_like_views_made_in_the_step():
    import tensorflow as tf

    images = random_images(16)
    weights = []
    for in_dataset in (False, True):
        keras.utils.set_random_seed(3)
        model = ks.SimCLR(tiny_encoder(), augmenter=deterministic_pair(), projection_dims=(8, 4))
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        dataset = tf.data.Dataset.from_tensor_slices(images).batch(8)
        if in_dataset:
            dataset = ks.augment.views_in_dataset(dataset, model.augmenter)
            assert (
                set(dataset.element_spec) == {"views"} and len(dataset.element_spec["views"]) == 2
            )
        model.fit(dataset, epochs=1, verbose=0)
        weights.append([w.numpy() for w in model.trainable_weights])
    for in_step, in_data in zip(*weights, strict=True):
        np.testing.assert_allclose(in_step, in_data, rtol=1e-5, atol=1e-6)


def test_views_in_dataset_keeps_labels_and_checks_the_view_count():
    import tensorflow as tf

    labelled = tf.data.Dataset.from_tensor_slices((random_images(8), np.arange(8))).batch(4)
    augmenter = ks.augment.simclr_augmenter(16, channels=1, seed=0)
    views, labels = next(iter(ks.augment.views_in_dataset(labelled, augmenter)))
    assert [tuple(v.shape) for v in views["views"]] == [(4, 16, 16, 1)] * 2
    np.testing.assert_array_equal(labels, np.arange(4))
    assert not np.allclose(views["views"][0], views["views"][1])  # two independent draws

    model = ks.SimCLR(tiny_encoder(), augmenter=augmenter, projection_dims=(8, 4))
    model.compile(optimizer="sgd")
    multi_crop = ks.augment.multi_crop_augmenter(16, local_size=8, local_views=2, channels=1)
    three = ks.augment.views_in_dataset(labelled, multi_crop)
    with pytest.raises(ValueError, match=r"trains on 2 views per image.*Received: 4 views"):
        model.fit(three, epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"`augmenter` must be a layer, a pair"):
        ks.augment.views_in_dataset(labelled, "simclr")
